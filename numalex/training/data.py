"""Training data: a folder with one subfolder per class, or scikit-learn's
handwritten digits; split into training and held-out images, and decoded a
few batches ahead in worker threads.

    data = load_data("photos", input_size=224)    # photos/cat/*.jpg, photos/dog/*.jpg, ...
    data = load_data("digits", input_size=63)     # 1,797 8x8 digits, shipped inside scikit-learn
    for batch in data.batches("train", 32, epoch=0, seed=0):
        batch.x, batch.labels                     # (N, 3, S, S) float32, (N,) int64

Folders are prepared as in the paper: the short side resized to R = S*256/224
(256 for S = 224), then, for training, a random S x S crop of the central
R x R square, flipped left-right half the time; held-out images (and
`numalex classify` later) take the centre crop. The digits are scaled up
from 8x8 to S x S and never augmented: a flipped 2 is not a 2.

Every random choice is drawn from (seed, epoch, image index), never from the
order in which threads finish, so a run repeats exactly and a resumed run
continues exactly. The split uses its own fixed seed: runs with different
seeds are compared on the same held-out images.
"""
from __future__ import annotations

import dataclasses
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..images import PRESETS, Preset, find_images, load_image, preprocess

HELD_OUT_FRACTION = 0.2
SPLIT_SEED = 0
DIGITS_HINT = ("`numalex train digits` needs scikit-learn and Pillow: "
               "pip install 'numalex[train]'")


@dataclass
class Batch:
    """x: (N, 3, S, S) float32 (None if no image decoded); labels: (N,) int64;
    skipped: one message per unreadable image, naming its file."""

    x: np.ndarray | None
    labels: np.ndarray
    skipped: list


@dataclass
class Dataset:
    """Images (paths, or arrays for the digits) split into "train" and
    "held_out", with what it takes to turn one into a network input."""

    name: str
    class_names: list
    preset: Preset                       # held-out images: centre crop S x S
    load: Callable                       # load(item, preset) -> (3, h, w) float32
    splits: dict                         # split name -> (items, labels (n,) int64)
    augment_from: Preset | None = None   # training images: R x R, randomly cropped to S

    @property
    def input_size(self) -> int:
        return self.preset.crop

    def size(self, split: str) -> int:
        return len(self.splits[split][0])

    def example(self, item, rng=None) -> np.ndarray:
        """One image -> (3, S, S); with rng (and augmentation on), a random
        S x S crop of the R x R image, mirrored half the time."""
        if rng is None or self.augment_from is None:
            return self.load(item, self.preset)
        x = self.load(item, self.augment_from)                     # (3, R, R)
        s, r = self.input_size, x.shape[1]
        top, left = rng.integers(0, r - s + 1, size=2)
        x = x[:, top:top + s, left:left + s]
        if rng.random() < 0.5:
            x = x[:, :, ::-1]
        return np.ascontiguousarray(x)

    def batches(self, split: str, batch_size: int, epoch: int | None = None, seed: int = 0,
                workers: int = 2, ahead: int = 4):
        """Yield Batch after Batch of one split. With `epoch`, the order is
        shuffled and images augmented from (seed, epoch); without, it is the
        split's own order, unaugmented. At most `ahead` batches are decoded
        ahead of the consumer, in `workers` threads."""
        items, labels = self.splits[split]
        if epoch is None:
            order = np.arange(len(items))
        else:
            order = np.random.default_rng([seed, epoch]).permutation(len(items))

        def decode(indices) -> Batch:
            xs, kept, skipped = [], [], []
            for i in indices:
                rng = None if epoch is None else np.random.default_rng([seed, epoch, i])
                try:
                    xs.append(self.example(items[i], rng))
                except (ValueError, OSError) as err:               # unreadable: skip, say so
                    skipped.append(str(err))
                    continue
                kept.append(labels[i])
            return Batch(np.stack(xs) if xs else None, np.array(kept, np.int64), skipped)

        chunks = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
        return decoded_ahead(decode, chunks, workers, ahead)


