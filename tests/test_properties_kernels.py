"""Every backend's kernels against the loop oracles, each other and PyTorch.

For each backend that runs here (numpy, numba, and cuda under the simulator):
  * conv2d, max_pool2d and adaptive_avg_pool2d return the loop oracles'
    shape and values (tests/loop_oracles.py, which place their windows by
    walking the input). A backend allocates its output from the formula, so
    its shape checked against the formula could never fail: not done here;
  * the values equal the NumPy reference's and PyTorch's (conv2d, max_pool2d
    with ceil_mode, local_response_norm, adaptive_avg_pool2d), the seed's
    conv1 and pool1 included;
  * invalid calls are refused with ShapeError/ValueError showing the
    arithmetic, and a call is accepted exactly when PyTorch accepts it.

The CUDA simulator runs every GPU thread in Python (about 0.1 ms each), so
the cuda backend gets fewer and smaller cases (see `budget`).
"""
import math
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import loop_oracles as loops
from numalex import ShapeError, backends
from numalex.testing import (ConvCase, PoolCase, adaptive_pool_cases, conv_cases,
                             invalid_conv_cases, invalid_pool_cases, pool_cases)

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is the oracle here: "
                                 "pip install 'numalex[oracle]' (torch==2.13.0)")

BACKENDS = backends.available()
FAST_BACKENDS = [name for name in BACKENDS if name != "numpy"]


def budget(name):
    """(settings, size limits, largest pinned output) for one backend's properties.
    The simulator runs one Python thread per output value: a 55x55 pin is
    seconds there, so the seed's conv1 pins run on the CPU backends only."""
    if name == "cuda":
        return settings(max_examples=8), dict(max_size=8, max_channels=2, max_batch=1), 1000
    return settings(), dict(max_size=24, max_channels=3, max_batch=2), None


def check_property(name, strategy, check, pins=(), **caps):
    """Run check(case) on cases drawn from strategy(**limits) and on the
    pinned (case, why) examples, with the budget of backend `name`; caps
    lower its size limits further (e.g. for the slow loop oracles)."""
    test_settings, limits, largest_pin = budget(name)
    limits = {key: min(value, caps.get(key, value)) for key, value in limits.items()}

    def property_(case):
        check(case)

    test = given(strategy(**limits))(property_)
    for case, why in pins:
        if largest_pin is None or math.prod(case.expected_shape) <= largest_pin:
            test = example(case).via(why)(test)
    test_settings(test)()


def run(be, op, case, seed=0):
    """be.<op> on the case's seeded arrays, as a host NumPy array."""
    arrays = (be.to_backend(a) for a in case.arrays(seed))
    return be.to_numpy(getattr(be, op)(*arrays, **case.kwargs))


def close(y, ref):
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)


SEED_CONVS = [
    (ConvCase(1, 3, 1, 224, 224, 11, stride=4, padding=2),
     "torchvision conv1: (224 + 2*2 - 11)/4 + 1 = 55.25 -> 55"),
    (ConvCase(1, 3, 1, 227, 227, 11, stride=4), "the paper's conv1 at 227: 55 exactly"),
    (ConvCase(1, 3, 1, 224, 224, 11, stride=4), "the paper's conv1 at 224: 54.25 -> 54"),
]
SEED_POOLS = [
    (PoolCase(1, 1, 54, 54, 3, 2, ceil_mode=True), "Caffe's pool1 at 224: ceil gives 27"),
    (PoolCase(1, 1, 54, 54, 3, 2), "the same pool in floor mode gives 26"),
]
SEED_PINS = {"conv2d": SEED_CONVS, "max_pool2d": SEED_POOLS}


# ---- shapes and values: the loop oracles -----------------------------------------

LOOP_ORACLES = {
    "conv2d": (conv_cases, lambda case: loops.conv2d(
        *case.arrays(), case.stride, case.padding, case.groups, case.dilation)),
    "max_pool2d": (pool_cases, lambda case: loops.max_pool2d(
        *case.arrays(), case.kernel, case.stride, case.padding, case.ceil_mode)),
    "adaptive_avg_pool2d": (adaptive_pool_cases, lambda case: loops.adaptive_avg_pool2d(
        *case.arrays(), *case.out_hw)),
}
ORACLE_CAPS = dict(max_size=12, max_channels=2, max_batch=1)   # Python loops: keep them small


@pytest.mark.parametrize("op", list(LOOP_ORACLES))
@pytest.mark.parametrize("name", BACKENDS)
def test_shapes_and_values_equal_the_loop_oracles(name, op):
    be = backends.get(name)
    strategy, oracle = LOOP_ORACLES[op]
    check_property(name, strategy, lambda case: close(run(be, op, case), oracle(case)),
                   **ORACLE_CAPS)


# ---- refusals ------------------------------------------------------------------

def assert_refused_with_arithmetic(call, case):
    """call() must raise ShapeError/ValueError naming the number that is wrong."""
    with pytest.raises(ValueError) as err:       # ShapeError is a ValueError
        call()
    text = str(err.value)
    spans = case.spans if isinstance(case, ConvCase) else (case.kernel, case.kernel)
    if case.stride == 0:
        assert "stride" in text and "0" in text, text
    elif isinstance(case, PoolCase) and case.padding > case.kernel // 2:
        assert f"{case.padding}" in text and f"{case.kernel}//2" in text, text
    else:
        assert isinstance(err.value, ShapeError), text
        small = [(n, span) for n, span in zip((case.height, case.width), spans)
                 if n + 2 * case.padding < span]
        assert any(f"input size {n} is too small" in text and
                   f"- {span})/{case.stride} + 1 = " in text for n, span in small), text


