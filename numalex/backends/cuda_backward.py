"""The CUDA backend's backward passes (numba_cuda.py exports them).

Same contract as the reference (numpy_backward.py), with device arrays in
and out: nothing is copied to the host. Each function checks shapes with
numalex.backends.checks (the same words as every backend), allocates the
gradients on the device and launches kernels from cuda_backward_kernels.py,
one thread per gradient element, ``threads`` per block.

dropout draws its mask on the host, from the NumPy Generator it is given,
exactly as the reference does, so that a seed drops the same values on every
backend; the mask (one byte per value) is the only upload.
"""
from __future__ import annotations

import numpy as np
from numba import cuda

from . import checks
from .cuda_backward_kernels import (adaptive_avg_backward_kernel, bias_grad_kernel,
                                    conv_input_grad_kernel, conv_weight_grad_kernel,
                                    lrn_backward_kernel, max_pool_backward_kernel,
                                    relu_backward_kernel, scale_by_mask_kernel)
from .cuda_windows import blocks

THREADS = 256                    # block size, as numba_cuda.DEFAULT_THREADS


def _device(op: str, **named) -> tuple:
    """Each named array as a float32 device array (host arrays are uploaded),
    in order, or a TypeError naming the one that is not float32."""
    arrays = []
    for what, value in named.items():
        if not hasattr(value, "copy_to_host"):
            value = cuda.to_device(np.ascontiguousarray(value, dtype=np.float32))
        if value.dtype != np.float32:
            raise TypeError(f"{op}_backward: {what} must be float32, got {value.dtype}")
        arrays.append(value)
    return tuple(arrays)


def _launch(kernel, size: int, threads: int, *args) -> None:
    kernel[blocks(size, threads), threads](*args)


def conv2d_backward(dy, x, w, b, stride=1, padding=0, groups=1, dilation=1, need_dx=True,
                    threads=THREADS):
    """(dx, dw, db) of conv2d, on the device.

    dy: (N, O, Ho, Wo), x: (N, C, H, W), w: (O, C/groups, kh, kw), b: (O,)
    -> dx: (N, C, H, W) (None if not need_dx: a network's first layer has
    no use for it), dw: (O, C/groups, kh, kw), db: (O,).
    """
    dy, x, w = _device("conv2d", dy=dy, x=x, w=w)
    out_shape = checks.conv2d_shape(x.shape, w.shape, np.shape(b), stride, padding, groups,
                                    dilation)
    checks.gradient_shape("conv2d", dy.shape, out_shape)
    dx = cuda.device_array(x.shape, dtype=np.float32) if need_dx else None
    dw = cuda.device_array(w.shape, dtype=np.float32)
    db = cuda.device_array((w.shape[0],), dtype=np.float32)
    if need_dx:
        _launch(conv_input_grad_kernel, dx.size, threads, dy, w, dx, stride, padding, dilation)
    _launch(conv_weight_grad_kernel, dw.size, threads, dy, x, dw, stride, padding, dilation)
    _launch(bias_grad_kernel, db.size, threads, dy, db)
    return dx, dw, db


def linear_backward(dy, x, w, b, threads=THREADS):
    """(dx, dw, db) of linear(x, w, b) = x w^T + b, on the device: a linear
    layer is a 1x1 convolution of a 1x1 image, as in the forward pass.
    dy: (N, out), x: (N, in), w: (out, in) -> dx: (N, in), dw: (out, in), db: (out,)."""
    dy, x, w = _device("linear", dy=dy, x=x, w=w)
    out_shape = checks.linear_shape(x.shape, w.shape, np.shape(b))
    checks.gradient_shape("linear", dy.shape, out_shape)
    (n, features), out = x.shape, w.shape[0]
    dx, dw, db = conv2d_backward(dy.reshape(n, out, 1, 1), x.reshape(n, features, 1, 1),
                                 w.reshape(out, features, 1, 1), b, threads=threads)
    return dx.reshape(n, features), dw.reshape(out, features), db


