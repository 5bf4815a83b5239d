"""Screening of troublesome covariates and convergence problems."""

from __future__ import annotations

import warnings

import numpy as np
import polars as pl
import pytest

from crmkit.churn import CoxPH, WeibullAFT, find_separation, make_y
from crmkit.exceptions import ConvergenceWarning, CrmkitError, DataWarning


@pytest.fixture
def base():
    rng = np.random.default_rng(11)
    n = 400
    x = rng.normal(size=n)
    t = 50 * rng.exponential(size=n) / np.exp(0.5 * x)
    c = rng.uniform(10, 120, n)
    return pl.DataFrame({"x": x}), make_y(np.minimum(t, c) + 0.1, t <= c), rng


def test_constant_near_constant_and_collinear_columns_are_dropped_and_named(base):
    X, y, rng = base
    n = X.height
    rare = np.zeros(n)
    rare[:3] = 1.0
    X = X.with_columns(const=pl.lit(2.0), rare=pl.Series(rare), x2=2 * pl.col("x") + 1,
                       z=pl.Series(rng.normal(size=n)))
    X = X.with_columns(combo=pl.col("x") - 3 * pl.col("z"))
    with pytest.warns(DataWarning) as rec:
        m = CoxPH(unit="days").fit(X, y)
    msg = str(rec[0].message)
    for col in ("const", "rare", "x2", "combo"):
        assert col in msg
    assert m.covariates_ == ["x", "z"]
    report = {r["column"]: r for r in m.screening_report_.iter_rows(named=True)}
    assert report["const"]["problem"] == "constant"
    assert report["rare"]["problem"].startswith("near-constant (3 of 400")
    assert report["x2"]["problem"] == "collinear with x"
    assert report["combo"]["problem"] == "collinear with z, x"
    assert all(r["action"] == "dropped" for r in report.values())
    # the dropped columns may stay in X at predict time
    assert np.isfinite(m.predict(X)).all()


def test_nan_and_infinity_raise_with_the_fix(base):
    X, y, _ = base
    bad = X.with_columns(pl.when(pl.int_range(pl.len()) < 2).then(float("nan"))
                         .otherwise(pl.col("x")).alias("x"), w=pl.lit(float("inf")))
    with pytest.raises(ValueError, match=r"x \(2 rows\), w \(400 rows\).*SimpleImputer"):
        CoxPH(unit="days").fit(bad, y)
    m = CoxPH(unit="days").fit(X, y)
    with pytest.raises(ValueError, match="NaN or infinity in \\['x'\\]"):
        m.predict(bad)


def test_separating_covariate_is_penalised_and_finite(base):
    X, y, _ = base
    X = X.with_columns(sep=pl.Series(y["event"].astype(float)))
    assert find_separation(X["sep"].to_numpy(), y["duration"], y["event"]) == 1
    with pytest.warns(DataWarning, match="sep: perfectly orders the events"):
        m = CoxPH(unit="days").fit(X, y)
    report = m.screening_report_.row(0, named=True)
    assert (report["column"], report["action"]) == ("sep", "penalized")
    assert np.all(np.isfinite(m.coef_)) and abs(m.coef_[1]) < 20
    with pytest.warns(DataWarning):
        dropped = CoxPH(unit="days", on_separation="drop").fit(X, y)
    assert dropped.covariates_ == ["x"]
    with pytest.raises(ValueError, match="'sep' perfectly orders the events.*Drop it"):
        CoxPH(unit="days", on_separation="raise").fit(X, y)
    with pytest.warns(DataWarning):
        w = WeibullAFT(unit="days").fit(X, y)
    assert np.all(np.isfinite(w.aft_coef_))


def test_separation_detection_negative_and_none():
    t = np.arange(1.0, 9.0)
    e = np.array([1, 1, 1, 0, 1, 0, 0, 0], bool)
    assert find_separation(-t, t, e) == 1  # earliest churners have the largest value
    assert find_separation(t, t, e) == -1
    assert find_separation(np.array([0, 1, 0, 1, 0, 1, 0, 1.0]), t, e) == 0


def test_clean_data_produce_no_warning(base):
    X, y, _ = base
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        CoxPH(unit="days").fit(X, y)


def test_convergence_failure_is_retried_with_a_warning_that_names_the_remedy(monkeypatch, base):
    from lifelines import CoxPHFitter
    from lifelines.exceptions import ConvergenceError
    X, y, _ = base
    real_fit = CoxPHFitter.fit
    calls = []

    def flaky(self, *a, **k):
        calls.append(self.penalizer)
        if len(calls) == 1:
            raise ConvergenceError("Convergence halted due to matrix inversion problems.")
        return real_fit(self, *a, **k)

    monkeypatch.setattr(CoxPHFitter, "fit", flaky)
    with pytest.warns(ConvergenceWarning, match="raise the 'penalizer' parameter"):
        m = CoxPH(unit="days").fit(X, y)
    assert calls == [0.0, 0.01] and np.isfinite(m.coef_).all()

    def broken(self, *a, **k):
        raise ConvergenceError("delta contains nan value(s).")

    monkeypatch.setattr(CoxPHFitter, "fit", broken)
    with pytest.raises(CrmkitError, match="did not converge.*penalizer"):
        CoxPH(unit="days").fit(X, y)


def test_lifelines_convergence_warning_is_translated(monkeypatch, base):
    from lifelines import CoxPHFitter
    from lifelines.exceptions import ConvergenceWarning as LLWarning
    X, y, _ = base
    real_fit = CoxPHFitter.fit

    def noisy(self, *a, **k):
        warnings.warn("Newton-Raphson failed to converge sufficiently.", LLWarning)
        return real_fit(self, *a, **k)

    monkeypatch.setattr(CoxPHFitter, "fit", noisy)
    with pytest.warns(ConvergenceWarning, match="Newton-Raphson.*Remedy: raise the 'penalizer'"):
        CoxPH(unit="days").fit(X, y)
