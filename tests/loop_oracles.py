"""Naive loop oracles: every op written from its definition, one output
element at a time, in float64. Slow, obvious, and sharing no code with
numalex (not even the output-size formula: the oracles place their windows
with window_starts, which walks the padded input and never divides). The
test files of every backend import them.
"""
import math

import numpy as np


def window_starts(n, kernel, stride, padding=0, dilation=1, ceil_mode=False):
    """The rows (of the padded input) where a window starts, found by walking.

    A window covers span = dilation*(kernel-1) + 1 rows and starts at 0, s,
    2s, ... of the n + 2p padded rows. Every window that fits counts. In ceil
    mode (PyTorch and Caffe) one partial window more counts, possibly the
    only one, when it hangs over the end by less than a stride and starts
    inside the input or the left padding (start < n + p).
    """
    span = dilation * (kernel - 1) + 1
    starts, start = [], 0
    while start + span <= n + 2 * padding:
        starts.append(start)
        start += stride
    if ceil_mode and start + span - (n + 2 * padding) < stride and start < n + padding:
        starts.append(start)
    return starts


def count_windows(n, kernel, stride, padding=0, dilation=1, ceil_mode=False):
    """How many windows fit along one axis: len(window_starts(...))."""
    return len(window_starts(n, kernel, stride, padding, dilation, ceil_mode))


def conv2d(x, w, b, stride, padding, groups, dilation):
    """x: (N, C, H, W), w: (O, C/groups, kh, kw), b: (O,) -> (N, O, Ho, Wo)."""
    n, c, h, wd = x.shape
    o, c_per_group, kh, kw = w.shape
    xp = np.zeros((n, c, h + 2 * padding, wd + 2 * padding))
    xp[:, :, padding:padding + h, padding:padding + wd] = x
    rows = window_starts(h, kh, stride, padding, dilation)
    cols = window_starts(wd, kw, stride, padding, dilation)
    y = np.zeros((n, o, len(rows), len(cols)))
    o_per_group = o // groups
    for i in range(n):
        for oc in range(o):
            g = oc // o_per_group
            for r, top in enumerate(rows):
                for q, left in enumerate(cols):
                    acc = float(b[oc])
                    for ci in range(c_per_group):
                        for u in range(kh):
                            for v in range(kw):
                                acc += float(w[oc, ci, u, v]) * xp[
                                    i, g * c_per_group + ci, top + u * dilation,
                                    left + v * dilation]
                    y[i, oc, r, q] = acc
    return y


def max_pool2d(x, kernel, stride, padding, ceil_mode):
    """x: (N, C, H, W) -> (N, C, Ho, Wo); in ceil mode a last partial window
    is kept if it starts inside the input or the left padding (PyTorch)."""
    n, c, h, w = x.shape
    rows = window_starts(h, kernel, stride, padding, ceil_mode=ceil_mode)
    cols = window_starts(w, kernel, stride, padding, ceil_mode=ceil_mode)
    y = np.full((n, c, len(rows), len(cols)), -np.inf)
    for r, top in enumerate(rows):
        for q, left in enumerate(cols):
            for u in range(kernel):
                for v in range(kernel):
                    row, col = top + u - padding, left + v - padding
                    if 0 <= row < h and 0 <= col < w:
                        y[:, :, r, q] = np.maximum(y[:, :, r, q], x[:, :, row, col])
    return y


def adaptive_avg_pool2d(x, out_h, out_w):
    """x: (N, C, H, W) -> (N, C, out_h, out_w); bin i spans
    [floor(i*H/out), ceil((i+1)*H/out))."""
    h, w = x.shape[2:]
    y = np.zeros(x.shape[:2] + (out_h, out_w))
    for r in range(out_h):
        r0, r1 = math.floor(r * h / out_h), math.ceil((r + 1) * h / out_h)
        for q in range(out_w):
            c0, c1 = math.floor(q * w / out_w), math.ceil((q + 1) * w / out_w)
            y[:, :, r, q] = x[:, :, r0:r1, c0:c1].astype(np.float64).mean(axis=(2, 3))
    return y


def lrn(x, size, alpha, beta, k):
    """y = x / (k + alpha/size * sum of x^2 over the channels
    c - size//2 ... c + (size-1)//2 that exist)^beta."""
    c = x.shape[1]
    y = np.zeros(x.shape)
    for ch in range(c):
        lo, hi = max(0, ch - size // 2), min(c, ch + (size - 1) // 2 + 1)
        total = (x[:, lo:hi].astype(np.float64) ** 2).sum(axis=1)
        y[:, ch] = x[:, ch] / (k + alpha / size * total) ** beta
    return y


def linear(x, w, b):
    """x: (N, in), w: (out, in), b: (out,) -> (N, out) = x w^T + b."""
    return np.array([[sum(float(a) * float(c) for a, c in zip(row, w_row)) + float(bias)
                      for w_row, bias in zip(w, b)] for row in x])
