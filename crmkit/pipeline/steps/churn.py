"""The ``churn`` step: a landmark churn-risk model, refitted on a schedule, scored on the risk set.

Per-customer table ``<run>/churn/churn_scores.parquet``, one row per customer of
the run's features, sorted by ``customer_id``:

- ``risk_status``: ``at_risk``, or why the customer is not scored (``prospect``,
  ``churned``, ``silent``; :func:`crmkit.churn.risk_status` under the configured
  churn definition); null for a customer not yet known on the run date;
- ``churn_prob_<h>d`` for each horizon: the recalibrated probability of churn
  (any cause of the definition) within ``h`` days, customers at risk only (null
  for everybody else, never computed). Each horizon has its own calibrator; the
  probabilities are then made non-decreasing in the horizon (a 90-day risk is
  never below the 30-day risk of the same customer);
- ``churn_flag``: the capacity-sized decision. True for the customers at risk
  whose ``flag_horizon_days`` risk is at or above the cut chosen at the fit so that
  ``flag_share`` of the customers at risk (or ``flag_capacity`` customers) are
  flagged; False for the other customers at risk; null outside the risk set. The
  lifecycle rules (``churn_risk``) and the call lists (``high_risk``) use it
  instead of a fixed 0.5;
- ``churn_cause``: the cause (``closure`` or ``silence``) with the larger hazard
  over the longest horizon (null with a one-cause definition);
- ``reason_<k>`` and ``reason_<k>_contribution``: the covariates raising that
  cause's hazard most, and by how much (log hazard ratio).

``fit`` (on the ``refit`` schedule, stored in the model store): stacked landmarks
(:func:`crmkit.churn.landmark_training_data`): covariates as of each landmark,
outcomes over the longest horizon after it, customers at risk on it only. The
``landmarks`` training landmarks, ``landmark_spacing_days`` apart, end where the
held-out ``calibration_landmarks`` begin; the latest landmark is the latest whose
outcome is known on the run date (the longest horizon plus the silence threshold
before it), so nothing after the run date is read. Every shard contributes the
rows of its customers in a hash-based sample of at most ``training_customers``
customers (the same customers for any shard count); ``fit`` stacks them sorted by
landmark and customer, fits :func:`crmkit.churn.fit_churn_risk_from_data` (one
cause-specific model per cause of a combined definition) and recalibrates each
horizon on the held-out landmarks. The same sample, at risk on the run date and
described as of it, sets the flag's cut. The held-out landmarks also give the
metrics (AUC of the flag horizon, Harrell's C and integrated Brier score of the
raw risk) recorded in the store and the manifest.
"""

from __future__ import annotations

import datetime as dt
import math
import warnings
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import polars as pl
from pydantic import Field, field_validator, model_validator

from crmkit.exceptions import DataWarning
from crmkit.features._shard import crc32_of, restrict_to_customers
from crmkit.pipeline._step import FitResult, ModelSpec, Shard, ShardOutput, Step, StepSummary
from crmkit.pipeline.steps._common import RefitMixin, count_partial, counts_from, finite_or_none

__all__ = ["STEP", "ChurnConfig"]

HISTORY = ("customers", "holdings", "transactions", "balances", "products", "contacts",
           "complaints")
_SAMPLE_BUCKETS = 1_000_000
_OUTCOME_COLS = ("customer_id", "landmark", "duration_days", "event", "cause", "churn_date")


def _default_covariates() -> list[str]:
    from crmkit.churn import CHURN_RISK_COVARIATES

    return list(CHURN_RISK_COVARIATES)


