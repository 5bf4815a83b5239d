"""Stage-change events, transition matrices, flows over runs and onboarding cohorts."""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl

from crmkit._frames import Output, to_polars, to_output
from crmkit._params import check_choice, check_date
from crmkit.exceptions import SchemaError
from crmkit.lifecycle._config import STANDARD_STAGES

__all__ = ["cohort_stages", "stage_changes", "stage_flows", "transition_matrix",
           "transition_matrix_from_counts"]

NEW = "(new)"
"""``from_stage`` of customers absent from the previous run."""
GONE = "(gone)"
"""``to_stage`` of customers absent from the current run."""


def _stages(frame: Any, name: str, owner: str) -> pl.DataFrame:
    df = to_polars(frame, name)
    need = {"customer_id", "stage"}
    if not need <= set(df.columns):
        raise SchemaError(f"{owner}: {name!r} needs columns customer_id and stage "
                          f"(as returned by assign_stages); it has {', '.join(df.columns)}.")
    return df.with_columns(pl.col("customer_id").cast(pl.String), pl.col("stage").cast(pl.String))


def stage_changes(previous: Any, current: Any, *, as_of: dt.date | str | None = None,
                  include_new: bool = True, output: Output = "polars"):
    """Stage-change events between two runs.

    Parameters
    ----------
    previous, current : DataFrame
        Outputs of :func:`assign_stages` (``customer_id``, ``stage``, optionally
        ``stage_rule`` and ``as_of``).
    as_of : date, optional
        Date of the events; defaults to ``current``'s ``as_of`` column.
    include_new : bool
        Also report customers absent from ``previous`` (``from_stage`` null).

    Returns
    -------
    DataFrame
        ``customer_id``, ``from_stage``, ``to_stage``, ``date``, ``rule`` (the rule
        that fired in the current run), sorted by customer.

    Examples
    --------
    >>> import polars as pl
    >>> prev = pl.DataFrame({"customer_id": ["a", "b"], "stage": ["growth", "mature"]})
    >>> cur = pl.DataFrame({"customer_id": ["a", "b", "c"], "stage": ["decline", "mature", "prospect"],
    ...                     "stage_rule": ["decline", "mature", "prospect"]})
    >>> stage_changes(prev, cur, as_of="2025-02-28").select("customer_id", "from_stage", "to_stage")
    shape: (2, 3)
    ┌─────────────┬────────────┬──────────┐
    │ customer_id ┆ from_stage ┆ to_stage │
    │ ---         ┆ ---        ┆ ---      │
    │ str         ┆ str        ┆ str      │
    ╞═════════════╪════════════╪══════════╡
    │ a           ┆ growth     ┆ decline  │
    │ c           ┆ null       ┆ prospect │
    └─────────────┴────────────┴──────────┘
    """
    prev = _stages(previous, "previous", "stage_changes")
    cur = _stages(current, "current", "stage_changes")
    if as_of is None:
        if "as_of" not in cur.columns:
            raise ValueError("The 'as_of' parameter of stage_changes must be given when "
                             "'current' has no as_of column. Got None instead.")
        date = pl.col("as_of").cast(pl.Date)
    else:
        date = pl.lit(check_date(as_of, "as_of", "stage_changes"), dtype=pl.Date)
    rule = pl.col("stage_rule") if "stage_rule" in cur.columns else pl.lit(None, pl.String)
    joined = cur.join(prev.select("customer_id", pl.col("stage").alias("from_stage")),
                      on="customer_id", how="left")
    keep = pl.col("from_stage").is_null() if include_new else pl.lit(False)
    out = (
        joined.filter((pl.col("from_stage") != pl.col("stage")) | keep)
        .select("customer_id", "from_stage", pl.col("stage").alias("to_stage"),
                date.alias("date"), rule.cast(pl.String).alias("rule"))
        .sort("customer_id")
    )
    return to_output(out, output)


