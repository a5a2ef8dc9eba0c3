"""numalex's summary against the seed document's two tables, row for row.

The tables come from a blog post ("Alexnet input 224？227", 2023-10-25); the
project carries them as data in tests/data/seed_tables.json (each row's
layer, output shape, parameters and worked output size, with the post's
title, date and address), so these tests always run. Where the seed documents
sit beside the checkout (../shared/seeds), the data is checked against them.
"""
import json
import re
from pathlib import Path

import pytest

import numalex

FIXTURE = Path(__file__).with_name("data") / "seed_tables.json"
SEEDS = Path(__file__).resolve().parents[2] / "shared" / "seeds"
ROW = re.compile(r"^(?P<layer>\w+-\d+)\s+\S*?\[(?P<shape>[-\d, ]+)\]\s+(?P<rest>.*)$")
WORKED = re.compile(r"\(([\d+\-*/]+)\)(?:/\d+)?\+1=(?P<value>[\d.]+)")


def seed_tables():
    """[(rows, printed_total)] for each 'Layer (type)' table in the seed documents."""
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


def fixture_tables():
    """The same [(rows, printed_total)], read from the data the project carries."""
    data = json.loads(FIXTURE.read_text(encoding="utf-8"))
    return [([{"layer": layer, "shape": tuple(shape), "params": params, "value": value}
              for layer, shape, params, value in table["rows"]], table["printed_total"])
            for table in data["tables"]]


TABLES = fixture_tables()


def test_the_data_is_what_the_seed_documents_print():
    found = seed_tables()
    if not found:
        pytest.skip(f"the seed documents are not beside this checkout ({SEEDS})")
    assert found == TABLES


def test_the_data_names_its_source():
    source = json.loads(FIXTURE.read_text(encoding="utf-8"))["source"]
    assert source["date"] == "2023-10-25" and "224" in source["title"]
    assert source["url"].startswith("https://")
    assert [t["variant"] for t in json.loads(FIXTURE.read_text())["tables"]] == [
        "torchvision", "original"]


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
