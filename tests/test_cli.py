"""The command line, run as a user runs it: in a subprocess."""
import json
import subprocess
import sys

import pytest

from numalex.cli import COMMANDS


def numalex(*args, check=True):
    result = subprocess.run([sys.executable, "-m", "numalex", *args], capture_output=True,
                            text=True, timeout=600)
    if check:
        assert result.returncode == 0, result.stderr
    return result


@pytest.mark.parametrize("variant, total", [("torchvision", "61,100,840"),
                                            ("original", "62,378,344"),
                                            ("caffe", "60,965,224")])
def test_summary_prints_the_totals(variant, total):
    out = numalex("summary", variant).stdout
    assert f"Total params: {total}" in out
    assert "Conv2d-1" in out and ("Linear-21" in out or "Linear-22" in out)


def test_summary_json_is_machine_readable():
    data = json.loads(numalex("summary", "224", "--json").stdout)
    assert data["total_params"] == sum(row["params"] for row in data["rows"])
    assert data["rows"][0]["size_formula"].startswith("(224 + 2*2 - 11)/4 + 1 = 55.25 -> 55")


def test_the_main_job_runs_with_no_arguments():
    result = numalex()
    out = result.stdout
    for variant in ("torchvision", "original", "bvlc"):
        assert f"== {variant}" in out
    assert "MISMATCH" not in out and "TOO LARGE" not in out
    assert "all shapes match the formula" in out


def test_run_on_a_small_net():
    out = numalex("run", "--variant", "caffe", "--backend", "numpy", "--width", "0.1",
                  "--batch", "2").stdout
    assert "norm1" in out and "(2, 1000)" in out


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    out = numalex(command, "--help").stdout
    assert out.startswith("usage: numalex " + command)
    assert "example" in out


@pytest.mark.parametrize("args, words", [
    (["summary", "vgg"], "unknown AlexNet variant 'vgg'"),
    (["run", "--batch", "0"], "--batch must be at least 1"),
    (["summary", "bvlc", "--input-size", "20"], "cannot be built for input 20x20"),
])
def test_errors_are_one_clear_line_and_exit_2(args, words):
    result = numalex(*args, check=False)
    assert result.returncode == 2
    assert words in result.stderr and "Traceback" not in result.stderr
