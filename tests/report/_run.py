"""A small but complete pair of runs for the report tests (and the docs screenshot).

Two nightly runs of the sample bank (previous month end and the run date) through
the real pipeline, then what the steps being built elsewhere will add, shaped as
their branches write them: segment sizes and exports (crmkit.segments, real),
drift (real), and cross-sell scores, RM books and a call list (synthetic, seeded).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import polars as pl

from crmkit.datasets import make_bank
from crmkit.pipeline import run_pipeline
from crmkit.pipeline._drift import check_drift
from crmkit.segments import config_fingerprint, customer_table, load_run_tables, run_segments

AS_OF = dt.date(2025, 12, 31)
SEGMENTS = {
    "gold_at_risk": {"where": 'tier in ["Gold", "Platinum"] and churn_prob_365d > 0.02 '
                              'and not holds("fund")',
                     "columns": ["tier", "financial_assets", "churn_prob_365d", "branch_id"],
                     "channel": "phone", "formats": ["csv", "xlsx"],
                     "description": "VIPs drifting away who hold no fund"},
    "win_back_email": {"where": 'stage in ["dormant", "churned"] and financial_assets > 1000',
                       "columns": ["stage", "financial_assets"], "channel": "email"},
    "hidden_vip_watch": {"where": 'tier == "Mass" and financial_assets > 80000',
                         "columns": ["branch_id", "financial_assets"], "formats": ["parquet"]},
}


def make_runs(root: Path, customers: int = 1500, extras: bool = True):
    """Run the pipeline twice under ``root`` and return what a full report needs."""
    config = {"run": {"name": "nightly", "output_dir": str(root / "runs")},
              "inputs": {"source": "sample", "sample_customers": customers},
              "validation": {"future_rows": "cut"}}
    prev_day = AS_OF.replace(day=1) - dt.timedelta(days=1)
    run_pipeline(config, as_of=prev_day, progress=False)
    result = run_pipeline(config, as_of=AS_OF, progress=False)
    run_dir = result.run_dir
    manifest = json.loads((run_dir / "manifest.json").read_text())
    features, outputs = result.features, {k: dict(v) for k, v in result.outputs.items()}
    prev_features, prev_outputs = load_run_tables(run_dir.parent / prev_day.isoformat())
    if not extras:
        return run_dir, manifest, features, outputs, None, None
    bank = make_bank(customers, seed=0, as_of=AS_OF)
    table = customer_table(outputs, features, bank["customers"])
    seg = run_segments(table, SEGMENTS, export_dir=run_dir / "exports", run_date=AS_OF,
                       config_fingerprint=config_fingerprint(manifest["config"]),
                       link_base=run_dir)
    outputs["segments"] = seg.tables
    manifest["steps"]["segments"] = seg.manifest
    rng = np.random.default_rng(7)
    ids = features["customer_id"]
    products = ["fund", "insurance", "wealth", "card"]
    outputs["propensity"] = {"scores": pl.DataFrame(
        {"customer_id": ids, **{p: rng.beta(1 + i, 12, ids.len()) for i, p in enumerate(products)}})}
    mgr = bank["managers"]
    book = (bank["assignments"].group_by("manager_id").len("customers")
            .join(mgr.select("manager_id", "branch_id", "level", "capacity"), on="manager_id"))
    book = book.with_columns((pl.col("customers") / pl.col("capacity")).alias("utilisation"))
    outputs["assign"] = {"books": book}
    vip = table.filter(pl.col("tier") != "Mass").join(
        bank["assignments"].select("customer_id", "manager_id"), on="customer_id", how="inner")
    calls = vip.select("customer_id", "manager_id", "tier").with_columns(
        pl.Series("priority", rng.random(vip.height)).round(3),
        pl.Series("urgency", rng.integers(1, 4, vip.height)),
        pl.Series("triggers", [["cadence_due"] if r < 0.7 else ["cadence_due", "high_risk"]
                               for r in rng.random(vip.height)]))
    outputs["calls"] = {"call_list": calls}
    drift = check_drift(features, outputs, previous_features=prev_features,
                        previous_outputs=prev_outputs, step_facts=manifest["steps"],
                        previous_step_facts=json.loads(
                            (run_dir.parent / prev_day.isoformat() / "manifest.json")
                            .read_text())["steps"])
    return run_dir, manifest, features, outputs, drift, seg.exports
