"""The ``value`` and ``clv`` pipeline steps inside real nightly runs (sample bank, temporary folder)."""

from __future__ import annotations

import json

import polars as pl
import pytest

pytest.importorskip("crmkit.pipeline._step")

from crmkit.exceptions import ConfigError  # noqa: E402
from crmkit.pipeline import run_pipeline  # noqa: E402
from crmkit.pipeline.steps.clv import STEP as CLV  # noqa: E402
from crmkit.pipeline.steps.clv import ClvConfig  # noqa: E402
from crmkit.pipeline.steps.value import STEP, ValueConfig  # noqa: E402

TABLES = {"rfm_segments", "value_tiers", "tier_movement", "tier_movement_summary",
          "hidden_vips"}


def _cfg(tmp_path, clv=None, **value):
    return {"run": {"name": "t", "output_dir": str(tmp_path / "runs"), "report": False},
            "inputs": {"source": "sample", "sample_customers": 800},
            "value": {"hidden_vip_n": 5, **value}, "clv": clv or {}}


def test_value_step_in_nightly_runs(tmp_path):
    cfg = _cfg(tmp_path, clv={"refit": "monthly"})
    runs = tmp_path / "runs"
    steps = [STEP, CLV]
    run_pipeline(cfg, as_of="2025-11-30", steps=steps, progress=False)
    m1 = json.loads((runs / "2025-11-30" / "manifest.json").read_text())
    v1 = m1["steps"]["value"]
    assert set(v1["outputs"]) == TABLES
    for rel in [*v1["outputs"].values(), *m1["steps"]["clv"]["outputs"].values()]:
        assert rel in m1["outputs"] and (runs / "2025-11-30" / rel).exists()
    c1 = m1["steps"]["clv"]["model"]
    assert c1["refitted"] and v1["tier_movement"] == {"new": sum(v1["tiers"].values())}
    assert (runs / "models" / "clv" / "2025-11-30.json").exists()

    run_pipeline(cfg, as_of="2025-11-30", steps=steps, progress=False, force=True)  # identical
    again = json.loads((runs / "2025-11-30" / "manifest.json").read_text())
    assert again["outputs"] == m1["outputs"]

    run_pipeline(cfg, as_of="2025-12-10", steps=steps, progress=False)
    run_pipeline(cfg, as_of="2025-12-20", steps=steps, progress=False)
    c3 = json.loads((runs / "2025-12-20" / "manifest.json").read_text())["steps"]["clv"]["model"]
    assert not c3["refitted"] and c3["fitted_as_of"] == "2025-12-10"
    prev = pl.read_parquet(runs / "2025-12-10" / "value" / "value_tiers.parquet")
    mv = pl.read_parquet(runs / "2025-12-20" / "value" / "tier_movement.parquet")
    both = mv.filter(pl.col("from_tier").is_not_null())
    assert both.height == prev.height
    assert set(mv["movement"]) <= {"upgrade", "downgrade", "same", "new", "lost"}


def test_value_config_errors_name_the_closest_key():
    with pytest.raises(ValueError, match="did you mean 'hidden_vip_n'|Did you mean 'hidden_vip_n'"):
        ValueConfig.model_validate({"hiden_vip_n": 3})
    with pytest.raises(ValueError, match="Did you mean 'monthly'"):
        ClvConfig.model_validate({"refit": "montly"})
    with pytest.raises(ValueError, match="gap between"):
        ValueConfig.model_validate({"tiers": {"tiers": [{"name": "A", "upper": 1},
                                                        {"name": "B", "lower": 2}]}})


def test_value_config_error_surfaces_from_run(tmp_path):
    with pytest.raises(ConfigError, match="n_scores"):
        run_pipeline(_cfg(tmp_path, rfm={"n_score": 4}), as_of="2025-11-30", steps=[STEP, CLV],
                     progress=False)
