"""Pooling kernels: max pooling and adaptive average pooling.

Both run one (image, channel) plane per parallel task and clip every window
to the input instead of padding a copy of it.
Output sizes come from numalex.shapes (the backend allocates ``y``).
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(inline="always")
def _nan_max(a, b):
    """max(a, b) that returns NaN if either is NaN, as NumPy's maximum does."""
    return a if (a > b or a != a) else b


@njit(parallel=True, cache=True)
def max_pool2d(x, kernel, stride, padding, y):
    """y[n, c, i, j] = max of x[n, c] over rows i*s - p ... i*s - p + k - 1
    and columns j*s - p ... j*s - p + k - 1, clipped to the input.

    x: (N, C, H, W), y: (N, C, Ho, Wo). Clipping is the same as padding with
    -inf, and it also covers ceil mode: a last window that hangs past the
    bottom or right edge just has fewer rows. Every window keeps at least
    one input pixel because the formula makes it start inside the input or
    the left padding and padding <= kernel/2.

    Why it is fast: a k x k max is a max over k rows, then over k columns
    (2k comparisons per output instead of k^2). The row pass runs along
    whole contiguous input rows, which vectorises; the column pass reads a
    single buffered row. One (n, c) plane per parallel task.
    """
    n_img, channels, h, w = x.shape
    ho, wo = y.shape[2], y.shape[3]
    for plane in prange(n_img * channels):
        n, c = plane // channels, plane % channels
        down = np.empty(w, dtype=np.float32)         # max over one window's rows
        for i in range(ho):
            r0 = max(0, i * stride - padding)
            r1 = min(h, i * stride - padding + kernel)
            for q in range(w):
                down[q] = x[n, c, r0, q]
            for r in range(r0 + 1, r1):
                for q in range(w):
                    down[q] = _nan_max(x[n, c, r, q], down[q])
            for j in range(wo):
                q0 = max(0, j * stride - padding)
                q1 = min(w, j * stride - padding + kernel)
                best = down[q0]
                for q in range(q0 + 1, q1):
                    best = _nan_max(down[q], best)
                y[n, c, i, j] = best


@njit(parallel=True, cache=True)
def adaptive_avg_pool2d(x, row_bins, col_bins, y):
    """y[n, c, i, j] = mean of x[n, c, rows of bin i, columns of bin j].

    x: (N, C, H, W); row_bins: (oh, 2) and col_bins: (ow, 2) hold [start, end)
    of every bin (numalex.shapes.adaptive_bins); y: (N, C, oh, ow). Sums are
    kept in float64, as the reference's integral image does.
    """
    n_img, channels = x.shape[0], x.shape[1]
    for plane in prange(n_img * channels):
        n, c = plane // channels, plane % channels
        src = x[n, c]
        for i in range(row_bins.shape[0]):
            r0, r1 = row_bins[i, 0], row_bins[i, 1]
            for j in range(col_bins.shape[0]):
                q0, q1 = col_bins[j, 0], col_bins[j, 1]
                total = 0.0
                for r in range(r0, r1):
                    for q in range(q0, q1):
                        total += src[r, q]
                y[n, c, i, j] = total / ((r1 - r0) * (q1 - q0))