@pytest.mark.parametrize("name", BACKENDS)
def test_invalid_convolutions_are_refused_with_the_arithmetic(name):
    be = backends.get(name)

    def check(case):
        x, w, b = (be.to_backend(a) for a in case.arrays())
        assert_refused_with_arithmetic(lambda: be.conv2d(x, w, b, **case.kwargs), case)

    settings(max_examples=20)(given(invalid_conv_cases())(check))()


@pytest.mark.parametrize("name", BACKENDS)
def test_invalid_pools_are_refused_with_the_arithmetic(name):
    be = backends.get(name)

    def check(case):
        x = be.to_backend(case.arrays()[0])
        assert_refused_with_arithmetic(lambda: be.max_pool2d(x, **case.kwargs), case)

    settings(max_examples=20)(given(invalid_pool_cases())(check))()


# ---- values: every backend equals the NumPy reference ---------------------------

@dataclass(frozen=True)
class LrnCase:
    """One lrn call on x (batch, channels, height, width), like numalex.testing's cases."""

    input_shape: tuple
    size: int
    alpha: float
    beta: float
    k: float

    def arrays(self, seed=0):
        return (np.random.default_rng(seed).standard_normal(self.input_shape)
                .astype(np.float32) * 4,)

    @property
    def kwargs(self):
        return {"size": self.size, "alpha": self.alpha, "beta": self.beta, "k": self.k}


@st.composite
def lrn_cases(draw, max_size=8, max_channels=8, max_batch=2):
    shape = (draw(st.integers(1, max_batch)), draw(st.integers(1, max_channels)),
             draw(st.integers(1, max_size)), draw(st.integers(1, max_size)))
    return LrnCase(shape, draw(st.integers(1, 7)), draw(st.floats(1e-4, 1.0)),
                   draw(st.floats(0.5, 1.0)), draw(st.floats(0.5, 2.0)))


@pytest.mark.parametrize("op, strategy", [("conv2d", conv_cases), ("max_pool2d", pool_cases),
                                          ("adaptive_avg_pool2d", adaptive_pool_cases),
                                          ("lrn", lrn_cases)])
@pytest.mark.parametrize("name", FAST_BACKENDS)
def test_values_equal_the_numpy_reference(name, op, strategy):
    be, ref = backends.get(name), backends.get("numpy")
    check_property(name, strategy, lambda case: close(run(be, op, case), run(ref, op, case)),
                   SEED_PINS.get(op, ()))


# ---- values and acceptance: every backend equals PyTorch -------------------------

def torch_conv2d(case):
    x, w, b = (torch.from_numpy(a) for a in case.arrays())
    return F.conv2d(x, w, b, stride=case.stride, padding=case.padding,
                    dilation=case.dilation, groups=case.groups).numpy()


def torch_max_pool2d(case):
    return F.max_pool2d(torch.from_numpy(case.arrays()[0]), case.kernel, case.stride,
                        case.padding, ceil_mode=case.ceil_mode).numpy()


def torch_adaptive_avg_pool2d(case):
    return F.adaptive_avg_pool2d(torch.from_numpy(case.arrays()[0]), case.out_hw).numpy()


def torch_lrn(case):
    return F.local_response_norm(torch.from_numpy(case.arrays()[0]), **case.kwargs).numpy()


TORCH_OPS = {"conv2d": (conv_cases, torch_conv2d),
             "max_pool2d": (pool_cases, torch_max_pool2d),
             "adaptive_avg_pool2d": (adaptive_pool_cases, torch_adaptive_avg_pool2d),
             "lrn": (lrn_cases, torch_lrn)}


@needs_torch
@pytest.mark.parametrize("op", list(TORCH_OPS))
@pytest.mark.parametrize("name", BACKENDS)
def test_values_equal_pytorch(name, op):
    be = backends.get(name)
    strategy, oracle = TORCH_OPS[op]
    check_property(name, strategy, lambda case: close(run(be, op, case), oracle(case)),
                   SEED_PINS.get(op, ()))


def outcome(call, refusal):
    """('ok', shape) or ('refused', None): what a library made of a call.
    Only `refusal` errors count as a refusal; anything else fails the test."""
    try:
        return "ok", tuple(call().shape)
    except refusal:
        return "refused", None


ACCEPTANCE = {
    "conv2d": (lambda **limits: st.one_of(conv_cases(**limits), invalid_conv_cases()),
               torch_conv2d),
    "max_pool2d": (lambda **limits: st.one_of(pool_cases(**limits), invalid_pool_cases()),
                   torch_max_pool2d),
}


@needs_torch
@pytest.mark.parametrize("op", list(ACCEPTANCE))
@pytest.mark.parametrize("name", BACKENDS)
def test_accepts_exactly_what_pytorch_accepts(name, op):
    be = backends.get(name)
    cases, oracle = ACCEPTANCE[op]

    def check(case):
        ours = outcome(lambda: run(be, op, case), ValueError)   # ShapeError is a ValueError
        assert ours == outcome(lambda: oracle(case), RuntimeError), case

    check_property(name, cases, check)
