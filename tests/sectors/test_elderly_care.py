"""Community elderly-care rules on small hand-made residents, its preset and its run."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import polars as pl
import pytest

from crmkit.sectors import case_measures, open_cases, preset_path, priority_register, visit_plan

D = dt.date
AS_OF = D(2025, 12, 31)
ROOT = Path(__file__).resolve().parents[2]


def _residents():
    return pl.DataFrame({
        "customer_id": ["a", "b", "c", "d", "e"],
        "birth_year": [1945, 1946, 1960, 1930, None],
        "lives_alone": [True, True, False, True, True],
        "dependent": [False, False, True, True, None],
        "low_income": [False, True, False, True, False]},
        schema_overrides={"birth_year": pl.Int64, "dependent": pl.Boolean})


def test_flags_score_and_priority():
    out = priority_register(_residents(), as_of=AS_OF)
    # a is 80 in 2025: the threshold is inclusive; c is dependent (weight 2); e has no
    # birth year and an unassessed dependency, so only 'lives alone' counts
    assert out.select("customer_id", "age", "aged_80_plus", "score", "priority").rows() == [
        ("a", 80, True, 2, "medium"), ("b", 79, False, 2, "medium"),
        ("c", 65, False, 2, "medium"), ("d", 95, True, 5, "high"),
        ("e", None, None, 1, "low")]
    assert out["not_assessed"].to_list() == [None, None, None, None, "age, dependent"]
    assert out["reason"][3] == "priority high (score 5): aged 95, lives alone, dependent, low income"


def test_weights_and_levels_are_settings():
    out = priority_register(_residents(), as_of=AS_OF,
                            weights={"aged_80_plus": 3, "lives_alone": 1},
                            levels={"urgent": 4, "watch": 1, "none": 0}, age_threshold=90)
    assert out.select("customer_id", "score", "priority").rows() == [
        ("a", 1, "watch"), ("b", 1, "watch"), ("c", 0, "none"), ("d", 4, "urgent"),
        ("e", 1, "watch")]
    with pytest.raises(ValueError, match="the lowest to 0"):
        priority_register(_residents(), as_of=AS_OF, levels={"high": 2, "low": 1})


def test_visit_cadence_by_priority():
    register = pl.DataFrame({"customer_id": ["h", "s", "n"],
                             "care_priority": ["high", "standard", "standard"]})
    people = pl.DataFrame({"customer_id": ["h", "s", "n"],
                           "first_seen": [D(2020, 1, 1), D(2020, 1, 1), D(2025, 12, 20)]})
    con = pl.DataFrame({"customer_id": ["h", "s"], "kind": ["visit", "visit"],
                        "date": [D(2025, 12, 20), D(2025, 12, 1)]})
    out = visit_plan(register, con, people, as_of=AS_OF,
                     cadence_days={"high": 7, "standard": 90}, grade_col="care_priority",
                     noun="resident", opened_word="registered")
    # the high-priority resident seen 12 days ago is due, the standard one seen a month ago
    # is not; the resident registered 11 days ago is visited at once
    assert out.select("customer_id", "priority").rows() == [("n", 1), ("h", 2)]
    assert out["reason"][1].startswith("care priority high resident, visited every 7 days")
    with pytest.raises(ValueError, match="must not be a column the plan writes"):
        visit_plan(register.rename({"care_priority": "priority"}), con, people, as_of=AS_OF,
                   cadence_days={"high": 7, "standard": 90}, grade_col="priority")


def _cases():
    return pl.DataFrame({
        "customer_id": ["a", "a", "b", "b", "c"],
        "date": [D(2025, 12, 1), D(2025, 6, 1), D(2025, 12, 20), D(2024, 6, 1), D(2025, 12, 30)],
        "kind": ["meal_service", "home_repair", "home_repair", "cleaning", "emergency_alarm"],
        "outcome": ["closed", "closed", "open", "closed", "closed"],
        "closed_on": [D(2025, 12, 4), D(2025, 6, 21), None, D(2024, 6, 3), D(2026, 1, 2)]})


def test_closure_rate_and_time_to_close():
    out = case_measures(_cases(), as_of=AS_OF, window_days=365)
    # b's 2024 case is outside the window; c's case closes after as_of: still open then
    assert out.rows(named=True) == [{
        "cases": 4, "closed": 2, "closure_rate": 0.5, "mean_days_to_close": 11.5,
        "median_days_to_close": 11.5, "p90_days_to_close": 20.0, "open": 2}]
    groups = pl.DataFrame({"customer_id": ["a", "b", "c"], "branch_id": ["X", "X", "Y"]})
    by = case_measures(_cases(), as_of=AS_OF, by=["branch_id"], groups=groups)
    assert by.select("branch_id", "cases", "closure_rate").rows() == [("X", 3, 0.6667),
                                                                      ("Y", 1, 0.0)]


def test_open_cases_and_targets():
    out = open_cases(_cases(), as_of=AS_OF, target_days={"home_repair": 10, "emergency_alarm": 1})
    assert out.select("customer_id", "kind", "days_open", "overdue").rows() == [
        ("b", "home_repair", 11, True), ("c", "emergency_alarm", 1, False)]


def test_preset_file_equals_the_builtin_preset():
    from crmkit._config import parse_config
    from crmkit.pipeline.steps.elderly_care import ElderlyCareConfig

    from_file = parse_config(ElderlyCareConfig, {"preset": str(preset_path("elderly_care"))},
                             "elderly_care")
    assert from_file.model_dump(exclude={"preset"}) == \
        ElderlyCareConfig().model_dump(exclude={"preset"})


def test_pipeline_config_runs_on_the_sample(tmp_path):
    from crmkit.pipeline import run_pipeline

    shutil.copytree(ROOT / "data" / "elderly_care", tmp_path / "data" / "elderly_care")
    (tmp_path / "pipelines").mkdir()
    shutil.copy(ROOT / "pipelines" / "elderly_care.toml", tmp_path / "pipelines")
    result = run_pipeline(tmp_path / "pipelines" / "elderly_care.toml", as_of="2025-12-31")
    out = tmp_path / "runs" / "elderly_care" / "2025-12-31" / "elderly_care"
    register = pl.read_parquet(out / "priority_register.parquet")
    assert register.height == 400 and register["reason"].null_count() == 0
    plan = pl.read_parquet(out / "visit_plan.parquet")
    assert plan.group_by("manager_id").len()["len"].max() <= 10
    cadence = {"high": 7, "medium": 14, "low": 30, "standard": 90}
    due = plan.filter(pl.col("priority") == 2)
    assert (due["days_since_visit"] >= due["care_priority"].replace_strict(cadence)).all()
    measures = pl.read_parquet(out / "case_measures.parquet")
    assert measures["level"].unique().sort().to_list() == ["centre", "service", "worker"]
    facts = result.manifest["steps"]["elderly_care"]
    assert facts["case_closure_rate"] == measures["closure_rate"][0]
