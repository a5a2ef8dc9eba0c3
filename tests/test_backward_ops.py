"""Every backward op against two independent oracles.

* Central finite differences in float64 of the loop oracles
  (tests/loop_oracles.py): the NumPy reference only, on tiny shapes.
* torch.autograd, on every backend that exports the backward ops (numba
  and cuda join automatically once they do), over random shapes with stride,
  padding, dilation, groups, rectangular kernels, ceil mode and sizes whose
  last rows the stride drops. The gradient's shape is compared with torch's,
  not with numalex's formula.
"""
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import loop_oracles as oracle
from numalex import ShapeError, backends
from numalex.backprop import BACKWARD_OPS
from numalex.testing import PoolCase, adaptive_pool_cases, pool_cases

torch = pytest.importorskip("torch", reason="PyTorch is the oracle here: pip install "
                                            "'numalex[oracle]' (torch==2.13.0)")
F = torch.nn.functional

GRAD_BACKENDS = [name for name in backends.available()
                 if all(hasattr(backends.get(name), op) for op in BACKWARD_OPS)]
on_every_backend = pytest.mark.parametrize("name", [
    pytest.param(name, marks=[pytest.mark.cudasim] if name == "cuda" else [])
    for name in GRAD_BACKENDS])
numpy_ref = backends.get("numpy")


def examples_for(name, small=25):
    """The simulator runs one Python thread per value: fewer cases on cuda."""
    return settings(max_examples=6 if name == "cuda" else small)


def relative_error(got, want) -> float:
    """Max-abs error over the reference's max-abs (0 when both are 0)."""
    scale = np.abs(want).max() if want.size else 0.0
    return float(np.abs(got - want).max() / scale) if scale else float(np.abs(got).max())


def assert_grads_equal(got, want, tol=1e-5):
    for g, t in zip(got, want, strict=True):
        assert g.shape == t.shape
        assert g.dtype == np.float32
        assert relative_error(g, t) < tol


def run_backward(be, op, dy, *args, **kwargs):
    """Call be.OP_backward with host arrays moved to the backend and back."""
    moved = [be.to_backend(a) if isinstance(a, np.ndarray) else a for a in (dy,) + args]
    out = getattr(be, f"{op}_backward")(*moved, **kwargs)
    return tuple(be.to_numpy(g) for g in out) if isinstance(out, tuple) else (be.to_numpy(out),)


def torch_grads(fn, dy, *arrays):
    """Gradients of sum(dy * fn(*arrays)) with respect to each array, by autograd in float64."""
    leaves = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    fn(*leaves).backward(torch.tensor(dy, dtype=torch.float64))
    return tuple(t.grad.numpy() for t in leaves)


def central_differences(fn, dy, arrays, h=1e-6):
    """d sum(dy * fn(*arrays)) / d each array, one element at a time, in float64."""
    arrays = [a.astype(np.float64) for a in arrays]
    grads = []
    for a in arrays:
        g = np.zeros_like(a)
        for i in np.ndindex(a.shape):
            saved = a[i]
            a[i] = saved + h
            up = np.sum(dy * fn(*arrays))
            a[i] = saved - h
            down = np.sum(dy * fn(*arrays))
            a[i] = saved
            g[i] = (up - down) / (2 * h)
        grads.append(g)
    return grads


