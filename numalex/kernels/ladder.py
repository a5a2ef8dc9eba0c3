"""The convolution ladder, in order: every way numalex computes conv2d on
the CPU, from the definition to the fastest, for benchmarks/conv_ladder.py
(which validates and times them side by side) and for the tests.

    1-7  numalex/kernels/conv.py      loops, im2col/im2row + GEMM, shifted
                                      GEMMs, space-to-depth
    8    numalex/kernels/winograd.py  Winograd F(2x2, 3x3)
"""
from __future__ import annotations

from . import conv, winograd

VERSIONS = {
    "1 naive": conv.conv_naive,
    "2 reordered": conv.conv_reordered,
    "3 im2col + GEMM": conv.conv_im2col,
    "4 batched im2col + GEMM": conv.conv_im2col_batched,
    "5 shifted GEMM": conv.conv_shifted_gemm,
    "6 im2row + GEMM": conv.conv_im2row,
    "7 space-to-depth + shifted GEMM": conv.conv_space_to_depth,
    "8 Winograd F(2x2, 3x3)": winograd.conv_winograd,
}

# Versions that compute only some convolutions, and which: the others raise
# ValueError. Arguments: (kernel_hw, stride, dilation).
LIMITED = {
    "5 shifted GEMM": lambda kernel_hw, stride, dilation: stride == 1,
    "8 Winograd F(2x2, 3x3)": winograd.supports,
}
# Versions for larger strides: at stride 1 they are another version plus a
# copy (space-to-depth folds nothing), so the benchmark does not time them there.
STRIDED_ONLY = {"7 space-to-depth + shifted GEMM"}


def computes(version: str, kernel_hw, stride: int, dilation: int) -> bool:
    """Can `version` compute a convolution with this kernel, stride and dilation?"""
    limit = LIMITED.get(version)
    return limit is None or limit(tuple(kernel_hw), stride, dilation)
