"""The convolution ladder, versions 1-4: conv2d from the definition to BLAS.

Every version computes PyTorch's cross-correlation::

    y[n, o, i, j] = b[o] + sum_{c, u, v} w[o, c, u, v]
                                         * x[n, g*Cg + c, i*s + u*d - p, j*s + v*d - p]

x: (N, C, H, W), w: (O, Cg, kh, kw) with Cg = C/groups, b: (O,) ->
y: (N, O, Ho, Wo); g = o // (O/groups) is the group of output channel o, and
pixels outside the input (the zero padding) count as 0. Every version takes
``(x, w, b, stride, padding, groups, dilation)`` and gets Ho, Wo from
:func:`numalex.shapes.conv_output_size`. ``benchmarks/conv_ladder.py``
checks each one against the NumPy reference before it times them.

1. ``conv_naive``      the formula as seven nested loops, one output at a time.
2. ``conv_reordered``  the same sum with the loops turned inside out: one
                       weight is loaded once and multiplied into a whole
                       output row, and (n, o) planes run in parallel.
3. ``conv_im2col``     copy every receptive field into a column of a matrix
                       (im2col), then one matrix product per image and group
                       (BLAS, from Python): W (O/G, Cg*kh*kw) @ cols
                       (Cg*kh*kw, Ho*Wo) is that image's (O/G, Ho, Wo) output.
4. ``conv_im2col_batched``  as 3, but the columns of several images sit
                       side by side, so one GEMM per group covers them all:
                       fewer, bigger products keep both cores busy.
5. ``conv_shifted_gemm``  stride 1 only: no im2col at all. Each of the k*k
                       kernel taps is one GEMM on a shifted *view* of the
                       zero-padded input, all summed into one output.
6. ``conv_im2row``     im2col transposed: one row per output pixel, so the
                       copy reads runs of neighbouring pixels even at a large
                       stride, and the GEMM is (pixels x K) @ (K x O).
7. ``conv_space_to_depth``  a strided conv rewritten as a stride-1 conv on
                       s*s times the channels (each s x s block of pixels
                       becomes channels), then run as version 5.

This file holds versions 1-4 and what every version shares (output
sizes, scratch buffers, columns_inside); 5 and 7 are in
numalex/kernels/conv_shifted.py, 6 in conv_im2row.py, 8-10 (Winograd) in
winograd.py and winograd_f4.py, 11 (direct) in conv_direct.py, 12 and 13
(Winograd on numalex's own micro-kernel) in winograd_products.py, and the
whole ladder in order in ladder.py, whose choose() says which version the
numba backend runs for which layer and batch. 3 is the one-image special
case of 4. Versions 3-13 take ``relu=True`` to apply max(y, 0) in the same
pass that adds the bias; 5 and 7-13 also take ``pool=`` (a max pool after
it). The GEMMs of versions 3-10 call BLAS through numalex.kernels.blas.
"""
from __future__ import annotations

import threading

import numpy as np
from numba import njit, prange

from ..shapes import conv_output_size
from . import blas

# Columns of at most this many bytes are built at once (batched im2col). Few
# big GEMMs beat many small ones, most of all when other processes share the
# cores: every OpenBLAS call ends with its threads waiting for each other.
COLS_BUDGET_BYTES = 64 * 2**20


def output_hw(x, w, stride, padding, dilation):
    """(Ho, Wo) of a convolution, from the one formula in numalex.shapes."""
    kh, kw = w.shape[2:]
    return (conv_output_size(x.shape[2], kh, stride, padding, dilation),
            conv_output_size(x.shape[3], kw, stride, padding, dilation))


def empty_output(x, w, stride, padding, dilation):
    """An uninitialised (N, O, Ho, Wo) float32 output for x and w."""
    ho, wo = output_hw(x, w, stride, padding, dilation)
    return np.empty((x.shape[0], w.shape[0], ho, wo), dtype=np.float32)


# ---- 1. naive ---------------------------------------------------------------
@njit(cache=True)
def _conv_naive(x, w, b, stride, padding, groups, dilation, y):
    n_img, c_in, h, wd = x.shape
    out_ch, c_per_group, kh, kw = w.shape
    o_per_group = out_ch // groups
    for n in range(n_img):
        for o in range(out_ch):
            g = o // o_per_group
            for i in range(y.shape[2]):
                for j in range(y.shape[3]):
                    acc = np.float32(b[o])
                    for c in range(c_per_group):
                        for u in range(kh):
                            for v in range(kw):
                                r = i * stride + u * dilation - padding
                                q = j * stride + v * dilation - padding
                                if 0 <= r < h and 0 <= q < wd:
                                    acc += w[o, c, u, v] * x[n, g * c_per_group + c, r, q]
                    y[n, o, i, j] = acc


