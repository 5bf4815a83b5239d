"""Shared machinery of the buy-till-you-die CLV models.

Every model is a scikit-learn estimator fitted by maximum likelihood on the
*distinct* data patterns (for BG/NBD: distinct ``(frequency, recency, T)`` rows)
with their counts as weights, so the cost of a fit grows with the number of
distinct patterns, not with the number of customers. The optimiser works on
the logarithm of the (positive) parameters; standard errors come from a
finite-difference Hessian of the log-likelihood in log-parameter space,
carried back to the natural scale with the delta method
(``se(theta) = theta * se(log theta)``); the 95% intervals are computed on the
log scale and exponentiated, so they never cross zero.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from scipy import optimize
from threadpoolctl import threadpool_limits

from crmkit._estimator import DICT, NONE, CrmkitEstimator, Interval, deprecated_alias
from crmkit._frames import Output, to_polars
from crmkit.exceptions import ConvergenceWarning, DataWarning, NotFittedError, SchemaError
from crmkit.features import rfm_unit
from crmkit._persist import json_text_from, save_json_text

__all__ = ["CLVModel", "RFMModel", "load_clv_model"]

_Z95 = 1.959963984540054


def _crmkit_version() -> str:
    try:
        import crmkit

        return str(crmkit.__version__)
    except Exception:  # pragma: no cover - only while the package is half-imported
        return "unknown"


def _dot(a, b) -> float:
    """Sum of products without BLAS: BLAS threads stall on a loaded machine, and
    these reductions are memory-bound anyway."""
    return float(np.multiply(a, b).sum())


def _weighted_rows(w, g):
    return np.multiply(w[:, None], g).sum(axis=0)


def _numeric_gradient(f, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    g = np.empty_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = h
        g[i] = (f(x + e) - f(x - e)) / (2 * h)
    return g


def _hessian(f, grad, x: np.ndarray, analytic: bool) -> np.ndarray:
    k = x.size
    H = np.empty((k, k))
    if analytic:
        h = 1e-5
        for j in range(k):
            e = np.zeros(k)
            e[j] = h
            H[:, j] = (grad(x + e) - grad(x - e)) / (2 * h)
    else:
        h = 1e-4
        f0 = f(x)
        for i in range(k):
            for j in range(i, k):
                ei = np.zeros(k)
                ej = np.zeros(k)
                ei[i] = h
                ej[j] = h
                if i == j:
                    H[i, i] = (f(x + ei) - 2 * f0 + f(x - ei)) / h**2
                else:
                    H[i, j] = (f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej)
                               + f(x - ei - ej)) / (4 * h * h)
                    H[j, i] = H[i, j]
    return (H + H.T) / 2


class CLVModel(CrmkitEstimator):
    """Base class: fitting by weighted maximum likelihood, summary, persistence.

    Subclasses define ``_param_names``, ``_patterns(frame)`` (distinct data
    patterns and their weights), ``_total_loglik(params, data, weights)`` and,
    with ``_has_gradient``, ``_total_loglik_grad``.

    The penalty follows lifetimes: ``penalizer * sum(theta_i ** 2)`` added to
    the mean negative log-likelihood, where the scale parameters (``alpha``,
    ``beta``) of the continuous-time models enter in lifetimes' rescaled time
    (durations divided by the longest ``T``), so the same ``penalizer`` gives
    the same fit as lifetimes.
    """

    _param_names: tuple[str, ...] = ()
    _scale_params: tuple[str, ...] = ()  # penalised on lifetimes' rescaled time
    _penalty_on_sum = False  # lifetimes' Pareto/NBD adds the penalty to the summed NLL
    _has_gradient = False

    _parameter_constraints = {
        "penalizer": [Interval(float, 0, None, "left")],
        "initial_params": [NONE, DICT],
        "max_iter": [Interval(int, 1, None, "left")],
        "penalizer_coef": [NONE, Interval(float, 0, None, "left")],
    }

    def __init__(self, *, penalizer: float = 0.0, initial_params: dict | None = None,
                 max_iter: int = 500, penalizer_coef: float | None = None):
        self.penalizer = penalizer
        self.initial_params = initial_params
        self.max_iter = max_iter
        self.penalizer_coef = penalizer_coef

    # ----------------------------------------------------------------- helpers
    @property
    def _name(self) -> str:
        return type(self).__name__

    def _penalizer(self) -> float:
        if self.penalizer_coef is not None:
            deprecated_alias(self._name, "penalizer_coef", "penalizer")
            return float(self.penalizer_coef)
        return float(self.penalizer)

    def _check_hyper(self) -> None:
        self._validate_params()
        if self.initial_params is not None:
            if set(self.initial_params) != set(self._param_names) or \
                    not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
                            for v in self.initial_params.values()):
                raise ValueError(
                    f"The 'initial_params' parameter of {self._name} must be None or a dict of "
                    f"positive numbers with keys {', '.join(self._param_names)}. "
                    f"Got {self.initial_params!r} instead.")

    def _check_fitted(self) -> None:
        if not hasattr(self, "params_"):
            raise NotFittedError(
                f"This {self._name} instance is not fitted yet. Call 'fit' with appropriate "
                "data before using this estimator, or load one with crmkit.load_model.")

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "params_")

    def _param_array(self) -> np.ndarray:
        return np.array([self.params_[n] for n in self._param_names], dtype=float)

    def _initial_guess(self, data: dict, weights: np.ndarray) -> np.ndarray:
        return np.ones(len(self._param_names))

    def _prepare_data(self, data: dict, weights: np.ndarray) -> dict:
        """Precompute parameter-free quantities once per fit (override for speed)."""
        return data

    def _loglik(self, params, data) -> np.ndarray:  # pragma: no cover - overridden
        raise NotImplementedError

    def _total_loglik(self, params, data, weights) -> float:
        """Weighted log-likelihood from the per-pattern ``_loglik`` (or overridden)."""
        return float(_dot(weights, self._loglik(params, data)))

    def _total_loglik_grad(self, params, data, weights):  # pragma: no cover
        raise NotImplementedError

    def _time_scale(self, data: dict) -> float:
        """lifetimes' ``1 / max(T)`` (1 for models without a time scale)."""
        return 1.0

    def _penalty_weights(self, data: dict) -> np.ndarray:
        s = self._time_scale(data)
        return np.array([s if n in self._scale_params else 1.0 for n in self._param_names])

    # --------------------------------------------------------------------- fit
    def _objective(self, data, weights, total, pen, pw):
        """(objective(logp), fun_and_grad(logp)) of the penalised mean negative LL."""
        def objective(logp: np.ndarray) -> float:
            p = np.exp(logp)
            ll = self._total_loglik(p, data, weights)
            val = -ll / total + pen * float(np.sum((p * pw) ** 2))
            return val if math.isfinite(val) else 1e300

        def fun_and_grad(logp):
            p = np.exp(logp)
            if self._has_gradient:
                ll, g = self._total_loglik_grad(p, data, weights)
                val = -ll / total + pen * float(np.sum((p * pw) ** 2))
                gp = (-g / total + 2 * pen * p * pw ** 2) * p
                if not math.isfinite(val) or not np.all(np.isfinite(gp)):
                    return 1e300, np.zeros_like(logp)
                return val, gp
            val = objective(logp)
            return val, _numeric_gradient(objective, logp)

        return objective, fun_and_grad

    def _fit_patterns(self, data: dict, weights: np.ndarray, fingerprint: str) -> None:
        self._check_hyper()
        pen = self._penalizer()
        weights = np.asarray(weights, dtype=float)
        total = float(weights.sum())
        if total <= 0:
            raise ValueError(f"{self._name}.fit: no customers to fit (total weight is 0).")
        data = self._prepare_data(data, weights)
        pw = self._penalty_weights(data)
        if self._penalty_on_sum:  # same fit as lifetimes: penalty / customers on the mean
            pen = pen / total
        objective, fun_and_grad = self._objective(data, weights, total, pen, pw)

        def gradient(logp: np.ndarray) -> np.ndarray:
            return fun_and_grad(logp)[1]

        if self.initial_params is not None:
            x0 = np.log([float(self.initial_params[n]) for n in self._param_names])
        else:
            x0 = np.log(self._initial_guess(data, weights))
        # one BLAS thread: the problem is tiny (<= 4 parameters) and BLAS worker
        # threads only add synchronisation stalls, badly so on a busy machine
        with np.errstate(all="ignore"), threadpool_limits(limits=1, user_api="blas"):
            stopped = []

            def at_boundary(xk):
                # deep in the no-dropout regime the likelihood is flat along a ray
                # (lifetimes stops there on its tolerance); following it to the
                # search-space edge costs hundreds of evaluations and changes nothing
                if self._deep_in_boundary(np.exp(xk), data):
                    stopped.append(True)
                    raise StopIteration

            res = optimize.minimize(fun_and_grad, x0, jac=True, method="L-BFGS-B",
                                    bounds=[(-30.0, 30.0)] * x0.size, callback=at_boundary,
                                    options={"maxiter": self.max_iter, "ftol": 1e-13,
                                             "gtol": 1e-9, "maxcor": 20})
            x = res.x
            fx, g = fun_and_grad(x)
            # Newton steps polish the optimum only when L-BFGS-B stopped early (flat
            # likelihoods); the finite-difference Hessian they need is not computed
            # otherwise (standard errors compute their own, when first asked for).
            if np.max(np.abs(g)) > 1e-9 and np.all(np.abs(x) < 29.0) and not stopped:
                H = _hessian(objective, gradient, x, self._has_gradient)
                for _ in range(8):
                    try:
                        step = np.linalg.solve(H, g)
                    except np.linalg.LinAlgError:
                        break
                    if not np.all(np.isfinite(step)):
                        break
                    t = 1.0
                    improved = False
                    while t > 1e-3:
                        cand = np.clip(x - t * step, -30, 30)
                        fc, gc = fun_and_grad(cand)
                        if fc <= fx:
                            improved = fc < fx or np.max(np.abs(gc)) < np.max(np.abs(g))
                            x, fx, g = cand, fc, gc
                            break
                        t /= 2
                    if not improved or np.max(np.abs(t * step)) < 1e-12 \
                            or np.max(np.abs(g)) < 1e-12:
                        break

        params = np.exp(x)
        self.params_ = {n: float(v) for n, v in zip(self._param_names, params)}
        self.log_likelihood_ = float(self._total_loglik(params, data, weights))
        self.n_customers_ = int(round(total)) if abs(total - round(total)) < 1e-9 else total
        self.n_patterns_ = int(len(weights))
        self.fingerprint_ = fingerprint
        self.n_iter_ = int(res.nit)
        self.fitted_at_ = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        grad_norm = float(np.max(np.abs(g))) if g.size else 0.0
        self.gradient_norm_ = grad_norm
        # standard errors are computed when first asked for (covariance_log_)
        self._se_inputs = (data, weights, total, x)
        self._covariance_log = None
        self._se_done = False
        boundary = self._boundary_message(data, weights)
        self.at_boundary_ = boundary is not None
        problems = []
        if not np.all(np.isfinite(params)):
            problems.append("a parameter is not finite")
        if boundary is None and np.any(np.abs(x) >= 29.0):
            at = [n for n, v in zip(self._param_names, x) if abs(v) >= 29.0]
            problems.append(f"parameter(s) {', '.join(at)} ran to the edge of the search space "
                            "(0 or infinity)")
        if boundary is None and grad_norm > 1e-4:
            problems.append(f"the gradient at the end is {grad_norm:.2g} (tolerance 1e-4)")
        if boundary is None and not res.success and grad_norm > 1e-6:
            problems.append(f"the optimiser said: {res.message}")
        self.converged_ = not problems and boundary is None
        if boundary is not None:
            warnings.warn(boundary, ConvergenceWarning, stacklevel=3)
        elif problems:
            warnings.warn(
                f"{self._name} did not converge cleanly: {'; '.join(problems)}. Try: "
                f"{self._remedies()}.",
                ConvergenceWarning, stacklevel=3)

    def _boundary_message(self, data: dict, weights: np.ndarray) -> str | None:
        """A message when the fit ran to the no-dropout boundary (override per model)."""
        return None

    def _deep_in_boundary(self, params: np.ndarray, data: dict) -> bool:
        """True when the optimiser may stop: far down the no-dropout ray (per model)."""
        return False

    def _nbd_gain(self, data: dict, weights: np.ndarray) -> float:
        """Log-likelihood gained over the no-dropout NBD model on the same patterns.

        The NBD is the limit of BG/NBD and Pareto/NBD without dropout, so a gain
        under 3 (the 95% point of a likelihood-ratio test with 2 degrees of
        freedom, halved) means the data do not identify a dropout process.
        """
        from crmkit.value._nbd import NBD
        nbd = NBD()
        nd = {"x": data["x"], "T": data["T"]}
        total = float(weights.sum())

        def f(logp):
            ll, g = nbd._total_loglik_grad(np.exp(logp), nd, weights)
            return -ll / total, -g * np.exp(logp) / total

        x0 = np.log(self._initial_guess(data, weights)[:2])
        with np.errstate(all="ignore"):
            res = optimize.minimize(f, x0, jac=True, method="L-BFGS-B",
                                    bounds=[(-30.0, 30.0)] * 2)
        return self.log_likelihood_ - (-res.fun * total)

    def _remedies(self) -> str:
        return ("penalizer=0.001 (a small L2 penalty keeps parameters finite), other "
                "initial_params, a larger max_iter, and check that the input is a per-customer "
                "summary in a sensible time unit (weeks for weekly buyers; days makes rates tiny)")

    # ----------------------------------------------------------------- standard errors
    @property
    def covariance_log_(self):
        """Covariance of the log-parameters (from the likelihood's Hessian), or None.

        Computed when first asked for (a finite-difference Hessian of the
        log-likelihood, without the penalty), then kept and saved with the model.
        """
        self._check_fitted()
        if not getattr(self, "_se_done", True):
            self._covariance_log = self._compute_covariance()
            self._se_done = True
            self._se_inputs = None
        return self._covariance_log

    def _compute_covariance(self):
        data, weights, total, x = self._se_inputs
        objective, fun_and_grad = self._objective(data, weights, total, 0.0,
                                                  np.ones(len(self._param_names)))
        with np.errstate(all="ignore"), threadpool_limits(limits=1, user_api="blas"):
            H = _hessian(objective, lambda z: fun_and_grad(z)[1], x, self._has_gradient) * total
        try:
            cov = np.linalg.inv(H)
        except np.linalg.LinAlgError:
            warnings.warn(f"{self._name}: the Hessian is singular, so the standard errors are "
                          "unknown (NaN).", ConvergenceWarning, stacklevel=4)
            return None
        if not np.all(np.isfinite(cov)) or np.any(np.diag(cov) < 0):
            warnings.warn(f"{self._name}: the Hessian is not positive definite, so the standard "
                          "errors are unknown (NaN).", ConvergenceWarning, stacklevel=4)
            return None
        return cov.tolist()

    # ----------------------------------------------------------------- summary
    @property
    def summary_(self) -> pl.DataFrame:
        """Fitted parameters with standard errors and 95% intervals (polars frame).

        Columns ``param, estimate, std_err, lower_95, upper_95``. Standard errors
        come from the numerical Hessian of the log-likelihood in log-parameter
        space and the delta method; the intervals are exp(log estimate +/- 1.96 se).
        """
        self._check_fitted()
        est = self._param_array()
        cov = self.covariance_log_
        if cov is not None:
            se_log = np.sqrt(np.diag(np.asarray(cov)))
        else:
            se_log = np.full(est.size, np.nan)
        return pl.DataFrame({
            "param": list(self._param_names),
            "estimate": est,
            "std_err": est * se_log,
            "lower_95": est * np.exp(-_Z95 * se_log),
            "upper_95": est * np.exp(_Z95 * se_log),
        })

    @property
    def summary(self) -> pl.DataFrame:
        """Deprecated alias of :attr:`summary_`."""
        deprecated_alias(self._name, "summary", "summary_")
        return self.summary_

    @property
    def standard_errors_(self) -> dict:
        """Standard errors of the parameters (delta method), keyed by name."""
        s = self.summary_
        return dict(zip(s["param"].to_list(), s["std_err"].to_list()))

    @property
    def aic_(self) -> float:
        """Akaike information criterion, ``2k - 2 LL``."""
        self._check_fitted()
        return 2 * len(self._param_names) - 2 * self.log_likelihood_

    @property
    def bic_(self) -> float:
        """Bayesian information criterion, ``k ln(n) - 2 LL`` with n customers."""
        self._check_fitted()
        return len(self._param_names) * math.log(max(float(self.n_customers_), 1.0)) \
            - 2 * self.log_likelihood_

    def _summary_header(self) -> list[str]:
        unit = getattr(self, "unit_", None)
        return [
            f"<crmkit.value.{self._name}>",
            f"  customers: {self.n_customers_}  distinct patterns: {self.n_patterns_}"
            + (f"  time unit: {unit}" if unit else ""),
            f"  log-likelihood: {self.log_likelihood_:.4f}  AIC: {self.aic_:.2f}"
            f"  BIC: {self.bic_:.2f}",
            f"  converged: {self.converged_}  penalizer: {self.penalizer}",
        ]

    def print_summary(self, decimals: int = 4, *, width: int = 100) -> None:
        """Print the fit: model, data size, log-likelihood, convergence, parameter table."""
        self._check_fitted()
        super().print_summary(decimals, width=width)

    # ------------------------------------------------------------- persistence
    _STATE_ATTRS = ("params_", "unit_", "n_customers_", "n_patterns_", "log_likelihood_",
                    "converged_", "gradient_norm_", "n_iter_", "fitted_at_", "fingerprint_",
                    "at_boundary_")

    def _extra_state(self) -> dict:
        return {}

    def _load_extra_state(self, state: dict) -> None:
        return None

    def _get_state(self) -> dict:
        state = super()._get_state()
        state["covariance_log"] = self.covariance_log_
        state["extra"] = self._extra_state()
        return state

    def _set_state(self, state: dict) -> None:
        state = dict(state)
        cov = state.pop("covariance_log", None)
        extra = state.pop("extra", {}) or {}
        super()._set_state(state)
        self.params_ = {n: float(self.params_[n]) for n in self._param_names}
        self._covariance_log = cov
        self._se_done = True
        self._load_extra_state(extra)

    def to_json(self, path: str | Path | None = None) -> str:
        """Deprecated: use :meth:`save` and :func:`crmkit.load_model`.

        Returns the previous ``crmkit.clv/1`` JSON text (also written to ``path``).
        """
        deprecated_alias(self._name, "to_json", "save", note=" (read with crmkit.load_model)")
        return self._legacy_json(path)

    def _legacy_json(self, path: str | Path | None = None) -> str:
        self._check_fitted()
        state = {
            "format": "crmkit.clv/1",
            "model": self._name,
            "crmkit_version": _crmkit_version(),
            "hyperparameters": {"penalizer": self.penalizer,
                                "initial_params": self.initial_params,
                                "max_iter": self.max_iter,
                                **({"penalizer_coef": self.penalizer_coef}
                                   if self.penalizer_coef is not None else {})},
            "params": self.params_,
            "covariance_log": self.covariance_log_,
            "unit": getattr(self, "unit_", None),
            "n_customers": self.n_customers_,
            "n_patterns": self.n_patterns_,
            "log_likelihood": self.log_likelihood_,
            "converged": self.converged_,
            "gradient_norm": self.gradient_norm_,
            "n_iter": self.n_iter_,
            "fitted_at": self.fitted_at_,
            "fingerprint": self.fingerprint_,
        }
        state.update(self._extra_state())
        text = json.dumps(state, indent=2, sort_keys=True)
        if path is not None:
            save_json_text(text, path)
        return text

    @classmethod
    def from_json(cls, source: str | Path):
        """Load a model saved with the deprecated :meth:`to_json` (path or JSON text).

        Prefer :func:`crmkit.load_model`, which reads both formats.
        """
        state = json.loads(json_text_from(source))
        return cls._from_legacy(state)

    @classmethod
    def _from_legacy(cls, state: dict):
        if state.get("format") != "crmkit.clv/1":
            raise ValueError(f"Not a crmkit CLV model file (format {state.get('format')!r}).")
        target = _REGISTRY.get(state["model"])
        if target is None:
            raise ValueError(f"Unknown CLV model {state['model']!r} in the file; known: "
                             f"{', '.join(sorted(_REGISTRY))}.")
        if cls not in (CLVModel, RFMModel) and target is not cls:
            raise ValueError(f"The file holds a {state['model']}, not a {cls.__name__}; load it "
                             f"with crmkit.load_model.")
        hyper = dict(state["hyperparameters"])
        if "penalizer_coef" in hyper and "penalizer" not in hyper:
            hyper["penalizer"] = hyper.pop("penalizer_coef")
        model = target(**hyper)
        model.params_ = {n: float(state["params"][n]) for n in target._param_names}
        model._covariance_log = state["covariance_log"]
        model._se_done = True
        if state.get("unit") is not None:
            model.unit_ = state["unit"]
        model.n_customers_ = state["n_customers"]
        model.n_patterns_ = state["n_patterns"]
        model.log_likelihood_ = state["log_likelihood"]
        model.converged_ = state["converged"]
        model.gradient_norm_ = state["gradient_norm"]
        model.n_iter_ = state["n_iter"]
        model.fitted_at_ = state["fitted_at"]
        model.fingerprint_ = state["fingerprint"]
        model.crmkit_version_ = state["crmkit_version"]
        model._load_extra_state(state)
        return model


