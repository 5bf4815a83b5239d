"""Metrics for survival churn models (``crmkit.churn.metrics``).

**Sign convention.** Every concordance and AUC function here takes a *risk
score*: higher means the customer churns sooner (``model.predict(X)`` or a churn
probability). 1.0 is a perfect ranking, 0.5 random, below 0.5 reversed.
``concordance`` and ``integrated_brier`` are scikit-learn scorers
(``scoring=concordance`` in ``GridSearchCV``). lifelines' ``concordance_index`` takes predicted survival times instead (higher
= stays longer); ``concordance_index_harrell(T, E, risk)`` equals
``lifelines.utils.concordance_index(T, -risk, E)``.
"""

from crmkit.churn._backtest import backtest, evaluate
from crmkit.churn._metrics import (
    brier_score,
    calibration_table,
    censoring_survival,
    concordance,
    concordance_index_harrell,
    concordance_index_uno,
    integrated_brier,
    integrated_brier_score,
    time_dependent_auc,
)

__all__ = sorted([
    "backtest",
    "brier_score",
    "calibration_table",
    "censoring_survival",
    "concordance",
    "concordance_index_harrell",
    "concordance_index_uno",
    "evaluate",
    "integrated_brier",
    "integrated_brier_score",
    "time_dependent_auc",
])
