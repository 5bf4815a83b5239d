"""Unit and property tests of the buy-till-you-die CLV models (no reference data needed)."""

from __future__ import annotations

import datetime as dt
import json
import warnings

import matplotlib
import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.exceptions import NotFittedError as SklearnNotFitted
from sklearn.utils.validation import check_is_fitted

from crmkit.exceptions import ConvergenceWarning, DataWarning, NotFittedError, SchemaError
from crmkit.features import calibration_holdout_split, rfm_summary
from crmkit.value import (
    BetaGeo,
    BetaGeoBetaBinom,
    CLVModel,
    GammaGamma,
    ModifiedBetaGeo,
    ParetoNBD,
    ShiftedBetaGeometric,
    backtest_clv,
    customer_lifetime_value,
    load_clv_model,
    plot_calibration_holdout,
    plot_frequency_fit,
    plot_history_alive,
    plot_probability_alive_matrix,
)

matplotlib.use("Agg")

RFM_MODELS = [BetaGeo, ModifiedBetaGeo, ParetoNBD]
TRUE = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}


def simulate_bgnbd(n: int, seed: int = 1, weeks: int = 78) -> pl.DataFrame:
    """Customers simulated from BG/NBD (CDNOW parameters), durations in weeks at day resolution."""
    rng = np.random.default_rng(seed)
    lam = rng.gamma(TRUE["r"], 1 / TRUE["alpha"], n)
    p = rng.beta(TRUE["a"], TRUE["b"], n)
    T = rng.integers(7, weeks * 7, n) / 7.0
    x = np.zeros(n, dtype=np.int64)
    last = np.zeros(n)
    t = np.zeros(n)
    active = np.arange(n)
    while active.size:
        t_new = t[active] + rng.exponential(1.0, active.size) / lam[active]
        ok = t_new <= T[active]
        idx = active[ok]
        t[idx] = t_new[ok]
        x[idx] += 1
        last[idx] = t_new[ok]
        active = idx[rng.random(idx.size) >= p[idx]]
    nu = rng.gamma(3.74, 1 / 15.44, n)
    spend = np.where(x > 0, rng.gamma(np.maximum(6.25 * x, 1e-9), 1.0) / nu / np.maximum(x, 1),
                     0.0)
    return pl.DataFrame({"customer_id": [f"c{i}" for i in range(n)], "frequency": x,
                         "recency_weeks": np.floor(last * 7) / 7, "T_weeks": T,
                         "monetary_value": spend})


@pytest.fixture(scope="module")
def rfm() -> pl.DataFrame:
    return simulate_bgnbd(4000)


@pytest.fixture(scope="module")
def fitted(rfm):
    return {cls.__name__: cls().fit(rfm) for cls in RFM_MODELS}


# ------------------------------------------------------------------ contract
@pytest.mark.parametrize("cls", RFM_MODELS + [GammaGamma, BetaGeoBetaBinom, ShiftedBetaGeometric])
def test_estimator_contract(cls):
    m = cls(penalizer=0.1, max_iter=50)
    assert m.get_params() == {"penalizer": 0.1, "initial_params": None, "max_iter": 50,
                              "penalizer_coef": None}
    c = clone(m)
    assert c.get_params() == m.get_params() and c is not m
    with pytest.raises(SklearnNotFitted):
        check_is_fitted(m)
    with pytest.raises(NotFittedError, match="not fitted yet"):
        _ = m.summary_


@pytest.mark.parametrize("cls", RFM_MODELS)
def test_fit_returns_self_and_predict_needs_fit(cls, rfm):
    m = cls()
    with pytest.raises(NotFittedError):
        m.probability_alive(rfm)
    assert m.fit(rfm) is m
    check_is_fitted(m)
    assert m.unit_ == "weeks" and m.n_customers_ == rfm.height
    assert m.n_patterns_ < rfm.height


def test_bad_hyperparameters_use_standard_message(rfm):
    with pytest.raises(ValueError, match=r"The 'penalizer' parameter of BetaGeo must be a "
                                         r"float in the range \[0, inf\). Got -1 instead."):
        BetaGeo(penalizer=-1).fit(rfm)
    with pytest.raises(ValueError, match="The 'horizons' parameter of BetaGeo.expected_purchases"):
        BetaGeo(penalizer=0.1).fit(rfm.head(200)).expected_purchases(rfm, horizons=-3)
    with pytest.raises(ValueError, match="initial_params"):
        BetaGeo(initial_params={"r": 1}).fit(rfm)


