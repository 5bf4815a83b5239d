"""The ``churn`` step: a survival churn model, refitted on a schedule, scores with reasons.

Per-customer table ``<run>/churn/churn_scores.parquet``: ``customer_id``,
``risk_status`` and, for customers at risk only, the churn probability within each
horizon (conditional on being a customer on the run date),
``restricted_mean_days``, ``median_remaining_days``, ``reason_<k>`` and
``reason_<k>_contribution``. Customers who already churned (by the configured
churn definition), prospects (no product and no transaction yet) and customers
already silent beyond the definition's threshold are not at risk
(:func:`crmkit.churn.risk_status`): their scores are null and ``risk_status`` says
why; the manifest's means are over customers at risk.

``fit`` (on the ``refit`` schedule, stored): the model on the last
``training_window_days`` (customers at risk at the window start, covariates as of
that date, churn in the window) and a backtest (fitted on the window before the
last ``backtest_horizon_days``, scored on that last period). Both are built shard
by shard on a deterministic sample of at most ``training_customers`` customers
(chosen by a hash of the id, so the same for any shard count).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any, Literal

import polars as pl
from pydantic import Field, field_validator

from crmkit.features._shard import crc32_of
from crmkit.pipeline._step import FitResult, ModelSpec, Shard, ShardOutput, Step, StepSummary
from crmkit.pipeline.steps._common import RefitMixin, count_partial, counts_from, finite_or_none

__all__ = ["STEP", "ChurnConfig"]

HISTORY = ("customers", "holdings", "transactions", "balances", "products", "contacts",
           "complaints")
_SAMPLE_BUCKETS = 1_000_000


class ChurnConfig(RefitMixin):
    """``[churn]``: the survival model, its training window, horizons and reason codes.

    Parameters
    ----------
    model : {"cox", "weibull"}
    refit : {"always", "weekly", "monthly", "quarterly", "yearly", "never"}
    penalizer : float
        Ridge penalty of the model.
    covariates : list of str
        Feature columns used (see :func:`crmkit.churn.prepare_covariates`).
    horizons_days : list of float
    rmst_horizon_days : float
        Restriction of the expected remaining lifetime.
    reasons : int
        Reason codes per customer (0 to 10).
    training_window_days : int
    backtest_horizon_days : int
    training_customers : int
        At most this many customers (a hash-based sample) build the training and
        backtest tables.
    churn_definition : str or dict
        Preset name or :class:`crmkit.lifecycle.ChurnDefinition` fields.
    """

    model: Literal["cox", "weibull"] = "cox"
    penalizer: float = Field(0.01, ge=0, allow_inf_nan=False)
    covariates: list[str] = Field(default_factory=lambda: list(_default_covariates()))
    horizons_days: list[float] = Field(default_factory=lambda: [30.0, 90.0, 180.0, 365.0])
    rmst_horizon_days: float = Field(365.0, gt=0, allow_inf_nan=False)
    reasons: int = Field(3, ge=0, le=10)
    training_window_days: int = Field(365, gt=30)
    backtest_horizon_days: int = Field(90, gt=0)
    training_customers: int = Field(200_000, gt=0)
    churn_definition: str | dict[str, Any] = "retail_bank"

    @field_validator("horizons_days")
    @classmethod
    def _horizons(cls, value: list[float]) -> list[float]:
        if not value or any(not h > 0 or h == float("inf") for h in value):
            raise ValueError("horizons_days must be a non-empty list of positive numbers.")
        return value

    def estimator(self):
        """An unfitted estimator with this section's settings."""
        from crmkit.churn import CoxPH, WeibullAFT

        cls = CoxPH if self.model == "cox" else WeibullAFT
        return cls(penalizer=self.penalizer, horizons_days=tuple(self.horizons_days),
                   rmst_horizon_days=self.rmst_horizon_days)


def _default_covariates() -> tuple[str, ...]:
    from crmkit.churn import DEFAULT_COVARIATES

    return DEFAULT_COVARIATES


def _sampled(tables: Mapping[str, pl.DataFrame], share: float) -> dict[str, pl.DataFrame]:
    """The tables restricted to a hash-based sample of customers (all when share >= 1)."""
    if share >= 1:
        return dict(tables)
    ids = tables["customers"].select("customer_id")
    keep = ids.filter((crc32_of(ids["customer_id"]) % _SAMPLE_BUCKETS)
                      < int(share * _SAMPLE_BUCKETS))
    out = {}
    for name, frame in tables.items():
        if "customer_id" in frame.columns:
            out[name] = frame.join(keep, on="customer_id", how="semi")
        elif name == "balances" and "holdings" in tables:
            accounts = tables["holdings"].join(keep, on="customer_id", how="semi")
            out[name] = frame.join(accounts.select("account_id"), on="account_id", how="semi")
        else:
            out[name] = frame
    return out


