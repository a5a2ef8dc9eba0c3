"""Backward passes of the pooling layers: the gradient goes back to the
input pixels each output was computed from.

Max pooling: an output is one input pixel (its window's maximum), so its
gradient goes to that pixel alone; where windows overlap, a pixel that is
the maximum of several windows collects the sum. Ties go to the first
maximum in row-major order, as in PyTorch. Average pooling: an output is
the mean of its bin, so each pixel of the bin gets dy / (bin size).

Both run one (image, channel) plane per parallel task: every write of a
plane comes from the same task, so overlapping windows add up without
atomics. Windows are clipped to the input exactly as in the forward
kernels (numalex/kernels/pooling.py), so padding never gets a gradient.
"""
from __future__ import annotations

from numba import njit, prange


@njit(parallel=True, cache=True)
def max_pool2d_backward(dy, x, kernel, stride, padding, dx):
    """dx[n, c] = dy[n, c, i, j] added at the first maximum of window (i, j).

    dy: (N, C, Ho, Wo), x: (N, C, H, W) the forward's input, dx: like x,
    zeros on entry (the gradients are added into it). The maximum is found
    again from x (nothing from the forward pass is kept): k*k comparisons per output, cheap beside the
    convolutions around it. A NaN counts as the maximum, as it does in the
    forward pass.
    """
    n_img, channels, h, w = x.shape
    ho, wo = dy.shape[2], dy.shape[3]
    for plane in prange(n_img * channels):
        n, c = plane // channels, plane % channels
        for i in range(ho):
            r0 = max(0, i * stride - padding)
            r1 = min(h, i * stride - padding + kernel)
            for j in range(wo):
                q0 = max(0, j * stride - padding)
                q1 = min(w, j * stride - padding + kernel)
                best, best_r, best_q = x[n, c, r0, q0], r0, q0
                for r in range(r0, r1):
                    for q in range(q0, q1):
                        v = x[n, c, r, q]
                        if v > best or (v != v and best == best):
                            best, best_r, best_q = v, r, q
                dx[n, c, best_r, best_q] += dy[n, c, i, j]


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
