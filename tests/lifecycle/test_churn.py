"""Churn labels: both definitions, reason codes, the as-of guarantee."""

import datetime as dt

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmkit.exceptions import ConfigError, SchemaError
from crmkit.lifecycle import ChurnDefinition, churn_reason_counts, label_churn

from ._util import BANK, END, TRUTH, cut

D = dt.date


def _tables():
    customers = pl.DataFrame({"customer_id": ["a", "b", "c", "d", "e", "f"],
                              "branch_id": ["B01"] * 6, "first_seen": [D(2020, 1, 1)] * 6})
    holdings = pl.DataFrame({
        "account_id": ["A1", "A2", "A3", "A4", "A5", "A6", "A7"],
        "customer_id": ["a", "a", "b", "c", "d", "e", "e"],
        "opened": [D(2020, 1, 1)] * 7,
        "closed": [D(2024, 3, 1), D(2024, 5, 2), None, D(2024, 6, 1), D(2024, 7, 1),
                   D(2024, 8, 1), D(2025, 3, 1)],
        "close_reason": ["moved", "fees", None, None, None, None, "service"]})
    transactions = pl.DataFrame({
        "customer_id": ["c", "a", "f"], "amount": [-9000.0, 10.0, 5.0],
        "timestamp": [dt.datetime(2024, 5, 20), dt.datetime(2023, 6, 1), dt.datetime(2023, 1, 1)],
        "channel": ["transfer_out", "mobile", "online"]})
    complaints = pl.DataFrame({"customer_id": ["c", "d"], "date": [D(2024, 5, 1), D(2024, 2, 1)],
                               "kind": ["service", "service"]})
    balances = pl.DataFrame({"account_id": ["A5", "A5", "A5"],
                             "date": [D(2023, 12, 31), D(2024, 3, 31), D(2024, 6, 30)],
                             "balance": [10000.0, 5000.0, 1000.0]})
    return {"customers": customers, "holdings": holdings, "transactions": transactions,
            "complaints": complaints, "balances": balances}


def test_contractual_labels_and_reasons():
    out = label_churn(_tables(), as_of="2024-12-31", definition={"kind": "contractual"})
    rows = {r[0]: r[1:] for r in out.rows()}
    assert rows["a"] == (True, D(2024, 5, 2), "price")           # closure reason, mapped
    assert rows["b"] == (False, None, None)                      # still open
    assert rows["c"] == (True, D(2024, 6, 1), "competitor_transfer")  # beats the complaint
    assert rows["d"] == (True, D(2024, 7, 1), "complaint")      # complaint beats falling balance
    assert rows["e"] == (False, None, None)                      # A7 closes after as_of
    assert rows["f"] == (False, None, None)                      # never had a product
    # later as_of: e's last account closed with a reason
    later = label_churn(_tables(), as_of="2025-12-31", definition={"kind": "contractual"})
    assert later.filter(pl.col("customer_id") == "e").row(0)[1:] == (True, D(2025, 3, 1), "service")


def test_signal_order_and_fallback_are_settings():
    t = _tables()
    d = {"kind": "contractual", "signal_order": ["falling_balance", "complaint"],
         "fallback_reason": "not_recorded"}
    rows = {r[0]: r[3] for r in label_churn(t, as_of="2024-12-31", definition=d).rows()}
    assert rows["d"] == "falling_balance"
    assert rows["c"] == "complaint"              # transfer-out no longer a signal
    t["complaints"] = t["complaints"].head(0)
    rows = {r[0]: r[3] for r in label_churn(t, as_of="2024-12-31", definition=d).rows()}
    assert rows["c"] == "not_recorded"


def test_non_contractual():
    t = _tables()
    d = ChurnDefinition(kind="non_contractual", inactivity_days=365)
    rows = {r[0]: r[1:] for r in label_churn(t, as_of="2024-06-30", definition=d).rows()}
    assert rows["f"] == (True, D(2023, 1, 1), "inactivity")   # 546 days without a purchase
    assert rows["a"] == (True, D(2023, 6, 1), "inactivity")   # 395 days
    assert rows["c"] == (False, None, None)                   # bought 41 days ago
    assert rows["b"] == (False, None, None)                   # never bought: not a churner
    confirmed = d.model_copy(update={"churn_date": "confirmed"})
    rows = {r[0]: r[1:] for r in label_churn(t, as_of="2024-06-30", definition=confirmed).rows()}
    assert rows["a"] == (True, D(2024, 5, 31), "inactivity")  # the day it reached 365 days


def test_non_contractual_threshold_exact():
    tx = pl.DataFrame({"customer_id": ["x", "y"], "amount": [1.0, 1.0],
                       "timestamp": [dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 2)]})
    d = {"kind": "non_contractual", "inactivity_days": 365, "churn_date": "confirmed"}
    out = label_churn({"transactions": tx}, as_of="2024-12-31", definition=d)
    # 2024 is a leap year: x's last purchase is 365 days before as_of, y's 364
    assert out.rows() == [("x", True, D(2024, 12, 31), "inactivity"), ("y", False, None, None)]


def test_errors():
    with pytest.raises(SchemaError, match="needs a holdings table"):
        label_churn({"transactions": _tables()["transactions"]}, as_of="2024-12-31",
                    definition={"kind": "contractual"})
    with pytest.raises(ConfigError, match="unknown key 'inactivity'.*'inactivity_days'"):
        label_churn(_tables(), as_of="2024-12-31",
                    definition={"kind": "non_contractual", "inactivity": 3})


def test_reason_counts():
    out = label_churn(_tables(), as_of="2024-12-31", definition={"kind": "contractual"})
    counts = churn_reason_counts(out, freq="1q")
    assert counts.rows() == [(D(2024, 4, 1), "competitor_transfer", 1, 0.5),
                             (D(2024, 4, 1), "price", 1, 0.5),
                             (D(2024, 7, 1), "complaint", 1, 1.0)]
    assert churn_reason_counts(out, freq="1mo")["count"].sum() == 3


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(days_back=st.integers(0, 900), kind=st.sampled_from(["contractual", "non_contractual"]))
def test_labels_as_of_d_ignore_later_rows(days_back, kind):
    day = END - dt.timedelta(days=days_back)
    d = {"kind": kind}
    full = label_churn(BANK, as_of=day, definition=d)
    truncated = label_churn(cut(BANK, day), as_of=day, definition=d)
    # customers first seen after `day` are labelled not churned in the full tables
    assert full.join(truncated, on="customer_id", how="semi").equals(truncated)
    assert not full.join(truncated, on="customer_id", how="anti")["churned"].any()


def test_sample_bank_contractual_churn_matches_planted_leavers(as_input):
    out = label_churn({k: as_input(v) for k, v in BANK.items()}, as_of=END,
                      definition="retail_bank")
    assert out["customer_id"].to_list() == sorted(BANK["customers"]["customer_id"])
    joined = out.join(TRUTH, on="customer_id")
    churned = joined.filter(pl.col("churned"))
    assert (churned["latent_state"] == "churned").mean() > 0.95
    assert churned["reason"].null_count() == 0
    closures = set(BANK["holdings"]["close_reason"].drop_nulls()) | {"price"}
    assert set(churned["reason"]) <= closures
