"""The 224-vs-227 story, computed: why AlexNet's conv1 gives 55 at 227 and 54.25 at 224,
and, run backwards, which input sizes a conv1 gradient cannot tell apart.

The 2012 paper's figure shows a 224x224 input, but ``(224 - 11)/4 + 1 = 54.25``
is not a whole number of windows. This module works the story out from the
layer specs, never from typed-in numbers: every piece of arithmetic is a
:func:`numalex.shapes.size_arithmetic` result, every width and padding comes
from :mod:`numalex.alexnet`.

    from numalex.explain import explain
    print(explain([224, 227]))          # what `numalex explain 224 227` prints
"""
from __future__ import annotations

import dataclasses
import math
import textwrap
from dataclasses import dataclass

import numpy as np

from . import backends
from .alexnet import DESCRIPTIONS, NATIVE_INPUT, TABLE_SOURCE, variant_layers
from .layers import Conv2d, Flatten, Linear, MaxPool2d
from .shapes import ShapeError, SizeArithmetic, input_sizes, size_arithmetic
from .summary import SEED_PRINTED_ORIGINAL_TOTAL

PAPER_INPUT = 224                    # the size in the 2012 paper's figure
VARIANT_NAMES = ("torchvision", "original", "bvlc")


# ---- conv1: which rows a size leaves unused ----------------------------------------
@dataclass(frozen=True)
class UnusedRows:
    """Where the rows no window reaches are: real input rows, or padding."""

    input_rows: range      # indices of input rows never read (0-based)
    padding_rows: int      # unused rows that are bottom padding

    @classmethod
    def of(cls, a: SizeArithmetic) -> UnusedRows:
        # padded rows [0, covered) are read; in input coordinates subtract the padding
        covered = (a.out - 1) * a.stride + a.span
        first_unused = covered - a.padding
        rows = range(min(first_unused, a.n), a.n)
        return cls(rows, a.unused_rows - len(rows))

    def describe(self, n: int) -> str:
        """E.g. 'input row 223 (the last one) never read'."""
        if self.input_rows:
            first, last, count = self.input_rows[0], self.input_rows[-1], len(self.input_rows)
            which = f"row {first}" if count == 1 else f"rows {first}-{last}"
            text = f"input {which} ({'the last one' if count == 1 else f'the last {count}'}) " \
                   f"never read"
        else:
            text = f"all {n} input rows read"
        if self.padding_rows:
            plural = "s" if self.padding_rows != 1 else ""
            text += f"; {self.padding_rows} bottom padding row{plural} unused"
        return text


def first_conv(variant: str) -> Conv2d:
    """The conv1 spec of a variant (full width)."""
    return variant_layers(variant)[0][1]


def conv1_arithmetic(size: int, conv: Conv2d) -> SizeArithmetic:
    return size_arithmetic(size, conv.kernel, conv.stride, conv.padding, conv.dilation,
                           layer="conv1")


def conv1_groups() -> list[tuple[Conv2d, list[str]]]:
    """Distinct conv1 specs (ignoring channel counts) with the variants using them."""
    groups: dict[tuple, tuple[Conv2d, list[str]]] = {}
    for name in VARIANT_NAMES:
        conv = first_conv(name)
        key = (conv.kernel, conv.stride, conv.padding, conv.dilation)
        groups.setdefault(key, (conv, []))[1].append(name)
    return list(groups.values())


def exact_paddings(size: int, conv: Conv2d) -> list[int]:
    """Symmetric paddings p < kernel for which `size` tiles conv1 exactly."""
    return [p for p in range(conv.kernel)
            if size_arithmetic(size, conv.kernel, conv.stride, p).unused_rows == 0]


def nearest_exact_size(size: int, conv: Conv2d) -> int:
    """The smallest input >= size that tiles conv1 exactly with its own padding."""
    n = size
    while conv1_arithmetic(n, conv).unused_rows:
        n += 1
    return n


# ---- Caffe's ceil-mode pooling ---------------------------------------------------------
@dataclass(frozen=True)
class ModeStep:
    """One windowed layer of the conv trunk, worked in ceil and in floor mode."""

    name: str
    ceil: SizeArithmetic
    floor: SizeArithmetic


