"""Moves against the current assignment, with their reasons, and handover sheets."""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl

from crmkit._frames import Output, to_output, to_polars
from crmkit._params import check_date
from crmkit.exceptions import SchemaError

__all__ = ["MOVE_REASONS", "compute_moves", "handover_sheets"]

MOVE_REASONS = {
    "new_assignment": "the customer had no RM in this role (new VIP, tier upgrade, new team slot)",
    "rm_inactive": "the current RM left or is inactive",
    "tier_change": "the current RM's level may no longer own the customer's tier",
    "territory": "the current RM no longer serves the customer's branch or region",
    "capacity_change": "the current RM's book is above its (new) capacity",
    "released": "the customer's tier gets no named RM (below the VIP tiers) or the team slot was dropped",
    "unplaced": "no eligible RM had room; see the unplaced table for the reason",
    "rebalanced": "the optimiser moved the customer for level fit or workload balance",
}
"""Every reason a move can carry."""

_SCHEMA = {"customer_id": pl.String, "role": pl.String, "from_manager_id": pl.String,
           "to_manager_id": pl.String, "tier": pl.String, "reason": pl.String}


def compute_moves(current: pl.DataFrame, assignment: pl.DataFrame, customers: pl.DataFrame,
                  managers: pl.DataFrame, eligibility: dict, territory: dict,
                  unplaced: pl.DataFrame) -> pl.DataFrame:
    """Each change of RM per (customer, role), with the first reason that explains it."""
    cur = current.join(customers.select("customer_id"), on="customer_id", how="semi")
    new = assignment.select("customer_id", "role", "manager_id")
    rows = []
    for role in ("primary", "backup"):
        c = cur.filter(pl.col("role") == role).select("customer_id", "manager_id")
        n = new.filter(pl.col("role") == role).select("customer_id", "manager_id")
        gone = c.join(n, on=["customer_id", "manager_id"], how="anti").sort("customer_id", "manager_id")
        came = n.join(c, on=["customer_id", "manager_id"], how="anti").sort("customer_id", "manager_id")
        # pair the k-th removed RM of a customer with its k-th new RM
        gone = gone.with_columns(pl.int_range(pl.len()).over("customer_id").alias("_k"))
        came = came.with_columns(pl.int_range(pl.len()).over("customer_id").alias("_k"))
        pair = gone.join(came, on=["customer_id", "_k"], how="full", coalesce=True, suffix="_to")
        rows.append(pair.select("customer_id", pl.lit(role).alias("role"),
                                pl.col("manager_id").alias("from_manager_id"),
                                pl.col("manager_id_to").alias("to_manager_id")))
    moves = pl.concat(rows)
    if moves.height == 0:
        return pl.DataFrame(schema=_SCHEMA)
    el = pl.DataFrame([(t, lvl) for t, lv in eligibility.items() for lvl in lv],
                      schema={"tier": pl.String, "_lvl": pl.String}, orient="row")
    book = cur.group_by("manager_id").agg(pl.len().alias("_book"))
    m = (managers.select(pl.col("manager_id").alias("from_manager_id"), pl.col("active").alias("_act"),
                         pl.col("level").alias("_lvl"), pl.col("branch_id").alias("_mb"),
                         pl.col("region").alias("_mr"), pl.col("capacity").alias("_cap"))
         .join(book.rename({"manager_id": "from_manager_id"}), on="from_manager_id", how="left"))
    terr = pl.DataFrame({"_lvl": list(territory), "_rule": list(territory.values())})
    mv = (moves.join(customers.select("customer_id", "tier", "branch_id", "region"), on="customer_id",
                     how="left")
          .join(m, on="from_manager_id", how="left")
          .join(terr, on="_lvl", how="left")
          .join(el.with_columns(pl.lit(True).alias("_elig")), on=["tier", "_lvl"], how="left")
          .join(unplaced.select("customer_id", "role", pl.lit(True).alias("_unpl")),
                on=["customer_id", "role"], how="left"))
    in_terr = (pl.when(pl.col("_rule") == "branch").then(pl.col("_mb") == pl.col("branch_id"))
               .when(pl.col("_rule") == "region").then(pl.col("_mr") == pl.col("region"))
               .otherwise(True)).fill_null(False)
    named = pl.col("tier").is_in(list(eligibility))
    reason = (pl.when(pl.col("from_manager_id").is_null()).then(pl.lit("new_assignment"))
              .when(~named | (pl.col("to_manager_id").is_null() & pl.col("_unpl").is_null()
                              & pl.col("role").eq("backup")))
              .then(pl.lit("released"))
              .when(pl.col("_act").is_null() | ~pl.col("_act").fill_null(False)).then(pl.lit("rm_inactive"))
              .when(pl.col("_elig").is_null()).then(pl.lit("tier_change"))
              .when(~in_terr).then(pl.lit("territory"))
              .when(pl.col("_book").fill_null(0) > pl.col("_cap")).then(pl.lit("capacity_change"))
              .when(pl.col("to_manager_id").is_null()).then(pl.lit("unplaced"))
              .otherwise(pl.lit("rebalanced")))
    return (mv.with_columns(reason.alias("reason"))
            .select(*_SCHEMA).sort("customer_id", pl.col("role") != "primary", "from_manager_id",
                                   nulls_last=True))


