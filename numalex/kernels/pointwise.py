"""Kernels that look at one pixel (ReLU) or one pixel's channels (LRN).

ReLU reads its input once and writes its output once: a plain copy with a
compare, which one core already does at memory speed, so it
runs on the calling thread: a parallel launch would add a barrier that
waits for the slowest thread, and right after a GEMM (OpenBLAS's threads
still spinning) or on a shared machine that wait cost more than it saved
(measured: 1.5 ms serial vs 1.6-1.8 ms parallel for 2.1 M floats after a
GEMM). LRN does 5 multiply-adds and a power per pixel: it runs in parallel.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange


def in_memory_order(*arrays):
    """The arrays as flat 1-D views, each in the order its elements lie in
    memory, if they all share one dense layout (same shape, same strides,
    no gaps: C order, or the channels-last memory behind an (N, C, H, W)
    view that the Winograd convolutions return); None otherwise.

    An elementwise kernel can then run front to back through memory and
    its output, allocated with np.empty_like (which keeps the layout),
    needs no copy back: a ReLU after a convolution would otherwise first
    copy a channels-last activation to NCHW."""
    first = arrays[0]
    if any(a.shape != first.shape or a.strides != first.strides or a.dtype != first.dtype
           for a in arrays):
        return None
    order = sorted(range(first.ndim), key=lambda axis: -first.strides[axis])
    if not first.transpose(order).flags.c_contiguous:
        return None
    return tuple(a.transpose(order).reshape(-1) for a in arrays)


@njit(cache=True)
def relu(x, y):
    """y = max(x, 0) elementwise; x and y are flat (size,) arrays.

    Written as a select (not ``max``), which LLVM turns into vector blends;
    NaN stays NaN, as in NumPy."""
    for i in range(x.size):
        v = x[i]
        y[i] = np.float32(0.0) if v < 0 else v


@njit(parallel=True, fastmath=True, cache=True)
def lrn(x, size, alpha, beta, k, y):
    """Local response normalisation across channels, Caffe's ACROSS_CHANNELS.

    x, y: (N, C, P) with P = H*W pixels.
    y[n, c, p] = x[n, c, p] / (k + alpha/size * sum_{c'} x[n, c', p]^2)^beta,
    c' from c - size//2 to c + (size-1)//2, clipped to the channels that
    exist. One (image, channel) plane per task; the channel window is summed
    plane by plane, so every inner loop runs over contiguous pixels.
    """
    n_img, channels, pixels = x.shape
    scale = np.float32(alpha / size)
    for plane in prange(n_img * channels):
        n, c = plane // channels, plane % channels
        sums = np.zeros(pixels, dtype=np.float32)
        for cc in range(max(0, c - size // 2), min(channels, c + (size - 1) // 2 + 1)):
            for p in range(pixels):
                sums[p] += x[n, cc, p] * x[n, cc, p]
        for p in range(pixels):
            y[n, c, p] = x[n, c, p] / (np.float32(k) + scale * sums[p]) ** np.float32(beta)
