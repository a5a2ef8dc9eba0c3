"""Classify any number of images in a bounded, streaming pipeline.

    for row in numalex.classify_files(paths, weights="alexnet-owt-7be5be79.pth", batch=16):
        print(row["image"], row.get("error") or row["top"][0]["label"])

Worker threads decode (read, resize, crop, normalise) the next batches while
the current batch runs through the model, so the cores that Pillow and the
resize use are busy at the same time as the forward pass. While the model
runs one batch, the next `batches_ahead + 1` are being decoded or wait
decoded, so memory holds at most `(batches_ahead + 2) * batch` images however
long the list of paths is (it may be a generator). Results come out in the order of the paths, one batch at
a time, as soon as that batch is done.

An image that cannot be read becomes a row with an "error" and never stops
the others.
"""
from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from typing import Iterable, Iterator

from ..backends.checks import positive_int
from ..images import load_image
from .classifier import ClassifierSpec


def chunks(items: Iterable, size: int) -> Iterator[list]:
    """Consecutive lists of `size` items (the last may be shorter)."""
    items = iter(items)
    while chunk := list(islice(items, size)):
        yield chunk


def decode_or_error(path, preset):
    """(3, crop, crop) float32, or the one-line reason the image is unusable.
    Any failure counts: an image file is untrusted input."""
    try:
        return load_image(path, preset)
    except ModuleNotFoundError:
        raise                                # Pillow missing: no image can be read
    except Exception as err:  # noqa: BLE001 - a bad image is a row, not an abort
        message = " ".join(str(err).split()) or type(err).__name__
        return message if str(path) in message else f"cannot read image {path}: {message}"


def decoded_batches(paths: Iterable, preset, batch: int, threads: int = 2,
                    batches_ahead: int = 2) -> Iterator[tuple[list, list]]:
    """Yield (paths, decoded) per batch, decoded[i] being an array or an
    error text (see decode_or_error). Decoding runs in `threads` threads;
    while the caller holds one batch, at most `batches_ahead + 1` more are
    submitted (the next one is queued as the caller takes this one)."""
    positive_int(batch, "batch"), positive_int(threads, "decode threads")
    if batches_ahead < 0:
        raise ValueError(f"batches_ahead must be >= 0, got {batches_ahead}")
    pending = deque()                        # (paths, futures) already submitted
    with ThreadPoolExecutor(threads, thread_name_prefix="numalex-decode") as pool:
        def submit(chunk):
            pending.append((chunk, [pool.submit(decode_or_error, p, preset) for p in chunk]))

        batches = chunks(paths, batch)
        try:
            for chunk in islice(batches, batches_ahead + 1):
                submit(chunk)
            while pending:
                chunk, futures = pending.popleft()
                decoded = [future.result() for future in futures]
                if (following := next(batches, None)) is not None:
                    submit(following)        # decodes while the caller runs this batch
                yield chunk, decoded
        finally:                             # the caller stopped early: drop queued work
            for _, futures in pending:
                for future in futures:
                    future.cancel()


def stream(classifier, paths: Iterable, batch: int, decode_threads: int = 2,
           batches_ahead: int = 2) -> Iterator[dict]:
    """Rows for `paths`, in order, through an already built classifier."""
    for chunk, decoded in decoded_batches(paths, classifier.preset, batch, decode_threads,
                                          batches_ahead):
        yield from classifier.classify(chunk, decoded)


def classify_files(paths: Iterable, weights=None, batch: int = 8, *, decode_threads: int = 2,
                   batches_ahead: int = 2, **options) -> Iterator[dict]:
    """A generator of result rows, one per path, in order (see
    numalex/inference/classifier.py for the row format).

    weights: the weight file (None: seeded random weights). options:
    variant, backend, top, preset, num_classes, width, input_size, labels
    (ClassifierSpec's fields). The model is built here, before the first
    row is asked for, so a bad weight file fails at the call.
    """
    positive_int(batch, "batch"), positive_int(decode_threads, "decode_threads")
    classifier = ClassifierSpec(weights=weights, **options).build()
    return stream(classifier, paths, batch, decode_threads, batches_ahead)
