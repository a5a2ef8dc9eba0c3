"""How much memory a weight file may make numalex allocate.

A header is a claim, not a fact: a 255-byte file can *say* it holds a 4 TiB
tensor. So no reader sizes an allocation from a header alone. Each load gets
an :class:`AllocationBudget` of

    FILE_MULTIPLE x (the file's size on disk) + the model's own size + SLACK

bytes, and every array or inflated zip member is charged to it *before* it
is allocated. A genuine weight file holds its arrays once (a little more for
Caffe's float64 blobs or a compressed .npz), far inside the budget; a file
that claims more is refused with a WeightFileError that says so.

Small arrays cost more in Python objects and time than in data, so the
number of arrays (and of Caffe layers) is capped too: AlexNet has 16 arrays,
a ResNet-152 about a thousand.
"""
from __future__ import annotations

import os

from .errors import WeightFileError

FILE_MULTIPLE = 4           # arrays may total 4x the bytes on disk
SLACK = 1 << 20             # plus 1 MiB, so tiny files are not refused for overheads
MAX_ARRAYS = 10_000         # arrays (or Caffe layers) in one file
MAX_NDIM = 32               # dimensions of one array (Caffe's own limit)


class AllocationBudget:
    """The bytes and arrays one load may still allocate; `claim` before allocating."""

    def __init__(self, limit: int):
        self.limit = limit
        self.used = self.arrays = 0

    @classmethod
    def for_size(cls, file_bytes: int, model_bytes: int = 0) -> "AllocationBudget":
        return cls(FILE_MULTIPLE * file_bytes + model_bytes + SLACK)

    @classmethod
    def for_file(cls, path, model_bytes: int = 0) -> "AllocationBudget":
        return cls.for_size(os.path.getsize(path), model_bytes)

    def claim(self, nbytes: int, what: str) -> None:
        """Charge `nbytes` (one array or buffer, named by `what`), or refuse."""
        self.arrays += 1
        if self.arrays > MAX_ARRAYS:
            raise WeightFileError(f"holds more than {MAX_ARRAYS:,} arrays; "
                                  f"no weight file numalex reads has that many")
        if nbytes > self.limit - self.used:
            raise WeightFileError(
                f"{what} claims {nbytes:,} bytes, but the whole file may "
                f"expand to at most {self.limit:,} ({FILE_MULTIPLE}x its size plus the "
                f"model's); the header lies or the file is a decompression bomb")
        self.used += nbytes


def check_shape(shape, where: str) -> tuple:
    """`shape` as a tuple of non-negative ints with at most MAX_NDIM entries."""
    if (not isinstance(shape, tuple) or len(shape) > MAX_NDIM
            or not all(type(n) is int and n >= 0 for n in shape)):
        raise WeightFileError(f"{where}: invalid shape {str(shape)[:80]} (at most "
                              f"{MAX_NDIM} non-negative integer dimensions)")
    return shape
