"""Community elderly care: a priority register from vulnerability flags, visit cadence
by priority, and service cases' closure rate and time to close.

Residents are ``customers`` rows with ``birth_year`` and three true/false flags
(``lives_alone``, ``dependent``, ``low_income``; null = not assessed). Service cases
(a meal service, a medical escort, a home repair) are ``complaints`` rows: ``kind`` is
the case type, ``date`` the day it was opened, ``outcome`` ``"closed"`` or ``"open"``
and ``closed_on`` the day it was closed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from crmkit._frames import Output, to_output, to_polars
from crmkit._params import check_date
from crmkit.sectors._insurer import _need

__all__ = ["case_measures", "open_cases", "priority_register"]

_FLAG_WORDS = {"aged_80_plus": "aged {age}", "lives_alone": "lives alone",
               "dependent": "dependent", "low_income": "low income"}


def priority_register(customers: Any, *, as_of: dt.date | str,
                      weights: Mapping[str, int] | None = None,
                      levels: Mapping[str, int] | None = None, age_threshold: int = 80,
                      output: Output = "polars"):
    """The priority register: every resident's vulnerability flags, score and priority.

    The flags are ``aged_80_plus`` (age on ``as_of``'s year, ``as_of.year -
    birth_year``, of ``age_threshold`` or more) and the customers columns
    ``lives_alone``, ``dependent`` and ``low_income``. The score is the sum of the
    weights of the flags that are set; the priority is the highest level whose
    minimum score the resident reaches. A flag that is null (never assessed) adds
    nothing and is named in ``not_assessed``, so the gap is visible and closed at the
    next visit.

    Parameters
    ----------
    customers : table
        ``customer_id``, ``birth_year`` and the flag columns named in ``weights``.
    weights : mapping of str to int, default 1 for every flag and 2 for ``dependent``
    levels : mapping of str to int, default ``{"high": 3, "medium": 2, "low": 1,
        "standard": 0}``; the lowest level's minimum must be 0.
    age_threshold : int

    Returns
    -------
    DataFrame
        ``customer_id``, ``age``, one column per flag, ``score``, ``priority``,
        ``not_assessed`` and ``reason``.

    Examples
    --------
    >>> import polars as pl
    >>> r = pl.DataFrame({"customer_id": ["a", "b", "c"], "birth_year": [1940, 1950, None],
    ...     "lives_alone": [True, False, None], "dependent": [True, False, False],
    ...     "low_income": [False, True, False]})
    >>> out = priority_register(r, as_of="2025-12-31")
    >>> out.select("customer_id", "score", "priority").rows()
    [('a', 4, 'high'), ('b', 1, 'low'), ('c', 0, 'standard')]
    >>> out["reason"].to_list()
    ['priority high (score 4): aged 85, lives alone, dependent', 'priority low (score 1): low income', 'priority standard (score 0): no flag set; not assessed: age, lives_alone']
    """
    owner = "priority_register"
    day = check_date(as_of, "as_of", owner)
    weights = dict(weights or {"aged_80_plus": 1, "lives_alone": 1, "dependent": 2,
                               "low_income": 1})
    levels = dict(levels or {"high": 3, "medium": 2, "low": 1, "standard": 0})
    ordered = sorted(levels.items(), key=lambda kv: -kv[1])
    if not ordered or ordered[-1][1] != 0:
        raise ValueError(f"The 'levels' parameter of {owner} must map each priority to its "
                         f"minimum score, the lowest to 0. Got {levels!r} instead.")
    people = to_polars(customers, "customers")
    columns = [f for f in weights if f != "aged_80_plus"]
    _need(people, "customers", ("customer_id", *(["birth_year"] if "aged_80_plus" in weights
                                                  else []), *columns), owner)
    age = (day.year - pl.col("birth_year")).cast(pl.Int64) if "birth_year" in people.columns \
        else pl.lit(None, pl.Int64)
    out = people.select("customer_id", age.alias("age"),
                        *[pl.col(f).cast(pl.Boolean) for f in columns])
    if "aged_80_plus" in weights:
        out = out.with_columns((pl.col("age") >= age_threshold).alias("aged_80_plus"))
    flags = list(weights)
    score = pl.sum_horizontal(*[pl.col(f).fill_null(False).cast(pl.Int64) * w
                                for f, w in weights.items()])
    out = out.with_columns(score.alias("score"))
    prio = pl.lit(ordered[-1][0])
    for name, low in reversed(ordered[:-1]):
        prio = pl.when(pl.col("score") >= low).then(pl.lit(name)).otherwise(prio)
    out = out.with_columns(prio.alias("priority"))
    gap_names = {f: ("age" if f == "aged_80_plus" else f) for f in flags}
    missing = pl.concat_list([pl.when(pl.col(f).is_null()).then(pl.lit(gap_names[f]))
                              for f in flags]).list.drop_nulls()
    words = pl.concat_list([
        pl.when(pl.col(f).fill_null(False)).then(
            pl.format("aged {}", pl.col("age")) if f == "aged_80_plus"
            else pl.lit(_FLAG_WORDS.get(f, f.replace("_", " "))))
        for f in flags]).list.drop_nulls()
    out = out.with_columns(missing.list.join(", ").alias("not_assessed"),
                           words.list.join(", ").alias("_words"))
    reason = pl.format("priority {} (score {}): ", pl.col("priority"), pl.col("score")) + \
        pl.when(pl.col("_words") == "").then(pl.lit("no flag set")).otherwise(pl.col("_words")) + \
        pl.when(pl.col("not_assessed") == "").then(pl.lit("")).otherwise(
            pl.lit("; not assessed: ") + pl.col("not_assessed"))
    out = out.with_columns(reason.alias("reason"),
                           pl.when(pl.col("not_assessed") == "").then(None)
                           .otherwise(pl.col("not_assessed")).alias("not_assessed"))
    cols = ["customer_id", "age", *flags, "score", "priority", "not_assessed", "reason"]
    return to_output(out.select(cols).sort("customer_id"), output)


def _cases(cases: Any, owner: str, day: dt.date) -> pl.DataFrame:
    c = to_polars(cases, "cases")
    _need(c, "cases", ("customer_id", "date", "kind", "outcome", "closed_on"), owner)
    c = c.filter(pl.col("date") <= day)
    closed = (pl.col("outcome") == "closed") & pl.col("closed_on").is_not_null() \
        & (pl.col("closed_on") <= day)
    return c.with_columns(closed.fill_null(False).alias("_closed")).with_columns(
        pl.when(pl.col("_closed")).then((pl.col("closed_on") - pl.col("date")).dt.total_days())
        .cast(pl.Int64).alias("days_to_close"),
        (pl.lit(day) - pl.col("date")).dt.total_days().cast(pl.Int64).alias("days_open"))


def open_cases(cases: Any, *, as_of: dt.date | str, target_days: Mapping[str, int] | None = None,
               default_target_days: int = 14, output: Output = "polars"):
    """Service cases still open on ``as_of``, with their age and whether they are overdue.

    Returns
    -------
    DataFrame
        ``customer_id``, ``date``, ``kind``, ``days_open``, ``target_days``,
        ``overdue``, ``reason``.

    Examples
    --------
    >>> import polars as pl, datetime as dt
    >>> c = pl.DataFrame({"customer_id": ["a", "a"], "kind": ["meals", "repair"],
    ...     "date": [dt.date(2025, 12, 1), dt.date(2025, 12, 20)], "outcome": ["open", "closed"],
    ...     "closed_on": [None, dt.date(2025, 12, 22)]})
    >>> open_cases(c, as_of="2025-12-31", target_days={"meals": 7})["reason"].to_list()
    ['meals case open 30 days (target 7 days): overdue']
    """
    owner = "open_cases"
    day = check_date(as_of, "as_of", owner)
    c = _cases(cases, owner, day).filter(~pl.col("_closed"))
    target = pl.col("kind").replace_strict(dict(target_days or {}), default=default_target_days,
                                           return_dtype=pl.Int64)
    out = c.with_columns(target.alias("target_days")).with_columns(
        (pl.col("days_open") > pl.col("target_days")).alias("overdue"))
    out = out.with_columns(pl.format("{} case open {} days (target {} days)", pl.col("kind"),
                                     pl.col("days_open"), pl.col("target_days"))
                           .add(pl.when(pl.col("overdue")).then(pl.lit(": overdue"))
                                .otherwise(pl.lit(""))).alias("reason"))
    cols = ["customer_id", "date", "kind", "days_open", "target_days", "overdue", "reason"]
    return to_output(out.select(cols).sort("customer_id", "date", "kind"), output)


def case_measures(cases: Any, *, as_of: dt.date | str, window_days: int = 365,
                  by: Sequence[str] = (), groups: Any = None, output: Output = "polars"):
    """Case closure rate and time to close, for the cases opened in the last ``window_days``.

    ``closure_rate`` is the share of those cases closed by ``as_of``; the days to close
    (``mean_days_to_close``, ``median_days_to_close``, ``p90_days_to_close``) are over
    the closed ones. ``by`` names columns of ``groups`` (one row per
    ``customer_id``: e.g. the centre ``branch_id`` or the care worker ``manager_id``)
    to measure each group; without ``by``, one row for the whole service.

    Examples
    --------
    >>> import polars as pl, datetime as dt
    >>> c = pl.DataFrame({"customer_id": ["a", "a", "b"], "kind": ["meals"] * 3,
    ...     "date": [dt.date(2025, 12, 1), dt.date(2025, 11, 1), dt.date(2025, 12, 20)],
    ...     "outcome": ["closed", "closed", "open"],
    ...     "closed_on": [dt.date(2025, 12, 3), dt.date(2025, 11, 11), None]})
    >>> case_measures(c, as_of="2025-12-31").select(
    ...     "cases", "closed", "closure_rate", "median_days_to_close").rows()
    [(3, 2, 0.6667, 6.0)]
    """
    owner = "case_measures"
    day = check_date(as_of, "as_of", owner)
    c = _cases(cases, owner, day).filter(pl.col("date") > day - dt.timedelta(days=window_days))
    keys = list(by)
    if keys:
        g = to_polars(groups, "groups")
        _need(g, "groups", ("customer_id", *keys), owner)
        c = c.join(g.select("customer_id", *keys).unique("customer_id", keep="first"),
                   on="customer_id", how="left")
    aggs = [pl.len().cast(pl.Int64).alias("cases"),
            pl.col("_closed").sum().cast(pl.Int64).alias("closed"),
            (pl.col("_closed").sum() / pl.len()).round(4).alias("closure_rate"),
            pl.col("days_to_close").mean().round(2).alias("mean_days_to_close"),
            pl.col("days_to_close").median().alias("median_days_to_close"),
            pl.col("days_to_close").quantile(0.9, "nearest").cast(pl.Float64)
            .alias("p90_days_to_close"),
            (~pl.col("_closed")).sum().cast(pl.Int64).alias("open")]
    out = c.group_by(keys).agg(aggs).sort(keys, nulls_last=True) if keys else c.select(aggs)
    return to_output(out, output)
