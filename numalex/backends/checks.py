"""Argument checks shared by every backend, so all three refuse the same calls
with the same words.

They look only at shapes, dtypes and hyper-parameters (never at data), so
they work on NumPy arrays and CUDA device arrays alike, and they run before
any kernel: a compiled kernel does no bounds checks, so a wrong shape must
never reach one. Each *_shape function returns the output shape, computed by
numalex.shapes. An empty batch is a valid shape: every op then returns an
empty output of the right shape, as PyTorch does.
"""
from __future__ import annotations

import numbers

import numpy as np

from ..shapes import ShapeError, _check_int, check_pool_padding, conv_output_size, remembered


def float32_array(value, op: str, what: str) -> np.ndarray:
    """A host argument as a float32 C-contiguous array (a copy only if needed).

    Floating-point arrays of any precision are converted; anything else is
    refused with a TypeError: integer arrays too, since uint8 pixels (0..255)
    passed by mistake would run, unnormalised, without a word."""
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{op}: {what} must be a NumPy array, got {type(value).__name__}")
    if value.dtype == np.float32 and value.flags.c_contiguous:     # the common case, kept cheap
        return value if type(value) is np.ndarray else value.view(np.ndarray)
    if not np.issubdtype(value.dtype, np.floating):
        raise TypeError(f"{op}: {what} must be floating point (float32), got {value.dtype}")
    return np.ascontiguousarray(value, dtype=np.float32)


def is_channels_last(x) -> bool:
    """Is x a float32 (N, C, H, W) view of channels-last memory, the layout
    the numba backend's Winograd convolutions return?"""
    return (isinstance(x, np.ndarray) and x.dtype == np.float32 and x.ndim == 4
            and x.transpose(0, 2, 3, 1).flags.c_contiguous)


def nchw_or_channels_last(value, op: str, what: str) -> np.ndarray:
    """An activation as float32_array makes it, except that a channels-last
    view (is_channels_last) is taken as it is: no transpose back to NCHW,
    for kernels that read either layout."""
    return value if is_channels_last(value) else float32_array(value, op, what)


def positive_int(value, what: str) -> int:
    """`value` as an int >= 1 (NumPy integers welcome), or TypeError/ValueError:
    the check numalex.shapes makes of every hyper-parameter."""
    return _check_int(what, value, 1)


def _axes(op: str, what: str, shape: tuple, layout: str) -> tuple:
    """Check that `shape` has as many axes as `layout` names, e.g. '(N, C, H, W)'."""
    shape = tuple(shape)
    if len(shape) != layout.count(",") + 1:
        raise ShapeError(f"{op}: {what} must have shape {layout}, got {shape}")
    return shape


@remembered
def conv2d_shape(x_shape, w_shape, b_shape, stride, padding, groups, dilation) -> tuple:
    """x: (N, C, H, W), w: (O, C/groups, kh, kw), b: (O,) -> (N, O, Ho, Wo)."""
    n, channels, height, width = _axes("conv2d", "input x", x_shape, "(N, C, H, W)")
    out_ch, c_per_group, kh, kw = _axes("conv2d", "weight", w_shape, "(O, C/groups, kh, kw)")
    groups = positive_int(groups, "conv2d: groups")
    if out_ch % groups or c_per_group * groups != channels:
        raise ShapeError(
            f"conv2d: input x has {channels} channels; weight {tuple(w_shape)} with "
            f"groups={groups} needs {c_per_group}*{groups} = {c_per_group * groups} input "
            f"channels and output channels ({out_ch}) divisible by {groups}")
    if tuple(b_shape) != (out_ch,):
        raise ShapeError(f"conv2d: bias must have shape ({out_ch},), got {tuple(b_shape)}")
    return (n, out_ch, conv_output_size(height, kh, stride, padding, dilation),
            conv_output_size(width, kw, stride, padding, dilation))


@remembered
def max_pool2d_shape(x_shape, kernel, stride, padding, ceil_mode) -> tuple:
    """x: (N, C, H, W) -> (N, C, Ho, Wo); pool padding at most kernel//2."""
    n, channels, height, width = _axes("max_pool2d", "input x", x_shape, "(N, C, H, W)")
    out_h = conv_output_size(height, kernel, stride, padding, ceil_mode=ceil_mode)
    out_w = conv_output_size(width, kernel, stride, padding, ceil_mode=ceil_mode)
    check_pool_padding(kernel, padding, "max_pool2d")
    return (n, channels, out_h, out_w)


@remembered
def adaptive_avg_pool2d_shape(x_shape, out_hw) -> tuple:
    """x: (N, C, H, W), out_hw: (oh, ow) -> (N, C, oh, ow)."""
    n, channels, _, _ = _axes("adaptive_avg_pool2d", "input x", x_shape, "(N, C, H, W)")
    if len(tuple(out_hw)) != 2:
        raise ValueError(f"adaptive_avg_pool2d: out_hw must be (height, width), got {out_hw!r}")
    out_h, out_w = (positive_int(v, "adaptive_avg_pool2d: output size") for v in out_hw)
    return (n, channels, out_h, out_w)


@remembered
def lrn_shape(x_shape, size) -> tuple:
    """x: (N, C, H, W) -> the same shape; size >= 1 channels."""
    positive_int(size, "lrn: size")
    return _axes("lrn", "input x", x_shape, "(N, C, H, W)")


@remembered
def linear_shape(x_shape, w_shape, b_shape) -> tuple:
    """x: (N, in), w: (out, in), b: (out,) -> (N, out)."""
    n, features = _axes("linear", "input x", x_shape, "(N, in_features)")
    out_features, in_features = _axes("linear", "weight", w_shape, "(out_features, in_features)")
    if features != in_features:
        raise ShapeError(f"linear: weight {tuple(w_shape)} expects {in_features} input "
                         f"features, input x {tuple(x_shape)} has {features}")
    if tuple(b_shape) != (out_features,):
        raise ShapeError(f"linear: bias must have shape ({out_features},), got {tuple(b_shape)}")
    return (n, out_features)


def gradient_shape(op: str, dy_shape, out_shape) -> None:
    """A backward op's incoming gradient dy must have its forward's output shape."""
    if tuple(dy_shape) != tuple(out_shape):
        raise ShapeError(f"{op}_backward: dy must have the shape of {op}'s output, "
                         f"{tuple(out_shape)}, got {tuple(dy_shape)}")


def dropout_probability(p) -> float:
    """Dropout's p as a float in [0, 1)."""
    if isinstance(p, bool) or not isinstance(p, numbers.Real):
        raise TypeError(f"dropout: p must be a number in [0, 1), got {p!r}")
    if not 0 <= p < 1:
        raise ValueError(f"dropout: p must be in [0, 1), got {p}: p = 1 would drop every "
                         f"value and leave nothing to scale")
    return float(p)
