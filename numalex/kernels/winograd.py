"""Version 8 of the convolution ladder: Winograd's minimal filtering F(2x2, 3x3).

A 3x3 convolution (stride 1, no dilation) computes each 2 x 2 block of
outputs from a 4 x 4 tile of inputs: 36 multiply-adds per channel pair
directly. Winograd's F(2x2, 3x3) gets the same four numbers with 16
multiplications, by moving tile and kernel into a basis where the
convolution is an elementwise product (Lavin and Gray, "Fast Algorithms for
Convolutional Neural Networks", 2015):

    Y = A^T [ (G g G^T) * (B^T d B) ] A        (* elementwise, 4 x 4)

g: the 3x3 kernel of one (output, input) channel pair, d: a 4 x 4 input
tile, Y: its 2 x 2 outputs. Summed over input channels, the elementwise
product becomes 16 matrix products, one per position xi of the 4 x 4
transformed tile:

    M[xi] (tiles, O) = V[xi] (tiles, C) @ U[xi] (C, O)

with V = B^T d B for every tile and channel and U = G g G^T for every
channel pair. 16 products of depth C over a quarter of the pixels, where
the shifted GEMMs (version 5) run 9 over all of them: 2.25x fewer
multiply-adds. The price is the transforms, passes of additions only.
Larger kernels (AlexNet's 5x5 conv2) are cut into 3x3 blocks at even
offsets (split_kernel); every block reuses the same V, shifted by whole
tiles, and adds into the same M (conv_winograd).

Everything in between is channels-last (a pixel's channels side by side):
then every step of a transform is the same addition on C (or O)
neighbouring floats, which vectorises, and M comes out pixel-major, which
the epilogues of the shifted GEMMs already take (a transpose to NCHW with
the bias, or the fused max pool).

Why it is fast: the multiply-adds are still all in OpenBLAS's GEMM, just
fewer of them; the transforms and layout changes are single vectorised
passes. The results differ from direct convolution by rounding only (the
transforms' entries are 0, +-1 and +-1/2).
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..shapes import conv_output_size
from . import blas, pooling
from .conv import add_bias_to_nchw_from_rows, scratch

# Transformed tiles of at most this many bytes (V and M together) at once.
BUDGET_BYTES = 64 * 2**20


def supports(kernel_hw, stride, dilation) -> bool:
    """Does version 8 apply: a kernel of at least 2 x 2 (3 x 3 blocks),
    stride 1, no dilation."""
    return min(kernel_hw) >= 2 and stride == 1 and dilation == 1


@njit(inline="always")
def _mix(a, b, c, d):
    """A 4-vector through B^T, the input transform: (a - c, b + c, c - b, b - d)."""
    return a - c, b + c, c - b, b - d


@njit(inline="always")
def _spread(a, b, c):
    """A 3-vector through G, the kernel transform:
    (a, (a + b + c)/2, (a - b + c)/2, c)."""
    half = np.float32(0.5)
    return a, half * (a + b + c), half * (a - b + c), c


@njit(inline="always")
def _gather(a, b, c, d):
    """A 4-vector through A^T, the output transform: (a + b + c, b - c - d)."""
    return a + b + c, b - c - d


@njit(parallel=True, cache=True)
def transform_weights(w, u):
    """U = G g G^T for every (output, input) channel pair.
    w: (O, Cg, 3, 3) -> u: (16, Cg, O), position xi = 4*row + column."""
    out_ch, c_per_group = w.shape[0], w.shape[1]
    for c in prange(c_per_group):
        for o in range(out_ch):
            # G g: each column of the kernel spread to four rows (w indexed
            # whole: a view made inside a parallel loop costs an atomic
            # reference count update, which the threads fight over)
            a0, b0, c0, d0 = _spread(w[o, c, 0, 0], w[o, c, 1, 0], w[o, c, 2, 0])
            a1, b1, c1, d1 = _spread(w[o, c, 0, 1], w[o, c, 1, 1], w[o, c, 2, 1])
            a2, b2, c2, d2 = _spread(w[o, c, 0, 2], w[o, c, 1, 2], w[o, c, 2, 2])
            # (G g) G^T: each of those rows spread to four columns
            u[0, c, o], u[1, c, o], u[2, c, o], u[3, c, o] = _spread(a0, a1, a2)
            u[4, c, o], u[5, c, o], u[6, c, o], u[7, c, o] = _spread(b0, b1, b2)
            u[8, c, o], u[9, c, o], u[10, c, o], u[11, c, o] = _spread(c0, c1, c2)
            u[12, c, o], u[13, c, o], u[14, c, o], u[15, c, o] = _spread(d0, d1, d2)


@njit(parallel=True, cache=True)
def pad_channels_last(x, padding, out):
    """x: (N, C, H, W) -> out: (N, Hp, Wp, C), out[n, r + p, q + p, c] =
    x[n, c, r, q], zeros elsewhere (rows and columns past the input too).
    One (image, padded row) per task: zeros, then the input row's (C, W)
    block transposed to (W, C)."""
    n_img, c_in, h, wd = x.shape
    hp, wp = out.shape[1], out.shape[2]
    for task in prange(n_img * hp):
        n, row = task // hp, task % hp
        for q in range(wp):
            for c in range(c_in):
                out[n, row, q, c] = 0.0
        r = row - padding                                   # the input row, if any
        if 0 <= r < h:
            for c in range(c_in):
                for q in range(min(wd, wp - padding)):
                    out[n, row, q + padding, c] = x[n, c, r, q]


@njit(parallel=True, cache=True)
def transform_input(xp, tiles_h, tiles_w, v):
    """V = B^T d B for every 4 x 4 input tile d, all channels at once.

    xp: (N, Hp, Wp, C) zero-padded, channels-last; v: (16, N*tiles_h*tiles_w, C).
    Tile (ty, tx) of image n covers padded rows 2*ty ... 2*ty + 3 and
    columns 2*tx ... 2*tx + 3 and is row t = (n*tiles_h + ty)*tiles_w + tx
    of each v[xi]. The innermost loop runs over channels: 16 contiguous
    loads, additions, 16 contiguous stores. One row of tiles per task.
    """
    n_img, c_in = xp.shape[0], xp.shape[3]
    for task in prange(n_img * tiles_h):
        n, ty = task // tiles_h, task % tiles_h
        r = 2 * ty
        for tx in range(tiles_w):
            t, q = task * tiles_w + tx, 2 * tx
            for c in range(c_in):
                # B^T d: the tile's four rows mixed, one column at a time
                s00, s10, s20, s30 = _mix(xp[n, r, q, c], xp[n, r + 1, q, c],
                                          xp[n, r + 2, q, c], xp[n, r + 3, q, c])
                s01, s11, s21, s31 = _mix(xp[n, r, q + 1, c], xp[n, r + 1, q + 1, c],
                                          xp[n, r + 2, q + 1, c], xp[n, r + 3, q + 1, c])
                s02, s12, s22, s32 = _mix(xp[n, r, q + 2, c], xp[n, r + 1, q + 2, c],
                                          xp[n, r + 2, q + 2, c], xp[n, r + 3, q + 2, c])
                s03, s13, s23, s33 = _mix(xp[n, r, q + 3, c], xp[n, r + 1, q + 3, c],
                                          xp[n, r + 2, q + 3, c], xp[n, r + 3, q + 3, c])
                # (B^T d) B: each mixed row mixed along its columns
                v[0, t, c], v[1, t, c], v[2, t, c], v[3, t, c] = _mix(s00, s01, s02, s03)
                v[4, t, c], v[5, t, c], v[6, t, c], v[7, t, c] = _mix(s10, s11, s12, s13)
                v[8, t, c], v[9, t, c], v[10, t, c], v[11, t, c] = _mix(s20, s21, s22, s23)
                v[12, t, c], v[13, t, c], v[14, t, c], v[15, t, c] = _mix(s30, s31, s32, s33)


@njit(parallel=True, cache=True)
def transform_output(m, frame_hw, ho, wo, z):
    """Y = A^T m A for every tile, all output channels at once.

    m: (16, N*Fh*Fw + tail, O), tile (ty, tx) of image n at row
    t = (n*Fh + ty)*Fw + tx, frame_hw = (Fh, Fw) -> z: (N*Ho*Wo, O),
    pixel-major: output (i, j) of image n is row (n*Ho + i)*Wo + j. Tile
    (ty, tx) gives outputs 2*ty, 2*ty + 1 x 2*tx, 2*tx + 1, cut off at Ho
    and Wo (an odd output size leaves half a tile unused); frame tiles past
    the output are junk and not read. The bias is left to the epilogue.
    One row of tiles per task, channels innermost.
    """
    out_ch = m.shape[2]
    frame_h, frame_w = frame_hw
    tiles_h, tiles_w = (ho + 1) // 2, (wo + 1) // 2
    for task in prange(z.shape[0] // (ho * wo) * tiles_h):
        n, ty = task // tiles_h, task % tiles_h
        rows = min(2, ho - 2 * ty)
        for tx in range(tiles_w):
            t, cols = (n * frame_h + ty) * frame_w + tx, min(2, wo - 2 * tx)
            first = (n * ho + 2 * ty) * wo + 2 * tx               # row of output (2ty, 2tx)
            for o in range(out_ch):
                # A^T m: the four rows of m gathered into two, per column
                top0, bottom0 = _gather(m[0, t, o], m[4, t, o], m[8, t, o], m[12, t, o])
                top1, bottom1 = _gather(m[1, t, o], m[5, t, o], m[9, t, o], m[13, t, o])
                top2, bottom2 = _gather(m[2, t, o], m[6, t, o], m[10, t, o], m[14, t, o])
                top3, bottom3 = _gather(m[3, t, o], m[7, t, o], m[11, t, o], m[15, t, o])
                # (A^T m) A: two columns from four, per row
                y00, y01 = _gather(top0, top1, top2, top3)
                y10, y11 = _gather(bottom0, bottom1, bottom2, bottom3)
                z[first, o] = y00
                if cols == 2:
                    z[first + 1, o] = y01
                if rows == 2:
                    z[first + wo, o] = y10
                    if cols == 2:
                        z[first + wo + 1, o] = y11


def split_kernel(w: np.ndarray) -> np.ndarray:
    """Cut a k x k kernel into 3 x 3 blocks at offsets (2*bu, 2*bv) that add
    up to it: (O, Cg, kh, kw) -> (kh//2, kw//2, O, Cg, 3, 3). Along each
    axis block b takes taps 2b and 2b + 1, the last block the rest (two or
    three); missing taps are zeros. A 3x3 kernel is one block, itself."""
    out_ch, c_per_group, kh, kw = w.shape
    blocks_h, blocks_w = kh // 2, kw // 2
    blocks = np.zeros((blocks_h, blocks_w, out_ch, c_per_group, 3, 3), dtype=np.float32)
    for bu in range(blocks_h):
        r0, r1 = 2 * bu, (kh if bu == blocks_h - 1 else 2 * bu + 2)
        for bv in range(blocks_w):
            q0, q1 = 2 * bv, (kw if bv == blocks_w - 1 else 2 * bv + 2)
            blocks[bu, bv, :, :, :r1 - r0, :q1 - q0] = w[:, :, r0:r1, q0:q1]
    return blocks


def transformed_weights(w: np.ndarray) -> np.ndarray:
    """U of every 3 x 3 block of a (O, Cg, kh, kw) float32 weight:
    (kh//2, kw//2, 16, Cg, O). A weight that is used many times can carry
    it (numba_cpu.prepare_params does that)."""
    blocks = split_kernel(w)
    u = np.empty(blocks.shape[:2] + (16, w.shape[1], w.shape[0]), dtype=np.float32)
    for bu in range(blocks.shape[0]):
        for bv in range(blocks.shape[1]):
            transform_weights(blocks[bu, bv], u[bu, bv])
    return u


def conv_winograd(x, w, b, stride=1, padding=0, groups=1, dilation=1, relu=False,
                  pool=None, budget=BUDGET_BYTES, u=None):
    """Version 8 (kernels from 2 x 2 up, stride 1, no dilation): Winograd
    F(2x2, 3x3).

    A bigger kernel is cut into 3 x 3 blocks at even offsets (split_kernel:
    a 5 x 5 kernel into four). Block (bu, bv) reads the input tile 2*bu
    rows and 2*bv columns further on: tile (ty + bu, tx + bv) of the same
    grid, so one V serves all blocks, and each block is 16 more GEMMs on V
    shifted by bu*Fw + bv tiles, added into the same M: the shifted-GEMM
    trick of version 5, on tiles. V covers a frame of Fh x Fw tiles per
    image, (blocks - 1) more than the output needs (junk, not read back).

    For each chunk of images: pad channels-last, V = transform_input,
    M[xi] = sum over blocks of V[xi] (shifted) @ U[block, xi] (per group),
    z = transform_output(M), then bias (+ ReLU) to NCHW, or with
    pool=(kernel, stride, padding, ceil_mode) the fused max pool of the
    shifted GEMMs (pooling.max_pool_pixels_major). u: the weight's
    transform if already known (transformed_weights(w)).
    """
    if not supports(w.shape[2:], stride, dilation):
        raise ValueError(f"conv_winograd needs a kernel of at least 2 x 2, stride 1 and "
                         f"dilation 1, got kernel {tuple(w.shape[2:])}, stride {stride}, "
                         f"dilation {dilation}")
    n_img, c_in, h, wd = x.shape
    out_ch, c_per_group, kh, kw = w.shape
    o_per_group = out_ch // groups
    ho, wo = conv_output_size(h, kh, 1, padding), conv_output_size(wd, kw, 1, padding)
    u = transformed_weights(w) if u is None else u              # (Bh, Bw, 16, Cg, O)
    blocks_h, blocks_w = u.shape[:2]
    frame_h, frame_w = (ho + 1) // 2 + blocks_h - 1, (wo + 1) // 2 + blocks_w - 1
    frame = frame_h * frame_w                                   # tiles per image
    tail = (blocks_h - 1) * frame_w + blocks_w - 1              # what the last shifts read
    y_hw = (ho, wo) if pool is None else tuple(
        conv_output_size(n, pool[0], pool[1], pool[2], ceil_mode=pool[3]) for n in (ho, wo))
    y = np.empty((n_img, out_ch) + y_hw, dtype=np.float32)
    padded = (2 * frame_h + 2, 2 * frame_w + 2)                 # the rows, columns tiles read
    per_image = 4 * (padded[0] * padded[1] * c_in + 16 * frame * (c_in + out_ch)
                     + ho * wo * out_ch)
    chunk = -(-n_img // -(-n_img // max(1, budget // per_image)))   # equal chunks
    xp_all = scratch.take("winograd padded", chunk * padded[0] * padded[1] * c_in)
    v_all = scratch.take("winograd input", 16 * (chunk * frame + tail) * c_in)
    m_all = scratch.take("winograd product", 16 * chunk * frame * out_ch)
    z_all = scratch.take("winograd output", chunk * ho * wo * out_ch)
    for start in range(0, n_img, chunk):
        n = min(n_img, start + chunk) - start
        positions = n * frame
        xp = xp_all[:n * padded[0] * padded[1] * c_in].reshape((n,) + padded + (c_in,))
        v = v_all[:16 * (positions + tail) * c_in].reshape(16, positions + tail, c_in)
        m = m_all[:16 * positions * out_ch].reshape(16, positions, out_ch)
        z = z_all[:n * ho * wo * out_ch].reshape(n * ho * wo, out_ch)
        pad_channels_last(x[start:start + n], padding, xp)
        transform_input(xp, frame_h, frame_w, v)
        v[:, positions:] = 0.0                                  # read by junk tiles only
        for xi in range(16):
            for g in range(groups):
                ins = slice(g * c_per_group, (g + 1) * c_per_group)
                outs = slice(g * o_per_group, (g + 1) * o_per_group)
                for bu in range(blocks_h):
                    for bv in range(blocks_w):
                        off = bu * frame_w + bv
                        blas.gemm(v[xi, off:off + positions, ins], u[bu, bv, xi, :, outs],
                                  m[xi, :, outs], accumulate=(bu, bv) != (0, 0))
        transform_output(m, (frame_h, frame_w), ho, wo, z)
        if pool is None:
            add_bias_to_nchw_from_rows(z.reshape(n, ho * wo, out_ch), b, relu,
                                       y[start:start + n].reshape(n, out_ch, ho * wo))
        else:
            kernel, pool_stride, pool_padding, _ = pool
            pooling.max_pool_pixels_major(z, ho, wo, (ho, wo), kernel, pool_stride,
                                          pool_padding, b, relu, y[start:start + n])
    return y
