"""Every script in examples/ runs in a fresh interpreter, exits 0 and prints its
last word. A new example is picked up automatically; its key line goes in KEY_LINES."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
KEY_LINES = {
    "formula_by_hand.py": "formula by hand agrees with numalex",
    "one_conv_three_ways.py": "all three ways agree",
    "variants_side_by_side.py": "side by side: every shape matches the formula",
    "cuda_simulator.py": "simulated CUDA kernels agree with NumPy",
    "receptive_field.py": "one pixel reaches as many outputs as the receptive field predicts",
    "own_layer_property_test.py": "avg_pool2d: output size is floor((n + 2p - k)/s) + 1",
    "backprop_conv1_by_hand.py": "backprop by hand agrees with finite differences and the "
                                 "backend",
}
SCRIPTS = sorted(p.name for p in EXAMPLES.glob("*.py"))


def test_there_are_at_least_four_examples():
    assert len(SCRIPTS) >= 4
    assert set(KEY_LINES) <= set(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_example_runs(script):
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", NUMALEX_PROGRESS="0")
    done = subprocess.run([sys.executable, str(EXAMPLES / script)], capture_output=True,
                          text=True, timeout=600, env=env, cwd=EXAMPLES.parent)
    assert done.returncode == 0, f"{script} failed:\n{done.stdout}\n{done.stderr}"
    if script in KEY_LINES:
        assert KEY_LINES[script] in done.stdout, done.stdout
