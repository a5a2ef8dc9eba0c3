"""Caffe .caffemodel files, built here by a tiny protobuf *encoder* (the
independent side of numalex's decoder), in both layer forms: V1 `layers`
(field 2, the form of the 2014 bvlc_alexnet.caffemodel, with old 4-D blob
dims) and V2 `layer` (field 100, blobs with a `shape`). Networks loaded from
them are compared with PyTorch models holding the same weights."""
from collections import OrderedDict

import numpy as np
import pytest

import numalex
from numalex.weights import WeightFileError
from weight_files import blob, caffemodel, field_bytes, layer_v1, layer_v2, varint

# ---- PyTorch references ------------------------------------------------------------------------

torch = pytest.importorskip("torch", reason="PyTorch is the oracle: pip install 'numalex[oracle]'")
nn = torch.nn


def caffe_alexnet(groups, lrn, ceil, c=(24, 64, 96, 96, 64), hidden=1024, classes=10):
    """BVLC (groups=2, LRN, ceil pooling) or one-tower AlexNet with Caffe's names,
    at explicit widths (these are numalex's width=0.25 nets)."""
    layers = [("conv1", nn.Conv2d(3, c[0], 11, 4)), ("relu1", nn.ReLU())]
    if lrn:
        layers.append(("norm1", nn.LocalResponseNorm(5, 1e-4, 0.75, 1.0)))
    layers += [("pool1", nn.MaxPool2d(3, 2, ceil_mode=ceil)),
               ("conv2", nn.Conv2d(c[0], c[1], 5, padding=2, groups=groups)),
               ("relu2", nn.ReLU())]
    if lrn:
        layers.append(("norm2", nn.LocalResponseNorm(5, 1e-4, 0.75, 1.0)))
    layers += [("pool2", nn.MaxPool2d(3, 2, ceil_mode=ceil)),
               ("conv3", nn.Conv2d(c[1], c[2], 3, padding=1)), ("relu3", nn.ReLU()),
               ("conv4", nn.Conv2d(c[2], c[3], 3, padding=1, groups=groups)),
               ("relu4", nn.ReLU()),
               ("conv5", nn.Conv2d(c[3], c[4], 3, padding=1, groups=groups)),
               ("relu5", nn.ReLU()), ("pool5", nn.MaxPool2d(3, 2, ceil_mode=ceil))]
    if not lrn:
        layers.append(("avgpool", nn.AdaptiveAvgPool2d(6)))
    layers += [("flatten", nn.Flatten()), ("fc6", nn.Linear(c[4] * 36, hidden)),
               ("relu6", nn.ReLU()), ("fc7", nn.Linear(hidden, hidden)), ("relu7", nn.ReLU()),
               ("fc8", nn.Linear(hidden, classes))]
    return nn.Sequential(OrderedDict(layers)).eval()


def numpy_params(model):
    return {key: value.detach().numpy() for key, value in model.state_dict().items()}


def relative_error(y, ref):
    return float(np.abs(y - ref).max() / np.abs(ref).max())


@pytest.mark.parametrize("form, blob_form", [("v1", "4d"), ("v2", "shape"), ("v1", "shape"),
                                             ("v2", "4d")])
def test_bvlc_from_caffemodel_matches_pytorch(tmp_path, form, blob_form):
    torch.manual_seed(0)
    reference = caffe_alexnet(groups=2, lrn=True, ceil=True)
    path = tmp_path / "bvlc_small.caffemodel"
    path.write_bytes(caffemodel(numpy_params(reference), form, blob_form))
    model = numalex.alexnet("bvlc", width=0.25, num_classes=10, weights=path)
    x = np.random.default_rng(0).standard_normal((2, 3, 227, 227), dtype=np.float32)
    with torch.no_grad():
        expected = reference(torch.from_numpy(x)).numpy()
    assert relative_error(model(x), expected) < 1e-4


def test_original_with_fc6_stored_4d_matches_pytorch(tmp_path):
    torch.manual_seed(1)
    reference = caffe_alexnet(groups=1, lrn=False, ceil=False)
    params = numpy_params(reference)
    params["fc6.weight"] = params["fc6.weight"].reshape(1024, 64, 6, 6)   # a 4-D fc6
    path = tmp_path / "original_small.caffemodel"
    path.write_bytes(caffemodel(params, "v2", "shape"))
    assert numalex.load_weights(path)["fc6.weight"].shape == (1024, 64, 6, 6)
    model = numalex.alexnet("original", width=0.25, num_classes=10, weights=path)
    x = np.random.default_rng(1).standard_normal((1, 3, 227, 227), dtype=np.float32)
    with torch.no_grad():
        expected = reference(torch.from_numpy(x)).numpy()
    assert relative_error(model(x), expected) < 1e-4


