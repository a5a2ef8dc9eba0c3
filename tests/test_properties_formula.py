"""The output-size formula against a brute-force count of window positions.

The oracle (tests/loop_oracles.py) walks the padded input and counts the
rows a window may start at; it never divides. numalex's formula must agree with it
for any n, kernel, stride, padding and dilation, in floor and ceil mode, and
must refuse (with its arithmetic in the message) exactly when no window fits.
The strategies of numalex.testing are checked against the same oracle.
"""

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from loop_oracles import count_windows
from numalex import ShapeError, conv_output_size
from numalex.testing import (PoolCase, assert_shape_formula, conv_cases, invalid_conv_cases,
                             invalid_pool_cases, pool_cases)
from without_module import import_error_without


def test_oracle_on_hand_counted_cases():
    # 7 rows, window 3, stride 2: windows at 0, 2, 4 -> 3.
    assert count_windows(7, 3, 2) == 3
    # 8 rows: floor keeps 0, 2, 4; ceil adds the partial window at 6 -> 4.
    assert count_windows(8, 3, 2) == 3
    assert count_windows(8, 3, 2, ceil_mode=True) == 4
    # 2 rows, kernel 3, padding 1: padded 4 rows, windows at 0, 1 -> 2.
    assert count_windows(2, 3, 1, padding=1) == 2
    # dilation 2 makes kernel 3 span 5 rows: 5 rows hold one window.
    assert count_windows(5, 3, 1, dilation=2) == 1
    assert count_windows(4, 3, 1, dilation=2) == 0


axes = dict(n=st.integers(1, 80), kernel=st.integers(1, 12), stride=st.integers(1, 6),
            padding=st.integers(0, 6), dilation=st.integers(1, 4))


@given(**axes)
@example(n=224, kernel=11, stride=4, padding=2, dilation=1).via(
    "torchvision conv1: (224 + 2*2 - 11)/4 + 1 = 55.25 -> 55")
@example(n=227, kernel=11, stride=4, padding=0, dilation=1).via(
    "the paper's conv1 at 227: (227 - 11)/4 + 1 = 55 exactly")
@example(n=224, kernel=11, stride=4, padding=0, dilation=1).via(
    "the paper's conv1 at 224: (224 - 11)/4 + 1 = 54.25 -> 54")
def test_floor_formula_counts_window_positions(n, kernel, stride, padding, dilation):
    windows = count_windows(n, kernel, stride, padding, dilation)
    if windows == 0:
        with pytest.raises(ShapeError, match=rf"input size {n} is too small"):
            conv_output_size(n, kernel, stride, padding, dilation)
    else:
        assert conv_output_size(n, kernel, stride, padding, dilation) == windows


