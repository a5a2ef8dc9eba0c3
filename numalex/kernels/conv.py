"""The convolution ladder, versions 1-7: conv2d from the definition to BLAS.

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

Versions 8-10 (Winograd) are in numalex/kernels/winograd.py and
winograd_f4.py, and the whole ladder in order in numalex/kernels/ladder.py,
whose choose() says which version the numba backend runs for which layer
and batch. 3 is the one-image special case of 4.
Versions 3-10 take ``relu=True`` to apply max(y, 0) in the same pass that
adds the bias; 5 and 7-10 also take ``pool=`` (a max pool after it).
All GEMMs call BLAS through numalex.kernels.blas.
"""
from __future__ import annotations

import threading

import numpy as np
from numba import njit, prange

from ..shapes import conv_output_size
from . import blas, pooling

# Columns of at most this many bytes are built at once (batched im2col). Few
# big GEMMs beat many small ones, most of all when other processes share the
# cores: every OpenBLAS call ends with its threads waiting for each other.
COLS_BUDGET_BYTES = 64 * 2**20


def output_hw(x, w, stride, padding, dilation):
    """(Ho, Wo) of a convolution, from the one formula in numalex.shapes."""
    kh, kw = w.shape[2:]
    return (conv_output_size(x.shape[2], kh, stride, padding, dilation),
            conv_output_size(x.shape[3], kw, stride, padding, dilation))


def _empty_output(x, w, stride, padding, dilation):
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
    y = _empty_output(x, w, stride, padding, dilation)
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
    y = _empty_output(x, w, stride, padding, dilation)
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
    y = _empty_output(x, w, stride, padding, dilation)
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


# ---- 5. shifted GEMM (stride 1) ----------------------------------------------
@njit(parallel=True, cache=True)
def pad_into_frames(x, padding, frame_rows, wp, frames):
    """Zero-pad every image and lay the padded images end to end, per channel.

    x: (N, C, H, W) -> frames: (C, N*F + tail) with F = frame_rows*Wp and
    frames[c, n*F + (r + p)*Wp + (q + p)] = x[n, c, r, q], zero elsewhere.
    Padding is shared twice over: a row is W + p long, not W + 2p (the p
    zeros that open one row also close the row before it), and a frame is
    H + p rows, not H + 2p (the p zero rows under one image are the p zero
    rows above the next; the tail holds the last image's).
    Parallel over channels; each channel is one sequential write.
    """
    n_img, c_in, h, wd = x.shape
    length = frames.shape[1]
    for c in prange(c_in):
        for t in range(length):
            frames[c, t] = 0.0
        for n in range(n_img):
            for r in range(h):
                start = (n * frame_rows + r + padding) * wp + padding
                for q in range(wd):
                    frames[c, start + q] = x[n, c, r, q]


@njit(cache=True)
def crop_frames(z, b, relu, frame_rows, wp, y):
    """y[n, o, i, j] = z[o, (n*frame_rows + i)*Wp + j] + b[o] (then max(., 0)
    if `relu`): keep the Ho x Wo valid outputs of each frame, drop the rest,
    add the bias, in one pass to NCHW. z: (O, N*frame_rows*Wp),
    y: (N, O, Ho, Wo).
    Memory-bound, so on the calling thread (see add_bias_to_nchw)."""
    n_img, out_ch, ho, wo = y.shape
    for n in range(n_img):
        for o in range(out_ch):
            for i in range(ho):
                start = (n * frame_rows + i) * wp
                for j in range(wo):
                    v = z[o, start + j] + b[o]
                    y[n, o, i, j] = np.float32(0.0) if relu and v < 0 else v


