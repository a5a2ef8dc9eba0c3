"""`numalex run`: the main job. Every variant, every backend, every shape checked.

For each variant it builds the model (seeded random weights), traces one
forward pass per backend, compares each layer's real output shape with the
formula's prediction, compares the logits with the NumPy reference, and
prints a per-layer table of times. Exit status 1 on any mismatch.
"""
from __future__ import annotations

import os

import numpy as np

from .. import backends
from ..alexnet import DESCRIPTIONS, NATIVE_INPUT, alexnet, variant_option
from ..jit_notice import compile_notice
from ..progress import progress
from ..summary import summary

GB = 10 ** 9
# The CUDA simulator runs every GPU thread as a Python thread. Small AlexNets
# (width 1/16 at 67x67, width 1/32 bvlc at 227) took 34-47 us per multiply-add
# on 2 CPU cores; this lower figure keeps the estimate on the short side.
SIMULATOR_SECONDS_PER_MAC = 2e-5
SIMULATOR_LIMIT_S = 60        # longer than this in the simulator needs --force


def register(sub) -> None:
    p = sub.add_parser(
        "run", help="forward passes of every variant on every backend, shapes checked (default)",
        description="Build each AlexNet variant with seeded random weights, run a forward pass "
                    "on every available backend, check every layer's output shape against "
                    "floor((n + 2p - k)/s) + 1, compare the logits with the NumPy reference, "
                    "and print per-layer times. Exits 1 if any shape or value disagrees.",
        epilog="examples: numalex run | numalex run --variant caffe --backend numba --batch 8")
    p.add_argument("--variant", action="append", metavar="V", type=variant_option,
                   help="torchvision, original or bvlc (repeatable; default: all three)")
    p.add_argument("--backend", action="append", metavar="B",
                   help="numpy, numba or cuda (repeatable; default: every available one)")
    p.add_argument("--batch", type=int, default=1, help="images per forward pass (default 1)")
    p.add_argument("--width", type=float, default=1.0,
                   help="scale every conv and fc width (default 1: the real networks)")
    p.add_argument("--seed", type=int, default=0, help="seed for weights and input")
    p.add_argument("--force", action="store_true",
                   help="run --backend cuda in the CUDA simulator even when the estimate "
                        "says it takes more than a minute")
    p.set_defaults(func=run)


def _choose_backends(requested) -> tuple[list[str], list[str]]:
    """(backends to run, notes on the ones skipped)."""
    names = requested or list(backends.MODULES)
    chosen, skipped = [], []
    for name in names:
        try:
            module = backends.get(name)
        except backends.BackendUnavailable:
            if requested:
                raise
            skipped.append(f"{name}: not available here (`numalex run --backend {name}` "
                           f"says what it needs)")
            continue
        if not requested and getattr(module, "is_simulator", lambda: False)():
            skipped.append(f"{name}: only the CUDA simulator is here; a full-size forward "
                           f"would take hours (the test suite runs it on small nets)")
            continue
        chosen.append(name)
    if "numpy" not in chosen:
        chosen.insert(0, "numpy")          # the reference every backend is compared with
    return chosen, skipped


