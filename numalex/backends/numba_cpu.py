"""The Numba CPU backend: the reference's contract, JIT-compiled and parallel.

Each function checks its arguments (a kernel compiled by Numba does no
bounds checks, so a wrong shape must never reach one), asks numalex.shapes
for the output size, allocates the output and calls a kernel from
numalex.kernels:

    conv2d               one rung of the ladder in numalex.kernels.conv:
                         stride 1, batch >= 8: k*k accumulating GEMMs on
                         shifted views of the padded input (version 5);
                         stride 1, smaller batches: im2col + GEMM (version 4);
                         other strides: im2row + GEMM (version 6)
    linear               batch 2-8: a Numba kernel that streams the weights
                         once; batch 1: BLAS's matrix-vector product; larger
                         batches: BLAS's GEMM
    max_pool2d, adaptive_avg_pool2d, lrn
                         one parallel Numba kernel each
    relu                 one Numba kernel on the calling thread (memory-bound)

conv2d and linear take ``relu=True`` (FUSES_RELU): the ReLU after them is
applied in the pass that adds the bias, instead of as one more pass over
memory (Model.forward does this by itself).

Every GEMM goes through numalex.kernels.blas (SciPy's BLAS), never NumPy's
``@``: NumPy and SciPy each bring an OpenBLAS with its own threads, and
using both in one forward pass made it several times slower on two cores.

Kernels are compiled on first use and cached on disk (``cache=True``): in
``__pycache__`` next to the kernel sources, or under NUMBA_CACHE_DIR if set.
Importing this module selects Numba's ``workqueue`` threading layer unless
NUMBA_THREADING_LAYER is set (see numalex/kernels/__init__.py for why).
"""
from __future__ import annotations

import operator

import numpy as np

from ..kernels import blas, conv, linear as linear_kernels, pointwise, pooling
from ..shapes import ShapeError, adaptive_bins, check_pool_padding, conv_output_size

name = "numba"
FUSES_RELU = True      # conv2d and linear take relu=True (see Model._plan)

# Stride-1 convolutions of at least this many images use the shifted GEMMs;
# smaller batches give them too few columns per GEMM (at batch 1 they were
# slower than im2col + one GEMM for conv3-5, at 8 and more faster).
SHIFTED_MIN_BATCH = 8
# Batches in this range stream the weights through a Numba kernel; at batch 1
# OpenBLAS's matrix-vector product streams as fast, and above 8 the product
# has enough reuse for BLAS's GEMM to win.
STREAMING_BATCHES = range(2, 9)


def to_backend(x: np.ndarray) -> np.ndarray:
    """Host array -> this backend's array (a float32 C-contiguous copy if needed)."""
    return np.ascontiguousarray(x, dtype=np.float32)


def to_numpy(x: np.ndarray) -> np.ndarray:
    """This backend's array -> host NumPy array."""
    return np.asarray(x)


def prepare_params(params: dict) -> dict:
    """Weights as the kernels read them: float32, C-contiguous, so no call
    copies them again (conv weights reshape to GEMM matrices as views)."""
    return {key: to_backend(value) for key, value in params.items()}


def synchronize() -> None:
    """Wait for queued work (kernels return when done, so nothing to wait for)."""


# ---- argument checks ----------------------------------------------------
def _array(value, what: str, ndim: int, shape_text: str) -> np.ndarray:
    """A float32 C-contiguous array with `ndim` axes, or a clear error."""
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{what} must be a NumPy array of shape {shape_text}, "
                        f"got {type(value).__name__}")
    if not np.issubdtype(value.dtype, np.floating):
        raise TypeError(f"{what} must be floating point (float32), got dtype {value.dtype}")
    if value.ndim != ndim:
        raise ShapeError(f"{what} must have shape {shape_text}, got {value.shape}")
    return np.ascontiguousarray(value, dtype=np.float32)


def _bias(b, length: int, op: str) -> np.ndarray:
    b = _array(b, f"{op}: bias", 1, f"({length},)")
    if b.shape[0] != length:
        raise ShapeError(f"{op}: bias has {b.shape[0]} values, the weight has {length} outputs")
    return b


def _positive_int(value, what: str) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{what} must be an integer, got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{what} must be an integer, got {value!r}") from None
    if value < 1:
        raise ValueError(f"{what} must be >= 1, got {value}")
    return value


