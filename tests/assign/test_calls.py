"""Call lists: opt-outs, cool-down, triggers, rejected offers, control groups, branch-staff lists."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmkit.assign import (
    CallsConfig,
    branch_staff_list,
    build_call_lists,
    compare_outcomes,
    control_group,
    priority_score,
)
from crmkit._config import parse_config
from crmkit.exceptions import ConfigError, SchemaError

AS_OF = dt.date(2025, 6, 30)


@st.composite
def books(draw):
    n = draw(st.integers(1, 25))
    tiers = ["Diamond", "Platinum", "Gold", "Mass"]
    cust = pl.DataFrame({
        "customer_id": [f"C{i:03d}" for i in range(n)],
        "tier": [draw(st.sampled_from(tiers)) for _ in range(n)],
        "manager_id": [draw(st.sampled_from(["M1", "M2", None])) for _ in range(n)],
        "first_seen": [AS_OF - dt.timedelta(days=draw(st.integers(0, 900))) for _ in range(n)],
        "opt_out_phone": [draw(st.sampled_from([True, False, None])) for _ in range(n)],
        "opt_out_email": [draw(st.booleans()) for _ in range(n)],
        "opt_out_sms": [draw(st.booleans()) for _ in range(n)],
        "churn_probability": [draw(st.floats(0, 1)) for _ in range(n)],
        "financial_assets": [draw(st.floats(0, 1e7)) for _ in range(n)],
        "stage": [draw(st.sampled_from(["growth", "decline", "onboarding", "mature"])) for _ in range(n)],
    })
    k = draw(st.integers(0, 40))
    contacts = pl.DataFrame({
        "customer_id": [f"C{draw(st.integers(0, n - 1)):03d}" for _ in range(k)],
        "date": [AS_OF - dt.timedelta(days=draw(st.integers(-5, 200))) for _ in range(k)],
        "kind": ["call"] * k,
    }, schema={"customer_id": pl.String, "date": pl.Date, "kind": pl.String})
    return cust, contacts


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(books(), st.integers(0, 14), st.integers(1, 5), st.sampled_from([0.0, 0.3]))
def test_no_opted_out_channel_and_no_customer_in_cooldown(data, cooldown, top_n, share):
    cust, contacts = data
    res = build_call_lists(cust, as_of=AS_OF, contacts=contacts,
                           config={"cooldown_days": cooldown, "top_n": top_n, "offer_col": None,
                                   "control_share": share})
    calls = res.calls
    opt = {"phone": "opt_out_phone", "visit": "opt_out_phone", "email": "opt_out_email", "sms": "opt_out_sms"}
    rows = calls.join(cust.select("customer_id", *set(opt.values())), on="customer_id")
    for r in rows.iter_rows(named=True):
        assert r[opt[r["channel"]]] is False, r  # null consent counts as an opt-out
    past = contacts.filter(pl.col("date") <= AS_OF)
    last = past.group_by("customer_id").agg(pl.col("date").max())
    recent = set(last.filter((pl.lit(AS_OF) - pl.col("date")).dt.total_days() < cooldown)["customer_id"])
    assert not recent & set(calls["customer_id"])
    assert calls["customer_id"].n_unique() == calls.height
    assert calls["manager_id"].null_count() == 0
    assert (calls["rank"] <= top_n).all()
    if share:
        held = set(res.control.filter(pl.col("group") == "control")["customer_id"])
        assert not held & set(calls["customer_id"])
    # the same inputs give the same lists
    again = build_call_lists(cust, as_of=AS_OF, contacts=contacts,
                             config={"cooldown_days": cooldown, "top_n": top_n, "offer_col": None,
                                     "control_share": share})
    assert again.calls.equals(calls) and again.control.equals(res.control)


def test_triggers_rank_and_reasons():
    cust = pl.DataFrame({
        "customer_id": ["new", "out", "ren", "bday", "risk", "quiet"],
        "tier": ["Gold"] * 6, "manager_id": ["M1"] * 6,
        "first_seen": [dt.date(2025, 6, 20)] + [dt.date(2020, 1, 1)] * 5,
        "financial_assets_trend_90d": [0.0, -0.5, 0.0, 0.0, 0.0, 0.0],
        "next_maturity_date": [None, None, dt.date(2025, 7, 15), None, None, None],
        "birth_date": [None, None, None, dt.date(1970, 7, 3), None, None],
        "churn_probability": [0.1, 0.1, 0.1, 0.1, 0.8, 0.1],
        "reason_1": [None, None, None, None, "complaints_365d", None],
        "priority": [0.1, 0.2, 0.3, 0.4, 0.5, 0.9],
    })
    contacts = pl.DataFrame({"customer_id": ["out", "ren", "bday", "risk", "quiet"],
                             "date": [dt.date(2025, 6, 1)] * 5, "kind": ["call"] * 5})
    res = build_call_lists(cust, as_of=AS_OF, contacts=contacts)
    got = res.calls.select("rank", "customer_id", "triggers").rows()
    assert got == [(1, "new", ["new_customer", "cadence_due"]), (2, "bday", ["birthday"]),
                   (3, "ren", ["renewal_due"]), (4, "out", ["large_outflow"]), (5, "risk", ["high_risk"])]
    reasons = dict(res.calls.select("customer_id", "reason").rows())
    assert reasons["risk"] == "churn risk 0.8 (complaints_365d)"
    assert reasons["ren"] == "maturity/renewal on 2025-07-15"
    assert reasons["bday"] == "birthday on 07-03"
    assert reasons["out"] == "large asset outflow (-50% over 90 days)"



def test_high_risk_fires_on_the_capacity_sized_flag_not_a_fixed_cut():
    """With the churn step's churn_flag the trigger follows the flag (sized to capacity);
    without it, the fixed risk_threshold still applies."""
    cust = pl.DataFrame({
        "customer_id": ["flagged_low", "unflagged_high", "outside"], "tier": ["Mass"] * 3,
        "manager_id": ["M1"] * 3, "first_seen": [dt.date(2020, 1, 1)] * 3,
        "churn_probability": [0.12, 0.7, None], "churn_flag": [True, False, None],
        "priority": [0.5, 0.6, 0.4]})
    res = build_call_lists(cust, as_of=AS_OF)
    assert res.calls.select("customer_id", "triggers").rows() == [("flagged_low", ["high_risk"])]
    fixed = build_call_lists(cust.drop("churn_flag"), as_of=AS_OF)
    assert fixed.calls["customer_id"].to_list() == ["unflagged_high"]
    off = build_call_lists(cust, as_of=AS_OF, config={"risk_flag_col": None})
    assert off.calls["customer_id"].to_list() == ["unflagged_high"]

def test_playbook_action_channel_and_rejected_offer():
    cust = pl.DataFrame({"customer_id": ["a", "b"], "tier": ["Diamond", "Gold"], "manager_id": ["M1", "M1"],
                         "stage": ["decline", "decline"], "priority": [0.5, 0.4],
                         "next_best_product": ["FUND1", "BOND1"], "opt_out_phone": [False, True]})
    contacts = pl.DataFrame({"customer_id": ["b"], "date": [dt.date(2025, 5, 1)], "kind": ["call"],
                             "outcome": ["declined"], "product_id": ["BOND1"]})
    res = build_call_lists(cust, as_of=AS_OF, contacts=contacts)
    rows = res.calls.select("customer_id", "action", "channel", "next_best_product", "suppressed_offer").rows()
    assert rows == [("a", "senior_rm_visit", "visit", "FUND1", None),
                    ("b", "retention_call", "email", None, "BOND1")]


def test_everything_opted_out_is_suppressed_not_called():
    cust = pl.DataFrame({"customer_id": ["a"], "tier": ["Gold"], "manager_id": ["M1"], "priority": [1.0],
                         "opt_out_phone": [True], "opt_out_email": [True], "opt_out_sms": [True]})
    res = build_call_lists(cust, as_of=AS_OF)
    assert res.calls.height == 0
    assert res.suppressed.select("customer_id", "why").rows() == [("a", "opted_out")]


def test_assignment_sets_manager_and_unassigned_are_left_out():
    cust = pl.DataFrame({"customer_id": ["a", "b"], "tier": ["Gold", "Gold"], "priority": [0.1, 0.2]})
    asg = pl.DataFrame({"customer_id": ["a", "a"], "manager_id": ["M1", "M2"], "role": ["primary", "backup"]})
    res = build_call_lists(cust, as_of=AS_OF, assignment=asg)
    assert res.calls.select("manager_id", "customer_id").rows() == [("M1", "a")]


def test_priority_score_parts_and_errors():
    df = pl.DataFrame({"customer_id": ["a"], "financial_assets": [1e7], "churn_probability": [0.5],
                       "offer_value": [1e4]})
    assert priority_score(df)["priority"].item() == pytest.approx(0.5)
    assert priority_score(df, config={"risk_weight": 0})["priority"].item() == pytest.approx(1.0)
    assert priority_score(df.with_columns(pl.lit(None, pl.Float64).alias("churn_probability")))[
        "priority"].item() == pytest.approx(0.01)
    with pytest.raises(SchemaError, match="no column 'offer_value'"):
        priority_score(df.drop("offer_value"))
    with pytest.raises(ConfigError, match="Did you mean 'risk_weight'"):
        priority_score(df, config={"risk_weigth": 1})
    with pytest.raises(ConfigError, match="opt_out_columns"):
        parse_config(CallsConfig, {"channels": ["phone", "pigeon"]}, "calls")


# ---------------------------------------------------------------------------------------
# control groups
# ---------------------------------------------------------------------------------------

@settings(max_examples=30, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=60, unique=True),
       st.floats(0, 0.99), st.floats(0, 0.99))
def test_control_group_stable_and_nested(ids, s1, s2):
    df = pl.DataFrame({"customer_id": ids})
    a = control_group(df, campaign="c1", share=s1)
    b = control_group(df.reverse(), campaign="c1", share=s1)
    assert a.equals(b)
    lo, hi = sorted([s1, s2])
    small = set(control_group(df, campaign="c1", share=lo).filter(pl.col("group") == "control")["customer_id"])
    big = set(control_group(df, campaign="c1", share=hi).filter(pl.col("group") == "control")["customer_id"])
    assert small <= big


def test_control_group_known_values_and_share():
    # BLAKE2b values are fixed forever: a change here breaks every recorded campaign
    g = control_group(pl.DataFrame({"customer_id": ["C1", "C2", "C3"]}), campaign="x", share=0.5)
    import hashlib
    expect = int.from_bytes(hashlib.blake2b(b"x\x1fC1", digest_size=8).digest(), "big") / 2 ** 64
    assert g["u"][0] == pytest.approx(expect)
    many = control_group(pl.DataFrame({"customer_id": [str(i) for i in range(20000)]}), campaign="y", share=0.1)
    assert abs((many["group"] == "control").mean() - 0.1) < 0.01
    other = control_group(pl.DataFrame({"customer_id": [str(i) for i in range(20000)]}), campaign="z", share=0.1)
    assert (many["group"] == other["group"]).mean() < 0.9  # campaigns hold out independent groups
    with pytest.raises(ValueError, match="'share' parameter of control_group"):
        control_group(many, campaign="y", share=1.0)


def test_compare_outcomes_matches_hand_computation():
    g = pl.DataFrame({"customer_id": [str(i) for i in range(8)], "campaign": ["x"] * 8,
                      "group": ["contact"] * 4 + ["control"] * 4})
    o = pl.DataFrame({"customer_id": [str(i) for i in range(8)], "retained": [1, 1, 1, 0, 1, 0, 0, 0],
                      "products_opened": [2, 0, 1, 1, 0, 0, 1, 0]})
    out = compare_outcomes(g, o)
    r = out.filter(pl.col("outcome") == "retained").row(0, named=True)
    se = (0.25 / 4 + 0.25 / 4) ** 0.5  # both sample variances (n - 1) are 0.75 / 3
    assert r["uplift"] == 0.5 and r["se"] == pytest.approx(se)
    from scipy.stats import norm
    assert r["p_value"] == pytest.approx(2 * norm.sf(0.5 / se))
    assert r["ci_low"] == pytest.approx(0.5 - norm.ppf(0.975) * se)
    assert out["outcome"].to_list() == ["retained", "products_opened"]


# ---------------------------------------------------------------------------------------
# branch staff
# ---------------------------------------------------------------------------------------

def test_branch_staff_list_with_contacts():
    cust = pl.DataFrame({"customer_id": ["a", "b", "c", "d"], "branch_id": ["B1", "B1", "B2", "B2"],
                         "financial_assets": [90_000.0, 3e6, 2e5, 10.0]})
    contacts = pl.DataFrame({"customer_id": ["c", "b"], "date": [dt.date(2025, 1, 1), dt.date(2025, 7, 9)],
                             "kind": ["call", "call"]})
    out = branch_staff_list(cust, as_of=AS_OF, contacts=contacts, n=5)
    assert out.select("branch_id", "list", "customer_id", "tier").rows() == [
        ("B1", "hidden_vip", "a", "Mass"), ("B1", "never_contacted_vip", "b", "Platinum"),
        ("B2", "hidden_vip", "d", "Mass")]


def test_every_input_type(as_input):
    cust = pl.DataFrame({"customer_id": ["a"], "tier": ["Gold"], "manager_id": ["M1"], "priority": [0.3]})
    res = build_call_lists(as_input(cust), as_of=AS_OF, output="pandas")
    assert type(res.calls).__name__ == "DataFrame" and len(res.calls) == 1
