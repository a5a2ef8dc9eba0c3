"""The numba backend's backward passes against torch.autograd.

Every op runs forward in PyTorch on the same arrays, ``backward(dy)`` with
the same random dy, and the gradients of its array arguments must equal
numalex's (``assert_close``: rtol 1e-4 plus 1e-5 of the largest value,
as in test_numba_ops.py). Hypothesis draws the shapes: strides, padding,
dilation, groups, rectangular kernels, ceil mode, and input sizes that the
stride does not tile (the rows it drops get no gradient). Examples are
bounded (``EXAMPLES``) to keep the file to a few seconds once the kernels
are compiled.
"""
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from numalex import backends
from numalex.shapes import ShapeError
from numalex.testing import adaptive_pool_cases, pool_cases

torch = pytest.importorskip("torch", reason="torch.autograd is the oracle: "
                            "pip install numalex[oracle]")
F = torch.nn.functional
nb = backends.get("numba")
EXAMPLES = settings(max_examples=20)


def assert_close(got, want):
    assert got.shape == want.shape and got.dtype == np.float32
    scale = float(np.abs(want).max()) or 1.0
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * scale)


def random(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)


def torch_gradients(forward, arrays, seed=99):
    """(dy, [gradient of each array]) of forward(*tensors) under a random dy."""
    tensors = [torch.tensor(a, requires_grad=True) for a in arrays]
    y = forward(*tensors)
    dy = random(tuple(y.shape), seed)
    y.backward(torch.from_numpy(dy))
    return dy, [t.grad.numpy() for t in tensors]


# ---- convolution ---------------------------------------------------------------------
@st.composite
def rectangular_convs(draw):
    """(x shape, w shape, stride, padding, groups, dilation): a valid conv2d
    with kh != kw allowed; sizes from one window up, so some strides drop rows."""
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride, padding = draw(st.integers(1, 3)), draw(st.integers(0, 2))
    dilation = draw(st.integers(1, 2))
    groups = draw(st.integers(1, 2))
    c_per_group, o_per_group = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    h = draw(st.integers(max(1, dilation * (kh - 1) + 1 - 2 * padding), 11))
    w = draw(st.integers(max(1, dilation * (kw - 1) + 1 - 2 * padding), 11))
    return ((draw(st.integers(1, 2)), groups * c_per_group, h, w),
            (groups * o_per_group, c_per_group, kh, kw), stride, padding, groups, dilation)


@EXAMPLES
@given(rectangular_convs())
@example(((1, 3, 23, 23), (4, 3, 11, 11), 4, 2, 1, 1))   # conv1 of AlexNet-224, shrunk: 1 row dropped
@example(((2, 4, 9, 8), (6, 2, 3, 3), 2, 0, 2, 1))       # groups, stride drops a row
@example(((2, 4, 9, 8), (6, 2, 3, 3), 1, 1, 2, 1))       # dx as a forward conv, by group
@example(((9, 2, 7, 6), (3, 2, 5, 5), 1, 4, 1, 1))       # ... padding k - 1, Winograd batch
@example(((1, 2, 7, 6), (3, 2, 3, 3), 1, 0, 1, 1))       # ... no padding
def test_conv2d_backward_matches_autograd(case):
    x_shape, w_shape, stride, padding, groups, dilation = case
    x, w, b = random(x_shape, 1), random(w_shape, 2), random(w_shape[:1], 3)
    dy, want = torch_gradients(
        lambda x, w, b: F.conv2d(x, w, b, stride, padding, dilation, groups), (x, w, b))
    got = nb.conv2d_backward(dy, x, w, b, stride, padding, groups, dilation)
    for g, t in zip(got, want):
        assert_close(g, t)


def test_conv2d_backward_without_dx_gives_the_same_weight_gradients():
    x, w, b = random((3, 4, 10, 9), 4), random((6, 2, 3, 2), 5), random((6,), 6)
    dy = random((3, 6, 5, 5), 7)
    dx, dw, db = nb.conv2d_backward(dy, x, w, b, 2, 1, 2, 1)
    none, dw_only, db_only = nb.conv2d_backward(dy, x, w, b, 2, 1, 2, 1, need_dx=False)
    assert none is None and dx.shape == x.shape
    np.testing.assert_array_equal(dw_only, dw)
    np.testing.assert_array_equal(db_only, db)


def test_conv2d_backward_in_chunks_equals_one_chunk(monkeypatch):
    """The images go in chunks (bounded columns); dW sums over the chunks."""
    from numalex.kernels import conv

    x, w, b = random((5, 3, 8, 8), 8), random((4, 3, 3, 3), 9), random((4,), 10)
    dy, want = torch_gradients(lambda x, w, b: F.conv2d(x, w, b, 1, 1), (x, w, b))
    monkeypatch.setattr(conv, "COLS_BUDGET_BYTES", 1)          # one image per chunk
    for g, t in zip(nb.conv2d_backward(dy, x, w, b, 1, 1), want):
        assert_close(g, t)


