"""Small weight files of every format, built byte by byte here (independently
of numalex's readers and writers): a torch.save-like zip with a hand-written
pickle, and a .caffemodel from a minimal protobuf encoder."""
import struct
import zipfile
import zlib
from collections import OrderedDict

import numpy as np


# ---- torch.save's zip layout, with hand-made pickles -------------------------------------------

def torch_like_zip(path, pickle_bytes, records=None, prefix="archive"):
    """A zip laid out like torch.save's: <prefix>/data.pkl and <prefix>/data/<key>."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(f"{prefix}/data.pkl", pickle_bytes)
        archive.writestr(f"{prefix}/byteorder", "little")
        for key, raw in (records or {}).items():
            archive.writestr(f"{prefix}/data/{key}", raw)
    return path


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


# ---- a minimal protobuf encoder (wire format: varint keys, length-delimited fields) ---------


def varint(n):
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field_varint(number, value):
    return varint(number << 3 | 0) + varint(value)


def field_bytes(number, payload):
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def field_float(number, value):
    return varint(number << 3 | 5) + np.float32(value).tobytes()


def blob(array, form="shape", packed=True, double=False):
    """BlobProto: form 'shape' (BlobShape, packed dims) or '4d' (num/channels/
    height/width, leading 1s as old Caffe wrote them)."""
    array = np.asarray(array)
    if form == "shape":
        header = field_bytes(7, field_bytes(1, b"".join(varint(d) for d in array.shape)))
    else:
        dims = (1,) * (4 - array.ndim) + array.shape
        header = b"".join(field_varint(n, d) for n, d in zip((1, 2, 3, 4), dims))
    if double:
        values = field_bytes(8, array.astype("<f8").tobytes())
    elif packed:
        values = field_bytes(5, array.astype("<f4").tobytes())
    else:
        values = b"".join(field_float(5, v) for v in array.ravel())
    return values + header            # fields may come in any order


V1_TYPES = {"Convolution": 4, "InnerProduct": 14, "ReLU": 18, "LRN": 15, "Pooling": 17,
            "Data": 5}


def layer_v2(name, kind, blobs=()):
    """LayerParameter: name = 1, type = 2 (a string), blobs = 7."""
    return field_bytes(100, field_bytes(1, name.encode()) + field_bytes(2, kind.encode())
                       + b"".join(field_bytes(7, b) for b in blobs))


def layer_v1(name, kind, blobs=()):
    """V1LayerParameter: name = 4, type = 5 (an enum), blobs = 6."""
    return field_bytes(2, field_bytes(4, name.encode()) + field_varint(5, V1_TYPES[kind])
                       + b"".join(field_bytes(6, b) for b in blobs))


def caffemodel(params, form, blob_form, extra_layers=True):
    """A NetParameter holding `params` ({'conv1.weight': array, ...})."""
    layer = layer_v1 if form == "v1" else layer_v2
    body = field_bytes(1, b"AlexNet")
    if extra_layers:
        body += layer("data", "Data")
    names = list(OrderedDict.fromkeys(key.split(".")[0] for key in params))
    for name in names:
        kind = "InnerProduct" if name.startswith("fc") else "Convolution"
        blobs = [blob(params[f"{name}.weight"], blob_form), blob(params[f"{name}.bias"],
                                                                  blob_form)]
        body += layer(name, kind, blobs)
        if extra_layers:
            body += layer(f"relu{name[-1]}", "ReLU")
    return body


def small_files(folder):
    """{format: path} of one small valid file per format numalex reads (the
    .npz and .safetensors written with NumPy and safetensors themselves;
    no .safetensors where the package is missing)."""
    state = {"conv1.weight": np.arange(6, dtype=np.float32).reshape(2, 3),
             "conv1.bias": np.zeros(2, np.float32)}
    raw = np.arange(4, dtype="<f4").tobytes()
    paths = {"pth": torch_like_zip(folder / "small.pth", tensor_pickle((2, 2), (1, 2)),
                                   {"0": raw}),
             "npz": folder / "small.npz", "safetensors": folder / "small.safetensors",
             "caffemodel": folder / "small.caffemodel"}
    np.savez(paths["npz"], **state)
    try:
        import safetensors.numpy
    except ModuleNotFoundError:
        del paths["safetensors"]
    else:
        safetensors.numpy.save_file(state, str(paths["safetensors"]))
    paths["caffemodel"].write_bytes(caffemodel(state, "v2", "shape", extra_layers=False))
    return paths


# ---- zip archives from members compressed beforehand (one bomb, many archives) ---------------

def deflated_zeros(nbytes, prefix=b"", chunk=1 << 20):
    """(size, crc32, raw deflate stream) of `prefix` then `nbytes` zero bytes: a
    member for raw_zip about 1/200 of its inflated size."""
    packer = zlib.compressobj(1, zlib.DEFLATED, -15)
    crc, parts, zeros = zlib.crc32(prefix), [packer.compress(prefix)], bytes(chunk)
    for _ in range(nbytes // chunk):
        crc = zlib.crc32(zeros, crc)
        parts.append(packer.compress(zeros))
    return len(prefix) + nbytes, crc, b"".join(parts) + packer.flush()


def raw_zip(path, members):
    """A zip archive of `members`: name -> bytes (stored) or
    (size, crc32, raw deflate stream) (deflated as given, not compressed again)."""
    body, central = bytearray(), bytearray()
    for name, member in members.items():
        size, crc, payload = ((len(member), zlib.crc32(member), member)
                              if isinstance(member, bytes) else member)
        method = 0 if isinstance(member, bytes) else zipfile.ZIP_DEFLATED
        name = name.encode()
        fields = struct.pack("<HHHHHIII", 20, 0, method, 0, 0x21, crc, len(payload), size)
        central += (b"PK\x01\x02" + struct.pack("<H", 20) + fields
                    + struct.pack("<HHHHHII", len(name), 0, 0, 0, 0, 0, len(body)) + name)
        body += b"PK\x03\x04" + fields + struct.pack("<HH", len(name), 0) + name + payload
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(members), len(members),
                      len(central), len(body), 0)
    path.write_bytes(bytes(body + central + end))
    return path
