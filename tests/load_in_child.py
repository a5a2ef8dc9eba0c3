"""Load weight files in a child Python, under address-space and file-size limits.

A hostile file may crash the process that reads it, so hostile-input tests
never load one inside pytest. `load_all(paths, out_dir)` starts one child
for many files (paying for `import numalex` once). The child first loads a
valid file of each format, so that every module a reader needs is imported,
and records its peak RSS as the baseline. Then it sets the limits and, for
each file: loads it, writes the arrays to OUT_DIR/out.npz when it loaded (as
`numalex convert` would), and prints one JSON line: the outcome, the
exception's type and message, the seconds taken, the peak RSS so far and
what is left in OUT_DIR. If the child dies (a crash, a limit hit, a hang),
the file it was on is reported as "crash" and a new child goes on with the
rest.

POSIX only (the `resource` module). Peak RSS (ru_maxrss) only grows, so a file's own peak is known only when it
raises the peak; `memory_rises` picks those files out.
"""
import hashlib
import json
import os
import resource
import signal
import subprocess
import sys
import time
import tracemalloc

ADDRESS_SPACE_HEADROOM = 1 << 30    # the child may map 1 GiB beyond its warm-up
FILE_SIZE_LIMIT = 64 << 20          # and write no file over 64 MiB
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _peak_kib() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak      # macOS counts bytes


def _virtual_size():
    """This process's mapped bytes (Linux), or None where /proc is missing."""
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) * 1024 for line in status
                        if line.startswith("VmSize:"))
    except (OSError, StopIteration):
        return None


def digest(array) -> list:
    """[dtype, shape, sha256 of the little-endian C-order bytes]: an array's
    identity, small enough for a JSON line."""
    import numpy as np
    little = np.dtype(array.dtype).newbyteorder("<")
    return [little.str, list(array.shape),
            hashlib.sha256(np.ascontiguousarray(array, little).tobytes()).hexdigest()]


def _load_one(source, out_dir, numalex):
    """{'outcome': 'loaded' | 'refused' | 'escaped', ...} for one file."""
    target = os.path.join(out_dir, "out.npz")
    start = time.perf_counter()
    digests, before = {}, tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    try:
        arrays = numalex.load_weights(source)
        numalex.save_weights(arrays, target)
        digests = {key: digest(array) for key, array in arrays.items()}
        outcome, error, message = "loaded", "", ""
    except numalex.weights.WeightFileError as err:
        outcome, error, message = "refused", type(err).__name__, str(err)
    except BaseException as err:            # anything else is a finding
        outcome, error, message = "escaped", type(err).__name__, str(err)[:500]
    traced = tracemalloc.get_traced_memory()[1] - before
    leftovers = sorted(os.listdir(out_dir))
    if outcome == "loaded":
        os.unlink(target)
    return {"source": source, "outcome": outcome, "error": error, "message": message,
            "seconds": time.perf_counter() - start, "peak_kib": _peak_kib(),
            "traced_peak": traced,
            "leftovers": leftovers, "arrays": digests}


def child_main(jobs_file, out_dir, *warm_up):
    import numalex
    for path in warm_up:
        _load_one(path, out_dir, numalex)
    print(json.dumps({"baseline_kib": _peak_kib()}), flush=True)
    mapped = _virtual_size()
    if mapped is not None:                           # macOS does not enforce RLIMIT_AS
        limit = mapped + ADDRESS_SPACE_HEADROOM
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE_LIMIT, FILE_SIZE_LIMIT))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # a write past the limit fails: EFBIG
    tracemalloc.start()
    with open(jobs_file) as jobs:
        for line in jobs:
            print(json.dumps(_load_one(line.rstrip("\n"), out_dir, numalex)), flush=True)


def _run_child(paths, out_dir, warm_up, timeout):
    """(baseline KiB, result lines, the child's exit code and stderr tail)."""
    jobs_file = os.path.join(out_dir, "..", f"jobs-{os.getpid()}-{time.time_ns()}.txt")
    with open(jobs_file, "w") as jobs:
        jobs.write("".join(f"{path}\n" for path in paths))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [REPO] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    child = subprocess.Popen([sys.executable, os.path.abspath(__file__), jobs_file, out_dir,
                              *map(str, warm_up)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        stdout, stderr = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        stdout, stderr = child.communicate()
        stderr += f"\n(killed after {timeout} s)"
    os.unlink(jobs_file)
    lines = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    baseline = lines.pop(0)["baseline_kib"] if lines and "baseline_kib" in lines[0] else None
    return baseline, lines, child.returncode, stderr[-1000:]


def load_all(paths, out_dir, warm_up=(), timeout=300):
    """[one result per path, in order]; see the module docstring. Each result
    carries the baseline of the child that produced it."""
    os.makedirs(out_dir, exist_ok=True)
    results, remaining = [], [str(p) for p in paths]
    while remaining:
        baseline, lines, code, stderr = _run_child(remaining, out_dir, warm_up, timeout)
        if baseline is None:
            raise RuntimeError(f"the child failed before loading anything: {stderr}")
        results += [dict(line, baseline_kib=baseline) for line in lines]
        if len(lines) == len(remaining):
            break
        results.append({"source": remaining[len(lines)], "outcome": "crash", "error": "",
                        "message": f"exit code {code}: {stderr}", "seconds": None,
                        "peak_kib": None, "baseline_kib": None, "traced_peak": None,
                        "leftovers": sorted(os.listdir(out_dir))})
        remaining = remaining[len(lines) + 1:]
    return results


def memory_rises(results):
    """[(result, KiB above its child's baseline)] for each file that raised
    its child's peak RSS."""
    rises, peak = [], None
    for result in results:
        if result["outcome"] == "crash":
            peak = None                     # the next result comes from a new child
            continue
        peak = result["baseline_kib"] if peak is None else peak
        if result["peak_kib"] > peak:
            peak = result["peak_kib"]
            rises.append((result, peak - result["baseline_kib"]))
    return rises


if __name__ == "__main__":
    child_main(*sys.argv[1:])
