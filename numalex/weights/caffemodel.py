"""Read the blobs of a Caffe ``.caffemodel`` without Caffe or protobuf.

A .caffemodel is one protobuf message, ``NetParameter``, in the protobuf
wire format. The wire format is simple enough to read by hand: a message is
a sequence of fields, each a varint key ``(field_number << 3) | wire_type``
followed by its value:

    wire type 0  varint            ints, enums, bools (7 bits a byte, low first)
    wire type 1  8 bytes           double
    wire type 2  varint length +   strings, nested messages, packed arrays
                 that many bytes
    wire type 5  4 bytes           float

Why not the ``protobuf`` package? It needs Caffe's ``caffe.proto`` compiled
into Python (a generated file of ~10,000 lines, tied to protobuf versions),
and it would parse every field of every layer, when all a forward pass needs
is each layer's name and its blobs. The ~100 lines below read exactly that,
and a learner can follow them.

The fields used (from caffe.proto)::

    NetParameter      layer = 100 (LayerParameter, today's "V2" form)
                      layers = 2  (V1LayerParameter, the form of the 2014
                                   bvlc_alexnet.caffemodel)
    LayerParameter    name = 1, blobs = 7
    V1LayerParameter  name = 4, blobs = 6, layer = 1 (a V0 layer inside: not read)
    BlobProto         shape = 7 (BlobShape: dim = 1, packed int64),
                      num/channels/height/width = 1..4 (the old 4-D shape),
                      data = 5 (packed float), double_data = 8 (packed double)

A group convolution needs nothing special: Caffe stores its weight as
(out, in/groups, kh, kw), which is numalex's layout.
"""
from __future__ import annotations

import math

import numpy as np

from .errors import WeightFileError, within
from .limits import MAX_ARRAYS, MAX_NDIM, AllocationBudget

VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5

# BlobProto's value fields: data = 5 (float), double_data = 8 (double),
# packed (LENGTH) or one value per field (FIXED32 / FIXED64).
F4, F8 = np.dtype("<f4"), np.dtype("<f8")
VALUE_FIELDS = {(5, LENGTH): F4, (5, FIXED32): F4, (8, LENGTH): F8, (8, FIXED64): F8}


def read_varint(buf: memoryview, pos: int) -> tuple[int, int]:
    """Decode one varint at `pos`: (value, position after it)."""
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise WeightFileError("truncated: a varint runs past the end of the data")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise WeightFileError("corrupted: a varint is longer than 10 bytes")


def fields(buf: memoryview):
    """Yield (field_number, wire_type, value) for every field of one message.

    value is an int for varints, a memoryview of the raw bytes otherwise.
    """
    pos = 0
    while pos < len(buf):
        key, pos = read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == VARINT:
            value, pos = read_varint(buf, pos)
        elif wire in (FIXED64, FIXED32, LENGTH):
            if wire == LENGTH:
                size, pos = read_varint(buf, pos)
            else:
                size = 8 if wire == FIXED64 else 4
            if pos + size > len(buf):
                raise WeightFileError(f"truncated: field {number} needs {size} bytes, "
                                      f"{len(buf) - pos} are left")
            value, pos = buf[pos:pos + size], pos + size
        else:
            raise WeightFileError(f"corrupted: field {number} has wire type {wire}, "
                                  f"which caffe.proto never uses")
        if number == 0:
            raise WeightFileError("corrupted: field number 0")
        yield number, wire, value


def read_blob(buf: memoryview, budget: AllocationBudget) -> np.ndarray:
    """A BlobProto -> float32 array in its stated shape.

    The values are gathered as raw bytes (a blob may hold a million unpacked
    one-value fields; one NumPy array each would cost 100x their bytes), and
    the float32 result is charged to `budget` before it is made.
    """
    raw, dtypes, shape, legacy = bytearray(), set(), None, {}
    for number, wire, value in fields(buf):
        if (number, wire) in VALUE_FIELDS:     # packed, or a single unpacked value
            dtype = VALUE_FIELDS[number, wire]
            if len(value) % dtype.itemsize:
                raise WeightFileError(f"packed data of {len(value)} bytes is not "
                                      f"a whole number of {dtype.itemsize}-byte values")
            dtypes.add(dtype)
            raw += value
        elif number == 7 and wire == LENGTH:
            shape = _blob_shape(value)
        elif number in (1, 2, 3, 4) and wire == VARINT:
            legacy[number] = value
    if len(dtypes) > 1:
        raise WeightFileError("mixes float data and double_data")
    if shape is None:          # the old form: num, channels, height, width
        shape = tuple(legacy.get(n, 0) for n in (1, 2, 3, 4)) if legacy else (0,)
    dtype = dtypes.pop() if dtypes else F4
    count = len(raw) // dtype.itemsize
    if count == 0:
        raise WeightFileError("is empty; a layer's weights never are")
    if count != math.prod(shape):
        raise WeightFileError(f"shape {shape} needs {math.prod(shape)} values, "
                              f"the blob holds {count}")
    budget.claim(count * 4, "the blob")
    return np.frombuffer(raw, dtype=dtype).astype(np.float32).reshape(shape)


