"""Benchmark: fitting and scoring survival churn models at scale.

Data: synthetic customers with 20 covariates (mixed normal, Poisson counts and
binary flags; 8 of them carry signal) and exponential churn times, censored at a
uniform horizon, generated from a fixed seed chunk by chunk and written once to
``benchmarks/_work/churn_<N>.parquet`` (float32 covariates, ``customer_id``,
``tenure`` already stayed, ``duration``, ``event``).

Candidates, each in its own subprocess (peak RSS = the process's ``VmHWM``, which
includes reading its input):

- ``fit_crmkit``: ``CoxPH().fit`` on N_fit customers (screening + lifelines + the
  arrays kept for scoring);
- ``fit_lifelines``: ``lifelines.CoxPHFitter().fit`` on the same rows;
- ``score_crmkit_stream``: ``score_customers(model loaded from JSON, parquet path,
  4 horizons, conditional on tenure, chunk_rows=500k, sink=parquet)`` over N_score
  customers: the production path, bounded memory;
- ``score_crmkit_mem``: ``model.predict_churn`` on N_cmp rows already in memory;
- ``score_lifelines_times``: lifelines' ``predict_survival_function(X, times=4
  horizons)`` on the same N_cmp rows (its best call for this job);
- ``score_lifelines_full``: lifelines' ``predict_survival_function(X)`` (the whole
  timeline, the call users reach for) on N_full rows, from which the 4 horizons are
  then read.

Usage::

    python benchmarks/bench_churn.py                    # 1M fit, 10M scoring
    python benchmarks/bench_churn.py --fit 100000 --score 1000000 --cmp 100000 --full 20000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from _measure import status_kb  # benchmarks/ is the script's folder

HERE = Path(__file__).resolve().parent
WORK = HERE / "_work"
HORIZONS = (30, 90, 180, 365)
P = 20


def _data_path(n: int) -> Path:
    return WORK / f"churn_{n}.parquet"


def make_data(n: int, chunk: int = 1_000_000) -> Path:
    """Write the synthetic customers (chunk by chunk, so memory stays small)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    path = _data_path(n)
    if path.exists():
        return path
    WORK.mkdir(parents=True, exist_ok=True)
    beta = np.zeros(P)
    beta[:8] = [0.4, -0.3, 0.25, -0.2, 0.15, 0.3, -0.5, 0.2]
    tmp = path.with_suffix(".tmp")
    writer = None
    for k, lo in enumerate(range(0, n, chunk)):
        m = min(chunk, n - lo)
        rng = np.random.default_rng([2026, k])
        X = np.empty((m, P), dtype=np.float32)
        X[:, :10] = rng.normal(size=(m, 10))
        X[:, 10:15] = rng.poisson(2.0, size=(m, 5))
        X[:, 15:] = rng.random((m, 5)) < 0.3
        lp = X.astype(np.float64) @ beta
        t = 400.0 * rng.exponential(size=m) / np.exp(lp)
        c = rng.uniform(30, 730, m)
        cols = {f"x{j:02d}": X[:, j] for j in range(P)}
        cols["customer_id"] = np.char.add("c", np.arange(lo, lo + m).astype(str))
        cols["tenure"] = np.floor(rng.uniform(0, 365, m)).astype(np.float32)
        cols["duration"] = np.ceil(np.minimum(t, c)).astype(np.float64)
        cols["event"] = t <= c
        table = pa.table(cols)
        if writer is None:
            writer = pq.ParquetWriter(tmp, table.schema)
        writer.write_table(table)
    writer.close()
    os.replace(tmp, path)
    return path


def _xy(path: Path, n: int | None = None):
    import polars as pl

    from crmkit.churn import make_y
    lf = pl.scan_parquet(path)
    if n is not None:
        lf = lf.head(n)
    df = lf.collect()
    X = df.select([f"x{j:02d}" for j in range(P)])
    return df, X, make_y(df["duration"].to_numpy(), df["event"].to_numpy())