def test_every_input_type_gives_the_same_fit(rfm, as_input):
    sub = rfm.head(800)
    ref = BetaGeo().fit(sub)
    m = BetaGeo().fit(as_input(sub))
    np.testing.assert_allclose(list(m.params_.values()), list(ref.params_.values()), rtol=1e-9)
    out = m.probability_alive(as_input(sub))
    assert isinstance(out, pl.DataFrame) and out.columns == ["customer_id", "p_alive"]
    assert type(m.probability_alive(sub, output="pandas")).__name__ == "DataFrame"


# ------------------------------------------------------------- sufficient statistics
@pytest.mark.parametrize("cls", RFM_MODELS)
def test_fit_on_counts_equals_fit_on_customers(cls, rfm):
    """Distinct (frequency, recency, T) rows with counts are sufficient statistics."""
    counts = rfm.group_by("frequency", "recency_weeks", "T_weeks").len("n")
    a = cls().fit(rfm)
    b = cls().fit(counts, weight_col="n")
    np.testing.assert_allclose(list(a.params_.values()), list(b.params_.values()), rtol=1e-6)
    assert a.log_likelihood_ == pytest.approx(b.log_likelihood_, rel=1e-10)
    assert a.fingerprint_ == b.fingerprint_


def test_simulated_parameters_are_recovered():
    big = simulate_bgnbd(30000, seed=7)
    m = BetaGeo().fit(big)
    s = m.summary
    for row in s.iter_rows(named=True):
        # the truth lies within a generous 4 standard errors
        assert abs(row["estimate"] - TRUE[row["param"]]) < 4 * row["std_err"], row


# ------------------------------------------------------------------ units and checks
def test_unit_is_explicit(rfm):
    plain = rfm.rename({"recency_weeks": "recency", "T_weeks": "T"})
    with pytest.raises(SchemaError, match="carry no time unit"):
        BetaGeo().fit(plain)
    m = BetaGeo().fit(plain, unit="weeks")
    assert m.unit_ == "weeks"
    ref = BetaGeo().fit(rfm)
    assert m.params_ == pytest.approx(ref.params_)
    days = rfm.with_columns(pl.col("recency_weeks") * 7, pl.col("T_weeks") * 7).rename(
        {"recency_weeks": "recency_days", "T_weeks": "T_days"})
    with pytest.raises(SchemaError, match="fitted on durations in 'weeks'"):
        ref.expected_purchases(days, horizons=52)
    with pytest.raises(SchemaError, match="unit='days' was given"):
        BetaGeo().fit(rfm, unit="days")


def test_implausible_unit_is_flagged(rfm):
    # durations in days mislabelled as weeks: a 78-week history becomes 546 "weeks",
    # fine; in minutes it would be 786,240 "weeks" (15,000 years)
    mislabelled = rfm.with_columns(pl.col("recency_weeks") * 7 * 1440,
                                   pl.col("T_weeks") * 7 * 1440)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # it may not converge either
        with pytest.warns(DataWarning, match="Is the summary really in weeks"):
            BetaGeo(penalizer=0.01).fit(mislabelled.head(300))


def test_input_checks_name_every_problem(rfm):
    bad = rfm.head(50).with_columns(
        pl.when(pl.col("customer_id") == "c0").then(99.0).otherwise(pl.col("recency_weeks"))
        .alias("recency_weeks"),
        pl.when(pl.col("customer_id") == "c1").then(-1).otherwise(pl.col("frequency"))
        .alias("frequency"))
    with pytest.raises(SchemaError) as err:
        BetaGeo().fit(bad)
    assert "negative" in str(err.value) and "cannot exceed T" in str(err.value)
    with pytest.raises(SchemaError, match="not transactions"):
        BetaGeo().fit(pl.concat([rfm.head(5), rfm.head(5)]))
    with pytest.raises(SchemaError, match="does not look like an RFM summary"):
        BetaGeo().fit(pl.DataFrame({"customer_id": ["a"], "amount": [1.0]}))


