"""Open zip archives (.pth and .npz) without trusting what their headers say.

``zipfile`` believes a member's declared size and reads a member whole, so
a 1 KB member that inflates to 1 GiB is inflated to 1 GiB. Here every
member is checked before a byte of it is inflated:

- it is stored or deflated (no bzip2/lzma/other methods, no encryption),
  or only stored where the format never compresses (torch.save);
- its declared uncompressed size fits the load's AllocationBudget (and a
  stored member's declared size is its size in the file);

then it is read in chunks of at most CHUNK bytes, and reading stops with an
error if the data runs past the declared size. Every failure, including
zipfile's own (bad CRC, unsupported version, truncation), becomes one
WeightFileError naming the member (errors.reading adds the file).
"""
from __future__ import annotations

import zipfile
import zlib
from contextlib import contextmanager

from .errors import WeightFileError
from .limits import AllocationBudget

CHUNK = 1 << 20
METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}
STORED_ONLY = {zipfile.ZIP_STORED: "stored"}
ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError,
              NotImplementedError, RuntimeError, ValueError, UnicodeDecodeError)


@contextmanager
def open_archive(path):
    """zipfile.ZipFile(path), with the archive's own errors as WeightFileError."""
    try:
        archive = zipfile.ZipFile(path)
    except ZIP_ERRORS as err:
        raise WeightFileError(f"truncated or corrupted zip archive "
                              f"({type(err).__name__}: {err})") from None
    with archive:
        yield archive


def check_member(info: zipfile.ZipInfo, methods: dict) -> None:
    """Refuse a member numalex would not read safely, before reading it."""
    where = f"member {info.filename!r}"
    if info.flag_bits & 0x1:
        raise WeightFileError(f"{where} is encrypted; weight files never are")
    if info.compress_type not in methods:
        raise WeightFileError(f"{where} uses zip compression method {info.compress_type}; "
                              f"this format has only {' or '.join(methods.values())} "
                              f"members")
    if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
        raise WeightFileError(f"{where} is stored uncompressed but declares "
                              f"{info.file_size:,} bytes for {info.compress_size:,}")


def read_member(archive: zipfile.ZipFile, name: str, budget: AllocationBudget,
                methods: dict = METHODS) -> memoryview:
    """The bytes of member `name` (read-only), charged to `budget` by its declared
    size before anything is inflated."""
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise WeightFileError(f"the archive has no member {name!r}") from None
    check_member(info, methods)
    budget.claim(info.file_size, f"member {name!r}")
    data, filled = bytearray(info.file_size), 0      # allocated once, as declared
    try:
        with archive.open(info) as member:
            while chunk := member.read(CHUNK):
                if filled + len(chunk) > info.file_size:
                    raise WeightFileError(f"member {name!r} holds more than the "
                                          f"{info.file_size:,} bytes it declares")
                data[filled:filled + len(chunk)] = chunk
                filled += len(chunk)
    except ZIP_ERRORS as err:
        raise WeightFileError(f"member {name!r} is corrupted "
                              f"({type(err).__name__}: {err})") from None
    if filled != info.file_size:
        raise WeightFileError(f"member {name!r} holds {filled:,} bytes, "
                              f"not the {info.file_size:,} it declares")
    return memoryview(data).toreadonly()
