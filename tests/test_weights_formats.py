""".safetensors and .npz in and out, the format told by content, and the
narrow reshape rule that fits Caffe's legacy blob shapes onto a model."""
import sys

import numpy as np
import pytest

import numalex
from numalex.weights import WeightFileError, fit_to_model
from numalex.weights.mapping import reshapes_exactly


def random_state(seed=0):
    rng = np.random.default_rng(seed)
    return {"features.0.weight": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
            "features.0.bias": rng.standard_normal(4).astype(np.float32),
            "counts": np.arange(5, dtype=np.int64)}


def test_npz_round_trip_keeps_keys_values_and_dtypes(tmp_path):
    state = random_state()
    numalex.save_weights(state, tmp_path / "w.npz")
    loaded = numalex.load_weights(tmp_path / "w.npz")
    assert set(loaded) == set(state)
    for key in state:
        assert loaded[key].dtype == state[key].dtype
        np.testing.assert_array_equal(loaded[key], state[key])


def test_safetensors_round_trip_and_format_by_content(tmp_path):
    safetensors_numpy = pytest.importorskip("safetensors.numpy",
                                            reason="pip install 'numalex[weights]'")
    state = random_state(1)
    numalex.save_weights(state, tmp_path / "w.safetensors")
    independent = safetensors_numpy.load_file(str(tmp_path / "w.safetensors"))
    renamed = tmp_path / "w.weights"
    renamed.write_bytes((tmp_path / "w.safetensors").read_bytes())
    assert numalex.weights.detect_format(renamed) == "safetensors"
    loaded = numalex.load_weights(renamed)
    for key in state:
        np.testing.assert_array_equal(independent[key], state[key])
        np.testing.assert_array_equal(loaded[key], state[key])


def test_a_model_round_trips_through_each_writable_format(tmp_path):
    pytest.importorskip("safetensors", reason="pip install 'numalex[weights]'")
    model = numalex.alexnet("original", width=0.125, num_classes=7, seed=3)
    x = np.random.default_rng(0).standard_normal((1, 3, 227, 227), dtype=np.float32)
    for ext in (".npz", ".safetensors"):
        numalex.save_weights(model.state_dict(), tmp_path / f"m{ext}")
        again = numalex.alexnet("original", width=0.125, num_classes=7, seed=99,
                                weights=tmp_path / f"m{ext}")
        np.testing.assert_array_equal(again(x), model(x))


def test_missing_safetensors_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "safetensors", None)
    monkeypatch.setitem(sys.modules, "safetensors.numpy", None)
    with pytest.raises(ModuleNotFoundError, match=r"pip install numalex\[weights\]"):
        numalex.save_weights(random_state(), tmp_path / "w.safetensors")


def test_unwritable_formats_are_refused_before_writing(tmp_path):
    for name in ("w.pth", "w.caffemodel", "w.txt"):
        with pytest.raises(ValueError, match=r"\.npz and \.safetensors"):
            numalex.save_weights(random_state(), tmp_path / name)
        assert not (tmp_path / name).exists()


def test_npz_does_not_get_a_second_extension(tmp_path):
    numalex.save_weights(random_state(), tmp_path / "w.NPZ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.NPZ"]
    assert set(numalex.load_weights(tmp_path / "w.NPZ")) == set(random_state())


@pytest.mark.parametrize("have, want, expected", [
    ((1, 1, 1, 96), (96,), True),               # old Caffe bias
    ((1, 1, 4096, 9216), (4096, 9216), True),   # old Caffe fc weight
    ((4096, 256, 6, 6), (4096, 9216), True),    # an fc6 exported 4-D
    ((96,), (96,), False),                      # already right: nothing to do
    ((9216, 4096), (4096, 9216), False),        # transposed: same count, not the same thing
    ((1, 1, 1, 95), (96,), False),              # wrong count
    ((96, 3, 11, 11), (64, 3, 11, 11), False),  # a different network
    ((2, 48), (96,), False),                    # same count, different leading axis
])
def test_reshape_rule(have, want, expected):
    assert reshapes_exactly(have, want) is expected


def test_fit_to_model_reshapes_only_what_the_rule_allows():
    state = {"fc6.weight": np.arange(12.0).reshape(1, 1, 3, 4),
             "fc6.bias": np.zeros((1, 1, 1, 3)),
             "fc7.weight": np.zeros((4, 3)),
             "other": np.zeros(2)}
    shapes = {"fc6.weight": (3, 4), "fc6.bias": (3,), "fc7.weight": (3, 4)}
    fitted = fit_to_model(state, shapes)
    np.testing.assert_array_equal(fitted["fc6.weight"], np.arange(12.0).reshape(3, 4))
    assert fitted["fc6.bias"].shape == (3,)
    assert fitted["fc7.weight"].shape == (4, 3)          # left for load_state_dict to report
    assert fitted["other"].shape == (2,)


def test_wrong_file_for_the_variant_raises_state_dict_error(tmp_path):
    small = numalex.alexnet("torchvision", width=0.125, num_classes=5)
    numalex.save_weights(small.state_dict(), tmp_path / "tv.npz")
    with pytest.raises(numalex.StateDictError) as info:
        numalex.alexnet("original", width=0.125, num_classes=5, weights=tmp_path / "tv.npz")
    assert info.value.missing and info.value.unexpected
    assert "conv1.weight" in info.value.missing and "features.0.weight" in info.value.unexpected


def test_weight_file_errors_are_value_errors():
    assert issubclass(WeightFileError, ValueError)
    assert issubclass(numalex.weights.UnsafePickleError, WeightFileError)
