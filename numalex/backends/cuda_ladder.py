"""The GPU convolution ladder: every version kept, numbered, and one rule for
which runs.

    version  file                  what it changes, and why it is faster
    1        cuda_conv_naive.py    one thread per output, straight from global
                                   memory: the definition, memory-bound
    2        cuda_gemm.py          implicit GEMM on shared-memory tiles: each value
                                   loaded from global memory is reused by a whole
                                   tile row or column (one output per thread)
    3        cuda_gemm_blocked.py  register blocking: tm x tn outputs per thread,
                                   tm + tn shared loads per tm * tn FMAs; conflict-
                                   free tile layouts
    4        cuda_gemm_blocked.py  3 with no index math in the K loop (a table of
                                   32-bit offsets) and double-buffered tiles (one
                                   barrier per step, global loads in flight
                                   during the FMAs)
    5        cuda_winograd.py      3x3 stride-1 only: Winograd F(2x2, 3x3), 2.25x
                                   fewer multiply-adds; its 16 products run as
                                   one grouped GEMM of this ladder

``benchmarks/cuda_ptx_report.py`` compiles every version and prints what the
compiler made of it (registers, spills, occupancy, the inner loop's FMA :
shared-load ratio); ``benchmarks/gpu_bench.py --versions`` times them on a
device. Every version computes the same thing: tests run all of them against
the NumPy reference in the simulator.
"""
from __future__ import annotations

import math

from .cuda_conv_naive import conv_naive_kernel
from .cuda_gemm import GemmTiles, implicit_gemm_kernel
from .cuda_gemm_blocked import (BlockedTiles, blocked_gemm_kernel, k_table,
                                pipelined_gemm_kernel)
from . import cuda_winograd as winograd
from .cuda_windows import blocks

VERSIONS = (1, 2, 3, 4, 5)
NAIVE_THREADS = 256
LARGE_TILES = BlockedTiles(128, 128, 8, 8, 8)     # 256 threads, 8x8 outputs each
MEDIUM_TILES = BlockedTiles(64, 64, 8, 4, 4)      # 256 threads, 4x4 outputs each
SMALL_TILES = GemmTiles(16, 16, 32)               # version 2, fitted to the problem
ENOUGH_BLOCKS = 64    # fewer blocks than this leave a large GPU's multiprocessors idle
WINOGRAD_MIN_PIXELS = 4096    # below this many outputs per channel, the transforms' passes
                              # cost more than the multiply-adds they save (a guess until
                              # gpu_bench.py has run on a device)


def choose_conv(w_shape, stride: int, dilation: int, groups: int, cols: int):
    """(version, tiles) for a convolution with weights of w_shape producing
    cols = N*Ho*Wo pixels per output channel: Winograd (5) for a large enough
    3x3 stride-1 layer, else the GEMM that choose() picks."""
    out_ch, _, kh, kw = w_shape
    if winograd.supports(kh, kw, stride, dilation) and cols >= WINOGRAD_MIN_PIXELS:
        return 5, None
    return choose(out_ch // groups, cols, groups)


def choose(rows: int, cols: int, groups: int):
    """(version, tiles) for a GEMM of M=rows by P=cols per group.

    The largest register-blocked tile that still gives ENOUGH_BLOCKS blocks,
    so that big layers (AlexNet at batch 32 and up) get the most reuse and a
    small one (conv3-5 at batch 1: 169 pixels) still spreads over the device;
    a problem too small even for 64x64 tiles, or one that would leave most of
    a tile empty (a linear layer at batch 1: one column), runs version 2,
    fitted.
    ENOUGH_BLOCKS is a rule of thumb (about half an H100's 132 multiprocessors);
    tune it with gpu_bench.py on the device at hand.
    """
    for tiles in (LARGE_TILES, MEDIUM_TILES):
        grid = math.ceil(rows / tiles.bm) * math.ceil(cols / tiles.bn) * groups
        half_full = 2 * rows >= tiles.bm and 2 * cols >= tiles.bn
        if grid >= ENOUGH_BLOCKS and half_full:
            return 4, tiles
    return 2, SMALL_TILES.fit(rows, cols)


def default_tiles(version: int, rows: int, cols: int):
    """The tiles a version runs with when the caller names only the version."""
    if version in (3, 4):
        grid = math.ceil(rows / LARGE_TILES.bm) * math.ceil(cols / LARGE_TILES.bn)
        return LARGE_TILES if grid >= ENOUGH_BLOCKS else MEDIUM_TILES
    if version == 2:
        return SMALL_TILES.fit(rows, cols)
    return None


def run(version, tiles, x, w, b, y, stride, padding, groups, dilation, relu):
    """Launch `version` with `tiles` to fill y: (N, O, Ho, Wo) from x: (N, C, H, W),
    w: (O, C/groups, kh, kw), b: (O,). Shapes are checked by the caller."""
    out_ch, c_per_group, kh, kw = w.shape
    rows, cols = out_ch // groups, y.shape[0] * y.shape[2] * y.shape[3]
    if version == 1:
        conv_naive_kernel[blocks(y.size, NAIVE_THREADS), NAIVE_THREADS](
            x, w, b, y, stride, padding, groups, dilation, relu)
        return
    w2d = w.reshape(out_ch, c_per_group * kh * kw)
    if version == 2:
        grid, block = tiles.launch(rows, cols, groups)
        implicit_gemm_kernel(tiles)[grid, block](x, w2d, b, y, stride, padding, dilation,
                                                 kh, kw, relu)
    elif version == 3:
        grid, block = tiles.launch(rows, cols, groups)
        blocked_gemm_kernel(tiles)[grid, block](x, w2d, b, y, stride, padding, dilation,
                                                kh, kw, relu)
    elif version == 4:
        _, channels, height, width = x.shape
        table = k_table(c_per_group, kh, kw, height, width, dilation)
        grid, block = tiles.launch(rows, cols, groups)
        pipelined_gemm_kernel(tiles)[grid, block](
            x.reshape(x.size), w2d, b, y, table.offset, table.du, table.dv,
            height, width, channels, stride, padding, relu)
    elif version == 5:
        if not winograd.supports(kh, kw, stride, dilation):
            raise ValueError(f"version 5 (Winograd F(2x2, 3x3)) needs a 3x3 kernel, stride 1 "
                             f"and dilation 1, got {kh}x{kw}, stride {stride}, "
                             f"dilation {dilation}")
        winograd.conv2d(x, w, b, y, padding, groups, relu, gemm=_gemm)
    else:
        raise ValueError(f"unknown conv version {version!r}; the ladder has {VERSIONS}")


def _gemm(x, w, b, y, groups):
    """A 1x1 convolution by the GEMM choose() picks (Winograd's 16 products)."""
    out_ch = w.shape[0]
    cols = y.shape[0] * y.shape[2] * y.shape[3]
    version, tiles = choose(out_ch // groups, cols, groups)
    run(version, tiles, x, w, b, y, 1, 0, groups, 1, False)
