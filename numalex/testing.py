"""Property-test the output size of your own layer: hypothesis strategies and a check.

A convolution or pooling layer should produce ``floor((n + 2p - d(k-1) - 1)/s) + 1``
rows (``ceil`` in ceil mode). These strategies draw whole layer calls (input
shape and hyper-parameters) and :func:`assert_shape_formula` runs your layer
on one and compares its output shape with the formula::

    from hypothesis import given
    from numalex.testing import pool_cases, assert_shape_formula

    @given(pool_cases(ceil_mode=False))
    def test_my_pool_shape(case):
        assert_shape_formula(
            lambda x, kernel, stride, padding, ceil_mode: my_pool(x, kernel, stride, padding),
            case)

The strategies *construct* valid cases (the input size is drawn from the
sizes the window fits), so no example is thrown away and every one runs
your layer. The ``invalid_*`` strategies build the neighbours a layer must
refuse: an input shorter than one window, pool padding over half the
kernel, stride 0.

Needs hypothesis (``pip install numalex[test]``); ``import numalex`` does not.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .shapes import check_pool_padding, size_arithmetic

try:
    from hypothesis import strategies as st
except ImportError as err:  # hypothesis is a test extra, not a runtime dependency
    raise ImportError("numalex.testing needs hypothesis: pip install numalex[test]") from err


def _random(shape, rng, scale=1.0) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(np.float32)


@dataclass(frozen=True)
class ConvCase:
    """One conv2d call: x (batch, in_channels, height, width) and
    w (out_channels, in_channels/groups, kh, kw), b (out_channels,).
    kernel: kh = kw, or (kh, kw); the strategies draw rectangular kernels."""

    batch: int
    in_channels: int
    out_channels: int
    height: int
    width: int
    kernel: int | tuple
    stride: int = 1
    padding: int = 0
    dilation: int = 1
    groups: int = 1

    @property
    def kernel_hw(self) -> tuple:
        """(kh, kw)."""
        return tuple(self.kernel) if isinstance(self.kernel, tuple) else (self.kernel,) * 2

    @property
    def spans(self) -> tuple:
        """Input (rows, columns) one dilated window covers: d*(k-1) + 1 per axis."""
        return tuple(self.dilation * (k - 1) + 1 for k in self.kernel_hw)

    @property
    def input_shape(self) -> tuple:
        return (self.batch, self.in_channels, self.height, self.width)

    @property
    def weight_shape(self) -> tuple:
        return (self.out_channels, self.in_channels // self.groups) + self.kernel_hw

    @property
    def kwargs(self) -> dict:
        """Hyper-parameters as numalex's conv2d takes them."""
        return {"stride": self.stride, "padding": self.padding, "groups": self.groups,
                "dilation": self.dilation}

    def arrays(self, seed: int = 0) -> tuple:
        """Seeded random (x, w, b), float32; w scaled by 1/sqrt(fan_in)."""
        rng = np.random.default_rng(seed)
        fan_in = math.prod(self.weight_shape[1:])
        return (_random(self.input_shape, rng), _random(self.weight_shape, rng, fan_in ** -0.5),
                _random((self.out_channels,), rng))

    def arithmetic(self) -> list:
        """The formula's working for H and W; ShapeError/ValueError if invalid."""
        return [size_arithmetic(n, k, self.stride, self.padding, self.dilation)
                for n, k in zip((self.height, self.width), self.kernel_hw)]

    @property
    def expected_shape(self) -> tuple:
        ho, wo = (a.out for a in self.arithmetic())
        return (self.batch, self.out_channels, ho, wo)


@dataclass(frozen=True)
class PoolCase:
    """One max_pool2d (or any k x k pooling) call on x (batch, channels, height, width)."""

    batch: int
    channels: int
    height: int
    width: int
    kernel: int
    stride: int
    padding: int = 0
    ceil_mode: bool = False

    @property
    def input_shape(self) -> tuple:
        return (self.batch, self.channels, self.height, self.width)

    @property
    def kwargs(self) -> dict:
        """Hyper-parameters as numalex's max_pool2d takes them."""
        return {"kernel": self.kernel, "stride": self.stride, "padding": self.padding,
                "ceil_mode": self.ceil_mode}

    def arrays(self, seed: int = 0) -> tuple:
        """Seeded random (x,), float32, negative values included (so zero
        padding in place of -inf padding changes the maximum)."""
        return (_random(self.input_shape, np.random.default_rng(seed)),)

    def arithmetic(self) -> list:
        """The formula's working for H and W; ShapeError/ValueError if invalid."""
        check_pool_padding(self.kernel, self.padding)
        return [size_arithmetic(n, self.kernel, self.stride, self.padding,
                                ceil_mode=self.ceil_mode) for n in (self.height, self.width)]

    @property
    def expected_shape(self) -> tuple:
        ho, wo = (a.out for a in self.arithmetic())
        return (self.batch, self.channels, ho, wo)


