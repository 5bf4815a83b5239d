"""Cross-sell propensity: leakage-free targets, calibrated per-product models,
suitability-gated next best products with reasons, and their metrics.

Library code only. A nightly ``propensity`` step calls, in its global ``fit``,
:func:`landmark_dates`, :func:`build_training_set` (on a deterministic customer
sample), :func:`split_training_set`, :class:`PropensityModel` and :func:`backtest`;
per customer shard, :func:`score_shard` (features, propensities and
:func:`next_best_products` with reasons). :class:`PropensityConfig` is its
``[propensity]`` section.
"""

from crmkit.propensity._calibration import expected_calibration_error
from crmkit.propensity._config import PropensityConfig, landmark_dates, score_shard
from crmkit.propensity._decisions import eligible_offers, next_best_products, suitable
from crmkit.propensity._metrics import (
    PropensityBacktest,
    backtest,
    calibration_curve,
    cross_sell_rate,
    evaluate_propensities,
    lift_table,
    product_penetration,
    success_at_k,
)
from crmkit.propensity._model import PropensityModel, load_model
from crmkit.propensity._plots import (
    plot_auc_vs_baseline,
    plot_calibration,
    plot_gain,
    plot_lift,
    plot_penetration,
)
from crmkit.propensity._targets import (
    LABEL_PREFIX,
    RETAIL_BANK_TIERS,
    build_training_set,
    holding_features,
    horizon_end,
    propensity_features,
    split_training_set,
)

__all__ = sorted([
    "LABEL_PREFIX",
    "PropensityBacktest",
    "PropensityConfig",
    "PropensityModel",
    "RETAIL_BANK_TIERS",
    "backtest",
    "build_training_set",
    "calibration_curve",
    "cross_sell_rate",
    "eligible_offers",
    "evaluate_propensities",
    "expected_calibration_error",
    "holding_features",
    "horizon_end",
    "landmark_dates",
    "lift_table",
    "load_model",
    "next_best_products",
    "plot_auc_vs_baseline",
    "plot_calibration",
    "plot_gain",
    "plot_lift",
    "plot_penetration",
    "product_penetration",
    "propensity_features",
    "score_shard",
    "split_training_set",
    "success_at_k",
    "suitable",
])