def available_memory() -> int | None:
    """Bytes of memory free for a new allocation: Linux's MemAvailable, else the
    machine's physical memory, else None (unknown)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _check_memory(variant, table, batch) -> None:
    """ValueError before any allocation if a forward of `batch` images cannot fit."""
    need, available = table.forward_bytes(batch), available_memory()
    if available is None or need <= available:
        return
    per_image = table.forward_bytes(2) - table.forward_bytes(1)
    weights = table.forward_bytes(0)
    fits = max(0, (available - weights) // per_image)
    advice = (f"by this estimate at most --batch {fits} fits" if fits else
              "not even one image fits; free some memory or use a smaller --width")
    raise ValueError(f"--batch {batch} needs about {need / GB:.1f} GB for {variant} "
                     f"({per_image / 1e6:.1f} MB per image for its input and activations, "
                     f"plus {weights / 1e6:.0f} MB of weights), but about "
                     f"{available / GB:.1f} GB is available; {advice}")


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} hours" if seconds >= 3600 else f"{seconds / 60:.0f} minutes"


def _check_simulator_time(variant, table, args) -> None:
    """ValueError (a warning with --force) when the CUDA simulator would take too long."""
    passes = 1 + 2 * args.batch       # a warm-up image, a traced batch, a forward batch
    seconds = table.total_macs * passes * SIMULATOR_SECONDS_PER_MAC
    if seconds <= SIMULATOR_LIMIT_S:
        return
    story = (f"backend 'cuda' runs in Numba's CUDA simulator here (no GPU), one Python "
             f"thread per GPU thread: {variant} at --width {args.width:g} is "
             f"{table.total_macs:,} multiply-adds per image, {passes} images in all, "
             f"about {_duration(seconds)}")
    if not args.force:
        raise ValueError(f"{story}. Try a smaller --width, or pass --force to run it "
                         f"anyway")
    print(f"   warning: {story}; running anyway (--force)")


def _run_variant(variant, names, args) -> bool:
    model = alexnet(variant, width=args.width, seed=args.seed)
    size = NATIVE_INPUT[model.variant]
    x = np.random.default_rng(args.seed).standard_normal(
        (args.batch, 3, size, size), dtype=np.float32)
    print(f"\n== {model.variant}: {DESCRIPTIONS[model.variant]}")
    print(f"   {model.num_params():,} params, input ({args.batch}, 3, {size}, {size})")
    traces, logits = {}, {}
    for name in progress(names, f"   {model.variant}"):
        model.trace(x[:1], backend=name)            # warm-up: JIT, weight upload
        traces[name] = model.trace(x, backend=name)  # every layer on its own, timed
        logits[name] = model(x, backend=name)        # the forward pass (fused if it can)
    ok = True
    header = f"   {'layer':<14}{'type':<19}{'output shape':<22}{'formula':<10}"
    print(header + "".join(f"{n + ' ms':>11}" for n in names))
    for i, record in enumerate(traces[names[0]]):
        shapes_ok = all(traces[n][i].ok for n in names)
        ok &= shapes_ok
        verdict = "ok" if shapes_ok else "MISMATCH"
        times = "".join(f"{traces[n][i].seconds * 1e3:>11.2f}" for n in names)
        print(f"   {record.name:<14}{record.type:<19}{str(record.output_shape):<22}"
              f"{verdict:<10}{times}")
        if not shapes_ok:
            for n in names:
                r = traces[n][i]
                print(f"     {n}: got {r.output_shape}, formula says {r.expected_shape}")
    totals = "".join(f"{sum(r.seconds for r in traces[n]) * 1e3:>11.2f}" for n in names)
    print(f"   {'total':<65}{totals}")
    for name in names[1:]:
        err = backends.relative_error(logits[name], logits["numpy"])
        good = err <= backends.TOLERANCE
        ok &= good
        print(f"   logits {name} vs numpy: max relative error {err:.2e} "
              f"({'ok' if good else 'TOO LARGE'}, tolerance {backends.TOLERANCE:g})")
    return ok


def run(args) -> int:
    if args.batch < 1:
        raise ValueError(f"--batch must be at least 1, got {args.batch}")
    variants = args.variant or ["torchvision", "original", "bvlc"]
    names, skipped = _choose_backends(args.backend)
    simulated = "cuda" in names and backends.get("cuda").is_simulator()
    for variant in variants:                   # before any work, from the layer specs
        table = summary(alexnet(variant, width=args.width))
        _check_memory(variant, table, args.batch)
        if simulated:
            _check_simulator_time(variant, table, args)
    print(f"numalex run: {len(variants)} variant(s) on backend(s) {', '.join(names)}")
    for note in skipped:
        print(f"   skipped {note}")
    with compile_notice():                     # says so once if Numba compiles
        results = [_run_variant(v, names, args) for v in variants]
    failed = [v for v, good in zip(variants, results) if not good]
    print()
    if failed:
        print(f"FAILED: {', '.join(failed)} (see MISMATCH / TOO LARGE above)")
        return 1
    print(f"all shapes match the formula and all backends agree "
          f"({len(variants)} variants x {len(names)} backends)")
    return 0
