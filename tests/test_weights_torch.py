"""torch.save files read without torch: the file is written by PyTorch itself,
read back in a fresh process in which `import torch` fails, and the forward
pass is compared with PyTorch's own on the same weights."""
import json
import os
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

import numalex
from numalex.weights import WeightFileError

torch = pytest.importorskip("torch", reason="torch writes the files under test: pip install "
                                            "'numalex[oracle]' (torch==2.13.0)")
nn = torch.nn


def torchvision_alexnet(channels=(64, 192, 384, 256, 256), hidden=4096, classes=1000):
    """torchvision.models.alexnet written out from nn layers (torchvision is not
    installed), at the given widths; its state-dict keys are torchvision's."""
    c = channels
    model = nn.Module()
    model.features = nn.Sequential(
        nn.Conv2d(3, c[0], 11, 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(c[0], c[1], 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(c[1], c[2], 3, padding=1), nn.ReLU(),
        nn.Conv2d(c[2], c[3], 3, padding=1), nn.ReLU(),
        nn.Conv2d(c[3], c[4], 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2))
    model.avgpool = nn.AdaptiveAvgPool2d(6)
    model.classifier = nn.Sequential(
        nn.Dropout(), nn.Linear(c[4] * 36, hidden), nn.ReLU(), nn.Dropout(),
        nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, classes))
    model.forward = lambda x: model.classifier(torch.flatten(model.avgpool(model.features(x)), 1))
    return model.eval()


# numalex.alexnet("torchvision", width=0.25, num_classes=10), spelled out.
SMALL = dict(channels=(16, 48, 96, 64, 64), hidden=1024, classes=10)

# Runs in a child process: torch is made unimportable before numalex is imported.
NO_TORCH_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np

    class NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError("torch is blocked in this test")

    sys.meta_path.insert(0, NoTorch())
    try:
        import torch
    except ImportError:
        pass
    else:
        raise SystemExit("the torch blocker did not work")

    import numalex
    args = json.loads(sys.argv[1])
    model = numalex.alexnet("torchvision", weights=args["weights"], **args["build"])
    np.save(args["out"], model(np.load(args["x"]), backend="numpy"))
    assert not any(name == "torch" or name.startswith("torch.") for name in sys.modules)
""")


def forward_without_torch(tmp_path, weights, x, **build):
    np.save(tmp_path / "x.npy", x)
    args = {"weights": str(weights), "x": str(tmp_path / "x.npy"),
            "out": str(tmp_path / "y.npy"), "build": build}
    done = subprocess.run([sys.executable, "-c", NO_TORCH_SCRIPT, json.dumps(args)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return np.load(tmp_path / "y.npy")


def relative_error(y, ref):
    return float(np.abs(y - ref).max() / np.abs(ref).max())


def test_small_torch_save_file_loads_without_torch_and_matches_torch(tmp_path):
    torch.manual_seed(0)
    reference = torchvision_alexnet(**SMALL)
    path = tmp_path / "small-alexnet.pth"
    torch.save(reference.state_dict(), path)
    x = np.random.default_rng(1).standard_normal((2, 3, 224, 224), dtype=np.float32)
    y = forward_without_torch(tmp_path, path, x, width=0.25, num_classes=10)
    with torch.no_grad():
        expected = reference(torch.from_numpy(x)).numpy()
    assert y.shape == (2, 10)
    assert relative_error(y, expected) < 1e-4


def test_full_size_torch_save_file_matches_torch(tmp_path):
    torch.manual_seed(0)
    reference = torchvision_alexnet()
    path = tmp_path / "alexnet-owt-test.pth"
    torch.save(reference.state_dict(), path)
    x = np.random.default_rng(2).standard_normal((1, 3, 224, 224), dtype=np.float32)
    y = forward_without_torch(tmp_path, path, x)
    with torch.no_grad():
        expected = reference(torch.from_numpy(x)).numpy()
    assert relative_error(y, expected) < 1e-4


def test_archive_prefix_is_taken_from_the_file_not_assumed(tmp_path):
    path = tmp_path / "not-archive.pth"
    torch.save({"w": torch.ones(2)}, path)
    with zipfile.ZipFile(path) as archive:
        assert archive.namelist()[0].startswith("not-archive/")   # what torch wrote
    np.testing.assert_array_equal(numalex.load_weights(path)["w"], np.ones(2))


def test_offsets_strides_shared_storage_and_dtypes(tmp_path):
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    tensors = {
        "transposed": base.t(),                   # stride (1, 6)
        "sliced": base[1:3, 2:5],                 # storage offset 8, stride (6, 1)
        "stepped": base[::2, ::3],                # stride (12, 3)
        "same_storage_again": base,               # shares its storage with the views
        "scalar": torch.tensor(3.5),
        "empty": torch.zeros(0, 3),
        "double": torch.linspace(0, 1, 5, dtype=torch.float64),
        "half": torch.tensor([1.5, -2.25], dtype=torch.float16),
        "bfloat16": torch.tensor([1.5, -2.25, 3e8], dtype=torch.bfloat16),
        "int64": torch.tensor([1, -2, 2**40]),
        "int8": torch.tensor([-5, 7], dtype=torch.int8),
        "bool": torch.tensor([True, False]),
    }
    path = tmp_path / "views.pth"
    torch.save(tensors, path)
    loaded = numalex.load_weights(path)
    assert set(loaded) == set(tensors)
    for key, tensor in tensors.items():
        expected = tensor.float().numpy() if key == "bfloat16" else tensor.numpy()
        assert loaded[key].shape == expected.shape, key
        assert loaded[key].dtype == expected.dtype, key
        np.testing.assert_array_equal(loaded[key], expected, err_msg=key)


def test_a_checkpoint_with_a_state_dict_entry_is_unwrapped(tmp_path):
    path = tmp_path / "checkpoint.pth"
    torch.save({"state_dict": {"w": torch.ones(3)}}, path)
    np.testing.assert_array_equal(numalex.load_weights(path)["w"], np.ones(3))


def test_a_checkpoint_with_other_objects_is_refused_with_their_names(tmp_path):
    path = tmp_path / "checkpoint.pth"
    torch.save({"w": torch.ones(3), "epoch": 7}, path)
    with pytest.raises(WeightFileError, match=r"'epoch' \(int\)"):
        numalex.load_weights(path)


def test_a_legacy_torch_save_file_says_how_to_resave_it(tmp_path):
    path = tmp_path / "legacy.pth"
    torch.save({"w": torch.ones(3)}, path, _use_new_zipfile_serialization=False)
    with pytest.raises(WeightFileError, match="legacy.*Re-save"):
        numalex.load_weights(path)


def test_keys_and_shapes_that_do_not_fit_the_variant_are_listed(tmp_path):
    state = torchvision_alexnet(**SMALL).state_dict()
    del state["features.0.bias"]                           # missing
    state["extra.weight"] = torch.zeros(1)                 # unexpected
    state["classifier.6.weight"] = torch.zeros(5, 1024)    # mis-shaped
    path = tmp_path / "wrong.pth"
    torch.save(state, path)
    with pytest.raises(numalex.StateDictError) as info:
        numalex.alexnet("torchvision", width=0.25, num_classes=10, weights=path)
    message = str(info.value)
    assert "features.0.bias" in message and "extra.weight" in message
    assert "classifier.6.weight is (5, 1024), the model needs (10, 1024)" in message


def test_a_file_renamed_to_any_extension_is_still_recognised(tmp_path):
    path = tmp_path / "weights.bin"
    torch.save({"w": torch.full((2,), 4.0)}, path)
    assert numalex.weights.detect_format(path) == "torch"
    np.testing.assert_array_equal(numalex.load_weights(path)["w"], [4.0, 4.0])


def test_torch_save_file_converts_to_safetensors_and_npz(tmp_path):
    pytest.importorskip("safetensors", reason="pip install 'numalex[weights]'")
    state = torchvision_alexnet(**SMALL).state_dict()
    torch.save(state, tmp_path / "a.pth")
    for ext in (".safetensors", ".npz"):
        from numalex.cli import main
        assert main(["convert", str(tmp_path / "a.pth"), str(tmp_path / f"a{ext}")]) == 0
        loaded = numalex.load_weights(tmp_path / f"a{ext}")
        assert set(loaded) == set(state)
        for key, tensor in state.items():
            np.testing.assert_array_equal(loaded[key], tensor.numpy(), err_msg=key)
    assert not os.path.exists(tmp_path / "a.npz.npz")
