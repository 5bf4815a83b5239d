"""The ``insurer`` step: renewals due, claim follow-ups and same-day alerts, key
accounts' executive visits, graded complaints and lapse/non-renewal churn.

Configured by the insurer preset (:class:`InsurerConfig`; the shipped values are
``pipelines/presets/insurer.toml``). Every list that names a contact channel
(renewal reminders, claim follow-ups, visits owed to key accounts) goes through
the contact policy; suppressed rows, with the reason, are the aggregate table
``insurer/suppressed``. Claim alerts are internal (to the claims handler) and name
no channel. Every list but ``policy_churn`` names the customer's account manager
(``manager_id``, the primary assignment).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import polars as pl
from pydantic import Field, field_validator, model_validator

from crmkit.contact_policy import ContactPolicy, apply_contact_policy, canonical_channel
from crmkit.pipeline._step import Shard, ShardOutput, Step, StepSummary
from crmkit.pipeline.steps._common import count_partial, counts_from
from crmkit.sectors._presets import SectorConfig

__all__ = ["InsurerConfig", "STEP"]


class InsurerConfig(SectorConfig):
    """``[insurer]``: the insurer preset (renewals, claims, key accounts, complaints, churn)."""

    SECTION: ClassVar[str] = "insurer"
    renewal_days_ahead: int = Field(60, gt=0, description="renewals due within this many days")
    term_months: int = Field(12, gt=0, description="policy term, for policies without a "
                                                   "future renewal_date")
    renewal_channel: str = "phone"
    claim_channel: str = Field("claim", description="transactions.channel of a claim")
    claim_lookback_days: int = Field(30, gt=0, description="claims this recent are followed up")
    claim_followup_days: int = Field(2, ge=0, description="a follow-up is due this many days "
                                                          "after the claim")
    claim_followup_channel: str = "phone"
    claim_alert_threshold: float = Field(50000.0, gt=0, description="a claim of this amount "
                                                                    "or more raises a same-day "
                                                                    "alert")
    key_account_column: str = "key_account"
    executive_visits_per_year: int = Field(4, ge=0)
    executive_visit_kinds: list[str] = ["executive_visit"]
    executive_visit_channel: str = "visit"
    complaint_grades: list[list[str]] = Field(
        default_factory=lambda: [["C", "C", "B"], ["C", "B", "A"], ["B", "A", "A"]],
        description="grade by impact (rows, low to high) x difficulty (columns, low to high)")
    complaint_response_days: dict[str, int] = Field(
        default_factory=lambda: {"A": 1, "B": 3, "C": 7})
    complaint_open_outcomes: list[str] = ["open", "escalated"]
    churn_reasons: list[str] = ["lapsed", "not_renewed"]
    churn_window_days: int = Field(365, gt=0)
    contact_policy: ContactPolicy = Field(default_factory=ContactPolicy)

    @field_validator("renewal_channel", "claim_followup_channel", "executive_visit_channel")
    @classmethod
    def _channel(cls, value: str) -> str:
        return canonical_channel(value)

    @model_validator(mode="after")
    def _grades(self) -> InsurerConfig:
        if len(self.complaint_grades) != 3 or any(len(r) != 3 for r in self.complaint_grades):
            raise ValueError("complaint_grades must be 3 rows (impact low, medium, high) of 3 "
                             "grades (difficulty low, medium, high)")
        missing = sorted({g for r in self.complaint_grades for g in r}
                         - set(self.complaint_response_days))
        if missing:
            raise ValueError(f"complaint_response_days has no entry for grade(s) "
                             f"{', '.join(missing)}")
        return self


def _contacts_through_policy(frame: pl.DataFrame, customers: pl.DataFrame, policy,
                             what: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    split = apply_contact_policy(frame, customers, policy=policy)
    suppressed = split.suppressed.select("customer_id", pl.lit(what).alias("list"), "channel",
                                         "reason", "suppression_reason")
    return split.allowed, suppressed


def _with(frame: pl.DataFrame, cols: dict[str, Any]) -> pl.DataFrame:
    return frame.with_columns(*[pl.lit(None, t).alias(c) for c, t in cols.items()
                                if c not in frame.columns])


def score(shard: Shard, cfg: InsurerConfig, state: Any) -> ShardOutput:
    """One shard's insurer lists."""
    from crmkit.sectors import (claim_alerts, claim_followups, executive_visits,
                                grade_complaints, policy_churn, renewals_due)

    day = shard.as_of
    customers = shard.get("customers")
    holdings = shard.get("holdings")
    tx = shard.get("transactions")
    contacts = shard.get("contacts")
    complaints = shard.get("complaints")
    if complaints.height == 0:
        complaints = _with(complaints, {"impact": pl.Int64, "difficulty": pl.Int64})
    if customers.height == 0 or cfg.key_account_column not in customers.columns:
        if customers.height and cfg.executive_visits_per_year:
            from crmkit.exceptions import SchemaError

            raise SchemaError(f"insurer: the customers table has no column "
                              f"{cfg.key_account_column!r} (insurer.key_account_column); "
                              f"set executive_visits_per_year = 0 to skip key accounts")
        customers = _with(customers, {cfg.key_account_column: pl.Boolean})
    renewals = renewals_due(holdings, as_of=day, days_ahead=cfg.renewal_days_ahead,
                            products=shard.get("products"), term_months=cfg.term_months,
                            channel=cfg.renewal_channel)
    follow = claim_followups(tx, contacts, as_of=day, lookback_days=cfg.claim_lookback_days,
                             within_days=cfg.claim_followup_days,
                             channel=cfg.claim_followup_channel, claim_channel=cfg.claim_channel)
    alerts = claim_alerts(tx, as_of=day, threshold=cfg.claim_alert_threshold,
                          claim_channel=cfg.claim_channel)
    visits = executive_visits(customers, contacts, as_of=day,
                              min_per_year=cfg.executive_visits_per_year,
                              key_col=cfg.key_account_column,
                              visit_kinds=cfg.executive_visit_kinds)
    visits = visits.with_columns(pl.when(pl.col("behind")).then(pl.lit(cfg.executive_visit_channel))
                                 .otherwise(None).alias("channel"))
    graded = grade_complaints(complaints, as_of=day, matrix=cfg.complaint_grades,
                              response_days=cfg.complaint_response_days,
                              open_outcomes=cfg.complaint_open_outcomes)
    churn = policy_churn(holdings, as_of=day, window_days=cfg.churn_window_days,
                         churn_reasons=cfg.churn_reasons)
    # each policyholder's soonest term end, for the lifecycle's renewal_due stage (every
    # open policy: the renewals list is only the window, and loses opted-out customers)
    terms = renewals_due(holdings, as_of=day, days_ahead=cfg.term_months * 31 + 366,
                         term_months=cfg.term_months, channel=cfg.renewal_channel)
    churn = churn.join(terms.group_by("customer_id").agg(pl.col("days_to_renewal").min()),
                       on="customer_id", how="left", maintain_order="left")
    renewals, s1 = _contacts_through_policy(renewals, customers, cfg.contact_policy, "renewals")
    follow, s2 = _contacts_through_policy(follow, customers, cfg.contact_policy,
                                          "claim_followups")
    behind = visits.filter(pl.col("behind"))
    allowed_visits, s3 = _contacts_through_policy(behind, customers, cfg.contact_policy,
                                                  "executive_visits")
    # a key account behind on visits stays on the list (the manager is accountable); a
    # suppressed visit says why no visit is booked
    visits = visits.join(s3.select("customer_id", "suppression_reason"), on="customer_id",
                         how="left").with_columns(
        pl.when(pl.col("suppression_reason").is_not_null()).then(None)
        .otherwise(pl.col("channel")).alias("channel"))
    suppressed = pl.concat([s1, s2, s3], how="vertical_relaxed")
    # each row names its account manager (the customer's primary assignment), who acts on it
    assignments = shard.get("assignments")
    if "role" in assignments.columns:
        assignments = assignments.filter(pl.col("role") == "primary")
    owner = assignments.select("customer_id", "manager_id").unique("customer_id", keep="first")

    def named(frame: pl.DataFrame) -> pl.DataFrame:
        out = frame.join(owner, on="customer_id", how="left", maintain_order="left")
        return out.select("customer_id", "manager_id", *[c for c in frame.columns
                                                         if c != "customer_id"])

    tables = {"renewals": named(renewals), "claim_followups": named(follow),
              "claim_alerts": named(alerts), "executive_visits": named(visits),
              "complaints": named(graded), "policy_churn": churn}
    return ShardOutput(tables=tables, partials={
        "suppressed": suppressed,
        "counts": pl.DataFrame({"list": list(tables), "n": [f.height for f in tables.values()]}),
        "behind": count_partial(visits, "behind"),
        "grades": count_partial(graded, "grade"),
        "churned": count_partial(churn, "churned")})


