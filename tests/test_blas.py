"""The ctypes binding to BLAS (numalex/kernels/blas.py) reads exactly the
elements of the arrays it is given: views BLAS cannot describe (reversed,
broadcast, overlapping rows) are refused before the call, not read out of
bounds; and a NumPy without its own OpenBLAS gets a message saying what to
install. Products are checked against NumPy's float64 matmul."""
import sys

import numpy as np
import pytest
from numpy.lib.stride_tricks import as_strided

from numalex.kernels import blas


def random(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)


A, B = random((6, 5), 1), random((5, 4), 2)


@pytest.mark.parametrize("a, b, c, which", [
    (A[::-1], B, np.empty((6, 4), np.float32), "a"),                 # reversed rows
    (A, B[:, ::-1], np.empty((6, 4), np.float32), "b"),              # reversed columns
    (A, B.T[::-1].T, np.empty((6, 4), np.float32), "b"),
    (A.T[::-1, ::-1].T, B, np.empty((6, 4), np.float32), "a"),       # reversed both ways
    (np.broadcast_to(A[0], (6, 5)), B, np.empty((6, 4), np.float32), "a"),   # stride 0
    (as_strided(A, (6, 5), (8, 4)), B, np.empty((6, 4), np.float32), "a"),   # rows overlap
    (A, B, np.empty((6, 4), np.float32)[::-1], "c"),
], ids=["a[::-1]", "b[:, ::-1]", "b.T[::-1].T", "a reversed", "broadcast", "overlap", "c[::-1]"])
def test_views_blas_cannot_describe_are_refused(a, b, c, which):
    with pytest.raises(ValueError, match=f"gemm: {which} must be .* positive stride"):
        blas.gemm(a, b, c)


def test_forward_strided_views_still_run_without_a_copy():
    wide = random((12, 9), 3)
    a = wide[::2, 2:7]                                  # every other row of a window
    c_big = np.zeros((6, 7), np.float32)
    blas.gemm(a, B, c_big[:, 1:5])
    np.testing.assert_allclose(c_big[:, 1:5], a.astype(np.float64) @ B.astype(np.float64),
                               rtol=1e-5, atol=1e-5)
    assert not c_big[:, [0, 5, 6]].any()                # nothing written outside c
    reversed_copy = np.ascontiguousarray(A[::-1])       # what the error message suggests
    c = np.empty((6, 4), np.float32)
    blas.gemm(reversed_copy, B, c)
    np.testing.assert_allclose(c, A[::-1].astype(np.float64) @ B, rtol=1e-5, atol=1e-5)


def test_without_numpys_openblas_or_scipy_the_message_says_what_to_install(tmp_path, monkeypatch):
    assert blas._numpy_openblas(folders=[str(tmp_path)]) is None   # a NumPy without one
    monkeypatch.setitem(sys.modules, "scipy", None)                   # and no SciPy
    monkeypatch.setitem(sys.modules, "scipy.linalg", None)
    with pytest.raises(ModuleNotFoundError, match="pip install scipy") as err:
        blas._scipy_blas()
    assert err.value.name == "scipy"                    # backends.get names the package

