"""Whole networks against PyTorch: same weights, same input, same logits.

The PyTorch models (tests/torch_alexnets.py) are written from the published
architectures, not generated from numalex's specs, so the parameter counts
and the outputs are checked against an independent implementation.
"""
import numpy as np
import pytest

import numalex

torch = pytest.importorskip("torch", reason="PyTorch is the oracle here: pip install "
                                            "'numalex[oracle]' (torch==2.13.0)")
from torch_alexnets import TORCH_MODELS  # noqa: E402


def relative_error(y, ref):
    return float(np.abs(y - ref).max() / np.abs(ref).max())


@pytest.mark.parametrize("variant", list(TORCH_MODELS))
def test_parameter_count_equals_pytorchs(variant):
    reference = TORCH_MODELS[variant]()
    assert numalex.alexnet(variant).num_params() == sum(p.numel() for p in
                                                        reference.parameters())


@pytest.mark.parametrize("variant, size", [("torchvision", 224), ("original", 227),
                                           ("bvlc", 227), ("bvlc", 224), ("torchvision", 256)])
def test_numpy_forward_equals_pytorch(variant, size):
    model = numalex.alexnet(variant, input_size=size, seed=7)
    reference = TORCH_MODELS[variant]().eval()
    reference.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    x = np.random.default_rng(size).standard_normal((2, 3, size, size), dtype=np.float32)
    with torch.no_grad():
        expected = reference(torch.from_numpy(x)).numpy()
    y = model(x, backend="numpy")
    assert y.shape == expected.shape == (2, 1000)
    assert relative_error(y, expected) < 1e-4
