"""`numalex run` before it starts: the checks that refuse hopeless work, and the
notice that explains Numba's first-run wait."""
import io
import math
import re
import tomllib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from numba import njit

import numalex
from numalex.cli import main
from numalex.commands import run as run_command
from numalex.jit_notice import compile_notice
from numalex.layers import Flatten


def test_forward_bytes_counts_every_real_output_array():
    # the estimate comes from the specs; the arrays here come from running the kernels
    model = numalex.alexnet("bvlc", width=1 / 16, num_classes=7)
    x = np.zeros((1, 3, 227, 227), np.float32)
    records = model.trace(x, backend="numpy")
    outputs = sum(math.prod(r.output_shape) for r, (_, spec) in zip(records, model.layers)
                  if not isinstance(spec, Flatten))           # a flatten is a view
    per_image = (x.nbytes + 4 * outputs)
    weights = sum(a.nbytes for a in model.state_dict().values())
    table = numalex.summary(model)
    assert table.forward_bytes(0) == weights
    assert table.forward_bytes(3) == 3 * per_image + weights


def test_a_batch_that_cannot_fit_is_refused_before_any_allocation(monkeypatch, capsys):
    monkeypatch.setattr(run_command, "available_memory", lambda: 8 * 10 ** 9)
    assert main(["run", "--batch", "100000", "--backend", "numpy"]) == 2
    err = capsys.readouterr().err
    assert "--batch 100000 needs about" in err and "for torchvision" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    advised = int(re.search(r"at most --batch (\d+) fits", err)[1])   # the largest that fits
    table = numalex.summary(numalex.alexnet("torchvision"))
    assert table.forward_bytes(advised) <= 8 * 10 ** 9 < table.forward_bytes(advised + 1)


def test_the_cuda_simulator_refuses_a_full_net_without_force(capsys):
    cuda = pytest.importorskip("numalex.backends.numba_cuda",
                               reason="numba-cuda is not installed")
    if not cuda.is_simulator():
        pytest.skip("a real GPU is here: nothing to refuse")
    assert main(["run", "--backend", "cuda", "--variant", "227"]) == 2
    err = capsys.readouterr().err
    assert "CUDA simulator" in err and "1,135,256,096 multiply-adds" in err
    assert "hours" in err and "--force" in err


def test_force_turns_the_refusal_into_a_warning(capsys):
    table = numalex.summary(numalex.alexnet("torchvision"))
    run_command._check_simulator_time("torchvision", table,
                                      SimpleNamespace(batch=1, width=1.0, force=True))
    assert "warning:" in capsys.readouterr().out


def test_without_a_command_the_options_go_to_run(capsys):
    assert main(["--variant", "Caffe", "--backend", "numpy", "--width", "0.05"]) == 0
    assert "== bvlc" in capsys.readouterr().out


def test_version_is_the_projects(capsys):
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"numalex {pyproject['project']['version']}"


def test_compile_notice_speaks_once_and_only_when_numba_compiles():
    @njit
    def add_one(a):
        return a + 1

    stream = io.StringIO()
    with compile_notice(stream):
        add_one(1)
        add_one(2)                          # compiled already: nothing more to say
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("numba: compiling numalex's kernels (first run only; cached in")
    assert lines[1].startswith("numba: compiled 1 functions in")
    quiet = io.StringIO()
    with compile_notice(quiet):
        add_one(3)
    assert quiet.getvalue() == ""
