"""Turn photos into the input a pretrained AlexNet expects.

    x = numalex.images.load_batch(["cat.jpg", "dog.png"], "torchvision")  # (2, 3, 224, 224)

Pretrained weights only work on images prepared exactly as in training, and
the two families of weights were trained differently:

============  =================================  ===================================
step          ``torchvision``                    ``caffe`` (BVLC)
============  =================================  ===================================
resize        short side to 256, keep aspect     both sides to 256x256
              (long side ``int(256*long/short)``)
crop          centre 224x224; offset             centre 227x227; offset
              ``int(round((H-224)/2))``          ``(H-227)//2`` (Caffe's integer
                                                 division)
channels      RGB                                BGR (OpenCV's order)
values        [0, 1], then ``(x-mean)/std``      [0, 255] minus the training mean
              mean (0.485, 0.456, 0.406),        B 104.00699, G 116.66877,
              std (0.229, 0.224, 0.225)          R 122.67891
============  =================================  ===================================

Resizing is bilinear with antialiasing: when shrinking, each output pixel
averages every input pixel under a triangle filter stretched to the scale
factor (Pillow's resampling, and ``antialias=True`` in torchvision). It runs
on float32 channels, so no rounding to 8 bits happens between steps.

Before any of that, ``load_image`` turns the photo upright as its EXIF
orientation tag says (what a photo viewer shows; torchvision's own loader
ignores the tag), and brings every pixel format to the same 0..255 scale by
the range that format can hold: 8-bit modes as they are, 16-bit ones
(``I;16``: PNG, TIFF) by 255/65535, 32-bit integer TIFFs by their bit depth
and sign, float images (``F``) from 0..1. Palette, CMYK and grey images
become RGB; transparency is dropped.

Image files are untrusted input. Only the formats of IMAGE_EXTENSIONS are
opened; the size a file declares is checked before anything is decoded
(MAX_PIXELS, MAX_ASPECT_RATIO, MAX_PIXELS_PER_BYTE), so memory stays bounded
whatever the header claims; any failure is one ImageError naming the file.

Needs Pillow (``pip install numalex[image]``).
"""
from __future__ import annotations

import os
import warnings
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")
# Pillow's names for those formats: nothing else is ever opened (no EPS,
# which runs Ghostscript, no PDF or exotic decoders).
FORMATS = ("JPEG", "PNG", "BMP", "GIF", "TIFF", "WEBP", "PPM")

# Limits on what a file may declare, checked before decoding. Decoding and
# resizing need about 16 bytes a pixel, so MAX_PIXELS (an 8192 x 8192
# square) bounds a load near 1 GiB; Pillow itself warns from 89 million.
MAX_PIXELS = 8192 * 8192
# A 4000:1 strip would be resized to 256 x 1,024,000 before the crop (3 GiB).
MAX_ASPECT_RATIO = 50
# The best real compression stays far below this (deflate of a blank 1-bit
# PNG: about 8,000 pixels a byte); a tiny file declaring a huge image is a bomb.
MAX_PIXELS_PER_BYTE = 16384


class ImageError(ValueError):
    """An image file cannot be used; the one-line message names the file and why."""


def _pil_image():
    try:
        from PIL import Image
    except ModuleNotFoundError:
        raise ModuleNotFoundError("reading images needs Pillow: pip install numalex[image]  "
                                  "(or: pip install pillow)") from None
    return Image


@dataclass(frozen=True)
class Preset:
    """One way of preparing images. mean and std are in the output channel
    order (BGR for Caffe) and in the units after `scale`."""

    name: str
    resize: int
    keep_aspect: bool       # True: the short side becomes `resize`; False: both sides
    crop: int
    crop_rounding: str      # "round" (torchvision) or "floor" (Caffe)
    scale: float            # pixel values 0..255 are multiplied by this
    mean: tuple
    std: tuple
    bgr: bool

    def __post_init__(self):
        if not 0 < self.crop <= self.resize:
            raise ValueError(f"preset {self.name!r}: crop {self.crop} must be in "
                             f"1..resize ({self.resize})")


PRESETS = {
    "torchvision": Preset("torchvision", resize=256, keep_aspect=True, crop=224,
                          crop_rounding="round", scale=1 / 255, mean=(0.485, 0.456, 0.406),
                          std=(0.229, 0.224, 0.225), bgr=False),
    "caffe": Preset("caffe", resize=256, keep_aspect=False, crop=227, crop_rounding="floor",
                    scale=1.0, mean=(104.00699, 116.66877, 122.67891), std=(1.0, 1.0, 1.0),
                    bgr=True),
}

