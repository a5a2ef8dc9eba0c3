"""`numalex classify IMAGE... --weights FILE`: top-k ImageNet labels per image.

Images (files, or folders searched recursively) stream through a bounded
pipeline (numalex/inference/pipeline.py): threads decode the next batches
while the model runs the current one, and each image's result is written as
soon as its batch is done: to the terminal, or with `--out FILE.jsonl|.csv`
to a file that a killed run can `--resume`. `--dask` runs the same job on a
Dask cluster (numalex/distributed.py). An image that cannot be read is
reported and never stops the others.
"""
from __future__ import annotations

import sys

from .. import backends
from ..alexnet import variant_option
from ..backends.checks import positive_int
from ..images import PRESETS, find_images
from ..inference.classifier import ClassifierSpec
from ..inference.output import ResultFile, strict_json
from ..inference.pipeline import stream
from ..progress import progress

EXIT_SOME_FAILED = 1
SHOWN_FAILURES = 20


def register(sub) -> None:
    p = sub.add_parser(
        "classify", help="label photos with a pretrained AlexNet (top-k with probabilities)",
        description="Classify images with real pretrained weights and no deep-learning "
                    "framework: torchvision's alexnet-owt-7be5be79.pth for --variant "
                    "torchvision, BVLC's bvlc_alexnet.caffemodel for --variant bvlc. "
                    "Results stream out batch by batch; an unreadable image is listed at "
                    "the end and never stops the others.",
        epilog="exit status: 0 every image was classified; 1 some images could not be read "
               "(all others were classified, the bad ones are listed on stderr and are "
               "rows with an \"error\" in --out / --json); 2 bad arguments or weights, or a "
               "failure that stopped the run. "
               "examples: numalex classify cat.jpg --weights alexnet-owt-7be5be79.pth | "
               "numalex classify photos/ --variant bvlc --weights bvlc_alexnet.caffemodel "
               "--backend numba --out labels.jsonl [--resume] [--dask local:2]")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders")
    p.add_argument("--weights", required=True, metavar="FILE",
                   help=".pth, .caffemodel, .safetensors or .npz")
    p.add_argument("--variant", default="torchvision", type=variant_option,
                   metavar="V", help="torchvision (default), original or bvlc")
    p.add_argument("--backend", metavar="B",
                   help="numpy, numba or cuda (default: the fastest available, "
                        "cuda on a GPU, else numba)")
    p.add_argument("--top", type=int, default=5, metavar="K", help="labels per image (5)")
    p.add_argument("--json", action="store_true",
                   help="print a JSON array (strict JSON, one element per image) "
                        "instead of a table")
    p.add_argument("--batch-size", type=int, default=8, metavar="N",
                   help="images per forward pass (8)")
    p.add_argument("--preset", choices=sorted(PRESETS),
                   help="preprocessing (default: the one the variant's weights expect)")
    p.add_argument("--num-classes", type=int, default=1000, metavar="N",
                   help="outputs of the last layer (1000)")
    p.add_argument("--width", type=float, default=1.0, help="width the weights were built at")
    p.add_argument("--labels", metavar="FILE",
                   help="class names, one per line (default: ImageNet's 1000)")
    p.add_argument("--out", metavar="FILE",
                   help="write one line per image to FILE.jsonl (JSON Lines) or FILE.csv "
                        "as each batch finishes, instead of printing")
    p.add_argument("--resume", action="store_true",
                   help="continue --out FILE after a killed or failed run: skip the images "
                        "already in it and append the rest")
    p.add_argument("--decode-threads", type=int, metavar="N",
                   help="threads decoding images ahead of the model (default 2; with "
                        "--dask, per worker: 1)")
    p.add_argument("--dask", metavar="CLUSTER",
                   help="run on Dask: local[:N] starts N worker processes here (default: "
                        "one per core); tcp://HOST:PORT uses a running scheduler; weights "
                        "and images must be readable at the same paths on every worker "
                        "(pip install 'numalex[dask]')")
    p.add_argument("--partition-size", type=int, default=64, metavar="N",
                   help="images per Dask task (64)")
    p.add_argument("--worker-threads", type=int, metavar="N",
                   help="Numba and OpenBLAS threads per Dask worker (default: the "
                        "machine's cores shared among the workers on it)")
    p.set_defaults(func=run)


