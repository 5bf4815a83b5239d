"""The point-in-time guarantee of build_features, and its per-customer contract."""

import datetime as dt

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmkit.datasets import make_bank
from crmkit.features import build_features, shard_filter
from crmkit.schema import PRODUCT_CATEGORIES, tables_as_of

BANK = make_bank(150, seed=11, as_of="2025-12-31", years=2)
END = dt.date(2025, 12, 31)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(days_back=st.integers(min_value=0, max_value=600),
       extra=st.lists(st.tuples(st.integers(0, 149), st.integers(1, 400),
                                st.floats(-500, 5000, allow_nan=False)), max_size=30),
       new_customers=st.integers(0, 3))
def test_features_as_of_d_ignore_later_rows(days_back, extra, new_customers):
    day = END - dt.timedelta(days=days_back)
    truth = build_features(tables_as_of(BANK, day), as_of=day)
    # Add rows dated after `day` to the full history: more transactions, contacts,
    # complaints, holdings, balances and brand-new customers.
    ids = BANK["customers"]["customer_id"]
    later = [day + dt.timedelta(days=k) for _, k, _ in extra]
    tables = dict(BANK)
    if extra:
        who = [ids[i] for i, _, _ in extra]
        tables["transactions"] = pl.concat([BANK["transactions"], pl.DataFrame({
            "transaction_id": [f"TX{i}" for i in range(len(extra))], "customer_id": who,
            "timestamp": [dt.datetime.combine(d, dt.time(10)) for d in later],
            "amount": [a for *_, a in extra], "channel": ["mobile"] * len(extra),
            "product_id": ["P01"] * len(extra)}, schema=BANK["transactions"].schema)])
        tables["contacts"] = pl.concat([BANK["contacts"], pl.DataFrame({
            "customer_id": who, "date": later, "kind": ["call"] * len(extra),
            "outcome": ["reached"] * len(extra)}, schema=BANK["contacts"].schema)])
        tables["complaints"] = pl.concat([BANK["complaints"], pl.DataFrame({
            "customer_id": who, "date": later, "kind": ["fees"] * len(extra),
            "outcome": ["open"] * len(extra)}, schema=BANK["complaints"].schema)])
        tables["holdings"] = pl.concat([BANK["holdings"], pl.DataFrame({
            "account_id": [f"AX{i}" for i in range(len(extra))], "customer_id": who,
            "product_id": ["P06"] * len(extra), "opened": later, "closed": [None] * len(extra),
            "close_reason": [None] * len(extra)}, schema=BANK["holdings"].schema)])
        tables["balances"] = pl.concat([BANK["balances"], pl.DataFrame({
            "account_id": [f"AX{i}" for i in range(len(extra))], "date": later,
            "balance": [abs(a) * 100 for *_, a in extra]}, schema=BANK["balances"].schema)])
    if new_customers:
        proto = BANK["customers"].head(new_customers).with_columns(
            (pl.lit("NEW") + pl.col("customer_id")).alias("customer_id"),
            pl.lit(day + dt.timedelta(days=1)).alias("first_seen"))
        tables["customers"] = pl.concat([BANK["customers"], proto])
    assert build_features(tables, as_of=day).equals(truth)


def test_every_customer_once_and_prospects_well_defined():
    feats = build_features(BANK, as_of=END)
    assert feats["customer_id"].sort().equals(BANK["customers"]["customer_id"].sort())
    prospects = feats.filter(~pl.col("has_transacted") & (pl.col("n_products_ever") == 0))
    assert prospects.height > 0
    # (the bank may contact a prospect, so contacts are not asserted to be zero)
    count_cols = [c for c in feats.columns if c.startswith(("txn_count", "txn_amount", "n_"))
                  or c in ("complaints_365d", "financial_assets", "balance_total")]
    for col in count_cols:
        assert (prospects[col] == 0).all(), col
    assert prospects["days_since_last_txn"].is_null().all()
    assert not prospects.select(pl.col(pl.Float64).is_nan().any()).row(0)[0]
    assert feats["tenure_days"].min() >= 0


