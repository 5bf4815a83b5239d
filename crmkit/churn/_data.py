"""Survival targets and the survival-data builders.

A survival target ``y`` is a numpy structured array with the fields ``event``
(bool: the customer churned) and ``duration`` (float, > 0, in the model's time
unit), optionally ``entry`` (float, >= 0: the time at which the customer entered
observation; late entry / left truncation). This is scikit-survival's layout, so
``y`` travels through ``Pipeline``, ``cross_val_score`` and ``GridSearchCV``
unchanged (they only index rows of it).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import numpy as np
import polars as pl

from crmkit._frames import Output, to_output, to_polars
from crmkit._params import check_choice, check_date, check_positive
from crmkit.features._units import UNIT_DAYS

__all__ = ["TIME_UNITS", "build_backtest_data", "build_survival_data", "frame_to_xy", "make_y",
           "split_y"]

TIME_UNITS = ("days", "weeks", "mean_months")
"""Time units a survival model can use; ``mean_months`` is 30.4375 days."""


def make_y(duration: Any, event: Any, entry: Any = None) -> np.ndarray:
    """Build a survival target (structured array with ``event``, ``duration``[, ``entry``]).

    Parameters
    ----------
    duration : array-like of float
        Time from the start of observation (or from the origin, with ``entry``) to
        churn or censoring. Must be positive and finite.
    event : array-like of bool or {0, 1}
        True when the customer churned at ``duration``; False when censored.
    entry : array-like of float, optional
        Time at which each customer entered observation (late entry), with
        ``0 <= entry < duration``.

    Returns
    -------
    numpy.ndarray
        Structured array with fields ``event`` (bool), ``duration`` (float64) and,
        when given, ``entry`` (float64).

    Examples
    --------
    >>> y = make_y([5, 3.5], [1, 0])
    >>> y["event"].tolist(), y["duration"].tolist()
    ([True, False], [5.0, 3.5])
    """
    duration = np.asarray(duration, dtype=float).ravel()
    event_arr = np.asarray(event).ravel()
    if event_arr.dtype != bool:
        values = np.unique(event_arr[~_isnan(event_arr)]) if event_arr.size else event_arr
        if not np.all(np.isin(values, [0, 1])) or _isnan(event_arr).any():
            raise ValueError("The 'event' of a survival target must be boolean or 0/1. "
                             f"Got values {values[:5].tolist()} instead.")
        event_arr = event_arr.astype(bool)
    if duration.shape != event_arr.shape:
        raise ValueError(f"'duration' and 'event' must have the same length. "
                         f"Got {duration.size} and {event_arr.size} instead.")
    fields = [("event", bool), ("duration", np.float64)]
    if entry is not None:
        fields.append(("entry", np.float64))
    y = np.empty(duration.size, dtype=fields)
    y["event"] = event_arr
    y["duration"] = duration
    if entry is not None:
        entry_arr = np.asarray(entry, dtype=float).ravel()
        if entry_arr.shape != duration.shape:
            raise ValueError("'entry' must have the same length as 'duration'.")
        y["entry"] = entry_arr
    return y


def _isnan(a: np.ndarray) -> np.ndarray:
    return np.isnan(a) if a.dtype.kind == "f" else np.zeros(a.shape, bool)


def split_y(y: Any, owner: str = "fit") -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Check a survival target and return ``(duration, event, entry or None)``.

    Accepts the structured array of :func:`make_y` (fields found by name, or the
    first boolean field and the first float field as scikit-survival does).

    Examples
    --------
    >>> d, e, s = split_y(make_y([2, 4], [True, False]))
    >>> d.tolist(), e.tolist(), s
    ([2.0, 4.0], [True, False], None)
    """
    if y is None:
        raise ValueError(f"{owner} requires y to be passed, but the target y is None. Pass a "
                         "survival target built with crmkit.churn.make_y(duration, event).")
    arr = np.asarray(y)
    names = arr.dtype.names
    if not names:
        raise ValueError(
            f"{owner} needs a survival target: a structured array with fields 'event' and "
            "'duration' (use crmkit.churn.make_y(duration, event)). "
            f"Got an array of dtype {arr.dtype} and shape {arr.shape} instead."
        )
    arr = arr.ravel()
    if "event" in names and "duration" in names:
        event, duration = arr["event"], arr["duration"]
    else:
        bools = [n for n in names if arr.dtype[n] == bool]
        floats = [n for n in names if arr.dtype[n].kind in "fiu"]
        if not bools or not floats:
            raise ValueError(f"{owner}: the survival target needs a boolean event field and a "
                             f"numeric duration field. Got fields {list(names)} instead.")
        event, duration = arr[bools[0]], arr[floats[0]]
    duration = np.asarray(duration, dtype=float)
    event = np.asarray(event).astype(bool)
    bad = ~np.isfinite(duration)
    if bad.any():
        raise ValueError(f"{owner}: {int(bad.sum())} durations are NaN or infinite; survival "
                         "durations must be finite (drop those rows or censor them at the end "
                         "of observation).")
    if (duration <= 0).any():
        n = int((duration <= 0).sum())
        raise ValueError(f"{owner}: {n} durations are zero or negative; durations must be "
                         "positive (a customer who churned on the day they started has no "
                         "time at risk: drop them, or add a small offset such as 0.5 day).")
    entry = None
    if "entry" in names:
        entry = np.asarray(arr["entry"], dtype=float)
        if (~np.isfinite(entry)).any() or (entry < 0).any() or (entry >= duration).any():
            raise ValueError(f"{owner}: every entry time must be finite with "
                             "0 <= entry < duration.")
        if not entry.any():
            entry = None
    return duration, event, entry