def conv_shifted_gemm(x, w, b, stride=1, padding=0, groups=1, dilation=1, relu=False,
                      budget=COLS_BUDGET_BYTES, pool=None):
    """Version 5 (stride 1 only): k*k GEMMs on shifted views, no im2col.

    Pad each image once to Hp x Wp and flatten it: pixel (r, q) sits at
    r*Wp + q. With stride 1, output (i, j) needs input pixel
    (i + u*d, j + v*d) for tap (u, v), which sits u*d*Wp + v*d further on
    than pixel (i, j). So for every tap the inputs of *all* outputs form one
    contiguous slice of the flat image, and

        z (O, Hp*Wp) += W[:, :, u, v] (O, C) @ frames[:, off:off + Hp*Wp],
        off = u*d*Wp + v*d,

    summed over the k*k taps, is the convolution evaluated at every position
    of the padded frame. The Ho x Wo top-left block of each frame is the
    answer; the other positions (the last columns of every row, the last
    rows) are junk that costs some extra multiply-adds and is dropped when
    the bias is added. The images of a chunk sit end to end, so each tap is
    one big GEMM for the whole chunk. Less padding is less junk: a tap that
    reads past the right end of a row lands in the p zeros that open the
    next row, and one past the bottom of an image in the p zero rows above
    the next image, so rows are W + p long and frames H + p rows high, not
    W + 2p and H + 2p (conv3 of AlexNet at 13 x 13: 196 positions per
    image for 169 outputs instead of 210).

    Why it is fast: the input is copied once (padding) instead of k*k times
    (im2col writes 9x or 25x the input), and every GEMM reads the padded
    input in place (blas.gemm, accumulating).

    pool=(kernel, stride, padding, ceil_mode) max-pools the result (after
    the ReLU) in the same pass that crops it; see shifted_gemms.
    """
    if stride != 1:
        raise ValueError(f"conv_shifted_gemm needs stride 1, got {stride}")
    h, wd = x.shape[2:]
    kh, kw = w.shape[2:]
    ho, wo = output_hw(x, w, stride, padding, dilation)
    # A row: p zeros, then the image's W pixels; its right padding is the
    # next row's p zeros. A frame: p zero rows, then the image's H rows; its
    # bottom padding is the next frame's zero rows. Both at least as long
    # as the output, for padding wider than the kernel (1x1, p=1).
    wp = max(wd + padding, wo)
    frame_rows = max(h + padding, ho)
    # past the last frame: its bottom padding, and what the shifted views of
    # its last (junk) positions read
    tail = max(padding * wp, (kh - 1) * dilation * wp + (kw - 1) * dilation)

    def fill(images, frames):
        pad_into_frames(images, padding, frame_rows, wp, frames)

    return shifted_gemms(x, fill, w, b, groups, dilation, relu, (ho, wo),
                         (frame_rows, wp, tail), budget, pool)