def test_window_counts_and_trend_by_hand():
    tables = {
        "customers": pl.DataFrame({"customer_id": ["a", "p"], "branch_id": ["B1", "B1"],
                                   "first_seen": [dt.date(2023, 1, 1), dt.date(2024, 6, 1)]}),
        "transactions": pl.DataFrame({
            "customer_id": ["a"] * 4,
            "timestamp": [dt.date(2024, 6, 30), dt.date(2024, 6, 1), dt.date(2024, 5, 1),
                          dt.date(2024, 7, 2)],
            "amount": [10.0, 20.0, 40.0, 99.0]}),
        "products": pl.DataFrame({"product_id": ["D", "L", "F"], "category": ["deposit", "loan", "fund"],
                                  "risk_rating": [1, 3, 4]}),
        "holdings": pl.DataFrame({"account_id": ["1", "2", "3"], "customer_id": ["a"] * 3,
                                  "product_id": ["D", "L", "F"],
                                  "opened": [dt.date(2023, 1, 1)] * 3,
                                  "closed": [None, None, dt.date(2024, 7, 1)]}),
        "balances": pl.DataFrame({"account_id": ["1", "1", "2", "3"],
                                  "date": [dt.date(2024, 3, 31), dt.date(2024, 5, 31),
                                           dt.date(2024, 5, 31), dt.date(2024, 5, 31)],
                                  "balance": [500.0, 1000.0, 200.0, 300.0]}),
    }
    f = build_features(tables, as_of="2024-06-30", windows=[30]).sort("customer_id")
    a, p = f.row(0, named=True), f.row(1, named=True)
    assert (a["txn_count_30d"], a["txn_count_prior_30d"]) == (2, 0)  # 6/30, 6/1 | none in (4/1, 5/31]
    assert a["txn_amount_30d"] == 30.0 and a["txn_count_total"] == 3
    assert a["txn_count_trend_30d"] == 1.0
    assert a["ipt_mean_days"] == pytest.approx((31 + 29) / 2)  # 5/1 -> 6/1 -> 6/30
    assert a["days_since_last_txn"] == 0
    # fund account closes 7/1, after as_of: still open; loan counts 50%
    assert a["n_products_open"] == 3 and a["holds_fund"] and a["holds_loan"]
    assert a["financial_assets"] == pytest.approx(1000 + 0.5 * 200 + 300)
    assert a["financial_assets_prior_90d"] == pytest.approx(500.0)  # as of 2024-04-01
    assert a["balance_total"] == pytest.approx(1500.0)
    assert p["tenure_days"] == 29 and not p["has_transacted"] and p["txn_count_30d"] == 0
    assert set(f"holds_{c}" for c in PRODUCT_CATEGORIES) <= set(f.columns)


def test_accepts_every_input_type(as_input):
    tables = {k: as_input(v) for k, v in BANK.items()}
    out = build_features(tables, as_of=END)
    assert out.equals(build_features(BANK, as_of=END))


def test_shards_partition_the_customers():
    whole = build_features(BANK, as_of=END)
    parts = pl.concat([build_features(BANK, as_of=END, shard=(i, 3)) for i in range(3)])
    assert parts.sort("customer_id").equals(whole)
    assert BANK["customers"].filter(shard_filter(pl.col("customer_id"), 0, 3)).height < 150


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(days_back=st.integers(min_value=0, max_value=400),
       spans=st.lists(st.tuples(st.integers(-3, 3), st.one_of(st.none(), st.integers(-3, 3))),
                      min_size=1, max_size=12))
def test_holdings_open_on_the_day_by_an_independent_count(days_back, spans):
    """A holding is open on ``day`` when opened on or before it and not closed on or
    before it: one closed exactly on ``day`` is closed. Openings and closings are
    drawn around the day itself (-3..+3 days, closing the day it opened included),
    and the count is checked against a plain Python count, not against
    build_features on other inputs (which would share a boundary bug)."""
    day = END - dt.timedelta(days=days_back)
    cid = BANK["customers"]["customer_id"][0]
    rows = []
    for i, (o, c) in enumerate(spans):
        opened = day + dt.timedelta(days=o)
        closed = None if c is None else max(opened, day + dt.timedelta(days=c))
        rows.append((f"HX{i}", cid, "P01", opened, closed, None if closed is None else "moved"))
    extra = pl.DataFrame(rows, schema=BANK["holdings"].schema, orient="row")
    tables = dict(BANK)
    tables["holdings"] = pl.concat([BANK["holdings"].filter(pl.col("customer_id") != cid),
                                    extra])
    got = build_features(tables, as_of=day).filter(pl.col("customer_id") == cid).row(
        0, named=True)
    expect_open = sum(1 for *_, opened, closed, _ in rows
                      if opened <= day and (closed is None or closed > day))
    expect_closed = sum(1 for *_, opened, closed, _ in rows
                        if opened <= day and closed is not None and closed <= day)
    assert got["n_products_open"] == expect_open
    assert got["n_products_closed_365d"] == expect_closed
    assert got["n_products_ever"] == sum(1 for *_, opened, _c, _ in rows if opened <= day)