# ---------------------------------------------------------------------------------------
# builders


def _churn_dates(churn: Any, as_of: dt.date) -> pl.DataFrame:
    if callable(churn):
        churn = churn(as_of)
    frame = to_polars(churn, "churn")
    missing = [c for c in ("customer_id", "churn_date") if c not in frame.columns]
    if missing:
        raise ValueError(
            f"The churn table needs the columns customer_id and churn_date; missing "
            f"{', '.join(missing)}. (crmkit.lifecycle.label_churn returns them.)"
        )
    if "churned" in frame.columns:
        frame = frame.filter(pl.col("churned"))
    frame = frame.select(pl.col("customer_id").cast(pl.String),
                         pl.col("churn_date").cast(pl.Date)).drop_nulls("churn_date")
    # a customer who churned more than once (reactivated, then left again): the first
    # churn after the window start is the one a model at that start can predict
    return frame


def build_survival_data(
    customers: Any,
    churn: Any,
    *,
    start: Any,
    end: Any,
    covariates: Any = None,
    time_scale: str = "landmark",
    time_unit: str = "days",
    start_col: str = "first_seen",
    output: Output = "polars",
):
    """Table of (customer, duration, event, covariates as of the window start).

    The risk window is ``(start, end]``. Every customer known on ``start``
    (``start_col <= start``) who had not churned on or before ``start`` is at risk.
    A churn inside the window is an event at its date; everybody else is censored
    at ``end``. Covariates are read **as of** ``start``, so nothing after the start
    of the window leaks into them.

    Parameters
    ----------
    customers : table or mapping of tables
        The canonical ``customers`` table (``customer_id`` and ``start_col``), or a
        mapping of canonical tables holding it under ``"customers"``.
    churn : table or callable
        ``(customer_id, churn_date)`` rows (extra columns such as ``churned`` from
        :func:`crmkit.lifecycle.label_churn` are understood), or a callable taking a
        date and returning such a table as known on that date; it is called with
        ``end``. Churn dates on or before ``start`` remove the customer; for a
        customer with several churn dates the first one after ``start`` counts.
    start, end : date or 'YYYY-MM-DD'
        Start of the risk window (covariate date) and end of observation.
    covariates : table or callable, optional
        Rows keyed by ``customer_id`` describing customers as of ``start``, or a
        callable ``f(start)`` returning them (e.g.
        ``lambda d: crmkit.features.build_features(tables, as_of=d)``). Customers
        without a covariate row are dropped.
    time_scale : {"landmark", "tenure"}
        ``"landmark"``: time is counted from ``start`` (duration = days in the
        window until churn or censoring); ``"tenure"``: time is counted from each
        customer's ``start_col`` and the window start becomes a late-entry time
        (column ``entry_<unit>``), which :class:`CoxPH` and :class:`WeibullAFT`
        handle through the ``entry`` field of the target.
    time_unit : {"days", "weeks", "mean_months"}
        Unit of ``duration_<unit>`` (``mean_months`` = 30.4375 days).
    start_col : str
        Column of ``customers`` holding the date the relationship started.
    output : {"polars", "pandas"}

    Returns
    -------
    DataFrame
        ``customer_id``, ``duration_<unit>``, ``event``, ``entry_<unit>`` (tenure
        scale only), ``tenure_at_start_<unit>``, then the covariates (without
        covariates: a ``window_start`` date column instead, so the table says
        which window it describes).

    Examples
    --------
    >>> import polars as pl, datetime as dt
    >>> customers = pl.DataFrame({"customer_id": ["a", "b", "c", "d"],
    ...     "first_seen": [dt.date(2023, 1, 1), dt.date(2023, 6, 1), dt.date(2024, 3, 1),
    ...                    dt.date(2022, 1, 1)]})
    >>> churn = pl.DataFrame({"customer_id": ["a", "d"],
    ...                       "churn_date": [dt.date(2024, 2, 10), dt.date(2023, 5, 1)]})
    >>> out = build_survival_data(customers, churn, start="2024-01-01", end="2024-12-31")
    >>> out.columns
    ['customer_id', 'duration_days', 'event', 'tenure_at_start_days', 'window_start']
    >>> out.select("customer_id", "duration_days", "event").rows()
    [('a', 40.0, True), ('b', 365.0, False)]
    """
    owner = "build_survival_data"
    start_d = check_date(start, "start", owner)
    end_d = check_date(end, "end", owner)
    if end_d <= start_d:
        raise ValueError(f"The 'end' parameter of {owner} must be after 'start' "
                         f"({start_d.isoformat()}). Got {end_d.isoformat()!r} instead.")
    check_choice(time_scale, ("landmark", "tenure"), "time_scale", owner)
    check_choice(time_unit, TIME_UNITS, "time_unit", owner)
    unit_days = UNIT_DAYS[time_unit]

    if isinstance(customers, Mapping):
        if "customers" not in customers:
            raise ValueError(f"{owner}: the mapping of tables has no 'customers' table.")
        customers = customers["customers"]
    cust = to_polars(customers, "customers")
    for col in ("customer_id", start_col):
        if col not in cust.columns:
            raise ValueError(f"{owner}: the customers table has no column {col!r}.")
    cust = cust.select(pl.col("customer_id").cast(pl.String),
                       pl.col(start_col).cast(pl.Date).alias("__start"))
    # customers whose start is unknown cannot be placed on the tenure scale
    cust = cust.drop_nulls("__start").filter(pl.col("__start") <= start_d)

    dates = _churn_dates(churn, end_d)
    before = (dates.filter(pl.col("churn_date") <= start_d)
              .group_by("customer_id").agg(pl.col("churn_date").max().alias("__last_churn")))
    inside = (dates.filter((pl.col("churn_date") > start_d) & (pl.col("churn_date") <= end_d))
              .group_by("customer_id").agg(pl.col("churn_date").min().alias("__churn")))
    frame = cust.join(before, on="customer_id", how="left")
    # gone before the window opens; a customer who came back (a churn before start, but
    # a later start) would need a new start date in customers, which is the lifecycle's job
    frame = frame.filter(pl.col("__last_churn").is_null()).drop("__last_churn")
    frame = frame.join(inside, on="customer_id", how="left")

    days_in = (pl.coalesce(pl.col("__churn"), pl.lit(end_d)) - pl.lit(start_d)).dt.total_days()
    tenure0 = (pl.lit(start_d) - pl.col("__start")).dt.total_days()
    suffix = time_unit
    cols = [
        pl.col("customer_id"),
        (days_in.cast(pl.Float64) / unit_days + (tenure0.cast(pl.Float64) / unit_days
                                                 if time_scale == "tenure" else 0.0))
        .alias(f"duration_{suffix}"),
        pl.col("__churn").is_not_null().alias("event"),
    ]
    if time_scale == "tenure":
        cols.append((tenure0.cast(pl.Float64) / unit_days).alias(f"entry_{suffix}"))
    cols.append((tenure0.cast(pl.Float64) / unit_days).alias(f"tenure_at_start_{suffix}"))
    out = frame.select(cols)

    if covariates is not None:
        cov = covariates(start_d) if callable(covariates) else covariates
        cov = to_polars(cov, "covariates")
        if "customer_id" not in cov.columns:
            raise ValueError(f"{owner}: the covariates table needs a customer_id column.")
        if cov["customer_id"].is_duplicated().any():
            raise ValueError(f"{owner}: the covariates table has duplicate customer_id rows; "
                             "it must hold one row per customer as of the window start.")
        cov = cov.with_columns(pl.col("customer_id").cast(pl.String))
        clash = [c for c in cov.columns if c != "customer_id" and c in out.columns]
        if clash:
            cov = cov.drop(clash)
        out = out.join(cov, on="customer_id", how="inner")
    else:
        out = out.with_columns(pl.lit(start_d).alias("window_start"))
    return to_output(out.sort("customer_id"), output)


