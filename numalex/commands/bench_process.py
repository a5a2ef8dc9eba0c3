"""Fair timing: every runner in a fresh process of its own, rounds alternating.

Timing several runtimes inside one process handicaps all but one of them:
each brings its own thread pool (Numba's, OpenBLAS's, ONNX Runtime's,
PyTorch's), and a pool that has just gone to sleep because another one ran
wakes up cold. So `numalex bench` and benchmarks/peers.py start one process
per runner and round, as a user would run it, and alternate: round r runs
every runner once, starting with runner r mod len(runners), so a burst of
load from other processes on the machine hits all of them alike.

A runner is a loader, ``"module:function"`` called in the fresh process as
``function(arg, variant, folder)``; it returns an object with

    run(x) -> logits           x: (N, 3, H, W) float32 -> (N, classes)
    layer_times(x, runs)       optional: [(layer, kind, seconds), ...],
                               the median of `runs` profiled passes

``folder`` holds what the parent prepared: ``VARIANT.npz``, the weights
every runner loads (one seeded numalex model, so all runners compute the
same function), ``VARIANT.json``, the options that built that model
(save_model), and whatever else a loader needs (an ONNX file).

The parent talks to a worker through two JSON files: a job (loader,
variant, tasks) and a result. A task is one of
    {"kind": "outputs", "batch": N, "seed": s}   logits of seeded images, saved
                                                 as .npy (for validation)
    {"kind": "time", "batches": [...], "runs": k, "warmup": w}
                                                 seconds of each timed pass
    {"kind": "layers", "batch": N, "runs": k}    layer_times of seeded images
    {"kind": "nonzero", "batch": N}              linear_inputs_nonzero of seeded images
"""
from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

import numpy as np

from .. import backends
from ..alexnet import alexnet
from ..layers import Linear
from ..progress import progress


@dataclass(frozen=True)
class RunnerSpec:
    """A runner as the parent knows it: name, loader ("module:function") and
    the argument the loader gets, plus folders the worker must import from."""

    name: str
    loader: str
    arg: str = ""
    paths: tuple = field(default=())


def images(input_shape, batch: int, seed: int) -> np.ndarray:
    """Seeded standard-normal images (batch,) + input_shape, float32: every
    runner builds the same ones from the same seed."""
    return np.random.default_rng(seed).standard_normal((batch,) + tuple(input_shape),
                                                       dtype=np.float32)


def save_model(model, folder: str, options: dict) -> None:
    """FOLDER/VARIANT.npz: the model's state_dict as plain arrays, for every
    runner; FOLDER/VARIANT.json: the alexnet() options that built it."""
    np.savez(os.path.join(folder, f"{model.variant}.npz"), **model.state_dict())
    with open(os.path.join(folder, f"{model.variant}.json"), "w") as f:
        json.dump(options, f)


def load_weights(variant: str, folder: str) -> dict:
    with np.load(os.path.join(folder, f"{variant}.npz")) as archive:
        return {key: archive[key] for key in archive.files}


def load_model(variant: str, folder: str):
    """The numalex model that save_model saved."""
    with open(os.path.join(folder, f"{variant}.json")) as f:
        model = alexnet(variant, **json.load(f))
    model.load_state_dict(load_weights(variant, folder))
    return model


# ---- numalex's own runners (the loader the workers call) ---------------------
class NumalexRunner:
    """A numalex model on one backend, at its defaults."""

    def __init__(self, backend: str, variant: str, folder: str):
        self.backend = backend
        self.model = load_model(variant, folder)

    def run(self, x):
        return self.model(x, backend=self.backend)

    def linear_inputs_nonzero(self, x):
        """[(layer, fraction of its input that is nonzero)] for each Linear
        layer: at batch 1 the numba backend reads only the weight rows of
        nonzero inputs, so its time depends on these fractions."""
        be, weights = backends.get(self.backend), self.model.state_dict()
        h, fractions = be.to_backend(x), []
        for name, spec in self.model.layers:
            if isinstance(spec, Linear):
                fractions.append((name, float(np.count_nonzero(be.to_numpy(h)) / h.size)))
            h = spec.forward(be, h, {s: weights[f"{name}.{s}"] for s in spec.param_shapes()})
        return fractions

    def layer_times(self, x, runs: int):
        """numalex's trace: every layer on its own (unfused), median seconds."""
        self.model.trace(x, backend=self.backend)                    # warm-up
        traces = [self.model.trace(x, backend=self.backend) for _ in range(runs)]
        seconds = np.median([[r.seconds for r in t] for t in traces], axis=0)
        return [(r.name, r.type, float(s)) for r, s in zip(traces[0], seconds)]


