"""Checkpoints: everything comes back, in both formats; plain weight files are
told apart without reading their arrays."""
import numpy as np
import pytest

import numalex
from numalex.images import PRESETS
from numalex.training.checkpoint import (is_checkpoint, load_checkpoint, save_checkpoint,
                                         trained_model)
from numalex.training.sgd import SGD

def formats():
    found = [".npz"]
    try:
        import safetensors  # noqa: F401
        found.append(".safetensors")
    except ModuleNotFoundError:
        pass
    return found


@pytest.mark.parametrize("ext", formats())
def test_round_trip_keeps_weights_momentum_and_metadata(tmp_path, ext):
    model = numalex.alexnet("bvlc", width=1 / 16, num_classes=3, input_size=99, seed=4)
    optimizer = SGD(model, lr=0.02, patience=1)
    rng = np.random.default_rng(0)
    optimizer.step({k: rng.standard_normal(s).astype(np.float32)
                    for k, s in model.param_shapes().items()})
    optimizer.end_epoch(0.75)
    path = tmp_path / f"run{ext}"
    preset = PRESETS["caffe"]
    save_checkpoint(path, model, optimizer, {"width": 1 / 16, "class_names": ["a", "b", "c"],
                                             "preset": vars(preset), "history": []})
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]   # no partial file left
    checkpoint = load_checkpoint(path)
    restored = checkpoint.build_model()
    assert (restored.variant, restored.input_size, restored.num_classes) == ("bvlc", 99, 3)
    for key, w in model.state_dict().items():
        np.testing.assert_array_equal(restored.state_dict()[key], w)
        np.testing.assert_array_equal(checkpoint.momentum[key], optimizer.velocity[key])
    assert checkpoint.meta["optimizer"]["epoch"] == 1
    assert checkpoint.meta["optimizer"]["best_accuracy"] == 0.75
    assert checkpoint.preset == preset
    assert is_checkpoint(path)
    trained = trained_model(path)
    assert trained.class_names == ["a", "b", "c"] and trained.preset == preset


@pytest.mark.parametrize("ext", formats())
def test_a_plain_weight_file_is_not_a_checkpoint(tmp_path, ext):
    model = numalex.alexnet("torchvision", width=1 / 16, num_classes=2, input_size=63)
    path = tmp_path / f"plain{ext}"
    numalex.save_weights(model.state_dict(), path)
    assert not is_checkpoint(path)
    assert trained_model(path) is None
    with pytest.raises(ValueError, match="not a `numalex train` checkpoint"):
        load_checkpoint(path)
