"""Time and peak memory of ``crmkit.schema.validate`` on the sample bank at scale.

Run (heavy: take the machine-wide lock):

    flock /tmp/crmkit-bench.lock .venv/bin/python benchmarks/bench_validate.py 1000000

The bank is generated once per size into ``benchmarks/_work/bank_<n>/`` (Parquet) by a
separate process, so the measuring process holds only the tables it read. The
measuring process reads the folder, resets the kernel's peak-RSS counter, runs
``validate(..., mode="quarantine")`` as the nightly run does, and reports the peak
RSS during validation and the extra over the tables already in memory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

WORK = Path(__file__).resolve().parent / "_work"

GENERATE = r"""
import sys
from crmkit.datasets import make_bank
from crmkit.io import write_tables
write_tables(make_bank(int(sys.argv[1]), seed=0), sys.argv[2], format="parquet")
"""

CHILD = r"""
import json, os, sys, time
sys.path.insert(0, os.path.dirname(sys.argv[2]))
from _measure import reset_peak, status_kb
from crmkit.io import read_tables
from crmkit.schema import validate
bank = read_tables(sys.argv[1])
rows = {k: v.height for k, v in bank.items()}
size = sum(v.estimated_size() for v in bank.values()) / 2**20
before = status_kb("VmRSS") / 1024
reset_ok = reset_peak()
t = time.perf_counter()
res = validate(bank, as_of="2025-12-31", mode="quarantine")
took = time.perf_counter() - t
peak = status_kb("VmHWM") / 1024
print(json.dumps({"validate_s": round(took, 2), "rows": rows, "tables_mib": round(size),
                  "rss_before_mib": round(before), "peak_rss_mib": round(peak),
                  "extra_mib": round(peak - before), "peak_reset": reset_ok,
                  "problems": len(res.problems), "load": os.getloadavg()}))
"""


def main(sizes: list[int]) -> None:
    for n in sizes:
        folder = WORK / f"bank_{n}"
        if not (folder / "transactions.parquet").exists():
            WORK.mkdir(exist_ok=True)
            subprocess.run([sys.executable, "-c", GENERATE, str(n), str(folder)], check=True)
        out = subprocess.run([sys.executable, "-c", CHILD, str(folder), __file__],
                             capture_output=True, text=True)
        if out.returncode:
            print(out.stderr, file=sys.stderr)
            raise SystemExit(out.returncode)
        print(json.dumps({"n": n, **json.loads(out.stdout.strip().splitlines()[-1])}), flush=True)


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1_000_000])
