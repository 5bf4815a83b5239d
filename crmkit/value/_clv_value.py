"""Discounted customer lifetime value from a purchase model and a spend model."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import polars as pl

from crmkit._frames import Output, to_output
from crmkit.features import UNIT_DAYS
from crmkit.value._clv_base import RFMModel

__all__ = ["customer_lifetime_value"]


def _years_per_unit(unit: str) -> float:
    if unit == "calendar_months":
        return 1.0 / 12.0
    return UNIT_DAYS[unit] / 365.25


def customer_lifetime_value(
    transaction_model: RFMModel,
    spend_model: Any,
    rfm: Any,
    *,
    horizons: float | None = None,
    annual_discount_rate: float | None = None,
    step: float = 1.0,
    margin: float = 1.0,
    output: Output | None = None,
    horizon: float | None = None,
    **unknown: Any,
):
    """Discounted CLV of each customer over ``horizon`` time units.

    ``CLV = margin * E[spend] * sum_i (E[X(t_i)] - E[X(t_{i-1})]) / (1 + d)^(t_i in years)``
    with ``t_i = i * step`` (the last step ends at ``horizon``) in the time unit
    of the transaction model (``transaction_model.unit_``), ``E[X(t)]`` the
    conditional expected purchases in ``(T, T + t]`` and ``d`` the annual
    discount rate: purchases of each step are discounted from the end of the
    step. The unit conversion is explicit: a week is 7/365.25 years, a mean
    month 30.4375/365.25, a calendar month 1/12.

    Parameters
    ----------
    transaction_model : BetaGeo, ModifiedBetaGeo or ParetoNBD, fitted
    spend_model : GammaGamma, fitted
    rfm : table
        RFM summary with ``monetary_value``, in the transaction model's unit.
    horizons : float
        Length of the projection, in the transaction model's unit (52 = one year
        of weeks). lifetimes' ``time=`` (months) has no equivalent: say the length
        in the model's unit. ``horizon`` is the deprecated name.
    annual_discount_rate : float
        E.g. 0.10 for 10% a year; 0 for no discounting.
    step : float
        Length of a discounting step in the model's unit.
    margin : float
        Profit margin applied to spend.
    output : {"polars", "pandas"}, optional
        Default: the transaction model's ``set_output`` or polars.

    Returns
    -------
    DataFrame
        ``customer_id`` (when present), ``expected_purchases``,
        ``expected_spend``, ``clv``.

    Examples
    --------
    >>> import polars as pl
    >>> from crmkit.value import BetaGeo, GammaGamma, customer_lifetime_value
    >>> rfm = pl.DataFrame({"customer_id": list("abcdefg"),
    ...     "frequency": [1, 2, 5, 3, 0, 1, 4], "recency_weeks": [10., 20, 30, 33, 0, 2, 25],
    ...     "T_weeks": [40., 38, 35, 36, 20, 30, 39],
    ...     "monetary_value": [20., 35, 18, 50, 0, 12, 25]})
    >>> bg = BetaGeo(penalizer=0.01).fit(rfm)
    >>> gg = GammaGamma(penalizer=0.01).fit(rfm)
    >>> out = customer_lifetime_value(bg, gg, rfm, horizons=52, annual_discount_rate=0.1)
    >>> out.columns
    ['customer_id', 'expected_purchases', 'expected_spend', 'clv']
    """
    owner = "customer_lifetime_value"
    if unknown:
        name = next(iter(unknown))
        hint = (f" lifetimes' time= counts months; crmkit takes horizons= in the model's unit "
                f"({getattr(transaction_model, 'unit_', '?')!r}), e.g. horizons=52 for a year "
                "of weeks." if name in ("time", "freq", "discount_rate") else "")
        raise TypeError(f"{owner}() got an unexpected keyword argument {name!r}.{hint}")
    if horizon is not None:
        from crmkit._estimator import deprecated_alias
        deprecated_alias(owner, "horizon", "horizons")
        horizons = horizon if horizons is None else horizons
    if horizons is None or annual_discount_rate is None:
        raise TypeError(f"{owner}() needs horizons= (in the model's unit) and "
                        "annual_discount_rate=.")
    h = RFMModel._check_horizon(horizons, owner)
    for name, val, zero_ok in (("annual_discount_rate", annual_discount_rate, True),
                               ("step", step, False), ("margin", margin, True)):
        ok = isinstance(val, (int, float)) and not isinstance(val, bool) and math.isfinite(val) \
            and (val >= 0 if zero_ok else val > 0)
        if not ok:
            must = "a non-negative number" if zero_ok else "a positive number"
            raise ValueError(f"The {name!r} parameter of {owner} must be {must}. "
                             f"Got {val!r} instead.")
    ids, x, t_x, T = transaction_model._predict_inputs(rfm)
    spend = spend_model.expected_spend(rfm, output="polars")["expected_spend"].to_numpy()
    n_steps = max(int(math.ceil(h / step - 1e-12)), 1)
    grid = np.minimum(np.arange(1, n_steps + 1) * step, h)
    years = _years_per_unit(transaction_model.unit_)
    disc = (1.0 + annual_discount_rate) ** (-grid * years)
    params = transaction_model._param_array()

    def discounted(xx, tt, TT):
        prev = np.zeros(len(xx))
        total = np.zeros(len(xx))
        for g, dfac in zip(grid, disc):
            cur = transaction_model._cond_expected(params, xx, tt, TT, float(g))
            total += (cur - prev) * dfac
            prev = cur
        return np.column_stack([prev, total])

    both = transaction_model._by_pattern(discounted, x, t_x, T)
    data = {} if ids is None else {"customer_id": ids}
    data |= {"expected_purchases": both[:, 0], "expected_spend": spend,
             "clv": margin * spend * both[:, 1]}
    return transaction_model._to_output(pl.DataFrame(data), output)
