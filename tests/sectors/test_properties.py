"""Invariants of the sector rules on random inputs (hypothesis)."""

from __future__ import annotations

import datetime as dt

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from crmkit.sectors import (case_measures, grade_edges, grade_values, priority_register,
                            renewals_due, visit_plan)

AS_OF = dt.date(2025, 12, 31)
days = st.integers(min_value=-800, max_value=400)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=1e7, allow_nan=False), min_size=1, max_size=60))
def test_grades_are_monotone_and_the_distance_reaches_the_next_edge(values):
    shares = {"top": 0.05, "mid": 0.3, "rest": 1.0}
    edges = grade_edges(values, shares=shares)
    f = pl.DataFrame({"customer_id": [str(i) for i in range(len(values))], "v": values})
    out = grade_values(f, col="v", edges=edges)
    rank = {"rest": 0, "mid": 1, "top": 2}
    ordered = out.with_columns(pl.col("grade").replace_strict(rank).alias("r")).sort("v")
    assert ordered["r"].diff().drop_nulls().min() is None or ordered["r"].diff().drop_nulls().min() >= 0
    below = out.filter(pl.col("next_grade").is_not_null())
    assert (below["to_next_grade"] > 0).all()
    assert ((below["v"] + below["to_next_grade"] - below["next_grade_value"]).abs() < 0.01).all()
    # a customer with nothing is never above the lowest grade
    assert (out.filter(pl.col("v") == 0)["grade"] == "rest").all()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(days, st.one_of(st.none(), days), st.one_of(st.none(), days)),
                min_size=1, max_size=30), st.integers(min_value=1, max_value=120))
def test_renewals_are_the_open_policies_whose_term_ends_in_the_window(rows, ahead):
    base = AS_OF.toordinal()
    opened = [dt.date.fromordinal(base + min(o, 0)) for o, _, _ in rows]
    closed = [None if c is None else dt.date.fromordinal(base + c) for _, c, _ in rows]
    renew = [None if r is None else dt.date.fromordinal(base + r) for _, _, r in rows]
    h = pl.DataFrame({"account_id": [f"P{i}" for i in range(len(rows))],
                      "customer_id": ["a"] * len(rows), "product_id": ["X"] * len(rows),
                      "opened": opened, "closed": closed, "renewal_date": renew},
                     schema_overrides={"closed": pl.Date, "renewal_date": pl.Date})
    out = renewals_due(h, as_of=AS_OF, days_ahead=ahead)
    assert out["days_to_renewal"].is_between(1, ahead).all()
    listed = set(out["policy_id"])
    for i, (o, c, r) in enumerate(rows):
        is_open = closed[i] is None or closed[i] > AS_OF
        if not is_open:
            assert f"P{i}" not in listed
        elif renew[i] is not None and AS_OF < renew[i] <= AS_OF + dt.timedelta(days=ahead):
            assert f"P{i}" in listed  # a future renewal date in the window is always listed


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["A", "B", "C"]), st.one_of(st.none(), days),
                          st.integers(min_value=0, max_value=3000), st.sampled_from(["r1", "r2"])),
                min_size=1, max_size=40), st.integers(min_value=1, max_value=5))
def test_visit_plan_lists_only_due_shops_and_caps_each_rep(rows, cap):
    cadence = {"A": 7, "B": 30, "C": 60}
    ids = [f"s{i}" for i in range(len(rows))]
    g = pl.DataFrame({"customer_id": ids, "grade": [r[0] for r in rows]})
    shops = pl.DataFrame({"customer_id": ids,
                          "first_seen": [AS_OF - dt.timedelta(days=r[2]) for r in rows]})
    visits = [(i, AS_OF + dt.timedelta(days=min(r[1], 0))) for i, r in zip(ids, rows)
              if r[1] is not None]
    con = pl.DataFrame({"customer_id": [v[0] for v in visits], "date": [v[1] for v in visits],
                        "kind": ["visit"] * len(visits)},
                       schema={"customer_id": pl.String, "date": pl.Date, "kind": pl.String})
    a = pl.DataFrame({"customer_id": ids, "manager_id": [r[3] for r in rows]})
    full = visit_plan(g, con, shops, as_of=AS_OF, cadence_days=cadence, new_shop_days=30)
    for row in full.iter_rows(named=True):
        assert row["priority"] == 1 or row["days_since_visit"] is None or \
            row["days_since_visit"] >= cadence[row["grade"]]
    capped = visit_plan(g, con, shops, as_of=AS_OF, cadence_days=cadence, new_shop_days=30,
                        assignments=a, per_rep=cap)
    assert capped.group_by("manager_id").len()["len"].max() is None or \
        capped.group_by("manager_id").len()["len"].max() <= cap
    assert set(capped["customer_id"]) <= set(full["customer_id"])
    # no new shop is left out while a rep's day holds a shop that is merely due
    for rep in ("r1", "r2"):
        mine = full.join(a, on="customer_id").filter(pl.col("manager_id") == rep)
        kept = capped.filter(pl.col("manager_id") == rep)
        if (mine["priority"] == 1).sum() >= cap:
            assert (kept["priority"] == 1).all()


flags = st.one_of(st.none(), st.booleans())


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.one_of(st.none(), st.integers(1915, 1965)), flags, flags, flags),
                min_size=1, max_size=30))
def test_priority_never_falls_when_a_flag_is_added(rows):
    people = pl.DataFrame({"customer_id": [str(i) for i in range(len(rows))],
                           "birth_year": [r[0] for r in rows], "lives_alone": [r[1] for r in rows],
                           "dependent": [r[2] for r in rows], "low_income": [r[3] for r in rows]},
                          schema_overrides={"birth_year": pl.Int64, "lives_alone": pl.Boolean,
                                            "dependent": pl.Boolean, "low_income": pl.Boolean})
    order = {"standard": 0, "low": 1, "medium": 2, "high": 3}
    before = priority_register(people, as_of=AS_OF)
    after = priority_register(people.with_columns(pl.lit(True).alias("lives_alone")), as_of=AS_OF)
    assert (after["score"] >= before["score"]).all()
    assert (after["priority"].replace_strict(order) >= before["priority"].replace_strict(order)).all()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(-500, 0), st.one_of(st.none(), st.integers(0, 100)),
                          st.sampled_from(["x", "y"])), min_size=1, max_size=40))
def test_case_measures_match_a_direct_count(rows):
    opened = [AS_OF + dt.timedelta(days=o) for o, _, _ in rows]
    closed_on = [None if t is None else d + dt.timedelta(days=t) for d, (_, t, _) in zip(opened, rows)]
    c = pl.DataFrame({"customer_id": [r[2] for r in rows], "date": opened, "kind": ["k"] * len(rows),
                      "outcome": ["open" if t is None else "closed" for t in closed_on],
                      "closed_on": closed_on}, schema_overrides={"closed_on": pl.Date})
    out = case_measures(c, as_of=AS_OF, window_days=365).row(0, named=True)
    window = [(d, t) for d, t in zip(opened, closed_on) if d > AS_OF - dt.timedelta(days=365)]
    done = [(t - d).days for d, t in window if t is not None and t <= AS_OF]
    assert out["cases"] == len(window) and out["closed"] == len(done)
    assert out["open"] == len(window) - len(done)
    if window:
        assert abs(out["closure_rate"] - len(done) / len(window)) < 1e-4
    if done:
        assert abs(out["mean_days_to_close"] - sum(done) / len(done)) < 0.006
