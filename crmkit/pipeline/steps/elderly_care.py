"""The ``elderly_care`` step: the priority register, visits by priority, open service
cases and the case closure rate and time to close.

Configured by the community elderly-care preset (:class:`ElderlyCareConfig`; the
shipped values are ``pipelines/presets/elderly_care.toml``). Visits go through the
contact policy at the start of each resident's agreed hours; each care worker's day
is capped in ``finalize`` (a worker's residents lie in every shard): newly registered
residents first, then the most overdue. Case measures are computed in ``finalize``
from the shards' cases of the window (for the service, each centre and each worker).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, ClassVar

import polars as pl
from pydantic import Field, field_validator, model_validator

from crmkit.contact_policy import ContactPolicy, apply_contact_policy
from crmkit.pipeline._step import Shard, ShardOutput, Step, StepSummary
from crmkit.pipeline.steps._common import count_partial, counts_from
from crmkit.sectors._presets import SectorConfig

__all__ = ["ElderlyCareConfig", "STEP"]

FLAGS = ("aged_80_plus", "lives_alone", "dependent", "low_income")


class ElderlyCareConfig(SectorConfig):
    """``[elderly_care]``: the community elderly-care preset."""

    SECTION: ClassVar[str] = "elderly_care"
    age_threshold: int = Field(80, gt=0, description="the aged_80_plus flag: this age or more")
    weights: dict[str, int] = Field(
        default_factory=lambda: {"aged_80_plus": 1, "lives_alone": 1, "dependent": 2,
                                 "low_income": 1},
        description="score of each vulnerability flag (customers columns, aged_80_plus "
                    "from birth_year)")
    levels: dict[str, int] = Field(
        default_factory=lambda: {"high": 3, "medium": 2, "low": 1, "standard": 0},
        description="each priority's minimum score; the lowest 0")
    cadence_days: dict[str, int] = Field(
        default_factory=lambda: {"high": 7, "medium": 14, "low": 30, "standard": 90})
    new_resident_days: int = Field(30, ge=0, description="a resident registered this recently "
                                                         "and not visited yet is visited at once")
    visits_per_worker: int = Field(10, gt=0)
    default_visit_time: str = Field("10:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    visit_kinds: list[str] = ["visit"]
    case_window_days: int = Field(365, gt=0, description="case measures over cases opened in "
                                                         "this window")
    case_target_days: dict[str, int] = Field(
        default_factory=lambda: {"emergency_alarm": 1, "medical_escort": 3, "meal_service": 5,
                                 "cleaning": 7, "home_repair": 14, "benefits_application": 30})
    default_case_target_days: int = Field(14, gt=0)
    contact_policy: ContactPolicy = Field(default_factory=ContactPolicy)

    @field_validator("levels")
    @classmethod
    def _levels(cls, value: dict[str, int]) -> dict[str, int]:
        if not value or min(value.values()) != 0:
            raise ValueError("levels must map each priority to its minimum score, the lowest 0")
        return value

    @model_validator(mode="after")
    def _cadence(self) -> ElderlyCareConfig:
        missing = sorted(set(self.levels) - set(self.cadence_days))
        if missing:
            raise ValueError(f"cadence_days has no entry for priority {', '.join(missing)}")
        return self


def score(shard: Shard, cfg: ElderlyCareConfig, state: Any) -> ShardOutput:
    """One shard's register, open cases, visits due and cases of the window."""
    from crmkit.sectors import open_cases, priority_register, visit_plan

    day = shard.as_of
    people = shard.get("customers")
    cases = shard.get("complaints")
    if "closed_on" not in cases.columns:
        if cases.height:
            from crmkit.exceptions import SchemaError

            raise SchemaError("elderly_care: the complaints table (service cases) has no "
                              "column 'closed_on'")
        cases = cases.with_columns(pl.lit(None, pl.Date).alias("closed_on"))
    register = priority_register(people, as_of=day, weights=cfg.weights, levels=cfg.levels,
                                 age_threshold=cfg.age_threshold)
    assignments = shard.get("assignments")
    due = visit_plan(register.select("customer_id", pl.col("priority").alias("care_priority")),
                     shard.get("contacts"), people, as_of=day, cadence_days=cfg.cadence_days,
                     new_shop_days=cfg.new_resident_days, default_time=cfg.default_visit_time,
                     visit_kinds=cfg.visit_kinds, assignments=assignments,
                     grade_col="care_priority", noun="resident", opened_word="registered")
    split = apply_contact_policy(due, people, policy=cfg.contact_policy)
    open_ = open_cases(cases, as_of=day, target_days=cfg.case_target_days,
                       default_target_days=cfg.default_case_target_days)
    start = day - dt.timedelta(days=cfg.case_window_days)
    primary = assignments.filter(pl.col("role") == "primary") if "role" in assignments.columns \
        else assignments
    window = cases.filter((pl.col("date") > start) & (pl.col("date") <= day)).select(
        "customer_id", "date", "kind", "outcome", "closed_on").join(
        people.select("customer_id", "branch_id"), on="customer_id", how="left").join(
        primary.select("customer_id", "manager_id").unique("customer_id", keep="first"),
        on="customer_id", how="left")
    return ShardOutput(tables={"priority_register": register, "open_cases": open_}, partials={
        "due": split.allowed,
        "suppressed": split.suppressed.select("customer_id", "manager_id", "channel",
                                              "scheduled_at", "reason", "suppression_reason"),
        "cases": window,
        "priority": count_partial(register, "priority"),
        "not_assessed": count_partial(register.filter(pl.col("not_assessed").is_not_null()),
                                      "priority")})


