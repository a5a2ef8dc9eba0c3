"""One batch of decoded images in, one result row per image out.

    spec = ClassifierSpec(weights="alexnet-owt-7be5be79.pth", top=5)
    classifier = spec.build()                       # loads the weights once
    rows = classifier.classify(paths, decoded)      # decoded[i]: array or error text

A row is plain data, ready for JSON, CSV or a Dask bag:

    {"image": "photos/cat.jpg", "top": [{"rank": 1, "index": 281,
                                         "label": "tabby", "probability": 0.62}, ...]}
    {"image": "photos/broken.jpg", "error": "cannot read image ...: truncated"}

The spec is a small frozen (hashable, picklable) record of how to build the
model, so a Dask worker can receive it and build the same classifier once.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..alexnet import alexnet
from ..backends.checks import positive_int
from ..images import VARIANT_PRESETS, Preset, get_preset, imagenet_classes

NOT_FINITE = ("the model's output is not finite (NaN or infinity); "
              "check the weights for NaN, infinity or huge values")


def softmax(logits: np.ndarray) -> np.ndarray:
    """logits: (N, K) -> probabilities (N, K); the max is subtracted first so
    exp never overflows."""
    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def class_names(labels_file, num_classes: int) -> list[str]:
    """Names of the model's outputs: from a file (one per line), ImageNet's
    1000, or `class i` for any other class count."""
    if labels_file is not None:
        with open(labels_file, encoding="utf-8") as file:
            names = [line.strip() for line in file if line.strip()]
    elif num_classes == 1000:
        names = imagenet_classes()
    else:
        return [f"class {i}" for i in range(num_classes)]
    if len(names) != num_classes:
        raise ValueError(f"{labels_file}: {len(names)} labels for {num_classes} classes")
    return names


def top_k(probs: np.ndarray, k: int, names: list[str]) -> list[dict]:
    """probs: (K,) -> the k most probable classes, most probable first."""
    order = np.argsort(-probs, kind="stable")[:k]
    return [{"rank": rank, "index": int(i), "label": names[i], "probability": float(probs[i])}
            for rank, i in enumerate(order, start=1)]


@dataclass(frozen=True)
class ClassifierSpec:
    """Everything needed to build a Classifier, and nothing heavy.

    weights: a weight file (.pth, .caffemodel, .safetensors, .npz) that every
        process building the classifier can read; None for seeded random
        weights (for trying the pipeline out).
    preset: a preset name, a Preset, or None for the one the variant's
        weights were trained with.
    """

    weights: str | None = None
    variant: str = "torchvision"
    backend: str = "numpy"
    top: int = 5
    preset: str | Preset | None = None
    num_classes: int = 1000
    width: float = 1.0
    input_size: int | None = None
    labels: str | None = None

    def __post_init__(self):
        positive_int(self.top, "top")

    def build(self) -> "Classifier":
        """Load the weights and the class names (the expensive part, done once)."""
        model = alexnet(self.variant, weights=self.weights, num_classes=self.num_classes,
                        width=self.width, input_size=self.input_size)
        preset = get_preset(self.preset or VARIANT_PRESETS[model.variant])
        names = class_names(self.labels, model.num_classes)
        return Classifier(model, preset, names, self.top, self.backend)


class Classifier:
    """A model with its preprocessing and class names; turns decoded images
    into result rows."""

    def __init__(self, model, preset: Preset, names: list[str], top: int, backend: str):
        self.model, self.preset, self.names = model, preset, names
        self.top, self.backend = top, backend

    def classify(self, paths, decoded) -> list[dict]:
        """paths: N image paths; decoded: N items, each a (3, crop, crop)
        float32 array or the text of the error that kept it from being read.
        Returns N rows in the same order; every readable image goes through
        one forward pass together."""
        readable = [i for i, item in enumerate(decoded) if isinstance(item, np.ndarray)]
        rows = [None if isinstance(item, np.ndarray) else {"image": str(path), "error": item}
                for path, item in zip(paths, decoded)]
        if readable:
            x = np.stack([decoded[i] for i in readable])            # (n, 3, crop, crop)
            with np.errstate(over="ignore", invalid="ignore"):      # caught just below
                probs = softmax(self.model(x, backend=self.backend))  # (n, num_classes)
            for i, p in zip(readable, probs):
                rows[i] = ({"image": str(paths[i]), "top": top_k(p, self.top, self.names)}
                           if np.isfinite(p).all() else
                           {"image": str(paths[i]), "error": NOT_FINITE})
        return rows
