"""The AlexNet variants, as data: a list of (name, layer spec) per variant.

=============  =====  =========================  ======================================
variant        input  conv channels              what makes it different
=============  =====  =========================  ======================================
torchvision    224    64, 192, 384, 256, 256     conv1 padding 2, AdaptiveAvgPool2d(6),
                                                 dropout before fc6 and fc7
original       227    96, 256, 384, 384, 256     the blog post's one-tower table:
                                                 torchvision layout at Caffe's widths
bvlc           227    96, 256, 384, 384, 256     Caffe's model: groups=2 on conv2/4/5,
                                                 LRN after relu1/relu2, ceil pooling
=============  =====  =========================  ======================================

Names are the ones real weight files use: torchvision's module paths
(``features.0`` ...) for ``torchvision``, Caffe's layer names (``conv1`` ...)
for the other two. No total is written here: parameter counts and output
sizes are derived from the specs.
"""
from __future__ import annotations

import argparse

from .layers import (LRN, AdaptiveAvgPool2d, Conv2d, Dropout, Flatten, Linear, MaxPool2d,
                     ReLU)
from .shapes import ShapeError

VARIANTS = {"torchvision": "torchvision", "224": "torchvision",
            "original": "original", "227": "original",
            "bvlc": "bvlc", "caffe": "bvlc"}

NATIVE_INPUT = {"torchvision": 224, "original": 227, "bvlc": 227}
# Where the two layer tables that `torchvision` and `original` reproduce come from.
TABLE_SOURCE = 'the blog post "Alexnet input 224?227" (castledream.github.io, 2023-10-25)'
DESCRIPTIONS = {
    "torchvision": "torchvision's AlexNet (the 'one weird trick' widths), 224x224 input",
    "original": "one-tower AlexNet at the paper's widths, 227x227 input (the second table "
                "of the 224-or-227 blog post)",
    "bvlc": "BVLC Caffe AlexNet: two-tower groups, LRN, ceil-mode pooling, 227x227 input",
}


def canonical_variant(variant) -> str:
    """'224' -> 'torchvision', 'caffe' -> 'bvlc', ...; ValueError if unknown."""
    key = str(variant).strip().lower()
    if key not in VARIANTS:
        known = ", ".join(f"{k!r}" for k in VARIANTS)
        raise ValueError(f"unknown AlexNet variant {variant!r}; choose one of {known}")
    return VARIANTS[key]


