"""`numalex explain`: the seed's 224-vs-227 story, checked against arithmetic done
here independently (plain integer loops and the seed's own parameter formulas)."""
import math

import pytest

from loop_oracles import window_starts
from numalex.cli import main
from numalex.explain import (UnusedRows, ceil_vs_floor, conv1_arithmetic, exact_paddings,
                             explain, first_conv, nearest_exact_size, param_count)


# ---- oracles ---------------------------------------------------------------------------
def unused_input_rows(n, k, s, p):
    """Input rows (0-based, unpadded) that no window reads."""
    read = {start + i - p for start in window_starts(n, k, s, p) for i in range(k)}
    return [r for r in range(n) if r not in read]


def conv_params(c_in, c_out, k, groups=1):
    return c_in // groups * k * k * c_out + c_out


def fc_params(widths):
    return sum(a * b + b for a, b in zip(widths, widths[1:]))


# The seed's tables, layer by layer: (in, out, kernel, groups) per conv.
FC = [256 * 6 * 6, 4096, 4096, 1000]
SEED_TORCHVISION = sum(conv_params(*c) for c in
                       [(3, 64, 11), (64, 192, 5), (192, 384, 3), (384, 256, 3),
                        (256, 256, 3)]) + fc_params(FC)
SEED_ORIGINAL = sum(conv_params(*c) for c in
                    [(3, 96, 11), (96, 256, 5), (256, 384, 3), (384, 384, 3),
                     (384, 256, 3)]) + fc_params(FC)
CAFFE_TWO_TOWER = sum(conv_params(*c) for c in
                      [(3, 96, 11), (96, 256, 5, 2), (256, 384, 3), (384, 384, 3, 2),
                       (384, 256, 3, 2)]) + fc_params(FC)


def test_oracle_totals_are_the_seed_numbers():
    assert (SEED_TORCHVISION, SEED_ORIGINAL, CAFFE_TWO_TOWER) == \
        (61_100_840, 62_378_344, 60_965_224)


# ---- conv1 ------------------------------------------------------------------------------
def test_the_seed_arithmetic_is_printed():
    text = explain([224, 227])
    assert f"(224 - 11)/4 + 1 = {(224 - 11) / 4 + 1:g} -> 54" in text          # 54.25
    assert f"(227 - 11)/4 + 1 = {(227 - 11) / 4 + 1:g}" in text                  # 55
    assert f"(224 + 2*2 - 11)/4 + 1 = {(224 + 4 - 11) / 4 + 1:g} -> 55" in text  # 55.25
    assert "54.25" in text and "55.25" in text


@pytest.mark.parametrize("n", [224, 225, 226, 227, 228, 230, 231, 240, 63])
@pytest.mark.parametrize("p", [0, 2, 3])
def test_unused_rows_match_a_walk_over_the_windows(n, p):
    conv = first_conv("original")
    a = conv1_arithmetic(n, type(conv)(3, 96, 11, stride=4, padding=p))
    starts = window_starts(n, 11, 4, p)
    assert a.out == len(starts)
    unused = UnusedRows.of(a)
    assert list(unused.input_rows) == unused_input_rows(n, 11, 4, p)
    padded_unused = n + 2 * p - (starts[-1] + 11)
    assert unused.padding_rows == padded_unused - len(unused.input_rows)


def test_224_without_padding_drops_its_last_row_and_torchvision_drops_only_padding():
    text = explain([224])
    assert unused_input_rows(224, 11, 4, 0) == [223]
    assert "input row 223 (the last one) never read" in text
    assert unused_input_rows(224, 11, 4, 2) == []
    assert "all 224 input rows read; 1 bottom padding row unused" in text


def test_no_symmetric_padding_tiles_224_and_227_is_the_nearest_size_that_does():
    conv = first_conv("bvlc")
    tiling = [p for p in range(11) if (window_starts(224, 11, 4, p)[-1] + 11 == 224 + 2 * p)]
    assert exact_paddings(224, conv) == tiling == []
    nearest = next(n for n in range(224, 300) if window_starts(n, 11, 4, 0)[-1] + 11 == n)
    assert nearest_exact_size(224, conv) == nearest == 227
    assert "The nearest size that tiles exactly is 227 = 224 + 3" in explain()


