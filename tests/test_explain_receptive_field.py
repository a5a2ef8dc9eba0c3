"""The summary's receptive-field and jump columns, checked two independent ways.

1. An interval oracle: map one output row back to the input rows it reads,
   layer by layer ([i*s - p, i*s - p + span - 1] per window; an adaptive bin's
   union), with no recurrence.
2. A perturbation experiment on the real NumPy kernels: with positive weights,
   zero biases and a zero image, light up one input row per batch item and see
   which output rows of every layer turn positive.
The oracle's row sets must equal what the kernels show; its unclipped intervals
(padding rows continue the grid) give the receptive field and the jump.
"""
import math

import numpy as np
import pytest

import numalex
from numalex import backends
from numalex.layers import AdaptiveAvgPool2d, Conv2d, Flatten, MaxPool2d


# ---- oracle 1: intervals ----------------------------------------------------------------
def pytorch_bins(n, out):
    """Adaptive pooling bins [floor(i*n/out), ceil((i+1)*n/out)), PyTorch's rule."""
    return [(i * n // out, -(-(i + 1) * n // out)) for i in range(out)]


def row_interval(spans, j):
    """Input interval of row j of a layer; rows in the padding (j < 0 or j >= n)
    continue the layer's evenly spaced grid, as the receptive field assumes."""
    if spans is None:                                    # the layer is the image itself
        return (j, j)
    if 0 <= j < len(spans):
        return spans[j]
    step = spans[1][0] - spans[0][0]
    edge = 0 if j < 0 else len(spans) - 1
    lo, hi = spans[edge]
    return (lo + (j - edge) * step, hi + (j - edge) * step)


def window_rows(layers, size):
    """Per layer, for every output row, the previous layer's rows its window covers
    (padding rows included, as negative or >= n indices)."""
    result, shape = {}, (3, size, size)
    for name, spec in layers:
        if isinstance(spec, Flatten):
            break
        out = spec.out_shape(shape, name)
        if isinstance(spec, (Conv2d, MaxPool2d)):
            d = getattr(spec, "dilation", 1)
            result[name] = [[i * spec.stride - spec.padding + t * d for t in range(spec.kernel)]
                            for i in range(out[1])]
        elif isinstance(spec, AdaptiveAvgPool2d):
            result[name] = [list(range(a, b)) for a, b in pytorch_bins(shape[1], spec.out)]
        else:
            result[name] = [[i] for i in range(out[1])]          # elementwise layers
        shape = out
    return result


def interval_rows(layers, size):
    """{layer name: [(lo, hi) input rows, unclipped, per output row]} along H."""
    result, spans = {}, None
    for name, windows in window_rows(layers, size).items():
        spans = [(row_interval(spans, w[0])[0], row_interval(spans, w[-1])[1]) for w in windows]
        result[name] = spans
    return result


def real_rows(layers, size):
    """{layer name: [set of image rows a row really depends on]}: padding reads nothing."""
    result, sets = {}, [{r} for r in range(size)]
    for name, windows in window_rows(layers, size).items():
        sets = [set().union(*(sets[j] for j in w if 0 <= j < len(sets))) for w in windows]
        result[name] = sets
    return result


# ---- oracle 2: the kernels ---------------------------------------------------------------
def measured_rows(model, size, width, chunk=48):
    """{layer name: [set of input rows reaching output row i]} from the real kernels."""
    be = backends.get("numpy")
    sd = {k: (np.abs(v) + 0.01 if k.endswith("weight") else np.zeros_like(v))
          for k, v in model.state_dict().items()}
    reach = {}
    for start in range(0, size, chunk):
        rows = np.arange(start, min(start + chunk, size))
        h = np.zeros((len(rows), 3, size, width), np.float32)   # (rows, 3, H, W)
        h[np.arange(len(rows)), :, rows, :] = 1.0                # item b lights row rows[b]
        for name, spec in model.layers:
            if isinstance(spec, Flatten):
                break
            h = spec.forward(be, h, {s: sd[f"{name}.{s}"] for s in spec.param_shapes()})
            lit = (h > 0).any(axis=(1, 3))                       # (rows, output rows)
            per_out = reach.setdefault(name, [set() for _ in range(h.shape[2])])
            for b, i in zip(*np.nonzero(lit)):
                per_out[i].add(int(rows[b]))
    return reach


CASES = [("torchvision", 224, 63), ("torchvision", 255, 63), ("original", 227, 67),
         ("bvlc", 227, 67), ("bvlc", 224, 67)]


@pytest.mark.parametrize("variant, size, width", CASES)
def test_interval_oracle_matches_the_kernels(variant, size, width):
    model = numalex.alexnet(variant, width=1 / 16, num_classes=5, input_size=size)
    expected = real_rows(model.layers, size)
    measured = measured_rows(model, size, width)
    assert measured == expected
    for name, spans in interval_rows(model.layers, size).items():   # the spans bound them
        assert all(rows <= set(range(lo, hi + 1)) for rows, (lo, hi) in
                   zip(expected[name], spans)), name


@pytest.mark.parametrize("variant, size, width", CASES)
def test_summary_receptive_field_and_jump(variant, size, width):
    model = numalex.alexnet(variant, width=1 / 16, num_classes=5, input_size=size)
    intervals = interval_rows(model.layers, size)
    rows = {r.name: r for r in numalex.summary(model).rows}
    for name, spans in intervals.items():
        rf = max(hi - lo + 1 for lo, hi in spans)
        assert rows[name].receptive_field == rf, name
        steps = {b[0] - a[0] for a, b in zip(spans, spans[1:])}
        if len(steps) == 1:                          # a uniform grid has one jump
            assert rows[name].jump == steps.pop(), name


def test_the_classic_alexnet_numbers():
    rows = numalex.summary(numalex.alexnet("original", width=1 / 16)).rows
    rf = {r.name: (r.receptive_field, r.jump) for r in rows}
    assert rf["conv1"] == (11, 4)
    assert rf["pool5"] == (195, 32)
    assert rf["pool5"][0] == 11 + 2 * 4 + 4 * 8 + 2 * 8 + 3 * 2 * 16 + 2 * 16
    assert math.prod([4, 2, 2, 2]) == rf["pool5"][1]
