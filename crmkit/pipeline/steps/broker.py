"""The ``broker`` step: value by commission, by turnover-weighted assets and by loyalty
points with a comparison of which yardstick tracks value best; grades on the chosen
yardstick with a persona beside them; entitlements by grade and club (basic service
for non-core customers); the upgrade list; core customers' data completeness counted
per adviser.

Configured by the broker preset (:class:`BrokerConfig`; the shipped values are
``pipelines/presets/broker.toml``). The global part (``fit``, every run) compares the
yardsticks on history: each measured ``comparison_horizon_days`` before the run date
against the commission the customer paid since (:func:`crmkit.value.compare_value_measures`),
picks the grading yardstick (``grade_measure = "auto"``: the best by
``comparison_metric``), and sets the grade edges from the top shares of customers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import polars as pl
from pydantic import Field, field_validator, model_validator

from crmkit.contact_policy import ContactPolicy, apply_contact_policy, canonical_channel
from crmkit.pipeline._step import FitResult, Shard, ShardOutput, Step, StepSummary
from crmkit.pipeline.steps._common import count_partial, counts_from
from crmkit.sectors._presets import SectorConfig

__all__ = ["BrokerConfig", "STEP"]

_MEASURES = ("commission", "assets", "turnover_weighted_assets", "loyalty_points")


class BrokerConfig(SectorConfig):
    """``[broker]``: the securities-broker preset."""

    SECTION: ClassVar[str] = "broker"
    commission_column: str = "commission"
    points_category: str = Field("loyalty", description="products.category of the loyalty-"
                                                        "points accounts")
    window_days: int = Field(365, gt=0, description="commission and trading window")
    grade_measure: Literal["auto", "commission", "assets", "turnover_weighted_assets",
                           "loyalty_points"] = Field(
        "auto", description="the yardstick the grades use; auto: the one that tracked next-"
                            "period commission best in the comparison")
    comparison_horizon_days: int = Field(180, gt=0, description="the comparison measures "
                                                                "this long before the run date")
    comparison_metric: Literal["spearman", "gini", "top_capture", "top_lift", "r2"] = "spearman"
    grade_shares: dict[str, float] = Field(
        default_factory=lambda: {"diamond": 0.02, "platinum": 0.08, "gold": 0.2,
                                 "standard": 1.0},
        description="top share of customers in each grade or better; the lowest grade 1")
    core_grades: list[str] = ["diamond", "platinum", "gold"]
    entitlements: dict[str, list[str]] = Field(default_factory=lambda: {
        "diamond": ["dedicated senior adviser", "research on request", "commission rate review",
                    "priority IPO subscription service", "quarterly portfolio review"],
        "platinum": ["dedicated adviser", "daily research", "commission rate review",
                     "half-yearly portfolio review"],
        "gold": ["named adviser team", "weekly research", "yearly portfolio review"]})
    club_entitlements: dict[str, list[str]] = Field(default_factory=lambda: {
        "elite_club": ["club events", "research on request", "priority hotline"],
        "star_club": ["club events", "weekly research"]})
    basic_service: list[str] = ["app and online self-service", "call-centre support",
                                "monthly market digest"]
    upgrade_asset_share: float = Field(0.2, gt=0, lt=1, description="asset-rich: the top share "
                                                                    "of customers by assets")
    upgrade_commission_share: float = Field(0.5, gt=0, lt=1, description="low contribution: "
                                            "the bottom share by commission")
    near_next_grade: float = Field(0.1, ge=0, lt=1, description="within this share of the "
                                                                "next grade's edge")
    upgrade_channel: str = "phone"
    core_fields: list[str] = Field(["profile_*"], description="customers columns (or shell "
                                                              "patterns) of the core data")
    complete_at: float = Field(0.9, gt=0, le=1, description="a customer's data counts as "
                                                            "complete at this share")
    active_turnover: float = Field(4.0, gt=0)
    regular_trades: int = Field(24, gt=0)
    contact_policy: ContactPolicy = Field(default_factory=ContactPolicy)

    @field_validator("upgrade_channel")
    @classmethod
    def _channel(cls, value: str) -> str:
        return canonical_channel(value)

    @model_validator(mode="after")
    def _grades(self) -> BrokerConfig:
        shares = self.grade_shares
        if not shares or max(shares.values()) != 1.0 or min(shares.values()) <= 0:
            raise ValueError("grade_shares must map grades to top shares in (0, 1], the lowest "
                             "grade to 1")
        unknown = sorted((set(self.core_grades) | set(self.entitlements)) - set(shares))
        if unknown:
            raise ValueError(f"core_grades and entitlements name grade(s) not in grade_shares: "
                             f"{', '.join(unknown)}")
        return self


def _measures(shard: Shard, cfg: BrokerConfig, day: dt.date) -> pl.DataFrame:
    from crmkit.sectors import broker_measures

    tx = shard.get("transactions")
    if cfg.commission_column not in tx.columns:
        if tx.height:
            from crmkit.exceptions import SchemaError

            raise SchemaError(f"broker: the transactions table has no column "
                              f"{cfg.commission_column!r} (broker.commission_column)")
        tx = tx.with_columns(pl.lit(None, pl.Float64).alias(cfg.commission_column))
    return broker_measures(shard.get("customers"), shard.get("holdings"), shard.get("balances"),
                           tx, shard.get("products"), as_of=day, window_days=cfg.window_days,
                           commission_col=cfg.commission_column,
                           points_category=cfg.points_category)


def fit_stats(shard: Shard, cfg: BrokerConfig, ctx: Any) -> dict[str, pl.DataFrame]:
    """Every customer's yardsticks now (for the edges) and at the comparison date with the
    commission paid since (one row of floats per customer)."""
    day = shard.as_of
    past_day = day - dt.timedelta(days=cfg.comparison_horizon_days)
    now = _measures(shard, cfg, day)
    known = shard.get("customers").filter(pl.col("first_seen") <= past_day).select("customer_id")
    past = _measures(shard, cfg, past_day).join(known, on="customer_id", how="semi")
    tx = shard.get("transactions")
    when = pl.col("timestamp").cast(pl.Date)
    paid = tx.filter((when > past_day) & (when <= day)).group_by("customer_id").agg(
        pl.col(cfg.commission_column).sum().alias("commission_next"))
    past = past.select("customer_id", *_MEASURES).join(paid, on="customer_id", how="left") \
        .with_columns(pl.col("commission_next").fill_null(0.0))
    return {"now": now.select("customer_id", *_MEASURES), "past": past}


def fit(stats: Mapping[str, pl.DataFrame], ctx: Any, cfg: BrokerConfig) -> FitResult:
    """The yardstick comparison, the grading yardstick, its grade edges and the upgrade
    list's asset and commission edges."""
    from crmkit.sectors import grade_edges
    from crmkit.value import compare_value_measures

    past, now = stats["past"], stats["now"]
    if past.height >= 2 and past["commission_next"].sum() > 0:
        comparison = compare_value_measures(past.select("customer_id", *_MEASURES),
                                            past.select("customer_id", "commission_next"),
                                            candidates=list(_MEASURES),
                                            sort_by=cfg.comparison_metric)
    else:
        comparison = pl.DataFrame(schema={"measure": pl.String})
    if cfg.grade_measure != "auto":
        chosen = cfg.grade_measure
    elif comparison.height:
        chosen = comparison["measure"][0]
    else:
        chosen = "assets"
    edges = grade_edges(now[chosen], shares=cfg.grade_shares)
    asset_edge = float(now["assets"].quantile(1 - cfg.upgrade_asset_share, "higher") or 0.0)
    commission_edge = float(now["commission"].quantile(cfg.upgrade_commission_share, "lower")
                            or 0.0)
    state = {"comparison": comparison, "measure": chosen, "edges": edges,
             "asset_edge": max(asset_edge, 1e-9), "commission_edge": commission_edge}
    return FitResult(state=state, payload={k: v for k, v in state.items() if k != "comparison"},
                     training={"customers": int(now.height),
                               "compared_customers": int(past.height)},
                     metrics={"comparison": comparison.to_dicts()})


