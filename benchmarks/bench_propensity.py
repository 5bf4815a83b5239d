"""Cross-sell propensity at scale: train on 1M customers x 8 products, score 10M by batches.

Usage (each phase in its own process, so its peak RSS is its own; phases that may
pass 3 GB take the machine's heavy lock themselves)::

    .venv/bin/python benchmarks/bench_propensity.py --bank /work/bench/bank1m \\
        [--shards 8] [--copies 10] [--work /tmp/prop_bench] [--phases prepare,train,peer,score]

The bank is a folder of ``<table>/part-*.parquet`` (``benchmarks/gen_bank_shards.py``,
1M customers, data end 2025-12-31).

1. ``prepare``: per customer shard (``crc32(customer_id) % shards``, read lazily
   from the Parquet folder), the training rows (features as of 2025-06-30, take-up of
   8 products in the next 90 days), the backtest rows (as of 2025-09-30) and the
   scoring features (as of 2025-12-31) with the shard's customers, holdings and
   contacts, to Parquet.
2. ``train``: ``PropensityModel`` (LightGBM, its defaults, 3 customer folds for the
   calibration and the number of trees, then a refit) on every training row;
   backtest AUC per product.
3. ``peer``: plain scikit-learn ``HistGradientBoostingClassifier()`` per product on
   the same rows (no calibration, no subsampling), its backtest AUC, then its
   ``predict_proba`` on ``--peer-batches`` scoring batches (its rate is reported per
   customer; it is not run over all 10M).
4. ``score``: 10M customers = ``--copies`` copies of the 1M scoring feature frame
   (the same histories under fresh customer ids; features are built once, in
   ``prepare``, and their cost per shard is reported there), streamed one shard
   batch at a time: the 8 propensities, the top 3 next best products (suitability,
   exclusions, expected value) and exact reasons for the first offers of managed
   customers above the fitted top-10 % cut-offs (the step's default), each batch's
   outputs written to Parquet and dropped. Stops at ``--score-budget-s`` and reports
   the rate.
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
TABLES = ("customers", "accounts", "holdings", "transactions", "balances", "products",
          "contacts", "complaints")
LOCK = "/tmp/crmkit-heavy.lock"


def _bank(path):
    import polars as pl
    root = Path(path)
    out = {}
    for name in TABLES:
        if (root / f"{name}.parquet").exists():
            out[name] = pl.scan_parquet(root / f"{name}.parquet")
        elif (root / name).is_dir():
            out[name] = pl.scan_parquet(root / name / "*.parquet")
    return out


def prepare(args):
    import polars as pl
    from crmkit.features import shard_filter
    from crmkit.propensity import build_training_set, propensity_features
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    bank = _bank(args.bank)
    t_train = t_score = 0.0
    i = args.shard
    t0 = time.perf_counter()
    build_training_set(bank, as_of=TRAIN_AS_OF, horizon=90, unit="days", targets=PRODUCTS,
                       shard=(i, args.shards)).write_parquet(work / f"train_{i}.parquet")
    build_training_set(bank, as_of=TEST_AS_OF, horizon=90, unit="days", targets=PRODUCTS,
                       shard=(i, args.shards)).write_parquet(work / f"test_{i}.parquet")
    t1 = time.perf_counter()
    propensity_features(bank, as_of=SCORE_AS_OF, shard=(i, args.shards)).write_parquet(
        work / f"score_{i}.parquet")
    t_train += t1 - t0
    t_score += time.perf_counter() - t1
    sel = shard_filter(pl.col("customer_id"), i, args.shards)
    for name in ("customers", "holdings", "contacts"):
        bank[name].filter(sel).collect().write_parquet(work / f"{name}_{i}.parquet")
    bank["products"].collect().write_parquet(work / "products.parquet")
    asg = Path(args.bank) / "assignments"
    if asg.is_dir():
        pl.scan_parquet(asg / "*.parquet").filter(sel & (pl.col("role") == "primary")) \
            .select("customer_id").collect().write_parquet(work / f"managed_{i}.parquet")
    return {"training_rows_s": t_train, "score_features_s": t_score}


def _train_frames(args, name="train"):
    import polars as pl
    from crmkit.propensity import split_training_set
    work = Path(args.work)
    frame = pl.concat([pl.read_parquet(work / f"{name}_{s}.parquet") for s in range(args.use)])
    return split_training_set(frame)


def train(args):
    import numpy as np
    from crmkit.propensity import PropensityModel
    from sklearn.metrics import roc_auc_score
    X, Y, g = _train_frames(args)
    rows = X.height
    t0, c0 = time.perf_counter(), cpu_seconds()
    model = PropensityModel(n_jobs=args.threads).fit(X, Y, groups=g)
    fit_s, fit_cpu = time.perf_counter() - t0, cpu_seconds() - c0
    peak_fit = status_kb("VmHWM") / 1024
    model.save(Path(args.work) / "model.json")
    # the reason cut-offs of the step's default (top 10 % of each product's propensities)
    P = model.predict_propensities(X)
    cut = {t: float(np.quantile(P[f"p_{t}"].to_numpy()[Y[t].is_not_null().to_numpy()], 0.9))
           for t in model.targets_}
    Path(args.work, "cutoffs.json").write_text(json.dumps(cut))
    del X, Y, g, P
    Xt, Yt, _ = _train_frames(args, "test")
    P = model.predict_propensities(Xt)
    auc = {}
    for t in model.targets_:
        e = Yt[t].is_not_null().to_numpy()
        auc[t] = float(roc_auc_score(Yt[t].to_numpy()[e], P[f"p_{t}"].to_numpy()[e]))
    return {"fit_s": fit_s, "fit_cpu_s": fit_cpu, "rows": rows, "peak_rss_fit_mb": peak_fit,
            "auc": auc, "trees": {t: model.params_[t].get("n_trees") for t in model.targets_},
            "summary": model.summary_.select("target", "n_eligible", "n_positive",
                                             "cv_roc_auc").to_dicts()}


def peer(args):
    """Plain scikit-learn per product: fit on the training rows, backtest, then score."""
    import polars as pl
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    X, Y, _ = _train_frames(args)
    cols = X.columns
    M = X.select(pl.all().cast(pl.Float64)).to_numpy()
    rows = M.shape[0]
    del X
    fit_s = fit_cpu = 0.0
    models = {}
    for p in PRODUCTS:
        e = Y[p].is_not_null().to_numpy()
        t0, c0 = time.perf_counter(), cpu_seconds()
        models[p] = HistGradientBoostingClassifier(random_state=0).fit(M[e], Y[p].to_numpy()[e])
        fit_s += time.perf_counter() - t0
        fit_cpu += cpu_seconds() - c0
    del M, Y
    peak_fit = status_kb("VmHWM") / 1024
    Xt, Yt, _ = _train_frames(args, "test")
    Mt = Xt.select(pl.col(c).cast(pl.Float64) for c in cols).to_numpy()
    auc = {}
    for p in PRODUCTS:
        e = Yt[p].is_not_null().to_numpy()
        auc[p] = float(roc_auc_score(Yt[p].to_numpy()[e], models[p].predict_proba(Mt[e])[:, 1]))
    del Mt, Xt, Yt
    t_score = c_score = 0.0
    n = 0
    for i in range(args.peer_batches):
        feats = pl.read_parquet(Path(args.work) / f"score_{i % args.use}.parquet")
        t0, c0 = time.perf_counter(), cpu_seconds()
        Ms = feats.select(pl.col(c).cast(pl.Float64) for c in cols).to_numpy()
        for p in PRODUCTS:
            models[p].predict_proba(Ms)
        t_score += time.perf_counter() - t0
        c_score += cpu_seconds() - c0
        n += feats.height
    return {"fit_s": fit_s, "fit_cpu_s": fit_cpu, "rows": rows, "auc": auc,
            "peak_rss_fit_mb": peak_fit, "score_s": t_score, "score_cpu_s": c_score,
            "customers_scored": n, "score_cpu_s_per_10m": c_score * 1e7 / max(n, 1),
            "iterations": {p: int(m.n_iter_) for p, m in models.items()}}


def score(args):
    import polars as pl
    from crmkit.propensity import load_model, next_best_products
    work = Path(args.work)
    out = work / "scored"
    out.mkdir(exist_ok=True)
    model = load_model(args.model or work / "model.json")
    if (work / "cutoffs.json").exists() and not args.model:
        cuts = json.loads((work / "cutoffs.json").read_text())
    else:  # top 10 % of each product's propensities on the first shard's training rows
        import numpy as np
        from crmkit.propensity import split_training_set
        X, Y, _ = split_training_set(pl.read_parquet(work / "train_0.parquet"))
        P = model.predict_propensities(X)
        cuts = {t: float(np.quantile(P[f"p_{t}"].to_numpy()[Y[t].is_not_null().to_numpy()]
                                     if t in Y.columns else P[f"p_{t}"].to_numpy(), 0.9))
                for t in model.targets_}
        del X, Y, P
    products = pl.read_parquet(work / "products.parquet")
    t = {"read": 0.0, "predict": 0.0, "offers": 0.0, "reasons": 0.0, "write": 0.0}
    cpu = dict.fromkeys(t, 0.0)
    n = offers_n = explained = 0
    start = time.perf_counter()
    for c in range(args.copies):
        for s in range(args.use):
            if time.perf_counter() - start > args.score_budget_s:
                break

            def lap(key, t0, c0):
                t[key] += time.perf_counter() - t0
                cpu[key] += cpu_seconds() - c0
                return time.perf_counter(), cpu_seconds()

            t0, c0 = time.perf_counter(), cpu_seconds()
            tag = pl.lit(f"R{c}-")
            frames = {name: pl.read_parquet(work / f"{name}_{s}.parquet").with_columns(
                tag + pl.col("customer_id")) for name in
                ("score", "customers", "holdings", "contacts", "managed")}
            feats = frames["score"]
            t0, c0 = lap("read", t0, c0)
            scores = model.predict_propensities(feats, ids=feats["customer_id"])
            t0, c0 = lap("predict", t0, c0)
            top = next_best_products(scores, frames["customers"], frames["holdings"], products,
                                     as_of=SCORE_AS_OF, k=3, contacts=frames["contacts"])
            t0, c0 = lap("offers", t0, c0)
            # the step's default: reasons for the first offer of managed customers whose
            # propensity is in the product's top 10 % (the rest: scores and offers only)
            why = next_best_products(scores, frames["customers"], frames["holdings"], products,
                                     as_of=SCORE_AS_OF, k=3, contacts=frames["contacts"],
                                     model=model, features=feats, reasons=3, reason_ranks=1,
                                     reason_customers=frames["managed"]["customer_id"],
                                     reason_min_propensity=cuts)
            t0, c0 = lap("reasons", t0, c0)
            scores.write_parquet(out / "scores.parquet")
            why.write_parquet(out / "offers.parquet")
            lap("write", t0, c0)
            n += feats.height
            offers_n += top.height
            explained += int(why["explained"].sum())
            del feats, scores, top, why, frames
    # "reasons" includes a second pass of the offers (what the step does once): subtract
    reasons_only = t["reasons"] - t["offers"]
    total = t["read"] + t["predict"] + t["reasons"] + t["write"]
    total_cpu = cpu["read"] + cpu["predict"] + cpu["reasons"] + cpu["write"]
    return {"customers": n, "offers": offers_n, "explained": explained,
            "wall": t, "cpu": cpu, "total_s": total, "total_cpu_s": total_cpu,
            "total_s_per_10m": total * 1e7 / max(n, 1),
            "total_cpu_s_per_10m": total_cpu * 1e7 / max(n, 1),
            "reasons_ms_per_explained_offer": 1000 * reasons_only / max(explained, 1)}


PHASES = {"prepare": prepare, "train": train, "score": score, "peer": peer}
HEAVY = {"prepare", "train", "peer"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bank", default="/work/bench/bank1m")
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--shard", type=int, default=0)
    ap.add_argument("--use", type=int, default=None,
                    help="prepared shards used by train, peer and score (default all)")
    ap.add_argument("--copies", type=int, default=10)
    ap.add_argument("--peer-batches", type=int, default=2,
                    help="scoring batches the plain scikit-learn models score (rate reported)")
    ap.add_argument("--score-budget-s", type=float, default=1200.0,
                    help="stop scoring after this many seconds (the rate is reported)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--model", default=None,
                    help="score with this saved model instead of the train phase's")
    ap.add_argument("--work", default="/tmp/prop_bench")
    ap.add_argument("--phase", default=None)
    ap.add_argument("--phases", default="prepare,train,peer,score")
    ap.add_argument("--no-lock", action="store_true")
    args = ap.parse_args()
    if args.use is None:
        args.use = args.shards
    if args.phase:
        t0, c0 = time.perf_counter(), cpu_seconds()
        out = PHASES[args.phase](args)
        out.update(wall_s=time.perf_counter() - t0, cpu_s=cpu_seconds() - c0,
                   peak_rss_mb=status_kb("VmHWM") / 1024)
        print(json.dumps(out))
        return
    results_path = Path(args.work, "results.json")
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    Path(args.work).mkdir(parents=True, exist_ok=True)
    for phase in args.phases.split(","):
        runs = [("prepare", s) for s in range(args.use)
                if f"prepare_{s}" not in results] if phase == "prepare" else [(phase, None)]
        for name, shard in runs:
            key = name if shard is None else f"{name}_{shard}"
            load = os.getloadavg()
            passed = [f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items()
                      if k not in ("phase", "phases", "no_lock", "shard") and v is not None]
            cmd = [sys.executable, __file__, "--phase", name, f"--shard={shard or 0}", *passed]
            if name in HEAVY and not args.no_lock:
                cmd = ["flock", LOCK, *cmd]  # one lock hold per phase or shard (< 20 min)
            t0 = time.perf_counter()
            res = subprocess.run(cmd, capture_output=True, text=True,
                                 env=dict(os.environ, OMP_NUM_THREADS=str(args.threads)))
            if res.returncode:
                print(res.stderr, file=sys.stderr)
                raise SystemExit(f"phase {key} failed")
            results[key] = json.loads(res.stdout.strip().splitlines()[-1])
            results[key]["elapsed_with_lock_wait_s"] = time.perf_counter() - t0
            results[key]["load_before"] = [round(x, 2) for x in load]
            results[key]["load_after"] = [round(x, 2) for x in os.getloadavg()]
            print(key, json.dumps(results[key]), flush=True)
            results_path.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
