"""The CUDA backend: numba.cuda kernels written in numalex; activations stay
on the device.

Same contract as the NumPy reference (numpy_ref.py), with device arrays:
``to_backend`` uploads the input once, every op takes and returns device
arrays, ``to_numpy`` copies the logits back once. ``prepare_params`` uploads
the weights; the Model keeps the result, so weights cross the bus once per
model, not once per forward.

    conv2d, linear           implicit GEMM, the version cuda_ladder.choose picks:
                             register-blocked (cuda_gemm_blocked.py) for large
                             layers, shared-memory tiles (cuda_gemm.py) for small
    relu, max_pool2d,        one thread per output element (cuda_windows.py)
    adaptive_avg_pool2d, lrn
    OP_backward, dropout     one thread per gradient element (cuda_backward.py)

Launch shapes are arguments, never frozen: ``version=`` and ``tiles=`` for
the GEMM (default: cuda_ladder.choose) and ``threads=`` for the others.
conv2d and linear take ``relu=True`` to fuse the ReLU into their epilogue.

Without a GPU, the kernels run in Numba's CUDA simulator when
NUMBA_ENABLE_CUDASIM=1 is set before numba is imported (slow: Python runs
every thread; see is_simulator). With neither, importing this module raises
BackendUnavailable saying so.
"""
from __future__ import annotations

import os
import time
from functools import lru_cache

import numpy as np

from . import BackendUnavailable, checks
from ..shapes import adaptive_bins

name = "cuda"
FUSES_RELU = True      # conv2d and linear take relu=True (see Model._plan)


def _import_cuda():
    """numba.cuda, or BackendUnavailable explaining what is missing."""
    install = "numba-cuda is the `cuda` extra: pip install 'numalex[cuda]'"
    simulate = ("to run the kernels without a GPU (slowly, for testing), set "
                "NUMBA_ENABLE_CUDASIM=1 before numba is imported, e.g. "
                "NUMBA_ENABLE_CUDASIM=1 python script.py")
    try:
        from numba import cuda
    except ImportError as err:
        raise BackendUnavailable(f"backend 'cuda' cannot import numba.cuda ({err}); "
                                 f"{install}") from None
    if not cuda.is_available():
        late = ""
        if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") != "0":
            late = (" NUMBA_ENABLE_CUDASIM is set, but numba was imported before it "
                    "was set, so it has no effect.")
        raise BackendUnavailable(
            f"backend 'cuda' needs an NVIDIA GPU with its driver, or Numba's CUDA "
            f"simulator, and neither is available here.{late} To use a GPU, install "
            f"its driver; {simulate}. ({install}.)")
    return cuda


cuda = _import_cuda()

from . import cuda_ladder as ladder  # noqa: E402
from .cuda_gemm import GemmTiles  # noqa: E402
from .cuda_gemm_blocked import BlockedTiles  # noqa: E402,F401  (for callers' tiles=)
from . import cuda_linear as rows_linear  # noqa: E402
from .cuda_linear import ROWS_MIN_WEIGHTS, SMALL_BATCH  # noqa: E402
from .cuda_windows import (adaptive_avg_kernel, blocks, lrn_kernel,  # noqa: E402
                           max_pool_kernel, relu_kernel)
from .cuda_backward import (adaptive_avg_pool2d_backward, conv2d_backward,  # noqa: E402,F401
                            dropout, dropout_backward, linear_backward, lrn_backward,
                            max_pool2d_backward, relu_backward)

DEFAULT_THREADS = 256                    # block size of the one-thread-per-output kernels


def is_simulator() -> bool:
    """True when the kernels run in Numba's CUDA simulator, not on a GPU.

    The simulator runs every GPU thread as a Python thread, at some 5 to 50
    microseconds per multiply-add (the more the machine is loaded, the
    slower; numalex.commands.run keeps its measurements): seconds for a small
    net (width 1/16, 67x67), hours for a full-size AlexNet forward. Timings
    there mean nothing.
    """
    return bool(cuda.config.ENABLE_CUDASIM)


# ---- plumbing ---------------------------------------------------------------
def _on_device(x) -> bool:
    return hasattr(x, "copy_to_host")            # DeviceNDArray, or the simulator's fake


def to_backend(x):
    """Host array -> float32 C-contiguous device array (device arrays pass through)."""
    if _on_device(x):
        return x
    return cuda.to_device(np.ascontiguousarray(x, dtype=np.float32))


def to_numpy(x) -> np.ndarray:
    """Device array -> host NumPy array (one copy over the bus)."""
    return x.copy_to_host() if _on_device(x) else np.asarray(x)


def prepare_params(params: dict) -> dict:
    """Upload every weight once; the Model caches the result per model."""
    return {key: to_backend(value) for key, value in params.items()}


def synchronize() -> None:
    """Wait until every queued kernel has finished (for honest timings)."""
    cuda.synchronize()


def timed(run, *args):
    """(run(*args), seconds) measured with CUDA events on a GPU, so the time is the
    kernels' own, not the host's. The simulator has no device clock: there it
    is the wall clock around the call and a synchronize."""
    if is_simulator():
        start = time.perf_counter()
        result = run(*args)
        cuda.synchronize()
        return result, time.perf_counter() - start
    begin, end = cuda.event(), cuda.event()
    begin.record()
    result = run(*args)
    end.record()
    end.synchronize()
    return result, cuda.event_elapsed_time(begin, end) / 1e3


