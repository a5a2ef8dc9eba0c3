"""Version 6 of the convolution ladder: im2row + GEMM, pixels as rows.

im2col (version 4, numalex/kernels/conv.py) transposed: one row per output
pixel, so the copy reads runs of neighbouring pixels even at a large
stride, and the GEMM is (pixels x K) @ (K x O).
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from . import blas
from .conv import empty_output, scratch

# ---- 6. im2row + GEMM, pixels as rows ----------------------------------------
# Rows of at most this many bytes are built at once (version 6). Smaller than
# COLS_BUDGET_BYTES: a few images' rows stay in cache between the copy that
# writes them and the GEMM that reads them (measured on conv1: chunks of 4
# images beat chunks of 32 by a third).
ROWS_BUDGET_BYTES = 16 * 2**20


@njit(parallel=True, cache=True)
def im2row(x, kh, kw, stride, padding, dilation, ho, wo, rows):
    """Copy receptive fields into rows, one row per output pixel.

    x: (N, C, H, W) -> rows: (N*Ho*Wo, C*kh*kw), with
    rows[(n*Ho + i)*Wo + j, (c*kh + u)*kw + v] = x[n, c, i*s + u*d - p, j*s + v*d - p]
    (0 in the padding): im2col's matrix transposed. Each row is written
    front to back, and with dilation 1 each run of kw values is read from
    consecutive input pixels, even when the stride is large (im2col gathers
    every s-th pixel instead). Parallel over output rows (n, i).
    """
    n_img, c_in, h, wd = x.shape
    for task in prange(n_img * ho):
        n, i = task // ho, task % ho
        for j in range(wo):
            row = (n * ho + i) * wo + j
            for c in range(c_in):
                for u in range(kh):
                    r = i * stride + u * dilation - padding
                    col = (c * kh + u) * kw
                    for v in range(kw):
                        q = j * stride + v * dilation - padding
                        inside = 0 <= r < h and 0 <= q < wd
                        rows[row, col + v] = x[n, c, r, q] if inside else 0.0


@njit(parallel=True, cache=True)
def im2row_channels_last(x, groups, kh, kw, stride, padding, dilation, ho, wo, rows):
    """im2row for channels-last input, each kernel tap's channels side by side.

    x: (N, H, W, C), C-contiguous -> rows: (N*Ho*Wo, C*kh*kw), with
    rows[(n*Ho + i)*Wo + j, ((g*kh + u)*kw + v)*Cg + c] =
        x[n, i*s + u*d - p, j*s + v*d - p, g*Cg + c]        (0 in the padding)
    where Cg = C/groups. The columns of group g are the contiguous block
    g*kh*kw*Cg ... (g+1)*kh*kw*Cg, ordered (u, v, c) instead of im2row's
    (c, u, v): every kernel tap then copies Cg neighbouring floats, a
    contiguous run in both arrays, instead of gathering one float per
    channel plane (3-4x faster than im2col on AlexNet's conv2-5). A GEMM
    against this matrix gives a weight gradient in (O, kh, kw, Cg) order.
    Parallel over output rows (n, i).
    """
    n_img, h, wd, c_in = x.shape
    c_per_group = c_in // groups
    for task in prange(n_img * ho):
        n, i = task // ho, task % ho
        for j in range(wo):
            row = (n * ho + i) * wo + j
            for g in range(groups):
                for u in range(kh):
                    r = i * stride + u * dilation - padding
                    for v in range(kw):
                        q = j * stride + v * dilation - padding
                        col = ((g * kh + u) * kw + v) * c_per_group
                        if 0 <= r < h and 0 <= q < wd:
                            for c in range(c_per_group):
                                rows[row, col + c] = x[n, r, q, g * c_per_group + c]
                        else:
                            for c in range(c_per_group):
                                rows[row, col + c] = 0.0


@njit(cache=True)
def add_bias_to_nchw_from_rows(z, b, relu, y):
    """y[n, o, p] = z[n, p, o] + b[o] (then max(., 0) if `relu`): the GEMM
    result (pixels x channels) transposed to NCHW with the bias added, in
    one pass. z: (N, P, O), y: (N, O, P). A transpose reads one of the two
    arrays with a large stride; going through 64 pixels at a time keeps that
    block of z (64 x O values) in the L1 cache while each channel's 64
    outputs are written. On the calling thread (memory-bound)."""
    n_img, pixels, out_ch = z.shape
    for n in range(n_img):
        for p0 in range(0, pixels, 64):
            p1 = min(pixels, p0 + 64)
            for o in range(out_ch):
                for p in range(p0, p1):
                    v = z[n, p, o] + b[o]
                    y[n, o, p] = np.float32(0.0) if relu and v < 0 else v


def conv_im2row(x, w, b, stride=1, padding=0, groups=1, dilation=1, relu=False,
                rows_budget=ROWS_BUDGET_BYTES):
    """Version 6: im2row for a few images, then per group one GEMM

        rows_g (n*Ho*Wo, Cg*kh*kw) @ W_g^T (Cg*kh*kw, O/G) -> (n*Ho*Wo, O/G)

    and a transposing pass to NCHW that adds the bias.
    Why it is fast for AlexNet's conv1 (11x11, stride 4, only 3 channels):
    im2col's gather of every 4th pixel is the slow part there, and im2row
    copies runs of 11 neighbouring pixels instead; the GEMM's long side is
    the many output pixels, a shape OpenBLAS runs well even though the
    layer has only 64 (or 96) output channels.
    """
    n_img, c_in = x.shape[:2]
    out_ch, c_per_group, kh, kw = w.shape
    o_per_group = out_ch // groups
    y = empty_output(x, w, stride, padding, dilation)
    ho, wo = y.shape[2:]
    pixels = ho * wo
    depth = c_per_group * kh * kw                                  # Cg*kh*kw
    w_t = np.ascontiguousarray(
        w.reshape(groups, o_per_group, depth).transpose(0, 2, 1))  # (G, Cg*kh*kw, O/G)
    fits = max(1, rows_budget // (c_in * kh * kw * pixels * 4))    # images per chunk, at most
    chunk = -(-n_img // -(-n_img // fits))                         # equal chunks
    rows_all = scratch.take("rows", chunk * pixels * c_in * kh * kw)
    z_all = scratch.take("product", chunk * pixels * out_ch)
    for start in range(0, n_img, chunk):
        n = min(n_img, start + chunk) - start
        rows = rows_all[:n * pixels * c_in * kh * kw].reshape(n * pixels, c_in * kh * kw)
        im2row(x[start:start + n], kh, kw, stride, padding, dilation, ho, wo, rows)
        z = z_all[:n * pixels * out_ch].reshape(n * pixels, out_ch)    # (n*Ho*Wo, O)
        for g in range(groups):
            blas.gemm(rows[:, g * depth:(g + 1) * depth], w_t[g],
                      z[:, g * o_per_group:(g + 1) * o_per_group])
        add_bias_to_nchw_from_rows(z.reshape(n, pixels, out_ch), b, relu,
                                   y[start:start + n].reshape(n, out_ch, pixels))
    return y
