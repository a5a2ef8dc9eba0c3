"""Hostile and broken files of every format (the pickle corpus is in
test_weights_unsafe.py): decompression and header bombs are refused before
anything is allocated, every failure is one WeightFileError naming the file
and the part of it, formats are told by their whole signature, output is
never left half-written, and NaN/Inf weights are refused unless asked for.

Bombs are loaded in a child process under limits (load_in_child.py), and
their cost is measured there: the peak RSS above the child's baseline.
"""
import io
import math
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import numalex
from numalex.weights import WeightFileError
from weight_files import (blob, deflated_zeros, field_bytes, layer_v2, raw_zip, small_files,
                          tensor_pickle, varint)

MiB = 1 << 20
BOMB = 64 * MiB                      # what each bomb inflates to: twice the limit below


def bomb_files(folder):
    """{name: path}: zip members that inflate to 64 MiB, and 6 MB of Caffe layers
    whose blobs are empty (old: 1.5 GB and 24 s)."""
    bomb = deflated_zeros(BOMB)
    pickle4, raw = tensor_pickle((4,), (1,)), np.arange(4, dtype="<f4").tobytes()
    members = {
        ".pth byteorder": {"archive/data.pkl": pickle4, "archive/byteorder": bomb,
                           "archive/data/0": raw},
        ".pth data.pkl": {"archive/data.pkl": bomb, "archive/data/0": raw},
        ".pth data/0": {"archive/data.pkl": tensor_pickle((BOMB // 4,), (1,), numel=BOMB // 4),
                        "archive/data/0": bomb},
        ".npz member": {"w.npy": deflated_zeros(BOMB, npy_member((BOMB // 4,), data=b""))},
    }
    files = {name: raw_zip(folder / f"bomb{i}.{name[1:4]}", content)
             for i, (name, content) in enumerate(members.items())}
    empty = files[".caffemodel empty blobs"] = folder / "empty-blobs.caffemodel"
    empty.write_bytes(layer_v2("conv1", "Convolution", [b""]) * 300_000)   # 6 MB
    return files


@pytest.fixture(scope="module")
def bomb_results(tmp_path_factory):
    pytest.importorskip("resource", reason="the child's limits need POSIX")
    from load_in_child import load_all
    folder = tmp_path_factory.mktemp("bombs")
    files = bomb_files(folder)
    results = load_all(files.values(), folder / "out", warm_up=small_files(folder).values())
    return dict(zip(files, results))


@pytest.mark.parametrize("name, needle", [
    (".pth byteorder", "only stored members"),         # torch.save never compresses
    (".pth data.pkl", "only stored members"),
    (".pth data/0", "only stored members"),
    (".npz member", "decompression bomb"),              # np.savez_compressed does
    (".caffemodel empty blobs", "is empty"),
])
def test_a_bomb_is_refused_before_it_is_inflated(bomb_results, name, needle):
    from load_in_child import memory_rises
    result = bomb_results[name]
    assert (result["outcome"], result["error"]) == ("refused", "WeightFileError"), result
    assert needle in result["message"]
    assert result["leftovers"] == []
    rises = {r["source"]: kib for r, kib in memory_rises(bomb_results.values())}
    assert rises.get(result["source"], 0) < 32 * 1024, "the load took over 32 MiB"


def npy_member(shape, descr="<f4", data=b"\0" * 16):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": descr, "fortran_order": False,
                                                  "shape": shape})
    return header.getvalue() + data


def npz_with(path, members, method=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_an_npy_header_claiming_4_tib_is_refused_before_allocating(tmp_path):
    path = npz_with(tmp_path / "huge.npz", {"w.npy": npy_member((2**40,))})
    with pytest.raises(WeightFileError, match=r"huge.npz: member 'w.npy': header claims "
                                              r"shape \(1099511627776,\)"):
        numalex.load_weights(path)


def patch_headers(data: bytes, local_offset: int, central_offset: int, value: int) -> bytes:
    """Set a 2-byte field in every local (PK 3 4) and central (PK 1 2) zip header."""
    out = bytearray(data)
    for signature, offset in ((b"PK\x03\x04", local_offset), (b"PK\x01\x02", central_offset)):
        start = out.find(signature)
        while start >= 0:
            out[start + offset:start + offset + 2] = value.to_bytes(2, "little")
            start = out.find(signature, start + 4)
    return bytes(out)


def broken_npz(tmp_path, how):
    """An .npz broken in one way the zip layer notices (the member is 'w.npy')."""
    good = npz_with(tmp_path / "good.npz", {"w.npy": npy_member((4,))}).read_bytes()
    flags = int.from_bytes(good[6:8], "little")
    if how == "encrypted":
        return patch_headers(good, 6, 8, flags | 0x1)
    if how == "unsupported method":
        return patch_headers(good, 8, 10, 99)
    if how == "zip version":
        return patch_headers(good, 4, 6, 90)
    if how == "bad utf-8 name":
        return patch_headers(good.replace(b"w.npy", b"\xff.npy"), 6, 8, flags | 0x800)
    deflated = npz_with(tmp_path / "deflated.npz", {"w.npy": npy_member((4,))},
                        zipfile.ZIP_DEFLATED).read_bytes()
    start = deflated.find(b"w.npy") + len("w.npy")
    return deflated[:start] + b"\xff" * 8 + deflated[start + 8:]    # "corrupt deflate"


@pytest.mark.parametrize("how", ["encrypted", "unsupported method", "zip version",
                                 "bad utf-8 name", "corrupt deflate"])
def test_zip_layer_errors_are_one_weight_file_error(tmp_path, how):
    path = tmp_path / "broken.npz"
    path.write_bytes(broken_npz(tmp_path, how))
    with pytest.raises(WeightFileError, match="broken.npz: ") as info:
        numalex.load_weights(path)
    assert "\n" not in str(info.value)
    if how in ("encrypted", "unsupported method", "corrupt deflate"):
        assert "'w.npy'" in str(info.value)


@pytest.mark.parametrize("data, needle", [
    (b"not an npy file", "member 'w.npy'"),                     # np.load returned raw bytes
    (npy_member((1,), "|O", b""), "not a plain numeric type"),  # object array
    (npy_member((4,), data=b"\0" * 15), "holds 15 bytes"),      # short data
    (np.lib.format.MAGIC_PREFIX + b"\x01\x00\x40\x00{'descr': '<f4', 'fortran_order': "
     b"False, 'shape': (1,), \"" + b" " * 6 + b"\n\0\0\0\0", "member 'w.npy'"),  # tokenize
])
def test_a_bad_npy_member_is_named(tmp_path, data, needle):
    path = npz_with(tmp_path / "bad.npz", {"w.npy": data})
    with pytest.raises(WeightFileError, match="bad.npz: ") as info:
        numalex.load_weights(path)
    assert needle in str(info.value)


@pytest.mark.parametrize("dims, needle", [
    ((1,) * 70, "more than 32 dimensions"),       # numpy: 'maximum supported dimension'
    ((0, 2**61), "is empty"),                      # numpy: 'array is too big'
])
def test_absurd_caffe_dims_are_refused_with_the_blob_named(tmp_path, dims, needle):
    bad = field_bytes(7, field_bytes(1, b"".join(varint(d) for d in dims)))
    if math.prod(dims):
        bad += field_bytes(5, np.ones(1, "<f4").tobytes())
    path = tmp_path / "absurd.caffemodel"
    path.write_bytes(layer_v2("conv1", "Convolution", [bad]))
    with pytest.raises(WeightFileError, match=f"absurd.caffemodel: .*layer 'conv1' blob 0: "
                                              f".*{needle}"):
        numalex.load_weights(path)


@pytest.mark.parametrize("layers, needle", [
    ([("conv1", 17)], "more than 16 blobs"),
    ([(f"relu{i}", 0) for i in range(10_001)], "more than 10,000 layers"),
])
def test_caffe_files_with_too_many_blobs_are_refused(tmp_path, layers, needle):
    one = blob(np.ones(1, np.float32))
    path = tmp_path / "many.caffemodel"
    path.write_bytes(b"".join(layer_v2(name, "Convolution", [one] * n) for name, n in layers))
    with pytest.raises(WeightFileError, match=needle):
        numalex.load_weights(path)


def test_safetensors_whose_header_length_ends_in_0x80_loads(tmp_path):
    pytest.importorskip("safetensors", reason="pip install 'numalex[weights]'")
    for name_length in range(1, 300):     # a key length that makes the header 0x..80 long
        state = {"k" * name_length: np.arange(3, dtype=np.float32)}
        path = tmp_path / "w.safetensors"
        numalex.save_weights(state, path)
        if path.read_bytes()[0] == 0x80:
            break
    else:
        pytest.fail("no key length gave a header length ending in 0x80")
    assert numalex.weights.detect_format(path) == "safetensors"
    np.testing.assert_array_equal(numalex.load_weights(path)["k" * name_length], [0, 1, 2])


def test_a_failed_save_leaves_no_file_and_keeps_the_old_one(tmp_path):
    ragged = [[1.0], [1.0, 2.0]]                 # np.asanyarray refuses it, mid-write
    target = tmp_path / "w.npz"
    with pytest.raises(ValueError):
        numalex.save_weights({"a": np.ones(1000), "b": ragged}, target)
    assert list(tmp_path.iterdir()) == []
    numalex.save_weights({"a": np.ones(3)}, target)
    with pytest.raises(ValueError):
        numalex.save_weights({"a": np.zeros(1000), "b": ragged}, target)
    assert [p.name for p in tmp_path.iterdir()] == ["w.npz"]
    np.testing.assert_array_equal(numalex.load_weights(target)["a"], np.ones(3))


CONVERT_WITH_A_SMALL_DISK = """
import resource, signal, sys
resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
from numalex.cli import main
sys.exit(main(["convert", sys.argv[1], sys.argv[2]]))
"""


def test_convert_on_a_full_disk_exits_2_with_one_line_and_no_output(tmp_path):
    source = tmp_path / "big.npz"
    np.savez(source, w=np.ones(100_000, np.float32))       # 400 KB: more than the disk
    out = tmp_path / "out"
    out.mkdir()
    done = subprocess.run([sys.executable, "-c", CONVERT_WITH_A_SMALL_DISK, str(source),
                           str(out / "w.npz")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "File too large" in done.stderr
    assert list(out.iterdir()) == []


def nan_state():
    return {"fc.weight": np.array([[1.0, np.nan]], np.float32),
            "fc.bias": np.array([np.inf], np.float32), "n": np.arange(2)}


def test_non_finite_weights_are_refused_unless_allowed(tmp_path):
    path = tmp_path / "nan.npz"
    np.savez(path, **nan_state())
    with pytest.raises(WeightFileError, match=r"nan.npz: 2 array\(s\) hold NaN or Inf.*"
                                              r"allow_nonfinite=True"):
        numalex.load_weights(path)
    loaded = numalex.load_weights(path, allow_nonfinite=True)
    assert np.isnan(loaded["fc.weight"][0, 1]) and np.isinf(loaded["fc.bias"][0])


def test_non_finite_weights_are_refused_by_alexnet_and_convert(tmp_path):
    model = numalex.alexnet("original", width=0.125, num_classes=3)
    state = model.state_dict()
    state["fc8.bias"] = np.full_like(state["fc8.bias"], np.nan)
    path = tmp_path / "nan.npz"
    np.savez(path, **state)
    with pytest.raises(WeightFileError, match="'fc8.bias'"):
        numalex.alexnet("original", width=0.125, num_classes=3, weights=path)
    again = numalex.alexnet("original", width=0.125, num_classes=3, weights=path,
                            allow_nonfinite=True)
    assert np.isnan(again.state_dict()["fc8.bias"]).all()
    from numalex.cli import main
    assert main(["convert", str(path), str(tmp_path / "out.npz")]) == 2
    assert not (tmp_path / "out.npz").exists()
    assert main(["convert", str(path), str(tmp_path / "out.npz"), "--allow-nonfinite"]) == 0
    copied = numalex.load_weights(tmp_path / "out.npz", allow_nonfinite=True)
    assert set(copied) == set(state) and np.isnan(copied["fc8.bias"]).all()
