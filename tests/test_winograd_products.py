"""Version 12 of the ladder: Winograd F(4x4, 3x3) with register-blocked products.

The kernel's products are checked against NumPy's matrix product in
float64 (partial blocks of rows and of 16 channels, offsets into V and M,
accumulation), and the whole convolution against the loop oracle where
its edges are: output channels that are not a multiple of 16, groups, a
7 x 7 kernel (blocks a whole tile apart: several shifts that accumulate
into M), a fused pool and a NaN (which Winograd spreads over its tile). The hypothesis tests of
test_numba_ops.py run it on random convolutions too.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import loop_oracles as loops
from numalex.kernels import ladder, winograd_products
from numba_op_checks import assert_close, random

VERSION = "12 Winograd F(4x4, 3x3), register-blocked products"


@given(points=st.integers(1, 3), rows=st.integers(1, 14), extra_rows=st.integers(0, 3),
       depth=st.integers(1, 20), extra_depth=st.integers(0, 5), out_count=st.integers(1, 40),
       extra_out=st.integers(0, 5), accumulate=st.booleans(), seed=st.integers(0, 2**16))
def test_products_equal_the_matrix_product(points, rows, extra_rows, depth, extra_depth,
                                           out_count, extra_out, accumulate, seed):
    """m[xi, t, first_out + o] (+)= v[xi, first_row + t, first_depth : ...] @ U[xi],
    and nothing else of m changes."""
    rng = np.random.default_rng(seed)
    first_row, first_depth, first_out = extra_rows, extra_depth, extra_out
    v = rng.standard_normal((points, rows + 2 * extra_rows, depth + 2 * extra_depth),
                            dtype=np.float32)
    u = rng.standard_normal((1, points, depth, out_count), dtype=np.float32)
    m = rng.standard_normal((points, rows, out_count + 2 * extra_out), dtype=np.float32)
    panels = winograd_products.pack_panels(u, 1)
    want = m.astype(np.float64)
    outs = slice(first_out, first_out + out_count)
    product = np.einsum("ptk,pko->pto", v[:, first_row:first_row + rows,
                                          first_depth:first_depth + depth].astype(np.float64),
                        u[0].astype(np.float64))
    want[:, :, outs] = product + (want[:, :, outs] if accumulate else 0)
    winograd_products.products(v.reshape(-1), v.shape, first_row, first_depth,
                               panels[0, 0].reshape(-1), panels.shape[3], m.reshape(-1),
                               m.shape, first_out, out_count, accumulate)
    np.testing.assert_allclose(m, want, rtol=1e-5, atol=1e-5 * max(1.0, np.abs(want).max()))


def test_packed_panels_hold_u_in_blocks_of_16_channels_padded_with_zeros():
    u = random((2, 36, 5, 2 * 20))                          # 2 shifts, 2 groups of 20 channels
    panels = winograd_products.pack_panels(u, 2)
    assert panels.shape == (2, 2, 36, 2, 5, 16)           # (S, G, P, blocks, K, 16)
    for g in range(2):
        by_channel = panels[:, g].transpose(0, 1, 3, 2, 4).reshape(2, 36, 5, 32)
        np.testing.assert_array_equal(by_channel[..., :20], u[..., 20 * g:20 * (g + 1)])
        assert not by_channel[..., 20:].any()


@pytest.mark.parametrize("relu, pool", [(False, None), (True, None), (True, (3, 2, 0, False))])
@pytest.mark.parametrize("out_ch, groups, kernel, padding", [
    (16, 1, 3, 1),          # one whole block of channels
    (20, 2, 3, 0),          # two groups of 10: partial blocks
    (17, 1, 5, 2),          # AlexNet's conv2 kernel: four slots
    (6, 1, 7, 3),           # blocks a tile apart: four shifts accumulate into M
])
def test_version_12_equals_the_loop_oracle(out_ch, groups, kernel, padding, relu, pool):
    x = random((2, 4, 11, 9), 1)
    wt, b = random((out_ch, 4 // groups, kernel, kernel), 2), random((out_ch,), 3)
    x[1, 2, 5, 4] = np.nan
    got = ladder.VERSIONS[VERSION](x, wt, b, 1, padding, groups, 1, relu=relu, pool=pool)
    want = loops.conv2d(x, wt, b, 1, padding, groups, 1)
    want = np.where(want < 0, 0, want) if relu else want
    if pool is not None:
        want = loops.max_pool2d(want, *pool)
    # The NaN reaches every output whose window holds it. Winograd's
    # transforms mix the inputs of a tile, so it may reach the other outputs
    # of those 4 x 4 tiles too, never the first image.
    assert np.isnan(want).any() and np.isnan(got[np.isnan(want)]).all()
    assert not np.isnan(got[0]).any()
    finite = ~np.isnan(got)
    assert_close(np.where(finite, got, 0), np.where(finite, want, 0))


def test_version_12_refuses_what_winograd_cannot_compute():
    x, wt, b = random((1, 2, 9, 9)), random((3, 2, 3, 3), 1), random((3,), 2)
    for stride, dilation in [(2, 1), (1, 2)]:
        with pytest.raises(ValueError, match="stride 1"):
            ladder.VERSIONS[VERSION](x, wt, b, stride, 1, 1, dilation)
