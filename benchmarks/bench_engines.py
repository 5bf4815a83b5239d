"""The full nightly run on each engine (local, Dask, Spark) on a bank on disk.

    python benchmarks/gen_bank_shards.py /data/bank1m --customers 1000000
    python benchmarks/bench_engines.py /data/bank1m --engines local dask spark

Each run is a fresh process (empty model store, every model refitted) with the same
shard count on every engine. The process tree (driver, Dask nannies and workers,
Spark's JVM and Python workers) is sampled every 0.2 s with psutil; the script prints
one JSON line per engine: wall time, the run's per-phase seconds (its manifest), the
peak resident memory of the driver, of the largest other process and of the whole
tree (sum at one instant), the CPU seconds of the tree, the output checksums (equal
on every engine) and the load average before and after. Lines are appended to
``benchmarks/results/engines.jsonl``. Dask runs a LocalCluster of ``--workers``
single-threaded worker processes; Spark runs ``local[--workers]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

PROFILE = """
import resource
import crmkit.pipeline._run as _run
from crmkit.pipeline._engines import LocalEngine

TASKS = []
WORK = []


def _peak_mb():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024


def _nbytes(value):
    if hasattr(value, "estimated_size"):
        return value.estimated_size()
    if isinstance(value, dict):
        return sum(_nbytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_nbytes(v) for v in value)
    return 0


class ProfilingEngine(LocalEngine):
    # one task at a time, as local, with each task's time, peak RSS and result size
    def map(self, fn, items, *, shared=None, on_done=None):
        step = getattr(shared[1], "name", "") if isinstance(shared, tuple) and len(shared) > 1 else ""
        out = []
        for i, item in enumerate(items):
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
            t0 = time.perf_counter()
            value = fn(shared, item)
            TASKS.append({"task": fn.__name__, "step": step, "shard": item,
                          "s": round(time.perf_counter() - t0, 3),
                          "peak_mb": round(_peak_mb()), "result_bytes": _nbytes(value)})
            out.append(value)
            if on_done is not None:
                on_done(i)
        run = shared[0] if isinstance(shared, tuple) else None
        if run is not None and hasattr(run, "work"):
            WORK.append({"after": fn.__name__, "step": step, "work_mb": round(sum(
                p.stat().st_size for p in run.work.rglob("*") if p.is_file()) / 2**20, 1)})
        return out


_run.make_engine = lambda name, settings=None: ProfilingEngine()
"""

CHILD = """
import json, os, sys, time
from crmkit.pipeline import run_pipeline
if os.environ.get("CRMKIT_BENCH_PROFILE"):
    exec(PROFILE_CODE)
if __name__ == "__main__":
    cfg = json.loads(sys.argv[1])
    t0 = time.perf_counter()
    res = run_pipeline(cfg, as_of=sys.argv[2], progress=False)
    wall = time.perf_counter() - t0
    m = res.manifest
    print(json.dumps({"run_s": round(wall, 1), "n_shards": m["run"]["n_shards"],
                      "customers": m["inputs"]["tables"]["customers"]["rows"],
                      "transactions": m["inputs"]["tables"].get("transactions", {}).get("rows"),
                      "phase_seconds": m["timings_seconds"], "driver_phase_peak_mb": m["peak_rss_mb"],
                      "outputs_sha256": {k: v["sha256"] for k, v in sorted(m["outputs"].items())},
                      **({"tasks": TASKS, "work_folder": WORK} if "TASKS" in globals() else {})}))
