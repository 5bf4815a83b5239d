"""Decision thresholds sized to capacity: call lists instead of a fixed 0.5.

A churn probability becomes an action when someone calls the customer, and the
number of calls a branch or a relationship manager can make is fixed. So the cut
is chosen from capacity: the top ``k`` per manager or per branch, or the
probability above which the expected call list fills the capacity.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from crmkit._frames import Output, to_output, to_polars
from crmkit._params import check_positive

__all__ = ["call_list", "capacity_threshold"]


def _scores(scores: Any, score_col: str, owner: str) -> pl.DataFrame:
    frame = to_polars(scores, "scores")
    missing = [c for c in ("customer_id", score_col) if c not in frame.columns]
    if missing:
        raise ValueError(f"{owner}: the scores table has no column "
                         f"{', '.join(map(repr, missing))}; it has {', '.join(frame.columns)}.")
    return frame


def capacity_threshold(scores: Any, capacity: int, *, score_col: str = "churn_prob_90d") -> float:
    """The probability threshold whose call list holds ``capacity`` customers.

    Customers without a score (outside the risk set) never count. Ties at the
    threshold may take the list slightly over capacity; :func:`call_list` cuts
    exactly.

    Parameters
    ----------
    scores : table
        ``customer_id`` and ``score_col``.
    capacity : int
        Calls that can be made over the period.
    score_col : str

    Returns
    -------
    float
        The ``capacity``-th highest score (1.0 + tiny when capacity is 0 would
        call nobody; a capacity above the number scored gives the lowest score).

    Examples
    --------
    >>> import polars as pl
    >>> s = pl.DataFrame({"customer_id": list("abcde"), "churn_prob_90d": [.9, .1, .5, None, .3]})
    >>> capacity_threshold(s, 2)
    0.5
    """
    frame = _scores(scores, score_col, "capacity_threshold")
    cap = int(check_positive(capacity, "capacity", "capacity_threshold"))
    v = np.sort(frame[score_col].drop_nulls().drop_nans().to_numpy())[::-1]
    if v.size == 0:
        raise ValueError("capacity_threshold: no customer has a score (is the risk set empty?).")
    return float(v[min(cap, v.size) - 1])


def call_list(scores: Any, *, k: int | None = None, share: float | None = None,
              by: str | None = None, capacity: Any = None, score_col: str = "churn_prob_90d",
              output: Output = "polars"):
    """The customers to call: top ``k`` (or top ``share``) overall, per group, or per capacity.

    Parameters
    ----------
    scores : table
        ``customer_id``, ``score_col`` and the ``by`` column (e.g. ``branch_id`` or
        ``manager_id``); rows with a null score (outside the risk set) are never
        listed.
    k : int, optional
        Customers per group (overall without ``by``).
    share : float, optional
        Share of the scored customers of each group, in (0, 1] (rounded up).
    by : str, optional
        Group column: ``"branch_id"``, ``"manager_id"``, ...
    capacity : table or mapping, optional
        Calls per group: a mapping ``{group: calls}`` or a table with ``by`` and
        ``capacity`` columns (e.g. the ``managers`` table's capacity); groups not
        listed get none. Exactly one of ``k``, ``share`` and ``capacity`` is given.
    score_col : str
    output : {"polars", "pandas"}

    Returns
    -------
    DataFrame
        The listed rows of ``scores`` with ``rank`` (1 = highest score within its
        group), sorted by group and rank. Ties are broken by ``customer_id``, so
        the list is the same from run to run.

    Examples
    --------
    >>> import polars as pl
    >>> s = pl.DataFrame({"customer_id": list("abcdef"), "branch_id": list("xxxyyy"),
    ...                   "churn_prob_90d": [.9, .1, .5, .2, .8, None]})
    >>> call_list(s, k=1, by="branch_id").select("customer_id", "rank").rows()
    [('a', 1), ('e', 1)]
    >>> call_list(s, capacity={"x": 2}, by="branch_id")["customer_id"].to_list()
    ['a', 'c']
    """
    owner = "call_list"
    given = [n for n, v in (("k", k), ("share", share), ("capacity", capacity)) if v is not None]
    if len(given) != 1:
        raise ValueError(f"{owner} needs exactly one of 'k', 'share' and 'capacity'. "
                         f"Got {given or 'none'} instead.")
    frame = _scores(scores, score_col, owner)
    if by is not None and by not in frame.columns:
        raise ValueError(f"{owner}: the scores table has no column {by!r} to group by; it has "
                         f"{', '.join(frame.columns)}.")
    if capacity is not None and by is None:
        raise ValueError(f"{owner}: 'capacity' is per group; give 'by' (e.g. 'manager_id').")
    scored = frame.filter(pl.col(score_col).is_not_null() & pl.col(score_col).is_not_nan())
    keys = [by] if by else []
    ranked = scored.sort([*keys, score_col, "customer_id"],
                         descending=[False] * len(keys) + [True, False])
    rank = pl.int_range(1, pl.len() + 1).over(by) if by else pl.int_range(1, pl.len() + 1)
    ranked = ranked.with_columns(rank.cast(pl.Int64).alias("rank"))
    if k is not None:
        limit = pl.lit(int(check_positive(k, "k", owner)))
    elif share is not None:
        s = check_positive(share, "share", owner)
        if s > 1:
            raise ValueError(f"The 'share' parameter of {owner} must be in (0, 1]. Got {s!r} "
                             "instead.")
        n = pl.len().over(by) if by else pl.len()
        limit = (n.cast(pl.Float64) * s).ceil().cast(pl.Int64)
    else:
        if isinstance(capacity, dict):
            cap = pl.DataFrame({by: list(capacity), "__cap": list(capacity.values())},
                               schema_overrides={"__cap": pl.Int64})
        else:
            cap = to_polars(capacity, "capacity")
            if by not in cap.columns or "capacity" not in cap.columns:
                raise ValueError(f"{owner}: the capacity table needs the columns {by!r} and "
                                 f"'capacity'; it has {', '.join(cap.columns)}.")
            cap = cap.group_by(by).agg(pl.col("capacity").sum().cast(pl.Int64).alias("__cap"))
        cap = cap.with_columns(pl.col(by).cast(ranked.schema[by]))
        ranked = ranked.join(cap, on=by, how="left").with_columns(pl.col("__cap").fill_null(0))
        limit = pl.col("__cap")
    out = ranked.filter(pl.col("rank") <= limit).drop("__cap", strict=False)
    return to_output(out, output)
