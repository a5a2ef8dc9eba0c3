"""The NumPy reference's backward passes: how gradients flow back through every op.

For a forward op ``y = OP(x, ...)``, ``OP_backward(dy, *the forward's own
arguments)`` takes ``dy = dLoss/dy`` and returns the gradients of the
forward's array arguments, in order, with their shapes, float32: conv2d and
linear give ``(dx, dw, db)``, the others ``dx``. The semantics are
PyTorch's: ReLU's gradient at 0 is 0; a max pool sends each output's
gradient to the first maximum of its window, adding up where windows
overlap; padding receives no gradient.

The convolution is the one to read slowly. Input pixel ``xp[r]`` (of the
padded input) reached output ``y[i]`` through kernel tap ``w[u]`` exactly
when ``r = i*s + u*d``, so:

* ``dx`` is the *transposed convolution* of ``dy``: spread dy out by the
  stride, pad it, and correlate it with the kernel flipped in both axes and
  with its in/out channels swapped (:func:`conv2d_input_grad`);
* ``dw`` is the correlation of the input with ``dy``: tap ``(u, v)`` saw the
  input grid ``xp[u*d + i*s, v*d + j*s]``, so its gradient is that grid times
  dy, summed (:func:`conv2d_weight_grad`);
* ``db`` is dy summed over everything but the channel.

Written for reading, not speed; the Numba and CUDA backends compute the same
numbers faster, and the tests check all of them against PyTorch and finite
differences.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..shapes import adaptive_bins, size_arithmetic, transposed_size
from . import checks


# ---- convolution --------------------------------------------------------------------
def conv2d_backward(dy, x, w, b, stride=1, padding=0, groups=1, dilation=1, need_dx=True):
    """Gradients of conv2d with respect to x, w and b.

    dy: (N, O, Ho, Wo), x: (N, C, H, W), w: (O, C/G, kh, kw), b: (O,)
    -> dx: (N, C, H, W) (None when need_dx is False: a network's first layer
    has no use for it), dw: (O, C/G, kh, kw), db: (O,).
    A grouped convolution is G convolutions side by side (group g maps input
    channels g*C/G ... to output channels g*O/G ...), so each group's
    gradients come from its own slices.
    """
    out_shape = checks.conv2d_shape(x.shape, w.shape, np.shape(b), stride, padding,
                                    groups, dilation)
    checks.gradient_shape("conv2d", np.shape(dy), out_shape)
    dy, x, w = (np.asarray(a, dtype=np.float32) for a in (dy, x, w))
    dx = np.empty(x.shape, np.float32) if need_dx else None
    dw = np.empty(w.shape, np.float32)
    c_per_group, o_per_group = x.shape[1] // groups, w.shape[0] // groups
    for g in range(groups):
        ins = slice(g * c_per_group, (g + 1) * c_per_group)
        outs = slice(g * o_per_group, (g + 1) * o_per_group)
        if need_dx:
            dx[:, ins] = conv2d_input_grad(dy[:, outs], w[outs], x.shape[2:], stride,
                                           padding, dilation)
        dw[outs] = conv2d_weight_grad(dy[:, outs], x[:, ins], w.shape[2:], stride, padding,
                                      dilation)
    db = dy.sum(axis=(0, 2, 3), dtype=np.float64).astype(np.float32)
    return dx, dw, db


def conv2d_input_grad(dy, w, in_hw, stride, padding, dilation):
    """dx as the transposed convolution of dy with the flipped kernel (one group).

    dy: (N, O, Ho, Wo), w: (O, C, kh, kw), in_hw: (H, W) -> dx: (N, C, H, W).

    dxp[r] = sum over every (i, u) with r = i*s + u*d of dy[i] * w[u]. Reading
    that as a correlation over r takes four steps:

    1. dilate dy by the stride: s-1 zeros between neighbours, so dy[i] sits
       at row i*s, where its window started;
    2. pad by the span minus one, d(k-1), on both sides (a "full"
       correlation: every tap that touched row r is visited), plus the ``a``
       rows at the end that the forward's stride dropped;
    3. correlate with the kernel flipped in both axes (tap u lands at
       r = i*s + u*d, so counted from r the taps run backwards) and
       channel-swapped, (O, C) -> (C, O): the gradient flows from outputs
       back to inputs;
    4. the result is the gradient of the padded input, whose n + 2p rows are
       the transposed formula's (numalex.shapes); cut away the p padding rows
       on each side: padding gets no gradient.

    The correlation runs tap by tap: mix dy's channels with the tap's (C, O)
    matrix, then add the dilated, padded result shifted by the tap's offset.
    Mixing channels first is the same arithmetic (mixing commutes with
    dilating and padding) and skips multiplying the s*s - 1 zeros of step 1.
    The rows the stride dropped meet only padding, so their gradient is
    zero, as it must be: no output ever read them.
    """
    n, o, ho, wo = dy.shape
    c, kh, kw = w.shape[1:]
    # the padded input's rows and columns: n + 2p by the transposed formula, a = dropped rows
    rows, cols = (transposed_size(out, k, stride, padding, dilation,
                                  dropped=size_arithmetic(length, k, stride, padding,
                                                          dilation).unused_rows) + 2 * padding
                  for out, k, length in ((ho, kh, in_hw[0]), (wo, kw, in_hw[1])))
    span_h, span_w = dilation * (kh - 1), dilation * (kw - 1)
    # steps 1 and 2: a zero grid, padded by the span, where dy[i, j] goes to
    # row span_h + i*s, column span_w + j*s; the rest stays zero
    spread = np.zeros((n, c, span_h + rows, span_w + cols), np.float32)
    dilated = spread[:, :, span_h:span_h + (ho - 1) * stride + 1:stride,
                     span_w:span_w + (wo - 1) * stride + 1:stride]        # (N, C, Ho, Wo) view
    # step 3: the flipped, channel-swapped kernel, (C, O, kh, kw), stored tap by tap
    # as (kh, kw, C, O) so that each tap's matrix is contiguous (BLAS needs that)
    flipped = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)
    taps = np.ascontiguousarray(flipped.transpose(2, 3, 0, 1))
    dy_by_channel = by_channel(dy)                                  # (O, N*Ho*Wo)
    dxp = np.zeros((n, c, rows, cols), np.float32)
    for u in range(kh):
        for v in range(kw):
            mixed = taps[u, v] @ dy_by_channel                      # (C, N*Ho*Wo)
            dilated[...] = mixed.reshape(c, n, ho, wo).transpose(1, 0, 2, 3)
            r, q = u * dilation, v * dilation
            dxp += spread[:, :, r:r + rows, q:q + cols]
    # step 4: padding gets no gradient
    return dxp[:, :, padding:padding + in_hw[0], padding:padding + in_hw[1]]


def conv2d_weight_grad(dy, x, kernel_hw, stride, padding, dilation):
    """dw as the correlation of the input with dy (one group).

    dy: (N, O, Ho, Wo), x: (N, C, H, W), kernel_hw: (kh, kw) -> dw: (O, C, kh, kw).

    Tap w[o, c, u, v] multiplied xp[n, c, i*s + u*d, j*s + v*d] into
    y[n, o, i, j], for every image n and output pixel (i, j). Its gradient is
    the sum of dy times exactly those inputs: the padded input shifted by
    (u*d, v*d) and read every s-th pixel, an (N, C, Ho, Wo) grid, contracted
    with dy over (n, i, j). Rows the stride dropped are in no grid.
    """
    n, o, ho, wo = dy.shape
    kh, kw = kernel_hw
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    dy_by_channel = by_channel(dy)                                  # (O, N*Ho*Wo)
    dw = np.empty((o, x.shape[1], kh, kw), np.float32)
    for u in range(kh):
        for v in range(kw):
            r, c = u * dilation, v * dilation
            seen = xp[:, :, r:r + (ho - 1) * stride + 1:stride,
                      c:c + (wo - 1) * stride + 1:stride]                   # (N, C, Ho, Wo)
            # sum over n, i, j of dy[n, o, i, j] * seen[n, c, i, j]: (O, C)
            dw[:, :, u, v] = dy_by_channel @ by_channel(seen).T
    return dw


def by_channel(a):
    """(N, C, H, W) -> (C, N*H*W), a copy: one row per channel holding every
    image's pixels, so that a sum over images and pixels is one matrix product."""
    return a.transpose(1, 0, 2, 3).reshape(a.shape[1], -1)


