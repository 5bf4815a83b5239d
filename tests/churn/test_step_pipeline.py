"""The ``churn`` pipeline step inside a real nightly run (sample bank, temporary folder)."""

from __future__ import annotations

import json

import polars as pl
import pytest

pytest.importorskip("crmkit.pipeline._step")

from crmkit.pipeline import run_pipeline  # noqa: E402
from crmkit.pipeline.steps.churn import STEP  # noqa: E402


def _cfg(tmp_path, **churn):
    return {"run": {"name": "t", "output_dir": str(tmp_path / "runs"), "report": False},
            "inputs": {"source": "sample", "sample_customers": 800},
            "churn": {"horizons_days": [30, 90], "reasons": 2, **churn}}


def test_churn_step_in_nightly_runs(tmp_path):
    cfg = _cfg(tmp_path, refit="monthly")
    runs = tmp_path / "runs"
    run_pipeline(cfg, as_of="2025-11-20", steps=[STEP], progress=False)
    m1 = json.loads((runs / "2025-11-20" / "manifest.json").read_text())
    c1 = m1["steps"]["churn"]
    assert set(c1["outputs"]) == {"churn_scores"}
    scores = pl.read_parquet(runs / "2025-11-20" / c1["outputs"]["churn_scores"])
    assert scores.columns[:4] == ["customer_id", "risk_status", "churn_prob_30d",
                                  "churn_prob_90d"]
    # only customers at risk are scored; the others say why they are not
    assert set(scores["risk_status"]) == {"at_risk", "churned", "prospect", "silent"}
    not_at_risk = scores.filter(pl.col("risk_status") != "at_risk")
    assert not_at_risk["churn_prob_90d"].null_count() == not_at_risk.height > 0
    assert scores.filter(pl.col("risk_status") == "at_risk")["churn_prob_90d"].null_count() == 0
    assert c1["n_scored"] == c1["risk_status"]["at_risk"]
    model = c1["model"]
    assert model["refitted"] and model["fitted_as_of"] == "2025-11-20"
    assert set(model["metrics"]) >= {"auc_horizon", "c_index_harrell", "integrated_brier"}
    stored = json.loads((runs / "models" / "churn" / "2025-11-20.json").read_text())
    assert stored["format"] == "crmkit.model/1"
    assert stored["models"]["model"]["format"].startswith("crmkit.")  # the estimator envelope

    run_pipeline(cfg, as_of="2025-11-20", steps=[STEP], progress=False, force=True)  # identical
    again = json.loads((runs / "2025-11-20" / "manifest.json").read_text())
    rel = c1["outputs"]["churn_scores"]
    assert again["outputs"][rel]["sha256"] == m1["outputs"][rel]["sha256"]

    # a run later in the month scores with the stored model
    run_pipeline(cfg, as_of="2025-11-30", steps=[STEP], progress=False)
    c2 = json.loads((runs / "2025-11-30" / "manifest.json").read_text())["steps"]["churn"]
    assert not c2["model"]["refitted"] and c2["model"]["fitted_as_of"] == "2025-11-20"
    # a backfill never uses a model fitted after its run date; both fits are kept
    run_pipeline(cfg, as_of="2025-11-10", steps=[STEP], progress=False)
    c3 = json.loads((runs / "2025-11-10" / "manifest.json").read_text())["steps"]["churn"]
    assert c3["model"]["refitted"] and c3["model"]["fitted_as_of"] == "2025-11-10"
    assert sorted(p.name for p in (runs / "models" / "churn").iterdir()) == [
        "2025-11-10.json", "2025-11-20.json"]