def test_convergence_warning_says_what_to_try(rfm):
    # one iteration from absurd starting values: the optimiser is stopped early
    start = {"r": 100.0, "alpha": 0.001, "a": 50.0, "b": 0.01}
    with pytest.warns(ConvergenceWarning, match="Try: penalizer") as rec:
        m = BetaGeo(max_iter=1, initial_params=start).fit(rfm)
    assert "gradient" in str(rec[0].message)
    assert not m.converged_


# ------------------------------------------------------------------ predictions
EXTREMES = pl.DataFrame({
    "frequency": [500, 500, 1000, 500, 0, 1, 200, 0, 3000],
    "recency_weeks": [0.0, 78, 1 / 7, 1 / 7, 0, 1 / 7, 0, 0, 1e-3],
    "T_weeks": [78.0, 78, 78, 1 / 7, 1 / 7, 1 / 7, 0.5, 500, 500]})


@pytest.mark.parametrize("name", ["BetaGeo", "ModifiedBetaGeo", "ParetoNBD"])
def test_extreme_customers_get_finite_predictions(fitted, name):
    m = fitted[name]
    pa = m.probability_alive(EXTREMES)["p_alive"].to_numpy()
    e = m.expected_purchases(EXTREMES, horizons=52)["expected_purchases"].to_numpy()
    pk = m.probability_of_purchases(EXTREMES, k=[0, 1, 5], horizon=52).drop().to_numpy()
    assert np.isfinite(pa).all() and np.isfinite(e).all() and np.isfinite(pk).all()
    assert ((pa >= 0) & (pa <= 1)).all() and (e >= 0).all()
    assert pa[0] < 1e-6  # 500 purchases then silence for 78 weeks: gone
    assert pa[1] > 0.99  # 500 purchases, the last one today: alive


@pytest.mark.parametrize("name", ["BetaGeo", "ModifiedBetaGeo", "ParetoNBD"])
def test_conditional_pmf_is_consistent_with_expectation(fitted, name, rfm):
    m = fitted[name]
    rows = rfm.head(40)
    ks = list(range(0, 150))
    pmf = m.probability_of_purchases(rows, k=ks, horizon=20).drop("customer_id").to_numpy()
    np.testing.assert_allclose(pmf.sum(axis=1), 1.0, atol=2e-4)
    mean = pmf @ np.array(ks)
    e = m.expected_purchases(rows, horizons=20)["expected_purchases"].to_numpy()
    np.testing.assert_allclose(mean, e, rtol=2e-3, atol=2e-4)


@pytest.mark.parametrize("name", ["BetaGeo", "ModifiedBetaGeo", "ParetoNBD"])
def test_new_customer_predictions(fitted, name):
    m = fitted[name]
    pmf = m.probability_of_purchases_new_customer(np.arange(200), 39)
    assert pmf.sum() == pytest.approx(1.0, abs=1e-4)
    assert pmf @ np.arange(200) == pytest.approx(m.expected_purchases_new_customer(39), rel=1e-3)
    assert m.expected_purchases_new_customer(0) == 0.0


def test_bgnbd_conditional_expectation_formula_by_simulation():
    """E[X(T, T+t) | x, t_x, T] against a Monte Carlo over the posterior (FHL 2005 eq. 10)."""
    m = BetaGeo(penalizer=0.0)
    m.params_ = dict(TRUE)
    m.unit_ = "weeks"
    row = pl.DataFrame({"frequency": [2], "recency_weeks": [30.43], "T_weeks": [38.86]})
    rng = np.random.default_rng(3)
    n = 400_000
    r, alpha, a, b = TRUE.values()
    # importance sampling from the prior, weights = likelihood of the history
    lam = rng.gamma(r, 1 / alpha, n)
    p = rng.beta(a, b, n)
    x, tx, T = 2, 30.43, 38.86
    lik = (1 - p) ** x * lam**x * np.exp(-lam * T) + p * (1 - p) ** (x - 1) * lam**x * np.exp(
        -lam * tx)
    alive_w = (1 - p) ** x * lam**x * np.exp(-lam * T)
    future = (1 - np.exp(-lam * p * 39)) / p  # E[X(t) | lam, p, alive]
    mc = np.sum(alive_w * future) / np.sum(lik)
    got = m.expected_purchases(row, horizons=39)["expected_purchases"][0]
    assert got == pytest.approx(mc, rel=0.02)
    assert got == pytest.approx(1.226, abs=1e-3)


