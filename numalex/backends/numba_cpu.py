"""The Numba CPU backend: the reference's contract, JIT-compiled and parallel.

Each function checks its arguments (a kernel compiled by Numba does no
bounds checks, so a wrong shape must never reach one), asks numalex.shapes
for the output size, allocates the output and calls a kernel from
numalex.kernels:

    conv2d               the rung of the ladder that ladder.choose picks
                         (numalex/kernels/ladder.py): stride 1, Winograd
                         F(4x4, 3x3) on numalex's micro-kernel (version 12;
                         larger kernels in 3x3 blocks) at any batch;
                         strided (conv1), the direct kernel (version 11,
                         conv_direct.py) below batch 8, space-to-depth +
                         version 12 (version 13) from batch 8
    linear               batch 1 in a forward pass: only the rows of W^T
                         whose input (a ReLU's output) is nonzero are
                         read; batch 1-8 otherwise: a Numba kernel that
                         streams the weights once; larger batches: the
                         register-blocked micro-kernel on 6 weight rows x
                         16 samples (kernels/linear.py)
    max_pool2d, adaptive_avg_pool2d, lrn
                         one parallel Numba kernel each
    relu                 one Numba kernel on the calling thread (memory-bound)

conv2d and linear take ``relu=True`` (FUSES_RELU): the ReLU after them is
applied in the pass that adds the bias, instead of as one more pass over
memory. conv2d also takes ``pool=`` (FUSES_POOL): a max pool after the
ReLU is taken straight from the GEMM's output, so the full-size
convolution is never written (Model.forward does both by itself).

AlexNet's forward pass calls no BLAS: its convolutions and fully
connected layers run on numalex's own kernels. The rungs that do call it
(versions 3-10, and 5 and 7 for kernels Winograd cannot take at large
batches) go through numalex.kernels.blas (NumPy's own OpenBLAS, called
directly), never SciPy's: NumPy and SciPy each bring an OpenBLAS with its
own threads, and using both in one forward pass made it several times
slower on two cores.

Kernels are compiled on first use and cached on disk (``cache=True``): in
``__pycache__`` next to the kernel sources, or under NUMBA_CACHE_DIR if set.
Importing this module selects Numba's OpenMP threading layer with a short
spin (``workqueue`` where Numba has no OpenMP) unless NUMBA_THREADING_LAYER
is set (see numalex/kernels/__init__.py for why).
"""
from __future__ import annotations

import numpy as np
from numba import get_num_threads

from ..kernels import ladder, linear as linear_kernels, pointwise, pooling
from ..shapes import adaptive_bins
from . import checks
from .numba_backward import (adaptive_avg_pool2d_backward, conv2d_backward,  # noqa: F401
                             dropout, dropout_backward, linear_backward, lrn_backward,
                             max_pool2d_backward, relu_backward)

name = "numba"
FUSES_RELU = True      # conv2d and linear take relu=True (see Model._plan)
FUSES_POOL = True      # conv2d takes pool=(kernel, stride, padding, ceil_mode)

# Batches in this range stream the weights through a Numba kernel; above 8
# the product has enough reuse for the register-blocked kernel to win (at
# batch 8, fc6: 12.4 ms streamed, 17 blocked). At batch 1 OpenBLAS's
# matrix-vector product streams as fast, but its threads then keep spinning
# on the cores that the next image's first convolution (a Numba kernel)
# needs: a forward pass at batch 1 with it took 33-46 ms, without it 25-33.
STREAMING_BATCHES = range(1, 9)


def to_backend(x: np.ndarray) -> np.ndarray:
    """Host array -> this backend's array (a float32 C-contiguous copy if needed)."""
    return np.ascontiguousarray(x, dtype=np.float32)


def to_numpy(x: np.ndarray) -> np.ndarray:
    """This backend's array -> host NumPy array."""
    return np.asarray(x)


class PreparedWeight(np.ndarray):
    """A weight, read-only, that keeps what conv2d and linear compute from
    it in ``transforms``: a conv weight its Winograd transform, folded
    kernel or the direct kernel's packing, keyed by (version, stride,
    dilation, groups); a fully connected weight its transpose, under
    "transposed" (linear at batch 1). Computed on first use, then reused by
    every forward pass. Read-only so that weight and transforms cannot
    drift apart."""


