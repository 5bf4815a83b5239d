"""The securities broker's rules: value by several yardsticks, grades, entitlements by
grade and club, basic service for non-core customers, a persona beside the grade, the
upgrade list, and the completeness of core customers' data.

Accounts (brokerage, funds, money market, bonds) are ``holdings`` with month-end
``balances``; the loyalty-points balance is an account of a ``loyalty`` product (so
that its history is known as of any date); trades are ``transactions`` with a
``commission`` column; club membership is a ``club`` column of ``customers``.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from crmkit._frames import Output, to_output, to_polars
from crmkit._params import check_date
from crmkit.sectors._insurer import _need

__all__ = ["MEASURES", "broker_measures", "data_completeness", "entitlements", "grade_edges",
           "grade_values", "persona", "upgrade_list"]

MEASURES = ("commission", "assets", "turnover_weighted_assets", "loyalty_points")
"""The value yardsticks :func:`broker_measures` computes."""


def broker_measures(customers: Any, holdings: Any, balances: Any, transactions: Any,
                    products: Any, *, as_of: dt.date | str, window_days: int = 365,
                    commission_col: str = "commission", points_category: str = "loyalty",
                    stale_days: int = 62, output: Output = "polars"):
    """Each customer's value by four yardsticks, from the rows dated on or before ``as_of``.

    - ``commission``: commission paid on trades in the last ``window_days``;
    - ``assets``: the latest balance (no older than ``stale_days``) of every account
      open on ``as_of``, loyalty accounts aside;
    - ``turnover_weighted_assets``: assets weighted by trading volume,
      ``assets * log1p(turnover)`` with ``turnover = trading_volume / assets`` (the
      logarithm keeps one hyperactive account from dwarfing a book);
    - ``loyalty_points``: the latest balance of the ``points_category`` accounts.

    Also ``trading_volume`` and ``trades`` over the window, and ``turnover``.

    Examples
    --------
    >>> import polars as pl, datetime as dt
    >>> cust = pl.DataFrame({"customer_id": ["a", "b"]})
    >>> prods = pl.DataFrame({"product_id": ["BRK", "PTS"], "category": ["brokerage", "loyalty"]})
    >>> hold = pl.DataFrame({"account_id": ["1", "2", "3"], "customer_id": ["a", "a", "b"],
    ...     "product_id": ["BRK", "PTS", "BRK"], "opened": [dt.date(2024, 1, 1)] * 3,
    ...     "closed": [None, None, None]}, schema_overrides={"closed": pl.Date})
    >>> bal = pl.DataFrame({"account_id": ["1", "2", "3"], "date": [dt.date(2025, 12, 31)] * 3,
    ...     "balance": [100000.0, 700.0, 50000.0]})
    >>> tx = pl.DataFrame({"customer_id": ["a", "a"], "amount": [30000.0, 70000.0],
    ...     "timestamp": [dt.datetime(2025, 6, 1), dt.datetime(2025, 7, 1)],
    ...     "commission": [9.0, 21.0]})
    >>> broker_measures(cust, hold, bal, tx, prods, as_of="2025-12-31").select(
    ...     "customer_id", *MEASURES).rows()
    [('a', 30.0, 100000.0, 69314.72, 700.0), ('b', 0.0, 50000.0, 0.0, 0.0)]
    """
    owner = "broker_measures"
    day = check_date(as_of, "as_of", owner)
    people = to_polars(customers, "customers").select("customer_id")
    hold = to_polars(holdings, "holdings")
    _need(hold, "holdings", ("account_id", "customer_id", "product_id", "opened"), owner)
    bal = to_polars(balances, "balances")
    _need(bal, "balances", ("account_id", "date", "balance"), owner)
    tx = to_polars(transactions, "transactions")
    _need(tx, "transactions", ("customer_id", "timestamp", "amount", commission_col), owner)
    prods = to_polars(products, "products")
    _need(prods, "products", ("product_id", "category"), owner)
    closed = pl.col("closed") if "closed" in hold.columns else pl.lit(None, pl.Date)
    live = hold.filter((pl.col("opened") <= day) & (closed.is_null() | (closed > day))).join(
        prods.select("product_id", "category"), on="product_id", how="left")
    last = bal.filter((pl.col("date") <= day)
                      & (pl.col("date") > day - dt.timedelta(days=stale_days))).sort(
        "account_id", "date").group_by("account_id").agg(pl.col("balance").last())
    acc = live.join(last, on="account_id", how="inner")
    is_pts = pl.col("category") == points_category
    per = acc.group_by("customer_id").agg(
        pl.col("balance").filter(~is_pts).sum().alias("assets"),
        pl.col("balance").filter(is_pts).sum().alias("loyalty_points"))
    when = pl.col("timestamp").cast(pl.Date)
    trades = tx.filter((when <= day) & (when > day - dt.timedelta(days=window_days))).group_by(
        "customer_id").agg(pl.col(commission_col).sum().alias("commission"),
                           pl.col("amount").abs().sum().alias("trading_volume"),
                           pl.len().cast(pl.Int64).alias("trades"))
    out = people.join(per, on="customer_id", how="left").join(trades, on="customer_id",
                                                               how="left")
    out = out.with_columns(pl.col("assets", "loyalty_points", "commission", "trading_volume")
                           .fill_null(0.0).cast(pl.Float64), pl.col("trades").fill_null(0))
    turnover = pl.when(pl.col("assets") > 0).then(pl.col("trading_volume") / pl.col("assets"))
    out = out.with_columns(turnover.alias("turnover")).with_columns(
        (pl.col("assets") * pl.col("turnover").fill_null(0.0).log1p()).round(2)
        .alias("turnover_weighted_assets"),
        pl.col("commission").round(2), pl.col("turnover").round(4))
    cols = ["customer_id", *MEASURES, "trading_volume", "trades", "turnover"]
    return to_output(out.select(cols).sort("customer_id"), output)


def grade_edges(values: Any, *, shares: Mapping[str, float]) -> dict[str, float | None]:
    """Each grade's lowest value from the top shares of customers (``{"gold": 0.1, ...}``:
    the top 10% are gold or better). The grade with share 1 starts at 0. A grade whose
    edge would be 0 or less (many customers without value) starts at the smallest
    positive value, so a customer with nothing is never graded up; with no positive
    value at all, the grades above the lowest have no edge (None) and nobody is in them.

    Examples
    --------
    >>> grade_edges([0.0, 0.0, 1.0, 2.0, 3.0, 10.0, 20.0, 30.0, 40.0, 50.0],
    ...             shares={"top": 0.2, "mid": 0.5, "rest": 1.0})
    {'top': 40.0, 'mid': 10.0, 'rest': 0.0}
    """
    v = pl.Series(values, dtype=pl.Float64).drop_nulls()
    ordered = sorted(shares.items(), key=lambda kv: kv[1])
    if not ordered or ordered[-1][1] != 1.0 or ordered[0][1] <= 0:
        raise ValueError(f"The 'shares' parameter of grade_edges must map grades to top shares "
                         f"in (0, 1], the lowest grade to 1. Got {dict(shares)!r} instead.")
    positive = v.filter(v > 0)
    edges: dict[str, float | None] = {}
    for name, share in ordered:
        if share >= 1.0:
            edges[name] = 0.0
        elif not positive.len():
            edges[name] = None  # nobody has any value: no customer reaches this grade
        else:
            q = float(v.quantile(1.0 - share, interpolation="higher"))
            edges[name] = max(q, float(positive.min()))
    return edges


def grade_values(frame: Any, *, col: str, edges: Mapping[str, float | None],
                 output: Output = "polars"):
    """``grade``, ``next_grade``, ``next_grade_value`` and ``to_next_grade`` from ``col``
    and each grade's lowest value (see :func:`grade_edges`; a grade without an edge is
    skipped).

    Examples
    --------
    >>> import polars as pl
    >>> f = pl.DataFrame({"customer_id": ["a", "b"], "assets": [150.0, 40.0]})
    >>> grade_values(f, col="assets", edges={"gold": 100.0, "basic": 0.0}).select(
    ...     "grade", "next_grade", "to_next_grade").rows()
    [('gold', None, None), ('basic', 'gold', 60.0)]
    """
    f = to_polars(frame, "frame")
    items = sorted(((k, v) for k, v in edges.items() if v is not None), key=lambda kv: -kv[1])
    grade = pl.lit(items[-1][0])
    nxt = pl.lit(items[-2][0] if len(items) > 1 else None, pl.String)
    nxt_v = pl.lit(items[-2][1] if len(items) > 1 else None, pl.Float64)
    for i in range(len(items) - 2, -1, -1):
        name, low = items[i]
        up = items[i - 1] if i > 0 else (None, None)
        hit = pl.col(col) >= low
        grade = pl.when(hit).then(pl.lit(name)).otherwise(grade)
        nxt = pl.when(hit).then(pl.lit(up[0], pl.String)).otherwise(nxt)
        nxt_v = pl.when(hit).then(pl.lit(up[1], pl.Float64)).otherwise(nxt_v)
    out = f.with_columns(grade.alias("grade"), nxt.alias("next_grade"),
                         nxt_v.cast(pl.Float64).alias("next_grade_value"))
    # not rounded: a customer a fraction below the edge is still below it
    out = out.with_columns((pl.col("next_grade_value") - pl.col(col)).alias("to_next_grade"))
    return to_output(out, output)


def persona(measures: Any, customers: Any, holdings: Any = None, balances: Any = None,
            products: Any = None, *, as_of: dt.date | str, active_turnover: float = 4.0,
            regular_trades: int = 24, output: Output = "polars"):
    """A persona beside the grade: trading style and risk appetite, each with its basis.

    Trading style (over the measures' window): no trade ``inactive``; a turnover of
    ``active_turnover`` or more ``active_trader``; ``regular_trades`` trades or more
    ``regular``; otherwise ``buy_and_hold``. Risk appetite: from the customer's
    assessed ``risk_level`` (1-2 conservative, 3 balanced, 4-5 aggressive); without
    one, from the share of assets in products rated 4 or 5 (0.6 or more aggressive,
    0.3 or more balanced, otherwise conservative).

    Examples
    --------
    >>> import polars as pl
    >>> m = pl.DataFrame({"customer_id": ["a", "b", "c"], "trades": [200, 30, 0],
    ...                   "turnover": [6.0, 1.0, 0.0]})
    >>> c = pl.DataFrame({"customer_id": ["a", "b", "c"], "risk_level": [5, 3, 1]})
    >>> persona(m, c, as_of="2025-12-31").select("trading_style", "risk_appetite").rows()
    [('active_trader', 'aggressive'), ('regular', 'balanced'), ('inactive', 'conservative')]
    """
    owner = "persona"
    day = check_date(as_of, "as_of", owner)
    m = to_polars(measures, "measures")
    _need(m, "measures", ("customer_id", "trades", "turnover"), owner)
    people = to_polars(customers, "customers")
    risk = people.select("customer_id", pl.col("risk_level").cast(pl.Int64)
                         if "risk_level" in people.columns else pl.lit(None, pl.Int64)
                         .alias("risk_level"))
    out = m.select("customer_id", "trades", "turnover").join(risk, on="customer_id", how="left")
    if holdings is not None and balances is not None and products is not None:
        hold = to_polars(holdings, "holdings")
        closed = pl.col("closed") if "closed" in hold.columns else pl.lit(None, pl.Date)
        live = hold.filter((pl.col("opened") <= day) & (closed.is_null() | (closed > day)))
        bal = to_polars(balances, "balances").filter(pl.col("date") <= day).sort(
            "account_id", "date").group_by("account_id").agg(pl.col("balance").last())
        prods = to_polars(products, "products").select("product_id", "risk_rating", "category")
        acc = live.join(bal, on="account_id").join(prods, on="product_id", how="left").filter(
            pl.col("category") != "loyalty")
        mix = acc.group_by("customer_id").agg(
            (pl.col("balance").filter(pl.col("risk_rating") >= 4).sum()
             / pl.col("balance").sum()).alias("high_risk_share"))
        out = out.join(mix, on="customer_id", how="left")
    else:
        out = out.with_columns(pl.lit(None, pl.Float64).alias("high_risk_share"))
    style = pl.when(pl.col("trades") == 0).then(pl.lit("inactive")) \
        .when(pl.col("turnover").fill_null(0.0) >= active_turnover).then(pl.lit("active_trader")) \
        .when(pl.col("trades") >= regular_trades).then(pl.lit("regular")) \
        .otherwise(pl.lit("buy_and_hold"))
    from_level = pl.when(pl.col("risk_level") <= 2).then(pl.lit("conservative")) \
        .when(pl.col("risk_level") == 3).then(pl.lit("balanced")) \
        .when(pl.col("risk_level") >= 4).then(pl.lit("aggressive"))
    from_mix = pl.when(pl.col("high_risk_share") >= 0.6).then(pl.lit("aggressive")) \
        .when(pl.col("high_risk_share") >= 0.3).then(pl.lit("balanced")) \
        .when(pl.col("high_risk_share").is_not_null()).then(pl.lit("conservative"))
    out = out.with_columns(
        style.alias("trading_style"),
        pl.coalesce(from_level, from_mix).alias("risk_appetite"),
        pl.when(pl.col("risk_level").is_not_null()).then(
            pl.format("risk level {}", pl.col("risk_level")))
        .when(pl.col("high_risk_share").is_not_null()).then(pl.format(
            "no risk assessment; {}% of assets in products rated 4-5",
            (pl.col("high_risk_share") * 100).round(0).cast(pl.Int64)))
        .otherwise(pl.lit("no risk assessment, no holdings")).alias("_risk_basis"))
    out = out.with_columns(pl.format("{} ({} trades, turnover {}), {} ({})",
                                     pl.col("trading_style"), pl.col("trades"),
                                     pl.col("turnover").fill_null(0.0).round(1),
                                     pl.col("risk_appetite").fill_null("risk appetite unknown"),
                                     pl.col("_risk_basis")).alias("persona"))
    return to_output(out.select("customer_id", "trading_style", "risk_appetite", "persona")
                     .sort("customer_id"), output)


def entitlements(graded: Any, *, by_grade: Mapping[str, Sequence[str]],
                 by_club: Mapping[str, Sequence[str]], core_grades: Sequence[str],
                 basic: Sequence[str], output: Output = "polars"):
    """Service entitlements by value grade and club membership; basic service otherwise.

    A customer is **core** when the grade is one of ``core_grades`` or they belong to a
    club (``club`` not null). Core customers get the entitlements of their grade and of
    their club (each once, in the order given); the others get ``basic`` only.

    Examples
    --------
    >>> import polars as pl
    >>> g = pl.DataFrame({"customer_id": ["a", "b", "c"], "grade": ["gold", "standard", "standard"],
    ...                   "club": [None, "star_club", None]})
    >>> out = entitlements(g, by_grade={"gold": ["adviser", "research"]},
    ...                    by_club={"star_club": ["events", "research"]}, core_grades=["gold"],
    ...                    basic=["app support"])
    >>> out.select("service_level", "entitlements").rows()
    [('core', 'adviser; research'), ('core', 'events; research'), ('basic', 'app support')]
    """
    owner = "entitlements"
    g = to_polars(graded, "graded")
    _need(g, "graded", ("customer_id", "grade"), owner)
    if "club" not in g.columns:
        g = g.with_columns(pl.lit(None, pl.String).alias("club"))
    core = pl.col("grade").is_in(list(core_grades)) | pl.col("club").is_not_null()
    grade_list = pl.col("grade").replace_strict({k: list(v) for k, v in by_grade.items()},
                                                default=[], return_dtype=pl.List(pl.String))
    club_list = pl.col("club").replace_strict({k: list(v) for k, v in by_club.items()},
                                              default=[], return_dtype=pl.List(pl.String))
    unknown = sorted(set(g["club"].drop_nulls().unique()) - set(by_club))
    if unknown:
        raise ValueError(f"The 'by_club' parameter of {owner} must give the entitlements of "
                         f"every club. Got none for {', '.join(unknown)}.")
    out = g.with_columns(core.alias("core")).with_columns(
        pl.when(pl.col("core")).then(pl.lit("core")).otherwise(pl.lit("basic"))
        .alias("service_level"),
        pl.when(pl.col("core")).then(pl.concat_list(grade_list, club_list.fill_null([]))
                                     .list.unique(maintain_order=True))
        .otherwise(pl.lit(list(basic), pl.List(pl.String))).list.join("; ").alias("entitlements"))
    return to_output(out, output)


def data_completeness(customers: Any, *, fields: Sequence[str], output: Output = "polars"):
    """The share of the core data fields filled in for each customer.

    ``fields`` are column names or shell patterns (``"profile_*"``); a pattern that
    matches no column is an error. An empty string counts as missing.

    Returns ``customer_id``, ``fields``, ``filled``, ``completeness`` and ``missing``
    (the missing fields, comma separated).

    Examples
    --------
    >>> import polars as pl
    >>> c = pl.DataFrame({"customer_id": ["a", "b"], "email": ["x@y", None], "job": ["", "clerk"]})
    >>> data_completeness(c, fields=["email", "job"]).select(
    ...     "customer_id", "completeness", "missing").rows()
    [('a', 0.5, 'job'), ('b', 0.5, 'email')]
    """
    owner = "data_completeness"
    people = to_polars(customers, "customers")
    cols: list[str] = []
    for pat in fields:
        hits = [c for c in people.columns if fnmatch.fnmatchcase(c, pat) and c != "customer_id"]
        if not hits:
            raise ValueError(f"The 'fields' parameter of {owner} names {pat!r}, which matches no "
                             f"column of the customers table.")
        cols += [h for h in hits if h not in cols]
    def filled(c: str) -> pl.Expr:
        e = pl.col(c).is_not_null()
        if people.schema[c] == pl.String:
            e = e & (pl.col(c).str.strip_chars() != "")
        return e
    out = people.select(
        "customer_id", pl.lit(len(cols), pl.Int64).alias("fields"),
        pl.sum_horizontal(*[filled(c).cast(pl.Int64) for c in cols]).alias("filled"),
        pl.concat_list([pl.when(~filled(c)).then(pl.lit(c)) for c in cols]).list.drop_nulls()
        .list.join(", ").alias("missing"))
    out = out.with_columns((pl.col("filled") / pl.col("fields")).round(4).alias("completeness"),
                           pl.when(pl.col("missing") == "").then(None)
                           .otherwise(pl.col("missing")).alias("missing"))
    return to_output(out.select("customer_id", "fields", "filled", "completeness", "missing")
                     .sort("customer_id"), output)


def upgrade_list(frame: Any, *, asset_edge: float, commission_edge: float,
                 near_share: float = 0.1, channel: str = "phone", output: Output = "polars"):
    """The upgrade list: asset-rich customers who contribute little, and those close to
    the next grade.

    - **asset-rich, low contribution**: ``assets >= asset_edge`` and ``commission <=
      commission_edge`` (the retained asset-rich customers who trade little);
    - **near the next grade**: ``to_next_grade`` is at most ``near_share`` of the next
      grade's lowest value.

    ``frame`` holds ``customer_id``, ``assets``, ``commission``, ``grade``,
    ``next_grade``, ``next_grade_value``, ``to_next_grade`` and the measure named by
    ``measure`` (for the reason). Returns one row per customer listed, with
    ``upgrade_reason`` (``asset_rich_low_commission``, ``near_next_grade`` or both),
    ``channel`` and ``reason``.

    Examples
    --------
    >>> import polars as pl
    >>> f = pl.DataFrame({"customer_id": ["a", "b", "c"], "assets": [900000.0, 5000.0, 800000.0],
    ...     "commission": [10.0, 20.0, 4000.0], "grade": ["silver", "standard", "gold"],
    ...     "next_grade": ["gold", "silver", None], "next_grade_value": [1000.0, 21.0, None],
    ...     "to_next_grade": [990.0, 1.0, None]})
    >>> upgrade_list(f, asset_edge=500000, commission_edge=100).select(
    ...     "customer_id", "upgrade_reason").rows()
    [('a', 'asset_rich_low_commission'), ('b', 'near_next_grade')]
    """
    f = to_polars(frame, "frame")
    _need(f, "frame", ("customer_id", "assets", "commission", "grade", "next_grade",
                       "next_grade_value", "to_next_grade"), "upgrade_list")
    rich = (pl.col("assets") >= asset_edge) & (pl.col("commission") <= commission_edge)
    near = (pl.col("to_next_grade") <= near_share * pl.col("next_grade_value")).fill_null(False)
    out = f.with_columns(rich.alias("_rich"), near.alias("_near")).filter(
        pl.col("_rich") | pl.col("_near"))
    money = lambda c: pl.col(c).round(0).cast(pl.Int64).cast(pl.String)  # noqa: E731
    out = out.with_columns(
        pl.when(pl.col("_rich") & pl.col("_near")).then(
            pl.lit("asset_rich_low_commission+near_next_grade"))
        .when(pl.col("_rich")).then(pl.lit("asset_rich_low_commission"))
        .otherwise(pl.lit("near_next_grade")).alias("upgrade_reason"),
        pl.lit(channel).alias("channel"),
        pl.concat_str([
            pl.when(pl.col("_rich")).then(pl.format(
                "assets {} (top tier) but commission {} in the window: activate the assets",
                money("assets"), money("commission"))),
            pl.when(pl.col("_near")).then(pl.format(
                "grade {}: {} more reaches grade {}", pl.col("grade"),
                pl.col("to_next_grade").round(2), pl.col("next_grade")))],
            separator="; ", ignore_nulls=True).alias("reason"))
    cols = ["customer_id", "grade", "next_grade", "to_next_grade", "assets", "commission",
            "upgrade_reason", "channel", "reason"]
    return to_output(out.select(cols).sort("customer_id"), output)
