"""Winograd's products, register-blocked: the GEMMs of versions 12 and 13.

Winograd F(4x4, 3x3) turns a convolution into 36 independent matrix
products, one per point xi of the 6 x 6 transform:

    M[xi] (tiles, O) = V[xi] (tiles, K) @ U[xi] (K, O)

Versions 8-10 hand them to OpenBLAS (parallel_gemm.gemm_batch). At batch
1 a 13 x 13 map has 16 tiles: 36 products of 16 rows each, and OpenBLAS
reaches about 50 GFLOP/s on them, less than the direct kernel's (version
11) 140 on the same layer, which does 2.6 times the multiply-adds. At
batch 8 (128 rows) OpenBLAS gets about 95 GFLOP/s on conv3's products,
this kernel 110, so the backend runs this version for every stride-1
convolution at every batch. This kernel is the direct kernel's
micro-kernel (numalex/kernels/microkernel.py) applied to those products:
6 rows x 16 output channels of M per block, their 96 sums in twelve vector
registers for the whole reduction over K, one broadcast of V and two
vector loads of U per step.

U is packed once per weight (pack_panels): for every xi, blocks of 16
output channels, each a (K, 16) panel of consecutive floats, so a block
reads its weights as one stream. The blocks of one panel follow each
other (tile blocks innermost), so the panel is read from memory once and
reused from the cache. At batch 1 reading U is what bounds the layer: U
holds 4 times the weights (36 values per 3 x 3 kernel), 10.6 MB for
AlexNet's conv3.

Version 13 is the same products behind version 10's space-to-depth, for
strided kernels (AlexNet's conv1 from batch 8).
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .microkernel import LANES, ROWS, multiply_add_run, zeros
from .simd import add8, load8, store8
from .winograd import conv_winograd, supports, transformed_weights
from .winograd_f4 import F4, conv_space_to_depth_winograd, folded_transform, folds_to_winograd


def pack_panels(u: np.ndarray, groups: int) -> np.ndarray:
    """u: (S, P, K, O) (winograd.transformed_weights: shifts, points, depth,
    output channels) -> (S, G, P, B, K, 16): for each shift, group and
    point, the group's O/G output channels in B blocks of 16, each block a
    (K, 16) panel; channels past O/G in the last block are zeros."""
    shifts, points, depth, out_ch = u.shape
    per_group = out_ch // groups
    blocks = -(-per_group // LANES)
    padded = np.zeros((shifts, points, depth, groups, blocks * LANES), dtype=np.float32)
    padded[..., :per_group] = u.reshape(shifts, points, depth, groups, per_group)
    by_block = padded.reshape(shifts, points, depth, groups, blocks, LANES)
    return np.ascontiguousarray(by_block.transpose(0, 3, 1, 4, 2, 5))


@njit(inline="always")
def _store(m, at, lanes, sum0, sum1, accumulate):
    """m[at : at+lanes] (+)= the first `lanes` of the 16 sums."""
    if lanes == LANES:
        if accumulate:
            sum0, sum1 = add8(sum0, load8(m, at)), add8(sum1, load8(m, at + 8))
        store8(m, at, sum0)
        store8(m, at + 8, sum1)
    else:                                           # the last block of a group: some lanes
        sums = np.empty(LANES, dtype=np.float32)
        store8(sums, 0, sum0)
        store8(sums, 8, sum1)
        for lane in range(lanes):
            m[at + lane] = sums[lane] + (m[at + lane] if accumulate else np.float32(0.0))


@njit(parallel=True, cache=True)
def products(v, v_shape, first_row, first_depth, panels, blocks, m, m_shape, first_out,
             out_count, accumulate):
    """m[xi, t, first_out + o] (+)= sum over k of
    v[xi, first_row + t, first_depth + k] * U[xi, k, o]
    for every point xi, row t < m_shape[1] and o < out_count.

    v: flat (P, R, D), C-contiguous; panels: flat (P, blocks, K, 16), one
    shift and group of pack_panels; m: flat (P, T, O). Sizes come checked
    from the caller. One task per (point, block of 16 channels, block of 6
    rows), rows innermost; a last row block with fewer than 6 rows repeats
    its last row in the spare ones and stores only the real ones.
    """
    points, rows_v, depth_v = v_shape
    _, rows, out_ch = m_shape
    depth = panels.size // (points * blocks * LANES)
    row_blocks = -(-rows // ROWS)
    for task in prange(points * blocks * row_blocks):
        xi, rest = task // (blocks * row_blocks), task % (blocks * row_blocks)
        block, row_block = rest // row_blocks, rest % row_blocks
        first, last = row_block * ROWS, rows - 1
        base = (xi * rows_v + first_row) * depth_v + first_depth
        a0 = base + first * depth_v
        a1 = base + min(first + 1, last) * depth_v
        a2 = base + min(first + 2, last) * depth_v
        a3 = base + min(first + 3, last) * depth_v
        a4 = base + min(first + 4, last) * depth_v
        a5 = base + min(first + 5, last) * depth_v
        panel = (xi * blocks + block) * depth * LANES
        sums = multiply_add_run(v, (a0, a1, a2, a3, a4, a5), panels, panel, depth, zeros())
        s00, s01, s10, s11, s20, s21, s30, s31, s40, s41, s50, s51 = sums
        o = block * LANES
        lanes = min(LANES, out_count - o)
        real = min(ROWS, rows - first)
        at = (xi * rows + first) * out_ch + first_out + o
        _store(m, at, lanes, s00, s01, accumulate)
        if real > 1:
            _store(m, at + out_ch, lanes, s10, s11, accumulate)
        if real > 2:
            _store(m, at + 2 * out_ch, lanes, s20, s21, accumulate)
        if real > 3:
            _store(m, at + 3 * out_ch, lanes, s30, s31, accumulate)
        if real > 4:
            _store(m, at + 4 * out_ch, lanes, s40, s41, accumulate)
        if real > 5:
            _store(m, at + 5 * out_ch, lanes, s50, s51, accumulate)


def multiply(rows, panels, m, shifts, frame_w, groups):
    """winograd.blas_products with this module's kernel: M[xi] (+)= V[xi]
    (shifted by whole tiles) @ U[s, xi] for every shift s and group.

    rows: V, (P, tiles + tail, G*K*Cg), C-contiguous; panels:
    pack_panels(U, G), (S, G, P, B, K*Cg, 16); m: (P, tiles, O), written."""
    depth, out_ch = rows.shape[2], m.shape[2]
    for g in range(groups):
        for s, (th, tw) in enumerate(shifts):
            products(rows.reshape(-1), rows.shape, th * frame_w + tw, g * depth // groups,
                     panels[s, g].reshape(-1), panels.shape[3], m.reshape(-1), m.shape,
                     g * out_ch // groups, out_ch // groups, s > 0)


def transformed_panels(w: np.ndarray, groups: int) -> np.ndarray:
    """What version 12 reads of a weight w (O, Cg, kh, kw): its F(4x4, 3x3)
    transform, packed. Computed once per weight (numba_cpu keeps it)."""
    return pack_panels(transformed_weights(w, F4), groups)


def conv_winograd_products(x, w, b, stride=1, padding=0, groups=1, dilation=1, relu=False,
                           pool=None, u=None):
    """Version 12 (kernels from 2 x 2 up, stride 1, no dilation): version 9,
    Winograd F(4x4, 3x3), with the products in this module's kernel instead
    of OpenBLAS. u: transformed_panels(w, groups) if known."""
    if not supports(w.shape[2:], stride, dilation):
        raise ValueError(f"conv_winograd_products needs a kernel of at least 2 x 2, stride 1 "
                         f"and dilation 1, got kernel {tuple(w.shape[2:])}, stride {stride}, "
                         f"dilation {dilation}")
    panels = transformed_panels(w, groups) if u is None else u
    return conv_winograd(x, w, b, stride, padding, groups, dilation, relu, pool, u=panels,
                         scheme=F4, products=multiply)


def folded_panels(w: np.ndarray, stride: int, dilation: int, groups: int) -> np.ndarray:
    """What version 13 reads of a strided weight: the F(4x4, 3x3) transform
    of its space-to-depth fold (winograd_f4.folded_transform), packed."""
    return pack_panels(folded_transform(w, stride, dilation), groups)


def conv_space_to_depth_winograd_products(x, w, b, stride=1, padding=0, groups=1, dilation=1,
                                          relu=False, pool=None, u=None):
    """Version 13 (strides above 1): version 10, space-to-depth and Winograd
    F(4x4, 3x3), with this module's products instead of OpenBLAS's.
    AlexNet's conv1 (11x11 at stride 4 on 3 channels: 3x3 on 48 after the
    fold), two Zen 3 cores, one call: batch 32, 43.8 ms against 47.4 for
    version 10; batch 8, 11.7 against 12.3. u: folded_panels(w, stride,
    dilation, groups) if known."""
    if not folds_to_winograd(w.shape[2:], stride, dilation):
        raise ValueError(f"conv_space_to_depth_winograd_products needs a stride above 1 (at "
                         f"stride 1 use version 12) and a kernel of at least 2 x 2 strides, "
                         f"got kernel {tuple(w.shape[2:])}, stride {stride}, dilation {dilation}")
    panels = folded_panels(w, stride, dilation, groups) if u is None else u
    return conv_space_to_depth_winograd(x, w, b, stride, padding, groups, dilation, relu, pool,
                                        u=panels, products=multiply)
