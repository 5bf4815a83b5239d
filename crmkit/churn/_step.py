"""The churn step of the nightly run, as a pure function (I/O stays with the caller,
except the fitted model, which lives in ``model_dir`` as JSON data).

On a refit day: fit the survival model on the last ``training_window_days`` of
history (customers at risk at the window start, covariates as of that date, churn
in the window), run a backtest (fit on the period before the last
``backtest_horizon_days``, score that last period) and store model + backtest in
``<model_dir>/churn.json``. Otherwise load the stored model. Then score every
customer as of the run date: churn probability within each horizon, expected and
median remaining lifetime, and reason codes.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import polars as pl
from pydantic import Field, field_validator

from crmkit._config import StrictModel, parse_config
from crmkit._frames import to_polars
from crmkit._params import check_date
from crmkit._refit import due_for_refit
from crmkit.exceptions import ConfigError

__all__ = ["DEFAULT_COVARIATES", "ChurnSettings", "ChurnStepResult", "prepare_covariates",
           "run_churn_step"]

MODEL_FILE = "churn.json"

DEFAULT_COVARIATES = (
    "tenure_days", "age_years", "txn_count_90d", "txn_count_trend_90d",
    "txn_amount_trend_90d", "days_since_last_txn", "complaints_365d", "contacts_365d",
    "n_products_open", "n_products_closed_365d", "financial_assets",
    "financial_assets_trend_90d",
)
"""Feature columns (of :func:`crmkit.features.build_features`) the churn step uses."""

_SCHEDULES = ("always", "weekly", "monthly", "quarterly", "yearly", "never")


class ChurnSettings(StrictModel):
    """Settings of :func:`run_churn_step` (the ``[churn]`` table of a pipeline TOML).

    Parameters
    ----------
    model : {"cox", "weibull"}
        :class:`CoxPH` or :class:`WeibullAFT`.
    refit : {"always", "weekly", "monthly", "quarterly", "yearly", "never"}
        When to refit; in between the stored model is loaded (a change of these
        settings also triggers a refit).
    penalizer : float
        Ridge penalty of the model.
    covariates : list of str
        Feature columns used (see :func:`prepare_covariates`).
    horizons_days : list of float
        Horizons of the churn probabilities.
    rmst_horizon_days : float
        Restriction of the expected remaining lifetime.
    reasons : int
        Reason codes per customer (0 to 10).
    training_window_days : int
        Length of the history the model is fitted on (risk window ending on the
        run date).
    backtest_horizon_days : int
        The backtest scores churn in the last this-many days before the run date
        with a model fitted on the window before them.
    churn_definition : str or dict
        Preset name or :class:`crmkit.lifecycle.ChurnDefinition` fields, passed to
        :func:`crmkit.lifecycle.label_churn`.

    Examples
    --------
    >>> ChurnSettings(horizons_days=[30, 90]).horizons_days
    [30.0, 90.0]
    """

    model: Literal["cox", "weibull"] = "cox"
    refit: str = "monthly"
    penalizer: float = Field(0.01, ge=0)
    covariates: list[str] = Field(default_factory=lambda: list(DEFAULT_COVARIATES))
    horizons_days: list[float] = Field(default_factory=lambda: [30.0, 90.0, 180.0, 365.0])
    rmst_horizon_days: float = Field(365.0, gt=0)
    reasons: int = Field(3, ge=0, le=10)
    training_window_days: int = Field(365, gt=30)
    backtest_horizon_days: int = Field(90, gt=0)
    churn_definition: str | dict[str, Any] = "retail_bank"

    @field_validator("refit")
    @classmethod
    def _schedule(cls, value: str) -> str:
        if value not in _SCHEDULES:
            raise ValueError(f"refit must be one of {', '.join(_SCHEDULES)}; got {value!r}.")
        return value

    @field_validator("horizons_days")
    @classmethod
    def _horizons(cls, value: list[float]) -> list[float]:
        if not value or any(h <= 0 for h in value):
            raise ValueError("horizons_days must be a non-empty list of positive numbers.")
        return value


@dataclass
class ChurnStepResult:
    """Output of :func:`run_churn_step`: tables and manifest facts."""

    tables: dict[str, pl.DataFrame] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)
    refitted: bool = False


def prepare_covariates(features: Any, columns: Any = DEFAULT_COVARIATES) -> pl.DataFrame:
    """Model-ready covariates from a features table (one row per customer).

    ``days_since_*`` columns that are null (no such event yet) become the
    customer's ``tenure_days``; ``financial_assets`` becomes
    ``log_financial_assets = log1p(max(assets, 0))`` (assets are heavy-tailed);
    booleans become 0/1; any other null becomes 0 (counts and trends with no
    history). Missing columns raise, naming them.

    Examples
    --------
    >>> import polars as pl
    >>> f = pl.DataFrame({"customer_id": ["a"], "tenure_days": [400], "days_since_last_txn": [None],
    ...                   "financial_assets": [999.0]})
    >>> prepare_covariates(f, ["tenure_days", "days_since_last_txn", "financial_assets"]).row(0)
    ('a', 400.0, 400.0, 6.907755278982137)
    """
    f = to_polars(features, "features")
    columns = list(columns)
    missing = [c for c in ["customer_id", *columns] if c not in f.columns]
    if missing:
        raise ConfigError(f"The churn covariates {missing} are not in the features table; "
                          "choose them from: " + ", ".join(f.columns))
    exprs = [pl.col("customer_id").cast(pl.String)]
    for c in columns:
        col = pl.col(c).cast(pl.Float64)
        if c.startswith("days_since_") and "tenure_days" in f.columns:
            col = col.fill_null(pl.col("tenure_days").cast(pl.Float64))
        if c == "financial_assets":
            exprs.append(col.fill_null(0.0).clip(0.0).log1p().alias("log_financial_assets"))
            continue
        exprs.append(col.fill_null(0.0).fill_nan(0.0).alias(c))
    return f.select(exprs)


def _estimator(settings: ChurnSettings):
    from crmkit.churn._cox import CoxPH
    from crmkit.churn._weibull import WeibullAFT
    cls = CoxPH if settings.model == "cox" else WeibullAFT
    return cls(penalizer=settings.penalizer, horizons_days=tuple(settings.horizons_days),
               rmst_horizon_days=settings.rmst_horizon_days)


def run_churn_step(features: Any, tables: dict[str, Any], as_of: Any, config: Any = None,
                   model_dir: str | Path = "models", *, refit: bool | None = None,
                   feature_options: dict[str, Any] | None = None) -> ChurnStepResult:
    """Refit (on schedule) or load the churn model, score every customer, report.

    Parameters
    ----------
    features : table
        :func:`crmkit.features.build_features` as of ``as_of``.
    tables : dict of str to table
        The canonical tables (history for refits; ``holdings`` etc. for the churn
        labels of :func:`crmkit.lifecycle.label_churn`).
    as_of : date or str
    config : ChurnSettings or mapping, optional
    model_dir : path
        Where ``churn.json`` (model as data + latest backtest) is kept between runs.
        A stored model fitted after ``as_of`` (a backfill run) is never used: the
        model is refitted as of ``as_of`` for this run and the file is left as is.
    refit : bool, optional
        Force (True) or forbid (False) a refit; default: the ``refit`` schedule.
    feature_options : dict, optional
        Keyword arguments of :func:`crmkit.features.build_features` (the pipeline's
        ``[features]`` windows and asset weights) for the training covariates.

    Returns
    -------
    ChurnStepResult
        ``tables["churn_scores"]``: ``customer_id``, ``churn_prob_<h>d`` per horizon,
        ``restricted_mean_days``, ``median_remaining_days``, ``reason_<k>`` and
        ``reason_<k>_contribution``; ``manifest``: model, fit date, coefficients,
        screening, the latest backtest metrics and score summaries.
    """
    from crmkit.churn._backtest import backtest
    from crmkit.churn._base import load_model
    from crmkit.churn._data import build_survival_data, frame_to_xy
    from crmkit.churn._scoring import score_customers
    from crmkit.features import build_features
    from crmkit.io import write_json
    from crmkit.lifecycle import label_churn

    as_of = check_date(as_of, "as_of", "run_churn_step")
    if config is None:
        settings = ChurnSettings()
    elif isinstance(config, ChurnSettings):
        settings = config
    else:
        settings = parse_config(ChurnSettings, dict(config), "churn")
    model_dir = Path(model_dir)
    path = model_dir / MODEL_FILE
    stored = json.loads(path.read_text(encoding="utf-8")) if path.exists() else None
    last = dt.date.fromisoformat(stored["fitted_as_of"]) if stored else None
    due = due_for_refit(last, as_of, settings.refit) if refit is None else refit
    if not due and stored is None:
        due = True
    if stored is not None and not due and stored.get("settings") != settings.model_dump():
        due = True  # the configuration changed since the stored fit
    persist = True
    notes: list[str] = []
    if last is not None and last > as_of:
        # a backfill: the stored model saw rows after this run date, so it must not be
        # used; refit as of the run date and keep the stored (newer) model on disk
        due, persist = True, False
        notes.append(f"stored model was fitted on {last.isoformat()}, after the run date; "
                     "refitted for this run only")

    def covariates(day: dt.date) -> pl.DataFrame:
        return prepare_covariates(build_features(tables, as_of=day, **(feature_options or {})),
                                  settings.covariates)

    def churn(day: dt.date) -> pl.DataFrame:
        return label_churn(tables, as_of=day, definition=settings.churn_definition)

    if due:
        start = as_of - dt.timedelta(days=settings.training_window_days)
        train = build_survival_data(tables, churn, start=start, end=as_of, covariates=covariates)
        names = [c for c in train.columns if c not in (
            "customer_id", "duration_days", "event", "tenure_at_start_days")]
        X, y = frame_to_xy(train.select(["duration_days", "event", *names]),
                           "duration_days", "event")
        model = _estimator(settings).fit(X, y)
        bt_start = as_of - dt.timedelta(days=settings.backtest_horizon_days)
        bt = backtest(_estimator(settings), tables, churn, covariates,
                      train_start=bt_start - dt.timedelta(days=settings.training_window_days),
                      test_start=bt_start, horizon_days=settings.backtest_horizon_days)
        metrics = {
            "train_start": bt["train_start"], "test_start": bt["test_start"],
            "horizon_days": settings.backtest_horizon_days,
            "auc_horizon": _num(bt.get("auc_horizon")),
            "base_rate": _num(bt.get("base_rate")),
            "c_index_harrell": _num(bt.get("c_index_harrell")),
            "c_index_uno": _num(bt.get("c_index_uno")),
            "integrated_brier": _num(bt.get("integrated_brier")),
            "train_rows": bt["train_rows"], "test_rows": bt["test_rows"],
        }
        doc = {"fitted_as_of": as_of.isoformat(), "settings": settings.model_dump(),
               "training": {"start": start.isoformat(), "end": as_of.isoformat(),
                            "rows": int(X.height), "events": int(y["event"].sum())},
                "backtest": metrics, "model": json.loads(model.to_json())}
        if persist:
            model_dir.mkdir(parents=True, exist_ok=True)
            write_json(doc, path)
    else:
        doc = stored
        model = load_model(json.dumps(doc["model"]))
        notes.append(f"model loaded from {MODEL_FILE} (fitted {doc['fitted_as_of']})")

    current = prepare_covariates(features, settings.covariates)
    scores = score_customers(model, current, horizons_days=settings.horizons_days,
                             lifetime=True, reasons=settings.reasons)
    prob_cols = [c for c in scores.columns if c.startswith("churn_prob_")]
    manifest = {
        "model": type(model).__name__, "refitted": bool(due),
        "refit_schedule": settings.refit, "fitted_as_of": doc["fitted_as_of"],
        "training": doc["training"], "backtest": doc["backtest"],
        "coefficients": dict(zip(model.covariates_, [float(c) for c in model.coef_])),
        "screening": model.screening_report_.to_dicts()
        if hasattr(model, "screening_report_") else [],
        "n_scored": int(scores.height),
        "mean_churn_prob": {c: _num(scores[c].mean()) for c in prob_cols},
        "notes": notes,
    }
    return ChurnStepResult(tables={"churn_scores": scores}, manifest=manifest, refitted=due)


def _num(v: Any) -> float | None:
    if v is None:
        return None
    v = float(v)
    return None if v != v else v
