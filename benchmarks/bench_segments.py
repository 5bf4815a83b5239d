"""Segments and exports at scale: a segment over a 1M-customer table, and its exports.

Peer: the same condition written by hand as a polars expression (the floor: crmkit's
parser, type checks and compile should add nothing measurable to the filter), and
polars' own ``write_csv`` / ``write_parquet`` of the same rows (the floor for exports:
what neutralising formulas, suppressing opt-outs and stamping cost on top).

Run under the machine-wide lock: ``flock /tmp/crmkit-bench.lock python
benchmarks/bench_segments.py 1000000``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import cpu_seconds, reset_peak, status_kb  # noqa: E402

from crmkit.segments import compile_segment, export_segment  # noqa: E402

CONDITION = 'tier in ["Gold", "Platinum"] and churn_prob_90d > 0.3 and not holds("fund")'


def table(n: int, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return pl.DataFrame({
        "customer_id": [f"C{i:08d}" for i in range(n)],
        "tier": rng.choice(["Mass", "Gold", "Platinum", "Diamond"], n, p=[.8, .15, .04, .01]),
        "churn_prob_90d": rng.beta(2, 5, n),
        "holds_fund": rng.random(n) < 0.3,
        "financial_assets": rng.lognormal(11, 1.5, n),
        "note": rng.choice(["ok", "=1+1", "+cmd|' /C calc'!A0", "call after 6pm"], n),
        "opt_out_email": rng.random(n) < 0.05,
    })


def timed(fn):
    reset_peak()
    t0, c0 = time.perf_counter(), cpu_seconds()
    out = fn()
    return out, time.perf_counter() - t0, cpu_seconds() - c0, status_kb("VmHWM") / 1024


def main(n: int) -> None:
    print(f"n={n:,}  load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}  "
          f"cores {os.cpu_count()}")
    df = table(n)
    hand = (pl.col("tier").is_in(["Gold", "Platinum"]) & (pl.col("churn_prob_90d") > 0.3)
            & ~pl.col("holds_fund"))
    rows = []
    _, t_hand, c_hand, m_hand = timed(lambda: df.filter(hand).height)
    seg, t_comp, _, _ = timed(lambda: compile_segment(CONDITION, df))
    k, t_seg, c_seg, m_seg = timed(lambda: df.filter(seg.expr).height)
    rows.append(("filter: hand-written polars", t_hand, c_hand, m_hand))
    rows.append(("compile_segment (incl. value check)", t_comp, 0.0, 0.0))
    rows.append(("filter: compiled segment", t_seg, c_seg, m_seg))
    members = df.filter(hand).select("customer_id", "tier", "note", "financial_assets")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        for fmt in ("csv", "parquet", "xlsx"):
            if fmt == "xlsx" and n > 200_000:
                continue
            if fmt == "csv":
                _, t, c, m = timed(lambda: members.write_csv(out / "floor.csv"))
            elif fmt == "parquet":
                _, t, c, m = timed(lambda: members.write_parquet(out / "floor.parquet"))
            else:
                t = c = m = float("nan")
            rows.append((f"floor: polars write_{fmt}", t, c, m))
            seg_def = {"where": CONDITION, "columns": ["tier", "note", "financial_assets"],
                       "channel": "email"}
            res, t, c, m = timed(lambda: export_segment(df, seg_def, out, format=fmt,
                                                        run_date="2025-12-31", name=fmt))
            rows.append((f"export_segment {fmt} ({res.rows:,} rows, "
                         f"{res.suppressed_opt_out:,} opted out)", t, c, m))
    print(f"segment size {k:,}")
    print("| what | wall s | cpu s | peak RSS MiB |\n|---|---|---|---|")
    for what, t, c, m in rows:
        print(f"| {what} | {t:.3f} | {c:.3f} | {m:,.0f} |")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
