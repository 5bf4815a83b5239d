"""The ``clv`` step: customer lifetime value (BG/NBD purchases x Gamma-Gamma spend).

Per-customer table ``<run>/clv/clv.parquet``: ``customer_id``, expected purchases and
spend over the horizon, discounted ``clv`` and ``p_alive``; null for customers
first seen on the run date (``T = 0``: no information yet) and for customers with
no purchase history in the transactions.

``fit`` (on the ``refit`` schedule, stored in the model store): both models on the
RFM summaries of all customers, gathered shard by shard (each customer's summary
depends only on their own transactions); refunds and zero-value rows are not
purchases.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import polars as pl
from pydantic import Field

from crmkit._estimator import from_envelope, to_envelope
from crmkit.pipeline._step import FitResult, ModelSpec, Shard, ShardOutput, Step, StepSummary
from crmkit.pipeline.steps._common import RefitMixin, finite_or_none

__all__ = ["STEP", "ClvConfig"]


class ClvConfig(RefitMixin):
    """``[clv]``: the CLV models, their time unit, horizon, discounting and refits."""

    unit: Literal["days", "weeks", "mean_months"] = "weeks"
    horizon: float = Field(52.0, gt=0, allow_inf_nan=False)
    annual_discount_rate: float = Field(0.10, ge=0, allow_inf_nan=False)
    margin: float = Field(1.0, gt=0, allow_inf_nan=False)
    penalizer: float = Field(0.0, ge=0, allow_inf_nan=False)


def _rfm(shard: Shard, cfg: ClvConfig) -> pl.DataFrame:
    from crmkit.features import rfm_summary

    tx = shard.get("transactions").filter(pl.col("amount") > 0)
    rfm = rfm_summary(tx, observation_end=shard.as_of, unit=cfg.unit)
    known = shard.get("features").select("customer_id")
    # customers first seen on as_of (T = 0) carry no information yet
    return (rfm.join(known, on="customer_id", how="semi")
            .filter(pl.col(f"T_{cfg.unit}") > 0).sort("customer_id"))


def fit_stats(shard: Shard, cfg: ClvConfig, ctx: Any) -> dict[str, pl.DataFrame]:
    """The shard's RFM summaries (what both CLV models are fitted on)."""
    return {"rfm": _rfm(shard, cfg)}


def fit(stats: Mapping[str, pl.DataFrame], ctx: Any, cfg: ClvConfig) -> FitResult:
    """BG/NBD and Gamma-Gamma on every customer's RFM summary (order-free)."""
    from crmkit.value import BetaGeo, GammaGamma

    rfm = stats["rfm"].sort("customer_id")
    bg = BetaGeo(penalizer=cfg.penalizer).fit(rfm)
    gg = GammaGamma(penalizer=cfg.penalizer).fit(rfm)
    payload = {"transaction_model": to_envelope(bg), "spend_model": to_envelope(gg)}
    metrics = {"transaction_model": {"model": "BetaGeo", "params": dict(bg.params_)},
               "spend_model": {"model": "GammaGamma", "params": dict(gg.params_)}}
    return FitResult((bg, gg), payload, training={"customers": int(rfm.height),
                                                  "unit": cfg.unit}, metrics=metrics)


def load(payload: Mapping[str, Any], cfg: ClvConfig) -> Any:
    """The two models from their stored JSON data."""
    return (from_envelope(payload["transaction_model"]), from_envelope(payload["spend_model"]))


def score(shard: Shard, cfg: ClvConfig, models: Any) -> ShardOutput:
    """CLV and P(alive) of one shard's customers."""
    from crmkit.value import customer_lifetime_value

    bg, gg = models
    rfm = _rfm(shard, cfg)
    clv = customer_lifetime_value(bg, gg, rfm, horizons=cfg.horizon,
                                  annual_discount_rate=cfg.annual_discount_rate,
                                  margin=cfg.margin)
    p_alive = bg.probability_alive(rfm)
    table = (shard.get("features").select("customer_id")
             .join(clv.join(p_alive, on="customer_id"), on="customer_id", how="left")
             .sort("customer_id"))
    stats = table.select(pl.len().alias("customers"), pl.col("clv").count().alias("scored"),
                         pl.col("clv").sum().alias("clv_sum"))
    return ShardOutput(tables={"clv": table}, partials={"stats": stats})


def finalize(partials: Mapping[str, pl.DataFrame], cfg: ClvConfig, models: Any,
             ctx: Any) -> StepSummary:
    """How many customers got a CLV, and its mean."""
    s = partials["stats"].sum()
    scored = int(s["scored"][0])
    return StepSummary(facts={
        "customers": int(s["customers"][0]), "scored": scored,
        "not_scored": "first seen on the run date or no purchase yet",
        "mean_clv": finite_or_none(s["clv_sum"][0] / scored) if scored else None,
    })


STEP = Step(
    name="clv", config_model=ClvConfig, score=score,
    inputs=("features", "transactions"), outputs=("clv",),
    fit=fit, fit_stats=fit_stats, finalize=finalize,
    model=ModelSpec("clv", schedule=lambda cfg: cfg.refit,
                    settings=lambda cfg: cfg.model_dump(exclude={"refit"}), load=load),
    doc="CLV (BG/NBD + Gamma-Gamma, refitted on a schedule), P(alive)",
)
