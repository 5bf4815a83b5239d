"""The nightly run: run folder, manifest, quarantine, atomicity, reruns, CLI."""

import datetime as dt
import json
import shutil
from pathlib import Path

import polars as pl
import pytest

from crmkit import ConfigError, SchemaError
from crmkit.cli import main
from crmkit.datasets import make_bank
from crmkit.io import write_tables
from crmkit.pipeline import Shard, ShardOutput, Step, StepSummary, run_pipeline
from crmkit.pipeline._config import StrictModel


def _config(tmp_path, source="sample", **sections):
    cfg = {"run": {"output_dir": str(tmp_path / "runs")},
           "inputs": {"source": source, "sample_customers": 400}}
    for name, values in sections.items():
        cfg.setdefault(name, {}).update(values)
    return cfg


def test_run_folder_manifest_and_report(tmp_path):
    res = run_pipeline(_config(tmp_path), as_of="2025-12-31", steps=[])
    run = tmp_path / "runs" / "2025-12-31"
    assert res.run_dir == run
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["run"]["as_of"] == "2025-12-31"
    assert manifest["inputs"]["tables"]["customers"]["rows"] == 400
    assert manifest["outputs"]["features/features.parquet"]["rows"] == 400
    assert set(manifest["versions"]) >= {"python", "polars", "crmkit"}
    assert set(manifest["timings_seconds"]) == {"load", "validate_features", "write"}
    assert manifest["config"]["features"]["windows"] == [30, 90, 365]
    assert pl.read_parquet(run / "features" / "features.parquet").equals(res.features)
    assert "<h1>crmkit run report" in (run / "report.html").read_text()
    # no temporary folders left behind
    assert [p.name for p in (tmp_path / "runs").iterdir()
            if not p.name.endswith(".lock")] == ["2025-12-31"]


def test_rerun_gives_identical_outputs(tmp_path):
    """Every registered step, twice on the same inputs and stored models: every output
    file has the same bytes (float sums included, whatever the thread split)."""
    cfg = _config(tmp_path)
    cfg["inputs"]["sample_customers"] = 3000
    first = run_pipeline(cfg, as_of="2025-12-31").manifest
    second = run_pipeline(cfg, as_of="2025-12-31", force=True).manifest
    assert second["run"]["started_at"] >= first["run"]["started_at"]
    assert set(first["steps"]) == {"value", "clv", "churn", "lifecycle", "segments"}
    assert len(first["outputs"]) > 10
    assert first["outputs"] == second["outputs"]  # same rows, same sha256 of every file


def test_quarantine_writes_rejected_rows_and_goes_on(tmp_path):
    write_tables(make_bank(300, seed=2, years=1, messy=True), tmp_path / "data")
    # the messy bank breaks a few rows of every table, a large share of the small
    # catalogue tables: raise the rejected-share gate so that the run goes on
    cfg = _config(tmp_path, source=str(tmp_path / "data"),
                  validation={"quality": {"max_rejected_share": 0.5}})
    res = run_pipeline(cfg, as_of="2025-12-31", steps=[])
    qdir = res.run_dir / "quarantine"
    rejected = pl.read_parquet(qdir / "transactions.parquet")
    assert rejected.height == 7 and rejected["_reason"].null_count() == 0
    problems = pl.read_csv(qdir / "problems.csv")
    assert problems.height == len(res.manifest["validation"]["problems"]) > 5
    assert res.manifest["inputs"]["tables"]["transactions"]["rejected"] == 7


def test_strict_mode_stops_and_writes_nothing(tmp_path):
    write_tables(make_bank(300, seed=2, years=1, messy=True), tmp_path / "data")
    cfg = _config(tmp_path, source=str(tmp_path / "data"), validation={"mode": "strict"})
    with pytest.raises(SchemaError, match="problems in the input tables"):
        run_pipeline(cfg, as_of="2025-12-31", steps=[])
    assert not (tmp_path / "runs").exists() or not [
        p for p in (tmp_path / "runs").iterdir() if not p.name.endswith(".lock")]


def test_crash_in_a_step_keeps_the_previous_complete_run(tmp_path):
    run_pipeline(_config(tmp_path), as_of="2025-12-31", steps=[])
    before = (tmp_path / "runs" / "2025-12-31" / "manifest.json").read_text()

    class Empty(StrictModel):
        pass

    def boom(shard: Shard, cfg, state) -> ShardOutput:
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        run_pipeline(_config(tmp_path), as_of="2025-12-31",
                     steps=[Step("boom", Empty, score=boom)])
    assert (tmp_path / "runs" / "2025-12-31" / "manifest.json").read_text() == before
    # neither a half run folder nor a work folder is left behind
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()
                  if not p.name.endswith(".lock")) == ["2025-12-31"]