@st.composite
def pool_axes(draw):
    """One pooling axis: padding at most half the kernel, as pooling requires."""
    kernel = draw(st.integers(1, 12))
    return dict(n=draw(st.integers(1, 80)), kernel=kernel, stride=draw(st.integers(1, 6)),
                padding=draw(st.integers(0, kernel // 2)))


@given(pool_axes())
@example(dict(n=54, kernel=3, stride=2, padding=0)).via(
    "Caffe's pool1 at 224: ceil((54 - 3)/2) + 1 = 27, where floor gives 26")
@example(dict(n=2, kernel=3, stride=2, padding=0)).via(
    "a partial window longer than the input: PyTorch and Caffe give 1")
def test_ceil_formula_counts_window_positions(axis):
    windows = count_windows(**axis, ceil_mode=True)
    if windows == 0:
        with pytest.raises(ShapeError, match=rf"input size {axis['n']} is too small"):
            conv_output_size(**axis, ceil_mode=True)
    else:
        assert conv_output_size(**axis, ceil_mode=True) == windows


def test_pinned_values_are_the_seeds_numbers():
    """The pins above, stated as the numbers the seed documents print."""
    assert count_windows(224, 11, 4, 2) == 55
    assert count_windows(227, 11, 4) == 55
    assert count_windows(224, 11, 4) == 54
    assert count_windows(54, 3, 2) == 26
    assert count_windows(54, 3, 2, ceil_mode=True) == 27


@st.composite
def refused_axes(draw):
    """An axis whose padded input is shorter than one window."""
    kernel, dilation = draw(st.integers(2, 12)), draw(st.integers(1, 4))
    span = dilation * (kernel - 1) + 1
    padding = draw(st.integers(0, (span - 2) // 2))
    return dict(n=draw(st.integers(1, span - 2 * padding - 1)), kernel=kernel,
                stride=draw(st.integers(1, 6)), padding=padding, dilation=dilation)


@given(refused_axes())
def test_too_small_message_shows_the_arithmetic(axis):
    n, kernel, stride, padding, dilation = axis.values()
    span = dilation * (kernel - 1) + 1
    assert count_windows(**axis) == 0
    with pytest.raises(ShapeError) as err:
        conv_output_size(**axis)
    text, pad = str(err.value), f" + 2*{padding}" if padding else ""
    assert f"input size {n} is too small" in text
    assert f"shorter than one window ({span}" in text
    assert f"({n}{pad} - {span})/{stride} + 1 = " in text and text.endswith("< 1")


@pytest.mark.parametrize("bad, name", [(dict(stride=0), "stride"), (dict(padding=-1), "padding"),
                                       (dict(dilation=0), "dilation"), (dict(kernel=0), "kernel")])
def test_impossible_hyper_parameters_are_named(bad, name):
    args = dict(n=10, kernel=3, stride=1, padding=0, dilation=1) | bad
    with pytest.raises(ValueError, match=rf"{name} must be >= \d+, got {bad[name]}"):
        conv_output_size(**args)


# ---- numalex.testing's strategies build what they promise ---------------------

def test_conv_cases_draw_rectangular_kernels():
    kernels = []
    given(conv_cases())(lambda case: kernels.append(case.kernel_hw))()
    assert any(kh != kw for kh, kw in kernels)


@given(conv_cases())
def test_conv_cases_are_valid(case):
    for n, k in zip((case.height, case.width), case.kernel_hw):
        assert count_windows(n, k, case.stride, case.padding, case.dilation) >= 1
    assert case.in_channels % case.groups == 0 and case.out_channels % case.groups == 0


@given(pool_cases())
def test_pool_cases_are_valid(case):
    assert case.padding <= case.kernel // 2
    for n in (case.height, case.width):
        assert count_windows(n, case.kernel, case.stride, case.padding,
                             ceil_mode=case.ceil_mode) >= 1


@given(invalid_conv_cases())
def test_invalid_conv_cases_are_invalid(case):
    too_small = [count_windows(n, k, max(case.stride, 1), case.padding, case.dilation) == 0
                 for n, k in zip((case.height, case.width), case.kernel_hw)]
    assert case.stride == 0 or any(too_small)


@given(invalid_pool_cases())
def test_invalid_pool_cases_are_invalid(case):
    too_small = [count_windows(n, case.kernel, max(case.stride, 1), case.padding) == 0
                 for n in (case.height, case.width)]
    assert case.stride == 0 or case.padding > case.kernel // 2 or any(too_small)


def test_assert_shape_formula_shows_the_arithmetic_of_an_off_by_one():
    def floor_mode_pool(x, kernel, stride, padding, ceil_mode):   # ignores ceil_mode
        return np.zeros((1, 1, 26, 26), dtype=np.float32)

    with pytest.raises(AssertionError, match=r"returned shape \(1, 1, 26, 26\), the formula "
                                             r"says \(1, 1, 27, 27\)") as err:
        assert_shape_formula(floor_mode_pool, PoolCase(1, 1, 54, 54, 3, 2, ceil_mode=True))
    assert "H: (54 - 3)/2 + 1 = 26.5 -> 27 (ceil" in str(err.value)


def test_assert_shape_formula_returns_what_a_right_layer_returns():
    case = PoolCase(2, 3, 5, 7, kernel=1, stride=1)                # the identity pool
    y = assert_shape_formula(lambda x, **hyper: x * 2, case)
    np.testing.assert_array_equal(y, case.arrays()[0] * 2)


def test_numalex_testing_asks_for_the_test_extra_without_hypothesis():
    """`import numalex` never needs hypothesis; numalex.testing says what to install."""
    assert import_error_without("hypothesis", "import numalex") == ""
    assert "pip install numalex[test]" in import_error_without("hypothesis",
                                                               "import numalex.testing")