def test_each_variant_says_what_it_did():
    text = explain()
    assert "torchvision  keeps 224 and pads conv1 by 2" in text
    assert "original     crops 227 and does not pad conv1" in text
    assert "bvlc         crops 227 and does not pad conv1" in text


# ---- Caffe's ceil pooling at 224 --------------------------------------------------------
def test_ceil_pooling_at_224_gives_27_where_floor_gives_26():
    conv1 = len(window_starts(224, 11, 4, 0))
    assert conv1 == 54
    assert len(window_starts(conv1, 3, 2, 0, ceil_mode=True)) == 27
    assert len(window_starts(conv1, 3, 2, 0)) == 26
    steps, ceil_shape, floor_shape = ceil_vs_floor(224)
    pool1 = next(s for s in steps if s.name == "pool1")
    assert (pool1.ceil.n, pool1.ceil.out, pool1.floor.out) == (54, 27, 26)
    text = explain()
    assert "ceil:  (54 - 3)/2 + 1 = 26.5 -> 27" in text
    assert "floor: (54 - 3)/2 + 1 = 26.5 -> 26" in text


def test_ceil_pooling_keeps_the_6x6_grid_at_224_floor_loses_it():
    def trunk(n, ceil_mode):
        n = len(window_starts(n, 11, 4, 0))                      # conv1
        n = len(window_starts(n, 3, 2, 0, ceil_mode=ceil_mode))            # pool1
        n = len(window_starts(n, 5, 1, 2))                       # conv2
        n = len(window_starts(n, 3, 2, 0, ceil_mode=ceil_mode))            # pool2
        for _ in range(3):
            n = len(window_starts(n, 3, 1, 1))                   # conv3-5
        return len(window_starts(n, 3, 2, 0, ceil_mode=ceil_mode))         # pool5
    _, ceil_shape, floor_shape = ceil_vs_floor(224)
    assert ceil_shape[1:] == (trunk(224, True),) * 2 == (6, 6)
    assert floor_shape[1:] == (trunk(224, False),) * 2 == (5, 5)
    text = explain()
    assert f"{256 * 6 * 6:,} features" in text and f"{256 * 5 * 5:,} features" in text


# ---- parameters --------------------------------------------------------------------------
@pytest.mark.parametrize("variant, total", [("torchvision", SEED_TORCHVISION),
                                            ("original", SEED_ORIGINAL),
                                            ("bvlc", CAFFE_TWO_TOWER)])
def test_parameter_totals(variant, total):
    count = param_count(variant)
    assert count.total == total
    assert count.fc_params == fc_params(FC)
    assert f"= {total:,}" in explain()


def test_channel_counts_and_the_reason_they_differ():
    text = explain()
    assert "conv 64/192/384/256/256" in text and "conv 96/256/384/384/256" in text
    assert "One weird trick" in text
    assert f"saving {SEED_ORIGINAL - CAFFE_TWO_TOWER:,} weights" in text
    assert f"by only {SEED_ORIGINAL - SEED_TORCHVISION:,}" in text
    share = fc_params(FC) / SEED_TORCHVISION
    assert f"hold {share:.0%}" in text
    assert math.isclose(share, 0.96, abs_tol=0.005)


# ---- command line -------------------------------------------------------------------------
def test_cli_explain_prints_the_story(capsys):
    assert main(["explain", "224", "230"]) == 0
    out = capsys.readouterr().out
    assert "(224 - 11)/4 + 1 = 54.25 -> 54" in out
    assert f"(230 - 11)/4 + 1 = {(230 - 11) / 4 + 1:g} -> 55" in out
    assert "61,100,840" in out


def test_cli_explain_reports_a_too_small_size_without_a_traceback(capsys):
    assert main(["explain", "8"]) == 0
    out = capsys.readouterr().out
    assert "input size 8 is too small" in out
