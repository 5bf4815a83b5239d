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
    assert scores.columns[:3] == ["customer_id", "churn_prob_30d", "churn_prob_90d"]
    assert c1["refitted"] and c1["fitted_as_of"] == "2025-11-20"
    assert set(c1["backtest"]) >= {"auc_horizon", "c_index_harrell", "integrated_brier"}
    stored = json.loads((runs / "models" / "churn.json").read_text())
    assert stored["model"]["format"] == "crmkit.churn/1"

    run_pipeline(cfg, as_of="2025-11-20", steps=[STEP], progress=False)  # rerun: identical
    again = json.loads((runs / "2025-11-20" / "manifest.json").read_text())
    rel = c1["outputs"]["churn_scores"]
    assert again["outputs"][rel]["sha256"] == m1["outputs"][rel]["sha256"]

    # a run later in the month scores with the stored model
    run_pipeline(cfg, as_of="2025-11-30", steps=[STEP], progress=False)
    c2 = json.loads((runs / "2025-11-30" / "manifest.json").read_text())["steps"]["churn"]
    assert not c2["refitted"] and c2["fitted_as_of"] == "2025-11-20"
    # a backfill never uses a model fitted after its run date, and leaves the file alone
    run_pipeline(cfg, as_of="2025-11-10", steps=[STEP], progress=False)
    c3 = json.loads((runs / "2025-11-10" / "manifest.json").read_text())["steps"]["churn"]
    assert c3["refitted"] and c3["fitted_as_of"] == "2025-11-10"
    assert json.loads((runs / "models" / "churn.json").read_text())["fitted_as_of"] == \
        "2025-11-20"
