"""AlexNet: numalex beside ONNX Runtime and PyTorch, every runner in its own process.

    python benchmarks/peers.py                  # AlexNet-224 and -227, batch 1, 8, 32
    python benchmarks/peers.py --quick          # a few minutes: 224, batch 1 and 8
    python benchmarks/peers.py --variant 227 --batch 32 --rounds 3 --layers-batch 32

Each runner runs as a new user would run it, at its own best documented
settings, in a fresh process per round (numalex/commands/bench_process.py):

    onnxruntime   default SessionOptions, CPU provider; the model is the ONNX
                  file torch.onnx exports from the PyTorch AlexNet below
    pytorch       the AlexNet of tests/torch_alexnets.py (written from the
                  published architectures, not from numalex's specs), all
                  cores, channels_last, torch.inference_mode()
    numba, numpy  numalex's backends at their defaults

All load the same weights (one seeded numalex model). Before anything is
timed, every runner's logits are checked against PyTorch's (relative error
below 1e-4). The table gives ms per batch, ms/image (median of all timed
passes; in brackets the range of the per-process medians), GFLOP/s and the
throughput relative to ONNX Runtime (above 1.00x: faster). The per-layer
tables put numalex's trace (every layer on its own, unfused) beside ONNX
Runtime's own per-node profiler (SessionOptions.enable_profiling); ONNX
Runtime fuses each ReLU into the Conv or Gemm before it, so its ReLU rows
are "-" and its conv rows include them.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from numalex.commands import bench, bench_process  # noqa: E402
from numalex.commands.bench_process import RunnerSpec  # noqa: E402

MISSING = ("benchmarks/peers.py compares with PyTorch and ONNX Runtime; install them with: "
           "pip install 'numalex[oracle]'")
PATHS = (str(ROOT / "benchmarks"), str(ROOT / "tests"))
RUNNERS = [RunnerSpec("onnxruntime", "peers:onnxruntime_runner", paths=PATHS),
           RunnerSpec("pytorch", "peers:pytorch_runner", paths=PATHS),
           *bench_process.numalex_runners(["numba", "numpy"])]


# ---- PyTorch -----------------------------------------------------------------------
def torch_model(variant: str, folder: str):
    """tests/torch_alexnets.py's AlexNet holding the benchmark's weights, eval mode."""
    import torch
    from torch_alexnets import TORCH_MODELS

    net = TORCH_MODELS[variant]().eval()
    net.load_state_dict({k: torch.from_numpy(v)
                         for k, v in bench_process.load_weights(variant, folder).items()})
    return net


class PytorchRunner:
    def __init__(self, variant: str, folder: str):
        import torch

        self.torch = torch
        torch.set_num_threads(len(os.sched_getaffinity(0)))
        self.net = torch_model(variant, folder).to(memory_format=torch.channels_last)

    def run(self, x):
        torch = self.torch
        with torch.inference_mode():
            x = torch.from_numpy(x).contiguous(memory_format=torch.channels_last)
            return self.net(x).numpy()


def pytorch_runner(arg: str, variant: str, folder: str) -> PytorchRunner:
    return PytorchRunner(variant, folder)


# ---- ONNX Runtime --------------------------------------------------------------------
def export_onnx(model, folder: str) -> None:
    """FOLDER/VARIANT.onnx from the PyTorch AlexNet, batch size left free."""
    import torch

    x = torch.from_numpy(bench_process.images(model.input_shape, 1, 0))
    with warnings.catch_warnings():          # the TorchScript exporter needs no onnxscript
        warnings.simplefilter("ignore")
        torch.onnx.export(torch_model(model.variant, folder), (x,),
                          os.path.join(folder, f"{model.variant}.onnx"), input_names=["x"],
                          output_names=["logits"], dynamic_axes={"x": {0: "batch"}},
                          dynamo=False)


def node_times(profile: list, skip_runs: int = 1) -> list[tuple[str, str, float]]:
    """[(node, op, median seconds per run)] in execution order, from ONNX
    Runtime's profile (Chrome trace events; a node's kernel time is an event
    of category "Node" named NODE_kernel_time, duration in microseconds). The
    first `skip_runs` runs (warm-up) are left out."""
    runs = [e for e in profile if e.get("cat") == "Session" and e["name"] == "model_run"]
    if len(runs) <= skip_runs:
        raise ValueError(f"the profile holds {len(runs)} runs; need more than {skip_runs}")
    start = runs[skip_runs]["ts"]
    durations, ops = {}, {}
    for e in sorted(profile, key=lambda e: e["ts"]):
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time") and e["ts"] >= start:
            node = e["name"][:-len("_kernel_time")]
            durations.setdefault(node, []).append(e["dur"] * 1e-6)
            ops[node] = e["args"]["op_name"]
    return [(node, ops[node], float(np.median(d))) for node, d in durations.items()]


# ONNX Runtime op -> the numalex layer type it computes (its ReLU fused in)
LAYER_OF_OP = {"Conv": "Conv2d", "FusedConv": "Conv2d", "MaxPool": "MaxPool2d",
               "Gemm": "Linear", "FusedGemm": "Linear", "MatMul": "Linear",
               "Relu": "ReLU", "AveragePool": "AdaptiveAvgPool2d",
               "GlobalAveragePool": "AdaptiveAvgPool2d", "LRN": "LRN"}


def align_nodes(layers, nodes) -> list[tuple[str, str, float]]:
    """ONNX Runtime's nodes as numalex's layers: the k-th Conv node is the
    k-th Conv2d layer, and so on by type; nodes of other ops (layout
    reorders, flatten) are summed per op in rows of their own.
    layers: [(name, type)]; nodes: [(node, op, seconds)]."""
    queues = {}
    for name, kind in layers:
        queues.setdefault(kind, []).append(name)
    rows, other = [], {}
    for _, op, seconds in nodes:
        queue = queues.get(LAYER_OF_OP.get(op, ""), [])
        if queue:
            rows.append((queue.pop(0), LAYER_OF_OP[op], seconds))
        else:
            other[op] = other.get(op, 0.0) + seconds
    return rows + [(f"ORT {op}", op, s) for op, s in other.items()]


class OnnxRuntimeRunner:
    def __init__(self, variant: str, folder: str):
        import onnxruntime

        self.ort, self.variant, self.folder = onnxruntime, variant, folder
        self.path = os.path.join(folder, f"{variant}.onnx")
        self.session = onnxruntime.InferenceSession(self.path,
                                                    providers=["CPUExecutionProvider"])

    def run(self, x):
        return self.session.run(None, {"x": x})[0]

    def layer_times(self, x, runs: int):
        """ONNX Runtime's own per-node profile of `runs` runs after one warm-up."""
        from numalex import alexnet

        options = self.ort.SessionOptions()
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(self.folder, f"ort-{self.variant}")
        session = self.ort.InferenceSession(self.path, options,
                                            providers=["CPUExecutionProvider"])
        for _ in range(runs + 1):
            session.run(None, {"x": x})
        with open(session.end_profiling()) as f:
            nodes = node_times(json.load(f))
        layers = [(name, type(spec).__name__) for name, spec in alexnet(self.variant).layers]
        return align_nodes(layers, nodes)


def onnxruntime_runner(arg: str, variant: str, folder: str) -> OnnxRuntimeRunner:
    return OnnxRuntimeRunner(variant, folder)


# ---- the command line ------------------------------------------------------------------
def versions() -> str:
    import onnxruntime
    import torch

    return (f"PyTorch {torch.__version__} ({torch.get_num_threads()} threads), "
            f"ONNX Runtime {onnxruntime.__version__}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    bench.add_options(parser, "a run of a few minutes: by default AlexNet-224, batch 1 "
                              "and 8, 2 rounds of 2 passes, no per-layer tables")
    args = parser.parse_args(argv)
    try:
        peers = versions()
    except ImportError as err:
        print(f"{MISSING} ({err})", file=sys.stderr)
        return 2
    status = bench.report(RUNNERS, reference="pytorch", baseline="onnxruntime",
                          layer_runners=("numba", "onnxruntime"), prepare=export_onnx,
                          **bench.options(args))
    print(peers)
    return status


if __name__ == "__main__":
    sys.exit(main())
