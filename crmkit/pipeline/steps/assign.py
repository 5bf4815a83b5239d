"""The ``assign`` step: every VIP customer's relationship manager, solved exactly.

A global step (an assignment weighs all customers against all managers' capacity):
it reads each customer's tier and branch (``value.value_tiers``), assets and churn
risk, the current assignments and the managers, and solves with
:func:`crmkit.assign.solve_assignment` (min-cost flow, or a MIP where workloads
bind; ``decompose = "branch"`` in ``[assign]`` solves branch by branch for banks too
large for one solve). Per-customer table ``assign/assignment`` (primary and, for core customers,
backup RM); aggregates: ``moves`` against the current assignment with their reason,
``unplaced`` customers with the reason, RM ``books`` and ``scorecards``, and
``handover`` sheets for leaving RMs. The manifest records the objective, status
and gap.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import polars as pl

from crmkit.assign import AssignConfig
from crmkit.pipeline._step import Shard, ShardOutput, Step, StepSummary

__all__ = ["STEP"]


def customer_rows(shard: Shard) -> pl.DataFrame:
    """One row per customer: tier, branch, assets, churn risk and the current RMs."""
    # a global step holds every customer: read only the columns used
    tiers = shard.get("value.value_tiers", ["customer_id", "tier", "branch_id"])
    feats = shard.get("features", ["customer_id", "financial_assets"])
    rows = tiers.join(feats, on="customer_id", how="left")
    if shard.optional_present("churn.churn_scores") \
            and "churn_prob_90d" in shard.columns("churn.churn_scores"):
        risk = shard.get("churn.churn_scores", ["customer_id", "churn_prob_90d"])
        rows = rows.join(risk.rename({"churn_prob_90d": "churn_probability"}),
                         on="customer_id", how="left")
    # the previous run's solution is the current book (the input table is the bank's
    # record, which the first run starts from)
    current = shard.previous("assign", "assignment")
    if current is None:
        current = shard.get("assignments")
    for role, col in (("primary", "current_manager_id"), ("backup", "current_backup_id")):
        rows = rows.join(current.filter(pl.col("role") == role).select(
            "customer_id", pl.col("manager_id").alias(col)), on="customer_id", how="left")
    return rows.sort("customer_id")


def score(shard: Shard, cfg: AssignConfig, state: Any) -> ShardOutput:
    """Solve the assignment of the whole (small) customer table."""
    from crmkit.assign import CallsConfig, priority_score, rm_books, rm_scorecards, solve_assignment

    customers = customer_rows(shard)
    # the solver serves high-priority customers first (preferred level, placed first when
    # capacity is short): the default priority score of value x churn risk, without the
    # parts whose step did not run
    pcfg = CallsConfig()
    absent = {k: None for k in ("value_col", "risk_col", "offer_col")
              if getattr(pcfg, k) is not None and getattr(pcfg, k) not in customers.columns}
    customers = priority_score(customers, config=pcfg.model_copy(update=absent))
    managers = shard.get("managers")
    res = solve_assignment(customers, managers, config=cfg)
    assignment = res.assignment.sort("customer_id")
    books = rm_books(assignment, customers, managers)
    scorecards = rm_scorecards(assignment, customers, managers,
                               complaints=shard.get("complaints"), as_of=shard.as_of)
    facts = pl.DataFrame({"objective": [float(res.objective)], "status": [str(res.status)],
                          "gap": [float(res.gap) if res.gap is not None else None],
                          "solver": [str(res.solver)], "arcs": [int(res.n_arcs)],
                          "bound": [float(res.bound) if res.bound is not None else None],
                          "parts": [int(res.n_parts)], "solve_seconds": [float(res.seconds)]})
    return ShardOutput(tables={"assignment": assignment},
                       partials={"moves": res.moves, "unplaced": res.unplaced, "books": books,
                                 "scorecards": scorecards, "facts": facts})


def finalize(partials: Mapping[str, pl.DataFrame], cfg: AssignConfig, state: Any,
             ctx: Any) -> StepSummary:
    """Moves, unplaced customers, books and scorecards; the solver's report."""
    facts = partials["facts"].row(0, named=True)
    moves = partials["moves"]
    unplaced = partials["unplaced"]
    return StepSummary(
        tables={"moves": moves, "unplaced": unplaced, "books": partials["books"],
                "scorecards": partials["scorecards"]},
        facts={**facts, "moves": int(moves.height), "unplaced": int(unplaced.height)})


STEP = Step(
    name="assign", config_model=AssignConfig, score=score, scope="global",
    inputs=("features", "value.value_tiers", "assignments", "managers", "complaints"),
    optional_inputs=("churn.churn_scores",), outputs=("assignment",), finalize=finalize,
    doc="exact RM assignment by tier, level, territory and capacity; moves, books, scorecards",
)
