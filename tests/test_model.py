"""Model behaviour: state dicts, bad input, traces, small nets."""
import numpy as np
import pytest

import numalex
from numalex import ShapeError, StateDictError


def small(variant="torchvision", **kw):
    return numalex.alexnet(variant, width=1 / 16, num_classes=10, **kw)


def test_state_dict_round_trip_and_torchvision_keys():
    model = small()
    sd = model.state_dict()
    assert list(sd)[:2] == ["features.0.weight", "features.0.bias"]
    assert list(sd)[-1] == "classifier.6.bias"
    other = small(seed=1)
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224), dtype=np.float32)
    assert not np.allclose(other(x), model(x))
    other.load_state_dict(sd)
    np.testing.assert_array_equal(other(x), model(x))


def test_caffe_names_for_original_and_bvlc():
    for variant in ("original", "bvlc"):
        keys = list(small(variant).state_dict())
        assert keys[0] == "conv1.weight" and keys[-1] == "fc8.bias"


def test_load_state_dict_lists_every_problem_at_once():
    model = small("bvlc")
    sd = model.state_dict()
    sd.pop("conv1.bias")
    sd["conv9.weight"] = np.zeros(3, np.float32)
    sd["fc8.weight"] = np.zeros((3, 3), np.float32)
    with pytest.raises(StateDictError) as err:
        model.load_state_dict(sd)
    assert err.value.missing == ["conv1.bias"]
    assert err.value.unexpected == ["conv9.weight"]
    assert err.value.mismatched == [("fc8.weight", (3, 3), model.param_shapes()["fc8.weight"])]
    for word in ("conv1.bias", "conv9.weight", "fc8.weight is (3, 3)"):
        assert word in str(err.value)


def test_non_strict_load_reports_and_keeps_the_rest():
    model = small("original")
    before = model.state_dict()["conv1.weight"].copy()
    new_fc8 = np.ones(model.param_shapes()["fc8.bias"], np.float32)
    report = model.load_state_dict({"fc8.bias": new_fc8, "extra": np.zeros(1)}, strict=False)
    assert report.unexpected == ["extra"] and "conv1.weight" in report.missing
    np.testing.assert_array_equal(model.state_dict()["conv1.weight"], before)
    np.testing.assert_array_equal(model.state_dict()["fc8.bias"], new_fc8)


def test_a_32x32_image_names_the_layer_and_the_formula():
    model = numalex.alexnet("torchvision")
    with pytest.raises(ShapeError) as err:
        model(np.zeros((1, 3, 32, 32), np.float32))
    message = str(err.value)
    # 32 -> conv1 7 -> pool 3 -> conv2 3 -> pool 1 -> conv3..5 1 -> pool5 cannot
    assert message.startswith("features.12 (MaxPool2d): input size 1 is too small")
    assert "(1 - 3)/2 + 1 = 0 < 1" in message


@pytest.mark.parametrize("x, error, words", [
    ([[1.0]], TypeError, "NumPy array"),
    (np.zeros((1, 3, 224, 224), np.int32), TypeError, "floating point"),
    (np.zeros((3, 224, 224), np.float32), ShapeError, "x[None]"),
    (np.zeros((1, 4, 224, 224), np.float32), ShapeError, "3 input channels"),
    (np.full((1, 3, 224, 224), np.nan, np.float32), ValueError, "NaN"),
    (np.zeros((0, 3, 224, 224), np.float32), ShapeError, "empty"),
])
def test_bad_input_gets_a_clear_error(x, error, words):
    with pytest.raises(error) as err:
        small()(x)
    assert words in str(err.value)


def test_bad_construction_arguments():
    with pytest.raises(ValueError, match="unknown AlexNet variant 'vgg'"):
        numalex.alexnet("vgg")
    with pytest.raises(ValueError, match="num_classes"):
        numalex.alexnet("bvlc", num_classes=0)
    with pytest.raises(ValueError, match="width"):
        numalex.alexnet("bvlc", width=-1)
    with pytest.raises(ShapeError, match="cannot be built for input 20x20"):
        numalex.alexnet("bvlc", input_size=20)
    with pytest.raises(ValueError, match="unknown backend"):
        small()(np.zeros((1, 3, 224, 224), np.float32), backend="tpu")


@pytest.mark.parametrize("alias, name", [("224", "torchvision"), ("227", "original"),
                                         ("caffe", "bvlc"), ("BVLC", "bvlc")])
def test_aliases(alias, name):
    assert numalex.alexnet(alias).variant == name


def test_trace_records_actual_and_expected_shapes():
    model = small("bvlc", input_size=67)
    x = np.random.default_rng(0).standard_normal((2, 3, 67, 67), dtype=np.float32)
    records = model.trace(x)
    assert [r.name for r in records] == [name for name, _ in model.layers]
    assert all(r.ok and r.seconds >= 0 for r in records)
    assert records[0].input_shape == (2, 3, 67, 67)
    assert records[-1].output_shape == (2, 10)
    np.testing.assert_array_equal(model(x), model(x))


