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
single passes over memory, parallel in Numba. For a channels-last input
(the layout the Winograd convolutions write) the columns are built as rows
instead, one contiguous run of channels per kernel tap
(conv_im2row.im2row_channels_last): on AlexNet-224's conv2-5 at batch 32,
123 ms of im2col per training step became 53 ms of im2row. dY is read
where it lies when it is channels-last, as a (pixels, channels) matrix.
(Cutting the GEMMs into row blocks on Numba's threads, as the forward pass
does, was slower here: dW's output is small and its sum long, so every
block re-read all of dY; conv1's dW took 154 ms as one OpenBLAS call, 233
ms in 8 blocks.) The images go in chunks of at most conv.COLS_BUDGET_BYTES
of columns, and the columns' buffer is reused for dcols, so memory stays
bounded at any batch size.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from . import blas, conv
from .conv_im2row import im2row_channels_last


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

    dy: (N, O, Ho, Wo), x: (N, C, H, W), w: (O, Cg, kh, kw), all float32,
    already checked; dy and x either C-contiguous or (N, C, H, W) views of
    channels-last memory, as the Winograd convolutions return them
    -> dx: (N, C, H, W) (None unless `need_dx`: a network's first layer
    has no use for it), dw: w's shape, db: (O,).

    Per chunk of images, dY is read as a (pixels, channels) matrix (a view
    of channels-last dy; NCHW dy is copied to that layout) and per group g:

    - x channels-last and no dx wanted: im2row_channels_last, then
      dW_g += dY_g^T rows_g (O/G, kh*kw*Cg): one contiguous copy per
      kernel tap instead of im2col's gather, with dW's columns in
      (u, v, c) order, put back to (c, u, v) at the end;
    - otherwise: im2col, then dW_g^T += cols_g dY_g (K, O/G), and for dx
      dcols_g = W_g^T dY_g^T (into the columns' buffer) and col2im.

    dW_g is computed as cols_g dY_g, (K, O/G), in the second case: the same
    multiply-adds as dY_g^T cols_g^T, but OpenBLAS runs this order far
    better when the reduction (N*Ho*Wo) is much longer than the output is
    wide: 20x faster for conv1 of AlexNet (64 x 363 outputs, a 42,350-long
    sum per chunk), 2.5x for conv2.
    """
    n_img, c_in = x.shape[:2]
    out_ch, c_per_group, kh, kw = w.shape
    ho, wo = dy.shape[2:]
    pixels, rows = ho * wo, c_in * kh * kw
    o_per_group, depth = out_ch // groups, c_per_group * kh * kw
    by_rows = not need_dx and x.transpose(0, 2, 3, 1).flags.c_contiguous
    x = x if by_rows else np.ascontiguousarray(x)                 # col2im and im2col: NCHW
    dy_last = dy.transpose(0, 2, 3, 1)                            # (N, Ho, Wo, O), a view
    w_groups = w.reshape(groups, o_per_group, depth)              # (G, O/G, K)
    dw_acc = np.empty((groups, o_per_group, depth) if by_rows else (groups, depth, o_per_group),
                      dtype=np.float32)                           # dW_g, or dW_g^T
    dx = np.zeros_like(x) if need_dx else None      # col2im adds into it
    fits = max(1, conv.COLS_BUDGET_BYTES // (rows * pixels * 4))   # images per chunk, at most
    chunk = -(-n_img // -(-n_img // fits))                         # equal chunks
    patches_all = conv.scratch.take("cols", rows * chunk * pixels)
    dy_copy = None if dy_last.flags.c_contiguous else conv.scratch.take(
        "product", out_ch * chunk * pixels)
    for start in range(0, n_img, chunk):
        n = min(n_img, start + chunk) - start
        if dy_copy is None:
            dy_rows = dy_last[start:start + n].reshape(n * pixels, out_ch)    # a view
        else:
            dy_rows = dy_copy[:n * pixels * out_ch].reshape(n * pixels, out_ch)
            np.copyto(dy_rows.reshape(n, pixels, out_ch),
                      dy[start:start + n].reshape(n, out_ch, pixels).transpose(0, 2, 1))
        dy_groups = [dy_rows[:, g * o_per_group:(g + 1) * o_per_group] for g in range(groups)]
        if by_rows:
            patches = patches_all[:rows * n * pixels].reshape(n * pixels, rows)
            im2row_channels_last(x.transpose(0, 2, 3, 1)[start:start + n], groups, kh, kw,
                                 stride, padding, dilation, ho, wo, patches)
            for g in range(groups):
                blas.gemm(dy_groups[g].T, patches[:, g * depth:(g + 1) * depth], dw_acc[g],
                          accumulate=start > 0)
            continue
        cols = patches_all[:rows * n * pixels].reshape(groups, depth, n * pixels)
        conv.im2col(x[start:start + n], kh, kw, stride, padding, dilation, ho, wo,
                    cols.reshape(rows, n * pixels))
        for g in range(groups):
            blas.gemm(cols[g], dy_groups[g], dw_acc[g], accumulate=start > 0)
            if need_dx:
                blas.gemm(w_groups[g].T, dy_groups[g].T, cols[g])        # dcols_g
        if need_dx:
            col2im(cols.reshape(rows, n * pixels), kh, kw, stride, padding, dilation, ho, wo,
                   dx[start:start + n])
    db = dy.sum(axis=(0, 2, 3), dtype=np.float32)
    if by_rows:                                     # (G, O/G, kh, kw, Cg) -> (G, O/G, Cg, kh, kw)
        dw = dw_acc.reshape(groups, o_per_group, kh, kw, c_per_group).transpose(0, 1, 4, 2, 3)
    else:                                           # dW_g^T (G, K, O/G) -> (G, O/G, K)
        dw = dw_acc.transpose(0, 2, 1)
    return dx, np.ascontiguousarray(dw).reshape(w.shape), db