class ChurnConfig(RefitMixin):
    """``[churn]``: the landmark churn-risk model, its definition, horizons and decision cut.

    Parameters
    ----------
    model : {"cox", "weibull"}
        Survival model of each cause.
    refit : {"always", "weekly", "monthly", "quarterly", "yearly", "never"}
    penalizer : float
        Ridge penalty (a Cox fit that diverges is refitted with a stronger one, recorded).
    covariates : list of str
        Feature columns (see :func:`crmkit.churn.prepare_risk_covariates`).
    horizons_days : list of float
        Horizons of the probabilities; the longest is the landmark outcome window.
    reasons : int
        Reason codes per customer (0 to 10).
    churn_definition : str or dict
        Preset name or :class:`crmkit.lifecycle.ChurnDefinition` fields; default
        ``"retail_bank_combined"`` (every product closed, or silent for 180 days).
    silence_days : int, optional
        Overrides the definition's silence threshold.
    landmarks : int
        Training landmarks.
    landmark_spacing_days : int
    calibration_landmarks : int
        Held-out landmarks (the latest ones) that recalibrate each horizon (0: none).
    calibration : {"isotonic", "platt"} or None
    training_customers : int
        At most this many customers (a hash-based sample) build the landmark rows
        (30,000 by default: about 90,000 training rows and 10,000 events on the
        sample bank, more than the docs backtest's 20,000-customer fits, which
        reach a 90-day AUC of 0.92; each customer costs about 0.44 ms of CPU in
        ``fit_stats``, so the sample bounds the refit at any bank size).
    flag_horizon_days : float
        The horizon whose risk sets ``churn_flag`` (one of ``horizons_days``).
    flag_share : float
        Share of the customers at risk flagged, in (0, 1].
    flag_capacity : int, optional
        Customers to flag over the whole bank (e.g. the calls the branches can make
        over the horizon); replaces ``flag_share`` with capacity / customers at risk.
    """

    model: Literal["cox", "weibull"] = "cox"
    penalizer: float = Field(0.01, ge=0, allow_inf_nan=False)
    covariates: list[str] = Field(default_factory=_default_covariates)
    horizons_days: list[float] = Field(default_factory=lambda: [30.0, 90.0, 180.0, 365.0])
    reasons: int = Field(3, ge=0, le=10)
    churn_definition: str | dict[str, Any] = "retail_bank_combined"
    silence_days: int | None = Field(None, gt=0)
    landmarks: int = Field(6, ge=1, le=24)
    landmark_spacing_days: int = Field(45, ge=1)
    calibration_landmarks: int = Field(4, ge=0, le=12)
    calibration: Literal["isotonic", "platt"] | None = "isotonic"
    training_customers: int = Field(30_000, gt=0)
    flag_horizon_days: float = Field(90.0, gt=0, allow_inf_nan=False)
    flag_share: float = Field(0.05, gt=0, le=1)
    flag_capacity: int | None = Field(None, gt=0)

    @field_validator("horizons_days")
    @classmethod
    def _horizons(cls, value: list[float]) -> list[float]:
        if not value or any(not h > 0 or h == float("inf") for h in value):
            raise ValueError("horizons_days must be a non-empty list of positive numbers.")
        return value

    @field_validator("churn_definition")
    @classmethod
    def _definition(cls, value: Any) -> Any:
        from crmkit.lifecycle._config import validate_churn_definition

        validate_churn_definition(value)
        return value

    @model_validator(mode="after")
    def _flag_horizon(self) -> ChurnConfig:
        if float(self.flag_horizon_days) not in {float(h) for h in self.horizons_days}:
            raise ValueError(f"flag_horizon_days ({self.flag_horizon_days:g}) must be one of "
                             f"horizons_days ({', '.join(f'{h:g}' for h in self.horizons_days)})")
        return self

    def definition(self):
        """The validated churn definition."""
        from crmkit.lifecycle._config import validate_churn_definition

        return validate_churn_definition(self.churn_definition)

    def knots(self) -> dict[str, list[float]]:
        """Piecewise-linear terms of the covariates used."""
        from crmkit.churn import CHURN_RISK_KNOTS

        return {k: [float(x) for x in v] for k, v in CHURN_RISK_KNOTS.items()
                if k in self.covariates}

    def landmark_dates(self, as_of: dt.date) -> tuple[list[dt.date], list[dt.date]]:
        """Training and held-out landmarks as of a run date."""
        from crmkit.churn import landmark_dates, silence_days_of

        d = self.definition()
        dates = landmark_dates(as_of, n=self.landmarks + self.calibration_landmarks,
                               spacing_days=self.landmark_spacing_days,
                               horizon_days=max(self.horizons_days), definition=d,
                               silence_days=silence_days_of(d, self.silence_days))
        return dates[:self.landmarks], dates[self.landmarks:]


def _sample_share(cfg: ChurnConfig, ctx: Any) -> float:
    return min(1.0, cfg.training_customers / max(ctx.n_customers, 1))


def _sampled(tables: Mapping[str, pl.DataFrame], share: float) -> dict[str, pl.DataFrame]:
    """The tables restricted to a hash-based sample of customers (all when share >= 1)."""
    if share >= 1:
        return dict(tables)
    ids = tables["customers"].select("customer_id")
    keep = ids.filter((crc32_of(ids["customer_id"]) % _SAMPLE_BUCKETS)
                      < int(share * _SAMPLE_BUCKETS))
    return restrict_to_customers(tables, keep)


