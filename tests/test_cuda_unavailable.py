"""Without a GPU and without the simulator, backend "cuda" says so clearly.

NUMBA_ENABLE_CUDASIM is read when numba is first imported, and this pytest
process already runs the simulator, so each case runs in a fresh Python
with the variable set to 0.
"""
import os
import subprocess
import sys
import textwrap

import pytest


def run_without_simulator(code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="0")
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def no_device():
    """Skip on machines that really have a GPU: there the backend must work."""
    probe = run_without_simulator("from numba import cuda; print(cuda.is_available())")
    if probe.stdout.strip() == "True":
        pytest.skip("a CUDA device is present, so the backend is available")


def test_forward_on_cuda_raises_backend_unavailable_with_the_fix(no_device):
    result = run_without_simulator("""
        import numpy as np
        import numalex
        from numalex.backends import BackendUnavailable, available
        print("available:", available())
        model = numalex.alexnet("torchvision", width=1 / 32, num_classes=10, input_size=63)
        try:
            model(np.zeros((1, 3, 63, 63), np.float32), backend="cuda")
        except BackendUnavailable as err:
            print("message:", err)
    """)
    assert result.returncode == 0, result.stderr
    available_line, message = result.stdout.split("message:", 1)
    assert "'numpy'" in available_line and "'cuda'" not in available_line
    assert "neither is available here" in message
    assert "NUMBA_ENABLE_CUDASIM=1 before numba is imported" in message
    assert "numalex[cuda]" in message


def test_uncaught_error_is_one_message_not_a_traceback_from_numba(no_device):
    result = run_without_simulator("from numalex import backends; backends.get('cuda')")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith(
        "numalex.backends.BackendUnavailable: backend 'cuda' needs an NVIDIA GPU")
    assert "site-packages" not in result.stderr            # no frame from inside numba


def test_setting_the_variable_after_importing_numba_is_explained(no_device):
    result = run_without_simulator("""
        import os
        import numba
        os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
        from numalex import backends
        try:
            backends.get("cuda")
        except backends.BackendUnavailable as err:
            print(err)
    """)
    assert "numba was imported before it was set" in result.stdout
