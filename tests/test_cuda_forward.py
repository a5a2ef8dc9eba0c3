"""Whole forward passes on the CUDA backend (in the simulator): small nets of
every variant against the NumPy backend, weights uploaded once, activations
kept on the device, and trace on this backend.

The simulator costs 5 to 50 microseconds per multiply-add (see
numba_cuda.is_simulator), so every net here is the smallest its variant
allows (width 1/32 or 1/16, inputs of 39-67 pixels).
"""
import numpy as np
import pytest

import numalex
from numalex import backends

try:
    cu = backends.get("cuda")
except backends.BackendUnavailable as err:
    pytest.skip(f"no GPU and no CUDA simulator: {err}", allow_module_level=True)

pytestmark = pytest.mark.cudasim


def images(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)


# Widths and inputs as small as each variant allows (bvlc's groups of 2
# need an even conv1 width; the smallest inputs that leave pool5 a whole
# window, from Model.expected_shapes: torchvision 63, original 67 (conv1
# has no padding), bvlc 39 (ceil-mode pools keep a last partial window)):
# the simulator runs every GPU thread in Python. torchvision's smallest net
# is the `tiny` fixture's, checked against the NumPy backend below.
@pytest.mark.parametrize("variant, width, size", [("original", 1 / 32, 67),
                                                  ("bvlc", 1 / 16, 39)])
def test_small_net_matches_numpy_backend(variant, width, size):
    model = numalex.alexnet(variant, width=width, num_classes=10, input_size=size)
    x = images((1, 3, size, size), seed=1)
    want = model(x, backend="numpy")
    got = model(x, backend="cuda")
    assert got.shape == (1, 10) and isinstance(got, np.ndarray)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


class CopyCounter:
    """Counts host->device uploads and device->host downloads."""

    def __init__(self, monkeypatch):
        self.uploads = self.downloads = 0
        to_device = cu.cuda.to_device
        device_type = type(cu.to_backend(np.zeros(1, dtype=np.float32)))
        copy_to_host = device_type.copy_to_host

        def counting_upload(*args, **kwargs):
            self.uploads += 1
            return to_device(*args, **kwargs)

        def counting_download(array, *args, **kwargs):
            self.downloads += 1
            return copy_to_host(array, *args, **kwargs)

        monkeypatch.setattr(cu.cuda, "to_device", counting_upload)
        monkeypatch.setattr(device_type, "copy_to_host", counting_download)


@pytest.fixture(scope="module")
def tiny():
    """The smallest torchvision net that takes an input (width 1/32, 63x63),
    after one forward pass on the CUDA backend: its weights are uploaded."""
    model = numalex.alexnet("torchvision", width=1 / 32, num_classes=10, input_size=63)
    model(images((1, 3, 63, 63)), backend="cuda")
    return model


def test_weights_stay_uploaded_one_copy_in_one_copy_out(tiny, monkeypatch):
    x = images((1, 3, 63, 63), seed=2)
    counter = CopyCounter(monkeypatch)
    logits = tiny(x, backend="cuda")
    assert (counter.uploads, counter.downloads) == (1, 1)
    np.testing.assert_allclose(logits, tiny(x, backend="numpy"), rtol=1e-4,
                               atol=1e-4 * np.abs(logits).max())


def test_trace_on_cuda_times_each_layer_on_the_device(tiny, monkeypatch):
    x = images((1, 3, 63, 63), seed=3)
    counter = CopyCounter(monkeypatch)
    clocked = []
    cuda_backend = backends.get("cuda")
    real_timed = cuda_backend.timed
    monkeypatch.setattr(cuda_backend, "timed",
                        lambda run, *args: clocked.append(run) or real_timed(run, *args))
    records = tiny.trace(x, backend="cuda")
    assert len(clocked) == len(records)                     # each layer on the backend's clock
    assert (counter.uploads, counter.downloads) == (1, 0)  # activations never left the GPU
    assert all(r.seconds >= 0 for r in records)
