"""What a new user trips over: every message points the way, every command
takes the same variant names, and the printed text stays readable."""
import re
from fractions import Fraction

import numpy as np
import pytest

import numalex
from numalex.cli import COMMANDS, build_parser, main
from numalex.model import StateDictError


@pytest.mark.parametrize("command, args", [
    ("run", ["--variant", "Caffe"]), ("summary", ["TorchVision"]), ("sizes", ["BVLC"]),
    ("visualize", ["Original"]), ("classify", ["x.jpg", "--weights", "w", "--variant", "Caffe"]),
    ("convert", ["in.npz", "out.npz", "--variant", "TORCHVISION"]),
    ("bench", ["--variant", "Caffe"])])
def test_every_command_takes_variant_names_in_any_case(command, args):
    assert command in COMMANDS
    parsed = build_parser().parse_args([command, *args])
    variant = parsed.variant[0] if isinstance(parsed.variant, list) else parsed.variant
    assert numalex.alexnet(variant).variant == numalex.alexnet(args[-1].lower()).variant


@pytest.mark.parametrize("variant", ["torchvision", "original", "bvlc"])
def test_a_too_small_summary_names_the_smallest_size_that_runs(variant, capsys):
    assert main(["summary", variant, "--input-size", "32"]) == 2
    err = capsys.readouterr().err
    smallest = int(re.search(rf"smallest input size {variant} takes is (\d+)", err)[1])
    numalex.alexnet(variant, input_size=smallest).expected_shapes()     # it runs
    with pytest.raises(numalex.ShapeError):                             # one less does not
        numalex.alexnet(variant, input_size=smallest - 1).expected_shapes()


def test_the_summary_table_fits_120_columns(capsys):
    for variant in ("torchvision", "original", "bvlc"):
        assert main(["summary", variant]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert max(len(line) for line in lines) <= 120
        assert any("(224 + 2*2 - 11)/4 + 1 = 55.25 -> 55" in line or
                   "(227 - 11)/4 + 1 = 55" in line for line in lines)


def test_explain_prints_a_large_size_as_integers(capsys):
    n = 100_000_000
    assert main(["explain", str(n)]) == 0
    out = capsys.readouterr().out
    exact = Fraction(n + 2 * 2 - 11, 4) + 1                              # torchvision's conv1
    assert f"= {float(exact)} -> {int(exact)}" in out
    assert "e+" not in out


def test_weights_of_another_variant_name_it(tmp_path):
    bvlc = numalex.alexnet("bvlc", width=1 / 16, seed=3)
    np.savez(tmp_path / "bvlc.npz", **bvlc.state_dict())
    with pytest.raises(StateDictError, match=r"fits variant 'bvlc': use --variant bvlc"):
        numalex.alexnet("original", weights=tmp_path / "bvlc.npz", width=1 / 16)
    tv = numalex.alexnet("torchvision", width=1 / 16, seed=3)
    np.savez(tmp_path / "tv.npz", **tv.state_dict())
    with pytest.raises(StateDictError, match=r"fits variant 'torchvision'"):
        numalex.alexnet("bvlc", weights=tmp_path / "tv.npz", width=1 / 16)


def test_weights_that_fit_no_variant_get_no_hint(tmp_path):
    bvlc = numalex.alexnet("bvlc", width=1 / 16, num_classes=7)
    np.savez(tmp_path / "w.npz", **bvlc.state_dict())
    with pytest.raises(StateDictError) as err:
        numalex.alexnet("original", weights=tmp_path / "w.npz", width=1 / 8)
    assert "fits variant" not in str(err.value)


def test_a_folder_as_weights_is_called_a_folder(tmp_path):
    with pytest.raises(IsADirectoryError, match="is a folder; --weights takes one weight file"):
        numalex.alexnet("bvlc", weights=tmp_path)


def test_channels_last_input_gets_the_transpose():
    model = numalex.alexnet("torchvision", width=1 / 16)
    with pytest.raises(numalex.ShapeError, match=r"x\.transpose\(0, 3, 1, 2\)"):
        model(np.zeros((1, 224, 224, 3), np.float32))
