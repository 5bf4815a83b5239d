"""Books of business, RM scorecards ranked within peers, and their plots."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import polars as pl

from crmkit._frames import Output, to_output, to_polars
from crmkit._params import check_choice, check_date
from crmkit.exceptions import SchemaError
from crmkit.schema import MANAGER_LEVELS

__all__ = ["plot_books", "plot_call_reasons", "plot_scorecards", "rm_books", "rm_scorecards"]


def _need(df: pl.DataFrame, cols, owner: str, table: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise SchemaError(f"{owner}: table {table!r} has no column {', '.join(map(repr, missing))}; "
                          f"it has {', '.join(df.columns)}.")


def _book(assignment, customers, managers, role, owner):
    a = to_polars(assignment, "assignment")
    _need(a, ["customer_id", "manager_id"], owner, "assignment")
    if "role" in a.columns and role != "all":
        a = a.filter(pl.col("role") == role)
    c = to_polars(customers, "customers")
    _need(c, ["customer_id"], owner, "customers")
    m = to_polars(managers, "managers")
    _need(m, ["manager_id", "branch_id", "level", "capacity"], owner, "managers")
    c = c.drop([k for k in ("manager_id", "role", "level") if k in c.columns])
    if "tier" in a.columns and "tier" in c.columns:
        c = c.drop("tier")
    if "branch_id" in c.columns:
        c = c.rename({"branch_id": "customer_branch_id"})
    a = a.select([k for k in ("customer_id", "manager_id", "tier") if k in a.columns])
    return a.join(c, on="customer_id", how="left"), m


def rm_books(assignment: Any, customers: Any, managers: Any, *, by: str = "manager", role: str = "primary",
             tiers: Sequence[str] = ("Diamond", "Platinum", "Gold"), asset_col: str = "financial_assets",
             value_col: str | None = "clv", risk_col: str | None = "churn_probability",
             output: Output = "polars"):
    """Each RM's (or branch's) book: customers, tier mix, assets, value, risk, workload vs capacity.

    Parameters
    ----------
    assignment : table
        ``assignment_`` of :class:`RMAssigner` (``customer_id``, ``manager_id``, ``role``).
    customers : table
        ``customer_id``, ``tier`` (unless the assignment has it) and optionally the
        asset, value and risk columns.
    managers : table
        The ``managers`` table.
    by : {"manager", "branch"}
        One row per RM (every RM, empty books included) or per RM branch.
    role : {"primary", "backup", "all"}

    Returns
    -------
    DataFrame
        ``manager_id`` (or ``branch_id``), ``n_customers``, ``n_<tier>`` per tier, ``assets``,
        ``value``, ``mean_risk`` (when the columns exist), ``capacity``, ``utilisation``.

    Examples
    --------
    >>> import polars as pl
    >>> asg = pl.DataFrame({"customer_id": ["a", "b"], "manager_id": ["M1", "M1"], "role": ["primary"] * 2})
    >>> cust = pl.DataFrame({"customer_id": ["a", "b"], "tier": ["Gold", "Platinum"],
    ...                      "financial_assets": [2e5, 3e6]})
    >>> mgr = pl.DataFrame({"manager_id": ["M1", "M2"], "branch_id": ["B1", "B1"],
    ...                     "level": ["wealth", "branch"], "capacity": [4, 10]})
    >>> rm_books(asg, cust, mgr).select("manager_id", "n_customers", "n_Gold", "assets", "utilisation").rows()
    [('M1', 2, 1, 3200000.0, 0.5), ('M2', 0, 0, 0.0, 0.0)]
    """
    check_choice(by, ("manager", "branch"), "by", "rm_books")
    check_choice(role, ("primary", "backup", "all"), "role", "rm_books")
    a, m = _book(assignment, customers, managers, role, "rm_books")
    _need(a, ["tier"], "rm_books", "customers")
    aggs = [pl.len().alias("n_customers")]
    aggs += [(pl.col("tier") == t).sum().alias(f"n_{t}") for t in tiers]
    if asset_col in a.columns:
        aggs.append(pl.col(asset_col).cast(pl.Float64).sum().alias("assets"))
    if value_col and value_col in a.columns:
        aggs.append(pl.col(value_col).cast(pl.Float64).sum().alias("value"))
    if risk_col and risk_col in a.columns:
        aggs.append(pl.col(risk_col).cast(pl.Float64).mean().alias("mean_risk"))
    per = a.group_by("manager_id").agg(aggs)
    mcols = ["manager_id", "branch_id", "level", "capacity"] + (["active"] if "active" in m.columns else [])
    out = m.select(mcols).join(per, on="manager_id", how="left")
    fill = [c for c in per.columns if c not in ("manager_id", "mean_risk")]
    out = out.with_columns([pl.col(c).fill_null(0) for c in fill])
    if by == "branch":
        sums = [pl.col(c).sum() for c in ["capacity", *fill]]
        if "mean_risk" in out.columns:
            sums.append(((pl.col("mean_risk") * pl.col("n_customers")).sum()
                         / pl.col("n_customers").sum()).alias("mean_risk"))
        out = out.group_by("branch_id").agg(pl.len().alias("n_managers"), *sums)
        key = "branch_id"
    else:
        key = "manager_id"
    out = out.with_columns(pl.when(pl.col("capacity") > 0)
                           .then(pl.col("n_customers") / pl.col("capacity")).alias("utilisation"))
    return to_output(out.sort(key), output)


def rm_scorecards(assignment: Any, customers: Any, managers: Any, *, complaints: Any = None,
                  as_of: dt.date | str | None = None, complaint_days: int = 365,
                  core_tiers: Sequence[str] = ("Diamond", "Platinum"),
                  completeness_cols: Sequence[str] = ("birth_year", "risk_level", "contact_window",
                                                      "phone", "email", "occupation"),
                  asset_col: str = "financial_assets", prior_col: str = "financial_assets_prior_90d",
                  coverage_col: str = "n_categories_open", n_categories: int = 8,
                  peers: str = "level", output: Output = "polars"):
    """RM scorecards from their books, ranked within peers.

    Metrics per RM (primary book):

    - ``asset_growth``: book assets now over the same customers' assets 90 days
      earlier, minus 1 (``asset_col`` / ``prior_col``);
    - ``product_coverage``: mean share of the ``n_categories`` product categories a
      customer holds (``coverage_col``);
    - ``complaint_share``: share of the book with a complaint in the last
      ``complaint_days`` (from ``complaints``, else a ``complaints_365d`` column);
    - ``data_completeness``: mean share of filled ``completeness_cols`` (those the
      table has) among the core customers (``core_tiers``).

    Each metric is ranked within the RM's peers (same ``level`` by default) as a
    percentile (1 = best; fewer complaints is better); ``score`` is the mean of the
    available percentiles and ``rank`` the RM's place among peers (1 = best).

    Returns
    -------
    DataFrame
        ``manager_id``, ``level``, ``branch_id``, ``n_customers``, the four metrics,
        their ``pct_*`` percentiles, ``score``, ``rank``, ``n_peers``.

    Examples
    --------
    >>> import polars as pl
    >>> asg = pl.DataFrame({"customer_id": ["a", "b", "c"], "manager_id": ["M1", "M2", "M2"]})
    >>> cust = pl.DataFrame({"customer_id": ["a", "b", "c"], "tier": ["Gold"] * 3,
    ...                      "financial_assets": [110.0, 100.0, 80.0],
    ...                      "financial_assets_prior_90d": [100.0, 100.0, 100.0],
    ...                      "n_categories_open": [4, 2, 2], "complaints_365d": [0, 1, 0]})
    >>> mgr = pl.DataFrame({"manager_id": ["M1", "M2"], "branch_id": ["B1", "B1"],
    ...                     "level": ["branch"] * 2, "capacity": [10, 10]})
    >>> rm_scorecards(asg, cust, mgr).select("manager_id", "asset_growth", "complaint_share", "rank").rows()
    [('M1', 0.1..., 0.0, 1), ('M2', -0.1, 0.5, 2)]
    """
    check_choice(peers, ("level", "branch", "all"), "peers", "rm_scorecards")
    a, m = _book(assignment, customers, managers, "primary", "rm_scorecards")
    aggs = [pl.len().alias("n_customers")]
    metrics: list[tuple[str, bool]] = []
    if asset_col in a.columns and prior_col in a.columns:
        aggs.append((pl.col(asset_col).cast(pl.Float64).sum()
                     / pl.col(prior_col).cast(pl.Float64).sum() - 1).alias("asset_growth"))
        metrics.append(("asset_growth", True))
    if coverage_col in a.columns:
        aggs.append((pl.col(coverage_col).cast(pl.Float64).fill_null(0).mean() / n_categories)
                    .alias("product_coverage"))
        metrics.append(("product_coverage", True))
    if complaints is not None:
        cp = to_polars(complaints, "complaints")
        _need(cp, ["customer_id", "date"], "rm_scorecards", "complaints")
        if as_of is None:
            raise ValueError("The 'as_of' parameter of rm_scorecards must be a date when complaints are "
                             "given. Got None instead.")
        day = check_date(as_of, "as_of", "rm_scorecards")
        d = pl.col("date").cast(pl.Date)
        who = (cp.filter((d <= day) & (d > day - dt.timedelta(days=complaint_days)))
               .select("customer_id").unique().with_columns(pl.lit(True).alias("_complained")))
        a = a.join(who, on="customer_id", how="left").with_columns(pl.col("_complained").fill_null(False))
        aggs.append(pl.col("_complained").mean().alias("complaint_share"))
        metrics.append(("complaint_share", False))
    elif "complaints_365d" in a.columns:
        aggs.append((pl.col("complaints_365d").fill_null(0) > 0).mean().alias("complaint_share"))
        metrics.append(("complaint_share", False))
    present = [c for c in completeness_cols if c in a.columns]
    if present and "tier" in a.columns:
        filled = pl.mean_horizontal([pl.col(c).is_not_null().cast(pl.Float64) for c in present])
        aggs.append(filled.filter(pl.col("tier").is_in(list(core_tiers))).mean().alias("data_completeness"))
        metrics.append(("data_completeness", True))
    per = a.group_by("manager_id").agg(aggs)
    out = m.select("manager_id", "level", "branch_id").join(per, on="manager_id", how="inner")
    group = {"level": ["level"], "branch": ["branch_id"], "all": []}[peers]
    pct = []
    for name, higher in metrics:
        x = pl.col(name) if higher else -pl.col(name)
        r = x.rank("average")
        n = x.count()
        if group:
            r, n = r.over(group), n.over(group)
        pct.append(pl.when(n > 1).then((r - 1) / (n - 1)).otherwise(pl.when(x.is_not_null()).then(1.0))
                   .alias(f"pct_{name}"))
    out = out.with_columns(pct)
    score = pl.mean_horizontal([pl.col(f"pct_{n}") for n, _ in metrics]) if metrics else pl.lit(None, pl.Float64)
    out = out.with_columns(score.alias("score"))
    rank = pl.col("score").rank("min", descending=True)
    cnt = pl.len()
    if group:
        rank, cnt = rank.over(group), cnt.over(group)
    out = out.with_columns(rank.cast(pl.Int64).alias("rank"), cnt.cast(pl.Int64).alias("n_peers"))
    order = {lvl: i for i, lvl in enumerate(MANAGER_LEVELS)}
    out = out.sort(pl.col("level").replace_strict(order, default=9), "rank", "manager_id")
    return to_output(out, output)


# ----------------------------------------------------------------------------------------
# plots
# ----------------------------------------------------------------------------------------

_TIER_COLORS = {"Diamond": "#4c72b0", "Platinum": "#8c8c8c", "Gold": "#dd8452"}


def plot_books(books: Any, *, tiers: Sequence[str] = ("Diamond", "Platinum", "Gold"), ax=None):
    """Stacked bars of each RM's tier mix with its capacity marked.

    Parameters
    ----------
    books : table
        Output of :func:`rm_books` (``by="manager"``).
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes

    Examples
    --------
    >>> import polars as pl
    >>> b = pl.DataFrame({"manager_id": ["M1"], "level": ["branch"], "capacity": [10],
    ...                   "n_Diamond": [0], "n_Platinum": [0], "n_Gold": [7]})
    >>> plot_books(b).get_ylabel()
    'customers in book'
    """
    import matplotlib.pyplot as plt
    df = to_polars(books, "books")
    _need(df, ["manager_id", "capacity"], "plot_books", "books")
    if "level" in df.columns:
        order = {lvl: i for i, lvl in enumerate(MANAGER_LEVELS)}
        df = df.sort(pl.col("level").replace_strict(order, default=9), "manager_id")
    if ax is None:
        _, ax = plt.subplots(figsize=(max(6, 0.18 * df.height + 2), 4))
    x = range(df.height)
    bottom = [0.0] * df.height
    for t in tiers:
        col = f"n_{t}"
        if col in df.columns:
            v = df[col].cast(pl.Float64).to_list()
            ax.bar(x, v, bottom=bottom, label=t, color=_TIER_COLORS.get(t))
            bottom = [b + y for b, y in zip(bottom, v)]
    ax.scatter(list(x), df["capacity"].to_list(), marker="_", s=80, color="black", label="capacity")
    if "active" in df.columns:
        for k, act in enumerate(df["active"].to_list()):
            if act is False:
                ax.annotate("x", (k, 0), ha="center", va="bottom", color="red")
    labels = df["manager_id"].to_list()
    ax.set_xticks(list(x))
    ax.set_xticklabels(labels, rotation=90, fontsize=6)
    ax.set_ylabel("customers in book")
    ax.set_title("Books of business by RM (sorted by level)")
    ax.legend(fontsize=7)
    return ax


def plot_scorecards(scorecards: Any, *, metric: str = "score", ax=None):
    """RM scorecard metric by level (one dot per RM, peers side by side).

    Examples
    --------
    >>> import polars as pl
    >>> s = pl.DataFrame({"manager_id": ["M1", "M2"], "level": ["branch"] * 2, "score": [0.2, 0.8]})
    >>> plot_scorecards(s).get_ylabel()
    'score'
    """
    import matplotlib.pyplot as plt
    df = to_polars(scorecards, "scorecards")
    _need(df, ["manager_id", "level", metric], "plot_scorecards", "scorecards")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    levels = [lvl for lvl in MANAGER_LEVELS if lvl in set(df["level"].to_list())]
    for k, lvl in enumerate(levels):
        v = df.filter(pl.col("level") == lvl)[metric].cast(pl.Float64).to_list()
        jitter = [k + 0.3 * ((i % 7) / 6 - 0.5) for i in range(len(v))]
        ax.scatter(jitter, v, alpha=0.8)
    ax.set_xticks(range(len(levels)))
    ax.set_xticklabels(levels)
    ax.set_ylabel(metric)
    ax.set_title(f"RM scorecards: {metric} within peers")
    return ax


def plot_call_reasons(calls: Any, *, ax=None):
    """Counts of call-list triggers by tier (a customer with two triggers counts twice).

    Examples
    --------
    >>> import polars as pl
    >>> c = pl.DataFrame({"tier": ["Gold"], "triggers": [["cadence_due", "high_risk"]]})
    >>> plot_call_reasons(c).get_xlabel()
    'calls'
    """
    import matplotlib.pyplot as plt
    df = to_polars(calls, "calls")
    _need(df, ["tier", "triggers"], "plot_call_reasons", "calls")
    counts = (df.explode("triggers").group_by("triggers", "tier").len()
              .pivot(on="tier", index="triggers", values="len").fill_null(0).sort("triggers"))
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    left = [0.0] * counts.height
    for t in [c for c in counts.columns if c != "triggers"]:
        v = counts[t].cast(pl.Float64).to_list()
        ax.barh(counts["triggers"].to_list(), v, left=left, label=t, color=_TIER_COLORS.get(t))
        left = [a + b for a, b in zip(left, v)]
    ax.set_xlabel("calls")
    ax.set_title("Why customers are on today's call lists")
    ax.legend(fontsize=7)
    return ax
