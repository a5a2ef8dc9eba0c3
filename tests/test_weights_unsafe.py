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
from weight_files import tensor_pickle, torch_like_zip


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
    with pytest.raises(WeightFileError, match="no member 'archive/data/0'"):
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


# ---- pickles that attack the reader itself rather than run code ------------------------------
# Opcodes (protocol 0 unless noted): c GLOBAL, ( MARK, t TUPLE, R REDUCE, Q BINPERSID,
# pN/gN PUT/GET memo slot N, d DICT, b BUILD, s SETITEM, u SETITEMS, 0 POP, ] EMPTY_LIST,
# a APPEND, ) EMPTY_TUPLE, \x85 TUPLE1, r LONG_BINPUT (4-byte index), \x82 EXT1.

REBUILD = b"ctorch._utils\n_rebuild_tensor_v2\n("
STORAGE = b"(Vstorage\nctorch\nFloatStorage\nV0\nVcpu\nI4\ntQ"     # 4 floats: 16 bytes
NO_HOOKS = b"I00\nccollections\nOrderedDict\n)RtR"                 # requires_grad, hooks; call


def layout(offset, size, stride):
    return (b"I%d\n(" % offset + b"".join(b"I%d\n" % n for n in size) + b"t("
            + b"".join(b"I%d\n" % s for s in stride) + b"t")


def state_dict_of(*entries):
    return b"ccollections\nOrderedDict\n)R(" + b"".join(entries) + b"u."


RECORDS = {"0": np.arange(4, dtype="<f4").tobytes()}
HOSTILE = {
    # A stride-0 view t1 claims a million elements of the 16-byte storage; BUILD then
    # makes t1 the storage's array, and t2 reads 100,000 elements "inside" it: 400 KB
    # of heap memory (a segfault, or pointers copied into convert's output).
    "BUILD swaps a storage's array": state_dict_of(
        b"Vt1\n" + REBUILD + STORAGE + b"p0\n" + layout(0, (10**6,), (0,)) + NO_HOOKS
        + b"p1\nVt2\n" + REBUILD + b"g0\n(Varray\ng1\ndb" + layout(0, (10**5,), (1,))
        + NO_HOOKS),
    # The same BUILD on the storage record before any tensor holds it.
    "BUILD on a fresh storage record": state_dict_of(
        b"Vw\n" + REBUILD + STORAGE + b"(Varray\nI1\ndb" + layout(0, (4,), (1,)) + NO_HOOKS),
    # BUILD on the globals the allow-list hands out (old: changed them for the process).
    "BUILD on _rebuild_tensor_v2": b"ctorch._utils\n_rebuild_tensor_v2\n(Vx\nI1\ndb0"
                                   + tensor_pickle((4,), (1,)),
    "BUILD on FloatStorage": b"ctorch\nFloatStorage\n(Vname\nVDoubleStorage\ndb0"
                             + tensor_pickle((4,), (1,)),
    "BUILD on the OrderedDict": tensor_pickle((4,), (1,))[:-1] + b"(Vevil\nI1\ndb.",
    # A stride-0 view claiming 4 TiB of a 4-byte storage (old: convert filled the disk).
    "4 TiB stride-0 view": tensor_pickle((2**40,), (0,), numel=1),
    # A tuple nested 5,000 / 1,000,000 deep as a key (old: RecursionError / C stack crash).
    "key nested 5,000 deep": b"ccollections\nOrderedDict\n)R)" + b"\x85" * 5000 + b"I1\ns.",
    "key nested 10**6 deep": b"ccollections\nOrderedDict\n)R)" + b"\x85" * 10**6 + b"I1\ns.",
    # LONG_BINPUT 2**25: the C unpickler's memo table grows to 512 MiB.
    "memo index bomb": b"\x80\x02)r\x00\x00\x00\x02.",
    # 12,000 int keys with one hash (multiples of 2**61 - 1): filling the dict is
    # quadratic (old: ~10 s of CPU from 300 KB; 100,000 keys would take minutes).
    "colliding int keys": b"ccollections\nOrderedDict\n)R("
                          + b"".join(b"L%dL\nN" % (i * (2**61 - 1)) for i in range(12_000))
                          + b"u.",
    # The same keys hidden in the pairs of OrderedDict([(k, v), ...]).
    "OrderedDict from pairs": b"ccollections\nOrderedDict\n(((Vw\nI1\ntltR.",
}
HOSTILE_RECORDS = {"4 TiB stride-0 view": {"0": b"\0" * 4}}


