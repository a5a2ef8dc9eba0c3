"""`numalex train DATA`: train an AlexNet with numalex's own backward pass and SGD.

DATA is `digits` (scikit-learn's handwritten digits, no download) or a folder
with one subfolder of images per class. Each epoch draws a progress bar with
the running loss and throughput, then prints the held-out accuracy and
writes a checkpoint that `numalex classify IMAGE --weights FILE` uses as it
is and `numalex train DATA --resume FILE` continues from.
"""
from __future__ import annotations

import json
import os
import sys
import time

from ..alexnet import NATIVE_INPUT, alexnet, canonical_variant, variant_option
from ..training.checkpoint import default_path, load_checkpoint, save_checkpoint
from ..training.data import load_data
from ..training.loop import TrainingDiverged, fit
from ..training.plots import write_plots
from ..training.sgd import SGD

# Digits: a small bvlc net on 67x67 inputs, where its conv trunk ends at 1x1.
# bvlc sizes fc6 from what the trunk really outputs; torchvision's adaptive
# pool would copy that 1x1 output 36 times, which multiplies fc6's effective
# learning rate by 36: at these sizes it diverges at lr 0.01 and crawls at
# 0.001 (PyTorch, same weights and data, does the same). Folders: the paper's
# net at its own size.
DEFAULTS = {
    "digits": dict(variant="bvlc", width=0.25, input_size=67, epochs=30, batch=32,
                   lr=0.005, seed=0),
    "folder": dict(variant="torchvision", width=1.0, input_size=None, epochs=30, batch=128,
                   lr=0.01, seed=0),
}
MODEL_FLAGS = ("variant", "width", "input_size")          # fixed once a run has started
RESUMABLE = ("batch", "seed")                              # taken from the checkpoint


def register(sub) -> None:
    p = sub.add_parser(
        "train", help="train an AlexNet on 'digits' or a folder of class subfolders",
        description="Train with numalex's own backward pass and SGD (momentum, weight "
                    "decay, lr / 10 when the held-out accuracy stops improving). A fifth of "
                    "each class is held out. After every epoch the checkpoint (weights, "
                    "optimizer, classes, preprocessing) is written to --out.",
        epilog="examples: numalex train digits | numalex train photos/ --width 0.5 "
               "--input-size 127 --epochs 20 | numalex train digits --resume "
               "digits.safetensors --epochs 40")
    p.add_argument("data", metavar="DATA",
                   help="'digits', or a folder with one subfolder of images per class")
    p.add_argument("--variant", type=variant_option, metavar="V",
                   help="torchvision, original or bvlc (default: bvlc for digits, "
                        "torchvision for folders)")
    p.add_argument("--width", type=float, help="scales every layer's width "
                   "(default: 0.25 for digits, 1 for folders)")
    p.add_argument("--input-size", type=int, metavar="S",
                   help="square input (default: 67 for digits, the variant's own for folders)")
    p.add_argument("--epochs", type=int, help="train until this many epochs are done "
                   "(default: 30)")
    p.add_argument("--batch", type=int, metavar="N",
                   help="images per step (default: 32 for digits, 128 for folders)")
    p.add_argument("--lr", type=float, help="learning rate (default: 0.005 for digits, "
                   "0.01 for folders as in the paper)")
    p.add_argument("--momentum", type=float, default=0.9, help="(0.9)")
    p.add_argument("--weight-decay", type=float, default=5e-4, help="(0.0005)")
    p.add_argument("--patience", type=int, default=2,
                   help="epochs without a better held-out accuracy before lr / 10 (2)")
    p.add_argument("--backend", default="numba", metavar="B", help="numba (default) or numpy")
    p.add_argument("--seed", type=int, help="weights, shuffling, crops, dropout (0)")
    p.add_argument("--out", metavar="FILE",
                   help="checkpoint, .safetensors or .npz (default: DATA's name, or --resume)")
    p.add_argument("--resume", metavar="FILE", help="continue from this checkpoint")
    p.add_argument("--json", action="store_true",
                   help="end with one JSON object (epochs, loss, accuracy, seconds)")
    p.set_defaults(func=run)