def conv_naive(x, w, b, stride=1, padding=0, groups=1, dilation=1):
    """Version 1: one output pixel at a time, the sum written out literally.

    Slow because the innermost loop walks a 3x3 (or 11x11) window with a
    bounds check per tap, reloads every weight for every pixel, and runs on
    one core.
    """
    y = empty_output(x, w, stride, padding, dilation)
    _conv_naive(x, w, b, stride, padding, groups, dilation, y)
    return y


# ---- 2. loops reordered, parallel ------------------------------------------
@njit(parallel=True, fastmath=True, cache=True)
def _conv_reordered(x, w, b, stride, padding, groups, dilation, y):
    n_img, c_in, h, wd = x.shape
    out_ch, c_per_group, kh, kw = w.shape
    ho, wo = y.shape[2], y.shape[3]
    o_per_group = out_ch // groups
    for plane in prange(n_img * out_ch):                  # one (n, o) plane per task
        n, o = plane // out_ch, plane % out_ch
        g = o // o_per_group
        out = y[n, o]                                     # (Ho, Wo)
        out[:, :] = b[o]
        for c in range(c_per_group):
            src = x[n, g * c_per_group + c]               # (H, W)
            for u in range(kh):
                for v in range(kw):
                    weight = w[o, c, u, v]
                    # output columns whose tap v lands inside the input:
                    # 0 <= j*s + v*d - p < W
                    shift = v * dilation - padding
                    j0 = max(0, (-shift + stride - 1) // stride)
                    j1 = min(wo, (wd - 1 - shift) // stride + 1)
                    for i in range(ho):
                        r = i * stride + u * dilation - padding
                        if 0 <= r < h:
                            if stride == 1:                 # contiguous: vectorises
                                for j in range(j0, j1):
                                    out[i, j] += weight * src[r, j + shift]
                            else:
                                for j in range(j0, j1):
                                    out[i, j] += weight * src[r, j * stride + shift]


def conv_reordered(x, w, b, stride=1, padding=0, groups=1, dilation=1):
    """Version 2: each weight is loaded once per output plane and multiplied
    into a whole output row; the valid column range of a tap is computed up
    front, so the inner loop has no bounds checks, and with stride 1 it reads
    contiguous memory and vectorises. Output planes (n, o) run in parallel.
    """
    y = empty_output(x, w, stride, padding, dilation)
    _conv_reordered(x, w, b, stride, padding, groups, dilation, y)
    return y


# ---- 3 and 4. im2col + GEMM ----------------------------------------------
class Scratch(threading.local):
    """Float32 buffers kept from call to call (one set per thread).

    A freshly allocated large array comes straight from the operating
    system, and each of its pages faults the first time it is written; in a
    virtual machine that is slow enough that, for conv2 at batch 8, filling
    new column buffers cost more than the GEMM itself. Buffers kept here are
    faulted in once and reused.
    """

    def __init__(self):
        self.buffers = {}

    def take(self, name: str, size: int) -> np.ndarray:
        """A flat float32 array of `size` elements (contents undefined)."""
        buffer = self.buffers.get(name)
        if buffer is None or buffer.size < size:
            buffer = self.buffers[name] = np.empty(size, dtype=np.float32)
        return buffer[:size]


scratch = Scratch()


@njit(inline="always")
def columns_inside(shift, stride, wo, wd):
    """[j0, j1): the output columns j whose kernel tap, at column j*stride +
    shift of the input, lands inside it (0 <= j*stride + shift < wd); the
    others read padding."""
    j0 = min(wo, max(0, (-shift + stride - 1) // stride))
    j1 = max(j0, min(wo, (wd - 1 - shift) // stride + 1))
    return j0, j1


@njit(parallel=True, cache=True)
def im2col(x, kh, kw, stride, padding, dilation, ho, wo, cols):
    """Copy receptive fields into columns, the images side by side.

    x: (N, C, H, W) -> cols: (C*kh*kw, N*Ho*Wo), with
    cols[(c*kh + u)*kw + v, (n*Ho + i)*Wo + j] = x[n, c, i*s + u*d - p, j*s + v*d - p]
    (0 in the padding). Row order (c, u, v) matches w.reshape(O, -1), and the
    rows of group g are the contiguous block g*Cg*kh*kw ... (g+1)*Cg*kh*kw.
    Parallel over (channel, kernel row); every write is sequential in memory.
    The loops index the whole arrays instead of taking row views: a view
    made inside a parallel loop costs an atomic reference count update,
    and two threads updating the same count stall each other.
    """
    n_img, c_in, h, wd = x.shape
    for task in prange(c_in * kh):
        c, u = task // kh, task % kh
        for v in range(kw):
            row = (c * kh + u) * kw + v
            shift = v * dilation - padding
            j0, j1 = columns_inside(shift, stride, wo, wd)
            for n in range(n_img):
                for i in range(ho):
                    r = i * stride + u * dilation - padding
                    start = (n * ho + i) * wo                # this output row's segment
                    if 0 <= r < h:
                        for j in range(j0):
                            cols[row, start + j] = 0.0
                        if stride == 1:                     # contiguous: vectorises
                            for j in range(j0, j1):
                                cols[row, start + j] = x[n, c, r, j + shift]
                        else:
                            for j in range(j0, j1):
                                cols[row, start + j] = x[n, c, r, j * stride + shift]
                        for j in range(j1, wo):
                            cols[row, start + j] = 0.0
                    else:
                        for j in range(wo):
                            cols[row, start + j] = 0.0


@njit(cache=True)
def add_bias_to_nchw(z, b, relu, y):
    """y[n, o, p] = z[o, n, p] + b[o]: the GEMM result (channels first) moved
    to NCHW with the bias added (and, if `relu`, max(., 0) taken), in one
    pass. z: (O, N, P), y: (N, O, P).
    A memory-bound copy of contiguous planes: one core streams it at memory
    speed, so it runs on the calling thread (see numalex/kernels/pointwise.py
    for why a parallel launch right after a GEMM does not pay)."""
    out_ch, n_img, pixels = z.shape
    for n in range(n_img):
        for o in range(out_ch):
            for p in range(pixels):
                v = z[o, n, p] + b[o]
                y[n, o, p] = np.float32(0.0) if relu and v < 0 else v


def conv_im2col_batched(x, w, b, stride=1, padding=0, groups=1, dilation=1, relu=False,
                        cols_budget=COLS_BUDGET_BYTES):
    """Version 4: im2col for as many images as fit in `cols_budget` bytes,
    one GEMM per group for all of them, then bias + layout in one pass.

    For each chunk of images and each group g:
        W_g (O/G, Cg*kh*kw) @ cols_g (Cg*kh*kw, n*Ho*Wo) -> (O/G, n*Ho*Wo)
    Why it is fast: the multiply-adds (all but a few percent of the work) run
    in OpenBLAS's cache-blocked, vectorised GEMM on both cores, and one big
    product per chunk keeps the cores busy with few synchronisations; im2col
    and the final copy are single passes over memory.
    """
    n_img, c_in = x.shape[:2]
    out_ch, c_per_group, kh, kw = w.shape
    y = empty_output(x, w, stride, padding, dilation)
    ho, wo = y.shape[2:]
    pixels = ho * wo
    rows = c_in * kh * kw
    w_groups = w.reshape(groups, out_ch // groups, rows // groups)  # (G, O/G, Cg*kh*kw)
    fits = max(1, cols_budget // (rows * pixels * 4))      # images per chunk, at most
    chunk = -(-n_img // -(-n_img // fits))                 # equal chunks: 32 by 15 -> 11, 11, 10
    cols = scratch.take("cols", rows * chunk * pixels)     # (C*kh*kw, n*Ho*Wo) per chunk
    z = scratch.take("product", out_ch * chunk * pixels)   # (O, n*Ho*Wo) per chunk
    for start in range(0, n_img, chunk):
        n = min(n_img, start + chunk) - start
        part = cols[:rows * n * pixels].reshape(rows, n * pixels)
        im2col(x[start:start + n], kh, kw, stride, padding, dilation, ho, wo, part)
        product = z[:out_ch * n * pixels].reshape(groups, out_ch // groups, n * pixels)
        for g, cols_g in enumerate(part.reshape(groups, rows // groups, n * pixels)):
            blas.gemm(w_groups[g], cols_g, product[g])
        add_bias_to_nchw(product.reshape(out_ch, n, pixels), b, relu,
                         y[start:start + n].reshape(n, out_ch, pixels))
    return y


def conv_im2col(x, w, b, stride=1, padding=0, groups=1, dilation=1, relu=False):
    """Version 3: im2col + GEMM one image at a time (version 4 with room for
    a single image's columns): more, smaller products."""
    return conv_im2col_batched(x, w, b, stride, padding, groups, dilation, relu, cols_budget=0)
