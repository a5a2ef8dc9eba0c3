"""One BLAS call NumPy does not offer: a GEMM that adds into its output.

``np.matmul(a, b, out=c)`` overwrites c. The shifted-GEMM convolution
(version 5, conv_shifted.py) sums k*k products into one output, and it multiplies
matrices that are *windows* of a bigger array: rows of equal length that
sit a fixed stride apart, not packed. BLAS's ``sgemm`` does both
(C = alpha A B + beta C, each matrix with its own row stride, the
"leading dimension"); ctypes calls it here with no copy of any operand.

Which BLAS: the OpenBLAS inside NumPy when NumPy ships one (pip wheels of
NumPy >= 2, which pyproject.toml asks for, keep it in ``numpy.libs`` on
Linux and Windows and in ``numpy/.dylibs`` on macOS), else the one SciPy
exports for compiled callers (a NumPy from conda or a Linux distribution
links a system BLAS instead; then ``pip install scipy``).
Each OpenBLAS has its own worker threads, which keep spinning for a while
after a call; when NumPy's ``@`` and a second OpenBLAS take turns on two
cores, each one's threads steal the cores from the other's (a forward pass
ran twice as slow at batch 1). So the numba backend runs all its GEMMs
here, on NumPy's OpenBLAS when there is one.
"""
from __future__ import annotations

import ctypes
import glob
import os

import numpy as np

# Where NumPy's wheels keep their OpenBLAS (scipy-openblas64: 64-bit
# integers, symbols named scipy_sgemm_64_ ...).
NUMPY_LIBRARY_FOLDERS = (
    os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs"),
    os.path.join(os.path.dirname(np.__file__), ".dylibs"),
)


def numpy_openblas_library(folders=NUMPY_LIBRARY_FOLDERS):
    """The OpenBLAS NumPy loaded (ctypes.CDLL), or None if NumPy ships none."""
    for folder in folders:
        for path in sorted(glob.glob(os.path.join(folder, "libscipy_openblas64_*"))):
            return ctypes.CDLL(path)             # already loaded by NumPy: the same copy
    return None


def _numpy_openblas(folders=NUMPY_LIBRARY_FOLDERS):
    """(sgemm, sgemv, integer type) of the OpenBLAS NumPy loaded, or None."""
    library = numpy_openblas_library(folders)
    if library is None:
        return None
    return library.scipy_sgemm_64_, library.scipy_sgemv_64_, ctypes.c_int64


def _scipy_blas():
    """(sgemm, sgemv, integer type) from scipy.linalg.cython_blas."""
    try:
        from scipy.linalg import cython_blas
    except ImportError:
        raise ModuleNotFoundError(
            "numalex's GEMMs call the OpenBLAS inside NumPy's pip wheels (numpy>=2), and "
            "this NumPy has none (conda or a system package?): pip install scipy, or "
            "install numpy from PyPI", name="scipy") from None

    api = ctypes.pythonapi
    api.PyCapsule_GetName.restype = ctypes.c_char_p
    api.PyCapsule_GetName.argtypes = [ctypes.py_object]
    api.PyCapsule_GetPointer.restype = ctypes.c_void_p
    api.PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
    address = [api.PyCapsule_GetPointer(capsule, api.PyCapsule_GetName(capsule))
               for capsule in (cython_blas.__pyx_capi__["sgemm"],
                               cython_blas.__pyx_capi__["sgemv"])]
    untyped = ctypes.CFUNCTYPE(None)
    return untyped(address[0]), untyped(address[1]), ctypes.c_int


_sgemm, _sgemv, _blas_int = _numpy_openblas() or _scipy_blas()
# Fortran calling convention: every argument by pointer.
_int, _float, _char, _data = (ctypes.POINTER(_blas_int), ctypes.POINTER(ctypes.c_float),
                              ctypes.c_char_p, ctypes.c_void_p)
_sgemm.argtypes = [_char, _char, _int, _int, _int, _float,   # transa, transb, m, n, k, alpha
                   _data, _int, _data, _int,                 # a, lda, b, ldb
                   _float, _data, _int]                      # beta, c, ldc
