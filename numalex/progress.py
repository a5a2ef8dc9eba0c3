"""A dependency-free progress bar for long work (benchmarks, classifying folders).

    for item in progress(items, "classify"):
        ...

It writes to stderr, redraws in place on a terminal, and prints a single
line at the end elsewhere (CI logs stay short). Set NUMALEX_PROGRESS=0 to
silence it.
"""
from __future__ import annotations

import os
import sys
import time


def progress(items, label: str = "", total: int | None = None, stream=None):
    """Yield from `items`, drawing `label [####....] 3/8 1.2s` as it goes."""
    stream = sys.stderr if stream is None else stream
    items = list(items) if total is None and not hasattr(items, "__len__") else items
    total = len(items) if total is None else total
    enabled = os.environ.get("NUMALEX_PROGRESS", "1") != "0"
    live = enabled and stream.isatty()
    start = time.perf_counter()
    done = 0
    for done, item in enumerate(items, start=1):
        yield item
        if live:
            _draw(stream, label, done, total, time.perf_counter() - start, end="\r")
    if enabled:
        _draw(stream, label, done, total, time.perf_counter() - start, end="\n")


def _draw(stream, label, done, total, seconds, end):
    width = 30
    filled = width * done // total if total else width
    bar = "#" * filled + "." * (width - filled)
    stream.write(f"{label} [{bar}] {done}/{total} {seconds:.1f}s{end}")
    stream.flush()
