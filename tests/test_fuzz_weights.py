"""Fuzzing the weight readers: hypothesis mutates small valid files of every
format and generates new ones, and a child process under address-space and
file-size limits loads each (tests/load_in_child.py: one child per batch, so
`import numalex` is paid once per batch, not per file).

What must hold for every input:
- it loads, or it is refused with a WeightFileError: nothing else escapes,
  the child never crashes or hangs;
- a refusal is one line that names the file, and leaves no output behind;
- no mutant of a seed holding a live payload (builtins.exec) runs it;
- the load's own peak (tracemalloc) stays within MEMORY_MULTIPLE x the
  file's size + MEMORY_SLACK, and so does the child's peak RSS above its
  baseline, against the largest file so far;
- a generated file (written by NumPy, safetensors, torch or this suite's
  protobuf encoder, never by numalex) loads back bit for bit, or is refused
  for holding NaN/Inf.

CI runs a few batches. For a release check, set NUMALEX_FUZZ_EXAMPLES (batches
per test, e.g. 200) and NUMALEX_FUZZ_REPORT=FILE (one JSON line per batch:
inputs per format, outcomes, the largest peak per KiB of input).
"""
import io
import json
import os
import re
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

pytest.importorskip("resource", reason="the child's limits need POSIX")
from load_in_child import digest, load_all, memory_rises  # noqa: E402
from weight_files import caffemodel, small_files, torch_like_zip  # noqa: E402

EXAMPLES = int(os.environ.get("NUMALEX_FUZZ_EXAMPLES", "3"))
REPORT = os.environ.get("NUMALEX_FUZZ_REPORT")
BATCH = 150                     # files per child process
MEMORY_MULTIPLE = 8
MEMORY_SLACK = 16 << 20
# No shrinking: a batch is one child process, and a finding names its input anyway.
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=not REPORT,
                phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
EXTENSIONS = {"npz compressed": "npz", "legacy pth": "pth", "pth payload": "pth"}

INTERESTING_INTS = [0, 1, 0x7F, 0x80, 0xFF, 0xFFFF, 2**31 - 1, 2**32 - 1, 2**40,
                    2**63 - 1, 2**64 - 1]
INTERESTING_NUMBERS = [b"0", b"-1", b"4294967296", b"1099511627776",
                       b"99999999999999999999999", b"1e309"]


# ---- seed files: one small valid file per format -----------------------------------------------

def torch_files(folder, state):
    """.pth files written by torch itself (zip and legacy), or None without torch."""
    try:
        import torch
    except ImportError:
        return None
    tensors = {key: torch.from_numpy(np.array(value)) for key, value in state.items()}
    tensors["transposed"] = torch.arange(6.0).reshape(2, 3).t()       # a strided view
    tensors["shared"] = tensors["transposed"][1]                       # one storage, two views
    torch.save(tensors, folder / "seed.pth")
    torch.save(tensors, folder / "seed-legacy.pth", _use_new_zipfile_serialization=False)
    return {"pth": folder / "seed.pth", "legacy pth": folder / "seed-legacy.pth"}


@pytest.fixture(scope="module")
def seed_folder(tmp_path_factory):
    return tmp_path_factory.mktemp("seeds")


@pytest.fixture(scope="module")
def payload_marker(seed_folder):
    """The file that the 'pth payload' seed creates if any of its mutants runs."""
    return seed_folder / "payload-ran"


@pytest.fixture(scope="module")
def seeds(seed_folder, payload_marker):
    """{format: bytes} of the seed files; 'pth payload' is a state dict with a
    live payload (builtins.exec creating `payload_marker`) in one of its values."""
    folder = seed_folder
    paths = small_files(folder)
    code = f"open({str(payload_marker)!r}, 'w').close()"
    paths["pth payload"] = torch_like_zip(
        folder / "seed-payload.pth", b"ccollections\nOrderedDict\n)R(Vw\ncbuiltins\nexec\n(V"
        + code.encode() + b"\ntRu.")
    state = {"conv1.weight": np.linspace(-1, 1, 24, dtype=np.float32).reshape(2, 3, 2, 2),
             "conv1.bias": np.array([0.5, -0.25], np.float32)}
    np.savez_compressed(folder / "seed-compressed.npz", **state)
    paths["npz compressed"] = folder / "seed-compressed.npz"
    paths.update(torch_files(folder, state) or {})
    return {fmt: path.read_bytes() for fmt, path in paths.items()}


# ---- mutations ---------------------------------------------------------------------------------

