"""sBG: the shifted-beta-geometric model of contract renewals.

Fader, P. S. and Hardie, B. G. S. (2007), "How to Project Customer Retention",
Journal of Interactive Marketing 21(1), 76-90; discounted expected residual
lifetime from Fader & Hardie (2010), "Customer-Base Valuation in a Contractual
Setting: The Perils of Ignoring Heterogeneity", Marketing Science 29(1), 85-93.
For contractual settings where churn is observed: insurance policies,
subscriptions, term deposits rolled over each period.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
from scipy.special import betaln, hyp2f1

from crmkit._frames import Output, to_polars
from crmkit.exceptions import SchemaError
from crmkit.value._clv_base import (
    CLVModel,
    RFMModel,
    _fingerprint,
    _refuse_unused_weights,
    _register,
)

__all__ = ["ShiftedBetaGeometric"]


@_register
class ShiftedBetaGeometric(CLVModel):
    """sBG model: each customer renews each period with a constant probability
    ``1 - theta``, ``theta ~ Beta(alpha, beta)`` (Fader & Hardie 2007).

    Two accepted inputs, one documented schema each:

    - per customer (or per pattern with ``weight_col=``): ``periods`` (whole
      periods the customer has been observed, >= 1) and ``churned`` (bool:
      cancelled at the end of period ``periods``; False: still active, censored);
    - per cohort survivor curve: ``period`` (0, 1, 2, ...) and ``n_active``
      (customers still active at the end of that period; ``period`` 0 is the
      cohort size).

    Examples
    --------
    >>> import polars as pl
    >>> from crmkit.value import ShiftedBetaGeometric
    >>> curve = pl.DataFrame({"period": list(range(8)),
    ...                       "n_active": [1000, 631, 468, 382, 326, 289, 262, 241]})
    >>> m = ShiftedBetaGeometric().fit(curve)
    >>> [round(v, 3) for v in m.params_.values()]
    [0.704, 1.182]
    >>> m.survival_function([8, 9, 10]).round(1).tolist()
    [220.1, 204.4, 191.2]
    """

    _param_names = ("alpha", "beta")

    def _read(self, data: Any, weight_col: str | None):
        frame = to_polars(data, "data")
        names = frame.columns
        if "period" in names and "n_active" in names:
            f = frame.sort("period")
            per = f["period"].cast(pl.Float64).to_numpy()
            act = f["n_active"].cast(pl.Float64).to_numpy()
            if len(per) < 2 or (per != np.arange(len(per))).any():
                raise SchemaError(f"{self._name}: a survivor curve needs periods 0, 1, 2, ... "
                                  "without gaps (period 0 = cohort size).")
            if (np.diff(act) > 0).any() or (act < 0).any():
                raise SchemaError(f"{self._name}: n_active must be non-negative and never "
                                  "increase over periods.")
            lost = act[:-1] - act[1:]
            t = np.concatenate([per[1:], [per[-1]]])
            churned = np.concatenate([np.ones(len(lost)), [0.0]])
            w = np.concatenate([lost, [act[-1]]])
            return None, t, churned, w
        missing = [c for c in ("periods", "churned") if c not in names]
        if missing:
            raise SchemaError(f"{self._name}: the input needs columns 'periods' and 'churned' "
                              f"(per customer) or 'period' and 'n_active' (a survivor curve); "
                              f"it has {', '.join(names)}.")
        if weight_col is not None and weight_col not in names:
            raise SchemaError(f"{self._name}: weight_col={weight_col!r} is not a column.")
        t = frame["periods"].cast(pl.Float64).to_numpy()
        churned = frame["churned"].cast(pl.Float64).to_numpy()
        w = frame[weight_col].cast(pl.Float64).to_numpy() if weight_col else np.ones(len(t))
        if (~np.isfinite(t)).any() or (t < 1).any() or (t != np.round(t)).any():
            raise SchemaError(f"{self._name}: 'periods' must be integers >= 1 (whole periods "
                              "observed).")
        ids = frame["customer_id"] if "customer_id" in names else None
        return ids, t, churned, w

    def fit(self, data: Any, y: Any = None, *, weight_col: str | None = None):
        """Fit by maximum likelihood (Fader & Hardie 2007 eq. 6); returns self."""
        if weight_col is None:
            _refuse_unused_weights(to_polars(data, "data"), None, self._name)
        _, t, c, w = self._read(data, weight_col)
        (tu, cu), wu = RFMModel._compress(t, c, weights=w)
        keep = wu > 0
        self._fit_patterns({"t": tu[keep], "c": cu[keep]}, wu[keep],
                           _fingerprint(tu[keep], cu[keep], wu[keep]))
        return self

    def _loglik(self, params, data):
        a, b = params
        t, c = data["t"], data["c"]
        churn = betaln(a + 1.0, b + t - 1.0) - betaln(a, b)   # P(T = t)
        alive = betaln(a, b + t) - betaln(a, b)               # S(t) = P(T > t)
        return np.where(c > 0, churn, alive)

    def survival_function(self, t: Any, cohort_size: float = 1000.0) -> np.ndarray:
        """Expected survivors of a cohort of ``cohort_size`` after ``t`` periods."""
        self._check_fitted()
        a, b = self._param_array()
        t = np.asarray(t, dtype=float)
        return cohort_size * np.exp(betaln(a, b + t) - betaln(a, b))

    def retention_rate(self, t: Any) -> np.ndarray:
        """Expected renewal rate in period ``t`` (>= 1): ``(beta + t - 1)/(alpha + beta + t - 1)``."""
        self._check_fitted()
        a, b = self._param_array()
        t = np.asarray(t, dtype=float)
        return (b + t - 1.0) / (a + b + t - 1.0)

    def expected_renewals(self, data: Any, *, discount_rate: float,
                         output: Output | None = None):
        """Expected discounted number of future renewals of each customer.

        For a customer active after ``n`` periods, the sum over j >= 1 of
        P(still active after n + j periods | active after n) / (1 + d)^j
        ``= 2F1(1, beta + n; alpha + beta + n; 1/(1+d)) - 1`` (the discounted
        expected residual lifetime of Fader & Hardie 2010, without the current
        period); 0 for customers who churned. ``discount_rate`` is per period.
        Multiply by the margin per renewal to value the book of contracts.
        """
        self._check_fitted()
        d = discount_rate
        if not isinstance(d, (int, float)) or isinstance(d, bool) or not d > 0:
            raise ValueError(f"The 'discount_rate' parameter of {self._name}.expected_renewals "
                             f"must be a positive number (per period). Got {d!r} instead.")
        ids, t, c, _ = self._read(data, None)
        a, b = self._param_array()
        val = hyp2f1(1.0, b + t, a + b + t, 1.0 / (1.0 + d)) - 1.0
        out = np.where(c > 0, 0.0, val)
        cols = ({"customer_id": ids} if ids is not None else {}) | {"expected_renewals": out}
        return self._to_output(pl.DataFrame(cols), output)