def worker(task: str, n: int, path: str, model: str) -> dict:
    import numpy as np
    out: dict = {"task": task, "n": n}
    path = Path(path)
    if task == "fit_crmkit":
        from crmkit.churn import CoxPH
        _, X, y = _xy(path, n)
        t0 = time.perf_counter()
        m = CoxPH().fit(X, y)
        out["seconds"] = time.perf_counter() - t0
        Path(model).write_text(m.to_json())
        out["coef_head"] = [round(float(c), 4) for c in m.coef_[:8]]
        out["grid_points"] = int(m.baseline_times_.size)
    elif task == "fit_lifelines":
        from lifelines import CoxPHFitter
        df, X, _ = _xy(path, n)
        pdf = X.to_pandas().astype("float64")
        pdf["duration"] = df["duration"].to_numpy()
        pdf["event"] = df["event"].to_numpy().astype(int)
        del df, X
        t0 = time.perf_counter()
        f = CoxPHFitter().fit(pdf, "duration", "event")
        out["seconds"] = time.perf_counter() - t0
        out["coef_head"] = [round(float(c), 4) for c in f.params_.to_numpy()[:8]]
    elif task == "score_crmkit_stream":
        from crmkit.churn import load_model, score_customers
        m = load_model(model)
        sink = WORK / f"churn_scores_{n}.parquet"
        t0 = time.perf_counter()
        score_customers(m, path, horizons_days=HORIZONS, elapsed_col="tenure",
                        chunk_rows=500_000, sink=sink)
        out["seconds"] = time.perf_counter() - t0
        import pyarrow.parquet as pq
        out["rows_written"] = pq.ParquetFile(sink).metadata.num_rows
    elif task in ("score_crmkit_mem", "score_lifelines_times", "score_lifelines_full"):
        from crmkit.churn import load_model
        m = load_model(model)
        df, X, _ = _xy(path, n)
        if task == "score_crmkit_mem":
            t0 = time.perf_counter()
            p = m.predict_churn(X, horizons_days=HORIZONS, lifetime=False).to_numpy()
            out["seconds"] = time.perf_counter() - t0
        else:
            # the same model as a lifelines fitter, fitted on a small sample: scoring cost
            # does not depend on the fit, only on the rows and the time grid
            from lifelines import CoxPHFitter
            sample = _xy(path, 200_000)
            pdf = sample[1].to_pandas().astype("float64")
            pdf["duration"] = sample[0]["duration"].to_numpy()
            pdf["event"] = sample[0]["event"].to_numpy().astype(int)
            f = CoxPHFitter().fit(pdf, "duration", "event")
            del sample, pdf
            Xp = X.to_pandas().astype("float64")
            del df, X
            import gc
            gc.collect()
            t0 = time.perf_counter()
            if task == "score_lifelines_times":
                S = f.predict_survival_function(Xp, times=list(HORIZONS))
                p = 1.0 - S.to_numpy().T
            else:
                S = f.predict_survival_function(Xp)
                idx = np.searchsorted(S.index.to_numpy(), HORIZONS, side="right") - 1
                p = 1.0 - S.to_numpy()[idx].T
                out["timeline_points"] = int(S.shape[0])
            out["seconds"] = time.perf_counter() - t0
        out["mean_prob"] = [round(float(v), 4) for v in p.mean(axis=0)]
    else:
        raise ValueError(task)
    out["peak_mb"] = status_kb("VmHWM") / 1024
    return out


def oracle_data() -> dict:
    """Untied synthetic survival data for the metric oracle (same as in
    tests/churn/test_metrics.py::_oracle_data)."""
    import numpy as np
    rng = np.random.default_rng(20261122)

    def draw(n):
        x = rng.normal(size=n)
        t = rng.exponential(10 * np.exp(-0.7 * x))
        c = rng.uniform(0, 25, n)
        return x, np.minimum(t, c), t <= c

    xtr, dtr, etr = draw(600)
    xte, dte, ete = draw(400)
    keep = dte < dtr[~etr].max() * 0.95  # scikit-survival needs G > 0 at the test times
    xte, dte, ete = xte[keep], dte[keep], ete[keep]
    risk = xte + 0.3 * rng.normal(size=xte.size)
    times = np.array([2.0, 5.0, 10.0, 15.0])
    grid = np.linspace(1.0, 15.0, 30)
    S = np.exp(-np.outer(np.exp(0.7 * xte), times) / 10)
    Sg = np.exp(-np.outer(np.exp(0.7 * xte), grid) / 10)
    return dict(dtr=dtr, etr=etr, d=dte, e=ete, risk=risk, times=times, grid=grid, S=S, Sg=Sg)