def settings(args, resumed) -> dict:
    """Flags, else the checkpoint's values (when resuming), else the defaults."""
    kind = "digits" if args.data == "digits" and not os.path.isdir(args.data) else "folder"
    chosen = {name: getattr(args, name) for name in DEFAULTS[kind]}
    if chosen["variant"] is not None:
        chosen["variant"] = canonical_variant(chosen["variant"])
    if resumed is not None:
        meta = resumed.meta
        saved = {"variant": meta["variant"], "width": meta["width"],
                 "input_size": meta["input_size"], "batch": meta["batch_size"],
                 "seed": meta["seed"], "lr": meta["optimizer"]["lr"]}
        for name in MODEL_FLAGS:
            if chosen[name] is not None and chosen[name] != saved[name]:
                flag = "--" + name.replace("_", "-")
                raise ValueError(f"{args.resume} holds a {saved['variant']} net of width "
                                 f"{saved['width']} for {saved['input_size']}x"
                                 f"{saved['input_size']} inputs; {flag} {chosen[name]} does "
                                 f"not fit it. Drop {flag}, or train anew without --resume")
        chosen = {name: saved.get(name) if value is None else value
                  for name, value in chosen.items()}
    chosen = {name: DEFAULTS[kind][name] if value is None else value
              for name, value in chosen.items()}
    for name in ("epochs", "batch"):
        if chosen[name] < 1:
            raise ValueError(f"--{name} must be at least 1, got {chosen[name]}")
    return chosen


def run(args) -> int:
    started = time.perf_counter()
    resumed = load_checkpoint(args.resume) if args.resume else None
    s = settings(args, resumed)
    data = load_data(args.data, s["input_size"] or NATIVE_INPUT[s["variant"]])
    model = alexnet(s["variant"], num_classes=len(data.class_names), width=s["width"],
                    input_size=data.input_size, seed=s["seed"])
    optimizer = SGD(model, s["lr"], args.momentum, args.weight_decay, args.patience)
    history = []
    if resumed is not None:
        _restore(args.resume, resumed, model, optimizer, data)
        if args.lr is not None:
            optimizer.lr = args.lr
        history = list(resumed.meta["history"])
        if optimizer.epoch >= s["epochs"]:
            raise ValueError(f"{args.resume} has trained {optimizer.epoch} epochs already; "
                             f"ask for more, e.g. --epochs {optimizer.epoch + 10}")
    out = args.out or args.resume or default_path(data.name)
    log = sys.stderr if args.json else sys.stdout
    print(f"training {model.variant} (width {s['width']}, {data.input_size}x"
          f"{data.input_size}, {model.num_params():,} params) on {data.name}: "
          f"{data.size('train')} training and {data.size('held_out')} held-out images, "
          f"{len(data.class_names)} classes, backend {args.backend}", file=log)
    skipped, saved = {}, []

    def after_epoch(record):
        history.append(record.to_dict())
        saved.append(record.epoch)
        skipped.update(dict.fromkeys(record.skipped))
        save_checkpoint(out, model, optimizer, {
            "width": s["width"], "class_names": data.class_names, "data": data.name,
            "preset": vars(data.preset), "seed": s["seed"], "batch_size": s["batch"],
            "history": history})
        print(f"epoch {record.epoch}/{s['epochs']}  loss {record.loss:.4f}  held-out "
              f"{100 * record.accuracy:.2f}%  lr {record.lr:g}  {record.seconds:.1f}s"
              f"  -> {out}", file=log, flush=True)

    try:
        fit(model, optimizer, data, s["epochs"], s["batch"], args.backend, s["seed"],
            after_epoch)
    except TrainingDiverged as err:
        if saved:
            kept = f"the last good checkpoint, after epoch {saved[-1]}, is {out}"
        elif resumed is not None:
            kept = f"{args.resume} (epoch {err.epoch - 1}) is unchanged"
        else:
            kept = "no epoch finished, so no checkpoint was written"
        raise ValueError(f"{err}; {kept}") from None
    finally:
        if skipped:
            print(f"skipped {len(skipped)} unreadable image(s):", file=sys.stderr)
            for message in skipped:
                print(f"  {message}", file=sys.stderr)
    for path in write_plots(out, history, model):
        print(f"wrote {path}", file=log)
    last = history[-1]
    if args.json:
        print(json.dumps({"epochs": last["epoch"], "final_training_loss": last["loss"],
                          "held_out_accuracy": last["accuracy"],
                          "seconds": round(time.perf_counter() - started, 2),
                          "checkpoint": out, "variant": model.variant, "width": s["width"],
                          "input_size": data.input_size, "backend": args.backend,
                          "skipped": list(skipped), "history": history}))
    return 0


def _restore(path, checkpoint, model, optimizer, data) -> None:
    """Load weights and optimizer state; the data must have the same classes."""
    if checkpoint.meta["class_names"] != data.class_names:
        raise ValueError(f"{path} was trained on the classes "
                         f"{checkpoint.meta['class_names']}, but {data.name} has "
                         f"{data.class_names}")
    model.load_state_dict(checkpoint.params)
    optimizer.load_state_dict(checkpoint.meta["optimizer"], checkpoint.momentum)
