"""`numalex convert IN OUT`: rewrite a weight file as .safetensors or .npz.

Reads any format numalex loads (.pth, .caffemodel, .safetensors, .npz).
With --variant the arrays are first fitted onto that variant (Caffe's old
4-D blobs reshaped, everything checked against the model, float32), so OUT
holds exactly the variant's state dict.

OUT is written under a temporary name beside it and renamed when complete:
a failure leaves no partial file (and an existing OUT untouched). Weights
that hold NaN or Inf are refused unless --allow-nonfinite.
"""
from __future__ import annotations

from ..alexnet import alexnet, variant_option
from ..weights import load_weights, save_weights


def register(sub) -> None:
    p = sub.add_parser(
        "convert", help="rewrite .pth/.caffemodel/.safetensors/.npz weights as .safetensors or .npz",
        description="Read a weight file (without PyTorch or Caffe) and write it as "
                    ".safetensors or .npz, chosen by OUT's extension.",
        epilog="examples: numalex convert alexnet-owt-7be5be79.pth alexnet.safetensors | "
               "numalex convert bvlc_alexnet.caffemodel bvlc.npz --variant bvlc")
    p.add_argument("source", metavar="IN", help="weight file to read")
    p.add_argument("target", metavar="OUT", help="file to write (.safetensors or .npz)")
    p.add_argument("--variant", type=variant_option, metavar="V",
                   help="fit and check the arrays against this variant first")
    p.add_argument("--num-classes", type=int, default=1000, metavar="N",
                   help="with --variant: outputs of the last layer (1000)")
    p.add_argument("--width", type=float, default=1.0, help="with --variant: width (1.0)")
    p.add_argument("--allow-nonfinite", action="store_true",
                   help="copy weights that hold NaN or Inf (refused by default)")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.variant:
        state = alexnet(args.variant, weights=args.source, num_classes=args.num_classes,
                        width=args.width, allow_nonfinite=args.allow_nonfinite).state_dict()
    else:
        state = load_weights(args.source, allow_nonfinite=args.allow_nonfinite)
    save_weights(state, args.target)
    values = sum(array.size for array in state.values())
    print(f"wrote {args.target}: {len(state)} arrays, {values:,} values")
    return 0
