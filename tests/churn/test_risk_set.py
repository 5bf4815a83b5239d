"""The churn risk set: statuses, shards, and nulling scores outside it."""

import datetime as dt

import polars as pl
import pytest

from crmkit.churn import RISK_STATUSES, apply_risk_set, risk_status
from crmkit.datasets import make_bank
from crmkit.features import build_features

AS_OF = dt.date(2025, 6, 30)


@pytest.fixture(scope="module")
def bank():
    return make_bank(1500, seed=11)


def test_statuses_agree_with_features(bank):
    status = risk_status(bank, AS_OF, "retail_bank_combined")
    feats = build_features(bank, as_of=AS_OF)
    assert status["customer_id"].to_list() == feats["customer_id"].to_list()
    assert set(status["risk_status"].unique()) == set(RISK_STATUSES)
    j = feats.join(status, on="customer_id")
    prospects = j.filter(pl.col("risk_status") == "prospect")
    assert (prospects["n_products_ever"] == 0).all() and (~prospects["has_transacted"]).all()
    churned = j.filter(pl.col("risk_status") == "churned")
    assert churned["all_products_closed"].all()
    at_risk = j.filter(pl.col("risk_status") == "at_risk")
    # at risk: has something open, and was active (txn or opening) within 180 days
    assert (at_risk["n_products_open"] > 0).all()
    last_open = (bank["holdings"].filter(pl.col("opened") <= AS_OF)
                 .group_by("customer_id").agg(pl.col("opened").max()))
    recent = at_risk.join(last_open, on="customer_id", how="left").select(pl.min_horizontal(
        pl.col("days_since_last_txn").fill_null(10**6),
        (pl.lit(AS_OF) - pl.col("opened")).dt.total_days().fill_null(10**6))).to_series()
    assert (recent < 180).all()
    silent = j.filter(pl.col("risk_status") == "silent")
    assert (silent["days_since_last_txn"].fill_null(10**6) >= 180).all()


def test_shard_equals_whole(bank):
    whole = risk_status(bank, AS_OF)
    parts = pl.concat([risk_status(bank, AS_OF, shard=(i, 3)) for i in range(3)]).sort("customer_id")
    assert parts.equals(whole)


def test_rows_after_as_of_do_not_matter(bank):
    cut = {k: v for k, v in bank.items()}
    cut["transactions"] = bank["transactions"].filter(pl.col("timestamp").dt.date() <= AS_OF)
    cut["holdings"] = bank["holdings"].filter(pl.col("opened") <= AS_OF).with_columns(
        pl.when(pl.col("closed") <= AS_OF).then(pl.col("closed")).alias("closed"))
    assert risk_status(cut, AS_OF).equals(risk_status(bank, AS_OF))


def test_silence_threshold_is_explicit(bank):
    short = risk_status(bank, AS_OF, silence_days=60)["risk_status"].value_counts()
    long = risk_status(bank, AS_OF, silence_days=365)["risk_status"].value_counts()
    n = lambda vc, s: int(vc.filter(pl.col("risk_status") == s)["count"].sum())  # noqa: E731
    assert n(short, "silent") > n(long, "silent")
    assert n(short, "churned") == n(long, "churned")


def test_apply_risk_set_nulls_everyone_outside(bank):
    status = risk_status(bank, AS_OF)
    scores = status.select("customer_id", pl.lit(0.3).alias("churn_prob_90d"),
                           pl.lit(10.0).alias("restricted_mean_days"))
    out = apply_risk_set(scores, status)
    outside = out.filter(pl.col("risk_status") != "at_risk")
    assert outside.height > 0
    assert outside["churn_prob_90d"].null_count() == outside.height
    assert outside["restricted_mean_days"].null_count() == outside.height
    inside = out.filter(pl.col("risk_status") == "at_risk")
    assert inside["churn_prob_90d"].null_count() == 0


def test_transactions_only_data():
    tx = pl.DataFrame({"customer_id": ["a", "b"],
                       "timestamp": [dt.datetime(2024, 6, 1), dt.datetime(2023, 1, 1)]})
    assert risk_status({"transactions": tx}, "2024-06-30").rows() == [
        ("a", "at_risk"), ("b", "silent")]


def test_needs_some_activity_table():
    with pytest.raises(Exception, match="holdings table .* or a transactions table"):
        risk_status({"customers": pl.DataFrame({"customer_id": ["a"]})}, "2024-01-01")


def test_sample_bank_contacts_never_predate_first_seen():
    bank = make_bank(3000, seed=5)
    j = bank["contacts"].join(bank["customers"].select("customer_id", "first_seen"),
                              on="customer_id")
    assert j.height == bank["contacts"].height > 0
    assert j.filter(pl.col("date") < pl.col("first_seen")).height == 0
