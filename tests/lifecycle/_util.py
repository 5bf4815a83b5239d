"""Shared helpers of the lifecycle tests."""

import datetime as dt

import polars as pl

from crmkit.datasets import make_bank

END = dt.date(2025, 12, 31)
BANK, TRUTH = make_bank(300, seed=5, as_of="2025-12-31", years=3, return_truth=True)


def cut(tables, day):
    """The tables as they stood on ``day``: later rows removed, later closings undone."""
    date_col = {"customers": "first_seen", "holdings": "opened", "balances": "date",
                "contacts": "date", "complaints": "date", "assignments": "since"}
    out = {}
    for name, frame in tables.items():
        if name == "transactions":
            frame = frame.filter(pl.col("timestamp").cast(pl.Date) <= day)
        elif name in date_col:
            frame = frame.filter(pl.col(date_col[name]) <= day)
        if name == "holdings":
            frame = frame.with_columns(
                pl.when(pl.col("closed") <= day).then(pl.col("closed")).alias("closed"),
                pl.when(pl.col("closed") <= day).then(pl.col("close_reason")).alias("close_reason"))
        out[name] = frame
    return out
