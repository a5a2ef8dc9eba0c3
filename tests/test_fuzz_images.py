"""Fuzzing numalex.images.load_image with hostile files.

Small valid images of every format and pixel mode numalex opens (PNG, JPEG,
TIFF, GIF, BMP, WebP, PGM; grey, RGB, RGBA, palette, CMYK, LA, bilevel,
16-bit, 32-bit, float) are mutated by hypothesis (bytes flipped, set to
edge values, size fields overwritten, cut, spliced), and crafted headers
declare huge, empty and absurdly thin images. Every file is loaded in a
child process under an address-space limit, many files to a child so that
it stays cheap. Allowed outcomes: a preprocessed image or one ImageError;
no other exception, no crash. The peak memory of each load (the child's
resident high-water mark, reset before every file) must stay within

    PEAK_BASE + PEAK_PER_PIXEL * min(MAX_PIXELS, MAX_PIXELS_PER_BYTE * file bytes)

that is, within what the file may declare, never what a header claims.
NUMALEX_FUZZ_EXAMPLES=<batches> runs longer (release checks); each batch
is BATCH files. `pytest -s` prints inputs tried, outcomes and the worst
peak memory per KiB of input.
"""
import io
import json
import os
import resource
import struct
import subprocess
import sys
import tempfile
import zlib
from collections import Counter

import numpy as np
import pytest

from numalex import images

if not sys.platform.startswith("linux"):
    pytest.skip("the child's memory is read from /proc (Linux)", allow_module_level=True)
Image = pytest.importorskip("PIL.Image", reason="reading images needs Pillow: "
                                                "pip install 'numalex[image]'")
pytest.importorskip("hypothesis", reason="pip install 'numalex[test]'")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402
from test_image_files import png_bytes  # noqa: E402

BATCH = 40                                         # files per child process
EXAMPLES = int(os.environ.get("NUMALEX_FUZZ_EXAMPLES", "6"))
ADDRESS_SPACE = 2 * 2**30                          # the child's RLIMIT_AS
PEAK_BASE, PEAK_PER_PIXEL = 48 * 2**20, 20         # bytes; loads measure ~8-14 a pixel
SOURCE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(images.__file__)))
STATS = {"tried": Counter(), "outcomes": Counter(), "worst": (0.0, "")}

# The child: load every file named on stdin, one JSON line per file. Writing
# 5 to /proc/self/clear_refs resets the resident high-water mark (Linux).
CHILD = r"""
import json, sys
from numalex import images

def status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key))

for path in sys.stdin.read().split("\n"):
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = status("VmRSS:")
    try:
        images.load_image(path)
        outcome = "ok"
    except images.ImageError as err:
        outcome = "ImageError" if "\n" not in str(err) else "ImageError on several lines"
    except BaseException as err:
        outcome = f"{type(err).__name__}: {err}"
    print(json.dumps([path, outcome, status("VmHWM:") - before]), flush=True)
"""


def limit_address_space():
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def load_in_child(files: dict) -> dict:
    """{name: bytes} -> {name: (outcome, peak bytes)}; a file the child died on
    gets the outcome 'crash (exit code)'."""
    with tempfile.TemporaryDirectory() as folder:
        paths = {}
        for name, data in files.items():
            paths[name] = os.path.join(folder, name)
            with open(paths[name], "wb") as f:
                f.write(data)
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(
            [SOURCE_ROOT, os.environ.get("PYTHONPATH", "")]))
        done = subprocess.run([sys.executable, "-c", CHILD], input="\n".join(paths.values()),
                              capture_output=True, text=True, timeout=300, env=env,
                              preexec_fn=limit_address_space)
    by_path = {path: name for name, path in paths.items()}
    results = {}
    for line in done.stdout.splitlines():
        path, outcome, peak = json.loads(line)
        results[by_path[path]] = (outcome, peak)
    for name in files:
        if name not in results:                    # the first one missing killed the child
            results[name] = (f"crash (exit code {done.returncode}): {done.stderr[-300:]}", 0)
            break
    return results