# Which preset the weights of each variant were trained with.
VARIANT_PRESETS = {"torchvision": "torchvision", "original": "caffe", "bvlc": "caffe"}


def get_preset(preset) -> Preset:
    """A Preset, or the name of one ('torchvision' / 'caffe')."""
    if isinstance(preset, Preset):
        return preset
    if preset not in PRESETS:
        raise ValueError(f"unknown preprocessing preset {preset!r}; choose one of "
                         f"{', '.join(PRESETS)}")
    return PRESETS[preset]


def resized_size(width: int, height: int, preset: Preset) -> tuple[int, int]:
    """(width, height) after the resize step.

    Keeping the aspect ratio, torchvision truncates the long side:
    500x375 -> short side 375 becomes 256, long side int(256*500/375) = 341.
    """
    if not preset.keep_aspect:
        return preset.resize, preset.resize
    short, long = min(width, height), max(width, height)
    new_long = int(preset.resize * long / short)
    return (preset.resize, new_long) if width <= height else (new_long, preset.resize)


def crop_offset(size: int, crop: int, rounding: str) -> int:
    """Where a centred crop starts along one axis of length `size`.

    torchvision: int(round((size - crop) / 2)), Python's round (half to
    even), so 341 - 224 = 117 -> round(58.5) = 58. Caffe: (size - crop) // 2.
    """
    if rounding == "round":
        return int(round((size - crop) / 2.0))
    return (size - crop) // 2


def check_size(width: int, height: int, preset: Preset, file_bytes: int | None = None) -> None:
    """Refuse, with an ImageError, an image too big or too thin to prepare:
    more than MAX_PIXELS, a side over MAX_ASPECT_RATIO times the other, a
    resize step that would exceed MAX_PIXELS, or (file_bytes given) more
    than MAX_PIXELS_PER_BYTE pixels for each byte of the file."""
    pixels = width * height
    if width < 1 or height < 1:
        raise ImageError(f"declares an empty image ({width}x{height} pixels)")
    if pixels > MAX_PIXELS:
        raise ImageError(f"{width}x{height} pixels is more than numalex reads "
                         f"({MAX_PIXELS:,}); downscale it first")
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        raise ImageError(f"{width}x{height} pixels is longer than {MAX_ASPECT_RATIO}:1; "
                         f"crop it first")
    if file_bytes is not None and pixels > MAX_PIXELS_PER_BYTE * max(file_bytes, 1):
        raise ImageError(f"declares {width}x{height} pixels in {file_bytes} bytes, more than "
                         f"any real compression gives (a decompression bomb or a bad header)")
    new_width, new_height = resized_size(width, height, preset)
    if new_width * new_height > MAX_PIXELS:
        raise ImageError(f"preset {preset.name!r} would resize {width}x{height} to "
                         f"{new_width}x{new_height}, more than {MAX_PIXELS:,} pixels")


def value_range(image) -> tuple[float, float]:
    """(lowest, highest) value the pixel format of a PIL image can hold: what
    becomes 0 and 255. Pillow keeps 16-bit PNGs and TIFFs as 'I;16', scales
    16-bit PGMs into 0..65535 in 'I', and keeps 32-bit integer TIFFs in 'I'
    with their bit depth and sign in the tags; float images ('F') are 0..1."""
    if image.mode.startswith("I;16"):
        return 0.0, 65535.0
    if image.mode == "F":
        return 0.0, 1.0
    if image.mode == "I":
        if image.format != "TIFF":
            return 0.0, 65535.0
        bits = image.tag_v2.get(258, (32,))[0]                 # BitsPerSample
        if image.tag_v2.get(339, (1,))[0] == 2:                # SampleFormat: signed
            return -2.0 ** (bits - 1), 2.0 ** (bits - 1) - 1
        return 0.0, 2.0 ** bits - 1
    return 0.0, 255.0


