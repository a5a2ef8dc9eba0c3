"""The transposed size formula against a brute-force walk of the windows.

The oracle slides a window of span d(k-1)+1 over a padded row in steps of s
and marks the rows it touches; it knows nothing of numalex's formulas.
"""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from numalex.shapes import ShapeError, input_sizes, transposed_arithmetic, transposed_size


def walk_windows(n, kernel, stride, padding, dilation):
    """(number of windows, padded rows at the end no window touches), by walking them."""
    padded = n + 2 * padding
    span = dilation * (kernel - 1) + 1
    touched, start, windows = set(), 0, 0
    while start + span <= padded:
        touched.update(range(start, start + span))
        windows, start = windows + 1, start + stride
    last = max(touched) if touched else -1
    return windows, padded - 1 - last


hyper = st.tuples(st.integers(1, 12), st.integers(1, 6), st.integers(0, 4), st.integers(1, 3))


@given(st.integers(1, 20), hyper)
def test_input_sizes_are_exactly_the_sizes_that_give_the_output(out, params):
    kernel, stride, padding, dilation = params
    by_walking = {}
    for n in range(1, (out + 2) * stride + dilation * kernel + 1):
        windows, dropped = walk_windows(n, kernel, stride, padding, dilation)
        if windows == out:
            by_walking[n] = dropped
    found = input_sizes(out, kernel, stride, padding, dilation)
    assert {a.n: a.dropped for a in found} == by_walking
    assert len(found) <= stride


def test_the_seeds_conv1_sizes():
    """55 comes from 223...226 with p=2 and from 227...230 without padding."""
    assert [a.n for a in input_sizes(55, 11, 4, 2)] == [223, 224, 225, 226]
    assert [a.n for a in input_sizes(55, 11, 4, 0)] == [227, 228, 229, 230]
    assert transposed_size(54, 11, 4, dropped=1) == 224        # the paper's 224
    assert transposed_arithmetic(55, 11, 4, 2, dropped=1).text == \
        "(55 - 1)*4 - 2*2 + 11 + 1 = 224 (1 row dropped by the stride)"


def test_impossible_arguments_are_refused():
    with pytest.raises(ValueError, match="dropped rows must be less than the stride"):
        transposed_size(55, 11, 4, dropped=4)
    with pytest.raises(ShapeError, match="no input gives output size 1"):
        transposed_size(1, 1, 1, padding=1)
