"""Competing risks: closure and silence as causes of churn, cumulative incidence per cause.

A customer can leave by closing everything or by going silent; whichever happens
first ends the relationship, so each is a competing risk of the other. The
non-parametric view is the Aalen-Johansen estimator of each cause's cumulative
incidence (lifelines' :class:`~lifelines.AalenJohansenFitter`); the model view is
:meth:`crmkit.churn.ChurnRiskModel.cumulative_incidence` from cause-specific
hazards. Either way the causes' incidences add up to the probability of any churn.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import polars as pl

from crmkit._frames import Output, to_output, to_polars

__all__ = ["aalen_johansen"]


def aalen_johansen(outcomes: Any, times: Any, *, duration_col: str = "duration_days",
                   cause_col: str = "cause", causes: Any = None, output: Output = "polars"):
    """Non-parametric cumulative incidence per cause (Aalen-Johansen) and of any churn.

    Parameters
    ----------
    outcomes : table
        One row per customer (or per landmark and customer) with ``duration_col``
        and ``cause_col`` (null = censored), e.g. :func:`landmark_outcomes`.
    times : sequence of float
        Times (days) at which to read the incidences.
    causes : sequence of str, optional
        Default: the causes present, sorted.
    output : {"polars", "pandas"}

    Returns
    -------
    DataFrame
        ``time``, ``cif_<cause>`` per cause, ``cif_any`` (``1 -`` Kaplan-Meier of
        any churn) and ``cif_sum`` (the sum over causes, equal to ``cif_any`` up to
        lifelines' tie-breaking jitter).

    Examples
    --------
    >>> import polars as pl
    >>> out = pl.DataFrame({"duration_days": [10.0, 20, 30, 40, 50, 60],
    ...                     "cause": ["closure", "silence", None, "closure", None, "silence"]})
    >>> t = aalen_johansen(out, [25, 60])
    >>> t.columns
    ['time', 'cif_closure', 'cif_silence', 'cif_any', 'cif_sum']
    >>> [round(v, 4) for v in t["cif_any"]]
    [0.3333, 1.0]
    """
    from lifelines import AalenJohansenFitter, KaplanMeierFitter

    frame = to_polars(outcomes, "outcomes")
    for c in (duration_col, cause_col):
        if c not in frame.columns:
            raise ValueError(f"aalen_johansen: the outcomes table has no column {c!r}; it has "
                             f"{', '.join(frame.columns)}.")
    d = frame[duration_col].cast(pl.Float64).to_numpy()
    cause = frame[cause_col].cast(pl.String)
    names = sorted(cause.drop_nulls().unique().to_list()) if causes is None else list(causes)
    codes = np.zeros(d.size, dtype=np.int64)
    for i, name in enumerate(names, start=1):
        codes[(cause == name).fill_null(False).to_numpy()] = i
    t = np.asarray(times, dtype=float)
    cols: dict[str, Any] = {"time": t}
    for i, name in enumerate(names, start=1):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # lifelines warns that it jitters tied times
            ajf = AalenJohansenFitter(calculate_variance=False, seed=0).fit(d, codes, event_of_interest=i)
        cif = ajf.cumulative_density_.iloc[:, 0]
        cols[f"cif_{name}"] = np.array([float(cif[cif.index <= x].iloc[-1]) if (cif.index <= x).any()
                                        else 0.0 for x in t])
    km = KaplanMeierFitter().fit(d, codes > 0)
    cols["cif_any"] = 1.0 - km.survival_function_at_times(t).to_numpy()
    cols["cif_sum"] = np.sum([cols[f"cif_{n}"] for n in names], axis=0) if names else np.zeros(t.size)
    return to_output(pl.DataFrame(cols), output)