def fit_stats(shard: Shard, cfg: ChurnConfig, ctx: Any) -> dict[str, pl.DataFrame]:
    """Landmark rows of the shard's sampled customers, and the same customers as of today."""
    from crmkit.churn import (
        landmark_training_data,
        prepare_risk_covariates,
        risk_status,
        silence_days_of,
    )
    from crmkit.features import build_features

    tables = _sampled(shard.tables(HISTORY), _sample_share(cfg, ctx))
    d = cfg.definition()
    n_sil = silence_days_of(d, cfg.silence_days)
    knots = cfg.knots()
    train, held = cfg.landmark_dates(shard.as_of)

    def covariates(day: dt.date) -> pl.DataFrame:
        return prepare_risk_covariates(build_features(tables, as_of=day, **shard.feature_options),
                                       cfg.covariates, knots=knots)

    rows = landmark_training_data(tables, train + held, d, covariates, max(cfg.horizons_days),
                                  as_of=shard.as_of, silence_days=n_sil)
    status = risk_status(tables, shard.as_of, d, silence_days=n_sil)
    now = covariates(shard.as_of).join(status.filter(pl.col("risk_status") == "at_risk"),
                                       on="customer_id", how="semi")
    balances = tables.get("balances")
    first = balances["date"].min() if balances is not None and balances.height else None
    return {"landmarks": rows, "now": now.select(pl.all().exclude("risk_status")),
            "coverage": pl.DataFrame({"first_balance": [first]},
                                     schema={"first_balance": pl.Date})}


def _landmarks_before_balances(stats: Mapping[str, pl.DataFrame],
                               dates: list[dt.date]) -> list[str]:
    """Landmarks whose 90-day asset window starts before the first balance row.

    Their ``financial_assets`` and its trend read as zero (no balance known), which the
    model would learn as if it were true; a bank with a short balance history (the
    sample bank keeps 25 months) should be told, not left to find it in the
    coefficients.
    """
    cov = stats.get("coverage")
    first = cov["first_balance"].min() if cov is not None and cov.height else None
    if first is None:
        return []
    return [t.isoformat() for t in dates if t - dt.timedelta(days=90) < first]


def _holdout_metrics(model: Any, held: pl.DataFrame, cfg: ChurnConfig) -> dict[str, Any]:
    """AUC of the flag horizon's risk, Harrell's C and the integrated Brier score of the
    raw risk on the held-out landmarks (the survival model never saw them)."""
    from sklearn.metrics import roc_auc_score

    from crmkit.churn.metrics import concordance_index_harrell, integrated_brier_score

    if held.height == 0:
        return {}
    X = held.drop(_OUTCOME_COLS)
    h = float(cfg.flag_horizon_days)
    raw = model.predict_proba(X, calibrated=False)[h]
    cal = model.predict_proba(X, calibrated=True)[h]
    lab = (held["event"] & (held["duration_days"] <= h)).to_numpy()
    dur, evt = held["duration_days"].to_numpy(), held["event"].to_numpy()
    horizon = max(cfg.horizons_days)
    times = np.linspace(horizon / 10, horizon * 0.9, 9)
    H = model.cumulative_hazards(X, times)
    surv = np.exp(-sum(H.values()))
    both = 0 < lab.sum() < lab.size
    return {
        "holdout_landmarks": sorted({x.isoformat() for x in held["landmark"].to_list()}),
        "horizon_days": h, "test_rows": int(held.height), "base_rate": float(lab.mean()),
        "auc_horizon": finite_or_none(roc_auc_score(lab, raw)) if both else None,
        "c_index_harrell": finite_or_none(concordance_index_harrell(dur, evt, -surv[:, -1])),
        "integrated_brier": finite_or_none(integrated_brier_score(dur, evt, surv, times)),
        "mean_predicted": finite_or_none(float(np.mean(cal))),
    }


def _flag_cut(model: Any, now: pl.DataFrame, cfg: ChurnConfig, share: float) -> dict[str, Any]:
    """The raw flag-horizon risk at which ``flag_share`` (or ``flag_capacity``) of the
    sampled customers at risk today are flagged. The raw risk is cut, not the
    calibrated one: an isotonic calibrator has plateaus, whose ties would make the
    flagged share jump."""
    h = float(cfg.flag_horizon_days)
    at_risk_est = now.height / share if share > 0 else 0.0
    target = cfg.flag_share if cfg.flag_capacity is None else \
        min(1.0, cfg.flag_capacity / max(at_risk_est, 1.0))
    info: dict[str, Any] = {"horizon_days": h, "share": float(target),
                            "capacity": cfg.flag_capacity, "sample_at_risk": int(now.height),
                            "at_risk_estimate": int(round(at_risk_est))}
    if now.height == 0:
        info.update(threshold_raw=None, threshold_calibrated=None)
        return info
    raw = model.predict_proba(now.drop("customer_id"), calibrated=False)[h]
    k = max(1, math.ceil(target * raw.size))
    cut = float(np.sort(raw)[::-1][min(k, raw.size) - 1])
    cal = model.calibrators.get(h)
    info.update(threshold_raw=cut,
                threshold_calibrated=float(cal.predict([cut])[0]) if cal else cut)
    return info


