"""Whole-model gradients against PyTorch's autograd on the same weights.

The PyTorch models (tests/torch_alexnets.py) are written from the published
architectures, independently of numalex's specs. Full size, batch 1: one
shared fixture per variant runs PyTorch once; every backend that exports the
backward ops is compared with it (the CUDA simulator is too slow for a full
AlexNet: its backward ops are checked op by op in test_backward_ops.py).
"""
import types

import numpy as np
import pytest

import numalex
from numalex import ShapeError, backends
from numalex.backprop import BACKWARD_OPS

torch = pytest.importorskip("torch", reason="PyTorch is the oracle here: pip install "
                                            "'numalex[oracle]' (torch==2.13.0)")
from torch_alexnets import TORCH_MODELS, torchvision_alexnet  # noqa: E402

CPU_GRAD_BACKENDS = [name for name in backends.available() if name != "cuda"
                     and all(hasattr(backends.get(name), op) for op in BACKWARD_OPS)]


def relative_error(got, want) -> float:
    return float(np.abs(got - want).max() / np.abs(want).max())


def torch_loss_and_grads(reference, x, labels):
    """(loss, {name: grad}) by autograd, the model in whatever mode it is in."""
    loss = torch.nn.functional.cross_entropy(reference(torch.from_numpy(x)),
                                             torch.from_numpy(labels))
    loss.backward()
    return loss.item(), {k: p.grad.numpy() for k, p in reference.named_parameters()}


def with_weights_of(model, reference):
    reference.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    return reference


@pytest.fixture(scope="module", params=list(TORCH_MODELS))
def full_size(request):
    """(model, x, labels, torch loss, torch grads) for one variant at its native size."""
    variant = request.param
    model = numalex.alexnet(variant, seed=11)
    size = model.input_size
    x = np.random.default_rng(size).standard_normal((1, 3, size, size), dtype=np.float32)
    labels = np.array([417])
    reference = with_weights_of(model, TORCH_MODELS[variant]()).eval()
    return (model, x, labels) + torch_loss_and_grads(reference, x, labels)


@pytest.mark.parametrize("name", CPU_GRAD_BACKENDS)
def test_full_size_gradients_equal_pytorchs(full_size, name):
    model, x, labels, torch_loss, torch_grads = full_size
    loss, grads = model.loss_and_grads(x, labels, backend=name)
    assert list(grads) == list(model.state_dict())
    assert loss == pytest.approx(torch_loss, rel=1e-5)
    for key, want in torch_grads.items():
        assert grads[key].shape == want.shape and grads[key].dtype == np.float32
        assert relative_error(grads[key], want) < 1e-4, key


class Mask(torch.nn.Module):
    """Dropout with a given mask: x * mask / (1 - p), PyTorch's training-mode arithmetic."""

    def __init__(self, mask, p):
        super().__init__()
        self.keep = torch.tensor(mask, dtype=torch.float32) / (1 - p)

    def forward(self, x):
        return x * self.keep


@pytest.mark.parametrize("name", CPU_GRAD_BACKENDS)
def test_training_mode_gradients_equal_pytorchs_with_the_same_masks(name):
    """train=True draws one mask per Dropout from the seed; PyTorch, given the
    same masks, gives the same loss and gradients."""
    model = numalex.alexnet("torchvision", seed=5, width=0.125, num_classes=10)
    x = np.random.default_rng(0).standard_normal((2, 3, 224, 224), dtype=np.float32)
    labels = np.array([3, 7])
    be = backends.get(name)
    _, tape = numalex.backprop.forward_keeping_inputs(model, be, x, train=True, seed=9)
    masks = {layer: be.to_numpy(mask) for (layer, _), (_, mask) in zip(model.layers, tape)
             if mask is not None}
    assert list(masks) == ["classifier.0", "classifier.3"]
    reference = with_weights_of(model, torchvision_alexnet((8, 24, 48, 32, 32), 512, 10))
    for layer, mask in masks.items():
        reference.classifier[int(layer.split(".")[1])] = Mask(mask, 0.5)
    torch_loss, torch_grads = torch_loss_and_grads(reference, x, labels)
    loss, grads = model.loss_and_grads(x, labels, backend=name, train=True, seed=9)
    eval_loss, _ = model.loss_and_grads(x, labels, backend=name)
    assert loss == pytest.approx(torch_loss, rel=1e-5) and loss != eval_loss
    for key, want in torch_grads.items():
        assert relative_error(grads[key], want) < 1e-4, key


def test_cross_entropy_equals_pytorchs_and_survives_huge_logits():
    rng = np.random.default_rng(1)
    logits = (rng.standard_normal((4, 6)) * 1e3).astype(np.float32)   # exp() would overflow
    labels = np.array([0, 5, 2, 2])
    loss, dlogits = numalex.cross_entropy(logits, labels)
    t = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    want = torch.nn.functional.cross_entropy(t, torch.from_numpy(labels))
    want.backward()
    assert np.isfinite(loss) and loss == pytest.approx(want.item(), rel=1e-6)
    assert dlogits.dtype == np.float32
    np.testing.assert_allclose(dlogits, t.grad.numpy(), atol=1e-7)


@pytest.mark.parametrize("labels, error, words", [
    (np.array([1]), ShapeError, r"labels must be 2 integers .* shape \(1,\)"),
    (np.array([0.0, 1.0]), ShapeError, "labels must be 2 integers"),
    (np.array([0, 10]), ValueError, r"labels must lie in \[0, 10\), got 0 \.\.\. 10"),
])
def test_bad_labels_are_refused_before_any_work(labels, error, words):
    model = numalex.alexnet("torchvision", width=0.125, num_classes=10)
    x = np.zeros((2, 3, 224, 224), np.float32)
    with pytest.raises(error, match=words):
        model.loss_and_grads(x, labels)


def test_a_backend_without_backward_ops_is_named(monkeypatch):
    forward_only = types.SimpleNamespace(name="forward-only", conv2d=None, relu=None)
    monkeypatch.setattr(numalex.backprop.backends, "get", lambda name: forward_only)
    model = numalex.alexnet("torchvision", width=0.125, num_classes=10)
    with pytest.raises(NotImplementedError, match=r"backend 'forward-only' has no backward "
                                                  r"pass yet \(missing conv2d_backward, "):
        model.loss_and_grads(np.zeros((1, 3, 224, 224), np.float32), [1],
                             backend="forward-only")
