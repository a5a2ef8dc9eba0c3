"""`numalex bench`: validate, then time AlexNet on numalex's backends, each
in a fresh process of its own (numalex/commands/bench_process.py says why).

The steps, in the order they run:

1. validate: every runner's logits (computed in its own process) against
   the reference runner's (max-abs error relative to the reference's
   max-abs, below 1e-4); nothing is timed if one disagrees (exit status 1);
2. throughput: `--rounds` rounds, each runner once per round in a fresh
   process, `--repeats` timed forward passes per batch after two untimed
   ones; the median of all passes, the range (min-max) of the per-process
   medians, ms/image and GFLOP/s (2 x multiply-adds / time);
3. per layer: median layer times of a few traced forward passes (numalex's
   trace runs every layer on its own, unfused), in a fresh process;
4. peak memory: the peak resident set of a fresh process that runs one
   forward pass per backend at `--memory-batch`;
5. compile time: a fresh process with an empty Numba cache (cold), then
   again with that cache filled (warm).

benchmarks/peers.py runs the same machinery with PyTorch and ONNX Runtime
beside numalex; this command needs neither.
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile

import numpy as np

from ..alexnet import alexnet, canonical_variant
from ..backends import TOLERANCE, relative_error
from ..progress import progress
from . import bench_process
from .bench_process import RunnerSpec


def macs_per_image(model) -> int:
    """Multiply-adds of one forward pass, from the layer specs."""
    return sum(spec.macs(shape_in) for (_, spec), (shape_in, _)
               in zip(model.layers, model.expected_shapes()))


def markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


# ---- the machine ----------------------------------------------------------------
def cpu_model_and_isa(cpuinfo: str) -> tuple[str, str]:
    """(CPU model name, the vector ISA its flags announce) from /proc/cpuinfo's text."""
    fields = dict(line.split(":", 1) for line in cpuinfo.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    flags = set(fields.get("flags", "").split())
    isa = [name for flag, name in (("avx2", "AVX2"), ("fma", "FMA"), ("avx512f", "AVX-512F"),
                                   ("avx512_vnni", "AVX-512 VNNI"), ("amx_tile", "AMX"))
           if flag in flags]
    if "avx512f" not in flags:
        isa.append("no AVX-512")
    return fields.get("model name", platform.machine()), ", ".join(isa) or "unknown"


def blas_kernel() -> str:
    """Which OpenBLAS kernel NumPy runs (threadpoolctl, if installed)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "BLAS kernel unknown (pip install threadpoolctl)"
    info = [f"{i['internal_api']} {i.get('version')} ({i.get('architecture')} kernels, "
            f"{i['num_threads']} threads)" for i in threadpool_info() if i["user_api"] == "blas"]
    return "; ".join(info) or "no BLAS found"


def machine() -> str:
    """CPU model, ISA, cores, BLAS kernel, library versions and load average."""
    import numba

    try:
        with open("/proc/cpuinfo") as f:
            cpu, isa = cpu_model_and_isa(f.read())
    except OSError:
        cpu, isa = platform.processor() or platform.machine(), "unknown"
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return (f"{cpu} ({isa}), {os.cpu_count()} logical CPUs; NumPy {np.__version__} on "
            f"{blas_kernel()}; Numba {numba.__version__}; Python {platform.python_version()}; "
            f"load average {load}")


# ---- the tables -------------------------------------------------------------------
def throughput_rows(label, macs, batch, seconds, names, baseline=None) -> list[list[str]]:
    """Rows: model, batch, runner, ms (median), ms/image (median, range of
    the per-process medians), GFLOP/s, throughput relative to `baseline`."""
    stats = {name: bench_process.summary(seconds[name, batch]) for name in names}
    rows = []
    for name in names:
        median, low, high = stats[name]
        ratio = f"{stats[baseline][0] / median:.2f}x" if baseline in stats else ""
        rows.append([label, str(batch), name, f"{median * 1e3:.1f}",
                     f"{median * 1e3 / batch:.2f} ({low * 1e3 / batch:.2f}-"
                     f"{high * 1e3 / batch:.2f})",
                     f"{2 * macs * batch / median / 1e9:.0f}", ratio])
    return rows


def layer_table(model, batch, per_runner: dict) -> str:
    """One row per layer (numalex's names and order; a runner's extra rows
    after them), one column per runner: median ms (GFLOP/s)."""
    macs = {name: spec.macs(shape_in) * batch for (name, spec), (shape_in, _)
            in zip(model.layers, model.expected_shapes())}
    names = [name for name, _ in model.layers]
    kinds = {name: type(spec).__name__ for name, spec in model.layers}
    for records in per_runner.values():
        for layer, kind, _ in records:
            if layer not in kinds:
                names.append(layer)
                kinds[layer] = kind
    times = {runner: {layer: s for layer, _, s in records}
             for runner, records in per_runner.items()}
    rows = []
    for layer in names:
        cells = [layer, kinds[layer]]
        for runner in per_runner:
            s = times[runner].get(layer)
            rate = f" ({2 * macs[layer] / s / 1e9:.0f})" if s and macs.get(layer) else ""
            cells.append("-" if s is None else f"{s * 1e3:.2f}{rate}")
        rows.append(cells)
    rows.append(["total", ""] + [f"{sum(t.values()) * 1e3:.1f}" for t in times.values()])
    return markdown(["layer", "type"] + list(per_runner), rows)


# ---- memory and start-up (fresh processes) ----------------------------------------
def _python(code: str, env_extra: dict | None = None) -> str:
    """Run `code` in a fresh interpreter and return its stdout."""
    env = dict(os.environ, **(env_extra or {}))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"benchmark subprocess failed:\n{done.stderr[-2000:]}")
    return done.stdout.strip()


PEAK_MEMORY_CODE = """
import numpy as np, numalex
model = numalex.alexnet({variant!r})
x = np.random.default_rng(0).standard_normal(({batch},) + model.input_shape, dtype=np.float32)
model(x, backend={backend!r})
with open("/proc/self/status") as status:
    print(next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024)
"""


def peak_memory_mb(variant: str, backend: str, batch: int) -> float:
    """Peak resident memory (MiB) of a fresh process running one forward pass.

    Read from VmHWM in /proc (Linux): unlike getrusage's ru_maxrss, it is not
    inherited from the parent process that started this one."""
    return float(_python(PEAK_MEMORY_CODE.format(variant=variant, backend=backend,
                                                 batch=batch)))


STARTUP_CODE = """
import time
start = time.perf_counter()
import numpy as np, numalex
from numalex import backends
backends.get("numba")
imported = time.perf_counter()
jit = 0.0
for variant in ("torchvision", "original", "bvlc"):
    model = numalex.alexnet(variant)
    x = np.zeros((1,) + model.input_shape, dtype=np.float32)
    model(x, backend="numpy")                  # weights exist; NumPy's BLAS warmed up
    first = time.perf_counter()
    model(x, backend="numba")                  # compiles, or loads from the cache
    second = time.perf_counter()
    model(x, backend="numba")                  # the same work, nothing to compile
    jit += (second - first) - (time.perf_counter() - second)
print(imported - start, jit)
"""


def compile_seconds() -> dict[str, tuple[float, float]]:
    """{"cold"/"warm": (seconds to import numalex and its Numba backend,
    seconds spent compiling or loading kernels)} in fresh processes, with a
    Numba cache that starts empty (cold) and then holds the kernels (warm).
    The JIT time is the first numba forward pass of each variant minus the
    second: what a user waits for before the first forward can start."""
    with tempfile.TemporaryDirectory() as cache:
        result = {}
        for label in ("cold", "warm"):
            out = _python(STARTUP_CODE, {"NUMBA_CACHE_DIR": cache}).split()
            result[label] = (float(out[0]), float(out[1]))
    return result


# ---- the whole report ------------------------------------------------------------
def validate(specs, model, folder, reference: str) -> dict:
    """{runner: relative error of its logits against the reference runner's}."""
    logits = bench_process.outputs(specs, model.variant, model.input_shape, folder)
    return {name: relative_error(y, logits[reference])
            for name, y in logits.items() if name != reference}


# Profiled passes per runner for a per-layer table: one layer of a batch-1
# pass takes a millisecond or two, and on a shared machine a median of 3
# still caught the odd burst of load from other programs.
LAYER_RUNS = 7


def report(specs: list[RunnerSpec], variants, batches, rounds, repeats, layer_batches,
           reference: str, baseline: str | None = None, layer_runners=(),
           prepare=None, memory_batch=0, compile_time=False, model_options=None,
           nonzero_runner: str | None = "numba") -> int:
    """Validate, time and print every table; return the exit status.

    specs: the runners, in column order; reference: the one the others are
    validated against; baseline: the one throughput ratios are taken to;
    layer_runners: those whose per-layer times are tabulated;
    prepare(model, folder): writes what loaders need beyond the weights;
    model_options: keyword arguments of alexnet() (tests build small nets);
    nonzero_runner: the runner that reports, in a fresh process after the
    timing, how much of each fully connected layer's input is nonzero for
    one seeded image (its batch-1 times depend on that).
    """
    sections, rows, notes = [], [], []
    with tempfile.TemporaryDirectory() as folder:
        for variant in variants:
            model = alexnet(variant, **(model_options or {}))
            label = f"AlexNet-{model.input_size} ({model.variant})"
            bench_process.save_model(model, folder, model_options or {})
            if prepare is not None:
                prepare(model, folder)
            errors = validate(specs, model, folder, reference)
            print(f"validate {label} against {reference}: "
                  + ", ".join(f"{n} {e:.1e}" for n, e in errors.items()), file=sys.stderr)
            bad = {n: e for n, e in errors.items() if not e < TOLERANCE}
            if bad:
                print(f"numalex bench: {label} disagrees with {reference} by more than "
                      f"{TOLERANCE} (relative): {bad}; nothing timed", file=sys.stderr)
                return 1
            seconds = bench_process.time_rounds(specs, variant, model.input_shape, folder,
                                                batches, rounds, repeats, label)
            for batch in batches:
                rows += throughput_rows(label, macs_per_image(model), batch, seconds,
                                        [s.name for s in specs], baseline)
            for batch in layer_batches:
                task = {"kind": "layers", "batch": batch, "runs": LAYER_RUNS}
                per_runner = {s.name: bench_process.in_fresh_process(
                    s, variant, model.input_shape, folder, [task])[0]
                    for s in specs if s.name in layer_runners}
                sections.append(f"### Per layer: {label}, batch {batch} "
                                f"(median ms, GFLOP/s in brackets)\n\n"
                                + layer_table(model, batch, per_runner))
            for spec in (s for s in specs if s.name == nonzero_runner):
                nonzero = bench_process.in_fresh_process(
                    spec, variant, model.input_shape, folder, [{"kind": "nonzero", "batch": 1}])[0]
                notes.append(f"{label}, batch 1: nonzero inputs "
                             + ", ".join(f"{name} {100 * f:.0f}%" for name, f in nonzero))
    ratio = f"vs {baseline} (throughput)" if baseline else ""
    print(f"## Throughput: {rounds} rounds of fresh processes, {repeats} timed passes "
          f"each; median (range of per-process medians)\n")
    print(markdown(["model", "batch", "runner", "ms", "ms/image", "GFLOP/s", ratio], rows))
    if notes:
        print(f"\nAt batch 1 {nonzero_runner} reads only the weight rows of a fully connected "
              f"layer's nonzero inputs (a ReLU's zeros are skipped), so its batch-1 times "
              f"depend on the data:\n" + "\n".join(f"- {note}" for note in notes))
    for section in sections:
        print("\n" + section)
    if memory_batch:
        print(f"\n## Peak memory (resident, fresh process, one forward at batch "
              f"{memory_batch})\n")
        mem_rows = [[v, name, f"{peak_memory_mb(v, name, memory_batch):.0f}"]
                    for v in progress(variants, "peak memory") for name in ("numpy", "numba")]
        print(markdown(["variant", "backend", "MiB"], mem_rows))
    if compile_time:
        times = compile_seconds()
        print("\n## Start-up before the first forward (fresh process, all three variants)\n")
        print(markdown(["Numba cache", "import (s)", "compile / cache load (s)", "total (s)"],
                       [[k, f"{a:.2f}", f"{b:.2f}", f"{a + b:.2f}"]
                        for k, (a, b) in times.items()]))
    print(f"\nMachine: {machine()}")
    return 0


# ---- the command line ----------------------------------------------------------
def at_least(minimum: int):
    """An argparse type: an integer >= minimum, else a one-line usage error
    before any work starts."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value
    parse.__name__ = f"integer >= {minimum}"
    return parse


def variant_name(text: str) -> str:
    """An argparse type: a variant name or alias, canonical."""
    try:
        return canonical_variant(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def add_options(p, quick_help: str) -> None:
    p.add_argument("--variant", action="append", type=variant_name, metavar="V",
                   help="224 / torchvision, 227 / original, bvlc (repeatable; default 224, 227)")
    p.add_argument("--batch", action="append", type=at_least(1), metavar="N",
                   help="batch size (repeatable; default 1, 8, 32)")
    p.add_argument("--rounds", type=at_least(1),
                   help="rounds of fresh processes, one per runner each (default 5)")
    p.add_argument("--repeats", type=at_least(1),
                   help="timed forward passes per process and batch (default 5)")
    p.add_argument("--layers-batch", action="append", type=at_least(1), metavar="N",
                   help="batch of the per-layer tables (repeatable; default 1 and 32)")
    p.add_argument("--quick", action="store_true", help=quick_help)


def options(args) -> dict:
    """Keyword arguments of report() from parsed options (already checked by
    argparse); --quick changes the defaults, never an option given."""
    quick = args.quick
    return dict(variants=args.variant or (["torchvision"] if quick else
                                          ["torchvision", "original"]),
                batches=args.batch or ([1, 8] if quick else [1, 8, 32]),
                rounds=args.rounds or (2 if quick else 5),
                repeats=args.repeats or (2 if quick else 5),
                layer_batches=args.layers_batch or ([] if quick else [1, 32]))


def register(sub) -> None:
    p = sub.add_parser(
        "bench", help="validate, then time AlexNet on the numpy and numba backends",
        description="Check the numba backend against the NumPy reference, then time "
                    "forward passes (each backend in fresh processes, alternating; "
                    "medians and ranges), per layer, peak memory and JIT compile time. "
                    "Prints Markdown tables. benchmarks/peers.py adds PyTorch and "
                    "ONNX Runtime.",
        epilog="example: numalex bench --variant 224 --batch 1 --batch 32 --rounds 3")
    add_options(p, "a run of a few minutes: by default AlexNet-224, batch 1 and 8, 2 rounds "
                   "of 2 passes, no per-layer, memory or start-up tables")
    p.add_argument("--memory-batch", type=at_least(0), default=32,
                   help="batch of the peak memory test (0 skips it; default 32)")
    p.add_argument("--no-compile-time", action="store_true",
                   help="skip the cold/warm start-up measurement (about 30 s)")
    p.set_defaults(func=run)


def run(args) -> int:
    specs = bench_process.numalex_runners(["numpy", "numba"])
    return report(specs, reference="numpy", baseline="numpy", layer_runners=("numpy", "numba"),
                  memory_batch=0 if args.quick else args.memory_batch,
                  compile_time=not (args.quick or args.no_compile_time), **options(args))