@dataclass(frozen=True)
class AdaptivePoolCase:
    """One adaptive_avg_pool2d call: any input size, exactly out_hw out."""

    batch: int
    channels: int
    height: int
    width: int
    out_hw: tuple

    @property
    def input_shape(self) -> tuple:
        return (self.batch, self.channels, self.height, self.width)

    @property
    def kwargs(self) -> dict:
        return {"out_hw": self.out_hw}

    def arrays(self, seed: int = 0) -> tuple:
        return (_random(self.input_shape, np.random.default_rng(seed)),)

    def arithmetic(self) -> list:
        return []

    @property
    def expected_shape(self) -> tuple:
        return (self.batch, self.channels) + tuple(self.out_hw)


# ---- strategies ---------------------------------------------------------------

def _sizes(draw, smallest, max_size: int) -> tuple[int, int]:
    """(height, width), each from its smallest (at least 1) up to max_size.
    smallest: one bound for both axes, or (for height, for width)."""
    lows = smallest if isinstance(smallest, tuple) else (smallest, smallest)
    return tuple(draw(st.integers(max(1, low), max(1, low, max_size))) for low in lows)


@st.composite
def _channels(draw, max_groups, max_channels, max_batch):
    """(batch, in_channels, out_channels, groups): channels divisible by groups."""
    groups = draw(st.integers(1, max_groups))
    per_group = st.integers(1, max_channels)
    return (draw(st.integers(1, max_batch)), groups * draw(per_group),
            groups * draw(per_group), groups)


@st.composite
def conv_cases(draw, max_size=24, max_kernel=5, max_stride=4, max_padding=3,
               max_dilation=3, max_groups=3, max_channels=3, max_batch=2) -> ConvCase:
    """Valid conv2d calls: the padded input holds at least one (dilated) window.
    Kernels are kh x kw, each side drawn on its own (square ones included).

    max_channels bounds the channels per group; sizes stay small so that a
    naive kernel runs an example in milliseconds.
    """
    kernel = (draw(st.integers(1, max_kernel)), draw(st.integers(1, max_kernel)))
    dilation = draw(st.integers(1, max_dilation)) if max(kernel) > 1 else 1
    stride = draw(st.integers(1, max_stride))
    padding = draw(st.integers(0, max_padding))
    spans = [dilation * (k - 1) + 1 for k in kernel]        # rows, columns one window covers
    height, width = _sizes(draw, tuple(span - 2 * padding for span in spans), max_size)
    batch, cin, cout, groups = draw(_channels(max_groups, max_channels, max_batch))
    return ConvCase(batch, cin, cout, height, width, kernel, stride, padding, dilation, groups)