def prepare_params(params: dict) -> dict:
    """Weights as the kernels read them: float32, C-contiguous, so no call
    copies them again (conv weights reshape to GEMM matrices as views);
    conv weights as PreparedWeight copies, fully connected ones as
    PreparedWeight views (no copy of their 234 MB: nothing but a transpose
    is ever derived from them, and only at batch 1). A model's arrays
    change only through load_state_dict, which drops every prepared set
    (Model._layer_params), so a view's transpose cannot go stale."""
    prepared = {key: to_backend(value) for key, value in params.items()}
    for key, value in prepared.items():
        if value.ndim in (2, 4):
            weight = (value.copy() if value.ndim == 4 else value).view(PreparedWeight)
            weight.transforms = {}
            weight.flags.writeable = False
            prepared[key] = weight
    return prepared


def synchronize() -> None:
    """Wait for queued work (kernels return when done, so nothing to wait for)."""


# ---- arguments ------------------------------------------------------------
_float32 = checks.float32_array         # the same dtype checks on every backend


# ---- the contract ---------------------------------------------------------
def conv2d(x, w, b, stride=1, padding=0, groups=1, dilation=1, relu=False, pool=None):
    """Cross-correlation, as PyTorch and Caffe define convolution.

    x: (N, C, H, W), w: (O, C/groups, kh, kw), b: (O,) -> (N, O, Ho, Wo);
    relu=True returns max(conv, 0); pool=(kernel, stride, padding,
    ceil_mode) returns max_pool2d(that, *pool) (FUSES_POOL). Which rung of
    the ladder runs is numalex.kernels.ladder.choose's answer (Winograd
    F(4x4, 3x3) from 8 images on, space-to-depth for larger strides; the
    direct kernel below 8); versions that can pool do it from their
    pixel-major output, the others in a second call.
    """
    transforms = getattr(w, "transforms", None)           # a PreparedWeight's cache
    x = checks.nchw_or_channels_last(x, "conv2d", "input x")
    w, b = _float32(w, "conv2d", "weight"), _float32(b, "conv2d", "bias")
    out_shape = checks.conv2d_shape(x.shape, w.shape, b.shape, stride, padding, groups,
                                    dilation)
    if pool is not None:
        out_shape = checks.max_pool2d_shape(out_shape, *pool)
    if x.shape[0] == 0:
        return np.empty(out_shape, dtype=np.float32)      # as PyTorch: an empty batch out
    version = ladder.choose(w.shape[2:], stride, dilation, x.shape[0])
    extra = {}
    if version in ladder.TRANSFORMS and transforms is not None:
        key = (version, stride, dilation, groups)
        if key not in transforms:
            transforms[key] = ladder.TRANSFORMS[version](w, stride, dilation, groups)
        extra["u"] = transforms[key]
    if version in ladder.TAKES_POOL:
        extra["pool"] = pool
    y = ladder.VERSIONS[version](x, w, b, stride, padding, groups, dilation, relu, **extra)
    return y if pool is None or "pool" in extra else max_pool2d(y, *pool)


def max_pool2d(x, kernel, stride, padding=0, ceil_mode=False):
    """Max over k x k windows (padding never wins). x: (N, C, H, W) -> (N, C, Ho, Wo).

    A channels-last view (what the Winograd convolutions return) is pooled
    as it lies, by the fused pool's kernel with a zero bias, and stays
    channels-last; anything else is pooled as NCHW."""
    x = checks.nchw_or_channels_last(x, "max_pool2d", "input x")
    shape = checks.max_pool2d_shape(x.shape, kernel, stride, padding, ceil_mode)
    if x.flags.c_contiguous:
        y = np.empty(shape, dtype=np.float32)
        pooling.max_pool2d(x, kernel, stride, padding, y)
        return y
    n, c, h, w = x.shape
    y_channels_last = np.empty((n,) + shape[2:] + (c,), dtype=np.float32)
    pixels = x.transpose(0, 2, 3, 1).reshape(n * h * w, c)     # a view: (N*H*W, C)
    pooling.max_pool_pixels_major(pixels, h, w, (h, w), kernel, stride, padding,
                                  np.zeros(c, np.float32), False, y_channels_last)
    return y_channels_last.transpose(0, 3, 1, 2)