_sgemv.argtypes = [_char, _int, _int, _float,                # trans, m, n, alpha
                   _data, _int, _data, _int,                 # a, lda, x, incx
                   _float, _data, _int]                      # beta, y, incy
_sgemm.restype = _sgemv.restype = None


def _i(value: int):
    return ctypes.byref(_blas_int(value))


def _f(value: float):
    return ctypes.byref(ctypes.c_float(value))


def fortran_layout(m: np.ndarray, what: str) -> tuple[bytes, int]:
    """How column-major BLAS reads the *transpose* of a float32 matrix:
    (b"N", row stride) if its rows are contiguous (a row-major matrix is its
    transpose in column-major), (b"T", column stride) if its columns are
    (a transposed view, such as x.T).

    BLAS walks forward from the first element, one leading dimension per
    row (column), so that stride must be positive and at least the row's
    (column's) length: a reversed view (a[::-1]), a broadcast one (stride
    0) or rows that overlap would make it read memory outside the array.
    Those are refused; np.ascontiguousarray(m) makes any matrix readable."""
    if m.dtype == np.float32 and m.ndim == 2 and all(s % 4 == 0 for s in m.strides):
        (rows, cols), (row_step, col_step) = m.shape, (s // 4 for s in m.strides)
        if (col_step == 1 or cols <= 1) and (row_step >= max(1, cols) or rows <= 1):
            return b"N", row_step if rows > 1 else max(1, cols)
        if (row_step == 1 or rows <= 1) and (col_step >= max(1, rows) or cols <= 1):
            return b"T", col_step if cols > 1 else max(1, rows)
    raise ValueError(f"gemm: {what} must be a 2-D float32 array with contiguous rows or "
                     f"columns, a positive stride between them and no overlap (copy it "
                     f"with np.ascontiguousarray); got dtype {m.dtype}, shape {m.shape}, "
                     f"strides {m.strides}")


def gemm(a: np.ndarray, b: np.ndarray, c: np.ndarray, accumulate: bool = False) -> None:
    """c = a @ b, or c += a @ b if `accumulate`; a: (m, k), b: (k, n), c: (m, n).

    a and b need contiguous rows or contiguous columns, c contiguous rows;
    any of them may be a window of a wider array. BLAS is column-major and
    sees a row-major matrix as its transpose, so the call computes
    c^T = b^T a^T, which is the same memory as c = a b.
    """
    (m, k), n = a.shape, b.shape[1]
    if b.shape[0] != k or c.shape != (m, n):
        raise ValueError(f"gemm: shapes {a.shape} @ {b.shape} -> {c.shape} do not fit")
    (trans_a, lda), (trans_b, ldb) = fortran_layout(a, "a"), fortran_layout(b, "b")
    trans_c, ldc = fortran_layout(c, "c")
    if trans_c != b"N" or not c.flags.writeable:
        raise ValueError("gemm: c must be writeable, with contiguous rows")
    _sgemm(trans_b, trans_a, _i(n), _i(m), _i(k), _f(1.0), b.ctypes.data, _i(ldb),
           a.ctypes.data, _i(lda), _f(1.0 if accumulate else 0.0), c.ctypes.data, _i(ldc))


def gemv(a: np.ndarray, x: np.ndarray, y: np.ndarray) -> None:
    """y = a @ x; a: (m, k) C-contiguous, x: (k,), y: (m,) contiguous.

    The matrix-vector product of a fully connected layer at batch 1. It
    reads every weight once, so it runs at memory speed; gemm with one
    column does not get there."""
    m, k = a.shape
    if not (a.dtype == x.dtype == y.dtype == np.float32 and a.flags.c_contiguous
            and x.shape == (k,) and y.shape == (m,) and x.flags.c_contiguous
            and y.flags.c_contiguous and y.flags.writeable):
        raise ValueError(f"gemv: need float32 a (m, k) C-contiguous, x (k,), y (m,); "
                         f"got {a.shape} {a.dtype}, {x.shape} {x.dtype}, {y.shape} {y.dtype}")
    # column-major BLAS sees a as a^T (k, m): y = (a^T)^T x
    _sgemv(b"T", _i(k), _i(m), _f(1.0), a.ctypes.data, _i(max(1, k)), x.ctypes.data, _i(1),
           _f(0.0), y.ctypes.data, _i(1))
