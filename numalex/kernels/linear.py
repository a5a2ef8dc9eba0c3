"""Fully connected layers at small batch: stream the weights once.

At a batch of 1 to 8, ``y = x W^T + b`` is a handful of dot products per
weight row, and the time goes into reading W (fc6 alone is 4096 x 9216
floats, 151 MB) from memory. OpenBLAS's GEMM is not written for so few rows
of x: here it took two to four times longer at batch 2-8 than its
matrix-vector product takes at batch 1. ``linear_streaming`` reads every
weight once, front to back, and uses it for two samples while it sits in a
register. At batch 1 OpenBLAS's matrix-vector product streams as fast, but
its spinning threads slow down the Numba kernels that run next, so the
backend streams batch 1 here too. At larger batches the product is
compute-bound: the backend calls BLAS on blocks of weight rows side by side
(parallel_gemm.gemm_row_blocks).
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange



@njit(parallel=True, fastmath=True, cache=True)
def linear_streaming(x, w, b, y):
    """y[n, o] = b[o] + sum_k x[n, k] * w[o, k].

    x: (N, K), w: (O, K), b: (O,), y: (N, O). Parallel over blocks of four
    weight rows, read side by side (four memory streams keep the prefetcher
    busy); samples go two at a time, so each loaded x value feeds four
    multiply-adds and each weight two: eight running sums in registers.
    A block at the edge (O not a multiple of 4, or N odd) repeats its last
    row or sample instead of branching; the repeat writes the same value
    twice. fastmath lets LLVM vectorise the sums (a different order of
    additions, so float32 rounding differs slightly from BLAS).
    """
    n_img, k = x.shape
    out = w.shape[0]
    for block in prange((out + 3) // 4):
        o0 = 4 * block
        o1, o2, o3 = min(o0 + 1, out - 1), min(o0 + 2, out - 1), min(o0 + 3, out - 1)
        for n0 in range(0, n_img, 2):
            n1 = min(n0 + 1, n_img - 1)
            a0 = a1 = a2 = a3 = c0 = c1 = c2 = c3 = np.float32(0.0)
            for t in range(k):
                x0, x1 = x[n0, t], x[n1, t]
                w0, w1, w2, w3 = w[o0, t], w[o1, t], w[o2, t], w[o3, t]
                a0 += w0 * x0
                a1 += w1 * x0
                a2 += w2 * x0
                a3 += w3 * x0
                c0 += w0 * x1
                c1 += w1 * x1
                c2 += w2 * x1
                c3 += w3 * x1
            y[n0, o0], y[n0, o1] = a0 + b[o0], a1 + b[o1]
            y[n0, o2], y[n0, o3] = a2 + b[o2], a3 + b[o3]
            y[n1, o0], y[n1, o1] = c0 + b[o0], c1 + b[o1]
            y[n1, o2], y[n1, o3] = c2 + b[o2], c3 + b[o3]


@njit(cache=True)
def add_bias_transposed(z, b, relu, y):
    """y[n, o] = z[o, n] + b[o] (then max(., 0) if `relu`). z: (O, N), y: (N, O).

    The large-batch path computes W @ x^T, which OpenBLAS runs faster than
    x @ W^T when x has few rows (W, the big operand, is then the row-major
    left matrix); this pass turns the result back to (N, O) and adds the
    bias. Small and memory-bound: on the calling thread."""
    out, n_img = z.shape
    for n in range(n_img):
        for o in range(out):
            v = z[o, n] + b[o]
            y[n, o] = np.float32(0.0) if relu and v < 0 else v