def max_pool2d_backward(dy, x, kernel, stride, padding=0, ceil_mode=False, threads=THREADS):
    """dx of max_pool2d: each window's dy goes to its first maximum, summed
    where windows overlap. dy: (N, C, Ho, Wo), x: (N, C, H, W) -> dx."""
    dy, x = _device("max_pool2d", dy=dy, x=x)
    out_shape = checks.max_pool2d_shape(x.shape, kernel, stride, padding, ceil_mode)
    checks.gradient_shape("max_pool2d", dy.shape, out_shape)
    dx = cuda.device_array(x.shape, dtype=np.float32)
    _launch(max_pool_backward_kernel, dx.size, threads, dy, x, dx, kernel, stride, padding)
    return dx


def adaptive_avg_pool2d_backward(dy, x, out_hw, threads=THREADS):
    """dx of adaptive_avg_pool2d. dy: (N, C, oh, ow), x: (N, C, H, W) -> dx."""
    from .numba_cuda import _bins_on_device            # the forward's cached bins

    dy, x = _device("adaptive_avg_pool2d", dy=dy, x=x)
    out_shape = checks.adaptive_avg_pool2d_shape(x.shape, out_hw)
    checks.gradient_shape("adaptive_avg_pool2d", dy.shape, out_shape)
    dx = cuda.device_array(x.shape, dtype=np.float32)
    _launch(adaptive_avg_backward_kernel, dx.size, threads, dy,
            _bins_on_device(x.shape[2], out_shape[2]), _bins_on_device(x.shape[3], out_shape[3]),
            dx)
    return dx


def lrn_backward(dy, x, size, alpha, beta, k, threads=THREADS):
    """dx of lrn(x, size, alpha, beta, k). dy, x: (N, C, H, W)."""
    dy, x = _device("lrn", dy=dy, x=x)
    checks.gradient_shape("lrn", dy.shape, checks.lrn_shape(x.shape, size))
    dx = cuda.device_array(x.shape, dtype=np.float32)
    _launch(lrn_backward_kernel, dx.size, threads, dy, x, dx, size,
            np.float32(alpha / size), np.float32(beta), np.float32(k))
    return dx


def relu_backward(dy, x, threads=THREADS):
    """dx of relu: dy where x > 0, else 0. Any shape."""
    dy, x = _device("relu", dy=dy, x=x)
    checks.gradient_shape("relu", dy.shape, x.shape)
    dx = cuda.device_array(x.shape, dtype=np.float32)
    _launch(relu_backward_kernel, dx.size, threads, dy.reshape(dy.size), x.reshape(x.size),
            dx.reshape(dx.size))
    return dx


def dropout(x, p, rng, threads=THREADS):
    """Training-mode dropout: (y, mask) on the device, y = x * mask / (1 - p);
    the mask is drawn on the host as the reference draws it (see above)."""
    p = checks.dropout_probability(p)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"dropout: rng must be a numpy.random.Generator "
                        f"(np.random.default_rng(seed)), got {type(rng).__name__}")
    (x,) = _device("dropout", x=x)
    mask = cuda.to_device(rng.random(x.shape, dtype=np.float32) >= p)
    return _scale_by_mask(x, mask, p, threads), mask


def dropout_backward(dy, mask, p, threads=THREADS):
    """dx of dropout: dy * mask / (1 - p). mask: dropout's, on the device or host."""
    (dy,) = _device("dropout", dy=dy)
    if not hasattr(mask, "copy_to_host"):
        mask = cuda.to_device(np.ascontiguousarray(mask, dtype=np.bool_))
    checks.gradient_shape("dropout", dy.shape, mask.shape)
    return _scale_by_mask(dy, mask, checks.dropout_probability(p), threads)


def _scale_by_mask(a, mask, p, threads):
    out = cuda.device_array(a.shape, dtype=np.float32)
    _launch(scale_by_mask_kernel, out.size, threads, a.reshape(a.size), mask.reshape(mask.size),
            np.float32(1.0 / (1.0 - p)), out.reshape(out.size))
    return out
