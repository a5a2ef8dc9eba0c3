"""Version 11 of the convolution ladder: direct convolution, register-blocked.

No im2col, no BLAS: the convolution's sum is computed where the input
lies. Versions 3-6 copy every receptive field into a matrix and hand it to
OpenBLAS; at batch 1 that copy costs a quarter of the layer, and OpenBLAS on
these shapes (a few hundred output pixels) reaches about 125 GFLOP/s on
two Zen 3 cores, where ONNX Runtime's direct kernels reach 140-150. This
kernel, on a 2-core AMD EPYC (Zen 3, AVX2): about 75 GFLOP/s on one core,
136-159 on two for AlexNet's conv2-5 at batch 1.

The output is computed in blocks of 6 pixels x 16 output channels. For one
block, the kernel keeps its 96 sums in twelve 8-float vector registers
(numalex/kernels/simd.py) and walks the whole reduction, kernel tap by
kernel tap and channel by channel:

    for each tap (u, v) and input channel c:  (v and c as one run where they can)
        w0, w1 = the 16 weights w[o0 : o0+16, c, u, v]     two vector loads
        for each of the 6 pixels r:
            x = xp[pixel r moved by (u, v), c]              one broadcast load
            sums[r, 0:8] += x * w0;  sums[r, 8:16] += x * w1

Twelve fused multiply-adds for eight loads: the CPU's two FMA units stay
busy, and nothing is written until the block is done (one run of channels
is microkernel.multiply_add_run, which version 12 shares). The input is
channels-last and zero-padded (xp: (N, Hp, Wp, C)), so for a fixed tap the
channels of a pixel are consecutive floats; the weights are packed once
(pack_weights) so that the 16 weights of every step are consecutive too.
A block's pixels may sit anywhere (each has its own start address), so
blocks run straight through rows and images.

Blocks are independent: one parallel task each, blocks of the same 16
output channels one after the other, so each thread keeps its weights
(kh*kw*Cg*16 floats: 221 KB for AlexNet's conv4) in its L2 cache.

Groups whose output channels are not a multiple of 16 are padded with
zero weights; the padded channels are computed and dropped. The output is
channels-last, returned as its (N, O, Ho, Wo) view, like the Winograd
versions'; pool= fuses a max pool after it as they do.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .. import shapes
from . import pooling
from .conv import output_hw, scratch
from .microkernel import LANES as CHANNELS, ROWS as PIXELS, multiply_add_run, zeros
from .simd import add8, load8, relu8, store8
from .winograd import add_bias_in_place, pad_channels_last, pad_rows

def pack_weights(w: np.ndarray, groups: int) -> np.ndarray:
    """w: (O, Cg, kh, kw) -> flat (B, kh, kw, Cg, 16): B blocks of 16 output
    channels, each group's O/G padded with zeros to a multiple of 16, so
    that the kernel reads the 16 weights of one (tap, channel) step as two
    consecutive vectors. Computed once per weight (numba_cpu keeps it)."""
    out_ch, c_per_group, kh, kw = w.shape
    o_per_group = out_ch // groups
    blocks = -(-o_per_group // CHANNELS)                        # per group
    padded = np.zeros((groups, blocks * CHANNELS, kh, kw, c_per_group), dtype=np.float32)
    padded[:, :o_per_group] = w.reshape(groups, o_per_group, c_per_group, kh, kw).transpose(
        0, 1, 3, 4, 2)
    by_block = padded.reshape(groups * blocks, CHANNELS, kh, kw, c_per_group)
    return np.ascontiguousarray(by_block.transpose(0, 2, 3, 4, 1)).reshape(-1)


@njit(inline="always")
def _pixel_start(p, ho, wo, wp, hp, c_in, stride):
    """Where output pixel p (images, rows and columns flattened) starts
    reading xp: the flat index of its window's top-left pixel, channel 0."""
    n, inside = p // (ho * wo), p % (ho * wo)
    i, j = inside // wo, inside % wo
    return ((n * hp + i * stride) * wp + j * stride) * c_in


@njit(inline="always")
def _store(z, at, sum0, sum1, bias0, bias1, relu):
    """z[at : at+16] = the sums + bias (then ReLU if `relu`)."""
    v0, v1 = add8(sum0, bias0), add8(sum1, bias1)
    if relu:
        v0, v1 = relu8(v0), relu8(v1)
    store8(z, at, v0)
    store8(z, at + 8, v1)