def transition_matrix(previous: Any, current: Any, *, stages: list[str] | None = None,
                      include_new: bool = True, form: str = "long", output: Output = "polars"):
    """Counts and rates of moves between the stages of two runs.

    Parameters
    ----------
    previous, current : DataFrame
        Outputs of :func:`assign_stages`.
    stages : list of str, optional
        Stage order (and stages to show even when empty); defaults to the stages seen.
    include_new : bool
        Count customers absent from ``previous`` as coming from ``"(new)"`` and those
        absent from ``current`` as going to ``"(gone)"``.
    form : {"long", "wide"}
        Long: ``from_stage, to_stage, count, rate`` with ``rate`` the share of the
        from-stage's customers (rows sum to 1). Wide: one row per from-stage, one
        count column per to-stage.

    Examples
    --------
    >>> import polars as pl
    >>> prev = pl.DataFrame({"customer_id": ["a", "b", "c"], "stage": ["growth", "growth", "mature"]})
    >>> cur = pl.DataFrame({"customer_id": ["a", "b", "c"], "stage": ["growth", "decline", "mature"]})
    >>> m = transition_matrix(prev, cur, include_new=False)
    >>> m.filter(pl.col("from_stage") == "growth").select("to_stage", "count", "rate").sort("to_stage").rows()
    [('decline', 1, 0.5), ('growth', 1, 0.5), ('mature', 0, 0.0)]
    """
    check_choice(form, ("long", "wide"), "form", "transition_matrix")
    prev = _stages(previous, "previous", "transition_matrix")
    cur = _stages(current, "current", "transition_matrix")
    how = "full" if include_new else "inner"
    pairs = (
        prev.select("customer_id", pl.col("stage").alias("from_stage"))
        .join(cur.select("customer_id", pl.col("stage").alias("to_stage")),
              on="customer_id", how=how, coalesce=True)
        .with_columns(pl.col("from_stage").fill_null(NEW), pl.col("to_stage").fill_null(GONE))
    )
    counts = pairs.group_by("from_stage", "to_stage").agg(pl.len().cast(pl.Int64).alias("count"))
    out = _matrix(counts, stages, include_new)
    if form == "wide":
        out = out.pivot(on="to_stage", index="from_stage", values="count",
                        maintain_order=True)
    return to_output(out, output)


def transition_matrix_from_counts(counts: Any, *, stages: list[str] | None = None,
                                  include_new: bool = True, output: Output = "polars"):
    """The long transition matrix of :func:`transition_matrix` from pair counts.

    ``counts`` has ``from_stage``, ``to_stage`` (``"(new)"`` / ``"(gone)"`` for
    arrivals and departures) and ``count``; rows of one pair are summed, so counts
    made shard by shard combine exactly.

    Examples
    --------
    >>> import polars as pl
    >>> c = pl.DataFrame({"from_stage": ["growth", "growth", "growth"],
    ...                   "to_stage": ["growth", "decline", "growth"], "count": [1, 1, 2]})
    >>> m = transition_matrix_from_counts(c, include_new=False)
    >>> m.filter(pl.col("from_stage") == "growth").select("to_stage", "count").rows()
    [('growth', 3), ('decline', 1)]
    """
    frame = to_polars(counts, "counts").group_by("from_stage", "to_stage").agg(
        pl.col("count").sum().cast(pl.Int64))
    if not include_new:
        frame = frame.filter((pl.col("from_stage") != NEW) & (pl.col("to_stage") != GONE))
    return to_output(_matrix(frame, stages, include_new), output)


def _matrix(counts: pl.DataFrame, stages: list[str] | None, include_new: bool) -> pl.DataFrame:
    froms, tos = set(counts["from_stage"]), set(counts["to_stage"])
    seen = (froms | tos) - {NEW, GONE}
    order = list(stages) if stages is not None else [s for s in STANDARD_STAGES if s in seen]
    order += sorted(s for s in seen if s not in order)
    from_order = order + ([NEW] if include_new and NEW in froms else [])
    to_order = order + ([GONE] if include_new and GONE in tos else [])
    grid = pl.DataFrame({"from_stage": from_order}).join(
        pl.DataFrame({"to_stage": to_order}), how="cross")
    rank_from = {s: i for i, s in enumerate(from_order)}
    rank_to = {s: i for i, s in enumerate(to_order)}
    return (
        grid.join(counts, on=["from_stage", "to_stage"], how="left")
        .with_columns(pl.col("count").fill_null(0))
        .with_columns(
            (pl.col("count") / pl.col("count").sum().over("from_stage")).fill_nan(0.0)
            .fill_null(0.0).alias("rate"))
        .sort(pl.col("from_stage").replace_strict(rank_from, return_dtype=pl.Int64),
              pl.col("to_stage").replace_strict(rank_to, return_dtype=pl.Int64))
    )


def _history(history: Any, owner: str) -> pl.DataFrame:
    if isinstance(history, dict):
        frames = [_stages(f, "history", owner).select(
            "customer_id", pl.lit(check_date(d, "history key", owner), pl.Date).alias("as_of"),
            "stage") for d, f in history.items()]
        return pl.concat(frames) if frames else pl.DataFrame(
            schema={"customer_id": pl.String, "as_of": pl.Date, "stage": pl.String})
    df = _stages(history, "history", owner)
    if "as_of" not in df.columns:
        raise SchemaError(f"{owner}: the history needs an as_of column (stack the outputs of "
                          "assign_stages of several runs), or pass a dict {as_of: stages}.")
    return df.select("customer_id", pl.col("as_of").cast(pl.Date), "stage")


