"""The convolution ladder, in order: every way numalex computes conv2d on
the CPU, from the definition to the fastest, for benchmarks/conv_ladder.py
(which validates and times them side by side) and for the tests.

    1-4   numalex/kernels/conv.py          loops, im2col + GEMM
    5, 7  numalex/kernels/conv_shifted.py  shifted GEMMs, space-to-depth
    6     numalex/kernels/conv_im2row.py   im2row + GEMM
    8     numalex/kernels/winograd.py      Winograd F(2x2, 3x3)
    9     numalex/kernels/winograd_f4.py   Winograd F(4x4, 3x3)
    10    numalex/kernels/winograd_f4.py   space-to-depth + Winograd F(4x4, 3x3)
    11    numalex/kernels/conv_direct.py   direct, register-blocked (no im2col, no BLAS)
"""
from __future__ import annotations

from . import conv, conv_direct, conv_im2row, conv_shifted, winograd, winograd_f4

VERSIONS = {
    "1 naive": conv.conv_naive,
    "2 reordered": conv.conv_reordered,
    "3 im2col + GEMM": conv.conv_im2col,
    "4 batched im2col + GEMM": conv.conv_im2col_batched,
    "5 shifted GEMM": conv_shifted.conv_shifted_gemm,
    "6 im2row + GEMM": conv_im2row.conv_im2row,
    "7 space-to-depth + shifted GEMM": conv_shifted.conv_space_to_depth,
    "8 Winograd F(2x2, 3x3)": winograd.conv_winograd,
    "9 Winograd F(4x4, 3x3)": winograd_f4.conv_winograd_f4,
    "10 space-to-depth + Winograd F(4x4, 3x3)": winograd_f4.conv_space_to_depth_winograd,
    "11 direct, register-blocked": conv_direct.conv_direct,
}

# Versions that compute only some convolutions, and which: the others raise
# ValueError. Arguments: (kernel_hw, stride, dilation).
LIMITED = {
    "5 shifted GEMM": lambda kernel_hw, stride, dilation: stride == 1,
    "8 Winograd F(2x2, 3x3)": winograd.supports,
    "9 Winograd F(4x4, 3x3)": winograd.supports,
    "10 space-to-depth + Winograd F(4x4, 3x3)": winograd_f4.folds_to_winograd,
}
# Versions for larger strides: at stride 1 they are another version plus a
# copy (space-to-depth folds nothing), so the benchmark does not time them there.
STRIDED_ONLY = {"7 space-to-depth + shifted GEMM", "10 space-to-depth + Winograd F(4x4, 3x3)"}


def computes(version: str, kernel_hw, stride: int, dilation: int) -> bool:
    """Can `version` compute a convolution with this kernel, stride and dilation?"""
    limit = LIMITED.get(version)
    return limit is None or limit(tuple(kernel_hw), stride, dilation)


# Versions that take pool=(kernel, stride, padding, ceil_mode), a max pool
# after the convolution (and its ReLU), fused into their epilogue.
TAKES_POOL = {"5 shifted GEMM", "7 space-to-depth + shifted GEMM", "8 Winograd F(2x2, 3x3)",
              "9 Winograd F(4x4, 3x3)", "10 space-to-depth + Winograd F(4x4, 3x3)",
              "11 direct, register-blocked"}
# Versions that take u=, a transform of the weight a caller can compute once
# and keep: TRANSFORMS[version](w, stride, dilation, groups).
TRANSFORMS = {
    "8 Winograd F(2x2, 3x3)": lambda w, stride, dilation, groups: winograd.transformed_weights(w),
    "9 Winograd F(4x4, 3x3)":
        lambda w, stride, dilation, groups: winograd.transformed_weights(w, winograd_f4.F4),
    "10 space-to-depth + Winograd F(4x4, 3x3)":
        lambda w, stride, dilation, groups: winograd_f4.folded_transform(w, stride, dilation),
    "11 direct, register-blocked":
        lambda w, stride, dilation, groups: conv_direct.pack_weights(w, groups),
}

# From this many images on, convolutions take Winograd (version 9; for
# strides above 1 after space-to-depth, version 10). Measured on
# AlexNet-224's convs at batch 32 (one thread, CPU time): conv1 127 ms
# (version 10) vs 170 (7), conv2 184 (9) vs 336 (8), conv3 79 vs 107, conv4
# 108 vs 123, conv5 70 vs 76. Below it Winograd's 36 GEMMs per layer are
# tiny (16 rows for a 13 x 13 map at batch 1) and gain nothing, and the
# direct kernel (version 11) runs every layer without im2col and without
# OpenBLAS: AlexNet-224 at batch 1, whole forward pass, 27 ms against 35
# for im2col + GEMM (version 4) and space-to-depth (7); at batch 8 Winograd
# is ahead (9.7-11.6 ms an image against 13.4 for direct).
LARGE_BATCH = 8


def choose(kernel_hw, stride: int, dilation: int, batch: int) -> str:
    """The version the numba backend runs for one convolution."""
    if batch < LARGE_BATCH:
        return "11 direct, register-blocked"
    if stride > 1:
        if winograd_f4.folds_to_winograd(kernel_hw, stride, dilation):
            return "10 space-to-depth + Winograd F(4x4, 3x3)"
        return "7 space-to-depth + shifted GEMM"
    if winograd.supports(kernel_hw, stride, dilation):
        return "9 Winograd F(4x4, 3x3)"
    return "5 shifted GEMM"
