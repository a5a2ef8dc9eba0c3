"""numalex/kernels/parallel_gemm.py: many products at once, one per Numba
thread, each a single-threaded OpenBLAS call. Checked against NumPy's
float64 matmul of the same views: stacked and broadcast operands, transposed
views, accumulation, outputs side by side in one row; outputs that would
be written by two threads at once are refused; OpenBLAS's own thread count
comes back afterwards; and without NumPy's OpenBLAS the products still come
out, one after another."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from numpy.lib.stride_tricks import as_strided

from numalex.kernels import parallel_gemm


def random(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)


def exact(a, b):
    return np.matmul(a.astype(np.float64), b.astype(np.float64))


@settings(max_examples=25, deadline=None)
@given(count=st.integers(1, 7), m=st.integers(1, 9), k=st.integers(1, 9),
       n=st.integers(1, 9), transpose_a=st.booleans(), transpose_b=st.booleans(),
       share_b=st.booleans(), accumulate=st.booleans(), seed=st.integers(0, 99))
def test_each_product_equals_matmul(count, m, k, n, transpose_a, transpose_b, share_b,
                                    accumulate, seed):
    a = (random((count, k, m), seed).transpose(0, 2, 1) if transpose_a
         else random((count, m, k), seed))
    b = random((k, n), seed + 1) if share_b else random((count, k, n), seed + 1)
    if transpose_b:
        b = np.ascontiguousarray(np.swapaxes(b, -1, -2)).swapaxes(-1, -2)   # columns contiguous
    if share_b:
        b = np.broadcast_to(b, (count, k, n))                 # one matrix for every product
    c = random((count, m, n), seed + 2)
    want = exact(a, b) + (c if accumulate else 0)
    parallel_gemm.gemm_batch(a, b, c, accumulate=accumulate)
    np.testing.assert_allclose(c, want, rtol=1e-5, atol=1e-5)


def test_outputs_side_by_side_in_one_row_and_nothing_written_between():
    a, b = random((3, 4, 5), 1), random((3, 5, 2), 2)
    wide = np.zeros((4, 8), np.float32)                      # three 4 x 2 blocks, 2 spare columns
    c = as_strided(wide, (3, 4, 2), (8, 32, 4))
    parallel_gemm.gemm_batch(a, b, c)
    for i in range(3):
        np.testing.assert_allclose(wide[:, 2 * i:2 * i + 2], exact(a[i], b[i]), rtol=1e-5,
                                   atol=1e-5)
    assert not wide[:, 6:].any()


@pytest.mark.parametrize("c_strides", [(0, 8, 4), (16, 16, 4), (4, 8, 4)],
                         ids=["one output for all", "a row of each other", "columns overlap"])
def test_outputs_two_threads_would_share_are_refused(c_strides):
    a, b = random((2, 3, 4), 1), random((2, 4, 2), 2)
    c = as_strided(np.zeros(64, np.float32), (2, 3, 2), c_strides)
    with pytest.raises(ValueError, match="gemm_batch: the c\\[i\\]"):
        parallel_gemm.gemm_batch(a, b, c)


def test_openblas_gets_its_thread_count_back():
    _, set_threads, get_threads = parallel_gemm._functions
    before = get_threads()
    set_threads(2)
    try:
        parallel_gemm.gemm_batch(random((4, 3, 3), 1), random((4, 3, 3), 2),
                                 np.empty((4, 3, 3), np.float32))
        assert get_threads() == 2
    finally:
        set_threads(before)


def test_without_numpys_openblas_the_products_run_one_by_one(monkeypatch):
    monkeypatch.setattr(parallel_gemm, "_functions", None)
    a, b = random((3, 4, 5), 1), random((3, 5, 6), 2)
    c = np.empty((3, 4, 6), np.float32)
    parallel_gemm.gemm_batch(a, b, c)
    np.testing.assert_allclose(c, exact(a, b), rtol=1e-5, atol=1e-5)
