"""Backpropagate through conv1 by hand: loops, then the vectorised form, then the kernel.

The forward pass (stride s, padding p, xp the zero-padded input):

    y[o, i, j] = b[o] + sum over c, u, v of w[o, c, u, v] * xp[c, i*s + u, j*s + v]

Given dy = dLoss/dy, the chain rule sends each dy[o, i, j] back along the
very products that made y[o, i, j]:

    dxp[c, i*s + u, j*s + v] += dy[o, i, j] * w[o, c, u, v]
    dw[o, c, u, v]          += dy[o, i, j] * xp[c, i*s + u, j*s + v]
    db[o]                   += dy[o, i, j]

Collected by input pixel, the first line is a convolution too: dy spread out
by the stride, padded, and correlated with the kernel flipped and with its
channels swapped (a "transposed convolution"). Then a gradient check: the
loss nudged by +-h in float64 must change by the gradient times 2h.

    python examples/backprop_conv1_by_hand.py
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

import numalex
from numalex import backends

rng = np.random.default_rng(0)
conv1 = numalex.alexnet("torchvision").layers[0][1]          # k=11, s=4, p=2
k, s, p = conv1.kernel, conv1.stride, conv1.padding
n = 36                                                       # a small image
arithmetic = numalex.size_arithmetic(n, k, stride=s, padding=p)
out = arithmetic.out
print(f"conv1 ({conv1.hyper()}) on a {n}x{n} image: {arithmetic.text}")

x = rng.standard_normal((3, n, n))                           # (C, H, W), float64 here
w = rng.standard_normal((4, 3, k, k)) * 0.1                  # (O, C, k, k): 4 filters
b = rng.standard_normal(4)
dy = rng.standard_normal((4, out, out))                      # dLoss/dy for loss = sum(dy * y)


# ---- 1. loops: the chain rule, one product at a time ---------------------------------
def backward_loops(dy, x, w):
    xp = np.pad(x, ((0, 0), (p, p), (p, p)))
    dxp, dw, db = np.zeros_like(xp), np.zeros_like(w), np.zeros(w.shape[0])
    for o in range(w.shape[0]):
        for i in range(out):
            for j in range(out):
                db[o] += dy[o, i, j]
                for c in range(x.shape[0]):
                    for u in range(k):
                        for v in range(k):
                            dxp[c, i * s + u, j * s + v] += dy[o, i, j] * w[o, c, u, v]
                            dw[o, c, u, v] += dy[o, i, j] * xp[c, i * s + u, j * s + v]
    return dxp[:, p:p + n, p:p + n], dw, db                  # padding gets no gradient


# ---- 2. vectorised: a transposed convolution, and a correlation -------------------------
def forward(x, w, b):
    """y = correlation of xp with w, on strided windows: x (C, n, n) -> (O, out, out)."""
    xp = np.pad(x, ((0, 0), (p, p), (p, p)))
    windows = sliding_window_view(xp, (k, k), axis=(1, 2))[:, ::s, ::s][:, :out, :out]
    return np.einsum("cijuv,ocuv->oij", windows, w) + b[:, None, None]


def backward_vectorised(dy, x, w):
    # dx: 1. dilate dy by the stride (s-1 zeros between neighbours)
    dilated = np.zeros((dy.shape[0], (out - 1) * s + 1, (out - 1) * s + 1))
    dilated[:, ::s, ::s] = dy
    # 2. pad by k-1 all round ("full" correlation), plus the rows the stride dropped
    dropped = arithmetic.unused_rows
    padded = np.pad(dilated, ((0, 0), (k - 1, k - 1 + dropped), (k - 1, k - 1 + dropped)))
    # 3. correlate with the kernel flipped in both axes and channel-swapped: (C, O, k, k)
    flipped = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)
    windows = sliding_window_view(padded, (k, k), axis=(1, 2))      # (O, n+2p, n+2p, k, k)
    dxp = np.einsum("orquv,couv->crq", windows, flipped)
    # 4. the gradient of the padded input has n + 2p rows; cut the padding off
    dx = dxp[:, p:p + n, p:p + n]
    # dw: correlate the padded input with dy (dy's entries s apart, like its windows)
    xp = np.pad(x, ((0, 0), (p, p), (p, p)))
    x_windows = sliding_window_view(xp, (k, k), axis=(1, 2))[:, ::s, ::s][:, :out, :out]
    dw = np.einsum("oij,cijuv->ocuv", dy, x_windows)
    return dx, dw, dy.sum(axis=(1, 2))


loops = backward_loops(dy, x, w)
vectorised = backward_vectorised(dy, x, w)
print(f"loops vs vectorised, max difference: "
      f"{max(np.abs(a - b).max() for a, b in zip(loops, vectorised)):.1e}")

# ---- 3. the backends' kernels (float32) --------------------------------------------------
for name in backends.available():
    be = backends.get(name)
    if not hasattr(be, "conv2d_backward"):
        print(f"{name}: no conv2d_backward yet")
        continue
    got = be.conv2d_backward(*(be.to_backend(a.astype(np.float32)) for a in (dy[None], x[None],
                                                                             w, b)), s, p)
    got = [be.to_numpy(g) for g in got]
    got[0] = got[0][0]
    error = max(np.abs(g - v).max() / np.abs(v).max() for g, v in zip(got, vectorised))
    print(f"{name}.conv2d_backward vs vectorised, max relative difference: {error:.1e}")
    assert error < 1e-4

# ---- the gradient check: central differences of the float64 loss ---------------------------
def loss(x, w, b):
    return float(np.sum(dy * forward(x, w, b)))


h, worst = 1e-6, 0.0
for array, grad in ((x, vectorised[0]), (w, vectorised[1]), (b, vectorised[2])):
    for index in map(tuple, rng.integers(0, array.shape, size=(5, array.ndim))):
        saved = array[index]
        array[index] = saved + h
        up = loss(x, w, b)
        array[index] = saved - h
        down = loss(x, w, b)
        array[index] = saved
        numeric = (up - down) / (2 * h)
        worst = max(worst, abs(numeric - grad[index]) / np.abs(grad).max())
print(f"gradient check on 15 random entries of x, w, b: max error {worst:.1e} "
      f"(relative to each gradient's largest entry)")
assert worst < 1e-6
assert max(np.abs(a - b).max() for a, b in zip(loops, vectorised)) < 1e-9
print("backprop by hand agrees with finite differences and the backend")
