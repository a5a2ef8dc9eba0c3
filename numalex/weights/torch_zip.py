"""Read a ``torch.save`` file (PyTorch >= 1.6, the zip format) without PyTorch.

A state dict saved by ``torch.save(model.state_dict(), "alexnet.pth")`` is a
zip archive (stored, not compressed)::

    alexnet/data.pkl        the dict itself, pickled; every tensor in it is a
                            call _rebuild_tensor_v2(storage, offset, size, stride, ...)
    alexnet/data/0, 1, ...  the raw bytes of each storage (one per tensor, or
                            shared by several views of one buffer)
    alexnet/byteorder       "little" or "big" (older files omit it: little)

The folder name is the file's stem when it was saved, so it is read from the
first entry rather than assumed.

A pickle is a small program: unpickling one can call any function the file
names. So ``data.pkl`` goes through :class:`StateDictUnpickler`, whose
``find_class`` knows exactly the handful of globals a state dict needs and
refuses every other name *before* Python imports or looks anything up. The
"calls" the pickle may make are then ours: ``OrderedDict`` builds a dict, our
``rebuild_tensor`` cuts a strided view out of a storage after checking that
the view stays inside it, and storage types are plain markers mapped to NumPy
dtypes.
"""
from __future__ import annotations

import io
import math
import pickle
import zipfile
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .errors import UnsafePickleError, WeightFileError

# torch.<name>Storage -> the dtype of its elements. bfloat16 has no NumPy
# dtype: it is the top half of a float32, so it is widened on reading.
STORAGE_DTYPES = {
    "FloatStorage": "f4", "DoubleStorage": "f8", "HalfStorage": "f2",
    "BFloat16Storage": "bfloat16", "LongStorage": "i8", "IntStorage": "i4",
    "ShortStorage": "i2", "CharStorage": "i1", "ByteStorage": "u1", "BoolStorage": "?",
}


@dataclass(frozen=True)
class StorageType:
    """What the pickle gets for ``torch.FloatStorage`` & co: a name, not a class."""

    name: str


@dataclass(frozen=True)
class Storage:
    """One ``data/<key>`` record as a flat NumPy array (read-only)."""

    key: str
    array: np.ndarray


def _widen_bfloat16(raw: bytes, order: str) -> np.ndarray:
    """bfloat16 bits are the high 16 bits of a float32: shift them into place."""
    halves = np.frombuffer(raw, dtype=f"{order}u2")
    return (halves.astype(np.uint32) << 16).view(np.float32)


def rebuild_tensor(storage, storage_offset, size, stride, requires_grad=False,
                   backward_hooks=None, metadata=None):
    """Our stand-in for ``torch._utils._rebuild_tensor_v2``: the tensor as a
    read-only strided view of its storage, after checking every index the
    view can touch lies inside the storage (``as_strided`` itself checks
    nothing, so a lying file could otherwise read arbitrary memory)."""
    if not isinstance(storage, Storage):
        raise WeightFileError(f"a tensor's storage is a {type(storage).__name__}, "
                              f"not a storage record")
    if (not isinstance(size, tuple) or not isinstance(stride, tuple)
            or len(size) != len(stride)
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                       for v in (storage_offset, *size, *stride))):
        raise WeightFileError(f"tensor in storage {storage.key!r} has an invalid layout: "
                              f"offset {storage_offset!r}, size {size!r}, stride {stride!r}")
    flat = storage.array
    if math.prod(size) == 0:
        return np.zeros(size, dtype=flat.dtype)
    last = storage_offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= flat.size:
        raise WeightFileError(
            f"tensor of size {size}, stride {stride} at offset {storage_offset} reads "
            f"element {last} of storage {storage.key!r}, which holds only {flat.size}")
    return as_strided(flat[storage_offset:], shape=size,
                      strides=[s * flat.itemsize for s in stride], writeable=False)


