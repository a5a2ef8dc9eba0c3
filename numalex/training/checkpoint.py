"""Training checkpoints: one .safetensors (or .npz) file holding everything
needed to classify with the weights or to continue training exactly.

==============================  ================================================
key                             what it holds
==============================  ================================================
``conv1.weight`` ...            the model's parameters, keyed like state_dict()
``optimizer.momentum.<key>``    SGD's momentum buffer for each parameter
``numalex.checkpoint``          UTF-8 JSON (as uint8): variant, width, input
                                size, class names, preprocessing, the
                                optimizer's settings and schedule, the seed,
                                the batch size and the history of epochs
==============================  ================================================

Every random choice in training derives from (seed, epoch, step), so the
seed and the epoch count are the whole random state: a run resumed from
here continues as if it had never stopped.

    checkpoint = load_checkpoint("digits.safetensors")
    model = checkpoint.build_model()
    trained = trained_model("digits.safetensors")      # None for a plain weight file
"""
from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass

import numpy as np

from ..alexnet import alexnet
from ..images import Preset
from ..weights import detect_format, load_weights, save_weights

METADATA_KEY = "numalex.checkpoint"
MOMENTUM_PREFIX = "optimizer.momentum."
FORMAT = 1


def default_path(name: str) -> str:
    """<name>.safetensors, or <name>.npz when safetensors is not installed."""
    try:
        import safetensors  # noqa: F401
    except ModuleNotFoundError:
        return f"{name}.npz"
    return f"{name}.safetensors"


@dataclass
class Checkpoint:
    params: dict              # {key: array}, the model's state_dict
    momentum: dict            # {key: array}, SGD's buffers
    meta: dict                # the JSON record (see the module docstring)

    @property
    def preset(self) -> Preset:
        """How images were prepared for this model (apply the same to classify)."""
        fields = dict(self.meta["preset"])
        return Preset(**{**fields, "mean": tuple(fields["mean"]), "std": tuple(fields["std"])})

    def build_model(self):
        """The trained Model, its weights loaded."""
        model = alexnet(self.meta["variant"], num_classes=len(self.meta["class_names"]),
                        width=self.meta["width"], input_size=self.meta["input_size"])
        model.load_state_dict(self.params)
        return model


def save_checkpoint(path, model, optimizer, meta: dict) -> None:
    """Write model, optimizer and meta (JSON-ready: width, class_names, preset
    as a dict, seed, batch_size, history, ...) to path, atomically: a crash
    while writing leaves the previous checkpoint as it was."""
    settings, buffers = optimizer.state_dict()
    record = {"format": FORMAT, "variant": model.variant, "input_size": model.input_size,
              **meta, "optimizer": settings}
    arrays = dict(model.state_dict())
    arrays.update({MOMENTUM_PREFIX + key: v for key, v in buffers.items()})
    arrays[METADATA_KEY] = np.frombuffer(json.dumps(record).encode("utf-8"), np.uint8)
    root, ext = os.path.splitext(str(path))
    partial = f"{root}.partial{ext}"
    save_weights(arrays, partial)
    os.replace(partial, path)


def load_checkpoint(path) -> Checkpoint:
    """Read a checkpoint written by save_checkpoint; ValueError for any other file."""
    arrays = load_weights(path)
    if METADATA_KEY not in arrays:
        raise ValueError(f"{path} is a weight file, not a `numalex train` checkpoint "
                         f"(it has no {METADATA_KEY!r} record)")
    try:
        meta = json.loads(np.asarray(arrays.pop(METADATA_KEY), np.uint8).tobytes())
    except ValueError as err:
        raise ValueError(f"{path}: the checkpoint's {METADATA_KEY!r} record is not "
                         f"valid JSON ({err})") from None
    momentum = {key[len(MOMENTUM_PREFIX):]: arrays.pop(key) for key in list(arrays)
                if key.startswith(MOMENTUM_PREFIX)}
    return Checkpoint(arrays, momentum, meta)


@dataclass
class TrainedModel:
    """What `numalex classify` needs from a checkpoint."""

    model: object
    class_names: list
    preset: Preset


def is_checkpoint(path) -> bool:
    """Does the file hold a checkpoint record? Reads only the list of names
    (an .npz's directory, a .safetensors header), not the arrays."""
    kind = detect_format(path)
    if kind == "npz":
        with zipfile.ZipFile(path) as archive:
            return f"{METADATA_KEY}.npy" in archive.namelist()
    if kind == "safetensors":
        try:
            from safetensors import safe_open

            with safe_open(str(path), "np") as file:
                return METADATA_KEY in file.keys()
        except Exception:      # not installed, or a bad file: load_weights explains which
            return False
    return False


def trained_model(path) -> TrainedModel | None:
    """The model, class names and preprocessing of a `numalex train`
    checkpoint; None if `path` is some other weight file (a .pth, ...)."""
    if not is_checkpoint(path):
        return None
    checkpoint = load_checkpoint(path)
    return TrainedModel(checkpoint.build_model(), checkpoint.meta["class_names"],
                        checkpoint.preset)
