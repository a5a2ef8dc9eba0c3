"""`numalex sizes`: which input sizes run, checked two independent ways:
an integer walk over window positions, and really running a small-width model
layer by layer on the NumPy backend (no shape check in front of the kernels)."""
import numpy as np
import pytest

import numalex
from loop_oracles import window_starts
from numalex import backends
from numalex.cli import main
from numalex.layers import AdaptiveAvgPool2d, Conv2d, Flatten, MaxPool2d
from numalex.sizes import ranges, size_report


# ---- oracles ---------------------------------------------------------------------------
def windows_and_exact(n, k, s, p, ceil_mode=False):
    """(windows, exact) along one axis, from the walk in loop_oracles.window_starts.

    exact: the last window ends on the last padded row (no unused row, no
    partial window hanging over the end).
    """
    starts = window_starts(n, k, s, p, ceil_mode=ceil_mode)
    return len(starts), bool(starts) and starts[-1] + k == n + 2 * p


def walk_sizes(variant, sizes):
    """{size: (trunk side or None, exact)} from the specs' hyper-parameters."""
    layers = numalex.alexnet(variant, width=1 / 16).layers
    result = {}
    for size in sizes:
        n, exact = size, True
        for _, spec in layers:
            if isinstance(spec, (AdaptiveAvgPool2d, Flatten)):
                break
            if isinstance(spec, Conv2d):
                n, ok = windows_and_exact(n, spec.kernel, spec.stride, spec.padding)
            elif isinstance(spec, MaxPool2d):
                n, ok = windows_and_exact(n, spec.kernel, spec.stride, spec.padding,
                                      spec.ceil_mode)
            else:
                continue
            exact = exact and ok
            if n == 0:
                break
        result[size] = (n or None, exact and n > 0)
    return result


def run_kernels(model, size):
    """Fold a (1, 3, size, size) input through the NumPy kernels themselves.

    Returns (trunk side, logits) or None if a kernel fails.
    """
    be = backends.get("numpy")
    sd = model.state_dict()
    h, trunk = np.ones((1, 3, size, size), np.float32), None
    try:
        for name, spec in model.layers:
            if isinstance(spec, (AdaptiveAvgPool2d, Flatten)) and trunk is None:
                trunk = h.shape[2]
            params = {suffix: sd[f"{name}.{suffix}"] for suffix in spec.param_shapes()}
            h = spec.forward(be, h, params)
    except ValueError:          # numpy's own errors and ShapeError alike
        return None
    if h.size == 0:
        return None
    return trunk, h


# ---- against the walk -------------------------------------------------------------------
@pytest.mark.parametrize("variant", ["torchvision", "original", "bvlc"])
def test_report_matches_a_walk_over_window_positions(variant):
    report = size_report(variant, 1, 300)
    walked = walk_sizes(variant, range(1, 301))
    grid = walked[numalex.alexnet(variant, width=1 / 16).input_size][0]
    assert grid == report.grid == 6
    trunk_runs = [n for n, (side, _) in walked.items() if side]
    assert report.trunk_runs == trunk_runs
    assert report.on_grid == [n for n, (side, _) in walked.items() if side == grid]
    assert report.exact == [n for n in report.runs if walked[n][1]]
    if variant == "bvlc":       # fc6 is fixed: only the native grid fits it
        assert report.runs == report.on_grid
    else:
        assert report.runs == trunk_runs


def test_torchvision_smallest_size_grid_sizes_and_tiling_period():
    tv = size_report("torchvision", 1, 300)
    assert tv.smallest == 63
    assert ranges(tv.on_grid) == "223-254"
    assert 224 in tv.on_grid and 224 not in tv.exact
    assert tv.exact == list(range(63, 301, 32))
    assert size_report("bvlc", 1, 300).exact == [227]


# ---- against the kernels ------------------------------------------------------------------
BOUNDARIES = {"torchvision": [62, 63, 64, 222, 223, 224, 254, 255],
              "original": [66, 67, 226, 227, 258, 259],
              "bvlc": [198, 199, 227, 230, 231]}


@pytest.mark.parametrize("variant", list(BOUNDARIES))
def test_report_matches_running_the_kernels(variant):
    model = numalex.alexnet(variant, width=1 / 16, num_classes=5)
    report = size_report(variant, min(BOUNDARIES[variant]), max(BOUNDARIES[variant]))
    for size in BOUNDARIES[variant]:
        result = run_kernels(model, size)
        check = report.check(size)
        assert check.runs == (result is not None), size
        if result is not None:
            trunk, logits = result
            assert logits.shape == (1, 5)
            assert check.trunk_out == trunk, size
        with_formula = True
        try:
            model.expected_shapes((3, size, size))
        except numalex.ShapeError:
            with_formula = False
        assert check.runs == with_formula, size


# ---- the command --------------------------------------------------------------------------
def test_cli_sizes(capsys):
    assert main(["sizes", "torchvision", "--min", "60", "--max", "260"]) == 0
    out = capsys.readouterr().out
    assert "smallest: 63" in out
    assert "at 62: features.12 (MaxPool2d)" in out
    assert "ends at 6x6 by itself (32): 223-254" in out
    assert "63, 95, 127, 159, 191, 223, 255" in out
    assert "4 * 2 * 2 * 2 = 32" in out


def test_cli_sizes_bad_range(capsys):
    assert main(["sizes", "bvlc", "--min", "300", "--max", "200"]) == 2
    assert "--min" in capsys.readouterr().err


def test_ranges():
    assert ranges([1, 2, 3, 7, 9, 10]) == "1-3, 7, 9-10"
    assert ranges([]) == "none"
