"""The step contract: shard-count independence, the model store's refit rule, failed
and killed runs, corrupt models, declared inputs, finite model files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from crmkit import ConfigError
from crmkit._config import StrictModel
from crmkit.pipeline import ModelStore, Shard, ShardOutput, Step, load_steps, run_pipeline
from crmkit.pipeline._registry import DEFAULT_STEPS
from crmkit.pipeline.steps.clv import STEP as CLV
from crmkit.pipeline.steps.value import STEP as VALUE

ROOT = Path(__file__).resolve().parents[2]


def _config(out: Path, customers: int = 1500, **run) -> dict:
    return {"run": {"output_dir": str(out), "report": False, **run},
            "inputs": {"source": "sample", "sample_customers": customers}}


def _hashes(manifest: dict) -> dict[str, str]:
    return {rel: facts["sha256"] for rel, facts in manifest["outputs"].items()}


def test_outputs_identical_for_any_shard_count(tmp_path):
    """Every step, two runs (the second reads the first): the same bytes for 1, 3, 8 shards."""
    seen = {}
    for n in (1, 3, 8):
        cfg = _config(tmp_path / f"n{n}", n_shards=n)
        first = run_pipeline(cfg, as_of="2025-11-30")
        second = run_pipeline(cfg, as_of="2025-12-31")
        assert second.manifest["run"]["n_shards"] == n
        seen[n] = (_hashes(first.manifest), _hashes(second.manifest))
    assert len(seen[1][1]) >= 12
    assert seen[1] == seen[3] == seen[8]


def test_run_steps_selects_registered_steps(tmp_path):
    res = run_pipeline({**_config(tmp_path, customers=300, steps=["value"])},
                       as_of="2025-12-31")
    assert list(res.manifest["steps"]) == ["value"]
    with pytest.raises(ConfigError, match="'vlaue' is not a step. Did you mean 'value'"):
        run_pipeline(_config(tmp_path, steps=["vlaue"]), as_of="2025-12-31")


def test_auto_shards_follow_the_memory_target(tmp_path):
    res = run_pipeline(_config(tmp_path, customers=600, n_shards="auto", shard_memory_mb=1),
                       as_of="2025-12-31", steps=[VALUE])
    assert res.manifest["run"]["n_shards"] > 1
    with pytest.raises(ConfigError, match="n_shards must be 'auto' or a whole number"):
        run_pipeline(_config(tmp_path, n_shards=0), as_of="2025-12-31", steps=[])


def test_backfill_never_uses_a_model_fitted_after_the_run_date(tmp_path):
    """The reproduction of the issue: December's CLV model must not score June."""
    steps = [VALUE, CLV]
    run_pipeline(_config(tmp_path / "a"), as_of="2025-12-31", steps=steps)
    june = run_pipeline(_config(tmp_path / "a"), as_of="2025-06-30", steps=steps)
    model = june.manifest["steps"]["clv"]["model"]
    assert model["refitted"] and model["fitted_as_of"] == "2025-06-30"
    alone = run_pipeline(_config(tmp_path / "b"), as_of="2025-06-30", steps=steps)
    assert june.outputs["clv"]["clv"].equals(alone.outputs["clv"]["clv"])
    # both fits are kept; a July run uses June's (the newest on or before July)
    july = run_pipeline({**_config(tmp_path / "a"), "clv": {"refit": "yearly"}},
                        as_of="2025-07-31", steps=steps)
    assert not july.manifest["steps"]["clv"]["model"]["refitted"]
    assert july.manifest["steps"]["clv"]["model"]["fitted_as_of"] == "2025-06-30"
    assert sorted(p.name for p in (tmp_path / "a" / "models" / "clv").glob("*.json")) == [
        "2025-06-30.json", "2025-12-31.json"]
    # other settings than the stored fit's: refitted, and said why
    other = run_pipeline({**_config(tmp_path / "a"), "clv": {"horizon": 26}},
                         as_of="2025-07-31", steps=steps)
    assert other.manifest["steps"]["clv"]["model"]["refit_reason"].startswith("settings changed")


class _Empty(StrictModel):
    pass


def _boom(shard: Shard, cfg, state) -> ShardOutput:
    raise RuntimeError("disk on fire")


def test_a_failed_run_changes_nothing_in_the_store(tmp_path):
    crash = Step("crash", _Empty, score=_boom, inputs=("clv.clv",))
    with pytest.raises(RuntimeError, match="disk on fire"):
        run_pipeline(_config(tmp_path), as_of="2025-12-31", steps=[VALUE, CLV, crash])
    models = tmp_path / "models"
    assert not models.exists() or not list(models.rglob("*.json"))
    # no run folder and no work folder (the date's lock file stays, empty of meaning)
    assert [p.name for p in tmp_path.iterdir()
            if p.name != "models" and not p.name.endswith(".lock")] == []
    ok = run_pipeline(_config(tmp_path), as_of="2025-12-31", steps=[VALUE, CLV])
    assert ok.manifest["steps"]["clv"]["model"]["refitted"]
    clv = ok.outputs["clv"]["clv"]
    assert clv["clv"].null_count() < clv.height // 2 and not clv["clv"].is_nan().any()


