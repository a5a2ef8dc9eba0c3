"""The CUDA kernels compile for real hardware, not only run in the simulator.

The simulator runs kernels as Python, so it cannot catch what only the CUDA
compiler sees (an unsupported call, a value silently typed as float64).
Here each kernel is compiled to PTX for compute capability 7.5 in a fresh
Python with the simulator off. That needs NVIDIA's NVVM and NVRTC libraries
(pip install 'numba-cuda[cu13]'), but no GPU; without them the test skips.
"""
import os
import subprocess
import sys
import textwrap

import pytest

COMPILE = textwrap.dedent("""
    from numba import boolean, cuda, float32, int32, int64
    from numalex.backends import cuda_windows as windows
    from numalex.backends.cuda_gemm import GemmTiles, implicit_gemm_kernel

    nchw = float32[:, :, :, ::1]
    gemm_args = (nchw, float32[:, ::1], float32[::1], nchw) + (int64,) * 5 + (boolean,)
    kernels = {
        "gemm 16x16x32": (implicit_gemm_kernel(GemmTiles(16, 16, 32)), gemm_args),
        "gemm 3x5x7": (implicit_gemm_kernel(GemmTiles(3, 5, 7)), gemm_args),
        "relu": (windows.relu_kernel, (float32[::1], float32[::1])),
        "max_pool": (windows.max_pool_kernel, (nchw, nchw, int64, int64, int64)),
        "adaptive_avg": (windows.adaptive_avg_kernel,
                         (nchw, int32[:, ::1], int32[:, ::1], nchw)),
        "lrn": (windows.lrn_kernel, (nchw, nchw, int64, float32, float32, float32)),
    }
    for name, (kernel, signature) in kernels.items():
        try:
            ptx, _ = cuda.compile_ptx(kernel.py_func, signature, cc=(7, 5))
        except Exception as err:
            if "Failure finding" in str(err) or "libNVVM cannot be found" in str(err):
                print("NO-TOOLKIT", str(err).splitlines()[0])
                raise SystemExit(0)
            raise
        float64_lines = [line for line in ptx.splitlines() if ".f64" in line]
        print(name, "ok" if not float64_lines else f"float64: {float64_lines[:3]}")
""")


def test_every_kernel_compiles_to_ptx_without_float64():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="0")
    result = subprocess.run([sys.executable, "-c", COMPILE], env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    if result.stdout.startswith("NO-TOOLKIT"):
        pytest.skip(f"NVVM/NVRTC not installed (pip install 'numba-cuda[cu13]'): "
                    f"{result.stdout.split(' ', 1)[1].strip()}")
    lines = result.stdout.splitlines()
    assert len(lines) == 6
    assert all(line.endswith(" ok") for line in lines), result.stdout