@st.composite
def invalid_conv_cases(draw, max_kernel=5, max_stride=4, max_dilation=3, max_groups=2,
                       max_channels=2, max_batch=2) -> ConvCase:
    """conv2d calls that must be refused: an input shorter than one window
    (on H, W or both) even with its padding, or stride 0. Kernels are kh x kw."""
    kernel = (draw(st.integers(2, max(2, max_kernel))), draw(st.integers(2, max(2, max_kernel))))
    dilation = draw(st.integers(1, max_dilation))
    span_h, span_w = (dilation * (k - 1) + 1 for k in kernel)
    padding = draw(st.integers(0, (min(span_h, span_w) - 2) // 2))   # leaves n >= 1 too small
    batch, cin, cout, groups = draw(_channels(max_groups, max_channels, max_batch))
    fit_h, fit_w = span_h - 2 * padding, span_w - 2 * padding        # the least that fits
    if draw(st.booleans()):                                  # stride 0, sizes fine
        height, width = _sizes(draw, (fit_h, fit_w), max(fit_h, fit_w) + 4)
        return ConvCase(batch, cin, cout, height, width, kernel, 0, padding, dilation, groups)
    small_h, small_w = st.integers(1, fit_h - 1), st.integers(1, fit_w - 1)
    fits_h, fits_w = st.integers(fit_h, fit_h + 4), st.integers(fit_w, fit_w + 4)
    height, width = draw(st.sampled_from([(small_h, fits_w), (fits_h, small_w),
                                          (small_h, small_w)]))
    return ConvCase(batch, cin, cout, height=draw(height), width=draw(width), kernel=kernel,
                    stride=draw(st.integers(1, max_stride)), padding=padding,
                    dilation=dilation, groups=groups)


@st.composite
def pool_cases(draw, max_size=24, max_kernel=5, max_stride=4, ceil_mode=None,
               max_channels=3, max_batch=2) -> PoolCase:
    """Valid pooling calls: padding <= kernel//2 (PyTorch's rule), and the
    padded input holds a window, or in ceil mode misses fewer than `stride`
    of its rows (PyTorch and Caffe keep that partial window).
    ceil_mode: None draws both modes, or fix it to True/False."""
    kernel = draw(st.integers(1, max_kernel))
    stride = draw(st.integers(1, max_stride))
    padding = draw(st.integers(0, kernel // 2))
    ceil = draw(st.booleans()) if ceil_mode is None else bool(ceil_mode)
    smallest = kernel - 2 * padding - (stride - 1 if ceil else 0)
    height, width = _sizes(draw, smallest, max_size)
    return PoolCase(draw(st.integers(1, max_batch)), draw(st.integers(1, max_channels)),
                    height, width, kernel, stride, padding, ceil)


@st.composite
def invalid_pool_cases(draw, max_kernel=5, max_stride=4, max_channels=2,
                       max_batch=2) -> PoolCase:
    """Pooling calls that must be refused: padding over half the kernel,
    stride 0, or an input too short for one window in floor mode."""
    kernel = draw(st.integers(2, max(2, max_kernel)))
    batch, channels = draw(st.integers(1, max_batch)), draw(st.integers(1, max_channels))
    problem = draw(st.sampled_from(["padding", "stride", "size"]))
    if problem == "padding":
        padding = draw(st.integers(kernel // 2 + 1, kernel))
    elif problem == "size":
        padding = draw(st.integers(0, (kernel - 2) // 2))    # leaves n >= 1 too small
    else:
        padding = draw(st.integers(0, kernel // 2))
    stride = 0 if problem == "stride" else draw(st.integers(1, max_stride))
    height, width = _sizes(draw, kernel - 2 * padding, kernel + 4)
    if problem == "size":
        height = draw(st.integers(1, kernel - 2 * padding - 1))
        if draw(st.booleans()):
            height, width = width, height
    return PoolCase(batch, channels, height, width, kernel, stride, padding, False)


@st.composite
def adaptive_pool_cases(draw, max_size=24, max_out=8, max_channels=3,
                        max_batch=2) -> AdaptivePoolCase:
    """Adaptive average pooling: any input size, any output size (also
    larger than the input, where bins repeat rows)."""
    height, width = _sizes(draw, 1, max_size)
    out = st.integers(1, max_out)
    return AdaptivePoolCase(draw(st.integers(1, max_batch)), draw(st.integers(1, max_channels)),
                            height, width, (draw(out), draw(out)))


# ---- the check ----------------------------------------------------------------

def assert_shape_formula(fn, case, to_backend=None, seed: int = 0):
    """Run ``fn(*case.arrays(seed), **case.kwargs)`` and assert that its output
    shape is ``case.expected_shape``, the formula's. Returns the output.

    to_backend converts each input array first (e.g. a GPU backend's upload).
    On a mismatch the AssertionError shows the formula's working per axis.
    """
    arrays = case.arrays(seed)
    if to_backend is not None:
        arrays = tuple(to_backend(a) for a in arrays)
    out = fn(*arrays, **case.kwargs)
    got, want = tuple(out.shape), case.expected_shape
    if got != want:
        working = "".join(f"\n  {axis}: {a.text}"
                          for axis, a in zip("HW", case.arithmetic()))
        name = getattr(fn, "__name__", repr(fn))
        raise AssertionError(f"{name} returned shape {got}, the formula says {want}"
                             f"{working}\n  case: {case}")
    return out


__all__ = ["ConvCase", "PoolCase", "AdaptivePoolCase", "conv_cases", "invalid_conv_cases",
           "pool_cases", "invalid_pool_cases", "adaptive_pool_cases", "assert_shape_formula"]
