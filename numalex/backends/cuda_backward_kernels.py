"""GPU kernels of the backward passes, one thread per gradient element.

Each thread *gathers* the contributions to its own element instead of
scattering into others' (dx of a convolution: every (output, tap) pair
whose input pixel is this one), so no two threads write the same address:
no atomics, no races, and the same sum order on every run. Threads are
numbered along the flattened gradient, so a warp writes neighbouring
addresses (coalesced), as in cuda_windows.py. There is no shared memory and
no syncthreads() here; bounds are checked with ``if idx < size`` around the
whole body.

    conv_input_grad_kernel   dx[n, c, r, q] = sum over the outputs (i, j) and
                             taps (u, v) with r = i*s + u*d - p, q = j*s + v*d - p
                             of dy[n, o, i, j] * w[o, c', u, v], o in c's group
    conv_weight_grad_kernel  dw[o, c', u, v] = sum over n, i, j of
                             dy[n, o, i, j] * x[n, c, i*s + u*d - p, j*s + v*d - p]
    bias_grad_kernel         db[o] = sum of dy[:, o]
    max_pool_backward_kernel dx[r, q] = sum of dy over the windows whose first
                             maximum (window_first_max, shared with the forward
                             kernel) is (r, q)
    adaptive_avg_backward_kernel, lrn_backward_kernel, relu_backward_kernel,
    scale_by_mask_kernel (dropout, both directions)
"""
from __future__ import annotations

import math

from numba import cuda, float32

from .cuda_windows import nchw_index, window_first_max


@cuda.jit(device=True)
def _tap_index(pixel, tap, stride, padding, dilation, out_size):
    """The output i with pixel = i*stride + tap*dilation - padding, or -1 if none."""
    offset = pixel + padding - tap * dilation
    if offset < 0 or offset % stride != 0 or offset // stride >= out_size:
        return -1
    return offset // stride


@cuda.jit
def conv_input_grad_kernel(dy, w, dx, stride, padding, dilation):
    """dy: (N, O, Ho, Wo), w: (O, Cg, kh, kw) -> dx: (N, C, H, W); the group
    count is C / Cg. One thread per input pixel."""
    idx = cuda.grid(1)
    _, channels, height, width = dx.shape
    out_ch, c_per_group, kh, kw = w.shape
    out_h, out_w = dy.shape[2], dy.shape[3]
    if idx < dx.size:
        n, c, r, q = nchw_index(idx, channels, height, width)
        g, c_in_group = c // c_per_group, c % c_per_group
        o_per_group = out_ch // (channels // c_per_group)
        total = float32(0.0)
        for u in range(kh):
            i = _tap_index(r, u, stride, padding, dilation, out_h)
            for v in range(kw):
                j = _tap_index(q, v, stride, padding, dilation, out_w)
                if i >= 0 and j >= 0:
                    for o in range(g * o_per_group, (g + 1) * o_per_group):
                        total += dy[n, o, i, j] * w[o, c_in_group, u, v]
        dx[n, c, r, q] = total