"""


class TreeSampler(threading.Thread):
    """Peak RSS per process and of the whole tree, CPU seconds of every process seen."""

    def __init__(self, pid: int, every: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.every = every
        self.peaks: dict[int, tuple[str, float]] = {}
        self.cpu: dict[int, float] = {}
        self.tree_peak = 0.0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.Error:
                break
            total = 0.0
            for p in procs:
                try:
                    with p.oneshot():
                        rss = p.memory_info().rss / 2**20
                        t = p.cpu_times()
                        name = p.name()
                except psutil.Error:
                    continue
                total += rss
                self.cpu[p.pid] = t.user + t.system + t.children_user + t.children_system
                if rss > self.peaks.get(p.pid, ("", 0.0))[1]:
                    self.peaks[p.pid] = (name, rss)
            self.tree_peak = max(self.tree_peak, total)
            self.stop.wait(self.every)


def run_one(data: Path, engine: str, shards: int | str, workers: int, as_of: str,
            profile: bool = False) -> dict:
    out = Path(tempfile.mkdtemp(prefix=f"bench_engines_{engine}_", dir=data.parent))
    run: dict = {"output_dir": str(out), "report": False, "n_shards": shards,
                 "engine": engine}
    cfg: dict = {"run": run, "inputs": {"source": str(data.resolve())}}
    if engine == "dask":
        cfg["engine"] = {"n_workers": workers, "threads_per_worker": 1}
    elif engine == "spark":
        cfg["engine"] = {"spark_master": f"local[{workers}]",
                         "spark_conf": {"spark.driver.memory": "2g"}}
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    env = dict(os.environ)
    code = CHILD
    if profile:
        env["CRMKIT_BENCH_PROFILE"] = "1"
        code = f"PROFILE_CODE = {PROFILE!r}\n" + CHILD
    proc = subprocess.Popen([sys.executable, "-c", code, json.dumps(cfg), as_of],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    sampler = TreeSampler(proc.pid)
    sampler.start()
    stdout, stderr = proc.communicate()
    elapsed = time.perf_counter() - t0
    sampler.stop.set()
    sampler.join()
    shutil.rmtree(out, ignore_errors=True)
    if proc.returncode:
        sys.stderr.write(stderr[-4000:])
        raise SystemExit(proc.returncode)
    row = json.loads(stdout.strip().splitlines()[-1])
    driver = sampler.peaks.get(proc.pid, ("", 0.0))[1]
    others = sorted(((rss, name) for pid, (name, rss) in sampler.peaks.items()
                     if pid != proc.pid), reverse=True)
    row.update(engine=engine, workers=workers if engine != "local" else 1,
               process_s=round(elapsed, 1), driver_peak_mb=round(driver),
               largest_other_peak_mb=round(others[0][0]) if others else 0,
               largest_other=others[0][1] if others else "",
               other_peaks_mb=[round(r) for r, _ in others[:6]],
               tree_peak_mb=round(sampler.tree_peak),
               tree_cpu_s=round(sum(sampler.cpu.values()), 1),
               load_before=[round(x, 2) for x in load_before],
               load_after=[round(x, 2) for x in os.getloadavg()], cores=os.cpu_count(),
               data=str(data))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("data", type=Path)
    parser.add_argument("--engines", nargs="+", default=["local", "dask", "spark"],
                        choices=["local", "dask", "spark"])
    parser.add_argument("--as-of", default="2025-12-31")
    parser.add_argument("--n-shards", default="auto")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--label", default="")
    parser.add_argument("--profile", action="store_true",
                        help="local engine only: time, peak RSS and result size of every "
                             "shard task (the per-shard figures of docs/scale.md)")
    args = parser.parse_args()
    shards = args.n_shards if args.n_shards == "auto" else int(args.n_shards)
    results = Path(__file__).parent / "results" / "engines.jsonl"
    rows = []
    for engine in args.engines:
        row = run_one(args.data, engine, shards, args.workers, args.as_of,
                      profile=args.profile and engine == "local")
        row["label"] = args.label + ("-profile" if args.profile and engine == "local" else "")
        rows.append(row)
        line = json.dumps(row)
        print(line, flush=True)
        with open(results, "a") as fh:
            fh.write(line + "\n")
    base = next((r for r in rows if r["engine"] == "local"), None)
    if base is not None:
        for r in rows:
            same = r["outputs_sha256"] == base["outputs_sha256"]
            print(f"{r['engine']:>6}: {r['process_s']:7.1f} s  x{r['process_s'] / base['process_s']:.2f}"
                  f" of local  driver {r['driver_peak_mb']} MB  largest other "
                  f"{r['largest_other_peak_mb']} MB  tree {r['tree_peak_mb']} MB  "
                  f"outputs identical to local: {same}")


if __name__ == "__main__":
    main()
