"""The layer table: the blog post's columns (TABLE_SOURCE), plus the formula,
MACs and receptive field.

    print(numalex.summary(model))        # a torchsummary-style table
    numalex.summary(model).rows          # one SummaryRow per shown layer
    numalex.summary(model).to_dict()     # for machines (json.dumps-able)

Rows are named as torchsummary names them (``Conv2d-1``, ``ReLU-2``, ...).
Flatten has no row: torchvision flattens with ``torch.flatten`` in its
forward, not with a module, so torchsummary never sees it.
"""
from __future__ import annotations

import math
import textwrap
from dataclasses import asdict, dataclass

from .alexnet import TABLE_SOURCE
from .layers import AdaptiveAvgPool2d, Flatten
from .shapes import adaptive_bins

BYTES_PER_FLOAT = 4
MB = 10 ** 6  # torchinfo's unit: megabytes of 10^6 bytes, not MiB
TEXT_WIDTH = 120  # columns the printed table fits in

# A fact about the blog post (TABLE_SOURCE), not a number numalex uses: its second table
# prints this total, though its own rows sum to what `original` computes.
SEED_PRINTED_ORIGINAL_TOTAL = 62_368_344


@dataclass(frozen=True)
class SummaryRow:
    """One shown layer. Shapes are per sample, written as the blog post writes them."""

    layer: str            # "Conv2d-1"
    name: str             # the state-dict prefix, "features.0" or "conv1"
    type: str
    input_shape: tuple
    output_shape: tuple
    hyper: str            # "k=11, s=4, p=2"
    params: int
    params_formula: str   # "3*11*11*64+64"
    size_formula: str     # "(224 + 2*2 - 11)/4 + 1 = 55.25 -> 55 (floor: 1 row unused)"
    macs: int
    receptive_field: int | None   # input pixels one output pixel sees (None after flatten)
    jump: int | None               # input pixels between neighbouring outputs

    @property
    def output_text(self) -> str:
        return "[" + ", ".join(str(d) for d in (-1,) + tuple(self.output_shape)) + "]"


def _params_formula(spec) -> str:
    shapes = spec.param_shapes()
    if not shapes:
        return ""
    w = shapes["weight"]
    if len(w) == 4:  # conv: in/groups * k * k * out + out, as the blog post writes it
        return f"{w[1]}*{w[2]}*{w[3]}*{w[0]}+{w[0]}"
    return f"{w[1]}*{w[0]}+{w[0]}"


def _size_formula(spec, in_shape, name) -> str:
    axes = spec.arithmetic(in_shape, name)
    if not axes:
        return ""
    if axes[0] == axes[1]:
        return axes[0].text
    return f"H: {axes[0].text}; W: {axes[1].text}"


