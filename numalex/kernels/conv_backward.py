"""The backward pass of a convolution as two matrix products per group.

The forward pass (numalex/kernels/conv.py, version 4) is one GEMM per group::

    Y_g (O/G, N*Ho*Wo) = W_g (O/G, K) @ cols_g (K, N*Ho*Wo),   K = Cg*kh*kw

with cols = im2col(x): column (n, i, j) holds the receptive field of
output (n, i, j). Differentiating a matrix product gives the two gradients::

    dW_g   = dY_g @ cols_g^T         (O/G, N*Ho*Wo) @ (N*Ho*Wo, K)
    dcols_g = W_g^T @ dY_g           (K, O/G) @ (O/G, N*Ho*Wo)
    dx     = col2im(dcols)           every column's values added back to
                                     the input pixels they were copied from

col2im is im2col run backwards: where im2col copied one input pixel into
several columns (once for every window that covers it), col2im adds those
columns' gradients back into that pixel, so overlapping windows sum their
contributions, and values that im2col read from the padding go nowhere.

Why it is fast: nearly all the multiply-adds are the two GEMMs, run by
OpenBLAS (numalex.kernels.blas) on large operands; im2col and col2im are
single passes over memory, parallel in Numba. (Cutting the GEMMs into row
blocks on Numba's threads, as the forward pass does, was slower here: dW's
output is small and its sum long, so every block re-read all of dY; conv1's
dW took 154 ms as one OpenBLAS call, 233 ms in 8 blocks.) The images go in chunks of
at most conv.COLS_BUDGET_BYTES of columns, and the columns' buffer is
reused for dcols, so memory stays bounded at any batch size.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from . import blas, conv


@njit(parallel=True, cache=True)
def col2im(cols, kh, kw, stride, padding, dilation, ho, wo, x):
    """x = the sum of every column's values into the pixels im2col took them from.

    cols: (C*kh*kw, N*Ho*Wo) in im2col's layout (row (c*kh + u)*kw + v,
    column (n*Ho + i)*Wo + j) -> x: (N, C, H, W), zeros on entry, added into:
    x[n, c, r, q] = sum of cols[(c, u, v), (n, i, j)] over all (u, v, i, j)
    with r = i*s + u*d - p and q = j*s + v*d - p (entries that fall in the
    padding are dropped). Parallel over (image, channel) planes: every plane
    is written by one task, so the sums need no atomics.
    """
    n_img, c_in, h, wd = x.shape
    for task in prange(n_img * c_in):
        n, c = task // c_in, task % c_in
        for u in range(kh):
            for v in range(kw):
                row = (c * kh + u) * kw + v
                shift = v * dilation - padding
                j0, j1 = conv.columns_inside(shift, stride, wo, wd)
                for i in range(ho):
                    r = i * stride + u * dilation - padding
                    if 0 <= r < h:
                        start = (n * ho + i) * wo
                        if stride == 1:                     # contiguous: vectorises
                            for j in range(j0, j1):
                                x[n, c, r, j + shift] += cols[row, start + j]
                        else:
                            for j in range(j0, j1):
                                x[n, c, r, j * stride + shift] += cols[row, start + j]


def conv2d_backward(dy, x, w, stride, padding, groups, dilation, need_dx=True):
    """(dx, dw, db) of y = conv2d(x, w, b, stride, padding, groups, dilation).

    dy: (N, O, Ho, Wo), x: (N, C, H, W), w: (O, Cg, kh, kw), all float32
    C-contiguous and already checked -> dx: (N, C, H, W) (None unless
    `need_dx`: a network's first layer has no use for it), dw: w's shape,
    db: (O,). Per chunk of images and per group g: im2col, then
    dW_g += dY_g cols_g^T, then dcols_g = W_g^T dY_g (into the columns'
    buffer) and col2im.

    dW_g is computed transposed, as dW_g^T = cols_g dY_g^T (K, O/G): the
    same multiply-adds, but OpenBLAS runs this order far better when the
    reduction (N*Ho*Wo) is much longer than the output is wide: 20x faster
    for conv1 of AlexNet (64 x 363 outputs, a 42,350-long sum per chunk),
    2.5x for conv2.
    """
    n_img, c_in = x.shape[:2]
    out_ch, c_per_group, kh, kw = w.shape
    ho, wo = dy.shape[2:]
    pixels, rows = ho * wo, c_in * kh * kw
    o_per_group, depth = out_ch // groups, c_per_group * kh * kw
    w_groups = w.reshape(groups, o_per_group, depth)              # (G, O/G, K)
    dw_t = np.empty((groups, depth, o_per_group), dtype=np.float32)  # dW_g^T, as said above
    dx = np.zeros_like(x) if need_dx else None      # col2im adds into it
    fits = max(1, conv.COLS_BUDGET_BYTES // (rows * pixels * 4))   # images per chunk, at most
    chunk = -(-n_img // -(-n_img // fits))                         # equal chunks
    cols_all = conv.scratch.take("cols", rows * chunk * pixels)
    dy_all = conv.scratch.take("product", out_ch * chunk * pixels)
    for start in range(0, n_img, chunk):
        n = min(n_img, start + chunk) - start
        cols = cols_all[:rows * n * pixels].reshape(groups, depth, n * pixels)
        conv.im2col(x[start:start + n], kh, kw, stride, padding, dilation, ho, wo,
                    cols.reshape(rows, n * pixels))
        dy_cf = dy_all[:out_ch * n * pixels].reshape(out_ch, n, pixels)   # channels first
        np.copyto(dy_cf, dy[start:start + n].reshape(n, out_ch, pixels).transpose(1, 0, 2))
        dy_groups = dy_cf.reshape(groups, o_per_group, n * pixels)        # (G, O/G, n*P)
        for g in range(groups):
            blas.gemm(cols[g], dy_groups[g].T, dw_t[g], accumulate=start > 0)
            if need_dx:
                blas.gemm(w_groups[g].T, dy_groups[g], cols[g])          # dcols_g
        if need_dx:
            col2im(cols.reshape(rows, n * pixels), kh, kw, stride, padding, dilation, ho, wo,
                   dx[start:start + n])
    db = dy.sum(axis=(0, 2, 3), dtype=np.float32)
    dw = np.ascontiguousarray(dw_t.transpose(0, 2, 1))           # (G, O/G, K)
    return dx, dw.reshape(w.shape), db
