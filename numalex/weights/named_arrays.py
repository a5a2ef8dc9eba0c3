"""The two formats that already are a flat {name: array} map: ``.npz`` and
``.safetensors``. Neither can hold code: an .npz member is read only if its
header declares a plain numeric dtype (object arrays would be pickles), and
safetensors is a JSON header plus raw bytes by design.

An .npz is read member by member here rather than by ``np.load``, because
``np.load`` believes each header: a 200-byte member that claims a 4 TiB
shape makes it allocate 4 TiB. Each member is inflated within the load's
AllocationBudget (zip_members.py), its header is parsed with NumPy's
bounded header reader, and the array is a view of the member's bytes only
if the header's shape and dtype account for exactly those bytes.

``.safetensors`` needs the ``safetensors`` package (``pip install
numalex[weights]``); ``.npz`` needs only NumPy.
"""
from __future__ import annotations

import io
import math

import numpy as np

from .errors import WeightFileError, within
from .limits import AllocationBudget, check_shape
from .zip_members import open_archive, read_member

NUMERIC_KINDS = "biufc"         # bool, int, uint, float, complex
NPY_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0,
                      (2, 0): np.lib.format.read_array_header_2_0}
MAX_NPY_HEADER = 10_000         # NumPy's own default bound


def _safetensors_numpy():
    try:
        from safetensors import numpy as st_numpy
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            "reading or writing .safetensors needs the safetensors package: "
            "pip install numalex[weights]  (or: pip install safetensors)") from None
    return st_numpy


def read_npy(raw: memoryview) -> np.ndarray:
    """One .npy file's bytes -> a read-only array viewing them."""
    head = io.BytesIO(bytes(raw[:12 + MAX_NPY_HEADER]))
    version = np.lib.format.read_magic(head)
    if version not in NPY_HEADER_READERS:
        raise WeightFileError(f".npy format version {version} (numalex reads 1.0 and 2.0)")
    shape, fortran_order, dtype = NPY_HEADER_READERS[version](
        head, max_header_size=MAX_NPY_HEADER)
    check_shape(shape, "header")
    if dtype.kind not in NUMERIC_KINDS or dtype.fields is not None or dtype.subdtype:
        raise WeightFileError(f"dtype {dtype} is not a plain numeric type")
    count, start = math.prod(shape), head.tell()
    if count * dtype.itemsize != len(raw) - start:
        raise WeightFileError(f"header claims shape {shape} of {dtype} "
                              f"({count * dtype.itemsize:,} bytes), but the member holds "
                              f"{len(raw) - start:,} bytes of data")
    flat = np.frombuffer(raw, dtype=dtype, count=count, offset=start)
    return flat.reshape(shape, order="F" if fortran_order else "C")


def read_npz(path, budget: AllocationBudget) -> dict[str, np.ndarray]:
    with within(path, "corrupted .npz"), open_archive(path) as archive:
        arrays = {}
        for name in archive.namelist():
            if not name.endswith(".npy"):
                raise WeightFileError(f"member {name!r} is not an .npy array")
            if name[:-4] in arrays:
                raise WeightFileError(f"member {name!r} appears twice")
            raw = read_member(archive, name, budget)
            with within(f"member {name!r}", "is not a readable .npy array"):
                arrays[name[:-4]] = read_npy(raw)
        return arrays


def write_npz(state_dict: dict, path) -> None:
    with open(path, "wb") as file:      # np.savez would append .npz to other names
        np.savez(file, **state_dict)


def read_safetensors(path, budget: AllocationBudget) -> dict[str, np.ndarray]:
    st_numpy = _safetensors_numpy()
    with within(path, "truncated or corrupted .safetensors"):
        try:
            arrays = st_numpy.load_file(str(path))
        except BaseException as err:    # a Rust panic is a BaseException
            if isinstance(err, (Exception, KeyboardInterrupt, SystemExit)):
                raise
            raise WeightFileError(f"the safetensors reader failed "
                                  f"({type(err).__name__}: {err})") from None
        for key, array in arrays.items():   # the library checked them against the file
            budget.claim(array.nbytes, f"tensor {key!r}")
        return arrays


def write_safetensors(state_dict: dict, path) -> None:
    arrays = {key: np.ascontiguousarray(value) for key, value in state_dict.items()}
    _safetensors_numpy().save_file(arrays, str(path))
