"""`numalex classify IMAGE... --weights FILE`: top-k ImageNet labels per image.

Images (files, or folders searched recursively) are read in batches,
preprocessed the way the weights were trained (see numalex/images.py), run
through the model, and the softmax of the logits gives the probabilities.
"""
from __future__ import annotations

import json

import numpy as np

from .. import backends
from ..alexnet import VARIANTS, alexnet
from ..images import PRESETS, VARIANT_PRESETS, find_images, imagenet_classes, load_batch
from ..progress import progress


def register(sub) -> None:
    p = sub.add_parser(
        "classify", help="label photos with a pretrained AlexNet (top-k with probabilities)",
        description="Classify images with real pretrained weights and no deep-learning "
                    "framework: torchvision's alexnet-owt-7be5be79.pth for --variant "
                    "torchvision, BVLC's bvlc_alexnet.caffemodel for --variant bvlc.",
        epilog="examples: numalex classify cat.jpg --weights alexnet-owt-7be5be79.pth | "
               "numalex classify photos/ --variant bvlc --weights bvlc_alexnet.caffemodel "
               "--backend numba --json")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders")
    p.add_argument("--weights", required=True, metavar="FILE",
                   help=".pth, .caffemodel, .safetensors or .npz")
    p.add_argument("--variant", default="torchvision", choices=sorted(VARIANTS),
                   metavar="V", help="torchvision (default), original or bvlc")
    p.add_argument("--backend", metavar="B",
                   help="numpy, numba or cuda (default: the fastest available, "
                        "cuda on a GPU, else numba)")
    p.add_argument("--top", type=int, default=5, metavar="K", help="labels per image (5)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--batch-size", type=int, default=8, metavar="N",
                   help="images per forward pass (8)")
    p.add_argument("--preset", choices=sorted(PRESETS),
                   help="preprocessing (default: the one the variant's weights expect)")
    p.add_argument("--num-classes", type=int, default=1000, metavar="N",
                   help="outputs of the last layer (1000)")
    p.add_argument("--width", type=float, default=1.0, help="width the weights were built at")
    p.add_argument("--labels", metavar="FILE",
                   help="class names, one per line (default: ImageNet's 1000)")
    p.set_defaults(func=run)


def softmax(logits: np.ndarray) -> np.ndarray:
    """logits: (N, K) -> probabilities (N, K); the max is subtracted first so
    exp never overflows."""
    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def class_names(labels_file, num_classes: int) -> list[str]:
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


def run(args) -> int:
    if args.top < 1 or args.batch_size < 1:
        raise ValueError("--top and --batch-size must be at least 1")
    paths = find_images(args.images)
    if not paths:
        raise ValueError(f"no images found in {', '.join(args.images)}")
    backend = args.backend or backends.fastest_available()
    try:
        model = alexnet(args.variant, weights=args.weights, num_classes=args.num_classes,
                        width=args.width)
        preset = args.preset or VARIANT_PRESETS[model.variant]
        names = class_names(args.labels, model.num_classes)
        results = []
        batches = [paths[i:i + args.batch_size] for i in range(0, len(paths), args.batch_size)]
        for batch in progress(batches, "classify"):
            probs = softmax(model(load_batch(batch, preset), backend=backend))
            results += [{"image": path, "top": top_k(p, args.top, names)}
                        for path, p in zip(batch, probs)]
    except ModuleNotFoundError as err:      # Pillow or safetensors: says what to install
        raise ValueError(str(err)) from None
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for result in results:
            print(result["image"])
            for entry in result["top"]:
                print(f"  {entry['rank']:>2}  {100 * entry['probability']:6.2f}%  "
                      f"{entry['label']} ({entry['index']})")
    return 0