def adaptive_avg_pool2d(x, out_hw):
    """Average over PyTorch's adaptive bins. x: (N, C, H, W) -> (N, C, oh, ow)."""
    x = _float32(x, "adaptive_avg_pool2d", "input x")
    _, _, oh, ow = checks.adaptive_avg_pool2d_shape(x.shape, out_hw)
    if (oh, ow) == x.shape[2:]:           # every bin is one pixel (AlexNet-224's 6x6 -> 6x6)
        return x.copy()
    rows = np.array(adaptive_bins(x.shape[2], oh), dtype=np.int64)    # (oh, 2)
    cols = np.array(adaptive_bins(x.shape[3], ow), dtype=np.int64)    # (ow, 2)
    y = np.empty(x.shape[:2] + (oh, ow), dtype=np.float32)
    pooling.adaptive_avg_pool2d(x, rows, cols, y)
    return y


def lrn(x, size, alpha, beta, k):
    """Local response normalisation across channels. x: (N, C, H, W) -> same shape."""
    x = _float32(x, "lrn", "input x")
    checks.lrn_shape(x.shape, size)
    n, c, h, w = x.shape
    y = np.empty_like(x)
    pointwise.lrn(x.reshape(n, c, h * w), size, float(alpha), float(beta), float(k),
                  y.reshape(n, c, h * w))
    return y


def relu(x):
    """max(x, 0), elementwise, any shape; a channels-last view stays one
    (pointwise.in_memory_order), anything else comes back C-contiguous."""
    if not (isinstance(x, np.ndarray) and x.dtype == np.float32):
        x = _float32(x, "relu", "input x")
    y = np.empty_like(x)                     # x's layout, if dense
    flat = pointwise.in_memory_order(x, y)
    if flat is None:                         # x has gaps: work on a C-contiguous copy
        x = _float32(x, "relu", "input x")
        y = np.empty_like(x)
        flat = (x.reshape(-1), y.reshape(-1))
    pointwise.relu(*flat)
    return y


def linear(x, w, b, relu=False):
    """x: (N, in), w: (out, in), b: (out,) -> (N, out) = x w^T + b;
    relu=True returns max(x w^T + b, 0).

    One sample and a prepared weight (a model's forward pass): only the
    rows of W^T whose input is nonzero are read (linear_skipping_zeros);
    up to 8 samples: the weights streamed once; more: the register-blocked
    micro-kernel (numalex/kernels/linear.py)."""
    transforms = getattr(w, "transforms", None)           # a PreparedWeight's cache
    x, w, b = (_float32(a, "linear", what) for a, what in
               ((x, "input x"), (w, "weight"), (b, "bias")))
    checks.linear_shape(x.shape, w.shape, b.shape)
    y = np.empty((x.shape[0], w.shape[0]), dtype=np.float32)
    if x.shape[0] == 0:
        return y
    if x.shape[0] > STREAMING_BATCHES[-1]:
        linear_kernels.linear_blocked(w, linear_kernels.pack_samples(x), b, relu, y)
        return y
    transposed = (_transposed_if_finite(w, transforms) if x.shape[0] == 1
                  and transforms is not None else None)
    if transposed is not None:
        partial = np.zeros((get_num_threads(), w.shape[0]), dtype=np.float32)
        linear_kernels.linear_skipping_zeros(x[0], np.flatnonzero(x[0]), transposed, partial)
        np.add(partial.sum(axis=0), b, out=y[0])
    else:
        linear_kernels.linear_streaming(x, w, b, y)
    if relu:
        pointwise.relu(y.reshape(-1), y.reshape(-1))
    return y


def _transposed_if_finite(w, transforms):
    """W^T, C-contiguous, kept in a PreparedWeight's transforms; None when W
    holds a NaN or an infinity: 0 * inf is NaN, so then no input may be
    skipped (weights loaded with allow_nonfinite, or set by hand)."""
    if "transposed" not in transforms:
        transforms["transposed"] = np.ascontiguousarray(w.T) if np.isfinite(w).all() else None
    return transforms["transposed"]
