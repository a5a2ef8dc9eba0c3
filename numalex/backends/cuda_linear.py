"""Fully connected layers at small batches on the GPU: one warp per output row.

At batch 1 to 8 a linear layer is a handful of dot products per weight row,
and its time is reading W (fc6: 4096 x 9216 floats, 151 MB). Run as the
tiled GEMM of conv2d (a 1 x 1 convolution), batch 1 gave a grid of 16
blocks on a GPU with 132 multiprocessors, and fc6 read its weights at
32 GB/s on an H200 whose memory gives about 4 TB/s.

Here every output row o is one warp's: its 32 lanes walk the row 32
consecutive floats at a time (one coalesced 128-byte load per step), each
lane keeping one running sum per sample in registers; then the warp's
partial sums meet in shared memory and lane n adds up sample n's 32 of
them. Eight warps (eight rows) per block, so fc6 runs as 512 blocks.
No shuffles, so the CUDA simulator runs it too; no thread returns before
the barrier.

The backend takes this path for weights of at least ROWS_MIN_WEIGHTS
floats (AlexNet's fc6-8). Below that, either kernel is little more than
a launch, and the GEMM's fewer threads keep the tests' tiny nets quick in
the simulator, which runs every GPU thread in Python.
"""
from __future__ import annotations

import numpy as np
from numba import cuda, float32

WARP = 32
ROWS_PER_BLOCK = 8                  # warps per block
THREADS = WARP * ROWS_PER_BLOCK
SMALL_BATCH = 8                     # the most samples one warp keeps sums for
ROWS_MIN_WEIGHTS = 2**20            # 4 MB of float32 weights


def by_rows(x, w, b, relu: bool):
    """linear_rows_kernel launched over every output row: x (N, K) with
    N <= SMALL_BATCH, w (O, K), b (O,), device arrays, checked by the
    caller -> a new (N, O) device array."""
    y = cuda.device_array((x.shape[0], w.shape[0]), dtype=np.float32)
    linear_rows_kernel[-(-w.shape[0] // ROWS_PER_BLOCK), THREADS](x, w, b, relu, y)
    return y


@cuda.jit
def linear_rows_kernel(x, w, b, relu, y):
    """y[n, o] = b[o] + sum_k x[n, k] * w[o, k] (then max(., 0) if `relu`).

    x: (N, K) with N <= SMALL_BATCH, w: (O, K), b: (O,), y: (N, O); launch
    ceil(O / ROWS_PER_BLOCK) blocks of THREADS threads."""
    partial = cuda.shared.array((ROWS_PER_BLOCK, SMALL_BATCH, WARP), float32)
    sums = cuda.local.array(SMALL_BATCH, float32)
    lane, warp = cuda.threadIdx.x % WARP, cuda.threadIdx.x // WARP
    o = cuda.blockIdx.x * ROWS_PER_BLOCK + warp
    n_img, depth = x.shape
    for n in range(SMALL_BATCH):
        sums[n] = 0.0
    if o < w.shape[0]:
        for k in range(lane, depth, WARP):
            weight = w[o, k]
            for n in range(n_img):
                sums[n] += weight * x[n, k]
    for n in range(SMALL_BATCH):
        partial[warp, n, lane] = sums[n]
    cuda.syncthreads()
    if o < w.shape[0] and lane < n_img:
        total = b[o]
        for i in range(WARP):
            total += partial[warp, lane, i]
        y[lane, o] = float32(0.0) if relu and total < 0 else total
