"""What the numba backend's op tests share: the backend, the tolerance of
assert_close (see test_numba_ops.py for why), seeded inputs, and PyTorch's
functional API as the second oracle (a skip without torch)."""
import numpy as np
import pytest

from numalex import backends

nb = backends.get("numba")


def assert_close(got, want):
    assert got.shape == want.shape
    assert got.dtype == np.float32
    scale = float(np.abs(want).max()) or 1.0
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * scale)


def random(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)


@pytest.fixture(scope="module")
def F():
    """torch.nn.functional, or a skip when torch is not installed."""
    torch = pytest.importorskip("torch", reason="torch is the second oracle: "
                                "pip install numalex[oracle]")
    return torch.nn.functional


def t(a):
    import torch

    return torch.from_numpy(np.ascontiguousarray(a))
