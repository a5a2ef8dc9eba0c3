"""The NumPy reference backend: each op as its definition, vectorised. The oracle.

Every function takes and returns NCHW float32 arrays (``(N, F)`` for
``linear``). Read this file first; the Numba and CUDA backends compute the
same numbers faster, with the tricks (cache blocking, Winograd, fused
layers) that this file leaves out on purpose.

No Python loop runs over pixels. A convolution or a max pool looks at every
k x k window of its input; ``sliding_window_view`` gives all of them at
once as a *view* (no copy: the same memory seen through extra strides), and
the op is then one matrix product (conv2d) or a maximum over the window's
k*k offsets (max_pool2d), each for all windows at once.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..shapes import adaptive_bins
from . import checks
from .numpy_backward import (adaptive_avg_pool2d_backward, conv2d_backward,  # noqa: F401
                             dropout, dropout_backward, linear_backward, lrn_backward,
                             max_pool2d_backward, relu_backward)

name = "numpy"


def to_backend(x: np.ndarray) -> np.ndarray:
    """Host array -> this backend's array (a float32 C-contiguous copy if needed)."""
    return np.ascontiguousarray(x, dtype=np.float32)


def to_numpy(x: np.ndarray) -> np.ndarray:
    """This backend's array -> host NumPy array."""
    return np.asarray(x)


def prepare_params(params: dict) -> dict:
    """Weights as this backend keeps them (here: float32, contiguous)."""
    return {key: to_backend(value) for key, value in params.items()}


def synchronize() -> None:
    """Wait for queued work (nothing to wait for on the CPU)."""


def _windows(x, kh, kw, stride, dilation, out_hw):
    """All kh x kw windows of x, as a view.

    x: (N, C, H, W) -> (N, C, Ho, Wo, kh, kw): window (i, j) starts at row
    i*stride, column j*stride and takes every `dilation`-th pixel. out_hw =
    (Ho, Wo) comes from numalex.shapes; windows past it (ceil mode's extra
    padding can leave one) are cut off.
    """
    span_h, span_w = dilation * (kh - 1) + 1, dilation * (kw - 1) + 1
    win = sliding_window_view(x, (span_h, span_w), axis=(2, 3))
    win = win[:, :, ::stride, ::stride, ::dilation, ::dilation]
    return win[:, :, :out_hw[0], :out_hw[1]]


