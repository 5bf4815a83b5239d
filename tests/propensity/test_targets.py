"""Targets without leakage: features see nothing after as_of, labels only the window after it."""

import datetime as dt

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmkit.datasets import make_bank
from crmkit.propensity import (
    build_training_set,
    horizon_end,
    landmark_dates,
    propensity_features,
    split_training_set,
)
from crmkit.schema import tables_as_of

BANK = make_bank(300, seed=11)


def _scramble_future(tables, day, rng):
    """Change every row dated after ``day``: drop some, move amounts, add closings."""
    out = dict(tables)
    tx = tables["transactions"]
    fut = tx["timestamp"].cast(pl.Date) > day
    keep = ~fut | pl.Series(rng.random(tx.height) < 0.5)
    out["transactions"] = tx.filter(keep).with_columns(
        pl.when(pl.col("timestamp").cast(pl.Date) > day).then(pl.col("amount") * 7)
        .otherwise(pl.col("amount")).alias("amount"))
    h = tables["holdings"]
    # close every open account the day after as_of, and open extra products after it
    h2 = h.with_columns(pl.when(pl.col("closed").is_null() & (pl.col("opened") <= day))
                        .then(pl.lit(day + dt.timedelta(days=1))).otherwise(pl.col("closed"))
                        .alias("closed"))
    extra = h.head(20).with_columns(
        (pl.col("account_id") + "_x"), pl.lit(day + dt.timedelta(days=2)).alias("opened"),
        pl.lit(None, pl.Date).alias("closed"), pl.lit("P06").alias("product_id"))
    out["holdings"] = pl.concat([h2, extra])
    b = tables["balances"]
    out["balances"] = b.with_columns(pl.when(pl.col("date") > day).then(pl.col("balance") * 3)
                                     .otherwise(pl.col("balance")).alias("balance"))
    c = tables["contacts"]
    out["contacts"] = pl.concat([c, c.head(30).with_columns(
        pl.lit(day + dt.timedelta(days=3)).alias("date"), pl.lit("declined").alias("outcome"))])
    return out


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(offset=st.integers(min_value=60, max_value=700), seed=st.integers(0, 2**16))
def test_no_feature_uses_rows_after_as_of(offset, seed):
    day = dt.date(2025, 12, 31) - dt.timedelta(days=offset)
    rng = np.random.default_rng(seed)
    full = propensity_features(BANK, as_of=day)
    replay = propensity_features(tables_as_of(BANK, day), as_of=day)
    scrambled = propensity_features(_scramble_future(BANK, day, rng), as_of=day)
    assert full.equals(replay)
    assert full.equals(scrambled)


def test_labels_match_a_row_by_row_count():
    day, h = dt.date(2025, 3, 31), 90
    ts = build_training_set(BANK, as_of=day, horizon=h, unit="days")
    end = horizon_end(day, h, "days")
    hold = BANK["holdings"]
    for row in ts.select("customer_id", "label__P02", "label__P05").iter_rows(named=True):
        mine = hold.filter(pl.col("customer_id") == row["customer_id"])
        for p in ("P02", "P05"):
            rows = mine.filter(pl.col("product_id") == p)
            held = rows.filter((pl.col("opened") <= day)
                               & (pl.col("closed").is_null() | (pl.col("closed") > day))).height
            opened = rows.filter((pl.col("opened") > day) & (pl.col("opened") <= end)).height
            expect = None if held else int(opened > 0)
            assert row[f"label__{p}"] == expect, (row, p)


def test_stacked_landmarks_and_groups():
    dates = landmark_dates("2025-12-31", horizon=90, unit="days", landmarks=3, spacing_months=3)
    ts = build_training_set(BANK, as_of=dates, horizon=90, unit="days", targets=["P05"])
    assert sorted(ts["as_of"].unique().to_list()) == dates
    X, Y, g = split_training_set(ts)
    assert "customer_id" not in X.columns and "tier" not in X.columns
    assert Y.columns == ["P05"] and g.len() == ts.height
    # a customer appears once per landmark at most
    assert ts.group_by("customer_id", "as_of").len()["len"].max() == 1


def test_category_level_and_sample_are_deterministic():
    a = build_training_set(BANK, as_of="2025-06-30", horizon=3, unit="calendar_months",
                           level="category", sample=0.5)
    b = build_training_set(BANK, as_of="2025-06-30", horizon=3, unit="calendar_months",
                           level="category", sample=0.5)
    assert a.equals(b)
    assert 0.3 * BANK["customers"].height < a.height < 0.7 * BANK["customers"].height
    assert "label__fund" in a.columns


@pytest.mark.parametrize("share", [0.05, 0.3, 0.9])
def test_a_sample_has_the_rows_of_the_whole_set(share):
    # the sample is drawn from the tables before any feature is built (the refit's cost
    # is the sample's); each sampled row must equal the same customer's row built from
    # every customer, features and labels alike
    dates = ["2024-12-31", "2025-06-30"]
    kwargs = dict(as_of=dates, horizon=90, unit="days", targets=["P03", "P05", "P06"])
    whole = build_training_set(BANK, **kwargs)
    sample = build_training_set(BANK, sample=share, **kwargs)
    assert 0 < sample.height < whole.height
    expected = whole.join(sample.select("customer_id", "as_of"), on=["customer_id", "as_of"],
                          how="semi")
    assert sample.equals(expected)


def test_restricting_tables_keeps_the_customers_balances_and_catalogue():
    from crmkit.features._shard import restrict_to_customers

    keep = BANK["customers"].head(7).select("customer_id")
    few = restrict_to_customers(BANK, keep)
    assert set(few["customers"]["customer_id"]) == set(keep["customer_id"])
    assert set(few["transactions"]["customer_id"]) <= set(keep["customer_id"])
    accounts = BANK["holdings"].join(keep, on="customer_id", how="semi")["account_id"]
    assert few["balances"].height == BANK["balances"].filter(
        pl.col("account_id").is_in(accounts.implode())).height > 0
    assert few["products"].equals(BANK["products"])


def test_window_after_the_data_is_refused():
    with pytest.raises(ValueError, match="after the last dated row"):
        build_training_set(BANK, as_of="2025-12-01", horizon=90, unit="days")
    with pytest.raises(ValueError, match="'unit' parameter"):
        build_training_set(BANK, as_of="2025-06-30", horizon=90, unit="months")


def test_unknown_target_is_named():
    with pytest.raises(Exception, match="P99"):
        build_training_set(BANK, as_of="2025-06-30", horizon=90, unit="days", targets=["P99"])
