"""`numalex visualize`: PNGs of conv1's filters and of feature maps inside the net."""
from __future__ import annotations

import os
import tempfile

from ..alexnet import alexnet, variant_option
from ..visualize import (check_layer_names, feature_maps_figure, filters_figure, model_input,
                         pyplot, saliency_figure)

MAX_CHANNELS = 64      # feature maps per layer: one small picture each


def register(sub) -> None:
    p = sub.add_parser(
        "visualize", help="PNGs of conv1's filters and of an image's feature maps",
        description="Write two PNGs: conv1's filters as small RGB pictures, and the most "
                    "active feature maps of an image (or of a generated test pattern) at "
                    "chosen layers, titled with their shapes, size arithmetic and receptive "
                    "field. Needs matplotlib (pip install 'numalex[plot]').",
        epilog="examples: numalex visualize | numalex visualize torchvision --weights "
               "alexnet.pth --image cat.jpg --layers features.1 features.11 | numalex "
               "visualize --weights alexnet.pth --saliency cat.jpg")
    p.add_argument("variant", nargs="?", default="torchvision", type=variant_option,
                   help="torchvision (224), original (227) or bvlc (caffe)")
    p.add_argument("--weights", default=None, help="pretrained weights (default: random)")
    p.add_argument("--image", default=None, help="an image file (default: a test pattern)")
    p.add_argument("--layers", nargs="+", default=None, metavar="NAME",
                   help="layers to draw (default: the ReLUs after conv1, conv2, conv5)")
    p.add_argument("--channels", type=int, default=8,
                   help=f"channels per layer (8; at most {MAX_CHANNELS})")
    p.add_argument("--out", default=".", help="folder for the PNGs (default: here)")
    p.add_argument("--saliency", default=None, metavar="IMAGE",
                   help="instead, write saliency.png: the gradient of IMAGE's top class "
                        "with respect to its pixels, by backpropagation")
    p.set_defaults(func=run)


def _check_out(folder) -> None:
    """--out must be a folder, or a path where one can be made."""
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise ValueError(f"--out {folder} is a file; give a folder for the PNGs")
    parent = os.path.abspath(folder)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"--out {folder}: cannot write in {parent}")


def run(args) -> int:
    # every argument is checked before anything is drawn, and the PNGs appear
    # together at the end: a failure leaves nothing behind
    if not 1 <= args.channels <= MAX_CHANNELS:
        raise ValueError(f"--channels must be between 1 and {MAX_CHANNELS}, got "
                         f"{args.channels}")
    _check_out(args.out)
    pyplot()                                        # matplotlib, or what to install
    model = alexnet(args.variant, weights=args.weights)
    if args.layers:
        check_layer_names(model, args.layers)
    for image in (args.image, args.saliency):
        if image is not None:
            model_input(model, image)               # a bad image fails here
    made = not os.path.exists(args.out)
    os.makedirs(args.out, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(dir=args.out, prefix=".numalex-") as scratch:
            if args.saliency:
                drawn = [saliency_figure(model, os.path.join(scratch, "saliency.png"),
                                         args.saliency, random_weights=args.weights is None)]
            else:
                drawn = [
                    filters_figure(model, os.path.join(scratch, "conv1_filters.png"),
                                   random_weights=args.weights is None),
                    feature_maps_figure(model, os.path.join(scratch, "feature_maps.png"),
                                        args.image, args.layers, args.channels),
                ]
            written = [os.path.join(args.out, os.path.basename(path)) for path in drawn]
            for path, target in zip(drawn, written):
                os.replace(path, target)
    except BaseException:
        if made:
            os.rmdir(args.out)                      # empty again: the scratch is gone
        raise
    for path in written:
        print(f"wrote {path}")
    return 0
