"""The CUDA kernels compile for real hardware, and the compiler's figures hold.

The simulator runs kernels as Python, so it cannot catch what only the CUDA
compiler sees (an unsupported call, a value silently typed as float64, a
kernel that spills registers). Here benchmarks/cuda_ptx_report.py compiles
every kernel to PTX for sm_90 and assembles it with ptxas, in a fresh Python
with the simulator off. That needs NVIDIA's NVVM and ptxas from PyPI
(pip install 'numalex[ptx]'), but no GPU or driver; without them the test skips.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPORT = Path(__file__).resolve().parent.parent / "benchmarks" / "cuda_ptx_report.py"
BEST = "4 pipelined 128x128x8/8x8"          # cuda_ladder.LARGE_TILES, what big layers run


@pytest.fixture(scope="module")
def rows():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="0")
    result = subprocess.run([sys.executable, str(REPORT), "--json", "--arch", "sm_90"],
                            env=env, capture_output=True, text=True, timeout=600)
    if "NO-TOOLKIT" in result.stdout + result.stderr:
        pytest.skip("NVVM or ptxas not installed (pip install 'numalex[ptx]')")
    assert result.returncode == 0, result.stderr
    return {row["version"]: row for row in map(json.loads, result.stdout.splitlines())}


def test_every_kernel_compiles_without_float64(rows):
    assert {"1 naive", BEST, "relu", "max_pool", "adaptive_avg", "lrn"} <= set(rows)
    assert [name for name, row in rows.items() if row["float64"]] == []


def test_the_best_version_feeds_its_fmas_from_registers_without_spilling(rows):
    best = rows[BEST]
    assert best["spill_bytes"] == 0
    assert best["fma_per_shared_load"] >= 4
    assert best["fma"] >= 64                 # 8x8 outputs per thread in the inner loop


def test_register_blocking_raises_the_ratio_over_shared_tiles(rows):
    shared = next(row for name, row in rows.items() if name.startswith("2 shared"))
    assert shared["fma_per_shared_load"] <= 1 < rows[BEST]["fma_per_shared_load"]
