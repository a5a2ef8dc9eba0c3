"""Version 1 of the GPU convolution ladder: one thread per output, global memory only.

The definition of a convolution, run by a million threads:

    y[n, o, i, j] = b[o] + sum over c, u, v of
                    w[o, c, u, v] * x[n, g*C/groups + c, i*s - p + u*d, j*s - p + v*d]

Thread t computes the output at flat NCHW position t (neighbouring threads:
neighbouring columns j, so the writes are coalesced). Every multiply-add
reads two values from global memory and nothing is reused on chip: the
kernel is limited by memory traffic, one FMA per 8 bytes loaded. The rest
of the ladder (cuda_gemm.py, cuda_gemm_blocked.py) is about reusing each
loaded value many times.
"""
from __future__ import annotations

from numba import cuda, float32

from .cuda_windows import nchw_index


@cuda.jit
def conv_naive_kernel(x, w, b, y, stride, padding, groups, dilation, relu):
    """x: (N, C, H, W), w: (O, C/groups, kh, kw), b: (O,) -> y: (N, O, Ho, Wo).

    Launch with ``[blocks(y.size, threads), threads]``; relu fuses max(y, 0).
    """
    idx = cuda.grid(1)
    _, channels, height, width = x.shape
    out_ch, c_per_group, kh, kw = w.shape
    _, _, out_h, out_w = y.shape
    if idx < y.size:
        n, o, i, j = nchw_index(idx, out_ch, out_h, out_w)
        c_base = (o // (out_ch // groups)) * c_per_group
        total = b[o]
        for c in range(c_per_group):
            for u in range(kh):
                hi = i * stride - padding + u * dilation
                if 0 <= hi < height:
                    for v in range(kw):
                        wi = j * stride - padding + v * dilation
                        if 0 <= wi < width:
                            total += w[o, c, u, v] * x[n, c_base + c, hi, wi]
        if relu and total < 0:
            total = float32(0.0)
        y[n, o, i, j] = total
