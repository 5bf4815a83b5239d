"""The insurer's rules on small hand-made cases, its preset file and its pipeline run."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import polars as pl
import pytest

from crmkit.exceptions import ConfigError, SchemaError
from crmkit.sectors import (claim_alerts, claim_followups, executive_visits, grade_complaints,
                            policy_churn, preset_path, renewals_due)

D = dt.date
AS_OF = D(2025, 12, 31)
ROOT = Path(__file__).resolve().parents[2]


def _policies(**cols):
    base = {"account_id": ["P1"], "customer_id": ["a"], "product_id": ["AUTO"],
            "opened": [D(2024, 1, 20)], "closed": [None], "renewal_date": [None],
            "premium": [1000.0]}
    base.update(cols)
    return pl.DataFrame(base, schema_overrides={"closed": pl.Date, "renewal_date": pl.Date})


def test_renewal_window_edges():
    # the window is (as_of, as_of + days_ahead]: day 60 is in, day 61 and today are out
    h = _policies(account_id=["in", "edge", "out", "today"], customer_id=["a"] * 4,
                  product_id=["AUTO"] * 4, opened=[D(2024, 1, 1)] * 3 + [D(2023, 12, 31)],
                  closed=[None] * 4,
                  renewal_date=[D(2026, 1, 30), D(2026, 3, 1), D(2026, 3, 2), AS_OF],
                  premium=[1.0] * 4)
    out = renewals_due(h, as_of=AS_OF, days_ahead=60)
    # 'today' had its renewal date on as_of and is still open: renewed, so its next term
    # ends on the next anniversary of 'opened' (2026-12-31), outside the window
    assert out["policy_id"].to_list() == ["in", "edge"]
    assert out["days_to_renewal"].to_list() == [30, 60]


def test_renewal_rolls_a_passed_date_and_skips_closed():
    # no renewal date: the next anniversary of 'opened' (12-month terms)
    h = _policies(account_id=["x", "closed"], customer_id=["a", "b"], product_id=["HOME"] * 2,
                  opened=[D(2022, 2, 10), D(2022, 2, 10)], closed=[None, D(2025, 2, 10)],
                  renewal_date=[D(2025, 2, 10), None], premium=[500.0, 500.0])
    out = renewals_due(h, as_of=AS_OF, days_ahead=45)
    assert out.rows() == [("a", "x", "HOME", D(2026, 2, 10), 41, 500.0, "phone",
                           "policy x (HOME) renews on 2026-02-10, in 41 days; "
                           "annual premium 500.0")]
    six = renewals_due(h, as_of=AS_OF, days_ahead=45, term_months=6)
    assert six["renewal_date"].to_list() == [D(2026, 2, 10)]


def test_renewal_parameters_are_checked():
    with pytest.raises(ValueError, match="'days_ahead' parameter of renewals_due"):
        renewals_due(_policies(), as_of=AS_OF, days_ahead=0)
    with pytest.raises(SchemaError, match="no column 'opened'"):
        renewals_due(_policies().drop("opened"), as_of=AS_OF)


def _claims(days, amounts, customers=None):
    n = len(days)
    return pl.DataFrame({"transaction_id": [f"t{i}" for i in range(n)],
                         "customer_id": customers or ["a"] * n,
                         "timestamp": [dt.datetime.combine(d, dt.time(10)) for d in days],
                         "amount": amounts, "channel": ["claim"] * n})


def test_every_claim_is_followed_up_unless_contacted_since():
    tx = pl.concat([_claims([D(2025, 12, 10), D(2025, 12, 30)], [-100.0, -200.0]),
                    _claims([D(2025, 11, 1)], [-50.0], ["b"]).with_columns(
                        pl.lit("t9").alias("transaction_id")),
                    pl.DataFrame({"transaction_id": ["p"], "customer_id": ["c"],
                                  "timestamp": [dt.datetime(2025, 12, 30)], "amount": [900.0],
                                  "channel": ["premium"]})])
    contacts = pl.DataFrame({"customer_id": ["a"], "date": [D(2025, 12, 12)], "kind": ["call"]})
    out = claim_followups(tx, contacts, as_of=AS_OF, lookback_days=30, within_days=2)
    # t0 was followed by the call of 12-12; t1 came after it; b's claim is too old; the
    # premium is no claim
    assert out.select("claim_id", "claim_amount", "due", "overdue").rows() == [
        ("t1", 200.0, D(2026, 1, 1), False)]


def test_same_day_alert_only_today_and_at_the_threshold():
    tx = _claims([AS_OF, AS_OF, D(2025, 12, 30)], [-50000.0, -49999.99, -90000.0], ["a", "b", "c"])
    out = claim_alerts(tx, as_of=AS_OF, threshold=50000)
    assert out.select("customer_id", "claim_amount").rows() == [("a", 50000.0)]
    assert "same-day alert threshold 50000" in out["reason"][0]


def test_executive_visits_pro_rata_and_behind():
    cust = pl.DataFrame({"customer_id": ["a", "b", "c"], "key_account": [True, True, None]})
    con = pl.DataFrame({"customer_id": ["a", "a", "a", "b"],
                        "date": [D(2025, 1, 5), D(2025, 4, 1), D(2025, 6, 1), D(2025, 3, 1)],
                        "kind": ["executive_visit", "executive_visit", "call", "executive_visit"]})
    mid = executive_visits(cust, con, as_of=D(2025, 6, 30), min_per_year=4)
    # 181 of 365 days: 4 * 181 // 365 = 1 expected; the call does not count
    assert mid.select("customer_id", "visits_ytd", "expected", "behind").rows() == [
        ("a", 2, 1, False), ("b", 1, 1, False)]
    end = executive_visits(cust, con, as_of=AS_OF, min_per_year=4)
    assert end.select("customer_id", "shortfall", "behind").rows() == [
        ("a", 2, True), ("b", 3, True)]
    assert end["reason"][1].startswith("key account: 1 executive visit(s) this year, 4 expected")


def test_complaints_graded_by_impact_and_difficulty():
    m = [["C", "C", "B"], ["C", "B", "A"], ["B", "A", "A"]]
    rows = [(i, j) for i in (1, 2, 3) for j in (1, 2, 3)]
    c = pl.DataFrame({"customer_id": [f"c{i}{j}" for i, j in rows],
                      "date": [D(2025, 12, 28)] * 9, "kind": ["service"] * 9,
                      "outcome": [None] * 9, "impact": [r[0] for r in rows],
                      "difficulty": [r[1] for r in rows]},
                     schema_overrides={"outcome": pl.String})
    out = grade_complaints(c, as_of=AS_OF, matrix=m, response_days={"A": 1, "B": 3, "C": 7})
    assert out["grade"].to_list() == ["C", "C", "B", "C", "B", "A", "B", "A", "A"]
    # 3 days open: grade A (1 day) is overdue, B (3 days: by 12-31) is not
    assert out.filter(pl.col("grade") == "A")["overdue"].all()
    assert not out.filter(pl.col("grade") != "A")["overdue"].any()
    with pytest.raises(SchemaError, match="impact must be 1, 2 or 3"):
        grade_complaints(c.with_columns(pl.lit(4).alias("impact")), as_of=AS_OF, matrix=m,
                         response_days={"A": 1, "B": 3, "C": 7})
    with pytest.raises(ValueError, match="for every grade"):
        grade_complaints(c, as_of=AS_OF, matrix=m, response_days={"A": 1})


def test_churn_is_lapse_or_non_renewal_of_the_last_policy():
    h = pl.DataFrame({"account_id": list("12345"), "customer_id": ["a", "a", "b", "c", "d"],
                      "product_id": ["AUTO"] * 5, "opened": [D(2023, 1, 1)] * 5,
                      "closed": [D(2024, 3, 1), D(2025, 5, 1), D(2025, 6, 1), D(2026, 2, 1), None],
                      "close_reason": ["lapsed", "vehicle_sold", "not_renewed", "lapsed", None]})
    out = policy_churn(h, as_of=AS_OF)
    # a: the last policy ended by a sale (not churn) although an older one lapsed;
    # c: closes after as_of, so it is still open on the run date
    assert out.select("customer_id", "policies_open", "churned", "churn_reason").rows() == [
        ("a", 0, False, None), ("b", 0, True, "not_renewed"), ("c", 1, False, None),
        ("d", 1, False, None)]
    assert out["lapsed"].to_list() == [0, 0, 0, 0]  # a's lapse was more than 365 days ago


def test_preset_file_equals_the_builtin_preset():
    from crmkit._config import parse_config
    from crmkit.pipeline.steps.insurer import InsurerConfig

    from_file = parse_config(InsurerConfig, {"preset": str(preset_path("insurer"))}, "insurer")
    assert from_file.model_dump(exclude={"preset"}) == \
        InsurerConfig().model_dump(exclude={"preset"})


def test_preset_keys_are_strict(tmp_path):
    from crmkit._config import parse_config
    from crmkit.pipeline.steps.insurer import InsurerConfig

    bad = tmp_path / "mine.toml"
    bad.write_text("[insurer]\nrenewal_days_ahaed = 30\n")
    with pytest.raises(ConfigError, match="Did you mean 'renewal_days_ahead'"):
        parse_config(InsurerConfig, {"preset": str(bad)}, "insurer")
    good = tmp_path / "good.toml"
    good.write_text("[insurer]\nrenewal_days_ahead = 30\nterm_months = 6\n")
    cfg = parse_config(InsurerConfig, {"preset": str(good), "term_months": 3}, "insurer")
    assert (cfg.renewal_days_ahead, cfg.term_months) == (30, 3)  # the config overrides
    with pytest.raises(ConfigError, match="no \\[insurer\\] table"):
        good.write_text("[broker]\n")
        parse_config(InsurerConfig, {"preset": str(good)}, "insurer")
    with pytest.raises(ConfigError, match="complaint_response_days has no entry for grade"):
        parse_config(InsurerConfig, {"complaint_grades": [["X"] * 3] * 3}, "insurer")


def test_pipeline_config_runs_on_the_sample(tmp_path):
    from crmkit.pipeline import run_pipeline

    shutil.copytree(ROOT / "data" / "insurer", tmp_path / "data" / "insurer")
    (tmp_path / "pipelines").mkdir()
    shutil.copy(ROOT / "pipelines" / "insurer.toml", tmp_path / "pipelines")
    result = run_pipeline(tmp_path / "pipelines" / "insurer.toml", as_of="2025-12-31")
    run = tmp_path / "runs" / "insurer" / "2025-12-31" / "insurer"
    for table in ("renewals", "claim_followups", "claim_alerts", "executive_visits",
                  "complaints", "policy_churn"):
        frame = pl.read_parquet(run / f"{table}.parquet")
        assert frame.height > 0, table
        assert frame["reason"].null_count() == 0, table
    renewals = pl.read_parquet(run / "renewals.parquet")
    assert renewals["days_to_renewal"].is_between(1, 60).all()
    assert result.manifest["steps"]["insurer"]["rows"]["renewals"] == renewals.height
