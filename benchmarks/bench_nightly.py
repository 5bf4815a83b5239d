"""The full nightly run (every registered step, every model refitted) on a bank on disk.

    python benchmarks/gen_bank_shards.py /data/bank1m --customers 1000000
    python benchmarks/bench_nightly.py /data/bank1m --as-of 2025-12-31 [--n-shards auto]

Each run is a fresh process with an empty model store; the script prints one JSON
line: wall time, the run's own time and peak resident memory per phase (from its
manifest), the whole process's peak RSS, CPU time and the load average before and
after (CPU includes the worker processes a run starts; ``tree_peak_mb`` is the peak
of the run and its workers together, sampled every 0.2 s). Append ``--label`` to tag
the line in ``benchmarks/results/nightly.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_engines import TreeSampler  # noqa: E402 - the same sampler for every benchmark

CHILD = """
import json, resource, sys, time
from crmkit.pipeline import run_pipeline
cfg = json.loads(sys.argv[1])
t0 = time.perf_counter()
res = run_pipeline(cfg, as_of=sys.argv[2], progress=False)
wall = time.perf_counter() - t0
usage = resource.getrusage(resource.RUSAGE_SELF)
workers = resource.getrusage(resource.RUSAGE_CHILDREN)  # the propensity fit's processes
m = res.manifest
print(json.dumps({"wall_s": round(wall, 1), "cpu_s": round(usage.ru_utime + usage.ru_stime
                                                          + workers.ru_utime + workers.ru_stime, 1),
                  "workers_cpu_s": round(workers.ru_utime + workers.ru_stime, 1),
                  # the run resets the kernel's high-water mark at each phase, so
                  # ru_maxrss holds the last phase's only: the peak is the phases' highest
                  "process_peak_mb": round(max([usage.ru_maxrss / 1024,
                                                *res.manifest["peak_rss_mb"].values()])),
                  "n_shards": m["run"]["n_shards"],
                  "customers": m["inputs"]["tables"]["customers"]["rows"],
                  "transactions": m["inputs"]["tables"].get("transactions", {}).get("rows"),
                  "phase_seconds": m["timings_seconds"], "phase_peak_mb": m["peak_rss_mb"],
                  "phase_worker_peak_mb": m.get("worker_peak_rss_mb", {}),
                  "run_dir": str(res.run_dir)}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("data", type=Path)
    parser.add_argument("--as-of", default="2025-12-31")
    parser.add_argument("--n-shards", default="auto")
    parser.add_argument("--label", default="")
    parser.add_argument("--report", action="store_true", help="also write the HTML report")
    parser.add_argument("--steps", default="default",
                        help="'default' (value, clv, churn, lifecycle, segments), 'all' (the steps "
                             "of pipelines/nightly.toml: also propensity, assign, calls) or a "
                             "comma list")
    parser.add_argument("--keep", action="store_true", help="keep the run folder")
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="bench_nightly_", dir=args.data.parent))
    shards = args.n_shards if args.n_shards == "auto" else int(args.n_shards)
    cfg = {"run": {"output_dir": str(out), "report": args.report, "n_shards": shards},
           "inputs": {"source": str(args.data.resolve())}}
    if args.steps != "default":
        import tomllib

        # "all": the bank's steps as pipelines/nightly.toml lists them (the registry also
        # holds the sector steps, which need a sector's own tables)
        shipped = Path(__file__).resolve().parents[1] / "pipelines" / "nightly.toml"
        cfg["run"]["steps"] = tomllib.loads(shipped.read_text())["run"]["steps"] \
            if args.steps == "all" else args.steps.split(",")
        # the demo's two nightly segment exports (CSV), as a bank would run them
        cfg["segments"] = {
            "gold_at_risk": {"where": 'tier in ["Gold", "Platinum"] and churn_prob_365d > 0.02 '
                                      'and not holds("fund")',
                             "columns": ["tier", "financial_assets", "churn_prob_365d"],
                             "channel": "phone"},
            "win_back_email": {"where": 'stage in ["dormant", "churned"] and '
                                        'financial_assets > 1000',
                               "columns": ["stage", "financial_assets"], "channel": "email"}}
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(cfg), args.as_of],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # the whole process tree: the run and the worker processes it starts
    sampler = TreeSampler(proc.pid)
    sampler.start()
    stdout, stderr = proc.communicate()
    elapsed = time.perf_counter() - t0
    sampler.stop.set()
    sampler.join()
    if proc.returncode:
        sys.stderr.write(stderr[-4000:])
        raise SystemExit(proc.returncode)
    row = json.loads(stdout.strip().splitlines()[-1])
    row.update(label=args.label, data=str(args.data), process_s=round(elapsed, 1),
               tree_peak_mb=round(sampler.tree_peak),
               steps=cfg["run"].get("steps", "default"),
               load_before=[round(x, 2) for x in load_before],
               load_after=[round(x, 2) for x in os.getloadavg()], cores=os.cpu_count())
    line = json.dumps(row)
    print(line)
    results = Path(__file__).parent / "results" / "nightly.jsonl"
    with open(results, "a") as fh:
        fh.write(line + "\n")
    if not args.keep:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
