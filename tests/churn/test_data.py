"""Survival targets and the survival-data builders (censoring, as-of, late entry)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crmkit.churn import build_backtest_data, build_survival_data, make_y, split_y

D = dt.date


@pytest.fixture
def customers():
    return pl.DataFrame({
        "customer_id": ["a", "b", "c", "d", "e"],
        "first_seen": [D(2023, 1, 1), D(2023, 6, 1), D(2024, 3, 1), D(2022, 1, 1),
                       D(2023, 12, 31)],
    })


@pytest.fixture
def churn():
    return pl.DataFrame({
        "customer_id": ["a", "d", "e", "b"],
        "churn_date": [D(2024, 2, 10), D(2023, 5, 1), D(2025, 3, 1), D(2024, 12, 31)],
    })


def test_make_y_and_split_y_round_trip():
    y = make_y([3, 1.5], [1, 0], entry=[1, 0])
    d, e, s = split_y(y)
    assert d.tolist() == [3.0, 1.5] and e.tolist() == [True, False] and s.tolist() == [1.0, 0.0]


@pytest.mark.parametrize("bad, match", [
    (make_y([0.0, 1.0], [1, 0]), "zero or negative"),
    (make_y([np.nan, 1.0], [1, 0]), "NaN or infinite"),
    (np.array([1.0, 2.0]), "structured array with fields 'event' and 'duration'"),
    (None, "requires y to be passed"),
])
def test_split_y_refuses_bad_targets(bad, match):
    with pytest.raises(ValueError, match=match):
        split_y(bad)


def test_make_y_refuses_non_binary_events():
    with pytest.raises(ValueError, match="boolean or 0/1"):
        make_y([1, 2], [0, 2])


def test_landmark_censoring_by_hand(customers, churn, as_input):
    out = build_survival_data(as_input(customers), as_input(churn), start="2024-01-01",
                              end="2024-12-31")
    rows = {r["customer_id"]: r for r in out.iter_rows(named=True)}
    # c started after the window start, d churned before it: neither is at risk
    assert sorted(rows) == ["a", "b", "e"]
    assert (rows["a"]["duration_days"], rows["a"]["event"]) == (40.0, True)
    # b churns on the last day of the window: an event, not a censoring
    assert (rows["b"]["duration_days"], rows["b"]["event"]) == (365.0, True)
    # e churns after the end: censored at the end
    assert (rows["e"]["duration_days"], rows["e"]["event"]) == (365.0, False)
    assert rows["e"]["tenure_at_start_days"] == 1.0


def test_tenure_scale_gives_late_entry(customers, churn):
    out = build_survival_data(customers, churn, start="2024-01-01", end="2024-12-31",
                              time_scale="tenure", time_unit="weeks")
    a = out.filter(pl.col("customer_id") == "a").row(0, named=True)
    assert a["entry_weeks"] == pytest.approx(365 / 7)
    assert a["duration_weeks"] == pytest.approx((365 + 40) / 7)
    y = make_y(out["duration_weeks"], out["event"], out["entry_weeks"])
    assert split_y(y)[2] is not None


def test_covariates_are_read_as_of_the_window_start(customers, churn):
    seen = []

    def covariates(day):
        seen.append(day)
        return pl.DataFrame({"customer_id": ["a", "b", "e"], "x": [1.0, 2.0, 3.0]})

    out = build_survival_data(customers, lambda d: churn, start="2024-01-01", end="2024-12-31",
                              covariates=covariates)
    assert seen == [D(2024, 1, 1)]
    assert out.columns == ["customer_id", "duration_days", "event", "tenure_at_start_days", "x"]


def test_duplicate_covariate_rows_are_refused(customers, churn):
    cov = pl.DataFrame({"customer_id": ["a", "a"], "x": [1.0, 2.0]})
    with pytest.raises(ValueError, match="duplicate customer_id"):
        build_survival_data(customers, churn, start="2024-01-01", end="2024-12-31",
                            covariates=cov)


def test_label_churn_output_is_understood(customers):
    labels = pl.DataFrame({"customer_id": ["a", "b"], "churned": [True, False],
                           "churn_date": [D(2024, 5, 1), None], "reason": ["price", None]})
    out = build_survival_data(customers, labels, start="2024-01-01", end="2024-12-31")
    assert out.filter(pl.col("event"))["customer_id"].to_list() == ["a"]


def test_backtest_window(customers, churn):
    out = build_backtest_data(customers, churn, as_of="2024-01-01", horizon_days=90)
    rows = {r["customer_id"]: r for r in out.iter_rows(named=True)}
    assert rows["a"]["churned_in_horizon"] and rows["a"]["duration_days"] == 40.0
    assert not rows["b"]["churned_in_horizon"] and rows["b"]["duration_days"] == 90.0


def test_end_before_start_is_refused(customers, churn):
    with pytest.raises(ValueError, match="'end' parameter of build_survival_data"):
        build_survival_data(customers, churn, start="2024-01-01", end="2023-01-01")


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 900), st.one_of(st.none(), st.integers(0, 1200))),
                min_size=1, max_size=30),
       st.integers(200, 600), st.integers(1, 400))
def test_builder_invariants(rows, start_day, window):
    base = D(2022, 1, 1)
    customers = pl.DataFrame({"customer_id": [str(i) for i in range(len(rows))],
                              "first_seen": [base + dt.timedelta(days=s) for s, _ in rows]})
    churn = pl.DataFrame({
        "customer_id": [str(i) for i, (_, c) in enumerate(rows) if c is not None],
        "churn_date": [base + dt.timedelta(days=c) for _, c in rows if c is not None]},
        schema={"customer_id": pl.String, "churn_date": pl.Date})
    start = base + dt.timedelta(days=start_day)
    end = start + dt.timedelta(days=window)
    out = build_survival_data(customers, churn, start=start, end=end)
    for r in out.iter_rows(named=True):
        s, c = rows[int(r["customer_id"])]
        assert s <= start_day and (c is None or c > start_day)  # at risk on start
        assert 0 < r["duration_days"] <= window
        assert r["event"] == (c is not None and c <= start_day + window)
        if r["event"]:
            assert r["duration_days"] == c - start_day
    at_risk = sum(1 for s, c in rows if s <= start_day and (c is None or c > start_day))
    assert out.height == at_risk
