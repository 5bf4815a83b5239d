"""Tobacco retail rules on small hand-made shops, its preset file and its pipeline run."""

from __future__ import annotations

import datetime as dt
import math
import shutil
from pathlib import Path

import polars as pl
import pytest

from crmkit.sectors import (cold_start_estimates, cold_start_stats, cold_start_table,
                            grade_shops, preset_path, shop_status, shop_volumes, visit_plan)

D = dt.date
AS_OF = D(2025, 12, 31)
ROOT = Path(__file__).resolve().parents[2]
GRADES = {"A": 3000.0, "B": 1500.0, "C": 800.0, "D": 300.0, "E": 0.0}


def test_grade_boundaries_are_inclusive_and_distance_is_to_the_next_grade():
    v = pl.DataFrame({"customer_id": ["a", "b", "c", "d"],
                      "yearly_volume": [3000.0, 2999.5, 300.0, 0.0], "new": [False] * 4})
    out = grade_shops(v, grades=GRADES)
    assert out.select("grade", "next_grade", "to_next_grade").rows() == [
        ("A", None, None), ("B", "A", 0.5), ("D", "C", 500.0), ("E", "D", 300.0)]
    assert out["reason"][0] == "grade A on 3000 a year; top grade"
    with pytest.raises(ValueError, match="the lowest grade to 0"):
        grade_shops(v, grades={"A": 10.0, "B": 5.0})


def test_young_shops_are_annualised_and_new_ones_use_the_estimate():
    shops = pl.DataFrame({"customer_id": ["old", "young", "new"],
                          "first_seen": [D(2020, 1, 1), D(2025, 7, 4), D(2025, 12, 1)]})
    tx = pl.DataFrame({"customer_id": ["old", "old", "young", "new"],
                       "timestamp": [dt.datetime(2025, 5, 1), dt.datetime(2024, 12, 31),
                                     dt.datetime(2025, 9, 1), dt.datetime(2025, 12, 10)],
                       "cartons": [1000, 999, 600, 10]})
    v = shop_volumes(tx, shops, as_of=AS_OF, min_history_days=90)
    # 2024-12-31 is outside (as_of - 365, as_of]; young: 600 cartons in 181 days
    assert v.select("customer_id", "yearly_volume", "new").rows() == [
        ("new", round(10 * 365 / 31, 2), True), ("old", 1000.0, False),
        ("young", round(600 * 365 / 181, 2), False)]
    v = v.with_columns(pl.lit(2000.0).alias("est"))
    g = grade_shops(v, grades=GRADES, estimate_col="est")
    assert g.filter(pl.col("customer_id") == "new").select("grade", "graded_on").row(0) == \
        ("B", "cold-start estimate")
    assert g.filter(pl.col("customer_id") == "old")["graded_on"][0] == "orders"


def test_cold_start_is_fitted_on_established_shops_with_fallbacks():
    rows = [("kiosk", "urban", 100.0)] * 5 + [("kiosk", "rural", 400.0)] * 2 \
        + [("bar", "urban", 50.0)] * 3 + [("kiosk", "urban", 10**6)]
    v = pl.DataFrame(rows, schema=["retail_format", "area", "yearly_volume"], orient="row") \
        .with_columns(pl.Series("new", [False] * 10 + [True]))
    stats = cold_start_stats(v)
    # summable: two halves give the table of the whole
    halves = pl.concat([cold_start_stats(v[:4]), cold_start_stats(v[4:])])
    assert cold_start_table(halves, min_shops=5).equals(cold_start_table(stats, min_shops=5))
    table = cold_start_table(stats, min_shops=5)
    new = pl.DataFrame({"customer_id": ["n1", "n2", "n3"],
                        "retail_format": ["kiosk", "kiosk", "bar"],
                        "area": ["urban", "rural", "rural"]})
    out = cold_start_estimates(new, table)
    kiosk = math.expm1((5 * math.log1p(100) + 2 * math.log1p(400)) / 7)
    allshops = math.expm1((5 * math.log1p(100) + 2 * math.log1p(400) + 3 * math.log1p(50)) / 10)
    # the new shop of a million cartons is not in the fit
    assert out["cold_start_estimate"].to_list() == [100.0, round(kiosk, 2), round(allshops, 2)]
    assert out["cold_start_basis"].to_list() == [
        "established shops of the same format and area (kiosk/urban: 5 shops)",
        "established shops of the same format (kiosk: 7 shops)",
        "all established shops (10)"]


def test_status_events_are_churn_reasons():
    shops = pl.DataFrame({"customer_id": list("abcde"),
                          "first_seen": [D(2020, 1, 1)] * 4 + [D(2025, 12, 20)]})
    con = pl.DataFrame({"customer_id": ["a", "a", "b", "c"], "kind": ["status"] * 3 + ["visit"],
                        "date": [D(2025, 6, 1), D(2025, 9, 1), D(2025, 12, 1), D(2025, 12, 1)],
                        "outcome": ["phone_changed", "business_closed", "phone_changed",
                                    "closed"]})
    tx = pl.DataFrame({"customer_id": ["a", "b", "c", "d"],
                       "timestamp": [dt.datetime(2025, 8, 1), dt.datetime(2025, 12, 30),
                                     dt.datetime(2025, 12, 30), dt.datetime(2025, 10, 1)]})
    out = shop_status(con, tx, shops, as_of=AS_OF, inactive_days=60)
    # c's visit outcome is not a status event; e is new (no orders yet is not quiet)
    assert out.select("customer_id", "status", "churn_reason").rows() == [
        ("a", "churned", "business_closed"), ("b", "at_risk", None), ("d", "at_risk", None)]
    assert out["reason"].to_list() == [
        "churned: business_closed on 2025-09-01",
        "phone_changed on 2025-12-01: check the shop still trades; still ordering "
        "(last order 1 days ago)",
        "no orders for 91 days"]