def sksurv_oracle() -> dict:
    """scikit-survival's metrics on :func:`oracle_data`; run with the python of
    ``benchmarks/.venv-sksurv`` (``pip install scikit-survival``), never crmkit's venv."""
    import sksurv
    from sksurv.metrics import (
        brier_score,
        concordance_index_censored,
        concordance_index_ipcw,
        cumulative_dynamic_auc,
        integrated_brier_score,
    )
    from sksurv.util import Surv
    z = oracle_data()
    ytr, yte = Surv.from_arrays(z["etr"], z["dtr"]), Surv.from_arrays(z["e"], z["d"])
    auc, mean_auc = cumulative_dynamic_auc(ytr, yte, 1 - z["S"], z["times"])
    return {"sksurv": sksurv.__version__,
            "harrell": concordance_index_censored(z["e"], z["d"], z["risk"])[0],
            "uno_tau12": concordance_index_ipcw(ytr, yte, z["risk"], tau=12.0)[0],
            "auc": auc.tolist(), "mean_auc": float(mean_auc),
            "brier": brier_score(ytr, yte, z["S"], z["times"])[1].tolist(),
            "ibs": integrated_brier_score(ytr, yte, z["Sg"], z["grid"])}


def run(task: str, n: int, path: Path, model: Path, timeout: int = 3600) -> dict:
    cmd = [sys.executable, __file__, "--worker", task, "--n", str(n), "--path", str(path),
           "--model", str(model)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        return {"task": task, "n": n, "error": proc.stderr.strip().splitlines()[-1][:300],
                "wall": time.perf_counter() - t0}
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res["wall"] = time.perf_counter() - t0
    print(json.dumps(res), flush=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker")
    ap.add_argument("--n", type=int)
    ap.add_argument("--path")
    ap.add_argument("--model")
    ap.add_argument("--fit", type=int, default=1_000_000)
    ap.add_argument("--score", type=int, default=10_000_000)
    ap.add_argument("--cmp", type=int, default=1_000_000)
    ap.add_argument("--full", type=int, default=100_000)
    ap.add_argument("--out", default=str(HERE / "results" / "churn.md"))
    ap.add_argument("--from-log", help="rewrite the report from the JSON lines of a run's log")
    ap.add_argument("--sksurv-oracle", action="store_true",
                    help="print scikit-survival's metrics on oracle_data() (sksurv venv)")
    args = ap.parse_args()
    if args.sksurv_oracle:
        print(json.dumps(sksurv_oracle(), indent=1))
        return
    if args.from_log:
        rows = [json.loads(x) for x in Path(args.from_log).read_text().splitlines()
                if x.startswith("{")]
        keys = ["fit_crmkit", "fit_lifelines", "score_crmkit_stream", "score_crmkit_mem",
                "score_lifelines_times", "score_crmkit_mem_full", "score_lifelines_full"]
        write_report(dict(zip(keys, rows)), args)
        return
    if args.worker:
        print(json.dumps(worker(args.worker, args.n, args.path, args.model)))
        return
    os.environ.setdefault("POLARS_MAX_THREADS", "2")
    path = make_data(max(args.fit, args.score, args.cmp, args.full))
    model = WORK / f"churn_cox_{args.fit}.json"
    res = {}
    res["fit_crmkit"] = run("fit_crmkit", args.fit, path, model)
    res["fit_lifelines"] = run("fit_lifelines", args.fit, path, model)
    res["score_crmkit_stream"] = run("score_crmkit_stream", args.score, path, model)
    res["score_crmkit_mem"] = run("score_crmkit_mem", args.cmp, path, model)
    res["score_lifelines_times"] = run("score_lifelines_times", args.cmp, path, model)
    res["score_crmkit_mem_full"] = run("score_crmkit_mem", args.full, path, model)
    res["score_lifelines_full"] = run("score_lifelines_full", args.full, path, model)
    write_report(res, args)


def _fmt(r: dict, key: str, spec: str) -> str:
    return format(r[key], spec) if key in r else "failed: " + r.get("error", "?")


def write_report(res: dict, args) -> None:
    import lifelines
    import numpy as np
    import polars as pl

    def ratio(a, b, key):
        if key in res[a] and key in res[b]:
            return f"{res[b][key] / res[a][key]:.1f}x"
        return "n/a"

    lines = [
        "# Churn survival models: fit and scoring benchmark",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, numpy {np.__version__}, polars {pl.__version__}, "
        f"lifelines {lifelines.__version__}. POLARS_MAX_THREADS=2.",
        f"Command: `python benchmarks/bench_churn.py --fit {args.fit} --score {args.score} "
        f"--cmp {args.cmp} --full {args.full}`. Each row is its own subprocess; peak RSS is "
        "its VmHWM (includes the Python interpreter, imports and reading the input).",
        "",
        "Data: synthetic, 20 float32 covariates, exponential churn times with 8 true "
        "effects, censored uniformly in 30-730 days (`make_data` in the script).",
        "",
        "| task | rows | seconds | peak RSS (MB) | note |",
        "|---|---:|---:|---:|---|",
    ]
    notes = {
        "fit_crmkit": "CoxPH().fit: screening + lifelines + arrays kept",
        "fit_lifelines": "CoxPHFitter().fit on the same rows (pandas float64)",
        "score_crmkit_stream": "score_customers from Parquet to Parquet, 4 horizons, "
                               "conditional on tenure, 500k-row chunks",
        "score_crmkit_mem": "predict_churn, rows in memory, 4 horizons",
        "score_lifelines_times": "predict_survival_function(X, times=4 horizons)",
        "score_crmkit_mem_full": "predict_churn, rows in memory, 4 horizons",
        "score_lifelines_full": "predict_survival_function(X) over the whole timeline",
    }
    for key, r in res.items():
        lines.append(f"| {key} | {r['n']:,} | {_fmt(r, 'seconds', '.1f')} | "
                     f"{_fmt(r, 'peak_mb', '.0f')} | {notes[key]} |")
    lines += [
        "",
        "Ratios (lifelines / crmkit, same rows, same run; above 1 means crmkit is faster or "
        "smaller):",
        "",
        f"- fit time {ratio('fit_crmkit', 'fit_lifelines', 'seconds')}, fit peak memory "
        f"{ratio('fit_crmkit', 'fit_lifelines', 'peak_mb')};",
        f"- scoring 4 horizons on {args.cmp:,} rows: time "
        f"{ratio('score_crmkit_mem', 'score_lifelines_times', 'seconds')}, peak memory "
        f"{ratio('score_crmkit_mem', 'score_lifelines_times', 'peak_mb')};",
        f"- against the whole-timeline call on {args.full:,} rows: time "
        f"{ratio('score_crmkit_mem_full', 'score_lifelines_full', 'seconds')}, peak memory "
        f"{ratio('score_crmkit_mem_full', 'score_lifelines_full', 'peak_mb')}.",
        "",
        f"Scoring {args.score:,} customers streamed: peak RSS "
        f"{_fmt(res['score_crmkit_stream'], 'peak_mb', '.0f')} MB (target < 2048 MB).",
        "",
        "Notes:",
        "",
        "- The lifelines scoring rows use a `CoxPHFitter` fitted on the first 200,000 "
        "customers (scoring cost depends on rows and time grid, not on the fit), so their "
        "mean probabilities differ slightly from crmkit's 1M-row model.",
        "- `predict_survival_function(X)` materialises (time points x customers) floats: "
        f"{res['score_lifelines_full'].get('timeline_points', 730)} x 10,000,000 x 8 bytes "
        "= about 58 GB for the 10M customers, so it was run on "
        f"{args.full:,} rows only; `times=` (4 horizons) is lifelines' bounded call.",
        "- crmkit's fit is lifelines' fit plus covariate screening (constant, "
        "near-constant, collinear, separation: about 3 s at 1M x 20), a vectorised "
        "training concordance (about 3 s) and the copy into pandas; the fitted "
        "coefficients are identical.",
        "- The machine is shared with other jobs (2 cores); times vary by about 20% "
        "between runs, peak memory does not.",
        "",
        "Raw results:",
        "",
        "```",
        *[json.dumps(r) for r in res.values()],
        "```",
    ]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
