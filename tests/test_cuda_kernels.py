"""Every CUDA kernel against the NumPy reference backend, in the simulator.

The simulator runs each GPU thread as Python, so shapes are small; they are
chosen to hit the edges instead: sizes that are not multiples of the tile,
tiles larger than the problem, groups=2, dilation, ceil-mode windows that
overhang (or are dropped), adaptive bins that overlap.
"""
import numpy as np
import pytest

from numalex import backends
from numalex.backends import numpy_ref as ref
from numalex.shapes import ShapeError

try:
    cu = backends.get("cuda")
except backends.BackendUnavailable as err:
    pytest.skip(f"no GPU and no CUDA simulator: {err}", allow_module_level=True)

from numalex.backends import cuda_linear as rows_linear  # noqa: E402
from numalex.backends.cuda_gemm import GemmTiles  # noqa: E402

pytestmark = pytest.mark.cudasim


def assert_close(got, want):
    """Equal to 1e-4 relative to the size of the values."""
    assert got.shape == want.shape
    scale = max(float(np.abs(want).max()), 1e-30)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * scale)


def random(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)


# ---- conv2d -----------------------------------------------------------------
CONV_CASES = {
    # name: (x shape, w shape, stride, padding, groups, dilation, tiles)
    "tile-not-a-multiple": ((2, 3, 5, 7), (5, 3, 3, 3), 1, 1, 1, 1, GemmTiles(4, 8, 5)),
    "groups-2": ((1, 4, 8, 7), (6, 2, 3, 3), 2, 1, 2, 1, GemmTiles(4, 4, 4)),
    "groups-2-odd-tiles": ((1, 6, 5, 5), (4, 3, 3, 3), 1, 1, 2, 1, GemmTiles(3, 5, 7)),
    "dilation-stride-3": ((1, 2, 13, 10), (3, 2, 3, 3), 3, 2, 1, 2, GemmTiles(2, 8, 8)),
    "tiles-larger-than-problem": ((1, 2, 4, 4), (3, 2, 2, 2), 1, 0, 1, 1, GemmTiles(8, 32, 64)),
    "conv1-like-default-tiles": ((1, 3, 23, 23), (4, 3, 11, 11), 4, 2, 1, 1, None),
}


@pytest.mark.parametrize("case", CONV_CASES.values(), ids=CONV_CASES.keys())
def test_conv2d_matches_reference(case):
    x_shape, w_shape, stride, padding, groups, dilation, tiles = case
    x, w, b = random(*x_shape, seed=1), random(*w_shape, seed=2), random(w_shape[0], seed=3)
    want = ref.conv2d(x, w, b, stride, padding, groups, dilation)
    got = cu.conv2d(cu.to_backend(x), cu.to_backend(w), cu.to_backend(b), stride, padding,
                    groups, dilation, tiles=tiles)
    assert_close(cu.to_numpy(got), want)


def test_conv2d_fused_relu_is_relu_of_conv():
    x, w, b = random(1, 3, 6, 6, seed=4), random(4, 3, 3, 3, seed=5), random(4, seed=6)
    want = np.maximum(ref.conv2d(x, w, b, 1, 1), 0)
    assert (want == 0).any() and (want > 0).any()
    assert_close(cu.to_numpy(cu.conv2d(x, w, b, 1, 1, relu=True, tiles=GemmTiles(4, 16, 8))),
                 want)


# ---- linear -----------------------------------------------------------------
@pytest.mark.parametrize("tiles", [None, GemmTiles(4, 2, 8), GemmTiles(3, 3, 5)],
                         ids=["default", "4x2x8", "3x3x5"])
def test_linear_matches_reference(tiles):
    x, w, b = random(3, 37, seed=7), random(11, 37, seed=8), random(11, seed=9)
    assert_close(cu.to_numpy(cu.linear(x, w, b, tiles=tiles)), ref.linear(x, w, b))


@pytest.mark.parametrize("batch", [1, 8])         # one running sum per sample, up to 8
@pytest.mark.parametrize("out", [1, 13])          # a block of 8 rows partly or mostly empty
@pytest.mark.parametrize("relu", [False, True])
def test_linear_by_rows_matches_reference(batch, out, relu):
    # the large-weight path, called directly: 70 features leave the last of
    # each warp's steps with 6 of 32 lanes busy
    x, w, b = random(batch, 70, seed=7), random(out, 70, seed=8), random(out, seed=9)
    want = ref.linear(x, w, b)
    if relu:
        want = np.maximum(want, 0)
        assert want.size == 1 or ((want == 0).any() and (want > 0).any())
    got = rows_linear.by_rows(*(cu.to_backend(a) for a in (x, w, b)), relu)
    assert_close(cu.to_numpy(got), want)


def test_linear_fused_relu():
    x, w, b = random(2, 20, seed=10), random(9, 20, seed=11), random(9, seed=12)
    want = np.maximum(ref.linear(x, w, b), 0)
    assert (want == 0).any() and (want > 0).any()
    assert_close(cu.to_numpy(cu.linear(x, w, b, relu=True)), want)


# ---- the one-thread-per-output kernels -------------------------------------
def test_relu_matches_reference_with_a_partial_last_block():
    x = random(2, 3, 5, 7, seed=13)                       # 210 elements, blocks of 64
    assert_close(cu.to_numpy(cu.relu(x, threads=64)), ref.relu(x))