# ------------------------------------------------------------------ property tests
PARAMS = {
    BetaGeo: st.tuples(st.floats(0.05, 5), st.floats(0.1, 50), st.floats(0.05, 5),
                       st.floats(0.05, 10)),
    ModifiedBetaGeo: st.tuples(st.floats(0.05, 5), st.floats(0.1, 50), st.floats(0.05, 5),
                               st.floats(0.05, 10)),
    ParetoNBD: st.tuples(st.floats(0.05, 5), st.floats(0.1, 50), st.floats(0.05, 5),
                         st.floats(0.1, 50)),
}


@pytest.mark.parametrize("cls", RFM_MODELS)
def test_p_alive_in_unit_interval_and_non_increasing_in_T(cls):
    @settings(max_examples=60, deadline=None)
    @given(params=PARAMS[cls], x=st.integers(0, 600), tx_frac=st.floats(0, 1),
           T=st.floats(0.01, 300), dT=st.floats(0.0, 300))
    def check(params, x, tx_frac, T, dT):
        m = cls()
        m.params_ = dict(zip(cls._param_names, params))
        t_x = 0.0 if x == 0 else tx_frac * T
        xs = np.array([x, x], float)
        txs = np.array([t_x, t_x])
        Ts = np.array([T, T + dT])
        pa = m._p_alive(m._param_array(), xs, txs, Ts)
        assert np.isfinite(pa).all()
        assert ((pa >= 0) & (pa <= 1)).all()
        assert pa[1] <= pa[0] + 1e-9

    check()


# ------------------------------------------------------------------ summary & persistence
def test_summary_frame_and_print(fitted, capsys):
    m = fitted["BetaGeo"]
    s = m.summary
    assert s.columns == ["param", "estimate", "std_err", "lower_95", "upper_95"]
    assert s["param"].to_list() == ["r", "alpha", "a", "b"]
    assert ((s["lower_95"] < s["estimate"]) & (s["estimate"] < s["upper_95"])).all()
    assert (s["std_err"] > 0).all()
    m.print_summary()
    out = capsys.readouterr().out
    assert "log-likelihood" in out and "alpha" in out and "weeks" in out


@pytest.mark.parametrize("name", ["BetaGeo", "ModifiedBetaGeo", "ParetoNBD"])
def test_json_round_trip(fitted, rfm, tmp_path, name):
    m = fitted[name]
    path = tmp_path / "model.json"
    m.to_json(path)
    state = json.loads(path.read_text())
    assert state["model"] == name and state["unit"] == "weeks"
    assert state["n_customers"] == rfm.height and state["fingerprint"].startswith("sha256:")
    assert "crmkit_version" in state
    loaded = type(m).from_json(path)
    assert loaded.params_ == m.params_ and loaded.unit_ == "weeks"
    assert loaded.summary.equals(m.summary)
    a = m.expected_purchases(rfm, horizons=26)
    assert loaded.expected_purchases(rfm, horizons=26).equals(a)
    assert type(load_clv_model(path)) is type(m)
    assert type(CLVModel.from_json(path.read_text())) is type(m)
    other = GammaGamma if name != "GammaGamma" else BetaGeo
    with pytest.raises(ValueError, match="load it with"):
        other.from_json(path)


def test_gammagamma(rfm, tmp_path):
    gg = GammaGamma().fit(rfm)
    assert gg.n_customers_ == int((rfm["frequency"] > 0).sum())
    out = gg.expected_spend(rfm)
    zero = out.filter(rfm["frequency"] == 0)["expected_spend"]
    assert np.allclose(zero.to_numpy(), gg.population_mean_spend())
    assert np.isfinite(out["expected_spend"].to_numpy()).all()
    # the estimate lies between the customer's own mean and the population mean
    rep = rfm.with_columns(out["expected_spend"]).filter(pl.col("frequency") > 0)
    lo = np.minimum(rep["monetary_value"], gg.population_mean_spend())
    hi = np.maximum(rep["monetary_value"], gg.population_mean_spend())
    assert ((rep["expected_spend"] >= lo - 1e-9) & (rep["expected_spend"] <= hi + 1e-9)).all()
    loaded = GammaGamma.from_json(gg.to_json(tmp_path / "gg.json"))
    assert loaded.frequency_spend_correlation_ == gg.frequency_spend_correlation_
    with pytest.raises(SchemaError, match="monetary_value <= 0"):
        GammaGamma().fit(pl.DataFrame({"frequency": [1, 2], "monetary_value": [0.0, 3.0]}))


