"""How a Winograd convolution is cut up: kernels into 3 x 3 blocks, outputs
into tiles, images into rounds (numalex/kernels/winograd.py runs the plan).

split_kernel cuts a larger kernel into the 3 x 3 blocks that Winograd's
F(m x m, 3 x 3) takes; block_plan says where each block reads the input
(an offset inside a tile, a slot, and a shift by whole tiles); tiling
derives every size the driver needs from the shapes, once per shape.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from ..shapes import conv_output_size


def split_kernel(w: np.ndarray) -> np.ndarray:
    """Cut a k x k kernel into 3 x 3 blocks at offsets (2*bu, 2*bv) that add
    up to it: (O, Cg, kh, kw) -> (kh//2, kw//2, O, Cg, 3, 3). Along each
    axis block b takes taps 2b and 2b + 1, the last block the rest (two or
    three); missing taps are zeros. A 3x3 kernel is one block, itself."""
    out_ch, c_per_group, kh, kw = w.shape
    blocks_h, blocks_w = kh // 2, kw // 2
    blocks = np.zeros((blocks_h, blocks_w, out_ch, c_per_group, 3, 3), dtype=np.float32)
    for bu in range(blocks_h):
        r0, r1 = 2 * bu, (kh if bu == blocks_h - 1 else 2 * bu + 2)
        for bv in range(blocks_w):
            q0, q1 = 2 * bv, (kw if bv == blocks_w - 1 else 2 * bv + 2)
            blocks[bu, bv, :, :, :r1 - r0, :q1 - q0] = w[:, :, r0:r1, q0:q1]
    return blocks


def block_plan(blocks_hw, tile: int) -> tuple[list, list, list]:
    """Where the 3 x 3 blocks of split_kernel read their input, for tiles of
    `tile` outputs: (slots, shifts, table).

    Block (bu, bv) reads the input 2*bu rows and 2*bv columns on: a whole
    number of tiles (th, tw) plus an offset into a tile (rh, rw). Each
    distinct offset is a slot with an input transform V of its own; each
    distinct whole-tile shift is one set of GEMMs on V shifted by th rows
    and tw columns of tiles. table[shift][slot] is the block there, or None.
    F(2x2, 3x3) on a 5 x 5 kernel: one slot, four shifts; F(4x4, 3x3): four
    slots (offsets 0 and 2 both ways), one shift.
    """
    where = {}
    for bu in range(blocks_hw[0]):
        for bv in range(blocks_hw[1]):
            (th, rh), (tw, rw) = divmod(2 * bu, tile), divmod(2 * bv, tile)
            where[bu, bv] = ((th, tw), (rh, rw))
    shifts = sorted({shift for shift, _ in where.values()})
    slots = sorted({slot for _, slot in where.values()})
    table = [[None] * len(slots) for _ in shifts]
    for block, (shift, slot) in where.items():
        table[shifts.index(shift)][slots.index(slot)] = block
    return slots, shifts, table


class Tiling(NamedTuple):
    """How conv_winograd lays one convolution out in tiles (see tiling)."""

    out_hw: tuple           # (Ho, Wo): the convolution's output
    y_hw: tuple             # what conv_winograd returns: (Ho, Wo), or the pooled size
    slots: list             # block_plan's input offsets inside a tile
    slot_offsets: np.ndarray    # the same as a read-only (K, 2) int64 array, for the kernels
    shifts: list            # block_plan's whole-tile shifts
    frame_hw: tuple         # (Fh, Fw): tiles per image, rows and columns
    frame: int              # Fh * Fw
    tail: int               # rows of V past the last image that the last shifts read
    padded: tuple           # (Hp, Wp): the zero-padded input that the tiles read
    depth: int              # V's channels: slots * C
    points: int             # alpha^2: products per tile
    chunk: int              # images per round, so V and M stay within the budget


@functools.lru_cache(maxsize=256)
def tiling(x_shape, w_shape, padding, pool, tile, alpha, budget) -> Tiling:
    """Every size conv_winograd derives from the shapes, worked out once per
    combination: a forward pass asks the same questions every time, and
    answering them in Python again took a noticeable part of a batch-1 layer.

    x_shape: (N, C, H, W), w_shape: (O, Cg, kh, kw), pool: None or
    (kernel, stride, padding, ceil_mode), tile and alpha: the scheme's.
    The frame has as many tiles more than the output needs as the largest
    shift (junk, never read back), and the padded input as many rows and
    columns as the last tile of the last slot reads."""
    n_img, c_in, h, wd = x_shape
    out_ch, _, kh, kw = w_shape
    ho, wo = conv_output_size(h, kh, 1, padding), conv_output_size(wd, kw, 1, padding)
    slots, shifts, _ = block_plan((kh // 2, kw // 2), tile)
    frame_hw = (-(-ho // tile) + max(th for th, _ in shifts),
                -(-wo // tile) + max(tw for _, tw in shifts))
    frame = frame_hw[0] * frame_hw[1]
    tail = max(th * frame_hw[1] + tw for th, tw in shifts)
    y_hw = (ho, wo) if pool is None else tuple(
        conv_output_size(n, pool[0], pool[1], pool[2], ceil_mode=pool[3]) for n in (ho, wo))
    reach = max(r for slot in slots for r in slot) + 2         # rows past the last tile's m
    padded = (tile * frame_hw[0] + reach, tile * frame_hw[1] + reach)
    depth, points = len(slots) * c_in, alpha ** 2
    per_image = 4 * (padded[0] * padded[1] * c_in + points * frame * (depth + out_ch)
                     + ho * wo * out_ch)
    chunk = -(-n_img // -(-n_img // max(1, budget // per_image)))   # equal chunks
    slot_offsets = np.array(slots, dtype=np.int64)
    slot_offsets.flags.writeable = False                         # shared by every call
    return Tiling((ho, wo), y_hw, slots, slot_offsets, shifts, frame_hw, frame, tail, padded,
                  depth, points, chunk)