def test_a_corrupt_stored_model_is_named_and_refitted(tmp_path):
    steps = [VALUE, CLV]
    run_pipeline(_config(tmp_path), as_of="2025-12-10", steps=steps)
    path = tmp_path / "models" / "clv" / "2025-12-10.json"
    path.write_text(path.read_text()[:200])  # cut in half
    res = run_pipeline(_config(tmp_path), as_of="2025-12-20", steps=steps)
    model = res.manifest["steps"]["clv"]["model"]
    assert model["refitted"] and str(path) in model["refit_reason"]
    # a readable envelope whose payload is not a model: named too
    good = tmp_path / "models" / "clv" / "2025-12-20.json"
    doc = json.loads(good.read_text())
    doc["models"]["transaction_model"] = {"nonsense": 1}
    good.write_text(json.dumps(doc))
    res = run_pipeline(_config(tmp_path), as_of="2025-12-21", steps=steps)
    assert "does not load" in res.manifest["steps"]["clv"]["model"]["refit_reason"]
    # where refits are forbidden, the run stops and names the file
    (tmp_path / "models" / "clv" / "2025-12-21.json").write_text("{")
    cfg = {**_config(tmp_path), "clv": {"refit": "never"}}
    with pytest.raises(ConfigError, match=r"2025-12-21\.json.*refit is 'never'"):
        run_pipeline(cfg, as_of="2025-12-22", steps=steps)


def test_other_feature_options_refit_the_models_fitted_on_features(tmp_path):
    """A model whose step reads ``features`` (churn's covariates include the financial
    assets) was fitted on features built with the run's [features] options; when they
    change, the stored model is refitted, saying why; with the same options it is reused."""
    from crmkit.pipeline.steps.churn import STEP as CHURN

    run_pipeline(_config(tmp_path, 800), as_of="2025-12-10", steps=[CHURN])
    same = run_pipeline(_config(tmp_path, 800), as_of="2025-12-11", steps=[CHURN])
    assert not same.manifest["steps"]["churn"]["model"]["refitted"]
    cfg = {**_config(tmp_path, 800), "features": {"asset_weights": {"deposit": 1.0}}}
    other = run_pipeline(cfg, as_of="2025-12-12", steps=[CHURN])
    model = other.manifest["steps"]["churn"]["model"]
    assert model["refitted"] and "settings changed" in model["refit_reason"]


def test_a_step_reading_an_input_nobody_produces_fails_at_config_check(tmp_path):
    lonely = Step("lonely", _Empty, score=_boom, inputs=("features", "propensity.scores"))
    with pytest.raises(ConfigError, match="Step 'lonely' reads 'propensity.scores', which no "
                                          "step produces"):
        run_pipeline(_config(tmp_path), as_of="2025-12-31", steps=[VALUE, lonely])
    assert not tmp_path.exists() or not any(tmp_path.iterdir())  # nothing was computed
    a = Step("a", _Empty, score=_boom, inputs=("b.t",), outputs=("t",))
    b = Step("b", _Empty, score=_boom, inputs=("a.t",), outputs=("t",))
    with pytest.raises(ConfigError, match="cycle"):
        run_pipeline(_config(tmp_path), as_of="2025-12-31", steps=[a, b])


def test_steps_are_ordered_by_their_inputs_not_their_listing(tmp_path):
    steps = [s for s in reversed(load_steps()) if s.name in DEFAULT_STEPS]
    res = run_pipeline(_config(tmp_path, customers=400), as_of="2025-12-31", steps=steps)
    order = list(res.manifest["steps"])
    assert sorted(order) == ["churn", "clv", "lifecycle", "segments", "value"]
    # lifecycle reads clv, churn and value; segments reads them all
    assert order.index("lifecycle") > max(order.index(s) for s in ("clv", "churn", "value"))
    assert order[-1] == "segments"
    assert res.manifest["steps"]["lifecycle"]["model_inputs_used"] == [
        "churn.churn_scores.churn_flag", "clv.clv.p_alive"]


