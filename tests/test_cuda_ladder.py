"""Every rung of the GPU convolution ladder against the loop oracle, in the simulator.

Each version (1 naive, 2 shared tiles, 3 register-blocked, 4 pipelined) must
compute the same convolution. Shapes are tiny (the simulator runs every GPU
thread as Python) but drawn to hit the edges: rectangular kernels, groups,
dilation, strides that drop rows, and problem sizes that are not multiples
of the tiles, with tiles small enough that a block holds several tiles' worth
of steps along K.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numalex import backends

import loop_oracles

try:
    cu = backends.get("cuda")
except backends.BackendUnavailable as err:
    pytest.skip(f"no GPU and no CUDA simulator: {err}", allow_module_level=True)

from numalex.backends import cuda_ladder as ladder  # noqa: E402
from numalex.backends.cuda_gemm import GemmTiles  # noqa: E402
from numalex.backends.cuda_gemm_blocked import BlockedTiles  # noqa: E402

pytestmark = pytest.mark.cudasim

# (version, tiles): small tiles, so that the tiny problems below span several
# blocks and several K steps, and version 4's fixed-position loads are exercised.
RUNGS = [(1, None), (2, GemmTiles(4, 8, 4)), (3, BlockedTiles(8, 8, 4, 2, 2)),
         (4, BlockedTiles(8, 8, 4, 2, 2)), (4, BlockedTiles(4, 8, 2, 2, 2))]


@st.composite
def conv_problems(draw):
    groups = draw(st.sampled_from([1, 2]))
    c_in = groups * draw(st.integers(1, 2))
    c_out = groups * draw(st.integers(1, 5))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dilation = draw(st.integers(1, 2))
    stride = draw(st.integers(1, 3))
    padding = draw(st.integers(0, 2))
    min_h = dilation * (kh - 1) + 1 - 2 * padding
    min_w = dilation * (kw - 1) + 1 - 2 * padding
    h = draw(st.integers(max(min_h, 1), max(min_h, 1) + 5))
    w = draw(st.integers(max(min_w, 1), max(min_w, 1) + 5))
    n = draw(st.integers(1, 2))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    x = rng.standard_normal((n, c_in, h, w), dtype=np.float32)
    weight = rng.standard_normal((c_out, c_in // groups, kh, kw), dtype=np.float32)
    bias = rng.standard_normal(c_out, dtype=np.float32)
    return x, weight, bias, stride, padding, groups, dilation


@pytest.mark.parametrize("version,tiles", RUNGS, ids=lambda v: str(v))
@settings(max_examples=6)
@given(problem=conv_problems(), relu=st.booleans())
def test_every_version_matches_the_loop_oracle(version, tiles, problem, relu):
    x, w, b, stride, padding, groups, dilation = problem
    want = loop_oracles.conv2d(x, w, b, stride, padding, groups, dilation)
    if relu:
        want = np.maximum(want, 0)
    got = cu.to_numpy(cu.conv2d(x, w, b, stride, padding, groups, dilation, relu=relu,
                                tiles=tiles, version=version))
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


# Version 5 (Winograd F(2x2, 3x3)) only takes 3x3 stride-1 kernels, and each call
# runs three transform kernels and a 16-group GEMM: slow in the simulator, so
# two hand-picked cases (partial last tiles, groups, padding 0 and 2, ReLU).
@pytest.mark.parametrize("x_shape,w_shape,padding,groups,relu", [
    ((2, 4, 7, 6), (6, 2, 3, 3), 1, 2, True),
    ((1, 2, 4, 9), (3, 2, 3, 3), 2, 1, False),
])
def test_winograd_matches_the_loop_oracle(x_shape, w_shape, padding, groups, relu):
    rng = np.random.default_rng(5)
    x = rng.standard_normal(x_shape, dtype=np.float32)
    w = rng.standard_normal(w_shape, dtype=np.float32)
    b = rng.standard_normal(w_shape[0], dtype=np.float32)
    want = loop_oracles.conv2d(x, w, b, 1, padding, groups, 1)
    if relu:
        want = np.maximum(want, 0)
    got = cu.to_numpy(cu.conv2d(x, w, b, 1, padding, groups, 1, relu=relu, version=5))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_winograd_refuses_what_it_cannot_compute():
    with pytest.raises(ValueError, match="needs a 3x3 kernel, stride 1"):
        cu.conv2d(np.ones((1, 1, 6, 6), np.float32), np.ones((1, 1, 3, 3), np.float32),
                  np.zeros(1, np.float32), stride=2, version=5)


def test_choose_conv_takes_winograd_for_large_3x3_stride_1_layers():
    # conv3 of AlexNet-224 at batch 32: 384 x 192 x 3 x 3 over 32*13*13 pixels
    assert ladder.choose_conv((384, 192, 3, 3), 1, 1, 1, 32 * 13 * 13) == (5, None)
    # the same layer at batch 1, and conv1 (11x11, stride 4): a GEMM version
    assert ladder.choose_conv((384, 192, 3, 3), 1, 1, 1, 169)[0] in (2, 4)
    assert ladder.choose_conv((64, 3, 11, 11), 4, 1, 1, 32 * 55 * 55)[0] == 4


def test_choose_gives_large_layers_the_largest_register_blocked_tiles():
    # conv2 of AlexNet-224 at batch 32: 192 channels by 32*27*27 pixels
    assert ladder.choose(192, 32 * 27 * 27, 1) == (4, ladder.LARGE_TILES)


def test_choose_keeps_one_column_problems_on_fitted_shared_tiles():
    version, tiles = ladder.choose(4096, 1, 1)          # fc6 at batch 1
    assert version == 2 and tiles.n == 1


def test_choose_spreads_a_small_layer_over_more_blocks():
    # conv4 of AlexNet-224 at batch 1: 256 channels by 13*13 pixels
    assert ladder.choose(256, 169, 1)[0] == 2
    # the same layer at batch 8 fills enough 64x64 tiles, not enough 128x128 ones
    assert ladder.choose(256, 8 * 169, 1) == (4, ladder.MEDIUM_TILES)


def test_version_4_refuses_tiles_whose_loads_cannot_stay_in_place():
    with pytest.raises(ValueError, match="version 4 needs"):
        cu.conv2d(np.ones((1, 1, 4, 4), np.float32), np.ones((1, 1, 2, 2), np.float32),
                  np.zeros(1, np.float32), version=4, tiles=BlockedTiles(4, 16, 4, 2, 4))


@pytest.mark.parametrize("bad", [dict(bm=0), dict(tm=3), dict(bm=64, bn=64, tm=1, tn=1)])
def test_bad_blocked_tiles_are_refused(bad):
    with pytest.raises(ValueError, match="BlockedTiles"):
        BlockedTiles(**bad)


def test_unknown_version_is_refused():
    with pytest.raises(ValueError, match="unknown conv version"):
        cu.conv2d(np.ones((1, 1, 4, 4), np.float32), np.ones((1, 1, 2, 2), np.float32),
                  np.zeros(1, np.float32), version=9)
