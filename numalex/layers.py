"""Layer specs: hyper-parameters and shape arithmetic, no arrays inside.

A spec knows its output shape for an input shape (per sample, no batch
dimension: ``(C, H, W)`` or ``(features,)``), the shapes of its parameters,
its multiply-adds, and how to run itself on a backend. Every output size
comes from :mod:`numalex.shapes`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .shapes import ShapeError, SizeArithmetic, check_pool_padding, size_arithmetic


def _where(name: str, spec) -> str:
    return f"{name} ({type(spec).__name__})" if name else type(spec).__name__


def _need_chw(in_shape: tuple, name: str, spec, channels: int | None = None) -> None:
    if len(in_shape) != 3:
        raise ShapeError(f"{_where(name, spec)}: expects (C, H, W) per sample, got {in_shape}")
    if channels is not None and in_shape[0] != channels:
        raise ShapeError(f"{_where(name, spec)}: expects {channels} input channels, "
                         f"got {in_shape[0]} (input shape {in_shape})")


class Layer:
    """Shared defaults: no parameters, shape unchanged, no multiply-adds."""

    # Conv2d and Linear can absorb a following ReLU on backends that fuse
    # (the backend module sets FUSES_RELU and takes relu=True); see Model._plan.
    fuses_relu = False

    def out_shape(self, in_shape: tuple, name: str = "") -> tuple:
        return tuple(in_shape)

    def arithmetic(self, in_shape: tuple, name: str = "") -> list[SizeArithmetic]:
        """The formula's working for H and W ([] for layers without windows)."""
        return []

    def param_shapes(self) -> dict[str, tuple]:
        return {}

    def macs(self, in_shape: tuple) -> int:
        return 0

    def hyper(self) -> str:
        """Short hyper-parameter text for tables, e.g. ``k=11, s=4, p=2``."""
        return ""

    def window(self) -> tuple[int, int]:
        """(effective kernel, stride) for receptive-field bookkeeping."""
        return (1, 1)