def test_visit_plan_new_shops_first_cadence_and_agreed_hours():
    g = pl.DataFrame({"customer_id": ["a", "b", "c", "d", "x"], "grade": ["A", "E", "E", "A", "A"]})
    shops = pl.DataFrame({"customer_id": ["a", "b", "c", "d", "x"],
                          "first_seen": [D(2020, 1, 1)] * 3 + [D(2025, 12, 29), D(2020, 1, 1)],
                          "contact_window": ["14:00-17:00", None, "09:00-11:00", "08:30-10:00",
                                             None]})
    con = pl.DataFrame({"customer_id": ["a", "b", "c", "x"], "kind": ["visit"] * 4,
                        "date": [D(2025, 12, 25), D(2025, 11, 1), D(2025, 12, 1), D(2025, 1, 1)]})
    out = visit_plan(g, con, shops, as_of=AS_OF, cadence_days={"A": 7, "E": 60},
                     new_shop_days=30, exclude=pl.DataFrame({"customer_id": ["x"]}))
    # d is new and unvisited: first; a (A, 7 days) and b (E, 61 days) are due; c (31 of
    # 60 days) is not; x is excluded (closed)
    assert out.select("customer_id", "priority", "days_since_visit").rows() == [
        ("d", 1, None), ("b", 2, 61), ("a", 2, 7)]
    assert out["scheduled_at"].to_list() == [dt.datetime(2026, 1, 1, 8, 30),
                                             dt.datetime(2026, 1, 1, 10, 0),
                                             dt.datetime(2026, 1, 1, 14, 0)]
    a = pl.DataFrame({"customer_id": ["a", "b", "d"], "manager_id": ["r1", "r1", "r1"],
                      "role": ["primary"] * 3})
    capped = visit_plan(g, con, shops, as_of=AS_OF, cadence_days={"A": 7, "E": 60},
                        assignments=a, per_rep=2)
    assert capped["customer_id"].to_list()[:2] == ["d", "x"]  # x: 365 days, most overdue
    with pytest.raises(ValueError, match="cadence for every grade. Got none for E"):
        visit_plan(g, con, shops, as_of=AS_OF, cadence_days={"A": 7})


def test_visits_go_through_the_contact_policy():
    from crmkit.contact_policy import apply_contact_policy

    g = pl.DataFrame({"customer_id": ["a", "b"], "grade": ["A", "A"]})
    shops = pl.DataFrame({"customer_id": ["a", "b"], "first_seen": [D(2020, 1, 1)] * 2,
                          "contact_window": ["06:00-07:00", "14:00-16:00"],
                          "do_not_contact": [False, True]})
    con = pl.DataFrame(schema={"customer_id": pl.String, "date": pl.Date, "kind": pl.String})
    split = apply_contact_policy(visit_plan(g, con, shops, as_of=AS_OF,
                                            cadence_days={"A": 7}), shops)
    assert split.suppressed["suppression_reason"].to_list() == [
        "quiet hours 21:00-08:00", "do not contact"]


def test_preset_file_equals_the_builtin_preset():
    from crmkit._config import parse_config
    from crmkit.pipeline.steps.tobacco_retail import TobaccoRetailConfig

    from_file = parse_config(TobaccoRetailConfig, {"preset": str(preset_path("tobacco_retail"))},
                             "tobacco_retail")
    assert from_file.model_dump(exclude={"preset"}) == \
        TobaccoRetailConfig().model_dump(exclude={"preset"})


def test_pipeline_config_runs_on_the_sample(tmp_path):
    from crmkit.pipeline import run_pipeline

    shutil.copytree(ROOT / "data" / "tobacco_retail", tmp_path / "data" / "tobacco_retail")
    (tmp_path / "pipelines").mkdir()
    shutil.copy(ROOT / "pipelines" / "tobacco_retail.toml", tmp_path / "pipelines")
    result = run_pipeline(tmp_path / "pipelines" / "tobacco_retail.toml", as_of="2025-12-31")
    out = tmp_path / "runs" / "tobacco_retail" / "2025-12-31" / "tobacco_retail"
    plan = pl.read_parquet(out / "visit_plan.parquet")
    assert plan.height > 0 and plan["reason"].null_count() == 0
    assert plan.group_by("manager_id").len()["len"].max() <= 12
    status = pl.read_parquet(out / "status.parquet")
    assert status.filter(pl.col("churned"))["churn_reason"].is_in(
        ["business_closed", "licence_revoked"]).all()
    # a churned shop is never in the visit plan
    assert plan.join(status.filter(pl.col("churned")), on="customer_id").height == 0
    grades = pl.read_parquet(out / "grades.parquet")
    assert grades.height == 400 and grades["reason"].null_count() == 0
    assert result.manifest["steps"]["tobacco_retail"]["visits_planned"] == plan.height