def test_blobs_come_back_in_the_files_own_shapes():
    rng = np.random.default_rng(2)
    w = rng.standard_normal((4, 3, 2, 2)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    fc = rng.standard_normal((5, 7)).astype(np.float32)
    net = (field_bytes(1, b"tiny")
           + layer_v1("conv1", "Convolution", [blob(w, "4d"), blob(b, "4d", packed=False)])
           + layer_v1("relu1", "ReLU")
           + layer_v1("fc6", "InnerProduct", [blob(fc, "4d", double=True), blob(b, "shape")]))
    from numalex.weights.caffemodel import read_caffemodel_blobs
    layers = read_caffemodel_blobs(net)
    assert list(layers) == ["conv1", "fc6"]                 # layers without blobs are skipped
    np.testing.assert_array_equal(layers["conv1"][0], w)
    np.testing.assert_array_equal(layers["conv1"][1], b.reshape(1, 1, 1, 4))
    np.testing.assert_array_equal(layers["fc6"][0], fc.reshape(1, 1, 5, 7))
    np.testing.assert_array_equal(layers["fc6"][1], b)


def test_caffemodel_without_the_extension_is_recognised(tmp_path):
    params = {"conv1.weight": np.ones((2, 3, 1, 1), np.float32),
              "conv1.bias": np.zeros(2, np.float32)}
    path = tmp_path / "weights.bin"
    path.write_bytes(caffemodel(params, "v2", "shape"))
    assert numalex.weights.detect_format(path) == "caffe"
    assert numalex.load_weights(path)["conv1.weight"].shape == (2, 3, 1, 1)


def test_caffemodel_converts_to_npz_fitted_to_the_variant(tmp_path):
    reference = caffe_alexnet(groups=2, lrn=True, ceil=True)
    path = tmp_path / "bvlc.caffemodel"
    path.write_bytes(caffemodel(numpy_params(reference), "v1", "4d"))
    from numalex.cli import main
    assert main(["convert", str(path), str(tmp_path / "bvlc.npz"), "--variant", "bvlc",
                 "--width", "0.25", "--num-classes", "10"]) == 0
    converted = numalex.load_weights(tmp_path / "bvlc.npz")
    for key, value in numpy_params(reference).items():
        np.testing.assert_array_equal(converted[key], value, err_msg=key)   # (96,), not 4-D


# ---- bad files ---------------------------------------------------------------------------------


def test_truncated_caffemodel_gives_a_clear_error(tmp_path):
    params = {"conv1.weight": np.ones((8, 3, 3, 3), np.float32),
              "conv1.bias": np.zeros(8, np.float32)}
    data = caffemodel(params, "v1", "4d")
    for cut in (len(data) // 3, len(data) - 7, len(data) - 1):
        path = tmp_path / "cut.caffemodel"
        path.write_bytes(data[:cut])
        with pytest.raises(WeightFileError, match="cut.caffemodel.*truncated"):
            numalex.load_weights(path)


def test_blob_whose_shape_and_data_disagree_is_refused(tmp_path):
    bad = field_bytes(7, field_bytes(1, varint(3) + varint(3))) + field_bytes(
        5, np.zeros(8, "<f4").tobytes())
    path = tmp_path / "bad.caffemodel"
    path.write_bytes(layer_v2("conv1", "Convolution", [bad]))
    with pytest.raises(WeightFileError, match=r"layer 'conv1' blob 0: shape \(3, 3\) needs 9"):
        numalex.load_weights(path)


def test_v0_model_duplicate_names_and_weightless_files_are_refused(tmp_path):
    v0 = field_bytes(2, field_bytes(1, field_bytes(1, b"conv1")) + field_bytes(6, blob([1.0])))
    cases = {"v0": (v0, "V0"),
             "twice": (layer_v2("fc8", "InnerProduct", [blob([1.0])]) * 2, "appears twice"),
             "prototxt": (field_bytes(1, b"AlexNet") + layer_v2("relu1", "ReLU"),
                          "no layer with weights")}
    for name, (data, needle) in cases.items():
        path = tmp_path / f"{name}.caffemodel"
        path.write_bytes(data)
        with pytest.raises(WeightFileError, match=needle):
            numalex.load_weights(path)


def test_caffe_model_for_the_wrong_variant_lists_every_problem(tmp_path):
    reference = caffe_alexnet(groups=1, lrn=False, ceil=False)   # one-tower weights
    path = tmp_path / "original.caffemodel"
    path.write_bytes(caffemodel(numpy_params(reference), "v2", "shape"))
    with pytest.raises(numalex.StateDictError) as info:          # into the two-tower model
        numalex.alexnet("bvlc", width=0.25, num_classes=10, weights=path)
    assert "conv2.weight is (64, 24, 5, 5), the model needs (64, 12, 5, 5)" in str(info.value)
    with pytest.raises(numalex.StateDictError, match="missing"):  # Caffe names vs torchvision's
        numalex.alexnet("torchvision", width=0.25, num_classes=10, weights=path)
