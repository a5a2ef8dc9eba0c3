"""The one owner of the output-size formula.

Every sliding-window layer (convolution, max pooling) places a window of
``span = dilation*(kernel-1) + 1`` input rows at offsets ``0, s, 2s, ...`` of
the padded input, which has ``n + 2p`` rows. The number of windows is::

    out = floor((n + 2p - d(k-1) - 1) / s) + 1          (floor mode)
    out = ceil((n + 2p - d(k-1) - 1) / s) + 1           (ceil mode)

In ceil mode a partial last window is allowed, but (PyTorch and Caffe agree)
it must start inside the input or the left padding: if
``(out-1)*s >= n + p`` the last window is dropped.

Run backwards (a backward pass, a transposed convolution) the formula maps
an output length back to an input length. The floor threw away the rows the
last step could not fill, so one output length comes from ``s`` input
lengths::

    n = (out - 1)*s - 2p + d(k-1) + 1 + a           0 <= a < s

where ``a`` is the number of rows the stride dropped (``unused_rows`` of the
forward arithmetic). :func:`transposed_size` and :func:`input_sizes` own it.

Nothing else in numalex computes an output size: layers, kernels, the
summary and the explanations all call :func:`conv_output_size` or
:func:`size_arithmetic`.
"""
from __future__ import annotations

import functools
import operator
from dataclasses import dataclass


