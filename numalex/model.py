"""Model: layer specs plus a dict of parameter arrays, run on any backend.

    model = numalex.alexnet("torchvision")
    logits = model(x, backend="numba")         # x: (N, 3, 224, 224) float32
    for r in model.trace(x): print(r.name, r.output_shape, r.seconds)

A forward pass checks the input, predicts every layer's output shape with
the formula (so a bad size fails before any work, naming the layer), then
folds the layers through one backend. Weights are converted for a backend
once (e.g. uploaded to the GPU) and kept until new weights are loaded.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from . import backends, backprop
from .layers import Conv2d, MaxPool2d, ReLU
from .shapes import ShapeError


class StateDictError(ValueError):
    """A state dict does not fit the model; lists missing/unexpected/mis-shaped keys."""

    def __init__(self, missing, unexpected, mismatched):
        self.missing, self.unexpected, self.mismatched = missing, unexpected, mismatched
        lines = ["state dict does not fit the model:"]
        if missing:
            lines.append(f"  missing ({len(missing)}): {', '.join(missing)}")
        if unexpected:
            lines.append(f"  unexpected ({len(unexpected)}): {', '.join(unexpected)}")
        for key, got, want in mismatched:
            lines.append(f"  mis-shaped: {key} is {got}, the model needs {want}")
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class LoadReport:
    """What load_state_dict(strict=False) left out."""

    missing: list
    unexpected: list


@dataclass(frozen=True)
class LayerRecord:
    """One layer of a traced forward pass. Shapes include the batch axis."""

    name: str
    type: str
    input_shape: tuple
    output_shape: tuple
    expected_shape: tuple
    seconds: float

    @property
    def ok(self) -> bool:
        """Did the kernel produce the shape the formula predicts?"""
        return self.output_shape == self.expected_shape


def check_input(x, channels: int = 3) -> np.ndarray:
    """Validate a batch of images and return it as float32.

    x: (N, channels, H, W) floating point, finite (every AlexNet takes RGB:
    3 channels). Errors say what is wrong and how to fix it, before any
    kernel sees the data. The shape and dtype are checked before anything is
    copied, so a wrong input of any size costs nothing; finiteness after the
    cast to float32, where a float64 1e300 has become inf.
    """
    if not isinstance(x, np.ndarray):
        raise TypeError(f"input must be a NumPy array of shape (N, {channels}, H, W), "
                        f"got {type(x).__name__}")
    if x.ndim != 4:
        hint = " (add a batch axis: x[None])" if x.ndim == 3 else ""
        raise ShapeError(f"input must have shape (N, C, H, W), got {x.shape}{hint}")
    if x.shape[3] == channels and x.shape[1] != channels:
        raise ShapeError(f"input {x.shape} looks channels-last (N, H, W, C); numalex takes "
                         f"(N, C, H, W): pass x.transpose(0, 3, 1, 2)")
    if x.shape[1] != channels:
        raise ShapeError(f"input must have {channels} input channels (RGB), got "
                         f"{x.shape[1]}: shape {x.shape}")
    if x.shape[0] == 0:
        raise ShapeError(f"input batch is empty: shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"input must be floating point (float32), got dtype {x.dtype}; "
                        f"convert images with x.astype(np.float32) and normalise them")
    with np.errstate(over="ignore"):             # overflow is reported just below
        x = x.astype(np.float32, copy=False)
    if not np.isfinite(x).all():
        raise ValueError("input contains NaN or infinity (as float32: values beyond "
                         "+-3.4e38 overflow)")
    return x


class Model:
    """An AlexNet variant: ordered (name, spec) layers and their parameters."""

    def __init__(self, variant: str, layers: list, input_size: int, params):
        """params: {key: array}, or a function returning one, called the first
        time the weights are needed (a summary never pays for 61M randoms)."""
        self.variant = variant
        self.layers = list(layers)
        self.input_size = input_size
        self._params = {}
        self._prepared = {}                      # backend name -> its copy of the weights
        self._fitting_inputs = set()             # per-sample input shapes every layer takes
        self._plans = {}                         # backend name -> (its params, _plan's steps)
        self._make_params = params if callable(params) else None
        if self._make_params is None:
            self.load_state_dict(params)

    def _materialize(self) -> None:
        if self._make_params is not None:
            make, self._make_params = self._make_params, None
            self.load_state_dict(make())

    # ---- shapes -------------------------------------------------------------
    @property
    def input_shape(self) -> tuple:
        """Per-sample input shape (3, S, S) the model was built for."""
        return (self.layers[0][1].in_channels, self.input_size, self.input_size)

    @property
    def num_classes(self) -> int:
        return self.layers[-1][1].out_features

    def expected_shapes(self, in_shape=None) -> list[tuple]:
        """Per-layer (input, output) shapes, per sample, from the formula.

        Raises ShapeError naming the first layer that cannot take its input.
        """
        shape = tuple(self.input_shape if in_shape is None else in_shape)
        result = []
        for name, spec in self.layers:
            out = spec.out_shape(shape, name)
            result.append((shape, out))
            shape = out
        return result

    # ---- parameters ---------------------------------------------------------
    def param_shapes(self) -> dict[str, tuple]:
        """{key: shape} for every parameter, e.g. 'conv1.weight': (96, 3, 11, 11)."""
        return {f"{name}.{suffix}": shape for name, spec in self.layers
                for suffix, shape in spec.param_shapes().items()}

    def num_params(self) -> int:
        return sum(math.prod(shape) for shape in self.param_shapes().values())

    def state_dict(self) -> dict[str, np.ndarray]:
        """{key: array}. The arrays are the model's own; to change weights,
        edit a copy and pass it to load_state_dict: backends keep their own
        prepared copies (numba: read-only, with Winograd transforms; cuda: on
        the device), which load_state_dict replaces."""
        self._materialize()
        return dict(self._params)

    def load_state_dict(self, state_dict: dict, strict: bool = True) -> LoadReport:
        """Replace parameters. Mis-shaped keys always fail; with strict=True
        (the default) missing and unexpected keys fail too. The error lists
        every problem at once."""
        if not strict:
            self._materialize()                  # what is not loaded keeps its values
        want = self.param_shapes()
        missing = [k for k in want if k not in state_dict]
        unexpected = [k for k in state_dict if k not in want]
        mismatched = [(k, tuple(np.shape(v)), want[k]) for k, v in state_dict.items()
                      if k in want and tuple(np.shape(v)) != want[k]]
        if mismatched or (strict and (missing or unexpected)):
            raise StateDictError(missing, unexpected, mismatched)
        loaded = {}
        for key in want:
            if key in state_dict:
                value = np.asarray(state_dict[key])
                if not np.issubdtype(value.dtype, np.number):
                    raise TypeError(f"parameter {key} has non-numeric dtype {value.dtype}")
                loaded[key] = np.ascontiguousarray(value, dtype=np.float32)
        self._make_params = None                 # loaded weights replace the random ones
        self._params.update(loaded)
        self._prepared.clear()
        return LoadReport(missing, unexpected)

    def _layer_params(self, backend) -> list[dict]:
        """Per layer, {'weight': ..., 'bias': ...} as `backend` keeps them."""
        self._materialize()
        if backend.name not in self._prepared:
            prepared = backend.prepare_params(self._params)
            self._prepared[backend.name] = [
                {suffix: prepared[f"{name}.{suffix}"] for suffix in spec.param_shapes()}
                for name, spec in self.layers]
        return self._prepared[backend.name]

    # ---- running ------------------------------------------------------------
    def _plan(self, backend) -> list[tuple]:
        """(spec, params, fused) steps for a forward pass; `fused` holds the
        keyword arguments for the layers a step absorbs. On a backend that
        fuses (FUSES_RELU), a Conv2d or Linear absorbs the ReLU after it:
        one kernel, one pass over memory, instead of two. On one that also
        sets FUSES_POOL, a Conv2d + ReLU absorbs the MaxPool2d after them
        too (pool=(kernel, stride, padding, ceil_mode)): the full-size
        convolution output is then never written."""
        params = self._layer_params(backend)      # a new list after load_state_dict
        known = self._plans.get(backend.name)
        if known is not None and known[0] is params:
            return known[1]
        fuse_relu = getattr(backend, "FUSES_RELU", False)
        fuse_pool = getattr(backend, "FUSES_POOL", False)
        specs = [spec for _, spec in self.layers]
        steps, i = [], 0
        while i < len(specs):
            spec, layer_params, fused = specs[i], params[i], {}
            i += 1
            if fuse_relu and spec.fuses_relu and _next_is(specs, i, ReLU):
                fused["relu"] = True
                i += 1
                if fuse_pool and isinstance(spec, Conv2d) and _next_is(specs, i, MaxPool2d):
                    fused["pool"] = specs[i].fused_args()
                    i += 1
            steps.append((spec, layer_params, fused))
        self._plans[backend.name] = (params, steps)
        return steps

    def forward(self, x, backend: str = "numpy") -> np.ndarray:
        """x: (N, 3, H, W) float32 -> logits (N, num_classes), float32."""
        x = check_input(x)
        if x.shape[1:] not in self._fitting_inputs:      # a bad size fails here, named
            self.expected_shapes(x.shape[1:])
            self._fitting_inputs.add(x.shape[1:])
        be = backends.get(backend)
        h = be.to_backend(x)
        for spec, params, fused in self._plan(be):
            h = spec.forward(be, h, params, **fused)
        return be.to_numpy(h)

    __call__ = forward

    def trace(self, x, backend: str = "numpy") -> list[LayerRecord]:
        """Run a forward pass layer by layer; record actual and expected shapes
        and the seconds each layer took: the wall clock with the backend
        synchronised around each layer, or the backend's own clock where it
        has one (`timed`: CUDA events). Nothing is fused, so every layer has
        its own time."""
        x = check_input(x)
        batch = x.shape[0]
        expected = self.expected_shapes(x.shape[1:])
        be = backends.get(backend)
        params = self._layer_params(be)
        timed = getattr(be, "timed", _wall_clock(be))
        h = be.to_backend(x)
        records = []
        for (name, spec), layer_params, (_, out) in zip(self.layers, params, expected):
            in_shape = tuple(h.shape)
            h, seconds = timed(spec.forward, be, h, layer_params)
            records.append(LayerRecord(name, type(spec).__name__, in_shape, tuple(h.shape),
                                       (batch,) + out, seconds))
        return records

    def loss_and_grads(self, x, labels, backend: str = "numpy", train: bool = False,
                       seed=None) -> tuple[float, dict]:
        """Mean cross-entropy of the logits against `labels`, and its gradient.

        x: (N, 3, H, W) float32, labels: (N,) class indices -> (loss, grads),
        grads {key: float32 array} keyed and shaped like state_dict(), on the
        host whatever the backend. train=True runs every Dropout with a mask
        drawn from np.random.default_rng(seed) (same seed, same mask);
        train=False treats dropout as the identity. Needs a backend with the
        backward ops (numalex.backprop.BACKWARD_OPS); layers are never fused.
        """
        return backprop.loss_and_grads(self, check_input(x), labels, backend, train, seed)

    def __repr__(self) -> str:
        return (f"Model({self.variant!r}, input {self.input_size}x{self.input_size}, "
                f"{self.num_classes} classes, {self.num_params():,} params)")


def _next_is(specs: list, i: int, kind: type) -> bool:
    return i < len(specs) and isinstance(specs[i], kind)


def _wall_clock(backend):
    """timed(run, *args) -> (run(*args), seconds) by the host clock, the
    backend synchronised before and after."""
    def timed(run, *args):
        backend.synchronize()
        start = time.perf_counter()
        result = run(*args)
        backend.synchronize()
        return result, time.perf_counter() - start
    return timed


def init_params(layers: list, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded random parameters: He-normal weights (std = sqrt(2/fan_in)) and
    PyTorch-style uniform biases in +-1/sqrt(fan_in)."""
    rng = np.random.default_rng(seed)
    params = {}
    for name, spec in layers:
        shapes = spec.param_shapes()
        if not shapes:
            continue
        fan_in = math.prod(shapes["weight"][1:])
        weight = rng.standard_normal(shapes["weight"], dtype=np.float32)
        weight *= np.float32(math.sqrt(2.0 / fan_in))
        params[f"{name}.weight"] = weight
        bound = 1.0 / math.sqrt(fan_in)
        params[f"{name}.bias"] = rng.uniform(-bound, bound, shapes["bias"]).astype(np.float32)
    return params
