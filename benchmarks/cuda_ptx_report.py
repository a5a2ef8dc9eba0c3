"""What NVIDIA's compiler makes of each rung of the GPU convolution ladder: no GPU needed.

    python benchmarks/cuda_ptx_report.py            # a table for sm_80 and sm_90
    python benchmarks/cuda_ptx_report.py --json     # one JSON object per line

Every version in numalex/backends/cuda_ladder.py (and the simpler kernels of
the other ops) is compiled to PTX by Numba
(NVVM, from the `cuda` extra's CUDA 13 packages: pip install 'numba-cuda[cu13]')
and assembled by ptxas (pip install nvidia-cuda-nvcc), which reports per
kernel the registers per thread, spilled bytes and shared memory. From those
and the block size follows the occupancy: the share of the multiprocessor's
64 warp slots that resident blocks can fill. The PTX itself gives the inner
loop's instruction mix: the loop (a backward branch) holding the most FMAs,
and in it the counts of fma, ld.shared and ld.global. FMA : shared-load is
the number that register blocking is about: 1 or less means the kernel waits
on shared memory, 4 or more lets the FMA units set the pace.

These are paper figures. Only a device says how fast a version runs
(benchmarks/gpu_bench.py).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ["NUMBA_ENABLE_CUDASIM"] = "0"          # compile for real hardware

# Per multiprocessor, from NVIDIA's CUDA C++ Programming Guide (compute capabilities).
ARCHES = {
    "sm_80": dict(warps=64, blocks=32, registers=65536, shared=164 * 1024),
    "sm_90": dict(warps=64, blocks=32, registers=65536, shared=228 * 1024),
}
SHARED_RESERVED = 1024        # bytes the system keeps per block (compute capability 8.0+)


def kernels():
    """(name, python function, signature, threads per block) for every version."""
    from numba import boolean, float32, int32, int64

    from numalex.backends import cuda_ladder as ladder
    from numalex.backends import cuda_linear as linear
    from numalex.backends import cuda_windows as windows
    from numalex.backends import cuda_winograd as winograd
    from numalex.backends.cuda_conv_naive import conv_naive_kernel
    from numalex.backends.cuda_gemm import implicit_gemm_kernel
    from numalex.backends.cuda_gemm_blocked import blocked_gemm_kernel, pipelined_gemm_kernel

    nchw = float32[:, :, :, ::1]
    w2d = float32[:, ::1]
    common = (int64,) * 5 + (boolean,)
    v1 = (nchw, float32[:, :, :, ::1], float32[::1], nchw) + (int64,) * 4 + (boolean,)
    v23 = (nchw, w2d, float32[::1], nchw) + common
    v4 = ((float32[::1], w2d, float32[::1], nchw) + (int32[::1],) * 3 + (int64,) * 5
          + (boolean,))
    small = ladder.SMALL_TILES
    yield "1 naive", conv_naive_kernel.py_func, v1, ladder.NAIVE_THREADS
    yield f"2 shared {small.m}x{small.n}x{small.k}", \
        implicit_gemm_kernel(small).py_func, v23, small.m * small.n
    for tiles in (ladder.MEDIUM_TILES, ladder.LARGE_TILES):
        label = f"{tiles.bm}x{tiles.bn}x{tiles.bk}/{tiles.tm}x{tiles.tn}"
        yield f"3 blocked {label}", blocked_gemm_kernel(tiles).py_func, v23, tiles.threads
        yield f"4 pipelined {label}", pipelined_gemm_kernel(tiles).py_func, v4, tiles.threads
    # Version 5's transforms (its GEMM is version 2 or 4, above).
    yield "5 winograd: weights", winograd.weight_transform_kernel.py_func, \
        (float32[:, :, :, ::1], w2d), 256
    yield "5 winograd: inputs", winograd.input_transform_kernel.py_func, \
        (nchw, w2d) + (int64,) * 3, 256
    yield "5 winograd: outputs", winograd.output_transform_kernel.py_func, \
        (w2d, float32[::1], nchw, int64, int64, boolean), 256
    # The one-thread-per-output kernels of the other ops (cuda_windows.py).
    yield "relu", windows.relu_kernel.py_func, (float32[::1], float32[::1]), 256
    yield "max_pool", windows.max_pool_kernel.py_func, (nchw, nchw) + (int64,) * 3, 256
    yield "adaptive_avg", windows.adaptive_avg_kernel.py_func, \
        (nchw, int32[:, ::1], int32[:, ::1], nchw), 256
    yield "lrn", windows.lrn_kernel.py_func, (nchw, nchw, int64) + (float32,) * 3, 256
    # Fully connected layers up to 8 samples: one warp per output row.
    yield "linear rows", linear.linear_rows_kernel.py_func, \
        (w2d, w2d, float32[::1], boolean, w2d), linear.THREADS


def find_ptxas() -> str | None:
    """ptxas from the nvidia-cuda-nvcc wheel (its PTX version matches NVVM's), else PATH."""
    try:
        import nvidia
        for root in nvidia.__path__:
            for candidate in sorted(Path(root).glob("cu*/bin/ptxas"), reverse=True):
                return str(candidate)
    except ImportError:
        pass
    return shutil.which("ptxas")


def assemble(ptx: str, arch: str, ptxas: str) -> dict:
    """Registers, spill bytes and static shared memory that ptxas reports."""
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp, "kernel.ptx")
        source.write_text(ptx)
        result = subprocess.run([ptxas, f"-arch={arch}", "-v", str(source), "-o",
                                 str(Path(tmp, "kernel.cubin"))],
                                capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"ptxas failed: {result.stderr.strip().splitlines()[-1]}")
    log = result.stderr
    registers = int(re.search(r"Used (\d+) registers", log).group(1))
    spills = sum(int(n) for n in re.findall(r"(\d+) bytes spill (?:stores|loads)", log))
    shared = re.search(r"(\d+) bytes smem", log)
    return dict(registers=registers, spill_bytes=spills,
                shared_bytes=int(shared.group(1)) if shared else 0)


