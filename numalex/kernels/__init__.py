"""Numba CPU kernels: the building blocks of the ``numba`` backend.

    ladder.py     the convolution ladder in order, validated and timed
                  side by side by benchmarks/conv_ladder.py:
    conv.py       naive loops -> reordered loops -> im2col + GEMM (1-4),
                  and what every version shares
    conv_shifted.py  -> shifted GEMMs (5); space-to-depth + shifted GEMMs (7)
    conv_im2row.py   -> im2row + GEMM (6)
    winograd.py   -> Winograd F(2x2, 3x3): 2.25x fewer multiply-adds for
                  3x3 kernels (and the driver every Winograd version uses)
    winograd_tiling.py  how that driver cuts a convolution up: kernels
                  into 3x3 blocks, outputs into tiles, images into rounds
    winograd_f4.py -> Winograd F(4x4, 3x3): 4x fewer; also after
                  space-to-depth, for strided kernels
    conv_direct.py -> direct convolution, register-blocked (11): no
                  im2col, no BLAS; the backend's choice for conv1 below
                  batch 8
    winograd_products.py -> F(4x4, 3x3) with its products on the
                  micro-kernel (12; 13 after space-to-depth): the
                  backend's choice for every other AlexNet convolution
    microkernel.py  the 6 x 16 block of sums in vector registers that
                  conv_direct, winograd_products and linear share
    simd.py       8-float vector registers for Numba kernels (intrinsics)
    blas.py       the BLAS calls the lower rungs make (a GEMM that can add
                  into its output and read windows of bigger arrays; a GEMV)
    parallel_gemm.py  many independent GEMMs at once, one per Numba thread,
                  each a single-threaded OpenBLAS call (the products of
                  Winograd versions 8-10)
    linear.py     fully connected layers: weights streamed once at small
                  batches, the micro-kernel above
    pooling.py    max pooling (floor and ceil mode, and fused into a conv's
                  epilogue), adaptive average pooling
    pointwise.py  ReLU and local response normalisation

The backward passes, one file per forward file:

    conv_backward.py       dW and dx of a convolution: two GEMMs per group,
                           im2col / col2im around them (im2row for
                           channels-last input)
    pool_backward.py       max pooling (to the first maximum) and adaptive
                           average pooling
    pointwise_backward.py  ReLU, LRN and dropout

Importing this package picks Numba's threading layer, before any parallel
kernel exists (the choice only takes effect then), unless
NUMBA_THREADING_LAYER says otherwise:

- ``omp`` (OpenMP) where Numba has it, with its idle threads spinning for a
  short while only: GOMP_SPINCOUNT=30000 (GNU OpenMP: about half a
  millisecond; set only while OpenMP loads, so child processes do not
  inherit it) and KMP_BLOCKTIME=1 (LLVM and Intel OpenMP: 1 ms), unless
  those are set already. A forward pass at batch 1 is a chain of short
  parallel kernels; threads that wait hot pick up the next one at once,
  where sleeping threads first have to be woken by the operating system
  (AlexNet-224 at batch 1 on 2 cores: 24 ms a pass against 29 with
  ``workqueue``). OpenMP's default spin (GNU: 300,000 rounds, Intel and
  LLVM: 200 ms) is too long: the spinning threads then steal the cores
  from the OpenBLAS GEMMs of the backward pass (a training step 1.5 ->
  1.7 s).
- ``workqueue`` otherwise: its threads sleep as soon as they are idle.

GNU OpenMP is not safe across fork(): a child process forked after a
parallel kernel ran must not run one. numalex starts its own processes
with spawn (Dask's default too).
"""
from __future__ import annotations

import os

import numba

# Spin settings for OpenMP's idle threads (see above); a user's own wins.
OPENMP_SPIN = {"GOMP_SPINCOUNT": "30000", "KMP_BLOCKTIME": "1"}


def openmp_available() -> bool:
    """Can Numba load its OpenMP threading layer here? (Loads OpenMP, which
    reads its spin settings from the environment at that moment.)"""
    try:
        from numba.np.ufunc import omppool  # noqa: F401
    except ImportError:
        return False
    return True


def choose_threading_layer(environ=os.environ) -> str:
    """Use `omp` with a short spin where Numba has it, else `workqueue`,
    unless the user set NUMBA_THREADING_LAYER; return the choice."""
    if "NUMBA_THREADING_LAYER" in environ:
        return numba.config.THREADING_LAYER
    added = [name for name in OPENMP_SPIN if name not in environ]
    environ.update({name: OPENMP_SPIN[name] for name in added})
    found = openmp_available()
    numba.config.THREADING_LAYER = "omp" if found else "workqueue"
    # GNU OpenMP read GOMP_SPINCOUNT when it loaded, just now: take it out
    # again so that child processes (PyTorch's OpenMP in a benchmark's
    # worker) keep their own default. KMP_BLOCKTIME stays while OpenMP is
    # the choice: LLVM's and Intel's OpenMP read it at their first parallel
    # kernel.
    for name in added:
        if not found or name == "GOMP_SPINCOUNT":
            del environ[name]
    return numba.config.THREADING_LAYER


choose_threading_layer()
