"""The ``tobacco_retail`` step: shops graded by volume with the distance to the next
grade, a cold-start estimate for new shops, status events as churn reasons and the
field reps' visit plan at the shops' agreed hours.

Configured by the tobacco-retail preset (:class:`TobaccoRetailConfig`; the shipped
values are ``pipelines/presets/tobacco_retail.toml``). The cold-start table (the
geometric-mean yearly volume of established shops by format and area) is fitted each
run from per-shard sums. Visits go through the contact policy, scheduled at the start
of each shop's agreed hours; each rep's day is capped in ``finalize`` (a rep's shops
lie in every shard), new shops first, then the most overdue.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import polars as pl
from pydantic import Field, field_validator, model_validator

from crmkit.contact_policy import ContactPolicy, apply_contact_policy
from crmkit.pipeline._step import FitResult, Shard, ShardOutput, Step, StepSummary
from crmkit.pipeline.steps._common import count_partial, counts_from
from crmkit.sectors._presets import SectorConfig

__all__ = ["STEP", "TobaccoRetailConfig"]

_TIME = r"^([01]\d|2[0-3]):[0-5]\d$"


class TobaccoRetailConfig(SectorConfig):
    """``[tobacco_retail]``: the tobacco-retail preset (grades, cold start, visits, status)."""

    SECTION: ClassVar[str] = "tobacco_retail"
    volume_column: str = Field("cartons", description="transactions column with the volume")
    window_days: int = Field(365, gt=0, description="volume window, annualised")
    min_history_days: int = Field(90, gt=0, description="a shop known for less is new: "
                                                        "graded on its cold-start estimate")
    grades: dict[str, float] = Field(
        default_factory=lambda: {"A": 3000.0, "B": 1500.0, "C": 800.0, "D": 300.0, "E": 0.0},
        description="each grade's lowest yearly volume; the lowest grade 0")
    cold_start_keys: list[str] = ["retail_format", "area"]
    cold_start_min_shops: int = Field(5, gt=0, description="fewer established shops in a "
                                                           "format x area: the format alone")
    cadence_days: dict[str, int] = Field(
        default_factory=lambda: {"A": 7, "B": 14, "C": 30, "D": 45, "E": 60})
    new_shop_days: int = Field(30, ge=0, description="a shop this new and not visited yet is "
                                                     "visited at once")
    visits_per_rep: int = Field(12, gt=0, description="visits in a rep's day")
    default_visit_time: str = Field("10:00", pattern=_TIME)
    visit_kinds: list[str] = ["visit"]
    status_kind: str = Field("status", description="contacts.kind of a status event")
    churn_events: list[str] = ["business_closed", "licence_revoked"]
    watch_events: list[str] = ["phone_changed", "owner_changed", "relocated"]
    inactive_days: int = Field(60, gt=0)
    contact_policy: ContactPolicy = Field(default_factory=ContactPolicy)

    @field_validator("grades")
    @classmethod
    def _grades(cls, value: dict[str, float]) -> dict[str, float]:
        if not value or min(value.values()) != 0 or min(value.values()) < 0:
            raise ValueError("grades must map each grade to its lowest yearly volume, the "
                             "lowest grade to 0")
        return value

    @field_validator("cold_start_keys")
    @classmethod
    def _keys(cls, value: list[str]) -> list[str]:
        if not 1 <= len(value) <= 2:
            raise ValueError("cold_start_keys must name one or two customers columns "
                             "(format, then area)")
        return value

    @model_validator(mode="after")
    def _cadence(self) -> TobaccoRetailConfig:
        missing = sorted(set(self.grades) - set(self.cadence_days))
        if missing:
            raise ValueError(f"cadence_days has no entry for grade(s) {', '.join(missing)}")
        return self


def _volumes(shard: Shard, cfg: TobaccoRetailConfig) -> pl.DataFrame:
    from crmkit.exceptions import SchemaError
    from crmkit.sectors import shop_volumes

    customers = shard.get("customers")
    missing = [k for k in cfg.cold_start_keys if k not in customers.columns]
    if missing and customers.height:
        raise SchemaError(f"tobacco_retail: the customers table has no column "
                          f"{', '.join(map(repr, missing))} (tobacco_retail.cold_start_keys)")
    customers = customers.with_columns(*[pl.lit(None, pl.String).alias(k) for k in missing])
    tx = shard.get("transactions")
    if cfg.volume_column not in tx.columns:
        if tx.height:
            raise SchemaError(f"tobacco_retail: the transactions table has no column "
                              f"{cfg.volume_column!r} (tobacco_retail.volume_column)")
        tx = tx.with_columns(pl.lit(None, pl.Float64).alias(cfg.volume_column))
    vols = shop_volumes(tx, customers, as_of=shard.as_of, volume_col=cfg.volume_column,
                        window_days=cfg.window_days, min_history_days=cfg.min_history_days)
    return vols.with_columns(*[customers.select("customer_id", k).join(
        vols.select("customer_id"), on="customer_id", how="right")[k].alias(k)
        for k in cfg.cold_start_keys if k not in vols.columns])


def fit_stats(shard: Shard, cfg: TobaccoRetailConfig, ctx: Any) -> dict[str, pl.DataFrame]:
    from crmkit.sectors import cold_start_stats

    return {"cold_start": cold_start_stats(_volumes(shard, cfg), keys=cfg.cold_start_keys)}


def fit(stats: Mapping[str, pl.DataFrame], ctx: Any, cfg: TobaccoRetailConfig) -> FitResult:
    from crmkit.sectors import cold_start_table

    table = cold_start_table(stats["cold_start"], keys=cfg.cold_start_keys,
                             min_shops=cfg.cold_start_min_shops)
    return FitResult(state=table, payload={"table": table.to_dicts()},
                     training={"established_shops": int(stats["cold_start"]["n"].sum())})


def score(shard: Shard, cfg: TobaccoRetailConfig, state: pl.DataFrame) -> ShardOutput:
    """Grades, status and the shard's visits due (capped per rep in ``finalize``)."""
    from crmkit.sectors import cold_start_estimates, grade_shops, shop_status, visit_plan

    day = shard.as_of
    customers = shard.get("customers")
    vols = cold_start_estimates(_volumes(shard, cfg), state, keys=cfg.cold_start_keys)
    graded = grade_shops(vols, grades=cfg.grades, estimate_col="cold_start_estimate")
    status = shop_status(shard.get("contacts"), shard.get("transactions"), customers, as_of=day,
                         churn_events=cfg.churn_events, watch_events=cfg.watch_events,
                         inactive_days=cfg.inactive_days, status_kind=cfg.status_kind)
    due = visit_plan(graded, shard.get("contacts"), customers, as_of=day,
                     cadence_days=cfg.cadence_days, new_shop_days=cfg.new_shop_days,
                     default_time=cfg.default_visit_time, visit_kinds=cfg.visit_kinds,
                     exclude=status.filter(pl.col("churned")),
                     assignments=shard.get("assignments"))
    split = apply_contact_policy(due, customers, policy=cfg.contact_policy)
    # the grade and the distance to the next one are shown to the shop's manager (the rep)
    assignments = shard.get("assignments")
    if "role" in assignments.columns:
        assignments = assignments.filter(pl.col("role") == "primary")
    owner = assignments.select("customer_id", "manager_id").unique("customer_id", keep="first")
    graded = graded.join(owner, on="customer_id", how="left", maintain_order="left")
    graded = graded.select("customer_id", "manager_id",
                           *[c for c in graded.columns if c not in ("customer_id", "manager_id")])
    status = status.join(owner, on="customer_id", how="left", maintain_order="left")
    return ShardOutput(tables={"grades": graded, "status": status}, partials={
        "due": split.allowed,
        "suppressed": split.suppressed.select("customer_id", "manager_id", "channel",
                                              "scheduled_at", "reason", "suppression_reason"),
        "grades": count_partial(graded, "grade"),
        "status": count_partial(status, "status")})