def fit(stats: Mapping[str, pl.DataFrame], ctx: Any, cfg: ChurnConfig) -> FitResult:
    """The landmark model on the stacked sample, its recalibration, the flag's cut."""
    from crmkit.churn import fit_churn_risk_from_data

    train_dates, held_dates = cfg.landmark_dates(ctx.as_of)
    data = stats["landmarks"].sort("landmark", "customer_id")
    model = fit_churn_risk_from_data(
        data, train_landmarks=train_dates, calibration_landmarks=held_dates, as_of=ctx.as_of,
        definition=cfg.definition(), silence_days=cfg.silence_days,
        horizons=cfg.horizons_days, calibration=cfg.calibration if held_dates else None,
        covariates=cfg.covariates, knots=cfg.knots(), model=cfg.model,
        penalizer=cfg.penalizer)
    share = _sample_share(cfg, ctx)
    flag = _flag_cut(model, stats["now"].sort("customer_id"), cfg, share)
    early = _landmarks_before_balances(stats, sorted(train_dates + held_dates))
    if early:
        warnings.warn(
            f"churn: {len(early)} of {len(train_dates) + len(held_dates)} landmarks "
            f"({', '.join(early[:3])}{' ...' if len(early) > 3 else ''}) start their 90-day "
            f"asset window before the first balance row "
            f"({stats['coverage']['first_balance'].min()}): their financial assets and asset "
            "trend read as zero. Load a longer balance history, or shorten "
            "horizons_days / silence_days so the landmarks move later.", DataWarning,
            stacklevel=2)
    held = data.filter(pl.col("landmark").is_in(held_dates))
    metrics: dict[str, Any] = _holdout_metrics(model, held, cfg)
    metrics["coefficients"] = {
        cause: {c: finite_or_none(b) for c, b in zip(m.covariates_, m.coef_)}
        for cause, m in model.survival_models.items()}
    metrics["screening"] = {cause: m.screening_report_.to_dicts()
                            for cause, m in model.survival_models.items()
                            if hasattr(m, "screening_report_")}
    metrics["flag"] = flag
    t = model.training
    training = {"start": t["landmarks"][0], "end": ctx.as_of.isoformat(),
                "landmarks": t["landmarks"], "calibration_landmarks": t["calibration_landmarks"],
                "rows": t["rows"], "events": t["events"], "events_by_cause": t["events_by_cause"],
                "calibration_rows": t.get("calibration_rows", 0), "penalizer": t["penalizer"],
                "sampled_share": share, "landmarks_before_balances": early}
    return FitResult({"model": model, "flag": flag},
                     {"model": model.to_dict(), "flag": flag}, training=training, metrics=metrics)


def load(payload: Mapping[str, Any], cfg: ChurnConfig) -> Any:
    """The churn risk model and the flag's cut from their stored JSON data."""
    from crmkit.churn import ChurnRiskModel

    return {"model": ChurnRiskModel.from_json(dict(payload["model"])),
            "flag": dict(payload["flag"])}


def _reasons(model: Any, X: pl.DataFrame, k: int) -> pl.DataFrame:
    """``reason_<i>`` and ``reason_<i>_contribution`` (i = 1..k) and ``churn_cause``."""
    cols: list[str] = []
    for i in range(1, k + 1):
        cols += [f"reason_{i}", f"reason_{i}_contribution"]
    schema = {"customer_id": pl.String, "churn_cause": pl.String,
              **{c: (pl.Float64 if c.endswith("_contribution") else pl.String) for c in cols}}
    out = X.select("customer_id")
    if len(model.survival_models) > 1:
        H = model.cumulative_hazards(X, [max(model.horizons)])
        names = list(H)
        which = np.argmax(np.column_stack([H[c][:, 0] for c in names]), axis=1)
        out = out.with_columns(pl.Series("churn_cause", np.asarray(names, dtype=object)[which],
                                         dtype=pl.String))
    else:  # one model: its cause, or null for a one-cause definition ("any")
        only = next(iter(model.survival_models))
        out = out.with_columns(pl.lit(None if only == "any" else only, pl.String)
                               .alias("churn_cause"))
    if k and X.height:
        rc = model.reason_codes(X, top=k)
        if rc.height:
            wide = rc.select("customer_id", "rank", "covariate", "contribution").pivot(
                on="rank", index="customer_id", values=["covariate", "contribution"])
            rename = {}
            for i in range(1, k + 1):
                rename[f"covariate_{i}"] = f"reason_{i}"
                rename[f"contribution_{i}"] = f"reason_{i}_contribution"
            wide = wide.rename({a: b for a, b in rename.items() if a in wide.columns})
            out = out.join(wide, on="customer_id", how="left", maintain_order="left")
    for c, t in schema.items():
        if c not in out.columns:
            out = out.with_columns(pl.lit(None, t).alias(c))
    return out.select([pl.col(c).cast(t) for c, t in schema.items()])


