"""The segments step inside a nightly run, and `crmkit export` on the finished run."""

from __future__ import annotations

import json

import polars as pl

from crmkit.cli import main
from crmkit.pipeline import run_pipeline

SEGMENTS = {
    "gold_at_risk": {"where": 'tier in ["Gold", "Platinum"] and churn_prob_365d > 0.01',
                     "columns": ["tier", "churn_prob_365d"], "channel": "phone",
                     "formats": ["csv", "parquet"]},
    "prospects": {"where": 'risk_status == "prospect"', "columns": ["branch_id"]},
}


def test_segments_step_exports_and_cli_export_agree(tmp_path, capsys):
    cfg = {"run": {"output_dir": str(tmp_path / "runs"), "report": False, "n_shards": 3},
           "inputs": {"source": "sample", "sample_customers": 1200}, "segments": SEGMENTS}
    res = run_pipeline(cfg, as_of="2025-12-31")
    facts = res.manifest["steps"]["segments"]
    exports = {(e["segment"], e["format"]): e for e in facts["exports"]}
    gold = exports[("gold_at_risk", "parquet")]
    assert gold["in_segment"] == gold["rows"] + gold["suppressed_opt_out"] + \
        gold["suppressed_unknown_consent"]
    assert gold["rows"] > 0 and gold["suppressed_opt_out"] > 0
    written = pl.read_parquet(res.run_dir / gold["path"])
    assert written.height == gold["rows"]
    assert gold["path"].startswith("segments/exports/")
    assert gold["path"] in res.manifest["outputs"]  # checksummed like every output
    # opted-out customers of the channel are never in the export
    customers = pl.read_parquet(res.run_dir / "features" / "features.parquet").select(
        "customer_id")
    scores = res.outputs["churn"]["churn_scores"]
    assert set(written["customer_id"]) <= set(customers["customer_id"])
    assert facts["sizes"]["prospects"] == int((scores["risk_status"] == "prospect").sum())

    toml = tmp_path / "nightly.toml"
    lines = [f'[run]\noutput_dir = "{tmp_path / "runs"}"\nreport = false\nn_shards = 3\n',
             '[inputs]\nsource = "sample"\nsample_customers = 1200\n']
    for name, seg in SEGMENTS.items():
        lines.append(f"[segments.{name}]\n" + "".join(
            f"{k} = {json.dumps(v)}\n" for k, v in seg.items()))
    toml.write_text("\n".join(lines))
    assert main(["export", "gold_at_risk", "--config", str(toml), "--run", "2025-12-31",
                 "--format", "parquet", "--out", str(tmp_path / "cli")]) == 0
    assert f"gold_at_risk: {gold['rows']:,} row(s)" in capsys.readouterr().out
    cli = pl.read_parquet(tmp_path / "cli" / "gold_at_risk_2025-12-31.parquet")
    assert cli.sort("customer_id").equals(written.sort("customer_id"))