def mutate(data: bytes, mutation, donor: bytes) -> bytes:
    """One mutation; positions are taken modulo the data's length."""
    kind, *args = mutation
    n = max(len(data), 1)
    if kind == "flip":
        at, xor = args[0] % n, args[1]
        return data[:at] + bytes([data[at] ^ xor]) + data[at + 1:] if data else data
    if kind == "truncate":
        return data[:args[0] % n]
    if kind == "splice":                 # copy a run of the donor over this data
        at, start, length = args[0] % n, args[1] % max(len(donor), 1), args[2]
        run = donor[start:start + length]
        return data[:at] + run + data[at + len(run):]
    if kind == "integer":                # an interesting integer over 1-8 bytes
        at, width, value = args[0] % n, args[1], args[2]
        return data[:at] + (value % 256 ** width).to_bytes(width, "little") + data[at + width:]
    if kind == "number":                 # a decimal number in a text header replaced
        numbers = list(re.finditer(rb"\d+", data[:4096]))
        if not numbers:
            return data
        found = numbers[args[0] % len(numbers)]
        return data[:found.start()] + args[1] + data[found.end():]
    raise ValueError(kind)


def mutate_member(data: bytes, member: int, mutations, donor: bytes) -> bytes:
    """Mutate one member of a zip archive and write the archive again (valid
    CRCs and sizes), so the fuzzing reaches the readers behind the zip layer."""
    source = zipfile.ZipFile(io.BytesIO(data))
    infos = source.infolist()
    chosen = infos[member % len(infos)]
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for info in infos:
            content = source.read(info)
            if info is chosen:
                for mutation in mutations:
                    content = mutate(content, mutation, donor)
            archive.writestr(info, content)
    return out.getvalue()


POSITION = st.integers(0, 1 << 16)
MUTATIONS = st.lists(st.one_of(
    st.tuples(st.just("flip"), POSITION, st.integers(1, 255)),
    st.tuples(st.just("truncate"), POSITION),
    st.tuples(st.just("splice"), POSITION, POSITION, st.integers(1, 64)),
    st.tuples(st.just("integer"), POSITION, st.sampled_from([1, 2, 4, 8]),
              st.sampled_from(INTERESTING_INTS)),
    st.tuples(st.just("number"), st.integers(0, 64), st.sampled_from(INTERESTING_NUMBERS)),
), min_size=1, max_size=3)
MUTANT = st.tuples(st.integers(0, 63), st.booleans(), st.integers(0, 15), MUTATIONS,
                   st.integers(0, 63))          # seed, inside a member?, member, what, donor


def build_mutant(seeds: dict, spec) -> tuple[str, bytes]:
    seed, inner, member, mutations, donor = spec
    formats = sorted(seeds)
    fmt = formats[seed % len(formats)]
    data, donor_data = seeds[fmt], seeds[formats[donor % len(formats)]]
    if inner and data.startswith(b"PK"):
        return fmt, mutate_member(data, member, mutations, donor_data)
    for mutation in mutations:
        data = mutate(data, mutation, donor_data)
    return fmt, data


# ---- running a batch and checking it -----------------------------------------------------------

def problems_in(results, sizes, origins) -> list:
    """What broke the rules in the module docstring, one line per finding."""
    found = []
    for result in results:
        name = os.path.basename(result["source"])
        if result["outcome"] not in ("loaded", "refused"):
            found.append(f"{name} {origins[result['source']]}: {result['outcome']} "
                         f"{result['error']}: {result['message'][:300]}")
        elif result["outcome"] == "refused":
            if "\n" in result["message"] or name not in result["message"]:
                found.append(f"{name}: the message is not one line naming the file: "
                             f"{result['message'][:300]!r}")
            if result["leftovers"]:
                found.append(f"{name}: refused, but left {result['leftovers']}")
        if (result["traced_peak"] or 0) > MEMORY_MULTIPLE * sizes[result["source"]] + MEMORY_SLACK:
            found.append(f"{name}: allocated {result['traced_peak']:,} bytes at its peak "
                         f"for a file of {sizes[result['source']]:,}")
    largest = 0
    for result, kib in memory_rises(results):
        largest = max(largest, sizes[result["source"]])
        if kib * 1024 > MEMORY_MULTIPLE * largest + MEMORY_SLACK:
            found.append(f"{os.path.basename(result['source'])}: peak {kib} KiB above the "
                         f"baseline for files of at most {largest} bytes")
    return found


def run_batch(files: dict) -> list:
    """Load {path: (format, origin)} in one child; return the results, after the
    checks (and, with NUMALEX_FUZZ_REPORT set, a line of figures in that file).
    A finding quotes the input's origin, e.g. the mutant's spec, to rebuild it."""
    sizes = {str(path): os.path.getsize(path) for path in files}
    folder = os.path.dirname(next(iter(sizes)))
    results = load_all(list(sizes), os.path.join(folder, "out"),
                       warm_up=small_files_for_warm_up(folder))
    if REPORT:
        write_report(results, {str(path): fmt for path, (fmt, _) in files.items()}, sizes)
    problems = problems_in(results, sizes, {str(path): origin for path, (_, origin)
                                            in files.items()})
    assert not problems, "\n".join(problems[:20])
    return results


def small_files_for_warm_up(folder):
    warm = Path(folder) / "warm"
    warm.mkdir(exist_ok=True)
    return list(small_files(warm).values())


