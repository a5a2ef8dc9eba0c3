"""The classify job on a Dask cluster (``pip install 'numalex[dask]'``).

    from distributed import Client
    import numalex.distributed

    client = Client("tcp://scheduler:8786")            # or Client(LocalCluster(...))
    rows = numalex.distributed.classify(paths, client, weights="/shared/alexnet.pth")
    rows.compute()                                     # a dask.bag of result rows

The list of paths is cut into partitions; each task classifies one
partition with the same streaming pipeline as one machine
(numalex/inference/pipeline.py) and returns its rows. Dask does the
scheduling, the transfers and the retries; nothing here is a pool of our own.

Each worker process:

* builds the classifier once (the weights are read from their path, which
  every worker must see, e.g. on a shared file system) and keeps it for every
  later task;
* caps its own compute threads (Numba's and OpenBLAS's) at its share of its
  machine's cores, so N workers on one machine do not run N times as many
  threads as there are cores;
* compiles into a Numba cache directory of its own.

Those settings are made by a worker plugin (WorkerSetup) that Dask runs in
every worker, present or joining later, before its first task.
"""
from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
from collections import Counter
from contextlib import contextmanager
from itertools import islice
from typing import Iterable, Iterator

try:
    import dask.bag
    from distributed import Client, LocalCluster, as_completed
    from distributed.diagnostics.plugin import WorkerPlugin
    from threadpoolctl import threadpool_info, threadpool_limits
except ModuleNotFoundError as err:
    raise ModuleNotFoundError(
        f"running on Dask needs {err.name!r}: pip install 'numalex[dask]'  "
        f"(or: pip install 'dask[distributed]' threadpoolctl)", name=err.name) from None

from .backends.checks import positive_int
from .inference.classifier import ClassifierSpec
from .inference.pipeline import chunks, stream

_built: dict = {}                 # ClassifierSpec -> Classifier, per worker process
_build_lock = threading.Lock()
_threads = None                   # this worker's compute threads, set by WorkerSetup


def worker_classifier(spec: ClassifierSpec):
    """The classifier for `spec`, built on the first call in this process
    (weights read once), the same object for every later task."""
    with _build_lock:
        if spec not in _built:
            _built[spec] = spec.build()
        return _built[spec]


def limit_threads(threads: int) -> None:
    """Cap this process's compute threads. Numba reads NUMBA_NUM_THREADS when
    it is imported and again before every compilation, and refuses to
    compile once its thread pool runs with another count; so a Numba that
    is imported but idle re-reads it now (its pool then starts with
    `threads`), and one whose pool already runs keeps the variable at the
    pool's size and is capped per calling thread by numba.set_num_threads
    (classify_partition calls that too: Dask runs tasks in a thread pool).
    OpenBLAS is already loaded with NumPy: threadpoolctl caps it at run time."""
    global _threads
    _threads = threads
    os.environ["NUMBA_NUM_THREADS"] = str(threads)
    os.environ["OPENBLAS_NUM_THREADS"] = str(threads)
    if "numba" in sys.modules:
        import numba

        try:
            numba.config.reload_config()
        except RuntimeError:                 # the pool runs already, with its own size
            os.environ["NUMBA_NUM_THREADS"] = str(numba.config.NUMBA_NUM_THREADS)
    cap_numba_threads()
    threadpool_limits(threads, user_api="blas")


def cap_numba_threads() -> None:
    """Apply the cap to a Numba that is already imported, in the calling thread."""
    if _threads is not None and "numba" in sys.modules:
        import numba

        numba.set_num_threads(min(_threads, numba.config.NUMBA_NUM_THREADS))


def use_numba_cache(folder: str) -> None:
    """Compile into `folder`. Numba reads NUMBA_CACHE_DIR when a cached
    function is defined, i.e. when numalex's numba backend is first imported."""
    os.makedirs(folder, exist_ok=True)
    os.environ["NUMBA_CACHE_DIR"] = folder
    if "numba" in sys.modules:
        import numba

        numba.config.CACHE_DIR = folder