def random(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def distinct(shape, seed):
    """Values at least 0.01 apart: max pool's winner does not change under a
    finite-difference step, nor does ReLU's sign."""
    values = np.random.default_rng(seed).permutation(np.prod(shape)) - np.prod(shape) / 2
    return (values.reshape(shape) / 50 + 0.005).astype(np.float32)


# ---- convolution ---------------------------------------------------------------------
@st.composite
def convolutions(draw, max_size=12, max_channels=3, max_batch=2):
    """(x shape, w shape, stride, padding, groups, dilation), rectangular kernels included;
    sizes from one window up, so the stride often leaves the last rows unread."""
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    dilation = draw(st.integers(1, 2))
    stride, padding = draw(st.integers(1, 3)), draw(st.integers(0, 2))
    groups = draw(st.integers(1, 3))
    cin, cout = (groups * draw(st.integers(1, max_channels)) for _ in range(2))
    smallest = [max(1, dilation * (k - 1) + 1 - 2 * padding) for k in (kh, kw)]
    h, w = (draw(st.integers(low, max(low, max_size))) for low in smallest)
    return ((draw(st.integers(1, max_batch)), cin, h, w), (cout, cin // groups, kh, kw),
            stride, padding, groups, dilation)


def torch_conv(stride, padding, groups, dilation):
    return lambda x, w, b: F.conv2d(x, w, b, stride, padding, dilation, groups)


# the paper's conv1 at 224 without padding (the last row dropped), small channels
PAPER_CONV1 = ((1, 3, 224, 224), (2, 3, 11, 11), 4, 0, 1, 1)


@on_every_backend
def test_conv2d_backward_equals_torch(name):
    be = backends.get(name)

    @examples_for(name)
    @given(convolutions(max_size=8 if name == "cuda" else 12))
    @example(((1, 2, 10, 7), (2, 1, 3, 2), 2, 1, 2, 2)).via("groups, dilation, 3x2 kernel")
    @example(((1, 1, 10, 9), (1, 1, 3, 3), 4, 0, 1, 1)).via("the stride drops 3 rows, 2 cols")
    @example(((2, 4, 5, 6), (4, 2, 2, 1), 1, 2, 2, 1)).via("padding wider than the kernel")
    def check(case):
        x_shape, w_shape, stride, padding, groups, dilation = case
        x, w, b = random(x_shape, 1), random(w_shape, 2), random(w_shape[:1], 3)
        dy = random(F.conv2d(torch.tensor(x), torch.tensor(w), None, stride, padding,
                             dilation, groups).shape, 4)
        got = run_backward(be, "conv2d", dy, x, w, b, stride, padding, groups, dilation)
        assert_grads_equal(got, torch_grads(torch_conv(stride, padding, groups, dilation),
                                            dy, x, w, b))

    check()


def test_conv2d_backward_without_dx_gives_the_same_dw_and_db():
    """need_dx=False: the first layer of a network needs no input gradient."""
    x, w, b = random((2, 4, 9, 9), 1), random((6, 2, 3, 3), 2), random((6,), 3)
    dy = random((2, 6, 5, 5), 4)                     # (9 + 2 - 3)/2 + 1 = 5
    dx, dw, db = numpy_ref.conv2d_backward(dy, x, w, b, 2, 1, 2, 1)
    none, dw_only, db_only = numpy_ref.conv2d_backward(dy, x, w, b, 2, 1, 2, 1, need_dx=False)
    assert none is None and dx.shape == x.shape
    assert np.array_equal(dw, dw_only) and np.array_equal(db, db_only)


def test_conv2d_backward_equals_central_differences():
    @settings(max_examples=10)
    @given(convolutions(max_size=6, max_channels=2, max_batch=1))
    def check(case):
        x_shape, w_shape, stride, padding, groups, dilation = case
        x, w, b = random(x_shape, 1), random(w_shape, 2), random(w_shape[:1], 3)
        dy = random(oracle.conv2d(x, w, b, stride, padding, groups, dilation).shape, 4)
        got = numpy_ref.conv2d_backward(dy, x, w, b, stride, padding, groups, dilation)
        want = central_differences(
            lambda x, w, b: oracle.conv2d(x, w, b, stride, padding, groups, dilation),
            dy, [x, w, b])
        assert_grads_equal(got, want, tol=1e-4)

    check()


def test_rows_the_stride_dropped_get_no_gradient():
    """The paper's conv1 never reads the last row of a 224 input: (224-11)/4+1 = 54.25."""
    x_shape, w_shape, stride, padding, groups, dilation = PAPER_CONV1
    x, w, b = random(x_shape, 1), random(w_shape, 2), random(w_shape[:1], 3)
    dy = random((1, 2, 54, 54), 4)
    dx, dw, db = numpy_ref.conv2d_backward(dy, x, w, b, stride, padding, groups, dilation)
    want = torch_grads(torch_conv(stride, padding, groups, dilation), dy, x, w, b)
    assert_grads_equal((dx, dw, db), want)
    assert not np.any(want[0][:, :, 223, :]) and not np.any(want[0][:, :, :, 223])
    assert np.all(dx[:, :, 223, :] == 0) and np.all(dx[:, :, :, 223] == 0)
    assert np.all(np.abs(dx[:, :, 222, :]).max(axis=-1) > 0)   # the row before is read


X = random((1, 2, 6, 6), 1)
MIS_SHAPED_DY = [
    ("conv2d", (X, random((3, 2, 3, 3), 2), random((3,), 3)), {}, "(1, 3, 4, 4)"),
    ("max_pool2d", (X, 3, 2), {"ceil_mode": True}, "(1, 2, 3, 3)"),
    ("adaptive_avg_pool2d", (X, (2, 3)), {}, "(1, 2, 2, 3)"),
    ("lrn", (X, 5, 1e-4, 0.75, 1.0), {}, "(1, 2, 6, 6)"),
    ("relu", (X,), {}, "(1, 2, 6, 6)"),
    ("linear", (X[0, 0], random((4, 6), 2), random((4,), 3)), {}, "(6, 4)"),
]


@pytest.mark.parametrize("op, args, kwargs, out_shape", MIS_SHAPED_DY,
                         ids=[case[0] for case in MIS_SHAPED_DY])
def test_a_mis_shaped_dy_is_refused_in_one_line(op, args, kwargs, out_shape):
    with pytest.raises(ShapeError) as err:
        getattr(numpy_ref, f"{op}_backward")(random((1, 2, 5, 4), 4), *args, **kwargs)
    assert str(err.value) == (f"{op}_backward: dy must have the shape of {op}'s output, "
                              f"{out_shape}, got (1, 2, 5, 4)")


# ---- pooling ---------------------------------------------------------------------------
def pool_arrays(case: PoolCase, seed=1):
    x = distinct(case.input_shape, seed)
    y = F.max_pool2d(torch.tensor(x), case.kernel, case.stride, case.padding,
                     ceil_mode=case.ceil_mode)
    return x, random(tuple(y.shape), seed + 1)


def torch_max_pool(case: PoolCase):
    return lambda x: F.max_pool2d(x, case.kernel, case.stride, case.padding,
                                  ceil_mode=case.ceil_mode)


@on_every_backend
def test_max_pool2d_backward_equals_torch(name):
    be = backends.get(name)

    @examples_for(name)
    @given(pool_cases(max_size=8 if name == "cuda" else 14), st.booleans())
    @example(PoolCase(1, 1, 6, 6, 3, 2, 0, True), False).via("ceil: last window hangs over")
    @example(PoolCase(1, 2, 7, 5, 3, 1, 1, False), True).via("overlaps, ties, padding")
    def check(case, ties):
        x, dy = pool_arrays(case)
        if ties:                       # few distinct values: first maximum must win
            x = np.round(x * 2).astype(np.float32)
        got = run_backward(be, "max_pool2d", dy, x, **case.kwargs)
        assert_grads_equal(got, torch_grads(torch_max_pool(case), dy, x))

    check()


def test_max_pool2d_backward_equals_central_differences():
    @settings(max_examples=10)
    @given(pool_cases(max_size=7, max_channels=2, max_batch=1))
    def check(case):
        x, dy = pool_arrays(case)
        got = numpy_ref.max_pool2d_backward(dy, x, **case.kwargs)
        want = central_differences(
            lambda x: oracle.max_pool2d(x, case.kernel, case.stride, case.padding,
                                        case.ceil_mode), dy, [x])
        assert_grads_equal((got,), want, tol=1e-4)

    check()


@on_every_backend
def test_adaptive_avg_pool2d_backward_equals_torch(name):
    be = backends.get(name)

    @examples_for(name)
    @given(adaptive_pool_cases(max_size=8 if name == "cuda" else 14))
    def check(case):
        (x,) = case.arrays()
        dy = random(case.expected_shape, 2)
        got = run_backward(be, "adaptive_avg_pool2d", dy, x, case.out_hw)
        assert_grads_equal(got, torch_grads(lambda x: F.adaptive_avg_pool2d(x, case.out_hw),
                                            dy, x))

    check()


def test_adaptive_avg_pool2d_backward_equals_central_differences():
    @settings(max_examples=10)
    @given(adaptive_pool_cases(max_size=7, max_out=4, max_channels=2, max_batch=1))
    def check(case):
        (x,) = case.arrays()
        dy = random(case.expected_shape, 2)
        got = numpy_ref.adaptive_avg_pool2d_backward(dy, x, case.out_hw)
        want = central_differences(lambda x: oracle.adaptive_avg_pool2d(x, *case.out_hw),
                                   dy, [x])
        assert_grads_equal((got,), want, tol=1e-4)

    check()


# ---- LRN, ReLU, linear, dropout -------------------------------------------------------
lrn_cases = st.tuples(st.integers(1, 2), st.integers(1, 9), st.integers(1, 4),
                      st.integers(1, 7), st.sampled_from([1e-4, 0.1, 2.0]),
                      st.sampled_from([0.75, 0.5, 1.5]), st.sampled_from([1.0, 2.0]))


@on_every_backend
def test_lrn_backward_equals_torch(name):
    be = backends.get(name)

    @examples_for(name)
    @given(lrn_cases)
    @example((1, 96, 3, 5, 1e-4, 0.75, 1.0)).via("Caffe's norm1 settings")
    def check(case):
        n, c, hw, size, alpha, beta, k = case
        x, dy = random((n, c, hw, hw), 1) * 3, random((n, c, hw, hw), 2)
        got = run_backward(be, "lrn", dy, x, size, alpha, beta, k)
        assert_grads_equal(got, torch_grads(
            lambda x: F.local_response_norm(x, size, alpha, beta, k), dy, x))

    check()


def test_lrn_backward_equals_central_differences():
    @settings(max_examples=10)
    @given(lrn_cases)
    def check(case):
        n, c, hw, size, alpha, beta, k = case
        x, dy = random((1, c, 2, 2), 1) * 3, random((1, c, 2, 2), 2)
        got = numpy_ref.lrn_backward(dy, x, size, alpha, beta, k)
        want = central_differences(lambda x: oracle.lrn(x, size, alpha, beta, k), dy, [x])
        assert_grads_equal((got,), want, tol=1e-4)

    check()


@on_every_backend
def test_relu_backward_equals_torch_and_is_zero_at_zero(name):
    be = backends.get(name)
    x = np.array([[-2.0, -0.0, 0.0, 1e-30, 3.0]], np.float32)
    dy = np.array([[5.0, 6.0, 7.0, 8.0, 9.0]], np.float32)
    (got,) = run_backward(be, "relu", dy, x)
    assert_grads_equal((got,), torch_grads(F.relu, dy, x))
    assert got.tolist() == [[0.0, 0.0, 0.0, 8.0, 9.0]]


def test_relu_backward_equals_central_differences():
    x, dy = distinct((2, 3, 4, 4), 1), random((2, 3, 4, 4), 2)
    want = central_differences(lambda x: np.maximum(x, 0), dy, [x])
    assert_grads_equal((numpy_ref.relu_backward(dy, x),), want, tol=1e-4)


linear_cases = st.tuples(st.integers(1, 4), st.integers(1, 9), st.integers(1, 9))


@on_every_backend
def test_linear_backward_equals_torch(name):
    be = backends.get(name)

    @examples_for(name)
    @given(linear_cases)
    def check(case):
        n, fin, fout = case
        x, w, b, dy = (random(s, i) for i, s in enumerate([(n, fin), (fout, fin), (fout,),
                                                            (n, fout)]))
        got = run_backward(be, "linear", dy, x, w, b)
        assert_grads_equal(got, torch_grads(F.linear, dy, x, w, b))

    check()


def test_linear_backward_equals_central_differences():
    x, w, b, dy = (random(s, i) for i, s in enumerate([(2, 5), (3, 5), (3,), (2, 3)]))
    want = central_differences(oracle.linear, dy, [x, w, b])
    assert_grads_equal(numpy_ref.linear_backward(dy, x, w, b), want, tol=1e-4)


@on_every_backend
def test_dropout_scales_kept_values_and_its_backward_equals_torch(name):
    be = backends.get(name)
    x, p = random((4, 3, 8, 8), 1), 0.3
    y, backend_mask = be.dropout(be.to_backend(x), p, np.random.default_rng(5))
    y, mask = be.to_numpy(y), be.to_numpy(backend_mask).astype(bool)
    assert 0.5 < mask.mean() < 0.9                     # about 1 - p kept
    keep = torch.tensor(mask, dtype=torch.float64)
    np.testing.assert_allclose(y, x * mask / (1 - p), rtol=1e-6)
    dy = random(x.shape, 2)
    got = be.to_numpy(be.dropout_backward(be.to_backend(dy), backend_mask, p))
    assert_grads_equal((got,), torch_grads(lambda x: x * keep / (1 - p), dy, x))
    y_again, _ = be.dropout(be.to_backend(x), p, np.random.default_rng(5))
    assert np.array_equal(be.to_numpy(y_again), y)     # same seed, same mask


def test_dropout_refuses_p_outside_0_to_1():
    with pytest.raises(ValueError, match=r"dropout: p must be in \[0, 1\), got 1.5"):
        numpy_ref.dropout(random((2, 2), 1), 1.5, np.random.default_rng(0))
    with pytest.raises(TypeError, match="dropout: rng must be a numpy.random.Generator"):
        numpy_ref.dropout(random((2, 2), 1), 0.5, 7)
