"""The convolution ladder on AlexNet's real conv layers: validate, then time.

    python benchmarks/conv_ladder.py                  # AlexNet-224 and -227, batch 1
    python benchmarks/conv_ladder.py --batch 8 --variant 224

For every conv layer of the chosen variants, every version in
numalex.kernels.ladder.VERSIONS is first checked against the NumPy reference
(|y - ref| <= atol + rtol*|ref| elementwise; the first mismatches are
printed and nothing is timed if one fails), then timed: the median of up to
--repeats runs (fewer for a version that already took two seconds). The
table gives ms and GFLOP/s (2 x multiply-adds / time) per layer and version,
and which version wins each layer; "-" marks a version left out (--skip) or
one that does not apply (shifted GEMM needs stride 1; space-to-depth is
only timed for larger strides).
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from numalex import alexnet
from numalex.backends import numpy_ref
from numalex.commands.bench import markdown
from numalex.kernels.ladder import STRIDED_ONLY, VERSIONS, computes
from numalex.layers import Conv2d
from numalex.progress import progress

ATOL, RTOL = 1e-4, 1e-4


def conv_layers(variant, batch, seed=0):
    """(label, x, w, b, spec) for every conv layer of a variant, with its real sizes."""
    model = alexnet(variant, seed=seed)
    state, rng = model.state_dict(), np.random.default_rng(seed)
    for (name, spec), (in_shape, _) in zip(model.layers, model.expected_shapes()):
        if isinstance(spec, Conv2d):
            x = rng.standard_normal((batch,) + in_shape, dtype=np.float32)
            yield (f"{model.input_size} {name}", x, state[f"{name}.weight"],
                   state[f"{name}.bias"], spec)


def mismatches(y, ref, shown=5) -> list[str]:
    bad = np.argwhere(~(np.abs(y - ref) <= ATOL + RTOL * np.abs(ref)))
    return [f"at {tuple(i)}: {y[tuple(i)]} vs {ref[tuple(i)]}" for i in bad[:shown]]


def median_seconds(fn, repeats, budget=2.0) -> float:
    times = []
    while len(times) < repeats and sum(times) < budget:
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", action="append", help="224, 227 or bvlc (repeatable)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip", action="append", default=[],
                        help="a version to leave out, e.g. '1 naive' (repeatable)")
    args = parser.parse_args(argv)
    skip = set(args.skip)
    layers = [layer for v in (args.variant or ["224", "227"])
              for layer in conv_layers(v, args.batch)]
    rows = []
    for label, x, w, b, spec in progress(layers, "conv ladder"):
        hyper = dict(stride=spec.stride, padding=spec.padding, groups=spec.groups,
                     dilation=spec.dilation)
        ref = numpy_ref.conv2d(x, w, b, **hyper)
        macs = spec.macs(x.shape[1:]) * args.batch
        cells, best = [], (np.inf, "")
        for version, conv in VERSIONS.items():
            if (version in skip or not computes(version, w.shape[2:], spec.stride, spec.dilation)
                    or (spec.stride == 1 and version in STRIDED_ONLY)):
                cells.append("-")
                continue
            y = conv(x, w, b, **hyper)                     # also compiles it
            bad = mismatches(y, ref)
            if bad:
                print(f"{version} is wrong on {label}:\n  " + "\n  ".join(bad), file=sys.stderr)
                return 1
            seconds = median_seconds(lambda: conv(x, w, b, **hyper), args.repeats)
            best = min(best, (seconds, version))
            cells.append(f"{seconds * 1e3:.1f} ({2 * macs / seconds / 1e9:.0f})")
        rows.append([label, spec.hyper(), "x".join(map(str, ref.shape))] + cells + [best[1]])
    print(f"## Conv ladder, batch {args.batch}: median ms (GFLOP/s); all versions validated "
          f"against the NumPy reference (atol {ATOL}, rtol {RTOL})\n")
    print(markdown(["layer", "hyper", "output"] + list(VERSIONS) + ["fastest"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
