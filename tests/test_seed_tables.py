"""numalex's summary against the seed document's two tables, row for row.

The expected numbers are read out of the seed document itself (it sits in
../shared/seeds beside the checkout), so nothing here is typed in.
"""
import re
from pathlib import Path

import pytest

import numalex

SEEDS = Path(__file__).resolve().parents[2] / "shared" / "seeds"
ROW = re.compile(r"^(?P<layer>\w+-\d+)\s+\S*?\[(?P<shape>[-\d, ]+)\]\s+(?P<rest>.*)$")
WORKED = re.compile(r"\(([\d+\-*/]+)\)(?:/\d+)?\+1=(?P<value>[\d.]+)")


def seed_tables():
    """[(rows, printed_total)] for each 'Layer (type)' table in the seeds."""
    files = sorted(SEEDS.glob("*.txt")) if SEEDS.is_dir() else []
    tables = []
    for path in files:
        rows = None
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("Layer (type)"):
                rows = []
            elif rows is not None and line.startswith("Total params:"):
                tables.append((rows, int(line.split(":")[1].replace(",", ""))))
                rows = None
            elif rows is not None and (match := ROW.match(line.strip())):
                first = match["rest"].split()[0]
                params = int(first.split("=")[-1].replace(",", ""))
                worked = WORKED.search(match["rest"])
                rows.append({"layer": match["layer"],
                             "shape": tuple(int(d) for d in match["shape"].split(",")[1:]),
                             "params": params,
                             "value": float(worked["value"]) if worked else None})
    return tables


TABLES = seed_tables()
pytestmark = pytest.mark.skipif(len(TABLES) < 2, reason=f"seed tables not found in {SEEDS}")


def table_for(variant):
    return TABLES[{"torchvision": 0, "original": 1}[variant]]


@pytest.mark.parametrize("variant", ["torchvision", "original"])
def test_every_row_of_the_seed_table_is_computed(variant):
    seed_rows, _ = table_for(variant)
    rows = numalex.summary(numalex.alexnet(variant)).rows
    assert [r.layer for r in rows] == [s["layer"] for s in seed_rows]
    assert [tuple(r.output_shape) for r in rows] == [s["shape"] for s in seed_rows]
    assert [r.params for r in rows] == [s["params"] for s in seed_rows]


def test_the_seeds_worked_arithmetic_matches_the_formula():
    seed_rows, _ = table_for("torchvision")
    model = numalex.alexnet("torchvision")
    rows = {r.layer: r for r in numalex.summary(model).rows}
    checked = 0
    for seed in seed_rows:
        row = rows[seed["layer"]]
        if seed["value"] is None or row.type not in ("Conv2d", "MaxPool2d"):
            continue  # the seed's adaptive-pool row is a guess ("maybe k=3")
        spec = dict(model.layers)[row.name]
        assert spec.arithmetic(row.input_shape)[0].exact == pytest.approx(seed["value"])
        checked += 1
    assert checked == 8


def test_totals_match_the_seed_and_its_rows():
    tv_rows, tv_printed = table_for("torchvision")
    assert numalex.alexnet("torchvision").num_params() == tv_printed == sum(
        r["params"] for r in tv_rows)
    og_rows, og_printed = table_for("original")
    total = numalex.alexnet("original").num_params()
    assert total == sum(r["params"] for r in og_rows)
    assert og_printed != total     # the seed's typo, which the summary explains
    notes = " ".join(numalex.summary(numalex.alexnet("original")).notes)
    assert f"{og_printed:,}" in notes and f"{total:,}" in notes