class ShapeError(ValueError):
    """A layer cannot take the shape it was given.

    The message names the layer, the input size and the arithmetic that
    failed, e.g. ``features.2 (MaxPool2d): input 2 too small: (2 - 3)/2 + 1``.
    """


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    try:
        value = operator.index(value)  # int or NumPy integer; not float
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {value!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _span_term(sign: str, kernel: int, dilation: int) -> str:
    """The window's span as a term of a formula: '- 11', or '- 2*(3-1) - 1' when dilated."""
    if dilation == 1:
        return f"{sign} {kernel}"
    return f"{sign} {dilation}*({kernel}-1) {sign} 1"


@dataclass(frozen=True)
class SizeArithmetic:
    """The output-size formula evaluated for one spatial axis, with its story.

    ``text`` reads like a worked example:
    ``(224 + 2*2 - 11)/4 + 1 = 55.25 -> 55 (floor: 1 row unused)``.
    """

    n: int
    kernel: int
    stride: int
    padding: int
    dilation: int
    ceil_mode: bool
    out: int

    @property
    def span(self) -> int:
        """Rows one window covers: d*(k-1) + 1."""
        return self.dilation * (self.kernel - 1) + 1

    @property
    def exact(self) -> float:
        """The formula before rounding: (n + 2p - span)/s + 1."""
        return (self.n + 2 * self.padding - self.span) / self.stride + 1

    @property
    def unused_rows(self) -> int:
        """Rows of the padded input no window reaches (floor mode drops them)."""
        covered = (self.out - 1) * self.stride + self.span
        return max(0, self.n + 2 * self.padding - covered)

    @property
    def overhang_rows(self) -> int:
        """Rows the last window reaches past the padded input (ceil mode only)."""
        covered = (self.out - 1) * self.stride + self.span
        return max(0, covered - (self.n + 2 * self.padding))

    @property
    def expression(self) -> str:
        """The left-hand side, e.g. ``(224 + 2*2 - 11)/4 + 1``."""
        terms = [str(self.n)]
        if self.padding:
            terms.append(f"+ 2*{self.padding}")
        terms.append(_span_term("-", self.kernel, self.dilation))
        return f"({' '.join(terms)})/{self.stride} + 1"

    @property
    def text(self) -> str:
        exact = self.exact
        # whole numbers in full; else 4 significant digits, at least 2 decimals
        digits = max(4, len(str(int(exact))) + 2)
        shown = str(int(exact)) if exact == int(exact) else f"{exact:.{digits}g}"
        if exact == self.out:
            return f"{self.expression} = {shown}"
        mode = "ceil" if self.ceil_mode else "floor"
        if self.ceil_mode:
            note = (f"last window overhangs {self.overhang_rows} row"
                    f"{'s' if self.overhang_rows != 1 else ''}")
            if self.unused_rows:
                note = f"{self.unused_rows} row{'s' if self.unused_rows != 1 else ''} unused"
        else:
            note = f"{self.unused_rows} row{'s' if self.unused_rows != 1 else ''} unused"
        return f"{self.expression} = {shown} -> {self.out} ({mode}: {note})"


def size_arithmetic(n: int, kernel: int, stride: int = 1, padding: int = 0,
                    dilation: int = 1, ceil_mode: bool = False,
                    layer: str = "") -> SizeArithmetic:
    """Evaluate the output-size formula for one axis and keep the working.

    Raises :class:`ShapeError` when the padded input is shorter than one
    window, and ``ValueError``/``TypeError`` for impossible hyper-parameters.
    """
    n = _check_int("input size", n, 1)
    kernel = _check_int("kernel", kernel, 1)
    stride = _check_int("stride", stride, 1)
    padding = _check_int("padding", padding, 0)
    dilation = _check_int("dilation", dilation, 1)
    span = dilation * (kernel - 1) + 1
    room = n + 2 * padding - span
    where = f"{layer}: " if layer else ""
    # Ceil mode may keep one partial window even longer than the padded input
    # (PyTorch and Caffe do) while it misses fewer than `stride` of its rows.
    if room < 0 and not (ceil_mode and room > -stride):
        pad = f" + 2*{padding}" if padding else ""
        padded = f"padded input ({n}{pad} = {n + 2 * padding})" if padding else f"input ({n})"
        window = f"{span} = {dilation}*({kernel}-1) + 1" if dilation > 1 else f"{span}"
        raise ShapeError(
            f"{where}input size {n} is too small: the {padded} is shorter than one "
            f"window ({window}), so ({n}{pad} - {span})/{stride} + 1 = "
            f"{room / stride + 1:.4g} < 1")
    if ceil_mode:
        out = -(-room // stride) + 1
        if (out - 1) * stride >= n + padding:  # last window must start inside
            out -= 1
    else:
        out = room // stride + 1
    return SizeArithmetic(n, kernel, stride, padding, dilation, bool(ceil_mode), out)


def remembered(function):
    """`function`, answering each argument tuple it has seen from memory.

    For pure functions of shapes and hyper-parameters (conv_output_size,
    the backends' argument checks): a forward pass asks the same few dozen
    questions every time, and working them out again in Python was a
    measurable part of a batch-1 pass. Arguments are told apart by type
    too (True is never taken for 1); errors are raised afresh each time,
    and an unhashable argument (a list by mistake) goes straight to
    `function`, whose own check names it."""
    cached = functools.lru_cache(maxsize=1024, typed=True)(function)

    @functools.wraps(function)
    def answer(*args, **kwargs):
        try:
            hash((args, tuple(kwargs.items())))
        except TypeError:
            return function(*args, **kwargs)
        return cached(*args, **kwargs)
    return answer


@remembered
def conv_output_size(n: int, kernel: int, stride: int = 1, padding: int = 0,
                     dilation: int = 1, ceil_mode: bool = False) -> int:
    """Output length of a convolution or pooling window along one axis.

    >>> conv_output_size(224, 11, stride=4, padding=2)   # torchvision conv1
    55
    >>> conv_output_size(54, 3, stride=2, ceil_mode=True)  # Caffe's pool1 at 224
    27
    """
    return size_arithmetic(n, kernel, stride, padding, dilation, ceil_mode).out


@dataclass(frozen=True)
class TransposedArithmetic:
    """The formula run backwards for one axis: the input length ``n`` whose
    forward pass gives ``out`` and leaves ``dropped`` rows unused.

    ``text`` reads like a worked example:
    ``(55 - 1)*4 - 2*2 + 11 + 1 = 224 (1 row dropped by the stride)``.
    """

    out: int
    kernel: int
    stride: int
    padding: int
    dilation: int
    dropped: int

    @property
    def n(self) -> int:
        """n = (out - 1)*s - 2p + d(k-1) + 1 + a."""
        return ((self.out - 1) * self.stride - 2 * self.padding
                + self.dilation * (self.kernel - 1) + 1 + self.dropped)

    @property
    def expression(self) -> str:
        """The right-hand side, e.g. ``(55 - 1)*4 - 2*2 + 11 + 1``."""
        terms = [f"({self.out} - 1)*{self.stride}"]
        if self.padding:
            terms.append(f"- 2*{self.padding}")
        terms.append(_span_term("+", self.kernel, self.dilation))
        if self.dropped:
            terms.append(f"+ {self.dropped}")
        return " ".join(terms)

    @property
    def text(self) -> str:
        plural = "s" if self.dropped != 1 else ""
        note = f" ({self.dropped} row{plural} dropped by the stride)" if self.dropped else ""
        return f"{self.expression} = {self.n}{note}"


def transposed_arithmetic(out: int, kernel: int, stride: int = 1, padding: int = 0,
                          dilation: int = 1, dropped: int = 0) -> TransposedArithmetic:
    """The transposed formula for one axis, with its working.

    ``dropped`` (``a``, 0 <= a < stride) is the number of rows at the end of
    the padded input that the forward pass never reached. ShapeError when no
    input of at least one row gives `out`.
    """
    out = _check_int("output size", out, 1)
    kernel = _check_int("kernel", kernel, 1)
    stride = _check_int("stride", stride, 1)
    padding = _check_int("padding", padding, 0)
    dilation = _check_int("dilation", dilation, 1)
    dropped = _check_int("dropped rows", dropped, 0)
    if dropped >= stride:
        raise ValueError(f"dropped rows must be less than the stride ({stride}), got "
                         f"{dropped}: a stride-{stride} window would have reached them")
    a = TransposedArithmetic(out, kernel, stride, padding, dilation, dropped)
    if a.n < 1:
        raise ShapeError(f"no input gives output size {out}: {a.text} < 1")
    return a


def transposed_size(out: int, kernel: int, stride: int = 1, padding: int = 0,
                    dilation: int = 1, dropped: int = 0) -> int:
    """Input length n that a window layer maps to `out`, leaving `dropped` rows unused.

    >>> transposed_size(55, 11, stride=4, padding=2, dropped=1)   # torchvision conv1
    224
    >>> transposed_size(55, 11, stride=4)                         # Caffe's conv1
    227
    """
    return transposed_arithmetic(out, kernel, stride, padding, dilation, dropped).n


def input_sizes(out: int, kernel: int, stride: int = 1, padding: int = 0,
                dilation: int = 1) -> list[TransposedArithmetic]:
    """Every input length a floor-mode window layer maps onto `out`, one per
    dropped-row count a = 0 ... s-1 (lengths below one row left out): the sizes
    a gradient of that output cannot tell apart."""
    sizes = []
    for dropped in range(_check_int("stride", stride, 1)):
        try:
            sizes.append(transposed_arithmetic(out, kernel, stride, padding, dilation, dropped))
        except ShapeError:
            continue                     # shorter than one row: no such input
    return sizes


def check_pool_padding(kernel: int, padding: int, layer: str = "") -> None:
    """Pooling padding must be at most half the kernel (PyTorch's rule).

    A larger padding would let a window lie wholly in the padding.
    """
    if padding > kernel // 2:
        where = f"{layer}: " if layer else ""
        raise ValueError(
            f"{where}pool padding {padding} is more than half the kernel "
            f"({kernel}//2 = {kernel // 2}): a window could see only padding")


def ceil_div(a: int, b: int) -> int:
    """ceil(a/b) for non-negative integers, without floating point."""
    return -(-a // b)


def adaptive_bins(n: int, out: int) -> list[tuple[int, int]]:
    """The [start, end) input rows that each adaptive-pool output row averages.

    PyTorch's rule: start = floor(i*n/out), end = ceil((i+1)*n/out). Bins may
    overlap when n is not a multiple of out; every input row is used.
    """
    n = _check_int("input size", n, 1)
    out = _check_int("output size", out, 1)
    return [(i * n // out, ceil_div((i + 1) * n, out)) for i in range(out)]


__all__ = ["ShapeError", "SizeArithmetic", "size_arithmetic", "conv_output_size",
           "TransposedArithmetic", "transposed_arithmetic", "transposed_size", "input_sizes",
           "check_pool_padding", "adaptive_bins", "ceil_div"]
