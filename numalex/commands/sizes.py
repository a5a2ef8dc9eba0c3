"""`numalex sizes VARIANT`: which square input sizes run, and which tile exactly."""
from __future__ import annotations

from ..alexnet import variant_option
from ..sizes import size_report


def register(sub) -> None:
    p = sub.add_parser(
        "sizes", help="which input sizes a variant takes, and which tile exactly",
        description="Fold every square input size from --min to --max through a variant's "
                    "layers with the output-size formula: the sizes that run, the smallest, "
                    "the sizes whose conv trunk ends at 6x6 by itself (the adaptive pool does "
                    "no work), and the sizes every window layer tiles exactly.",
        epilog="examples: numalex sizes torchvision | numalex sizes caffe --min 200 --max 260")
    p.add_argument("variant", type=variant_option,
                   help="torchvision (224), original (227) or bvlc (caffe)")
    p.add_argument("--min", type=int, default=1, dest="min_size", help="smallest size (1)")
    p.add_argument("--max", type=int, default=512, dest="max_size", help="largest size (512)")
    p.set_defaults(func=run)


def run(args) -> int:
    print(size_report(args.variant, args.min_size, args.max_size))
    return 0
