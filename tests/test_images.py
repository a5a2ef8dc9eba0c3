"""Preprocessing presets against an independent computation of the same steps:
the resize by PyTorch's antialiased bilinear interpolation, the sizes and
crop offsets by the arithmetic written out below (torchvision's and Caffe's
rules), and the normalisation by hand. Only the comparisons with PyTorch
need torch; the rest runs with Pillow alone (tests/test_image_files.py: the
pixel formats, EXIF and the limits on untrusted files)."""

import numpy as np
import pytest

from numalex import images
from without_module import import_error_without


@pytest.fixture(name="Image")
def pillow_image():
    """PIL.Image, or a skip where Pillow is missing."""
    return pytest.importorskip("PIL.Image", reason="the presets read images with Pillow: "
                                                   "pip install 'numalex[image]'")


@pytest.fixture
def needs_torch():
    """A skip where PyTorch (the oracle of the resize) is missing."""
    pytest.importorskip("torch", reason="PyTorch is the oracle: pip install 'numalex[oracle]'")


MEAN_RGB, STD_RGB = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
CAFFE_MEAN_BGR = np.array([104.00699, 116.66877, 122.67891])


def torch_resize(rgb, height, width):
    """PyTorch's antialiased bilinear resize. rgb: (H, W, 3) -> (3, height, width)."""
    import torch                        # only tests that use needs_torch call this

    t = torch.from_numpy(rgb.astype(np.float32)).permute(2, 0, 1)[None]
    return torch.nn.functional.interpolate(t, size=(height, width), mode="bilinear",
                                           antialias=True, align_corners=False)[0].numpy()


def torchvision_reference(rgb):
    """torchvision's Resize(256) + CenterCrop(224) + ToTensor + Normalize, by hand.
    rgb: (H, W, 3) uint8 -> (3, 224, 224)."""
    h, w = rgb.shape[:2]
    if w <= h:                                  # the short side becomes 256, long truncated
        new_w, new_h = 256, int(256 * h / w)
    else:
        new_w, new_h = int(256 * w / h), 256
    t = torch_resize(rgb, new_h, new_w)
    top, left = int(round((new_h - 224) / 2.0)), int(round((new_w - 224) / 2.0))
    t = t[:, top:top + 224, left:left + 224] / 255.0
    return (t - MEAN_RGB[:, None, None]) / STD_RGB[:, None, None]


def caffe_reference(rgb):
    """Resize to 256x256, BGR, 0..255, minus the mean, centre crop 227 at (256-227)//2 = 14."""
    bgr = torch_resize(rgb, 256, 256)[::-1] - CAFFE_MEAN_BGR[:, None, None]
    return bgr[:, 14:14 + 227, 14:14 + 227]


SIZES = [(375, 500), (500, 375), (300, 257), (341, 341), (200, 150), (256, 256), (480, 640)]


@pytest.mark.usefixtures("needs_torch")
@pytest.mark.parametrize("h, w", SIZES)
def test_torchvision_preset_matches_the_independent_steps(h, w, Image):
    rgb = np.random.default_rng(h * w).integers(0, 256, (h, w, 3), dtype=np.uint8)
    got = images.preprocess(Image.fromarray(rgb), "torchvision")
    assert got.shape == (3, 224, 224) and got.dtype == np.float32
    # float32 resizes of 0..255 values agree to ~1e-4 of a grey level; /0.225 scales it
    np.testing.assert_allclose(got, torchvision_reference(rgb), atol=1e-3, rtol=0)


@pytest.mark.usefixtures("needs_torch")
@pytest.mark.parametrize("h, w", SIZES)
def test_caffe_preset_matches_the_independent_steps(h, w, Image):
    rgb = np.random.default_rng(h + w).integers(0, 256, (h, w, 3), dtype=np.uint8)
    got = images.preprocess(Image.fromarray(rgb), "caffe")
    assert got.shape == (3, 227, 227) and got.dtype == np.float32
    np.testing.assert_allclose(got, caffe_reference(rgb), atol=1e-3, rtol=0)


def test_torchvision_rounds_half_crop_offsets_to_even():
    # 500x375 -> 341x256; (341 - 224)/2 = 58.5 -> 58 (round half to even), not 59
    assert images.resized_size(500, 375, images.PRESETS["torchvision"]) == (341, 256)
    assert images.crop_offset(341, 224, "round") == 58
    assert images.crop_offset(343, 224, "round") == 60       # 59.5 -> 60
    assert images.crop_offset(256, 227, "floor") == 14


def test_a_known_pixel_lands_where_the_crop_says(Image):
    # a flat image with one bright column: after the crop it sits at column x - left
    rgb = np.zeros((256, 341, 3), np.uint8)
    rgb[:, 100] = 255
    got = images.preprocess(Image.fromarray(rgb), "torchvision")
    column = got[0].mean(axis=0)
    assert int(np.argmax(column)) == 100 - 58


def test_channel_order_and_values_on_a_flat_colour(Image):
    rgb = np.zeros((300, 300, 3), np.uint8)
    rgb[...] = (255, 128, 0)
    tv = images.preprocess(Image.fromarray(rgb), "torchvision")
    expected = (np.array([255, 128, 0]) / 255 - MEAN_RGB) / STD_RGB
    np.testing.assert_allclose(tv[:, 0, 0], expected, atol=1e-5)
    caffe = images.preprocess(Image.fromarray(rgb), "caffe")
    np.testing.assert_allclose(caffe[:, 0, 0], np.array([0, 128, 255]) - CAFFE_MEAN_BGR,
                               atol=1e-3)


def test_grey_and_transparent_images_become_three_channels(Image):
    grey = Image.fromarray(np.full((240, 320), 77, np.uint8), mode="L")
    rgba = Image.fromarray(np.full((240, 320, 4), 77, np.uint8), mode="RGBA")
    for image in (grey, rgba):
        out = images.preprocess(image, "caffe")
        np.testing.assert_allclose(out[:, 5, 5], 77 - CAFFE_MEAN_BGR, atol=1e-3)


def test_load_batch_and_find_images(tmp_path, Image):
    for i, name in enumerate(["b.png", "a.jpg", "sub/c.bmp"]):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        Image.fromarray(np.full((60, 80, 3), 40 * i, np.uint8)).save(tmp_path / name)
    (tmp_path / "notes.txt").write_text("not an image")
    found = images.find_images([str(tmp_path)])
    assert [p[len(str(tmp_path)) + 1:] for p in found] == ["a.jpg", "b.png", "sub/c.bmp"]
    assert images.load_batch(found, "torchvision").shape == (3, 3, 224, 224)
    with pytest.raises(FileNotFoundError, match="nope"):
        images.find_images([str(tmp_path / "nope")])


def test_unreadable_image_and_unknown_preset_give_clear_errors(tmp_path, Image):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(ValueError, match="cannot read image .*broken.jpg"):
        images.load_image(bad)
    with pytest.raises(ValueError, match="unknown preprocessing preset 'imagenet'"):
        images.get_preset("imagenet")


def test_missing_pillow_says_what_to_install():
    message = import_error_without("PIL", "from numalex import images; images.load_image('x.jpg')")
    assert "pip install numalex[image]" in message


def test_imagenet_classes_are_the_standard_thousand_in_order():
    names = images.imagenet_classes()
    assert len(names) == 1000 and len(set(names)) == 1000
    anchors = {0: "tench", 1: "goldfish", 207: "golden retriever", 281: "tabby",
               409: "analog clock", 530: "digital clock", 951: "lemon", 999: "toilet tissue"}
    assert {i: names[i] for i in anchors} == anchors