def build_backtest_data(
    customers: Any,
    churn: Any,
    *,
    as_of: Any,
    horizon_days: float = 90,
    covariates: Any = None,
    time_unit: str = "days",
    start_col: str = "first_seen",
    output: Output = "polars",
):
    """Covariates as of ``as_of`` and churn observed in ``(as_of, as_of + horizon]``.

    A thin, explicit form of :func:`build_survival_data` with
    ``start=as_of, end=as_of + horizon_days`` on the landmark time scale, plus a
    boolean ``churned_in_horizon`` column (the label a backtest scores against).

    Examples
    --------
    >>> import polars as pl, datetime as dt
    >>> customers = pl.DataFrame({"customer_id": ["a", "b"],
    ...     "first_seen": [dt.date(2023, 1, 1), dt.date(2023, 6, 1)]})
    >>> churn = pl.DataFrame({"customer_id": ["a", "b"],
    ...                       "churn_date": [dt.date(2024, 2, 10), dt.date(2024, 9, 1)]})
    >>> bt = build_backtest_data(customers, churn, as_of="2024-01-01", horizon_days=90)
    >>> bt.select("customer_id", "duration_days", "churned_in_horizon").rows()
    [('a', 40.0, True), ('b', 90.0, False)]
    """
    as_of_d = check_date(as_of, "as_of", "build_backtest_data")
    h = check_positive(horizon_days, "horizon_days", "build_backtest_data")
    end = as_of_d + dt.timedelta(days=int(round(h)))
    out = build_survival_data(customers, churn, start=as_of_d, end=end, covariates=covariates,
                              time_scale="landmark", time_unit=time_unit, start_col=start_col)
    out = out.with_columns(pl.col("event").alias("churned_in_horizon"))
    return to_output(out, output)


def frame_to_xy(frame: Any, duration_col: str, event_col: str, entry_col: str | None = None,
                drop: tuple[str, ...] | list[str] = ()) -> tuple[pl.DataFrame, np.ndarray]:
    """Split a survival table into covariates ``X`` (polars) and target ``y``.

    Examples
    --------
    >>> import polars as pl
    >>> X, y = frame_to_xy(pl.DataFrame({"t": [1.0, 2.0], "e": [1, 0], "x": [0.1, 0.2]}), "t", "e")
    >>> X.columns, y["duration"].tolist()
    (['x'], [1.0, 2.0])
    """
    frame = to_polars(frame, "frame")
    entry = frame[entry_col].to_numpy() if entry_col else None
    y = make_y(frame[duration_col].to_numpy(), frame[event_col].to_numpy(), entry)
    used = [duration_col, event_col, *([entry_col] if entry_col else []), *drop]
    return frame.drop([c for c in used if c in frame.columns]), y