def numalex_backend(backend: str, variant: str, folder: str) -> NumalexRunner:
    return NumalexRunner(backend, variant, folder)


def numalex_runners(names) -> list[RunnerSpec]:
    return [RunnerSpec(name, f"{__name__}:numalex_backend", name) for name in names]


# ---- the worker ---------------------------------------------------------------
def _timed_passes(runner, x, runs: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        runner.run(x)
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        runner.run(x)
        seconds.append(time.perf_counter() - start)
    return seconds


def work(job: dict) -> list:
    """Run a job's tasks in this process; one result per task."""
    module, function = job["loader"].split(":")
    runner = getattr(importlib.import_module(module), function)(
        job["arg"], job["variant"], job["folder"])
    shape, results = job["input_shape"], []
    for task in job["tasks"]:
        x = images(shape, task["batch"], task.get("seed", 0)) if "batch" in task else None
        if task["kind"] == "outputs":
            path = os.path.join(job["folder"], f"{job['name']}-{job['variant']}.npy")
            np.save(path, np.asarray(runner.run(x)))
            results.append(path)
        elif task["kind"] == "time":
            results.append({str(b): _timed_passes(runner, images(shape, b, 0), task["runs"],
                                                  task["warmup"]) for b in task["batches"]})
        elif task["kind"] == "layers":
            results.append(runner.layer_times(x, task["runs"]))
        elif task["kind"] == "nonzero":
            results.append(runner.linear_inputs_nonzero(x))
        else:
            raise ValueError(f"unknown task {task['kind']!r}")
    return results


def in_fresh_process(spec: RunnerSpec, variant: str, input_shape, folder: str,
                     tasks: list) -> list:
    """Run `tasks` for one runner in a new Python process; their results."""
    job = dict(name=spec.name, loader=spec.loader, arg=spec.arg, variant=variant,
               input_shape=list(input_shape), folder=folder, tasks=tasks)
    with tempfile.TemporaryDirectory(dir=folder) as talk:
        job_path, result_path = os.path.join(talk, "job.json"), os.path.join(talk, "out.json")
        with open(job_path, "w") as f:
            json.dump(job, f)
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        path = os.pathsep.join([root, *spec.paths, os.environ.get("PYTHONPATH", "")])
        done = subprocess.run([sys.executable, "-m", __name__, job_path, result_path],
                              capture_output=True, text=True, check=False,
                              env=dict(os.environ, PYTHONPATH=path))
        if done.returncode != 0:
            raise RuntimeError(f"the {spec.name} runner failed on {variant}:\n"
                               f"{done.stderr[-2000:]}")
        with open(result_path) as f:
            return json.load(f)


# ---- the parent: validation and alternating rounds -----------------------------
def outputs(specs, variant, input_shape, folder, batch=2, seed=1) -> dict:
    """{runner: its logits for `batch` seeded images}, each from a fresh process."""
    task = {"kind": "outputs", "batch": batch, "seed": seed}
    return {spec.name: np.load(in_fresh_process(spec, variant, input_shape, folder, [task])[0])
            for spec in specs}


def time_rounds(specs, variant, input_shape, folder, batches, rounds: int, runs: int,
                label: str = "") -> dict:
    """{(runner, batch): [per-process lists of seconds]}: `rounds` rounds,
    each runner once per round in a fresh process (rotating order), `runs`
    timed passes per batch after two untimed ones."""
    task = {"kind": "time", "batches": list(batches), "runs": runs, "warmup": 2}
    seconds = {(s.name, b): [] for s in specs for b in batches}
    for rnd in progress(range(rounds), label):
        for i in range(len(specs)):
            spec = specs[(rnd + i) % len(specs)]
            result = in_fresh_process(spec, variant, input_shape, folder, [task])[0]
            for b in batches:
                seconds[spec.name, b].append(result[str(b)])
    return seconds


def summary(per_process: list[list[float]]) -> tuple[float, float, float]:
    """(median of all passes, min and max of the per-process medians), seconds."""
    medians = [float(np.median(s)) for s in per_process]
    return float(np.median(np.concatenate(per_process))), min(medians), max(medians)


def main(argv) -> int:
    job_path, result_path = argv
    with open(job_path) as f:
        job = json.load(f)
    results = work(job)
    with open(result_path, "w") as f:
        json.dump(results, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
