"""Training data: folder layout and its errors, the split, the paper's
augmentation (checked by finding each crop inside the whole image), the
bounded decoding pipeline, unreadable images, and the digits."""
import threading

import numpy as np
import pytest

pytest.importorskip("PIL", reason="training reads images with Pillow: pip install 'numalex[train]'")
from PIL import Image  # noqa: E402

from numalex.images import load_image  # noqa: E402
from numalex.training.data import decoded_ahead, load_data, split_indices  # noqa: E402


def write_class_folder(root, counts: dict, size: int = 40, seed: int = 0):
    """root/<class>/<i>.png per counts {class: n}. Class k is a bright
    horizontal band in the k-th third of the picture, on noise, so a tiny
    net can tell the classes apart."""
    rng = np.random.default_rng(seed)
    for k, (name, count) in enumerate(counts.items()):
        (root / name).mkdir(parents=True)
        for i in range(count):
            pixels = rng.integers(0, 90, (size, size + 6, 3), dtype=np.uint8)
            band = slice(k % 3 * size // 3, (k % 3 + 1) * size // 3)
            pixels[band] = rng.integers(170, 256, 3, dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def test_folder_is_split_per_class_and_the_same_every_time(tmp_path):
    write_class_folder(tmp_path, {"cat": 10, "dog": 6, "emu": 2})
    data = load_data(str(tmp_path), 32)
    again = load_data(str(tmp_path), 32)
    assert data.class_names == ["cat", "dog", "emu"]
    train, held = data.splits["train"], data.splits["held_out"]
    assert sorted(train[0] + held[0]) == sorted(str(p) for p in tmp_path.rglob("*.png"))
    assert not set(train[0]) & set(held[0])
    assert train[0] == again.splits["train"][0]
    for k in range(3):                               # every class on both sides
        assert k in train[1] and k in held[1]
    assert np.bincount(held[1]).tolist() == [2, 1, 1]    # a fifth, at least one, never all


def test_split_indices_holds_out_a_fifth_of_each_class():
    labels = np.repeat(np.arange(4), [100, 50, 5, 1])
    train, held = split_indices(labels)
    assert np.bincount(labels[held], minlength=4).tolist() == [20, 10, 1, 0]
    assert np.array_equal(np.sort(np.concatenate([train, held])), np.arange(len(labels)))


@pytest.mark.parametrize("layout, message", [
    ({}, "no class subfolders"),
    ({"cat": 3, "dog": 0}, "no images in class folder.*dog"),
    ({"cat": 3}, "only one class"),
    ({"cat": 1, "dog": 1}, "at least 2 images"),
])
def test_bad_folders_get_one_clear_line(tmp_path, layout, message):
    write_class_folder(tmp_path, layout)
    with pytest.raises(ValueError, match=message):
        load_data(str(tmp_path), 32)


def test_missing_folder_says_what_data_is(tmp_path):
    with pytest.raises(FileNotFoundError, match="one subfolder per class.*'digits'"):
        load_data(str(tmp_path / "nope"), 32)


def find(window: np.ndarray, whole: np.ndarray):
    """(top, left) where window (3, s, s) sits in whole (3, R, R), or None."""
    s, r = window.shape[1], whole.shape[1]
    for top in range(r - s + 1):
        for left in range(r - s + 1):
            if np.array_equal(whole[:, top:top + s, left:left + s], window):
                return top, left
    return None


def test_training_crops_are_random_windows_of_the_whole_image_and_repeat(tmp_path):
    write_class_folder(tmp_path, {"a": 4, "b": 4})
    data = load_data(str(tmp_path), 28)                      # R = 32
    items, labels = data.splits["train"]
    first = next(iter(data.batches("train", 6, epoch=0, seed=1)))
    again = next(iter(data.batches("train", 6, epoch=0, seed=1)))
    later = next(iter(data.batches("train", 6, epoch=1, seed=1)))
    np.testing.assert_array_equal(first.x, again.x)
    assert not np.array_equal(first.x, later.x)
    order = np.random.default_rng([1, 0]).permutation(len(items))[:6]
    assert first.labels.tolist() == labels[order].tolist()
    places, flips = set(), 0
    for x, i in zip(first.x, order):
        whole = load_image(items[i], data.augment_from)       # (3, 32, 32)
        assert whole.shape == (3, 32, 32)
        at = find(x, whole)
        if at is None:
            at, flips = find(x[:, :, ::-1], whole), flips + 1
        assert at is not None, "a training crop is not a window of the (mirrored) image"
        places.add(at)
    assert len(places) > 1 and 0 < flips < 6                  # crops move, some mirror


def test_held_out_images_are_centre_crops_in_order(tmp_path):
    write_class_folder(tmp_path, {"a": 5, "b": 5})
    data = load_data(str(tmp_path), 28)
    items, labels = data.splits["held_out"]
    batch = next(iter(data.batches("held_out", 8)))
    whole = np.stack([load_image(path, data.augment_from) for path in items])
    np.testing.assert_array_equal(batch.x, whole[:, :, 2:30, 2:30])    # (32 - 28) / 2
    assert batch.labels.tolist() == labels.tolist()


def test_unreadable_images_are_skipped_and_named(tmp_path):
    write_class_folder(tmp_path, {"a": 5, "b": 5})
    for name in ("a/broken.png", "b/empty.jpg"):
        (tmp_path / name).write_bytes(b"not an image" if "broken" in name else b"")
    data = load_data(str(tmp_path), 28)
    skipped, images = [], 0
    for split in ("train", "held_out"):
        for batch in data.batches(split, 4, epoch=0):
            skipped += batch.skipped
            images += len(batch.labels) if batch.x is None else len(batch.x)
    assert images == 10
    assert len(skipped) == 2
    assert any("broken.png" in s for s in skipped) and any("empty.jpg" in s for s in skipped)


def test_decoding_runs_ahead_but_never_more_than_allowed():
    lock, started, consumed, most = threading.Lock(), [0], [0], [0]

    def decode(job):
        with lock:
            started[0] += 1
            most[0] = max(most[0], started[0] - consumed[0])
        return job * 2

    results = []
    for value in decoded_ahead(decode, list(range(40)), workers=3, ahead=4):
        results.append(value)
        consumed[0] += 1
    assert results == [2 * j for j in range(40)]
    assert most[0] <= 4


def test_digits_are_prepared_as_classify_prepares_a_png_of_one(tmp_path):
    pytest.importorskip("sklearn", reason="digits ship in scikit-learn: pip install 'numalex[train]'")
    from sklearn.datasets import load_digits

    data = load_data("digits", 40)
    assert data.class_names == [str(d) for d in range(10)]
    assert data.size("train") + data.size("held_out") == 1797
    assert data.augment_from is None                           # no flips of digits
    digits = load_digits()
    _, held = split_indices(digits.target)
    first = held[0]
    png = tmp_path / "digit.png"
    Image.fromarray(np.round(digits.images[first] * 255 / 16).astype(np.uint8)).save(png)
    batch = next(iter(data.batches("held_out", 3)))
    assert batch.x.shape == (3, 3, 40, 40)
    assert batch.labels[0] == digits.target[first]
    np.testing.assert_allclose(batch.x[0], load_image(str(png), data.preset), atol=1e-6)
