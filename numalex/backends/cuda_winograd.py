"""Version 5 of the GPU convolution ladder: Winograd F(2x2, 3x3) for 3x3 stride-1 convs.

Versions 1-4 all do 9 multiply-adds per output and input channel of a 3x3
convolution; they only differ in how well they feed the FMA units. Winograd's
minimal filtering does fewer: each 2x2 block of outputs comes from a 4x4
input tile d with 16 multiplications instead of 36 (2.25x fewer), as

    Y = A^T [ (G g G^T) * (B^T d B) ] A          (* elementwise, 4x4)

(Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks", 2015;
numalex/kernels/winograd.py is the CPU version of the same idea). Summed over
input channels the elementwise product is 16 matrix products, one per
position xi of the transformed tile:

    M[xi] (O, T) = U[xi] (O, C) @ V[xi] (C, T)     T: tiles of all images

Three small kernels and one GEMM, all on the device:

1. weights:  U[xi*O + o, c] = (G g G^T)[xi] for every channel pair (o, c)
2. inputs:   V[xi*C + c, t] = (B^T d B)[xi] for every tile t and channel c
3. GEMM:     the 16 products are ONE grouped 1x1 convolution with 16*groups
             groups (group xi*groups + g reads V's channels of xi and g), so
             the ladder's own register-blocked GEMM (version 4, or 2 for
             small problems) does the multiply-adds, unchanged;
4. outputs:  y = A^T M A + bias (and ReLU) for every tile and output channel.

The transforms only add and halve (entries 0, +-1, +-1/2), so the results
differ from direct convolution by rounding only. The transforms are
one-thread-per-item kernels: neighbouring threads take neighbouring tiles, so
every V and M access is coalesced.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from numba import cuda, float32

from .cuda_windows import blocks

THREADS = 256


def supports(kh: int, kw: int, stride: int, dilation: int) -> bool:
    """Version 5 runs 3x3 kernels at stride 1 without dilation."""
    return (kh, kw) == (3, 3) and stride == 1 and dilation == 1


def tile_counts(out_h: int, out_w: int) -> tuple[int, int]:
    """2x2 output tiles down and across (a partial last tile is computed and
    its missing outputs dropped)."""
    return math.ceil(out_h / 2), math.ceil(out_w / 2)


@cuda.jit(device=True)
def input_transform_1d(a, b, c, d):
    """B^T applied to a column (a, b, c, d) of the tile."""
    return a - c, b + c, c - b, b - d


@cuda.jit(device=True)
def weight_transform_1d(p, q, r):
    """G applied to a column (p, q, r) of the 3x3 kernel."""
    half = float32(0.5)
    return p, half * (p + q + r), half * (p - q + r), r


@cuda.jit(device=True)
def output_transform_1d(m0, m1, m2, m3):
    """A^T applied to a column of M: two outputs from four values."""
    return m0 + m1 + m2, m1 - m2 - m3


@cuda.jit
def weight_transform_kernel(w, u):
    """w: (O, Cg, 3, 3) -> u: (16*O, Cg), u[xi*O + o, c] = (G w[o, c] G^T)[xi].
    One thread per channel pair (o, c)."""
    idx = cuda.grid(1)
    out_ch, c_per_group, _, _ = w.shape
    if idx < out_ch * c_per_group:
        o = idx // c_per_group
        c = idx % c_per_group
        gw = cuda.local.array((4, 3), float32)              # G g: 4 rows of 3
        for v in range(3):
            gw[0, v], gw[1, v], gw[2, v], gw[3, v] = weight_transform_1d(
                w[o, c, 0, v], w[o, c, 1, v], w[o, c, 2, v])
        for r in range(4):                                   # (G g) G^T, row by row
            t0, t1, t2, t3 = weight_transform_1d(gw[r, 0], gw[r, 1], gw[r, 2])
            u[(4 * r + 0) * out_ch + o, c] = t0
            u[(4 * r + 1) * out_ch + o, c] = t1
            u[(4 * r + 2) * out_ch + o, c] = t2
            u[(4 * r + 3) * out_ch + o, c] = t3


@cuda.jit
def input_transform_kernel(x, v, padding, tiles_h, tiles_w):
    """x: (N, C, H, W) -> v: (16*C, T), v[xi*C + c, t] = (B^T d B)[xi] for the
    4x4 tile d of image n starting at row 2*ti - padding, column 2*tj - padding
    (zeros outside the image), t = (n*tiles_h + ti)*tiles_w + tj.
    One thread per (channel, tile); neighbouring threads, neighbouring tiles."""
    idx = cuda.grid(1)
    n_img, channels, height, width = x.shape
    tiles = n_img * tiles_h * tiles_w
    if idx < channels * tiles:
        c = idx // tiles
        t = idx % tiles
        n = t // (tiles_h * tiles_w)
        row0 = ((t // tiles_w) % tiles_h) * 2 - padding
        col0 = (t % tiles_w) * 2 - padding
        d = cuda.local.array((4, 4), float32)
        for i in range(4):
            for j in range(4):
                value = float32(0.0)
                if 0 <= row0 + i < height and 0 <= col0 + j < width:
                    value = x[n, c, row0 + i, col0 + j]
                d[i, j] = value
        for j in range(4):                                   # B^T d, column by column
            d[0, j], d[1, j], d[2, j], d[3, j] = input_transform_1d(
                d[0, j], d[1, j], d[2, j], d[3, j])
        for i in range(4):                                   # (B^T d) B, row by row
            t0, t1, t2, t3 = input_transform_1d(d[i, 0], d[i, 1], d[i, 2], d[i, 3])
            v[(4 * i + 0) * channels + c, t] = t0
            v[(4 * i + 1) * channels + c, t] = t1
            v[(4 * i + 2) * channels + c, t] = t2
            v[(4 * i + 3) * channels + c, t] = t3


@cuda.jit
def output_transform_kernel(m, b, y, tiles_h, tiles_w, relu):
    """m: (16*O, T) -> y: (N, O, Ho, Wo) = A^T M A + b[o], ReLU'd if asked; the
    part of a partial last tile outside y is dropped.
    One thread per (output channel, tile)."""
    idx = cuda.grid(1)
    _, out_ch, out_h, out_w = y.shape
    tiles = m.shape[1]
    if idx < out_ch * tiles:
        o = idx // tiles
        t = idx % tiles
        n = t // (tiles_h * tiles_w)
        row0 = ((t // tiles_w) % tiles_h) * 2
        col0 = (t % tiles_w) * 2
        am = cuda.local.array((2, 4), float32)               # A^T M: 2 rows of 4
        for j in range(4):
            am[0, j], am[1, j] = output_transform_1d(
                m[(0 + j) * out_ch + o, t], m[(4 + j) * out_ch + o, t],
                m[(8 + j) * out_ch + o, t], m[(12 + j) * out_ch + o, t])
        for i in range(2):                                   # (A^T M) A
            left, right = output_transform_1d(am[i, 0], am[i, 1], am[i, 2], am[i, 3])
            for j in range(2):
                value = left if j == 0 else right
                if row0 + i < out_h and col0 + j < out_w:
                    value += b[o]
                    if relu and value < 0:
                        value = float32(0.0)
                    y[n, o, row0 + i, col0 + j] = value


@lru_cache(maxsize=None)
def _zeros_on_device(size: int):
    """A float32 zero bias for the GEMM (the real bias is added after A^T M A)."""
    return cuda.to_device(np.zeros(size, dtype=np.float32))


def conv2d(x, w, b, y, padding, groups, relu, gemm):
    """Fill y: (N, O, Ho, Wo) with the 3x3 stride-1 convolution of x: (N, C, H, W)
    by w: (O, C/groups, 3, 3) plus b: (O,).

    gemm(x, w, b, y, groups) runs a 1x1 convolution (cuda_ladder's GEMM: the
    ladder passes it in, so this module does not choose GEMM versions).
    """
    n_img, channels, _, _ = x.shape
    out_ch, c_per_group, _, _ = w.shape
    tiles_h, tiles_w = tile_counts(y.shape[2], y.shape[3])
    tiles = n_img * tiles_h * tiles_w
    u = cuda.device_array((16 * out_ch, c_per_group), dtype=np.float32)
    v = cuda.device_array((16 * channels, tiles), dtype=np.float32)
    m = cuda.device_array((16 * out_ch, tiles), dtype=np.float32)
    weight_transform_kernel[blocks(out_ch * c_per_group, THREADS), THREADS](w, u)
    input_transform_kernel[blocks(channels * tiles, THREADS), THREADS](
        x, v, padding, tiles_h, tiles_w)
    gemm(v.reshape(1, 16 * channels, 1, tiles), u.reshape(16 * out_ch, c_per_group, 1, 1),
         _zeros_on_device(16 * out_ch), m.reshape(1, 16 * out_ch, 1, tiles), 16 * groups)
    output_transform_kernel[blocks(out_ch * tiles, THREADS), THREADS](
        m, b, y, tiles_h, tiles_w, relu)
