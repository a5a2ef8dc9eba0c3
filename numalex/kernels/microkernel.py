"""The 6 x 16 block of sums that the register-blocked kernels share.

Both the direct convolution (version 11, conv_direct.py) and Winograd's
products (version 12, winograd_products.py) compute blocks of 6 rows x 16
output channels of a matrix product: rows are output pixels there, tiles
here. A block's 96 sums live in twelve 8-float vector registers
(numalex/kernels/simd.py) for the whole reduction. Each step of it reads
the 16 weights of one k as two vector loads (packed so that consecutive k
are consecutive), broadcasts each row's k-th value, and does twelve fused
multiply-adds: with two FMA units per core the loads keep up, and nothing
is written until the block is done.

Sums travel as one tuple of the twelve vectors, (row 0 lanes 0-7, row 0
lanes 8-15, row 1 ..., row 5 lanes 8-15); the functions are inlined, so
LLVM keeps every vector in a register.
"""
from __future__ import annotations

from numba import njit

from .simd import fma8, load8, splat8, splat_load8

ROWS = 6            # 6 x 2 sums + 2 weights + 1 broadcast = 15 of 16 vector registers
LANES = 16          # output channels per block: two 8-float vectors


@njit(inline="always")
def zeros():
    """Twelve vectors of zeros: a block's sums before the reduction."""
    zero = splat8(0.0)
    return (zero, zero, zero, zero, zero, zero, zero, zero, zero, zero, zero, zero)


@njit(inline="always")
def _row(a, at, w0, w1, sum0, sum1):
    """One row's 16 sums += a[at] * the 16 weights: one broadcast load, two
    fused multiply-adds."""
    x = splat_load8(a, at)
    return fma8(x, w0, sum0), fma8(x, w1, sum1)


@njit(inline="always")
def multiply_add_run(a, starts, b, b_at, count, sums):
    """For k < count: row r's 16 sums += a[starts[r] + k] * b[b_at + 16k : b_at + 16k + 16].

    a, b: flat float32 arrays; starts: the six rows' first elements in a;
    b holds the 16 weights of each k side by side. Returns the new sums."""
    a0, a1, a2, a3, a4, a5 = starts
    s00, s01, s10, s11, s20, s21, s30, s31, s40, s41, s50, s51 = sums
    for k in range(count):
        w0 = load8(b, b_at + LANES * k)
        w1 = load8(b, b_at + LANES * k + 8)
        s00, s01 = _row(a, a0 + k, w0, w1, s00, s01)
        s10, s11 = _row(a, a1 + k, w0, w1, s10, s11)
        s20, s21 = _row(a, a2 + k, w0, w1, s20, s21)
        s30, s31 = _row(a, a3 + k, w0, w1, s30, s31)
        s40, s41 = _row(a, a4 + k, w0, w1, s40, s41)
        s50, s51 = _row(a, a5 + k, w0, w1, s50, s51)
    return (s00, s01, s10, s11, s20, s21, s30, s31, s40, s41, s50, s51)
