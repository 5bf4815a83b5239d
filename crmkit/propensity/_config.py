"""The ``[propensity]`` configuration section and the functions a pipeline step calls."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, Literal

import polars as pl
from pydantic import Field

from crmkit._config import StrictModel
from crmkit._frames import Output, to_output, to_polars
from crmkit._params import check_date
from crmkit.propensity._decisions import next_best_products
from crmkit.propensity._targets import RETAIL_BANK_TIERS, horizon_end, propensity_features

__all__ = ["PropensityConfig", "landmark_dates", "score_shard"]


class PropensityConfig(StrictModel):
    """``[propensity]``: targets, training landmarks, the model and the offer rules.

    The refit schedule belongs to the pipeline (its ``RefitMixin`` adds ``refit``);
    this section holds what the library needs.

    Parameters
    ----------
    level : {"product", "category"}
    targets : list of str, optional
        Products (or categories) to model; default the whole catalogue.
    horizon, unit
        Label window ``(landmark, landmark + horizon]``.
    landmarks : int
        Training landmarks, the latest ending its label window on the run date.
    landmark_spacing_months : int
        Calendar months between landmarks.
    training_sample : float
        Deterministic share of customers (by CRC-32 of the id) in the global fit.
    backend, n_estimators, early_stopping, learning_rate, num_leaves, max_bin,
    min_child_samples,
    penalizer, class_weight, calibration, cv, min_positives, max_negatives_per_positive
        :class:`crmkit.propensity.PropensityModel` parameters.
    k : int
        Next best products per customer.
    reasons : int
        Reasons per offer (0 for none).
    reasons_for : {"managed", "all"}
        Whose offers are explained. Exact reasons (LightGBM TreeSHAP) cost about a
        millisecond per offer, against microseconds for a score, so by default
        (``"managed"``) only customers with a named (primary) relationship manager
        get them: the only customers an RM's call list can hold. ``"all"``: every
        customer.
    reason_ranks : int
        Explain the offers ranked up to this (call lists use the first offer).
    reasons_top_share : float or None
        Explain an offer only when its propensity is within this top share of the
        product's propensities (cut-offs fixed by the fit, so every shard uses the
        same); None: no cut-off.
    lookback_days : int
        Products opened or declined in this window are not offered.
    product_value : str or None
        Column of the products table valuing a take-up (None: rank by propensity).
    risk_tolerance, unassessed_max_rating
        Suitability rule (:func:`crmkit.propensity.suitable`).
    backtest : bool
        Also fit on the earlier landmarks and score the latest one (manifest metrics).

    Examples
    --------
    >>> from crmkit._config import parse_config
    >>> parse_config(PropensityConfig, {"horizon": 3, "unit": "calendar_months"}, "propensity").k
    3
    >>> parse_config(PropensityConfig, {"horizn": 90}, "propensity")
    Traceback (most recent call last):
    ...
    crmkit.exceptions.ConfigError: Invalid propensity config: unknown key 'horizn' in PropensityConfig. Did you mean 'horizon'? ...
    """

    level: Literal["product", "category"] = "product"
    targets: list[str] | None = None
    horizon: float = Field(90.0, gt=0, allow_inf_nan=False)
    unit: Literal["days", "weeks", "calendar_months", "mean_months"] = "days"
    landmarks: int = Field(3, ge=1, le=24)
    landmark_spacing_months: int = Field(3, ge=1, le=24)
    training_sample: float = Field(1.0, gt=0, le=1)
    backend: Literal["lightgbm", "sklearn", "logistic"] = "lightgbm"
    n_estimators: int = Field(100, ge=1)
    early_stopping: bool = True
    learning_rate: float = Field(0.1, gt=0, allow_inf_nan=False)
    num_leaves: int = Field(31, ge=2)
    max_bin: int = Field(255, ge=2)
    min_child_samples: int = Field(100, ge=1)
    penalizer: float = Field(1.0, ge=0, allow_inf_nan=False)
    class_weight: Literal["balanced"] | None = None
    calibration: Literal["sigmoid", "isotonic"] = "sigmoid"
    cv: int = Field(3, ge=2, le=10)
    min_positives: int = Field(50, ge=1)
    max_negatives_per_positive: int | None = Field(None, ge=1)
    n_jobs: int = Field(1, ge=1)
    k: int = Field(3, ge=1, le=20)
    reasons: int = Field(3, ge=0, le=10)
    reasons_for: Literal["managed", "all"] = "managed"
    reason_ranks: int = Field(1, ge=1, le=20)
    reasons_top_share: float | None = Field(0.1, gt=0, le=1)
    lookback_days: int = Field(90, ge=0)
    product_value: str | None = "margin"
    risk_tolerance: int = Field(0, ge=-4, le=4)
    unassessed_max_rating: int | None = Field(1, ge=1, le=5)
    backtest: bool = True

    def model_params(self) -> dict[str, Any]:
        """Keyword arguments of :class:`PropensityModel` from this section."""
        keys = ("backend", "n_estimators", "early_stopping", "learning_rate", "num_leaves",
                "max_bin", "min_child_samples", "penalizer", "class_weight", "calibration", "cv",
                "min_positives", "max_negatives_per_positive", "n_jobs")
        return {k: getattr(self, k) for k in keys}


def landmark_dates(as_of: dt.date | str, *, horizon: float, unit: str, landmarks: int,
                   spacing_months: int) -> list[dt.date]:
    """Training landmarks whose label windows are complete on ``as_of``.

    The latest is the last month end whose window ``(D, D + horizon]`` ends on or
    before ``as_of``; the others are ``spacing_months`` calendar months apart.

    Examples
    --------
    >>> landmark_dates("2025-12-31", horizon=90, unit="days", landmarks=3, spacing_months=3)
    [datetime.date(2025, 3, 31), datetime.date(2025, 6, 30), datetime.date(2025, 9, 30)]
    """
    day = check_date(as_of, "as_of", "landmark_dates")
    # last month end on or before as_of
    last = pl.select(pl.lit(day).dt.offset_by("1d").dt.month_start().dt.offset_by("-1d")).item()
    while horizon_end(last, horizon, unit, "landmark_dates") > day:
        last = pl.select(pl.lit(last).dt.month_start().dt.offset_by("-1d")).item()
    out = [last]
    for i in range(1, landmarks):
        out.append(pl.select(pl.lit(last).dt.offset_by(f"-{i * spacing_months}mo")
                             .dt.month_end()).item())
    return sorted(out)


def score_shard(model: Any, tables: Mapping[str, Any], *, as_of: dt.date | str,
                shard: tuple[int, int] | None = None, k: int = 3, reasons: int = 3,
                reason_ranks: int | None = None, reason_customers: Any = None,
                reason_min_propensity: Any = 0.0,
                lookback_days: int = 90, product_value: str | None = "margin",
                risk_tolerance: int = 0, unassessed_max_rating: int | None = 1,
                windows: tuple[int, ...] = (30, 90, 365),
                tiers=RETAIL_BANK_TIERS, features: Any = None,
                asset_weights: Mapping[str, float] | None = None,
                output: Output = "polars") -> tuple[Any, Any]:
    """Propensities and next best products of one customer shard (a pure function).

    Parameters
    ----------
    model : fitted PropensityModel
    tables : mapping of str to table
        The shard's tables (or whole tables with ``shard=`` to select one).
    as_of : date or str
    shard : (int, int), optional
    features : table, optional
        Precomputed :func:`propensity_features` rows of the shard.
    windows, tiers, asset_weights
        Passed to :func:`propensity_features` (when ``features`` is not given): the
        options the model's training features were built with.
    k, reasons, lookback_days, product_value, risk_tolerance, unassessed_max_rating
        See :func:`next_best_products`.
    reason_ranks, reason_customers, reason_min_propensity
        Which offers are explained (see :func:`next_best_products`); the others get
        scores and offers without reasons.

    Returns
    -------
    (scores, offers)
        ``scores``: ``customer_id``, ``tier`` and ``p_<target>`` per target;
        ``offers``: the top ``k`` per customer with reasons.
    """
    day = check_date(as_of, "as_of", "score_shard")
    feats = to_polars(features, "features") if features is not None else propensity_features(
        tables, as_of=day, windows=windows, tiers=tiers, shard=shard,
        asset_weights=asset_weights)
    products = to_polars(tables["products"], "products")
    not_products = sorted(set(model.targets_) - set(products["product_id"].to_list()))
    if not_products:
        raise ValueError(f"score_shard: next best products need product-level targets; "
                         f"{not_products[:5]} are not product ids (a level='category' model?).")
    scores = to_polars(model.predict_propensities(feats, ids=feats["customer_id"]))
    if "tier" in feats.columns:
        scores = scores.insert_column(1, feats["tier"])
    offers = next_best_products(
        scores.drop("tier", strict=False), tables["customers"], tables["holdings"], products,
        as_of=day, k=k, lookback_days=lookback_days, contacts=tables.get("contacts"),
        product_value=product_value, risk_tolerance=risk_tolerance,
        unassessed_max_rating=unassessed_max_rating,
        model=model if reasons > 0 else None, features=feats if reasons > 0 else None,
        reasons=max(reasons, 1), reason_ranks=reason_ranks, reason_customers=reason_customers,
        reason_min_propensity=reason_min_propensity)
    return to_output(scores, output), to_output(offers, output)