def decoded_ahead(decode, jobs: list, workers: int, ahead: int):
    """Yield decode(job) for each job, in order, keeping at most `ahead` jobs
    queued or running in `workers` threads: memory stays bounded however
    many jobs there are, and decoding overlaps the consumer's work."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending = deque()
        try:
            for job in jobs:
                pending.append(pool.submit(decode, job))
                if len(pending) >= ahead:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:                                  # the consumer stopped early
            for future in pending:
                future.cancel()


# ---- sources ---------------------------------------------------------------------------
def load_data(source: str, input_size: int) -> Dataset:
    """"digits", or a folder with one subfolder of images per class."""
    if source == "digits" and not os.path.isdir(source):
        return load_digits(input_size)
    return load_folder(source, input_size)


def split_indices(labels: np.ndarray, fraction: float = HELD_OUT_FRACTION):
    """(train, held_out) index arrays: per class, a seeded `fraction` of its
    images (at least one, never all) is held out; both sorted."""
    rng = np.random.default_rng(SPLIT_SEED)
    held = []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        count = min(len(members) - 1, max(1, round(fraction * len(members))))
        held += list(members[:count])
    held_out = np.sort(np.array(held, np.int64))
    return np.setdiff1d(np.arange(len(labels)), held_out), held_out


def _split(name, class_names, preset, load, items, labels, augment_from=None) -> Dataset:
    labels = np.asarray(labels, np.int64)
    train, held_out = split_indices(labels)
    if len(held_out) == 0:
        raise ValueError(f"{name}: too few images to hold any out; every class needs at "
                         f"least 2 images")
    splits = {"train": ([items[i] for i in train], labels[train]),
              "held_out": ([items[i] for i in held_out], labels[held_out])}
    return Dataset(name, list(class_names), preset, load, splits, augment_from)


def load_folder(root: str, input_size: int) -> Dataset:
    """root/<class>/<images> (searched recursively; classes sorted by name)."""
    layout = (f"training data is a folder with one subfolder per class, the images "
              f"inside (e.g. {os.path.join(root, 'cat', '1.jpg')}), or 'digits'")
    if not os.path.isdir(root):
        raise FileNotFoundError(f"no such folder: {root}; {layout}")
    classes = sorted(entry.name for entry in os.scandir(root)
                     if entry.is_dir() and not entry.name.startswith("."))
    if not classes:
        raise ValueError(f"{root}: no class subfolders; {layout}")
    files = {name: find_images([os.path.join(root, name)]) for name in classes}
    empty = [name for name in classes if not files[name]]
    if empty:
        raise ValueError(f"{root}: no images in class folder(s) {', '.join(empty)}; add "
                         f"images or remove the folder(s)")
    if len(classes) < 2:
        raise ValueError(f"{root}: only one class ({classes[0]}); a classifier needs at "
                         f"least two class subfolders")
    items = [path for name in classes for path in files[name]]
    labels = [k for k, name in enumerate(classes) for _ in files[name]]
    resize = round(input_size * 256 / 224)            # the paper: 224 crops of 256
    centre = dataclasses.replace(PRESETS["torchvision"], name="folder", resize=resize,
                                 crop=input_size)
    whole = dataclasses.replace(centre, crop=resize)  # the central R x R square
    return _split(os.path.basename(os.path.normpath(root)), classes, centre, load_image,
                  items, labels, augment_from=whole)


def load_digits(input_size: int) -> Dataset:
    """scikit-learn's 1,797 handwritten digits (8x8, values 0..16, bright ink
    on black), as grey images 0..255 scaled up to input_size with the same
    resize `numalex classify` applies to an image file, so a digit saved as
    a PNG is classified as it was trained."""
    try:
        from PIL import Image
        from sklearn.datasets import load_digits as sklearn_digits
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(DIGITS_HINT, name=err.name) from None

    digits = sklearn_digits()
    pixels = np.round(digits.images * (255 / 16)).astype(np.uint8)       # (1797, 8, 8)
    train, _ = split_indices(digits.target)
    mean, std = pixels[train].mean() / 255, pixels[train].std() / 255
    preset = Preset("digits", resize=input_size, keep_aspect=False, crop=input_size,
                    crop_rounding="floor", scale=1 / 255, mean=(float(mean),) * 3,
                    std=(float(std),) * 3, bgr=False)

    prepared = {}                       # never augmented, so each digit is prepared once

    def load(index, preset):
        if index not in prepared:
            prepared[index] = preprocess(Image.fromarray(pixels[index]), preset)[0]  # (S, S)
        return np.repeat(prepared[index][None], 3, axis=0)                          # (3, S, S)

    return _split("digits", [str(d) for d in digits.target_names], preset, load,
                  list(range(len(pixels))), digits.target)
