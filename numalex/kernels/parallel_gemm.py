"""Many independent GEMMs at once: one thread pool, OpenBLAS on one thread.

Winograd's 36 products M[xi] = V[xi] @ U[xi] do not depend on each other.
Handed to OpenBLAS one at a time, each call is split across both cores and ends in
a barrier; worse, OpenBLAS's worker threads keep spinning for a while after
every call, on the cores that Numba's threads need for the transform that
runs next (on two cores that made the Winograd transforms 1.5 to 2 times
slower than on an idle machine). ``gemm_batch`` turns that around: OpenBLAS
runs single-threaded, and a Numba ``prange`` loop hands whole products to
Numba's threads, so only one pool of threads ever runs and no call waits for
another. Measured on a 2-core AMD EPYC (Zen 3, AVX2): Winograd's products
of conv2 at batch 8 (36 x (392 x 256) @ (256 x 192)) 90 -> 110 GFLOP/s.
(Versions 9 and 10 of the conv ladder run their products here; version 12
runs them on numalex's own micro-kernel, winograd_products.py.)

How a compiled loop calls OpenBLAS: Numba can call a ctypes function from
nopython code. cblas_sgemm takes its sizes by value and its matrices as
pointers; the pointers are passed as integers (``ctypes.c_size_t``), which
every 64-bit calling convention passes the same way, so the loop does only
integer arithmetic on addresses and makes no array views (a view made
inside a parallel loop costs an atomic reference count update). The ctypes
function itself is an argument of the loop, not a global: Numba then passes
its address at run time, so the compiled loop can be cached on disk like
every other kernel (a global's address would be compiled in, and the
library loads at a different address in every process).

Without NumPy's own OpenBLAS (blas.py explains when that happens) there is no
thread count to set, and ``gemm_batch`` runs the products one after another
through blas.gemm.
"""
from __future__ import annotations

import ctypes
from contextlib import contextmanager

import numpy as np
from numba import njit, prange

from . import blas

ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112          # CBLAS's enum values


def _openblas_functions():
    """(cblas_sgemm, set_num_threads, get_num_threads) of NumPy's OpenBLAS, or None."""
    library = blas.numpy_openblas_library()
    if library is None:
        return None
    sgemm = library.scipy_cblas_sgemm64_
    index, address = ctypes.c_int64, ctypes.c_size_t
    sgemm.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int,       # order, transa, transb
                      index, index, index, ctypes.c_float,             # m, n, k, alpha
                      address, index, address, index,                  # a, lda, b, ldb
                      ctypes.c_float, address, index]                  # beta, c, ldc
    sgemm.restype = None
    set_threads = library.scipy_openblas_set_num_threads64_
    set_threads.argtypes, set_threads.restype = [ctypes.c_int], None
    get_threads = library.scipy_openblas_get_num_threads64_
    get_threads.argtypes, get_threads.restype = [], ctypes.c_int
    return sgemm, set_threads, get_threads


_functions = _openblas_functions()
_cblas_sgemm = _functions[0] if _functions else None


@contextmanager
def single_threaded_openblas():
    """OpenBLAS on the calling thread only, inside the block; the thread count
    it had is restored after (NumPy's own matmul shares it)."""
    _, set_threads, get_threads = _functions
    before = get_threads()
    set_threads(1)
    try:
        yield
    finally:
        set_threads(before)


@njit(parallel=True, cache=True)
def _gemm_each(sgemm, count, m, n, k, trans_a, a, lda, step_a, trans_b, b, ldb, step_b, beta,
               c, ldc, step_c):
    """For i < count: C_i = A_i B_i + beta C_i, row-major, one call of
    sgemm (cblas_sgemm) per parallel task. a, b, c: addresses of the first
    matrices; step_*: bytes from one matrix to the next (0: the same matrix
    for every i)."""
    for i in prange(count):
        sgemm(ROW_MAJOR, trans_a, trans_b, m, n, k, np.float32(1.0),
              a + i * step_a, lda, b + i * step_b, ldb, beta, c + i * step_c, ldc)


def _row_major(m: np.ndarray, what: str) -> tuple[int, int]:
    """(CBLAS transpose flag, leading dimension) for one (rows, cols) float32
    matrix of a batch: NO_TRANS if its rows are contiguous, TRANS if its
    columns are (a transposed view). blas.gemm's rules, in row-major terms."""
    flag, lead = blas.fortran_layout(m, what)
    return (NO_TRANS if flag == b"N" else TRANS), lead


def gemm_batch(a: np.ndarray, b: np.ndarray, c: np.ndarray, accumulate: bool = False) -> None:
    """c[i] = a[i] @ b[i] (c[i] += ... if `accumulate`) for every i, the
    products in parallel. a: (B, m, k), b: (B, k, n), c: (B, m, n), float32;
    each a[i], b[i] with contiguous rows or columns (blas.gemm's rule), c[i]
    with contiguous rows; a or b may repeat one matrix (stride 0 along B)."""
    count, m, k = a.shape
    n = b.shape[2]
    if b.shape != (count, k, n) or c.shape != (count, m, n):
        raise ValueError(f"gemm_batch: shapes {a.shape} @ {b.shape} -> {c.shape} do not fit")
    if _functions is None or count == 0:
        for i in range(count):
            blas.gemm(a[i], b[i], c[i], accumulate)
        return
    if not c.flags.writeable or any(s % 4 or s < 0 for x in (a, b, c) for s in x.strides[:1]):
        raise ValueError("gemm_batch: c must be writeable and every batch stride a "
                         "non-negative multiple of 4 bytes")
    (trans_a, lda), (trans_b, ldb) = _row_major(a[0], "a"), _row_major(b[0], "b")
    trans_c, ldc = _row_major(c[0], "c")
    step_c = c.strides[0]
    stacked = step_c >= 4 * ((m - 1) * ldc + n)             # c[i] one below the other
    side_by_side = 4 * n <= step_c and (count - 1) * step_c + 4 * n <= 4 * ldc
    if trans_c != NO_TRANS or (count > 1 and not (stacked or side_by_side)):
        raise ValueError("gemm_batch: the c[i] must have contiguous rows and lie one below "
                         "the other or side by side (they are written in parallel)")
    with single_threaded_openblas():
        _gemm_each(_cblas_sgemm, count, m, n, k, trans_a, a.ctypes.data, lda, a.strides[0],
                   trans_b, b.ctypes.data, ldb, b.strides[0],
                   np.float32(1.0 if accumulate else 0.0), c.ctypes.data, ldc, c.strides[0])