# ---- linear --------------------------------------------------------------------------
@EXAMPLES
@given(st.integers(1, 9), st.integers(1, 40), st.integers(1, 20))
def test_linear_backward_matches_autograd(n, features, out):
    x, w, b = random((n, features), 11), random((out, features), 12), random((out,), 13)
    dy, want = torch_gradients(F.linear, (x, w, b))
    for g, t in zip(nb.linear_backward(dy, x, w, b), want):
        assert_close(g, t)


# ---- pooling -------------------------------------------------------------------------
@EXAMPLES
@given(pool_cases(max_size=12), st.booleans())
def test_max_pool2d_backward_matches_autograd(case, ties):
    """With `ties`, x holds small integers, so windows have several maxima
    and only the first may get the gradient."""
    (x,) = case.arrays(seed=14)
    if ties:
        x = np.round(x).astype(np.float32)
    k = case.kwargs
    dy, (want,) = torch_gradients(
        lambda x: F.max_pool2d(x, k["kernel"], k["stride"], k["padding"],
                               ceil_mode=k["ceil_mode"]), (x,))
    assert_close(nb.max_pool2d_backward(dy, x, **k), want)


def test_max_pool2d_backward_sums_where_windows_overlap():
    # 3x3 windows, stride 1: the centre 1 wins all four windows of a 4x4 input of zeros
    x = np.zeros((1, 1, 4, 4), np.float32)
    x[0, 0, 1, 1] = 1
    dy = np.arange(1, 5, dtype=np.float32).reshape(1, 1, 2, 2)
    dx = nb.max_pool2d_backward(dy, x, 3, 1)
    assert dx[0, 0, 1, 1] == 1 + 2 + 3 + 4 and np.count_nonzero(dx) == 1


@EXAMPLES
@given(adaptive_pool_cases(max_size=12))
def test_adaptive_avg_pool2d_backward_matches_autograd(case):
    (x,) = case.arrays(seed=15)
    dy, (want,) = torch_gradients(lambda x: F.adaptive_avg_pool2d(x, case.out_hw), (x,))
    assert_close(nb.adaptive_avg_pool2d_backward(dy, x, case.out_hw), want)


# ---- LRN, ReLU, dropout --------------------------------------------------------------
@EXAMPLES
@given(st.integers(1, 7), st.integers(1, 9), st.floats(1e-4, 1.0), st.floats(0.25, 1.5),
       st.floats(0.5, 2.0))
@example(5, 96, 1e-4, 0.75, 1.0)                                  # AlexNet's LRN
def test_lrn_backward_matches_autograd(size, channels, alpha, beta, k):
    x = random((2, channels, 3, 4), 16) * 3
    dy, (want,) = torch_gradients(
        lambda x: F.local_response_norm(x, size, alpha, beta, k), (x,))
    assert_close(nb.lrn_backward(dy, x, size, alpha, beta, k), want)


def test_relu_backward_matches_autograd_with_zero_getting_no_gradient():
    x = np.round(random((3, 4, 5, 6), 17))                        # many exact zeros
    assert (x == 0).any()
    dy, (want,) = torch_gradients(F.relu, (x,))
    got = nb.relu_backward(dy, x)
    assert_close(got, want)
    assert (got[x == 0] == 0).all()


@pytest.mark.parametrize("p", [0.0, 0.5, 0.9])
def test_dropout_scales_kept_values_and_routes_the_gradient_through_them(p):
    x, dy = random((4, 300), 18), random((4, 300), 19)
    y, mask = nb.dropout(x, p, np.random.default_rng(20))
    keep = np.random.default_rng(20).random(x.shape, dtype=np.float32) >= p  # the reference's draw
    np.testing.assert_array_equal(mask, keep)
    tx = torch.tensor(x, requires_grad=True)
    (tx * torch.from_numpy(keep) / (1 - p)).backward(torch.from_numpy(dy))
    assert_close(y, x * keep / np.float32(1 - p))
    assert_close(nb.dropout_backward(dy, mask, p), tx.grad.numpy())


# ---- bad input -----------------------------------------------------------------------
def test_backward_refuses_a_gradient_of_the_wrong_shape():
    x, w, b = random((1, 2, 6, 6), 21), random((3, 2, 3, 3), 22), random((3,), 23)
    with pytest.raises(ShapeError, match=r"conv2d_backward: dy must have the shape.*\(1, 3, 4, 4\)"):
        nb.conv2d_backward(random((1, 3, 5, 5), 24), x, w, b)
    with pytest.raises(ShapeError, match="max_pool2d_backward"):
        nb.max_pool2d_backward(random((1, 2, 2, 2), 25), x, 2, 2)
    with pytest.raises(TypeError, match="relu_backward: dy must be a float32 NumPy array"):
        nb.relu_backward([1.0], np.ones(1, np.float32))
    with pytest.raises(ValueError, match=r"dropout: p must be in \[0, 1\)"):
        nb.dropout(x, 1.0, np.random.default_rng(0))
