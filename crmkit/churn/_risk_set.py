"""The churn risk set: who can churn as of a date, and who is already out of it.

A churn model is trained and scored over the customers *at risk* only. Everybody
else gets a status saying why they are not scored:

- ``prospect``: known to the bank, no product opened and no transaction yet;
- ``churned``: had products and every one is closed (contractual churn, known);
- ``silent``: products may be open, but no activity (transaction or account
  opening) for ``silence_days`` or more: a silent leaver already gone, known;
- ``at_risk``: everybody else.

The status of a customer depends on that customer's rows only, so it can be
computed on one customer shard of the tables.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import polars as pl

from crmkit._frames import Output, to_lazy, to_output
from crmkit._params import check_date, check_positive
from crmkit.features._shard import shard_filter
from crmkit.lifecycle._churn import activity_summary
from crmkit.lifecycle._config import ChurnDefinition, validate_churn_definition

__all__ = ["RISK_STATUSES", "apply_risk_set", "risk_status", "silence_days_of"]

RISK_STATUSES = ("at_risk", "prospect", "churned", "silent")
"""The statuses of :func:`risk_status`; only ``at_risk`` customers are trained on and scored."""

DEFAULT_SILENCE_DAYS = 180
"""Silence threshold of a contractual definition (the retail-bank preset's ``dormant_days``)."""


def silence_days_of(definition: ChurnDefinition | Mapping[str, Any] | str,
                    silence_days: int | None = None) -> int:
    """The silence threshold in days: ``silence_days`` if given, else the definition's.

    A silent, combined or non-contractual definition's ``inactivity_days`` is its
    silence threshold; a contractual definition has none of its own, so the
    retail-bank ``dormant_days`` (180) is used.

    Examples
    --------
    >>> silence_days_of("retail_bank_combined"), silence_days_of("retail_bank")
    (180, 180)
    >>> silence_days_of({"kind": "silent", "inactivity_days": 90})
    90
    """
    if silence_days is not None:
        return int(check_positive(silence_days, "silence_days", "risk_status"))
    d = validate_churn_definition(definition)
    return DEFAULT_SILENCE_DAYS if d.kind == "contractual" else int(d.inactivity_days)


def risk_status(tables: Mapping[str, Any], as_of: dt.date | str,
                definition: ChurnDefinition | Mapping[str, Any] | str = "retail_bank", *,
                silence_days: int | None = None, shard: tuple[int, int] | None = None,
                output: Output = "polars"):
    """Each customer's churn risk status as of a date: at risk, or why not.

    Parameters
    ----------
    tables : mapping of str to table
        Canonical tables: ``customers`` (``customer_id``, ``first_seen``; sets who
        exists on ``as_of``), ``holdings`` (``customer_id``, ``opened``,
        ``closed``) and/or ``transactions`` (``customer_id``, ``timestamp``). Only
        rows dated on or before ``as_of`` are read. May be one customer shard of
        the tables: the status of a customer reads that customer's rows only.
    as_of : date or str
    definition : ChurnDefinition, mapping or preset name
        The churn definition (see :func:`crmkit.lifecycle.label_churn`); sets the
        silence threshold (see :func:`silence_days_of`).
    silence_days : int, optional
        Days without activity after which a customer is ``silent`` (overrides the
        definition's threshold).
    shard : (int, int), optional
        ``(i, n)``: only the customers of shard ``i`` of ``n``
        (:func:`crmkit.features.shard_filter`).
    output : {"polars", "pandas"}

    Returns
    -------
    DataFrame
        ``customer_id``, ``risk_status`` (one of :data:`RISK_STATUSES`), sorted by
        customer; one row per customer known on ``as_of``.

    Notes
    -----
    The rules, in order: ``prospect`` when no product was opened and no
    transaction made by ``as_of``; ``churned`` when the customer had products and
    every one is closed; ``silent`` when the last activity (transaction or
    account opening) is ``silence_days`` or more before ``as_of``; else
    ``at_risk``. A silent customer who transacts again is ``at_risk`` again.

    Examples
    --------
    >>> import polars as pl, datetime as dt
    >>> customers = pl.DataFrame({"customer_id": ["a", "b", "c", "d"],
    ...                           "first_seen": [dt.date(2023, 1, 1)] * 4})
    >>> holdings = pl.DataFrame({"account_id": ["A1", "A2", "A3"], "customer_id": ["a", "b", "c"],
    ...     "opened": [dt.date(2023, 1, 1)] * 3,
    ...     "closed": [None, dt.date(2024, 2, 1), None]})
    >>> tx = pl.DataFrame({"customer_id": ["a", "c"],
    ...                    "timestamp": [dt.datetime(2024, 6, 1), dt.datetime(2023, 3, 1)]})
    >>> risk_status({"customers": customers, "holdings": holdings, "transactions": tx},
    ...             "2024-06-30").rows()
    [('a', 'at_risk'), ('b', 'churned'), ('c', 'silent'), ('d', 'prospect')]
    """
    day = check_date(as_of, "as_of", "risk_status")
    n_silent = silence_days_of(definition, silence_days)
    tables = dict(tables)
    if shard is not None:
        keep = shard_filter(pl.col("customer_id"), *shard)
        tables = {k: (to_lazy(v, k).filter(keep) if v is not None and k in (
            "customers", "holdings", "transactions") else v) for k, v in tables.items()}
    summ = activity_summary(tables, day, "risk_status")
    if tables.get("customers") is not None:
        cust = to_lazy(tables["customers"], "customers")
        names = cust.collect_schema().names()
        if "first_seen" in names:
            cust = cust.filter(pl.col("first_seen").cast(pl.Date) <= day)
        universe = cust.select(pl.col("customer_id").cast(pl.String)).unique()
        frame = universe.join(summ, on="customer_id", how="left")
    else:
        frame = summ
    cutoff = day - dt.timedelta(days=n_silent)
    status = (
        pl.when(pl.col("last_activity").is_null() & (pl.col("n_products_ever").fill_null(0) == 0))
        .then(pl.lit("prospect"))
        .when((pl.col("n_products_ever") > 0) & (pl.col("n_products_open") == 0))
        .then(pl.lit("churned"))
        .when(pl.col("last_activity") <= cutoff).then(pl.lit("silent"))
        .otherwise(pl.lit("at_risk"))
    )
    out = frame.select("customer_id", status.alias("risk_status")).sort("customer_id").collect()
    return to_output(out, output)


def apply_risk_set(scores: Any, status: Any, *, output: Output = "polars"):
    """Attach ``risk_status`` to a score table and null every score outside the risk set.

    Every column other than ``customer_id`` and ``risk_status`` is set to null for
    customers whose status is not ``at_risk`` (and for customers without a status:
    they are not known on the date). Customers with a status but no score row get
    a row with null scores.

    Examples
    --------
    >>> import polars as pl
    >>> scores = pl.DataFrame({"customer_id": ["a", "b"], "churn_prob_90d": [0.1, 0.9]})
    >>> status = pl.DataFrame({"customer_id": ["a", "b", "c"],
    ...                        "risk_status": ["at_risk", "churned", "prospect"]})
    >>> apply_risk_set(scores, status).rows()
    [('a', 0.1, 'at_risk'), ('b', None, 'churned'), ('c', None, 'prospect')]
    """
    s = to_lazy(scores, "scores").with_columns(pl.col("customer_id").cast(pl.String))
    st = to_lazy(status, "status").select(pl.col("customer_id").cast(pl.String),
                                          pl.col("risk_status").cast(pl.String))
    if "risk_status" in s.collect_schema().names():
        s = s.drop("risk_status")
    cols = [c for c in s.collect_schema().names() if c != "customer_id"]
    at_risk = pl.col("risk_status") == "at_risk"
    out = (
        st.join(s, on="customer_id", how="full", coalesce=True)
        .select("customer_id",
                *[pl.when(at_risk.fill_null(False)).then(pl.col(c)).alias(c) for c in cols],
                "risk_status")
        .sort("customer_id").collect()
    )
    return to_output(out, output)
