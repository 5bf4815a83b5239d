"""The lifecycle step of the nightly pipeline, run on a RunContext."""

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from crmkit.exceptions import ConfigError
from crmkit.features import build_features
from crmkit.lifecycle import assign_stages, lifecycle_features
from crmkit._config import parse_config
from crmkit.pipeline._step import RunContext
from crmkit.pipeline.steps.lifecycle import STEP, LifecycleStepConfig

from ._util import BANK, END


def _ctx(day, previous_dir=None, outputs=None):
    return RunContext(as_of=day, tables=BANK, features=build_features(BANK, as_of=day),
                      outputs=outputs or {}, previous_run_dir=previous_dir)


def test_step_two_runs(tmp_path):
    cfg = LifecycleStepConfig()
    first_day = dt.date(2025, 11, 30)
    first = STEP.run(_ctx(first_day), cfg)
    assert set(first.tables) == {"stages", "stage_changes", "transition_matrix", "actions"}
    assert first.manifest["previous_run"] is False
    assert first.tables["stage_changes"].height == first.tables["stages"].height
    (tmp_path / "lifecycle").mkdir()
    first.tables["stages"].write_parquet(tmp_path / "lifecycle" / "stages.parquet")

    tiers = pl.DataFrame({"customer_id": BANK["customers"]["customer_id"],
                          "tier": ["Diamond"] * BANK["customers"].height})
    second = STEP.run(_ctx(END, tmp_path, {"value": {"value_tiers": tiers}}), cfg)
    assert second.manifest["previous_run"] is True
    expected = assign_stages(lifecycle_features(BANK, as_of=END), as_of=END,
                             previous=first.tables["stages"])
    assert second.tables["stages"].equals(expected)
    changes = second.tables["stage_changes"]
    assert changes.height < expected.height and (changes["date"] == END).all()
    assert second.manifest["stages"] == dict(
        expected.group_by("stage").len().sort("stage").iter_rows())
    declining = second.tables["actions"].filter(pl.col("stage") == "decline")
    assert set(declining["action"]) <= {"senior_rm_visit"}


def test_step_uses_model_outputs_when_present():
    p_alive = pl.DataFrame({"customer_id": BANK["customers"]["customer_id"],
                            "p_alive": [0.0] * BANK["customers"].height})
    cfg = LifecycleStepConfig(preset="retail_bank", model_inputs=[
        {"step": "churn", "table": "risk", "column": "p_alive", "feature": "churn_risk"}])
    out = STEP.run(_ctx(END, outputs={"churn": {"risk": p_alive.with_columns(
        pl.lit(0.9).alias("p_alive"))}}), cfg)
    assert out.manifest["model_inputs_used"] == ["churn.risk.p_alive"]
    assert "churn_risk" in out.manifest["rules_fired"]


def test_step_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="unknown key 'preste'.*'preset'"):
        parse_config(LifecycleStepConfig, {"preste": "retail_bank"}, "lifecycle")
    with pytest.raises(ConfigError, match="Unknown lifecycle preset 'retail_bnk'"):
        parse_config(LifecycleStepConfig, {"preset": "retail_bnk"}, "lifecycle")
    with pytest.raises(ConfigError, match="unknown parameter 'dormant_day'"):
        parse_config(LifecycleStepConfig, {"params": {"dormant_day": 3}}, "lifecycle")


def test_nightly_run_writes_and_lists_lifecycle_outputs(tmp_path):
    import json

    from crmkit.pipeline._run import run_pipeline

    config = {"run": {"output_dir": str(tmp_path / "runs"), "report": False},
              "inputs": {"source": "sample", "sample_customers": 300, "sample_seed": 3},
              "lifecycle": {"preset": "retail_bank"}}
    for day in ("2025-11-30", "2025-12-31"):
        run_pipeline(config, as_of=day, steps=[STEP], progress=False)
    run_dir = tmp_path / "runs" / "2025-12-31"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    outs = manifest["steps"]["lifecycle"]["outputs"]
    assert set(outs) == {"stages", "stage_changes", "transition_matrix", "actions"}
    assert manifest["steps"]["lifecycle"]["previous_run"] is True
    for rel in outs.values():
        assert (run_dir / rel).exists() and rel in manifest["outputs"]
    stages = pl.read_parquet(run_dir / "lifecycle" / "stages.parquet")
    prev = pl.read_parquet(tmp_path / "runs" / "2025-11-30" / "lifecycle" / "stages.parquet")
    changes = pl.read_parquet(run_dir / "lifecycle" / "stage_changes.parquet")
    joined = stages.join(prev, on="customer_id", how="left", suffix="_prev")
    moved = joined.filter(pl.col("stage_prev").is_null() | (pl.col("stage") != pl.col("stage_prev")))
    assert changes.height == moved.height


def test_preset_path_is_relative_to_the_config_file(tmp_path, monkeypatch):
    """A TOML preset named in the pipeline config is found next to the config file,
    whatever the working directory."""
    import shutil

    from crmkit.pipeline import load_pipeline_config, load_steps

    preset = Path(__file__).resolve().parents[2] / "pipelines" / "presets" / "lifecycle_retailer.toml"
    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    shutil.copy(preset, conf_dir / "my_stages.toml")
    (conf_dir / "nightly.toml").write_text('[lifecycle]\npreset = "my_stages.toml"\n')
    monkeypatch.chdir(tmp_path)  # not the config's folder
    cfg, _ = load_pipeline_config(conf_dir / "nightly.toml", load_steps())
    assert Path(cfg.lifecycle.preset) == conf_dir / "my_stages.toml"
