"""GPU kernels with one thread per output element: ReLU, max pooling,
adaptive average pooling and LRN.

Each output reads a small window of the input: one element (ReLU), a
k x k patch (max pool), an adaptive bin (average pool) or `size`
neighbouring channels (LRN). There is nothing to share between threads, so
there is no shared memory and no syncthreads(): the speed comes from
coalescing. Threads are numbered along the flattened NCHW output, so
neighbouring threads (a warp) write neighbouring addresses and read
neighbouring columns of the input.

Launch any of them with ``[blocks(total, threads), threads]``; the block
size `threads` is the caller's choice.
"""
from __future__ import annotations

import math

from numba import cuda, float32


def blocks(total: int, threads: int) -> int:
    """Blocks of `threads` threads needed to give each of `total` outputs a thread."""
    return math.ceil(total / threads)


@cuda.jit(device=True)
def nchw_index(idx, channels, height, width):
    """The (n, c, row, column) of element `idx` of a flattened NCHW array."""
    column = idx % width
    row = (idx // width) % height
    c = (idx // (width * height)) % channels
    n = idx // (width * height * channels)
    return n, c, row, column


@cuda.jit
def relu_kernel(x, y):
    """x, y: flat (size,). y = max(x, 0)."""
    idx = cuda.grid(1)
    if idx < y.size:
        y[idx] = max(x[idx], float32(0.0))


@cuda.jit(device=True)
def window_first_max(x, n, c, i, j, kernel, stride, padding):
    """(row, column) of the first maximum of max-pool window (i, j) of x[n, c]
    in row-major order; a NaN counts as the maximum (the first NaN wins), as
    in NumPy and PyTorch.

    The window starts at row i*stride - padding; the part of it outside the
    input (padding, or the overhang of a ceil-mode window) is skipped, which
    is the same as padding with -inf. The output size guarantees that every
    window keeps at least one input pixel.
    """
    _, _, height, width = x.shape
    h0 = max(i * stride - padding, 0)
    w0 = max(j * stride - padding, 0)
    best_h, best_w = h0, w0
    best = x[n, c, h0, w0]
    for hi in range(h0, min(i * stride - padding + kernel, height)):
        for wi in range(w0, min(j * stride - padding + kernel, width)):
            value = x[n, c, hi, wi]
            if value > best or (value != value and best == best):
                best, best_h, best_w = value, hi, wi
    return best_h, best_w


@cuda.jit
def max_pool_kernel(x, y, kernel, stride, padding):
    """x: (N, C, H, W) -> y: (N, C, Ho, Wo), Ho and Wo chosen by the caller:
    the maximum of each window (window_first_max), NaN if the window holds one.
    """
    idx = cuda.grid(1)
    _, channels, out_h, out_w = y.shape
    if idx < y.size:
        n, c, i, j = nchw_index(idx, channels, out_h, out_w)
        hi, wi = window_first_max(x, n, c, i, j, kernel, stride, padding)
        y[n, c, i, j] = x[n, c, hi, wi]


@cuda.jit
def adaptive_avg_kernel(x, row_bins, col_bins, y):
    """x: (N, C, H, W) -> y: (N, C, oh, ow), the mean over each bin.

    row_bins: (oh, 2) and col_bins: (ow, 2) hold the [start, end) rows and
    columns of each bin, computed on the host by shapes.adaptive_bins.
    """
    idx = cuda.grid(1)
    _, channels, out_h, out_w = y.shape
    if idx < y.size:
        n, c, i, j = nchw_index(idx, channels, out_h, out_w)
        total = float32(0.0)
        for hi in range(row_bins[i, 0], row_bins[i, 1]):
            for wi in range(col_bins[j, 0], col_bins[j, 1]):
                total += x[n, c, hi, wi]
        count = (row_bins[i, 1] - row_bins[i, 0]) * (col_bins[j, 1] - col_bins[j, 0])
        y[n, c, i, j] = total / float32(count)


@cuda.jit
def lrn_kernel(x, y, size, scale, beta, k):
    """x, y: (N, C, H, W). y = x / (k + scale * sum of x^2 over the channels
    c - size//2 ... c + (size-1)//2 that exist)^beta, with scale = alpha/size.

    Neighbouring threads handle neighbouring pixels of one channel, so each
    of the `size` channel reads is coalesced.
    """
    idx = cuda.grid(1)
    _, channels, height, width = x.shape
    if idx < y.size:
        n, c, hi, wi = nchw_index(idx, channels, height, width)
        total = float32(0.0)
        for cj in range(max(c - size // 2, 0), min(c + (size - 1) // 2 + 1, channels)):
            value = x[n, cj, hi, wi]
            total += value * value
        y[n, c, hi, wi] = x[n, c, hi, wi] / math.pow(k + scale * total, beta)