def _device(a, op: str, what: str):
    """`a` as a float32 device array, or a clear error (shapes: see checks.py)."""
    a = a if _on_device(a) else cuda.to_device(checks.float32_array(a, op, what))
    if a.dtype != np.float32:
        raise TypeError(f"{op}: {what} must be float32, got {a.dtype}")
    return a


# ---- ops --------------------------------------------------------------------
def conv2d(x, w, b, stride=1, padding=0, groups=1, dilation=1, relu=False, tiles=None,
           version=None):
    """Cross-correlation by one rung of the ladder in cuda_ladder.py, one launch
    for all groups.

    x: (N, C, H, W), w: (O, C/groups, kh, kw), b: (O,) -> (N, O, Ho, Wo).
    relu=True applies max(y, 0) in the same kernel. version: 1-5, or None for
    cuda_ladder.choose_conv's pick for this shape; tiles: that version's tile
    sizes (GemmTiles for 2, BlockedTiles for 3 and 4), or None for its
    default. A GemmTiles alone selects version 2.
    """
    x, w, b = (_device(a, "conv2d", what) for a, what in
               ((x, "input x"), (w, "weight"), (b, "bias")))
    n, out_ch, out_h, out_w = checks.conv2d_shape(x.shape, w.shape, b.shape, stride, padding,
                                                  groups, dilation)
    y = cuda.device_array((n, out_ch, out_h, out_w), dtype=np.float32)
    rows, cols = out_ch // groups, n * out_h * out_w
    if version is None and tiles is None:
        version, tiles = ladder.choose_conv(w.shape, stride, dilation, groups, cols)
    elif version is None:
        version = 2 if isinstance(tiles, GemmTiles) else 4
    if tiles is None:
        tiles = ladder.default_tiles(version, rows, cols)
    ladder.run(version, tiles, x, w, b, y, stride, padding, groups, dilation, relu)
    return y


def linear(x, w, b, relu=False, tiles=None):
    """x: (N, in), w: (out, in), b: (out,) -> (N, out) = x w^T + b.

    Up to SMALL_BATCH samples, a weight of ROWS_MIN_WEIGHTS floats or more
    and no tiles asked for: one warp per output row (cuda_linear.py), which
    streams W at memory speed. Otherwise a linear
    layer is a 1x1 convolution of a 1x1 image with `in` channels, so it
    runs through conv2d's tiled GEMM (rows: out features, columns: the
    batch). relu and tiles as in conv2d.
    """
    x, w, b = (_device(a, "linear", what) for a, what in
               ((x, "input x"), (w, "weight"), (b, "bias")))
    n, out_features = checks.linear_shape(x.shape, w.shape, b.shape)
    features = x.shape[1]
    if 0 < n <= SMALL_BATCH and tiles is None and w.size >= ROWS_MIN_WEIGHTS:
        return rows_linear.by_rows(x, w, b, relu)
    y = conv2d(x.reshape(n, features, 1, 1), w.reshape(out_features, features, 1, 1), b,
               relu=relu, tiles=tiles)
    return y.reshape(n, out_features)


def relu(x, threads=DEFAULT_THREADS):
    """max(x, 0), elementwise, any shape."""
    x = _device(x, "relu", "input x")
    y = cuda.device_array(x.shape, dtype=np.float32)
    relu_kernel[blocks(x.size, threads), threads](x.reshape(x.size), y.reshape(y.size))
    return y


def max_pool2d(x, kernel, stride, padding=0, ceil_mode=False, threads=DEFAULT_THREADS):
    """Max over k x k windows; ceil_mode keeps a partial last window.

    x: (N, C, H, W) -> (N, C, Ho, Wo), sizes from shapes.conv_output_size.
    """
    x = _device(x, "max_pool2d", "input x")
    y = cuda.device_array(checks.max_pool2d_shape(x.shape, kernel, stride, padding, ceil_mode),
                          dtype=np.float32)
    max_pool_kernel[blocks(y.size, threads), threads](x, y, kernel, stride, padding)
    return y


@lru_cache(maxsize=None)
def _bins_on_device(n: int, out: int):
    """shapes.adaptive_bins(n, out) as an (out, 2) int32 device array, uploaded
    once per size so a forward pass copies nothing but its input."""
    return cuda.to_device(np.array(adaptive_bins(n, out), dtype=np.int32))


def adaptive_avg_pool2d(x, out_hw, threads=DEFAULT_THREADS):
    """Average over PyTorch's adaptive bins. x: (N, C, H, W) -> (N, C, oh, ow)."""
    x = _device(x, "adaptive_avg_pool2d", "input x")
    n, channels, out_h, out_w = checks.adaptive_avg_pool2d_shape(x.shape, out_hw)
    row_bins = _bins_on_device(x.shape[2], out_h)
    col_bins = _bins_on_device(x.shape[3], out_w)
    y = cuda.device_array((n, channels, out_h, out_w), dtype=np.float32)
    adaptive_avg_kernel[blocks(y.size, threads), threads](x, row_bins, col_bins, y)
    return y


def lrn(x, size, alpha, beta, k, threads=DEFAULT_THREADS):
    """Local response normalisation across channels (Caffe / PyTorch).

    x: (N, C, H, W). y = x / (k + alpha/size * sum of x^2 over `size`
    neighbouring channels)^beta.
    """
    x = _device(x, "lrn", "input x")
    checks.lrn_shape(x.shape, size)
    y = cuda.device_array(x.shape, dtype=np.float32)
    lrn_kernel[blocks(y.size, threads), threads](x, y, size, np.float32(alpha / size),
                                                 np.float32(beta), np.float32(k))
    return y