_REGISTRY: dict[str, type] = {}


def _register(cls):
    _REGISTRY[cls.__name__] = cls
    return cls


def load_clv_model(path: str | Path) -> CLVModel:
    """Deprecated: use :func:`crmkit.load_model` (reads every crmkit model).

    Examples
    --------
    >>> import crmkit, polars as pl
    >>> from crmkit.value import BetaGeo
    >>> rfm = pl.DataFrame({"frequency": [0, 1, 2, 0, 3, 1], "recency_weeks": [0., 5, 20, 0, 30, 2],
    ...                     "T_weeks": [30., 35, 38, 10, 39, 20]})
    >>> m = BetaGeo(penalizer=0.01).fit(rfm)
    >>> crmkit.load_model(m._legacy_json()).params_ == m.params_
    True
    """
    warnings.warn("load_clv_model is deprecated and will be removed in crmkit 0.3; use "
                  "crmkit.load_model instead.", FutureWarning, stacklevel=2)
    from crmkit._estimator import load_model
    return load_model(path)


def _no_dropout_message(name: str, where: str, what: str, gain: float) -> str:
    return (f"{name} ran to the no-dropout boundary ({where}: {what}; its log-likelihood "
            f"beats the no-dropout NBD model by only {gain:.2f}): in this calibration "
            "period the customers show no sign of stopping, so the data cannot identify a "
            "dropout process, and a penalizer does not change that. Use a model without "
            "dropout (crmkit.value.NBD) or a longer calibration period; predictions of this "
            "fit treat every customer as alive.")


