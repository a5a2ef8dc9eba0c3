"""The `numalex` command line. Each sub-command lives in numalex/commands/
as a module with ``register(subparsers)``; the parser is assembled here.

    numalex run                 forward passes of every variant on every backend
    numalex summary VARIANT     the layer table with formulas and MACs
"""
from __future__ import annotations

import argparse
import importlib
import sys

from .backends import BackendUnavailable
from .shapes import ShapeError

COMMANDS = ["run", "summary", "explain", "sizes", "visualize", "classify", "convert", "bench", "train"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="numalex",
        description="AlexNet from scratch in NumPy and Numba. With no command, "
                    "`numalex run` is the main job.",
        epilog="Run `numalex COMMAND --help` for the options of one command.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f".commands.{name}", __package__).register(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["run"] + list(argv or sys.argv[1:]))
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:                  # `numalex sizes torchvision | head`
        sys.stderr.close()
        return 0
    except (ShapeError, ValueError, TypeError, OSError, ImportError, BackendUnavailable) as err:
        print(f"numalex {args.command}: error: {err}", file=sys.stderr)
        return 2
