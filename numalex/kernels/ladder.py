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
    12    numalex/kernels/winograd_products.py
                                           Winograd F(4x4, 3x3), register-blocked products
    13    numalex/kernels/winograd_products.py
                                           space-to-depth + version 12
"""
from __future__ import annotations

from . import (conv, conv_direct, conv_im2row, conv_shifted, winograd, winograd_f4,
               winograd_products)

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
    "12 Winograd F(4x4, 3x3), register-blocked products": winograd_products.conv_winograd_products,
    "13 space-to-depth + Winograd F(4x4, 3x3), register-blocked products":
        winograd_products.conv_space_to_depth_winograd_products,
}

# Versions that compute only some convolutions, and which: the others raise
# ValueError. Arguments: (kernel_hw, stride, dilation).
LIMITED = {
    "5 shifted GEMM": lambda kernel_hw, stride, dilation: stride == 1,
    "8 Winograd F(2x2, 3x3)": winograd.supports,
    "9 Winograd F(4x4, 3x3)": winograd.supports,
    "10 space-to-depth + Winograd F(4x4, 3x3)": winograd_f4.folds_to_winograd,
    "12 Winograd F(4x4, 3x3), register-blocked products": winograd.supports,
    "13 space-to-depth + Winograd F(4x4, 3x3), register-blocked products":
        winograd_f4.folds_to_winograd,
}
# Versions for larger strides: at stride 1 they are another version plus a
# copy (space-to-depth folds nothing), so the benchmark does not time them there.
STRIDED_ONLY = {"7 space-to-depth + shifted GEMM", "10 space-to-depth + Winograd F(4x4, 3x3)",
                "13 space-to-depth + Winograd F(4x4, 3x3), register-blocked products"}


def computes(version: str, kernel_hw, stride: int, dilation: int) -> bool:
    """Can `version` compute a convolution with this kernel, stride and dilation?"""
    limit = LIMITED.get(version)
    return limit is None or limit(tuple(kernel_hw), stride, dilation)


# Versions that take pool=(kernel, stride, padding, ceil_mode), a max pool
# after the convolution (and its ReLU), fused into their epilogue.
TAKES_POOL = {"5 shifted GEMM", "7 space-to-depth + shifted GEMM", "8 Winograd F(2x2, 3x3)",
              "9 Winograd F(4x4, 3x3)", "10 space-to-depth + Winograd F(4x4, 3x3)",
              "11 direct, register-blocked",
              "12 Winograd F(4x4, 3x3), register-blocked products",
              "13 space-to-depth + Winograd F(4x4, 3x3), register-blocked products"}
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
    "12 Winograd F(4x4, 3x3), register-blocked products":
        lambda w, stride, dilation, groups: winograd_products.transformed_panels(w, groups),
    "13 space-to-depth + Winograd F(4x4, 3x3), register-blocked products":
        lambda w, stride, dilation, groups: winograd_products.folded_panels(w, stride, dilation,
                                                                           groups),
}

# What the numba backend runs. Every convolution Winograd can take (stride
# 1, kernels from 2 x 2: AlexNet's conv2-5) runs version 12 at any batch.
# On AlexNet-224, whole forward passes, alternating in one process on two
# Zen 3 cores: batch 1, 22.9 ms against 25.2 for the direct kernel
# (version 11); per image at batch 8, 9.7 against 10.1 for version 9
# (OpenBLAS's products), at batch 32, 8.4 against 8.6. The others (conv1,
# stride 4): below LARGE_BATCH images the direct kernel, which needs no
# im2col and no OpenBLAS (at batch 1, 27 ms a pass against 35 for im2col +
# GEMM and space-to-depth; version 13 saves 3% of conv1 alone there, and
# nothing measurable in the pass); from LARGE_BATCH on, space-to-depth into
# a stride-1 problem and version 12's products (version 13; conv1 at batch
# 32: 43.8 ms against 47.4 for version 10, OpenBLAS's products, and 47.2
# for the direct kernel). So from batch 8 AlexNet's forward pass makes no
# BLAS call either. Kernels that fold to less than 2 x 2 and dilated ones
# keep OpenBLAS's shifted GEMMs (versions 5 and 7) at large batches.
LARGE_BATCH = 8


def choose(kernel_hw, stride: int, dilation: int, batch: int) -> str:
    """The version the numba backend runs for one convolution."""
    if winograd.supports(kernel_hw, stride, dilation):
        return "12 Winograd F(4x4, 3x3), register-blocked products"
    if batch < LARGE_BATCH:
        return "11 direct, register-blocked"
    if stride > 1:
        if winograd_f4.folds_to_winograd(kernel_hw, stride, dilation):
            return "13 space-to-depth + Winograd F(4x4, 3x3), register-blocked products"
        return "7 space-to-depth + shifted GEMM"
    return "5 shifted GEMM"
