"""`numalex classify` over a folder: images per second in one process and on
a Dask LocalCluster, and the per-image costs that add up to it.

    python benchmarks/classify_throughput.py                   # 96 synthetic 500x375 JPEGs
    python benchmarks/classify_throughput.py --images 256 --workers 2 --backend numpy
    python benchmarks/classify_throughput.py --folder photos/ --weights alexnet-owt-7be5be79.pth

Per-image costs (medians over --sample images): decode (read the file into
RGB pixels with Pillow) and preprocess (numalex.images.preprocess: resize,
crop, normalise), one image at a time in one thread; forward (one batch
through the model with this process's Numba and OpenBLAS threads, divided by
its size). Their sum is the time per image when nothing overlaps.

Then the whole pipeline: one process (decoding in --decode-threads threads
while the model runs, Numba and OpenBLAS on every core), and `--dask
local:N` (N worker processes, each capped at its share of the cores, one
partition of --partition-size images per task). Both are warmed up first
(weights loaded, Numba kernels compiled in every worker), and the Dask rows
are checked against the one-process rows (same images, same classes) before
any throughput is printed. Cluster start-up is reported apart.

Needs numalex[image,dask]. With synthetic images and random weights the
classes are meaningless, the costs are not.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np

import numalex
from numalex.commands.bench import machine, markdown
from numalex.images import find_images, preprocess
from numalex.inference.classifier import ClassifierSpec
from numalex.inference.pipeline import stream

try:
    from PIL import Image

    from numalex import distributed
except ImportError as err:
    sys.exit(f"benchmarks/classify_throughput.py needs Pillow and Dask: "
             f"pip install 'numalex[image,dask]' ({err})")


def synthetic_photos(folder: str, count: int, size=(500, 375)) -> list[str]:
    """Smooth random colour fields saved as JPEG (quality 90), a photo's size."""
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        coarse = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        path = os.path.join(folder, f"photo{i:05d}.jpg")
        Image.fromarray(coarse).resize(size, Image.BICUBIC).save(path, quality=90)
        paths.append(path)
    return paths


def per_image_costs(paths, classifier, batch: int) -> dict[str, float]:
    """Median milliseconds per image of decode, preprocess and forward."""
    decode, prep, arrays = [], [], []
    for path in paths:
        start = time.perf_counter()
        with Image.open(path) as image:
            rgb = image.convert("RGB")
        decoded = time.perf_counter()
        arrays.append(preprocess(rgb, classifier.preset))
        decode.append(decoded - start)
        prep.append(time.perf_counter() - decoded)
    x = np.stack((arrays * batch)[:batch])                     # (batch, 3, crop, crop)
    classifier.model(x, backend=classifier.backend)            # compile / warm up
    forward = []
    for _ in range(3):
        start = time.perf_counter()
        classifier.model(x, backend=classifier.backend)
        forward.append((time.perf_counter() - start) / batch)
    return {name: 1e3 * statistics.median(values)
            for name, values in (("decode", decode), ("preprocess", prep),
                                 ("forward", forward))}


def timed(rows) -> tuple[list, float]:
    start = time.perf_counter()
    rows = list(rows)
    return rows, time.perf_counter() - start


def same_answers(rows, reference) -> bool:
    """Same images, errors and top-k classes (probabilities to float32 rounding)."""
    def key(row):
        return row.get("error"), [e["index"] for e in row.get("top", [])]
    mine, theirs = ({row["image"]: row for row in r} for r in (rows, reference))
    return mine.keys() == theirs.keys() and all(
        key(mine[image]) == key(theirs[image])
        and np.allclose([e["probability"] for e in mine[image].get("top", [])],
                        [e["probability"] for e in theirs[image].get("top", [])], rtol=1e-4)
        for image in mine)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--folder", help="classify these images instead of synthetic ones")
    p.add_argument("--images", type=int, default=96, help="synthetic images (96)")
    p.add_argument("--weights", help="weight file (default: random weights, saved to .npz)")
    p.add_argument("--variant", default="torchvision")
    p.add_argument("--backend", default="numba")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--decode-threads", type=int, default=2)
    p.add_argument("--workers", type=int, default=2, help="Dask worker processes (2)")
    p.add_argument("--partition-size", type=int, default=16)
    p.add_argument("--sample", type=int, default=16, help="images for the per-image costs")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        paths = (find_images([args.folder]) if args.folder
                 else synthetic_photos(tmp, args.images))
        weights = args.weights
        if weights is None:
            weights = os.path.join(tmp, "random.npz")
            numalex.save_weights(numalex.alexnet(args.variant).state_dict(), weights)
        spec = ClassifierSpec(weights=weights, variant=args.variant, backend=args.backend)
        classifier = spec.build()
        costs = per_image_costs(paths[:args.sample], classifier, args.batch)
        local, local_s = timed(stream(classifier, paths, args.batch, args.decode_threads))

        start = time.perf_counter()
        with distributed.connect(f"local:{args.workers}") as client:
            started = time.perf_counter() - start
            distributed.prepare_workers(client)
            warm = [client.submit(distributed.classify_partition, paths[:args.batch], spec,
                                  args.batch, workers=[address], pure=False)
                    for address in client.scheduler_info(n_workers=-1)["workers"]]
            client.gather(warm)                                 # weights loaded, compiled
            ran, dask_s = timed(distributed.stream_rows(paths, client, spec, args.batch,
                                                        args.partition_size))
        if not same_answers(ran, local):
            print("Dask rows differ from the one-process rows: nothing timed", file=sys.stderr)
            return 1
    print(f"{len(paths)} images ({'from ' + args.folder if args.folder else '500x375 JPEG'}), "
          f"{args.variant} on {args.backend}, batch {args.batch}; Dask rows validated "
          f"against the one-process rows\n")
    print(markdown(["step", "ms per image (median)"],
                   [[name, f"{ms:.1f}"] for name, ms in costs.items()]
                   + [["sum", f"{sum(costs.values()):.1f}"]]))
    print()
    print(markdown(["runner", "seconds", "images/s"], [
        [f"one process ({args.decode_threads} decode threads)", f"{local_s:.1f}",
         f"{len(paths) / local_s:.1f}"],
        [f"--dask local:{args.workers} (after {started:.1f} s start-up)", f"{dask_s:.1f}",
         f"{len(paths) / dask_s:.1f}"]]))
    print(f"\n{machine()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
