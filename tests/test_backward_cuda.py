"""The CUDA backend's backward passes against torch.autograd, in the simulator.

The simulator runs every GPU thread as Python, so the shapes are tiny and
the cases few; each is picked to hit an edge: groups with a rectangular
kernel and a stride that drops a row, dilation with padding, overlapping
ceil-mode pool windows with tied maxima, overlapping adaptive bins, LRN
windows clipped at both ends. Tolerance as in test_cuda_kernels.py.
"""
import numpy as np
import pytest

from numalex import backends

try:
    cu = backends.get("cuda")
except backends.BackendUnavailable as err:
    pytest.skip(f"no GPU and no CUDA simulator: {err}", allow_module_level=True)

torch = pytest.importorskip("torch", reason="torch.autograd is the oracle: "
                            "pip install numalex[oracle]")
F = torch.nn.functional
pytestmark = pytest.mark.cudasim


def random(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)


def assert_close_on_device(got, want):
    """got stays on the device (the backend copies nothing back) and equals want."""
    assert hasattr(got, "copy_to_host")
    got = cu.to_numpy(got)
    assert got.shape == want.shape and got.dtype == np.float32
    scale = max(float(np.abs(want).max()), 1e-30)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * scale)


def torch_gradients(forward, arrays):
    """(dy, [gradient of each array]) of forward(*tensors) under a random dy."""
    tensors = [torch.tensor(a, requires_grad=True) for a in arrays]
    y = forward(*tensors)
    dy = random(*y.shape, seed=99)
    y.backward(torch.from_numpy(dy))
    return dy, [t.grad.numpy() for t in tensors]


@pytest.mark.parametrize("x_shape, w_shape, stride, padding, groups, dilation", [
    ((2, 4, 7, 6), (4, 2, 3, 2), 2, 1, 2, 1),      # groups, 3x2 kernel, stride drops a row
    ((1, 2, 6, 5), (3, 2, 3, 3), 1, 2, 1, 2),      # dilation with padding
])
def test_conv2d_backward_matches_autograd(x_shape, w_shape, stride, padding, groups, dilation):
    x, w, b = random(*x_shape, seed=1), random(*w_shape, seed=2), random(w_shape[0], seed=3)
    dy, want = torch_gradients(
        lambda x, w, b: F.conv2d(x, w, b, stride, padding, dilation, groups), (x, w, b))
    got = cu.conv2d_backward(cu.to_backend(dy), cu.to_backend(x), cu.to_backend(w),
                             cu.to_backend(b), stride, padding, groups, dilation)
    for g, t in zip(got, want):
        assert_close_on_device(g, t)


def test_conv2d_backward_without_dx_gives_the_same_weight_gradients():
    x, w, b = random(1, 2, 5, 5, seed=12), random(3, 2, 2, 2, seed=13), random(3)
    dy = random(1, 3, 4, 4, seed=14)
    _, dw, db = cu.conv2d_backward(dy, x, w, b)
    none, dw_only, db_only = cu.conv2d_backward(dy, x, w, b, need_dx=False)
    assert none is None
    np.testing.assert_array_equal(cu.to_numpy(dw_only), cu.to_numpy(dw))
    np.testing.assert_array_equal(cu.to_numpy(db_only), cu.to_numpy(db))


def test_linear_backward_matches_autograd():
    x, w, b = random(3, 7, seed=4), random(5, 7, seed=5), random(5, seed=6)
    dy, want = torch_gradients(F.linear, (x, w, b))
    for g, t in zip(cu.linear_backward(cu.to_backend(dy), x, w, b, threads=32), want):
        assert_close_on_device(g, t)


def test_max_pool2d_backward_routes_ties_to_the_first_maximum():
    x = np.round(random(1, 2, 7, 6, seed=7))          # small integers: tied maxima
    dy, (want,) = torch_gradients(lambda x: F.max_pool2d(x, 3, 2, 1, ceil_mode=True), (x,))
    assert_close_on_device(cu.max_pool2d_backward(dy, x, 3, 2, 1, True, threads=32), want)


def test_adaptive_avg_pool2d_backward_matches_autograd():
    x = random(1, 2, 5, 7, seed=8)                    # bins overlap on both axes
    dy, (want,) = torch_gradients(lambda x: F.adaptive_avg_pool2d(x, (3, 4)), (x,))
    assert_close_on_device(cu.adaptive_avg_pool2d_backward(dy, x, (3, 4)), want)


@pytest.mark.parametrize("size", [5, 4])
def test_lrn_backward_matches_autograd(size):
    x = 3 * random(1, 7, 2, 3, seed=9)                # 7 channels: windows clipped at both ends
    dy, (want,) = torch_gradients(lambda x: F.local_response_norm(x, size, 0.3, 0.75, 2.0),
                                  (x,))
    assert_close_on_device(cu.lrn_backward(dy, x, size, 0.3, 0.75, 2.0, threads=32), want)


def test_relu_and_dropout_backward():
    x = np.round(random(2, 3, 4, 5, seed=10))         # exact zeros get no gradient
    dy, (want,) = torch_gradients(F.relu, (x,))
    assert_close_on_device(cu.relu_backward(dy, x, threads=64), want)
    y, mask = cu.dropout(x, 0.5, np.random.default_rng(11), threads=64)
    keep = np.random.default_rng(11).random(x.shape, dtype=np.float32) >= 0.5  # reference's draw
    np.testing.assert_array_equal(cu.to_numpy(mask), keep)
    assert_close_on_device(y, x * keep * 2)
    assert_close_on_device(cu.dropout_backward(cu.to_backend(dy), mask, 0.5), dy * keep * 2)
