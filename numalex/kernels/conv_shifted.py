"""Versions 5 and 7 of the convolution ladder: shifted GEMMs, no im2col.

5. ``conv_shifted_gemm``  stride 1: each of the k*k kernel taps is one GEMM
                       on a shifted *view* of the zero-padded input, all
                       summed into one output.
7. ``conv_space_to_depth``  a strided conv rewritten as a stride-1 conv on
                       s*s times the channels (each s x s block of pixels
                       becomes channels), then run as version 5.

Both take ``relu=True`` and ``pool=`` (a max pool after it, taken straight
from the GEMMs' pixel-major output). The shared helpers (output sizes,
scratch buffers) are in numalex/kernels/conv.py, with versions 1-4.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..shapes import conv_output_size
from . import blas, pooling
from .conv import COLS_BUDGET_BYTES, output_hw, scratch

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