def variant_option(text: str) -> str:
    """canonical_variant for argparse's ``type=``: any case, any alias, and the
    same one-line error as the API for an unknown name."""
    try:
        return canonical_variant(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _scale(channels: int, width: float, multiple: int = 1) -> int:
    """Scale a width, keep it a positive multiple of `multiple` (the groups)."""
    return max(multiple, round(channels * width / multiple) * multiple)


TORCHVISION_NAMES = ([f"features.{i}" for i in range(13)] + ["avgpool", "flatten"]
                     + [f"classifier.{i}" for i in range(7)])
ORIGINAL_NAMES = ("conv1 relu1 pool1 conv2 relu2 pool2 conv3 relu3 conv4 relu4 conv5 relu5 "
                  "pool5 avgpool flatten drop6 fc6 relu6 drop7 fc7 relu7 fc8").split()


def _one_tower(names, channels, conv1_padding, num_classes, width):
    """torchvision's layout: five convs, an adaptive pool to 6x6, dropout
    before fc6 and fc7. `torchvision` and `original` differ only in the conv
    widths, conv1's padding and the names."""
    c = [_scale(n, width) for n in channels]
    hidden = _scale(4096, width)
    specs = [
        Conv2d(3, c[0], 11, stride=4, padding=conv1_padding), ReLU(), MaxPool2d(3, 2),
        Conv2d(c[0], c[1], 5, padding=2), ReLU(), MaxPool2d(3, 2),
        Conv2d(c[1], c[2], 3, padding=1), ReLU(),
        Conv2d(c[2], c[3], 3, padding=1), ReLU(),
        Conv2d(c[3], c[4], 3, padding=1), ReLU(), MaxPool2d(3, 2),
        AdaptiveAvgPool2d(6), Flatten(),
        Dropout(), Linear(c[4] * 36, hidden), ReLU(),
        Dropout(), Linear(hidden, hidden), ReLU(),
        Linear(hidden, num_classes),
    ]
    return list(zip(names, specs, strict=True))


def torchvision_layers(num_classes=1000, width=1.0, input_size=224):
    return _one_tower(TORCHVISION_NAMES, (64, 192, 384, 256, 256), 2, num_classes, width)


def original_layers(num_classes=1000, width=1.0, input_size=227):
    return _one_tower(ORIGINAL_NAMES, (96, 256, 384, 384, 256), 0, num_classes, width)


def bvlc_layers(num_classes=1000, width=1.0, input_size=227):
    """Caffe's bvlc_alexnet deploy.prototxt. Without an adaptive pool, fc6's
    input width follows from the input size, so it is derived from it."""
    c = [_scale(n, width, 2) for n in (96, 256, 384, 384, 256)]
    hidden = _scale(4096, width)
    lrn = LRN(size=5, alpha=1e-4, beta=0.75, k=1.0)
    convs = [
        ("conv1", Conv2d(3, c[0], 11, stride=4)),
        ("relu1", ReLU()),
        ("norm1", lrn),
        ("pool1", MaxPool2d(3, 2, ceil_mode=True)),
        ("conv2", Conv2d(c[0], c[1], 5, padding=2, groups=2)),
        ("relu2", ReLU()),
        ("norm2", lrn),
        ("pool2", MaxPool2d(3, 2, ceil_mode=True)),
        ("conv3", Conv2d(c[1], c[2], 3, padding=1)),
        ("relu3", ReLU()),
        ("conv4", Conv2d(c[2], c[3], 3, padding=1, groups=2)),
        ("relu4", ReLU()),
        ("conv5", Conv2d(c[3], c[4], 3, padding=1, groups=2)),
        ("relu5", ReLU()),
        ("pool5", MaxPool2d(3, 2, ceil_mode=True)),
        ("flatten", Flatten()),
    ]
    shape = (3, input_size, input_size)
    for name, spec in convs:
        shape = spec.out_shape(shape, name)
    return convs + [
        ("fc6", Linear(shape[0], hidden)),
        ("relu6", ReLU()),
        ("drop6", Dropout()),
        ("fc7", Linear(hidden, hidden)),
        ("relu7", ReLU()),
        ("drop7", Dropout()),
        ("fc8", Linear(hidden, num_classes)),
    ]


BUILDERS = {"torchvision": torchvision_layers, "original": original_layers,
            "bvlc": bvlc_layers}


def variant_layers(variant, num_classes=1000, width=1.0, input_size=None):
    """The (name, spec) list of a variant, scaled by `width`."""
    name = canonical_variant(variant)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    if not isinstance(width, (int, float)) or not 0 < width <= 16:
        raise ValueError(f"width must be a number in (0, 16], got {width!r}")
    size = NATIVE_INPUT[name] if input_size is None else input_size
    try:
        return BUILDERS[name](num_classes=num_classes, width=width, input_size=size)
    except ShapeError as err:
        raise ShapeError(f"variant {name!r} cannot be built for input {size}x{size}: "
                         f"{err}") from None


def alexnet(variant="torchvision", weights=None, num_classes=1000, width=1.0,
            input_size=None, seed=0, allow_nonfinite=False):
    """Build an AlexNet variant.

    variant: "torchvision" ("224"), "original" ("227") or "bvlc" ("caffe").
    weights: None for seeded random weights (He-normal), or a path to a
        .pth / .safetensors / .npz / .caffemodel file.
    width: scales every conv and fc width (0.25 gives a small net for tests).
    input_size: the square input the model is built for (default: the
        variant's own, 224 or 227); only `bvlc` derives fc6 from it.
    allow_nonfinite: load weights that hold NaN or Inf (refused by default).
    """
    from .model import Model, StateDictError, init_params

    name = canonical_variant(variant)
    size = NATIVE_INPUT[name] if input_size is None else input_size
    layers = variant_layers(name, num_classes, width, size)
    model = Model(name, layers, size, lambda: init_params(layers, seed))
    if weights is not None:
        from .weights import fit_to_model, load_weights_for

        state = load_weights_for(model, weights, allow_nonfinite=allow_nonfinite)
        try:
            model.load_state_dict(state)
        except StateDictError as err:
            fits = [other for other in BUILDERS if other != name and _fits(
                state, variant_layers(other, num_classes, width), fit_to_model)]
            if fits:                     # the same error, with the way out added
                err.args = (f"{err}\n  {weights} fits variant {fits[0]!r}: use --variant "
                            f"{fits[0]} (numalex.alexnet({fits[0]!r}, weights=...))",)
            raise
    return model


def _fits(state: dict, layers: list, fit_to_model) -> bool:
    """Do the arrays in `state` fit `layers`' parameters exactly, key for key?"""
    want = {f"{name}.{suffix}": shape for name, spec in layers
            for suffix, shape in spec.param_shapes().items()}
    fitted = fit_to_model(state, want)
    return fitted.keys() == want.keys() and all(
        tuple(getattr(fitted[k], "shape", ())) == want[k] for k in want)
