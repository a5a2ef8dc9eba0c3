"""Pooling kernels: max pooling and adaptive average pooling.

Every window is clipped to the input instead of padding a copy of it.
max_pool_pixels_major pools a convolution's output straight from its GEMM
(channels side by side), for the numba backend's fused conv + ReLU + pool.
Output sizes come from numalex.shapes (the backend allocates ``y``).
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .simd import add8, load8, max8, relu8, store8


@njit(inline="always")
def _nan_max(a, b):
    """max(a, b) that returns NaN if either is NaN, as NumPy's maximum does."""
    return a if (a > b or a != a) else b


@njit(inline="always")
def window(i, stride, padding, kernel, size):
    """[start, end) of pooling window i along an axis of `size` pixels,
    clipped to the input (the padding never takes part)."""
    return max(0, i * stride - padding), min(size, i * stride - padding + kernel)


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
            r0, r1 = window(i, stride, padding, kernel, h)
            for q in range(w):
                down[q] = x[n, c, r0, q]
            for r in range(r0 + 1, r1):
                for q in range(w):
                    down[q] = _nan_max(x[n, c, r, q], down[q])
            for j in range(wo):
                q0, q1 = window(j, stride, padding, kernel, w)
                best = down[q0]
                for q in range(q0 + 1, q1):
                    best = _nan_max(down[q], best)
                y[n, c, i, j] = best


@njit(parallel=True, cache=True)
def max_pool_pixels_major(z, frame_rows, row_length, conv_hw, kernel, stride, padding, b,
                          relu, y):
    """Max pooling of a convolution's raw output, then its bias and ReLU.

    z: (n*F, O), pixel-major: the convolution's output (i, j) of image m,
    all O channels side by side, is row (m*frame_rows + i)*row_length + j
    (F = frame_rows*row_length: the frames of the shifted GEMMs in
    numalex.kernels.conv; positions past conv_hw = (Ho, Wo) are junk and
    never read). y: (n, Hp, Wp, O), channels-last like z, gets
        y[m, i, j, o] = relu(max over the window of z[., o] + b[o]),
    windows clipped to Ho x Wo as in max_pool2d (ceil mode included).

    The bias and ReLU come after the max: x -> x + b and ReLU never change
    which value of a window is largest, so this equals pooling the
    finished convolution, bit for bit, while adding the bias to 4x fewer
    values.

    Why it is fast: a window's pixels are rows of z holding all channels, so
    eight channels at a time take their max in one vector register
    (numalex/kernels/simd.py: written as a loop over y, LLVM kept the max
    in memory and ran at 2 G comparisons/s on two cores), where in NCHW
    every step of a stride-2 window is a scalar; y is channels-last too, so
    the result is stored the same way. And the full-size convolution output
    is never written: this reads the GEMM's result once and writes only the
    pooled map. One (image, pooled row) per task.
    """
    n_img, hp, wpo, out_ch = y.shape
    ho, wo = conv_hw
    z_flat, y_flat = np.ascontiguousarray(z).reshape(-1), y.reshape(-1)
    bias = np.ascontiguousarray(b)
    vectors = out_ch - out_ch % 8                       # channels taken 8 at a time
    for task in prange(n_img * hp):
        m, i = task // hp, task % hp
        r0, r1 = window(i, stride, padding, kernel, ho)
        for j in range(wpo):
            q0, q1 = window(j, stride, padding, kernel, wo)
            out = ((m * hp + i) * wpo + j) * out_ch
            first = ((m * frame_rows + r0) * row_length + q0) * out_ch
            for o in range(0, vectors, 8):
                best = load8(z_flat, first + o)
                for r in range(r0, r1):
                    for q in range(q0, q1):
                        pixel = ((m * frame_rows + r) * row_length + q) * out_ch
                        best = max8(load8(z_flat, pixel + o), best)
                v = add8(best, load8(bias, o))
                store8(y_flat, out + o, relu8(v) if relu else v)
            for o in range(vectors, out_ch):
                best = z_flat[first + o]
                for r in range(r0, r1):
                    for q in range(q0, q1):
                        pixel = ((m * frame_rows + r) * row_length + q) * out_ch
                        best = _nan_max(z_flat[pixel + o], best)
                v = best + bias[o]
                y_flat[out + o] = np.float32(0.0) if relu and v < 0 else v


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