def conv2d(x, w, b, stride=1, padding=0, groups=1, dilation=1):
    """Cross-correlation, as PyTorch and Caffe define convolution.

    x: (N, C, H, W), w: (O, C/G, kh, kw), b: (O,) -> (N, O, Ho, Wo), G = groups
    y[n, o, i, j] = b[o] + sum_{c,u,v} w[o, c, u, v] * xp[n, g*C/G + c,
                                                          i*s + u*d, j*s + v*d]
    where xp is x zero-padded by `padding` and g = o // (O/G) is the group of
    o: group g reads input channels g*C/G ... (g+1)*C/G - 1 only.

    As one matrix product (im2col): the C/G*kh*kw values that window (i, j)
    of group g sees become one column; the weights of the group, viewed as
    an (O/G, C/G*kh*kw) matrix, times those columns give every output of
    the group at once, already in (O, Ho*Wo) order.
    """
    x, w, b = (checks.float32_array(a, "conv2d", what) for a, what in
               ((x, "input x"), (w, "weight"), (b, "bias")))
    # the formula's Ho, Wo; ShapeError for shapes that do not fit together
    n, out_ch, ho, wo = checks.conv2d_shape(x.shape, w.shape, b.shape, stride, padding,
                                            groups, dilation)
    kh, kw = w.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    win = _windows(xp, kh, kw, stride, dilation, (ho, wo))       # (N, C, Ho, Wo, kh, kw)
    # (N, C, kh, kw, Ho, Wo) -> columns (N, G, C/G*kh*kw, Ho*Wo): the one copy
    cols = win.transpose(0, 1, 4, 5, 2, 3).reshape(n, groups, w[0].size, ho * wo)
    weights = w.reshape(groups, out_ch // groups, w[0].size)    # (G, O/G, C/G*kh*kw)
    y = weights @ cols                                          # (N, G, O/G, Ho*Wo)
    return y.reshape(n, out_ch, ho, wo) + b[:, None, None]


def max_pool2d(x, kernel, stride, padding=0, ceil_mode=False):
    """Max over k x k windows. Padding is -inf, so it never wins; NaN wins
    (propagates), as in PyTorch.

    x: (N, C, H, W) -> (N, C, Ho, Wo). In ceil mode the last window may hang
    past the bottom/right edge; extra -inf rows and columns make room for it.
    """
    x = checks.float32_array(x, "max_pool2d", "input x")
    _, _, ho, wo = checks.max_pool2d_shape(x.shape, kernel, stride, padding, ceil_mode)
    h, w = x.shape[2:]
    extra_h = max(0, (ho - 1) * stride + kernel - (h + 2 * padding))
    extra_w = max(0, (wo - 1) * stride + kernel - (w + 2 * padding))
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding + extra_h), (padding, padding + extra_w)),
                constant_values=-np.inf)
    win = _windows(xp, kernel, kernel, stride, 1, (ho, wo))     # (N, C, Ho, Wo, k, k)
    # the max over the k*k offsets (u, v) of a window, each offset's values
    # for every window at once: (N, C, Ho, Wo) maxima, not k*k-long ones
    y = win[..., 0, 0]
    for u in range(kernel):
        for v in range(kernel):
            y = np.maximum(y, win[..., u, v])
    return y


def adaptive_avg_pool2d(x, out_hw):
    """Average over PyTorch's adaptive bins.

    x: (N, C, H, W) -> (N, C, oh, ow). Bin (i, j) spans rows
    [floor(i*H/oh), ceil((i+1)*H/oh)) and the columns likewise; bins differ
    in size, so this loops over them (36 for AlexNet's 6 x 6).
    """
    x = checks.float32_array(x, "adaptive_avg_pool2d", "input x")
    n, c, oh, ow = checks.adaptive_avg_pool2d_shape(x.shape, out_hw)
    rows, cols = adaptive_bins(x.shape[2], oh), adaptive_bins(x.shape[3], ow)
    y = np.empty((n, c, oh, ow), dtype=np.float32)
    for i, (top, bottom) in enumerate(rows):
        for j, (left, right) in enumerate(cols):
            y[:, :, i, j] = x[:, :, top:bottom, left:right].mean(axis=(2, 3))
    return y


def lrn(x, size, alpha, beta, k):
    """Local response normalisation across channels (Caffe / PyTorch).

    x: (N, C, H, W). y = x / (k + alpha/size * sum_{c'} x[c']^2)^beta, the sum
    over channels c - size//2 ... c + (size-1)//2 that exist.
    """
    x = checks.float32_array(x, "lrn", "input x")
    checks.lrn_shape(x.shape, size)
    sq = np.pad(np.square(x, dtype=np.float32),
                ((0, 0), (size // 2, (size - 1) // 2), (0, 0), (0, 0)))
    window_sum = sliding_window_view(sq, size, axis=1).sum(axis=-1)   # (N, C, H, W)
    return (x / (k + alpha / size * window_sum) ** beta).astype(np.float32)


def relu(x):
    """max(x, 0), elementwise."""
    x = checks.float32_array(x, "relu", "input x")
    return np.maximum(x, 0, dtype=np.float32)


def linear(x, w, b):
    """x: (N, in), w: (out, in), b: (out,) -> (N, out) = x w^T + b."""
    x, w, b = (checks.float32_array(a, "linear", what) for a, what in
               ((x, "input x"), (w, "weight"), (b, "bias")))
    checks.linear_shape(x.shape, w.shape, b.shape)
    return x @ w.T + b