_WEIGHT_NAMES = ("weights", "weight", "count", "counts", "n_customers")


def _refuse_unused_weights(frame: pl.DataFrame, weight_col, owner: str) -> None:
    """A column that looks like customer counts is used only when named: never guessed."""
    if weight_col is not None:
        return
    found = [c for c in frame.columns if c.lower() in _WEIGHT_NAMES]
    if found:
        raise SchemaError(
            f"{owner}: the input has a column {found[0]!r} that looks like the number of "
            f"customers of each row. Pass weight_col={found[0]!r} to use it (one row per "
            "pattern), or drop the column when each row is one customer; crmkit does not "
            "guess.")


def _strip_cal(frame: pl.DataFrame) -> pl.DataFrame:
    """Read :func:`crmkit.features.calibration_holdout_split` output as an RFM summary.

    ``frequency_cal``, ``recency_cal_<unit>``, ``T_cal_<unit>`` and
    ``monetary_value_cal`` stand for the calibration summary when the plain
    columns are absent; the holdout columns are ignored.
    """
    names = frame.columns
    if "frequency" in names or "frequency_cal" not in names:
        return frame
    ren = {}
    for c in names:
        if c in ("frequency_cal", "monetary_value_cal"):
            ren[c] = c[:-4]
        elif c.startswith(("recency_cal_", "T_cal_")):
            ren[c] = c.replace("_cal_", "_", 1)
    return frame.rename(ren)


