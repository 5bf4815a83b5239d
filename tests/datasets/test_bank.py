import datetime as dt

import polars as pl

from crmkit import validate
from crmkit.datasets import make_bank
from crmkit.features import build_features


def test_deterministic_for_a_seed_and_different_across_seeds():
    a = make_bank(300, seed=1)
    b = make_bank(300, seed=1)
    c = make_bank(300, seed=2)
    for name in a:
        assert a[name].equals(b[name]), name
    assert not a["transactions"].equals(c["transactions"])


def test_bank_has_what_the_models_need():
    bank, truth = make_bank(4000, seed=0, return_truth=True)
    assert validate(bank, as_of="2025-12-31").ok
    cust = bank["customers"]
    assert (2025 - cust["birth_year"] >= 60).mean() > 0.1  # customers of all ages, 60+ included
    states = set(truth["latent_state"])
    assert {"prospect", "onboarding", "growth", "mature", "declining", "dormant", "churned"} <= states
    prospects = truth.filter(pl.col("latent_state") == "prospect")["customer_id"]
    assert bank["transactions"].filter(pl.col("customer_id").is_in(prospects.implode())).height == 0
    assert bank["holdings"].filter(pl.col("customer_id").is_in(prospects.implode())).height == 0
    assert set(bank["managers"]["level"]) == {"private_banking", "wealth", "branch"}
    assert bank["holdings"]["close_reason"].drop_nulls().n_unique() >= 5
    assert cust["opt_out_sms"].any() and cust["opt_out_phone"].any()
    assert bank["transactions"]["timestamp"].max() <= dt.datetime(2025, 12, 31, 23, 59, 59)


def test_leavers_decline_before_they_leave():
    """Customers who leave within 90 days after as_of show falling activity and assets
    as of as_of: the signal the churn and lifecycle models must find."""
    bank, truth = make_bank(15_000, seed=3, return_truth=True)  # ~150 leavers: a stable mean
    feats = build_features(bank, as_of="2025-12-31").join(truth, on="customer_id")
    leaving = (pl.col("leave_date") > dt.date(2025, 12, 31)) & (pl.col("leave_date") <= dt.date(2026, 3, 31))
    stats = feats.filter(pl.col("has_transacted")).group_by(leaving.alias("leaving")).agg(
        pl.col("txn_count_trend_90d").mean(), pl.col("financial_assets_trend_90d").mean())
    leave = stats.filter(pl.col("leaving")).row(0, named=True)
    stay = stats.filter(~pl.col("leaving")).row(0, named=True)
    assert leave["txn_count_trend_90d"] < stay["txn_count_trend_90d"] - 0.1
    assert leave["financial_assets_trend_90d"] < stay["financial_assets_trend_90d"] - 0.1