def fit_stats(shard: Shard, cfg: ChurnConfig, ctx: Any) -> dict[str, pl.DataFrame]:
    """Training and backtest rows of the shard's sampled customers."""
    from crmkit.churn import build_backtest_data, build_survival_data, prepare_covariates
    from crmkit.features import build_features
    from crmkit.lifecycle import label_churn

    share = cfg.training_customers / max(ctx.n_customers, 1)
    tables = _sampled(shard.tables(HISTORY), share)

    def covariates(day: dt.date) -> pl.DataFrame:
        return prepare_covariates(build_features(tables, as_of=day, **shard.feature_options),
                                  cfg.covariates)

    def churn(day: dt.date) -> pl.DataFrame:
        return label_churn(tables, as_of=day, definition=cfg.churn_definition)

    as_of = shard.as_of
    window = dt.timedelta(days=cfg.training_window_days)
    bt_start = as_of - dt.timedelta(days=cfg.backtest_horizon_days)
    return {
        "train": build_survival_data(tables, churn, start=as_of - window, end=as_of,
                                     covariates=covariates),
        "bt_train": build_survival_data(tables, churn, start=bt_start - window, end=bt_start,
                                        covariates=covariates),
        "bt_test": build_backtest_data(tables, churn, as_of=bt_start,
                                       horizon_days=cfg.backtest_horizon_days,
                                       covariates=covariates),
    }


def fit(stats: Mapping[str, pl.DataFrame], ctx: Any, cfg: ChurnConfig) -> FitResult:
    """The churn model on the training rows, and its backtest."""
    from crmkit.churn import backtest_on, frame_to_xy

    train = stats["train"].sort("customer_id")
    names = [c for c in train.columns if c not in (
        "customer_id", "duration_days", "event", "tenure_at_start_days")]
    X, y = frame_to_xy(train.select(["duration_days", "event", *names]), "duration_days", "event")
    model = cfg.estimator().fit(X, y)
    bt = backtest_on(cfg.estimator(), stats["bt_train"].sort("customer_id"),
                     stats["bt_test"].sort("customer_id"),
                     horizon_days=cfg.backtest_horizon_days)
    bt_start = ctx.as_of - dt.timedelta(days=cfg.backtest_horizon_days)
    metrics = {
        "train_start": (bt_start - dt.timedelta(days=cfg.training_window_days)).isoformat(),
        "test_start": bt_start.isoformat(), "horizon_days": cfg.backtest_horizon_days,
        **{k: finite_or_none(bt.get(k)) for k in (
            "auc_horizon", "base_rate", "c_index_harrell", "c_index_uno", "integrated_brier")},
        "train_rows": bt["train_rows"], "test_rows": bt["test_rows"],
    }
    start = ctx.as_of - dt.timedelta(days=cfg.training_window_days)
    training = {"start": start.isoformat(), "end": ctx.as_of.isoformat(),
                "rows": int(X.height), "events": int(y["event"].sum()),
                "sampled_share": min(1.0, cfg.training_customers / max(ctx.n_customers, 1))}
    metrics["coefficients"] = dict(zip(model.covariates_, [float(c) for c in model.coef_]))
    if hasattr(model, "screening_report_"):
        metrics["screening"] = model.screening_report_.to_dicts()
    return FitResult(model, {"model": json.loads(model.to_json())}, training=training,
                     metrics=metrics)


def load(payload: Mapping[str, Any], cfg: ChurnConfig) -> Any:
    """The survival model from its stored JSON data."""
    from crmkit.churn import load_model

    return load_model(json.dumps(payload["model"]))


def score(shard: Shard, cfg: ChurnConfig, model: Any) -> ShardOutput:
    """Churn scores of the shard's customers at risk; null with a status for the others."""
    from crmkit.churn import prepare_covariates, score_customers

    from crmkit.churn import risk_status

    features = shard.get("features")
    status = risk_status(shard.tables(("customers", "holdings", "transactions")), shard.as_of,
                         cfg.churn_definition)
    status = features.select("customer_id").join(status, on="customer_id", how="left",
                                                  maintain_order="left")
    at_risk = features.join(status.filter(pl.col("risk_status") == "at_risk"),
                            on="customer_id", how="semi")
    scores = score_customers(model, prepare_covariates(at_risk, cfg.covariates),
                             horizons_days=cfg.horizons_days, lifetime=True, reasons=cfg.reasons)
    table = (status.join(scores, on="customer_id", how="left", maintain_order="left")
             .sort("customer_id"))
    probs = [c for c in scores.columns if c.startswith("churn_prob_")]
    sums = scores.select(pl.len().alias("n"), *[pl.col(c).sum() for c in probs])
    return ShardOutput(tables={"churn_scores": table},
                       partials={"status": count_partial(table, "risk_status"), "sums": sums})


def finalize(partials: Mapping[str, pl.DataFrame], cfg: ChurnConfig, model: Any,
             ctx: Any) -> StepSummary:
    """Scored counts and mean probabilities over customers at risk."""
    sums = partials["sums"].sum()
    n = int(sums["n"][0])
    return StepSummary(facts={
        "model_class": type(model).__name__,
        "risk_status": counts_from(partials, "status", "risk_status"),
        "n_scored": n,
        "mean_churn_prob_at_risk": {c: finite_or_none(sums[c][0] / n) if n else None
                                    for c in sums.columns if c != "n"},
    })


STEP = Step(
    name="churn", config_model=ChurnConfig, score=score,
    inputs=("features", *HISTORY), outputs=("churn_scores",),
    fit=fit, fit_stats=fit_stats, finalize=finalize,
    model=ModelSpec("churn", schedule=lambda cfg: cfg.refit,
                    settings=lambda cfg: cfg.model_dump(exclude={"refit"}), load=load),
    doc="survival churn model (refit on a schedule), horizon probabilities for customers at "
        "risk, remaining lifetime, reason codes, latest backtest",
)
