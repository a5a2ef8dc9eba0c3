"""The numba backend's pooling, LRN, ReLU and linear layers against
brute-force loops (tests/loop_oracles.py) and PyTorch, and the errors every
op gives on bad input. Tolerance: assert_close (numba_op_checks.py)."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import loop_oracles as loops
from numalex.kernels import linear as linear_kernels
from numalex.shapes import ShapeError
from numba_op_checks import F, assert_close, nb, random, t  # noqa: F401  (F: a fixture)


# ---- pooling, LRN, ReLU, linear -----------------------------------------------
@pytest.mark.parametrize("shape,kernel,stride,padding,ceil_mode", [
    ((2, 3, 13, 13), 3, 2, 0, False),
    ((1, 2, 54, 54), 3, 2, 0, True),       # Caffe's pool1 at 224: 27, not 26
    ((1, 2, 6, 9), 3, 2, 1, True),         # padding and ceil, non-square
    ((1, 1, 7, 7), 2, 3, 1, True),         # ceil window that would start in the padding
    ((1, 1, 1, 1), 1, 1, 0, False),
])
def test_max_pool2d_matches_loop_oracle(shape, kernel, stride, padding, ceil_mode):
    x = random(shape, 4)
    assert_close(nb.max_pool2d(x, kernel, stride, padding, ceil_mode),
                 loops.max_pool2d(x, kernel, stride, padding, ceil_mode))


def test_max_pool2d_propagates_nan_like_numpy():
    x = random((1, 2, 7, 7), 4)
    x[0, 0, 3, 4] = np.nan
    got = nb.max_pool2d(x, 3, 2, 1, True)
    np.testing.assert_array_equal(got, loops.max_pool2d(x, 3, 2, 1, True))   # NaN == NaN here
    assert np.isnan(got).sum() == 2        # windows (1, 2) and (2, 2) hold the NaN


@given(h=st.integers(1, 12), w=st.integers(1, 12), kernel=st.integers(1, 4),
       stride=st.integers(1, 3), data=st.data(), ceil_mode=st.booleans())
def test_max_pool2d_random_shapes(h, w, kernel, stride, data, ceil_mode):
    padding = data.draw(st.integers(0, kernel // 2))
    x = random((2, 2, h, w), h * 13 + w)
    if not all(loops.window_starts(n, kernel, stride, padding, ceil_mode=ceil_mode)
               for n in (h, w)):                  # no window fits: a refusal, not a pass
        with pytest.raises(ShapeError, match="is too small"):
            nb.max_pool2d(x, kernel, stride, padding, ceil_mode)
        return
    assert_close(nb.max_pool2d(x, kernel, stride, padding, ceil_mode),
                 loops.max_pool2d(x, kernel, stride, padding, ceil_mode))


@pytest.mark.parametrize("shape,out_hw", [((2, 3, 13, 13), (6, 6)), ((1, 2, 6, 6), (6, 6)),
                                          ((1, 2, 5, 11), (3, 4)), ((1, 1, 2, 3), (5, 7))])
def test_adaptive_avg_pool2d_matches_loop_oracle(shape, out_hw):
    x = random(shape, 5)
    assert_close(nb.adaptive_avg_pool2d(x, out_hw), loops.adaptive_avg_pool2d(x, *out_hw))


@pytest.mark.parametrize("channels,size", [(7, 5), (3, 5), (6, 4), (1, 1)])
def test_lrn_matches_loop_oracle(channels, size):
    x = random((2, channels, 5, 4), 6) * 10
    assert_close(nb.lrn(x, size, 1e-2, 0.75, 2.0), loops.lrn(x, size, 1e-2, 0.75, 2.0))


def test_relu_matches_definition():
    x = random((3, 4, 5, 6), 7)
    y = nb.relu(x)
    assert y.dtype == np.float32 and y.shape == x.shape
    assert np.array_equal(y, np.where(x > 0, x, 0))
    assert (x < 0).any()                     # the case that matters is exercised


@pytest.mark.parametrize("batch", [1, 2, 3, 8, 9, 20, 33])  # streamed to 8, then blocked
@pytest.mark.parametrize("out", [5, 11, 24])   # fewer rows than a block, a remainder, none
def test_linear_matches_loop_oracle(batch, out):
    x, w, b = random((batch, 37), 8), random((out, 37), 9), random((out,), 10)
    want = loops.linear(x, w, b)
    assert_close(nb.linear(x, w, b), want)
    assert_close(nb.linear(x, w, b, relu=True), np.maximum(want, 0))


@pytest.mark.parametrize("batch,out", [(1, 1), (1, 6), (5, 4), (3, 13)])
def test_streaming_kernel_edges(batch, out):
    # blocks of 4 rows and 2 samples; the edge blocks repeat a row or sample
    x, w, b = random((batch, 19), 8), random((out, 19), 9), random((out,), 10)
    y = np.full((batch, out), np.nan, dtype=np.float32)
    linear_kernels.linear_streaming(x, w, b, y)
    assert_close(y, loops.linear(x, w, b))


@pytest.mark.parametrize("parts", [1, 2, 3])
@pytest.mark.parametrize("features,out,zeros", [(19, 13, 0.5), (37, 24, 0.0), (9, 5, 1.0),
                                                (40, 3, 0.9)])
def test_skipping_kernel_reads_only_nonzero_inputs(parts, features, out, zeros):
    # rows of W^T four at a time; a part's last group repeats a row with x = 0;
    # the columns past a multiple of 8 are summed one by one
    rng = np.random.default_rng(features + out)
    x = random((1, features), 8)
    x[0, rng.random(features) < zeros] = 0.0
    w, b = random((out, features), 9), random((out,), 10)
    wt = np.ascontiguousarray(w.T)
    wt[x[0] == 0] = np.nan                   # rows it must never read
    partial = np.zeros((parts, out), np.float32)
    linear_kernels.linear_skipping_zeros(x[0], np.flatnonzero(x[0]), wt, partial)
    assert_close(partial.sum(axis=0)[None] + b, loops.linear(x, w, b))


def test_prepared_weight_at_batch_1_skips_zero_inputs_unless_a_weight_is_infinite():
    # a model's forward pass skips zero inputs at batch 1; with an infinite
    # weight it must not: 0 * inf is NaN in PyTorch and in the reference
    x, w, b = random((1, 30), 8), random((7, 30), 9), random((7,), 10)
    x[0, ::3] = 0.0
    prepared = nb.prepare_params({"w": w})["w"]
    assert_close(nb.linear(x, prepared, b, relu=True), np.maximum(loops.linear(x, w, b), 0))
    w[2, 3] = np.inf                                   # meets x[0, 3] == 0
    prepared = nb.prepare_params({"w": w})["w"]
    got = nb.linear(x, prepared, b)
    assert np.isnan(got[0, 2]) and np.isfinite(np.delete(got[0], 2)).all()


@pytest.mark.parametrize("batch,out", [(9, 1), (16, 6), (17, 13), (40, 7)])
def test_blocked_kernel_edges(batch, out):
    # blocks of 6 weight rows and 16 samples: an edge block repeats its last
    # row, and samples past the batch are zeros that are never stored
    x, w, b = random((batch, 21), 8), random((out, 21), 9), random((out,), 10)
    y = np.full((batch, out), np.nan, dtype=np.float32)
    linear_kernels.linear_blocked(w, linear_kernels.pack_samples(x), b, False, y)
    assert_close(y, loops.linear(x, w, b))


# ---- bad input gets a clear error -----------------------------------------------
def test_conv2d_rejects_channel_mismatch():
    with pytest.raises(ShapeError, match="channels"):
        nb.conv2d(random((1, 4, 8, 8)), random((6, 3, 3, 3)), random((6,)), 1, 0, 1, 1)


def test_conv2d_rejects_bad_bias_and_groups():
    with pytest.raises(ShapeError, match="bias"):
        nb.conv2d(random((1, 4, 8, 8)), random((6, 2, 3, 3)), random((5,)), 1, 0, 2, 1)
    with pytest.raises(ShapeError, match="groups"):
        nb.conv2d(random((1, 4, 8, 8)), random((5, 2, 3, 3)), random((5,)), 1, 0, 2, 1)
    with pytest.raises(ValueError, match="groups"):
        nb.conv2d(random((1, 4, 8, 8)), random((5, 2, 3, 3)), random((5,)), 1, 0, 0, 1)


def test_too_small_inputs_raise_shape_error():
    with pytest.raises(ShapeError, match="too small"):
        nb.conv2d(random((1, 3, 5, 5)), random((2, 3, 11, 11)), random((2,)), 4, 2)
    with pytest.raises(ShapeError, match="too small"):
        nb.max_pool2d(random((1, 3, 2, 2)), 3, 2)


def test_wrong_types_and_ranks():
    with pytest.raises(TypeError, match="NumPy array"):
        nb.relu([1.0, -1.0])
    with pytest.raises(TypeError, match="floating"):
        nb.max_pool2d(np.ones((1, 1, 4, 4), dtype=np.int32), 2, 2)
    with pytest.raises(ShapeError, match=r"\(N, C, H, W\)"):
        nb.lrn(random((3, 4, 5)), 5, 1e-4, 0.75, 1.0)
    with pytest.raises(ShapeError, match="features"):
        nb.linear(random((2, 5)), random((3, 6)), random((3,)))
    with pytest.raises(ValueError, match="half the kernel"):
        nb.max_pool2d(random((1, 1, 8, 8)), 3, 1, padding=2)


def test_non_contiguous_and_float64_inputs_are_accepted():
    x = random((2, 3, 12, 10), 11)[:, :, ::2]                  # a strided view
    w, b = random((4, 3, 3, 3), 12).astype(np.float64), random((4,), 13)
    assert_close(nb.conv2d(x, w, b, 1, 1), loops.conv2d(x, w, b, 1, 1, 1, 1))


# ---- PyTorch as a second oracle ------------------------------------------------------
@pytest.mark.parametrize("shape,kernel,stride,padding,ceil_mode", [
    ((2, 3, 55, 55), 3, 2, 0, False), ((1, 2, 54, 54), 3, 2, 0, True),
    ((1, 2, 8, 11), 3, 2, 1, True), ((1, 1, 7, 7), 2, 3, 1, True)])
def test_max_pool2d_matches_torch(F, shape, kernel, stride, padding, ceil_mode):
    x = random(shape, 4)
    want = F.max_pool2d(t(x), kernel, stride, padding, ceil_mode=ceil_mode).numpy()
    assert_close(nb.max_pool2d(x, kernel, stride, padding, ceil_mode), want)


@pytest.mark.parametrize("shape,out_hw", [((2, 3, 13, 13), (6, 6)), ((1, 2, 5, 11), (3, 4)),
                                          ((1, 1, 2, 3), (5, 7))])
def test_adaptive_avg_pool2d_matches_torch(F, shape, out_hw):
    x = random(shape, 5)
    assert_close(nb.adaptive_avg_pool2d(x, out_hw), F.adaptive_avg_pool2d(t(x), out_hw).numpy())


def test_lrn_relu_linear_match_torch(F):
    x = random((2, 96, 7, 6), 6) * 10
    assert_close(nb.lrn(x, 5, 1e-4, 0.75, 1.0),
                 F.local_response_norm(t(x), 5, alpha=1e-4, beta=0.75, k=1.0).numpy())
    assert_close(nb.relu(x), F.relu(t(x)).numpy())
    v, w, b = random((5, 300), 7), random((40, 300), 8), random((40,), 9)
    assert_close(nb.linear(v, w, b), F.linear(t(v), t(w), t(b)).numpy())
