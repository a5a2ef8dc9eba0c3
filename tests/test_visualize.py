"""`numalex visualize`: the PNGs exist, open, and show what they claim to."""
import sys

import numpy as np
import pytest

import loop_oracles as loops
import numalex
from numalex.cli import main

pytest.importorskip("matplotlib", reason="the plot extra (matplotlib) is not installed")
Image = pytest.importorskip("PIL.Image", reason="Pillow is not installed")

from numalex.visualize import (activations, default_layers, feature_maps_figure,  # noqa: E402
                               filters_figure, pattern_image)


@pytest.fixture(scope="module")
def small():
    return numalex.alexnet("torchvision", width=1 / 16, num_classes=5)


def test_pattern_quadrants_are_what_the_docstring_says():
    img = pattern_image(256).astype(int)
    assert img.shape == (256, 256, 3)
    top_left, top_right = img[:128, :128, 0], img[:128, 128:, 0]
    assert (top_left == top_left[:1]).all() and len(np.unique(top_left[0])) == 2   # vertical
    assert (top_right == top_right[:, :1]).all() and len(np.unique(top_right[:, 0])) == 2
    disc_colours = {tuple(img[int(cy * 256), int(cx * 256)])
                    for cy, cx in [(0.62, 0.62), (0.62, 0.88), (0.88, 0.75)]}
    assert disc_colours == {(255, 0, 0), (0, 255, 0), (0, 0, 255)}


def test_activations_of_relu1_match_a_naive_convolution(small):
    x = np.random.default_rng(0).standard_normal((1, 3, 67, 67)).astype(np.float32)
    got = activations(small, x, ["features.1"])["features.1"]
    sd = small.state_dict()
    want = np.maximum(loops.conv2d(x[:1], sd["features.0.weight"], sd["features.0.bias"],
                                   4, 2, 1, 1)[0], 0)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_default_layers_are_relus_after_conv1_conv2_conv5(small):
    assert default_layers(small) == ["features.1", "features.4", "features.11"]
    bvlc = numalex.alexnet("bvlc", width=1 / 16)
    assert default_layers(bvlc) == ["relu1", "relu2", "relu5"]


def test_bad_layer_names_are_named(small):
    x = np.zeros((1, 3, 224, 224), np.float32)
    with pytest.raises(ValueError, match="unknown layer.*nope"):
        activations(small, x, ["nope"])
    with pytest.raises(ValueError, match="after the flatten"):
        activations(small, x, ["classifier.1"])


def _open(path):
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def test_filters_png_shows_one_tile_per_filter(small, tmp_path):
    path = filters_figure(small, tmp_path / "f.png")
    pixels = _open(path)
    assert pixels.shape[0] > 200 and pixels.shape[1] > 200
    assert pixels.std() > 10                       # not a blank page


def test_feature_maps_png(small, tmp_path):
    path = feature_maps_figure(small, tmp_path / "m.png", channels=3)
    pixels = _open(path)
    assert pixels.std() > 10


def test_cli_writes_both_pngs_with_weights_and_image(small, tmp_path, capsys, monkeypatch):
    # the command builds a small net here (the full one is 61M parameters) and
    # loads a weight file from another seed through the real loader
    from numalex.commands import visualize as command
    monkeypatch.setattr(command, "alexnet", lambda variant, weights: numalex.alexnet(
        variant, weights=weights, width=1 / 16, num_classes=5))
    other = numalex.alexnet("torchvision", width=1 / 16, num_classes=5, seed=7)
    np.savez(tmp_path / "w.npz", **other.state_dict())
    Image.fromarray(pattern_image(300)).save(tmp_path / "in.png")
    code = main(["visualize", "torchvision", "--weights", str(tmp_path / "w.npz"),
                 "--image", str(tmp_path / "in.png"), "--layers", "features.1",
                 "--channels", "2", "--out", str(tmp_path / "out")])
    assert code == 0
    out = capsys.readouterr().out
    for name in ("conv1_filters.png", "feature_maps.png"):
        assert f"wrote {tmp_path / 'out' / name}" in out
        assert _open(tmp_path / "out" / name).std() > 10


def test_missing_matplotlib_says_what_to_install(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)     # import now fails
    assert main(["visualize", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "pip install 'numalex[plot]'" in err and err.count("visualize") == 1
    assert not (tmp_path / "out").exists()


@pytest.fixture
def small_cli(monkeypatch):
    """The command builds a 1/16-width net here (the full one is 61M parameters)."""
    from numalex.commands import visualize as command
    monkeypatch.setattr(command, "alexnet", lambda variant, weights: numalex.alexnet(
        variant, weights=weights, width=1 / 16, num_classes=5))


@pytest.mark.parametrize("args, words", [
    (["--image", "missing.png"], "cannot read image missing.png"),
    (["--layers", "features.1", "classifier.1"],
     "classifier.1 come after the flatten: no feature maps to draw"),
    (["--channels", "1000"], "--channels must be between 1 and 64, got 1000"),
    (["--channels", "0"], "--channels must be between 1 and 64, got 0"),
])
def test_bad_arguments_are_refused_before_any_png(small_cli, tmp_path, capsys, args, words):
    assert main(["visualize", *args, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_an_out_that_is_a_file_is_named(small_cli, tmp_path, capsys):
    (tmp_path / "taken").write_text("")
    assert main(["visualize", "--out", str(tmp_path / "taken")]) == 2
    err = capsys.readouterr().err
    assert f"--out {tmp_path / 'taken'} is a file; give a folder" in err
    assert "Errno" not in err


def test_a_failing_figure_leaves_no_png(small_cli, tmp_path, monkeypatch, capsys):
    from numalex.commands import visualize as command

    def broken(*args, **kwargs):
        raise ValueError("drawing failed")
    monkeypatch.setattr(command, "feature_maps_figure", broken)
    (tmp_path / "out").mkdir()
    assert main(["visualize", "--out", str(tmp_path / "out")]) == 2
    assert list((tmp_path / "out").iterdir()) == []      # not even conv1_filters.png


def test_cli_bad_layer_fails_before_writing_anything(tmp_path, capsys, monkeypatch):
    from numalex.commands import visualize as command
    monkeypatch.setattr(command, "alexnet", lambda variant, weights: numalex.alexnet(
        variant, weights=weights, width=1 / 16, num_classes=5))
    assert main(["visualize", "bvlc", "--layers", "relu1", "nope",
                 "--out", str(tmp_path / "out")]) == 2
    assert "unknown layer(s) nope for 'bvlc'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
