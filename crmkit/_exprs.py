"""Small polars expression helpers shared by the feature and model code."""

from __future__ import annotations

from functools import cache

import polars as pl

__all__ = ["exact_sum", "is_in"]


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


@cache
def _implode_is_in() -> bool:
    """Whether this polars takes ``is_in``'s values as one list (``Series.implode()``).

    polars >= 1.28 does (and deprecates a plain Series of the same type, removed
    later); older releases, such as the 1.20 that pyproject allows, compare a list
    element by element and fail on it. Asked once, of polars itself.
    """
    try:
        return bool(pl.select(pl.lit("a").is_in(pl.Series(["a", "b"]).implode())).item())
    except Exception:
        return False


def is_in(expr: pl.Expr | pl.Series, values: pl.Series) -> pl.Expr | pl.Series:
    """``expr.is_in(values)`` (an expression or a Series) for a Series of values, on
    every polars crmkit allows.

    Examples
    --------
    >>> import polars as pl
    >>> frame = pl.DataFrame({"x": ["a", "c"]})
    >>> frame.select(is_in(pl.col("x"), pl.Series(["a", "b"]))).to_series().to_list()
    [True, False]
    """
    return expr.is_in(values.implode() if _implode_is_in() else values)
