"""`numalex visualize`: PNGs of conv1's filters and of feature maps inside the net."""
from __future__ import annotations

import os
import sys

from ..alexnet import alexnet
from ..visualize import check_layer_names, feature_maps_figure, filters_figure, saliency_figure


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
    p.add_argument("variant", nargs="?", default="torchvision",
                   help="torchvision (224), original (227) or bvlc (caffe)")
    p.add_argument("--weights", default=None, help="pretrained weights (default: random)")
    p.add_argument("--image", default=None, help="an image file (default: a test pattern)")
    p.add_argument("--layers", nargs="+", default=None, metavar="NAME",
                   help="layers to draw (default: the ReLUs after conv1, conv2, conv5)")
    p.add_argument("--channels", type=int, default=8, help="channels per layer (8)")
    p.add_argument("--out", default=".", help="folder for the PNGs (default: here)")
    p.add_argument("--saliency", default=None, metavar="IMAGE",
                   help="instead, write saliency.png: the gradient of IMAGE's top class "
                        "with respect to its pixels, by backpropagation")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.channels < 1:
        raise ValueError(f"--channels must be at least 1, got {args.channels}")
    model = alexnet(args.variant, weights=args.weights)
    if args.layers:
        check_layer_names(model, args.layers)       # before any file is written
    os.makedirs(args.out, exist_ok=True)
    try:
        if args.saliency:
            written = [saliency_figure(model, os.path.join(args.out, "saliency.png"),
                                       args.saliency, random_weights=args.weights is None)]
        else:
            written = [
                filters_figure(model, os.path.join(args.out, "conv1_filters.png"),
                               random_weights=args.weights is None),
                feature_maps_figure(model, os.path.join(args.out, "feature_maps.png"),
                                    args.image, args.layers, args.channels),
            ]
    except ModuleNotFoundError as err:
        print(f"numalex visualize: {err}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}")
    return 0