# ---- pooling ------------------------------------------------------------------------
def max_pool2d_backward(dy, x, kernel, stride, padding=0, ceil_mode=False):
    """dx of max_pool2d: each output's gradient goes to the input that won its window.

    dy: (N, C, Ho, Wo), x: (N, C, H, W) -> dx: (N, C, H, W).
    The winner is the window's first maximum in row-major order (PyTorch's
    choice); where windows overlap (stride < kernel) an input that wins
    several gets the sum. Padding is -inf and never wins; so do the rows a
    ceil-mode last window hangs past the edge. Inputs no window reads, and
    those that never win, get zero.
    """
    out_shape = checks.max_pool2d_shape(x.shape, kernel, stride, padding, ceil_mode)
    checks.gradient_shape("max_pool2d", np.shape(dy), out_shape)
    n, c, h, w = x.shape
    ho, wo = out_shape[2:]
    # the padded input, with room for a ceil-mode last window past the bottom/right edge
    rows, cols = (length + 2 * padding + size_arithmetic(length, kernel, stride, padding,
                                                         ceil_mode=ceil_mode).overhang_rows
                  for length in (h, w))
    xp = np.full((n, c, rows, cols), -np.inf, np.float32)
    xp[:, :, padding:padding + h, padding:padding + w] = x
    windows = sliding_window_view(xp, (kernel, kernel), axis=(2, 3))[
        :, :, ::stride, ::stride][:, :, :ho, :wo]                       # (N, C, Ho, Wo, k, k)
    first_max = windows.reshape(n, c, ho, wo, kernel * kernel).argmax(axis=-1)
    du, dv = np.divmod(first_max, kernel)                              # tap of the winner
    row = np.arange(ho)[:, None] * stride + du                         # (N, C, Ho, Wo), padded
    col = np.arange(wo)[None, :] * stride + dv
    image = np.arange(n)[:, None, None, None]
    channel = np.arange(c)[None, :, None, None]
    dxp = np.zeros(xp.shape, np.float32)
    np.add.at(dxp, (image, channel, row, col), dy)                     # overlaps accumulate
    return dxp[:, :, padding:padding + h, padding:padding + w]


