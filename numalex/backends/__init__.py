"""Backends: one module each, all exporting the same functions.

The contract (NCHW float32 in, NCHW float32 out)::

    conv2d(x, w, b, stride, padding, groups=1, dilation=1)
    max_pool2d(x, kernel, stride, padding=0, ceil_mode=False)
    adaptive_avg_pool2d(x, out_hw)
    lrn(x, size, alpha, beta, k)
    relu(x)
    linear(x, w, b)

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

MODULES = {"numpy": "numpy_ref", "numba": "numba_cpu", "cuda": "numba_cuda"}


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