def stage_flows(history: Any, *, output: Output = "polars"):
    """Counts of moves between consecutive runs over a history of runs.

    Parameters
    ----------
    history : DataFrame or dict
        Stacked outputs of :func:`assign_stages` (``customer_id``, ``as_of``,
        ``stage``), or a dict mapping each run date to its stages.

    Returns
    -------
    DataFrame
        ``from_as_of``, ``to_as_of``, ``from_stage``, ``to_stage``, ``count``; a
        customer absent from the earlier run comes from ``"(new)"``.

    Examples
    --------
    >>> import polars as pl
    >>> runs = {"2025-01-31": pl.DataFrame({"customer_id": ["a"], "stage": ["onboarding"]}),
    ...         "2025-02-28": pl.DataFrame({"customer_id": ["a"], "stage": ["growth"]})}
    >>> stage_flows(runs).select("from_stage", "to_stage", "count").rows()
    [('onboarding', 'growth', 1)]
    """
    hist = _history(history, "stage_flows")
    dates = sorted(hist["as_of"].unique().to_list())
    parts = []
    for a, b in zip(dates, dates[1:]):
        m = transition_matrix(hist.filter(pl.col("as_of") == a), hist.filter(pl.col("as_of") == b))
        parts.append(m.filter(pl.col("count") > 0).select(
            pl.lit(a, pl.Date).alias("from_as_of"), pl.lit(b, pl.Date).alias("to_as_of"),
            "from_stage", "to_stage", "count"))
    out = pl.concat(parts) if parts else pl.DataFrame(schema={
        "from_as_of": pl.Date, "to_as_of": pl.Date, "from_stage": pl.String,
        "to_stage": pl.String, "count": pl.Int64})
    return to_output(out, output)


def cohort_stages(history: Any, *, entry_stage: str = "onboarding", at: dt.date | str | None = None,
                  freq: str = "1mo", entry_dates: Any = None, output: Output = "polars"):
    """Where the customers who entered a stage in each period are now.

    A customer's cohort is the period (``freq``, a polars duration such as ``"1mo"``
    for calendar months) of the first run in which they were in ``entry_stage``;
    or, with ``entry_dates``, the period of their own entry date (e.g. the
    features' ``first_product_date``), which also places customers who entered
    before the first run of the history.

    Parameters
    ----------
    history : DataFrame or dict
        As for :func:`stage_flows`.
    entry_stage : str
        The stage that defines the cohort (default ``"onboarding"``).
    at : date, optional
        The run to look at ("now"); defaults to the latest run in the history.
    entry_dates : DataFrame, optional
        ``customer_id`` and one date column: the entry date of each customer
        (customers without a date are left out); ``entry_stage`` is then unused.

    Returns
    -------
    DataFrame
        ``cohort`` (period start), ``stage`` (at ``at``, ``"(gone)"`` if absent),
        ``count``, ``share`` (of the cohort).

    Examples
    --------
    >>> import polars as pl
    >>> runs = {"2025-01-31": pl.DataFrame({"customer_id": ["a", "b"], "stage": ["onboarding"] * 2}),
    ...         "2025-02-28": pl.DataFrame({"customer_id": ["a", "b"], "stage": ["growth", "dormant"]})}
    >>> cohort_stages(runs).select("cohort", "stage", "count", "share").rows()
    [(datetime.date(2025, 1, 1), 'dormant', 1, 0.5), (datetime.date(2025, 1, 1), 'growth', 1, 0.5)]
    """
    hist = _history(history, "cohort_stages")
    if at is None:
        at = hist["as_of"].max()
    at = check_date(at, "at", "cohort_stages")
    if entry_dates is not None:
        ed = to_polars(entry_dates, "entry_dates")
        dates = [c for c in ed.columns if c != "customer_id"]
        if "customer_id" not in ed.columns or len(dates) != 1:
            raise SchemaError("cohort_stages: 'entry_dates' needs customer_id and exactly one "
                              f"date column; it has {', '.join(ed.columns)}.")
        entry = ed.select(pl.col("customer_id").cast(pl.String),
                          pl.col(dates[0]).cast(pl.Date).alias("entered")).filter(
            pl.col("entered").is_not_null() & (pl.col("entered") <= at))
    else:
        entry = (
            hist.filter((pl.col("stage") == entry_stage) & (pl.col("as_of") <= at))
            .group_by("customer_id").agg(pl.col("as_of").min().alias("entered"))
        )
    entry = entry.with_columns(pl.col("entered").dt.truncate(freq).alias("cohort"))
    now = hist.filter(pl.col("as_of") == at).select("customer_id", "stage")
    out = (
        entry.join(now, on="customer_id", how="left")
        .with_columns(pl.col("stage").fill_null(GONE))
        .group_by("cohort", "stage").agg(pl.len().cast(pl.Int64).alias("count"))
        .with_columns((pl.col("count") / pl.col("count").sum().over("cohort")).alias("share"))
        .sort("cohort", "stage")
    )
    return to_output(out, output)
