"""Backward passes of the pooling layers: the gradient goes back to the
input pixels each output was computed from.

Max pooling: an output is one input pixel (its window's maximum), so its
gradient goes to that pixel alone; where windows overlap, a pixel that is
the maximum of several windows collects the sum. Ties go to the first
maximum in row-major order, as in PyTorch. Average pooling: an output is
the mean of its bin, so each pixel of the bin gets dy / (bin size).

Every task writes its own part of dx (an (image, channel) plane, or for
channels-last memory an image's block of channels), so overlapping
windows add up without atomics. Windows are clipped to the input exactly as in the forward
kernels (numalex/kernels/pooling.py), so padding never gets a gradient.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .pooling import window


@njit(parallel=True, cache=True)
def max_pool2d_backward(dy, x, kernel, stride, padding, dx):
    """dx[n, c] = dy[n, c, i, j] added at the first maximum of window (i, j).

    dy: (N, C, Ho, Wo), x: (N, C, H, W) the forward's input, dx: like x,
    zeros on entry (the gradients are added into it). The maximum is found
    again from x (nothing from the forward pass is kept): k*k comparisons
    per output, cheap beside the convolutions around it. A NaN counts as
    the maximum, as it does in the forward pass.
    """
    n_img, channels, h, w = x.shape
    ho, wo = dy.shape[2], dy.shape[3]
    for plane in prange(n_img * channels):
        n, c = plane // channels, plane % channels
        for i in range(ho):
            r0, r1 = window(i, stride, padding, kernel, h)
            for j in range(wo):
                q0, q1 = window(j, stride, padding, kernel, w)
                best, best_r, best_q = x[n, c, r0, q0], r0, q0
                for r in range(r0, r1):
                    for q in range(q0, q1):
                        v = x[n, c, r, q]
                        if v > best or (v != v and best == best):
                            best, best_r, best_q = v, r, q
                dx[n, c, best_r, best_q] += dy[n, c, i, j]


# Channels a task of max_pool2d_backward_channels_last takes: enough for
# the innermost loops to run on vectors, few enough for two threads to
# share a single image's work.
CHANNEL_BLOCK = 64


@njit(parallel=True, cache=True)
def max_pool2d_backward_channels_last(dy, x, kernel, stride, padding, dx):
    """max_pool2d_backward for channels-last memory: the same routing of
    every output's gradient to its window's first maximum (row-major order,
    a NaN wins), with the channels in the innermost loops.

    dy: (N, Ho, Wo, C), any strides; x: (N, H, W, C), and dx: like x,
    C-contiguous. dx needs no zeros on entry: each task zeroes its own part.
    One task per (image, block of CHANNEL_BLOCK channels). Per window, the
    running maximum and where it lies are kept for the whole block of
    channels, so every read of x is a contiguous run of channels; the
    plane-by-plane kernel above would read this memory one float every C
    floats. AlexNet-224's three pools at batch 32, 2-core AMD EPYC: 45 ms,
    against 148 ms for the plane kernel on the same memory and 80 ms for it
    on NCHW copies (the copies not counted).
    """
    n_img, h, w, channels = x.shape
    ho, wo = dy.shape[1], dy.shape[2]
    blocks = -(-channels // CHANNEL_BLOCK)
    for task in prange(n_img * blocks):
        n, c0 = task // blocks, (task % blocks) * CHANNEL_BLOCK
        c1 = min(channels, c0 + CHANNEL_BLOCK)
        best = np.empty(c1 - c0, dtype=x.dtype)
        at = np.empty(c1 - c0, dtype=np.int64)          # r * w + q of the maximum
        for r in range(h):
            for q in range(w):
                for c in range(c0, c1):
                    dx[n, r, q, c] = 0.0
        for i in range(ho):
            r0, r1 = window(i, stride, padding, kernel, h)
            for j in range(wo):
                q0, q1 = window(j, stride, padding, kernel, w)
                for c in range(c0, c1):
                    best[c - c0], at[c - c0] = x[n, r0, q0, c], r0 * w + q0
                for r in range(r0, r1):
                    for q in range(q0, q1):
                        for c in range(c0, c1):
                            v, top = x[n, r, q, c], best[c - c0]
                            if v > top or (v != v and top == top):
                                best[c - c0], at[c - c0] = v, r * w + q
                for c in range(c0, c1):
                    where = at[c - c0]
                    dx[n, where // w, where % w, c] += dy[n, i, j, c]


@njit(parallel=True, cache=True)
def adaptive_avg_pool2d_backward(dy, row_bins, col_bins, dx):
    """dx[n, c, r, q] = sum over the bins (i, j) holding (r, q) of
    dy[n, c, i, j] / (bin i's rows * bin j's columns).

    dy: (N, C, oh, ow); row_bins: (oh, 2) and col_bins: (ow, 2) the
    [start, end) of every bin (numalex.shapes.adaptive_bins; bins may
    overlap); dx: (N, C, H, W), zeros on entry.
    """
    n_img, channels, h, w = dx.shape
    for plane in prange(n_img * channels):
        n, c = plane // channels, plane % channels
        for i in range(row_bins.shape[0]):
            r0, r1 = row_bins[i, 0], row_bins[i, 1]
            for j in range(col_bins.shape[0]):
                q0, q1 = col_bins[j, 0], col_bins[j, 1]
                share = dy[n, c, i, j] / ((r1 - r0) * (q1 - q0))
                for r in range(r0, r1):
                    for q in range(q0, q1):
                        dx[n, c, r, q] += share
