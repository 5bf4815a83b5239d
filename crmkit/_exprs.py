"""Small polars expression helpers shared by the feature and model code."""

from __future__ import annotations

import polars as pl

__all__ = ["exact_sum"]


def exact_sum(expr: pl.Expr) -> pl.Expr:
    """Sum of money amounts that is identical from run to run.

    polars merges per-thread partial sums in varying order and float addition is not
    associative, so plain sums can differ in the last bits between two runs on the
    same data. Summing integer micro-units is exact and order-free. Inputs must be
    finite with ``|sum| < 9e12`` (validated tables satisfy the first).

    Examples
    --------
    >>> import polars as pl
    >>> pl.DataFrame({"x": [0.1, 0.2, 0.3]}).select(exact_sum(pl.col("x"))).item()
    0.6
    """
    return (expr * 1e6).round().cast(pl.Int64).sum() / 1e6