@dataclass(frozen=True)
class Conv2d(Layer):
    """2-D cross-correlation. weight: (out, in/groups, k, k), bias: (out,)."""

    in_channels: int
    out_channels: int
    kernel: int
    stride: int = 1
    padding: int = 0
    groups: int = 1
    dilation: int = 1

    def __post_init__(self):
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(f"Conv2d: channels {self.in_channels}->{self.out_channels} "
                             f"are not divisible by groups={self.groups}")

    def arithmetic(self, in_shape, name=""):
        _need_chw(in_shape, name, self, self.in_channels)
        return [size_arithmetic(n, self.kernel, self.stride, self.padding, self.dilation,
                                layer=_where(name, self)) for n in in_shape[1:]]

    def out_shape(self, in_shape, name=""):
        h, w = (a.out for a in self.arithmetic(in_shape, name))
        return (self.out_channels, h, w)

    def param_shapes(self):
        return {"weight": (self.out_channels, self.in_channels // self.groups,
                           self.kernel, self.kernel),
                "bias": (self.out_channels,)}

    def macs(self, in_shape):
        _, h, w = self.out_shape(in_shape)
        return self.out_channels * h * w * (self.in_channels // self.groups) * self.kernel ** 2

    def hyper(self):
        text = f"k={self.kernel}, s={self.stride}, p={self.padding}"
        if self.dilation != 1:
            text += f", d={self.dilation}"
        if self.groups != 1:
            text += f", g={self.groups}"
        return text

    def window(self):
        return (self.dilation * (self.kernel - 1) + 1, self.stride)

    fuses_relu = True

    def forward(self, be, x, params, **fused):
        """fused: what Model._plan folded into this call on a backend that
        fuses: relu=True (FUSES_RELU), pool=MaxPool2d.fused_args() (FUSES_POOL)."""
        return be.conv2d(x, params["weight"], params["bias"], stride=self.stride,
                         padding=self.padding, groups=self.groups, dilation=self.dilation,
                         **fused)


@dataclass(frozen=True)
class MaxPool2d(Layer):
    """Max over k x k windows; ceil_mode keeps a partial last window (Caffe)."""

    kernel: int
    stride: int
    padding: int = 0
    ceil_mode: bool = False

    def __post_init__(self):
        check_pool_padding(self.kernel, self.padding, "MaxPool2d")

    def arithmetic(self, in_shape, name=""):
        _need_chw(in_shape, name, self)
        return [size_arithmetic(n, self.kernel, self.stride, self.padding,
                                ceil_mode=self.ceil_mode, layer=_where(name, self))
                for n in in_shape[1:]]

    def out_shape(self, in_shape, name=""):
        h, w = (a.out for a in self.arithmetic(in_shape, name))
        return (in_shape[0], h, w)

    def hyper(self):
        text = f"k={self.kernel}, s={self.stride}"
        if self.padding:
            text += f", p={self.padding}"
        return text + (", ceil" if self.ceil_mode else "")

    def window(self):
        return (self.kernel, self.stride)

    def forward(self, be, x, params):
        return be.max_pool2d(x, *self.fused_args())

    def fused_args(self) -> tuple:
        """(kernel, stride, padding, ceil_mode): max_pool2d's arguments, and
        conv2d's pool= on a backend that fuses pooling (FUSES_POOL)."""
        return (self.kernel, self.stride, self.padding, self.ceil_mode)


@dataclass(frozen=True)
class AdaptiveAvgPool2d(Layer):
    """Average over the bins that split H x W into exactly out x out cells."""

    out: int

    def out_shape(self, in_shape, name=""):
        _need_chw(in_shape, name, self)
        return (in_shape[0], self.out, self.out)

    def hyper(self):
        return f"out={self.out}"

    def forward(self, be, x, params):
        return be.adaptive_avg_pool2d(x, (self.out, self.out))


@dataclass(frozen=True)
class LRN(Layer):
    """Local response normalisation across channels (Caffe ACROSS_CHANNELS).

    y = x / (k + alpha/size * sum of x^2 over `size` neighbouring channels)^beta
    """

    size: int = 5
    alpha: float = 1e-4
    beta: float = 0.75
    k: float = 1.0

    def out_shape(self, in_shape, name=""):
        _need_chw(in_shape, name, self)
        return tuple(in_shape)

    def hyper(self):
        return f"n={self.size}, a={self.alpha:g}, b={self.beta:g}, k={self.k:g}"

    def forward(self, be, x, params):
        return be.lrn(x, self.size, self.alpha, self.beta, self.k)


@dataclass(frozen=True)
class ReLU(Layer):
    """max(x, 0), elementwise."""

    def forward(self, be, x, params):
        return be.relu(x)


@dataclass(frozen=True)
class Dropout(Layer):
    """Identity at inference (it only matters in training)."""

    p: float = 0.5

    def hyper(self):
        return f"p={self.p:g}"

    def forward(self, be, x, params):
        return x


@dataclass(frozen=True)
class Flatten(Layer):
    """(C, H, W) -> (C*H*W,), row-major: the order torch.flatten and Caffe use."""

    def out_shape(self, in_shape, name=""):
        return (math.prod(in_shape),)

    def forward(self, be, x, params):
        return x.reshape(x.shape[0], -1)


@dataclass(frozen=True)
class Linear(Layer):
    """y = x W^T + b. weight: (out, in), bias: (out,)."""

    in_features: int
    out_features: int

    def out_shape(self, in_shape, name=""):
        if tuple(in_shape) != (self.in_features,):
            raise ShapeError(f"{_where(name, self)}: expects {self.in_features} features, "
                             f"got shape {tuple(in_shape)}")
        return (self.out_features,)

    def param_shapes(self):
        return {"weight": (self.out_features, self.in_features), "bias": (self.out_features,)}

    def macs(self, in_shape):
        return self.in_features * self.out_features

    fuses_relu = True

    def forward(self, be, x, params, **fused):
        """fused: relu=True on a backend that fuses it (FUSES_RELU)."""
        return be.linear(x, params["weight"], params["bias"], **fused)
