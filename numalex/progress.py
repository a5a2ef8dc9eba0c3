"""A dependency-free progress bar for long work (benchmarks, classifying folders).

    for item in progress(items, "classify", unit="images"):
        ...

It writes to stderr, redraws in place on a terminal, and prints a single
line at the end elsewhere (CI logs stay short):
`classify [#########.....] 300/500 41.3 images/s ETA 4.8s 7.3s`
(done/total, the rate so far, the time left at that rate, the time spent).
Set NUMALEX_PROGRESS=0 to silence it.
"""
from __future__ import annotations

import os
import sys
import time


def progress(items, label: str = "", total: int | None = None, stream=None,
             unit: str = "items"):
    """Yield from `items`, drawing the bar as it goes; `unit` names what is counted."""
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
            _draw(stream, label, done, total, time.perf_counter() - start, unit, end="\r")
    if enabled:
        _draw(stream, label, done, total, time.perf_counter() - start, unit, end="\n")


def _draw(stream, label, done, total, seconds, unit, end):
    width = 30
    filled = min(width, width * done // total) if total else width
    bar = "#" * filled + "." * (width - filled)
    rate = done / seconds if seconds > 0 else 0.0
    eta = _duration((total - done) / rate) if rate > 0 and done < total else "-"
    stream.write(f"{label} [{bar}] {done}/{total} {rate:.1f} {unit}/s ETA {eta} "
                 f"{_duration(seconds)}{end}")
    stream.flush()


def _duration(seconds: float) -> str:
    """4.8s, 3m05s, 2h07m."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"
