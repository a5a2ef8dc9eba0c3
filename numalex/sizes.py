"""Which input sizes a variant can take, worked out from the formula.

For every square input size in a range, fold the size through the layer
specs (the same :func:`numalex.shapes.size_arithmetic` the model uses) and
sort the sizes into:

* sizes that run: no layer raises :class:`ShapeError` (for ``bvlc``, whose fc6
  is fixed by the size the model is built for, that means reaching the same
  grid as its native 227);
* sizes where the conv trunk ends on the classifier's grid (6x6) by itself,
  so torchvision's adaptive pool averages 1x1 bins: it does no work;
* sizes that tile exactly: every window layer uses every row, none overhangs.

    from numalex.sizes import size_report
    print(size_report("torchvision", 1, 300))    # `numalex sizes torchvision --max 300`
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .alexnet import NATIVE_INPUT, canonical_variant, variant_layers
from .layers import AdaptiveAvgPool2d, Flatten
from .shapes import ShapeError, SizeArithmetic


@dataclass(frozen=True)
class SizeCheck:
    """One input size folded through a variant's layers."""

    size: int
    steps: tuple           # (layer name, SizeArithmetic of H) per window layer reached
    trunk_out: int | None  # H after the last window layer (None if the trunk fails)
    error: str | None      # the ShapeError message if some layer cannot take its input

    @property
    def runs(self) -> bool:
        return self.error is None

    @property
    def trunk_runs(self) -> bool:
        """The conv trunk (everything before the classifier) takes this size."""
        return self.trunk_out is not None

    @property
    def exact(self) -> bool:
        """Every window layer covers its padded input exactly: no unused row, no overhang."""
        return self.trunk_runs and all(
            a.unused_rows == 0 and a.overhang_rows == 0 for _, a in self.steps)


def check_size(layers: list, size: int) -> SizeCheck:
    """Fold a (3, size, size) input through `layers`, keeping each window layer's working."""
    shape, steps, trunk_out = (3, size, size), [], None
    try:
        for name, spec in layers:
            if isinstance(spec, (AdaptiveAvgPool2d, Flatten)) and trunk_out is None:
                trunk_out = shape[1]          # the conv trunk ends here
            axes: list[SizeArithmetic] = spec.arithmetic(shape, name)
            if axes:
                steps.append((name, axes[0]))
            shape = spec.out_shape(shape, name)
    except ShapeError as err:
        return SizeCheck(size, tuple(steps), trunk_out, str(err))
    return SizeCheck(size, tuple(steps), trunk_out, None)


@dataclass(frozen=True)
class SizeReport:
    """Every size in [min_size, max_size] checked for one variant."""

    variant: str
    native: SizeCheck      # the variant's own input size (224 or 227)
    checks: tuple          # one SizeCheck per size

    @property
    def grid(self) -> int:
        """The trunk's output side at the native input (6): what fc6 was built for."""
        return self.native.trunk_out

    @property
    def runs(self) -> list[int]:
        return [c.size for c in self.checks if c.runs]

    @property
    def smallest(self) -> int | None:
        return min(self.runs, default=None)

    @property
    def trunk_runs(self) -> list[int]:
        return [c.size for c in self.checks if c.trunk_runs]

    @property
    def total_stride(self) -> int:
        """Input rows between neighbouring trunk outputs: the product of the strides."""
        return math.prod(a.stride for _, a in self.native.steps)

    @property
    def on_grid(self) -> list[int]:
        """Sizes whose conv trunk ends on the grid by itself (the adaptive pool idles)."""
        return [c.size for c in self.checks if c.runs and c.trunk_out == self.grid]

    @property
    def exact(self) -> list[int]:
        return [c.size for c in self.checks if c.runs and c.exact]

    def check(self, size: int) -> SizeCheck:
        return next(c for c in self.checks if c.size == size)

    def __str__(self) -> str:
        return "\n".join(report_lines(self))


def size_report(variant, min_size: int = 1, max_size: int = 512) -> SizeReport:
    """Check every square input size from min_size to max_size (inclusive)."""
    if not 1 <= min_size <= max_size:
        raise ValueError(f"need 1 <= --min <= --max, got --min {min_size} --max {max_size}")
    name = canonical_variant(variant)
    layers = variant_layers(name)      # built for the native size, as pretrained weights are
    checks = tuple(check_size(layers, n) for n in range(min_size, max_size + 1))
    return SizeReport(name, check_size(layers, NATIVE_INPUT[name]), checks)


def smallest_input(variant) -> int:
    """The smallest square input whose conv trunk runs (the model built for that size)."""
    name = canonical_variant(variant)
    return min(size_report(name, 1, NATIVE_INPUT[name]).trunk_runs)


def ranges(sizes: list[int]) -> str:
    """[63, 64, 65, 70] -> '63-65, 70'."""
    parts, start = [], None
    for i, n in enumerate(sizes):
        if start is None:
            start = n
        if i + 1 == len(sizes) or sizes[i + 1] != n + 1:
            parts.append(str(n) if n == start else f"{start}-{n}")
            start = None
    return ", ".join(parts) if parts else "none"


def report_lines(report: SizeReport) -> list[str]:
    lo, hi = report.checks[0].size, report.checks[-1].size
    runs = report.runs
    lines = [f"numalex.alexnet({report.variant!r}): square input sizes {lo}..{hi}",
             f"  run ({len(runs)}): {ranges(runs)}"]
    smallest = report.smallest
    if smallest is not None:
        lines.append(f"  smallest: {smallest}")
        if smallest > lo:
            lines.append(f"    at {smallest - 1}: {report.check(smallest - 1).error}")
    if report.trunk_runs != runs:
        lines.append(f"  with fc6 rebuilt for the size (alexnet({report.variant!r}, "
                     f"input_size=N)), the conv trunk runs at: {ranges(report.trunk_runs)}")
    g = report.grid
    lines.append(f"  conv trunk ends at {g}x{g} by itself ({len(report.on_grid)}): "
                 f"{ranges(report.on_grid)}")
    if any(isinstance(spec, AdaptiveAvgPool2d) for _, spec in variant_layers(report.variant)):
        lines.append(f"    (there the adaptive pool averages 1x1 bins: it does no work; "
                     f"elsewhere it stretches or shrinks the trunk's output to {g}x{g})")
    lines.append(f"  tile exactly at every layer, no unused rows ({len(report.exact)}): "
                 f"{ranges(report.exact)}")
    if len(report.exact) > 1:
        strides = " * ".join(str(a.stride) for _, a in report.native.steps if a.stride > 1)
        lines.append(f"    (they are {report.total_stride} apart: the product of the strides, "
                     f"{strides} = {report.total_stride})")
    both = sorted(set(report.exact) & set(report.on_grid))
    lines.append(f"  both exact and {g}x{g} by itself: {ranges(both)}")
    loose = [f"{name} {a.text}" for name, a in report.native.steps
             if a.unused_rows or a.overhang_rows]
    lines.append(f"  at its native {report.native.size}: " + ("; ".join(loose) or "tiles exactly"))
    return lines
