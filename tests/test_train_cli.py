"""`numalex train` end to end on a tiny generated folder with a tiny net: the
loss falls, a run repeats exactly, a resumed run equals an uninterrupted
one, the checkpoint classifies with no other flags, and bad input gets one
clear line."""
import json
import re

import numpy as np
import pytest

pytest.importorskip("PIL", reason="training reads images with Pillow: pip install 'numalex[train]'")
from test_train_data import write_class_folder  # noqa: E402

from numalex.cli import main  # noqa: E402
from numalex.training.checkpoint import load_checkpoint  # noqa: E402

TINY = ["--width", "0.0625", "--input-size", "63", "--batch", "4", "--backend", "numpy",
        "--lr", "0.003", "--patience", "0"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    return write_class_folder(root / "bands", {"top": 6, "middle": 6, "bottom": 6})


def train(capsys, *argv) -> tuple[int, str, str]:
    code = main(["train", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def four_epochs(folder, tmp_path_factory):
    """One uninterrupted 4-epoch run that several tests compare against."""
    out = tmp_path_factory.mktemp("run") / "bands.npz"
    assert main(["train", str(folder), *TINY, "--epochs", "4", "--out", str(out),
                 "--json"]) == 0
    return out


def weights(path) -> dict:
    return load_checkpoint(path).params


def test_the_loss_falls_and_json_ends_the_output(folder, tmp_path, capsys):
    code, out, err = train(capsys, folder, *TINY, "--epochs", "4", "--out",
                           tmp_path / "bands.npz", "--json")
    assert code == 0
    result = json.loads(out.strip().splitlines()[-1])
    losses = [record["loss"] for record in result["history"]]
    assert losses[-1] < 0.75 * losses[0], losses
    assert result["epochs"] == 4 and result["final_training_loss"] == losses[-1]
    assert 0 <= result["held_out_accuracy"] <= 1 and result["seconds"] > 0
    assert "epoch 4/4 [" in err and "img/s" in err and "held-out" in err


def test_same_seed_same_weights(folder, four_epochs, tmp_path, capsys):
    again = tmp_path / "again.npz"
    assert train(capsys, folder, *TINY, "--epochs", "4", "--out", again)[0] == 0
    for key, w in weights(four_epochs).items():
        np.testing.assert_array_equal(weights(again)[key], w, err_msg=key)


def test_resume_equals_an_uninterrupted_run(folder, four_epochs, tmp_path, capsys):
    part = tmp_path / "part.npz"
    assert train(capsys, folder, *TINY, "--epochs", "2", "--out", part)[0] == 0
    assert train(capsys, folder, "--resume", part, "--epochs", "4", "--backend", "numpy")[0] == 0
    whole, resumed = load_checkpoint(four_epochs), load_checkpoint(part)
    assert resumed.meta["optimizer"] == whole.meta["optimizer"]       # lr schedule too
    for key, w in whole.params.items():
        np.testing.assert_array_equal(resumed.params[key], w, err_msg=key)
        np.testing.assert_array_equal(resumed.momentum[key], whole.momentum[key])


def test_classify_reads_everything_from_the_checkpoint(folder, four_epochs, capsys):
    image = sorted((folder / "top").iterdir())[0]
    assert main(["classify", str(image), "--weights", str(four_epochs), "--top", "3"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("top", "middle", "bottom"))


@pytest.mark.parametrize("flag, value", [("--width", "0.5"), ("--variant", "caffe"),
                                         ("--input-size", "95")])
def test_a_resume_file_for_another_net_is_refused(folder, four_epochs, capsys, flag, value):
    code, _, err = train(capsys, folder, "--resume", four_epochs, flag, value, "--epochs", "5")
    assert code == 2
    assert "holds a torchvision net of width 0.0625 for 63x63 inputs" in err
    assert f"{flag} {'bvlc' if value == 'caffe' else value} does not fit" in err


def test_a_diverging_rate_names_the_epoch_and_keeps_the_last_good_checkpoint(
        folder, four_epochs, tmp_path, capsys):
    out = tmp_path / "kept.npz"
    out.write_bytes(four_epochs.read_bytes())
    before = weights(out)
    code, _, err = train(capsys, folder, "--resume", out, "--epochs", "8", "--lr", "1e9",
                         "--backend", "numpy")
    assert code == 2
    assert "epoch 5" in err and "smaller --lr" in err and str(out) in err
    assert load_checkpoint(out).meta["optimizer"]["epoch"] == 4
    for key, w in before.items():
        np.testing.assert_array_equal(weights(out)[key], w)


def test_unreadable_images_are_listed_and_training_goes_on(folder, tmp_path, capsys):
    data = tmp_path / "data"
    for image in folder.rglob("*.png"):
        (data / image.parent.name).mkdir(parents=True, exist_ok=True)
        (data / image.parent.name / image.name).write_bytes(image.read_bytes())
    (data / "top" / "truncated.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    code, out, err = train(capsys, data, *TINY, "--epochs", "1", "--out", tmp_path / "s.npz",
                           "--json")
    assert code == 0
    assert "skipped 1 unreadable image" in err and "truncated.png" in err
    assert any("truncated.png" in s for s in json.loads(out.splitlines()[-1])["skipped"])


@pytest.mark.parametrize("layout, message", [
    ({}, "no class subfolders"),
    ({"cat": 3, "dog": 0}, "no images in class folder.*dog"),
])
def test_bad_folders_exit_2_with_one_line(tmp_path, capsys, layout, message):
    write_class_folder(tmp_path, layout)
    code, _, err = train(capsys, tmp_path, *TINY)
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert re.search(message, err)