def _blob_shape(buf: memoryview) -> tuple:
    """BlobShape: repeated int64 dim = 1, packed (or one varint per dim)."""
    dims = []
    for number, wire, value in fields(buf):
        if number != 1:
            continue
        if wire == VARINT:
            dims.append(value)
        elif wire == LENGTH:
            packed, pos = value, 0
            while pos < len(packed) and len(dims) <= MAX_NDIM:
                dim, pos = read_varint(packed, pos)
                dims.append(dim)
        if len(dims) > MAX_NDIM:
            raise WeightFileError(f"a shape of more than {MAX_NDIM} dimensions")
    if any(d >= 2 ** 62 for d in dims):
        raise WeightFileError(f"negative or absurd dimension in shape {dims}")
    return tuple(dims)


MAX_BLOBS = 16      # per layer: convolutions have 2, BatchNorm 3

# (NetParameter field, name field, blobs field) for the two layer forms.
LAYER_FORMS = {100: ("layer", 1, 7), 2: ("layers (V1)", 4, 6)}


def read_caffemodel_blobs(data: bytes, budget: AllocationBudget | None = None
                          ) -> dict[str, list[np.ndarray]]:
    """{layer name: [blob, ...]} for every layer that has blobs, in file order
    (charged to `budget`; by default, the usual one for a file of len(data))."""
    budget = budget or AllocationBudget.for_size(len(data))
    net = memoryview(data)
    layers, seen = {}, 0
    for number, wire, value in fields(net):
        if number not in LAYER_FORMS or wire != LENGTH:
            continue
        seen += 1
        if seen > MAX_ARRAYS:
            raise WeightFileError(f"more than {MAX_ARRAYS:,} layers")
        form, name_field, blobs_field = LAYER_FORMS[number]
        name, blobs = None, []
        for field, field_wire, field_value in fields(value):
            if field == name_field and field_wire == LENGTH:
                name = bytes(field_value).decode("utf-8", errors="replace")
            elif field == blobs_field and field_wire == LENGTH:
                blobs.append(field_value)
                if len(blobs) > MAX_BLOBS:
                    raise WeightFileError(f"a {form} entry with more than {MAX_BLOBS} blobs")
            elif number == 2 and field == 1 and field_wire == LENGTH:
                raise WeightFileError("a V0 (pre-2014) Caffe model; upgrade it with Caffe's "
                                      "tools/upgrade_net_proto_binary first")
        if not blobs:
            continue
        if name is None:
            raise WeightFileError(f"a {form} entry with blobs has no name")
        if name in layers:
            raise WeightFileError(f"layer {name!r} appears twice")
        layers[name] = []
        for i, blob in enumerate(blobs):
            with within(f"layer {name!r} blob {i}", "is corrupted"):
                layers[name].append(read_blob(blob, budget))
    return layers


def read_caffemodel(path, budget: AllocationBudget) -> dict[str, np.ndarray]:
    """A .caffemodel as a state dict: blob 0 of layer L is ``L.weight``,
    blob 1 ``L.bias`` (further blobs, e.g. BatchNorm's, ``L.blob2`` ...).
    Shapes are the file's: old files store a bias as (1, 1, 1, out) and fc
    weights as (1, 1, out, in); :func:`numalex.weights.fit_to_model`
    reshapes those onto a model."""
    what = ("" if str(path).endswith(".caffemodel") else
            "not a torch.save zip, .npz or .safetensors file, and ")
    with within(path, f"{what}not a readable Caffe model"):
        with open(path, "rb") as file:
            data = file.read()
        with within(f"{what}not a readable Caffe model"):
            layers = read_caffemodel_blobs(data, budget)
    if not layers:
        raise WeightFileError(f"{path}: no layer with weights found; is it a .caffemodel "
                              f"(a prototxt holds no weights)?")
    names = ("weight", "bias")
    return {f"{layer}.{names[i] if i < 2 else f'blob{i}'}": blob
            for layer, blobs in layers.items() for i, blob in enumerate(blobs)}