def score(shard: Shard, cfg: ChurnConfig, state: Any) -> ShardOutput:
    """Churn scores of the shard's customers at risk; null with a status for the others."""
    from crmkit.churn import risk_status

    model, flag = state["model"], state["flag"]
    features = shard.get("features")
    status = risk_status(shard.tables(("customers", "holdings", "transactions")), shard.as_of,
                         model.definition, silence_days=model.silence_days)
    status = features.select("customer_id").join(status, on="customer_id", how="left",
                                                  maintain_order="left")
    at_risk = features.join(status.filter(pl.col("risk_status") == "at_risk"),
                            on="customer_id", how="semi").sort("customer_id")
    X = model.prepare(at_risk)
    Xn = X.drop("customer_id")
    raw = model.predict_proba(Xn, calibrated=False)
    cols: dict[str, Any] = {"customer_id": X["customer_id"]}
    running = np.zeros(X.height)
    for h in sorted(model.horizons):
        p = raw[h] if h not in model.calibrators else model.calibrators[h].predict(raw[h])
        running = np.maximum(running, p)  # non-decreasing in the horizon
        cols[f"churn_prob_{h:g}d"] = running.copy()
    cut = flag.get("threshold_raw")
    hf = float(flag["horizon_days"])
    cols["churn_flag"] = (raw[hf] >= cut) if cut is not None else np.zeros(X.height, bool)
    scores = pl.DataFrame(cols, schema_overrides={"churn_flag": pl.Boolean}).join(
        _reasons(model, X, cfg.reasons), on="customer_id", how="left", maintain_order="left")
    table = (status.join(scores, on="customer_id", how="left", maintain_order="left")
             .sort("customer_id"))
    probs = [c for c in scores.columns if c.startswith("churn_prob_")]
    sums = scores.select(pl.len().alias("n"), pl.col("churn_flag").sum().cast(pl.Int64)
                         .alias("flagged"), *[pl.col(c).sum() for c in probs])
    return ShardOutput(tables={"churn_scores": table},
                       partials={"status": count_partial(table, "risk_status"), "sums": sums,
                                 "cause": count_partial(scores, "churn_cause")})


def finalize(partials: Mapping[str, pl.DataFrame], cfg: ChurnConfig, state: Any,
             ctx: Any) -> StepSummary:
    """Scored and flagged counts, and mean probabilities over customers at risk."""
    sums = partials["sums"].sum()
    n = int(sums["n"][0])
    flagged = int(sums["flagged"][0])
    model = state["model"]
    return StepSummary(facts={
        "model_class": type(model).__name__,
        "causes": sorted(model.survival_models),
        "risk_status": counts_from(partials, "status", "risk_status"),
        "n_scored": n,
        "n_flagged": flagged,
        "flagged_share": finite_or_none(flagged / n) if n else None,
        "flag": state["flag"],
        "likely_cause": counts_from(partials, "cause", "churn_cause"),
        "mean_churn_prob_at_risk": {c: finite_or_none(sums[c][0] / n) if n else None
                                    for c in sums.columns if c not in ("n", "flagged")},
    })


STEP = Step(
    name="churn", config_model=ChurnConfig, score=score,
    inputs=("features", *HISTORY), outputs=("churn_scores",),
    fit=fit, fit_stats=fit_stats, finalize=finalize,
    model=ModelSpec("churn", schedule=lambda cfg: cfg.refit,
                    settings=lambda cfg: cfg.model_dump(exclude={"refit"}), load=load),
    doc="landmark churn-risk model (refit on a schedule, recalibrated on held-out landmarks), "
        "horizon probabilities for customers at risk, capacity-sized flag, reason codes",
)
