"""The churn step: refit on schedule or load, scores with reasons, backtest in the manifest."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import polars as pl
import pytest

from crmkit.churn import ChurnSettings, prepare_covariates, run_churn_step
from crmkit.exceptions import ConfigError


@pytest.fixture(scope="module")
def bank():
    from crmkit.datasets import make_bank
    from crmkit.features import build_features
    tables = make_bank(800, seed=3, as_of="2025-12-31")
    return tables, build_features(tables, as_of="2025-12-31")


def test_refit_then_load_gives_identical_scores(bank, tmp_path):
    tables, features = bank
    cfg = {"refit": "monthly", "horizons_days": [30, 90], "reasons": 2}
    first = run_churn_step(features, tables, "2025-12-31", cfg, tmp_path)
    assert first.refitted
    scores = first.tables["churn_scores"]
    assert scores.columns == ["customer_id", "churn_prob_30d", "churn_prob_90d",
                              "restricted_mean_days", "median_remaining_days", "reason_1",
                              "reason_1_contribution", "reason_2", "reason_2_contribution"]
    assert scores.height == features.height
    p = scores.select("churn_prob_30d", "churn_prob_90d").to_numpy()
    assert np.all((p >= 0) & (p <= 1)) and np.all(p[:, 1] >= p[:, 0])
    m = first.manifest
    assert m["model"] == "CoxPH" and m["fitted_as_of"] == "2025-12-31"
    bt = m["backtest"]
    assert bt["test_start"] == "2025-10-02" and bt["horizon_days"] == 90
    assert bt["auc_horizon"] is None or 0 <= bt["auc_horizon"] <= 1
    json.dumps(m)  # the manifest is JSON-able
    doc = json.loads((tmp_path / "churn.json").read_text())
    assert doc["model"]["format"] == "crmkit.churn/1"  # data, not a pickle

    # a later run in the same month loads the stored model
    later = run_churn_step(features, tables, "2025-12-31", cfg, tmp_path)
    assert not later.refitted and "loaded" in later.manifest["notes"][0]
    assert later.tables["churn_scores"].equals(scores)
    # changed settings force a refit
    changed = run_churn_step(features, tables, "2025-12-31", dict(cfg, penalizer=0.5), tmp_path)
    assert changed.refitted


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="Did you mean 'horizons_days'"):
        run_churn_step(pl.DataFrame(), {}, "2025-12-31", {"horizon_days": [30]})
    with pytest.raises(ConfigError, match="not in the features table"):
        prepare_covariates(pl.DataFrame({"customer_id": ["a"]}), ["tenure_days"])
    assert ChurnSettings().refit == "monthly"


def test_pipeline_step_contract(bank, tmp_path):
    from crmkit.pipeline._step import RunContext
    from crmkit.pipeline.steps.churn import STEP
    tables, features = bank
    ctx = RunContext(as_of=dt.date(2025, 12, 31), tables=tables, features=features,
                     model_dir=tmp_path)
    res = STEP.run(ctx, STEP.config_model(horizons_days=[90]))
    assert list(res.tables) == ["churn_scores"]
    assert ctx.stored_fit_date("churn") == dt.date(2025, 12, 31)
    assert res.manifest["refitted"]
