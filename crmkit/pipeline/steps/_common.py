"""Small helpers the step files share."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import polars as pl
from pydantic import field_validator

from crmkit._config import StrictModel, closest
from crmkit.pipeline._store import REFIT_SCHEDULES

__all__ = ["RefitMixin", "count_partial", "counts_from", "finite_or_none", "sum_counts"]


class RefitMixin(StrictModel):
    """A config section with a ``refit`` schedule."""

    refit: str = "monthly"

    @field_validator("refit")
    @classmethod
    def _schedule(cls, value: str) -> str:
        if value not in REFIT_SCHEDULES:
            raise ValueError(f"refit must be one of {', '.join(REFIT_SCHEDULES)}."
                             f"{closest(value, REFIT_SCHEDULES)}")
        return value


def count_partial(frame: pl.DataFrame, *cols: str) -> pl.DataFrame:
    """Counts of each value combination of ``cols`` in one shard (a partial to sum).

    Examples
    --------
    >>> count_partial(pl.DataFrame({"tier": ["A", "B", "A"]}), "tier").sort("tier").rows()
    [('A', 2), ('B', 1)]
    """
    return frame.group_by(list(cols)).agg(pl.len().cast(pl.Int64).alias("n"))


def sum_counts(partial: pl.DataFrame | None, *cols: str) -> pl.DataFrame:
    """Partial counts summed over shards, sorted by ``cols``."""
    if partial is None or partial.height == 0:
        return pl.DataFrame(schema={**{c: pl.String for c in cols}, "n": pl.Int64})
    return partial.group_by(list(cols)).agg(pl.col("n").sum()).sort(list(cols), nulls_last=True)


def counts_from(partials: Mapping[str, pl.DataFrame], name: str, col: str) -> dict[str, int]:
    """A manifest mapping value -> count from summed partial counts."""
    summed = sum_counts(partials.get(name), col)
    return {str(k): int(v) for k, v in summed.iter_rows()}


def finite_or_none(value: Any) -> float | None:
    """A JSON-safe number: None for missing, NaN or infinite values."""
    if value is None:
        return None
    value = float(value)
    return value if value == value and abs(value) != float("inf") else None