def occupancy(arch: str, threads: int, registers: int, shared: int) -> float:
    """Resident warps / warp slots of one multiprocessor (registers are granted
    per warp in units of 256; each block also holds SHARED_RESERVED bytes)."""
    limits = ARCHES[arch]
    warps = math.ceil(threads / 32)
    per_warp = math.ceil(registers * 32 / 256) * 256
    blocks = min(limits["blocks"], limits["warps"] // warps,
                 limits["registers"] // (per_warp * warps),
                 limits["shared"] // (shared + SHARED_RESERVED))
    return blocks * warps / limits["warps"]


def inner_loop_mix(ptx: str) -> dict:
    """fma / ld.shared / ld.global counts of the loop with the most FMAs.

    A loop in PTX is a backward branch: `bra $L__BB0_7` below the label
    `$L__BB0_7:`. Among all loops, the one with the most fma instructions is
    the inner loop (on a tie, the shorter one); its lines are counted.
    """
    lines = ptx.splitlines()
    labels = {}
    best = None
    for number, line in enumerate(lines):
        label = re.match(r"^(\$L__\w+):", line.strip())
        if label:
            labels[label.group(1)] = number
        branch = re.search(r"\bbra(?:\.uni)?\s+(\$L__\w+);", line)
        if branch and branch.group(1) in labels:
            body = "\n".join(lines[labels[branch.group(1)]:number + 1])
            mix = dict(fma=len(re.findall(r"\bfma\.rn\.f32\b", body)),
                       ld_shared=len(re.findall(r"\bld\.shared\b", body)),
                       ld_global=len(re.findall(r"\bld\.global\b", body)),
                       length=number - labels[branch.group(1)])
            if best is None or (mix["fma"], -mix["length"]) > (best["fma"], -best["length"]):
                best = mix
    best = best or dict(fma=0, ld_shared=0, ld_global=0, length=0)
    best["fma_per_shared_load"] = (best["fma"] / best["ld_shared"] if best["ld_shared"]
                                   else math.inf if best["fma"] else 0.0)
    best["float64"] = bool(re.search(r"\.f64\b", ptx))
    return best


def without_a_driver(cuda) -> None:
    """Let device functions compile with no GPU driver present.

    numba-cuda compiles a device function (im2col_value, nchw_index) for the
    current device's compute capability, which needs a driver to ask. The
    kernel's own `cc=` decides the PTX target anyway, so answer for the
    device with the lowest architecture reported here.
    """
    from numba.cuda import dispatcher
    if not cuda.is_available():
        lowest = min(ARCHES)
        device = type("PaperDevice", (), {"compute_capability": (int(lowest[3]), int(lowest[4]))})
        dispatcher.get_current_device = device


def report(arches=tuple(ARCHES)):
    """One dict per (kernel, arch)."""
    from numba import cuda
    without_a_driver(cuda)
    ptxas = find_ptxas()
    if ptxas is None:
        raise SystemExit("NO-TOOLKIT ptxas not found: pip install nvidia-cuda-nvcc")
    for name, function, signature, threads in kernels():
        for arch in arches:
            try:
                ptx, _ = cuda.compile_ptx(function, signature, cc=(int(arch[3]), int(arch[4])))
            except Exception as err:                       # NVVM missing: say so, cleanly
                if "NVVM" in str(err) or "Failure finding" in str(err):
                    raise SystemExit(f"NO-TOOLKIT {str(err).splitlines()[0]}") from None
                raise
            row = dict(version=name, arch=arch, threads=threads, **assemble(ptx, arch, ptxas))
            row["occupancy"] = occupancy(arch, threads, row["registers"], row["shared_bytes"])
            row.update(inner_loop_mix(ptx))
            yield row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--arch", choices=sorted(ARCHES), action="append",
                        help="compile for this architecture only (repeatable; default: all)")
    args = parser.parse_args(argv)
    if not args.json:
        print(f"{'version':<32} {'arch':<6} {'thr':>4} {'regs':>4} {'spill':>5} "
              f"{'smem':>6} {'occ':>5}   inner loop: {'fma':>4} {'ld.sh':>5} {'ld.gl':>5} "
              f"{'fma/ld.sh':>9}")
    for row in report(tuple(args.arch or ARCHES)):
        if args.json:
            print(json.dumps(row), flush=True)
            continue
        print(f"{row['version']:<32} {row['arch']:<6} {row['threads']:>4} "
              f"{row['registers']:>4} {row['spill_bytes']:>5} {row['shared_bytes']:>6} "
              f"{row['occupancy']:>5.0%}   {'':11} {row['fma']:>4} {row['ld_shared']:>5} "
              f"{row['ld_global']:>5} {row['fma_per_shared_load']:>9.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