POOL_CASES = {
    # name: (H, W, kernel, stride, padding, ceil_mode)
    "floor-drops-a-row": (8, 9, 3, 2, 0, False),
    "ceil-window-overhangs": (8, 9, 3, 2, 0, True),
    "ceil-last-window-dropped": (5, 5, 2, 2, 1, True),   # would start in the right padding
    "ceil-with-padding": (7, 6, 3, 2, 1, True),
    "caffe-pool1-at-67": (15, 15, 3, 2, 0, True),
}


@pytest.mark.parametrize("case", POOL_CASES.values(), ids=POOL_CASES.keys())
def test_max_pool2d_matches_reference(case):
    height, width, kernel, stride, padding, ceil_mode = case
    x = random(2, 2, height, width, seed=14)
    want = ref.max_pool2d(x, kernel, stride, padding, ceil_mode)
    assert_close(cu.to_numpy(cu.max_pool2d(x, kernel, stride, padding, ceil_mode, threads=32)),
                 want)


def test_max_pool2d_propagates_nan_like_numpy_and_torch():
    # NaN first in its window, last in its window, and alone with -inf: each
    # window that holds a NaN must give NaN, as the numpy and numba backends
    # and PyTorch do (max() keeps the left operand when one side is NaN)
    x = np.zeros((1, 1, 4, 4), np.float32)
    x[0, 0, 0, 0] = np.nan                                 # window (0, 0): first
    x[0, 0, 1, 3] = np.nan                                 # window (0, 1): last
    x[0, 0, 2:, :2] = [[np.nan, -np.inf], [-np.inf, -np.inf]]   # window (1, 0)
    y = cu.to_numpy(cu.max_pool2d(x, 2, 2))
    want = ref.max_pool2d(x, 2, 2)
    assert np.isnan(want[0, 0]).tolist() == [[True, True], [True, False]]
    np.testing.assert_array_equal(y, want)


@pytest.mark.parametrize("in_hw, out_hw", [((5, 7), (3, 2)), ((1, 1), (6, 6)), ((6, 6), (6, 6)),
                                           ((3, 4), (6, 5))])
def test_adaptive_avg_pool2d_matches_reference(in_hw, out_hw):
    x = random(1, 3, *in_hw, seed=15)
    assert_close(cu.to_numpy(cu.adaptive_avg_pool2d(x, out_hw, threads=32)),
                 ref.adaptive_avg_pool2d(x, out_hw))


@pytest.mark.parametrize("size, alpha, beta, k", [(5, 1e-4, 0.75, 1.0), (5, 0.5, 0.75, 2.0),
                                                  (4, 0.3, 0.5, 1.0), (1, 1.0, 1.0, 1.0)])
def test_lrn_matches_reference(size, alpha, beta, k):
    x = 3 * random(1, 7, 3, 4, seed=16)                   # 7 channels: windows clipped at both ends
    assert_close(cu.to_numpy(cu.lrn(x, size, alpha, beta, k, threads=32)),
                 ref.lrn(x, size, alpha, beta, k))


# ---- tiles ------------------------------------------------------------------
def test_fit_moves_idle_rows_to_columns_and_back():
    tiles = GemmTiles(16, 16, 32)
    assert tiles.fit(4, 256) == GemmTiles(4, 64, 32)       # conv1 of a small net
    assert tiles.fit(4096, 1) == GemmTiles(256, 1, 32)     # fc6 at batch 1
    assert tiles.fit(64, 3025) == tiles                    # a full-size conv: unchanged


@pytest.mark.parametrize("m, n, k", [(0, 16, 16), (16, 16, 0), (64, 32, 8), (16.0, 16, 16),
                                     (16, 16, 512)])
def test_bad_tiles_are_refused(m, n, k):
    with pytest.raises(ValueError, match="GemmTiles"):
        GemmTiles(m, n, k)


# ---- errors -----------------------------------------------------------------
def test_conv2d_channel_mismatch_is_a_shape_error():
    with pytest.raises(ShapeError, match=r"input x has 2 channels; weight \(4, 3, 3, 3\)"):
        cu.conv2d(random(1, 2, 5, 5), random(4, 3, 3, 3), random(4), 1, 0)


def test_conv2d_groups_must_divide_channels():
    with pytest.raises(ShapeError, match=r"groups=2 needs 1\*2 = 2 input channels"):
        cu.conv2d(random(1, 3, 5, 5), random(4, 1, 3, 3), random(4), 1, 0, groups=2)


def test_conv2d_input_smaller_than_the_kernel_names_the_formula():
    with pytest.raises(ShapeError, match="too small"):
        cu.conv2d(random(1, 1, 2, 2), random(1, 1, 3, 3), random(1), 1, 0)


def test_linear_feature_mismatch_is_a_shape_error():
    with pytest.raises(ShapeError, match="linear: weight"):
        cu.linear(random(2, 5), random(3, 6), random(3))


def test_float64_device_array_is_a_type_error():
    x64 = cu.cuda.to_device(np.zeros((1, 1, 3, 3)))
    with pytest.raises(TypeError, match="max_pool2d: input x must be float32"):
        cu.max_pool2d(x64, 2, 2)


def test_pool_padding_over_half_the_kernel_is_refused():
    with pytest.raises(ValueError, match="more than half the kernel"):
        cu.max_pool2d(random(1, 1, 6, 6), 2, 2, padding=2)


def test_linear_bias_mismatch_names_linear():
    with pytest.raises(ShapeError, match=r"linear: bias must have shape \(3,\)"):
        cu.linear(random(2, 5), random(3, 5), random(4))
