"""Whole networks against ONNX Runtime, a second independent oracle.

The PyTorch AlexNets of tests/torch_alexnets.py are exported to ONNX with
numalex's weights and run by ONNX Runtime; every CPU backend of numalex must
give the same logits to 1e-4 relative.
"""
import io

import numpy as np
import pytest

import numalex

torch = pytest.importorskip("torch", reason="the ONNX export needs PyTorch: "
                                            "pip install 'numalex[oracle]'")
ort = pytest.importorskip("onnxruntime", reason="pip install 'numalex[oracle]'")
from torch_alexnets import TORCH_MODELS  # noqa: E402

CPU_BACKENDS = [b for b in numalex.backends.available() if b != "cuda"]


def onnx_session(variant, model):
    reference = TORCH_MODELS[variant]().eval()
    reference.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    buffer = io.BytesIO()
    size = model.input_size
    # the TorchScript exporter (dynamo=False) needs no extra packages
    torch.onnx.export(reference, (torch.zeros(1, 3, size, size),), buffer, dynamo=False,
                      input_names=["x"], dynamic_axes={"x": {0: "batch"}})
    return ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning",
                            "ignore::torch.jit.TracerWarning")
@pytest.mark.parametrize("variant", ["torchvision", "original", "bvlc"])
def test_every_cpu_backend_equals_onnxruntime(variant):
    model = numalex.alexnet(variant, seed=3)
    session = onnx_session(variant, model)
    size = model.input_size
    x = np.random.default_rng(5).standard_normal((2, 3, size, size), dtype=np.float32)
    expected = session.run(None, {"x": x})[0]
    for backend in CPU_BACKENDS:
        y = model(x, backend=backend)
        error = np.abs(y - expected).max() / np.abs(expected).max()
        assert error < 1e-4, (backend, error)