def _trunk_arithmetic(layers, size: int) -> list[tuple[str, SizeArithmetic, tuple]]:
    """(name, H arithmetic, output shape) per windowed layer, up to the flatten."""
    steps, shape = [], (3, size, size)
    for name, spec in layers:
        if isinstance(spec, Flatten):
            break
        axes = spec.arithmetic(shape, name)
        shape = spec.out_shape(shape, name)
        if axes:
            steps.append((name, axes[0], shape))
    return steps


def ceil_vs_floor(size: int = PAPER_INPUT,
                  variant: str = "bvlc") -> tuple[list[ModeStep], tuple, tuple]:
    """Run the variant's conv trunk at `size` as it is (ceil-mode pools) and with
    every pool switched to floor mode. Returns the steps and both final shapes.
    """
    ceil_layers = variant_layers(variant, input_size=size)
    floor_layers = [(name, dataclasses.replace(spec, ceil_mode=False)
                     if isinstance(spec, MaxPool2d) else spec) for name, spec in ceil_layers]
    ceil_steps = _trunk_arithmetic(ceil_layers, size)
    floor_steps = _trunk_arithmetic(floor_layers, size)
    steps = [ModeStep(name, c, f) for (name, c, _), (_, f, _) in zip(ceil_steps, floor_steps)]
    return steps, ceil_steps[-1][2], floor_steps[-1][2]


# ---- parameters -------------------------------------------------------------------------
@dataclass(frozen=True)
class ParamCount:
    variant: str
    conv_channels: tuple
    conv_groups: tuple
    conv_params: int
    fc_params: int

    @property
    def total(self) -> int:
        return self.conv_params + self.fc_params


def _params(spec) -> int:
    return sum(math.prod(shape) for shape in spec.param_shapes().values())


def param_count(variant: str) -> ParamCount:
    """Parameters of a variant split into conv and fully-connected layers."""
    layers = [spec for _, spec in variant_layers(variant)]
    convs = [s for s in layers if isinstance(s, Conv2d)]
    fcs = [s for s in layers if isinstance(s, Linear)]
    return ParamCount(variant, tuple(c.out_channels for c in convs),
                      tuple(c.groups for c in convs),
                      sum(map(_params, convs)), sum(map(_params, fcs)))


# ---- the whole story as text ---------------------------------------------------------
def _section(title: str) -> list[str]:
    return ["", title, "-" * len(title)]


def _prose(text: str) -> list[str]:
    """A sentence wrapped to 96 columns, indented under its section."""
    return textwrap.wrap(text, 96, initial_indent="  ", subsequent_indent="    ")


def conv1_lines(sizes) -> list[str]:
    lines = _section("1. conv1 at each input size: out = floor((n + 2p - k)/s) + 1")
    for size in sizes:
        for conv, names in conv1_groups():
            who = ", ".join(names)
            try:
                a = conv1_arithmetic(size, conv)
            except ShapeError as err:
                lines.append(f"  {size}, p={conv.padding} ({who}): {err}")
                continue
            lines.append(f"  {size}, p={conv.padding} ({who}): {a.text}")
            lines.append(f"      {UnusedRows.of(a).describe(size)}")
    return lines


def paper_lines() -> list[str]:
    lines = _section(f"2. Why the paper's {PAPER_INPUT} cannot work as drawn")
    for conv, names in conv1_groups():
        if conv.padding:
            continue
        a = conv1_arithmetic(PAPER_INPUT, conv)
        native = conv1_arithmetic(NATIVE_INPUT[names[0]], conv)
        lines += _prose(f"Without padding: {a.text}. A window count is a whole number, so "
                        f"conv1 gives {a.out}, not {native.out}: "
                        f"{UnusedRows.of(a).describe(PAPER_INPUT)}.")
        if not exact_paddings(PAPER_INPUT, conv):
            remainders = sorted({(PAPER_INPUT + 2 * p - conv.kernel) % conv.stride
                                 for p in range(conv.stride)})
            lines += _prose(f"No symmetric padding p fixes it: ({PAPER_INPUT} + 2p - "
                            f"{conv.kernel}) mod {conv.stride} is "
                            f"{' or '.join(map(str, remainders))} for every p, never 0.")
        exact = nearest_exact_size(PAPER_INPUT, conv)
        b = conv1_arithmetic(exact, conv)
        lines += _prose(f"The nearest size that tiles exactly is {exact} = {PAPER_INPUT} + "
                        f"{exact - PAPER_INPUT}: {b.text} (as if {exact - PAPER_INPUT} rows "
                        f"of padding were added on one side).")
        break
    return lines