def test_steps_see_previous_run_and_write_their_tables(tmp_path):
    class Cfg(StrictModel):
        label: str = "x"

    seen = {}

    def count_step(shard: Shard, cfg: Cfg, state) -> ShardOutput:
        seen[shard.as_of] = shard.previous("count", "labels")
        feats = shard.get("features")
        table = feats.select("customer_id", pl.lit(cfg.label).alias("label"))
        return ShardOutput(tables={"labels": table},
                           partials={"n": pl.DataFrame({"n": [feats.height]})})

    def finalize(partials, cfg, state, ctx) -> StepSummary:
        n = int(partials["n"]["n"].sum())
        return StepSummary(tables={"sizes": pl.DataFrame({"label": [cfg.label], "n": [n]})},
                           facts={"customers": n})

    step = Step("count", Cfg, score=count_step, outputs=("labels",), finalize=finalize)
    cfg = _config(tmp_path, count={"label": "hello"})
    run_pipeline(cfg, as_of="2025-11-30", steps=[step])
    res = run_pipeline(cfg, as_of="2025-12-31", steps=[step])
    assert seen[dt.date(2025, 11, 30)] is None  # first run: nothing before it
    prev = seen[dt.date(2025, 12, 31)]
    assert prev is not None and set(prev["label"]) == {"hello"}
    assert res.manifest["run"]["previous_run"] == "2025-11-30"
    assert res.manifest["steps"]["count"] == {
        "outputs": {"labels": "count/labels.parquet", "sizes": "count/sizes.parquet"},
        "customers": 400}
    assert pl.read_parquet(res.run_dir / "count" / "sizes.parquet")["n"].to_list() == [400]
    with pytest.raises(ConfigError, match="Did you mean 'label'"):
        run_pipeline(_config(tmp_path, count={"lable": "x"}), as_of="2025-12-31", steps=[step])


def test_sample_bank_replays_history_for_earlier_dates(tmp_path):
    res = run_pipeline(_config(tmp_path), as_of="2024-06-30", steps=[])
    assert res.features["tenure_days"].min() >= 0
    assert res.manifest["inputs"]["tables"]["transactions"]["rejected"] == 0


def test_cli_demo_and_one_line_errors(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "demo"), "--customers", "300",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "run 2025-11-30" in out and "run 2025-12-31" in out
    assert (tmp_path / "demo" / "runs" / "2025-12-31" / "report.html").exists()
    bad = tmp_path / "bad.toml"
    bad.write_text("[inputs]\nsorce = 'sample'\n")
    assert main(["run", str(bad), "--as-of", "2025-12-31"]) == 2  # bad config
    err = capsys.readouterr().err
    assert err.startswith("crmkit: error: Invalid pipeline config: inputs: unknown key 'sorce'")
    assert "Did you mean 'source'?" in err and "Traceback" not in err
    assert main(["--verbose", "run", str(bad), "--as-of", "2025-12-31"]) == 2
    assert "Traceback" in capsys.readouterr().err
    assert main(["check-config", str(tmp_path / "demo" / "nightly.toml")]) == 0
    assert '"future_rows": "cut"' in capsys.readouterr().out
    shutil.rmtree(tmp_path / "demo")


def test_the_example_config_runs_on_the_repository_sample_data(tmp_path):
    """``crmkit run pipelines/nightly.toml`` as shipped: it reads ``data/`` (the CSV sample
    bank), rejects nothing and writes every default step's tables."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    (tmp_path / "pipelines").mkdir()
    shutil.copy(root / "pipelines" / "nightly.toml", tmp_path / "pipelines" / "nightly.toml")
    shutil.copytree(root / "data", tmp_path / "data")
    proc = subprocess.run([sys.executable, "-m", "crmkit.cli", "run", "pipelines/nightly.toml",
                           "--as-of", "2025-12-31", "--no-progress"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((tmp_path / "runs" / "2025-12-31" / "manifest.json").read_text())
    assert manifest["inputs"]["source"] == "../data"
    assert manifest["outputs"]["features/features.parquet"]["rows"] == 2000
    assert all(t["rejected"] == 0 for t in manifest["inputs"]["tables"].values())
    assert set(manifest["steps"]) == {"value", "clv", "churn", "lifecycle", "propensity",
                                      "assign", "calls", "segments"}
    # books and call lists follow the retail-bank preset's rules
    from crmkit.assign import ELIGIBILITY_PRESETS

    run = tmp_path / "runs" / "2025-12-31"
    eligible = ELIGIBILITY_PRESETS["retail_bank"]
    book = pl.read_parquet(run / "assign" / "assignment.parquet")
    managers = pl.read_csv(tmp_path / "data" / "managers.csv")
    tiers = pl.read_parquet(run / "value" / "value_tiers.parquet").select("customer_id", "tier")
    assert manifest["steps"]["assign"]["status"] == "optimal"
    assert manifest["steps"]["assign"]["unplaced"] == 0
    assert all(level in eligible[tier] for tier, level in book.select("tier", "level").rows())
    vips = tiers.filter(pl.col("tier") != "Mass")
    assert sorted(book["customer_id"]) == sorted(vips["customer_id"])  # below Gold: no RM
    per_rm = book.group_by("manager_id").len().join(managers, on="manager_id")
    assert (per_rm["len"] <= per_rm["capacity"]).all() and per_rm["active"].all()
    local = book.filter(pl.col("level") != "private_banking")
    assert (local["branch_id"] == local["manager_branch_id"]).all()  # branch territory
    calls = pl.read_parquet(run / "calls" / "call_list.parquet")
    assert calls.height > 0
    owner = calls.join(book.select("customer_id", pl.col("manager_id").alias("owner")),
                       on="customer_id")
    assert owner.height == calls.height and (owner["manager_id"] == owner["owner"]).all()
    customers = pl.read_csv(tmp_path / "data" / "customers.csv")
    reached = calls.join(customers, on="customer_id")
    assert not reached.filter((pl.col("channel") == "phone") & pl.col("opt_out_phone")).height
    assert not reached.filter((pl.col("channel") == "email") & pl.col("opt_out_email")).height
