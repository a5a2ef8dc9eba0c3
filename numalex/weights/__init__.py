"""Weight files in and out, without PyTorch or Caffe.

    sd = numalex.load_weights("alexnet-owt-7be5be79.pth")   # {key: np.ndarray}
    numalex.save_weights(sd, "alexnet.safetensors")
    model = numalex.alexnet("bvlc", weights="bvlc_alexnet.caffemodel")

=============  ==========================  =========================  ======
format         what it is                  read by                    write
=============  ==========================  =========================  ======
.pth / .pt     torch.save zip archive      torch_zip.py (allow-listed no
                                           unpickler, no torch)
.caffemodel    protobuf NetParameter       caffemodel.py (hand-       no
                                           written wire-format reader)
.safetensors   JSON header + raw bytes     named_arrays.py            yes
               (``weights`` extra)
.npz           NumPy zip of .npy files     named_arrays.py            yes
=============  ==========================  =========================  ======

The format is recognised by the file's whole signature, not its name (a .pth
renamed .bin still loads): a zip archive starts ``PK\x03\x04`` (or
``PK\x05\x06`` when empty); a .safetensors file starts with an 8-byte
little-endian header length that fits in the file, then ``{``; a legacy
torch.save file is a protocol-2 pickle of torch's magic number. Only Caffe's
protobuf has no signature, so a file that is nothing else is read as one,
and fails with a clear message if it is not.

Weight files are untrusted input: reading one never runs code it contains,
never allocates much more than the file holds (limits.py), and a bad file
raises :class:`WeightFileError` (a ValueError) naming the file, the part of
it (member, tensor, blob) and the problem. Weights that are NaN or infinite
are refused too, unless ``allow_nonfinite=True``.
"""
from __future__ import annotations

import math
import os
import secrets

import numpy as np

from .caffemodel import read_caffemodel
from .errors import UnsafePickleError, WeightFileError, within
from .limits import AllocationBudget
from .mapping import fit_to_model
from .named_arrays import read_npz, read_safetensors, write_npz, write_safetensors
from .torch_zip import read_torch_zip
from .zip_members import open_archive

READERS = {"torch": read_torch_zip, "caffe": read_caffemodel, "npz": read_npz,
           "safetensors": read_safetensors}
WRITERS = {".npz": write_npz, ".safetensors": write_safetensors}
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
# torch.save before PyTorch 1.6: a bare pickle whose first object is this magic number.
LEGACY_TORCH_MAGIC = b"\x80\x02\x8a\nl\xfc\x9cF\xf9 j\xa8P\x19."


def _zip_format(path) -> str:
    """A zip archive is either torch.save's (<name>/data.pkl) or an .npz."""
    with within(path), open_archive(path) as archive:
        names = archive.namelist()
    if any(name.endswith("/data.pkl") for name in names):
        return "torch"
    if names and all(name.endswith(".npy") for name in names):
        return "npz"
    raise WeightFileError(f"{path}: a zip archive, but neither a torch.save file "
                          f"(<name>/data.pkl) nor an .npz (*.npy entries)")


def _is_safetensors(head: bytes, file_size: int) -> bool:
    """An 8-byte little-endian header length that fits in the file, then the
    '{' that opens the JSON header."""
    return (len(head) > 8 and head[8:9] == b"{"
            and int.from_bytes(head[:8], "little") <= file_size - 8)


def detect_format(path) -> str:
    """'torch', 'npz', 'safetensors' or 'caffe', from the file's signature."""
    with open(path, "rb") as file:
        head = file.read(len(LEGACY_TORCH_MAGIC))
    if not head:
        raise WeightFileError(f"{path}: the file is empty")
    if head.startswith(ZIP_MAGIC):
        return _zip_format(path)
    if _is_safetensors(head, os.path.getsize(path)):
        return "safetensors"
    if head.startswith(LEGACY_TORCH_MAGIC):
        raise WeightFileError(
            f"{path}: a legacy (pre-1.6) torch.save file, a bare pickle that numalex will "
            f"not unpickle. Re-save it once with PyTorch >= 1.6: "
            f"torch.save(torch.load(old, weights_only=True), new)")
    return "caffe"


def refuse_nonfinite(arrays: dict, path) -> None:
    """Raise WeightFileError if a float array holds NaN or Inf: every output
    such a weight touches would be NaN, silently."""
    bad = [key for key, array in arrays.items()
           if array.dtype.kind in "fc" and not np.isfinite(array).all()]
    if bad:
        raise WeightFileError(
            f"{path}: {len(bad)} array(s) hold NaN or Inf, e.g. "
            f"{', '.join(repr(key) for key in bad[:3])}; refusing non-finite weights. "
            f"Pass allow_nonfinite=True (numalex convert: --allow-nonfinite) to load "
            f"them anyway")


def load_weights(path, *, allow_nonfinite: bool = False, model_bytes: int = 0) -> dict:
    """{key: np.ndarray} from a .pth, .caffemodel, .safetensors or .npz file.

    Caffe blobs become ``<layer>.weight`` / ``<layer>.bias`` in the file's own
    shapes; :func:`load_weights_for` fits them onto a model. Arrays holding NaN
    or Inf are refused unless `allow_nonfinite`. `model_bytes` raises the
    allocation budget (limits.py) by the size of the model the file is for.
    """
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a folder; --weights takes one weight file "
                                f"(.pth, .caffemodel, .safetensors or .npz)")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"weight file not found: {path}")
    budget = AllocationBudget.for_file(path, model_bytes)
    arrays = READERS[detect_format(path)](path, budget)
    if not allow_nonfinite:
        refuse_nonfinite(arrays, path)
    return arrays


def save_weights(state_dict: dict, path) -> None:
    """Write {key: array} as .safetensors or .npz (chosen by the extension).

    The file is written under a temporary name beside `path` and renamed
    onto it only when complete, so a failure (a full disk, a bad array)
    leaves no partial file, and an existing `path` stays as it was.
    """
    ext = os.path.splitext(str(path))[1].lower()
    if ext not in WRITERS:
        raise ValueError(f"cannot write {path}: numalex writes "
                         f"{' and '.join(WRITERS)} (.pth and .caffemodel are read-only)")
    folder, name = os.path.split(os.path.abspath(path))
    partial = os.path.join(folder, f".{name}.{secrets.token_hex(4)}.partial{ext}")
    try:
        WRITERS[ext](dict(state_dict), partial)
        os.replace(partial, path)
    except BaseException:
        if os.path.exists(partial):
            os.unlink(partial)
        raise


def load_weights_for(model, path, *, allow_nonfinite: bool = False) -> dict:
    """The file's arrays fitted to `model`'s keys and shapes, ready for
    ``model.load_state_dict`` (which lists anything that still does not fit).
    The file may expand to the model's float32 size beyond the usual budget."""
    shapes = model.param_shapes()
    model_bytes = 4 * sum(math.prod(shape) for shape in shapes.values())
    return fit_to_model(load_weights(path, allow_nonfinite=allow_nonfinite,
                                     model_bytes=model_bytes), shapes)


__all__ = ["detect_format", "fit_to_model", "load_weights", "load_weights_for",
           "save_weights", "UnsafePickleError", "WeightFileError"]
