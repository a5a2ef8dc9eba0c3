"""Fully connected layers at small batch: stream the weights once.

At batch 1 to 8, ``y = x W^T + b`` is a handful of dot products per weight
row, and the time goes into reading W (fc6 alone is 4096 x 9216 floats,
151 MB) from memory. OpenBLAS's GEMM is not written for this shape (here it
took 3x longer at batch 2-8 than at batch 1). ``linear_streaming`` reads each
weight row once, from start to end, and uses it for every sample while it
is in the L1 cache: the speed is the memory bandwidth. At larger batches the
product is compute-bound and the backend calls BLAS instead.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(parallel=True, fastmath=True, cache=True)
def linear_streaming(x, w, b, y):
    """y[n, o] = b[o] + sum_k x[n, k] * w[o, k].

    x: (N, K), w: (O, K), b: (O,), y: (N, O). Parallel over weight rows o;
    samples are taken four at a time so each loaded weight feeds four
    multiply-adds; fastmath lets LLVM vectorise the reductions (it may add
    in a different order, which changes float32 results by rounding only).
    """
    n_img, k = x.shape
    for o in prange(w.shape[0]):
        row = w[o]
        n = 0
        while n + 4 <= n_img:
            a0 = a1 = a2 = a3 = np.float32(0.0)
            for t in range(k):
                wt = row[t]
                a0 += wt * x[n, t]
                a1 += wt * x[n + 1, t]
                a2 += wt * x[n + 2, t]
                a3 += wt * x[n + 3, t]
            y[n, o], y[n + 1, o] = a0 + b[o], a1 + b[o]
            y[n + 2, o], y[n + 3, o] = a2 + b[o], a3 + b[o]
            n += 4
        for m in range(n, n_img):
            acc = np.float32(0.0)
            for t in range(k):
                acc += row[t] * x[m, t]
            y[m, o] = acc + b[o]
