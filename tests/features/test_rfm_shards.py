"""rfm_summary splits large inputs into customer shards; the result must not change."""

import datetime as dt

import numpy as np
import polars as pl
import pytest

import crmkit.features._rfm as rfm_module
from crmkit.features import rfm_summary


@pytest.mark.parametrize("unit", ["days", "weeks", "calendar_months"])
def test_sharded_summary_equals_unsharded(monkeypatch, unit):
    rng = np.random.default_rng(3)
    n = 5_000
    tx = pl.DataFrame({
        "customer_id": pl.Series(rng.integers(0, 400, n)).cast(pl.String).str.zfill(5),
        "timestamp": pl.Series(rng.integers(19_000, 19_700, n)).cast(pl.Int32).cast(pl.Date)
        .cast(pl.Datetime("us")),
        "amount": np.round(rng.lognormal(3, 1, n), 2),
    })
    whole = rfm_summary(tx, observation_end=dt.date(2023, 12, 31), unit=unit).sort("customer_id")
    monkeypatch.setattr(rfm_module, "_SHARD_ROWS", 700)  # 8 shards
    sharded = rfm_summary(tx, observation_end=dt.date(2023, 12, 31), unit=unit).sort("customer_id")
    assert sharded.height == whole.height > 300
    assert sharded.equals(whole)
    lazy = rfm_summary(tx.lazy(), observation_end=dt.date(2023, 12, 31), unit=unit)
    assert lazy.sort("customer_id").equals(whole)
