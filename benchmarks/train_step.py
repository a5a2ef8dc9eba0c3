"""One training step of AlexNet-224: numalex (numba, numpy) beside PyTorch.

    python benchmarks/train_step.py                       # batch 32, 5 rounds
    python benchmarks/train_step.py --batch 8 --rounds 3

A step is what a training loop does per batch: forward, backward, SGD
update (lr 0.001, momentum 0.9, weight decay 5e-4), dropout on. numalex
runs ``Model.loss_and_grads(x, labels, backend=..., train=True)`` then
``numalex.SGD.step``; PyTorch runs the same net (the same seeded weights,
as torch.nn layers), ``cross_entropy(...).backward()`` and
``torch.optim.SGD.step``.

Each runner lives in a fresh process of its own, started here, which builds
its model once and then waits for orders on stdin, so only one runner works
at a time and no thread pool is shared. First every runner takes two steps
with dropout off (so that all compute the same function) and the losses
must agree to 1e-4 relative, else nothing is timed. Then one untimed step
each, then the rounds: round r runs every runner once, starting with runner
r mod 3, so a burst of load from other processes hits all of them alike,
with a pause between runs for the last runner's threads to go quiet.
Printed: the median seconds per step, min-max, images/s, the throughput
relative to PyTorch (above 1.00x: faster) and the CPU seconds a step used
(all threads; on a busy machine the wall clock grows with the load, the
CPU time less so), with the CPU and its ISA.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

LR, MOMENTUM, WEIGHT_DECAY = 1e-3, 0.9, 5e-4    # lr 1e-2 diverges from the seeded weights
RUNNERS = ("numba", "numpy", "pytorch")
PAUSE_SECONDS = 0.5          # between runs: spinning OpenMP / OpenBLAS threads go to sleep


def batch_of(model, batch: int):
    """Seeded images (batch, 3, 224, 224) and labels (batch,)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch,) + model.input_shape, dtype=np.float32)
    return x, rng.integers(0, model.num_classes, batch)


def numalex_step(backend: str, batch: int):
    """step(train, seed) -> loss: one numalex training step on `backend`."""
    import numalex

    model = numalex.alexnet("torchvision")
    x, labels = batch_of(model, batch)
    optimizer = numalex.SGD(model, lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)

    def step(train: bool, seed: int) -> float:
        loss, grads = model.loss_and_grads(x, labels, backend=backend, train=train, seed=seed)
        optimizer.step(grads)
        return loss

    return step


def pytorch_step(batch: int):
    """step(train, seed) -> loss: one PyTorch training step, same weights and batch."""
    import torch
    from torch_layers import torch_layers     # benchmarks/torch_layers.py: numalex model -> torch

    import numalex

    model = numalex.alexnet("torchvision")
    x, labels = batch_of(model, batch)
    net = torch_layers(model)
    optimizer = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM,
                                weight_decay=WEIGHT_DECAY)
    images, targets = torch.from_numpy(x), torch.from_numpy(labels)

    def step(train: bool, seed: int) -> float:
        torch.manual_seed(seed)
        net.train(train)
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(net(images), targets)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def worker(name: str, batch: int) -> None:
    """Serve one runner: build it, say "ready", then answer each line of stdin:
    "validate" -> the losses of two steps without dropout, "time SEED" -> the
    wall-clock and CPU seconds (all threads) of one step with dropout,
    "machine" -> a description of this CPU."""
    step = pytorch_step(batch) if name == "pytorch" else numalex_step(name, batch)
    print(json.dumps("ready"), flush=True)
    for line in sys.stdin:
        order, *args = line.split()
        if order == "validate":
            answer = [step(False, 0), step(False, 0)]
        elif order == "time":
            start, cpu = time.perf_counter(), time.process_time()
            step(True, int(args[0]))
            answer = [time.perf_counter() - start, time.process_time() - cpu]
        elif order == "machine":
            from numalex.commands import bench

            answer = bench.machine()
        else:
            break
        print(json.dumps(answer), flush=True)


class Worker:
    """A runner's process, driven a line at a time."""

    def __init__(self, name: str, batch: int):
        self.name = name
        self.process = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--worker", name, "--batch", str(batch)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.read()                                       # "ready"

    def ask(self, order: str):
        self.process.stdin.write(order + "\n")
        self.process.stdin.flush()
        return self.read()

    def read(self):
        line = self.process.stdout.readline()
        if not line:
            sys.exit(f"the {self.name} runner died (its error is above)")
        return json.loads(line)

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait()


def isa() -> str:
    """The vector extensions this CPU reports (AVX2, FMA, AVX-512 ...)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next(line.split(":", 1)[1].split() for line in f if line.startswith("flags"))
    except (OSError, StopIteration):
        return "unknown"
    return " ".join(sorted(f for f in flags if f.startswith(("avx", "fma", "amx")))) or "SSE only"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--worker", choices=RUNNERS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args.batch)
        return 0
    try:
        import torch
    except ImportError as err:
        sys.exit(f"benchmarks/train_step.py compares with PyTorch: "
                 f"pip install 'numalex[oracle]' ({err})")
    workers = [Worker(name, args.batch) for name in RUNNERS]
    losses = {w.name: w.ask("validate") for w in workers}
    print("validation (two steps without dropout), losses:",
          ", ".join(f"{name} {a:.6f} {b:.6f}" for name, (a, b) in losses.items()))
    worst = max(abs(a - b) / abs(b) for name in RUNNERS
                for a, b in zip(losses[name], losses["pytorch"]))
    if worst > 1e-4:
        print(f"the losses disagree (worst relative difference {worst:.2e}); nothing timed")
        return 1
    for w in workers:
        w.ask("time 0")                                   # warm-up: dropout's kernels
    seconds, cpu_seconds = {w.name: [] for w in workers}, {w.name: [] for w in workers}
    for r in range(args.rounds):
        for i in range(len(workers)):
            w = workers[(r + i) % len(workers)]
            time.sleep(PAUSE_SECONDS)
            wall, cpu = w.ask(f"time {r + 1}")
            seconds[w.name].append(wall)
            cpu_seconds[w.name].append(cpu)
        print(f"round {r + 1}/{args.rounds}: "
              + ", ".join(f"{name} {s[-1]:.2f} s" for name, s in seconds.items()), flush=True)
    machine = workers[0].ask("machine")
    for w in workers:
        w.close()
    medians = {name: float(np.median(s)) for name, s in seconds.items()}
    print(f"\nOne training step of AlexNet-224 (torchvision) at batch {args.batch}, "
          f"{args.rounds} rounds\n")
    print("| runner | median s/step | min-max s | images/s | vs PyTorch | median CPU s/step |\n"
          "|---|---|---|---|---|---|")
    for name, s in seconds.items():
        print(f"| {name} | {medians[name]:.2f} | {min(s):.2f}-{max(s):.2f} | "
              f"{args.batch / medians[name]:.1f} | {medians['pytorch'] / medians[name]:.2f}x | "
              f"{np.median(cpu_seconds[name]):.2f} |")
    print(f"\n{machine}\nISA: {isa()}; PyTorch {torch.__version__} "
          f"({torch.get_num_threads()} threads)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
