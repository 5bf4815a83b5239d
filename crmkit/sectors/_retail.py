"""Tobacco retail: the customers are shops, classed by retail format and graded by volume.

Shops are ``customers`` rows with ``retail_format`` and ``area`` (free attribute
columns) and their agreed visit hours in ``contact_window``; orders are
``transactions`` with a volume column (``cartons``); field visits are ``contacts``
of kind ``visit`` and status events (phone changed, business closed, ...) are
``contacts`` of kind ``status`` with the event in ``outcome``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from crmkit._frames import Output, to_output, to_polars
from crmkit._params import check_date
from crmkit.sectors._insurer import _need

__all__ = ["cold_start_estimates", "cold_start_stats", "cold_start_table", "grade_shops",
           "shop_status", "shop_volumes", "sort_visits", "visit_plan"]


def sort_visits(plan: pl.DataFrame) -> pl.DataFrame:
    """Visits in the order a day is filled: priority 1 (new) first, then by
    ``overdue_ratio`` (never visited first), then ``customer_id``."""
    return plan.sort(["priority", pl.col("overdue_ratio").fill_null(float("inf")),
                      "customer_id"], descending=[False, True, False])


def _grades_ordered(grades: Mapping[str, float], owner: str) -> list[tuple[str, float]]:
    items = sorted(grades.items(), key=lambda kv: -kv[1])
    if not items or items[-1][1] != 0:
        raise ValueError(f"The 'grades' parameter of {owner} must map each grade to its lowest "
                         f"yearly volume, the lowest grade to 0. Got {dict(grades)!r} instead.")
    return items


def shop_volumes(transactions: Any, customers: Any, *, as_of: dt.date | str,
                 volume_col: str = "cartons", window_days: int = 365,
                 min_history_days: int = 90, output: Output = "polars"):
    """Each shop's yearly volume: its orders of the last ``window_days``, annualised.

    A shop known for less than the window is annualised over the days it has been
    known; one known for less than ``min_history_days`` days is ``new`` (too short a
    history to grade: see :func:`cold_start_estimates`).

    Returns
    -------
    DataFrame
        ``customer_id``, ``retail_format``/``area`` when present, ``first_seen``,
        ``days_known``, ``volume`` (in the window), ``yearly_volume``, ``new``.

    Examples
    --------
    >>> import polars as pl, datetime as dt
    >>> shops = pl.DataFrame({"customer_id": ["a", "b"],
    ...     "first_seen": [dt.date(2020, 1, 1), dt.date(2025, 10, 4)]})
    >>> tx = pl.DataFrame({"customer_id": ["a", "a", "b"], "cartons": [100, 50, 30],
    ...     "timestamp": [dt.datetime(2025, 3, 1), dt.datetime(2024, 6, 1), dt.datetime(2025, 12, 1)]})
    >>> shop_volumes(tx, shops, as_of="2025-12-31").select(
    ...     "customer_id", "yearly_volume", "new").rows()
    [('a', 100.0, False), ('b', 123.03, True)]
    """
    owner = "shop_volumes"
    day = check_date(as_of, "as_of", owner)
    tx = to_polars(transactions, "transactions")
    _need(tx, "transactions", ("customer_id", "timestamp", volume_col), owner)
    shops = to_polars(customers, "customers")
    _need(shops, "customers", ("customer_id", "first_seen"), owner)
    start = day - dt.timedelta(days=window_days)
    when = pl.col("timestamp").cast(pl.Date)
    vol = tx.filter((when > start) & (when <= day)).group_by("customer_id").agg(
        pl.col(volume_col).cast(pl.Float64).sum().alias("volume"))
    attrs = [c for c in ("retail_format", "area") if c in shops.columns]
    out = shops.filter(pl.col("first_seen") <= day).select(
        "customer_id", *attrs, "first_seen").join(vol, on="customer_id", how="left")
    known = (pl.lit(day) - pl.col("first_seen")).dt.total_days().cast(pl.Int64) + 1
    out = out.with_columns(pl.col("volume").fill_null(0.0), known.alias("days_known"))
    span = pl.min_horizontal(pl.col("days_known"), pl.lit(window_days))
    out = out.with_columns((pl.col("volume") * window_days / span).round(2).alias("yearly_volume"),
                           (pl.col("days_known") < min_history_days).alias("new"))
    return to_output(out.sort("customer_id"), output)


def grade_shops(volumes: Any, *, grades: Mapping[str, float], estimate_col: str | None = None,
                output: Output = "polars"):
    """Grade shops by yearly volume and show the distance to the next grade.

    ``grades`` maps each grade to its lowest yearly volume (the lowest grade to 0).
    A new shop (``new``) is graded on ``estimate_col`` when given (its cold-start
    estimate), and says so.

    Returns
    -------
    DataFrame
        The volumes with ``graded_on``, ``grade``, ``next_grade``,
        ``next_grade_volume``, ``to_next_grade`` (null at the top) and ``reason``.

    Examples
    --------
    >>> import polars as pl
    >>> v = pl.DataFrame({"customer_id": ["a", "b", "c"], "yearly_volume": [2500.0, 990.0, 10.0],
    ...                   "new": [False, False, False]})
    >>> out = grade_shops(v, grades={"A": 2000, "B": 1000, "C": 0})
    >>> out.select("grade", "next_grade", "to_next_grade").rows()
    [('A', None, None), ('C', 'B', 10.0), ('C', 'B', 990.0)]
    >>> out["reason"][1]
    'grade C on 990 a year; 10 more a year reaches grade B (1000)'
    """
    owner = "grade_shops"
    items = _grades_ordered(grades, owner)
    v = to_polars(volumes, "volumes")
    _need(v, "volumes", ("customer_id", "yearly_volume", "new"), owner)
    basis = pl.col("yearly_volume")
    on = pl.lit("orders")
    if estimate_col is not None:
        _need(v, "volumes", (estimate_col,), owner)
        use_est = pl.col("new") & pl.col(estimate_col).is_not_null()
        basis = pl.when(use_est).then(pl.col(estimate_col)).otherwise(basis)
        on = pl.when(use_est).then(pl.lit("cold-start estimate")).otherwise(on)
    out = v.with_columns(basis.alias("_basis"), on.alias("graded_on"))
    grade = pl.lit(items[-1][0])
    nxt, nxt_v = pl.lit(items[-2][0] if len(items) > 1 else None, pl.String), \
        pl.lit(items[-2][1] if len(items) > 1 else None, pl.Float64)
    for i in range(len(items) - 2, -1, -1):
        name, low = items[i]
        up = items[i - 1] if i > 0 else (None, None)
        hit = pl.col("_basis") >= low
        grade = pl.when(hit).then(pl.lit(name)).otherwise(grade)
        nxt = pl.when(hit).then(pl.lit(up[0], pl.String)).otherwise(nxt)
        nxt_v = pl.when(hit).then(pl.lit(up[1], pl.Float64)).otherwise(nxt_v)
    out = out.with_columns(grade.alias("grade"), nxt.alias("next_grade"),
                           nxt_v.cast(pl.Float64).alias("next_grade_volume"))
    out = out.with_columns((pl.col("next_grade_volume") - pl.col("_basis")).round(2)
                           .alias("to_next_grade"))
    fmt = lambda e: e.round(0).cast(pl.Int64).cast(pl.String)  # noqa: E731
    head = pl.format("grade {} on {} a year", pl.col("grade"), fmt(pl.col("_basis")))
    head = pl.when(pl.col("graded_on") == "orders").then(head).otherwise(
        head + pl.lit(" (new shop: cold-start estimate)"))
    tail = pl.when(pl.col("next_grade").is_null()).then(pl.lit("; top grade")).otherwise(
        pl.format("; {} more a year reaches grade {} ({})", fmt(pl.col("to_next_grade")),
                  pl.col("next_grade"), fmt(pl.col("next_grade_volume"))))
    out = out.with_columns((head + tail).alias("reason")).drop("_basis")
    return to_output(out.sort("customer_id"), output)


def cold_start_stats(volumes: Any, *, keys: Sequence[str] = ("retail_format", "area")
                     ) -> pl.DataFrame:
    """Sufficient statistics of established shops' volumes by ``keys`` (summable over shards):
    ``n`` and the sum of ``log1p(yearly_volume)``."""
    v = to_polars(volumes, "volumes")
    _need(v, "volumes", (*keys, "yearly_volume", "new"), "cold_start_stats")
    return v.filter(~pl.col("new")).group_by(list(keys)).agg(
        pl.len().cast(pl.Int64).alias("n"),
        pl.col("yearly_volume").log1p().sum().alias("sum_log"))


def cold_start_table(stats: Any, *, keys: Sequence[str] = ("retail_format", "area"),
                     min_shops: int = 5) -> pl.DataFrame:
    """The cold-start estimate by format and area, from :func:`cold_start_stats` (summed).

    The estimate of a group is the geometric mean (``expm1`` of the mean ``log1p``)
    of its established shops' yearly volumes: shop volumes are skewed, and a few very
    large shops should not set a new shop's expectation. A group with fewer than
    ``min_shops`` shops falls back to the first key alone (the format), then to every
    shop. Returns one row per level: ``level`` (``"format_area"``, ``"format"``,
    ``"all"``), the keys, ``n`` and ``estimate``.

    Examples
    --------
    >>> import polars as pl, math
    >>> s = pl.DataFrame({"retail_format": ["kiosk", "kiosk"], "area": ["urban", "rural"],
    ...     "n": [6, 1], "sum_log": [6 * math.log1p(99.0), math.log1p(9.0)]})
    >>> t = cold_start_table(s, min_shops=5)
    >>> t.filter(pl.col("level") == "format_area").select("area", "estimate").rows()
    [('urban', 99.0)]
    """
    s = to_polars(stats, "stats").group_by(list(keys)).agg(pl.col("n").sum(),
                                                           pl.col("sum_log").sum())
    est = lambda: (pl.col("sum_log") / pl.col("n")).exp() - 1  # noqa: E731
    full = s.filter(pl.col("n") >= min_shops).select(
        pl.lit("format_area").alias("level"), *keys, "n", est().round(2).alias("estimate"))
    first = s.group_by(keys[0]).agg(pl.col("n").sum(), pl.col("sum_log").sum()).filter(
        pl.col("n") >= min_shops).select(pl.lit("format").alias("level"), keys[0],
                                         *[pl.lit(None, pl.String).alias(k) for k in keys[1:]],
                                         "n", est().round(2).alias("estimate"))
    every = s.select(pl.lit("all").alias("level"),
                     *[pl.lit(None, pl.String).alias(k) for k in keys],
                     pl.col("n").sum(), pl.col("sum_log").sum()).select(
        "level", *keys, "n", est().round(2).alias("estimate")).filter(pl.col("n") > 0)
    return pl.concat([full, first, every], how="vertical_relaxed").sort(
        "level", *keys, nulls_last=True)


def cold_start_estimates(volumes: Any, table: Any, *,
                         keys: Sequence[str] = ("retail_format", "area")) -> pl.DataFrame:
    """Each shop's cold-start estimate and its basis, from :func:`cold_start_table`.

    Returns ``volumes`` with ``cold_start_estimate`` and ``cold_start_basis`` (which
    group the estimate comes from and how many shops it rests on).
    """
    v = to_polars(volumes, "volumes")
    t = to_polars(table, "table")
    k0 = keys[0]
    full = t.filter(pl.col("level") == "format_area").select(
        *keys, pl.col("estimate").alias("_e1"), pl.col("n").alias("_n1"))
    first = t.filter(pl.col("level") == "format").select(
        k0, pl.col("estimate").alias("_e2"), pl.col("n").alias("_n2"))
    every = t.filter(pl.col("level") == "all")
    e3 = every["estimate"][0] if every.height else None
    n3 = every["n"][0] if every.height else 0
    out = v.join(full, on=list(keys), how="left").join(first, on=k0, how="left")
    out = out.with_columns(
        pl.coalesce("_e1", "_e2", pl.lit(e3, pl.Float64)).alias("cold_start_estimate"),
        pl.when(pl.col("_e1").is_not_null()).then(pl.format(
            "established shops of the same format and area ({}: {} shops)",
            pl.concat_str([pl.col(k) for k in keys], separator="/"), pl.col("_n1")))
        .when(pl.col("_e2").is_not_null()).then(pl.format(
            "established shops of the same format ({}: {} shops)", pl.col(k0), pl.col("_n2")))
        .when(pl.lit(e3 is not None)).then(pl.lit(f"all established shops ({n3})"))
        .otherwise(None).alias("cold_start_basis"))
    return out.drop("_e1", "_n1", "_e2", "_n2")


def shop_status(contacts: Any, transactions: Any, customers: Any, *, as_of: dt.date | str,
                churn_events: Sequence[str] = ("business_closed", "licence_revoked"),
                watch_events: Sequence[str] = ("phone_changed", "owner_changed", "relocated"),
                inactive_days: int = 60, status_kind: str = "status",
                output: Output = "polars"):
    """Status events as churn reasons, and shops gone quiet.

    A shop whose latest status event is one of ``churn_events`` has churned, with
    that event as the churn reason. A ``watch_events`` event (a changed phone, a new
    owner) in the last ``inactive_days`` days or a shop without orders for
    ``inactive_days`` days is ``at_risk``: the field rep checks the shop still
    trades. Shops with none of these are not listed.

    Returns
    -------
    DataFrame
        ``customer_id``, ``status`` (``churned`` or ``at_risk``), ``event``,
        ``event_date``, ``days_since_order``, ``churned``, ``churn_reason``,
        ``reason``.

    Examples
    --------
    >>> import polars as pl, datetime as dt
    >>> shops = pl.DataFrame({"customer_id": ["a", "b", "c"], "first_seen": [dt.date(2020, 1, 1)] * 3})
    >>> con = pl.DataFrame({"customer_id": ["a", "b"], "kind": ["status", "status"],
    ...     "date": [dt.date(2025, 11, 3), dt.date(2025, 12, 20)],
    ...     "outcome": ["business_closed", "phone_changed"]})
    >>> tx = pl.DataFrame({"customer_id": ["a", "b", "c"],
    ...     "timestamp": [dt.datetime(2025, 11, 1), dt.datetime(2025, 12, 28), dt.datetime(2025, 12, 29)]})
    >>> shop_status(con, tx, shops, as_of="2025-12-31").select(
    ...     "customer_id", "status", "churn_reason").rows()
    [('a', 'churned', 'business_closed'), ('b', 'at_risk', None)]
    """
    owner = "shop_status"
    day = check_date(as_of, "as_of", owner)
    con = to_polars(contacts, "contacts")
    _need(con, "contacts", ("customer_id", "date", "kind", "outcome"), owner)
    tx = to_polars(transactions, "transactions")
    _need(tx, "transactions", ("customer_id", "timestamp"), owner)
    shops = to_polars(customers, "customers")
    _need(shops, "customers", ("customer_id", "first_seen"), owner)
    shops = shops.select("customer_id", "first_seen")
    events = con.filter((pl.col("kind") == status_kind) & (pl.col("date") <= day)).sort(
        "customer_id", "date").group_by("customer_id", maintain_order=True).agg(
        pl.col("outcome").last().alias("event"), pl.col("date").last().alias("event_date"))
    last_order = tx.filter(pl.col("timestamp").cast(pl.Date) <= day).group_by("customer_id").agg(
        pl.col("timestamp").max().cast(pl.Date).alias("_last"))
    out = shops.join(events, on="customer_id", how="left").join(last_order, on="customer_id",
                                                                how="left")
    out = out.with_columns((pl.lit(day) - pl.col("_last")).dt.total_days().cast(pl.Int64)
                           .alias("days_since_order"))
    churned = pl.col("event").is_in(list(churn_events)).fill_null(False)
    recent = (pl.lit(day) - pl.col("event_date")).dt.total_days() <= inactive_days
    watch = (pl.col("event").is_in(list(watch_events)) & recent).fill_null(False)
    known = (pl.lit(day) - pl.col("first_seen")).dt.total_days()
    quiet = pl.when(pl.col("days_since_order").is_null()).then(known >= inactive_days) \
        .otherwise(pl.col("days_since_order") >= inactive_days).fill_null(False)
    out = out.with_columns(churned.alias("churned"), watch.alias("_watch"), quiet.alias("_quiet"))
    out = out.filter(pl.col("churned") | pl.col("_watch") | pl.col("_quiet"))
    orders = pl.when(pl.col("days_since_order").is_null()).then(pl.lit("no orders yet")) \
        .otherwise(pl.format("no orders for {} days", pl.col("days_since_order")))
    out = out.with_columns(
        pl.when(pl.col("churned")).then(pl.lit("churned")).otherwise(pl.lit("at_risk"))
        .alias("status"),
        pl.when(pl.col("churned")).then(pl.col("event")).alias("churn_reason"),
        pl.when(pl.col("churned")).then(pl.format("churned: {} on {}", pl.col("event"),
                                                  pl.col("event_date").dt.to_string("%Y-%m-%d")))
        .when(pl.col("_watch")).then(pl.format("{} on {}: check the shop still trades; ",
                                               pl.col("event"),
                                               pl.col("event_date").dt.to_string("%Y-%m-%d"))
                                     + pl.when(pl.col("_quiet")
                                               | pl.col("days_since_order").is_null())
                                     .then(orders).otherwise(pl.format(
                                         "still ordering (last order {} days ago)",
                                         pl.col("days_since_order"))))
        .otherwise(orders).alias("reason"))
    cols = ["customer_id", "status", "event", "event_date", "days_since_order", "churned",
            "churn_reason", "reason"]
    return to_output(out.select(cols).sort("customer_id"), output)


def visit_plan(grades: Any, contacts: Any, customers: Any, *, as_of: dt.date | str,
               cadence_days: Mapping[str, int], new_shop_days: int = 30,
               plan_date: dt.date | str | None = None, default_time: str = "10:00",
               visit_kinds: Sequence[str] = ("visit",), exclude: Any = None,
               assignments: Any = None, per_rep: int | None = None,
               grade_col: str = "grade", noun: str = "shop", opened_word: str = "opened",
               output: Output = "polars"):
    """The field reps' visit plan for ``plan_date`` (default the day after ``as_of``).

    - a **new shop** (known ``new_shop_days`` days or less) never visited since it
      opened is visited at once (priority 1), whatever its grade;
    - any other shop is due when its last visit is ``cadence_days[grade]`` days or more
      before the plan date (priority 2), most overdue first: by ``overdue_ratio``, the
      days since the last visit over the cadence (never visited first), so a weekly
      shop a week late comes before a two-monthly shop a few days late.

    Each visit is scheduled at the start of the shop's agreed hours
    (``contact_window``, "HH:MM-HH:MM"), or ``default_time`` without one, so that
    the contact policy can check it. Shops in ``exclude`` (``customer_id``: e.g.
    churned shops) are left out. With ``assignments`` (``customer_id``,
    ``manager_id``, primary ``role``) each visit names its rep, and ``per_rep`` caps
    each rep's day: new shops first, then the most overdue (:func:`sort_visits`); the
    rest is not in the plan (it stays due and comes first on a later day).
    ``grade_col``, ``noun`` and ``opened_word`` name the level and the customer in the
    reasons (the elderly-care service: ``care_priority``, ``resident``, ``registered``).

    Returns
    -------
    DataFrame
        ``customer_id``, ``grade``, ``priority``, ``last_visit``, ``days_since_visit``,
        ``visit_date``, ``scheduled_at``, ``contact_window``, ``channel``, ``reason``.

    Examples
    --------
    >>> import polars as pl, datetime as dt
    >>> g = pl.DataFrame({"customer_id": ["a", "b", "c"], "grade": ["A", "C", "C"]})
    >>> shops = pl.DataFrame({"customer_id": ["a", "b", "c"],
    ...     "first_seen": [dt.date(2020, 1, 1), dt.date(2020, 1, 1), dt.date(2025, 12, 20)],
    ...     "contact_window": ["14:00-17:00", None, "09:00-11:00"]})
    >>> con = pl.DataFrame({"customer_id": ["a", "b"], "kind": ["visit", "visit"],
    ...     "date": [dt.date(2025, 12, 20), dt.date(2025, 12, 20)]})
    >>> out = visit_plan(g, con, shops, as_of="2025-12-31", cadence_days={"A": 7, "C": 30})
    >>> out.select("customer_id", "priority", "scheduled_at").rows()
    [('c', 1, datetime.datetime(2026, 1, 1, 9, 0)), ('a', 2, datetime.datetime(2026, 1, 1, 14, 0))]
    """
    owner = "visit_plan"
    day = check_date(as_of, "as_of", owner)
    plan = check_date(plan_date, "plan_date", owner) if plan_date is not None \
        else day + dt.timedelta(days=1)
    if grade_col in ("priority", "customer_id", "reason"):
        raise ValueError(f"The 'grade_col' parameter of {owner} must not be a column the plan "
                         f"writes itself. Got {grade_col!r} instead.")
    g = to_polars(grades, "grades")
    _need(g, "grades", ("customer_id", grade_col), owner)
    g = g.rename({grade_col: "grade"}) if grade_col != "grade" else g
    label = grade_col.replace("_", " ")
    missing = sorted(set(g["grade"].drop_nulls().unique()) - set(cadence_days))
    if missing:
        raise ValueError(f"The 'cadence_days' parameter of {owner} must give a cadence for "
                         f"every grade. Got none for {', '.join(missing)}.")
    con = to_polars(contacts, "contacts")
    _need(con, "contacts", ("customer_id", "date", "kind"), owner)
    shops = to_polars(customers, "customers")
    _need(shops, "customers", ("customer_id", "first_seen"), owner)
    if "contact_window" not in shops.columns:
        shops = shops.with_columns(pl.lit(None, pl.String).alias("contact_window"))
    last = con.filter(pl.col("kind").is_in(list(visit_kinds)) & (pl.col("date") <= day)) \
        .group_by("customer_id").agg(pl.col("date").max().alias("last_visit"))
    out = g.select("customer_id", "grade").join(
        shops.select("customer_id", "first_seen", "contact_window"), on="customer_id",
        how="left").join(last, on="customer_id", how="left")
    if exclude is not None:
        out = out.join(to_polars(exclude, "exclude").select("customer_id"), on="customer_id",
                       how="anti")
    cadence = pl.col("grade").replace_strict(dict(cadence_days), default=None,
                                             return_dtype=pl.Int64)
    since = (pl.lit(plan) - pl.col("last_visit")).dt.total_days().cast(pl.Int64)
    age = (pl.lit(day) - pl.col("first_seen")).dt.total_days()
    new = (age <= new_shop_days) & (pl.col("last_visit").is_null()
                                     | (pl.col("last_visit") < pl.col("first_seen")))
    due = new | pl.col("last_visit").is_null() | (since >= cadence)
    out = out.with_columns(cadence.alias("_cad"), since.alias("days_since_visit"),
                           new.alias("_new")).filter(due)
    start = pl.col("contact_window").str.slice(0, 5)
    start = pl.when(start.str.contains(r"^\d\d:\d\d$")).then(start).otherwise(pl.lit(default_time))
    out = out.with_columns(
        pl.when(pl.col("_new")).then(1).otherwise(2).cast(pl.Int64).alias("priority"),
        pl.lit(plan).alias("visit_date"),
        (pl.lit(plan.isoformat()) + pl.lit(" ") + start).str.to_datetime("%Y-%m-%d %H:%M",
                                                                          time_unit="us")
        .alias("scheduled_at"),
        pl.lit("visit").alias("channel"))
    hours = pl.when(pl.col("contact_window").is_null()).then(pl.lit("no agreed hours")) \
        .otherwise(pl.lit("agreed hours ") + pl.col("contact_window"))
    out = out.with_columns(pl.when(pl.col("_new")).then(pl.format(
        f"new {noun} ({opened_word} {{}}), not visited yet: visit at once; ",
        pl.col("first_seen").dt.to_string("%Y-%m-%d")))
        .when(pl.col("last_visit").is_null()).then(pl.format(
            f"{label} {{}} {noun} never visited; ", pl.col("grade")))
        .otherwise(pl.format(f"{label} {{}} {noun}, visited every {{}} days: last visit {{}} "
                             f"({{}} days ago); ", pl.col("grade"), pl.col("_cad"),
                             pl.col("last_visit").dt.to_string("%Y-%m-%d"),
                             pl.col("days_since_visit"))).add(hours).alias("reason"))
    out = out.with_columns((pl.col("days_since_visit") / pl.col("_cad")).round(2)
                           .alias("overdue_ratio"))
    out = sort_visits(out)
    if grade_col != "grade":
        out = out.rename({"grade": grade_col})
    cols = ["customer_id", grade_col, "priority", "last_visit", "days_since_visit",
            "overdue_ratio", "visit_date", "scheduled_at", "contact_window", "channel", "reason"]
    if assignments is not None:
        a = to_polars(assignments, "assignments")
        _need(a, "assignments", ("customer_id", "manager_id"), owner)
        if "role" in a.columns:
            a = a.filter(pl.col("role") == "primary")
        out = out.join(a.select("customer_id", "manager_id").unique("customer_id", keep="first"),
                       on="customer_id", how="left", maintain_order="left")
        cols.insert(1, "manager_id")
        if per_rep is not None:
            out = out.filter(pl.int_range(pl.len()).over("manager_id") < per_rep)
    elif per_rep is not None:
        raise ValueError(f"The 'per_rep' parameter of {owner} needs assignments. "
                         f"Got assignments=None instead.")
    return to_output(out.select(cols), output)
