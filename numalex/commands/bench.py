"""`numalex bench`: validate, then time AlexNet on the NumPy and Numba backends.

The steps, in the order they run:

1. validate: every backend's logits against the NumPy reference (max-abs
   error relative to the reference's max-abs, below 1e-4); nothing is timed
   if one disagrees (exit status 1);
2. throughput: runs alternate between backends (one forward each, in a
   rotating order, `--repeats` rounds), so a burst of load from other
   processes hits all of them alike; medians, ms/image and GFLOP/s
   (2 x multiply-adds / time);
3. per layer: median layer times of a few traced forward passes;
4. peak memory: the peak resident set of a fresh process that runs one
   forward pass per backend at the largest batch;
5. compile time: a fresh process with an empty Numba cache (cold), then
   again with that cache filled (warm).

benchmarks/alexnet.py adds PyTorch and ONNX Runtime to the same tables;
this command needs neither.
"""
from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..alexnet import alexnet, canonical_variant
from ..backends import TOLERANCE, relative_error
from ..progress import progress


@dataclass
class Runner:
    """A named way to turn images (N, 3, H, W) into logits (N, classes)."""

    name: str
    run: Callable[[np.ndarray], np.ndarray]


def backend_runner(model, backend: str) -> Runner:
    return Runner(backend, lambda x: model(x, backend=backend))


def macs_per_image(model) -> int:
    """Multiply-adds of one forward pass, from the layer specs."""
    return sum(spec.macs(shape_in) for (_, spec), (shape_in, _)
               in zip(model.layers, model.expected_shapes()))


def images(model, batch: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch,) + model.input_shape,
                                                       dtype=np.float32)


def validate(runners: list[Runner], x: np.ndarray, reference: str = "numpy") -> dict:
    """{runner name: relative error of its logits against the reference runner}."""
    outputs = {r.name: np.asarray(r.run(x)) for r in runners}
    return {name: relative_error(y, outputs[reference]) for name, y in outputs.items()}


def time_alternating(runners: list[Runner], x: np.ndarray, repeats: int,
                     label: str = "") -> dict[str, list[float]]:
    """Seconds per forward pass of each runner, runs interleaved.

    Round r runs every runner once, starting with runner r mod len(runners),
    after one untimed warm-up round.
    """
    for r in runners:
        r.run(x)
    seconds = {r.name: [] for r in runners}
    for rep in progress(range(repeats), label):
        for i in range(len(runners)):
            runner = runners[(rep + i) % len(runners)]
            start = time.perf_counter()
            runner.run(x)
            seconds[runner.name].append(time.perf_counter() - start)
    return seconds


def throughput_rows(model_label, macs, batch, seconds, baseline=None) -> list[list[str]]:
    """Table rows: model, batch, runner, median ms, ms/image, GFLOP/s, ratio."""
    medians = {name: float(np.median(s)) for name, s in seconds.items()}
    rows = []
    for name, t in medians.items():
        ratio = f"{medians[baseline] / t:.2f}x" if baseline in medians else ""
        rows.append([model_label, str(batch), name, f"{t * 1e3:.1f}",
                     f"{t * 1e3 / batch:.2f}", f"{2 * macs * batch / t / 1e9:.0f}", ratio])
    return rows


def layer_rows(model, x, backend_names, repeats: int) -> list[list[str]]:
    """Per layer: median ms on each backend (trace() synchronises around layers)."""
    times = {}
    for name in backend_names:
        traces = [model.trace(x, backend=name) for _ in range(repeats + 1)][1:]
        times[name] = np.median([[r.seconds for r in t] for t in traces], axis=0)
    records = model.trace(x, backend=backend_names[0])
    rows = []
    for i, (rec, (_, spec)) in enumerate(zip(records, model.layers)):
        macs = spec.macs(rec.input_shape[1:]) * x.shape[0]
        cells = [rec.name, rec.type, "x".join(map(str, rec.output_shape))]
        for name in backend_names:
            t = times[name][i]
            rate = f" ({2 * macs / t / 1e9:.0f})" if macs else ""
            cells.append(f"{t * 1e3:.2f}{rate}")
        rows.append(cells)
    return rows


def markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


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


