"""Write a large sample bank to disk chunk by chunk, never whole in memory.

Each chunk is ``make_bank(chunk, seed=k)`` with its ids prefixed by ``k`` (customers,
accounts, transactions, managers), written as ``<out>/<table>/part-<k>.parquet``;
the product catalogue, the same in every chunk, is written once. ``crmkit run`` reads
such a folder in record batches.

    python benchmarks/gen_bank_shards.py OUT --customers 10000000 --chunk 1000000
    python benchmarks/gen_bank_shards.py OUT10M --customers 10000000 --replicate OUT1M
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


def replicate(source: Path, out: Path, copies: int) -> None:
    """``copies`` chunks made from the one-chunk bank ``source``, ids re-prefixed per copy.

    A bank of ten million distinct customers for speed and memory measurements,
    written in seconds instead of the generator's minutes per chunk; the copies'
    histories repeat, which the pipeline's cost does not depend on.
    """
    out.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.glob("*/part-00000.parquet")):
        table = path.parent.name
        (out / table).mkdir(exist_ok=True)
        frame = pl.read_parquet(path)
        for k in range(copies):
            frame.with_columns(
                (pl.lit(f"{k:03d}") + pl.col(c).str.slice(3)).alias(c)
                for c in ID_COLUMNS if c in frame.columns
            ).write_parquet(out / table / f"part-{k:05d}.parquet")
        print(f"{table}: {copies} copies", flush=True)
    products = source / "products.parquet"
    if products.exists():
        pl.read_parquet(products).write_parquet(out / "products.parquet")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--chunk", type=int, default=1_000_000)
    parser.add_argument("--years", type=int, default=3)
    parser.add_argument("--only", type=int, default=None,
                        help="write chunk ONLY alone (to interleave with other jobs)")
    parser.add_argument("--replicate", type=Path, default=None,
                        help="copy this one-chunk bank --customers/--chunk times with new ids")
    args = parser.parse_args()
    if args.replicate is not None:
        replicate(args.replicate, args.out, -(-args.customers // args.chunk))
    else:
        write_chunks(args.out, args.customers, args.chunk, args.years, args.only)


if __name__ == "__main__":
    main()
