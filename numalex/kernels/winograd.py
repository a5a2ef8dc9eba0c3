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
fewer of them, and the alpha^2 independent products run side by side, one
per thread (parallel_gemm.gemm_batch); the transforms and layout changes
are single vectorised passes. The results differ from direct convolution
by rounding only (the transforms' entries are 0, +-1 and +-1/2).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from numba import njit, prange

from . import parallel_gemm, pooling
from .conv import scratch
from .winograd_tiling import block_plan, split_kernel, tiling

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
def pad_rows(x, padding, out):
    """x: (N, H, W, C) channels-last -> out: (N, Hp, Wp, C), out[n, r + p,
    q + p] = x[n, r, q], zeros elsewhere: pad_channels_last for an input
    that is channels-last already (the output of the conv before), one
    contiguous row copy per (image, padded row) task instead of a transpose."""
    n_img, h, wd, c_in = x.shape
    hp, wp = out.shape[1], out.shape[2]
    for task in prange(n_img * hp):
        n, row = task // hp, task % hp
        r = row - padding
        for q in range(wp):
            inside = 0 <= r < h and padding <= q < padding + wd
            for c in range(c_in):
                out[n, row, q, c] = x[n, r, q - padding, c] if inside else 0.0


@njit(cache=True)
def add_bias_in_place(z, b, relu):
    """z[p, o] += b[o] (then max(., 0) if `relu`); z: (pixels, O). One
    contiguous pass on the calling thread (memory-bound, like
    conv.add_bias_to_nchw)."""
    for p in range(z.shape[0]):
        for o in range(z.shape[1]):
            v = z[p, o] + b[o]
            z[p, o] = np.float32(0.0) if relu and v < 0 else v


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
def transform_input(xp, slots, groups, tiles_h, tiles_w, v):
    """V = B^T d B for every 4 x 4 input tile d, all channels, every slot at once.

    xp: (N, Hp, Wp, C) zero-padded, channels-last; slots: (K, 2), the
    (row, column) offset at which each slot's tiles start (block_plan);
    v: (16, N*tiles_h*tiles_w + tail, G*K*Cg), C-contiguous. Tile (ty, tx)
    of image n and slot k covers padded rows slots[k, 0] + 2*ty ... + 3 and
    columns slots[k, 1] + 2*tx ... + 3; its channels of group g land in
    columns (g*K + k)*Cg ... + Cg - 1 of row t = (n*tiles_h + ty)*tiles_w + tx
    of each v[xi]. The innermost loop runs over channels: 16 contiguous
    loads, additions, 16 contiguous stores. One row of tiles per task.
    """
    n_img, c_in = xp.shape[0], xp.shape[3]
    c_per_group, n_slots = c_in // groups, slots.shape[0]
    for task in prange(n_img * tiles_h):
        n, ty = task // tiles_h, task % tiles_h
        for tx in range(tiles_w):
            t = task * tiles_w + tx
            for k in range(n_slots):
                r, q = slots[k, 0] + 2 * ty, slots[k, 1] + 2 * tx
                for g in range(groups):
                    first_in, first_out = g * c_per_group, (g * n_slots + k) * c_per_group
                    for c in range(c_per_group):
                        ci, co = first_in + c, first_out + c
                        # B^T d: the tile's four rows mixed, one column at a time
                        s00, s10, s20, s30 = _mix(xp[n, r, q, ci], xp[n, r + 1, q, ci],
                                                  xp[n, r + 2, q, ci], xp[n, r + 3, q, ci])
                        s01, s11, s21, s31 = _mix(xp[n, r, q + 1, ci], xp[n, r + 1, q + 1, ci],
                                                  xp[n, r + 2, q + 1, ci],
                                                  xp[n, r + 3, q + 1, ci])
                        s02, s12, s22, s32 = _mix(xp[n, r, q + 2, ci], xp[n, r + 1, q + 2, ci],
                                                  xp[n, r + 2, q + 2, ci],
                                                  xp[n, r + 3, q + 2, ci])
                        s03, s13, s23, s33 = _mix(xp[n, r, q + 3, ci], xp[n, r + 1, q + 3, ci],
                                                  xp[n, r + 2, q + 3, ci],
                                                  xp[n, r + 3, q + 3, ci])
                        # (B^T d) B: each mixed row mixed along its columns
                        v[0, t, co], v[1, t, co], v[2, t, co], v[3, t, co] = _mix(
                            s00, s01, s02, s03)
                        v[4, t, co], v[5, t, co], v[6, t, co], v[7, t, co] = _mix(
                            s10, s11, s12, s13)
                        v[8, t, co], v[9, t, co], v[10, t, co], v[11, t, co] = _mix(
                            s20, s21, s22, s23)
                        v[12, t, co], v[13, t, co], v[14, t, co], v[15, t, co] = _mix(
                            s30, s31, s32, s33)


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


@dataclass(frozen=True)
class Scheme:
    """One Winograd algorithm F(m x m, 3 x 3): its tile sizes and transforms.

    transform_weights(w (O, Cg, 3, 3), u (alpha^2, Cg, O)),
    transform_input(xp, slots (K, 2), groups, tiles_h, tiles_w, v (alpha^2, tiles, G*K*Cg)),
    transform_output(m (alpha^2, tiles, O), frame_hw, ho, wo, z (pixels, O))."""

    name: str
    tile: int                   # m: outputs per tile side
    alpha: int                  # inputs per tile side: m + 2
    transform_weights: Callable
    transform_input: Callable
    transform_output: Callable


F2 = Scheme("F(2x2, 3x3)", 2, 4, transform_weights, transform_input, transform_output)


def transformed_weights(w: np.ndarray, scheme: Scheme = F2) -> np.ndarray:
    """U of a (O, Cg, kh, kw) float32 weight, stacked for conv_winograd:
    (shifts, alpha^2, slots*Cg, O) (block_plan). For each shift, the U of
    the blocks in the slots one above the other (zeros where a slot has no
    block at that shift), so that one GEMM of depth slots*Cg sums them all.
    A weight that is used many times can keep it (numba_cpu does that)."""
    blocks = split_kernel(w)
    slots, shifts, table = block_plan(blocks.shape[:2], scheme.tile)
    c_per_group, points = w.shape[1], scheme.alpha ** 2
    u = np.zeros((len(shifts), points, len(slots), c_per_group, w.shape[0]), dtype=np.float32)
    for s, row in enumerate(table):
        for k, block in enumerate(row):
            if block is not None:
                scheme.transform_weights(blocks[block], u[s, :, k])
    return u.reshape(len(shifts), points, len(slots) * c_per_group, w.shape[0])


def blas_products(rows, u, m, shifts, frame_w, groups):
    """M[xi] (+)= V[xi] (shifted by whole tiles) @ U[s, xi] for every shift s
    and group, every point xi, by OpenBLAS (parallel_gemm.gemm_batch).

    rows: V, (alpha^2, tiles + tail, G*K*Cg); u: transformed_weights,
    (S, alpha^2, K*Cg, O); m: (alpha^2, tiles, O), written."""
    depth, positions, out_ch = rows.shape[2], m.shape[1], m.shape[2]
    for g in range(groups):
        ins = slice(g * depth // groups, (g + 1) * depth // groups)   # group g, K slots
        outs = slice(g * out_ch // groups, (g + 1) * out_ch // groups)
        for s, (th, tw) in enumerate(shifts):
            off = th * frame_w + tw
            parallel_gemm.gemm_batch(rows[:, off:off + positions, ins], u[s, :, :, outs],
                                     m[:, :, outs], accumulate=s > 0)


def conv_winograd(x, w, b, stride=1, padding=0, groups=1, dilation=1, relu=False,
                  pool=None, budget=BUDGET_BYTES, u=None, scheme=F2, products=blas_products):
    """Version 8 (kernels from 2 x 2 up, stride 1, no dilation): Winograd
    F(2x2, 3x3); with winograd_f4.F4 as the scheme, version 9: F(4x4, 3x3).

    A bigger kernel is cut into 3 x 3 blocks at even offsets (split_kernel:
    a 5 x 5 kernel into four), and block_plan sorts them by where they read
    the input. Blocks that start a whole number of tiles further on read
    the same V, shifted by whole tiles (the shifted-GEMM trick of version
    5, on tiles): more GEMMs added into the same M. Blocks that start
    inside a tile (F(4x4, 3x3) on 5 x 5: offset 2 of a 4-tile) get a V of
    their own, a slot; the slots sit side by side along the channels, so
    one GEMM of depth slots*Cg sums all of them (fewer, deeper GEMMs, and
    M is written once). V covers a frame of Fh x Fw tiles per image, as
    many more than the output needs as the largest shift (junk, not read back).

    For each chunk of images: pad channels-last, V = transform_input per
    slot, M[xi] += V[xi] (shifted) @ U[shift, xi] per shift and group
    (`products`: blas_products, or version 12's register-blocked kernel),
    z = transform_output(M), then bias (+ ReLU), or with
    pool=(kernel, stride, padding, ceil_mode) the fused max pool of the
    shifted GEMMs (pooling.max_pool_pixels_major). u: the weight's
    transform if already known (transformed_weights(w, scheme), or what
    `products` reads instead).

    One layout from layer to layer: the output is channels-last in memory,
    (N, Ho, Wo, O), returned as its (N, O, Ho, Wo) view, so no pass
    transposes it to NCHW; the next Winograd conv finds its input
    channels-last already and pads it with row copies (pad_rows). Any
    other reader sees an ordinary NCHW array (NumPy follows the strides).
    """
    if not supports(w.shape[2:], stride, dilation):
        raise ValueError(f"conv_winograd needs a kernel of at least 2 x 2, stride 1 and "
                         f"dilation 1, got kernel {tuple(w.shape[2:])}, stride {stride}, "
                         f"dilation {dilation}")
    n_img, c_in = x.shape[:2]
    out_ch = w.shape[0]
    t = tiling(x.shape, w.shape, padding, None if pool is None else tuple(pool), scheme.tile,
               scheme.alpha, budget)
    ho, wo = t.out_hw
    frame_h, frame_w = t.frame_hw
    # u: (S, alpha^2, K*Cg, O), or the form `products` reads
    u = transformed_weights(w, scheme) if u is None else u
    y_channels_last = np.empty((n_img,) + t.y_hw + (out_ch,), dtype=np.float32)
    y = y_channels_last.transpose(0, 3, 1, 2)                  # (N, O, Ho, Wo), a view
    x_channels_last = x.transpose(0, 2, 3, 1)                  # contiguous if a conv wrote x
    xp_all = scratch.take("winograd padded", t.chunk * t.padded[0] * t.padded[1] * c_in)
    v_all = scratch.take("winograd input", t.points * (t.chunk * t.frame + t.tail) * t.depth)
    m_all = scratch.take("winograd product", t.points * t.chunk * t.frame * out_ch)
    z_all = scratch.take("winograd output", t.chunk * ho * wo * out_ch if pool else 0)
    for start in range(0, n_img, t.chunk):
        n = min(n_img, start + t.chunk) - start
        positions = n * t.frame
        xp = xp_all[:n * t.padded[0] * t.padded[1] * c_in].reshape((n,) + t.padded + (c_in,))
        v = v_all[:t.points * (positions + t.tail) * t.depth]
        m = m_all[:t.points * positions * out_ch].reshape(t.points, positions, out_ch)
        z = (y_channels_last[start:start + n] if pool is None     # the output itself
             else z_all[:n * ho * wo * out_ch]).reshape(n * ho * wo, out_ch)
        if x_channels_last.flags.c_contiguous:
            pad_rows(x_channels_last[start:start + n], padding, xp)
        else:
            pad_channels_last(x[start:start + n], padding, xp)
        rows = v.reshape(t.points, positions + t.tail, t.depth)   # (alpha^2, tiles, G*K*Cg)
        scheme.transform_input(xp, t.slot_offsets, groups, frame_h, frame_w, rows)
        rows[:, positions:] = 0.0                               # read by junk tiles only
        products(rows, u, m, t.shifts, frame_w, groups)
        scheme.transform_output(m, t.frame_hw, ho, wo, z)
        if pool is None:
            add_bias_in_place(z, b, relu)
        else:
            kernel, pool_stride, pool_padding, _ = pool
            pooling.max_pool_pixels_major(z, ho, wo, (ho, wo), kernel, pool_stride,
                                          pool_padding, b, relu, y_channels_last[start:start + n])
    return y
