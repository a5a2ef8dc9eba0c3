"""numalex.SGD against PyTorch: the update (torch.optim.SGD), the schedule
(torch.optim.lr_scheduler.ReduceLROnPlateau) and the paper's own form."""
import numpy as np
import pytest

import numalex
from numalex.training.sgd import SGD

torch = pytest.importorskip("torch", reason="PyTorch is the oracle: pip install 'numalex[oracle]'")


def tiny_model():
    return numalex.alexnet("torchvision", width=1 / 16, num_classes=3, input_size=63)


def random_grads(model, seed):
    rng = np.random.default_rng(seed)
    return {key: rng.standard_normal(shape).astype(np.float32)
            for key, shape in model.param_shapes().items()}


def test_steps_equal_torch_sgd_including_a_learning_rate_change():
    model = tiny_model()
    tensors = {key: torch.tensor(w.copy(), requires_grad=True)
               for key, w in model.state_dict().items()}
    ours = SGD(model, lr=0.1, momentum=0.9, weight_decay=5e-4)
    theirs = torch.optim.SGD(tensors.values(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    for step in range(3):
        if step == 2:                            # the schedule divides lr by 10
            ours.lr /= 10
            theirs.param_groups[0]["lr"] /= 10
        grads = random_grads(model, step)
        ours.step(grads)
        for key, tensor in tensors.items():
            tensor.grad = torch.from_numpy(grads[key])
        theirs.step()
        for key, tensor in tensors.items():
            np.testing.assert_allclose(model.state_dict()[key], tensor.detach().numpy(),
                                       rtol=1e-6, atol=1e-7, err_msg=f"{key}, step {step}")
            buffer = theirs.state[tensor]["momentum_buffer"].numpy()
            np.testing.assert_allclose(ours.velocity[key], buffer, rtol=1e-6, atol=1e-7)


def test_read_only_weights_are_replaced_not_written():
    """Weights loaded from a file can be read-only; the in-place update
    then takes a copy instead of failing, and the caller's arrays keep
    their values."""
    model = tiny_model()
    frozen = {key: w.copy() for key, w in model.state_dict().items()}
    for w in frozen.values():
        w.flags.writeable = False
    model.load_state_dict(frozen)
    grads = random_grads(model, 7)
    SGD(model, lr=0.1, momentum=0.0, weight_decay=0.0).step(grads)
    for key, w in model.state_dict().items():
        np.testing.assert_allclose(w, frozen[key] - np.float32(0.1) * grads[key], rtol=1e-6,
                                   atol=1e-7)
        assert w is not frozen[key]


def test_the_papers_form_gives_the_same_weights_at_a_constant_rate():
    """Section 5 of the paper: v = m v - wd lr w - lr g; w = w + v."""
    lr, m, wd = 0.05, 0.9, 5e-4
    model = tiny_model()
    paper_w = {k: w.astype(np.float64) for k, w in model.state_dict().items()}
    paper_v = {k: np.zeros_like(w) for k, w in paper_w.items()}
    ours = SGD(model, lr=lr, momentum=m, weight_decay=wd)
    for step in range(4):
        grads = random_grads(model, 10 + step)
        ours.step(grads)
        for k in paper_w:
            paper_v[k] = m * paper_v[k] - wd * lr * paper_w[k] - lr * grads[k]
            paper_w[k] = paper_w[k] + paper_v[k]
    for k, w in model.state_dict().items():
        np.testing.assert_allclose(w, paper_w[k], rtol=1e-5, atol=1e-6, err_msg=k)


@pytest.mark.parametrize("patience", [0, 1, 2])
def test_schedule_equals_reduce_lr_on_plateau(patience):
    rng = np.random.default_rng(patience)
    accuracies = np.round(rng.uniform(0.5, 0.9, 30), 1)      # many ties and setbacks
    ours = SGD(tiny_model(), lr=0.1, patience=patience)
    tensor = torch.zeros(1, requires_grad=True)
    theirs = torch.optim.SGD([tensor], lr=0.1)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
        theirs, mode="max", factor=0.1, patience=patience, threshold=0.0, eps=0.0)
    for epoch, accuracy in enumerate(accuracies, start=1):
        ours.end_epoch(float(accuracy))
        plateau.step(float(accuracy))
        assert ours.epoch == epoch
        assert ours.lr == pytest.approx(theirs.param_groups[0]["lr"], rel=1e-9), epoch


def test_state_round_trip_continues_identically():
    model_a, model_b = tiny_model(), tiny_model()
    a = SGD(model_a, lr=0.1, patience=0)
    a.step(random_grads(model_a, 0))
    a.end_epoch(0.5)
    a.end_epoch(0.4)                                         # lr -> 0.01
    settings, buffers = a.state_dict()
    model_b.load_state_dict(model_a.state_dict())
    b = SGD(model_b, lr=1.0)
    b.load_state_dict(settings, buffers)
    assert (b.lr, b.epoch, b.best_accuracy) == (pytest.approx(0.01), 2, 0.5)
    for model, opt in ((model_a, a), (model_b, b)):
        opt.step(random_grads(model, 1))
    for key, w in model_a.state_dict().items():
        np.testing.assert_array_equal(w, model_b.state_dict()[key])


def test_bad_settings_and_gradients_are_named():
    model = tiny_model()
    for kwargs, words in [({"lr": 0}, "lr"), ({"lr": float("nan")}, "lr"),
                          ({"lr": 0.1, "momentum": 1.0}, "momentum"),
                          ({"lr": 0.1, "weight_decay": -1}, "weight_decay"),
                          ({"lr": 0.1, "patience": -1}, "patience")]:
        with pytest.raises(ValueError, match=words):
            SGD(model, **kwargs)
    grads = random_grads(model, 0)
    del grads["features.0.bias"]
    grads["classifier.6.weight"] = grads["classifier.6.weight"][:1]
    with pytest.raises(ValueError, match=r"features\.0\.bias.*classifier\.6\.weight is \(1,"):
        SGD(model, lr=0.1).step(grads)