def score(shard: Shard, cfg: BrokerConfig, state: dict) -> ShardOutput:
    """One shard's grades with personas, service entitlements and upgrade candidates."""
    from crmkit.sectors import (data_completeness, entitlements, grade_values, persona,
                                upgrade_list)

    day = shard.as_of
    people = shard.get("customers")
    measure = state["measure"]
    m = _measures(shard, cfg, day)
    graded = grade_values(m.with_columns(pl.col(measure).alias("value")), col="value",
                          edges=state["edges"])
    who = persona(m, people, shard.get("holdings"), shard.get("balances"), shard.get("products"),
                  as_of=day, active_turnover=cfg.active_turnover,
                  regular_trades=cfg.regular_trades)
    graded = graded.join(who, on="customer_id", how="left")
    graded = graded.with_columns(
        pl.lit(measure).alias("value_measure"),
        pl.format("grade {} on {} {}", pl.col("grade"), pl.lit(measure),
                  pl.col("value").round(2))
        .add(pl.when(pl.col("next_grade").is_null()).then(pl.lit(" (top grade)"))
             .otherwise(pl.format(" ({} more reaches {})", pl.col("to_next_grade").round(2),
                                  pl.col("next_grade"))))
        .add(pl.lit("; persona: ")).add(pl.col("persona")).alias("reason"))
    club = people.select("customer_id", pl.col("club") if "club" in people.columns
                         else pl.lit(None, pl.String).alias("club"))
    service = entitlements(graded.select("customer_id", "grade").join(club, on="customer_id",
                                                                      how="left"),
                           by_grade=cfg.entitlements, by_club=cfg.club_entitlements,
                           core_grades=cfg.core_grades, basic=cfg.basic_service)
    filled = data_completeness(people, fields=cfg.core_fields)
    service = service.join(filled.select("customer_id", "completeness", "missing"),
                           on="customer_id", how="left")
    # completeness counts for core customers only (basic-service customers are not profiled)
    service = service.with_columns(
        pl.when(pl.col("core")).then(pl.col("completeness")).alias("completeness"),
        pl.when(pl.col("core")).then(pl.col("missing")).alias("missing"))
    service = service.with_columns(
        pl.when(pl.col("core")).then(pl.format(
            "core ({}{}): {}; data {}% complete", pl.col("grade"),
            pl.when(pl.col("club").is_not_null()).then(pl.lit(", ") + pl.col("club"))
            .otherwise(pl.lit("")), pl.col("entitlements"),
            (pl.col("completeness") * 100).round(0).cast(pl.Int64)))
        .otherwise(pl.format("not core ({}, no club): basic service only: {}",
                             pl.col("grade"), pl.col("entitlements"))).alias("reason"))
    up = upgrade_list(graded.with_columns(pl.col("assets"), pl.col("commission")),
                      asset_edge=state["asset_edge"], commission_edge=state["commission_edge"],
                      near_share=cfg.near_next_grade, channel=cfg.upgrade_channel)
    split = apply_contact_policy(up, people, policy=cfg.contact_policy)
    assignments = shard.get("assignments")
    if "role" in assignments.columns:
        assignments = assignments.filter(pl.col("role") == "primary")
    core = service.filter(pl.col("core")).join(
        assignments.select("customer_id", "manager_id").unique("customer_id", keep="first"),
        on="customer_id", how="left")
    per_adviser = core.group_by("manager_id").agg(
        pl.len().cast(pl.Int64).alias("core_customers"),
        pl.col("completeness").sum().alias("sum_completeness"),
        (pl.col("completeness") >= cfg.complete_at).sum().cast(pl.Int64).alias("complete"))
    gaps = core.select("manager_id", pl.col("missing").str.split(", ").alias("field")) \
        .explode("field").drop_nulls("field").group_by("manager_id", "field").agg(
        pl.len().cast(pl.Int64).alias("n"))
    grades_out = graded.select(
        "customer_id", *_MEASURES, "trading_volume", "trades", "value_measure", "value", "grade",
        "next_grade", "next_grade_value", "to_next_grade", "trading_style", "risk_appetite",
        "persona", "reason")
    return ShardOutput(
        tables={"value_grades": grades_out, "service": service, "upgrades": split.allowed},
        partials={"suppressed": split.suppressed, "per_adviser": per_adviser, "gaps": gaps,
                  "grades": count_partial(grades_out, "grade"),
                  "levels": count_partial(service, "service_level"),
                  "styles": count_partial(grades_out, "trading_style")})


