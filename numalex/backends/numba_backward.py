"""The Numba CPU backend's backward passes (numba_cpu.py exports them).

Same contract as the reference (numpy_backward.py): ``OP_backward(dy, *the
forward's own arguments)`` returns the gradients of the forward's array
arguments, float32, PyTorch's semantics. Each function checks its
arguments with numalex.backends.checks (the same words as every backend),
allocates the result and calls kernels from numalex.kernels:

    conv2d_backward      dW = dY cols^T and dcols = W^T dY per group (two
                         OpenBLAS GEMMs), im2col / col2im in Numba, or for a
                         channels-last x, im2row_channels_last
                         (numalex/kernels/conv_backward.py); at stride 1
                         dx is instead the forward convolution of dy with
                         the flipped kernel (dx_is_a_forward_convolution),
                         Winograd included
    linear_backward      dx = dy W and dW = dy^T x, two OpenBLAS GEMMs
    max_pool2d_backward, adaptive_avg_pool2d_backward
                         one parallel kernel each (pool_backward.py); max
                         pooling of channels-last memory has its own

The convolutions and pools take their activations as the forward pass left
them: a channels-last view (what the Winograd convolutions return) is read
as it lies, and max_pool2d_backward returns dx in x's layout, so the ReLU
gradient before it finds both its arrays in one layout.
    lrn_backward         two parallel kernels (pointwise_backward.py)
    relu_backward, dropout, dropout_backward
                         one pass over memory each

conv2d_backward also takes ``need_dx=False``: a network's first layer has
no use for the gradient of its input (the image), and skipping it saves a
GEMM and a col2im; dx is then None.
"""
from __future__ import annotations

import numpy as np

from ..kernels import blas, conv_backward, pointwise, pointwise_backward, pool_backward
from ..shapes import adaptive_bins
from . import checks


def _arrays(op: str, channels_last_ok: bool = False, **named) -> tuple:
    """Each named array as float32 C-contiguous (a copy only if needed), in
    order, or a TypeError naming the one that is not a floating-point array.
    With `channels_last_ok` (for kernels that index (N, C, H, W) arrays of
    any strides), a float32 view of channels-last memory, as the Winograd
    convolutions return their outputs, is kept as it is: copying every
    activation back to NCHW cost a training step of AlexNet at batch 32
    about 0.1 s."""
    arrays = []
    for what, value in named.items():
        if not isinstance(value, np.ndarray) or not np.issubdtype(value.dtype, np.floating):
            kind = getattr(value, "dtype", type(value).__name__)
            raise TypeError(f"{op}_backward: {what} must be a float32 NumPy array, got {kind}")
        keep = channels_last_ok and checks.is_channels_last(value)
        arrays.append(value if keep else np.ascontiguousarray(value, dtype=np.float32))
    return tuple(arrays)


def conv2d_backward(dy, x, w, b, stride=1, padding=0, groups=1, dilation=1, need_dx=True):
    """(dx, dw, db) of conv2d(x, w, b, stride, padding, groups, dilation).

    dy: (N, O, Ho, Wo), x: (N, C, H, W), w: (O, C/groups, kh, kw), b: (O,)
    -> dx: (N, C, H, W) (None if not need_dx), dw: (O, C/groups, kh, kw), db: (O,).
    """
    out_shape = checks.conv2d_shape(np.shape(x), np.shape(w), np.shape(b), stride, padding,
                                    groups, dilation)
    checks.gradient_shape("conv2d", np.shape(dy), out_shape)
    dy, x = _arrays("conv2d", channels_last_ok=True, dy=dy, x=x)
    (w,) = _arrays("conv2d", w=w)
    by_convolution = need_dx and dx_is_a_forward_convolution(w.shape, stride, padding, dilation)
    dx, dw, db = conv_backward.conv2d_backward(dy, x, w, stride, padding, groups, dilation,
                                               need_dx and not by_convolution)
    if by_convolution:
        from . import numba_cpu        # imported here: numba_cpu imports this module
        w_flipped = flipped_transposed_kernel(w, groups)
        dx = numba_cpu.conv2d(dy, w_flipped, np.zeros(x.shape[1], np.float32), 1,
                              w.shape[2] - 1 - padding, groups)
    return dx, dw, db


def dx_is_a_forward_convolution(w_shape, stride, padding, dilation) -> bool:
    """Can dx be computed as an ordinary convolution (conv2d_backward's
    second path)? For stride 1, no dilation and a square k x k kernel,

        dx = conv2d(dy, the kernel flipped and transposed, padding k - 1 - p)

    (each input pixel gathers the gradients of the outputs whose windows
    covered it: a k x k window of dy around it, the kernel turned by 180
    degrees). Its output size is (H + 2p - k + 1) + 2(k - 1 - p) - k + 1 = H,
    the input's. It then runs on the forward ladder, Winograd included:
    for AlexNet's conv2-5, Winograd F(4x4, 3x3) does 2.6 to 2.8 times fewer
    multiply-adds than W^T dY + col2im."""
    kh, kw = w_shape[2:]
    return stride == 1 and dilation == 1 and kh == kw and padding <= kh - 1


