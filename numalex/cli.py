"""The `numalex` command line. Each sub-command lives in numalex/commands/
as a module with ``register(subparsers)``; the parser is assembled here.

    numalex run                 forward passes of every variant on every backend
    numalex summary VARIANT     the layer table with formulas and MACs
"""
from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__
from .backends import BackendUnavailable
from .shapes import ShapeError

COMMANDS = ["run", "summary", "explain", "sizes", "visualize", "classify", "convert", "bench"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="numalex",
        description="AlexNet from scratch in NumPy and Numba. With no command, "
                    "`numalex run` is the main job.",
        epilog="Run `numalex COMMAND --help` for the options of one command; options "
               "with no command go to `run` (`numalex --variant bvlc`).")
    parser.add_argument("--version", action="version", version=f"numalex {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f".commands.{name}", __package__).register(sub)
    return parser


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    top_level = {"-h", "--help", "--version"}
    if not argv or (argv[0].startswith("-") and argv[0] not in top_level):
        argv = ["run"] + argv                # no command: the main job, with these options
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:                  # `numalex sizes torchvision | head`
        sys.stderr.close()
        return 0
    except (ShapeError, ValueError, TypeError, OSError, ImportError, BackendUnavailable) as err:
        print(f"numalex {args.command}: error: {err}", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"numalex {args.command}: error: out of memory; try a smaller --batch or "
              f"--width", file=sys.stderr)
        return 2
