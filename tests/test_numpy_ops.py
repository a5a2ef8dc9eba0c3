"""The NumPy reference backend against the naive loop oracles of
tests/loop_oracles.py: the definitions written as plain loops over every
output element, slow, obvious, and independent of numalex's own code.
"""
import numpy as np
import pytest

import loop_oracles as loops
from numalex.backends import numpy_ref as ref

rng = np.random.default_rng(1234)


def rand(*shape):
    return rng.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("n, c, h, w, o, k, stride, padding, groups, dilation", [
    (1, 3, 11, 11, 4, 11, 4, 2, 1, 1),     # conv1-like: floor drops a row
    (2, 4, 9, 7, 6, 3, 1, 1, 2, 1),        # groups=2, non-square
    (1, 2, 10, 10, 2, 3, 2, 0, 1, 2),      # dilation
    (2, 6, 8, 5, 3, 1, 1, 0, 3, 1),        # 1x1, three groups
    (1, 2, 5, 6, 2, 5, 3, 2, 2, 1),        # stride 3, padding 2
    (2, 3, 9, 8, 4, (3, 1), 1, 1, 1, 1),   # rectangular kernels: a column,
    (1, 4, 7, 10, 4, (1, 5), 2, 0, 2, 1),  # a row with groups and stride,
    (2, 2, 11, 9, 3, (2, 4), 1, 1, 1, 2),  # both even, dilated
])
def test_conv2d_equals_the_loops(n, c, h, w, o, k, stride, padding, groups, dilation):
    kh, kw = k if isinstance(k, tuple) else (k, k)
    x, wt, b = rand(n, c, h, w), rand(o, c // groups, kh, kw), rand(o)
    y = ref.conv2d(x, wt, b, stride, padding, groups, dilation)
    expected = loops.conv2d(x, wt, b, stride, padding, groups, dilation)
    assert y.dtype == np.float32 and y.shape == expected.shape
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kh, kw, stride, padding, dilation", [
    (11, 3, 4, 2, 1), (3, 11, 4, 2, 1), (1, 3, 1, 0, 1), (5, 2, 2, 1, 2)])
def test_rectangular_kernels_match_pytorch(kh, kw, stride, padding, dilation):
    torch = pytest.importorskip("torch", reason="PyTorch is the oracle: "
                                                "pip install 'numalex[oracle]'")
    x, wt, b = rand(2, 4, 23, 19), rand(6, 2, kh, kw), rand(6)
    expected = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(wt),
                                          torch.from_numpy(b), stride, padding, dilation, 2)
    y = ref.conv2d(x, wt, b, stride, padding, groups=2, dilation=dilation)
    np.testing.assert_allclose(y, expected.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("h, w, k, s, p, ceil_mode", [
    (55, 55, 3, 2, 0, False), (54, 54, 3, 2, 0, True), (7, 8, 3, 2, 1, True),
    (6, 5, 2, 2, 1, False), (9, 9, 3, 3, 1, True), (5, 5, 5, 1, 2, False),
])
def test_max_pool2d_equals_the_loops(h, w, k, s, p, ceil_mode):
    x = rand(2, 3, h, w)
    y = ref.max_pool2d(x, k, s, p, ceil_mode)
    expected = loops.max_pool2d(x, k, s, p, ceil_mode)
    assert y.shape == expected.shape
    np.testing.assert_array_equal(y, expected.astype(np.float32))


def test_max_pool2d_propagates_nan_as_the_loops_do():
    x = rand(2, 2, 7, 7)
    x[1, 0, 3, 3] = np.nan                   # padded (4, 4): in 2 x 2 of the 4 x 4 windows
    y = ref.max_pool2d(x, 3, 2, 1, True)
    assert np.isnan(y).sum() == 4
    np.testing.assert_array_equal(y, loops.max_pool2d(x, 3, 2, 1, True).astype(np.float32))


@pytest.mark.parametrize("h, w, out", [(6, 6, (6, 6)), (13, 13, (6, 6)), (5, 7, (6, 3)),
                                       (1, 1, (6, 6)), (10, 9, (4, 4))])
def test_adaptive_avg_pool2d_equals_the_loops(h, w, out):
    x = rand(2, 3, h, w)
    np.testing.assert_allclose(ref.adaptive_avg_pool2d(x, out),
                               loops.adaptive_avg_pool2d(x, *out), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("size, alpha, beta, k", [(5, 1e-4, 0.75, 1.0), (4, 0.1, 0.5, 2.0),
                                                  (1, 1.0, 1.0, 1.0), (7, 0.01, 0.75, 1.0)])
def test_lrn_equals_the_loops(size, alpha, beta, k):
    x = rand(2, 6, 4, 5) * 3
    np.testing.assert_allclose(ref.lrn(x, size, alpha, beta, k), loops.lrn(x, size, alpha, beta, k),
                               rtol=1e-5, atol=1e-6)


def test_relu_and_linear_follow_their_definitions():
    x, w, b = rand(3, 7), rand(5, 7), rand(5)
    expected = [[max(0.0, v) for v in row] for row in x.tolist()]
    np.testing.assert_array_equal(ref.relu(x), np.array(expected, np.float32))
    np.testing.assert_allclose(ref.linear(x, w, b), loops.linear(x, w, b), rtol=1e-5, atol=1e-5)
