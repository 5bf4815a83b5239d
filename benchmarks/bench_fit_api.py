"""Benchmark (issue 10): BG/NBD and Pareto/NBD fits, crmkit vs lifetimes 0.11.3.

Usage (from the repository root, under the machine-wide lock)::

    flock /tmp/crmkit-bench.lock .venv/bin/python benchmarks/bench_fit_api.py [--n 1000000]

Cases, each candidate in its own subprocess (lifetimes in benchmarks/.venv-lifetimes,
made by benchmarks/setup_peers.sh), reporting wall time, CPU time (user + system,
all threads) and peak RSS (VmHWM):

- ``bgnbd_days``: BG/NBD at ``n`` customers in **day** units (recency and T whole
  days, up to 546), simulated from the CDNOW parameters (alpha scaled to days).
  lifetimes gets the per-customer ``frequency, recency, T`` arrays (its documented
  input) and, as its best case, the same data compressed to distinct patterns with
  ``weights=``.
- ``pareto_cdnow``: Pareto/NBD on CDNOW's published 2,357-customer summary (weeks).
- ``pareto_synth``: Pareto/NBD at ``n`` customers simulated from the CDNOW Pareto/NBD
  fit, in weeks with purchase times rounded to days; lifetimes gets the distinct
  patterns with ``weights=`` (its best case: per customer it would evaluate the
  hypergeometric terms ``n`` times per iteration).
- ``pareto_nodrop``: Pareto/NBD on a 3,370-customer log in which nobody drops out
  (the issue's slow case), weeks.

Parameters must agree to 1e-3 (relative) for a timing to count. crmkit's standard
errors are not computed by ``fit`` (they are computed when first asked for); the
crmkit row also reports the time of that first ``summary_``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "benchmarks" / "_work"
sys.path.insert(0, str(ROOT / "benchmarks"))
from _measure import cpu_seconds, status_kb  # noqa: E402

VENVS = {"crmkit": ROOT / ".venv", "lifetimes": ROOT / "benchmarks" / ".venv-lifetimes"}
BG = {"r": 0.243, "alpha": 4.414 * 7, "a": 0.793, "b": 2.426}          # days
PNBD = {"r": 0.553, "alpha": 10.58, "s": 0.606, "beta": 11.67}         # weeks


def sim_bg_days(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    lam = rng.gamma(BG["r"], 1.0 / BG["alpha"], n)
    p = rng.beta(BG["a"], BG["b"], n)
    T = rng.integers(1, 547, n).astype(float)
    x = np.zeros(n, dtype=np.int64)
    last = np.zeros(n)
    t = np.zeros(n)
    active = np.arange(n)
    while active.size:
        t_new = t[active] + rng.exponential(1.0, active.size) / np.maximum(lam[active], 1e-300)
        ok = t_new <= T[active]
        active, t_new = active[ok], t_new[ok]
        x[active] += 1
        last[active] = np.floor(t_new)
        t[active] = t_new
        alive = rng.random(active.size) >= p[active]
        active = active[alive]
    last = np.minimum(last, T)
    last[x == 0] = 0.0
    return x, last, T


def sim_pareto_weeks(n: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    lam = rng.gamma(PNBD["r"], 1.0 / PNBD["alpha"], n)
    mu = rng.gamma(PNBD["s"], 1.0 / PNBD["beta"], n)
    T = rng.integers(1, 547, n) / 7.0
    death = rng.exponential(1.0, n) / mu
    end = np.minimum(T, death)
    x = rng.poisson(lam * end)
    # the last of x uniform times in (0, end): end * U^(1/x), rounded down to a day
    u = rng.random(n)
    last = np.where(x > 0, np.floor(end * u ** (1.0 / np.maximum(x, 1)) * 7) / 7, 0.0)
    return x, last, T


def sim_nodrop(seed: int = 1):
    rng = np.random.default_rng(seed)
    n = 3370
    lam = rng.gamma(0.8, 1 / 6.0, n)
    T = rng.integers(1, 273, n) / 7.0
    x = rng.poisson(lam * T)
    last = np.array([np.floor(rng.uniform(0, t, k).max() * 7) / 7 if k else 0.0
                     for k, t in zip(x, T)])
    return x, last, T


def data(case: str, n: int) -> Path:
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / f"fitapi_{case}_{n}.npz"
    if not path.exists():
        if case == "bgnbd_days":
            x, t, T = sim_bg_days(n)
        elif case == "pareto_synth":
            x, t, T = sim_pareto_weeks(n)
        elif case == "pareto_nodrop":
            x, t, T = sim_nodrop()
        else:
            import csv
            ref = Path(os.environ.get("CRMKIT_REFERENCE_DATA", ROOT.parent / "shared" / "data"))
            rows = list(csv.DictReader(open(ref / "cdnow" / "cdnow_customers_summary.csv")))
            if not rows:  # pragma: no cover
                raise SystemExit("CDNOW summary not found")
            x = np.array([float(r["frequency"]) for r in rows])
            t = np.array([float(r["recency"]) for r in rows])
            T = np.array([float(r["T"]) for r in rows])
        np.savez(path, x=x, t=t, T=T)
    return path


def child(candidate: str, case: str, n: int, weighted: bool) -> dict:
    d = np.load(data(case, n))
    x, t, T = d["x"].astype(float), d["t"].astype(float), d["T"].astype(float)
    model = "bg" if case.startswith("bg") else "pareto"
    out: dict = {"candidate": candidate + (" (patterns + weights)" if weighted else ""),
                 "case": case, "n": int(len(x))}
    if candidate == "crmkit":
        import warnings

        import polars as pl

        from crmkit.value import BetaGeo, ParetoNBD
        unit = "days" if case == "bgnbd_days" else "weeks"
        frame = pl.DataFrame({"frequency": x, f"recency_{unit}": t, f"T_{unit}": T})
        cls = BetaGeo if model == "bg" else ParetoNBD
        c0, w0 = cpu_seconds(), time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            m = cls().fit(frame)
        out["wall_s"], out["cpu_s"] = time.perf_counter() - w0, cpu_seconds() - c0
        w1 = time.perf_counter()
        _ = m.summary_
        out["first_summary_s"] = time.perf_counter() - w1
        out["params"] = m.params_
        out["patterns"] = m.n_patterns_
        out["warnings"] = [str(w.message)[:120] for w in caught]
    else:
        import warnings

        import pandas as pd
        warnings.simplefilter("ignore")
        from lifetimes import BetaGeoFitter, ParetoNBDFitter
        cls = BetaGeoFitter if model == "bg" else ParetoNBDFitter
        c0, w0 = cpu_seconds(), time.perf_counter()
        if weighted:
            df = pd.DataFrame({"x": x, "t": t, "T": T})
            g = df.groupby(["x", "t", "T"]).size().reset_index(name="w")
            m = cls().fit(g["x"], g["t"], g["T"], weights=g["w"])
        else:
            m = cls().fit(pd.Series(x), pd.Series(t), pd.Series(T))
        out["wall_s"], out["cpu_s"] = time.perf_counter() - w0, cpu_seconds() - c0
        out["params"] = {k: float(v) for k, v in m.params_.items()}
    out["peak_rss_mb"] = status_kb("VmHWM") / 1024
    return out


def spawn(candidate: str, case: str, n: int, weighted: bool = False, timeout: float = 1800):
    py = VENVS[candidate] / "bin" / "python"
    cmd = [str(py), __file__, "--child", candidate, "--case", case, "--n", str(n)]
    if weighted:
        cmd.append("--weighted")
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                             cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"candidate": candidate, "case": case, "error": f"timeout {timeout}s"}
    if res.returncode:
        return {"candidate": candidate, "case": case, "error": res.stderr[-500:]}
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child")
    ap.add_argument("--case")
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--weighted", action="store_true")
    ap.add_argument("--cases", default="pareto_cdnow,pareto_nodrop,bgnbd_days,pareto_synth")
    ap.add_argument("--only", help="run only this candidate (crmkit or lifetimes)")
    ap.add_argument("--out", default="fit_api.json")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.case, args.n, args.weighted)))
        return
    results = []
    for case in args.cases.split(","):
        n = args.n
        data(case, n)
        runs = [("crmkit", False), ("lifetimes", False)]
        if case in ("bgnbd_days", "pareto_synth"):
            runs = [("crmkit", False), ("lifetimes", True)] + \
                ([("lifetimes", False)] if case == "bgnbd_days" else [])
        for cand, weighted in runs:
            if args.only and cand != args.only:
                continue
            load = os.getloadavg()
            r = spawn(cand, case, n, weighted)
            r["load_before"] = [round(v, 2) for v in load]
            r["load_after"] = [round(v, 2) for v in os.getloadavg()]
            results.append(r)
            print(json.dumps(r), flush=True)
    out = ROOT / "benchmarks" / "results" / args.out
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
