"""Drift and quality gates (crmkit/pipeline/_drift.py): PSI by hand, movement, gates."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crmkit.pipeline._drift import EXIT_QUALITY_GATE, check_drift, movement_share, psi, psi_bins


def test_psi_equals_a_hand_computation():
    prev = [1, 2, 3, 4, 5, 6, 7, 8, None, None]
    curr = [1, 1, 1, 4, 4, 6, 9, 9, 9, None]
    edges = [2.0, 5.0]  # bins (-inf, 2], (2, 5], (5, inf) and the missing bin
    # shares: prev  2/10, 3/10, 3/10, 2/10 ; curr 3/10, 2/10, 4/10, 1/10
    e = [0.2, 0.3, 0.3, 0.2]
    a = [0.3, 0.2, 0.4, 0.1]
    hand = sum((ai - ei) * math.log(ai / ei) for ai, ei in zip(a, e))
    assert psi(prev, curr, edges=edges) == pytest.approx(hand, rel=1e-12)
    # 0.1 ln 1.5 + 0.1 ln 1.5 + 0.1 ln(4/3) + 0.1 ln 2 = 0.04055 + 0.04055 + 0.02877 + 0.06931
    assert hand == pytest.approx(0.17918, abs=1e-5)


def test_psi_quantile_bins_and_empty_bins():
    prev = pl.Series(np.arange(100, dtype=float))
    assert psi_bins(prev, 4) == [24.75, 49.5, 74.25]
    assert psi(prev, prev) == 0.0
    # everything moves into the top bin: empty bins take the eps floor
    curr = pl.Series([99.0] * 100)
    e, eps = 0.1, 1e-4
    hand = 9 * (eps - e) * math.log(eps / e) + (1 - e) * math.log(1 / e)
    assert psi(prev, curr, bins=10) == pytest.approx(hand, rel=1e-9)


def test_psi_categorical():
    prev = ["Gold"] * 5 + ["Mass"] * 5
    curr = ["Gold"] * 2 + ["Mass"] * 7 + ["Platinum"]
    eps = 1e-4
    hand = ((0.2 - 0.5) * math.log(0.2 / 0.5) + (0.7 - 0.5) * math.log(0.7 / 0.5)
            + (0.1 - eps) * math.log(0.1 / eps))
    assert psi(prev, curr) == pytest.approx(hand, rel=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=50),
       st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=50))
def test_psi_is_non_negative_and_zero_on_itself(a, b):
    assert psi(a, b) >= -1e-12
    assert psi(a, a) == pytest.approx(0.0, abs=1e-12)


def test_movement_share_counts_missing_as_a_value():
    prev = pl.DataFrame({"customer_id": ["a", "b", "c", "d"], "stage": ["x", None, "y", "y"]})
    curr = pl.DataFrame({"customer_id": ["a", "b", "c", "e"], "stage": ["x", "x", None, "y"]})
    assert movement_share(prev, curr, "stage") == pytest.approx(2 / 3)


def _run(shift: float, n=2000, seed=0):
    rng = np.random.default_rng(seed)
    ids = [f"C{i:05d}" for i in range(n)]
    feats = pl.DataFrame({"customer_id": ids, "financial_assets": rng.lognormal(10, 1, n) * shift})
    tiers = pl.DataFrame({"customer_id": ids,
                          "tier": np.where(feats["financial_assets"] > 1e5 * 1.0, "Gold", "Mass")})
    churn = pl.DataFrame({"customer_id": ids, "churn_prob_90d": rng.beta(1, 20, n) * shift})
    return feats, {"value": {"value_tiers": tiers}, "churn": {"churn_scores": churn}}


def test_check_drift_first_run_skips_and_says_why():
    feats, outs = _run(1.0)
    res = check_drift(feats, outs)
    assert res.status == "ok" and not res.failed and res.exit_code == 0
    assert set(res.checks["status"]) == {"skipped"}
    assert "first run" in res.checks["note"][0]


def test_check_drift_stable_then_shifted():
    pf, po = _run(1.0, seed=1)
    feats, outs = _run(1.0, seed=2)
    ok = check_drift(feats, outs, previous_features=pf, previous_outputs=po)
    psis = ok.checks.filter(pl.col("check") == "psi")
    assert set(psis["subject"]) == {"financial_assets", "churn.churn_scores.churn_prob_90d"}
    assert (psis["value"] < 0.05).all() and ok.status in ("ok", "warning")
    feats, outs = _run(3.0, seed=2)
    warn = check_drift(feats, outs, previous_features=pf, previous_outputs=po)
    assert warn.status == "warning" and not warn.failed
    assert warn.checks["status"][0] == "breach"
    assert any("PSI" in m for m in warn.messages)
    fail = check_drift(feats, outs, previous_features=pf, previous_outputs=po,
                       config={"on_breach": "fail"})
    assert fail.failed and fail.exit_code == EXIT_QUALITY_GATE and fail.status == "failed"
    assert fail.to_manifest()["failed"] is True


def test_metric_floor():
    feats, outs = _run(1.0)
    facts = {"churn": {"backtest": {"auc_horizon": 0.62}}}
    res = check_drift(feats, outs, step_facts=facts,
                      config={"metric_floors": {"churn.backtest.auc_horizon": 0.7,
                                                "churn.backtest.missing": 0.5},
                              "on_breach": "fail"})
    row = res.checks.filter(pl.col("check") == "metric").row(0, named=True)
    assert row["status"] == "breach" and row["value"] == pytest.approx(0.62)
    assert res.failed and "below its floor 0.700" in res.messages[0]
    assert "not recorded" in res.checks.filter(pl.col("subject") == "churn.backtest.missing")["note"][0]


def test_run_folders_are_read_a_few_columns_at_a_time(tmp_path):
    """Run folders come as LazyFrames (RunTables, scan=True): the checks equal those on
    eager tables, and only the key and the checked column are read."""
    from crmkit.pipeline._drift import _column
    from crmkit.segments._run import RunTables

    def folder(name, shift, seed):
        feats, outs = _run(shift, seed=seed)
        for step, tables in outs.items():
            (tmp_path / name / step).mkdir(parents=True)
            for table, frame in tables.items():
                frame.with_columns(pl.lit("x").alias("unread")).write_parquet(
                    tmp_path / name / step / f"{table}.parquet")
        return feats, outs

    pf, po = folder("prev", 1.0, 1)
    feats, outs = folder("curr", 3.0, 2)
    eager = check_drift(feats, outs, previous_features=pf, previous_outputs=po)
    lazy = check_drift(feats, RunTables.from_folder(tmp_path / "curr", scan=True),
                       previous_features=pf,
                       previous_outputs=RunTables.from_folder(tmp_path / "prev", scan=True))
    assert lazy.checks.equals(eager.checks) and lazy.status == eager.status == "warning"
    [(_, read, col)] = _column(RunTables.from_folder(tmp_path / "curr", scan=True), None,
                               "churn.churn_scores.churn_prob_90d")
    assert read.columns == ["customer_id", "churn_prob_90d"] and col == "churn_prob_90d"


def _facts(churn_fit: str | None) -> dict:
    return {"churn": {"model": {"fitted_as_of": churn_fit}}} if churn_fit else {}


def test_a_score_is_not_gated_across_a_refit_but_keeps_its_value():
    """The night after a refit, the score moves because the model changed: the check
    keeps its PSI, says so, and does not gate; the same model on both nights gates."""
    pf, po = _run(1.0, seed=1)
    feats, _ = _run(1.0, seed=1)
    _, outs = _run(3.0, seed=2)  # the same customers; the scores shifted
    subject = "churn.churn_scores.churn_prob_90d"

    def check(now, before, **cfg):
        res = check_drift(feats, outs, previous_features=pf, previous_outputs=po,
                          step_facts=_facts(now), previous_step_facts=_facts(before),
                          config={"on_breach": "fail", "movement": [], **cfg})
        return res, res.checks.filter(pl.col("subject") == subject).row(0, named=True)

    same, row = check("2025-11-30", "2025-11-30")
    assert row["status"] == "breach" and row["value"] > 0.25 and same.failed
    refit, row_refit = check("2025-12-31", "2025-11-30")
    assert row_refit["status"] == "skipped" and row_refit["value"] == row["value"]
    assert "model refitted (fitted as of 2025-11-30 in the previous run, 2025-12-31 now)" \
        in row_refit["note"]
    assert not refit.failed and not any(subject in m for m in refit.messages)
    # the features still gate the population (financial assets did not move here)
    assert refit.checks.filter(pl.col("subject") == "financial_assets")["status"][0] == "ok"
    # unknown fit dates (a library caller without manifests) gate, as before
    assert check(None, None)[1]["status"] == "breach"
    assert check("2025-12-31", None)[1]["status"] == "breach"
    # and a bank that wants the refit night gated says so
    gated, row_gated = check("2025-12-31", "2025-11-30", gate_scores_across_refits=True)
    assert row_gated["status"] == "breach" and gated.failed


def test_the_demo_refit_night_raises_no_false_alarm(tmp_path):
    """Two monthly runs of the sample bank: every model refits on the second night. The
    score checks are recorded but not gated; before the rule, the propensity scores
    of products with few buyers breached (PSI up to 5.9)."""
    from crmkit.pipeline import run_pipeline
    from crmkit.pipeline.steps import churn, propensity

    cfg = {"run": {"output_dir": str(tmp_path / "runs"), "report": False, "n_shards": 2},
           "inputs": {"source": "sample", "sample_customers": 1200},
           "propensity": {"min_positives": 15, "n_estimators": 30, "cv": 2}}
    for day in ("2025-11-30", "2025-12-31"):
        manifest = run_pipeline(cfg, as_of=day, steps=[churn.STEP, propensity.STEP]).manifest
    assert manifest["steps"]["propensity"]["model"]["refitted"]
    drift = manifest["drift"]
    scores = [c for c in drift["checks"] if "." in c["subject"] and c["check"] == "psi"]
    assert scores and all(c["status"] == "skipped" and "model refitted" in c["note"]
                          and c["value"] is not None for c in scores)
    assert not [m for m in drift["messages"] if "propensity" in m or "churn" in m]
    features = [c for c in drift["checks"] if "." not in c["subject"]]
    assert features and all(c["status"] != "skipped" for c in features)
