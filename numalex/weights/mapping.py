"""Fit a file's arrays onto a model's parameter keys.

The keys already agree by design: the ``torchvision`` variant uses
torchvision's own keys (``features.0.weight`` ...), ``original`` and ``bvlc``
use Caffe's layer names, which the Caffe reader turns into ``conv1.weight``,
``conv1.bias`` .... What can differ is the shape of Caffe's blobs: files
from Caffe's early days store every blob 4-D (num, channels, height, width),
so a bias is (1, 1, 1, 96) and fc6's weight (1, 1, 4096, 9216); a net
exported with a 4-D fc6 has it as (4096, 256, 6, 6). Those are the same
numbers in the same (row-major) order, so a reshape is exact.

The rule is deliberately narrow, so nothing is guessed: an array is
reshaped only when it has the model's element count AND the same leading
dimension once leading 1s are dropped (the output axis: a transposed fc
weight, (9216, 4096), is *not* silently "fixed"). Everything else is passed
on unchanged, and Model.load_state_dict lists what does not fit.
"""
from __future__ import annotations

import math

import numpy as np


def _without_leading_ones(shape: tuple) -> tuple:
    shape = tuple(shape)
    while len(shape) > 1 and shape[0] == 1:
        shape = shape[1:]
    return shape


def reshapes_exactly(have: tuple, want: tuple) -> bool:
    """Is `have` a legacy layout of `want` (same count, same output axis)?"""
    have, want = tuple(have), tuple(want)
    if have == want or math.prod(have) != math.prod(want):
        return False
    return _without_leading_ones(have)[0] == _without_leading_ones(want)[0]


def fit_to_model(state: dict, param_shapes: dict) -> dict:
    """{key: array} with legacy Caffe shapes reshaped to `param_shapes`
    ({key: shape}, as Model.param_shapes() returns); other keys untouched."""
    fitted = {}
    for key, value in state.items():
        want = param_shapes.get(key)
        if want is not None and reshapes_exactly(np.shape(value), want):
            value = np.reshape(value, want)
        fitted[key] = value
    return fitted
