"""One convolution three ways: naive loops, im2col + one matrix product, Numba.

All three compute the same cross-correlation (PyTorch's and Caffe's "conv"):

    y[o, i, j] = b[o] + sum over c, u, v of w[o, c, u, v] * xp[c, i*s + u, j*s + v]

where xp is the input zero-padded by p. The output size comes from the formula
floor((n + 2p - k)/s) + 1. Timings are printed, never compared in tests.

    python examples/one_conv_three_ways.py
"""
import time

import numpy as np

import numalex
from numalex import backends


def conv_naive(x, w, b, s, p):
    """Six nested loops, one multiply-add at a time. x: (C, H, W), w: (O, C, k, k)."""
    c_in, h, wd = x.shape
    c_out, _, k, _ = w.shape
    ho = numalex.conv_output_size(h, k, stride=s, padding=p)
    wo = numalex.conv_output_size(wd, k, stride=s, padding=p)
    xp = np.pad(x, ((0, 0), (p, p), (p, p)))
    y = np.zeros((c_out, ho, wo), np.float32)
    for o in range(c_out):
        for i in range(ho):
            for j in range(wo):
                acc = b[o]
                for c in range(c_in):
                    for u in range(k):
                        for v in range(k):
                            acc += w[o, c, u, v] * xp[c, i * s + u, j * s + v]
                y[o, i, j] = acc
    return y


def im2col(xp, k, s, ho, wo):
    """Copy every k x k window of xp (C, H, W) into a column: (C*k*k, ho*wo)."""
    c = xp.shape[0]
    cols = np.empty((c, k, k, ho, wo), xp.dtype)
    for u in range(k):              # k*k strided slices instead of ho*wo*k*k loops
        for v in range(k):
            cols[:, u, v] = xp[:, u:u + s * ho:s, v:v + s * wo:s]
    return cols.reshape(c * k * k, ho * wo)


def conv_im2col(x, w, b, s, p):
    """Unfold the windows into a matrix, then one BLAS matrix product does all the work."""
    c_out, _, k, _ = w.shape
    ho = numalex.conv_output_size(x.shape[1], k, stride=s, padding=p)
    wo = numalex.conv_output_size(x.shape[2], k, stride=s, padding=p)
    xp = np.pad(x, ((0, 0), (p, p), (p, p)))
    cols = im2col(xp, k, s, ho, wo)                       # (C*k*k, ho*wo)
    y = w.reshape(c_out, -1) @ cols + b[:, None]          # (O, ho*wo)
    return y.reshape(c_out, ho, wo)


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


rng = np.random.default_rng(0)
# conv1's kernel and stride on a small image; 37 is not a multiple of the stride
# (CS231n's im2col would refuse it: (37 + 4 - 11) % 4 != 0); the formula just floors
x = rng.standard_normal((3, 37, 37)).astype(np.float32)
w = rng.standard_normal((8, 3, 11, 11)).astype(np.float32) * 0.1
b = rng.standard_normal(8).astype(np.float32)
s, p = 4, 2
print(numalex.size_arithmetic(37, 11, stride=s, padding=p).text)

y_naive, t_naive = timed(conv_naive, x, w, b, s, p)
y_im2col, t_im2col = timed(conv_im2col, x, w, b, s, p)
print(f"output {y_naive.shape}")
print(f"naive loops: {t_naive * 1e3:8.2f} ms")
print(f"im2col:      {t_im2col * 1e3:8.2f} ms   speedup {t_naive / t_im2col:6.0f}x   "
      f"max difference {np.abs(y_im2col - y_naive).max():.1e}")
assert np.allclose(y_im2col, y_naive, atol=1e-4)

if "numba" in backends.available():
    conv = backends.get("numba").conv2d
    _, t_first = timed(conv, x[None], w, b, s, p)          # compiles (or loads the cache)
    y_numba, t_numba = timed(conv, x[None], w, b, s, p)
    print(f"numba:       {t_numba * 1e3:8.2f} ms   speedup {t_naive / t_numba:6.0f}x   "
          f"max difference {np.abs(y_numba[0] - y_naive).max():.1e}   "
          f"(first call {t_first:.2f} s: JIT compile or cache load)")
    assert np.allclose(y_numba[0], y_naive, atol=1e-4)
else:
    print("numba:       backend not available here (pip install numba)")

# the real conv1 of torchvision: too slow for the loops, easy for the other two
x = rng.standard_normal((3, 224, 224)).astype(np.float32)
w = rng.standard_normal((64, 3, 11, 11)).astype(np.float32) * 0.05
b = np.zeros(64, np.float32)
y_im2col, t_im2col = timed(conv_im2col, x, w, b, 4, 2)
print(f"torchvision conv1, 3x224x224 -> {y_im2col.shape}: im2col {t_im2col * 1e3:.1f} ms")
if "numba" in backends.available():
    conv = backends.get("numba").conv2d
    conv(x[None], w, b, 4, 2)               # untimed: the first call at this size may compile
    y_numba, t_numba = timed(conv, x[None], w, b, 4, 2)
    print(f"  numba {t_numba * 1e3:.1f} ms, max difference "
          f"{np.abs(y_numba[0] - y_im2col).max():.1e}")
    assert np.allclose(y_numba[0], y_im2col, atol=1e-3)
print("all three ways agree")
