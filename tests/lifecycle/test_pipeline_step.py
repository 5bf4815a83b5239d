"""The lifecycle step of the nightly pipeline, scored on one shard and in a real run."""

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from crmkit.exceptions import ConfigError
from crmkit.features import build_features
from crmkit.lifecycle import assign_stages, lifecycle_features
from crmkit._config import parse_config
from crmkit.pipeline._step import Shard
from crmkit.pipeline.steps.lifecycle import STEP, LifecycleStepConfig

from ._util import BANK, END


def _shard(day, previous=None, outputs=None):
    readers = {"features": lambda: build_features(BANK, as_of=day),
               "transactions": lambda: BANK["transactions"],
               "customers": lambda: BANK["customers"]}
    for name, frame in (outputs or {}).items():
        readers[name] = (lambda f: lambda: f)(frame)
    prev = (lambda step, table, shard: previous) if previous is not None else None
    return Shard(0, 1, day, readers, prev, step="lifecycle")


class _Ctx:
    def __init__(self, day, previous):
        self.as_of, self.previous_run_dir = day, previous


def _run(day, cfg, previous=None, outputs=None):
    out = STEP.score(_shard(day, previous, outputs), cfg, None)
    partials = {k: v for k, v in out.partials.items()}
    summary = STEP.finalize(partials, cfg, None, _Ctx(day, previous))
    return {**out.tables, **summary.tables}, summary.facts


def test_step_two_runs():
    cfg = LifecycleStepConfig()
    first_day = dt.date(2025, 11, 30)
    first, facts = _run(first_day, cfg)
    assert set(first) == {"stages", "stage_changes", "transition_matrix", "actions",
                          "suppressed_actions", "action_responses"}
    assert facts["previous_run"] is False
    assert first["stage_changes"].height == first["stages"].height

    tiers = pl.DataFrame({"customer_id": BANK["customers"]["customer_id"],
                          "tier": ["Diamond"] * BANK["customers"].height})
    second, facts = _run(END, cfg, first["stages"], {"value.value_tiers": tiers})
    assert facts["previous_run"] is True
    expected = assign_stages(lifecycle_features(BANK, as_of=END), as_of=END,
                             previous=first["stages"])
    assert second["stages"].equals(expected)
    changes = second["stage_changes"]
    assert changes.height < expected.height and (changes["date"] == END).all()
    assert facts["stages"] == dict(expected.group_by("stage").len().sort("stage").iter_rows())
    assert facts["stage_changes"] == changes.height
    matrix = second["transition_matrix"]
    assert int(matrix["count"].sum()) == expected.height
    declining = second["actions"].filter(pl.col("stage") == "decline")
    assert set(declining["action"]) <= {"senior_rm_visit"}


def test_step_uses_model_outputs_when_present():
    risk = pl.DataFrame({"customer_id": BANK["customers"]["customer_id"],
                         "churn_prob_180d": [0.9] * BANK["customers"].height})
    cfg = LifecycleStepConfig(preset="retail_bank", model_inputs=[
        {"step": "churn", "table": "churn_scores", "column": "churn_prob_180d",
         "feature": "churn_risk"}])
    _, facts = _run(END, cfg, outputs={"churn.churn_scores": risk})
    assert facts["model_inputs_used"] == ["churn.churn_scores.churn_prob_180d"]
    assert "churn_risk" in facts["rules_fired"]
    _, without = _run(END, cfg)  # the churn step did not run: the rule is skipped
    assert without["model_inputs_used"] == [] and "churn_risk" not in without["rules_fired"]



def test_default_reads_the_churn_steps_capacity_sized_flag():
    """By default churn_risk is the churn step's churn_flag as 1.0 / 0.0: the preset's
    churn_risk rule puts exactly the flagged customers (not already placed by an
    earlier rule) in decline, whatever their probability."""
    ids = BANK["customers"]["customer_id"]
    flags = pl.Series([i % 7 == 0 for i in range(ids.len())])
    risk = pl.DataFrame({"customer_id": ids, "churn_prob_180d": [0.01] * ids.len(),
                         "churn_flag": flags})
    tables, facts = _run(END, LifecycleStepConfig(), outputs={"churn.churn_scores": risk})
    assert facts["model_inputs_used"] == ["churn.churn_scores.churn_flag"]
    by_rule = tables["stages"].join(risk, on="customer_id").filter(
        pl.col("stage_rule") == "churn_risk")
    assert by_rule.height == facts["rules_fired"]["churn_risk"] > 0
    assert by_rule["churn_flag"].all()
    # flagged customers left to the churn_risk rule all get it
    later = {"churn_risk", "decline", "growth", "mature"}
    flagged = tables["stages"].join(risk.filter(pl.col("churn_flag")), on="customer_id")
    assert flagged.filter(pl.col("stage_rule").is_in(list(later)))["stage_rule"].unique() \
        .to_list() == ["churn_risk"]

def test_step_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="unknown key 'preste'.*'preset'"):
        parse_config(LifecycleStepConfig, {"preste": "retail_bank"}, "lifecycle")
    with pytest.raises(ConfigError, match="Unknown lifecycle preset 'retail_bnk'"):
        parse_config(LifecycleStepConfig, {"preset": "retail_bnk"}, "lifecycle")
    with pytest.raises(ConfigError, match="unknown parameter 'dormant_day'"):
        parse_config(LifecycleStepConfig, {"params": {"dormant_day": 3}}, "lifecycle")
    with pytest.raises(ConfigError, match="churn.risk is not a table this step can read"):
        parse_config(LifecycleStepConfig, {"model_inputs": [
            {"step": "churn", "table": "risk", "column": "p", "feature": "f"}]}, "lifecycle")


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
    assert set(outs) == {"stages", "stage_changes", "transition_matrix", "actions",
                         "suppressed_actions", "action_responses"}
    assert manifest["steps"]["lifecycle"]["previous_run"] is True
    # no action of the run names a channel its customer opted out of
    from crmkit.datasets import make_bank

    customers = make_bank(300, seed=3)["customers"]
    actions = pl.read_parquet(run_dir / "lifecycle" / "actions.parquet").join(
        customers, on="customer_id")
    for channel in ("email", "sms", "phone"):
        assert actions.filter((pl.col("channel") == channel)
                              & pl.col(f"opt_out_{channel}")).height == 0
    suppressed = pl.read_parquet(run_dir / "lifecycle" / "suppressed_actions.parquet")
    assert suppressed.height == sum(
        manifest["steps"]["lifecycle"]["actions_suppressed"].values()) > 0
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
