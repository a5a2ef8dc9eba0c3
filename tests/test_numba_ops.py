"""The numba backend's convolutions, every rung of the ladder, against
brute-force loops, the NumPy reference and PyTorch (pooling, LRN, ReLU and
linear: test_numba_layers.py).

The first oracle is tests/loop_oracles.py: every op from its definition, one
output element at a time, sharing no code with numalex. PyTorch is a second,
independent oracle (skipped only if torch is not installed).

Tolerance: float32 sums come out in a different order in every
implementation, and the rounding error of a sum scales with the size of
its terms, not of its result (an output near zero can be the difference of
two large terms). So entries must agree to rtol=1e-4, plus an absolute slack
of 1e-5 times the largest reference value for entries produced by
cancellation (``assert_close``).
"""

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import loop_oracles as loops
from numalex import backends
from numalex.backends import checks
from numalex.kernels import (blas, conv, conv_im2row, conv_shifted, ladder, winograd, winograd_f4,
                             winograd_products, winograd_tiling)
from numalex.shapes import ShapeError
from numalex.testing import conv_cases
from numba_op_checks import F, assert_close, nb, random, t  # noqa: F401  (F: a fixture)


# ---- convolution ------------------------------------------------------------
CONV_CASES = [  # (N, C, H, W, O, k, stride, padding, groups, dilation)
    (1, 3, 23, 23, 4, 11, 4, 2, 1, 1),     # conv1-like, floor drops rows
    (2, 4, 9, 7, 6, 3, 1, 1, 2, 1),        # groups, non-square input
    (1, 2, 10, 11, 3, 3, 2, 2, 1, 2),      # dilation, stride, padding
    (3, 6, 5, 5, 6, 5, 1, 2, 3, 1),        # padding as wide as half the kernel
    (1, 1, 1, 1, 2, 1, 1, 0, 1, 1),        # 1x1 everything
    (2, 4, 8, 6, 4, 3, 3, 0, 4, 1),        # depthwise
]