def flipped_transposed_kernel(w: np.ndarray, groups: int) -> np.ndarray:
    """(O, Cg, k, k) -> (C, O/G, k, k): within each group, input and output
    channels swapped and every kernel turned by 180 degrees, the kernel
    that maps dy to dx (dx_is_a_forward_convolution)."""
    out_ch, c_per_group, kh, kw = w.shape
    per_group = w.reshape(groups, out_ch // groups, c_per_group, kh, kw)[..., ::-1, ::-1]
    return np.ascontiguousarray(per_group.transpose(0, 2, 1, 3, 4)).reshape(
        groups * c_per_group, out_ch // groups, kh, kw)


def linear_backward(dy, x, w, b):
    """(dx, dw, db) of linear(x, w, b) = x w^T + b.

    dy: (N, out), x: (N, in), w: (out, in) -> dx = dy w: (N, in),
    dw = dy^T x: (out, in), db = dy summed over the batch: (out,).
    """
    out_shape = checks.linear_shape(np.shape(x), np.shape(w), np.shape(b))
    checks.gradient_shape("linear", np.shape(dy), out_shape)
    dy, x, w = _arrays("linear", dy=dy, x=x, w=w)
    dx = np.empty(x.shape, dtype=np.float32)
    dw = np.empty(w.shape, dtype=np.float32)
    blas.gemm(dy, w, dx)                     # (N, out) @ (out, in)
    blas.gemm(dy.T, x, dw)                   # (out, N) @ (N, in)
    return dx, dw, dy.sum(axis=0, dtype=np.float32)


def max_pool2d_backward(dy, x, kernel, stride, padding=0, ceil_mode=False):
    """dx of max_pool2d: each output's gradient goes to its window's first
    maximum, summed where windows overlap. dy: (N, C, Ho, Wo), x: (N, C, H, W)."""
    out_shape = checks.max_pool2d_shape(np.shape(x), kernel, stride, padding, ceil_mode)
    checks.gradient_shape("max_pool2d", np.shape(dy), out_shape)
    dy, x = _arrays("max_pool2d", channels_last_ok=True, dy=dy, x=x)
    if checks.is_channels_last(x) and not x.flags.c_contiguous:   # stays channels-last
        dx = np.empty_like(x)
        pool_backward.max_pool2d_backward_channels_last(
            dy.transpose(0, 2, 3, 1), x.transpose(0, 2, 3, 1), kernel, stride, padding,
            dx.transpose(0, 2, 3, 1))
        return dx
    dx = np.zeros_like(x)                       # the kernel adds into it
    pool_backward.max_pool2d_backward(dy, x, kernel, stride, padding, dx)
    return dx


def adaptive_avg_pool2d_backward(dy, x, out_hw):
    """dx of adaptive_avg_pool2d: dy / (bin size) spread over each bin.
    dy: (N, C, oh, ow), x: (N, C, H, W) -> dx: (N, C, H, W)."""
    out_shape = checks.adaptive_avg_pool2d_shape(np.shape(x), out_hw)
    checks.gradient_shape("adaptive_avg_pool2d", np.shape(dy), out_shape)
    dy, x = _arrays("adaptive_avg_pool2d", channels_last_ok=True, dy=dy, x=x)
    (h, w), (oh, ow) = x.shape[2:], out_shape[2:]
    if (oh, ow) == (h, w):              # every bin is one pixel: the gradient passes through
        return dy.copy(order="K")
    rows = np.array(adaptive_bins(h, oh), dtype=np.int64)    # (oh, 2)
    cols = np.array(adaptive_bins(w, ow), dtype=np.int64)    # (ow, 2)
    dx = np.zeros_like(x)                       # the kernel adds into it
    pool_backward.adaptive_avg_pool2d_backward(dy, rows, cols, dx)
    return dx


def lrn_backward(dy, x, size, alpha, beta, k):
    """dx of lrn(x, size, alpha, beta, k). dy, x: (N, C, H, W)."""
    checks.gradient_shape("lrn", np.shape(dy), checks.lrn_shape(np.shape(x), size))
    dy, x = _arrays("lrn", dy=dy, x=x)
    n, c, h, w = x.shape
    dx = np.empty_like(x)
    pointwise_backward.lrn_backward(dy.reshape(n, c, h * w), x.reshape(n, c, h * w), size,
                                    alpha, beta, k, dx.reshape(n, c, h * w))
    return dx


def relu_backward(dy, x):
    """dx of relu: dy where x > 0, else 0. Any shape."""
    checks.gradient_shape("relu", np.shape(dy), np.shape(x))
    flat = None
    if all(isinstance(a, np.ndarray) and a.dtype == np.float32 for a in (dy, x)):
        dx = np.empty_like(x)                # x's layout (channels-last after Winograd)
        flat = pointwise.in_memory_order(dy, x, dx)
    if flat is None:                         # layouts differ: C-contiguous copies
        dy, x = _arrays("relu", dy=dy, x=x)
        dx = np.empty_like(x)
        flat = (dy.reshape(-1), x.reshape(-1), dx.reshape(-1))
    pointwise_backward.relu_backward(*flat)
    return dx


def dropout(x, p, rng):
    """Training-mode dropout: (y, mask), y = x * mask / (1 - p).

    The mask (bool, True where x is kept) is drawn exactly as the reference
    draws it, ``rng.random(x.shape, dtype=float32) >= p``, so a seeded
    Generator drops the same values on every backend."""
    p = checks.dropout_probability(p)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"dropout: rng must be a numpy.random.Generator "
                        f"(np.random.default_rng(seed)), got {type(rng).__name__}")
    (x,) = _arrays("dropout", x=x)
    mask = rng.random(x.shape, dtype=np.float32) >= p
    return _scale_by_mask(x, mask, p), mask


def dropout_backward(dy, mask, p):
    """dx of dropout: dy * mask / (1 - p)."""
    checks.gradient_shape("dropout", np.shape(dy), np.shape(mask))
    (dy,) = _arrays("dropout", dy=dy)
    return _scale_by_mask(dy, np.ascontiguousarray(mask, dtype=np.bool_),
                          checks.dropout_probability(p))


def _scale_by_mask(a, mask, p):
    out = np.empty_like(a)
    pointwise_backward.scale_by_mask(a.reshape(-1), mask.reshape(-1),
                                     np.float32(1.0 / (1.0 - p)), out.reshape(-1))
    return out