def variant_lines() -> list[str]:
    lines = _section("3. What each implementation did")
    for name in VARIANT_NAMES:
        conv, size = first_conv(name), NATIVE_INPUT[name]
        a = conv1_arithmetic(size, conv)
        how = (f"keeps {size} and pads conv1 by {conv.padding}" if conv.padding
               else f"crops {size} and does not pad conv1")
        lines.append(f"  {name:<12} {how}: {a.text}; {UnusedRows.of(a).describe(size)}")
        lines.append(f"  {'':<12} ({DESCRIPTIONS[name]})")
    return lines


def ceil_lines(size: int = PAPER_INPUT) -> list[str]:
    lines = _section(f"4. Caffe's ceil-mode pooling at {size}, without padding (bvlc)")
    try:
        steps, ceil_shape, floor_shape = ceil_vs_floor(size)
    except ShapeError as err:
        return lines + [f"  {err}"]
    width = max(len(s.name) for s in steps)
    for s in steps:
        if s.ceil == s.floor:
            lines.append(f"  {s.name:<{width}}  {s.ceil.text}")
        else:
            lines.append(f"  {s.name:<{width}}  ceil:  {s.ceil.text}")
            lines.append(f"  {'':<{width}}  floor: {s.floor.text}")
    for mode, shape in (("ceil", ceil_shape), ("floor", floor_shape)):
        c, h, w = shape
        lines.append(f"  {mode:<5} mode ends at {c}x{h}x{w} = {c * h * w:,} features for fc6")
    native = _trunk_arithmetic(variant_layers("bvlc"), NATIVE_INPUT["bvlc"])[-1][2]
    if ceil_shape == native:
        lines += _prose(f"Ceil mode rounds the lost row back up, so {size} reaches the same "
                        f"{native[1]}x{native[2]} as {NATIVE_INPUT['bvlc']}: the pretrained fc6 "
                        f"fits. Floor mode would not.")
    return lines


def param_lines() -> list[str]:
    lines = _section("5. Parameters, and why the conv channel counts differ")
    counts = {name: param_count(name) for name in VARIANT_NAMES}
    for c in counts.values():
        groups = "" if set(c.conv_groups) == {1} else \
            f", groups {'/'.join(map(str, c.conv_groups))}"
        lines.append(f"  {c.variant:<12} conv {'/'.join(map(str, c.conv_channels))}{groups}: "
                     f"conv {c.conv_params:,} + fc {c.fc_params:,} = {c.total:,}")
    tv, orig, bvlc = (counts[n] for n in VARIANT_NAMES)
    prose = [
        f"The fully-connected layers hold {tv.fc_params / tv.total:.0%} of torchvision's "
        f"parameters, so changing conv widths moves the total by only "
        f"{orig.total - tv.total:,} ({(orig.total - tv.total) / tv.total:.1%}): "
        f"all three are about {round(tv.total, -6) // 10**6} million.",
        "torchvision's widths are those of Krizhevsky's 2014 paper 'One weird trick for "
        "parallelizing convolutional neural networks'; Caffe (and the one-tower table of "
        "the 224-or-227 blog post) keeps the 2012 paper's widths, split in two halves "
        "across two GPUs.",
        f"bvlc keeps that split as groups=2: each half of conv2/conv4/conv5 sees only half "
        f"the input channels, saving {orig.total - bvlc.total:,} weights against 'original'.",
    ]
    if orig.total != SEED_PRINTED_ORIGINAL_TOTAL:
        prose.append(f"The one-tower table of {TABLE_SOURCE} prints "
                     f"{SEED_PRINTED_ORIGINAL_TOTAL:,}; its own rows sum to {orig.total:,}.")
    for text in prose:
        lines += _prose(text)
    return lines