@cuda.jit
def conv_weight_grad_kernel(dy, x, dw, stride, padding, dilation):
    """dy: (N, O, Ho, Wo), x: (N, C, H, W) -> dw: (O, Cg, kh, kw). One thread
    per weight; its sum runs over the N*Ho*Wo outputs."""
    idx = cuda.grid(1)
    n_img, channels, height, width = x.shape
    out_ch, c_per_group, kh, kw = dw.shape
    out_h, out_w = dy.shape[2], dy.shape[3]
    if idx < dw.size:
        o, c_in_group, u, v = nchw_index(idx, c_per_group, kh, kw)
        c = (o // (out_ch // (channels // c_per_group))) * c_per_group + c_in_group
        total = float32(0.0)
        for n in range(n_img):
            for i in range(out_h):
                r = i * stride + u * dilation - padding
                if 0 <= r < height:
                    for j in range(out_w):
                        q = j * stride + v * dilation - padding
                        if 0 <= q < width:
                            total += dy[n, o, i, j] * x[n, c, r, q]
        dw[o, c_in_group, u, v] = total


@cuda.jit
def bias_grad_kernel(dy, db):
    """dy: (N, O, Ho, Wo) -> db: (O,), the sum over images and pixels."""
    o = cuda.grid(1)
    n_img, _, out_h, out_w = dy.shape
    if o < db.size:
        total = float32(0.0)
        for n in range(n_img):
            for i in range(out_h):
                for j in range(out_w):
                    total += dy[n, o, i, j]
        db[o] = total


@cuda.jit
def max_pool_backward_kernel(dy, x, dx, kernel, stride, padding):
    """dy: (N, C, Ho, Wo), x: (N, C, H, W) -> dx: like x. Input pixel r is in
    the windows i with i*s - p <= r < i*s - p + k; the thread finds each
    one's first maximum again and takes its dy if that is this pixel."""
    idx = cuda.grid(1)
    _, channels, height, width = x.shape
    out_h, out_w = dy.shape[2], dy.shape[3]
    if idx < dx.size:
        n, c, r, q = nchw_index(idx, channels, height, width)
        total = float32(0.0)
        # first window: ceil((r + p - k + 1)/s), written so that a negative
        # numerator (clamped to 0) needs no floor division of negative numbers
        for i in range(max(0, (r + padding - kernel + stride) // stride),
                       min(out_h, (r + padding) // stride + 1)):
            for j in range(max(0, (q + padding - kernel + stride) // stride),
                           min(out_w, (q + padding) // stride + 1)):
                hi, wi = window_first_max(x, n, c, i, j, kernel, stride, padding)
                if hi == r and wi == q:
                    total += dy[n, c, i, j]
        dx[n, c, r, q] = total


@cuda.jit
def adaptive_avg_backward_kernel(dy, row_bins, col_bins, dx):
    """dy: (N, C, oh, ow) -> dx: (N, C, H, W): dy / (bin area) from every bin
    holding the pixel. row_bins: (oh, 2), col_bins: (ow, 2), [start, end)."""
    idx = cuda.grid(1)
    _, channels, height, width = dx.shape
    if idx < dx.size:
        n, c, r, q = nchw_index(idx, channels, height, width)
        total = float32(0.0)
        for i in range(row_bins.shape[0]):
            if row_bins[i, 0] <= r < row_bins[i, 1]:
                for j in range(col_bins.shape[0]):
                    if col_bins[j, 0] <= q < col_bins[j, 1]:
                        area = ((row_bins[i, 1] - row_bins[i, 0])
                                * (col_bins[j, 1] - col_bins[j, 0]))
                        total += dy[n, c, i, j] / float32(area)
        dx[n, c, r, q] = total


@cuda.jit(device=True)
def _lrn_denominator(x, n, c, hi, wi, size, scale, k):
    """D = k + scale * (sum of x^2 over channels c - size//2 ... c + (size-1)//2)."""
    total = float32(0.0)
    for cj in range(max(c - size // 2, 0), min(c + (size - 1) // 2 + 1, x.shape[1])):
        value = x[n, cj, hi, wi]
        total += value * value
    return k + scale * total


@cuda.jit
def lrn_backward_kernel(dy, x, dx, size, scale, beta, k):
    """dx[j] = dy[j] D[j]^-beta - 2 scale beta x[j] sum_c dy[c] x[c] D[c]^(-beta-1),
    c over the channels whose window holds j (j - (size-1)//2 ... j + size//2);
    scale = alpha/size. All (N, C, H, W); each D is recomputed where needed
    (size*size loads per thread, all from neighbouring channels of one pixel)."""
    idx = cuda.grid(1)
    _, channels, height, width = x.shape
    if idx < dx.size:
        n, j, hi, wi = nchw_index(idx, channels, height, width)
        through = float32(0.0)
        for c in range(max(j - (size - 1) // 2, 0), min(j + size // 2 + 1, channels)):
            d = _lrn_denominator(x, n, c, hi, wi, size, scale, k)
            through += dy[n, c, hi, wi] * x[n, c, hi, wi] * math.pow(d, -beta - float32(1.0))
        d = _lrn_denominator(x, n, j, hi, wi, size, scale, k)
        dx[n, j, hi, wi] = (dy[n, j, hi, wi] * math.pow(d, -beta)
                            - float32(2.0) * scale * beta * x[n, j, hi, wi] * through)


@cuda.jit
def relu_backward_kernel(dy, x, dx):
    """Flat (size,) arrays: dx = dy where x > 0, else 0."""
    idx = cuda.grid(1)
    if idx < dx.size:
        dx[idx] = dy[idx] if x[idx] > 0 else float32(0.0)


@cuda.jit
def scale_by_mask_kernel(a, mask, scale, out):
    """Flat (size,) arrays: out = a * scale where mask, else 0 (dropout)."""
    idx = cuda.grid(1)
    if idx < out.size:
        out[idx] = a[idx] * scale if mask[idx] else float32(0.0)
