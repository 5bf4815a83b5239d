"""Benchmark: crmkit's rfm_summary against lifetimes, pymc-marketing and a bare polars floor.

Every candidate runs in its own subprocess, with its own interpreter (lifetimes and
pymc-marketing live in their own venvs, see ``setup_peers.sh``), on the same
Parquet file made by ``gen_transactions.py``. Each worker

1. reads the file (pandas for the pandas-based peers, polars otherwise): timed as
   ``read_s``;
2. resets the kernel's peak-RSS counter (``/proc/self/clear_refs`` = 5), notes the
   resident set as the post-read baseline;
3. runs the summary call alone: timed as ``summary_s``; the peak RSS during it is
   ``VmHWM`` afterwards (``peak_mb``), and ``peak_mb - baseline_mb`` the increase;
4. on the first repeat, writes its result (customer_id, frequency, recency, T,
   monetary_value, all in days) so the parent can check that every candidate
   gives the same numbers.

``crmkit_lazy`` is crmkit on ``pl.scan_parquet`` (read and summary fused): its
``summary_s`` includes reading the file, so compare it with the others'
``read_s + summary_s``.

Usage::

    python benchmarks/bench_rfm.py                      # 1M and 10M, 3 repeats
    python benchmarks/bench_rfm.py --sizes 1000000 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _measure import cpu_seconds, reset_peak, status_kb  # benchmarks/ is the script's folder

HERE = Path(__file__).resolve().parent
WORK = HERE / "_work"
OBS_END = "2025-12-31"
PYTHONS = {
    "crmkit": sys.executable,
    "crmkit_lazy": sys.executable,
    "crmkit_1thread": sys.executable,  # POLARS_MAX_THREADS=1: the equal-core comparison
    "polars_floor": sys.executable,
    "lifetimes": str(HERE / ".venv-lifetimes" / "bin" / "python"),
    "pymc_marketing": str(HERE / ".venv-pymc" / "bin" / "python"),
}
CANDIDATES = list(PYTHONS)
WARMUP_ROWS = 20_000


# --- worker side: stdlib at import time, the candidate's libraries inside ------------

def _run_crmkit(path, lazy):
    import polars as pl
    from crmkit.features import rfm_summary

    t0 = time.perf_counter()
    tx = pl.scan_parquet(path) if lazy else pl.read_parquet(path)
    read_s = time.perf_counter() - t0

    def call(data):
        return rfm_summary(data, observation_end=OBS_END, unit="days")

    def normalise(out):
        return out.rename({"recency_days": "recency", "T_days": "T"})

    return read_s, tx, call, normalise, {"polars": pl.__version__}


def _run_polars_floor(path):
    import datetime as dt

    import polars as pl

    t0 = time.perf_counter()
    tx = pl.read_parquet(path)
    read_s = time.perf_counter() - t0
    end = dt.date.fromisoformat(OBS_END)

    def call(tx):
        # The least work that yields the same numbers: one group-by per customer-day,
        # one per customer. No parameter checks, no units, no input conversion.
        days = (tx.lazy()
                .filter(pl.col("timestamp").cast(pl.Date) <= end)
                .group_by("customer_id", pl.col("timestamp").cast(pl.Date).alias("day"))
                .agg(pl.col("amount").sum()))
        per = days.group_by("customer_id").agg(
            pl.col("day").min().alias("first"), pl.col("day").max().alias("last"),
            pl.len().alias("n"), pl.col("amount").sum().alias("total"),
            pl.col("amount").min_by("day").alias("first_amount"))
        return per.select(
            "customer_id",
            (pl.col("n") - 1).alias("frequency"),
            (pl.col("last") - pl.col("first")).dt.total_days().cast(pl.Float64).alias("recency"),
            (pl.lit(end) - pl.col("first")).dt.total_days().cast(pl.Float64).alias("T"),
            pl.when(pl.col("n") > 1)
            .then((pl.col("total") - pl.col("first_amount")) / (pl.col("n") - 1))
            .otherwise(0.0).alias("monetary_value"),
        ).collect()

    return read_s, tx, call, lambda out: out, {"polars": pl.__version__}


def _run_pandas_peer(path, which):
    import pandas as pd

    t0 = time.perf_counter()
    tx = pd.read_parquet(path)
    read_s = time.perf_counter() - t0
    if which == "lifetimes":
        import lifetimes
        from lifetimes.utils import summary_data_from_transaction_data

        def call(tx):
            return summary_data_from_transaction_data(
                tx, "customer_id", "timestamp", monetary_value_col="amount",
                observation_period_end=OBS_END, freq="D")

        def normalise(out):
            return out.reset_index()

        versions = {"lifetimes": lifetimes.__version__}
    else:
        import pymc_marketing
        from pymc_marketing.clv.utils import rfm_summary

        def call(tx):
            return rfm_summary(tx, "customer_id", "timestamp", monetary_value_col="amount",
                               observation_period_end=OBS_END, time_unit="D")

        def normalise(out):
            return out

        versions = {"pymc_marketing": pymc_marketing.__version__}
    import numpy

    versions.update(pandas=pd.__version__, numpy=numpy.__version__)
    return read_s, tx, call, normalise, versions


def worker(candidate: str, path: str, out_path: str | None, warmup: bool = True) -> None:
    if candidate in ("crmkit", "crmkit_lazy", "crmkit_1thread"):
        read_s, data, call, normalise, versions = _run_crmkit(path, candidate == "crmkit_lazy")
    elif candidate == "polars_floor":
        read_s, data, call, normalise, versions = _run_polars_floor(path)
    else:
        read_s, data, call, normalise, versions = _run_pandas_peer(path, candidate)
    if warmup:
        # One call on the first rows first, so that one-time costs (lazy imports,
        # thread pools, first allocations) are not charged to the timed call.
        call(data.head(WARMUP_ROWS))
    peak_read_kb = status_kb("VmHWM")
    reset = reset_peak()
    baseline_kb = status_kb("VmRSS")
    load_before = os.getloadavg()[0]
    cpu0 = cpu_seconds()
    t0 = time.perf_counter()
    out = call(data)
    summary_s = time.perf_counter() - t0
    summary_cpu_s = cpu_seconds() - cpu0
    peak_kb = status_kb("VmHWM")
    result = {
        "candidate": candidate, "warmup": warmup, "read_s": read_s, "summary_s": summary_s,
        "summary_cpu_s": summary_cpu_s, "loadavg_1min_before": load_before,
        "baseline_mb": baseline_kb / 1024, "peak_mb": peak_kb / 1024,
        "peak_read_mb": peak_read_kb / 1024, "peak_reset": reset,
        "n_customers": len(out), "versions": versions,
        "python": platform.python_version(),
    }
    if out_path:
        out = normalise(out)
        cols = ["customer_id", "frequency", "recency", "T", "monetary_value"]
        if hasattr(out, "write_parquet"):
            out.select(cols).write_parquet(out_path)
        else:
            out[cols].to_parquet(out_path, index=False)
    print("RESULT " + json.dumps(result))


# --- parent side ---------------------------------------------------------------------

def _label(n: int) -> str:
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n:,}"


def ensure_data(n: int, seed: int) -> Path:
    path = WORK / f"tx_{_label(n)}_seed{seed}.parquet"
    if not path.exists():
        subprocess.run([sys.executable, str(HERE / "gen_transactions.py"), "-n", str(n),
                        "-o", str(path), "--seed", str(seed)], check=True)
    return path


def run_one(candidate: str, data: Path, out_path: Path | None, timeout: float,
            warmup: bool = True) -> dict:
    cmd = [PYTHONS[candidate], str(Path(__file__).resolve()), "--worker", candidate, str(data)]
    if out_path is not None:
        cmd += ["--out", str(out_path)]
    if not warmup:
        cmd += ["--no-warmup"]
    env = dict(os.environ)
    env["PYTHONPATH"] = str(HERE.parent) if candidate.startswith("crmkit") else ""
    if candidate == "crmkit_1thread":  # polars reads this once, at import
        env["POLARS_MAX_THREADS"] = "1"
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return {"candidate": candidate, "error": f"timed out after {timeout:.0f} s"}
    lines = [ln for ln in stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        return {"candidate": candidate, "error": stderr.strip().splitlines()[-1:] or "failed"}
    return json.loads(lines[-1][len("RESULT "):])


def compare(reference: Path, other: Path) -> dict:
    import polars as pl

    a = pl.read_parquet(reference).sort("customer_id")
    b = pl.read_parquet(other).with_columns(pl.col("customer_id").cast(pl.String)).sort("customer_id")
    if a.height != b.height or not a["customer_id"].equals(b["customer_id"]):
        return {"same_customers": False, "rows": (a.height, b.height)}
    out = {"same_customers": True, "rows": a.height}
    for col in ("frequency", "recency", "T"):
        out[f"{col}_mismatches"] = int((a[col].cast(pl.Float64) != b[col].cast(pl.Float64)).sum())
    rel = ((a["monetary_value"] - b["monetary_value"]).abs()
           / a["monetary_value"].abs().clip(lower_bound=1e-12))
    out["monetary_max_rel_diff"] = float(rel.max())
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="RFM summary benchmark")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("data", nargs="?", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--no-warmup", action="store_true",
                        help="time the first call in each process (no warm-up call)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--candidates", nargs="+", default=CANDIDATES, choices=CANDIDATES)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--json", type=Path, default=WORK / "bench_rfm.json")
    parser.add_argument("--report", type=Path, help="print the table of an earlier run's JSON")
    args = parser.parse_args(argv)
    if args.report:
        print(markdown(json.loads(args.report.read_text())))
        return
    if args.worker:
        worker(args.worker, args.data, args.out, warmup=not args.no_warmup)
        return

    for cand in args.candidates:
        if not Path(PYTHONS[cand]).exists():
            sys.exit(f"{cand}: no interpreter at {PYTHONS[cand]}; run benchmarks/setup_peers.sh")
    WORK.mkdir(exist_ok=True)
    report = {"machine": machine(), "runs": [], "checks": {},
              "loadavg_before": os.getloadavg()}
    for n in args.sizes:
        data = ensure_data(n, args.seed)
        outputs = {}
        for rep in range(args.repeats):
            for cand in args.candidates:  # interleaved, so drift hits every candidate alike
                out_path = WORK / f"out_{cand}_{_label(n)}.parquet" if rep == 0 else None
                res = run_one(cand, data, out_path, args.timeout, warmup=not args.no_warmup)
                res.update(n=n, repeat=rep)
                report["runs"].append(res)
                if out_path is not None and "error" not in res:
                    outputs[cand] = out_path
                print(json.dumps(res), flush=True)
        if "crmkit" in outputs:
            report["checks"][str(n)] = {c: compare(outputs["crmkit"], p)
                                        for c, p in outputs.items() if c != "crmkit"}
            print(json.dumps(report["checks"][str(n)]), flush=True)
        report["loadavg_after"] = os.getloadavg()
        args.json.write_text(json.dumps(report, indent=2))
    print(markdown(report))
    print(f"load average (1, 5, 15 min) before: {report['loadavg_before']}, "
          f"after: {report['loadavg_after']}")


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": round(mem_gb, 1),
            "os": platform.platform(), "python": platform.python_version()}


def summarise(report: dict) -> dict:
    table = {}
    for run in report["runs"]:
        if "error" in run:
            table.setdefault((run["n"], run["candidate"]), {"error": run["error"]})
            continue
        table.setdefault((run["n"], run["candidate"]), {"runs": []})["runs"].append(run)
    out = {}
    for key, entry in table.items():
        runs = entry.get("runs")
        if not runs:
            out[key] = entry
            continue
        med = lambda f: statistics.median(f(r) for r in runs)  # noqa: E731
        out[key] = {
            "repeats": len(runs),
            "summary_s": med(lambda r: r["summary_s"]),
            "total_s": med(lambda r: r["read_s"] + r["summary_s"]),
            "cpu_s": med(lambda r: r.get("summary_cpu_s", float("nan"))),
            "load": med(lambda r: r.get("loadavg_1min_before", float("nan"))),
            "peak_mb": max(r["peak_mb"] for r in runs),
            "increase_mb": max(r["peak_mb"] - r["baseline_mb"] for r in runs),
            "baseline_mb": med(lambda r: r["baseline_mb"]),
            "versions": runs[0]["versions"],
        }
    return out


def markdown(report: dict) -> str:
    rows = summarise(report)
    lines = [
        "| transactions | candidate | repeats | summary wall s | summary CPU s | read+summary wall s "
        "| wall / crmkit | CPU / crmkit | peak RSS MB | RSS increase MB | peak / crmkit peak "
        "| load 1-min before |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (n, cand), r in sorted(rows.items(), key=lambda kv: (kv[0][0], CANDIDATES.index(kv[0][1]))):
        if "error" in r:
            lines.append(f"| {_label(n)} | {cand} | - | error: {r['error']} |" + " |" * 8)
            continue
        base = rows.get((n, "crmkit"), {})
        ratio = lambda key: f"{r[key] / base[key]:.1f}" if base.get(key) else ""  # noqa: E731
        lines.append(
            f"| {_label(n)} | {cand} | {r['repeats']} | {r['summary_s']:.2f} | {r['cpu_s']:.2f} | "
            f"{r['total_s']:.2f} | {ratio('summary_s')} | {ratio('cpu_s')} | {r['peak_mb']:.0f} | "
            f"{r['increase_mb']:.0f} | {ratio('peak_mb')} | {r['load']:.1f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