def test_model_files_hold_only_finite_json_when_p_values_underflow(tmp_path):
    """50k customers, one covariate that decides churn: |z| beyond 38, p = 0, -log2(p) = inf."""
    import datetime as dt

    from crmkit.churn import CoxPH, frame_to_xy, load_model

    rng = np.random.default_rng(0)
    n = 50_000
    x = rng.normal(size=n)
    t = rng.exponential(np.exp(-2.5 * x)) * 30
    frame = pl.DataFrame({"duration_days": np.minimum(t, 60.0), "event": t < 60.0, "x": x,
                          "noise": rng.normal(size=n)})
    X, y = frame_to_xy(frame, "duration_days", "event")
    model = CoxPH(horizons_days=(30.0,)).fit(X, y)
    assert not np.isfinite(model.summary_["-log2(p)"].to_numpy()).all()
    store = ModelStore(tmp_path)
    staging = store.stage(dt.date(2025, 12, 31), "churn", "churn", {"k": 1},
                          payload={"model": json.loads(model.to_json())}, fingerprint="f")
    store.publish(staging)
    text = (tmp_path / "churn" / "2025-12-31.json").read_text()

    def no_constants(name):
        raise AssertionError(f"non-JSON constant {name} in the model file")

    json.loads(text, parse_constant=no_constants)  # strict JSON: no Infinity, no NaN
    assert '{"__float__": "inf"}' in text.replace("\n", "").replace(" ", "").replace(
        '{"__float__":"inf"}', '{"__float__": "inf"}')
    envelope = store.latest("churn", dt.date(2025, 12, 31)).envelope
    loaded = load_model(json.dumps(envelope["payload"]["model"]))
    np.testing.assert_array_equal(loaded.predict(X[:100]), model.predict(X[:100]))


_KILLER = textwrap.dedent("""
    import os, signal, sys
    from crmkit._config import StrictModel
    from crmkit.pipeline import Step, run_pipeline
    from crmkit.pipeline.steps.clv import STEP as CLV
    from crmkit.pipeline.steps.value import STEP as VALUE

    class Empty(StrictModel):
        pass

    def die(shard, cfg, state):
        os.kill(os.getpid(), signal.SIGKILL)

    cfg = {"run": {"output_dir": sys.argv[1], "report": False},
           "inputs": {"source": "sample", "sample_customers": 800}}
    run_pipeline(cfg, as_of="2025-12-31",
                 steps=[VALUE, CLV, Step("die", Empty, score=die, inputs=("clv.clv",))])
""")


def test_a_killed_run_publishes_no_model_and_leaves_the_run_folder_absent(tmp_path):
    script = tmp_path / "killer.py"
    script.write_text(_KILLER)
    out = tmp_path / "runs"
    proc = subprocess.run([sys.executable, str(script), str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert not (out / "2025-12-31").exists()
    assert not list((out / "models").glob("clv/*.json")) if (out / "models").exists() else True
    res = run_pipeline(_config(out, customers=800), as_of="2025-12-31", steps=[VALUE, CLV])
    assert res.manifest["steps"]["clv"]["model"]["refitted"]
    assert os.path.exists(out / "models" / "clv" / "2025-12-31.json")


def test_parquet_duckdb_and_sql_sources_stream_into_identical_runs(tmp_path):
    """Each source is read in batches and split into shards: the same outputs from each."""
    from crmkit.datasets import make_bank
    from crmkit.io import write_tables

    bank = make_bank(300, seed=1, years=1)
    sources = {"parquet": tmp_path / "pq", "duckdb": tmp_path / "bank.duckdb",
               "sql": f"sqlite:///{tmp_path / 'bank.db'}"}
    for dest in sources.values():
        write_tables(bank, dest)
    seen = {}
    for name, src in sources.items():
        cfg = {"run": {"output_dir": str(tmp_path / f"out_{name}"), "report": False,
                       "n_shards": 2}, "inputs": {"source": str(src)}}
        res = run_pipeline(cfg, as_of="2025-12-31", steps=[VALUE, CLV])
        seen[name] = (_hashes(res.manifest), res.manifest["inputs"]["fingerprint"])
    assert seen["parquet"] == seen["duckdb"] == seen["sql"]


def test_files_of_many_row_groups_are_identical_for_any_shard_count(tmp_path, monkeypatch):
    """Past one row group (256k rows in production, 300 here) the merged files are cut
    at fixed key positions: reruns and shard counts give the same bytes. At 100k
    customers, reruns used to rewrite 5 of 14 tables with another chunk layout."""
    import crmkit.pipeline._shards as shards

    monkeypatch.setattr(shards, "ROW_GROUP", 300)
    monkeypatch.setattr(shards, "PART_ROW_GROUP", 64)
    seen = {}
    for n in (1, 5):
        cfg = _config(tmp_path / f"n{n}", customers=1500, n_shards=n)
        first = run_pipeline(cfg, as_of="2025-12-31")
        again = run_pipeline(cfg, as_of="2025-12-31", force=True)
        assert _hashes(first.manifest) == _hashes(again.manifest)
        seen[n] = _hashes(first.manifest)
    assert seen[1] == seen[5]
    import pyarrow.parquet as pq

    features = tmp_path / "n5" / "2025-12-31" / "features" / "features.parquet"
    assert pq.ParquetFile(features).metadata.num_row_groups >= 5
