"""Read a ``torch.save`` file (PyTorch >= 1.6, the zip format) without PyTorch.

A state dict saved by ``torch.save(model.state_dict(), "alexnet.pth")`` is a
zip archive (stored, never compressed: a compressed member is refused, so no
member can inflate beyond the file)::

    alexnet/data.pkl        the dict itself, pickled; every tensor in it is a
                            call _rebuild_tensor_v2(storage, offset, size, stride, ...)
    alexnet/data/0, 1, ...  the raw bytes of each storage (one per tensor, or
                            shared by several views of one buffer)
    alexnet/byteorder       "little" or "big" (older files omit it: little)

The folder name is the file's stem when it was saved, so it is read from the
first entry rather than assumed.

A pickle is a small program: unpickling one can call any function the file
names. So ``data.pkl`` is read in three steps, none of which trusts it:

1. pickle_scan.py reads its opcodes without running them and refuses EXT
   codes (which would look a global up in copyreg's registry, past
   ``find_class``), memo-index bombs and deep nesting.
2. :class:`StateDictUnpickler` runs it. ``find_class`` knows exactly the
   handful of globals a state dict needs and refuses every other name
   *before* Python imports or looks anything up. What the pickle gets for
   them builds plain records only: an OrderedDict, a :class:`TensorRecord`
   (offset, size, stride of a view), a :class:`StorageRef` (which record,
   which dtype). The records are sealed: the pickle cannot change them
   (BUILD, the opcode that calls ``__setstate__``, is refused), and nothing
   is read from the archive yet.
3. :func:`tensors_from` turns the records into arrays: each storage's bytes
   are read once, and each view is checked to lie inside them, element by
   element of its extent, before NumPy builds it from the buffer (NumPy
   checks the extent against the buffer again; nothing here uses
   ``as_strided``, which checks nothing).
"""
from __future__ import annotations

import io
import math
import pickle
import zipfile
from collections import OrderedDict

import numpy as np

from .errors import UnsafePickleError, WeightFileError, within
from .limits import AllocationBudget, check_shape
from .pickle_scan import scan_pickle
from .zip_members import STORED_ONLY, open_archive, read_member

# torch.<name>Storage -> the dtype of its elements. bfloat16 has no NumPy
# dtype: it is the top half of a float32, so it is widened on reading.
STORAGE_DTYPES = {
    "FloatStorage": "f4", "DoubleStorage": "f8", "HalfStorage": "f2",
    "BFloat16Storage": "bfloat16", "LongStorage": "i8", "IntStorage": "i4",
    "ShortStorage": "i2", "CharStorage": "i1", "ByteStorage": "u1", "BoolStorage": "?",
}


class Sealed:
    """Base of the records a pickle can hold. No ``__dict__`` (``__slots__``),
    no attribute assignment, and ``__setstate__`` refuses: a pickle can pass
    these records around but never change one."""

    __slots__ = ()

    def __init__(self, **fields):
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    def __setstate__(self, state=None):
        # Also reached as Sealed.__setstate__(state) when BUILD targets a class itself.
        raise WeightFileError("the pickle tries to set the state (BUILD) of a storage or "
                              "tensor record; a state dict never does")

    def __setattr__(self, name, value):
        raise AttributeError(f"{type(self).__name__} is read-only")

    __delattr__ = __setattr__


class StorageType(Sealed):
    """What the pickle gets for ``torch.FloatStorage`` & co: a name, not a class."""

    __slots__ = ("name",)


class StorageRef(Sealed):
    """``<prefix>/data/<key>``: `numel` elements of `dtype`, not read yet."""

    __slots__ = ("key", "dtype", "numel")


class TensorRecord(Sealed):
    """What ``_rebuild_tensor_v2(storage, offset, size, stride, ...)`` becomes:
    the layout of a view, checked and built only after unpickling."""

    __slots__ = ("storage", "offset", "size", "stride")

    def __init__(self, storage, storage_offset, size, stride, *_grad_hooks_metadata):
        super().__init__(storage=storage, offset=storage_offset, size=size, stride=stride)


class PickledDict(OrderedDict):
    """What the pickle's ``collections.OrderedDict`` becomes. It is made empty
    and filled item by item (SETITEMS, which the scan counts), as pickle's
    writer does; BUILD may give it only what torch gives a state dict
    (``{'_metadata': ...}``), which is dropped."""

    def __init__(self, *args, **kwargs):
        if args or kwargs:
            raise WeightFileError("the pickle builds an OrderedDict from arguments; "
                                  "torch.save never does")
        super().__init__()

    def __setstate__(self, state=None):
        if not (isinstance(state, dict) and set(state) <= {"_metadata"}):
            raise WeightFileError("the pickle sets an OrderedDict's state to something "
                                  "other than torch's _metadata")


class StateDictUnpickler(pickle.Unpickler):
    """An unpickler that can only build dicts of tensor records.

    ``find_class`` is the door through which GLOBAL, STACK_GLOBAL, INST and
    OBJ reach Python objects; it opens for the names below and nothing else.
    (The EXT codes can skip it, so the scan refuses them first.)
    """

    def __init__(self, data: bytes, path):
        super().__init__(io.BytesIO(data))
        self.path = path
        self.storages: dict[str, StorageRef] = {}

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return PickledDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return TensorRecord
        if module == "torch" and name in STORAGE_DTYPES:
            return StorageType(name=name)
        raise UnsafePickleError(self.path, f"{module}.{name}")

    def persistent_load(self, pid):
        """pid = ('storage', StorageType, key, location, numel)."""
        if not (type(pid) is tuple and len(pid) == 5 and pid[0] == "storage"
                and type(pid[1]) is StorageType and type(pid[2]) is str
                and type(pid[4]) is int and pid[4] >= 0):
            raise WeightFileError("a persistent id is not ('storage', type, key, "
                                  "location, numel)")
        _, storage_type, key, _location, numel = pid
        ref = StorageRef(key=key, dtype=STORAGE_DTYPES[storage_type.name], numel=numel)
        known = self.storages.setdefault(key, ref)
        if (known.dtype, known.numel) != (ref.dtype, ref.numel):
            raise WeightFileError(f"storage {key!r} is declared twice, differently")
        return known


