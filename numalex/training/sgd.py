"""Stochastic gradient descent with momentum and weight decay, and the
paper's learning-rate schedule.

    opt = numalex.SGD(model, lr=0.01, momentum=0.9, weight_decay=5e-4)
    loss, grads = model.loss_and_grads(x, labels, train=True)
    opt.step(grads)                     # one update of every parameter
    opt.end_epoch(held_out_accuracy)    # lr / 10 when accuracy stops improving

The update is PyTorch's (``torch.optim.SGD``), for every parameter w with
gradient g and momentum buffer v (zero before the first step)::

    v = momentum * v + (g + weight_decay * w)
    w = w - lr * v

The AlexNet paper (section 5) writes it with the learning rate inside v::

    v = momentum * v - weight_decay * lr * w - lr * g
    w = w + v

With a constant lr the two produce the same weights (the paper's v is
-lr times PyTorch's). They part when lr changes: the paper's v still
carries steps taken at the old rate, PyTorch's v is rescaled at once, so
right after a lr / 10 PyTorch's steps shrink ten times immediately and the
paper's decay away over about 1 / (1 - momentum) steps.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange


class SGD:
    """Momentum SGD over a Model's parameters, with the paper's schedule.

    patience: epochs without a better held-out accuracy before lr is divided
    by `factor` (the paper: divide by 10 "when the validation error rate
    stopped improving"; it did so three times in 90 epochs).
    """

    def __init__(self, model, lr: float, momentum: float = 0.9, weight_decay: float = 5e-4,
                 patience: int = 2, factor: float = 10.0):
        _check_number("lr", lr, above=0.0)
        _check_number("momentum", momentum, below=1.0)
        _check_number("weight_decay", weight_decay)
        _check_number("factor", factor, above=1.0)
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ValueError(f"SGD: patience must be a whole number >= 0, got {patience!r}")
        self.model = model
        self.lr, self.momentum, self.weight_decay = float(lr), float(momentum), float(weight_decay)
        self.patience, self.factor = patience, float(factor)
        self.velocity = {key: np.zeros(shape, np.float32)
                         for key, shape in model.param_shapes().items()}
        self.epoch = 0                       # epochs completed
        self.best_accuracy = None            # best held-out accuracy so far
        self.stale_epochs = 0                # epochs since it last improved

    def step(self, grads: dict) -> None:
        """Update every parameter from grads ({key: array}, keyed like
        model.state_dict(), same shapes).

        The model's own arrays are updated in place, as torch.optim does, by
        momentum_update: one parallel pass per parameter. AlexNet holds 61
        million parameters; writing each update into fresh NumPy arrays
        made a step allocate and fill about a gigabyte of temporaries, a
        quarter of a whole training step (0.74 s of 3.0 at batch 32 on two
        cores; one pass: 0.1 s). Then load_state_dict is told the weights
        changed, so the backends prepare their copies of them again."""
        params = self.model.state_dict()
        _check_grads(grads, params)
        lr, momentum, decay = (np.float32(v) for v in (self.lr, self.momentum, self.weight_decay))
        for key, w in params.items():
            if not w.flags.writeable:            # e.g. weights read from a checkpoint
                w = params[key] = w.copy()
            g = np.ascontiguousarray(grads[key], np.float32)
            momentum_update(w.reshape(-1), g.reshape(-1), self.velocity[key].reshape(-1),
                            lr, momentum, decay)
        self.model.load_state_dict(params)

    def end_epoch(self, held_out_accuracy: float) -> bool:
        """Count an epoch; divide lr by `factor` once held-out accuracy has not
        improved for `patience` epochs. Returns True when lr was reduced."""
        self.epoch += 1
        if self.best_accuracy is None or held_out_accuracy > self.best_accuracy:
            self.best_accuracy, self.stale_epochs = float(held_out_accuracy), 0
            return False
        self.stale_epochs += 1
        if self.stale_epochs <= self.patience:
            return False
        self.lr /= self.factor
        self.stale_epochs = 0
        return True

    # ---- saving and restoring --------------------------------------------------------
    SETTINGS = ("lr", "momentum", "weight_decay", "patience", "factor", "epoch",
                "best_accuracy", "stale_epochs")

    def state_dict(self) -> tuple[dict, dict]:
        """(settings, buffers): JSON-ready numbers, and {key: momentum buffer}."""
        settings = {name: getattr(self, name) for name in self.SETTINGS}
        return settings, {key: v.copy() for key, v in self.velocity.items()}

    def load_state_dict(self, settings: dict, buffers: dict) -> None:
        """Restore what state_dict() returned; buffers must fit the model."""
        missing = [name for name in self.SETTINGS if name not in settings]
        if missing:
            raise ValueError(f"optimizer state lacks {', '.join(missing)}")
        _check_grads(buffers, self.velocity, what="momentum buffer")
        for name in self.SETTINGS:
            setattr(self, name, settings[name])
        self.velocity = {key: np.array(buffers[key], np.float32) for key in self.velocity}


@njit(parallel=True, cache=True)
def momentum_update(w, g, v, lr, momentum, decay):
    """v = momentum * v + (g + decay * w), then w = w - lr * v, in place, for
    flat float32 arrays: PyTorch's SGD, in the same float32 order (no
    fastmath, so nothing is reordered). Memory-bound: one read of w,
    g and v and one write of v and w per element, split across the cores."""
    for i in prange(w.size):
        v[i] = momentum * v[i] + (g[i] + decay * w[i])
        w[i] = w[i] - lr * v[i]


def _check_grads(grads: dict, params: dict, what: str = "gradient") -> None:
    """ValueError listing keys that are missing or mis-shaped."""
    missing = [key for key in params if key not in grads]
    wrong = [f"{key} is {np.shape(grads[key])}, the parameter is {params[key].shape}"
             for key in params if key in grads and np.shape(grads[key]) != params[key].shape]
    if missing or wrong:
        problems = ([f"no {what} for {', '.join(missing)}"] if missing else []) + wrong
        raise ValueError(f"SGD: {'; '.join(problems)}")


def _check_number(name: str, value, above: float | None = None, below: float | None = None):
    """ValueError unless value is a finite number >= 0, > above, < below."""
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
          and math.isfinite(value) and value >= 0
          and (above is None or value > above) and (below is None or value < below))
    if not ok:
        bounds = [f"> {above:g}" if above is not None else ">= 0"]
        bounds += [f"< {below:g}"] if below is not None else []
        raise ValueError(f"SGD: {name} must be a finite number {' and '.join(bounds)}, "
                         f"got {value!r}")
