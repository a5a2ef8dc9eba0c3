"""numalex.kernels.simd: each vector intrinsic against NumPy, from a small
compiled function (they exist only inside Numba code)."""
import numpy as np
from numba import njit

from numalex.kernels.simd import add8, fma8, load8, max8, relu8, splat8, splat_load8, store8


@njit
def _every_intrinsic(a, b, out):
    """out[0:8] = a[1:9] * b[2] + a[0:8] + 0.5; out[8:16] = relu(a[3:11])."""
    x = load8(a, 1)
    total = add8(fma8(x, splat_load8(b, 2), load8(a, 0)), splat8(0.5))
    store8(out, 0, total)
    store8(out, 8, relu8(load8(a, 3)))


def test_vector_intrinsics_equal_numpy_lane_by_lane():
    a = np.random.default_rng(0).standard_normal(12, dtype=np.float32)
    a[5] = np.nan                                     # relu8 keeps a NaN, as PyTorch's ReLU
    b = np.arange(4, dtype=np.float32)
    out = np.zeros(16, dtype=np.float32)
    _every_intrinsic(a, b, out)
    np.testing.assert_allclose(out[:8], a[1:9] * b[2] + a[0:8] + np.float32(0.5), rtol=1e-6)
    relu = a[3:11].copy()
    relu[relu < 0] = 0
    np.testing.assert_array_equal(out[8:], relu)
    assert np.isnan(out[8 + 2])


@njit
def _maximum(a, b, out):
    store8(out, 0, max8(load8(a, 0), load8(b, 0)))


def test_max8_equals_numpys_maximum_nan_from_either_side():
    a = np.array([1, -2, np.nan, 3, np.nan, -0.5, 7, 0], dtype=np.float32)
    b = np.array([0, -1, 5, np.nan, np.nan, -0.25, -7, 0], dtype=np.float32)
    out = np.zeros(8, dtype=np.float32)
    _maximum(a, b, out)
    np.testing.assert_array_equal(out, np.maximum(a, b))      # NaN where either is NaN
