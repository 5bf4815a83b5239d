"""Write a large sample bank to disk chunk by chunk, never whole in memory.

Each chunk is ``make_bank(chunk, seed=k)`` with its ids prefixed by ``k`` (customers,
accounts, transactions, managers), written as ``<out>/<table>/part-<k>.parquet``;
the product catalogue, the same in every chunk, is written once. ``crmkit run`` reads
such a folder in record batches.

    python benchmarks/gen_bank_shards.py OUT --customers 10000000 --chunk 1000000
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import polars as pl

from crmkit.datasets import make_bank

ID_COLUMNS = ("customer_id", "account_id", "transaction_id", "manager_id")


def write_chunks(out: Path, customers: int, chunk: int, years: int = 3,
                 only: int | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for k, start in enumerate(range(0, customers, chunk)):
        if only is not None and k != only:
            continue
        t0 = time.perf_counter()
        bank = make_bank(min(chunk, customers - start), seed=k, years=years)
        for name, frame in bank.items():
            if name == "products":
                if k == 0:
                    frame.write_parquet(out / "products.parquet")
                continue
            frame = frame.with_columns(
                (pl.lit(f"{k:03d}-") + pl.col(c)).alias(c)
                for c in ID_COLUMNS if c in frame.columns)
            (out / name).mkdir(exist_ok=True)
            frame.write_parquet(out / name / f"part-{k:05d}.parquet")
        del bank
        print(f"chunk {k}: {time.perf_counter() - t0:.1f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--chunk", type=int, default=1_000_000)
    parser.add_argument("--years", type=int, default=3)
    parser.add_argument("--only", type=int, default=None,
                        help="write chunk ONLY alone (to interleave with other jobs)")
    args = parser.parse_args()
    write_chunks(args.out, args.customers, args.chunk, args.years, args.only)


if __name__ == "__main__":
    main()
