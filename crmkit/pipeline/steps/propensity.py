"""The ``propensity`` step: cross-sell propensities and next best products with reasons.

Per-customer tables in ``<run>/propensity/``: ``scores`` (``customer_id``, ``tier``
and ``p_<product>`` for every modelled product) and ``offers`` (the top ``k``
suitable products a customer does not hold and did not open or decline within the
look-back window, with expected value and reasons).

``fit`` (on the ``refit`` schedule, stored): a :class:`crmkit.propensity.PropensityModel`
on stacked landmarks (features as of each landmark, take-ups in the following
horizon), built shard by shard on a deterministic share of customers
(``training_sample``). Its backtest (fitted on the earlier landmarks, scored on the
latest) is recorded per product in the model store and the manifest, beside the
popularity-within-tier baseline.

Reasons (exact contributions) cost about a millisecond per offer against
microseconds for a score, so they are computed only for the offers that can reach
a person: by default (``reasons_for = "managed"``) the first offer
(``reason_ranks``) of customers with a named relationship manager in
``assign.assignment`` (the only customers a call list can hold; a run without the
``assign`` step explains nobody), and only when its propensity is within the top
``reasons_top_share`` of that product's propensities. The cut-offs come from the
fit (the propensity quantiles of each product's eligible customers at the latest
training landmark, stored with the model), so every shard uses the same ones and
the outputs do not depend on the shard count. Every other customer gets scores and
offers without reasons (``explained`` false).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
from pydantic import Field

from crmkit.pipeline._step import FitResult, ModelSpec, Shard, ShardOutput, Step, StepSummary
from crmkit.pipeline.steps._common import RefitMixin, count_partial, counts_from, finite_or_none
from crmkit.propensity import PropensityConfig

__all__ = ["STEP", "PropensityStepConfig"]

HISTORY = ("customers", "holdings", "transactions", "balances", "products", "contacts",
           "complaints")


class PropensityStepConfig(RefitMixin, PropensityConfig):
    """``[propensity]``: :class:`crmkit.propensity.PropensityConfig` plus ``refit`` and
    ``training_customers``: the refit's training rows come from a hash-based sample of
    at most that many customers (``training_sample`` lowers it further; None: all).
    Measured: the refit on every customer of a 100k bank took 360 s of a 397 s run, so
    at 1M a refit night would take about an hour; 50,000 customers keep it near 3
    minutes whatever the bank's size (more rows than products' positives need).
    ``n_jobs`` (default 2: products fitted at once, LightGBM ones in worker processes,
    see :class:`crmkit.propensity.PropensityModel`): the fitted model is the same for
    any value, so changing it triggers no refit. ``cv``
    (default 2 here, 3 in the library): on a 100k bank with 50,000 training customers
    the backtest was the same with 2 folds as with 3 (mean over 14 products: ROC AUC
    0.8735 against 0.8734, PR AUC 0.156 against 0.156, ECE 0.0041 against 0.0041) and
    the refit fitted 3 boosters per product instead of 4, on half the rows instead of
    two thirds (fit 53 s against 85 s, backtest 29 s against 49 s)."""

    training_customers: int | None = Field(50_000, ge=1)
    n_jobs: int = Field(2, ge=1)
    cv: int = Field(2, ge=2, le=10)


def _sample_share(cfg: PropensityStepConfig, ctx: Any) -> float:
    cap = 1.0 if cfg.training_customers is None else \
        cfg.training_customers / max(ctx.n_customers, 1)
    return min(cfg.training_sample, cap, 1.0)


# keys that only choose which offers are explained, or how many threads fit the
# model (the same model for any count): changing them needs no refit
_SCORING_ONLY = {"refit", "reasons_for", "reason_ranks", "reasons_top_share", "n_jobs"}
_GRID = np.linspace(0.0, 1.0, 101)


@dataclass
class FittedPropensity:
    """The step's state: the model and, per product, the propensity percentiles of its
    eligible customers at the latest training landmark (``quantiles[p][i]`` is the
    ``i``-th percentile), from which the reason cut-offs are read."""

    model: Any
    quantiles: dict[str, list[float]] = field(default_factory=dict)

    def cutoffs(self, top_share: float | None) -> dict[str, float]:
        """Per product, the propensity above which an offer is in the top ``top_share``."""
        if top_share is None:
            return {}
        return {p: float(np.interp(1.0 - top_share, _GRID, q)) for p, q in self.quantiles.items()}


def _quantiles(model: Any, train: pl.DataFrame) -> dict[str, list[float]]:
    from crmkit.propensity import split_training_set

    latest = train.filter(pl.col("as_of") == train["as_of"].max())
    X, Y, _ = split_training_set(latest)
    P = model.predict_propensities(X)
    out = {}
    for t in model.targets_:
        p = P[f"p_{t}"].to_numpy()[Y[t].is_not_null().to_numpy()]
        if p.size:
            out[t] = np.quantile(p, _GRID).tolist()
    return out


def _feature_options(shard: Shard) -> dict[str, Any]:
    """The run's ``[features]`` options the model's features are built with, at the
    landmarks and on the run date alike (so the tier feature follows the bank's asset
    weights, as the value step's tiers do)."""
    options = shard.feature_options
    return {"windows": tuple(options.get("windows", (30, 90, 365))),
            "asset_weights": options.get("asset_weights")}


def fit_stats(shard: Shard, cfg: PropensityStepConfig, ctx: Any) -> dict[str, pl.DataFrame]:
    """Landmark training rows of the shard's sampled customers."""
    from crmkit.propensity import build_training_set, landmark_dates

    landmarks = landmark_dates(shard.as_of, horizon=cfg.horizon, unit=cfg.unit,
                               landmarks=cfg.landmarks, spacing_months=cfg.landmark_spacing_months)
    train = build_training_set(shard.tables(HISTORY), as_of=landmarks, horizon=cfg.horizon,
                               unit=cfg.unit, level=cfg.level, targets=cfg.targets,
                               **_feature_options(shard),
                               sample=share if (share := _sample_share(cfg, ctx)) < 1 else None)
    return {"train": train}


def _backtest(train: pl.DataFrame, cfg: PropensityStepConfig) -> dict[str, Any]:
    """Fit on the earlier landmarks, score the latest: metrics per product vs the baseline."""
    from crmkit.propensity import PropensityModel, evaluate_propensities, split_training_set

    latest = train["as_of"].max()
    earlier, test = train.filter(pl.col("as_of") < latest), train.filter(pl.col("as_of") == latest)
    if earlier.height == 0 or test.height == 0:
        return {"skipped": "one landmark only"}
    X, Y, groups = split_training_set(earlier)
    model = PropensityModel(**cfg.model_params()).fit(X, Y, groups=groups)
    Xt, Yt, _ = split_training_set(test)
    scores = model.predict_propensities(Xt)
    baseline = model.predict_propensities(Xt, baseline=True)
    table = evaluate_propensities(Yt, scores, baseline)
    return {"as_of": str(latest), "per_product": [
        {k: (finite_or_none(v) if isinstance(v, float) else v) for k, v in row.items()}
        for row in table.to_dicts()]}


def fit(stats: Mapping[str, pl.DataFrame], ctx: Any, cfg: PropensityStepConfig) -> FitResult:
    """The per-product model on every sampled customer-landmark row, and its backtest."""
    from crmkit.propensity import PropensityModel, split_training_set

    train = stats["train"].sort(["customer_id", "as_of"])
    X, Y, groups = split_training_set(train)
    model = PropensityModel(**cfg.model_params()).fit(X, Y, groups=groups)
    metrics = {"backtest": _backtest(train, cfg) if cfg.backtest else "off"}
    training = {"rows": int(train.height), "customers": int(train["customer_id"].n_unique()),
                "landmarks": sorted({str(d) for d in train["as_of"].unique().to_list()}),
                "sampled_share": _sample_share(cfg, ctx)}
    quantiles = _quantiles(model, train)
    return FitResult(FittedPropensity(model, quantiles),
                     {"model": json.loads(model.to_json()), "propensity_quantiles": quantiles},
                     training=training, metrics=metrics)


def load(payload: Mapping[str, Any], cfg: PropensityStepConfig) -> FittedPropensity:
    """The model from its stored JSON data (nothing is executed); a payload without the
    propensity quantiles (stored by an earlier version) raises, so the model is refitted."""
    from crmkit.propensity import load_model

    return FittedPropensity(load_model(dict(payload["model"])),
                            {k: [float(x) for x in v]
                             for k, v in payload["propensity_quantiles"].items()})


def _reason_customers(shard: Shard, cfg: PropensityStepConfig) -> list[str] | None:
    """The customers whose offers may be explained (None: everyone)."""
    if cfg.reasons_for == "all":
        return None
    assignment = shard.optional("assign.assignment")
    if assignment is None:  # no assign step: no call list can hold anyone
        return []
    return assignment.filter(pl.col("role") == "primary")["customer_id"].unique().to_list()


def score(shard: Shard, cfg: PropensityStepConfig, state: FittedPropensity) -> ShardOutput:
    """Propensities and next best products of one shard's customers."""
    from crmkit.propensity import propensity_features, score_shard

    tables = shard.tables(HISTORY)
    # the run built these customers' features already (same options): not again
    features = propensity_features(tables, as_of=shard.as_of, **_feature_options(shard),
                                   base=shard.get("features"))
    scores, offers = score_shard(
        state.model, tables, as_of=shard.as_of, k=cfg.k, reasons=cfg.reasons,
        lookback_days=cfg.lookback_days, product_value=cfg.product_value,
        risk_tolerance=cfg.risk_tolerance, unassessed_max_rating=cfg.unassessed_max_rating,
        reason_ranks=cfg.reason_ranks, reason_customers=_reason_customers(shard, cfg),
        reason_min_propensity=state.cutoffs(cfg.reasons_top_share), features=features)
    probs = [c for c in scores.columns if c.startswith("p_")]
    sums = scores.select(pl.len().alias("n"), *[pl.col(c).sum() for c in probs])
    explained = offers["explained"].sum() if "explained" in offers.columns else 0
    sums = sums.with_columns(pl.lit(int(explained), pl.Int64).alias("explained"))
    offer_col = "product_id" if "product_id" in offers.columns else offers.columns[1]
    return ShardOutput(tables={"scores": scores, "offers": offers},
                       partials={"sums": sums, "offers": count_partial(offers, offer_col)})


def finalize(partials: Mapping[str, pl.DataFrame], cfg: PropensityStepConfig,
             state: FittedPropensity, ctx: Any) -> StepSummary:
    """Offers per product, offers explained and mean propensities."""
    sums = partials["sums"].sum()
    n = int(sums["n"][0])
    offer_col = [c for c in partials["offers"].columns if c != "n"][0]
    return StepSummary(facts={
        "customers_scored": n,
        "mean_propensity": {c: finite_or_none(sums[c][0] / n) if n else None
                            for c in sums.columns if c.startswith("p_")},
        "offers": counts_from(partials, "offers", offer_col),
        "offers_explained": int(sums["explained"][0]),
        "reason_cutoffs": {p: finite_or_none(v) for p, v in
                           state.cutoffs(cfg.reasons_top_share).items()},
    })


STEP = Step(
    name="propensity", config_model=PropensityStepConfig, score=score,
    inputs=("features", *HISTORY), optional_inputs=("assign.assignment",),
    outputs=("scores", "offers"),
    fit=fit, fit_stats=fit_stats, finalize=finalize,
    model=ModelSpec("propensity", schedule=lambda cfg: cfg.refit,
                    settings=lambda cfg: cfg.model_dump(exclude=_SCORING_ONLY), load=load),
    doc="cross-sell propensities per product, next best products with reasons, backtest",
)
