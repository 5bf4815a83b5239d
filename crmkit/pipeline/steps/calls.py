"""The ``calls`` step: each relationship manager's call list for the day.

A global step (each RM's list is the top ``top_n`` of their whole book). One row
per VIP customer gathers what the triggers need: tier, RM (``assign.assignment``),
stage (``lifecycle.stages``), churn risk, its capacity-sized flag and its reasons
(``churn.churn_scores``: ``churn_prob_90d`` as ``churn_probability``, ``churn_flag``,
which fires the ``high_risk`` trigger instead of a fixed probability cut, ``reason_<k>``),
the next best product (``propensity.offers``), assets and their trend, opt-outs and
the last contacts; :func:`crmkit.assign.build_call_lists` ranks the triggered
customers, drops those in the cool-down, on opted-out channels or in the campaign's
control group (all counted), and suggests the playbook action. Per-customer table
``calls/call_list``; aggregates: ``suppressed``, ``control`` and ``branch_staff``
(hidden and never-contacted VIPs for tellers and lobby managers).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import polars as pl

from crmkit.assign import CallsConfig
from crmkit.pipeline._step import Shard, ShardOutput, Step, StepSummary
from crmkit.pipeline.steps._common import count_partial, counts_from

__all__ = ["STEP"]


def _customers(shard: Shard) -> pl.DataFrame:
    feats = shard.get("features").select(
        "customer_id", "financial_assets", "financial_assets_trend_90d",
        "days_since_last_contact")
    people = shard.get("customers")
    keep = [c for c in people.columns if c.startswith("opt_out_") or c in (
        "customer_id", "first_seen", "birth_year", "contact_window", "do_not_contact")]
    rows = (shard.get("value.value_tiers").select("customer_id", "tier", "branch_id")
            .join(feats, on="customer_id", how="left")
            .join(people.select(keep), on="customer_id", how="left"))
    assignment = shard.get("assign.assignment").filter(pl.col("role") == "primary")
    rows = rows.join(assignment.select("customer_id", "manager_id"), on="customer_id",
                     how="left")
    stages = shard.optional("lifecycle.stages")
    if stages is not None:
        rows = rows.join(stages.select("customer_id", "stage"), on="customer_id", how="left")
    churn = shard.optional("churn.churn_scores")
    if churn is not None and "churn_prob_90d" in churn.columns:
        reasons = [c for c in churn.columns if c.startswith("reason_")
                   and not c.endswith("_contribution")]
        flag = ["churn_flag"] if "churn_flag" in churn.columns else []
        rows = rows.join(churn.select("customer_id", pl.col("churn_prob_90d").alias(
            "churn_probability"), *flag, *reasons), on="customer_id", how="left")
    offers = shard.optional("propensity.offers")
    if offers is not None and {"rank", "product_id"} <= set(offers.columns):
        best = offers.filter(pl.col("rank") == 1).select(
            "customer_id", pl.col("product_id").alias("next_best_product"),
            *([pl.col("expected_value").alias("offer_value")]
              if "expected_value" in offers.columns else []))
        rows = rows.join(best, on="customer_id", how="left")
    return rows.sort("customer_id")


def score(shard: Shard, cfg: CallsConfig, state: Any) -> ShardOutput:
    """Today's call lists and the branch-staff list."""
    from crmkit.assign import branch_staff_list, build_call_lists

    customers = _customers(shard)
    contacts = shard.get("contacts")
    # a part of the priority whose step did not run (no propensity: no offer value) is
    # left out rather than failing the run
    absent = {k: None for k in ("value_col", "risk_col", "offer_col")
              if getattr(cfg, k) is not None and getattr(cfg, k) not in customers.columns}
    cfg = cfg.model_copy(update=absent) if absent else cfg
    res = build_call_lists(customers, as_of=shard.as_of, contacts=contacts, config=cfg)
    staff = branch_staff_list(customers, as_of=shard.as_of, contacts=contacts)
    calls = res.calls.sort("customer_id")
    return ShardOutput(tables={"call_list": calls},
                       partials={"suppressed": res.suppressed, "control": res.control,
                                 "branch_staff": staff,
                                 "per_rm": count_partial(calls, "manager_id")})


def finalize(partials: Mapping[str, pl.DataFrame], cfg: CallsConfig, state: Any,
             ctx: Any) -> StepSummary:
    """Suppressed contacts (with the reason), the control group and the branch list."""
    suppressed = partials["suppressed"]
    reason = "reason" if "reason" in suppressed.columns else suppressed.columns[-1]
    per_rm = partials["per_rm"]
    return StepSummary(
        tables={"suppressed": suppressed, "control": partials["control"],
                "branch_staff": partials["branch_staff"]},
        facts={"calls": int(per_rm["n"].sum()) if per_rm.height else 0,
               "managers_with_calls": int(per_rm.height),
               "suppressed": counts_from({"s": count_partial(suppressed, reason)}, "s", reason),
               "branch_staff": int(partials["branch_staff"].height)})


STEP = Step(
    name="calls", config_model=CallsConfig, score=score, scope="global",
    inputs=("features", "customers", "contacts", "value.value_tiers", "assign.assignment"),
    optional_inputs=("lifecycle.stages", "churn.churn_scores", "propensity.offers"),
    outputs=("call_list",), finalize=finalize,
    doc="per-RM daily call lists with reasons, cool-downs, opt-outs and control groups",
)
