"""Saliency: the gradient of the top class with respect to the input pixels,
against PyTorch's autograd, and `numalex visualize --saliency IMAGE`."""
import numpy as np
import pytest

import numalex
from numalex.backprop import top_class_gradient
from numalex.cli import main

torch = pytest.importorskip("torch", reason="PyTorch is the oracle here: pip install "
                                            "'numalex[oracle]' (torch==2.13.0)")
from torch_alexnets import torchvision_alexnet  # noqa: E402


def small():
    """torchvision's layout at 1/16 of the width, 5 classes (the saliency tests' net)."""
    return numalex.alexnet("torchvision", width=1 / 16, num_classes=5, seed=2)


def test_top_class_gradient_equals_pytorchs():
    model = small()
    reference = torchvision_alexnet((4, 12, 24, 16, 16), 256, 5)
    reference.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    x = np.random.default_rng(3).standard_normal((2, 3, 224, 224), dtype=np.float32)
    classes, logits, dx = top_class_gradient(model, x)
    tx = torch.tensor(x, requires_grad=True)
    out = reference.eval()(tx)
    top = out.argmax(dim=1)
    out[torch.arange(2), top].sum().backward()
    assert classes.tolist() == top.tolist()
    np.testing.assert_allclose(logits, out[torch.arange(2), top].detach().numpy(), rtol=1e-4)
    want = tx.grad.numpy()
    assert dx.shape == want.shape
    assert np.abs(dx - want).max() / np.abs(want).max() < 1e-4


def test_cli_writes_the_saliency_png(tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib", reason="the plot extra (matplotlib) is not installed")
    Image = pytest.importorskip("PIL.Image", reason="Pillow is not installed")
    from numalex.commands import visualize as command
    from numalex.visualize import pattern_image
    monkeypatch.setattr(command, "alexnet", lambda variant, weights: small())
    Image.fromarray(pattern_image(256)).save(tmp_path / "in.png")
    code = main(["visualize", "--saliency", str(tmp_path / "in.png"),
                 "--out", str(tmp_path / "out")])
    assert code == 0
    assert capsys.readouterr().out.strip() == f"wrote {tmp_path / 'out' / 'saliency.png'}"
    with Image.open(tmp_path / "out" / "saliency.png") as png:
        pixels = np.asarray(png.convert("RGB"))
    assert pixels.shape[0] > 300 and pixels.std() > 10
    assert not (tmp_path / "out" / "conv1_filters.png").exists()


def test_cli_saliency_of_a_missing_image_is_one_line(tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib", reason="the plot extra (matplotlib) is not installed")
    pytest.importorskip("PIL.Image", reason="Pillow is not installed")
    from numalex.commands import visualize as command
    monkeypatch.setattr(command, "alexnet", lambda variant, weights: small())
    assert main(["visualize", "--saliency", str(tmp_path / "nope.png"),
                 "--out", str(tmp_path)]) != 0
    err = capsys.readouterr().err
    assert "nope.png" in err and len(err.strip().splitlines()) == 1