def float_bands(image) -> tuple[list, float, float]:
    """A PIL image -> (its channels as 'F'-mode images, lowest, highest).

    One grey band for the single-channel high-bit-depth modes ('I;16', 'I',
    'F'): Pillow's convert("RGB") would clip them to 0..255 (a 16-bit
    image turns white, a 0..1 float one black). Three RGB bands for the
    rest (palette, CMYK, grey, with alpha: Pillow converts them to RGB)."""
    low, high = value_range(image)
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        grey = image.convert("F")
        if not np.isfinite(np.asarray(grey)).all():
            raise ImageError("has NaN or infinite pixel values")
        return [grey], low, high
    return [band.convert("F") for band in image.convert("RGB").split()], low, high


def resize_bilinear(bands, width: int, height: int) -> np.ndarray:
    """'F'-mode PIL images (the channels) -> (height, width, channels)
    float32, each resized with Pillow's antialiased bilinear filter."""
    Image = _pil_image()
    return np.stack([np.asarray(band.resize((width, height), Image.BILINEAR),
                                dtype=np.float32) for band in bands], axis=-1)


def preprocess(image, preset="torchvision") -> np.ndarray:
    """A PIL image (any mode) -> (3, crop, crop) float32, ready for a model."""
    preset = get_preset(preset)
    check_size(image.width, image.height, preset)
    bands, low, high = float_bands(image)
    width, height = resized_size(image.width, image.height, preset)
    pixels = resize_bilinear(bands, width, height)          # (H, W, 1 or 3), low..high
    pixels = (pixels - np.float32(low)) * np.float32(255 / (high - low))   # 0..255
    pixels = np.broadcast_to(pixels, (height, width, 3))   # grey: R = G = B
    top = crop_offset(height, preset.crop, preset.crop_rounding)
    left = crop_offset(width, preset.crop, preset.crop_rounding)
    pixels = pixels[top:top + preset.crop, left:left + preset.crop]
    if preset.bgr:
        pixels = pixels[:, :, ::-1]
    pixels = pixels * np.float32(preset.scale)
    pixels = (pixels - np.float32(preset.mean)) / np.float32(preset.std)
    return np.ascontiguousarray(pixels.transpose(2, 0, 1), dtype=np.float32)


@contextmanager
def _reading(path):
    """Turn every failure while Pillow reads `path` into one ImageError line
    naming the file. Pillow's decoders raise many types on corrupt input
    (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError,
    DecompressionBombError, ...), so anything raised in here counts; its
    decompression-bomb warning counts too. (The warning filter is process-
    wide, so threads decoding at once share it; harmless, as Pillow warns
    only above MAX_PIXELS, where check_size refuses the image anyway.)"""
    Image = _pil_image()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except Exception as err:
        reason = " ".join(str(err).split()) or type(err).__name__
        raise ImageError(f"cannot read image {path}: {reason[:200]}") from None


def load_image(path, preset="torchvision") -> np.ndarray:
    """Read an image file and preprocess it: (3, crop, crop) float32.

    The declared size is checked (check_size) before any pixel is decoded,
    then the image is turned upright by its EXIF orientation."""
    Image = _pil_image()
    from PIL import ImageOps

    preset = get_preset(preset)
    with _reading(path), Image.open(path, formats=FORMATS) as image:
        on_disk = isinstance(path, (str, os.PathLike))        # else an open file object
        check_size(image.width, image.height, preset, os.path.getsize(path) if on_disk else None)
        ImageOps.exif_transpose(image, in_place=True)
        return preprocess(image, preset)


def load_batch(paths, preset="torchvision") -> np.ndarray:
    """Several image files -> (N, 3, crop, crop) float32."""
    return np.stack([load_image(path, preset) for path in paths])


def find_images(paths) -> list[str]:
    """Expand folders (recursively, sorted) into the image files inside them;
    files named explicitly are kept whatever their extension."""
    found = []
    for path in paths:
        if os.path.isdir(path):
            for root, dirs, files in os.walk(path):
                dirs.sort()
                found += [os.path.join(root, name) for name in sorted(files)
                          if name.lower().endswith(IMAGE_EXTENSIONS)]
        elif os.path.isfile(path):
            found.append(path)
        else:
            raise FileNotFoundError(f"no such image or folder: {path}")
    return found


def imagenet_classes() -> list[str]:
    """The 1000 ImageNet class names, index i = output i of a pretrained net
    (the standard order: WordNet IDs sorted, n01440764 'tench' first)."""
    from importlib.resources import files

    text = files("numalex").joinpath("data", "imagenet_classes.txt").read_text("utf-8")
    return text.splitlines()