def _fingerprint(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(np.asarray(a, dtype=float)).tobytes())
    return "sha256:" + h.hexdigest()


class RFMModel(CLVModel):
    """Base class of the continuous-time models fitted on an RFM summary
    (frequency, recency, T): BetaGeo, ModifiedBetaGeo, ParetoNBD."""

    # ------------------------------------------------------------ input checks
    def _read_rfm(self, rfm: Any, unit: str | None, weight_col: str | None, *, fitting: bool):
        frame = _strip_cal(to_polars(rfm, "rfm"))
        names = frame.columns
        owner = self._name
        if any(f"recency_{u}" in names for u in ("days", "weeks", "calendar_months",
                                                   "mean_months")):
            data_unit = rfm_unit(names)
            if unit is not None and unit != data_unit:
                raise SchemaError(
                    f"{owner}: unit={unit!r} was given but the RFM summary is in {data_unit!r} "
                    f"(columns recency_{data_unit}, T_{data_unit}).")
            rec, T = f"recency_{data_unit}", f"T_{data_unit}"
        elif "recency" in names and "T" in names:
            if unit is None:
                raise SchemaError(
                    f"{owner}: the columns 'recency' and 'T' carry no time unit. Pass unit= "
                    "(e.g. unit='weeks') or make the summary with "
                    "crmkit.features.rfm_summary(..., unit=...), whose columns name the unit.")
            from crmkit.features import UNITS
            if unit not in UNITS:
                raise ValueError(f"The 'unit' parameter of {owner} must be one of "
                                 f"{', '.join(map(repr, UNITS))}. Got {unit!r} instead.")
            data_unit, rec, T = unit, "recency", "T"
        else:
            missing = [c for c in ("frequency",) if c not in names]
            raise SchemaError(
                f"{owner}: the input does not look like an RFM summary: it needs columns "
                f"'frequency', 'recency_<unit>', 'T_<unit>' (as made by "
                f"crmkit.features.rfm_summary); it has {', '.join(names) or 'no columns'}"
                + (f"; missing {', '.join(map(repr, missing))}" if missing else "") + ".")
        if "frequency" not in names:
            raise SchemaError(f"{owner}: the RFM summary has no column 'frequency'; it has "
                              f"{', '.join(names)}.")
        if weight_col is not None and weight_col not in names:
            raise SchemaError(f"{owner}: weight_col={weight_col!r} is not a column; the input "
                              f"has {', '.join(names)}.")
        if not fitting:
            self._check_fitted()
            if data_unit != self.unit_:
                raise SchemaError(
                    f"This {owner} was fitted on durations in {self.unit_!r}; the input is in "
                    f"{data_unit!r}. Recompute the summary with rfm_summary(..., "
                    f"unit={self.unit_!r}) or refit the model on {data_unit!r}.")
        x = frame["frequency"].cast(pl.Float64).to_numpy()
        t_x = frame[rec].cast(pl.Float64).to_numpy()
        TT = frame[T].cast(pl.Float64).to_numpy()
        w = frame[weight_col].cast(pl.Float64).to_numpy() if weight_col else None
        self._validate_rfm(x, t_x, TT, w, rec, T)
        if fitting and len(TT):
            self._check_span(float(np.max(TT)), data_unit)
        ids = frame["customer_id"] if "customer_id" in names else None
        if fitting and ids is not None and ids.n_unique() != frame.height:
            raise SchemaError(
                f"{owner}: customer_id repeats ({frame.height - ids.n_unique()} duplicate rows). "
                "The input must be one row per customer (an RFM summary), not transactions: "
                "run crmkit.features.rfm_summary on the transactions first.")
        return frame, ids, x, t_x, TT, w, data_unit

    def _check_span(self, max_T: float, unit: str) -> None:
        """Warn when the observation span is implausible for the unit in the names."""
        from crmkit.features import UNIT_DAYS

        years = max_T / 12.0 if unit == "calendar_months" else max_T * UNIT_DAYS[unit] / 365.25
        if years > 40 or years < 1 / 365.25:
            warnings.warn(
                f"{self._name}: the longest customer history is {max_T:g} {unit} "
                f"({years:.3g} years). Is the summary really in {unit}? Durations computed "
                f"in another unit but named _{unit} make every rate and horizon wrong; "
                f"recompute with crmkit.features.rfm_summary(..., unit={unit!r}).",
                DataWarning, stacklevel=4)

    def _validate_rfm(self, x, t_x, T, w, rec, Tn) -> None:
        owner = self._name
        problems = []
        for name, arr in (("frequency", x), (rec, t_x), (Tn, T)):
            bad = ~np.isfinite(arr)
            if bad.any():
                problems.append(f"{name}: {int(bad.sum())} missing or non-finite values")
        if not problems:
            if (x < 0).any():
                problems.append(f"frequency: {int((x < 0).sum())} negative values")
            if (x != np.round(x)).any():
                problems.append("frequency: non-integer values (it counts repeat purchase periods)")
            if (t_x < 0).any():
                problems.append(f"{rec}: {int((t_x < 0).sum())} negative values")
            if (t_x > T * (1 + 1e-9) + 1e-9).any():
                problems.append(f"{rec} > {Tn} in {int((t_x > T * (1 + 1e-9) + 1e-9).sum())} rows "
                                "(recency is measured from the first purchase, so it cannot "
                                "exceed T)")
            zero = (x == 0) & (t_x != 0)
            if zero.any():
                problems.append(f"{int(zero.sum())} rows with frequency 0 but {rec} > 0 "
                                "(a customer with no repeat purchase has recency 0)")
            if (T <= 0).any() and self._name != "GammaGamma":
                problems.append(f"{Tn}: {int((T <= 0).sum())} values <= 0 (customers first "
                                "seen at the end of the observation period carry no "
                                "information; drop them)")
        if w is not None and (~np.isfinite(w) | (w < 0)).any():
            problems.append("weights: negative or non-finite values")
        if problems:
            raise SchemaError(f"{owner}: the RFM summary is not valid:\n  - "
                              + "\n  - ".join(problems))

    @staticmethod
    def _distinct_rows(*cols: np.ndarray):
        """(code per row, index of the first row of each distinct row), or None.

        Hash-based (pandas.factorize): linear time, about 10x faster than
        sorting for 10M rows.
        """
        import pandas as pd

        n = len(cols[0])
        key = np.zeros(n, dtype=np.int64)
        size = 1
        for c in cols:
            codes, uniq = pd.factorize(np.asarray(c))
            size *= max(len(uniq), 1)
            if size > 2**62:
                return None
            key = key * len(uniq) + codes
        codes, uniq = pd.factorize(key)
        first = np.empty(len(uniq), dtype=np.int64)
        first[codes[::-1]] = np.arange(n - 1, -1, -1)
        return codes, first

    @staticmethod
    def _compress(*cols: np.ndarray, weights: np.ndarray | None = None):
        """Distinct rows of ``cols`` in sorted order, with their summed weights."""
        n = len(cols[0])
        w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
        cols = [np.asarray(c, dtype=float) for c in cols]
        if n == 0:
            return cols, w
        found = RFMModel._distinct_rows(*cols)
        if found is None:  # too many distinct values for one integer key
            frame = pl.DataFrame({f"c{i}": c for i, c in enumerate(cols)} | {"_w": w})
            keys = [f"c{i}" for i in range(len(cols))]
            uniq = frame.group_by(keys).agg(pl.col("_w").sum()).sort(keys)
            return [uniq[k].to_numpy() for k in keys], uniq["_w"].to_numpy()
        codes, first = found
        wu = np.bincount(codes, weights=w, minlength=len(first))
        ucols = [c[first] for c in cols]
        order = np.lexsort(ucols[::-1])  # canonical order: the fingerprint ignores row order
        return [c[order] for c in ucols], wu[order]

    @staticmethod
    def _by_pattern(fn, *cols: np.ndarray) -> np.ndarray:
        """Evaluate ``fn`` once per distinct row of ``cols`` and broadcast back.

        Predictions depend on a customer only through these columns, so 10M
        customers cost as much as their distinct patterns (plus a hash pass).
        """
        n = len(cols[0])
        if n < 2000:
            return fn(*cols)
        found = RFMModel._distinct_rows(*cols)
        if found is None or len(found[1]) > 0.7 * n:
            return fn(*cols)
        codes, first = found
        return np.asarray(fn(*[np.asarray(c)[first] for c in cols]))[codes]

    def fit(self, rfm: Any, y: Any = None, *, unit: str | None = None,
            weight_col: str | None = None):
        """Fit by maximum likelihood on the distinct (frequency, recency, T) rows.

        Parameters
        ----------
        rfm : table
            One row per customer with ``frequency``, ``recency_<unit>``,
            ``T_<unit>`` (the output of :func:`crmkit.features.rfm_summary`), or
            plain ``frequency``, ``recency``, ``T`` columns together with ``unit=``.
        y : ignored
        unit : str, optional
            Time unit of plain ``recency``/``T`` columns; must match the column
            names when they carry a unit.
        weight_col : str, optional
            Column counting the customers of each row (for inputs that are
            already compressed, e.g. sufficient statistics gathered per shard).

        Returns
        -------
        self
        """
        _, _, x, t_x, T, w, data_unit = self._read_rfm(rfm, unit, weight_col, fitting=True)
        (xu, tu, Tu), wu = self._compress(x, t_x, T, weights=w)
        keep = wu > 0
        xu, tu, Tu, wu = xu[keep], tu[keep], Tu[keep], wu[keep]
        self.unit_ = data_unit
        self._fit_patterns({"x": xu, "t_x": tu, "T": Tu}, wu,
                           _fingerprint(xu, tu, Tu, wu))
        return self

    def _time_scale(self, data: dict) -> float:
        T = data["T"]
        return 1.0 / float(np.max(T)) if len(T) and np.max(T) > 0 else 1.0

    def _initial_guess(self, data, weights):
        W = weights.sum()
        mean_T = float(_dot(weights, data["T"]) / W)
        mean_x = float(_dot(weights, data["x"]) / W)
        alpha = max(mean_T / max(mean_x, 0.1), 1e-3)
        return np.array(self._init_from_scale(alpha))

    def _init_from_scale(self, alpha):  # pragma: no cover - overridden
        return [1.0] * len(self._param_names)

    # ------------------------------------------------------------- predictions
    @staticmethod
    def _check_horizon(horizon: Any, owner: str, name: str = "horizons") -> float:
        ok = isinstance(horizon, (int, float, np.integer, np.floating)) and \
            not isinstance(horizon, bool) and math.isfinite(float(horizon)) and horizon >= 0
        if not ok:
            raise ValueError(f"The {name!r} parameter of {owner} must be a non-negative number "
                             f"(in the model's time unit). Got {horizon!r} instead.")
        return float(horizon)

    def _horizon_list(self, horizons: Any, horizon: Any, owner: str) -> tuple[list, bool]:
        """(horizons as floats, whether one scalar was given)."""
        if horizon is not None:
            deprecated_alias(owner, "horizon", "horizons")
            if horizons is None:
                horizons = horizon
        if horizons is None:
            raise TypeError(f"{owner} needs horizons= (one number or a list, in the model's "
                            f"time unit {getattr(self, 'unit_', '?')!r}).")
        if isinstance(horizons, (list, tuple, np.ndarray)):
            if len(horizons) == 0:
                raise ValueError(f"The 'horizons' parameter of {owner} must be a non-negative "
                                 "number or a non-empty list of them. Got [] instead.")
            return [self._check_horizon(h, owner) for h in horizons], False
        return [self._check_horizon(horizons, owner)], True

    def _out(self, ids, columns: dict, output: Output | None):
        data = {}
        if ids is not None:
            data["customer_id"] = ids
        data.update({k: np.asarray(v, dtype=float) for k, v in columns.items()})
        return self._to_output(pl.DataFrame(data), output)

    def _predict_inputs(self, rfm, unit=None):
        _, ids, x, t_x, T, _, _ = self._read_rfm(rfm, unit, None, fitting=False)
        return ids, x, t_x, T

    def probability_alive(self, rfm: Any, *, unit: str | None = None,
                          output: Output | None = None):
        """P(alive at T | frequency, recency, T): column ``p_alive`` per customer.

        Computed in log space (a logistic of a log-odds), so it neither overflows
        nor returns NaN for heavy buyers with an old last purchase. lifetimes:
        ``conditional_probability_alive``.
        """
        ids, x, t_x, T = self._predict_inputs(rfm, unit)
        p = self._p_alive(self._param_array(), x, t_x, T)
        return self._out(ids, {"p_alive": p}, output)

    def expected_purchases(self, rfm: Any, horizons: Any = None, *, unit: str | None = None,
                           output: Output | None = None, horizon: Any = None):
        """Expected number of repeat purchases in ``(T, T + h]`` per customer.

        Parameters
        ----------
        rfm : table
            RFM summary (or ``calibration_holdout_split`` output).
        horizons : float or list of float
            In the model's time unit ``unit_`` (e.g. 52 for a year when fitted on
            weeks). One number gives the column ``expected_purchases``; a list gives
            one column ``expected_purchases_<h>`` per horizon.
        unit : str, optional
            Unit of plain ``recency``/``T`` columns.
        output : {"polars", "pandas"}, optional
            Default: ``set_output`` or polars.
        horizon : float
            Deprecated name of ``horizons``.

        lifetimes: ``conditional_expected_number_of_purchases_up_to_time``.
        """
        owner = f"{self._name}.expected_purchases"
        hs, single = self._horizon_list(horizons, horizon, owner)
        ids, x, t_x, T = self._predict_inputs(rfm, unit)
        p = self._param_array()
        cols = {}
        for h in hs:
            name = "expected_purchases" if single else f"expected_purchases_{_fmt_h(h)}"
            cols[name] = self._cond_expected(p, x, t_x, T, h)
        return self._out(ids, cols, output)

    # lifetimes' names, on arrays (as lifetimes takes them)
    def conditional_expected_number_of_purchases_up_to_time(self, t, frequency, recency, T):
        """lifetimes' name: expected repeat purchases in ``(T, T + t]`` (numpy arrays).

        Same as :meth:`expected_purchases` on arrays in the model's time unit.
        """
        self._check_fitted()
        h = self._check_horizon(t, f"{self._name}.conditional_expected_number_of_purchases_"
                                   "up_to_time", "t")
        x, t_x, TT = (np.atleast_1d(np.asarray(v, dtype=float)) for v in (frequency, recency, T))
        self._validate_rfm(x, t_x, TT, None, "recency", "T")
        out = self._cond_expected(self._param_array(), x, t_x, TT, h)
        return float(out[0]) if np.ndim(frequency) == 0 else out

    def conditional_probability_alive(self, frequency, recency, T):
        """lifetimes' name: P(alive) on numpy arrays (see :meth:`probability_alive`)."""
        self._check_fitted()
        x, t_x, TT = (np.atleast_1d(np.asarray(v, dtype=float)) for v in (frequency, recency, T))
        self._validate_rfm(x, t_x, TT, None, "recency", "T")
        out = self._p_alive(self._param_array(), x, t_x, TT)
        return float(out[0]) if np.ndim(frequency) == 0 else out

    def expected_purchases_new_customer(self, horizon: Any) -> np.ndarray | float:
        """Expected repeat purchases of a new customer within ``horizon`` units
        of the first purchase (the unconditional E[X(t)])."""
        self._check_fitted()
        t = np.asarray(horizon, dtype=float)
        if not np.all(np.isfinite(t)) or np.any(t < 0):
            raise ValueError(f"The 'horizon' parameter of {self._name}."
                             f"expected_purchases_new_customer must be non-negative numbers. "
                             f"Got {horizon!r} instead.")
        out = self._uncond_expected(self._param_array(), np.atleast_1d(t))
        return float(out[0]) if t.ndim == 0 else out

    def probability_of_purchases(self, rfm: Any, *, k: Any, horizon: float,
                                 unit: str | None = None, output: Output | None = None):
        """P(exactly k repeat purchases in ``(T, T + horizon]`` | history).

        ``k`` is an integer or a list of integers; one column ``p_purchases_<k>``
        per value.
        """
        h = self._check_horizon(horizon, f"{self._name}.probability_of_purchases")
        ks = [k] if np.isscalar(k) else list(k)
        if not ks or any(not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 0
                         for v in ks):
            raise ValueError(f"The 'k' parameter of {self._name}.probability_of_purchases must "
                             f"be a non-negative integer or a list of them. Got {k!r} instead.")
        ids, x, t_x, T = self._predict_inputs(rfm, unit)
        cols = {}
        for kk in ks:
            cols[f"p_purchases_{int(kk)}"] = self._by_pattern(
                lambda a, b, c, kk=kk: self._cond_pmf(self._param_array(), a, b, c, h, int(kk)),
                x, t_x, T)
        return self._out(ids, cols, output)

    def probability_of_purchases_new_customer(self, k: Any, horizon: float) -> np.ndarray:
        """P(exactly k repeat purchases within ``horizon`` units of the first
        purchase) for a new customer; ``k`` an integer or an array of them."""
        self._check_fitted()
        h = self._check_horizon(horizon, f"{self._name}.probability_of_purchases_new_customer")
        ks = np.atleast_1d(np.asarray(k))
        out = np.array([self._uncond_pmf(self._param_array(), int(v), np.array([h]))[0]
                        for v in ks])
        return float(out[0]) if np.ndim(k) == 0 else out

    def expected_frequency_counts(self, T: Any, max_frequency: int) -> np.ndarray:
        """Expected number of customers with 0, 1, ..., ``max_frequency`` or more
        repeat purchases, given each customer's observation length ``T``."""
        self._check_fitted()
        Tarr = np.asarray(T, dtype=float)
        Tu, cnt = np.unique(Tarr, return_counts=True)
        out = np.zeros(max_frequency + 1)
        p = self._param_array()
        for kk in range(max_frequency):
            out[kk] = float(_dot(cnt, self._uncond_pmf(p, kk, Tu)))
        out[max_frequency] = float(cnt.sum()) - out[:max_frequency].sum()
        return out

    # subclasses implement these on numpy arrays
    def _p_alive(self, p, x, t_x, T):  # pragma: no cover
        raise NotImplementedError

    def _cond_expected(self, p, x, t_x, T, t):  # pragma: no cover
        raise NotImplementedError

    def _uncond_expected(self, p, t):  # pragma: no cover
        raise NotImplementedError

    def _uncond_pmf(self, p, k, t):  # pragma: no cover
        raise NotImplementedError

    def _cond_pmf(self, p, x, t_x, T, t, k):  # pragma: no cover
        raise NotImplementedError


def _fmt_h(h: float) -> str:
    return str(int(h)) if float(h).is_integer() else f"{h:g}".replace(".", "_")
