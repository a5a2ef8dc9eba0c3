"""Result files that survive being killed: JSON Lines or CSV, one line per
image, written and flushed batch by batch.

    with ResultFile("labels.jsonl", top=5, resume=True) as out:
        todo = [p for p in paths if p not in out.done]
        for row in classify_files(todo, ...):
            out.write(row)

A run killed mid-way leaves every finished line intact and at most one
incomplete last line. Resuming drops that line, reads which images are
already there (rows with an error included: each image appears exactly
once) and appends the rest.

JSON is always strict: json.dumps(..., allow_nan=False), so a NaN can never
reach the file as the non-standard token `NaN` (the classifier turns a
non-finite output into an error row first).
"""
from __future__ import annotations

import csv
import json
import os

FORMATS = (".jsonl", ".csv")


def strict_json(value, **kwargs) -> str:
    """json.dumps that refuses NaN and infinity instead of writing `NaN`."""
    return json.dumps(value, allow_nan=False, **kwargs)


def csv_header(top: int) -> list[str]:
    """image, error, then label/index/probability for ranks 1..top."""
    return ["image", "error"] + [f"{field}_{rank}" for rank in range(1, top + 1)
                                 for field in ("label", "index", "probability")]


def csv_cells(row: dict, top: int) -> list:
    """A result row as the cells of one CSV line (blanks where a rank is missing)."""
    ranks = [[entry["label"], entry["index"], entry["probability"]]
             for entry in row.get("top", [])]
    ranks += [["", "", ""]] * (top - len(ranks))
    return [row["image"], row.get("error", "")] + [cell for rank in ranks for cell in rank]


def drop_incomplete_last_line(path) -> int:
    """Cut a last line that has no newline (a killed write); return the bytes kept."""
    with open(path, "rb+") as file:
        size = end = file.seek(0, os.SEEK_END)
        while end > 0:
            start = max(0, end - 65536)
            file.seek(start)
            cut = file.read(end - start).rfind(b"\n")
            if cut >= 0:
                end = start + cut + 1
                break
            end = start
        if end < size:
            file.truncate(end)
    return end


class ResultFile:
    """An output file, new or resumed. `done` is the set of images it already
    holds, `failed` how many of those are error rows. write() appends one
    line per row; flush() after each batch hands the lines to the operating
    system, so killing the process loses none of them."""

    def __init__(self, path, top: int, resume: bool = False):
        self.path, self.top = os.fspath(path), top
        self.format = os.path.splitext(self.path)[1].lower()
        if self.format not in FORMATS:
            raise ValueError(f"{self.path}: results are written as {' or '.join(FORMATS)}; "
                             f"choose a file name ending in one of them")
        self.done, self.failed = set(), 0
        exists = os.path.exists(self.path) and os.path.getsize(self.path) > 0
        if exists and not resume:
            raise ValueError(f"{self.path} already exists: pass --resume to continue it, "
                             f"or remove it to start over")
        if exists:
            drop_incomplete_last_line(self.path)
            self._read_existing()
        self.file = None                 # opened by the first write: a run that fails
        self.needs_header = not exists   # before its first row leaves no file behind

    def _read_existing(self) -> None:
        with open(self.path, encoding="utf-8", newline="") as file:
            if self.format == ".csv":
                lines = csv.reader(file)
                header = next(lines, None)
                if header != csv_header(self.top):
                    raise ValueError(f"{self.path}: its columns are not those of --top "
                                     f"{self.top}; resume with the options it was started with")
                rows = ((line[0], line[1]) for line in lines)
            else:
                rows = (self._parse_line(number, line)
                        for number, line in enumerate(file, start=1) if line.strip())
            for image, error in rows:
                self.done.add(image)
                self.failed += bool(error)

    def _parse_line(self, number: int, line: str) -> tuple[str, str]:
        try:
            row = json.loads(line)
            return row["image"], row.get("error", "")
        except (ValueError, KeyError, TypeError):
            raise ValueError(f"{self.path}, line {number}: not a result row; the file is "
                             f"damaged or not numalex's output") from None

    def write(self, row: dict) -> None:
        if self.file is None:
            self.file = open(self.path, "a", encoding="utf-8", newline="")
            self.csv = csv.writer(self.file, lineterminator="\n")
            if self.needs_header and self.format == ".csv":
                self.csv.writerow(csv_header(self.top))
        if self.format == ".csv":
            self.csv.writerow(csv_cells(row, self.top))
        else:
            self.file.write(strict_json(row) + "\n")

    def flush(self) -> None:
        if self.file is not None:
            self.file.flush()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
