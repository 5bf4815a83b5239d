"""Quality of the cross-sell propensities on the sample bank (the figures in docs/propensity.md).

    .venv/bin/python benchmarks/propensity_quality.py [--customers 60000] [--out docs/img]

Trains on quarterly landmarks (features as of each, take-up in the next 90 days),
backtests at 2025-09-30 against (a) popularity within tier and (b) a plain
scikit-learn ``HistGradientBoostingClassifier()`` fitted per product on the same
training rows, and compares the LightGBM and HistGradientBoosting backends of
``PropensityModel`` (ROC AUC, fit time, peak memory, each in its own process).
Writes the plots to ``docs/img/propensity_*.png`` and the tables to
``benchmarks/results/propensity_quality.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
LANDMARKS = ["2024-09-30", "2024-12-31", "2025-03-31", "2025-06-30"]
TEST = "2025-09-30"


def _data(n, work):
    import polars as pl
    from crmkit.datasets import make_bank
    from crmkit.propensity import build_training_set
    work.mkdir(parents=True, exist_ok=True)
    if not (work / "train.parquet").exists():
        bank = make_bank(n, seed=0)
        build_training_set(bank, as_of=LANDMARKS, horizon=90, unit="days") \
            .write_parquet(work / "train.parquet")
        build_training_set(bank, as_of=TEST, horizon=90, unit="days") \
            .write_parquet(work / "test.parquet")
        from crmkit.propensity import cross_sell_rate, product_penetration
        dates = ["2024-12-31", "2025-06-30", "2025-12-31"]
        cross_sell_rate(bank, as_of=dates).write_parquet(work / "xsell.parquet")
        product_penetration(bank, as_of=dates).write_parquet(work / "pen.parquet")
    return pl.read_parquet(work / "train.parquet"), pl.read_parquet(work / "test.parquet")


def fit_backend(backend, work):
    """One backend in this process: fit time, peak RSS, backtest AUC per product."""
    from _measure import status_kb
    from crmkit.propensity import PropensityModel, backtest, split_training_set
    import polars as pl
    train = pl.read_parquet(work / "train.parquet")
    test = pl.read_parquet(work / "test.parquet")
    X, Y, g = split_training_set(train)
    t0 = time.perf_counter()
    m = PropensityModel(backend=backend, max_negatives_per_positive=30).fit(X, Y, groups=g)
    fit_s = time.perf_counter() - t0
    bt = backtest(m, {}, as_of=TEST, horizon=90, unit="days", test_set=test)
    m.save(work / f"model_{backend}.json")
    return {"fit_s": fit_s, "peak_rss_mb": status_kb("VmHWM") / 1024,
            "auc": dict(zip(bt.metrics["target"], bt.metrics["roc_auc"]))}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=60_000)
    ap.add_argument("--work", default="/tmp/prop_quality")
    ap.add_argument("--out", default=str(HERE.parent / "docs" / "img"))
    ap.add_argument("--backend", default=None)
    ap.add_argument("--backends", default="lightgbm,sklearn",
                    help="backends to compare; with an empty value the saved "
                         "model_lightgbm.json of an earlier run is reused")
    args = ap.parse_args()
    work = Path(args.work)
    if args.backend:
        print(json.dumps(fit_backend(args.backend, work)))
        return
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import polars as pl
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from crmkit.propensity import (
        backtest, load_model, plot_auc_vs_baseline, plot_calibration, plot_gain, plot_lift,
        plot_penetration, split_training_set)

    train, test = _data(args.customers, work)
    backends = {}
    for b in [x for x in args.backends.split(",") if x]:
        res = subprocess.run([sys.executable, __file__, "--backend", b, "--work", str(work)],
                             capture_output=True, text=True, env=dict(os.environ))
        if res.returncode:
            raise SystemExit(res.stderr)
        backends[b] = json.loads(res.stdout.strip().splitlines()[-1])
    model = load_model(work / "model_lightgbm.json")
    bt = backtest(model, {}, as_of=TEST, horizon=90, unit="days", test_set=test)
    # the plain peer on the same training rows
    X, Y, _ = split_training_set(train)
    Xt, Yt, _ = split_training_set(test)
    M = X.select(pl.all().cast(pl.Float64)).to_numpy()
    Mt = Xt.select(pl.col(c).cast(pl.Float64) for c in X.columns).to_numpy()
    plain = {}
    for t in model.targets_:
        e = Y[t].is_not_null().to_numpy()
        clf = HistGradientBoostingClassifier(random_state=0).fit(M[e], Y[t].to_numpy()[e])
        et = Yt[t].is_not_null().to_numpy()
        plain[t] = float(roc_auc_score(Yt[t].to_numpy()[et], clf.predict_proba(Mt[et])[:, 1]))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    met = bt.metrics.with_columns(pl.col("target").replace_strict(plain).alias("plain_hgb_auc"))
    fig, ax = plt.subplots(figsize=(9, 4))
    plot_auc_vs_baseline(met, others={"plain HistGradientBoosting": plain}, ax=ax)
    fig.tight_layout(); fig.savefig(out / "propensity_auc.png", dpi=110); plt.close(fig)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    plot_lift(bt.lift, target="P05", ax=axes[0])
    plot_gain(bt.lift, target="P05", ax=axes[1])
    fig.tight_layout(); fig.savefig(out / "propensity_lift_gain.png", dpi=110); plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 5))
    plot_calibration(bt.calibration, targets=["P02", "P03", "P05", "P08", "P11"], ax=ax)
    fig.tight_layout(); fig.savefig(out / "propensity_calibration.png", dpi=110); plt.close(fig)
    fig, ax = plt.subplots(figsize=(10, 3.5))
    plot_penetration(pl.read_parquet(work / "pen.parquet"), ax=ax)
    fig.tight_layout(); fig.savefig(out / "propensity_penetration.png", dpi=110); plt.close(fig)

    lines = [f"# Propensity quality on the sample bank ({args.customers:,} customers)", "",
             f"Training landmarks {', '.join(LANDMARKS)} (90-day take-up windows), "
             f"{train.height:,} rows; backtest at {TEST}, {test.height:,} customers. "
             f"Load average at the end: {os.getloadavg()[0]:.1f}.", "",
             "| product | positives (test) | model AUC | popularity AUC | plain HGB AUC | "
             "model top-decile lift | popularity lift | PR AUC | ECE | beats popularity | "
             "AUC >= plain |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in met.iter_rows(named=True):
        lines.append(
            f"| {r['target']} | {r['positives']} | {r['roc_auc']:.4f} | "
            f"{r['baseline_roc_auc']:.4f} | {r['plain_hgb_auc']:.4f} | "
            f"{r['top_decile_lift']:.2f} | {r['baseline_top_decile_lift']:.2f} | "
            f"{r['pr_auc']:.4f} | {r['ece']:.4f} | {'yes' if r['beats_baseline'] else 'NO'} | "
            f"{'yes' if r['roc_auc'] >= r['plain_hgb_auc'] else 'NO'} |")
    lines += ["", "Success@k (share of adopters with a taken product in their top k eligible):",
              "", "| k | model | popularity within tier |", "|---|---|---|"]
    for r in bt.success.iter_rows(named=True):
        lines.append(f"| {r['k']} | {r['model']:.3f} | {r['popularity_within_tier']:.3f} |")
    if backends:
        lines += ["", "Backends (same rows, each in its own process):", "",
                  "| backend | fit s | peak RSS MB | mean backtest AUC |", "|---|---|---|---|"]
    for b, r in backends.items():
        lines.append(f"| {b} | {r['fit_s']:.1f} | {r['peak_rss_mb']:.0f} | "
                     f"{np.mean(list(r['auc'].values())):.4f} |")
    if backends:
        lines += ["", "Per product AUC by backend: " + json.dumps(
            {b: {k: round(v, 4) for k, v in r["auc"].items()} for b, r in backends.items()})]
    xs = pl.read_parquet(work / "xsell.parquet")
    lines += ["", "Cross-sell rate (products per customer with a product) by tier:", "",
              "| as_of | tier | customers | products per customer | share with 2+ |",
              "|---|---|---|---|---|"]
    for r in xs.iter_rows(named=True):
        lines.append(f"| {r['as_of']} | {r['tier']} | {r['customers']} | "
                     f"{r['products_per_customer']:.2f} | {r['share_multi_product']:.3f} |")
    (HERE / "results").mkdir(exist_ok=True)
    name = "propensity_quality.md" if backends else "propensity_quality_models.md"
    (HERE / "results" / name).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