# ---- the formula backwards: what a gradient cannot tell apart ----------------------------
# rows_without_gradient backpropagates a size x size image: sizes up to this one
BACKPROP_LIMIT = 1024
def rows_without_gradient(size: int, conv: Conv2d) -> list[int]:
    """Input rows (0-based) that get no gradient through conv1 at `size`.

    Found by backpropagating ones through a one-channel conv1 with all-ones
    weights, using the NumPy reference's conv2d_backward: a row is listed
    when its gradient comes out exactly 0 in every column, i.e. when no
    output read it. Not taken from the formula.
    """
    out = conv1_arithmetic(size, conv).out
    x = np.ones((1, 1, size, size), np.float32)
    w = np.ones((1, 1, conv.kernel, conv.kernel), np.float32)
    dy = np.ones((1, 1, out, out), np.float32)
    dx, _, _ = backends.get("numpy").conv2d_backward(
        dy, x, w, np.zeros(1, np.float32), conv.stride, conv.padding, 1, conv.dilation)
    return [int(row) for row in np.flatnonzero(~dx[0, 0].any(axis=1))]


def backward_lines(sizes) -> list[str]:
    lines = _section("6. The formula backwards: what a gradient cannot tell apart")
    lines += _prose("A backward pass maps conv1's output back to its input with the "
                    "transposed formula n = (out - 1)*s - 2p + d(k-1) + 1 + a, where "
                    "0 <= a < s counts the rows the stride dropped. Several n give the same "
                    "out, so a gradient of that size fits all of them.")
    collapse: dict[int, list[str]] = {}
    for size in sizes:
        for conv, names in conv1_groups():
            who = f"{size}, p={conv.padding} ({', '.join(names)})"
            try:
                out = conv1_arithmetic(size, conv).out
            except ShapeError as err:
                lines.append(f"  {who}: {err}")
                continue
            sources = input_sizes(out, conv.kernel, conv.stride, conv.padding, conv.dilation)
            collapse.setdefault(out, []).append(f"{size} with p={conv.padding}")
            lines.append(f"  {who}: conv1 gives {out}, which comes back from n = "
                         f"{', '.join(str(a.n) for a in sources)} (a = 0 ... {len(sources) - 1})")
            this = next(a for a in sources if a.n == size)
            if size > BACKPROP_LIMIT:                # a size x size image would not fit
                lines.append(f"      {this.text} (not backpropagated above "
                             f"{BACKPROP_LIMIT} rows)")
                continue
            zero = rows_without_gradient(size, conv)
            which = (f"input row{'s' if len(zero) > 1 else ''} "
                     f"{', '.join(map(str, zero))} get{'' if len(zero) > 1 else 's'} "
                     f"no gradient" if zero else "every input row gets a gradient")
            if this.dropped > len(zero):
                which += f" (the dropped row{'s are' if this.dropped > 1 else ' is'} padding)"
            lines.append(f"      {this.text}: {which}")
    for out, whos in collapse.items():
        if len(whos) > 1:
            lines += _prose(f"A {out}-wide conv1 output arrives alike from "
                            f"{' and from '.join(whos)}: its gradient alone cannot say "
                            f"which input it came from.")
    return lines


def explain(sizes=(PAPER_INPUT, NATIVE_INPUT["original"])) -> str:
    """The whole story for the given conv1 input sizes, as printable text."""
    sizes = list(sizes) or [PAPER_INPUT, NATIVE_INPUT["original"]]
    lines = ["AlexNet's input: 224 or 227? Every number below is computed from the layer "
             "specs."]
    lines += conv1_lines(sizes) + paper_lines() + variant_lines() + ceil_lines() + param_lines()
    lines += backward_lines(sizes)
    return "\n".join(lines)
