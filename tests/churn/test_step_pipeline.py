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
    cfg = _cfg(tmp_path, refit="monthly", flag_horizon_days=90)
    runs = tmp_path / "runs"
    run_pipeline(cfg, as_of="2025-11-20", steps=[STEP], progress=False)
    m1 = json.loads((runs / "2025-11-20" / "manifest.json").read_text())
    c1 = m1["steps"]["churn"]
    assert set(c1["outputs"]) == {"churn_scores"}
    scores = pl.read_parquet(runs / "2025-11-20" / c1["outputs"]["churn_scores"])
    assert scores.columns == ["customer_id", "risk_status", "churn_prob_30d", "churn_prob_90d",
                              "churn_flag", "churn_cause", "reason_1", "reason_1_contribution",
                              "reason_2", "reason_2_contribution"]
    # only customers at risk are scored; the others say why they are not
    assert set(scores["risk_status"]) == {"at_risk", "churned", "prospect", "silent"}
    not_at_risk = scores.filter(pl.col("risk_status") != "at_risk")
    assert not_at_risk["churn_prob_90d"].null_count() == not_at_risk.height > 0
    assert scores.filter(pl.col("risk_status") == "at_risk")["churn_prob_90d"].null_count() == 0
    assert c1["n_scored"] == c1["risk_status"]["at_risk"]
    at_risk = scores.filter(pl.col("risk_status") == "at_risk")
    # probabilities never fall with the horizon; the flag is sized to capacity (5% default)
    assert (at_risk["churn_prob_90d"] >= at_risk["churn_prob_30d"]).all()
    assert not_at_risk["churn_flag"].null_count() == not_at_risk.height
    assert c1["n_flagged"] == at_risk["churn_flag"].sum() == pytest.approx(
        0.05 * at_risk.height, abs=3)
    assert set(at_risk["churn_cause"]) <= {"closure", "silence"}
    model = c1["model"]
    assert model["refitted"] and model["fitted_as_of"] == "2025-11-20"
    assert set(model["metrics"]) >= {"auc_horizon", "c_index_harrell", "integrated_brier",
                                     "flag", "coefficients"}
    assert model["metrics"]["auc_horizon"] > 0.7  # held-out landmarks
    # landmark training: several landmarks stacked, the latest ones held out
    assert len(model["training"]["landmarks"]) == 6
    assert len(model["training"]["calibration_landmarks"]) == 4
    # the sample bank keeps 25 months of balances: the earliest landmarks' asset windows
    # start before them, which the run says (the earliest ones only, never the latest)
    every = sorted(model["training"]["landmarks"] + model["training"]["calibration_landmarks"])
    early = model["training"]["landmarks_before_balances"]
    assert 0 < len(early) < len(every) and early == every[:len(early)]
    assert any("before the first balance row" in w for w in m1["warnings"])
    stored = json.loads((runs / "models" / "churn" / "2025-11-20.json").read_text())
    assert stored["format"] == "crmkit.model/1"
    # the store's envelope: the step's payload (a ChurnRiskModel document) under "data"
    assert stored["payload_layout"] == "data"
    doc = stored["data"]["model"]
    assert doc["class"] == "ChurnRiskModel"
    assert all(m["format"] == "crmkit.model/1"  # each survival model in the estimator envelope
               for m in doc["survival_models"].values())

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


def test_churn_config_is_strict_and_checks_the_flag_horizon():
    from crmkit._config import parse_config
    from crmkit.exceptions import ConfigError
    from crmkit.pipeline.steps.churn import ChurnConfig

    cfg = parse_config(ChurnConfig, {"flag_capacity": 500}, "churn")
    assert cfg.churn_definition == "retail_bank_combined" and cfg.calibration_landmarks == 4
    with pytest.raises(ConfigError, match="flag_horizon_days"):
        parse_config(ChurnConfig, {"horizons_days": [30, 180]}, "churn")
    with pytest.raises(ConfigError, match="Did you mean 'landmarks'"):
        parse_config(ChurnConfig, {"landmark": 3}, "churn")
    with pytest.raises(ConfigError, match="training_window_days"):  # the old window is gone
        parse_config(ChurnConfig, {"training_window_days": 365}, "churn")
    train, held = cfg.landmark_dates(__import__("datetime").date(2025, 12, 31))
    assert len(train) == 6 and len(held) == 4 and max(train) < min(held)
