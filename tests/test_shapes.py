"""The output-size formula against a brute-force count of window positions,
over an exhaustive grid of small cases, and its explanation text."""
import itertools

import pytest

from loop_oracles import count_windows
from numalex import ShapeError, conv_output_size, size_arithmetic
from numalex.shapes import adaptive_bins, check_pool_padding


GRID = list(itertools.product(range(1, 16), range(1, 6), range(1, 5), range(0, 3),
                              range(1, 3), (False, True)))


@pytest.mark.parametrize("ceil_mode", [False, True])
def test_formula_equals_brute_force_on_a_grid(ceil_mode):
    checked = 0
    for n, k, s, p, d, c in GRID:
        if c != ceil_mode or (c and p > k // 2):
            continue
        if count_windows(n, k, s, p, d, c) == 0:
            with pytest.raises(ShapeError):
                conv_output_size(n, k, s, p, d, c)
            continue
        assert conv_output_size(n, k, s, p, d, c) == count_windows(n, k, s, p, d, c), \
            (n, k, s, p, d, c)
        checked += 1
    assert checked > 500


@pytest.mark.parametrize("args, text", [
    ((224, 11, 4, 2), "(224 + 2*2 - 11)/4 + 1 = 55.25 -> 55 (floor: 1 row unused)"),
    ((227, 11, 4, 0), "(227 - 11)/4 + 1 = 55"),
    ((224, 11, 4, 0), "(224 - 11)/4 + 1 = 54.25 -> 54 (floor: 1 row unused)"),
])
def test_the_seed_arithmetic_is_explained(args, text):
    assert size_arithmetic(*args).text == text


def test_ceil_mode_keeps_the_partial_window_that_caffe_keeps():
    a = size_arithmetic(54, 3, 2, ceil_mode=True)
    assert (a.out, conv_output_size(54, 3, 2)) == (27, 26)
    assert a.overhang_rows == 1
    assert "-> 27 (ceil" in a.text


def test_dilated_arithmetic_names_the_span():
    a = size_arithmetic(10, 3, 1, 0, dilation=2)
    assert a.out == 6 and a.span == 5
    assert a.text.startswith("(10 - 2*(3-1) - 1)/1 + 1 = 6")


def test_too_small_input_names_the_layer_and_the_arithmetic():
    with pytest.raises(ShapeError) as err:
        size_arithmetic(2, 3, 2, layer="features.12 (MaxPool2d)")
    message = str(err.value)
    assert message.startswith("features.12 (MaxPool2d)")
    assert "(2 - 3)/2 + 1" in message
    assert isinstance(err.value, ValueError)


@pytest.mark.parametrize("bad, error", [
    (dict(n=0), ValueError), (dict(stride=0), ValueError), (dict(kernel=0), ValueError),
    (dict(padding=-1), ValueError), (dict(dilation=0), ValueError),
    (dict(n=5.0), TypeError), (dict(stride=True), TypeError),
])
def test_impossible_hyper_parameters_are_refused(bad, error):
    args = dict(n=10, kernel=3, stride=1, padding=0, dilation=1) | bad
    with pytest.raises(error):
        conv_output_size(**args)


def test_pool_padding_above_half_the_kernel_is_refused():
    check_pool_padding(3, 1)
    with pytest.raises(ValueError, match="more than half the kernel"):
        check_pool_padding(3, 2)


@pytest.mark.parametrize("n, out", [(6, 6), (13, 6), (5, 6), (1, 6), (7, 3), (10, 4)])
def test_adaptive_bins_cover_every_row_like_pytorch(n, out):
    bins = adaptive_bins(n, out)
    assert len(bins) == out
    assert bins[0][0] == 0 and bins[-1][1] == n
    for i, (start, end) in enumerate(bins):        # PyTorch's definition, in floats
        assert start == int(i * n / out) and end == -int(-(i + 1) * n // out)
        assert end > start


def test_remembered_answers_keep_every_refusal():
    # conv_output_size remembers its answers; True must never be taken for a
    # remembered 1, a list must still be named, and a refusal comes every time
    assert conv_output_size(10, 1) == 10
    with pytest.raises(TypeError, match="kernel must be an integer, got True"):
        conv_output_size(10, True)
    with pytest.raises(TypeError, match=r"kernel must be an integer, got \[3\]"):
        conv_output_size(10, [3])
    for _ in range(2):
        with pytest.raises(ShapeError, match="too small"):
            conv_output_size(2, 5)
