"""Numba CPU kernels: the building blocks of the ``numba`` backend.

    ladder.py     the convolution ladder in order, validated and timed
                  side by side by benchmarks/conv_ladder.py:
    conv.py       naive loops -> reordered loops -> im2col + GEMM (1-4),
                  and what every version shares
    conv_shifted.py  -> shifted GEMMs (5); space-to-depth + shifted GEMMs (7)
    conv_im2row.py   -> im2row + GEMM (6)
    winograd.py   -> Winograd F(2x2, 3x3): 2.25x fewer multiply-adds for
                  3x3 kernels (and the driver every Winograd version uses)
    winograd_f4.py -> Winograd F(4x4, 3x3): 4x fewer; also after
                  space-to-depth, for strided kernels
    blas.py       the BLAS calls the backend makes (a GEMM that can add into
                  its output and read windows of bigger arrays; a GEMV)
    parallel_gemm.py  many independent GEMMs at once, one per Numba thread,
                  each a single-threaded OpenBLAS call (Winograd's products,
                  row blocks of large-batch fully connected layers)
    linear.py     small-batch fully connected layers that stream the weights
    pooling.py    max pooling (floor and ceil mode, and fused into a conv's
                  epilogue), adaptive average pooling
    pointwise.py  ReLU and local response normalisation

The backward passes, one file per forward file:

    conv_backward.py       dW and dx of a convolution: two GEMMs per group,
                           im2col / col2im around them
    pool_backward.py       max pooling (to the first maximum) and adaptive
                           average pooling
    pointwise_backward.py  ReLU, LRN and dropout

Importing this package picks Numba's threading layer. Numba's default here
is OpenMP, whose worker threads keep spinning after a parallel kernel ends;
on a 2-core machine they steal the cores OpenBLAS needs for the GEMM that
runs next (about 3x slower). The ``workqueue`` layer's threads sleep when
idle, so numalex chooses it, unless NUMBA_THREADING_LAYER says otherwise.
The choice only takes effect if no parallel kernel has run yet in this
process, so it is made here, before any kernel exists.
"""
from __future__ import annotations

import os

import numba


def choose_threading_layer(environ=os.environ) -> str:
    """Use `workqueue` unless the user set NUMBA_THREADING_LAYER; return the choice."""
    if "NUMBA_THREADING_LAYER" not in environ:
        numba.config.THREADING_LAYER = "workqueue"
    return numba.config.THREADING_LAYER


choose_threading_layer()
