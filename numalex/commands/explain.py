"""`numalex explain [SIZE ...]`: the 224-vs-227 story, computed from the specs."""
from __future__ import annotations

from ..explain import explain


def register(sub) -> None:
    p = sub.add_parser(
        "explain", help="why AlexNet's conv1 gives 55 at 227 and 54.25 at 224, computed",
        description="Work out AlexNet's input-size story from the layer specs: conv1's "
                    "output-size arithmetic at each SIZE and which input rows it leaves "
                    "unused, what torchvision (padding 2) and Caffe (227) did, what Caffe's "
                    "ceil-mode pooling does at 224, the parameter totals of the variants, and the "
                    "formula run backwards: which input sizes collapse onto the same conv1 "
                    "output, and which input rows get no gradient.",
        epilog="examples: numalex explain | numalex explain 224 227 231")
    p.add_argument("sizes", nargs="*", type=int, metavar="SIZE",
                   help="input sizes to work conv1 out for (default: 224 227)")
    p.set_defaults(func=run)


def run(args) -> int:
    print(explain(args.sizes))
    return 0
