"""Whole AlexNet forward passes on the numba backend.

Oracles: the NumPy reference backend (an independent implementation of
every layer) on all three variants, and PyTorch running the same weights
through the independently written models of tests/torch_alexnets.py.

Tolerance: the max-abs error relative to the max-abs of the reference
logits must be below 1e-4 (``relative_error``). Logits are compared as a
whole because after eight layers of float32 sums in different orders the
error scales with the size of the logits, not with each single logit
(some are near zero).
"""
import numpy as np
import pytest

import numalex


def relative_error(got, want):
    assert got.shape == want.shape and got.dtype == np.float32
    return float(np.abs(got - want).max() / np.abs(want).max())


def images(model, batch, seed=0):
    return np.random.default_rng(seed).standard_normal((batch,) + model.input_shape,
                                                       dtype=np.float32)


@pytest.mark.parametrize("variant", ["torchvision", "original", "bvlc"])
def test_full_size_forward_matches_numpy_reference(variant):
    model = numalex.alexnet(variant)
    x = images(model, 1)
    assert relative_error(model(x, backend="numba"), model(x, backend="numpy")) < 1e-4


@pytest.mark.parametrize("variant", ["torchvision", "original", "bvlc"])
@pytest.mark.parametrize("batch", [1, 3, 9])     # streaming fc kernel, remainder, BLAS
def test_small_net_matches_numpy_reference(variant, batch):
    model = numalex.alexnet(variant, num_classes=10, width=0.25, seed=batch)
    x = images(model, batch, seed=batch)
    assert relative_error(model(x, backend="numba"), model(x, backend="numpy")) < 1e-4


def test_bvlc_at_224_input_matches_numpy_reference():
    # ceil-mode pooling keeps a partial window at 224 (54 -> 27, not 26)
    model = numalex.alexnet("bvlc", width=0.25, input_size=224, num_classes=7)
    x = images(model, 2)
    assert relative_error(model(x, backend="numba"), model(x, backend="numpy")) < 1e-4


@pytest.mark.parametrize("variant", ["torchvision", "bvlc"])
def test_forward_matches_torch(variant):
    torch = pytest.importorskip("torch", reason="torch is the second oracle: "
                                "pip install numalex[oracle]")
    from torch_alexnets import TORCH_MODELS

    model = numalex.alexnet(variant)
    net = TORCH_MODELS[variant]().eval()
    net.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    x = images(model, 2)
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    assert relative_error(model(x, backend="numba"), want) < 1e-4