def handover_sheets(moves: Any, customers: Any, *, contacts: Any = None, complaints: Any = None,
                    as_of: dt.date | str | None = None, managers: Any = None, last_n: int = 3,
                    reasons: tuple[str, ...] = ("rm_inactive",), output: Output = "polars"):
    """Per leaving RM, the customers handed over: tier, assets, open issues, last contacts.

    Parameters
    ----------
    moves : table
        ``moves_`` of :class:`RMAssigner` (``customer_id``, ``role``, ``from_manager_id``,
        ``to_manager_id``, ``reason``).
    customers : table
        ``customer_id`` and any of ``tier``, ``financial_assets``, ``stage``,
        ``churn_probability`` (carried when present).
    contacts, complaints : table, optional
        The canonical tables; complaints whose ``outcome`` is ``open`` or ``escalated``
        (or null) are open issues.
    as_of : date, optional
        Ignore contacts and complaints dated after it.
    managers : table, optional
        Adds the new RM's level and branch.
    last_n : int, default 3
        Contacts listed per customer (most recent first).
    reasons : tuple of str, default ("rm_inactive",)
        Which moves count as a handover.

    Returns
    -------
    DataFrame
        One row per handed-over (customer, role), sorted by leaving RM: ``from_manager_id``,
        ``customer_id``, ``role``, ``to_manager_id``, customer columns, ``open_issues``,
        ``open_issue_kinds``, ``last_contact_date``, ``last_contacts``.

    Examples
    --------
    >>> import polars as pl, datetime as dt
    >>> moves = pl.DataFrame({"customer_id": ["a"], "role": ["primary"], "from_manager_id": ["M1"],
    ...                       "to_manager_id": ["M2"], "reason": ["rm_inactive"]})
    >>> cust = pl.DataFrame({"customer_id": ["a"], "tier": ["Gold"], "financial_assets": [2e5]})
    >>> contacts = pl.DataFrame({"customer_id": ["a", "a"], "date": [dt.date(2025, 1, 2), dt.date(2025, 3, 1)],
    ...                          "kind": ["call", "visit"], "outcome": ["reached", "sale"]})
    >>> handover_sheets(moves, cust, contacts=contacts)["last_contacts"].item()
    '2025-03-01 visit sale; 2025-01-02 call reached'
    """
    mv = to_polars(moves, "moves")
    for col in ("customer_id", "role", "from_manager_id", "to_manager_id", "reason"):
        if col not in mv.columns:
            raise SchemaError(f"handover_sheets: table 'moves' has no column {col!r}; it has "
                              f"{', '.join(mv.columns)}.")
    if not isinstance(last_n, int) or last_n < 0:
        raise ValueError(f"The 'last_n' parameter of handover_sheets must be a non-negative integer. "
                         f"Got {last_n!r} instead.")
    day = check_date(as_of, "as_of", "handover_sheets") if as_of is not None else None
    cu = to_polars(customers, "customers")
    keep = [c for c in ("tier", "branch_id", "financial_assets", "stage", "churn_probability")
            if c in cu.columns]
    out = (mv.filter(pl.col("reason").is_in(list(reasons)))
           .select("from_manager_id", "customer_id", "role", "to_manager_id")
           .join(cu.select("customer_id", *keep), on="customer_id", how="left"))
    if managers is not None:
        mg = to_polars(managers, "managers").select(
            pl.col("manager_id").alias("to_manager_id"), pl.col("level").alias("to_level"),
            pl.col("branch_id").alias("to_branch_id"))
        out = out.join(mg, on="to_manager_id", how="left")
    if complaints is not None:
        cp = to_polars(complaints, "complaints")
        if day is not None:
            cp = cp.filter(pl.col("date").cast(pl.Date) <= day)
        outcome = pl.col("outcome") if "outcome" in cp.columns else pl.lit(None, pl.String)
        cp = (cp.filter(outcome.is_null() | outcome.is_in(["open", "escalated"]))
              .group_by("customer_id").agg(pl.len().cast(pl.Int64).alias("open_issues"),
                                           pl.col("kind").unique().sort().str.join(", ").alias("open_issue_kinds")))
        out = out.join(cp, on="customer_id", how="left").with_columns(pl.col("open_issues").fill_null(0))
    if contacts is not None:
        ct = to_polars(contacts, "contacts")
        if day is not None:
            ct = ct.filter(pl.col("date").cast(pl.Date) <= day)
        outcome = pl.col("outcome").fill_null("") if "outcome" in ct.columns else pl.lit("")
        ct = (ct.join(out.select("customer_id").unique(), on="customer_id", how="semi")
              .sort("customer_id", "date", descending=[False, True])
              .with_columns(pl.concat_str(pl.col("date").cast(pl.String), pl.col("kind"), outcome,
                                          separator=" ").str.strip_chars().alias("_txt"))
              .group_by("customer_id", maintain_order=True)
              .agg(pl.col("date").max().alias("last_contact_date"),
                   pl.col("_txt").head(last_n).str.join("; ").alias("last_contacts")))
        out = out.join(ct, on="customer_id", how="left")
    return to_output(out.sort("from_manager_id", "customer_id", "role"), output)