def averaging_matrix(n: int, out: int) -> np.ndarray:
    """(out, n): row i averages adaptive bin i, [floor(i*n/out), ceil((i+1)*n/out))."""
    matrix = np.zeros((out, n), np.float32)
    for i, (start, end) in enumerate(adaptive_bins(n, out)):
        matrix[i, start:end] = 1.0 / (end - start)
    return matrix


def adaptive_avg_pool2d_backward(dy, x, out_hw):
    """dx of adaptive_avg_pool2d.

    dy: (N, C, oh, ow), x: (N, C, H, W) -> dx: (N, C, H, W).
    Adaptive average pooling is linear and separable: y = A_h x A_w^T, where
    row i of A (out, n) averages bin i. So dx = A_h^T dy A_w: every input
    pixel gets dy/area from each bin it lies in (bins overlap when the size
    does not divide evenly).
    """
    out_shape = checks.adaptive_avg_pool2d_shape(x.shape, out_hw)
    checks.gradient_shape("adaptive_avg_pool2d", np.shape(dy), out_shape)
    (h, w), (oh, ow) = x.shape[2:], out_shape[2:]
    dx = averaging_matrix(h, oh).T @ np.asarray(dy, np.float32) @ averaging_matrix(w, ow)
    return dx.astype(np.float32, copy=False)


