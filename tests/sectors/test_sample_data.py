"""The repository's data/<sector>/ folders are exactly what make_sector writes."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from crmkit.datasets import SECTORS, make_sector
from crmkit.datasets.write_sectors import SECTOR_SAMPLE
from crmkit.schema import validate

BUILT = SECTORS
DATA = Path(__file__).resolve().parents[2] / "data"


@pytest.mark.parametrize("sector", BUILT)
def test_data_folder_equals_the_generator(sector):
    folder = DATA / sector
    tables = make_sector(sector, **SECTOR_SAMPLE)
    on_disk = sorted(p.stem for p in folder.glob("*.parquet"))
    assert on_disk == sorted(tables), "run: python -m crmkit.datasets.write_sectors data/"
    for name, frame in tables.items():
        assert_frame_equal(pl.read_parquet(folder / f"{name}.parquet"), frame)


@pytest.mark.parametrize("sector", BUILT)
def test_sample_is_valid_and_deterministic(sector):
    tables = make_sector(sector, 120, seed=3)
    checked = validate(tables, as_of="2025-12-31", mode="quarantine")
    assert checked.problems == []
    again = make_sector(sector, 120, seed=3)
    for name in tables:
        assert_frame_equal(tables[name], again[name])
    other = make_sector(sector, 120, seed=4)
    assert not other["customers"].equals(tables["customers"])