@njit(parallel=True, cache=True)
def direct_conv(xp, xp_hw, c_in, packed, kernel_hw, c_per_group, blocks_per_group, stride,
                dilation, n_img, out_hw, bias, relu, z):
    """z[p, o] = bias[o] + sum over (u, v, c) of
    xp[pixel p's window moved by (u*d, v*d), group(o)*Cg + c] * w[o, c, u, v]
    (then ReLU if `relu`), for every output pixel p and padded channel o.

    xp: flat (N, Hp, Wp, C), zero-padded channels-last; packed: flat
    pack_weights(w, G), B = G * blocks_per_group blocks; bias: (B*16,);
    z: flat (N*Ho*Wo, B*16), pixel-major. Sizes come checked from
    conv_direct. One task per (block of 16 channels, block of 6 pixels);
    a last pixel block with fewer than 6 pixels repeats its last pixel in
    the spare rows and stores only the real ones.
    """
    hp, wp = xp_hw
    kh, kw = kernel_hw
    ho, wo = out_hw
    pixels = n_img * ho * wo
    tiles = -(-pixels // PIXELS)
    blocks = bias.shape[0] // CHANNELS
    row = blocks * CHANNELS                                    # z's row length
    panel = kh * kw * c_per_group * CHANNELS                   # one block's weights
    # Without dilation or groups, the kw taps of a kernel row read kw
    # neighbouring pixels: kw*C consecutive floats, one run for the inner
    # loop (AlexNet's conv1: 33 steps instead of 11 runs of 3 channels).
    one_run = dilation == 1 and c_per_group == c_in
    taps_apart, run = (1, kw * c_in) if one_run else (kw, c_per_group)
    for task in prange(blocks * tiles):
        block, tile = task // tiles, task % tiles
        first, last = tile * PIXELS, pixels - 1
        channel0 = (block // blocks_per_group) * c_per_group   # the block's group
        a0 = _pixel_start(first, ho, wo, wp, hp, c_in, stride) + channel0
        a1 = _pixel_start(min(first + 1, last), ho, wo, wp, hp, c_in, stride) + channel0
        a2 = _pixel_start(min(first + 2, last), ho, wo, wp, hp, c_in, stride) + channel0
        a3 = _pixel_start(min(first + 3, last), ho, wo, wp, hp, c_in, stride) + channel0
        a4 = _pixel_start(min(first + 4, last), ho, wo, wp, hp, c_in, stride) + channel0
        a5 = _pixel_start(min(first + 5, last), ho, wo, wp, hp, c_in, stride) + channel0
        sums = zeros()
        for u in range(kh):
            for v in range(taps_apart):
                shift = (u * dilation * wp + v * dilation) * c_in
                weights = block * panel + (u * kw + v) * c_per_group * CHANNELS
                sums = multiply_add_run(xp, (a0 + shift, a1 + shift, a2 + shift, a3 + shift,
                                             a4 + shift, a5 + shift), packed, weights, run, sums)
        s00, s01, s10, s11, s20, s21, s30, s31, s40, s41, s50, s51 = sums
        o = block * CHANNELS
        bias0, bias1 = load8(bias, o), load8(bias, o + 8)
        real = min(PIXELS, pixels - first)
        _store(z, first * row + o, s00, s01, bias0, bias1, relu)
        if real > 1:
            _store(z, (first + 1) * row + o, s10, s11, bias0, bias1, relu)
        if real > 2:
            _store(z, (first + 2) * row + o, s20, s21, bias0, bias1, relu)
        if real > 3:
            _store(z, (first + 3) * row + o, s30, s31, bias0, bias1, relu)
        if real > 4:
            _store(z, (first + 4) * row + o, s40, s41, bias0, bias1, relu)
        if real > 5:
            _store(z, (first + 5) * row + o, s50, s51, bias0, bias1, relu)


def conv_direct(x, w, b, stride=1, padding=0, groups=1, dilation=1, relu=False, pool=None,
                u=None):
    """Version 11: pad x channels-last, then direct_conv. Any kernel, stride,
    padding, dilation and groups.

    x: (N, C, H, W) or a view of channels-last memory -> (N, O, Ho, Wo), a
    view of channels-last memory; pool=(kernel, stride, padding,
    ceil_mode) max-pools it in the same call; u: pack_weights(w, groups)
    if known (the weight as this version reads it; the Winograd versions'
    u is theirs). When every group's output channels are a multiple of
    16 and there is no pool, the kernel writes the output itself, bias and
    ReLU included; otherwise it writes raw sums to a scratch buffer, which
    is cut to the real channels and then biased or pooled.
    """
    n_img, c_in, h, wd = x.shape
    out_ch, c_per_group, kh, kw = w.shape
    o_per_group = out_ch // groups
    ho, wo = output_hw(x, w, stride, padding, dilation)
    packed = pack_weights(w, groups) if u is None else u
    blocks_per_group = -(-o_per_group // CHANNELS)
    o_padded = groups * blocks_per_group * CHANNELS
    y_hw = (ho, wo) if pool is None else tuple(
        shapes.conv_output_size(n, pool[0], pool[1], pool[2], ceil_mode=pool[3])
        for n in (ho, wo))
    y_channels_last = np.empty((n_img,) + y_hw + (out_ch,), dtype=np.float32)
    if min(n_img, ho, wo, out_ch) == 0:
        return y_channels_last.transpose(0, 3, 1, 2)
    hp, wp = h + 2 * padding, wd + 2 * padding
    xp = scratch.take("direct padded", n_img * hp * wp * c_in).reshape(n_img, hp, wp, c_in)
    x_channels_last = x.transpose(0, 2, 3, 1)
    if x_channels_last.flags.c_contiguous:
        pad_rows(x_channels_last, padding, xp)
    else:
        pad_channels_last(np.ascontiguousarray(x), padding, xp)
    finished = pool is None and o_padded == out_ch           # the kernel writes y itself
    pixels = n_img * ho * wo
    z = (y_channels_last.reshape(-1) if finished
         else scratch.take("direct output", pixels * o_padded))
    bias = b if finished else np.zeros(o_padded, dtype=np.float32)
    direct_conv(xp.reshape(-1), (hp, wp), c_in, packed, (kh, kw), c_per_group,
                blocks_per_group, stride, dilation, n_img, (ho, wo),
                np.ascontiguousarray(bias, dtype=np.float32), relu and finished, z)
    if not finished:
        sums = z.reshape(pixels, groups, blocks_per_group * CHANNELS)[:, :, :o_per_group]
        sums = np.ascontiguousarray(sums).reshape(pixels, out_ch)     # the real channels
        if pool is None:
            add_bias_in_place(sums, b, relu)
            y_channels_last.reshape(pixels, out_ch)[:] = sums
        else:
            kernel, pool_stride, pool_padding, _ = pool
            pooling.max_pool_pixels_major(sums, ho, wo, (ho, wo), kernel, pool_stride,
                                          pool_padding, b, relu, y_channels_last)
    return y_channels_last.transpose(0, 3, 1, 2)
