"""Untrusted weight files: malicious pickles are refused and nothing runs;
truncated and corrupted files give a clear WeightFileError, never a
traceback from deep inside a parser.

Each payload is first shown to be live: plain `pickle.loads` of it creates a
marker file. numalex must refuse the same bytes, name the global, and leave
no marker.
"""
import io
import os
import pickle
import zipfile

import numpy as np
import pytest

import numalex
from numalex.weights import UnsafePickleError, WeightFileError


def torch_like_zip(path, pickle_bytes, records=None, prefix="archive"):
    """A zip laid out like torch.save's: <prefix>/data.pkl and <prefix>/data/<key>."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(f"{prefix}/data.pkl", pickle_bytes)
        archive.writestr(f"{prefix}/byteorder", "little")
        for key, raw in (records or {}).items():
            archive.writestr(f"{prefix}/data/{key}", raw)
    return path


def call(module, name, *args):
    """Protocol-0 opcodes for module.name(*args): GLOBAL, MARK, strings, TUPLE, REDUCE."""
    text = f"c{module}\n{name}\n(" + "".join(f"V{arg}\n" for arg in args) + "tR"
    return text.encode()


def touch_code(marker):
    return f"open({str(marker)!r}, 'w').close()"


class StackGlobalPayload:
    """Pickled with protocol 4 this becomes STACK_GLOBAL + REDUCE, not GLOBAL."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (exec, (touch_code(self.marker),))


def payloads(marker):
    """name -> (pickle bytes, the global numalex must name in its refusal)."""
    m = str(marker)
    return {
        "os.system": (call("os", "system", f"touch {m}") + b".", "os.system"),
        "builtins.eval": (call("builtins", "eval", touch_code(m)) + b".", "builtins.eval"),
        "subprocess.check_call": (
            b"csubprocess\ncheck_call\n((V" + b"touch\nV" + m.encode() + b"\nltR.",
            "subprocess.check_call"),
        "INST opcode": (f"(V{touch_code(m)}\nibuiltins\nexec\n.".encode(), "builtins.exec"),
        "STACK_GLOBAL": (pickle.dumps(StackGlobalPayload(m), protocol=4), "builtins.exec"),
        # a payload hidden inside an otherwise ordinary state dict
        "inside a dict": (b"ccollections\nOrderedDict\n)R(Vweight\n"
                          + call("builtins", "exec", touch_code(m)) + b"u.", "builtins.exec"),
        # allowed-looking names that are not on the list
        "torch.load": (call("torch", "load", m) + b".", "torch.load"),
        "_rebuild_parameter": (call("torch._utils", "_rebuild_parameter", m) + b".",
                               "torch._utils._rebuild_parameter"),
        "collections.defaultdict": (call("collections", "defaultdict") + b".",
                                    "collections.defaultdict"),
        "numpy reconstruct": (call("numpy.core.multiarray", "_reconstruct") + b".",
                              "numpy.core.multiarray._reconstruct"),
    }


LIVE = ["os.system", "builtins.eval", "subprocess.check_call", "INST opcode", "STACK_GLOBAL",
        "inside a dict"]


@pytest.mark.parametrize("name", LIVE)
def test_the_payload_is_live_under_plain_pickle(tmp_path, name):
    marker = tmp_path / "marker"
    data, _ = payloads(marker)[name]
    try:
        pickle.loads(data)
    except Exception:           # e.g. exec returns None inside a dict: the marker counts
        pass
    assert marker.exists(), "the payload must really run code, or the refusal test proves nothing"


@pytest.mark.parametrize("name", list(payloads("m")))
def test_malicious_pickle_is_refused_and_nothing_runs(tmp_path, name):
    marker = tmp_path / "marker"
    data, global_name = payloads(marker)[name]
    path = torch_like_zip(tmp_path / "evil.pth", data)
    with pytest.raises(UnsafePickleError) as info:
        numalex.load_weights(path)
    assert info.value.global_name == global_name
    assert repr(global_name) in str(info.value) and "evil.pth" in str(info.value)
    assert not marker.exists()


def test_malicious_pickle_is_refused_by_alexnet_and_the_command_line(tmp_path, capsys):
    marker = tmp_path / "marker"
    data, _ = payloads(marker)["os.system"]
    path = torch_like_zip(tmp_path / "evil.pth", data)
    with pytest.raises(UnsafePickleError):
        numalex.alexnet("torchvision", weights=path)
    from numalex.cli import main
    assert main(["convert", str(path), str(tmp_path / "out.npz")]) == 2
    assert "os.system" in capsys.readouterr().err
    assert not marker.exists() and not (tmp_path / "out.npz").exists()


# ---- hand-made pickles in torch's layout, for corrupted-layout cases -------------------------