# ---- the contract ---------------------------------------------------------
def conv2d(x, w, b, stride=1, padding=0, groups=1, dilation=1, relu=False):
    """Cross-correlation, as PyTorch and Caffe define convolution.

    x: (N, C, H, W), w: (O, C/groups, kh, kw), b: (O,) -> (N, O, Ho, Wo);
    relu=True returns max(conv, 0). The rung of the ladder in
    numalex.kernels.conv that was fastest for AlexNet's layers: shifted GEMMs
    (version 5) for stride 1 at batch >= SHIFTED_MIN_BATCH, batched im2col
    (version 4) for stride 1 below that, im2row (version 6) otherwise.
    """
    x = _array(x, "conv2d: input", 4, "(N, C, H, W)")
    w = _array(w, "conv2d: weight", 4, "(O, C/groups, kh, kw)")
    groups = _positive_int(groups, "conv2d: groups")
    out_ch, c_per_group = w.shape[:2]
    if out_ch % groups or c_per_group * groups != x.shape[1]:
        raise ShapeError(
            f"conv2d: input has {x.shape[1]} channels and weight {w.shape} with "
            f"groups={groups} expects {c_per_group}*{groups} = {c_per_group * groups} "
            f"input channels and output channels ({out_ch}) divisible by {groups}")
    b = _bias(b, out_ch, "conv2d")
    if stride != 1:
        version = conv.conv_im2row
    elif x.shape[0] >= SHIFTED_MIN_BATCH:
        version = conv.conv_shifted_gemm
    else:
        version = conv.conv_im2col_batched
    return version(x, w, b, stride, padding, groups, dilation, relu)


def max_pool2d(x, kernel, stride, padding=0, ceil_mode=False):
    """Max over k x k windows (padding never wins). x: (N, C, H, W) -> (N, C, Ho, Wo)."""
    x = _array(x, "max_pool2d: input", 4, "(N, C, H, W)")
    ho = conv_output_size(x.shape[2], kernel, stride, padding, ceil_mode=ceil_mode)
    wo = conv_output_size(x.shape[3], kernel, stride, padding, ceil_mode=ceil_mode)
    check_pool_padding(kernel, padding, "max_pool2d")
    y = np.empty(x.shape[:2] + (ho, wo), dtype=np.float32)
    pooling.max_pool2d(x, kernel, stride, padding, y)
    return y


def adaptive_avg_pool2d(x, out_hw):
    """Average over PyTorch's adaptive bins. x: (N, C, H, W) -> (N, C, oh, ow)."""
    x = _array(x, "adaptive_avg_pool2d: input", 4, "(N, C, H, W)")
    oh, ow = out_hw
    rows = np.array(adaptive_bins(x.shape[2], oh), dtype=np.int64)    # (oh, 2)
    cols = np.array(adaptive_bins(x.shape[3], ow), dtype=np.int64)    # (ow, 2)
    y = np.empty(x.shape[:2] + (oh, ow), dtype=np.float32)
    pooling.adaptive_avg_pool2d(x, rows, cols, y)
    return y


def lrn(x, size, alpha, beta, k):
    """Local response normalisation across channels. x: (N, C, H, W) -> same shape."""
    x = _array(x, "lrn: input", 4, "(N, C, H, W)")
    size = _positive_int(size, "lrn: size")
    n, c, h, w = x.shape
    y = np.empty_like(x)
    pointwise.lrn(x.reshape(n, c, h * w), size, float(alpha), float(beta), float(k),
                  y.reshape(n, c, h * w))
    return y


def relu(x):
    """max(x, 0), elementwise, any shape."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"relu: input must be a NumPy array, got {type(x).__name__}")
    x = _array(x, "relu: input", x.ndim, "any")
    y = np.empty_like(x)
    pointwise.relu(x.reshape(-1), y.reshape(-1))
    return y


def linear(x, w, b, relu=False):
    """x: (N, in), w: (out, in), b: (out,) -> (N, out) = x w^T + b;
    relu=True returns max(x w^T + b, 0)."""
    x = _array(x, "linear: input", 2, "(N, in_features)")
    w = _array(w, "linear: weight", 2, "(out_features, in_features)")
    if x.shape[1] != w.shape[1]:
        raise ShapeError(f"linear: input has {x.shape[1]} features, weight {w.shape} "
                         f"expects {w.shape[1]}")
    b = _bias(b, w.shape[0], "linear")
    y = np.empty((x.shape[0], w.shape[0]), dtype=np.float32)
    if x.shape[0] in STREAMING_BATCHES:
        linear_kernels.linear_streaming(x, w, b, y)
        if relu:
            pointwise.relu(y.reshape(-1), y.reshape(-1))
        return y
    z = np.empty((w.shape[0], x.shape[0]), dtype=np.float32)   # (out, N)
    if x.shape[0] == 1:
        blas.gemv(w, x[0], z[:, 0])                 # (out, in) @ (in,)
    else:
        blas.gemm(w, x.T, z)                        # (out, in) @ (in, N)
    linear_kernels.add_bias_transposed(z, b, relu, y)
    return y