class WorkerSetup(WorkerPlugin):
    """Runs once in every worker process before its first task: thread caps
    (see limit_threads) and a Numba cache directory named after the worker,
    under `numba_cache` (default: NUMBA_CACHE_DIR, else the temp folder)."""

    name = "numalex-worker-setup"

    def __init__(self, threads_by_worker: dict, default_threads: int | None,
                 numba_cache: str | None):
        self.threads_by_worker = threads_by_worker
        self.default_threads, self.numba_cache = default_threads, numba_cache

    def setup(self, worker):
        threads = self.threads_by_worker.get(worker.address) or self.default_threads or max(
            1, (os.cpu_count() or 1) // worker.state.nthreads)
        limit_threads(threads)
        root = (self.numba_cache or os.environ.get("NUMBA_CACHE_DIR")
                or os.path.join(tempfile.gettempdir(), "numalex-numba-cache"))
        use_numba_cache(os.path.join(root, "worker-" + re.sub(r"[^\w.-]", "_", str(worker.name))))


def prepare_workers(client: Client, threads: int | None = None,
                    numba_cache: str | None = None) -> None:
    """Register WorkerSetup. Without `threads`, a worker gets its machine's
    cores divided by the task threads of all workers on that machine."""
    threads_by_worker = {}
    if threads is None:
        workers = client.scheduler_info(n_workers=-1)["workers"]
        cores = client.run(os.cpu_count)
        per_host = Counter()
        for info in workers.values():
            per_host[info["host"]] += info["nthreads"]
        threads_by_worker = {address: max(1, (cores.get(address) or 1) // per_host[info["host"]])
                             for address, info in workers.items()}
    else:
        positive_int(threads, "threads per worker")
    client.register_plugin(WorkerSetup(threads_by_worker, threads, numba_cache))


def worker_state() -> dict:
    """This worker's settings, for checking them: client.run(worker_state)."""
    blas = [info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"]
    return {"threads": _threads, "numba_num_threads": os.environ.get("NUMBA_NUM_THREADS"),
            "blas_threads": blas, "numba_cache_dir": os.environ.get("NUMBA_CACHE_DIR"),
            "models_loaded": len(_built)}


def classify_partition(paths: list, spec: ClassifierSpec, batch: int = 8,
                       decode_threads: int = 1) -> list[dict]:
    """One task: the rows of one partition of paths, in order."""
    classifier = worker_classifier(spec)
    cap_numba_threads()                      # per thread: Dask runs tasks in a pool
    return list(stream(classifier, paths, batch, decode_threads))


def classify(paths: Iterable, client: Client, weights=None, batch: int = 8, *,
             partition_size: int = 256, threads: int | None = None,
             numba_cache: str | None = None, decode_threads: int = 1,
             **options) -> dask.bag.Bag:
    """A dask.bag of result rows (numalex/inference/classifier.py), one per
    path, computed on `client`'s workers: `.compute()` gathers them,
    `.to_textfiles(...)` writes them from the workers. options: variant,
    backend, top, preset, num_classes, width, input_size, labels."""
    spec = ClassifierSpec(weights=None if weights is None else os.fspath(weights), **options)
    positive_int(batch, "batch"), positive_int(partition_size, "partition_size")
    prepare_workers(client, threads, numba_cache)
    paths = [os.fspath(path) for path in paths]
    return dask.bag.from_sequence(paths, partition_size=partition_size).map_partitions(
        classify_partition, spec, batch, decode_threads)


def stream_rows(paths: Iterable, client: Client, spec: ClassifierSpec, batch: int = 8,
                partition_size: int = 64, threads: int | None = None,
                numba_cache: str | None = None, decode_threads: int = 1) -> Iterator[dict]:
    """Rows as partitions finish (not in path order), with a bounded number
    of partitions in flight (two per task thread in the cluster), so neither
    the scheduler nor this process holds the whole job."""
    positive_int(batch, "batch"), positive_int(partition_size, "partition_size")
    prepare_workers(client, threads, numba_cache)
    slots = sum(info["nthreads"] for info in client.scheduler_info(n_workers=-1)["workers"]
                .values())
    partitions = chunks((os.fspath(path) for path in paths), partition_size)
    running = as_completed()

    def submit(partition):
        running.add(client.submit(classify_partition, partition, spec, batch,
                                  decode_threads, pure=False))

    for partition in islice(partitions, max(2, 2 * slots)):
        submit(partition)
    for future in running:
        rows = future.result()
        if (following := next(partitions, None)) is not None:
            submit(following)
        yield from rows


@contextmanager
def connect(target: str, timeout: float = 30) -> Iterator[Client]:
    """A Client for --dask: 'local' (one worker process per core), 'local:N'
    (N worker processes on this machine, one task thread each), or a
    scheduler's address such as 'tcp://10.0.0.5:8786'."""
    local = re.fullmatch(r"local(?::(\d+))?", target)
    if local:
        workers = int(local.group(1) or os.cpu_count() or 1)
        positive_int(workers, "--dask local:N")
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                          dashboard_address=":0", silence_logs=40) as cluster, \
                Client(cluster) as client:
            yield client
    elif "://" in target:
        with Client(target, timeout=timeout) as client:
            yield client
    else:
        raise ValueError(f"--dask {target!r}: give local, local:N or a scheduler address "
                         f"such as tcp://HOST:8786")