def finalize(partials: Mapping[str, pl.DataFrame], cfg: InsurerConfig, state: Any,
             ctx: Any) -> StepSummary:
    """The suppressed contacts (with reasons) and the counts of every list."""
    suppressed = partials["suppressed"].sort("list", "customer_id")
    counts = partials["counts"].group_by("list").agg(pl.col("n").sum())
    return StepSummary(
        tables={"suppressed": suppressed},
        facts={"preset": cfg.preset,
               "rows": {k: int(v) for k, v in counts.sort("list").iter_rows()},
               "suppressed": int(suppressed.height),
               "key_accounts_behind": counts_from(partials, "behind", "behind").get("True", 0),
               "open_complaints_by_grade": counts_from(partials, "grades", "grade"),
               "churned_customers": counts_from(partials, "churned", "churned").get("True", 0)})


STEP = Step(
    name="insurer", config_model=InsurerConfig, score=score, finalize=finalize,
    inputs=("customers", "holdings", "products", "transactions", "contacts", "complaints",
            "assignments"),
    outputs=("renewals", "claim_followups", "claim_alerts", "executive_visits", "complaints",
             "policy_churn"),
    doc="insurer lists: renewals due, claim follow-ups and alerts, key-account visits, "
        "graded complaints, lapse and non-renewal",
)
