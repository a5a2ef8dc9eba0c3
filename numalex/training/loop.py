"""The training loop: epochs of SGD steps, each epoch ending with the
held-out accuracy and the paper's learning-rate schedule.

    history = fit(model, optimizer, data, epochs=10, batch_size=32, backend="numba",
                  seed=0, after_epoch=lambda record: save(...))

One step: decode a batch (threads, ahead of time), forward and backward
(``model.loss_and_grads``, dropout on, its mask seeded from the step), one
``optimizer.step``. Every seed is derived from (seed, epoch, step), so an
epoch's result depends only on the weights and optimizer state it starts
from: that is what makes a resumed run equal to an uninterrupted one.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import numpy as np

from ..progress import progress


class TrainingDiverged(ValueError):
    """The loss became NaN or infinite: the learning rate is too large."""

    def __init__(self, epoch: int, what: str, lr: float):
        self.epoch = epoch
        super().__init__(f"epoch {epoch}: {what} at learning rate {lr:g}: training "
                         f"diverged. Try a smaller --lr (e.g. {lr / 10:g})")


@dataclass
class EpochRecord:
    """What one epoch did; `epoch` counts from 1."""

    epoch: int
    loss: float              # mean training loss over the epoch
    accuracy: float          # held-out accuracy after it, 0..1
    lr: float                # the learning rate the epoch ran at
    seconds: float
    images: int              # training images it decoded and learned from
    skipped: list            # unreadable images it met, one message each

    def to_dict(self) -> dict:
        return asdict(self)


def step_seed(seed: int, epoch: int, step: int) -> int:
    """A dropout seed for one step, the same whenever this step is run."""
    return int(np.random.SeedSequence([seed, epoch, step]).generate_state(1)[0])


def train_epoch(model, optimizer, data, batch_size: int, backend: str, seed: int,
                label: str = "") -> tuple[float, int, list]:
    """One pass over the training split -> (mean loss, images, skipped)."""
    epoch = optimizer.epoch
    total_loss, images, skipped = 0.0, 0, []
    start = time.perf_counter()

    def status() -> str:
        loss = total_loss / images if images else float("nan")
        return f"loss {loss:.4f} {images / (time.perf_counter() - start):.0f} img/s"

    batches = data.batches("train", batch_size, epoch=epoch, seed=seed)
    count = -(-data.size("train") // batch_size)
    shown = progress(batches, label, total=count, unit="batches", status=status)
    for step, batch in enumerate(shown):
        skipped += batch.skipped
        if batch.x is None:
            continue
        with np.errstate(over="ignore", invalid="ignore"):   # divergence is caught here:
            loss, grads = model.loss_and_grads(batch.x, batch.labels, backend=backend,
                                               train=True, seed=step_seed(seed, epoch, step))
            if not math.isfinite(loss):
                raise TrainingDiverged(epoch + 1, f"the training loss became {loss} at step "
                                       f"{step + 1}", optimizer.lr)
            optimizer.step(grads)
        total_loss += float(loss) * len(batch.labels)
        images += len(batch.labels)
    if images == 0:
        raise ValueError(f"{data.name}: none of the {data.size('train')} training images "
                         f"could be read")
    return total_loss / images, images, skipped


def evaluate(model, data, batch_size: int, backend: str, split: str = "held_out") -> float:
    """Fraction of a split's images whose top logit is their class."""
    correct = seen = 0
    for batch in data.batches(split, batch_size):
        if batch.x is not None:
            logits = model(batch.x, backend=backend)                # (N, classes)
            correct += int((logits.argmax(axis=1) == batch.labels).sum())
            seen += len(batch.labels)
    return correct / seen if seen else float("nan")


def fit(model, optimizer, data, epochs: int, batch_size: int, backend: str, seed: int,
        after_epoch=None) -> list[EpochRecord]:
    """Train from optimizer.epoch up to `epochs` epochs; call after_epoch(record)
    after each (e.g. to save a checkpoint). Raises TrainingDiverged, naming
    the epoch, if the loss or the weights stop being finite."""
    history = []
    while optimizer.epoch < epochs:
        number, lr, start = optimizer.epoch + 1, optimizer.lr, time.perf_counter()
        loss, images, skipped = train_epoch(model, optimizer, data, batch_size, backend, seed,
                                            label=f"epoch {number}/{epochs}")
        bad = [key for key, w in model.state_dict().items() if not np.isfinite(w).all()]
        if bad:
            raise TrainingDiverged(number, f"parameter {bad[0]} became NaN or infinite", lr)
        accuracy = evaluate(model, data, batch_size, backend)
        optimizer.end_epoch(accuracy)
        record = EpochRecord(number, loss, accuracy, lr, time.perf_counter() - start, images,
                             skipped)
        history.append(record)
        if after_epoch is not None:
            after_epoch(record)
    return history
