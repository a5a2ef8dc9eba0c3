"""The transforms of Winograd's F(4x4, 3x3), version 9 of the ladder.

F(2x2, 3x3) (numalex/kernels/winograd.py) gets 2 x 2 outputs from a 4 x 4
tile with 16 multiplications instead of 36. F(4x4, 3x3) gets 4 x 4 outputs
from a 6 x 6 tile with 36 multiplications instead of 144: 4x fewer, against
2.25x (Lavin and Gray 2015, with the interpolation points 0, +-1, +-2 and
infinity). On AlexNet's 13 x 13 maps the 4 x 4 tiles cover 16 x 16 (some
outputs computed and thrown away), which still leaves 2.6x fewer
multiply-adds than direct convolution, against 1.9x for F(2x2, 3x3).

    Y = A^T [ (G g G^T) * (B^T d B) ] A        (* elementwise, 6 x 6)

with
    B^T = [[4,  0, -5,  0, 1, 0],      G = [[ 1/4,     0,    0],
           [0, -4, -4,  1, 1, 0],           [-1/6,  -1/6, -1/6],
           [0,  4, -4, -1, 1, 0],           [-1/6,   1/6, -1/6],
           [0, -2, -1,  2, 1, 0],           [1/24,  1/12,  1/6],
           [0,  2, -1, -2, 1, 0],           [1/24, -1/12,  1/6],
           [0,  4,  0, -5, 0, 1]]           [   0,     0,    1]]
    A^T = [[1, 1,  1, 1,  1, 0],
           [0, 1, -1, 2, -2, 0],
           [0, 1,  1, 4,  4, 0],
           [0, 1, -1, 8, -8, 1]]

The larger entries (5, 8, 1/24) cost some float32 accuracy against F(2x2,
3x3): still about 1e-6 of the output's scale on AlexNet's layers, far
inside the 1e-4 numalex promises. The driver (tiling, the GEMMs, the
epilogues) is winograd.conv_winograd; this module holds what differs: the
three transforms, channels innermost as in F(2x2, 3x3).
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .conv import output_hw, scratch
from .conv_shifted import fold_kernel
from .winograd import Scheme, blas_products, conv_winograd, transformed_weights

TILE = 4                # outputs per tile side (m)
ALPHA = 6               # inputs per tile side (m + 3 - 1)

G = np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
              [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]])


@njit(inline="always")
def _mix(d0, d1, d2, d3, d4, d5):
    """A 6-vector through B^T, the input transform."""
    return (np.float32(4) * d0 - np.float32(5) * d2 + d4,
            d3 + d4 - np.float32(4) * (d1 + d2),
            d4 - d3 + np.float32(4) * (d1 - d2),
            d4 - d2 + np.float32(2) * (d3 - d1),
            d4 - d2 + np.float32(2) * (d1 - d3),
            np.float32(4) * d1 - np.float32(5) * d3 + d5)


@njit(inline="always")
def _gather(m0, m1, m2, m3, m4, m5):
    """A 6-vector through A^T, the output transform: four outputs."""
    sum12, diff12 = m1 + m2, m1 - m2
    sum34, diff34 = m3 + m4, m3 - m4
    return (m0 + sum12 + sum34, diff12 + np.float32(2) * diff34,
            sum12 + np.float32(4) * sum34, diff12 + np.float32(8) * diff34 + m5)


@njit(parallel=True, cache=True)
def transform_weights(w, u):
    """U = G g G^T for every (output, input) channel pair.
    w: (O, Cg, 3, 3) -> u: (36, Cg, O), position xi = 6*row + column.

    G g spreads each of the kernel's three columns to six rows, then
    (G g) G^T spreads each of those six rows to six columns, both with the
    constant G above. Parallel over input channels; run once per weight
    when the weights are fixed (prepare_params keeps it), but once per step
    and layer in training, where the weights change every step.

    Why it is fast: the input channel's kernels are first gathered with the
    output channel last, taps[a, b, o] = w[o, c, a, b], so every later loop
    runs over o on contiguous memory and vectorises, and each row of U is
    stored whole. NumPy's tensordot and transposes took 40 ms for conv4 of
    AlexNet; a loop with o outermost, 9.5; this, 3.7.
    """
    g = G.astype(np.float32)
    out_ch, c_per_group = w.shape[0], w.shape[1]
    for c in prange(c_per_group):
        taps = np.empty((3, 3, out_ch), dtype=np.float32)          # w[:, c], o last
        spread = np.empty((ALPHA, 3, out_ch), dtype=np.float32)    # G g
        for o in range(out_ch):
            for a in range(3):
                for b in range(3):
                    taps[a, b, o] = w[o, c, a, b]
        for i in range(ALPHA):
            for j in range(3):
                for o in range(out_ch):
                    spread[i, j, o] = (g[i, 0] * taps[0, j, o] + g[i, 1] * taps[1, j, o]
                                       + g[i, 2] * taps[2, j, o])
        for i in range(ALPHA):
            for j in range(ALPHA):
                for o in range(out_ch):
                    u[ALPHA * i + j, c, o] = (spread[i, 0, o] * g[j, 0] + spread[i, 1, o] * g[j, 1]
                                              + spread[i, 2, o] * g[j, 2])


@njit(parallel=True, cache=True)
def transform_input(xp, slots, groups, tiles_h, tiles_w, v):
    """V = B^T d B for every 6 x 6 input tile d, all channels, every slot at once.

    xp: (N, Hp, Wp, C) zero-padded, channels-last; slots: (K, 2), the
    (row, column) offset at which each slot's tiles start (block_plan);
    v: (36, N*tiles_h*tiles_w + tail, G*K*Cg), C-contiguous. Tile (ty, tx)
    of image n and slot k covers padded rows slots[k, 0] + 4*ty ... + 5 and
    columns slots[k, 1] + 4*tx ... + 5, and its channels of group g land in
    columns (g*K + k)*Cg ... + Cg - 1 of row t = (n*tiles_h + ty)*tiles_w + tx
    of each v[xi]: the slots of a group side by side, so that one GEMM of
    depth K*Cg sums them. First every column of the tile is mixed (B^T d),
    then every row of that (. B); each step is one loop over contiguous
    channels, which vectorises because v is one contiguous array (a view of
    one slot's columns would hide the unit stride from the compiler).
    One row of tiles per task.
    """
    n_img, c_in = xp.shape[0], xp.shape[3]
    c_per_group, n_slots = c_in // groups, slots.shape[0]
    for task in prange(n_img * tiles_h):
        n, ty = task // tiles_h, task % tiles_h
        mixed = np.empty((ALPHA * ALPHA, c_per_group), dtype=np.float32)   # B^T d
        for tx in range(tiles_w):
            t = task * tiles_w + tx
            for k in range(n_slots):
                r, q = slots[k, 0] + TILE * ty, slots[k, 1] + TILE * tx
                for g in range(groups):
                    first_in, first_out = g * c_per_group, (g * n_slots + k) * c_per_group
                    for j in range(ALPHA):
                        for c in range(c_per_group):
                            ci = first_in + c
                            (mixed[j, c], mixed[6 + j, c], mixed[12 + j, c], mixed[18 + j, c],
                             mixed[24 + j, c], mixed[30 + j, c]) = _mix(
                                xp[n, r, q + j, ci], xp[n, r + 1, q + j, ci],
                                xp[n, r + 2, q + j, ci], xp[n, r + 3, q + j, ci],
                                xp[n, r + 4, q + j, ci], xp[n, r + 5, q + j, ci])
                    for i in range(ALPHA):
                        row = 6 * i
                        for c in range(c_per_group):
                            co = first_out + c
                            (v[row, t, co], v[row + 1, t, co], v[row + 2, t, co],
                             v[row + 3, t, co], v[row + 4, t, co], v[row + 5, t, co]) = _mix(
                                mixed[row, c], mixed[row + 1, c], mixed[row + 2, c],
                                mixed[row + 3, c], mixed[row + 4, c], mixed[row + 5, c])


@njit(parallel=True, cache=True)
def transform_output(m, frame_hw, ho, wo, z):
    """Y = A^T m A for every tile, all output channels at once.

    m: (36, N*Fh*Fw + tail, O), tile (ty, tx) of image n at row
    t = (n*Fh + ty)*Fw + tx -> z: (N*Ho*Wo, O), pixel-major. Tile (ty, tx)
    gives outputs 4*ty ... 4*ty + 3 x 4*tx ... 4*tx + 3, cut off at Ho and
    Wo. The bias is left to the epilogue. One row of tiles per task.
    """
    out_ch = m.shape[2]
    frame_h, frame_w = frame_hw
    tiles_h, tiles_w = (ho + TILE - 1) // TILE, (wo + TILE - 1) // TILE
    for task in prange(z.shape[0] // (ho * wo) * tiles_h):
        n, ty = task // tiles_h, task % tiles_h
        rows = min(TILE, ho - TILE * ty)
        gathered = np.empty((TILE * ALPHA, out_ch), dtype=np.float32)   # A^T m, (4, 6)
        out = np.empty((TILE, out_ch), dtype=np.float32)               # one output row
        for tx in range(tiles_w):
            t, cols = (n * frame_h + ty) * frame_w + tx, min(TILE, wo - TILE * tx)
            for j in range(ALPHA):
                for o in range(out_ch):
                    (gathered[j, o], gathered[6 + j, o], gathered[12 + j, o],
                     gathered[18 + j, o]) = _gather(
                        m[j, t, o], m[6 + j, t, o], m[12 + j, t, o], m[18 + j, t, o],
                        m[24 + j, t, o], m[30 + j, t, o])
            for i in range(rows):
                row = 6 * i
                for o in range(out_ch):
                    out[0, o], out[1, o], out[2, o], out[3, o] = _gather(
                        gathered[row, o], gathered[row + 1, o], gathered[row + 2, o],
                        gathered[row + 3, o], gathered[row + 4, o], gathered[row + 5, o])
                first = (n * ho + TILE * ty + i) * wo + TILE * tx
                for k in range(cols):
                    for o in range(out_ch):
                        z[first + k, o] = out[k, o]


F4 = Scheme("F(4x4, 3x3)", TILE, ALPHA, transform_weights, transform_input, transform_output)


def conv_winograd_f4(x, w, b, stride=1, padding=0, groups=1, dilation=1, relu=False,
                     pool=None, u=None):
    """Version 9 (kernels from 2 x 2 up, stride 1, no dilation): winograd's
    driver with F(4x4, 3x3). u: transformed_weights(w, F4) if known."""
    return conv_winograd(x, w, b, stride, padding, groups, dilation, relu, pool, u=u,
                         scheme=F4)


def folds_to_winograd(kernel_hw, stride, dilation) -> bool:
    """Does version 10 apply: a stride above 1 and a kernel that still spans
    at least 2 x 2 blocks of s x s pixels (AlexNet's 11x11 at stride 4: 3x3)."""
    spans = [-(-((k - 1) * dilation + 1) // stride) for k in kernel_hw]
    return stride > 1 and min(spans) >= 2


def folded_transform(w, stride, dilation):
    """U of the space-to-depth folded kernel (version 10), for caching."""
    return transformed_weights(fold_kernel(w, stride, dilation), F4)


def conv_space_to_depth_winograd(x, w, b, stride=1, padding=0, groups=1, dilation=1,
                                 relu=False, pool=None, u=None, products=blas_products):
    """Version 10 (strides above 1): space-to-depth, then F(4x4, 3x3).

    Version 7's rewrite of a strided convolution as a stride-1 one on s*s
    times the channels (AlexNet's conv1: 11x11 at stride 4 on 3 channels
    becomes 3x3 on 48), which then runs as version 9 instead of as shifted
    GEMMs: 2.25 multiplications per output and channel pair instead of 9.
    x: (N, C, H, W) -> (N, O, Ho, Wo); u: folded_transform(w, stride,
    dilation) if known, or what `products` reads (conv_winograd's
    strategy: version 13 passes winograd_products.multiply).
    """
    if not folds_to_winograd(w.shape[2:], stride, dilation):
        raise ValueError(f"conv_space_to_depth_winograd needs a stride above 1 (at stride 1 "
                         f"use version 9) and a kernel of at least 2 x 2 strides, got kernel "
                         f"{tuple(w.shape[2:])}, stride {stride}, dilation {dilation}")
    n_img, c_in = x.shape[:2]
    ho, wo = output_hw(x, w, stride, padding, dilation)
    w_folded = fold_kernel(w, stride, dilation)                # (O, C*s*s, th, tw)
    blocks_h, blocks_w = ho + w_folded.shape[2] - 1, wo + w_folded.shape[3] - 1
    folded = scratch.take("folded input", n_img * c_in * stride * stride * blocks_h * blocks_w)
    folded = folded.reshape(n_img, blocks_h, blocks_w, c_in * stride * stride)
    space_to_depth_channels_last(x, stride, padding, folded)
    # the (N, C*s*s, bh, bw) view of channels-last memory: conv_winograd
    # pads it with row copies instead of transposing it
    return conv_winograd(folded.transpose(0, 3, 1, 2), w_folded, b, 1, 0, groups, 1, relu,
                         pool, u=u, scheme=F4, products=products)


@njit(parallel=True, cache=True)
def space_to_depth_channels_last(x, stride, padding, out):
    """space_to_depth (numalex/kernels/conv_shifted.py) written channels-last,
    as the Winograd driver reads its input: x: (N, C, H, W) -> out: (N, bh,
    bw, C*s*s), out[n, i, j, (c*s + a)*s + e] = x[n, c, i*s + a - p, j*s + e - p]
    (0 outside the input). One (image, block row) per task; for each of the
    C*s input rows the block row covers, the row is read front to back and
    its pixels dealt out to the blocks, s at a time."""
    n_img, c_in, h, wd = x.shape
    blocks_h, blocks_w, depth = out.shape[1], out.shape[2], out.shape[3]
    for task in prange(n_img * blocks_h):
        n, i = task // blocks_h, task % blocks_h
        for j in range(blocks_w):
            for k in range(depth):
                out[n, i, j, k] = np.float32(0.0)
        for c in range(c_in):
            for a in range(stride):
                r = i * stride + a - padding
                if 0 <= r < h:
                    first = (c * stride + a) * stride         # this row's channels: + e
                    for j in range(blocks_w):
                        for e in range(stride):
                            q = j * stride + e - padding
                            if 0 <= q < wd:
                                out[n, i, j, first + e] = x[n, c, r, q]