@pytest.mark.parametrize("n,c,h,w,o,k,stride,padding,groups,dilation", CONV_CASES)
def test_conv2d_matches_loop_oracle(n, c, h, w, o, k, stride, padding, groups, dilation):
    x, wt, b = random((n, c, h, w), 1), random((o, c // groups, k, k), 2), random((o,), 3)
    got = nb.conv2d(x, wt, b, stride=stride, padding=padding, groups=groups,
                    dilation=dilation)
    assert_close(got, loops.conv2d(x, wt, b, stride, padding, groups, dilation))


@pytest.mark.parametrize("version", ladder.VERSIONS)
@pytest.mark.parametrize("n,c,h,w,o,k,stride,padding,groups,dilation", CONV_CASES)
def test_every_conv_ladder_version_matches_loop_oracle(version, n, c, h, w, o, k, stride,
                                                        padding, groups, dilation):
    x, wt, b = random((n, c, h, w), 1), random((o, c // groups, k, k), 2), random((o,), 3)
    if not ladder.computes(version, wt.shape[2:], stride, dilation):
        with pytest.raises(ValueError, match="stride 1"):
            ladder.VERSIONS[version](x, wt, b, stride, padding, groups, dilation)
        return
    got = ladder.VERSIONS[version](x, wt, b, stride, padding, groups, dilation)
    assert_close(got, loops.conv2d(x, wt, b, stride, padding, groups, dilation))


STRIDE_ONE_CASES = [  # (N, C, H, W, O, k, padding, groups, dilation)
    (3, 4, 7, 9, 6, 3, 1, 2, 1),           # groups, non-square, images end to end
    (2, 3, 6, 6, 5, 3, 2, 1, 2),           # dilation: the shift is u*d*Wp + v*d
    (1, 2, 5, 5, 3, 5, 0, 1, 1),           # no padding, one output pixel
    (2, 6, 8, 5, 6, 1, 0, 3, 1),           # 1x1 kernel: one tap, no accumulation
    (3, 2, 4, 6, 3, 1, 2, 1, 1),           # padding wider than the kernel: output > H + p
    (2, 3, 5, 4, 4, 3, 3, 1, 1),           # p=3 with a 3x3 kernel: rows of zeros only
]


@pytest.mark.parametrize("n,c,h,w,o,k,padding,groups,dilation", STRIDE_ONE_CASES)
def test_shifted_gemm_matches_loop_oracle(n, c, h, w, o, k, padding, groups, dilation):
    x, wt, b = random((n, c, h, w), 1), random((o, c // groups, k, k), 2), random((o,), 3)
    want = loops.conv2d(x, wt, b, 1, padding, groups, dilation)
    assert_close(conv_shifted.conv_shifted_gemm(x, wt, b, 1, padding, groups, dilation), want)
    # a budget of one image per chunk: the chunk loop and the scratch reuse
    assert_close(conv_shifted.conv_shifted_gemm(x, wt, b, 1, padding, groups, dilation, budget=1),
                 want)


@pytest.mark.parametrize("scheme", [winograd.F2, winograd_f4.F4], ids=lambda s: s.name)
@given(case=conv_cases(max_kernel=7, max_stride=1, max_dilation=1, max_batch=3)
       .filter(lambda case: min(case.kernel_hw) >= 2))
def test_winograd_matches_numpy_reference(scheme, case):
    """Versions 8 and 9 on any stride-1 call with a kernel from 2x2 to 7x7,
    square or not (one to nine 3x3 blocks, for F(4x4) some at half-tile
    offsets): padding 0-3, groups, output sizes that leave tiles partly
    used, one image or several."""
    x, w, b = case.arrays()
    want = backends.get("numpy").conv2d(x, w, b, **case.kwargs)
    assert_close(winograd.conv_winograd(x, w, b, **case.kwargs, scheme=scheme), want)


def test_winograd_f4_weight_transform_is_g_g_gt():
    """U[6i + j, c, o] = (G g G^T)[i, j] with G of Lavin and Gray's F(4x4, 3x3)."""
    g_matrix = np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                         [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]])
    w = random((5, 3, 3, 3))
    want = np.einsum("ai,ocij,bj->abco", g_matrix, w.astype(np.float64), g_matrix)
    np.testing.assert_allclose(winograd.transformed_weights(w, winograd_f4.F4),
                               want.reshape(1, 36, 3, 5), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("batch, prepared", [(1, True), (9, False), (9, True)])
@pytest.mark.parametrize("kernel, stride, dilation", [(11, 4, 1), (3, 2, 2), (3, 3, 1)])
def test_strided_versions_match_loop_oracle_with_groups_and_pool(kernel, stride, dilation,
                                                                  batch, prepared):
    """The strided path as the backend runs it (version 13 from 8 images
    when the folded kernel is 2 x 2 or more, else version 7; a prepared
    weight keeps its transform), fused ReLU and pool included."""
    x, wt, b = random((batch, 4, 29, 27), 1), random((6, 2, kernel, kernel), 2), random((6,), 3)
    weight = nb.prepare_params({"w": wt})["w"] if prepared else wt
    got = nb.conv2d(x, weight, b, stride=stride, padding=1, groups=2, dilation=dilation,
                    relu=True, pool=(2, 1, 0, False))
    want = loops.max_pool2d(np.maximum(loops.conv2d(x, wt, b, stride, 1, 2, dilation), 0),
                            2, 1, 0, False)
    assert_close(got, want)


def test_choose_picks_winograd_products_for_stride_1_and_direct_below_large_batches():
    big, small = ladder.LARGE_BATCH, ladder.LARGE_BATCH - 1
    assert ladder.choose((11, 11), 4, 1, big).startswith("13 ")
    assert ladder.choose((11, 11), 4, 1, small).startswith("11 ")
    assert ladder.choose((3, 3), 3, 1, big).startswith("7 ")      # folds to 1 x 1
    for kernel in [(3, 3), (5, 5), (2, 3)]:
        for batch in (1, small, big):
            assert ladder.choose(kernel, 1, 1, batch).startswith("12 ")
    assert ladder.choose((3, 3), 1, 2, big).startswith("5 ")       # dilated
    assert ladder.choose((3, 3), 1, 2, small).startswith("11 ")
    assert ladder.choose((1, 1), 1, 1, big).startswith("5 ")
    for version in {ladder.choose(k, s, d, n) for k in [(1, 1), (3, 3), (11, 11)]
                    for s in (1, 4) for d in (1, 2) for n in (1, big)}:
        assert version in ladder.VERSIONS


def test_winograd_weight_transform_is_g_g_gt():
    """U[4i + j, c, o] = (G g G^T)[i, j] with G of Lavin and Gray's F(2x2, 3x3)."""
    g_matrix = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])
    w = random((5, 3, 3, 3))
    want = np.einsum("ai,ocij,bj->abco", g_matrix, w.astype(np.float64), g_matrix)
    np.testing.assert_allclose(winograd.transformed_weights(w), want.reshape(1, 16, 3, 5),
                               rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("k", [2, 3, 4, 5, 7])
def test_kernel_blocks_add_up_to_the_kernel(k):
    """split_kernel's 3x3 blocks, each put back at its offset (2*bu, 2*bv),
    sum to the kernel: every tap in exactly one block."""
    w = random((2, 3, k, k))
    blocks = winograd_tiling.split_kernel(w)
    assert blocks.shape == (k // 2, k // 2, 2, 3, 3, 3)
    total = np.zeros((2, 3, k + 3, k + 3), dtype=np.float32)
    for bu in range(k // 2):
        for bv in range(k // 2):
            total[:, :, 2 * bu:2 * bu + 3, 2 * bv:2 * bv + 3] += blocks[bu, bv]
    np.testing.assert_array_equal(total[:, :, :k, :k], w)
    assert not total[:, :, k:, :].any() and not total[:, :, :, k:].any()


def test_prepared_conv_weights_are_read_only_and_keep_their_transforms():
    params = {"a.weight": random((4, 2, 3, 3)), "b.weight": random((4, 2, 1, 1)),
              "a.bias": random((4,))}
    prepared = nb.prepare_params(params)
    w = prepared["a.weight"]
    assert not w.flags.writeable and np.array_equal(w, params["a.weight"])
    with pytest.raises(ValueError, match="read-only"):
        w[0, 0, 0, 0] = 1.0
    x = random((2, 2, 6, 6), 1)
    want = loops.conv2d(x, params["a.weight"], params["a.bias"], 1, 1, 1, 1)
    for _ in range(2):                                     # computes, then reuses, U
        assert_close(nb.conv2d(x, w, prepared["a.bias"], padding=1), want)
    (key, u), = w.transforms.items()
    # version, stride, dilation, groups; U of F(4x4, 3x3), packed for version 12
    assert key == ("12 Winograd F(4x4, 3x3), register-blocked products", 1, 1, 1)
    np.testing.assert_array_equal(u, winograd_products.pack_panels(
        winograd.transformed_weights(params["a.weight"], winograd_f4.F4), 1))


@pytest.mark.parametrize("k", [3, 5, 7])
@pytest.mark.parametrize("tile", [2, 4])
def test_block_plan_places_every_block_once_at_its_offset(k, tile):
    """Shift (th, tw) plus slot (rh, rw) is the block's offset (2*bu, 2*bv)."""
    slots, shifts, table = winograd_tiling.block_plan((k // 2, k // 2), tile)
    placed = [(block, (tile * th + rh, tile * tw + rw))
              for (th, tw), row in zip(shifts, table)
              for (rh, rw), block in zip(slots, row) if block is not None]
    assert sorted(placed) == [((bu, bv), (2 * bu, 2 * bv))
                              for bu in range(k // 2) for bv in range(k // 2)]
    assert all(0 <= r < tile for slot in slots for r in slot)


@st.composite
def conv_relu_pool_calls(draw):
    """A valid conv2d call and a max pool valid on its output, at batches on
    both sides of ladder.LARGE_BATCH (where ladder.choose changes its pick
    for strided, dilated and 1 x 1 kernels)."""
    case = draw(conv_cases(max_size=16, max_batch=ladder.LARGE_BATCH + 2))
    kernel = draw(st.integers(1, 3))
    pool = (kernel, draw(st.integers(1, 3)), draw(st.integers(0, kernel // 2)),
            draw(st.booleans()))
    try:
        checks.max_pool2d_shape(case.expected_shape, *pool)
    except ShapeError:
        assume(False)
    return case, pool


@given(conv_relu_pool_calls())
def test_conv2d_with_pool_equals_conv_relu_then_pool(call):
    case, pool = call
    x, w, b = case.arrays()
    got = nb.conv2d(x, w, b, **case.kwargs, relu=True, pool=pool)
    ref = backends.get("numpy")
    want = ref.max_pool2d(ref.relu(ref.conv2d(x, w, b, **case.kwargs)), *pool)
    assert_close(got, want)


def test_conv2d_pool_is_checked_like_max_pool2d():
    x, w, b = random((8, 2, 6, 6)), random((3, 2, 3, 3), 1), random((3,), 2)
    with pytest.raises(ShapeError, match="too small"):
        nb.conv2d(x, w, b, relu=True, pool=(5, 1, 0, False))      # 4x4 output, 5x5 window
    with pytest.raises(ValueError, match="padding"):
        nb.conv2d(x, w, b, relu=True, pool=(2, 2, 2, False))


@pytest.mark.parametrize("version", ["3 im2col + GEMM", "4 batched im2col + GEMM",
                                     "5 shifted GEMM", "6 im2row + GEMM",
                                     "7 space-to-depth + shifted GEMM",
                                     "8 Winograd F(2x2, 3x3)", "9 Winograd F(4x4, 3x3)",
                                     "11 direct, register-blocked",
                                     "12 Winograd F(4x4, 3x3), register-blocked products"])
def test_conv_versions_fuse_relu(version):
    x, wt, b = random((3, 4, 7, 7), 1), random((6, 2, 3, 3), 2), random((6,), 3)
    got = ladder.VERSIONS[version](x, wt, b, 1, 1, 2, 1, relu=True)
    want = np.maximum(loops.conv2d(x, wt, b, 1, 1, 2, 1), 0)
    assert (want == 0).any() and (want > 0).any()
    assert_close(got, want)


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("stride, dilation, groups", [(1, 1, 1), (2, 2, 1), (1, 1, 2)])
def test_direct_kernel_writes_whole_blocks_of_channels_itself(relu, stride, dilation, groups):
    """With 16 output channels per group the direct kernel (version 11)
    stores bias and ReLU from its registers, no scratch or second pass;
    13 pixels fill two blocks of 6 and one pixel of a third. A NaN in the
    input reaches every output whose window holds it, through the ReLU."""
    x, wt, b = random((1, 4, 13, 5), 1), random((16 * groups, 4 // groups, 3, 3), 2), random(
        (16 * groups,), 3)
    x[0, 1, 7, 3] = np.nan                           # read by some windows at every stride
    got = ladder.VERSIONS["11 direct, register-blocked"](x, wt, b, stride, 1, groups, dilation,
                                                         relu=relu)
    want = loops.conv2d(x, wt, b, stride, 1, groups, dilation)
    want = np.where(want < 0, 0, want) if relu else want
    assert np.isnan(want).any() and not np.isnan(want).all()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    assert_close(np.nan_to_num(got), np.nan_to_num(want))


def test_im2row_splits_a_batch_into_chunks():
    # room for one image's rows: chunks of 1 image each
    x, wt, b = random((3, 3, 11, 11), 1), random((4, 3, 5, 5), 2), random((4,), 3)
    got = conv_im2row.conv_im2row(x, wt, b, 3, 1, 1, 1, rows_budget=1)
    assert_close(got, loops.conv2d(x, wt, b, 3, 1, 1, 1))


@pytest.mark.parametrize("n,stride", [(1, 1), (9, 1), (9, 2)])   # versions 4, 5, 6
def test_conv2d_relu_matches_oracle_in_every_backend_path(n, stride):
    x, wt, b = random((n, 4, 9, 9), 1), random((6, 4, 3, 3), 2), random((6,), 3)
    want = loops.conv2d(x, wt, b, stride, 1, 1, 1)
    assert_close(nb.conv2d(x, wt, b, stride, 1), want)
    assert_close(nb.conv2d(x, wt, b, stride, 1, relu=True), np.maximum(want, 0))


# ---- the BLAS binding ----------------------------------------------------------
def test_gemm_on_windows_and_transposed_views_accumulates():
    big_a, big_b = random((5, 9), 1), random((7, 12), 2)
    a, b = big_a[:, 2:8], big_b[1:7, 3:10]            # (5, 6) @ (6, 7), rows apart
    c_big = random((5, 11), 3)
    c = c_big[:, 1:8]
    before = c.astype(np.float64)
    blas.gemm(a, b, c, accumulate=True)
    want = before + a.astype(np.float64) @ b.astype(np.float64)
    np.testing.assert_allclose(c, want, rtol=1e-5, atol=1e-5)
    untouched = random((5, 11), 3)
    assert np.array_equal(c_big[:, :1], untouched[:, :1])       # outside the window
    assert np.array_equal(c_big[:, 8:], untouched[:, 8:])
    x = random((4, 6), 4)
    out = np.empty((5, 4), dtype=np.float32)
    blas.gemm(a, x.T, out)                            # a transposed (column) view
    np.testing.assert_allclose(out, a.astype(np.float64) @ x.T.astype(np.float64),
                               rtol=1e-5, atol=1e-5)


def test_gemv_matches_definition():
    a, x = random((7, 5), 1), random((5,), 2)
    y = np.empty(7, dtype=np.float32)
    blas.gemv(a, x, y)
    np.testing.assert_allclose(y, a.astype(np.float64) @ x.astype(np.float64),
                               rtol=1e-5, atol=1e-5)


def test_gemm_rejects_what_blas_cannot_read():
    with pytest.raises(ValueError, match="float32"):
        blas.gemm(random((2, 3)).astype(np.float64), random((3, 2)), np.empty((2, 2), np.float32))
    with pytest.raises(ValueError, match="contiguous"):
        blas.gemm(random((4, 6))[::2, ::2], random((3, 2)), np.empty((2, 2), np.float32))
    with pytest.raises(ValueError, match="do not fit"):
        blas.gemm(random((2, 3)), random((4, 2)), np.empty((2, 2), np.float32))


def test_batched_im2col_splits_a_batch_into_chunks():
    # room for two images' columns (18 rows x 16 pixels x 4 bytes each):
    # chunks of 2, 2 and 1 images
    x, wt, b = random((5, 2, 6, 6), 1), random((3, 2, 3, 3), 2), random((3,), 3)
    got = conv.conv_im2col_batched(x, wt, b, 1, 0, 1, 1, cols_budget=2 * 18 * 16 * 4)
    assert_close(got, loops.conv2d(x, wt, b, 1, 0, 1, 1))


def test_conv2d_rectangular_kernel():
    x, wt, b = random((2, 3, 9, 8), 1), random((5, 3, 3, 2), 2), random((5,), 3)
    assert_close(nb.conv2d(x, wt, b, stride=2, padding=1),
                 loops.conv2d(x, wt, b, 2, 1, 1, 1))


@given(n=st.integers(1, 2), groups=st.integers(1, 3), c_per_group=st.integers(1, 3),
       o_per_group=st.integers(1, 3), k=st.integers(1, 4), stride=st.integers(1, 3),
       padding=st.integers(0, 2), dilation=st.integers(1, 2), h=st.integers(1, 9),
       w=st.integers(1, 9), seed=st.integers(0, 2**16))
def test_conv2d_random_shapes(n, groups, c_per_group, o_per_group, k, stride, padding,
                              dilation, h, w, seed):
    span = dilation * (k - 1) + 1
    if min(h, w) + 2 * padding < span:
        with pytest.raises(ShapeError):
            nb.conv2d(random((n, groups * c_per_group, h, w)),
                      random((groups * o_per_group, c_per_group, k, k)),
                      random((groups * o_per_group,)), stride, padding, groups, dilation)
        return
    x = random((n, groups * c_per_group, h, w), seed)
    wt = random((groups * o_per_group, c_per_group, k, k), seed + 1)
    b = random((groups * o_per_group,), seed + 2)
    got = nb.conv2d(x, wt, b, stride, padding, groups, dilation)
    assert_close(got, loops.conv2d(x, wt, b, stride, padding, groups, dilation))


# ---- PyTorch as a second oracle ------------------------------------------------------
@pytest.mark.parametrize("n,c,h,w,o,k,stride,padding,groups,dilation", CONV_CASES)
def test_conv2d_matches_torch(F, n, c, h, w, o, k, stride, padding, groups, dilation):
    x, wt, b = random((n, c, h, w), 1), random((o, c // groups, k, k), 2), random((o,), 3)
    want = F.conv2d(t(x), t(wt), t(b), stride=stride, padding=padding, dilation=dilation,
                    groups=groups).numpy()
    assert_close(nb.conv2d(x, wt, b, stride, padding, groups, dilation), want)


def test_a_fused_pool_given_as_a_list_runs_like_a_tuple():
    # conv_winograd remembers its tiling per shape; a pool= list (not
    # hashable) must still run and give what the tuple gives
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 8, 13, 13)).astype(np.float32)
    w = rng.standard_normal((16, 8, 3, 3)).astype(np.float32)
    b = rng.standard_normal(16).astype(np.float32)
    as_tuple = winograd.conv_winograd(x, w, b, padding=1, relu=True, pool=(3, 2, 0, False))
    as_list = winograd.conv_winograd(x, w, b, padding=1, relu=True, pool=[3, 2, 0, False])
    np.testing.assert_array_equal(as_list, as_tuple)