# ---- normalisation and pointwise ----------------------------------------------------
def channel_window_sums(a, before: int, after: int):
    """a: (N, C, H, W) -> same shape: sum of a over channels c-before ... c+after that exist."""
    padded = np.pad(a, ((0, 0), (before, after), (0, 0), (0, 0)))
    return sliding_window_view(padded, before + after + 1, axis=1).sum(axis=-1)


def lrn_backward(dy, x, size, alpha, beta, k):
    """dx of lrn, in float64.

    dy, x: (N, C, H, W). The forward is y[c] = x[c] * D[c]^-beta with
    D[c] = k + alpha/size * (sum of x[c']^2 over c' = c - size//2 ... c + (size-1)//2).
    x[j] reaches y[j] directly, and every y[c] whose window holds j through D[c]:

        dx[j] = dy[j] D[j]^-beta
                - 2 alpha beta / size * x[j] * sum over those c of dy[c] x[c] D[c]^(-beta-1)

    j lies in c's window exactly when c runs over j - (size-1)//2 ... j + size//2:
    the same window, reflected.
    """
    checks.gradient_shape("lrn", np.shape(dy), checks.lrn_shape(x.shape, size))
    x64, dy64 = np.asarray(x, np.float64), np.asarray(dy, np.float64)
    denominator = k + alpha / size * channel_window_sums(x64 ** 2, size // 2, (size - 1) // 2)
    through_d = dy64 * x64 * denominator ** (-beta - 1)
    reflected = channel_window_sums(through_d, (size - 1) // 2, size // 2)
    dx = dy64 * denominator ** -beta - 2 * alpha * beta / size * x64 * reflected
    return dx.astype(np.float32)


def relu_backward(dy, x):
    """dx of relu: dy where x > 0, else 0 (the gradient at x = 0 is 0, as PyTorch)."""
    checks.gradient_shape("relu", np.shape(dy), np.shape(x))
    return np.where(np.asarray(x) > 0, dy, 0).astype(np.float32)


def linear_backward(dy, x, w, b):
    """Gradients of linear (y = x w^T + b) with respect to x, w and b.

    dy: (N, out), x: (N, in), w: (out, in) -> dx = dy w: (N, in),
    dw = dy^T x: (out, in), db = dy summed over the batch: (out,).
    """
    out_shape = checks.linear_shape(x.shape, w.shape, np.shape(b))
    checks.gradient_shape("linear", np.shape(dy), out_shape)
    dy = np.asarray(dy, np.float32)
    dx = dy @ np.asarray(w, np.float32)
    dw = dy.T @ np.asarray(x, np.float32)
    return dx, dw, dy.sum(axis=0, dtype=np.float64).astype(np.float32)


# ---- dropout (training only) --------------------------------------------------------
def dropout(x, p, rng):
    """Training-mode dropout with inverted scaling: y = x * mask / (1 - p).

    x: any shape; p in [0, 1): the probability of dropping a value; rng: a
    numpy.random.Generator (seeded for a reproducible mask). Returns (y, mask),
    mask a bool array of x's shape, True where x is kept. Scaling the kept
    values by 1/(1-p) keeps the expected value, so inference needs no dropout.
    """
    p = checks.dropout_probability(p)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"dropout: rng must be a numpy.random.Generator "
                        f"(np.random.default_rng(seed)), got {type(rng).__name__}")
    mask = rng.random(np.shape(x), dtype=np.float32) >= p
    return dropout_backward(x, mask, p), mask


def dropout_backward(dy, mask, p):
    """dx of dropout: dy * mask / (1 - p), the same scaling as the forward."""
    checks.gradient_shape("dropout", np.shape(dy), np.shape(mask))
    scale = np.float32(1.0 / (1.0 - checks.dropout_probability(p)))
    return np.where(mask, np.asarray(dy, np.float32) * scale, np.float32(0))
