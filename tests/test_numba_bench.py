"""`numalex bench` and the threading-layer choice (no timings are asserted)."""
import numba
import numpy as np
import pytest

from numalex import cli
from numalex.commands import bench
from numalex.kernels import choose_threading_layer


def test_threading_layer_is_workqueue_unless_the_user_chose(monkeypatch):
    monkeypatch.setattr(numba.config, "THREADING_LAYER", "default")
    assert choose_threading_layer({"NUMBA_THREADING_LAYER": "omp"}) == "default"
    assert choose_threading_layer({}) == "workqueue"


def test_macs_per_image_matches_the_design_figure():
    import numalex

    assert bench.macs_per_image(numalex.alexnet("torchvision")) == 714_188_480


def test_bench_refuses_to_time_a_wrong_backend(capsys):
    def wrong(model):
        return bench.Runner("wrong", lambda x: model(x, backend="numba") * np.float32(1.01))

    status = bench.report([lambda m: bench.backend_runner(m, "numpy"), wrong],
                          variants=["torchvision"], batches=[1], repeats=1, layer_batches=[],
                          memory_batch=0, compile_time=False)
    assert status == 1
    assert "disagrees" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore")
def test_bench_command_prints_the_tables(capsys):
    status = cli.main(["bench", "--variant", "224", "--batch", "2", "--repeats", "1",
                       "--layers-batch", "1", "--memory-batch", "0", "--no-compile-time"])
    out = capsys.readouterr().out
    assert status == 0
    assert "| AlexNet-224 (torchvision) | 2 | numba |" in out
    assert "| classifier.1 | Linear | 1x4096 |" in out
