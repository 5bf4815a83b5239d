"""Quality of the cross-sell propensities on the sample bank (the figures in docs/propensity.md).

    .venv/bin/python benchmarks/propensity_quality.py [--customers 60000] [--seed 0]
        [--jobs 4] [--out docs/img]

Trains on quarterly landmarks (features as of each, take-up in the next 90 days),
backtests at 2025-09-30 against (a) popularity within tier and (b) a plain
scikit-learn ``HistGradientBoostingClassifier(random_state=seed)`` fitted per
product on the same training rows (all of them, its own defaults and early
stopping). crmkit is ``PropensityModel(random_state=seed)`` with its defaults.
Products are split into ``--jobs`` groups, each fitted (crmkit and the peer) in its
own process (a product's fit does not depend on the others'); the noise of the
comparison is the 95 % paired bootstrap interval of AUC(crmkit) - AUC(plain) over
resampled test customers; run again with another ``--seed`` for the model's own
variance. Writes the plots to ``docs/img/propensity_*.png`` and the tables to
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


def fit_group(products, work, seed):
    """crmkit and the plain peer on some products, in this process."""
    import numpy as np
    import polars as pl
    from _measure import cpu_seconds, status_kb
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from crmkit.propensity import PropensityModel, split_training_set
    X, Y, g = split_training_set(pl.read_parquet(work / "train.parquet"))
    Xt, Yt, _ = split_training_set(pl.read_parquet(work / "test.parquet"))
    t0, c0 = time.perf_counter(), cpu_seconds()
    m = PropensityModel(random_state=seed).fit(X, Y.select(products), groups=g)
    fit = {"fit_s": time.perf_counter() - t0, "fit_cpu_s": cpu_seconds() - c0}
    m.save(work / f"group_{products[0]}_{seed}.json")
    P = m.predict_propensities(Xt)
    M = X.select(pl.all().cast(pl.Float64)).to_numpy()
    Mt = Xt.select(pl.col(c).cast(pl.Float64) for c in X.columns).to_numpy()
    out = {"plain": {}, "plain_iter": {}, "ci": {}, "n_trees": {}, "plain_cpu_s": 0.0, **fit}
    for t in products:
        e, et = Y[t].is_not_null().to_numpy(), Yt[t].is_not_null().to_numpy()
        c0 = cpu_seconds()
        clf = HistGradientBoostingClassifier(random_state=seed).fit(M[e], Y[t].to_numpy()[e])
        out["plain_cpu_s"] += cpu_seconds() - c0
        q = clf.predict_proba(Mt[et])[:, 1]
        y = Yt[t].to_numpy()[et]
        out["plain"][t] = float(roc_auc_score(y, q))
        out["plain_iter"][t] = int(clf.n_iter_)
        out["ci"][t] = _paired_bootstrap(y, P[f"p_{t}"].to_numpy()[et], np.asarray(q))
        out["n_trees"][t] = m.params_[t].get("n_trees")
    out["peak_rss_mb"] = status_kb("VmHWM") / 1024
    (work / f"group_{products[0]}_{seed}.out.json").write_text(json.dumps(out))
    return out


def _paired_bootstrap(y, a, b, n_boot=200, seed=0):
    """95 % interval of AUC(a) - AUC(b) over resampled test customers (same rows for both)."""
    import numpy as np
    from sklearn.metrics import roc_auc_score
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(n_boot):
        i = rng.integers(0, y.size, y.size)
        if 0 < y[i].sum() < y.size:
            diffs.append(roc_auc_score(y[i], a[i]) - roc_auc_score(y[i], b[i]))
    return float(np.quantile(diffs, 0.025)), float(np.quantile(diffs, 0.975))


class _Union:
    """The product groups' models as one scorer (what :func:`backtest` needs)."""

    def __init__(self, models):
        self.models = models
        self.targets_ = [t for m in models for t in m.targets_]

    def predict_propensities(self, X, *, baseline=False):
        import polars as pl
        return pl.concat([m.predict_propensities(X, baseline=baseline) for m in self.models],
                         how="horizontal")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=60_000)
    ap.add_argument("--work", default="/tmp/prop_quality")
    ap.add_argument("--out", default=str(HERE.parent / "docs" / "img"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=4)
    ap.add_argument("--groups", default=None,
                    help="product groups, e.g. 'P01,P02;P03' (default: --jobs groups)")
    ap.add_argument("--group", default=None, help="(internal) fit these products")
    args = ap.parse_args()
    work = Path(args.work)
    if args.group:
        print(json.dumps(fit_group(args.group.split(","), work, args.seed)))
        return
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import polars as pl
    from crmkit.propensity import (
        backtest, load_model, plot_auc_vs_baseline, plot_calibration, plot_gain, plot_lift,
        plot_penetration, split_training_set)

    train, test = _data(args.customers, work)
    load_start = os.getloadavg()
    targets = list(split_training_set(test)[1].columns)
    groups = [g.split(",") for g in args.groups.split(";")] if args.groups else \
        [gr for gr in (targets[i::args.jobs] for i in range(args.jobs)) if gr]
    # a group fitted by an earlier run with the same seed is reused
    done = {gr[0] for gr in groups if (work / f"group_{gr[0]}_{args.seed}.out.json").exists()}
    jobs = {gr[0]: subprocess.Popen(
        [sys.executable, __file__, "--group", ",".join(gr), "--seed", str(args.seed), "--work",
         str(work)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for gr in groups if gr[0] not in done}
    for job in jobs.values():
        _, err = job.communicate()
        if job.returncode:
            raise SystemExit(err)
    res = {gr[0]: json.loads((work / f"group_{gr[0]}_{args.seed}.out.json").read_text())
           for gr in groups}
    merged = {k: {t: v for r in res.values() for t, v in r[k].items()}
              for k in ("plain", "plain_iter", "ci", "n_trees")}
    plain, ci = merged["plain"], merged["ci"]
    model = _Union([load_model(work / f"group_{gr[0]}_{args.seed}.json") for gr in groups])
    bt = backtest(model, {}, as_of=TEST, horizon=90, unit="days", test_set=test)
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
             f"`PropensityModel(random_state={args.seed})` defaults (LightGBM, rounds chosen "
             f"on 3 customer folds, Platt calibration); plain `HistGradientBoostingClassifier"
             f"(random_state={args.seed})` on the same rows. Load average (1, 5, 15 min) "
             f"before {tuple(round(x, 1) for x in load_start)}, after "
             f"{tuple(round(x, 1) for x in os.getloadavg())}.", "",
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
    lines += ["", "Noise: 95 % paired bootstrap interval of AUC(model) - AUC(plain) over "
              "resampled test customers (200 resamples); rounds kept by crmkit and "
              "iterations of the plain peer (its own early stopping):", "",
              "| product | model - plain | bootstrap 95 % | crmkit rounds | plain iterations |",
              "|---|---|---|---|---|"]
    for t in targets:
        d = float(met.filter(pl.col("target") == t)["roc_auc"][0]) - plain[t]
        lines.append(f"| {t} | {d:+.4f} | [{ci[t][0]:+.4f}, {ci[t][1]:+.4f}] | "
                     f"{merged['n_trees'][t]} | {merged['plain_iter'][t]} |")
    lines += ["", "Fits (each group in its own process; CPU seconds):", "",
              "| products | crmkit fit s | crmkit CPU s | plain CPU s | peak RSS MB |",
              "|---|---|---|---|---|"]
    for gr in groups:
        r = res[gr[0]]
        lines.append(f"| {','.join(gr)} | {r.get('fit_s', float('nan')):.0f} | "
                     f"{r['fit_cpu_s']:.0f} | {r.get('plain_cpu_s', float('nan')):.0f} | "
                     f"{r.get('peak_rss_mb', float('nan')):.0f} |")
    lines += ["", "Success@k (share of adopters with a taken product in their top k eligible):",
              "", "| k | model | popularity within tier |", "|---|---|---|"]
    for r in bt.success.iter_rows(named=True):
        lines.append(f"| {r['k']} | {r['model']:.3f} | {r['popularity_within_tier']:.3f} |")
    xs = pl.read_parquet(work / "xsell.parquet")
    lines += ["", "Cross-sell rate (products per customer with a product) by tier:", "",
              "| as_of | tier | customers | products per customer | share with 2+ |",
              "|---|---|---|---|---|"]
    for r in xs.iter_rows(named=True):
        lines.append(f"| {r['as_of']} | {r['tier']} | {r['customers']} | "
                     f"{r['products_per_customer']:.2f} | {r['share_multi_product']:.3f} |")
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "propensity_quality.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
