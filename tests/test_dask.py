"""The classify job on a real Dask LocalCluster (two worker processes): the
same rows as one process, each worker loading the weights once with its own
thread caps and Numba cache, the CLI's --dask output resumable, and a clear
message without Dask."""
import os
import sys

import pytest

import numalex
from numalex.cli import main

distributed = pytest.importorskip("distributed", reason="pip install 'numalex[dask]'")
pytest.importorskip("PIL", reason="classify reads images with Pillow: pip install 'numalex[image]'")
import numalex.distributed  # noqa: E402
from test_streaming import (TINY, TINY_ARGS, assert_same_rows, photo_folder,  # noqa: E402,F401
                            read_jsonl, tiny_weights)


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0", silence_logs=40) as cluster, \
            distributed.Client(cluster) as client:
        yield client


@pytest.fixture(scope="module")
def local_rows(photo_folder, tiny_weights):
    root, good, bad = photo_folder
    return list(numalex.classify_files(good + bad, weights=tiny_weights, top=3, **TINY))


def test_the_bag_gives_the_rows_of_one_process(client, photo_folder, tiny_weights,
                                               local_rows, tmp_path):
    _, good, bad = photo_folder
    bag = numalex.distributed.classify(good + bad, client, weights=tiny_weights, batch=3,
                                       partition_size=4, numba_cache=str(tmp_path), top=3,
                                       backend="numba", **TINY)
    assert bag.npartitions == 5
    assert_same_rows(bag.compute(), local_rows)
    states = client.run(numalex.distributed.worker_state)
    threads = max(1, (os.cpu_count() or 1) // 2)              # two workers share the cores
    caches = {state["numba_cache_dir"] for state in states.values()}
    assert len(states) == 2 and len(caches) == 2
    for state in states.values():
        assert state["models_loaded"] <= 1                    # once per worker, 5 tasks
        assert state["threads"] == threads and state["numba_num_threads"] == str(threads)
        assert set(state["blas_threads"]) <= {threads}
        assert os.path.dirname(state["numba_cache_dir"]) == str(tmp_path)
        compiled = [name for _, _, names in os.walk(state["numba_cache_dir"]) for name in names]
        assert any(name.endswith(".nbi") for name in compiled)    # the kernels compiled there
    assert sum(state["models_loaded"] for state in states.values()) >= 1


def test_cli_on_dask_matches_and_resumes(client, photo_folder, tiny_weights, local_rows,
                                         tmp_path, capsys):
    root, good, bad = photo_folder
    out = tmp_path / "labels.jsonl"
    # numpy: the bag test above already compiled numba's kernels on workers;
    # here fresh workers would compile them again for nothing the CLI adds.
    argv = ["classify", str(root), "--weights", tiny_weights, *TINY_ARGS, "--out", str(out),
            "--batch-size", "2", "--partition-size", "3", "--backend", "numpy"]
    assert main(argv + ["--dask", "local:2"]) == 1            # starts its own LocalCluster
    assert "3 of 17 images could not be read" in capsys.readouterr().err
    assert_same_rows(read_jsonl(out), local_rows)
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:5]) + lines[5][:20])         # killed while writing line 6
    address = client.scheduler.address                        # a running scheduler
    assert main(argv + ["--dask", address, "--resume"]) == 1
    assert_same_rows(read_jsonl(out), local_rows)             # each image exactly once
    assert out.read_text().splitlines(keepends=True)[:5] == lines[:5]


def test_dask_missing_says_what_to_install(monkeypatch, photo_folder, tiny_weights, capsys):
    _, good, _ = photo_folder
    monkeypatch.setitem(sys.modules, "distributed", None)     # as if not installed
    monkeypatch.delitem(sys.modules, "numalex.distributed")
    monkeypatch.delattr(numalex, "distributed")
    assert main(["classify", good[0], "--weights", tiny_weights, *TINY_ARGS,
                 "--dask", "local:2"]) == 2
    assert "pip install 'numalex[dask]'" in capsys.readouterr().err


def test_bad_cluster_addresses_are_refused(photo_folder, tiny_weights, capsys):
    _, good, _ = photo_folder
    for target in ("local:0", "127.0.0.1:8786"):
        assert main(["classify", good[0], "--weights", tiny_weights, *TINY_ARGS,
                     "--dask", target]) == 2
        assert "--dask" in capsys.readouterr().err


CAP_THREADS = """
import os, sys
import numba
from numba import njit, prange
from numalex.distributed import limit_threads

@njit(parallel=True)
def total(x):
    s = 0.0
    for i in prange(x.size):
        s += x[i]
    return s

if sys.argv[1] == "running":
    import numpy as np
    total(np.ones(4))                        # Numba's pool starts with every core
limit_threads(1)

@njit
def later(x):                                # compiling re-reads NUMBA_NUM_THREADS
    return x + 1

print(later(1), os.environ["NUMBA_NUM_THREADS"], numba.config.NUMBA_NUM_THREADS)
"""


@pytest.mark.parametrize("numba_pool", ["idle", "running"])
def test_capping_threads_leaves_numba_able_to_compile(numba_pool):
    """A worker imports Numba (with numalex) before its thread cap is set;
    Numba then refuses to compile if NUMBA_NUM_THREADS changed under a
    running pool. limit_threads keeps the two consistent either way."""
    import subprocess

    env = {k: v for k, v in os.environ.items() if k != "NUMBA_NUM_THREADS"}
    done = subprocess.run([sys.executable, "-c", CAP_THREADS, numba_pool], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    result, variable, config = done.stdout.split()
    assert result == "2" and variable == config
    if numba_pool == "idle":
        assert variable == "1"                # the pool starts with the cap
