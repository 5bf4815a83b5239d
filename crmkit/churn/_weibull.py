"""Weibull accelerated failure time model, fitted by lifelines."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from crmkit.churn._base import _PENALTY_CONSTRAINTS, _TIME_CONSTRAINTS, SurvivalModel
from crmkit.churn._cox import _fit_lifelines, _screened_frame

__all__ = ["WeibullAFT"]


class WeibullAFT(SurvivalModel):
    """Weibull accelerated-failure-time churn model (R's ``survreg(dist="weibull")``).

    ``log T = intercept + beta . x + sigma * W`` with ``W`` the standard minimum
    extreme-value distribution; equivalently ``S(t | x) = exp(-(t / lambda(x)) ** rho)``
    with ``lambda(x) = exp(intercept + beta . x)`` and ``rho = 1 / sigma``. It is
    also a proportional-hazards model with log-hazard coefficients
    ``-rho * beta`` (``coef_``), which is how crmkit stores and scores it, and
    unlike the Cox model it extrapolates beyond the longest observed duration.

    Parameters
    ----------
    penalizer, l1_ratio : float
        Elastic-net penalty (lifelines' convention; the intercepts are not penalised).
    unit, horizons, rmst_horizon, on_separation, separation_penalizer
        As in :class:`CoxPH` (``time_unit``, ``horizons_days``, ``rmst_horizon_days``:
        deprecated names).

    Attributes
    ----------
    aft_coef_ : ndarray
        ``beta``: effect of each covariate on log time (survreg's coefficients;
        positive = stays longer).
    intercept_ : float
        survreg's ``(Intercept)``.
    log_scale_ : float
        survreg's ``Log(scale)`` = ``log(sigma)`` = ``-log(rho)``.
    coef_ : ndarray
        Log hazard ratios, ``-aft_coef_ / sigma``.
    log_likelihood_ : float

    Examples
    --------
    >>> import numpy as np
    >>> from crmkit.churn import WeibullAFT, make_y
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(400, 1))
    >>> t = np.exp(3 + 0.5 * x[:, 0]) * rng.weibull(2.0, 400)
    >>> m = WeibullAFT(unit="weeks").fit(x, make_y(t, np.ones(400, bool)))
    >>> round(float(m.aft_coef_[0]), 1), round(float(np.exp(-m.log_scale_)), 0)
    (0.5, 2.0)
    """

    _parameter_constraints = {**_TIME_CONSTRAINTS, **_PENALTY_CONSTRAINTS}

    def __init__(self, *, unit: str | None = None, horizons: Any = None,
                 penalizer: float = 0.0, l1_ratio: float = 0.0,
                 rmst_horizon: float | None = None, on_separation: str = "penalize",
                 separation_penalizer: float = 0.1, time_unit: str | None = None,
                 horizons_days: Any = None, rmst_horizon_days: float | None = None):
        self.unit = unit
        self.horizons = horizons
        self.penalizer = penalizer
        self.l1_ratio = l1_ratio
        self.rmst_horizon = rmst_horizon
        self.on_separation = on_separation
        self.separation_penalizer = separation_penalizer
        self.time_unit = time_unit
        self.horizons_days = horizons_days
        self.rmst_horizon_days = rmst_horizon_days

    _EXTRA_STATE = ("summary_", "log_likelihood_", "screening_report_", "aft_coef_",
                    "intercept_", "log_scale_", "n_events_", "n_samples_")

    def fit(self, X: Any, y: Any) -> WeibullAFT:
        """Fit on covariates ``X`` and survival target ``y``; returns self."""
        name = type(self).__name__
        fit_in = _screened_frame(self, X, y, None, name)
        M, screen, kept, df, kwargs = fit_in.M, fit_in.screen, fit_in.kept, fit_in.df, fit_in.kwargs
        cnames = [f"c{i}" for i in range(len(kept))]
        pen = float(self.penalizer)
        if screen.penalized:
            pen = max(pen, float(self.separation_penalizer))

        from lifelines import WeibullAFTFitter

        def make(extra):
            return WeibullAFTFitter(penalizer=pen + (extra or 0.0), l1_ratio=float(self.l1_ratio))

        fitter = _fit_lifelines(make, df, kwargs, f"{name}.fit", kept)
        lam = fitter.params_.loc["lambda_"]
        beta = lam.reindex(cnames).to_numpy(dtype=float) if kept else np.zeros(0)
        b0 = float(lam.loc["Intercept"])
        log_rho = float(fitter.params_.loc[("rho_", "Intercept")])
        rho = float(np.exp(log_rho))
        self.aft_coef_ = beta
        self.intercept_ = b0
        self.log_scale_ = -log_rho
        self.coef_ = -rho * beta
        self.means_ = M[:, screen.keep].mean(axis=0) if kept else np.zeros(0)
        self.weibull_rho_ = rho
        self.weibull_scale0_ = float(np.exp(b0 + self.means_ @ beta))
        self.baseline_kind_ = "weibull"
        self.strata_keys_ = ["__all__"]
        self.log_likelihood_ = float(fitter.log_likelihood_)
        summ = fitter.summary.reset_index()
        rename = {c: n for c, n in zip(cnames, kept)}
        summ["covariate"] = summ["covariate"].map(lambda c: rename.get(c, c))
        self.summary_ = pl.from_pandas(summ.drop(columns=["cmp to"], errors="ignore"))
        return self
