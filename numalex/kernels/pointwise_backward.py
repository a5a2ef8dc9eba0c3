"""Backward passes of the pixel-wise layers: ReLU, LRN and dropout.

ReLU and dropout multiply the gradient by a 0/1 (or 0/scale) mask: one
pass over memory, on the calling thread (see numalex/kernels/pointwise.py
for why a parallel launch does not pay for memory-bound passes).

LRN mixes neighbouring channels. With S_c the sum of x^2 over the window
of channel c (channels c - size//2 ... c + (size-1)//2) and
D_c = k + alpha/size * S_c, the forward pass is y_c = x_c * D_c^-beta, and

    dx_j = dy_j * D_j^-beta
           - 2 * alpha * beta / size * x_j * sum_{c: j in window(c)} dy_c * y_c / D_c

(the second term: x_j^2 sits in D_c of every channel c whose window
holds j, i.e. c from j - (size-1)//2 to j + size//2). Two parallel passes:
the first computes D^-beta and t = dy * y / D for every channel, the second
sums t over each channel's mirrored window.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True)
def relu_backward(dy, x, dx):
    """dx = dy where x > 0, else 0 (the gradient at 0 is 0, as in PyTorch).
    dy, x, dx: flat (size,) arrays."""
    for i in range(x.size):
        dx[i] = dy[i] if x[i] > 0 else np.float32(0.0)


@njit(cache=True)
def scale_by_mask(a, mask, scale, out):
    """out = a * scale where mask, else 0: dropout's forward pass (a = x)
    and its backward pass (a = dy) alike. a, mask (bool), out: flat (size,)."""
    for i in range(a.size):
        out[i] = a[i] * scale if mask[i] else np.float32(0.0)


@njit(inline="always")
def _channel_window_sum(a, n, first, last, squares):
    """(P,) sums of a[n, c] (or of a[n, c]^2 if `squares`) over the channels
    c = first ... last that exist. a: (N, C, P)."""
    sums = np.zeros(a.shape[2], dtype=np.float32)
    for c in range(max(0, first), min(a.shape[1], last + 1)):
        for p in range(a.shape[2]):
            sums[p] += a[n, c, p] * a[n, c, p] if squares else a[n, c, p]
    return sums


@njit(parallel=True, fastmath=True, cache=True)
def _lrn_denominators(dy, x, size, scale, beta, k, inv_pow, t):
    """inv_pow = D^-beta and t = dy * y / D = dy * x * D^-beta / D.
    All (N, C, P); one (image, channel) plane per task."""
    n_img, channels, pixels = x.shape
    for plane in prange(n_img * channels):
        n, c = plane // channels, plane % channels
        sums = _channel_window_sum(x, n, c - size // 2, c + (size - 1) // 2, True)
        for p in range(pixels):
            d = np.float32(k) + scale * sums[p]
            power = d ** np.float32(-beta)
            inv_pow[n, c, p] = power
            t[n, c, p] = dy[n, c, p] * x[n, c, p] * power / d


@njit(parallel=True, fastmath=True, cache=True)
def _lrn_gradient(dy, x, size, coefficient, inv_pow, t, dx):
    """dx = dy * D^-beta - coefficient * x * (t summed over the channels
    whose window holds this one). All (N, C, P); one plane per task."""
    n_img, channels, pixels = x.shape
    for plane in prange(n_img * channels):
        n, j = plane // channels, plane % channels
        sums = _channel_window_sum(t, n, j - (size - 1) // 2, j + size // 2, False)
        for p in range(pixels):
            dx[n, j, p] = dy[n, j, p] * inv_pow[n, j, p] - coefficient * x[n, j, p] * sums[p]


def lrn_backward(dy, x, size, alpha, beta, k, dx):
    """dx of y = lrn(x, size, alpha, beta, k). dy, x, dx: (N, C, P), P = H*W."""
    inv_pow, t = np.empty_like(x), np.empty_like(x)
    _lrn_denominators(dy, x, size, np.float32(alpha / size), float(beta), float(k), inv_pow, t)
    _lrn_gradient(dy, x, size, np.float32(2.0 * alpha * beta / size), inv_pow, t, dx)