class StateDictUnpickler(pickle.Unpickler):
    """An unpickler that can only build dicts of tensors.

    ``find_class`` is the one door through which a pickle reaches Python
    objects (GLOBAL, STACK_GLOBAL, INST, OBJ and the EXT codes all go through
    it); it opens for the names below and nothing else.
    """

    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str, order: str,
                 path):
        super().__init__(io.BytesIO(data))
        self.archive, self.prefix, self.order, self.path = archive, prefix, order, path
        self.storages: dict[str, Storage] = {}

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return rebuild_tensor
        if module == "torch" and name in STORAGE_DTYPES:
            return StorageType(name)
        raise UnsafePickleError(self.path, f"{module}.{name}")

    def persistent_load(self, pid):
        """pid = ('storage', StorageType, key, location, numel): the bytes of
        ``<prefix>/data/<key>`` viewed as `numel` elements (one read per key)."""
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], StorageType) and isinstance(pid[2], str)
                and isinstance(pid[4], int) and pid[4] >= 0):
            raise WeightFileError(f"unexpected persistent id {repr(pid)[:120]}")
        _, storage_type, key, _location, numel = pid
        if key not in self.storages:
            self.storages[key] = self._read_storage(key, STORAGE_DTYPES[storage_type.name],
                                                    numel)
        return self.storages[key]

    def _read_storage(self, key: str, dtype: str, numel: int) -> Storage:
        name = f"{self.prefix}/data/{key}"
        itemsize = 2 if dtype == "bfloat16" else np.dtype(dtype).itemsize
        try:
            info = self.archive.getinfo(name)
        except KeyError:
            raise WeightFileError(f"the archive has no record {name!r}") from None
        if info.file_size != numel * itemsize:
            raise WeightFileError(f"record {name!r} holds {info.file_size} bytes, but its "
                                  f"{numel} elements need {numel * itemsize}")
        raw = self.archive.read(name)
        if dtype == "bfloat16":
            return Storage(key, _widen_bfloat16(raw, self.order))
        return Storage(key, np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder(self.order)))


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


def read_torch_zip(path) -> dict[str, np.ndarray]:
    """The state dict in a ``torch.save`` zip file, as {key: read-only array}."""
    try:
        with zipfile.ZipFile(path) as archive:
            prefix = archive_prefix(archive)
            names = set(archive.namelist())
            order = "<"
            if f"{prefix}/byteorder" in names:
                order = {b"little": "<", b"big": ">"}.get(
                    archive.read(f"{prefix}/byteorder").strip(), None)
                if order is None:
                    raise WeightFileError("unknown byte order record")
            unpickler = StateDictUnpickler(archive.read(f"{prefix}/data.pkl"), archive,
                                           prefix, order, path)
            result = unpickler.load()
    except UnsafePickleError:
        raise
    except WeightFileError as err:
        raise WeightFileError(f"{path}: {err}") from None
    except zipfile.BadZipFile as err:
        raise WeightFileError(f"{path}: truncated or corrupted zip archive ({err})") from None
    except Exception as err:            # the file is untrusted: any failure is its fault
        raise WeightFileError(f"{path}: corrupted torch.save data "
                              f"({type(err).__name__}: {err})") from None
    return state_dict_from(result, path)


def state_dict_from(obj, path) -> dict[str, np.ndarray]:
    """Check the unpickled object is {str: array}; unwrap {'state_dict': {...}}."""
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise WeightFileError(f"{path}: holds a {type(obj).__name__}, not a state dict; "
                              f"save one with torch.save(model.state_dict(), path)")
    bad = [f"{key!r} ({type(value).__name__})" for key, value in obj.items()
           if not isinstance(key, str) or not isinstance(value, np.ndarray)]
    if bad:
        raise WeightFileError(f"{path}: not a plain state dict; these entries are not "
                              f"tensors: {', '.join(bad[:5])}")
    return dict(obj)