def test_width_scales_convs_and_fcs_and_keeps_groups_even():
    model = numalex.alexnet("bvlc", width=0.1)
    shapes = model.param_shapes()
    assert shapes["conv1.weight"][0] % 2 == 0 and shapes["conv2.weight"][0] % 2 == 0
    assert shapes["fc7.weight"] == (410, 410)
    assert model.num_params() < numalex.alexnet("bvlc").num_params() / 50


def test_a_fusing_backend_gets_each_relu_folded_into_the_layer_before(monkeypatch):
    """A backend with FUSES_RELU receives conv2d/linear(relu=True) and no
    separate relu call for those ReLUs; the logits do not change."""
    from types import SimpleNamespace

    from numalex.backends import numpy_ref

    calls = []

    def fused(op):
        def run(*args, relu=False, **kwargs):
            calls.append((op.__name__, relu))
            y = op(*args, **kwargs)
            return numpy_ref.relu(y) if relu else y
        return run

    def counted_relu(x):
        calls.append(("relu", False))
        return numpy_ref.relu(x)

    fake = SimpleNamespace(**{k: getattr(numpy_ref, k) for k in dir(numpy_ref)
                              if not k.startswith("_")})
    fake.name, fake.FUSES_RELU = "fusing", True
    fake.conv2d, fake.linear, fake.relu = (fused(numpy_ref.conv2d), fused(numpy_ref.linear),
                                           counted_relu)
    model = small("bvlc", input_size=67)
    x = np.random.default_rng(2).standard_normal((1, 3, 67, 67), dtype=np.float32)
    expected = model(x)
    monkeypatch.setattr(numalex.backends, "get", lambda name: fake)
    np.testing.assert_allclose(model(x, backend="fusing"), expected, rtol=1e-6, atol=1e-6)
    # 5 convs and fc6, fc7 absorb their ReLUs; fc8 has none after it
    assert calls.count(("conv2d", True)) == 5
    assert calls.count(("linear", True)) == 2 and calls.count(("linear", False)) == 1
    assert ("relu", False) not in calls


def test_a_pool_fusing_backend_gets_conv_relu_pool_as_one_call(monkeypatch):
    """A backend with FUSES_RELU and FUSES_POOL receives conv2d(relu=True,
    pool=(kernel, stride, padding, ceil_mode)) for every Conv2d -> ReLU ->
    MaxPool2d, and no separate max_pool2d for those; the logits do not change.
    bvlc has LRN between ReLU and pool in conv1 and conv2, so only conv5 folds."""
    from types import SimpleNamespace

    from numalex.backends import numpy_ref

    calls = []

    def conv2d(*args, relu=False, pool=None, **kwargs):
        calls.append(("conv2d", relu, pool))
        y = numpy_ref.conv2d(*args, **kwargs)
        y = numpy_ref.relu(y) if relu else y
        return numpy_ref.max_pool2d(y, *pool) if pool else y

    def max_pool2d(*args):
        calls.append(("max_pool2d",) + args[1:])
        return numpy_ref.max_pool2d(*args)

    fake = SimpleNamespace(**{k: getattr(numpy_ref, k) for k in dir(numpy_ref)
                              if not k.startswith("_")})
    fake.name, fake.FUSES_RELU, fake.FUSES_POOL = "pool-fusing", True, True
    fake.conv2d, fake.max_pool2d = conv2d, max_pool2d
    fake.linear = lambda *args, relu=False: (numpy_ref.relu(numpy_ref.linear(*args)) if relu
                                             else numpy_ref.linear(*args))
    for variant, size, fused_pools in (("torchvision", 64, 3), ("bvlc", 67, 1)):
        calls.clear()
        model = small(variant, input_size=size) if variant == "bvlc" else small(variant)
        x = np.random.default_rng(3).standard_normal((2, 3, size, size), dtype=np.float32)
        expected = model(x)
        with monkeypatch.context() as patch:
            patch.setattr(numalex.backends, "get", lambda name: fake)
            np.testing.assert_allclose(model(x, backend="pool-fusing"), expected,
                                       rtol=1e-6, atol=1e-6)
        pools = [spec.fused_args() for _, spec in model.layers
                 if type(spec).__name__ == "MaxPool2d"]
        fused = [pool for op, relu, *rest in calls if op == "conv2d" and rest[0]
                 for pool in rest]
        separate = [tuple(call[1:]) for call in calls if call[0] == "max_pool2d"]
        assert len(fused) == fused_pools and len(fused) + len(separate) == len(pools)
        assert sorted(fused + separate) == sorted(pools)


def test_new_weights_reach_a_backend_that_ran_before():
    # forward remembers its plan per backend; load_state_dict must replace it
    model = small("torchvision")
    x = np.random.default_rng(3).standard_normal((1,) + model.input_shape).astype(np.float32)
    before = model(x, backend="numba")
    weights = model.state_dict()
    weights["classifier.6.bias"] = weights["classifier.6.bias"] + 1.0
    model.load_state_dict(weights)
    np.testing.assert_allclose(model(x, backend="numba"), before + 1.0, rtol=1e-5, atol=1e-5)
