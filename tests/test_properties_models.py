"""Whole models: for any input size, what runs is what a walk over the windows predicts.

For each variant (at width 1/32, so a forward pass costs milliseconds) and
each backend, an input size is drawn from a range that straddles the smallest
size the variant can take (on the CUDA simulator, only that size and the one
below it):
  * the model accepts the size exactly when every layer can take its input,
    folded here layer by layer with the loop oracles' walk over window
    positions (loop_oracles.count_windows), not with numalex's formula;
  * the shapes `trace` records equal that fold and `summary`'s table.
"""
import itertools

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import numalex
from loop_oracles import count_windows
from numalex import ShapeError, backends
from numalex.layers import AdaptiveAvgPool2d, Conv2d, Flatten, Linear, MaxPool2d

WIDTH = 1 / 32
BACKENDS = backends.available()


def walked_shapes(layers, size):
    """Per-sample output shape of every layer for a size x size input, by
    counting window positions; None if some layer cannot take what it is given."""
    shape, shapes = (3, size, size), []
    for _, spec in layers:
        if isinstance(spec, (Conv2d, MaxPool2d)):
            n = count_windows(shape[1], spec.kernel, spec.stride, spec.padding,
                              getattr(spec, "dilation", 1), getattr(spec, "ceil_mode", False))
            if n == 0:
                return None
            channels = spec.out_channels if isinstance(spec, Conv2d) else shape[0]
            shape = (channels, n, n)
        elif isinstance(spec, AdaptiveAvgPool2d):
            shape = (shape[0], spec.out, spec.out)
        elif isinstance(spec, Flatten):
            shape = (int(np.prod(shape)),)
        elif isinstance(spec, Linear):
            if shape != (spec.in_features,):
                return None
            shape = (spec.out_features,)
        shapes.append(shape)
    return shapes


def check_sizes(check, sizes=st.integers(1, 260), pins=()):
    """Run check(size) over drawn input sizes and the pinned ones."""
    def property_(size):
        check(size)

    test = given(size=sizes)(property_)
    for size, why in pins:
        test = example(size=size).via(why)(test)
    test()


NATIVE_PINS = [(224, "torchvision's input size"), (227, "the paper's (and Caffe's) input size")]


def check_model(model, name, size):
    """The model takes `size` iff the window walk allows it, and its trace has
    the walk's and the summary's shapes."""
    expected = walked_shapes(model.layers, size)
    x = np.random.default_rng(size).standard_normal((1, 3, size, size), dtype=np.float32)
    if expected is None:
        with pytest.raises(ShapeError):
            model.trace(x, backend=name)
        return
    records = model.trace(x, backend=name)
    assert [r.output_shape for r in records] == [(1,) + s for s in expected]
    table = {row.name: row.output_shape for row in numalex.summary(model, size).rows}
    assert {r.name: r.output_shape[1:] for r in records if r.name in table} == table


@pytest.mark.parametrize("variant", ["torchvision", "original"])
@pytest.mark.parametrize("name", BACKENDS)
def test_any_input_size_runs_as_the_window_walk_says(name, variant):
    model = numalex.alexnet(variant, num_classes=10, width=WIDTH)
    if name == "cuda":
        # The CUDA simulator runs a Python thread per output value (224 would
        # take minutes): only the boundary, the smallest size the walk allows
        # and the size below it.
        smallest = next(size for size in itertools.count(1) if walked_shapes(model.layers, size))
        for size in (smallest - 1, smallest):
            check_model(model, name, size)
        return
    check_sizes(lambda size: check_model(model, name, size), pins=NATIVE_PINS)


@pytest.mark.parametrize("name", [n for n in BACKENDS if n != "cuda"])
def test_a_bvlc_model_for_one_size_takes_the_sizes_that_flatten_alike(name):
    """Without an adaptive pool, fc6 fixes the flattened width: a bvlc model
    built for 227 takes exactly the sizes whose pool5 output is as wide."""
    model = numalex.alexnet("bvlc", num_classes=10, width=WIDTH)
    check_sizes(lambda size: check_model(model, name, size), st.integers(180, 250), NATIVE_PINS)


@given(size=st.integers(1, 260))
@example(size=224).via("Caffe's ceil pooling makes 224 work: 54 -> 27 -> 13 -> 6")
@example(size=227).via("the native size")
def test_a_bvlc_model_builds_for_a_size_exactly_when_its_windows_fit(size):
    layers = numalex.alexnet("bvlc", num_classes=10, width=WIDTH).layers
    features = list(itertools.takewhile(lambda item: not isinstance(item[1], Linear), layers))
    if walked_shapes(features, size) is None:
        with pytest.raises(ShapeError, match=rf"cannot be built for input {size}x{size}"):
            numalex.alexnet("bvlc", num_classes=10, width=WIDTH, input_size=size)
    else:
        model = numalex.alexnet("bvlc", num_classes=10, width=WIDTH, input_size=size)
        assert walked_shapes(model.layers, size)[-1] == (10,)
