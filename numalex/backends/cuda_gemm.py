"""Convolution (and linear) as a shared-memory tiled implicit GEMM on the GPU.

A convolution is a matrix product in disguise. For one group g::

    Y[o, p] = bias[o] + sum_k  W[o, k] * X[k, p]          (M x K) @ (K x P)

    o: output channel of the group            M = O / groups
    k = (c, u, v): input channel, kernel row, kernel column     K = C/groups * kh * kw
    p = (n, i, j): image, output row, output column             P = N * Ho * Wo
    X[k, p] = x[n, g*C/groups + c, i*s - pad + u*d, j*s - pad + v*d]  (0 outside)

W is the weight array itself, (O, C/groups*kh*kw) row-major. X is the
im2col matrix, but it is never built: each tile of it is gathered straight
from x into shared memory ("implicit" GEMM). A linear layer is the special
case kh = kw = H = W = 1, so it runs through the same kernel.

Why it is fast: a block computes a tile_m x tile_n tile of Y, one output
per thread. It walks K in steps of tile_k; each step the block loads a
tile_m x tile_k tile of W and a tile_k x tile_n tile of X into shared memory
(consecutive threads read consecutive addresses: coalesced), then every
thread does tile_k multiply-adds from shared memory. Each value loaded from
global memory is reused tile_n (W) or tile_m (X) times. Out-of-range tile
entries are filled with zeros, so every thread reaches every syncthreads().
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from numba import cuda, float32


@dataclass(frozen=True)
class GemmTiles:
    """Tile sizes of the tiled GEMM: a block computes an m x n tile of the
    output (m output channels by n output pixels, so m*n threads) and walks
    the reduction in steps of k, holding a k-deep slice of both operands in
    shared memory. m*n <= 1024 threads and 4*k*(m+n) <= 48 KiB: the limits
    every CUDA device honours."""

    m: int = 16
    n: int = 16
    k: int = 32

    def __post_init__(self):
        for field in ("m", "n", "k"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"GemmTiles.{field} must be a positive integer, got {value!r}")
        if self.m * self.n > 1024:
            raise ValueError(f"GemmTiles m*n = {self.m * self.n} threads per block; "
                             f"CUDA allows at most 1024")
        shared = 4 * self.k * (self.m + self.n)
        if shared > 48 * 1024:
            raise ValueError(f"GemmTiles needs 4*k*(m+n) = {shared} bytes of shared memory "
                             f"per block; CUDA guarantees 48 KiB")

    def fit(self, rows: int, cols: int) -> "GemmTiles":
        """The same number of threads, reshaped to an M=rows by P=cols problem.

        A tile side longer than the problem would leave threads idle (conv1
        of a small net has 4 output channels; a linear layer at batch 1 has
        one column), so that side is halved and the other doubled while
        that helps. Large problems keep the tile as it is.
        """
        m, n = self.m, self.n
        while m // 2 >= rows and n < cols:
            m, n = m // 2, n * 2
        while n // 2 >= cols and m < rows:
            m, n = m * 2, n // 2
        return GemmTiles(m, n, self.k)

    def launch(self, rows: int, cols: int, groups: int) -> tuple[tuple, tuple]:
        """(grid, block) covering an M=rows by P=cols output per group."""
        grid = (math.ceil(cols / self.n), math.ceil(rows / self.m), groups)
        return grid, (self.n, self.m)


@cuda.jit(device=True)
def weight_value(w2d, group, rows, m, k):
    """W[m, k] of group `group`'s (rows, K) weight matrix, or 0 past its edge
    (m >= rows or k >= K): the zeros that fill a tile hanging over the
    matrix. w2d: (O, K), the groups' matrices one below the other."""
    if m < rows and k < w2d.shape[1]:
        return w2d[group * rows + m, k]
    return float32(0.0)