@pytest.fixture(scope="module")
def hostile_results(tmp_path_factory):
    """{name: result} of loading each HOSTILE pickle (in a zip like torch.save's)
    in one child process under limits."""
    pytest.importorskip("resource", reason="the child's limits need POSIX")
    from load_in_child import load_all
    from weight_files import small_files
    folder = tmp_path_factory.mktemp("hostile")
    paths = []
    for i, (name, data) in enumerate(HOSTILE.items()):
        paths.append(torch_like_zip(folder / f"hostile{i}.pth", data,
                                    HOSTILE_RECORDS.get(name, RECORDS)))
    results = load_all(paths, folder / "out", warm_up=small_files(folder).values())
    return dict(zip(HOSTILE, results))


@pytest.mark.parametrize("name, needle", [
    ("BUILD swaps a storage's array", "BUILD"),
    ("BUILD on a fresh storage record", "BUILD"),
    ("BUILD on _rebuild_tensor_v2", "BUILD"),
    ("BUILD on FloatStorage", "BUILD"),
    ("BUILD on the OrderedDict", "_metadata"),
    ("4 TiB stride-0 view", "claims"),
    ("key nested 5,000 deep", "nested more than 64 deep"),
    ("key nested 10**6 deep", "nested more than 64 deep"),
    ("memo index bomb", "memo slots must be filled in order"),
    ("colliding int keys", "that are not strings"),
    ("OrderedDict from pairs", "from arguments"),
])
def test_a_pickle_that_attacks_the_reader_is_refused_cheaply(hostile_results, name, needle):
    from load_in_child import memory_rises
    result = hostile_results[name]
    assert (result["outcome"], result["error"]) == ("refused", "WeightFileError"), result
    assert needle in result["message"] and "hostile" in result["message"]
    assert result["leftovers"] == []                       # convert would write nothing
    rises = dict((r["source"], kib) for r, kib in memory_rises(hostile_results.values()))
    assert rises.get(result["source"], 0) < 32 * 1024, "the load took over 32 MiB"


@pytest.fixture
def exec_as_extension_code():
    """builtins.exec registered as copyreg extension code 0x7E, and (warm) already
    in the cache that the C unpickler consults before calling find_class."""
    import copyreg
    copyreg.add_extension("builtins", "exec", 0x7E)
    try:
        yield copyreg._extension_cache
    finally:
        copyreg.remove_extension("builtins", "exec", 0x7E)


@pytest.mark.parametrize("warm", [True, False])
def test_ext_opcodes_are_refused_before_unpickling(tmp_path, exec_as_extension_code, warm):
    marker = tmp_path / "marker"
    if warm:
        exec_as_extension_code[0x7E] = exec
    data = b"\x80\x02\x82\x7e(V" + touch_code(marker).encode() + b"\ntR."
    pickle.loads(data)
    assert marker.exists(), "the payload must be live under plain pickle"
    marker.unlink()
    path = torch_like_zip(tmp_path / "ext.pth", data)
    with pytest.raises(WeightFileError, match="EXT1 opcode"):
        numalex.load_weights(path)
    assert not marker.exists()


def test_nesting_by_filling_a_list_after_nesting_it_is_caught():
    """L0.append(L1), then L1.append(L2) ...: each step is one deep, the result is
    n deep. The scan refuses changing a list that is already inside another;
    built bottom-up, the same chain is refused for its depth alone."""
    from numalex.weights.pickle_scan import scan_pickle

    def chain(n, top_down):
        steps = range(n - 1) if top_down else range(n - 2, -1, -1)
        return (b"".join(b"]p%d\n0" % i for i in range(n))
                + b"".join(b"g%d\ng%d\na0" % (i, i + 1) for i in steps) + b"g0\n.")
    assert isinstance(pickle.loads(chain(100, top_down=True)), list)
    with pytest.raises(WeightFileError, match="already inside another"):
        scan_pickle(chain(100, top_down=True))
    with pytest.raises(WeightFileError, match="nested more than 64 deep"):
        scan_pickle(chain(100, top_down=False))
    scan_pickle(chain(30, top_down=False))
