"""`numalex classify` end to end: images written here, weights written by
torch.save, and the expected labels and probabilities computed by PyTorch
from its own preprocessing of the same images."""
import json

import numpy as np
import pytest

from numalex.cli import main
from numalex.images import imagenet_classes

pytest.importorskip("PIL", reason="classify reads images with Pillow: pip install 'numalex[image]'")
torch = pytest.importorskip("torch", reason="PyTorch is the oracle: pip install 'numalex[oracle]'")
from PIL import Image  # noqa: E402
from test_images import torchvision_reference  # noqa: E402
from test_weights_torch import SMALL, torchvision_alexnet  # noqa: E402


def write_images(folder, sizes):
    """Smooth random colour fields (sizes as (h, w)), as PNG files."""
    paths = []
    rng = np.random.default_rng(5)
    for i, (h, w) in enumerate(sizes):
        coarse = rng.integers(0, 256, (4, 5, 3), dtype=np.uint8)
        image = Image.fromarray(coarse).resize((w, h), Image.BICUBIC)
        path = folder / f"photo{i}.png"
        image.save(path)
        paths.append(path)
    return paths


def torch_probabilities(model, path):
    rgb = np.asarray(Image.open(path).convert("RGB"))
    x = torch.from_numpy(torchvision_reference(rgb).astype(np.float32))[None]
    with torch.no_grad():
        return torch.softmax(model(x).double(), dim=1)[0].numpy()


@pytest.fixture(scope="module")
def small_weights(tmp_path_factory):
    torch.manual_seed(3)
    model = torchvision_alexnet(**SMALL)
    path = tmp_path_factory.mktemp("weights") / "small.pth"
    torch.save(model.state_dict(), path)
    return model, path


def test_classify_a_folder_in_batches_as_json(tmp_path, capsys, small_weights):
    model, weights = small_weights
    (tmp_path / "more").mkdir()
    paths = (write_images(tmp_path, [(300, 400), (256, 256)])
             + write_images(tmp_path / "more", [(500, 375)]))
    argv = ["classify", str(tmp_path), "--weights", str(weights), "--width", "0.25",
            "--num-classes", "10", "--top", "3", "--batch-size", "2", "--json"]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    results = json.loads(out)
    assert [r["image"] for r in results] == [str(p) for p in paths]
    assert "classify [" in err and "3/3 " in err                 # progress counts images
    for result, path in zip(results, paths):
        probs = torch_probabilities(model, path)
        expected = np.argsort(-probs)[:3]
        assert [e["index"] for e in result["top"]] == list(expected)
        assert [e["label"] for e in result["top"]] == [f"class {i}" for i in expected]
        np.testing.assert_allclose([e["probability"] for e in result["top"]], probs[expected],
                                   atol=1e-5)


def test_classify_prints_the_top_5_imagenet_labels(tmp_path, capsys):
    torch.manual_seed(4)
    model = torchvision_alexnet(channels=SMALL["channels"], hidden=SMALL["hidden"])
    weights = tmp_path / "imagenet-small.pth"
    torch.save(model.state_dict(), weights)
    [photo] = write_images(tmp_path, [(375, 500)])
    assert main(["classify", str(photo), "--weights", str(weights), "--width", "0.25"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == str(photo) and len(lines) == 6
    probs = torch_probabilities(model, photo)
    names = imagenet_classes()
    for rank, (line, index) in enumerate(zip(lines[1:], np.argsort(-probs)[:5]), start=1):
        assert line.split()[0] == str(rank)
        assert line.endswith(f"{names[index]} ({index})")
        assert f"{100 * probs[index]:6.2f}%" in line


def test_classify_reports_bad_input_as_an_error(tmp_path, capsys, small_weights):
    _, weights = small_weights
    (tmp_path / "empty").mkdir()
    assert main(["classify", str(tmp_path / "empty"), "--weights", str(weights)]) == 2
    assert "no images found" in capsys.readouterr().err
    [photo] = write_images(tmp_path, [(64, 64)])
    assert main(["classify", str(photo), "--weights", str(weights)]) == 2   # 1000-class model
    assert "mis-shaped" in capsys.readouterr().err
    assert main(["classify", str(photo), "--weights", str(weights), "--width", "0.25",
                 "--num-classes", "10", "--backend", "tpu"]) == 2
    assert "unknown backend 'tpu'" in capsys.readouterr().err