@cuda.jit(device=True)
def im2col_value(x, c_base, k, p, out_h, out_w, stride, padding, dilation, kh, kw):
    """X[k, p] of the im2col matrix, read straight from x: (N, C, H, W).

    k = (c, u, v) picks input channel c_base + c and kernel tap (u, v); p = (n,
    i, j) picks image n and output pixel (i, j). Taps that fall in the padding
    read 0. Callers keep k < K and p < P. Six divisions and remainders per
    element: versions 2 and 3 of the ladder pay them inside the K loop,
    version 4 hoists them out (cuda_gemm_blocked.py).
    """
    _, _, height, width = x.shape
    ci = k // (kh * kw)
    u = (k // kw) % kh
    v = k % kw
    n = p // (out_h * out_w)
    i = (p // out_w) % out_h
    j = p % out_w
    hi = i * stride - padding + u * dilation
    wi = j * stride - padding + v * dilation
    if 0 <= hi < height and 0 <= wi < width:
        return x[n, c_base + ci, hi, wi]
    return float32(0.0)


@cuda.jit(device=True)
def gather_x_tile(x_tile, x, c_base, k0, p0, depth, cols, out_h, out_w, stride, padding,
                  dilation, kh, kw, tid, threads):
    """Fill x_tile: (tile_k, tile_n) with X[k0:k0+tile_k, p0:p0+tile_n], zeros past
    the ends. The block's `threads` threads share the work; consecutive threads
    take consecutive pixels (neighbouring columns of x: coalesced reads)."""
    tile_k, tile_n = x_tile.shape
    for idx in range(tid, tile_k * tile_n, threads):
        r = idx // tile_n
        c = idx % tile_n
        value = float32(0.0)
        if k0 + r < depth and p0 + c < cols:
            value = im2col_value(x, c_base, k0 + r, p0 + c, out_h, out_w,
                                 stride, padding, dilation, kh, kw)
        x_tile[r, c] = value


@lru_cache(maxsize=None)
def implicit_gemm_kernel(tiles: GemmTiles):
    """The conv kernel for one tile configuration (shared-memory tile shapes
    must be compile-time constants, so each configuration is its own kernel).

    Launch with ``tiles.launch(M, P, groups)`` and arguments
    ``(x, w2d, b, y, stride, padding, dilation, kh, kw, relu)``:
    x: (N, C, H, W), w2d: (O, C/groups*kh*kw), b: (O,), y: (N, O, Ho, Wo).
    ``relu`` fuses max(y, 0) into the epilogue.
    """
    tile_m, tile_n, tile_k = tiles.m, tiles.n, tiles.k
    threads = tile_m * tile_n

    @cuda.jit
    def conv_gemm(x, w2d, b, y, stride, padding, dilation, kh, kw, relu):
        w_tile = cuda.shared.array((tile_m, tile_k), float32)   # W[m0:m0+tm, k0:k0+tk]
        x_tile = cuda.shared.array((tile_k, tile_n), float32)   # X[k0:k0+tk, p0:p0+tn]
        n_img, channels, _, _ = x.shape
        _, out_ch, out_h, out_w = y.shape
        rows = out_ch // cuda.gridDim.z                  # M: output channels per group
        depth = w2d.shape[1]                             # K = C/groups * kh * kw
        cols = n_img * out_h * out_w                     # P: output pixels
        group = cuda.blockIdx.z
        c_base = group * (channels // cuda.gridDim.z)    # first input channel of the group
        m0 = cuda.blockIdx.y * tile_m
        p0 = cuda.blockIdx.x * tile_n
        tx = cuda.threadIdx.x                            # output pixel within the tile
        ty = cuda.threadIdx.y                            # output channel within the tile
        tid = ty * tile_n + tx

        acc = float32(0.0)
        for k0 in range(0, depth, tile_k):
            # W tile: consecutive threads read consecutive k (one weight row).
            for idx in range(tid, tile_m * tile_k, threads):
                r = idx // tile_k
                c = idx % tile_k
                w_tile[r, c] = weight_value(w2d, group, rows, m0 + r, k0 + c)
            gather_x_tile(x_tile, x, c_base, k0, p0, depth, cols, out_h, out_w,
                          stride, padding, dilation, kh, kw, tid, threads)
            cuda.syncthreads()
            for kk in range(tile_k):
                acc += w_tile[ty, kk] * x_tile[kk, tx]
            cuda.syncthreads()

        m = m0 + ty
        p = p0 + tx
        if m < rows and p < cols:                        # the only guarded write
            o = group * rows + m
            result = acc + b[o]
            if relu and result < 0:
                result = float32(0.0)
            y[p // (out_h * out_w), o, (p // out_w) % out_h, p % out_w] = result

    return conv_gemm
