"""The NumPy reference backend against naive loop oracles.

The oracles below are the definitions written as plain loops over every
output element: slow, obvious, and independent of numalex's own code.
"""
import math

import numpy as np
import pytest

from numalex.backends import numpy_ref as ref


# ---- naive oracles ------------------------------------------------------------
def naive_conv2d(x, w, b, stride, padding, groups, dilation):
    n, c, h, wd = x.shape
    o, cg, k, _ = w.shape
    xp = np.zeros((n, c, h + 2 * padding, wd + 2 * padding), np.float64)
    xp[:, :, padding:padding + h, padding:padding + wd] = x
    span = dilation * (k - 1) + 1
    ho = (h + 2 * padding - span) // stride + 1
    wo = (wd + 2 * padding - span) // stride + 1
    y = np.zeros((n, o, ho, wo))
    og = o // groups
    for i in range(n):
        for oc in range(o):
            g = oc // og
            for r in range(ho):
                for q in range(wo):
                    acc = b[oc]
                    for ci in range(cg):
                        for u in range(k):
                            for v in range(k):
                                acc += w[oc, ci, u, v] * xp[i, g * cg + ci,
                                                            r * stride + u * dilation,
                                                            q * stride + v * dilation]
                    y[i, oc, r, q] = acc
    return y


def naive_max_pool2d(x, k, s, p, ceil_mode):
    n, c, h, w = x.shape

    def size(length):
        room = length + 2 * p - k
        out = (-(-room // s) if ceil_mode else room // s) + 1
        if ceil_mode and (out - 1) * s >= length + p:
            out -= 1
        return out

    y = np.full((n, c, size(h), size(w)), -np.inf)
    for r in range(size(h)):
        for q in range(size(w)):
            for u in range(k):
                for v in range(k):
                    row, col = r * s + u - p, q * s + v - p
                    if 0 <= row < h and 0 <= col < w:
                        y[:, :, r, q] = np.maximum(y[:, :, r, q], x[:, :, row, col])
    return y


def naive_adaptive_avg_pool2d(x, out_h, out_w):
    h, w = x.shape[2:]
    y = np.zeros(x.shape[:2] + (out_h, out_w))
    for r in range(out_h):
        r0, r1 = math.floor(r * h / out_h), math.ceil((r + 1) * h / out_h)
        for q in range(out_w):
            c0, c1 = math.floor(q * w / out_w), math.ceil((q + 1) * w / out_w)
            y[:, :, r, q] = x[:, :, r0:r1, c0:c1].mean(axis=(2, 3))
    return y


def naive_lrn(x, size, alpha, beta, k):
    c = x.shape[1]
    y = np.zeros(x.shape)
    for ch in range(c):
        lo, hi = max(0, ch - size // 2), min(c, ch + (size - 1) // 2 + 1)
        total = (x[:, lo:hi].astype(np.float64) ** 2).sum(axis=1)
        y[:, ch] = x[:, ch] / (k + alpha / size * total) ** beta
    return y


# ---- tests --------------------------------------------------------------------
rng = np.random.default_rng(1234)


def rand(*shape):
    return rng.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("n, c, h, w, o, k, stride, padding, groups, dilation", [
    (1, 3, 11, 11, 4, 11, 4, 2, 1, 1),     # conv1-like: floor drops a row
    (2, 4, 9, 7, 6, 3, 1, 1, 2, 1),        # groups=2, non-square
    (1, 2, 10, 10, 2, 3, 2, 0, 1, 2),      # dilation
    (2, 6, 8, 5, 3, 1, 1, 0, 3, 1),        # 1x1, three groups
    (1, 2, 5, 6, 2, 5, 3, 2, 2, 1),        # stride 3, padding 2
])
def test_conv2d_equals_the_loops(n, c, h, w, o, k, stride, padding, groups, dilation):
    x, wt, b = rand(n, c, h, w), rand(o, c // groups, k, k), rand(o)
    y = ref.conv2d(x, wt, b, stride, padding, groups, dilation)
    expected = naive_conv2d(x, wt, b, stride, padding, groups, dilation)
    assert y.dtype == np.float32 and y.shape == expected.shape
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("h, w, k, s, p, ceil_mode", [
    (55, 55, 3, 2, 0, False), (54, 54, 3, 2, 0, True), (7, 8, 3, 2, 1, True),
    (6, 5, 2, 2, 1, False), (9, 9, 3, 3, 1, True), (5, 5, 5, 1, 2, False),
])
def test_max_pool2d_equals_the_loops(h, w, k, s, p, ceil_mode):
    x = rand(2, 3, h, w)
    y = ref.max_pool2d(x, k, s, p, ceil_mode)
    expected = naive_max_pool2d(x, k, s, p, ceil_mode)
    assert y.shape == expected.shape
    np.testing.assert_array_equal(y, expected.astype(np.float32))


@pytest.mark.parametrize("h, w, out", [(6, 6, (6, 6)), (13, 13, (6, 6)), (5, 7, (6, 3)),
                                       (1, 1, (6, 6)), (10, 9, (4, 4))])
def test_adaptive_avg_pool2d_equals_the_loops(h, w, out):
    x = rand(2, 3, h, w)
    np.testing.assert_allclose(ref.adaptive_avg_pool2d(x, out),
                               naive_adaptive_avg_pool2d(x, *out), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("size, alpha, beta, k", [(5, 1e-4, 0.75, 1.0), (4, 0.1, 0.5, 2.0),
                                                  (1, 1.0, 1.0, 1.0), (7, 0.01, 0.75, 1.0)])
def test_lrn_equals_the_loops(size, alpha, beta, k):
    x = rand(2, 6, 4, 5) * 3
    np.testing.assert_allclose(ref.lrn(x, size, alpha, beta, k), naive_lrn(x, size, alpha, beta, k),
                               rtol=1e-5, atol=1e-6)


def test_relu_and_linear_follow_their_definitions():
    x, w, b = rand(3, 7), rand(5, 7), rand(5)
    expected = [[max(0.0, v) for v in row] for row in x.tolist()]
    np.testing.assert_array_equal(ref.relu(x), np.array(expected, np.float32))
    loops = [[b[o] + sum(x[n, i] * w[o, i] for i in range(7)) for o in range(5)]
             for n in range(3)]
    np.testing.assert_allclose(ref.linear(x, w, b), loops, rtol=1e-5, atol=1e-5)
