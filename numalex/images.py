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

Needs Pillow (``pip install numalex[image]``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")


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


def resize_bilinear(image, width: int, height: int) -> np.ndarray:
    """An RGB PIL image -> (height, width, 3) float32 in 0..255, resized
    channel by channel in float ('F' mode) with Pillow's antialiased bilinear
    filter."""
    Image = _pil_image()
    channels = [band.convert("F").resize((width, height), Image.BILINEAR)
                for band in image.split()]
    return np.stack([np.asarray(band, dtype=np.float32) for band in channels], axis=-1)


def preprocess(image, preset="torchvision") -> np.ndarray:
    """A PIL image (any mode) -> (3, crop, crop) float32, ready for a model."""
    preset = get_preset(preset)
    image = image.convert("RGB")
    width, height = resized_size(image.width, image.height, preset)
    pixels = resize_bilinear(image, width, height)          # (H, W, 3), 0..255
    top = crop_offset(height, preset.crop, preset.crop_rounding)
    left = crop_offset(width, preset.crop, preset.crop_rounding)
    pixels = pixels[top:top + preset.crop, left:left + preset.crop]
    if preset.bgr:
        pixels = pixels[:, :, ::-1]
    pixels = pixels * np.float32(preset.scale)
    pixels = (pixels - np.float32(preset.mean)) / np.float32(preset.std)
    return np.ascontiguousarray(pixels.transpose(2, 0, 1), dtype=np.float32)


def load_image(path, preset="torchvision") -> np.ndarray:
    """Read an image file and preprocess it: (3, crop, crop) float32."""
    Image = _pil_image()
    try:
        with Image.open(path) as image:
            return preprocess(image, preset)
    except (OSError, SyntaxError) as err:          # Pillow's errors for bad files
        raise ValueError(f"cannot read image {path}: {err}") from None


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
