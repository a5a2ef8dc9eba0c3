"""The two formats that already are a flat {name: array} map: ``.npz`` and
``.safetensors``. Neither can hold code: NumPy is told ``allow_pickle=False``
(object arrays would be pickles), and safetensors is a JSON header plus raw
bytes by design.

``.safetensors`` needs the ``safetensors`` package (``pip install
numalex[weights]``); ``.npz`` needs only NumPy.
"""
from __future__ import annotations

import zipfile

import numpy as np

from .errors import WeightFileError


def _safetensors_numpy():
    try:
        from safetensors import numpy as st_numpy
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            "reading or writing .safetensors needs the safetensors package: "
            "pip install numalex[weights]  (or: pip install safetensors)") from None
    return st_numpy


def read_npz(path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except ValueError as err:       # e.g. allow_pickle=False refusing an object array
        raise WeightFileError(f"{path}: an .npz entry is corrupted or not a plain "
                              f"numeric array ({err})") from None
    except (zipfile.BadZipFile, EOFError, OSError) as err:
        raise WeightFileError(f"{path}: truncated or corrupted .npz ({err})") from None


def write_npz(state_dict: dict, path) -> None:
    with open(path, "wb") as file:      # np.savez would append .npz to other names
        np.savez(file, **state_dict)


def read_safetensors(path) -> dict[str, np.ndarray]:
    st_numpy = _safetensors_numpy()
    try:
        return st_numpy.load_file(str(path))
    except Exception as err:            # SafetensorError and friends: the file is bad
        raise WeightFileError(f"{path}: truncated or corrupted .safetensors "
                              f"({type(err).__name__}: {err})") from None


def write_safetensors(state_dict: dict, path) -> None:
    arrays = {key: np.ascontiguousarray(value) for key, value in state_dict.items()}
    _safetensors_numpy().save_file(arrays, str(path))
