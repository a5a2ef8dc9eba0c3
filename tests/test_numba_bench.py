"""`numalex bench`, benchmarks/peers.py and the threading-layer choice.

The harnesses run here in tiny configurations to check that they validate,
time in fresh processes and print their tables; no timing is asserted.
"""
from pathlib import Path

import numba
import numpy as np
import pytest

import numalex
from numalex import cli
from numalex.commands import bench, bench_process
from numalex.commands.bench_process import RunnerSpec
from numalex.kernels import choose_threading_layer
from numalex.visualize import activations

TESTS = str(Path(__file__).resolve().parent)
SMALL = {"width": 0.25, "num_classes": 10}


def test_threading_layer_is_openmp_with_a_short_spin_else_workqueue(monkeypatch):
    """The user's NUMBA_THREADING_LAYER and spin settings win; the spin
    variables are set while OpenMP loads, and only KMP_BLOCKTIME (read
    later, by LLVM's and Intel's OpenMP) stays, and only if OpenMP is the
    choice."""
    from numalex import kernels

    monkeypatch.setattr(numba.config, "THREADING_LAYER", "default")
    assert choose_threading_layer({"NUMBA_THREADING_LAYER": "omp"}) == "default"
    for found, layer, after in [(True, "omp", {"GOMP_SPINCOUNT": None, "KMP_BLOCKTIME": "1"}),
                                (False, "workqueue", {})]:
        seen = []
        environ = {"OTHER": "x"}
        monkeypatch.setattr(kernels, "openmp_available",
                            lambda: seen.append(dict(environ)) or found)
        assert choose_threading_layer(environ) == layer
        assert seen == [{"OTHER": "x", "GOMP_SPINCOUNT": "30000", "KMP_BLOCKTIME": "1"}]
        assert environ == {"OTHER": "x", **{k: v for k, v in after.items() if v}}
    environ = {"KMP_BLOCKTIME": "5", "GOMP_SPINCOUNT": "7"}           # the user's own
    monkeypatch.setattr(kernels, "openmp_available", lambda: True)
    choose_threading_layer(environ)
    assert environ == {"KMP_BLOCKTIME": "5", "GOMP_SPINCOUNT": "7"}


def test_macs_per_image_matches_the_design_figure():
    assert bench.macs_per_image(numalex.alexnet("torchvision")) == 714_188_480


class OffByOnePercent(bench_process.NumalexRunner):
    def run(self, x):
        return super().run(x) * np.float32(1.01)


def wrong_runner(arg, variant, folder):
    """A loader for the fresh process: numba's logits, 1% too large."""
    return OffByOnePercent("numba", variant, folder)


def test_bench_refuses_to_time_a_wrong_runner(capsys, monkeypatch):
    def must_not_time(*args, **kwargs):
        raise AssertionError("a runner that failed validation was timed")

    monkeypatch.setattr(bench_process, "time_rounds", must_not_time)
    specs = bench_process.numalex_runners(["numpy"]) + [
        RunnerSpec("wrong", "test_numba_bench:wrong_runner", paths=(TESTS,))]
    status = bench.report(specs, ["torchvision"], [1], rounds=1, repeats=1, layer_batches=[],
                          reference="numpy", model_options=SMALL)
    assert status == 1
    assert "disagrees with numpy" in capsys.readouterr().err


def test_bench_times_each_runner_in_fresh_processes_and_prints_the_tables(capsys):
    specs = bench_process.numalex_runners(["numpy", "numba"])
    status = bench.report(specs, ["torchvision"], [2], rounds=2, repeats=1, layer_batches=[1],
                          reference="numpy", baseline="numpy",
                          layer_runners=("numpy", "numba"), model_options=SMALL)
    captured = capsys.readouterr()
    assert status == 0
    assert "validate AlexNet-224 (torchvision) against numpy: numba" in captured.err
    assert "| AlexNet-224 (torchvision) | 2 | numba |" in captured.out
    assert "| AlexNet-224 (torchvision) | 2 | numpy |" in captured.out
    assert "| classifier.1 | Linear |" in captured.out            # the per-layer table
    assert "Machine: " in captured.out
    # fc6's input is the last pool's output (the 6 x 6 average pool is the
    # identity at 224): its nonzero share, from the numpy reference's
    # activations, is what the numba runner reports for classifier.1
    model = numalex.alexnet("torchvision", **SMALL)
    x = bench_process.images(model.input_shape, 1, 0)
    pooled = activations(model, x, ["features.12"])["features.12"]
    assert f"classifier.1 {100 * np.count_nonzero(pooled) / pooled.size:.0f}%" in captured.out