def machine() -> str:
    import numba

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f
                       if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return (f"{cpu}, {os.cpu_count()} logical CPUs; Python {platform.python_version()}, "
            f"NumPy {np.__version__}, Numba {numba.__version__} "
            f"(threading layer {numba.threading_layer()}); load average {load}")


def report(runner_factories, variants, batches, repeats, layer_batches,
           memory_batch, compile_time: bool, baseline: str | None = None) -> int:
    """Validate, time and print every table; return the exit status.

    runner_factories: functions model -> Runner, in column order; the first
    must produce the NumPy reference.
    """
    sections, rows = [], []
    for variant in variants:
        model = alexnet(variant)
        label = f"AlexNet-{model.input_size} ({model.variant})"
        runners = [make(model) for make in runner_factories]
        errors = validate(runners, images(model, 2, seed=1))
        print(f"validate {label}: " + ", ".join(f"{n} {e:.1e}" for n, e in errors.items()),
              file=sys.stderr)
        bad = {n: e for n, e in errors.items() if not e < TOLERANCE}
        if bad:
            print(f"numalex bench: {label} disagrees with the NumPy reference: {bad}; "
                  f"nothing timed", file=sys.stderr)
            return 1
        macs = macs_per_image(model)
        for batch in batches:
            seconds = time_alternating(runners, images(model, batch), repeats,
                                       f"{label} batch {batch}")
            rows += throughput_rows(label, macs, batch, seconds, baseline)
        backend_names = [r.name for r in runners if r.name in ("numpy", "numba")]
        for batch in layer_batches:
            layers = layer_rows(model, images(model, batch), backend_names, 3)
            sections.append(f"### Per layer: {label}, batch {batch} "
                            f"(median ms, GFLOP/s in brackets)\n\n"
                            + markdown(["layer", "type", "output"] + backend_names, layers))
    ratio = f"vs {baseline} (throughput)" if baseline else ""
    print("## Throughput (median of", repeats, "alternating runs)\n")
    print(markdown(["model", "batch", "runner", "ms", "ms/image", "GFLOP/s", ratio], rows))
    for section in sections:
        print("\n" + section)
    if memory_batch:
        print(f"\n## Peak memory (resident, fresh process, one forward at batch "
              f"{memory_batch})\n")
        mem_rows = [[canonical_variant(v), name,
                     f"{peak_memory_mb(canonical_variant(v), name, memory_batch):.0f}"]
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


def register(sub) -> None:
    p = sub.add_parser(
        "bench", help="validate, then time AlexNet on the numpy and numba backends",
        description="Check the numba backend against the NumPy reference, then time "
                    "forward passes (alternating backends, medians), per layer, peak "
                    "memory and JIT compile time. Prints Markdown tables. "
                    "benchmarks/alexnet.py adds PyTorch and ONNX Runtime.",
        epilog="example: numalex bench --variant 224 --batch 1 --batch 32 --repeats 10")
    add_options(p)
    p.set_defaults(func=run)


def add_options(p) -> None:
    p.add_argument("--variant", action="append", metavar="V",
                   help="224 / torchvision, 227 / original, bvlc (repeatable; default 224, 227)")
    p.add_argument("--batch", action="append", type=int, metavar="N",
                   help="batch size (repeatable; default 1, 8, 32)")
    p.add_argument("--repeats", type=int, default=10, help="timed rounds (default 10)")
    p.add_argument("--layers-batch", action="append", type=int, metavar="N",
                   help="batch of the per-layer tables (repeatable; default 1 and 32)")
    p.add_argument("--memory-batch", type=int, default=32,
                   help="batch of the peak memory test (0 skips it; default 32)")
    p.add_argument("--no-compile-time", action="store_true",
                   help="skip the cold/warm start-up measurement (about 30 s)")


def options(args) -> dict:
    """Keyword arguments of report() from parsed options."""
    return dict(variants=[canonical_variant(v) for v in (args.variant or ["224", "227"])],
                batches=args.batch or [1, 8, 32], repeats=args.repeats,
                layer_batches=args.layers_batch or [1, 32], memory_batch=args.memory_batch,
                compile_time=not args.no_compile_time)


def run(args) -> int:
    factories = [lambda m: backend_runner(m, "numpy"), lambda m: backend_runner(m, "numba")]
    return report(factories, baseline="numpy", **options(args))