def finalize(partials: Mapping[str, pl.DataFrame], cfg: TobaccoRetailConfig,
             state: pl.DataFrame, ctx: Any) -> StepSummary:
    """Each rep's day of visits (new shops first, then the most overdue) and the counts."""
    from crmkit.sectors._retail import sort_visits

    due = sort_visits(partials["due"])
    rank = pl.int_range(pl.len()).over("manager_id")
    plan = due.filter(rank < cfg.visits_per_rep)
    backlog = due.filter(rank >= cfg.visits_per_rep)
    return StepSummary(
        tables={"visit_plan": plan.sort("manager_id", "scheduled_at", "customer_id"),
                "cold_start": state, "suppressed": partials["suppressed"].sort("customer_id")},
        facts={"preset": cfg.preset, "visits_planned": int(plan.height),
               "new_shops_to_visit": int((plan["priority"] == 1).sum()),
               "visits_due_not_planned": int(backlog.height),
               "visits_suppressed": int(partials["suppressed"].height),
               "shops_by_grade": counts_from(partials, "grades", "grade"),
               "shops_by_status": counts_from(partials, "status", "status")})


STEP = Step(
    name="tobacco_retail", config_model=TobaccoRetailConfig, score=score, fit=fit,
    fit_stats=fit_stats, finalize=finalize,
    inputs=("customers", "transactions", "contacts", "assignments"),
    outputs=("grades", "status"),
    doc="tobacco retail: shops graded by volume with the distance to the next grade, "
        "cold-start estimates, status events as churn reasons, visit plans at agreed hours",
)
