"""AlexNet throughput: numalex (numpy, numba) beside PyTorch and ONNX Runtime.

    python benchmarks/alexnet.py                      # 224 and 227, batch 1, 8, 32
    python benchmarks/alexnet.py --variant 224 --batch 1 --repeats 5

The same seeded weights run everywhere: PyTorch gets them as torch.nn layers,
ONNX Runtime gets the ONNX file torch.onnx exports from those layers (made
here, in a temporary directory). Then `numalex bench`'s machinery validates
every runner against the NumPy reference and times them all, alternating,
with ratios to ONNX Runtime (above 1.00x: faster than ONNX Runtime).

ONNX Runtime's idle threads normally spin for a while after each run; with
runs alternating on two cores that would steal time from whatever runs
next, so spinning is switched off here.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import warnings

from numalex.commands import bench

try:
    import onnxruntime
    import torch
except ImportError as err:
    sys.exit(f"benchmarks/alexnet.py compares with PyTorch and ONNX Runtime; "
             f"install them with: pip install 'numalex[oracle]' ({err})")


def torch_layers(model) -> "torch.nn.Sequential":
    """A one-tower numalex model as torch.nn layers holding the same weights."""
    nn, state = torch.nn, model.state_dict()
    layers = []
    for name, spec in model.layers:
        kind = type(spec).__name__
        if kind == "Conv2d":
            layer = nn.Conv2d(spec.in_channels, spec.out_channels, spec.kernel, spec.stride,
                              spec.padding, spec.dilation, spec.groups)
        elif kind == "Linear":
            layer = nn.Linear(spec.in_features, spec.out_features)
        elif kind == "MaxPool2d":
            layer = nn.MaxPool2d(spec.kernel, spec.stride, spec.padding,
                                 ceil_mode=spec.ceil_mode)
        elif kind == "AdaptiveAvgPool2d":
            layer = nn.AdaptiveAvgPool2d(spec.out)
        elif kind == "LRN":
            layer = nn.LocalResponseNorm(spec.size, spec.alpha, spec.beta, spec.k)
        else:
            layer = {"ReLU": nn.ReLU(), "Dropout": nn.Dropout(), "Flatten": nn.Flatten()}[kind]
        if spec.param_shapes():
            layer.weight.data = torch.from_numpy(state[f"{name}.weight"].copy())
            layer.bias.data = torch.from_numpy(state[f"{name}.bias"].copy())
        layers.append(layer)
    return nn.Sequential(*layers).eval()


def pytorch_runner(model) -> bench.Runner:
    net = torch_layers(model)

    def run(x):
        with torch.inference_mode():
            return net(torch.from_numpy(x)).numpy()

    return bench.Runner("pytorch", run)


def onnxruntime_runner(model, folder: str) -> bench.Runner:
    path = os.path.join(folder, f"{model.variant}.onnx")
    example = torch.from_numpy(bench.images(model, 1))
    with warnings.catch_warnings():          # the TorchScript exporter needs no onnxscript
        warnings.simplefilter("ignore")
        torch.onnx.export(torch_layers(model), (example,), path, input_names=["x"],
                          output_names=["logits"], dynamic_axes={"x": {0: "batch"}},
                          dynamo=False)
    options = onnxruntime.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    return bench.Runner("onnxruntime", lambda x: session.run(None, {"x": x})[0])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    bench.add_options(parser)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        factories = [lambda m: bench.backend_runner(m, "numpy"),
                     lambda m: bench.backend_runner(m, "numba"),
                     pytorch_runner,
                     lambda m: onnxruntime_runner(m, folder)]
        status = bench.report(factories, baseline="onnxruntime", **bench.options(args))
    print(f"PyTorch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"ONNX Runtime {onnxruntime.__version__}")
    return status


if __name__ == "__main__":
    sys.exit(main())