def tensor_pickle(size, stride, offset=0, numel=4, key="0"):
    """{'w': _rebuild_tensor_v2(storage key, offset, size, stride, False, OrderedDict())},
    written with plain pickle opcodes (the same ones torch.save emits)."""
    def ints(values):
        return b"(" + b"".join(b"I%d\n" % v for v in values) + b"t"
    return (b"ccollections\nOrderedDict\n)R(Vw\n"
            b"ctorch._utils\n_rebuild_tensor_v2\n("
            b"(Vstorage\nctorch\nFloatStorage\nV" + key.encode() + b"\nVcpu\nI%d\ntQ" % numel
            + b"I%d\n" % offset + ints(size) + ints(stride)
            + b"I00\nccollections\nOrderedDict\n)RtRu.")


def test_hand_made_tensor_pickle_is_read_like_torchs(tmp_path):
    raw = np.arange(4, dtype="<f4").tobytes()
    path = torch_like_zip(tmp_path / "ok.pth", tensor_pickle((2, 2), (1, 2)), {"0": raw})
    np.testing.assert_array_equal(numalex.load_weights(path)["w"], [[0, 2], [1, 3]])


@pytest.mark.parametrize("size, stride, offset, needle", [
    ((5,), (1,), 0, "reads element 4"),          # more elements than the storage has
    ((2, 2), (1, 2), 1, "reads element 4"),      # offset pushes the view past the end
    ((2,), (100,), 0, "reads element 100"),      # a stride that jumps out of the storage
])
def test_a_view_outside_its_storage_is_refused(tmp_path, size, stride, offset, needle):
    raw = np.arange(4, dtype="<f4").tobytes()
    path = torch_like_zip(tmp_path / "bad.pth", tensor_pickle(size, stride, offset), {"0": raw})
    with pytest.raises(WeightFileError, match=needle):
        numalex.load_weights(path)


def test_a_storage_record_of_the_wrong_size_or_missing_is_refused(tmp_path):
    short = torch_like_zip(tmp_path / "short.pth", tensor_pickle((4,), (1,)), {"0": b"\0" * 12})
    with pytest.raises(WeightFileError, match="holds 12 bytes"):
        numalex.load_weights(short)
    missing = torch_like_zip(tmp_path / "missing.pth", tensor_pickle((4,), (1,)))
    with pytest.raises(WeightFileError, match="no record 'archive/data/0'"):
        numalex.load_weights(missing)


# ---- truncated and corrupted files of every format -------------------------------------------

def good_files(tmp_path):
    """One valid file per format, written by numalex's writers or by hand."""
    state = {"conv1.weight": np.ones((2, 3), np.float32), "conv1.bias": np.zeros(2, np.float32)}
    raw = np.arange(4, dtype="<f4").tobytes()
    files = {"pth": torch_like_zip(tmp_path / "good.pth", tensor_pickle((4,), (1,)), {"0": raw}),
             "npz": tmp_path / "good.npz"}
    numalex.save_weights(state, files["npz"])
    try:
        import safetensors  # noqa: F401
    except ModuleNotFoundError:
        pass
    else:
        files["safetensors"] = tmp_path / "good.safetensors"
        numalex.save_weights(state, files["safetensors"])
    return files


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9])
def test_truncated_files_give_a_clear_error(tmp_path, fraction):
    for fmt, path in good_files(tmp_path).items():
        numalex.load_weights(path)                       # intact, it loads
        data = open(path, "rb").read()
        cut = tmp_path / f"cut-{fmt}"
        cut.write_bytes(data[:int(len(data) * fraction)])
        with pytest.raises(WeightFileError, match="cut-" + fmt):
            numalex.load_weights(cut)


def test_a_corrupted_pickle_gives_a_clear_error(tmp_path):
    good = tensor_pickle((4,), (1,))
    raw = np.arange(4, dtype="<f4").tobytes()
    for i, bad in enumerate([good[:-5], good.replace(b"tR", b"t)"), b"\x80\x02garbage"]):
        path = torch_like_zip(tmp_path / f"bad{i}.pth", bad, {"0": raw})
        with pytest.raises(WeightFileError, match=f"bad{i}.pth"):
            numalex.load_weights(path)


def test_empty_and_unrecognisable_files(tmp_path):
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(WeightFileError, match="empty"):
        numalex.load_weights(empty)
    text = tmp_path / "notes.txt"
    text.write_text("these are not weights\n" * 10)
    with pytest.raises(WeightFileError, match="notes.txt"):
        numalex.load_weights(text)
    other_zip = tmp_path / "other.zip"
    with zipfile.ZipFile(other_zip, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(WeightFileError, match="neither a torch.save file"):
        numalex.load_weights(other_zip)
    with pytest.raises(FileNotFoundError):
        numalex.load_weights(tmp_path / "absent.pth")


def test_npz_with_an_object_array_is_refused_without_unpickling(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "objects.npz"
    buffer = io.BytesIO()
    np.save(buffer, np.array([StackGlobalPayload(marker)], dtype=object), allow_pickle=True)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("w.npy", buffer.getvalue())
    with pytest.raises(WeightFileError, match="objects.npz"):
        numalex.load_weights(path)
    assert not marker.exists()
    assert not os.path.exists(tmp_path / "marker")
