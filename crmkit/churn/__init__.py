"""Survival churn-risk models: data builders, estimators, metrics, scoring, plots.

lifelines does the fitting; crmkit screens the covariates first, keeps the
fitted model as arrays (saved as JSON, never pickled), and scores from them in
bounded memory. Metrics live in :mod:`crmkit.churn.metrics`.
"""

from crmkit.churn import metrics
from crmkit.churn._backtest import backtest, backtest_on
from crmkit.churn._base import SurvivalModel, load_model
from crmkit.churn._checks import find_separation, screen_covariates
from crmkit.churn._cox import CoxPH, null_log_likelihood
from crmkit.churn._data import (
    TIME_UNITS,
    build_backtest_data,
    build_survival_data,
    frame_to_xy,
    make_y,
    split_y,
)
from crmkit.churn._km import KaplanMeierBaseline
from crmkit.churn._competing import aalen_johansen
from crmkit.churn._calibration import HorizonCalibrator, calibration_by_decile
from crmkit.churn._covariates import CHURN_RISK_COVARIATES, CHURN_RISK_KNOTS
from crmkit.churn._covariates import prepare_covariates as prepare_risk_covariates
from crmkit.churn._landmark import (
    customer_folds,
    landmark_dates,
    landmark_outcomes,
    landmark_training_data,
    outcome_known_on,
)
from crmkit.churn._risk_model import (
    ChurnRiskModel,
    fit_churn_risk,
    fit_churn_risk_from_data,
    make_survival_estimator,
    score_churn_risk,
)
from crmkit.churn._thresholds import call_list, capacity_threshold
from crmkit.churn._risk_set import RISK_STATUSES, apply_risk_set, risk_status, silence_days_of
from crmkit.churn._metrics import concordance, integrated_brier
from crmkit.churn._plots import plot_calibration, plot_reason_codes, plot_survival_by_group
from crmkit.churn._prepare import DEFAULT_COVARIATES, prepare_covariates
from crmkit.churn._scoring import score_customers
from crmkit.churn._weibull import WeibullAFT

__all__ = sorted([
    "CoxPH",
    "DEFAULT_COVARIATES",
    "KaplanMeierBaseline",
    "SurvivalModel",
    "TIME_UNITS",
    "WeibullAFT",
    "backtest",
    "backtest_on",
    "build_backtest_data",
    "build_survival_data",
    "find_separation",
    "concordance",
    "frame_to_xy",
    "integrated_brier",
    "load_model",
    "make_y",
    "metrics",
    "plot_calibration",
    "plot_reason_codes",
    "plot_survival_by_group",
    "prepare_covariates",
    "RISK_STATUSES",
    "aalen_johansen",
    "null_log_likelihood",
    "CHURN_RISK_COVARIATES",
    "CHURN_RISK_KNOTS",
    "ChurnRiskModel",
    "HorizonCalibrator",
    "calibration_by_decile",
    "call_list",
    "capacity_threshold",
    "customer_folds",
    "fit_churn_risk",
    "fit_churn_risk_from_data",
    "landmark_dates",
    "landmark_outcomes",
    "landmark_training_data",
    "make_survival_estimator",
    "outcome_known_on",
    "prepare_risk_covariates",
    "score_churn_risk",
    "apply_risk_set",
    "risk_status",
    "silence_days_of",
    "score_customers",
    "screen_covariates",
    "split_y",
])