def test_customer_lifetime_value(fitted, rfm):
    bg = fitted["BetaGeo"]
    gg = GammaGamma().fit(rfm)
    flat = customer_lifetime_value(bg, gg, rfm, horizons=52, annual_discount_rate=0.0, step=52)
    e = bg.expected_purchases(rfm, horizons=52)["expected_purchases"]
    s = gg.expected_spend(rfm)["expected_spend"]
    np.testing.assert_allclose(flat["clv"].to_numpy(), (e * s).to_numpy(), rtol=1e-10)
    disc = customer_lifetime_value(bg, gg, rfm, horizons=52, annual_discount_rate=0.1, step=4,
                                   margin=0.3)
    assert (disc["clv"] <= 0.3 * flat["clv"] + 1e-9).all()
    # one year of weeks at 10% a year discounts the last step by about 1/1.1
    last = customer_lifetime_value(bg, gg, rfm.head(3), horizons=52, annual_discount_rate=0.1,
                                   step=52)
    np.testing.assert_allclose(last["clv"].to_numpy(),
                               flat["clv"].head(3).to_numpy() / 1.1 ** (364 / 365.25),
                               rtol=1e-10)
    with pytest.raises(ValueError, match="annual_discount_rate"):
        customer_lifetime_value(bg, gg, rfm, horizons=52, annual_discount_rate=-0.1)


# ------------------------------------------------------------------ BG/BB and sBG
@pytest.fixture(scope="module")
def bgbb():
    d = pl.DataFrame({
        "frequency": [0, 1, 1, 2, 2, 3, 4, 5, 6, 3, 1],
        "recency": [0, 1, 4, 2, 6, 6, 5, 6, 6, 4, 6],
        "n_periods": [6] * 11,
        "count": [3000, 900, 300, 200, 250, 300, 250, 300, 400, 150, 200]})
    return d, BetaGeoBetaBinom().fit(d, weight_col="count")


def test_bgbb_pmf_and_expectation(bgbb):
    d, m = bgbb
    assert m.converged_ and m.n_customers_ == int(d["count"].sum())
    pmf = np.column_stack([m.probability_of_purchases(d, k=k, horizon=5)[f"p_purchases_{k}"]
                           for k in range(6)])
    np.testing.assert_allclose(pmf.sum(axis=1), 1.0, atol=1e-10)
    e = m.expected_purchases(d, horizons=5)["expected_purchases"].to_numpy()
    np.testing.assert_allclose(pmf @ np.arange(6), e, rtol=1e-8)
    new = [m.probability_of_purchases_new_customer(k, 6) for k in range(7)]
    assert sum(new) == pytest.approx(1.0, abs=1e-10)
    assert np.dot(new, range(7)) == pytest.approx(m.expected_purchases_new_customer(6), rel=1e-8)
    pa = m.probability_alive(d)["p_alive"].to_numpy()
    assert ((pa > 0) & (pa < 1)).all()
    with pytest.raises(SchemaError, match="frequency <= recency"):
        m.expected_purchases(pl.DataFrame({"frequency": [3], "recency": [2], "n_periods": [6]}),
                             horizon=2)


def test_sbg_inputs_agree():
    curve = [1000, 869, 743, 653, 593, 551, 517, 491]
    a = ShiftedBetaGeometric().fit(pl.DataFrame({"period": range(8), "n_active": curve}))
    lost = -np.diff(curve)
    per_customer = pl.DataFrame({
        "periods": list(range(1, 8)) + [7],
        "churned": [True] * 7 + [False],
        "n": list(lost) + [curve[-1]]})
    b = ShiftedBetaGeometric().fit(per_customer, weight_col="n")
    assert a.params_ == pytest.approx(b.params_, rel=1e-8)
    assert a.retention_rate([1])[0] == pytest.approx(
        a.params_["beta"] / (a.params_["alpha"] + a.params_["beta"]))
    ren = b.expected_renewals(per_customer, discount_rate=0.1)["expected_renewals"].to_numpy()
    assert (ren[:-1] == 0).all() and ren[-1] > 0
    # closed form against the explicit discounted sum of survival ratios
    n, d = 7, 0.1
    surv = b.survival_function(np.arange(n, n + 3000), cohort_size=1.0)
    direct = np.sum(surv[1:] / surv[0] / (1 + d) ** np.arange(1, 3000))
    assert ren[-1] == pytest.approx(direct, rel=1e-8)