def shifted_gemms(x, fill, w, b, groups, dilation, relu, out_hw, layout, budget,
                  pool=None):
    """The chunk loop of versions 5 and 7: lay out a chunk of images as
    frames, run the k*k accumulating GEMMs, crop to NCHW (or max-pool).

    x: (N, ...) the images; fill(images, frames) writes a chunk of them into
    frames: (C, n*F + tail), zeros included, C = w.shape[1] * groups;
    w: (O, Cg, kh, kw) the stride-1 kernel the frames are convolved with;
    out_hw: (Ho, Wo); layout: (frame_rows, Wp, tail), F = frame_rows * Wp.
    pool: None, or (kernel, stride, padding, ceil_mode) of a max pool that
    follows (after the ReLU, if any): then the GEMMs write pixel-major,
    (n*F, O) instead of (O, n*F) (the same products, as fast), and
    pooling.max_pool_pixels_major pools that straight into y: the
    convolution's full-size output is never written, and y is channels-
    last in memory, returned as its (N, O, Hp, Wp) view, as the Winograd
    versions return theirs.
    """
    out_ch, c_per_group, kh, kw = w.shape
    c_in = c_per_group * groups
    frame_rows, wp, tail = layout
    frame = frame_rows * wp
    n_img = x.shape[0]
    y_hw = out_hw if pool is None else tuple(
        conv_output_size(n, pool[0], pool[1], pool[2], ceil_mode=pool[3]) for n in out_hw)
    if pool is None:
        y = np.empty((n_img, out_ch) + tuple(y_hw), dtype=np.float32)
    else:                                   # pooled from pixel-major rows: channels-last
        y_channels_last = np.empty((n_img,) + tuple(y_hw) + (out_ch,), dtype=np.float32)
        y = y_channels_last.transpose(0, 3, 1, 2)              # (N, O, Hp, Wp), a view
    taps = np.ascontiguousarray(w.transpose(2, 3, 0, 1))      # (kh, kw, O, Cg)
    fits = max(1, budget // ((c_in + out_ch) * frame * 4))     # images per chunk, at most
    chunk = -(-n_img // -(-n_img // fits))                     # equal chunks
    frames_all = scratch.take("frames", c_in * (chunk * frame + tail))
    z_all = scratch.take("product", out_ch * chunk * frame)
    for start in range(0, n_img, chunk):
        n = min(n_img, start + chunk) - start
        positions = n * frame
        frames = frames_all[:c_in * (positions + tail)].reshape(c_in, positions + tail)
        fill(x[start:start + n], frames)
        if pool is None:
            z = z_all[:out_ch * positions].reshape(out_ch, positions)   # (O, n*F)
            _accumulate_taps(frames, taps, groups, dilation, wp, z, pixels_major=False)
            crop_frames(z, b, relu, frame_rows, wp, y[start:start + n])
        else:
            z = z_all[:out_ch * positions].reshape(positions, out_ch)   # (n*F, O)
            _accumulate_taps(frames, taps, groups, dilation, wp, z, pixels_major=True)
            kernel, stride, padding, _ = pool
            pooling.max_pool_pixels_major(z, frame_rows, wp, out_hw, kernel, stride, padding,
                                          b, relu, y_channels_last[start:start + n])
    return y


def _accumulate_taps(frames, taps, groups, dilation, wp, z, pixels_major):
    """z = the sum over taps (u, v) of W[:, :, u, v] @ frames shifted by
    u*d*Wp + v*d, per group. frames: (C, positions + tail); taps:
    (kh, kw, O, Cg); z: (O, positions), or (positions, O) if pixels_major
    (the same products with both sides transposed)."""
    kh, kw, out_ch, c_per_group = taps.shape
    o_per_group = out_ch // groups
    positions = z.shape[1] if not pixels_major else z.shape[0]
    for g in range(groups):
        outs = slice(g * o_per_group, (g + 1) * o_per_group)
        frames_g = frames[g * c_per_group:(g + 1) * c_per_group]
        z_g = z[:, outs] if pixels_major else z[outs]
        for u in range(kh):
            for v in range(kw):
                off = u * dilation * wp + v * dilation
                shifted = frames_g[:, off:off + positions]          # (Cg, positions)
                tap = taps[u, v, outs]                              # (O/G, Cg)
                first = (u, v) == (0, 0)
                if pixels_major:
                    blas.gemm(shifted.T, tap.T, z_g, accumulate=not first)
                else:
                    blas.gemm(tap, shifted, z_g, accumulate=not first)


# ---- 6. im2row + GEMM, pixels as rows ----------------------------------------
# Rows of at most this many bytes are built at once (version 6). Smaller than
# COLS_BUDGET_BYTES: a few images' rows stay in cache between the copy that
# writes them and the GEMM that reads them (measured on conv1: chunks of 4
# images beat chunks of 32 by a third).
ROWS_BUDGET_BYTES = 16 * 2**20


@njit(parallel=True, cache=True)
def im2row(x, kh, kw, stride, padding, dilation, ho, wo, rows):
    """Copy receptive fields into rows, one row per output pixel.

    x: (N, C, H, W) -> rows: (N*Ho*Wo, C*kh*kw), with
    rows[(n*Ho + i)*Wo + j, (c*kh + u)*kw + v] = x[n, c, i*s + u*d - p, j*s + v*d - p]
    (0 in the padding): im2col's matrix transposed. Each row is written
    front to back, and with dilation 1 each run of kw values is read from
    consecutive input pixels, even when the stride is large (im2col gathers
    every s-th pixel instead). Parallel over output rows (n, i).
    """
    n_img, c_in, h, wd = x.shape
    for task in prange(n_img * ho):
        n, i = task // ho, task % ho
        for j in range(wo):
            row = (n * ho + i) * wo + j
            for c in range(c_in):
                for u in range(kh):
                    r = i * stride + u * dilation - padding
                    col = (c * kh + u) * kw
                    for v in range(kw):
                        q = j * stride + v * dilation - padding
                        inside = 0 <= r < h and 0 <= q < wd
                        rows[row, col + v] = x[n, c, r, q] if inside else 0.0


@njit(cache=True)
def add_bias_to_nchw_from_rows(z, b, relu, y):
    """y[n, o, p] = z[n, p, o] + b[o] (then max(., 0) if `relu`): the GEMM
    result (pixels x channels) transposed to NCHW with the bias added, in
    one pass. z: (N, P, O), y: (N, O, P). A transpose reads one of the two
    arrays with a large stride; going through 64 pixels at a time keeps that
    block of z (64 x O values) in the L1 cache while each channel's 64
    outputs are written. On the calling thread (memory-bound)."""
    n_img, pixels, out_ch = z.shape
    for n in range(n_img):
        for p0 in range(0, pixels, 64):
            p1 = min(pixels, p0 + 64)
            for o in range(out_ch):
                for p in range(p0, p1):
                    v = z[n, p, o] + b[o]
                    y[n, o, p] = np.float32(0.0) if relu and v < 0 else v


def conv_im2row(x, w, b, stride=1, padding=0, groups=1, dilation=1, relu=False,
                rows_budget=ROWS_BUDGET_BYTES):
    """Version 6: im2row for a few images, then per group one GEMM

        rows_g (n*Ho*Wo, Cg*kh*kw) @ W_g^T (Cg*kh*kw, O/G) -> (n*Ho*Wo, O/G)

    and a transposing pass to NCHW that adds the bias.
    Why it is fast for AlexNet's conv1 (11x11, stride 4, only 3 channels):
    im2col's gather of every 4th pixel is the slow part there, and im2row
    copies runs of 11 neighbouring pixels instead; the GEMM's long side is
    the many output pixels, a shape OpenBLAS runs well even though the
    layer has only 64 (or 96) output channels.
    """
    n_img, c_in = x.shape[:2]
    out_ch, c_per_group, kh, kw = w.shape
    o_per_group = out_ch // groups
    y = _empty_output(x, w, stride, padding, dilation)
    ho, wo = y.shape[2:]
    pixels = ho * wo
    depth = c_per_group * kh * kw                                  # Cg*kh*kw
    w_t = np.ascontiguousarray(
        w.reshape(groups, o_per_group, depth).transpose(0, 2, 1))  # (G, Cg*kh*kw, O/G)
    fits = max(1, rows_budget // (c_in * kh * kw * pixels * 4))    # images per chunk, at most
    chunk = -(-n_img // -(-n_img // fits))                         # equal chunks
    rows_all = scratch.take("rows", chunk * pixels * c_in * kh * kw)
    z_all = scratch.take("product", chunk * pixels * out_ch)
    for start in range(0, n_img, chunk):
        n = min(n_img, start + chunk) - start
        rows = rows_all[:n * pixels * c_in * kh * kw].reshape(n * pixels, c_in * kh * kw)
        im2row(x[start:start + n], kh, kw, stride, padding, dilation, ho, wo, rows)
        z = z_all[:n * pixels * out_ch].reshape(n * pixels, out_ch)    # (n*Ho*Wo, O)
        for g in range(groups):
            blas.gemm(rows[:, g * depth:(g + 1) * depth], w_t[g],
                      z[:, g * o_per_group:(g + 1) * o_per_group])
        add_bias_to_nchw_from_rows(z.reshape(n, pixels, out_ch), b, relu,
                                   y[start:start + n].reshape(n, out_ch, pixels))
    return y


# ---- 7. space-to-depth + shifted GEMM (large stride) ------------------------------
@njit(parallel=True, cache=True)
def space_to_depth(x, stride, padding, blocks_h, blocks_w, out):
    """Fold every s x s block of pixels of the zero-padded input into channels.

    x: (N, C, H, W) -> out: (N, C*s*s, blocks_h, blocks_w) with
    out[n, (c*s + a)*s + e, i, j] = x[n, c, i*s + a - p, j*s + e - p]
    (0 outside the input). Parallel over (image, channel) planes.
    """
    n_img, c_in, h, wd = x.shape
    for task in prange(n_img * c_in):
        n, c = task // c_in, task % c_in
        for a in range(stride):
            for i in range(blocks_h):
                r = i * stride + a - padding
                for e in range(stride):
                    plane = (c * stride + a) * stride + e
                    for j in range(blocks_w):
                        q = j * stride + e - padding
                        inside = 0 <= r < h and 0 <= q < wd
                        out[n, plane, i, j] = x[n, c, r, q] if inside else 0.0


def fold_kernel(w, stride, dilation):
    """A strided kernel cut into s x s blocks that become channels, the way
    space_to_depth folds the input: (O, Cg, kh, kw) -> (O, Cg*s*s,
    ceil(k'/s), ceil(k'/s)), k' = (k - 1)*d + 1, spread out by the
    dilation and zero-filled to a multiple of s (see conv_space_to_depth)."""
    out_ch, c_per_group, kh, kw = w.shape
    span_h, span_w = (kh - 1) * dilation + 1, (kw - 1) * dilation + 1
    taps_h, taps_w = -(-span_h // stride), -(-span_w // stride)   # kernel size in blocks
    w_spread = np.zeros((out_ch, c_per_group, taps_h * stride, taps_w * stride),
                        dtype=np.float32)
    w_spread[:, :, :span_h:dilation, :span_w:dilation] = w
    w_folded = np.empty((out_ch, c_per_group * stride * stride, taps_h, taps_w),
                        dtype=np.float32)
    space_to_depth(w_spread, stride, 0, taps_h, taps_w, w_folded)
    return w_folded


def conv_space_to_depth(x, w, b, stride=1, padding=0, groups=1, dilation=1, relu=False,
                        pool=None):
    """Version 7: a strided convolution rewritten as a stride-1 one.

    Cut the padded input into s x s blocks and make each block's pixels
    channels (space-to-depth): (N, C, H, W) -> (N, C*s*s, H/s, W/s). Cut the
    kernel the same way, spread out by the dilation and zero-filled to a
    multiple of s: (O, Cg, k, k) -> (O, Cg*s*s, ceil(k'/s), ceil(k'/s)) with
    k' = (k - 1)*d + 1. Output (i, j) then reads blocks (i + u, j + v): the
    same sum, now with stride 1, which version 5 runs as shifted GEMMs (a
    group's channels stay side by side, so groups carry over). AlexNet's
    conv1 (11x11, stride 4, 3 channels) becomes a 3x3 conv on 48 channels
    (19% more multiply-adds: the zeros).

    Why it is fast: no im2row (which writes the input about 7 times over)
    and no transposing pass to NCHW; the work is nine big GEMMs (of depth 48
    for conv1) on views of one copy of the input, and that copy is written
    straight in version 5's frame layout. On conv1 at batch 32 it took 47 ms
    against im2row's 58 (fewer images per chunk were slower).

    pool=(kernel, stride, padding, ceil_mode) max-pools the result (after
    the ReLU) straight from the GEMMs' output, as in version 5.
    """
    c_in = x.shape[1]
    ho, wo = output_hw(x, w, stride, padding, dilation)
    w_folded = fold_kernel(w, stride, dilation)
    out_ch, _, taps_h, taps_w = w_folded.shape
    blocks_h, blocks_w = ho + taps_h - 1, wo + taps_w - 1        # blocks the outputs read
    channels, frame = c_in * stride * stride, blocks_h * blocks_w

    def fill(images, frames):
        """Space-to-depth straight into version 5's frames (C*s*s, n*F + tail):
        the folded images need no padding, so each frame is one folded
        image and no second copy is made."""
        n = images.shape[0]
        folded = frames[:, :n * frame].reshape(channels, n, blocks_h, blocks_w)
        space_to_depth(images, stride, padding, blocks_h, blocks_w,
                       folded.transpose(1, 0, 2, 3))          # viewed as (n, C*s*s, bh, bw)
        frames[:, n * frame:] = 0.0                           # the tail the last junk reads

    tail = (taps_h - 1) * blocks_w + taps_w - 1
    return shifted_gemms(x, fill, w_folded, b, groups, 1, relu, (ho, wo),
                         (blocks_h, blocks_w, tail), COLS_BUDGET_BYTES, pool)
