"""Churn risk backtest on the sample bank: does the model's call list beat the rules?

For each run date R: fit :func:`crmkit.churn.fit_churn_risk` as of R (landmarks
whose outcome is known on R, nothing after R read), score the customers at risk
on R, and compare with what happened over the next 90 and 180 days under the
combined definition (every product closed, or silent for 180 days dated at the
silence's onset). Baselines ranked on the same customers:

- decline rule: the retail-bank lifecycle's ``decline`` stage first, each group
  ordered by the 90-day asset trend (largest fall first);
- days since the last transaction (largest first; never transacted last).

Writes ``benchmarks/results/churn_backtest.json`` and the figures in
``docs/img/churn_backtest_*.png``, prints the tables for ``docs/churn.md``.
Run under the bench lock: ``flock /tmp/crmkit-bench.lock .venv/bin/python
benchmarks/churn_backtest.py``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).parent))
from _measure import status_kb  # noqa: E402

from crmkit.churn import (  # noqa: E402
    calibration_by_decile,
    fit_churn_risk,
    landmark_outcomes,
    score_churn_risk,
)
from crmkit.datasets import make_bank  # noqa: E402
from crmkit.features import build_features  # noqa: E402
from crmkit.lifecycle import assign_stages, lifecycle_features  # noqa: E402

N = int(os.environ.get("CHURN_BT_N", 20_000))
SEED = int(os.environ.get("CHURN_BT_SEED", 7))
RUN_DATES = [dt.date(2024, 6, 30), dt.date(2024, 9, 30), dt.date(2024, 12, 31)]
DEFINITION = "retail_bank_combined"
HORIZONS = (90, 180)
KS = [0.01, 0.02, 0.05, 0.10, 0.15, 0.20]
ROOT = Path(__file__).resolve().parent.parent


def capture(score: np.ndarray, label: np.ndarray, share: float) -> int:
    k = int(np.ceil(share * score.size))
    order = np.lexsort((np.arange(score.size), -score))  # stable: ties by position (id order)
    return int(label[order[:k]].sum())


def rule_scores(feats: pl.DataFrame, as_of: dt.date) -> tuple[np.ndarray, np.ndarray]:
    stages = assign_stages(feats, as_of=as_of, preset="retail_bank")
    j = feats.select("customer_id", "financial_assets_trend_90d", "days_since_last_txn").join(
        stages.select("customer_id", "stage"), on="customer_id", how="left")
    fall = -j["financial_assets_trend_90d"].fill_null(0.0).to_numpy()
    decline = (j["stage"] == "decline").to_numpy()
    rule = np.where(decline, 10.0, 0.0) + fall  # decline first, then by asset fall
    dslt = j["days_since_last_txn"].fill_null(-1).to_numpy().astype(float)
    return rule, dslt


def main() -> None:
    t0 = time.time()
    bank, truth = make_bank(N, seed=SEED, years=5, balance_months=60, return_truth=True)
    gen_s = time.time() - t0
    results = {"n_customers": N, "seed": SEED, "definition": DEFINITION, "runs": []}
    plots = []
    for run in RUN_DATES:
        t1 = time.time()
        model = fit_churn_risk(bank, run, definition=DEFINITION, horizons=HORIZONS)
        fit_s = time.time() - t1
        feats = build_features(bank, as_of=run)
        scores = score_churn_risk(model, bank, feats, run)
        score_s = time.time() - t1 - fit_s
        out = landmark_outcomes(bank, run, horizon_days=max(HORIZONS), definition=DEFINITION)
        active = scores.filter(pl.col("risk_status") == "at_risk").join(
            out, on="customer_id", how="inner").sort("customer_id")
        assert active.height == scores.filter(pl.col("risk_status") == "at_risk").height
        lf = lifecycle_features(bank, as_of=run).join(active.select("customer_id"),
                                                      on="customer_id", how="semi")
        rule, dslt = rule_scores(lf.sort("customer_id"), run)
        tr = active.join(truth, on="customer_id", how="left")
        entry = {"run_date": run.isoformat(), "at_risk": active.height,
                 "status_counts": dict(scores.group_by("risk_status").len().iter_rows()),
                 "training": model.training, "fit_seconds": round(fit_s, 1),
                 "score_seconds": round(score_s, 1), "horizons": {}}
        # the effect of days_since_last_txn: mean predicted 90-day probability of the
        # customers at risk with their silence set to each value (all terms recomputed)
        at_feats = feats.join(active.select("customer_id"), on="customer_id", how="semi")
        txn = at_feats.filter(pl.col("days_since_last_txn").is_not_null())
        pd_curve = {}
        for days in (0, 30, 60, 90, 120, 150):
            Xd = model.prepare(txn.with_columns(pl.lit(days).alias("days_since_last_txn")))
            pd_curve[days] = float(model.predict_proba(Xd, calibrated=False)[90.0].mean())
        entry["days_since_last_txn"] = {
            "mean_prob_90d_by_days": pd_curve,
            "increasing": all(pd_curve[a] < pd_curve[b] for a, b in
                              zip(list(pd_curve)[:-1], list(pd_curve)[1:])),
            "coef_linear": {k: float(dict(zip(m.covariates_, m.coef_)).get(
                "days_since_last_txn", float("nan"))) for k, m in model.survival_models.items()}}
        for h in HORIZONS:
            p = active[f"churn_prob_{h}d"].to_numpy()
            lab = (active["event"] & (active["duration_days"] <= h)).to_numpy()
            leave = tr["leave_date"]
            true_lab = ((leave > run) & (leave <= run + dt.timedelta(days=h))).fill_null(False)
            cal = calibration_by_decile(p, lab)
            assessed = cal.filter(pl.col("assessed"))
            caps = {}
            for s in KS:
                caps[f"{s:.0%}"] = {"model": capture(p, lab, s), "decline_rule": capture(rule, lab, s),
                                    "days_since_last_txn": capture(dslt, lab, s)}
            entry["horizons"][str(h)] = {
                "events": int(lab.sum()), "rate": float(lab.mean()),
                "auc_model": float(roc_auc_score(lab, p)),
                "auc_decline_rule": float(roc_auc_score(lab, rule)),
                "auc_days_since_last_txn": float(roc_auc_score(lab, dslt)),
                "auc_model_vs_true_leavers": float(roc_auc_score(true_lab.to_numpy(), p)),
                "true_leavers": int(true_lab.sum()),
                "capture": caps,
                "calibration": cal.to_dicts(),
                "max_ratio_deviation_assessed": float(np.max(np.maximum(
                    assessed["ratio"].to_numpy(), 1 / assessed["ratio"].to_numpy())))
                if assessed.height else None,
                "beats_rules_at_every_k": all(
                    c["model"] > c["decline_rule"] and c["model"] > c["days_since_last_txn"]
                    for c in caps.values()),
            }
            plots.append((run, h, p, rule, dslt, lab, cal))
        results["runs"].append(entry)
        print(f"{run}: at risk {active.height}, fit {fit_s:.1f}s, "
              + ", ".join(f"{h}d AUC {entry['horizons'][str(h)]['auc_model']:.3f}"
                          for h in HORIZONS), flush=True)
    results["generate_seconds"] = round(gen_s, 1)
    results["total_seconds"] = round(time.time() - t0, 1)
    results["peak_rss_mb"] = status_kb("VmHWM") / 1024
    results["loadavg"] = os.getloadavg()
    dest = ROOT / "benchmarks" / "results" / "churn_backtest.json"
    dest.write_text(json.dumps(results, indent=1, default=str), encoding="utf-8")
    _figures(plots)
    _print_tables(results)


def _figures(plots) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img = ROOT / "docs" / "img"
    run, _, *_ = plots[-1]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, (r, h, p, rule, dslt, lab, _cal) in zip(axes, [x for x in plots if x[0] == run]):
        shares = np.linspace(0.005, 0.2, 40)
        for name, s in (("model", p), ("decline rule", rule), ("days since last txn", dslt)):
            ax.plot(shares * 100, [capture(s, lab, q) / max(lab.sum(), 1) for q in shares],
                    label=name)
        ax.set_xlabel("call list, % of customers at risk")
        ax.set_ylabel(f"share of {h}-day churners reached")
        ax.set_title(f"run date {r}, {h} days ({int(lab.sum())} churners)")
        ax.legend()
    fig.tight_layout()
    fig.savefig(img / "churn_backtest_capture.png", dpi=90)
    plt.close(fig)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, (r, h, *_rest, cal) in zip(axes, [x for x in plots if x[0] == run]):
        ax.plot(cal["predicted"], cal["observed"], "o-", label="deciles")
        hi = float(max(cal["predicted"].max(), cal["observed"].max()))
        ax.plot([0, hi], [0, hi], "k--", lw=1, label="perfect")
        ax.set_xlabel(f"predicted {h}-day churn probability")
        ax.set_ylabel("observed rate")
        ax.set_title(f"calibration by decile, run date {r}")
        ax.legend()
    fig.tight_layout()
    fig.savefig(img / "churn_backtest_calibration.png", dpi=90)
    plt.close(fig)


def _print_tables(results: dict) -> None:
    print(f"\nload average {results['loadavg']}, peak RSS {results['peak_rss_mb']:.0f} MB, "
          f"total {results['total_seconds']} s")
    print("\n| run date | at risk | horizon | churners | AUC model | AUC decline rule | "
          "AUC days since txn | worst decile ratio (>= 20 events) | beats both rules at every k |")
    print("|---|---|---|---|---|---|---|---|---|")
    for e in results["runs"]:
        for h, v in e["horizons"].items():
            print(f"| {e['run_date']} | {e['at_risk']} | {h} d | {v['events']} | "
                  f"{v['auc_model']:.3f} | {v['auc_decline_rule']:.3f} | "
                  f"{v['auc_days_since_last_txn']:.3f} | {v['max_ratio_deviation_assessed']:.2f} | "
                  f"{'yes' if v['beats_rules_at_every_k'] else 'NO'} |")
    print("\nChurners reached by a call list of k% of the customers at risk "
          "(model / decline rule / days since last txn):\n")
    print("| run date | horizon | " + " | ".join(KS_LABELS) + " |")
    print("|---|---|" + "---|" * len(KS_LABELS))
    for e in results["runs"]:
        for h, v in e["horizons"].items():
            cells = [f"{c['model']} / {c['decline_rule']} / {c['days_since_last_txn']}"
                     for c in v["capture"].values()]
            print(f"| {e['run_date']} | {h} d | " + " | ".join(cells) + " |")
    print("\nMean predicted 90-day churn probability of the customers at risk (with a "
          "transaction) with days_since_last_txn set to 0/30/60/90/120/150:\n")
    for e in results["runs"]:
        v = e["days_since_last_txn"]
        print(f"- {e['run_date']}: " + " / ".join(f"{p:.3f}" for p in v["mean_prob_90d_by_days"]
                                                   .values())
              + f" (increasing: {v['increasing']}; linear coefficients "
              + ", ".join(f"{k} {c:+.4f}/day" for k, c in v["coef_linear"].items()) + ")")


KS_LABELS = [f"{s:.0%}" for s in KS]

if __name__ == "__main__":
    main()