def check_outcomes(files: dict, results: dict, allowed=("ok", "ImageError")) -> None:
    for name, data in files.items():
        outcome, peak = results.get(name, ("not reached after a crash", 0))
        kind = name.split("-")[0]
        STATS["tried"][kind] += 1
        STATS["outcomes"][outcome if outcome in allowed else "FAIL"] += 1
        per_kib = peak / 2**20 / max(len(data) / 1024, 1)     # files under 1 KiB: per KiB
        if per_kib > STATS["worst"][0]:
            STATS["worst"] = (per_kib, f"{name} ({len(data)} bytes, peak {peak / 2**20:.1f} MiB)")
        assert outcome in allowed, f"{name}: {outcome}; input {data[:300]!r}"
        declarable = min(images.MAX_PIXELS, images.MAX_PIXELS_PER_BYTE * len(data))
        assert peak <= PEAK_BASE + PEAK_PER_PIXEL * declarable, (name, peak, len(data))


# ---- the seeds ---------------------------------------------------------------
def encoded(image, fmt, **options):
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def seed_files() -> dict:
    """{kind: bytes}: small valid files, one per format and pixel mode."""
    rng = np.random.default_rng(7)
    rgb = Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))
    grey16 = Image.fromarray(rng.integers(0, 65536, (24, 32), dtype=np.uint16))
    exif = Image.Exif()
    exif[0x0112] = 6
    rows16 = rng.integers(0, 65536, (24, 32, 3), dtype=np.uint16).astype(">u2")
    return {
        "png_rgb": encoded(rgb, "PNG"), "png_rgba": encoded(rgb.convert("RGBA"), "PNG"),
        "png_palette": encoded(rgb.convert("P"), "PNG"),
        "png_la": encoded(rgb.convert("LA"), "PNG"),
        "png_bilevel": encoded(rgb.convert("1"), "PNG"), "png_i16": encoded(grey16, "PNG"),
        "png_rgb16": png_bytes(32, 24, 16, 2, b"".join(b"\0" + r.tobytes() for r in rows16)),
        "jpeg_rgb": encoded(rgb, "JPEG", exif=exif), "jpeg_grey": encoded(rgb.convert("L"), "JPEG"),
        "jpeg_cmyk": encoded(rgb.convert("CMYK"), "JPEG"),
        "jpeg_progressive": encoded(rgb, "JPEG", progressive=True),
        "tiff_rgb": encoded(rgb, "TIFF", compression="tiff_deflate"),
        "tiff_i16": encoded(grey16, "TIFF"), "tiff_cmyk": encoded(rgb.convert("CMYK"), "TIFF"),
        "tiff_float": encoded(Image.fromarray(rng.random((24, 32), dtype=np.float32), "F"),
                              "TIFF", compression="packbits"),
        "tiff_int32": encoded(Image.fromarray(rng.integers(-9, 9, (24, 32), dtype=np.int32)),
                              "TIFF"),
        "gif": encoded(rgb.convert("P"), "GIF"), "bmp_rgb": encoded(rgb, "BMP"),
        "bmp_palette": encoded(rgb.convert("P"), "BMP"), "webp": encoded(rgb, "WEBP"),
        "pgm16": b"P5 32 24 65535\n" + grey16.tobytes("raw", "I;16B"),
    }


SEEDS = seed_files()


def crafted_headers() -> dict:
    """{kind-name: bytes}: headers that declare what no small file can hold."""
    huge, thin = (60000, 60000), (1, 4000)
    bmp = (b"BM" + struct.pack("<IHHI", 0, 0, 0, 54) + struct.pack("<IiiHHI", 40, *huge, 1, 24, 0)
           + bytes(20))
    gif = b"GIF89a" + struct.pack("<HH", *huge) + b"\0\0\0" + b",\0\0\0\0" + struct.pack(
        "<HH", *huge) + b"\0\x02\x02\x4c\x01\0;"
    tiff = (b"II*\0\x08\0\0\0" + struct.pack("<H", 4)
            + struct.pack("<HHII", 256, 4, 1, huge[0]) + struct.pack("<HHII", 257, 4, 1, huge[1])
            + struct.pack("<HHII", 258, 3, 1, 16) + struct.pack("<HHII", 273, 4, 1, 8) + bytes(4))
    return {
        "crafted-png-huge": png_bytes(*huge, 8, 2),
        "crafted-png-i16-huge": png_bytes(*huge, 16, 0),
        "crafted-png-palette-huge": png_bytes(*huge, 8, 3),
        "crafted-png-thin": png_bytes(*thin, 8, 0, b"\0\0" * 4000),
        "crafted-png-empty": png_bytes(0, 0, 8, 2),
        "crafted-png-small-file-big-image": png_bytes(3000, 3000, 8, 6),
        "crafted-bmp-huge": bmp,
        "crafted-gif-huge": gif,
        "crafted-tiff-huge": tiff,
        "crafted-pgm-huge": b"P5 60000 60000 65535\n" + bytes(64),
        "crafted-pgm-thin": b"P5 1 4000 255\n" + bytes(4000),
    }


