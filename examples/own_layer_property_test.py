"""Property-test the output size of a layer you wrote yourself, with numalex.testing.

Below is a small average-pooling layer, written the way many people first
write one, and its property test: for hundreds of random input sizes,
kernels, strides and paddings, its output must have
floor((n + 2p - k)/s) + 1 rows and columns. Then the same test on a twin
with a classic slip (padding counted on one side only), to show what
hypothesis reports when the formula is broken.

    python examples/own_layer_property_test.py       # needs: pip install numalex[test]

Under pytest, test_avg_pool2d_output_size is an ordinary hypothesis test.
"""
import numpy as np
from hypothesis import given, settings

from numalex.testing import assert_shape_formula, pool_cases


def avg_pool2d(x, kernel, stride, padding=0, ceil_mode=False):
    """Mean over k x k windows of the zero-padded input. x: (N, C, H, W)."""
    assert not ceil_mode, "this layer implements floor mode only"
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    ho = (h + 2 * padding - kernel) // stride + 1
    wo = (w + 2 * padding - kernel) // stride + 1
    y = np.empty((n, c, ho, wo), dtype=np.float32)
    for i in range(ho):
        for j in range(wo):
            window = xp[:, :, i * stride:i * stride + kernel, j * stride:j * stride + kernel]
            y[:, :, i, j] = window.mean(axis=(2, 3))
    return y


def avg_pool2d_one_sided(x, kernel, stride, padding=0, ceil_mode=False):
    """The same layer with a slip: the output size counts the padding once."""
    n, c, h, w = x.shape
    ho = (h + padding - kernel) // stride + 1
    wo = (w + padding - kernel) // stride + 1
    return np.zeros((n, c, max(ho, 0), max(wo, 0)), dtype=np.float32)


@settings(max_examples=300, deadline=None)
@given(pool_cases(ceil_mode=False))
def test_avg_pool2d_output_size(case):
    assert_shape_formula(avg_pool2d, case)


@settings(max_examples=300, deadline=None, database=None)
@given(pool_cases(ceil_mode=False))
def one_sided_output_size(case):           # not test_: this property is meant to fail
    assert_shape_formula(avg_pool2d_one_sided, case)


if __name__ == "__main__":
    test_avg_pool2d_output_size()
    print("avg_pool2d: output size is floor((n + 2p - k)/s) + 1 on 300 random cases")
    try:
        one_sided_output_size()
    except AssertionError as err:
        print("avg_pool2d_one_sided: hypothesis found the slip and shrank it to:")
        print("   ", str(err).replace("\n", "\n    "))
    else:
        raise SystemExit("the slip went unnoticed")
