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

The format is recognised by the file's first bytes, not its name (a .pth
renamed .bin still loads); only Caffe's protobuf has no signature, so a file
that is nothing else is read as one, and fails with a clear message if it
is not. Weight files are untrusted input: reading one never runs code it
contains, and a bad file raises :class:`WeightFileError` (a ValueError)
naming the file and the problem.
"""
from __future__ import annotations

import os
import zipfile

from .caffemodel import read_caffemodel
from .errors import UnsafePickleError, WeightFileError
from .mapping import fit_to_model
from .named_arrays import read_npz, read_safetensors, write_npz, write_safetensors
from .torch_zip import read_torch_zip

READERS = {"torch": read_torch_zip, "caffe": read_caffemodel, "npz": read_npz,
           "safetensors": read_safetensors}
WRITERS = {".npz": write_npz, ".safetensors": write_safetensors}


def _zip_format(path) -> str:
    """A zip archive is either torch.save's (<name>/data.pkl) or an .npz."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except zipfile.BadZipFile as err:
        raise WeightFileError(f"{path}: starts like a zip archive but is truncated or "
                              f"corrupted ({err})") from None
    if any(name.endswith("/data.pkl") for name in names):
        return "torch"
    if names and all(name.endswith(".npy") for name in names):
        return "npz"
    raise WeightFileError(f"{path}: a zip archive, but neither a torch.save file "
                          f"(<name>/data.pkl) nor an .npz (*.npy entries)")


def _is_safetensors(head: bytes) -> bool:
    """An 8-byte little-endian header length (sane: under 100 MB), then '{'
    opening the JSON header. (Text at the start of a protobuf would read as
    an enormous length.)"""
    return head[8:9] == b"{" and int.from_bytes(head[:8], "little") < 100_000_000


def detect_format(path) -> str:
    """'torch', 'npz', 'safetensors' or 'caffe', from the file's first bytes."""
    with open(path, "rb") as file:
        head = file.read(16)
    if not head:
        raise WeightFileError(f"{path}: the file is empty")
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return _zip_format(path)
    if head[0] == 0x80:                 # a bare pickle: torch.save before PyTorch 1.6
        raise WeightFileError(
            f"{path}: a legacy (pre-1.6) torch.save file, a bare pickle that numalex will "
            f"not unpickle. Re-save it once with PyTorch >= 1.6: "
            f"torch.save(torch.load(old, weights_only=True), new)")
    if _is_safetensors(head):
        return "safetensors"
    return "caffe"


def load_weights(path) -> dict:
    """{key: np.ndarray} from a .pth, .caffemodel, .safetensors or .npz file.

    Caffe blobs become ``<layer>.weight`` / ``<layer>.bias`` in the file's own
    shapes; :func:`load_weights_for` fits them onto a model.
    """
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a folder; --weights takes one weight file "
                                f"(.pth, .caffemodel, .safetensors or .npz)")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"weight file not found: {path}")
    return READERS[detect_format(path)](path)


def save_weights(state_dict: dict, path) -> None:
    """Write {key: array} as .safetensors or .npz (chosen by the extension)."""
    ext = os.path.splitext(str(path))[1].lower()
    if ext not in WRITERS:
        raise ValueError(f"cannot write {path}: numalex writes "
                         f"{' and '.join(WRITERS)} (.pth and .caffemodel are read-only)")
    WRITERS[ext](dict(state_dict), path)


def load_weights_for(model, path) -> dict:
    """The file's arrays fitted to `model`'s keys and shapes, ready for
    ``model.load_state_dict`` (which lists anything that still does not fit)."""
    return fit_to_model(load_weights(path), model.param_shapes())


__all__ = ["detect_format", "fit_to_model", "load_weights", "load_weights_for",
           "save_weights", "UnsafePickleError", "WeightFileError"]
