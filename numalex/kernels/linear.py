"""Fully connected layers: y = x W^T + b, without OpenBLAS.

At a batch of 1 to 8 the product is a handful of dot products per weight
row, and the time goes into reading W (fc6 alone is 4096 x 9216 floats,
151 MB) from memory. ``linear_streaming`` reads every weight once, front to
back, and uses it for two samples while it sits in a register. OpenBLAS's
GEMM took two to four times longer at batch 2-8; its matrix-vector product
streams as fast at batch 1, but its spinning threads then slow down the
Numba kernels that run next.

From 9 samples on, the product is compute-bound. ``linear_blocked`` runs
it on the register-blocked micro-kernel of the convolutions
(numalex/kernels/microkernel.py): 6 weight rows x 16 samples per block,
each weight broadcast from W where it lies and multiplied by 16 samples at
once. OpenBLAS first copies (packs) W, one more pass over 151 MB; here W
is read once, six rows side by side. fc6 at batch 32 on two Zen 3 cores:
20.6 ms against 27.5 for OpenBLAS on blocks of rows.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .microkernel import LANES, ROWS, multiply_add_run, zeros
from .simd import store8


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


def pack_samples(x: np.ndarray) -> np.ndarray:
    """x: (N, K) -> flat (L, K, 16): the samples in L blocks of 16, each block
    a (K, 16) panel (the 16 samples' k-th features side by side, as the
    micro-kernel reads them); samples past N are zeros."""
    n_img, k = x.shape
    blocks = -(-n_img // LANES)
    padded = np.zeros((blocks * LANES, k), dtype=np.float32)
    padded[:n_img] = x
    return np.ascontiguousarray(padded.reshape(blocks, LANES, k).transpose(0, 2, 1)).reshape(-1)


@njit(parallel=True, cache=True)
def linear_blocked(w, samples, b, relu, y):
    """y[n, o] = b[o] + sum_k x[n, k] * w[o, k] (then max(., 0) if `relu`).

    w: (O, K), C-contiguous; samples: pack_samples(x); b: (O,); y: (N, O).
    One task per block of 6 weight rows, for every block of 16 samples in
    turn (the rows stay in the cache between them): the 96 sums in
    registers for the whole reduction over K, then bias, ReLU and the
    stores into y's columns. A block at the edge repeats its last weight
    row; samples past N are zeros and are not stored.
    """
    out, k = w.shape
    n_img = y.shape[0]
    weights = w.reshape(-1)
    last = out - 1
    for block in prange(-(-out // ROWS)):
        o0 = block * ROWS
        starts = (o0 * k, min(o0 + 1, last) * k, min(o0 + 2, last) * k,
                  min(o0 + 3, last) * k, min(o0 + 4, last) * k, min(o0 + 5, last) * k)
        sums = np.empty(ROWS * LANES, dtype=np.float32)        # row r's 16 samples at 16r
        for first in range(0, n_img, LANES):
            s = multiply_add_run(weights, starts, samples, first * k, k, zeros())
            for i in range(2 * ROWS):
                store8(sums, 8 * i, s[i])
            for r in range(min(ROWS, out - o0)):
                for lane in range(min(LANES, n_img - first)):
                    v = sums[LANES * r + lane] + b[o0 + r]
                    y[first + lane, o0 + r] = np.float32(0.0) if relu and v < 0 else v
