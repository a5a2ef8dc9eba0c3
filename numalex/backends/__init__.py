"""Backends: one module each, all exporting the same functions.

The contract (NCHW float32 in, NCHW float32 out)::

    conv2d(x, w, b, stride, padding, groups=1, dilation=1)
    max_pool2d(x, kernel, stride, padding=0, ceil_mode=False)
    adaptive_avg_pool2d(x, out_hw)
    lrn(x, size, alpha, beta, k)
    relu(x)
    linear(x, w, b)

and their backward passes (``OP_backward(dy, *the forward's own arguments)``
returns the gradients of the forward's array arguments; see
numalex/backends/numpy_backward.py)::

    conv2d_backward(dy, x, w, b, stride=1, padding=0, groups=1, dilation=1) -> (dx, dw, db)
        (a backend may also take need_dx=False, then dx is None: numalex.backprop
        uses it for a network's first layer)
    linear_backward(dy, x, w, b) -> (dx, dw, db)
    max_pool2d_backward(dy, x, kernel, stride, padding=0, ceil_mode=False) -> dx
    adaptive_avg_pool2d_backward(dy, x, out_hw) -> dx
    lrn_backward(dy, x, size, alpha, beta, k) -> dx
    relu_backward(dy, x) -> dx
    dropout(x, p, rng) -> (y, mask);  dropout_backward(dy, mask, p) -> dx

plus the plumbing a forward pass needs: ``to_backend(host_array)``,
``to_numpy(array)``, ``prepare_params(dict)`` (weights as the backend keeps
them, e.g. uploaded once to a GPU) and ``synchronize()`` (for timings).

A backend may fuse behind the contract: one that sets ``FUSES_RELU = True``
also accepts ``relu=True`` on ``conv2d`` and ``linear``, and Model.forward
then folds each ReLU into the layer before it; one that also sets
``FUSES_POOL = True`` accepts ``pool=(kernel, stride, padding, ceil_mode)``
on ``conv2d`` (a max pool after the ReLU), and Model.forward folds each
Conv2d -> ReLU -> MaxPool2d into one call (``trace`` never fuses).
A backend with its own clock exports ``timed(fn, *args) -> (result,
seconds)`` for ``trace`` (CUDA events); others are timed by the host clock.

    >>> from numalex import backends
    >>> backends.get("numpy").relu(x)
"""
from __future__ import annotations

import importlib

import numpy as np

MODULES = {"numpy": "numpy_ref", "numba": "numba_cpu", "cuda": "numba_cuda"}


# How far two backends' logits may differ: float32 sums in another order.
TOLERANCE = 1e-4


def relative_error(y, ref) -> float:
    """max |y - ref| / max |ref|: how far y is from ref, as a fraction of ref's scale."""
    return float(np.abs(y - ref).max() / max(float(np.abs(ref).max()), 1e-30))


class BackendUnavailable(RuntimeError):
    """The backend cannot run here; the message says what to install or set."""


def get(name: str):
    """The backend module called `name` ("numpy", "numba" or "cuda")."""
    if name not in MODULES:
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(MODULES)}")
    try:
        return importlib.import_module(f".{MODULES[name]}", __name__)
    except ModuleNotFoundError as err:
        if (err.name or "").startswith(__name__):
            raise                        # our own module is missing: a broken install
        raise BackendUnavailable(f"backend {name!r} needs the package {err.name!r}: "
                                 f"pip install {err.name}") from err


def available() -> list[str]:
    """Names of the backends that can run on this machine, in MODULES order."""
    names = []
    for name in MODULES:
        try:
            get(name)
        except BackendUnavailable:
            continue
        names.append(name)
    return names


# Fastest first, as measured by benchmarks/peers.py (BENCHMARKS.md).
SPEED_ORDER = ("cuda", "numba", "numpy")


def fastest(usable: list[str]) -> str:
    """The fastest of the backends named in `usable` (SPEED_ORDER); numpy,
    the reference, when none of the others is there."""
    return next((name for name in SPEED_ORDER if name in usable), "numpy")


def fastest_available() -> str:
    """The fastest backend that runs here at full speed: the CUDA simulator
    (NUMBA_ENABLE_CUDASIM=1) counts as unavailable, it is for tests."""
    usable = [name for name in available()
              if not getattr(get(name), "is_simulator", lambda: False)()]
    return fastest(usable)

