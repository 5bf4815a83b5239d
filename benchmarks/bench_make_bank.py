"""Time and peak memory of make_bank and build_features at scale.

Run: .venv/bin/python benchmarks/bench_make_bank.py [n_customers ...]
Each size runs in a fresh subprocess so its peak RSS is its own.
"""

from __future__ import annotations

import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
from crmkit.datasets import make_bank
from crmkit.features import build_features
n = int(sys.argv[1])
t = time.perf_counter(); bank = make_bank(n, seed=0); gen = time.perf_counter() - t
rss_gen = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
t = time.perf_counter(); feats = build_features(bank, as_of="2025-12-31"); fe = time.perf_counter() - t
rows = {k: v.height for k, v in bank.items()}
size = sum(v.estimated_size() for v in bank.values()) / 2**20
print(json.dumps({"n": n, "generate_s": gen, "features_s": fe, "rows": rows, "tables_mib": size,
                  "peak_rss_after_generate_mib": rss_gen,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main(sizes: list[int]) -> None:
    for n in sizes:
        out = subprocess.run([sys.executable, "-c", CHILD, str(n)], capture_output=True, text=True,
                             check=True)
        print(out.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [100_000, 1_000_000])
