"""Fully connected layers: y = x W^T + b, without OpenBLAS.

At a batch of 1 to 8 the product is a handful of dot products per weight
row, and the time goes into reading W (fc6 alone is 4096 x 9216 floats,
151 MB) from memory. ``linear_streaming`` reads every weight once, front to
back, and uses it for two samples while it sits in a register. OpenBLAS's
GEMM took two to four times longer at batch 2-8; its matrix-vector product
streams as fast at batch 1, but its spinning threads then slow down the
Numba kernels that run next.

At a batch of 1 there is a better way still. The input of fc7 and fc8 is
a ReLU's output, and so, through the max pool, is fc6's: a large share of
it is exactly 0 (with random weights about half, 32% for fc6; trained
networks on real images zero more). A zero input multiplies a whole column
of W, and skipping it changes nothing but the order of the additions.
``linear_skipping_zeros`` reads W transposed, one row per input feature,
and reads only the rows whose input is nonzero: on AlexNet-224 with the
benchmarks' random weights, the three layers read 146 MB instead of 234.

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
from .simd import fma8, load8, splat8, store8


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


@njit(parallel=True, fastmath=True, cache=True)
def linear_skipping_zeros(x, active, wt, partial):
    """partial[p] = sum over the p-th share of `active` of x[k] * wt[k, :].

    x: (K,), one sample; active: (A,) int64, the k with x[k] != 0, in
    order; wt: (K, O), W transposed, C-contiguous; partial: (P, O), zeros,
    P parts (one per thread). Then y = partial summed over P, plus the
    bias. The caller makes sure W is finite: 0 * inf is NaN, so a skipped
    row holding an infinity would change the result.

    Why it is fast: memory-bound like linear_streaming, but it reads only
    the active rows, each 4*O contiguous bytes. Each part walks its rows
    four at a time, so four memory streams keep the prefetchers busy (with
    one stream per thread the two cores drew 13 GB/s, with four, 18-23, as
    linear_streaming does); the O running sums stay in partial[p] in the L1
    cache. A last group with fewer than four rows repeats its last row with
    x taken as 0.
    """
    parts, out = partial.shape
    per = -(-active.size // parts)
    wt_flat, sums = wt.reshape(-1), partial.reshape(-1)
    vectors = out - out % 8                             # columns taken 8 at a time
    for part in prange(parts):
        first, end = part * per, min(active.size, (part + 1) * per)
        at = part * out
        for i in range(first, end, 4):
            k0, k1 = active[i], active[min(i + 1, end - 1)]
            k2, k3 = active[min(i + 2, end - 1)], active[min(i + 3, end - 1)]
            x0 = x[k0]
            x1 = x[k1] if i + 1 < end else np.float32(0.0)
            x2 = x[k2] if i + 2 < end else np.float32(0.0)
            x3 = x[k3] if i + 3 < end else np.float32(0.0)
            r0, r1, r2, r3 = k0 * out, k1 * out, k2 * out, k3 * out
            s0, s1, s2, s3 = splat8(x0), splat8(x1), splat8(x2), splat8(x3)
            for c in range(0, vectors, 8):
                acc = fma8(s0, load8(wt_flat, r0 + c), load8(sums, at + c))
                acc = fma8(s1, load8(wt_flat, r1 + c), acc)
                acc = fma8(s2, load8(wt_flat, r2 + c), acc)
                store8(sums, at + c, fma8(s3, load8(wt_flat, r3 + c), acc))
            for c in range(vectors, out):
                sums[at + c] += (x0 * wt_flat[r0 + c] + x1 * wt_flat[r1 + c]
                                 + x2 * wt_flat[r2 + c] + x3 * wt_flat[r3 + c])


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