def finalize(partials: Mapping[str, pl.DataFrame], cfg: ElderlyCareConfig, state: Any,
             ctx: Any) -> StepSummary:
    """Each care worker's visits (new residents first, then the most overdue) and the
    case measures of the service, each centre and each worker."""
    from crmkit.sectors import case_measures

    from crmkit.sectors._retail import sort_visits

    due = sort_visits(partials["due"])
    rank = pl.int_range(pl.len()).over("manager_id")
    plan = due.filter(rank < cfg.visits_per_worker)
    cases = partials["cases"]
    as_of = ctx.as_of
    measures = []
    for level, by in (("service", []), ("centre", ["branch_id"]), ("worker", ["manager_id"])):
        m = case_measures(cases, as_of=as_of, window_days=cfg.case_window_days, by=by,
                          groups=cases.select("customer_id", *by).unique("customer_id")
                          if by else None)
        m = m.select(pl.lit(level).alias("level"),
                     (pl.col(by[0]) if by else pl.lit("all")).alias("group"),
                     *[c for c in m.columns if c not in by])
        measures.append(m)
    measures = pl.concat(measures, how="vertical_relaxed")
    service = measures.row(0, named=True)
    return StepSummary(
        tables={"visit_plan": plan.sort("manager_id", "scheduled_at", "customer_id"),
                "case_measures": measures,
                "suppressed": partials["suppressed"].sort("customer_id")},
        facts={"preset": cfg.preset, "visits_planned": int(plan.height),
               "new_residents_to_visit": int((plan["priority"] == 1).sum()),
               "visits_due_not_planned": int(due.height - plan.height),
               "visits_suppressed": int(partials["suppressed"].height),
               "residents_by_priority": counts_from(partials, "priority", "priority"),
               "residents_not_fully_assessed": int(partials["not_assessed"]["n"].sum())
               if partials["not_assessed"].height else 0,
               "case_closure_rate": service["closure_rate"],
               "median_days_to_close": service["median_days_to_close"]})


STEP = Step(
    name="elderly_care", config_model=ElderlyCareConfig, score=score, finalize=finalize,
    inputs=("customers", "contacts", "complaints", "assignments"),
    outputs=("priority_register", "open_cases"),
    doc="community elderly care: priority register from vulnerability flags, visits by "
        "priority, case closure rate and time to close",
)
