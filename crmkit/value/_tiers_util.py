"""Small helpers shared by RFM scoring and value tiers.

- weighted quantile edges from value counts (the sufficient statistic of a quantile
  fit: shards send ``value -> count`` tables, the edges are computed once);
- the configuration key check (an unknown key names the closest valid key).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import polars as pl

from crmkit.exceptions import ConfigError

__all__ = ["check_keys", "quantile_edges", "value_counts"]


def check_keys(data: Mapping[str, Any], valid: Iterable[str], where: str) -> None:
    """Raise :class:`ConfigError` for the first unknown key, naming the closest valid one.

    Examples
    --------
    >>> check_keys({"recency": (4, 5)}, ["name", "recency", "frequency"], "segment rule")
    >>> check_keys({"recenty": (4, 5)}, ["name", "recency", "frequency"], "segment rule")
    Traceback (most recent call last):
    ...
    crmkit.exceptions.ConfigError: Unknown key 'recenty' in segment rule; did you mean 'recency'? Valid keys: frequency, name, recency.
    """
    valid = sorted(valid)
    for key in data:
        if key not in valid:
            close = difflib.get_close_matches(str(key), valid, n=1, cutoff=0.0)
            hint = f"; did you mean {close[0]!r}?" if close else "."
            raise ConfigError(f"Unknown key {key!r} in {where}{hint} Valid keys: {', '.join(valid)}.")


def value_counts(values: pl.Series | pl.Expr | Any, weights: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Distinct non-null values (ascending) and their total weights.

    Examples
    --------
    >>> v, w = value_counts(pl.Series([3.0, 1.0, 3.0, None]))
    >>> v.tolist(), w.tolist()
    ([1.0, 3.0], [1.0, 2.0])
    """
    s = values if isinstance(values, pl.Series) else pl.Series("value", values)
    frame = pl.DataFrame({"value": s.cast(pl.Float64)})
    if weights is None:
        frame = frame.with_columns(pl.lit(1.0).alias("weight"))
    else:
        w = weights if isinstance(weights, pl.Series) else pl.Series("weight", weights)
        frame = frame.with_columns(w.cast(pl.Float64).alias("weight"))
    frame = (frame.drop_nulls("value").filter(pl.col("value").is_not_nan())
             .group_by("value").agg(pl.col("weight").sum()).sort("value"))
    return frame["value"].to_numpy(), frame["weight"].to_numpy()


def quantile_edges(values: np.ndarray, weights: np.ndarray, probs: Iterable[float]) -> list[float]:
    """Inverted-CDF quantiles: for each p, the smallest value whose cumulative share >= p.

    Always an observed value, so the result does not depend on interpolation and two
    runs on the same counts give the same edges (numpy's ``method="inverted_cdf"``).

    Examples
    --------
    >>> quantile_edges(np.array([1.0, 2.0, 3.0, 4.0]), np.ones(4), [0.25, 0.5, 0.75])
    [1.0, 2.0, 3.0]
    >>> quantile_edges(np.array([0.0, 5.0]), np.array([8.0, 2.0]), [0.5, 0.9])
    [0.0, 5.0]
    """
    if len(values) == 0:
        raise ValueError("Cannot compute quantile edges: no non-null values to fit on.")
    cum = np.cumsum(weights)
    total = cum[-1]
    if not total > 0:
        raise ValueError("Cannot compute quantile edges: the weights sum to zero.")
    out = []
    for p in probs:
        # relative tolerance so that p * total computed in floating point does not skip a value
        idx = int(np.searchsorted(cum, p * total * (1 - 1e-12), side="left"))
        out.append(float(values[min(idx, len(values) - 1)]))
    return out