@pytest.mark.parametrize("argument", [["--repeats", "0"], ["--rounds", "0"],
                                      ["--memory-batch", "-1"], ["--layers-batch", "0"],
                                      ["--batch", "0"], ["--batch", "two"],
                                      ["--variant", "225"]])
def test_bench_checks_every_argument_before_any_work(argument, capsys, monkeypatch):
    def must_not_run(*args, **kwargs):
        raise AssertionError("bench started working before checking its arguments")

    monkeypatch.setattr(bench, "report", must_not_run)
    with pytest.raises(SystemExit) as exit_:
        cli.main(["bench"] + argument)
    assert exit_.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"argument {argument[0]}" in error


ZEN3_FLAGS = "fpu sse sse2 ssse3 sse4_1 sse4_2 avx f16c fma avx2 bmi2 vaes"


@pytest.mark.parametrize("flags, isa", [
    (ZEN3_FLAGS, "AVX2, FMA, no AVX-512"),
    (ZEN3_FLAGS + " avx512f avx512_vnni amx_tile", "AVX2, FMA, AVX-512F, AVX-512 VNNI, AMX")])
def test_cpu_model_and_isa_from_cpuinfo(flags, isa):
    text = f"processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: {flags}\n"
    assert bench.cpu_model_and_isa(text) == ("AMD EPYC 7B13", isa)


def test_peers_validates_against_pytorch_then_tables_onnxruntimes_profile(capsys):
    """benchmarks/peers.py at its smallest: AlexNet-224, batch 1, one round."""
    pytest.importorskip("torch", reason="peers.py needs PyTorch: pip install 'numalex[oracle]'")
    pytest.importorskip("onnxruntime", reason="peers.py needs ONNX Runtime: "
                                              "pip install 'numalex[oracle]'")
    import sys

    sys.path.insert(0, str(Path(TESTS).parent / "benchmarks"))
    import peers

    status = peers.main(["--variant", "224", "--batch", "1", "--rounds", "1", "--repeats", "1",
                         "--layers-batch", "1"])
    captured = capsys.readouterr()
    assert status == 0
    validation = next(line for line in captured.err.splitlines() if "validate" in line)
    assert all(f"{name} " in validation for name in ("onnxruntime", "numba", "numpy"))
    for runner in ("onnxruntime", "pytorch", "numba", "numpy"):
        assert f"| AlexNet-224 (torchvision) | 1 | {runner} |" in captured.out
    assert "| AlexNet-224 (torchvision) | 1 | onnxruntime | " in captured.out
    conv1 = next(line for line in captured.out.splitlines()
                 if line.startswith("| features.0 | Conv2d |"))
    assert "-" not in conv1.split("|")[3:5]          # ONNX Runtime's profile and numba's trace


@pytest.mark.parametrize("usable, fastest", [(["numpy", "numba", "cuda"], "cuda"),
                                             (["numba", "numpy"], "numba"),
                                             (["numpy"], "numpy"), ([], "numpy")])
def test_fastest_backend_prefers_cuda_then_numba(usable, fastest):
    from numalex import backends

    assert backends.fastest(usable) == fastest


def test_fastest_available_skips_the_cuda_simulator():
    """The tests run with NUMBA_ENABLE_CUDASIM=1 (conftest): cuda is importable
    but only simulated, so numba is the fastest backend here."""
    from numalex import backends

    assert backends.fastest_available() == "numba"


def test_classify_uses_the_fastest_backend_by_default(monkeypatch, tmp_path, capsys):
    """classify with no --backend runs the model on backends.fastest_available()."""
    image_module = pytest.importorskip("PIL.Image", reason="classify needs Pillow")
    from numalex import backends
    from numalex.model import Model

    weights, labels, photo = tmp_path / "w.npz", tmp_path / "labels.txt", tmp_path / "a.png"
    numalex.save_weights(numalex.alexnet("torchvision", num_classes=3, width=0.25)
                         .state_dict(), str(weights))
    labels.write_text("ant\nbee\ncat\n")
    image_module.new("RGB", (40, 30), (200, 10, 10)).save(photo)
    used, forward = [], Model.__call__
    monkeypatch.setattr(backends, "fastest_available", lambda: "numba")
    monkeypatch.setattr(Model, "__call__", lambda self, x, backend="numpy":
                        used.append(backend) or forward(self, x, backend))
    status = cli.main(["classify", str(photo), "--weights", str(weights), "--width", "0.25",
                       "--num-classes", "3", "--labels", str(labels), "--top", "1"])
    assert status == 0 and used == ["numba"]
    assert "a.png" in capsys.readouterr().out