class TableOutput:
    """Human-readable results on stdout, one block per image."""

    done, failed = frozenset(), 0

    def write(self, row: dict) -> None:
        print(row["image"])
        if "error" in row:
            print(f"  error: {row['error']}")
        for entry in row.get("top", []):
            print(f"  {entry['rank']:>2}  {100 * entry['probability']:6.2f}%  "
                  f"{entry['label']} ({entry['index']})")

    def flush(self) -> None:
        sys.stdout.flush()

    def close(self) -> None:
        pass


class JsonArrayOutput(TableOutput):
    """One strict-JSON array on stdout, an element per line, written as rows come."""

    def __init__(self):
        self.separator = "[\n"

    def write(self, row: dict) -> None:
        sys.stdout.write(self.separator + strict_json(row))
        self.separator = ",\n"

    def close(self) -> None:
        sys.stdout.write("[]\n" if self.separator == "[\n" else "\n]\n")


def check_arguments(args) -> None:
    for option in ("top", "batch_size", "partition_size", "decode_threads", "worker_threads"):
        if getattr(args, option) is not None:
            positive_int(getattr(args, option), "--" + option.replace("_", "-"))
    if args.resume and not args.out:
        raise ValueError("--resume continues an output file: give it with --out FILE")
    if args.json and args.out:
        raise ValueError("--json prints to the terminal; --out FILE.jsonl writes JSON Lines")


def run(args) -> int:
    check_arguments(args)
    if args.dask is not None:
        from .. import distributed  # noqa: F401 - without Dask: says what to install
    paths = list(dict.fromkeys(find_images(args.images)))      # each image once
    if not paths:
        raise ValueError(f"no images found in {', '.join(args.images)}")
    backend = args.backend or backends.fastest_available()
    spec = ClassifierSpec(weights=args.weights, variant=args.variant, backend=backend,
                          top=args.top, preset=args.preset, num_classes=args.num_classes,
                          width=args.width, labels=args.labels)
    output = (ResultFile(args.out, args.top, resume=args.resume) if args.out
              else JsonArrayOutput() if args.json else TableOutput())
    try:
        todo = [path for path in paths if path not in output.done]
        failed, shown = write_rows(results(todo, spec, args), output, len(todo))
    finally:
        output.close()
    return report(failed, shown, output.failed, len(paths), args.out)


def results(todo, spec, args):
    """Result rows for `todo`: here (the model is built now, so bad weights
    fail before any output), or on Dask when --dask is given."""
    if args.dask is None:
        return stream(spec.build(), todo, args.batch_size, args.decode_threads or 2)
    return dask_results(todo, spec, args)


def dask_results(todo, spec, args):
    from .. import distributed

    with distributed.connect(args.dask) as client:
        yield from distributed.stream_rows(todo, client, spec, args.batch_size,
                                           args.partition_size, args.worker_threads,
                                           decode_threads=args.decode_threads or 1)


def write_rows(rows, output, total: int) -> tuple[int, list]:
    """Write every row, flushed (a killed run keeps them); return how many
    were errors and the first SHOWN_FAILURES error texts."""
    failed, shown = 0, []
    for row in progress(rows, "classify", total=total, unit="images"):
        output.write(row)
        output.flush()
        if "error" in row:
            failed += 1
            shown += [row["error"]][:SHOWN_FAILURES - len(shown)]
    return failed, shown


def report(failed: int, shown: list, earlier: int, total: int, out) -> int:
    """List the images that could not be read on stderr; the exit status."""
    if not failed + earlier:
        return 0
    where = f"; each is a row with an \"error\" in {out}" if out else ""
    print(f"numalex classify: {failed + earlier} of {total} images could not be read"
          f"{f' ({earlier} in the earlier run)' if earlier else ''}{where}:", file=sys.stderr)
    for error in shown:
        print(f"  {error}", file=sys.stderr)
    if failed > len(shown):
        print(f"  ... and {failed - len(shown)} more", file=sys.stderr)
    return EXIT_SOME_FAILED