def finalize(partials: Mapping[str, pl.DataFrame], cfg: BrokerConfig, state: dict,
             ctx: Any) -> StepSummary:
    """The yardstick comparison, each adviser's data completeness and the counts."""
    per = partials["per_adviser"].group_by("manager_id").agg(
        pl.col("core_customers").sum(), pl.col("sum_completeness").sum(),
        pl.col("complete").sum())
    top = partials["gaps"].group_by("manager_id", "field").agg(pl.col("n").sum()).sort(
        ["manager_id", "n", "field"], descending=[False, True, False]).group_by(
        "manager_id", maintain_order=True).agg(
        pl.format("{} ({})", pl.col("field"), pl.col("n")).head(3).str.join(", ")
        .alias("most_missing"))
    advisers = per.join(top, on="manager_id", how="left").with_columns(
        (pl.col("sum_completeness") / pl.col("core_customers")).round(4)
        .alias("mean_completeness"),
        (pl.col("complete") / pl.col("core_customers")).round(4).alias("share_complete"))
    advisers = advisers.with_columns(
        pl.col("mean_completeness").rank("min", descending=True).cast(pl.Int64).alias("rank"))
    advisers = advisers.select("manager_id", "core_customers", "mean_completeness", "complete",
                               "share_complete", "rank", "most_missing").sort("rank",
                                                                             "manager_id")
    comparison = state["comparison"].with_columns(
        (pl.col("measure") == state["measure"]).alias("grading"))
    suppressed = partials["suppressed"].sort("customer_id")
    return StepSummary(
        tables={"measure_comparison": comparison, "adviser_completeness": advisers,
                "suppressed": suppressed},
        facts={"preset": cfg.preset, "grade_measure": state["measure"],
               "grade_edges": {k: None if v is None else round(v, 2)
                               for k, v in state["edges"].items()},
               "customers_by_grade": counts_from(partials, "grades", "grade"),
               "service_levels": counts_from(partials, "levels", "service_level"),
               "trading_styles": counts_from(partials, "styles", "trading_style"),
               "upgrade_candidates_suppressed": int(suppressed.height)})


STEP = Step(
    name="broker", config_model=BrokerConfig, score=score, fit=fit, fit_stats=fit_stats,
    finalize=finalize,
    inputs=("customers", "holdings", "balances", "transactions", "products", "assignments"),
    outputs=("value_grades", "service", "upgrades"),
    doc="securities broker: value yardsticks compared, grades with personas, entitlements by "
        "grade and club, the upgrade list, core data completeness per adviser",
)
