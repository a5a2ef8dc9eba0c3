"""`numalex summary VARIANT`: the layer table, computed from the specs."""
from __future__ import annotations

import csv
import json
import sys

from ..alexnet import alexnet, variant_option
from ..shapes import ShapeError
from ..sizes import smallest_input
from ..summary import summary


def register(sub) -> None:
    p = sub.add_parser(
        "summary", help="the layer table of a variant (shapes, params, formula, MACs)",
        description="Print the layer table of an AlexNet variant: output shapes, parameter "
                    "counts with their arithmetic, the output-size formula worked for every "
                    "sliding window, multiply-adds and receptive field. Every number is "
                    "computed from the layer specs.",
        epilog="examples: numalex summary torchvision | numalex summary caffe --input-size 224 "
               "| numalex summary 227 --json")
    p.add_argument("variant", type=variant_option,
                   help="torchvision (224), original (227) or bvlc (caffe)")
    p.add_argument("--input-size", type=int, default=None,
                   help="square input size (default: the variant's own, 224 or 227)")
    p.add_argument("--num-classes", type=int, default=1000, help="classifier outputs")
    p.add_argument("--width", type=float, default=1.0,
                   help="scale every conv and fc width (e.g. 0.25)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print the table as JSON")
    fmt.add_argument("--csv", action="store_true", help="print the rows as CSV")
    p.set_defaults(func=run)


def run(args) -> int:
    # bvlc derives fc6 from the input size, so build the model at that size
    try:
        model = alexnet(args.variant, num_classes=args.num_classes, width=args.width,
                        input_size=args.input_size)
        table = summary(model)
    except ShapeError as err:
        smallest = smallest_input(args.variant)
        raise ShapeError(f"{err}. The smallest input size {args.variant} takes is "
                         f"{smallest} (see `numalex sizes {args.variant}`)") from None
    if args.json:
        print(json.dumps(table.to_dict(), indent=2))
    elif args.csv:
        rows = table.to_dict()["rows"]
        writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    else:
        print(table)
    return 0