def _window(spec, in_shape) -> tuple[int, int]:
    """(effective kernel, stride) for the receptive-field recurrence."""
    if isinstance(spec, AdaptiveAvgPool2d):
        n, out = in_shape[1], spec.out
        widest = max(end - start for start, end in adaptive_bins(n, out))
        return (widest, n // out)  # widest bin, shortest step
    return spec.window()


class Summary:
    """A computed layer table for one model and input size."""

    def __init__(self, model, input_size: int | None = None):
        self.model = model
        size = model.input_size if input_size is None else input_size
        self.input_shape = (model.input_shape[0], size, size)
        self.rows: list[SummaryRow] = []
        rf, jump, index = 1, 1, 0
        for (name, spec), (in_shape, out_shape) in zip(model.layers,
                                                       model.expected_shapes(self.input_shape)):
            if isinstance(spec, Flatten):
                rf = jump = None
                continue
            if rf is not None:
                kernel, stride = _window(spec, in_shape)
                rf, jump = rf + (kernel - 1) * jump, jump * stride
            index += 1
            params = sum(math.prod(s) for s in spec.param_shapes().values())
            self.rows.append(SummaryRow(
                f"{type(spec).__name__}-{index}", name, type(spec).__name__, in_shape,
                out_shape, spec.hyper(), params, _params_formula(spec),
                _size_formula(spec, in_shape, name), spec.macs(in_shape), rf, jump))

    # ---- totals -------------------------------------------------------------
    @property
    def total_params(self) -> int:
        return sum(row.params for row in self.rows)

    @property
    def total_macs(self) -> int:
        return sum(row.macs for row in self.rows)

    @property
    def sizes_mb(self) -> dict[str, float]:
        """Input, activation (every row's output, batch 1), parameter and total MB."""
        inp = math.prod(self.input_shape) * BYTES_PER_FLOAT / MB
        act = sum(math.prod(r.output_shape) for r in self.rows) * BYTES_PER_FLOAT / MB
        par = self.total_params * BYTES_PER_FLOAT / MB
        return {"input": inp, "activations": act, "params": par, "total": inp + act + par}

    def forward_bytes(self, batch: int) -> int:
        """Bytes a forward pass of `batch` images holds at the most: the input and
        every layer's output for each image, plus the parameters, float32."""
        mb = self.sizes_mb
        return round((batch * (mb["input"] + mb["activations"]) + mb["params"]) * MB)

    @property
    def notes(self) -> list[str]:
        notes = ["MACs: multiply-adds of conv and linear layers per image, bias excluded "
                 "(1 MAC = 2 FLOPs). MB = 10^6 bytes, float32."]
        if any(isinstance(spec, Flatten) for _, spec in self.model.layers):
            notes.append("Flatten has no row: torchvision flattens in forward(), not with a "
                         "module, so torchsummary (and the tables of the 224-or-227 blog post) "
                         "never list it.")
        if self.model.variant == "original" and self.model.num_classes == 1000:
            notes.append(f"The one-tower table of {TABLE_SOURCE} prints 'Total params: "
                         f"{SEED_PRINTED_ORIGINAL_TOTAL:,}', but its own rows sum to "
                         f"{self.total_params:,}, as computed here: a typo in the post.")
        return notes

    def to_dict(self) -> dict:
        return {"variant": self.model.variant, "input_shape": list(self.input_shape),
                "rows": [asdict(r) for r in self.rows],
                "total_params": self.total_params, "total_macs": self.total_macs,
                "sizes_mb": self.sizes_mb, "notes": self.notes}

    # ---- text -----------------------------------------------------------------
    def __str__(self) -> str:
        """The table in at most TEXT_WIDTH columns: each window layer's size
        arithmetic goes on a line of its own, under its row."""
        header = ("Layer (type)", "Module", "Output Shape", "Param #", "Kernel", "MACs",
                  "RF/jump")
        table = [header]
        for r in self.rows:
            params = f"{r.params_formula}={r.params:,}" if r.params else "0"
            table.append((r.layer, r.name, r.output_text, params, r.hyper,
                          f"{r.macs:,}" if r.macs else "", "" if r.receptive_field is None
                          else f"{r.receptive_field}/{r.jump}"))
        widths = [max(len(row[i]) for row in table) for i in range(len(header))]
        under = " " * (widths[0] + 2) + "output size: "
        lines = []
        for cells, row in zip(table, [None, *self.rows]):
            lines.append("  ".join(cell.ljust(width)
                                   for cell, width in zip(cells, widths)).rstrip())
            formula = "floor((n + 2p - k)/s) + 1" if row is None else row.size_formula
            if formula:
                lines.append(under + formula)
        rule = "=" * min(TEXT_WIDTH, max(len(line) for line in lines))
        sizes = self.sizes_mb
        c, h, w = self.input_shape
        footer = [
            f"Total params: {self.total_params:,}",
            f"Total mult-adds (MACs): {self.total_macs:,} ({self.total_macs / 1e6:,.2f} M)",
            f"Input size (MB): {sizes['input']:.2f}   [1, {c}, {h}, {w}] float32",
            f"Forward activations size (MB): {sizes['activations']:.2f}",
            f"Params size (MB): {sizes['params']:.2f}",
            f"Estimated total size (MB): {sizes['total']:.2f}",
        ]
        notes = [textwrap.fill(f"Note: {n}", TEXT_WIDTH, subsequent_indent="      ")
                 for n in self.notes]
        title = f"numalex.alexnet({self.model.variant!r}), input {h}x{w}"
        return "\n".join([title, rule, *lines[:2], rule.replace("=", "-"), *lines[2:], rule,
                          *footer, rule, *notes])


def summary(model, input_size: int | None = None) -> Summary:
    """The layer table of `model` (at its own input size unless given)."""
    return Summary(model, input_size)