def write_report(results, formats, sizes):
    """One JSON line of figures: inputs per format, outcomes, and the largest
    load peaks (tracemalloc; and RSS above the baseline), in KiB and, for
    inputs of at least 1 KiB, in KiB per KiB of input."""
    figures = {"inputs": {}, "outcomes": {}, "largest_traced_kib": 0,
               "largest_traced_input_bytes": 0, "largest_traced_kib_per_input_kib": 0.0,
               "largest_rss_rise_kib": max((kib for _, kib in memory_rises(results)),
                                           default=0)}
    for result in results:
        fmt, size = formats[result["source"]], sizes[result["source"]]
        figures["inputs"][fmt] = figures["inputs"].get(fmt, 0) + 1
        figures["outcomes"][result["outcome"]] = figures["outcomes"].get(result["outcome"], 0) + 1
        traced = (result["traced_peak"] or 0) / 1024
        if traced > figures["largest_traced_kib"]:
            figures["largest_traced_kib"], figures["largest_traced_input_bytes"] = traced, size
        if size >= 1024:
            figures["largest_traced_kib_per_input_kib"] = max(
                figures["largest_traced_kib_per_input_kib"], traced / (size / 1024))
    with open(REPORT, "a") as report:
        report.write(json.dumps(figures) + "\n")


@FUZZ
@given(batch=st.lists(MUTANT, min_size=BATCH, max_size=BATCH))
def test_mutated_files_load_or_are_refused_cleanly(seeds, payload_marker, batch):
    with tempfile.TemporaryDirectory() as folder:
        files = {}
        for i, spec in enumerate(batch):
            fmt, data = build_mutant(seeds, spec)
            path = os.path.join(folder, f"mutant{i}.{EXTENSIONS.get(fmt, fmt)}")
            with open(path, "wb") as file:
                file.write(data)
            files[path] = (fmt, spec)
        run_batch(files)
    assert not payload_marker.exists(), "a mutant of the payload seed ran its code"


# ---- generated files: written by other libraries, read back bit for bit ------------------------

DTYPES = ["<f4", "<f8", "<f2", "<i8", "<i4", "<i2", "|i1", "|u1", "|b1"]
KEYS = st.text("abcdefghij.0123456789_", min_size=1, max_size=12)
FLOATS = st.floats(allow_nan=True, allow_infinity=True)     # cast to the dtype below


@st.composite
def arrays(draw, dtypes=DTYPES):
    dtype = np.dtype(draw(st.sampled_from(dtypes)))
    shape = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    count = int(np.prod(shape))
    if dtype.kind == "f":
        values = draw(st.lists(FLOATS, min_size=count, max_size=count))
    else:
        values = draw(st.lists(st.integers(0, 100), min_size=count, max_size=count))
    with np.errstate(over="ignore"):        # 1e300 as float16 is inf: refused, as it should
        return np.array(values, dtype=np.float64 if dtype.kind == "f" else np.int64).astype(
            dtype).reshape(shape)


# Ten of these per batch (50 files): more would overrun hypothesis's data per example.
STATE = st.dictionaries(KEYS, arrays(), min_size=1, max_size=3)
CAFFE_STATE = st.lists(st.tuples(arrays(["<f4"]), arrays(["<f4"])), min_size=1, max_size=2)


def write_generated(folder, i, fmt, state) -> str:
    path = os.path.join(folder, f"generated{i}.{EXTENSIONS.get(fmt, fmt)}")
    if fmt == "npz":
        np.savez(path, **state)
    elif fmt == "npz compressed":
        np.savez_compressed(path, **state)
    elif fmt == "safetensors":
        import safetensors.numpy
        safetensors.numpy.save_file(state, path)
    elif fmt == "pth":
        import torch
        torch.save({k: torch.from_numpy(v.copy()) for k, v in state.items()}, path)
    else:
        with open(path, "wb") as file:
            file.write(caffemodel(state, "v2", "shape", extra_layers=False))
    return path


def generated_formats():
    formats = ["npz", "npz compressed", "caffemodel"]
    for module, fmt in (("safetensors", "safetensors"), ("torch", "pth")):
        try:
            __import__(module)
        except ImportError:
            continue
        formats.append(fmt)
    return formats


@FUZZ
@given(states=st.lists(st.tuples(STATE, CAFFE_STATE), min_size=10, max_size=10))
def test_generated_files_load_back_exactly(states):
    formats = generated_formats()
    with tempfile.TemporaryDirectory() as folder:
        files, expected = {}, {}
        for i, (state, layers) in enumerate(states):
            caffe_state = {f"l{j}.{part}": array for j, pair in enumerate(layers)
                           for part, array in zip(("weight", "bias"), pair)}
            for fmt in formats:
                written = caffe_state if fmt == "caffemodel" else state
                path = write_generated(folder, f"{i}-{formats.index(fmt)}", fmt, written)
                files[path] = (fmt, "generated")
                expected[path] = written
        for result in run_batch(files):
            state = expected[result["source"]]
            finite = all(np.isfinite(a).all() for a in state.values() if a.dtype.kind == "f")
            if not finite:
                assert "NaN or Inf" in result["message"], result
                continue
            assert result["outcome"] == "loaded", result
            assert result["arrays"] == {k: digest(v) for k, v in state.items()}, result
