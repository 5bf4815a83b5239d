"""The repository's data/ folder is make_bank's output, written by the script, and valid."""

from __future__ import annotations

from pathlib import Path

import pytest

from crmkit.datasets import make_bank
from crmkit.datasets.write_sample import SAMPLE, main
from crmkit.io import check_inputs, read_tables
from crmkit.schema import check_required_tables, quality_gate, validate

DATA = Path(__file__).resolve().parents[2] / "data"


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sample")
    assert main([str(folder)]) == 0
    return folder


def test_data_folder_is_what_the_script_writes(fresh):
    assert DATA.is_dir(), "data/ is missing: run python -m crmkit.datasets.write_sample data/"
    written = sorted(p.name for p in fresh.iterdir())
    # the sector samples live in data/<sector>/ folders (tests/sectors/test_sample_data.py)
    assert sorted(p.name for p in DATA.iterdir() if p.is_file()) == written
    for name in written:
        assert (DATA / name).read_bytes() == (fresh / name).read_bytes(), (
            f"data/{name} differs from the generator's output: run "
            "python -m crmkit.datasets.write_sample data/")


def test_files_read_back_as_make_banks_tables():
    bank = make_bank(SAMPLE["n_customers"], seed=SAMPLE["seed"], as_of=SAMPLE["as_of"],
                     years=SAMPLE["years"])
    assert check_inputs(DATA) == []
    raw = read_tables(DATA)
    check_required_tables(raw)
    res = validate(raw, as_of=SAMPLE["as_of"])
    quality_gate(res, previous_counts={k: v.height for k, v in bank.items()})
    want = validate(bank, as_of=SAMPLE["as_of"]).tables
    assert set(res.tables) == set(want)
    for name, frame in want.items():
        assert res.tables[name].equals(frame), name


def test_readme_gives_every_tables_contract():
    text = (DATA / "README.md").read_text(encoding="utf-8")
    for table in ("customers", "products", "managers", "holdings", "balances", "transactions",
                  "assignments", "contacts", "complaints"):
        assert f"## {table}.csv" in text
    assert "| first_seen | date | required | no | ISO 8601 date: YYYY-MM-DD or YYYYMMDD |" in text
