"""benchmarks/gpu_bench.py: it says clearly that it needs a device, and its
--small mode validates every layer of a tiny net in the simulator."""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from numalex import backends

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_bench.py"


def load_script():
    spec = importlib.util.spec_from_file_location("gpu_bench", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def simulator_only():
    try:
        if backends.get("cuda").is_simulator():
            return
    except backends.BackendUnavailable:
        pass
    pytest.skip("runs in the CUDA simulator only (NUMBA_ENABLE_CUDASIM=1)")


def test_without_gpu_or_simulator_it_says_so_and_exits_cleanly():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="0")
    result = subprocess.run([sys.executable, str(SCRIPT)], env=env, capture_output=True,
                            text=True, timeout=120)
    if "needs a CUDA device" not in result.stderr and result.returncode == 0:
        pytest.skip("a CUDA device is present")
    assert result.returncode == 0
    assert "gpu_bench needs a CUDA device" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.cudasim
def test_in_the_simulator_it_refuses_the_full_size_net(capsys):
    simulator_only()
    assert load_script().main([]) == 0
    assert "needs a real CUDA device" in capsys.readouterr().err


@pytest.mark.cudasim
def test_small_mode_validates_every_layer_in_the_simulator(capsys):
    simulator_only()
    assert load_script().main(["--small"]) == 0
    out = capsys.readouterr().out
    for layer in ("features.0", "features.10", "avgpool", "classifier.6"):
        assert f"\n{layer} " in out
    assert "every output was validated" in out


def test_mismatches_reports_entries_beyond_the_tolerance():
    mismatches = load_script().mismatches
    want = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)
    assert mismatches(want + 1e-6, want) == []
    bad = want.copy()
    bad[1, 0] = 3.01
    report = mismatches(bad, want)
    assert len(report) == 1 and "at (1, 0)" in report[0]


def test_version_and_batch_lists_are_parsed_and_checked():
    script = load_script()
    args = script.parse_args(["--versions", "1,5,auto", "--batch", "1,32,128"])
    assert args.versions == [1, 5, "auto"] and args.batch == [1, 32, 128]
    for bad in (["--versions", "6"], ["--versions", "two"], ["--batch", "0"]):
        with pytest.raises(SystemExit):
            script.parse_args(bad)