def _widen_bfloat16(raw, order: str) -> np.ndarray:
    """bfloat16 bits are the high 16 bits of a float32: shift them into place."""
    halves = np.frombuffer(raw, dtype=f"{order}u2")
    return (halves.astype(np.uint32) << 16).view(np.float32)


def _read_storage(archive, prefix: str, ref: StorageRef, order: str,
                  budget: AllocationBudget) -> np.ndarray:
    """The record's bytes as a flat read-only array of exactly `ref.numel` elements."""
    name = f"{prefix}/data/{ref.key}"
    itemsize = 2 if ref.dtype == "bfloat16" else np.dtype(ref.dtype).itemsize
    raw = read_member(archive, name, budget, STORED_ONLY)
    if len(raw) != ref.numel * itemsize:
        raise WeightFileError(f"record {name!r} holds {len(raw)} bytes, but its "
                              f"{ref.numel} elements need {ref.numel * itemsize}")
    if ref.dtype == "bfloat16":
        budget.claim(ref.numel * 4, f"record {name!r} widened to float32")
        flat = _widen_bfloat16(raw, order)
        flat.flags.writeable = False
        return flat
    return np.frombuffer(raw, dtype=np.dtype(ref.dtype).newbyteorder(order))


def _view(record: TensorRecord, flat: np.ndarray, key: str,
          budget: AllocationBudget) -> np.ndarray:
    """The strided view `record` describes, after proving it stays inside `flat`."""
    offset, size, stride = record.offset, record.size, record.stride
    where = f"tensor {key!r}"
    check_shape(size, where)
    check_shape(stride, f"{where} (stride)")
    if type(offset) is not int or offset < 0 or len(size) != len(stride):
        raise WeightFileError(f"{where} has an invalid layout: offset {offset!r}, "
                              f"size {size}, stride {stride}")
    count = math.prod(size)
    budget.claim(count * flat.itemsize, where)
    if count == 0:
        return np.zeros(size, dtype=flat.dtype)
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= flat.size:
        raise WeightFileError(f"{where} of size {size}, stride {stride} at offset {offset} "
                              f"reads element {last} of a storage that holds only "
                              f"{flat.size}")
    if count > flat.size:       # stride 0 or overlapping: more elements than bytes
        raise WeightFileError(f"{where} of size {size} claims {count} elements from a "
                              f"storage of {flat.size}")
    view = np.ndarray(size, dtype=flat.dtype, buffer=flat, offset=offset * flat.itemsize,
                      strides=[s * flat.itemsize for s in stride])
    view.flags.writeable = False
    return view


def tensors_from(obj, archive, prefix: str, order: str,
                 budget: AllocationBudget) -> dict[str, np.ndarray]:
    """The unpickled object, checked to be {str: TensorRecord}, as {str: array}.
    A checkpoint {'state_dict': {...}, ...} is unwrapped."""
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise WeightFileError(f"holds a {type(obj).__name__}, not a state dict; save one "
                              f"with torch.save(model.state_dict(), path)")
    bad = [f"{key!r:.60} ({type(value).__name__})" for key, value in obj.items()
           if type(key) is not str or type(value) is not TensorRecord]
    if bad:
        raise WeightFileError(f"not a plain state dict; these entries are not tensors: "
                              f"{', '.join(bad[:5])}")
    storages = {}
    for key, record in obj.items():
        ref = record.storage
        if type(ref) is not StorageRef:
            raise WeightFileError(f"tensor {key!r}: its storage is a "
                                  f"{type(ref).__name__}, not a storage record")
        if ref.key not in storages:
            storages[ref.key] = _read_storage(archive, prefix, ref, order, budget)
    return {key: _view(record, storages[record.storage.key], key, budget)
            for key, record in obj.items()}


def archive_prefix(archive: zipfile.ZipFile) -> str:
    """The folder every entry lives in (the stem the file was saved under)."""
    names = archive.namelist()
    if not names or "/" not in names[0]:
        raise WeightFileError("a zip archive, but not one written by torch.save "
                              "(no <name>/data.pkl)")
    prefix = names[0].split("/", 1)[0]
    if f"{prefix}/data.pkl" not in names:
        raise WeightFileError(f"no {prefix}/data.pkl in the archive; is it a "
                              f"torch.save file?")
    return prefix


def _byte_order(archive, prefix: str, budget: AllocationBudget) -> str:
    if f"{prefix}/byteorder" not in archive.namelist():
        return "<"
    order = {b"little": "<", b"big": ">"}.get(
        bytes(read_member(archive, f"{prefix}/byteorder", budget, STORED_ONLY)).strip())
    if order is None:
        raise WeightFileError("unknown byte order record")
    return order


def read_torch_zip(path, budget: AllocationBudget) -> dict[str, np.ndarray]:
    """The state dict in a ``torch.save`` zip file, as {key: read-only array}."""
    with within(path, "corrupted torch.save data"), open_archive(path) as archive:
        prefix = archive_prefix(archive)
        order = _byte_order(archive, prefix, budget)
        data = bytes(read_member(archive, f"{prefix}/data.pkl", budget, STORED_ONLY))
        scan_pickle(data)
        obj = StateDictUnpickler(data, path).load()
        return tensors_from(obj, archive, prefix, order, budget)
