"""Response to the stage actions: of the customers given an action in one run, how many
were contacted and how many responded (``contacts.outcome``) before the next run."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import polars as pl

from crmkit._frames import Output, to_output, to_polars
from crmkit._params import check_date
from crmkit.exceptions import SchemaError

__all__ = ["RESPONSE_COUNTS", "action_responses", "response_rates"]

KEYS = ["stage", "action", "channel"]
RESPONSE_COUNTS = ["actions", "contacted", "responded"]
"""The additive columns of :func:`action_responses` (summed across shards)."""


def action_responses(actions: Any, contacts: Any, *, since: dt.date | str,
                     until: dt.date | str,
                     response_outcomes: Sequence[str] = ("reached", "sale"),
                     output: Output = "polars"):
    """Contact and response rates per stage action, between two runs.

    Each customer given an action in the run of ``since`` (the previous run's
    ``lifecycle/actions``) counts once per action. The customer was *contacted*
    when the contacts log has a row dated after ``since`` and on or before ``until``
    (the next run), and *responded* when one of those rows has an ``outcome`` in
    ``response_outcomes``. The log does not say which action a contact answered, so
    a contact counts for every action the customer was given.

    Parameters
    ----------
    actions : table
        ``customer_id``, ``stage``, ``action``, ``channel`` (the actions of the run of
        ``since``, as written by the lifecycle step).
    contacts : table
        ``customer_id``, ``date`` and ``outcome``.
    since, until : date or str
        The previous run's date and this run's.
    response_outcomes : sequence of str
        Outcomes that mean the customer responded.

    Returns
    -------
    DataFrame
        ``stage``, ``action``, ``channel``, ``actions``, ``contacted``, ``responded``,
        ``contact_rate`` and ``response_rate`` (shares of ``actions``), sorted by
        stage and action.

    Examples
    --------
    >>> import polars as pl, datetime as dt
    >>> acts = pl.DataFrame({"customer_id": ["a", "b", "c"], "stage": ["decline"] * 3,
    ...                      "action": ["retention_call"] * 3, "channel": ["phone"] * 3})
    >>> con = pl.DataFrame({"customer_id": ["a", "b", "c"],
    ...     "date": [dt.date(2025, 12, 5), dt.date(2025, 12, 9), dt.date(2025, 11, 20)],
    ...     "outcome": ["reached", "no_answer", "reached"]})
    >>> action_responses(acts, con, since="2025-11-30", until="2025-12-31").select(
    ...     "actions", "contacted", "responded", "response_rate").rows()
    [(3, 2, 1, 0.3333)]
    """
    owner = "action_responses"
    start = check_date(since, "since", owner)
    end = check_date(until, "until", owner)
    if end < start:
        raise ValueError(f"{owner}: 'until' ({end}) is before 'since' ({start}).")
    acts = to_polars(actions, "actions")
    con = to_polars(contacts, "contacts")
    for frame, table, cols in ((acts, "actions", ("customer_id", *KEYS)),
                               (con, "contacts", ("customer_id", "date", "outcome"))):
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise SchemaError(f"{owner}: the {table} table has no column "
                              f"{', '.join(map(repr, missing))}; it has "
                              f"{', '.join(frame.columns)}.")
    window = con.filter((pl.col("date") > start) & (pl.col("date") <= end))
    per = window.group_by("customer_id").agg(
        pl.lit(True).alias("_contacted"),
        pl.col("outcome").is_in(list(response_outcomes)).fill_null(False).any()
        .alias("_responded"))
    joined = (acts.select(pl.col("customer_id").cast(pl.String), *KEYS).unique()
              .join(per.with_columns(pl.col("customer_id").cast(pl.String)),
                    on="customer_id", how="left"))
    counts = joined.group_by(KEYS).agg(
        pl.len().cast(pl.Int64).alias("actions"),
        pl.col("_contacted").fill_null(False).sum().cast(pl.Int64).alias("contacted"),
        pl.col("_responded").fill_null(False).sum().cast(pl.Int64).alias("responded"))
    return to_output(response_rates(counts), output)


def response_rates(counts: pl.DataFrame) -> pl.DataFrame:
    """Sum :data:`RESPONSE_COUNTS` per stage action and add the rates (for per-shard
    counts gathered by the pipeline)."""
    summed = counts.group_by(KEYS).agg(pl.col(c).sum().cast(pl.Int64) for c in RESPONSE_COUNTS)
    return summed.with_columns(
        (pl.col("contacted") / pl.col("actions")).round(4).alias("contact_rate"),
        (pl.col("responded") / pl.col("actions")).round(4).alias("response_rate"),
    ).sort(KEYS)
