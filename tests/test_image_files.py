"""Image files as untrusted input: every pixel format on the same 0..255
scale, EXIF orientation, and one ImageError line naming the file for
anything too big, too thin, or broken, refused before it is decoded.

Expected values come from the 8-bit path on the same picture (a 16-bit
value v*257 is the 8-bit value v exactly, a float v/255 too), from
arithmetic written out here, and from NumPy's rot90 for the orientation.
"""
import struct
import zlib

import numpy as np
import pytest

from numalex import images

Image = pytest.importorskip("PIL.Image", reason="reading images needs Pillow: "
                                                "pip install 'numalex[image]'")

CAFFE_MEAN_BGR = np.array([104.00699, 116.66877, 122.67891])


def grey8():
    """A (40, 60) uint8 picture with structure in both directions."""
    rows, cols = np.mgrid[0:40, 0:60]
    return ((rows * 5 + cols * 3) % 256).astype(np.uint8)


def png_bytes(width, height, bit_depth, colour_type, rows=b""):
    """A PNG written chunk by chunk, so that its header may say anything."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


def save(tmp_path, name, image, **options):
    path = tmp_path / name
    image.save(path, **options)
    return path


def the_8bit_result(tmp_path):
    return images.load_image(save(tmp_path, "grey8.png", Image.fromarray(grey8())), "caffe")


# ---- pixel formats: the range of the format, never clipping ---------------
def test_16bit_grey_png_is_scaled_not_clipped(tmp_path):
    # a 16-bit value v*257 is the 8-bit value v: same picture, same numbers
    rows = grey8().astype(">u2") * 257
    path = tmp_path / "grey16.png"
    path.write_bytes(png_bytes(60, 40, 16, 0, b"".join(b"\0" + r.tobytes() for r in rows)))
    assert Image.open(path).mode == "I;16"
    np.testing.assert_allclose(images.load_image(path, "caffe"), the_8bit_result(tmp_path),
                               atol=1e-3)


@pytest.mark.parametrize("dtype", ["<u2", ">u2"])
def test_16bit_tiffs_of_either_byte_order_are_scaled(tmp_path, dtype):
    image = Image.fromarray(grey8().astype(dtype) * 257)
    assert image.mode in ("I;16", "I;16B")
    np.testing.assert_allclose(images.preprocess(image, "caffe"), the_8bit_result(tmp_path),
                               atol=1e-3)
    path = save(tmp_path, "grey16.tif", Image.fromarray(grey8().astype("<u2") * 257))
    np.testing.assert_allclose(images.load_image(path, "caffe"), the_8bit_result(tmp_path),
                               atol=1e-3)


def test_float_tiff_spans_zero_to_one(tmp_path):
    path = save(tmp_path, "float.tif", Image.fromarray(grey8().astype(np.float32) / 255, "F"))
    np.testing.assert_allclose(images.load_image(path, "caffe"), the_8bit_result(tmp_path),
                               atol=1e-3)


def test_32bit_integer_tiff_spans_its_signed_range(tmp_path):
    # Pillow writes int32 TIFFs signed (SampleFormat 2): -2^31 -> 0, 2^31 - 1 -> 255
    path = save(tmp_path, "int32.tif", Image.fromarray(np.full((40, 60), 2**30, np.int32)))
    expected = (2**30 + 2**31) / (2**32 - 1) * 255 - CAFFE_MEAN_BGR        # 191.25 a channel
    np.testing.assert_allclose(images.load_image(path, "caffe")[:, 5, 5], expected, atol=1e-3)


def test_16bit_pgm_and_16bit_rgb_png(tmp_path):
    pgm = tmp_path / "grey16.pgm"
    pgm.write_bytes(b"P5 60 40 65535\n" + (grey8().astype(">u2") * 257).tobytes())
    np.testing.assert_allclose(images.load_image(pgm, "caffe"), the_8bit_result(tmp_path),
                               atol=1e-3)
    rgb = np.zeros((40, 60, 3), ">u2")
    rgb[...] = (65535, 32896, 257)                     # 8-bit (255, 128, 1) times 257
    path = tmp_path / "rgb16.png"
    path.write_bytes(png_bytes(60, 40, 16, 2, b"".join(b"\0" + r.tobytes() for r in rgb)))
    np.testing.assert_allclose(images.load_image(path, "caffe")[:, 5, 5],
                               np.array([1, 128, 255]) - CAFFE_MEAN_BGR, atol=1e-3)


@pytest.mark.parametrize("mode", ["P", "LA", "CMYK", "1"])
def test_palette_alpha_cmyk_and_bilevel_images_become_rgb(tmp_path, mode):
    # the colour Pillow gives the mode's pixels in RGB survives a flat image's resize
    flat = Image.fromarray(np.full((40, 60, 3), (200, 90, 30), np.uint8))
    image = flat.convert(mode, dither=Image.Dither.NONE)            # still flat
    rgb = np.asarray(image.convert("RGB"), np.float64)[0, 0]
    path = save(tmp_path, "image.tif" if mode == "CMYK" else "image.png", image)
    np.testing.assert_allclose(images.load_image(path, "caffe")[:, 100, 100],
                               rgb[::-1] - CAFFE_MEAN_BGR, atol=1e-3)


def test_non_finite_float_pixels_are_refused_naming_the_file(tmp_path):
    pixels = np.full((40, 60), 0.5, np.float32)
    pixels[3, 4] = np.nan
    path = save(tmp_path, "nan.tif", Image.fromarray(pixels, "F"))
    with pytest.raises(images.ImageError, match=r"nan\.tif: has NaN or infinite"):
        images.load_image(path)


# ---- EXIF orientation -------------------------------------------------------
@pytest.mark.parametrize("orientation, turn", [(6, -1), (8, 1), (3, 2)])
def test_exif_orientation_is_honoured(tmp_path, orientation, turn):
    rgb = np.random.default_rng(orientation).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation                       # Orientation
    path = save(tmp_path, "photo.png", Image.fromarray(rgb), exif=exif)
    upright = Image.fromarray(np.ascontiguousarray(np.rot90(rgb, turn)))  # turn x 90 degrees
    np.testing.assert_allclose(images.load_image(path), images.preprocess(upright), atol=1e-5)


# ---- limits, checked before decoding ------------------------------------------
def refusal(path, match):
    with pytest.raises(images.ImageError, match=rf"cannot read image .*{path.name}: {match}") as e:
        images.load_image(path)
    assert "\n" not in str(e.value)


def test_a_thin_strip_is_refused_before_the_resize(tmp_path):
    # 91 bytes that the torchvision resize would turn into 256 x 1,024,000 pixels
    path = tmp_path / "strip.png"
    path.write_bytes(png_bytes(1, 4000, 8, 0, b"\0\0" * 4000))
    refusal(path, "1x4000 pixels is longer than 50:1")


def test_a_huge_declared_size_is_refused_before_decoding(tmp_path):
    path = tmp_path / "huge.png"
    path.write_bytes(png_bytes(100_000, 100_000, 8, 2))       # Pillow: a decompression bomb
    refusal(path, ".*")
    path.write_bytes(png_bytes(9000, 9000, 8, 2))              # numalex's own limit
    refusal(path, "9000x9000 pixels is more than numalex reads")
    path.write_bytes(png_bytes(3000, 3000, 8, 2, b"\0"))       # 9 Mpixels in ~70 bytes
    refusal(path, "declares 3000x3000 pixels in \\d+ bytes")
    path.write_bytes(png_bytes(0, 10, 8, 2))
    refusal(path, ".*")


def test_the_size_check_also_guards_preprocess():
    strip = Image.new("L", (2, 400))
    with pytest.raises(images.ImageError, match="2x400 pixels is longer than 50:1"):
        images.preprocess(strip)


@pytest.mark.parametrize("content", [
    b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n",      # EPS would run Ghostscript
    png_bytes(60, 40, 8, 0, b"\0" * 100),                          # truncated pixel data
    png_bytes(60, 40, 8, 9),                                       # colour type 9 is no PNG's
    b"BM" + b"\xff" * 60,                                          # a BMP header of nonsense
    b"",
], ids=["eps", "truncated", "bad-colour-type", "bmp-nonsense", "empty"])
def test_broken_or_foreign_files_give_one_line_naming_the_file(tmp_path, content):
    path = tmp_path / "bad.img"
    path.write_bytes(content)
    refusal(path, ".+")


def test_an_open_file_object_loads_too(tmp_path):
    path = save(tmp_path, "grey8.png", Image.fromarray(grey8()))
    with open(path, "rb") as f:
        np.testing.assert_array_equal(images.load_image(f, "caffe"), the_8bit_result(tmp_path))
