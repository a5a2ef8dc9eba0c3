"""Pictures of a training run, written beside its checkpoint (needs the
`plot` extra): the loss and held-out accuracy per epoch, and conv1's
learned filters."""
from __future__ import annotations

import os

from ..visualize import filters_figure, pyplot


def curves_figure(history: list, path) -> str:
    """Training loss (left axis, log scale) and held-out accuracy (right) per epoch."""
    plt = pyplot()
    epochs = [record["epoch"] for record in history]
    fig, loss_axis = plt.subplots(figsize=(6.4, 4.0), layout="constrained")
    loss_axis.plot(epochs, [record["loss"] for record in history], "o-", color="tab:blue")
    loss_axis.set_yscale("log")
    loss_axis.set_xlabel("epoch")
    loss_axis.set_ylabel("mean training loss (cross-entropy)", color="tab:blue")
    accuracy_axis = loss_axis.twinx()
    accuracy_axis.plot(epochs, [100 * record["accuracy"] for record in history], "s-",
                       color="tab:orange")
    accuracy_axis.set_ylabel("held-out accuracy (%)", color="tab:orange")
    accuracy_axis.set_ylim(0, 100)
    for previous, record in zip(history, history[1:]):
        if record["lr"] < previous["lr"]:                   # the schedule stepped here
            loss_axis.axvline(record["epoch"] - 0.5, color="grey", linestyle=":")
    fig.suptitle(f"{len(history)} epochs; dotted lines: learning rate / 10", fontsize=10)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return str(path)


def write_plots(checkpoint_path, history: list, model) -> list[str]:
    """<checkpoint>.curves.png and <checkpoint>.conv1.png; [] without matplotlib."""
    try:
        pyplot()
    except ModuleNotFoundError:
        return []
    root = os.path.splitext(str(checkpoint_path))[0]
    return [curves_figure(history, f"{root}.curves.png"),
            filters_figure(model, f"{root}.conv1.png", random_weights=False)]
