"""Cross-sell propensity at scale: train on 1M customers x 8 products, score 10M by shards.

Usage (under the machine-wide lock)::

    flock /tmp/crmkit-bench.lock .venv/bin/python benchmarks/bench_propensity.py \
        [--shards 8] [--shard-size 125000] [--score-shards 80] [--work /tmp/prop_bench]

Phases, each in its own subprocess so that its peak RSS is its own:

1. ``generate``: ``--shards`` independent sample banks of ``--shard-size`` customers
   (``make_bank(seed=s)``, ids prefixed with the shard), one at a time; for each, the
   training rows (features as of 2025-06-30, labels in the next 90 days), the test
   rows (as of 2025-09-30) and the scoring features (as of 2025-12-31) go to parquet.
2. ``train``: ``PropensityModel`` (LightGBM, 3-fold calibration, then a refit on all
   rows; negatives subsampled to 20 per positive) on all training rows.
3. ``score``: shard by shard, ``--score-shards`` shards of ``--shard-size``
   customers (the generated feature shards reused in turn with fresh customer ids):
   propensities of the 8 products, then the top 3 next best products (suitability,
   exclusions, expected value). Exact TreeSHAP reasons cost about 2 ms per offer
   (100 trees), so they are timed apart on ``--reason-shards`` shards (first offer
   of every customer) and reported per offer. Features are built once per generated
   shard in phase 1; their cost per shard is reported beside.
4. ``peer``: plain scikit-learn ``HistGradientBoostingClassifier()`` per product on
   the same training rows (no calibration, no subsampling), then its
   ``predict_proba`` on the first ``--peer-score-shards`` scoring shards (default 16,
   2M customers; one process: no model file between).

Also reported: backtest ROC AUC per product at 2025-09-30 for both.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import cpu_seconds, status_kb  # noqa: E402

PRODUCTS = ["P02", "P03", "P04", "P05", "P08", "P09", "P11", "P13"]
TRAIN_AS_OF, TEST_AS_OF, SCORE_AS_OF = "2025-06-30", "2025-09-30", "2025-12-31"


def _prefix(tables, tag):
    import polars as pl
    out = {}
    for name, df in tables.items():
        cols = [c for c in ("customer_id", "account_id") if c in df.columns]
        out[name] = df.with_columns(*[(pl.lit(tag) + pl.col(c)).alias(c) for c in cols])
    return out


def generate(args):
    from crmkit.datasets import make_bank
    from crmkit.propensity import build_training_set, propensity_features
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    t_gen = t_feat = t_score_feat = 0.0
    for s in range(args.shards):
        t0 = time.perf_counter()
        bank = _prefix(make_bank(args.shard_size, seed=100 + s), f"S{s}-")
        t1 = time.perf_counter()
        build_training_set(bank, as_of=TRAIN_AS_OF, horizon=90, unit="days",
                           targets=PRODUCTS).write_parquet(work / f"train_{s}.parquet")
        build_training_set(bank, as_of=TEST_AS_OF, horizon=90, unit="days",
                           targets=PRODUCTS).write_parquet(work / f"test_{s}.parquet")
        t2 = time.perf_counter()
        propensity_features(bank, as_of=SCORE_AS_OF).write_parquet(work / f"score_{s}.parquet")
        t3 = time.perf_counter()
        for name in ("customers", "holdings", "products", "contacts"):
            bank[name].write_parquet(work / f"{name}_{s}.parquet")
        t_gen += t1 - t0
        t_feat += t2 - t1
        t_score_feat += t3 - t2
        del bank
    return {"generate_s": t_gen, "training_rows_s": t_feat,
            "score_features_s_per_shard": t_score_feat / args.shards}


def _train_frames(args):
    import polars as pl
    from crmkit.propensity import split_training_set
    work = Path(args.work)
    train = pl.concat([pl.read_parquet(work / f"train_{s}.parquet") for s in range(args.shards)])
    return split_training_set(train)


def train(args):
    from crmkit.propensity import PropensityModel, backtest
    import polars as pl
    X, Y, g = _train_frames(args)
    t0 = time.perf_counter()
    model = PropensityModel(max_negatives_per_positive=20, n_jobs=args.threads).fit(X, Y,
                                                                                  groups=g)
    fit_s = time.perf_counter() - t0
    model.save(Path(args.work) / "model.json")
    del X, Y, g
    test = pl.read_parquet(Path(args.work) / "test_0.parquet")
    bt = backtest(model, {}, as_of=TEST_AS_OF, horizon=90, unit="days", test_set=test)
    return {"fit_s": fit_s, "rows": int(test.height), "n_train_rows": None,
            "auc": dict(zip(bt.metrics["target"], bt.metrics["roc_auc"])),
            "baseline_auc": dict(zip(bt.metrics["target"], bt.metrics["baseline_roc_auc"])),
            "top_decile_lift": dict(zip(bt.metrics["target"], bt.metrics["top_decile_lift"])),
            "summary": model.summary_.select("target", "n_eligible", "n_positive",
                                             "cv_roc_auc").to_dicts()}


def peer(args):
    """Plain scikit-learn per product: fit on the training rows, then score every shard
    (one process, so no model file is needed in between)."""
    import polars as pl
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from crmkit.propensity import split_training_set
    X, Y, _ = _train_frames(args)
    cols = X.columns
    M = X.select(pl.all().cast(pl.Float64)).to_numpy()
    del X
    test = pl.read_parquet(Path(args.work) / "test_0.parquet")
    Xt, Yt, _ = split_training_set(test)
    Mt = Xt.select(pl.col(c).cast(pl.Float64) for c in cols).to_numpy()
    fit_s, auc, models = 0.0, {}, {}
    for p in PRODUCTS:
        e = Y[p].is_not_null().to_numpy()
        t0 = time.perf_counter()
        clf = HistGradientBoostingClassifier(random_state=0).fit(M[e], Y[p].to_numpy()[e])
        fit_s += time.perf_counter() - t0
        et = Yt[p].is_not_null().to_numpy()
        auc[p] = float(roc_auc_score(Yt[p].to_numpy()[et], clf.predict_proba(Mt[et])[:, 1]))
        models[p] = clf
    del M, Y
    peak_fit = status_kb("VmHWM") / 1024
    t_score, n = 0.0, 0
    for i in range(args.peer_score_shards):
        feats = pl.read_parquet(Path(args.work) / f"score_{i % args.shards}.parquet")
        t0 = time.perf_counter()
        Ms = feats.select(pl.col(c).cast(pl.Float64) for c in cols).to_numpy()
        for p in PRODUCTS:
            models[p].predict_proba(Ms)
        t_score += time.perf_counter() - t0
        n += feats.height
    return {"fit_s": fit_s, "auc": auc, "peak_rss_after_fit_mb": peak_fit,
            "score_s": t_score, "customers": n}


def score(args):
    import polars as pl
    from crmkit.propensity import load_model, next_best_products
    work = Path(args.work)
    model = load_model(work / "model.json")
    t_pred = t_offer = t_reason = 0.0
    n = offers_n = explained = 0
    start = time.perf_counter()
    for i in range(args.score_shards):
        if time.perf_counter() - start > args.score_budget_s:
            break  # out of time: the rate of the shards done is reported
        s = i % args.shards
        tag = f"R{i}-"
        feats = pl.read_parquet(work / f"score_{s}.parquet")
        customers = pl.read_parquet(work / f"customers_{s}.parquet")
        holdings = pl.read_parquet(work / f"holdings_{s}.parquet")
        products = pl.read_parquet(work / f"products_{s}.parquet")
        contacts = pl.read_parquet(work / f"contacts_{s}.parquet")
        feats, customers, holdings, contacts = (
            f.with_columns(pl.lit(tag) + pl.col("customer_id")) for f in
            (feats, customers, holdings, contacts))
        t0 = time.perf_counter()
        scores = model.predict_propensities(feats, ids=feats["customer_id"].to_list())
        t1 = time.perf_counter()
        top = next_best_products(scores, customers, holdings, products, as_of=SCORE_AS_OF,
                                 k=3, contacts=contacts)
        t2 = time.perf_counter()
        t_pred += t1 - t0
        t_offer += t2 - t1
        n += feats.height
        offers_n += top.height
        if i < args.reason_shards:
            # exact TreeSHAP reasons for the first offer of every customer of this shard
            t0 = time.perf_counter()
            why = next_best_products(scores, customers, holdings, products, as_of=SCORE_AS_OF,
                                     k=1, contacts=contacts, model=model, features=feats,
                                     reasons=3)
            t_reason += time.perf_counter() - t0
            explained += why.height
        del feats, scores, top
    return {"predict_s": t_pred, "offers_s": t_offer, "score_s": t_pred + t_offer,
            "customers": n, "shards_done": n // args.shard_size,
            "score_s_per_10m": (t_pred + t_offer) * 10_000_000 / max(n, 1), "offers": offers_n, "reasons_s": t_reason,
            "reasons_offers": explained,
            "reasons_ms_per_offer": 1000 * t_reason / max(explained, 1)}


PHASES = {"generate": generate, "train": train, "score": score, "peer": peer}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--shard-size", type=int, default=125_000)
    ap.add_argument("--score-shards", type=int, default=80)
    ap.add_argument("--peer-score-shards", type=int, default=16,
                    help="shards the plain scikit-learn models score (time per row is reported)")
    ap.add_argument("--reason-shards", type=int, default=1,
                    help="shards whose first offers also get exact reasons (timed apart)")
    ap.add_argument("--score-budget-s", type=float, default=480.0,
                    help="stop scoring after this many seconds (the rate is reported)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--work", default="/tmp/prop_bench")
    ap.add_argument("--phase", default=None)
    ap.add_argument("--phases", default="generate,train,score,peer")
    args = ap.parse_args()
    if args.phase:
        t0, c0 = time.perf_counter(), cpu_seconds()
        out = PHASES[args.phase](args)
        out.update(wall_s=time.perf_counter() - t0, cpu_s=cpu_seconds() - c0,
                   peak_rss_mb=status_kb("VmHWM") / 1024)
        print(json.dumps(out))
        return
    results = {}
    for phase in args.phases.split(","):
        load = os.getloadavg()
        passed = [f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items()
                  if k not in ("phase", "phases")]
        cmd = [sys.executable, __file__, "--phase", phase, *passed]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode:
            print(res.stderr, file=sys.stderr)
            raise SystemExit(f"phase {phase} failed")
        results[phase] = json.loads(res.stdout.strip().splitlines()[-1])
        results[phase]["load_before"] = [round(x, 2) for x in load]
        results[phase]["load_after"] = [round(x, 2) for x in os.getloadavg()]
        print(phase, json.dumps(results[phase]), flush=True)
    Path(args.work, "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