# ------------------------------------------------------------------ backtest & plots
def _transactions(n=1500, seed=5):
    rng = np.random.default_rng(seed)
    rows = []
    start = dt.date(2023, 1, 1)
    for i in range(n):
        first = rng.integers(0, 90)
        lam = rng.gamma(0.5, 1 / 20)  # per day
        p = rng.beta(1, 3)
        t = first
        rows.append((f"c{i}", start + dt.timedelta(days=int(t)), 10.0))
        while True:
            t += rng.exponential(1 / lam)
            if t > 540:
                break
            rows.append((f"c{i}", start + dt.timedelta(days=int(t)), 12.0))
            if rng.random() < p:
                break
    return pl.DataFrame(rows, schema=["customer_id", "timestamp", "amount"], orient="row")


def test_backtest_one_call():
    tx = _transactions()
    res = backtest_clv(tx, calibration_end="2023-09-30", observation_end="2024-06-23",
                       model=ParetoNBD())
    assert set(res.metrics) >= {"mae", "rmse", "actual_total", "predicted_total",
                                "total_error_pct", "n_customers", "holdout_weeks"}
    assert res.predictions.columns == ["customer_id", "frequency_cal", "recency_cal_weeks",
                                       "T_cal_weeks", "frequency_holdout", "predicted_holdout",
                                       "p_alive", "baseline_holdout"]
    assert res.metrics["n_customers"] == res.predictions.height
    assert res.by_frequency["n_customers"].sum() == res.predictions.height
    assert abs(res.metrics["total_error_pct"]) < 25
    assert res.plot() is not None
    with pytest.raises(TypeError, match="must be a BetaGeo"):
        backtest_clv(tx, calibration_end="2023-09-30", model=GammaGamma())


def test_plots_return_axes(fitted, rfm):
    import matplotlib.pyplot as plt

    bg = fitted["BetaGeo"]
    for ax in (plot_frequency_fit(bg, rfm), plot_probability_alive_matrix(bg),
               plot_history_alive(bg, ["2024-01-01", "2024-02-10", "2024-02-10", "2024-05-01"],
                                  end="2024-12-31")):
        assert ax.get_title()
    fig, ax = plt.subplots()
    assert plot_frequency_fit(fitted["ParetoNBD"], rfm, ax=ax) is ax
    tx = _transactions(400)
    split = calibration_holdout_split(tx, calibration_end="2023-09-30",
                                      observation_end="2024-06-23", value_col=None)
    cal = split.select(pl.col("frequency_cal").alias("frequency"),
                       pl.col("recency_cal_weeks").alias("recency_weeks"),
                       pl.col("T_cal_weeks").alias("T_weeks"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = BetaGeo(penalizer=0.001).fit(cal)
    assert plot_calibration_holdout(m, split).get_title().startswith("Calibration vs holdout")
    plt.close("all")


def test_rfm_summary_feeds_the_models():
    tx = _transactions(300)
    summary = rfm_summary(tx, observation_end="2024-06-23", unit="days")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = BetaGeo(penalizer=0.001).fit(summary)
    assert m.unit_ == "days"
    assert m.expected_purchases(summary, horizons=365).height == summary.height


def test_expected_purchases_continuous_at_a_equal_one():
    """E[X(t)] has a removable singularity at a = 1 (the c/(a-1) factor)."""
    from crmkit.value._bgnbd import bg_expected

    t = np.array([10.0, 52.0])
    at_one = bg_expected(0.5, 5.0, 1.0, 2.0, t)
    assert np.isfinite(at_one).all()
    np.testing.assert_allclose(at_one, bg_expected(0.5, 5.0, 1.0 + 1e-5, 2.0, t), rtol=1e-4)
    np.testing.assert_allclose(at_one, bg_expected(0.5, 5.0, 1.0 - 1e-5, 2.0, t), rtol=1e-4)
