"""Landmark outcomes and stacked landmark training data.

At a landmark date ``t`` the customers at risk (:func:`crmkit.churn.risk_status`)
are described by covariates as of ``t``; their outcome is the first churn after
``t`` within ``horizon_days``, under a silent, combined or contractual definition:

- a **closure** (every product closed) is dated at the last closure;
- a **silence** (no transaction or account opening for ``N`` days) is dated at
  its onset, the last activity before it, and is known only ``N`` days later. A
  customer at risk on ``t`` was active within the last ``N`` days, so the onset
  is at or after that last activity; when it lies on or before ``t`` (the customer
  has already gone quiet and never comes back) the churn is counted at ``t``
  (duration half a day): the customer was at risk on ``t`` and is gone by then.

An outcome at ``t`` with horizon ``H`` reads rows dated up to ``t + H + N`` and
nothing later; :func:`landmark_training_data` refuses a landmark whose outcome
is not yet known on the run date.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import polars as pl

from crmkit._frames import Output, to_lazy, to_output, to_polars
from crmkit._params import check_date, check_positive
from crmkit.churn._risk_set import risk_status, silence_days_of
from crmkit.lifecycle._churn import activity_summary
from crmkit.lifecycle._config import ChurnDefinition, validate_churn_definition

__all__ = ["customer_folds", "landmark_dates", "landmark_outcomes", "landmark_training_data",
           "outcome_known_on"]

_HALF_DAY = 0.5


def outcome_known_on(landmark: dt.date | str, horizon_days: float,
                     definition: ChurnDefinition | Mapping[str, Any] | str = "retail_bank",
                     silence_days: int | None = None) -> dt.date:
    """The first date on which the outcome at ``landmark`` over ``horizon_days`` is known.

    ``landmark + horizon`` for a contractual definition, ``landmark + horizon + N``
    when silence counts (``N`` the silence threshold).

    Examples
    --------
    >>> outcome_known_on("2024-01-01", 90, "retail_bank_combined")
    datetime.date(2024, 9, 27)
    >>> outcome_known_on("2024-01-01", 90, "retail_bank")
    datetime.date(2024, 3, 31)
    """
    t = check_date(landmark, "landmark", "outcome_known_on")
    h = int(round(check_positive(horizon_days, "horizon_days", "outcome_known_on")))
    d = validate_churn_definition(definition)
    n = silence_days_of(d, silence_days) if d.kind != "contractual" else 0
    return t + dt.timedelta(days=h + n)


def landmark_dates(as_of: dt.date | str, *, n: int, spacing_days: int, horizon_days: float,
                   definition: ChurnDefinition | Mapping[str, Any] | str = "retail_bank",
                   silence_days: int | None = None) -> list[dt.date]:
    """The ``n`` latest landmarks, ``spacing_days`` apart, whose outcome is known on ``as_of``.

    Examples
    --------
    >>> [d.isoformat() for d in landmark_dates("2025-06-30", n=3, spacing_days=90,
    ...                                        horizon_days=90, definition="retail_bank_combined")]
    ['2024-04-06', '2024-07-05', '2024-10-03']
    """
    day = check_date(as_of, "as_of", "landmark_dates")
    n = int(check_positive(n, "n", "landmark_dates"))
    spacing = int(check_positive(spacing_days, "spacing_days", "landmark_dates"))
    lag = (outcome_known_on(day, horizon_days, definition, silence_days) - day).days
    last = day - dt.timedelta(days=lag)
    return [last - dt.timedelta(days=spacing * k) for k in range(n - 1, -1, -1)]


def _silence_onsets(tables: Mapping[str, Any], t: dt.date, until: dt.date, n: int,
                    ids: pl.LazyFrame) -> pl.LazyFrame:
    """First silence onset at or after the last activity on or before ``t``.

    An onset is an activity day ``L`` with no activity in ``(L, L + n]``, read from
    rows dated up to ``until`` (``L + n <= until`` is required: an onset whose
    silence has not lasted ``n`` days by ``until`` is not known).
    """
    days = []
    if tables.get("holdings") is not None:
        days.append(to_lazy(tables["holdings"], "holdings").select(
            pl.col("customer_id").cast(pl.String), pl.col("opened").cast(pl.Date).alias("day")))
    if tables.get("transactions") is not None:
        days.append(to_lazy(tables["transactions"], "transactions").select(
            pl.col("customer_id").cast(pl.String),
            pl.col("timestamp").cast(pl.Date).alias("day")))
    act = (pl.concat(days).filter(pl.col("day") <= until)
           .join(ids, on="customer_id", how="semi").unique())
    last_before = (act.filter(pl.col("day") <= t).group_by("customer_id")
                   .agg(pl.col("day").max().alias("__l0")))
    after = (act.join(last_before, on="customer_id")
             .filter(pl.col("day") >= pl.col("__l0"))
             .sort("customer_id", "day")
             .with_columns(pl.col("day").shift(-1).over("customer_id").alias("__next")))
    gap_ok = pl.coalesce(pl.col("__next"), pl.lit(dt.date.max)) > pl.col("day") + pl.duration(days=n)
    known = pl.col("day") + pl.duration(days=n) <= until
    return (after.filter(gap_ok & known).group_by("customer_id")
            .agg(pl.col("day").min().alias("silence_onset")))


def landmark_outcomes(tables: Mapping[str, Any], landmark: dt.date | str, *,
                      horizon_days: float,
                      definition: ChurnDefinition | Mapping[str, Any] | str = "retail_bank",
                      silence_days: int | None = None, output: Output = "polars"):
    """Outcome over ``(landmark, landmark + horizon]`` of every customer at risk on the landmark.

    Parameters
    ----------
    tables : mapping of str to table
        Canonical tables (``customers``, ``holdings``, ``transactions``); rows
        dated after ``landmark + horizon + N`` are never read (``N`` the silence
        threshold, 0 for a contractual definition). May be one customer shard.
    landmark : date or str
    horizon_days : float
    definition : ChurnDefinition, mapping or preset name
        ``"contractual"`` counts closures, ``"silent"`` (and
        ``"non_contractual"``) silences, ``"combined"`` both (a silence is the
        cause when it had lasted ``N`` days before the closure).
    silence_days : int, optional
        Overrides the silence threshold (see :func:`crmkit.churn.silence_days_of`).
    output : {"polars", "pandas"}

    Returns
    -------
    DataFrame
        ``customer_id``, ``landmark``, ``duration_days`` (to the churn, at least half
        a day, or ``horizon_days`` when censored), ``event`` (bool), ``cause``
        (``"closure"``, ``"silence"`` or null), ``churn_date`` (null when no churn
        in the horizon); customers at risk on the landmark only, sorted by id.

    Examples
    --------
    >>> import polars as pl, datetime as dt
    >>> h = pl.DataFrame({"account_id": ["A1", "A2", "A3"], "customer_id": ["a", "b", "c"],
    ...     "opened": [dt.date(2023, 1, 1)] * 3, "closed": [dt.date(2024, 2, 1), None, None]})
    >>> tx = pl.DataFrame({"customer_id": ["a", "b", "c", "c"],
    ...     "timestamp": [dt.datetime(2023, 12, 20), dt.datetime(2023, 12, 1),
    ...                   dt.datetime(2023, 12, 30), dt.datetime(2024, 5, 1)]})
    >>> out = landmark_outcomes({"holdings": h, "transactions": tx}, "2024-01-01",
    ...                         horizon_days=90, definition="retail_bank_combined")
    >>> out.select("customer_id", "duration_days", "event", "cause").rows()
    [('a', 31.0, True, 'closure'), ('b', 0.5, True, 'silence'), ('c', 90.0, False, None)]
    """
    owner = "landmark_outcomes"
    t = check_date(landmark, "landmark", owner)
    h = int(round(check_positive(horizon_days, "horizon_days", owner)))
    d = validate_churn_definition(definition)
    n = silence_days_of(d, silence_days)
    end = t + dt.timedelta(days=h)
    status = risk_status(tables, t, d, silence_days=n)
    ids = status.filter(pl.col("risk_status") == "at_risk").select("customer_id").lazy()
    frame = ids
    closure = silence = pl.lit(None, pl.Date)
    if d.kind in ("contractual", "combined"):
        summ = activity_summary(tables, end, owner).join(ids, on="customer_id", how="semi")
        closed = summ.filter((pl.col("n_products_ever") > 0) & (pl.col("n_products_open") == 0)
                             & (pl.col("last_close") > t)).select(
            "customer_id", pl.col("last_close").alias("__closure"))
        frame = frame.join(closed, on="customer_id", how="left")
        closure = pl.col("__closure")
    if d.kind in ("silent", "combined", "non_contractual"):
        onsets = _silence_onsets(tables, t, end + dt.timedelta(days=n), n, ids)
        frame = frame.join(onsets, on="customer_id", how="left")
        silence = pl.when(pl.col("silence_onset") <= end).then(pl.col("silence_onset"))
    frame = frame.with_columns(closure.alias("__c"), silence.alias("__s"))
    by_silence = pl.col("__s").is_not_null() & (
        pl.col("__c").is_null() | (pl.col("__s") + pl.duration(days=n) <= pl.col("__c")))
    churn_date = pl.when(by_silence).then(pl.col("__s")).otherwise(pl.col("__c"))
    out = frame.select(
        "customer_id",
        pl.lit(t).alias("landmark"),
        churn_date.alias("churn_date"),
        pl.when(by_silence).then(pl.lit("silence"))
        .when(pl.col("__c").is_not_null()).then(pl.lit("closure")).alias("cause"),
    ).with_columns(
        pl.col("churn_date").is_not_null().alias("event"),
        pl.when(pl.col("churn_date").is_null()).then(pl.lit(float(h)))
        .otherwise(pl.max_horizontal((pl.col("churn_date") - pl.lit(t)).dt.total_days()
                                     .cast(pl.Float64), pl.lit(_HALF_DAY)))
        .alias("duration_days"),
    ).select("customer_id", "landmark", "duration_days", "event", "cause", "churn_date")
    return to_output(out.sort("customer_id").collect(), output)


def landmark_training_data(
    tables: Mapping[str, Any],
    landmarks: Sequence[dt.date | str],
    definition: ChurnDefinition | Mapping[str, Any] | str = "retail_bank",
    covariates_fn: Callable[[dt.date], Any] | None = None,
    horizon_days: float = 180,
    *,
    as_of: dt.date | str | None = None,
    silence_days: int | None = None,
    output: Output = "polars",
):
    """Stacked landmark rows: covariates as of each landmark, outcomes after it.

    Parameters
    ----------
    tables : mapping of str to table
    landmarks : sequence of date
        The as-of dates stacked (see :func:`landmark_dates` for evenly spaced ones).
    definition : ChurnDefinition, mapping or preset name
    covariates_fn : callable, optional
        ``f(date) -> table`` keyed by ``customer_id``, describing customers as of
        the date (e.g. ``lambda d: prepare_covariates(build_features(tables,
        as_of=d))``). Customers without a covariate row are dropped. Without it the
        table holds the outcomes only.
    horizon_days : float
        Outcome window after each landmark; durations are censored there.
    as_of : date or str, optional
        The run date: every landmark's outcome must be known by then
        (:func:`outcome_known_on`), so nothing after the run date is read.
    silence_days : int, optional
    output : {"polars", "pandas"}

    Returns
    -------
    DataFrame
        ``customer_id``, ``landmark``, ``duration_days``, ``event``, ``cause``,
        ``churn_date``, then the covariates; one row per (landmark, customer at
        risk on it). Validate grouped by ``customer_id`` (the same customer
        appears at several landmarks): see :func:`customer_folds`.

    Examples
    --------
    >>> from crmkit.datasets import make_bank
    >>> bank = make_bank(400, seed=2)
    >>> lm = landmark_dates("2025-12-31", n=2, spacing_days=90, horizon_days=90,
    ...                     definition="retail_bank_combined")
    >>> data = landmark_training_data(bank, lm, "retail_bank_combined", horizon_days=90,
    ...                               as_of="2025-12-31")
    >>> sorted(set(data["landmark"].to_list())) == lm
    True
    >>> landmark_training_data(bank, ["2025-10-01"], "retail_bank_combined", horizon_days=90,
    ...                        as_of="2025-12-31")
    Traceback (most recent call last):
    ...
    ValueError: The 'landmarks' parameter of landmark_training_data must be dates whose outcome is known on as_of 2025-12-31 (the latest is 2025-04-05 for horizon_days=90 and a silence threshold of 180 days). Got 2025-10-01 instead.
    """
    owner = "landmark_training_data"
    dates = [check_date(x, "landmarks", owner) for x in landmarks]
    if not dates:
        raise ValueError(f"The 'landmarks' parameter of {owner} must be a non-empty list of "
                         "dates. Got [] instead.")
    d = validate_churn_definition(definition)
    n = silence_days_of(d, silence_days)
    if as_of is not None:
        run = check_date(as_of, "as_of", owner)
        late = [x for x in dates if outcome_known_on(x, horizon_days, d, n) > run]
        if late:
            lag = (outcome_known_on(run, horizon_days, d, n) - run).days
            latest = run - dt.timedelta(days=lag)
            raise ValueError(
                f"The 'landmarks' parameter of {owner} must be dates whose outcome is known on "
                f"as_of {run.isoformat()} (the latest is {latest.isoformat()} for "
                f"horizon_days={horizon_days:g} and a silence threshold of {n} days). "
                f"Got {', '.join(x.isoformat() for x in late[:3])} instead.")
    parts = []
    for t in sorted(set(dates)):
        out = landmark_outcomes(tables, t, horizon_days=horizon_days, definition=d,
                                silence_days=n)
        if covariates_fn is not None:
            cov = to_polars(covariates_fn(t), "covariates")
            if "customer_id" not in cov.columns:
                raise ValueError(f"{owner}: the covariates table of landmark {t.isoformat()} "
                                 "has no customer_id column.")
            cov = cov.with_columns(pl.col("customer_id").cast(pl.String))
            clash = [c for c in cov.columns if c != "customer_id" and c in out.columns]
            out = out.join(cov.drop(clash), on="customer_id", how="inner")
        parts.append(out)
    return to_output(pl.concat(parts, how="vertical_relaxed"), output)


def customer_folds(customer_id: Any, n_folds: int = 5, seed: int = 0):
    """Fold number per row, the same for every row of a customer (grouped validation).

    Examples
    --------
    >>> folds = customer_folds(["a", "b", "a", "c"], n_folds=2)
    >>> int(folds[0]) == int(folds[2])
    True
    """
    import zlib

    import numpy as np

    k = int(check_positive(n_folds, "n_folds", "customer_folds"))
    ids = pl.Series(customer_id).cast(pl.String).to_list()
    return np.array([zlib.crc32(f"{seed}:{c}".encode()) % k for c in ids], dtype=np.int64)
