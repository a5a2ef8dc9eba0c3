"""Versions 3 and 4 of the GPU convolution ladder: register-blocked implicit GEMM.

The GEMM is the one in cuda_gemm.py (version 2), Y[o, p] = sum_k W[o, k] X[k, p]
per group, with X the im2col matrix gathered from x on the fly. Version 2
gives each thread ONE output: per step of the K loop it loads one W and one X
value from shared memory for one multiply-add, so shared memory, not the FMA
units, sets the pace. Here each thread owns a tm x tn block of outputs:

    per k: load tm values of W and tn values of X into registers (tm + tn
    shared loads), then do tm * tn multiply-adds from registers.

With tm = tn = 8 that is 64 FMAs per 16 shared loads, a ratio of 4 instead of
1 (the 64 accumulators live in registers). Two layout choices keep the shared
loads free of bank conflicts:

- the W tile is stored k-major, w_tile[kk, r], padded by 4 columns: the 32
  threads of a warp that store it write 32 different banks, and the loads of
  one kk row are broadcasts;
- a thread owns rows ty + i*(bm/tm) and columns tx + j*(bn/tn) (interleaved,
  not a contiguous 8x8 patch), so the threads of a warp read consecutive
  columns of x_tile: 32 different banks. The output writes are then
  consecutive pixels too (coalesced).

Version 4 keeps that inner loop and removes what is left around it:

- the gather's index math: every thread loads the SAME tile columns (pixels)
  at every step, so (image, first row, first column) of its pixels are
  computed once before the K loop; the k -> (channel, tap) part comes from
  a table of 32-bit offsets built once per layer on the host (KTable), so
  the K loop has no division at all;
- the latency of global loads: two stages of shared tiles (double
  buffering). While the block multiplies stage s, each thread fetches the
  next tile from global memory into registers and stores it into the other
  stage afterwards: one syncthreads() per step instead of two.

Out-of-range entries are filled with zeros, so every thread reaches every
syncthreads(), and all tile sizes are parameters (BlockedTiles).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numba import cuda, float32, uint32

from .cuda_gemm import gather_x_tile, weight_value

W_PAD = 4      # columns of padding in the k-major W tile (bank-conflict free, 16-byte rows)


@dataclass(frozen=True)
class BlockedTiles:
    """A block computes a bm x bn tile of Y (bm output channels by bn pixels)
    with (bm/tm) * (bn/tn) threads, each owning tm x tn outputs, walking K in
    steps of bk. Version 4 asks a little more (check_pipelined)."""

    bm: int = 128
    bn: int = 128
    bk: int = 8
    tm: int = 8
    tn: int = 8

    def __post_init__(self):
        for field in ("bm", "bn", "bk", "tm", "tn"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"BlockedTiles.{field} must be a positive integer, "
                                 f"got {value!r}")
        if self.bm % self.tm or self.bn % self.tn:
            raise ValueError(f"BlockedTiles: tm={self.tm} must divide bm={self.bm} and "
                             f"tn={self.tn} must divide bn={self.bn}")
        if self.threads > 1024:
            raise ValueError(f"BlockedTiles (bm/tm)*(bn/tn) = {self.threads} threads per "
                             f"block; CUDA allows at most 1024")
        if self.shared_bytes(stages=2) > 48 * 1024:
            raise ValueError(f"BlockedTiles needs {self.shared_bytes(stages=2)} bytes of "
                             f"shared memory when double-buffered; CUDA guarantees 48 KiB")

    @property
    def threads(self) -> int:
        return (self.bm // self.tm) * (self.bn // self.tn)

    def shared_bytes(self, stages: int = 1) -> int:
        """Shared memory of `stages` copies of the W tile (padded) and the X tile."""
        return 4 * stages * self.bk * (self.bm + W_PAD + self.bn)

    def check_pipelined(self) -> "BlockedTiles":
        """Version 4 gives each thread fixed tile positions: the tiles must split
        into whole rounds of `threads` loads, and the X tile's columns must not
        move between rounds (threads a multiple of bn)."""
        t = self.threads
        if (self.bm * self.bk) % t or (self.bk * self.bn) % t or t % self.bn or t % self.bk:
            raise ValueError(f"{self}: version 4 needs threads={t} to divide bm*bk and "
                             f"bk*bn, and bn and bk to divide threads")
        return self

    def launch(self, rows: int, cols: int, groups: int) -> tuple[tuple, int]:
        """(grid, block) covering an M=rows by P=cols output per group."""
        grid = (math.ceil(cols / self.bn), math.ceil(rows / self.bm), groups)
        return grid, self.threads


@dataclass(frozen=True)
class KTable:
    """Per row k = (c, u, v) of the im2col matrix, as int32 device arrays:
    offset[k] = c*H*W + u*d*W + v*d (where the tap sits relative to the
    pixel's window corner in a flattened image), du[k] = u*d and dv[k] = v*d
    (to test whether the tap falls in the padding)."""

    offset: object
    du: object
    dv: object


@lru_cache(maxsize=64)
def k_table(c_per_group: int, kh: int, kw: int, height: int, width: int,
            dilation: int) -> KTable:
    """The KTable of one layer shape, built on the host once and uploaded."""
    c, u, v = np.meshgrid(np.arange(c_per_group), np.arange(kh), np.arange(kw),
                          indexing="ij")
    du, dv = (u * dilation).ravel(), (v * dilation).ravel()
    offset = c.ravel() * height * width + du * width + dv
    if offset.max(initial=0) >= 2**31:
        raise ValueError("version 4 needs 32-bit offsets: one group of the input "
                         "holds 2**31 elements or more")
    return KTable(*(cuda.to_device(a.astype(np.int32)) for a in (offset, du, dv)))


@cuda.jit(device=True)
def store_output(y, b, acc, m0, p0, ty, tx, rows, cols, group, relu, tm, tn, row_step,
                 col_step):
    """y[n, o, i, j] = acc + bias (ReLU'd if asked) for this thread's tm x tn
    outputs: rows m0 + ty + i*row_step, pixels p0 + tx + j*col_step."""
    _, _, out_h, out_w = y.shape
    for i in range(tm):
        m = m0 + ty + i * row_step
        if m < rows:
            o = group * rows + m
            for j in range(tn):
                p = p0 + tx + j * col_step
                if p < cols:
                    result = acc[i, j] + b[o]
                    if relu and result < 0:
                        result = float32(0.0)
                    y[p // (out_h * out_w), o, (p // out_w) % out_h, p % out_w] = result


@lru_cache(maxsize=None)
def blocked_gemm_kernel(tiles: BlockedTiles):
    """Version 3: the register-blocked kernel for one tile configuration.

    Launch with ``tiles.launch(M, P, groups)`` and arguments
    ``(x, w2d, b, y, stride, padding, dilation, kh, kw, relu)`` as version 2:
    x: (N, C, H, W), w2d: (O, C/groups*kh*kw), b: (O,), y: (N, O, Ho, Wo).
    """
    bm, bn, bk, tm, tn = tiles.bm, tiles.bn, tiles.bk, tiles.tm, tiles.tn
    threads, row_step, col_step = tiles.threads, bm // tm, bn // tn
    w_cols = bm + W_PAD                    # shared array shapes must be constants

    @cuda.jit
    def conv_gemm_blocked(x, w2d, b, y, stride, padding, dilation, kh, kw, relu):
        w_tile = cuda.shared.array((bk, w_cols), float32)      # [kk, r] = W[m0+r, k0+kk]
        x_tile = cuda.shared.array((bk, bn), float32)           # [kk, c] = X[k0+kk, p0+c]
        acc = cuda.local.array((tm, tn), float32)               # registers: fixed sizes,
        w_frag = cuda.local.array(tm, float32)                  # fully unrolled loops
        x_frag = cuda.local.array(tn, float32)
        n_img, channels, _, _ = x.shape
        _, out_ch, out_h, out_w = y.shape
        rows = out_ch // cuda.gridDim.z
        depth = w2d.shape[1]
        cols = n_img * out_h * out_w
        group = cuda.blockIdx.z
        c_base = group * (channels // cuda.gridDim.z)
        m0 = cuda.blockIdx.y * bm
        p0 = cuda.blockIdx.x * bn
        tid = cuda.threadIdx.x
        ty = uint32(tid // col_step)          # unsigned: indexing without the
        tx = uint32(tid % col_step)           # wrap-around test for negative indices
        for i in range(tm):
            for j in range(tn):
                acc[i, j] = float32(0.0)

        for k0 in range(0, depth, bk):
            for idx in range(tid, bm * bk, threads):             # consecutive threads:
                r = idx // bk                                    # consecutive k of a W row
                c = idx % bk
                w_tile[c, r] = weight_value(w2d, group, rows, m0 + r, k0 + c)
            gather_x_tile(x_tile, x, c_base, k0, p0, depth, cols, out_h, out_w,
                          stride, padding, dilation, kh, kw, tid, threads)
            cuda.syncthreads()
            for kk in range(bk):
                for i in range(tm):
                    w_frag[i] = w_tile[uint32(kk), ty + uint32(i * row_step)]
                for j in range(tn):
                    x_frag[j] = x_tile[uint32(kk), tx + uint32(j * col_step)]
                for i in range(tm):
                    for j in range(tn):
                        acc[i, j] += w_frag[i] * x_frag[j]
            cuda.syncthreads()

        store_output(y, b, acc, m0, p0, ty, tx, rows, cols, group, relu, tm, tn,
                     row_step, col_step)

    return conv_gemm_blocked


@lru_cache(maxsize=None)
def pipelined_gemm_kernel(tiles: BlockedTiles):
    """Version 4: version 3 with the gather's index math hoisted out of the K
    loop (a KTable of 32-bit offsets) and double-buffered tiles.

    Launch with ``tiles.launch(M, P, groups)`` and arguments
    ``(x_flat, w2d, b, y, offset, du, dv, height, width, channels, stride,
    padding, relu)``: x_flat is x: (N, C, H, W) flattened, offset/du/dv the
    layer's KTable.
    """
    tiles.check_pipelined()
    bm, bn, bk, tm, tn = tiles.bm, tiles.bn, tiles.bk, tiles.tm, tiles.tn
    threads, row_step, col_step = tiles.threads, bm // tm, bn // tn
    w_loads = bm * bk // threads           # W values each thread fetches per step
    x_loads = bk * bn // threads           # X values each thread fetches per step
    w_row_step = threads // bk             # rows between a thread's W values
    x_row_step = threads // bn             # k rows between a thread's X values
    w_cols = bm + W_PAD

    @cuda.jit
    def conv_gemm_pipelined(x_flat, w2d, b, y, offset, du, dv, height, width, channels,
                            stride, padding, relu):
        w_tile = cuda.shared.array((2, bk, w_cols), float32)      # two stages
        x_tile = cuda.shared.array((2, bk, bn), float32)
        acc = cuda.local.array((tm, tn), float32)
        w_frag = cuda.local.array(tm, float32)
        x_frag = cuda.local.array(tn, float32)
        w_next = cuda.local.array(w_loads, float32)                 # the tile in flight
        x_next = cuda.local.array(x_loads, float32)
        n_img = y.shape[0]
        _, out_ch, out_h, out_w = y.shape
        rows = out_ch // cuda.gridDim.z
        depth = w2d.shape[1]
        cols = n_img * out_h * out_w
        group = cuda.blockIdx.z
        m0 = cuda.blockIdx.y * bm
        p0 = cuda.blockIdx.x * bn
        tid = cuda.threadIdx.x
        ty = uint32(tid // col_step)          # unsigned: indexing without the
        tx = uint32(tid % col_step)           # wrap-around test for negative indices

        # This thread's fixed load positions, computed once.
        w_col = tid % bk                                 # k within the W tile
        w_row0 = tid // bk                               # first of its W rows
        x_col = tid % bn                                 # its pixel within the X tile
        x_row0 = tid // bn                               # first of its k rows
        p = p0 + x_col
        pixel_ok = p < cols
        n = p // (out_h * out_w)
        h0 = ((p // out_w) % out_h) * stride - padding   # window corner of pixel p
        w0 = (p % out_w) * stride - padding
        corner = ((n * channels + group * (channels // cuda.gridDim.z)) * height
                  + h0) * width + w0                      # may point into the padding

        for i in range(tm):
            for j in range(tn):
                acc[i, j] = float32(0.0)

        steps = (depth + bk - 1) // bk
        for step in range(steps + 1):
            # Fetch tile `step` into registers (the very first goes straight on).
            if step < steps:
                k0 = step * bk
                for t in range(w_loads):
                    w_next[t] = weight_value(w2d, group, rows, m0 + w_row0 + t * w_row_step,
                                             k0 + w_col)
                for t in range(x_loads):
                    k = k0 + x_row0 + t * x_row_step
                    value = float32(0.0)
                    if pixel_ok and k < depth:
                        hi = h0 + du[k]
                        wi = w0 + dv[k]
                        if 0 <= hi < height and 0 <= wi < width:
                            value = x_flat[corner + offset[k]]
                    x_next[t] = value
            # Multiply the tile fetched one step earlier, already in shared memory.
            if step > 0:
                stage = uint32((step - 1) % 2)
                for kk in range(bk):
                    for i in range(tm):
                        w_frag[i] = w_tile[stage, uint32(kk), ty + uint32(i * row_step)]
                    for j in range(tn):
                        x_frag[j] = x_tile[stage, uint32(kk), tx + uint32(j * col_step)]
                    for i in range(tm):
                        for j in range(tn):
                            acc[i, j] += w_frag[i] * x_frag[j]
            # Store the fetched tile into the other stage; nobody reads that stage
            # now: its last readers finished before the previous barrier.
            if step < steps:
                stage = step % 2
                for t in range(w_loads):
                    w_tile[stage, w_col, w_row0 + t * w_row_step] = w_next[t]
                for t in range(x_loads):
                    x_tile[stage, x_row0 + t * x_row_step, x_col] = x_next[t]
            cuda.syncthreads()

        store_output(y, b, acc, m0, p0, ty, tx, rows, cols, group, relu, tm, tn,
                     row_step, col_step)

    return conv_gemm_pipelined
