"""The NumPy reference backend: direct, readable, vectorised. The oracle.

Every function takes and returns NCHW float32 arrays (``(N, F)`` for
``linear``). No Python loop runs over pixels: windows are strided *views*
of the input (``sliding_window_view``), and the arithmetic is one matrix
product or one reduction over those views. Read this file first; the
Numba and CUDA backends compute the same numbers faster.
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


def _windows(x, kh, kw, stride, dilation):
    """All kh x kw windows of x as a view.

    x: (N, C, H, W) -> (N, C, Ho, Wo, kh, kw), where window (i, j) starts at
    row i*stride, column j*stride and takes every `dilation`-th pixel.
    Ho = floor((H - span)/stride) + 1 falls out of the slicing itself.
    """
    span_h, span_w = dilation * (kh - 1) + 1, dilation * (kw - 1) + 1
    win = sliding_window_view(x, (span_h, span_w), axis=(2, 3))
    return win[:, :, ::stride, ::stride, ::dilation, ::dilation]


# The columns of a convolution are k*k times bigger than its input (225 MB
# for conv2 of AlexNet-227 at batch 32), so conv2d builds them for a few
# images at a time: about this many bytes, which stay in cache between the
# copy and the matrix product (conv2 at batch 32: 177 -> 135 ms).
COLUMNS_BYTES = 16 * 2**20


def conv2d(x, w, b, stride=1, padding=0, groups=1, dilation=1):
    """Cross-correlation, as PyTorch and Caffe define convolution.

    x: (N, C, H, W), w: (O, C/groups, kh, kw), b: (O,) -> (N, O, Ho, Wo)
    y[n, o, i, j] = b[o] + sum_{c,u,v} w[o, c, u, v] * xp[n, g*C/G + c,
                                                          i*s + u*d, j*s + v*d]
    where xp is x zero-padded by `padding` and g is the group of o.
    Computed a few images at a time (COLUMNS_BYTES), by _conv2d_im2col.
    """
    x, w, b = (checks.float32_array(a, "conv2d", what) for a, what in
               ((x, "input x"), (w, "weight"), (b, "bias")))
    # the formula's Ho, Wo; ShapeError for shapes that do not fit together
    n, out_ch, ho, wo = checks.conv2d_shape(x.shape, w.shape, np.shape(b), stride, padding,
                                            groups, dilation)
    images = max(1, COLUMNS_BYTES // (4 * w[0].size * groups * ho * wo))
    y = np.empty((n, out_ch, ho, wo), dtype=np.float32)
    for start in range(0, n, images):
        y[start:start + images] = _conv2d_im2col(x[start:start + images], w, b, stride,
                                                 padding, groups, dilation, ho, wo)
    return y


def _conv2d_im2col(x, w, b, stride, padding, groups, dilation, ho, wo):
    """conv2d of a few images as a matrix product (im2col): every output
    pixel gets a column holding the C/G*k*k input values its window sees,
    and one matrix product with the weights, viewed as (O/G, C/G*k*k),
    gives all outputs of a group at once, already in (O, Ho*Wo) order.
    Copying the columns reads whole runs of input rows, which is why
    (C, k, k) goes before (Ho, Wo)."""
    n, (out_ch, _, kh, kw) = x.shape[0], w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    win = _windows(xp, kh, kw, stride, dilation)[:, :, :ho, :wo]   # (N, C, Ho, Wo, kh, kw)
    # (N, C, kh, kw, Ho, Wo) -> columns (N, G, C/G*kh*kw, Ho*Wo): the one copy
    cols = win.transpose(0, 1, 4, 5, 2, 3).reshape(n, groups, -1, ho * wo)
    weights = w.reshape(groups, out_ch // groups, -1)       # (G, O/G, C/G*kh*kw)
    y = np.matmul(weights, cols)                            # (N, G, O/G, Ho*Wo)
    return y.reshape(n, out_ch, ho, wo) + b[:, None, None]


def max_pool2d(x, kernel, stride, padding=0, ceil_mode=False):
    """Max over k x k windows. Padding is -inf, so it never wins.

    x: (N, C, H, W) -> (N, C, Ho, Wo). Instead of building every window, use
    that a k x k max is a max over k rows, then over k columns. Row u of
    every window at once is the strided slice xp[:, :, u::s, :], so the
    first step is k elementwise maxima of (N, C, Ho, Wp) arrays; the second
    does the same along the columns of that, k maxima of output-sized
    arrays (2k passes, not k*k). In ceil mode the last window may hang past
    the bottom/right edge; extra -inf rows make room for it.
    """
    x = checks.float32_array(x, "max_pool2d", "input x")
    _, _, ho, wo = checks.max_pool2d_shape(x.shape, kernel, stride, padding, ceil_mode)
    h, w = x.shape[2:]
    extra_h = max(0, (ho - 1) * stride + kernel - (h + 2 * padding))
    extra_w = max(0, (wo - 1) * stride + kernel - (w + 2 * padding))
    xp = x if padding == extra_h == extra_w == 0 else np.pad(
        x, ((0, 0), (0, 0), (padding, padding + extra_h), (padding, padding + extra_w)),
        constant_values=-np.inf)
    rows = xp[:, :, 0:stride * ho:stride, :].copy()           # (N, C, Ho, Wp): max over rows
    for u in range(1, kernel):
        np.maximum(rows, xp[:, :, u:u + stride * ho:stride, :], out=rows)
    y = rows[:, :, :, 0:stride * wo:stride].copy()            # (N, C, Ho, Wo): then columns
    for v in range(1, kernel):
        np.maximum(y, rows[:, :, :, v:v + stride * wo:stride], out=y)
    return y


def adaptive_avg_pool2d(x, out_hw):
    """Average over PyTorch's adaptive bins, by an integral image.

    x: (N, C, H, W) -> (N, C, oh, ow). Bin i spans rows
    [floor(i*H/oh), ceil((i+1)*H/oh)). With S the 2-D cumulative sum (a zero
    row and column in front), a bin's sum is S[e,f] - S[s,f] - S[e,t] + S[s,t].
    """
    x = checks.float32_array(x, "adaptive_avg_pool2d", "input x")
    _, _, oh, ow = checks.adaptive_avg_pool2d_shape(x.shape, out_hw)
    h, w = x.shape[2:]
    if (oh, ow) == (h, w):                # every bin is one pixel (AlexNet-224's 6x6 -> 6x6)
        return x.astype(np.float32, copy=True)
    rows = np.array(adaptive_bins(h, oh))                   # (oh, 2): start, end
    cols = np.array(adaptive_bins(w, ow))                   # (ow, 2)
    s = np.zeros(x.shape[:2] + (h + 1, w + 1), dtype=np.float64)
    s[:, :, 1:, 1:] = x.cumsum(axis=2, dtype=np.float64).cumsum(axis=3)
    r0, r1 = rows[:, 0, None], rows[:, 1, None]             # (oh, 1)
    c0, c1 = cols[None, :, 0], cols[None, :, 1]             # (1, ow)
    total = s[:, :, r1, c1] - s[:, :, r0, c1] - s[:, :, r1, c0] + s[:, :, r0, c0]
    return (total / ((r1 - r0) * (c1 - c0))).astype(np.float32)


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
    """x: (N, in), w: (out, in), b: (out,) -> (N, out) = x w^T + b.

    Computed as (w x^T)^T: the same product, with the big weight matrix as
    the left operand, which BLAS runs 25-35% faster here (fc6 at batch 32:
    17 against 23 ms); adding the bias writes the result back in row order.
    """
    x, w, b = (checks.float32_array(a, "linear", what) for a, what in
               ((x, "input x"), (w, "weight"), (b, "bias")))
    checks.linear_shape(x.shape, w.shape, b.shape)
    return np.add((w @ x.T).T, b, order="C", dtype=np.float32)
