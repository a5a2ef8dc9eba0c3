"""Say so while Numba compiles, instead of sitting silent for half a minute.

numalex's Numba kernels compile the first time they run (tens of seconds for
a whole AlexNet on two cores) and are cached on disk afterwards (``cache=True``),
so later runs load them in a moment. Wrapped around work that may compile::

    with compile_notice():
        model(x, backend="numba")

prints, once and only if Numba really compiles something (a kernel loaded
from the cache is no compilation), where the cache lives; on a terminal it
then redraws a count of the functions compiled so far, and at the end it says
how many it compiled and how long that took. It listens to Numba's
``numba:compile`` events (numba.core.event), which fire for compilations only.
"""
from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager

from numba.core import event

# Where `cache=True` keeps compiled kernels when NUMBA_CACHE_DIR is unset.
DEFAULT_CACHE = ("the __pycache__ folders beside numalex's kernel sources (or Numba's "
                 "user cache folder if those are read-only)")


def cache_location(dispatcher) -> str:
    """The folder where `dispatcher`'s compiled code is cached."""
    # FunctionCache._cache_path is private to Numba; the fallback says where it usually is.
    path = getattr(getattr(dispatcher, "_cache", None), "_cache_path", None)
    return path or os.environ.get("NUMBA_CACHE_DIR") or DEFAULT_CACHE


class CompileNotice(event.Listener):
    """Counts Numba compilations and tells the user about them on `stream`."""

    def __init__(self, stream, live: bool):
        self.stream, self.live = stream, live
        self.compiled = 0          # functions compiled, nested ones included
        self.seconds = 0.0         # time spent compiling
        self._depth, self._since = 0, 0.0

    def on_start(self, ev):
        dispatcher = ev.data["dispatcher"]
        if self.compiled == 0:
            self.stream.write(
                f"numba: compiling numalex's kernels (first run only; cached in "
                f"{cache_location(dispatcher)}, so later runs load them in seconds)\n")
        if self._depth == 0:
            self._since = time.perf_counter()
        self._depth += 1
        self.compiled += 1
        if self.live:
            name = getattr(dispatcher, "__name__", "?")[:40]
            self.stream.write(f"\rnumba: compiling function {self.compiled:>3} ({name}) "
                              f"{self.seconds + time.perf_counter() - self._since:5.1f}s\033[K")
        self.stream.flush()

    def on_end(self, ev):
        self._depth -= 1
        if self._depth == 0:
            self.seconds += time.perf_counter() - self._since

    def finish(self) -> None:
        if self.compiled:
            line = (f"numba: compiled {self.compiled} functions in {self.seconds:.1f}s; "
                    f"they are cached for the next run")
            self.stream.write(f"\r{line}\033[K\n" if self.live else f"{line}\n")
            self.stream.flush()


@contextmanager
def compile_notice(stream=None):
    """While active, tell the user (stderr) whenever Numba compiles; yields the listener."""
    stream = sys.stderr if stream is None else stream
    live = os.environ.get("NUMALEX_PROGRESS", "1") != "0" and stream.isatty()
    notice = CompileNotice(stream, live)
    with event.install_listener("numba:compile", notice):
        try:
            yield notice
        finally:
            notice.finish()
