"""The insurer's rules: renewals due, claim follow-ups and alerts, key accounts'
executive visits, complaints graded by impact and difficulty, lapse and non-renewal.

Policies are canonical ``holdings`` (``account_id`` is the policy number) with two
extra columns: ``renewal_date`` (the end of the current term) and ``premium`` (the
annual premium). Claims are ``transactions`` on the claim channel (``channel =
"claim"``, the amount paid or reserved, negative as money going to the customer).
Complaints carry ``impact`` and ``difficulty`` (1 low, 2 medium, 3 high).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl

from crmkit._frames import Output, to_output, to_polars
from crmkit._params import check_date
from crmkit.exceptions import SchemaError

__all__ = ["claim_alerts", "claim_followups", "executive_visits", "grade_complaints",
           "policy_churn", "renewals_due"]


def _need(frame: pl.DataFrame, table: str, cols, owner: str) -> None:
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise SchemaError(f"{owner}: the {table} table has no column "
                          f"{', '.join(map(repr, missing))}; it has {', '.join(frame.columns)}.")


def _money(col: str) -> pl.Expr:
    return pl.col(col).round(2).cast(pl.String)


def _next_renewal(as_of: dt.date, term_months: int) -> pl.Expr:
    """The first term end after ``as_of``: ``renewal_date`` when it lies ahead, else the
    next anniversary of ``opened`` in steps of ``term_months`` calendar months."""
    months = (as_of.year - pl.col("opened").dt.year()) * 12 + (as_of.month - pl.col("opened").dt.month())
    k = (months // term_months).clip(lower_bound=0)
    cand = [pl.col("opened").dt.offset_by(pl.format("{}mo", (k + i) * term_months))
            for i in range(3)]
    rolled = (pl.when(cand[0] > as_of).then(cand[0])
              .when(cand[1] > as_of).then(cand[1]).otherwise(cand[2]))
    given = pl.col("renewal_date")
    return pl.when(given.is_not_null() & (given > as_of)).then(given).otherwise(rolled)


def renewals_due(holdings: Any, *, as_of: dt.date | str, days_ahead: int = 60,
                 products: Any = None, term_months: int = 12, channel: str = "phone",
                 output: Output = "polars"):
    """Open policies whose term ends within ``days_ahead`` days after ``as_of``.

    A policy's term end is its ``renewal_date`` when that lies after ``as_of``;
    otherwise (no date, or a date already passed and the policy still open, so it
    was renewed) the next anniversary of ``opened`` every ``term_months`` months.

    Parameters
    ----------
    holdings : table
        Policies: ``account_id``, ``customer_id``, ``product_id``, ``opened``,
        ``closed`` and optionally ``renewal_date`` and ``premium``.
    as_of : date or str
    days_ahead : int
        The window (as_of, as_of + days_ahead], in days.
    products : table, optional
        ``product_id`` and ``category`` (named in the reason when given).
    term_months : int
        Policy term in calendar months, for policies without a future renewal date.
    channel : str
        The contact channel of the renewal reminder.

    Returns
    -------
    DataFrame
        ``customer_id``, ``policy_id``, ``product_id``, ``renewal_date``,
        ``days_to_renewal``, ``premium``, ``channel``, ``reason``; soonest first
        within each customer, sorted by customer.

    Examples
    --------
    >>> import polars as pl, datetime as dt
    >>> h = pl.DataFrame({"account_id": ["P1", "P2", "P3"], "customer_id": ["a", "a", "b"],
    ...     "product_id": ["AUTO", "HOME", "AUTO"],
    ...     "opened": [dt.date(2024, 1, 20), dt.date(2024, 6, 1), dt.date(2023, 1, 10)],
    ...     "closed": [None, None, dt.date(2024, 1, 10)],
    ...     "renewal_date": [dt.date(2026, 1, 20), dt.date(2026, 6, 1), None],
    ...     "premium": [3200.0, 900.0, 2000.0]})
    >>> out = renewals_due(h, as_of="2025-12-31", days_ahead=30)
    >>> out.select("policy_id", "days_to_renewal").rows()
    [('P1', 20)]
    >>> out["reason"][0]
    'policy P1 (AUTO) renews on 2026-01-20, in 20 days; annual premium 3200.0'
    """
    owner = "renewals_due"
    day = check_date(as_of, "as_of", owner)
    if not isinstance(days_ahead, int) or isinstance(days_ahead, bool) or days_ahead < 1:
        raise ValueError(f"The 'days_ahead' parameter of {owner} must be a positive integer. "
                         f"Got {days_ahead!r} instead.")
    if not isinstance(term_months, int) or isinstance(term_months, bool) or term_months < 1:
        raise ValueError(f"The 'term_months' parameter of {owner} must be a positive integer. "
                         f"Got {term_months!r} instead.")
    h = to_polars(holdings, "holdings")
    _need(h, "holdings", ("account_id", "customer_id", "product_id", "opened"), owner)
    if "renewal_date" not in h.columns:
        h = h.with_columns(pl.lit(None, pl.Date).alias("renewal_date"))
    if "premium" not in h.columns:
        h = h.with_columns(pl.lit(None, pl.Float64).alias("premium"))
    if "closed" not in h.columns:
        h = h.with_columns(pl.lit(None, pl.Date).alias("closed"))
    open_ = h.filter((pl.col("opened") <= day) & (pl.col("closed").is_null() | (pl.col("closed") > day)))
    due = open_.with_columns(_next_renewal(day, term_months).alias("_renew")).with_columns(
        (pl.col("_renew") - pl.lit(day)).dt.total_days().cast(pl.Int64).alias("days_to_renewal"))
    due = due.filter(pl.col("days_to_renewal") <= days_ahead)
    label = pl.col("product_id")
    if products is not None:
        prods = to_polars(products, "products")
        _need(prods, "products", ("product_id",), owner)
        if "category" in prods.columns:
            due = due.join(prods.select("product_id", "category"), on="product_id", how="left")
    premium = pl.when(pl.col("premium").is_null()).then(pl.lit("premium not recorded")) \
        .otherwise(pl.lit("annual premium ") + _money("premium"))
    out = due.select(
        "customer_id", pl.col("account_id").alias("policy_id"), "product_id",
        pl.col("_renew").alias("renewal_date"), "days_to_renewal",
        pl.col("premium").cast(pl.Float64), pl.lit(channel).alias("channel"),
        pl.format("policy {} ({}) renews on {}, in {} days; ", pl.col("account_id"), label,
                  pl.col("_renew").dt.to_string("%Y-%m-%d"), pl.col("days_to_renewal"))
        .add(premium).alias("reason"),
    ).sort("customer_id", "days_to_renewal", "policy_id")
    return to_output(out, output)


def _claims(transactions: Any, claim_channel: str, owner: str) -> pl.DataFrame:
    tx = to_polars(transactions, "transactions")
    _need(tx, "transactions", ("customer_id", "timestamp", "amount", "channel"), owner)
    claims = tx.filter(pl.col("channel") == claim_channel)
    cid = pl.col("transaction_id") if "transaction_id" in claims.columns else \
        pl.format("{}-{}", pl.col("customer_id"), pl.col("timestamp").dt.to_string("%Y%m%d%H%M%S"))
    return claims.select("customer_id", cid.alias("claim_id"),
                         pl.col("timestamp").cast(pl.Date).alias("claim_date"),
                         pl.col("amount").abs().alias("claim_amount"),
                         *([pl.col("product_id")] if "product_id" in claims.columns else []))


def claim_followups(transactions: Any, contacts: Any, *, as_of: dt.date | str,
                    lookback_days: int = 30, within_days: int = 2, channel: str = "phone",
                    claim_channel: str = "claim", output: Output = "polars"):
    """Claims of the last ``lookback_days`` days with no contact since: contact the customer.

    After every claim the customer is contacted. A claim counts as followed up
    when the ``contacts`` table holds any contact with that customer on or after
    the claim date; the others are listed, each due ``within_days`` days after
    the claim (``overdue`` when that has passed).

    Returns
    -------
    DataFrame
        ``customer_id``, ``claim_id``, ``claim_date``, ``claim_amount``, ``due``,
        ``overdue``, ``channel``, ``reason``.

    Examples
    --------
    >>> import polars as pl, datetime as dt
    >>> tx = pl.DataFrame({"transaction_id": ["t1", "t2"], "customer_id": ["a", "b"],
    ...     "timestamp": [dt.datetime(2025, 12, 20), dt.datetime(2025, 12, 27)],
    ...     "amount": [-1200.0, -800.0], "channel": ["claim", "claim"]})
    >>> contacts = pl.DataFrame({"customer_id": ["a"], "date": [dt.date(2025, 12, 21)],
    ...                          "kind": ["call"]})
    >>> out = claim_followups(tx, contacts, as_of="2025-12-31")
    >>> out.select("customer_id", "claim_id", "overdue").rows()
    [('b', 't2', True)]
    """
    owner = "claim_followups"
    day = check_date(as_of, "as_of", owner)
    claims = _claims(transactions, claim_channel, owner).filter(
        (pl.col("claim_date") <= day)
        & (pl.col("claim_date") > day - dt.timedelta(days=lookback_days)))
    con = to_polars(contacts, "contacts")
    _need(con, "contacts", ("customer_id", "date"), owner)
    last = con.filter(pl.col("date") <= day).group_by("customer_id").agg(
        pl.col("date").max().alias("_last_contact"))
    todo = claims.join(last, on="customer_id", how="left").filter(
        pl.col("_last_contact").is_null() | (pl.col("_last_contact") < pl.col("claim_date")))
    due = pl.col("claim_date") + pl.duration(days=within_days)
    out = todo.select(
        "customer_id", "claim_id", "claim_date", "claim_amount", due.alias("due"),
        (due < pl.lit(day)).alias("overdue"), pl.lit(channel).alias("channel"),
        pl.format("claim {} of {} on {}: no contact since the claim; follow up by {}",
                  pl.col("claim_id"), _money("claim_amount"),
                  pl.col("claim_date").dt.to_string("%Y-%m-%d"),
                  due.dt.to_string("%Y-%m-%d")).alias("reason"),
    ).sort("customer_id", "claim_date", "claim_id")
    return to_output(out, output)


def claim_alerts(transactions: Any, *, as_of: dt.date | str, threshold: float,
                 claim_channel: str = "claim", output: Output = "polars"):
    """Claims dated ``as_of`` of ``threshold`` or more: a same-day alert for the staff.

    An alert is internal (to the claims handler and the account manager), so it
    names no contact channel and is never suppressed by a customer's opt-outs.

    Examples
    --------
    >>> import polars as pl, datetime as dt
    >>> tx = pl.DataFrame({"transaction_id": ["t1", "t2", "t3"], "customer_id": ["a", "b", "c"],
    ...     "timestamp": [dt.datetime(2025, 12, 31, 9), dt.datetime(2025, 12, 31, 10),
    ...                   dt.datetime(2025, 12, 30)],
    ...     "amount": [-80000.0, -900.0, -90000.0], "channel": ["claim"] * 3})
    >>> claim_alerts(tx, as_of="2025-12-31", threshold=50000).select("claim_id").rows()
    [('t1',)]
    """
    owner = "claim_alerts"
    day = check_date(as_of, "as_of", owner)
    if not isinstance(threshold, (int, float)) or isinstance(threshold, bool) or threshold <= 0:
        raise ValueError(f"The 'threshold' parameter of {owner} must be a positive number. "
                         f"Got {threshold!r} instead.")
    claims = _claims(transactions, claim_channel, owner).filter(
        (pl.col("claim_date") == day) & (pl.col("claim_amount") >= threshold))
    out = claims.select(
        "customer_id", "claim_id", "claim_date", "claim_amount",
        pl.format("claim {} of {} today is at or above the same-day alert threshold {}",
                  pl.col("claim_id"), _money("claim_amount"), pl.lit(f"{threshold:g}"))
        .alias("reason"),
    ).sort("customer_id", "claim_id")
    return to_output(out, output)


def executive_visits(customers: Any, contacts: Any, *, as_of: dt.date | str,
                     min_per_year: int = 4, key_col: str = "key_account",
                     visit_kinds: tuple[str, ...] | list[str] = ("executive_visit",),
                     output: Output = "polars"):
    """Key accounts' executive visits this calendar year against the yearly minimum.

    ``expected`` is the minimum pro rata to the day of the year (rounded down:
    one visit of four is expected by the end of the first quarter); a key
    account with fewer visits than expected is ``behind`` by ``shortfall``.

    Returns
    -------
    DataFrame
        ``customer_id``, ``visits_ytd``, ``expected``, ``minimum``, ``shortfall``,
        ``behind``, ``last_visit``, ``reason`` for every key account.

    Examples
    --------
    >>> import polars as pl, datetime as dt
    >>> cust = pl.DataFrame({"customer_id": ["a", "b", "c"], "key_account": [True, True, False]})
    >>> con = pl.DataFrame({"customer_id": ["a", "a", "b"], "kind": ["executive_visit"] * 3,
    ...     "date": [dt.date(2025, 2, 1), dt.date(2025, 5, 1), dt.date(2024, 12, 1)]})
    >>> out = executive_visits(cust, con, as_of="2025-07-01", min_per_year=4)
    >>> out.select("customer_id", "visits_ytd", "expected", "behind").rows()
    [('a', 2, 1, False), ('b', 0, 1, True)]
    """
    owner = "executive_visits"
    day = check_date(as_of, "as_of", owner)
    if not isinstance(min_per_year, int) or isinstance(min_per_year, bool) or min_per_year < 0:
        raise ValueError(f"The 'min_per_year' parameter of {owner} must be a non-negative "
                         f"integer. Got {min_per_year!r} instead.")
    cust = to_polars(customers, "customers")
    _need(cust, "customers", ("customer_id", key_col), owner)
    con = to_polars(contacts, "contacts")
    _need(con, "contacts", ("customer_id", "date", "kind"), owner)
    year_start = dt.date(day.year, 1, 1)
    days_in_year = (dt.date(day.year + 1, 1, 1) - year_start).days
    expected = (min_per_year * ((day - year_start).days + 1)) // days_in_year
    visits = con.filter(pl.col("kind").is_in(list(visit_kinds)) & (pl.col("date") <= day)) \
        .group_by("customer_id").agg(
            (pl.col("date") >= year_start).sum().cast(pl.Int64).alias("visits_ytd"),
            pl.col("date").max().alias("last_visit"))
    keys = cust.filter(pl.col(key_col).fill_null(False)).select("customer_id")
    out = keys.join(visits, on="customer_id", how="left").with_columns(
        pl.col("visits_ytd").fill_null(0), pl.lit(expected, pl.Int64).alias("expected"),
        pl.lit(min_per_year, pl.Int64).alias("minimum"))
    out = out.with_columns((pl.col("expected") - pl.col("visits_ytd")).clip(lower_bound=0)
                           .alias("shortfall"))
    last = pl.when(pl.col("last_visit").is_null()).then(pl.lit("never visited")) \
        .otherwise(pl.lit("last visit ") + pl.col("last_visit").dt.to_string("%Y-%m-%d"))
    out = out.with_columns((pl.col("shortfall") > 0).alias("behind")).with_columns(
        pl.format("key account: {} executive visit(s) this year, {} expected by now "
                  "(minimum {} a year); ", pl.col("visits_ytd"), pl.col("expected"),
                  pl.col("minimum")).add(
            pl.when(pl.col("behind")).then(pl.format("behind by {}; ", pl.col("shortfall")))
            .otherwise(pl.lit("on track; "))).add(last).alias("reason"))
    cols = ["customer_id", "visits_ytd", "expected", "minimum", "shortfall", "behind",
            "last_visit", "reason"]
    return to_output(out.select(cols).sort("customer_id"), output)


def grade_complaints(complaints: Any, *, as_of: dt.date | str,
                     matrix: list[list[str]], response_days: dict[str, int],
                     open_outcomes: tuple[str, ...] | list[str] = ("open", "escalated"),
                     output: Output = "polars"):
    """Open complaints graded by customer impact x handling difficulty, with deadlines.

    ``matrix[impact - 1][difficulty - 1]`` is the grade (impact and difficulty 1
    low, 2 medium, 3 high); each grade has a response time in days. A complaint
    still open past its response time is ``overdue``. A null outcome counts as open.

    Returns
    -------
    DataFrame
        ``customer_id``, ``date``, ``kind``, ``impact``, ``difficulty``, ``grade``,
        ``days_open``, ``respond_by``, ``overdue``, ``reason``.

    Examples
    --------
    >>> import polars as pl, datetime as dt
    >>> c = pl.DataFrame({"customer_id": ["a", "b", "c"], "kind": ["claims", "billing", "app"],
    ...     "date": [dt.date(2025, 12, 20), dt.date(2025, 12, 30), dt.date(2025, 12, 1)],
    ...     "outcome": ["open", "open", "resolved"], "impact": [3, 1, 3], "difficulty": [3, 1, 3]})
    >>> m = [["C", "C", "B"], ["C", "B", "A"], ["B", "A", "A"]]
    >>> out = grade_complaints(c, as_of="2025-12-31", matrix=m,
    ...                        response_days={"A": 2, "B": 5, "C": 10})
    >>> out.select("customer_id", "grade", "days_open", "overdue").rows()
    [('a', 'A', 11, True), ('b', 'C', 1, False)]
    """
    owner = "grade_complaints"
    day = check_date(as_of, "as_of", owner)
    if len(matrix) != 3 or any(len(r) != 3 for r in matrix):
        raise ValueError(f"The 'matrix' parameter of {owner} must be 3 rows (impact low to high) "
                         f"of 3 grades (difficulty low to high). Got {matrix!r} instead.")
    missing = sorted({g for r in matrix for g in r} - set(response_days))
    if missing:
        raise ValueError(f"The 'response_days' parameter of {owner} must give a number of days "
                         f"for every grade of the matrix. Got none for {', '.join(missing)}.")
    c = to_polars(complaints, "complaints")
    _need(c, "complaints", ("customer_id", "date", "kind", "impact", "difficulty"), owner)
    for col in ("impact", "difficulty"):
        bad = c.filter(~pl.col(col).is_in([1, 2, 3]) | pl.col(col).is_null())
        if bad.height:
            raise SchemaError(f"{owner}: complaints.{col} must be 1, 2 or 3; {bad.height} "
                              f"row(s) are not (e.g. {bad[col][0]!r}).")
    outcome = pl.col("outcome") if "outcome" in c.columns else pl.lit(None, pl.String)
    open_ = c.filter((pl.col("date") <= day)
                     & (outcome.is_null() | outcome.is_in(list(open_outcomes))))
    grade = pl.lit(None, pl.String)
    for i in range(3):
        for j in range(3):
            grade = pl.when((pl.col("impact") == i + 1) & (pl.col("difficulty") == j + 1)) \
                .then(pl.lit(matrix[i][j])).otherwise(grade)
    words = {1: "low", 2: "medium", 3: "high"}
    out = open_.with_columns(grade.alias("grade"),
                             (pl.lit(day) - pl.col("date")).dt.total_days().cast(pl.Int64)
                             .alias("days_open"))
    out = out.with_columns(pl.col("grade").replace_strict(response_days, return_dtype=pl.Int64)
                           .alias("_days"))
    out = out.with_columns((pl.col("date") + pl.duration(days=pl.col("_days"))).alias("respond_by"))
    out = out.with_columns((pl.col("respond_by") < pl.lit(day)).alias("overdue"))
    out = out.with_columns(pl.format(
        "{} complaint, {} impact x {} difficulty: grade {}, respond within {} days (by {}); "
        "open {} days", pl.col("kind"),
        pl.col("impact").replace_strict(words, return_dtype=pl.String),
        pl.col("difficulty").replace_strict(words, return_dtype=pl.String),
        pl.col("grade"), pl.col("_days"), pl.col("respond_by").dt.to_string("%Y-%m-%d"),
        pl.col("days_open")).add(pl.when(pl.col("overdue")).then(pl.lit(", overdue"))
                                 .otherwise(pl.lit(""))).alias("reason"))
    cols = ["customer_id", "date", "kind", "impact", "difficulty", "grade", "days_open",
            "respond_by", "overdue", "reason"]
    return to_output(out.select(cols).sort("customer_id", "date", "kind"), output)


def policy_churn(holdings: Any, *, as_of: dt.date | str, window_days: int = 365,
                 churn_reasons: tuple[str, ...] | list[str] = ("lapsed", "not_renewed"),
                 output: Output = "polars"):
    """The insurer's churn: lapse or non-renewal.

    A customer has churned when no policy is open on ``as_of`` and the last
    policy ended for one of ``churn_reasons`` (a lapse: premiums stopped within
    the term; a non-renewal: the term ended and the customer did not renew).
    Policies that ended for another reason (a claim settled in full, a death, a
    sale of the car) are not churn. Lapses and non-renewals in the last
    ``window_days`` are counted for every customer, churned or not.

    Returns
    -------
    DataFrame
        ``customer_id``, ``policies_open``, ``lapsed``, ``not_renewed`` (in the
        window), ``churned``, ``churn_date``, ``churn_reason``, ``reason``; one
        row per customer who has held a policy.

    Examples
    --------
    >>> import polars as pl, datetime as dt
    >>> h = pl.DataFrame({"account_id": ["1", "2", "3", "4"], "customer_id": ["a", "a", "b", "c"],
    ...     "product_id": ["AUTO"] * 4, "opened": [dt.date(2023, 1, 1)] * 4,
    ...     "closed": [dt.date(2025, 3, 1), None, dt.date(2025, 6, 1), dt.date(2025, 2, 1)],
    ...     "close_reason": ["lapsed", None, "not_renewed", "vehicle_sold"]})
    >>> policy_churn(h, as_of="2025-12-31").select("customer_id", "lapsed", "churned",
    ...                                             "churn_reason").rows()
    [('a', 1, False, None), ('b', 0, True, 'not_renewed'), ('c', 0, False, None)]
    """
    owner = "policy_churn"
    day = check_date(as_of, "as_of", owner)
    h = to_polars(holdings, "holdings")
    _need(h, "holdings", ("customer_id", "opened", "closed", "close_reason"), owner)
    h = h.filter(pl.col("opened") <= day).with_columns(
        pl.when(pl.col("closed") <= day).then(pl.col("closed")).alias("closed"),
        pl.when(pl.col("closed") <= day).then(pl.col("close_reason")).alias("close_reason"))
    start = day - dt.timedelta(days=window_days)
    recent = pl.col("closed") > start
    per = h.sort("customer_id", "closed", nulls_last=True).group_by(
        "customer_id", maintain_order=True).agg(
        pl.col("closed").is_null().sum().cast(pl.Int64).alias("policies_open"),
        (recent & (pl.col("close_reason") == "lapsed")).sum().cast(pl.Int64).alias("lapsed"),
        (recent & (pl.col("close_reason") == "not_renewed")).sum().cast(pl.Int64)
        .alias("not_renewed"),
        pl.col("closed").drop_nulls().last().alias("_last_closed"),
        pl.col("close_reason").drop_nulls().last().alias("_last_reason"))
    churned = (pl.col("policies_open") == 0) & pl.col("_last_reason").is_in(list(churn_reasons))
    out = per.with_columns(churned.fill_null(False).alias("churned")).with_columns(
        pl.when(pl.col("churned")).then(pl.col("_last_closed")).alias("churn_date"),
        pl.when(pl.col("churned")).then(pl.col("_last_reason")).alias("churn_reason"))
    out = out.with_columns(
        pl.when(pl.col("churned")).then(pl.format("churned: last policy ended {} ({})",
                                                  pl.col("churn_date").dt.to_string("%Y-%m-%d"),
                                                  pl.col("churn_reason")))
        .when(pl.col("policies_open") == 0).then(pl.format(
            "no open policy; last ended for {} (not counted as churn)", pl.col("_last_reason")))
        .otherwise(pl.format("{} open policies; {} lapsed and {} not renewed in the last {} days",
                             pl.col("policies_open"), pl.col("lapsed"), pl.col("not_renewed"),
                             pl.lit(window_days))).alias("reason"))
    cols = ["customer_id", "policies_open", "lapsed", "not_renewed", "churned", "churn_date",
            "churn_reason", "reason"]
    return to_output(out.select(cols).sort("customer_id"), output)
