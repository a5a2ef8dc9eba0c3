"""The numba backend's ReLU, its gradient and max pooling take a
channels-last activation, as the Winograd convolutions return it, as it
lies, instead of copying it to NCHW first (ReLU: in whatever dense layout
its inputs have, numalex.kernels.pointwise.in_memory_order). Values are
checked against NumPy's own elementwise operations and the NumPy
reference's max pool, for channels-last views, C order, and views with gaps
(which take a copy)."""
import numpy as np
import pytest

from numalex.backends import numba_backward, numba_cpu, numpy_backward, numpy_ref
from numalex.kernels.pointwise import in_memory_order


def random(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)


def channels_last(shape, seed):
    """An (N, C, H, W) view of (N, H, W, C) memory."""
    n, c, h, w = shape
    return random((n, h, w, c), seed).transpose(0, 3, 1, 2)


LAYOUTS = {
    "C order": lambda seed: random((2, 3, 4, 5), seed),
    "channels-last view": lambda seed: channels_last((2, 3, 4, 5), seed),
    "every other column (gaps)": lambda seed: random((2, 3, 4, 10), seed)[..., ::2],
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_relu_equals_maximum_and_keeps_a_dense_layout(layout):
    x = LAYOUTS[layout](1)
    y = numba_cpu.relu(x)
    np.testing.assert_array_equal(y, np.maximum(x, 0))
    if layout != "every other column (gaps)":
        assert y.strides == x.strides                  # no transpose to NCHW and back


@pytest.mark.parametrize("layout", LAYOUTS)
def test_relu_backward_equals_where_and_keeps_a_dense_layout(layout):
    x, dy = LAYOUTS[layout](2), LAYOUTS[layout](3)
    x[0, 0, 0, 0] = 0.0                                 # the gradient at 0 is 0
    dx = numba_backward.relu_backward(dy, x)
    np.testing.assert_array_equal(dx, np.where(x > 0, dy, 0))
    if layout != "every other column (gaps)":
        assert dx.strides == x.strides


def test_relu_backward_with_layouts_that_differ_takes_copies():
    x, dy = channels_last((2, 3, 4, 5), 4), random((2, 3, 4, 5), 5)
    dx = numba_backward.relu_backward(dy, x)
    np.testing.assert_array_equal(dx, np.where(x > 0, dy, 0))


def test_in_memory_order_walks_memory_front_to_back_or_declines():
    memory = np.arange(24, dtype=np.float32).reshape(2, 3, 4)      # (N, H, W*C)-like
    view = memory.transpose(0, 2, 1)
    (flat,) = in_memory_order(view)
    np.testing.assert_array_equal(flat, np.arange(24))
    assert np.shares_memory(flat, memory)
    assert in_memory_order(memory[:, :, ::2]) is None               # gaps
    assert in_memory_order(memory, view) is None                    # layouts differ


@pytest.mark.parametrize("kernel, stride, padding, ceil_mode",
                         [(3, 2, 0, False), (3, 2, 1, True), (2, 2, 0, True), (1, 1, 0, False)])
def test_max_pool_of_a_channels_last_view_equals_the_reference(kernel, stride, padding,
                                                                ceil_mode):
    x = channels_last((2, 5, 9, 8), 6)
    x[1, 2, 3, 4] = np.nan                              # NaN wins, as in PyTorch
    y = numba_cpu.max_pool2d(x, kernel, stride, padding, ceil_mode)
    want = numpy_ref.max_pool2d(np.ascontiguousarray(x), kernel, stride, padding, ceil_mode)
    np.testing.assert_array_equal(y, want)
    assert y.transpose(0, 2, 3, 1).flags.c_contiguous     # still channels-last


# ---- backward passes that read channels-last activations as they lie ------------------
LAYOUT_PAIRS = [("C order", "C order"), ("channels-last view", "C order"),
                ("C order", "channels-last view"), ("channels-last view", "channels-last view")]


def in_layout(a, layout):
    """a (N, C, H, W) as C order or as a channels-last view of the same values."""
    return a if layout == "C order" else np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(
        0, 3, 1, 2)


@pytest.mark.parametrize("x_layout, dy_layout", LAYOUT_PAIRS)
@pytest.mark.parametrize("need_dx", [True, False])
@pytest.mark.parametrize("stride, padding, groups, dilation",
                         [(1, 1, 1, 1), (2, 1, 2, 1), (1, 2, 2, 2)])
def test_conv2d_backward_of_any_layout_matches_autograd(x_layout, dy_layout, need_dx, stride,
                                                        padding, groups, dilation):
    """Channels-last x without dx takes im2row_channels_last (weight
    gradient in (u, v, c) order, put back); the other cases im2col. The
    oracle is torch.autograd on C-order copies."""
    torch = pytest.importorskip("torch", reason="torch.autograd is the oracle")
    x, w, b = random((3, 4, 9, 8), 1), random((6, 4 // groups, 3, 2), 2), random((6,), 3)
    tensors = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
    y = torch.nn.functional.conv2d(*tensors, stride, padding, dilation, groups)
    dy = random(tuple(y.shape), 4)
    y.backward(torch.from_numpy(dy))
    dx, dw, db = numba_backward.conv2d_backward(in_layout(dy, dy_layout), in_layout(x, x_layout),
                                                w, b, stride, padding, groups, dilation,
                                                need_dx=need_dx)
    for got, tensor in [(dx, tensors[0]), (dw, tensors[1]), (db, tensors[2])]:
        if got is None:
            assert not need_dx and tensor is tensors[0]
            continue
        want = tensor.grad.numpy()
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * float(np.abs(want).max()))


@pytest.mark.parametrize("x_layout, dy_layout", LAYOUT_PAIRS)
def test_max_pool2d_backward_of_any_layout_equals_the_reference_in_x_layout(x_layout, dy_layout):
    x = random((2, 5, 9, 8), 5)
    x[1, 2, 3, 4] = np.nan                              # NaN wins, as in the forward pass
    dy = random((2, 5, 4, 3), 6)
    want = numpy_backward.max_pool2d_backward(dy, x, 3, 2)
    dx = numba_backward.max_pool2d_backward(in_layout(dy, dy_layout), in_layout(x, x_layout), 3, 2)
    np.testing.assert_array_equal(dx, want)
    assert dx.strides == in_layout(x, x_layout).strides              # x's layout, no copy back
