"""Seeded generator of a synthetic transaction log for the RFM benchmarks.

The log has the repeat-purchase structure the BG/NBD family assumes:

- ``n_transactions // 10`` customers (so 10 transactions per customer on average);
- each customer is "born" (first purchase) uniformly over a two-year window ending
  at ``--end``; later purchases fall uniformly between birth and the end;
- purchase counts are gamma-Poisson (negative binomial) heterogeneous: customer
  weights are Gamma(shape 0.6) and the ``n - n_customers`` repeat transactions are
  spread over customers by a multinomial draw with those weights (a Poisson process
  conditioned on its exact total), so counts are over-dispersed, many customers
  buy once and a few buy hundreds of times;
- timestamps have second resolution, so several purchases can fall on one day;
- amounts are log-normal around a customer-specific mean, in cents.

Columns: ``customer_id`` (string, zero-padded so leading zeros matter),
``timestamp`` (datetime[us]), ``amount`` (float64). Rows are in time order, as a
transaction log would be. The same ``--seed`` and ``-n`` give the same file.

Usage::

    python benchmarks/gen_transactions.py -n 1000000 -o benchmarks/_work/tx_1M.parquet
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from pathlib import Path

import numpy as np
import polars as pl

END = dt.datetime(2025, 12, 31, 23, 59, 59)
YEARS = 2


def generate(n_transactions: int, *, seed: int = 0, end: dt.datetime = END) -> pl.DataFrame:
    """Return ``n_transactions`` rows of (customer_id, timestamp, amount)."""
    rng = np.random.default_rng(seed)
    n_customers = max(1, n_transactions // 10)
    span_s = int(YEARS * 365.25 * 86_400)
    end_s = int(end.replace(tzinfo=dt.timezone.utc).timestamp())
    start_s = end_s - span_s

    weight = rng.gamma(shape=0.6, scale=1.0, size=n_customers)
    repeats = rng.multinomial(n_transactions - n_customers, weight / weight.sum())
    counts = 1 + repeats

    birth = rng.integers(start_s, end_s, size=n_customers)
    owner = np.repeat(np.arange(n_customers), counts)
    first = np.zeros(n_customers + 1, dtype=np.int64)
    np.cumsum(counts, out=first[1:])
    is_first = np.zeros(n_transactions, dtype=bool)
    is_first[first[:-1]] = True
    u = rng.random(n_transactions)
    when = birth[owner] + (u * (end_s - birth[owner])).astype(np.int64)
    when[is_first] = birth
    mean_amount = rng.lognormal(mean=3.5, sigma=0.8, size=n_customers)
    amount = np.round(mean_amount[owner] * rng.lognormal(0.0, 0.5, size=n_transactions), 2)

    ids = pl.Series("customer_id", np.arange(n_customers)).cast(pl.String).str.zfill(9)
    frame = pl.DataFrame({
        "customer_id": ids.gather(owner),
        "timestamp": pl.Series(when * 1_000_000).cast(pl.Datetime("us")),
        "amount": amount,
    })
    return frame.sort("timestamp", maintain_order=True)


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--n-transactions", type=int, required=True)
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    frame = generate(args.n_transactions, seed=args.seed)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.output.with_name(f".{args.output.name}.tmp")
    frame.write_parquet(tmp, compression="zstd")
    tmp.replace(args.output)
    print(f"wrote {frame.height:,} transactions of {frame['customer_id'].n_unique():,} customers "
          f"to {args.output} in {time.perf_counter() - t0:.1f} s")
    return args.output


if __name__ == "__main__":
    main()