def test_crafted_headers_are_refused_within_the_memory_bound():
    files = crafted_headers()
    check_outcomes(files, load_in_child(files), allowed=("ImageError",))


def test_the_seeds_themselves_load():
    files = {f"{kind}-seed": data for kind, data in SEEDS.items()}
    check_outcomes(files, load_in_child(files), allowed=("ok",))


# ---- mutation ------------------------------------------------------------------
EDGE_BYTES = [0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF]
EDGE_WORDS = [0, 1, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]


@st.composite
def mutant(draw):
    """(kind, bytes): a seed with 1-6 mutations, half of them in its first
    64 bytes, where the headers and their size fields are."""
    kind = draw(st.sampled_from(sorted(SEEDS)))
    data = bytearray(SEEDS[kind])
    for _ in range(draw(st.integers(1, 6))):
        end = len(data) if draw(st.booleans()) else min(len(data), 64)
        at = draw(st.integers(0, max(0, end - 1)))
        how = draw(st.sampled_from(["flip", "edge", "word", "cut", "splice", "delete"]))
        if how == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif how == "edge" and data:
            data[at] = draw(st.sampled_from(EDGE_BYTES))
        elif how == "word":
            fmt = draw(st.sampled_from([">H", "<H", ">I", "<I"]))
            word = draw(st.sampled_from(EDGE_WORDS)) & (0xFFFF if "H" in fmt else 0xFFFFFFFF)
            data[at:at + struct.calcsize(fmt)] = struct.pack(fmt, word)
        elif how == "cut":
            del data[at:]
        elif how == "splice":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        else:
            del data[at:at + draw(st.integers(1, 32))]
    return kind, with_png_checksums(bytes(data)) if kind.startswith("png") else bytes(data)


def with_png_checksums(data: bytes) -> bytes:
    """A mutated PNG with each chunk's CRC made right again, so that the
    mutations reach Pillow's decoder instead of its checksum test."""
    out, at = bytearray(data), 8
    while at + 12 <= len(out):
        length = struct.unpack(">I", out[at:at + 4])[0]
        if at + 12 + length > len(out):
            break
        body = bytes(out[at + 4:at + 8 + length])
        out[at + 8 + length:at + 12 + length] = struct.pack(">I", zlib.crc32(body))
        at += 12 + length
    return bytes(out)


@settings(max_examples=EXAMPLES, deadline=None, derandomize="NUMALEX_FUZZ_EXAMPLES" not in
          os.environ, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(mutant(), min_size=BATCH, max_size=BATCH))
def test_mutated_images_give_a_result_or_one_image_error(batch):
    files = {f"{kind}-{i}": data for i, (kind, data) in enumerate(batch)}
    check_outcomes(files, load_in_child(files))


@pytest.fixture(scope="module", autouse=True)
def summary():
    yield
    worst_per_kib, worst_file = STATS["worst"]
    print(f"\nimage fuzzing: {sum(STATS['tried'].values())} inputs "
          f"({', '.join(f'{k} {n}' for k, n in sorted(STATS['tried'].items()))}); "
          f"outcomes {dict(STATS['outcomes'])}; worst peak memory "
          f"{worst_per_kib:.1f} MiB per KiB of input: {worst_file}")
