"""Issue 10: one estimator API (DESIGN.md 3b). Each reproduction of the issue is a test."""

from __future__ import annotations

import datetime as dt
import json
import math
import warnings

import numpy as np
import pandas as pd
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import crmkit
from crmkit._estimator import from_envelope, to_envelope
from crmkit.churn import (
    CoxPH,
    KaplanMeierBaseline,
    WeibullAFT,
    concordance,
    integrated_brier,
    make_y,
)
from crmkit.exceptions import ConvergenceWarning, DataWarning, SchemaError
from crmkit.features import build_features, calibration_holdout_split, rfm_summary
from crmkit.value import (
    NBD,
    BetaGeo,
    BetaGeoBetaBinom,
    GammaGamma,
    ModifiedBetaGeo,
    ParetoNBD,
    backtest_clv,
)

CLV = [BetaGeo, ModifiedBetaGeo, ParetoNBD, NBD]
SURVIVAL = [CoxPH, WeibullAFT, KaplanMeierBaseline]


@pytest.fixture(scope="module")
def bank():
    return crmkit.make_bank(300, seed=3)


@pytest.fixture(scope="module")
def rfm(bank):
    out = rfm_summary(bank["transactions"], observation_end="2025-12-31", unit="weeks")
    return out.filter((pl.col("T_weeks") > 0)
                      & ((pl.col("frequency") == 0) | (pl.col("monetary_value") > 0)))


@pytest.fixture(scope="module")
def surv():
    rng = np.random.default_rng(0)
    X = pl.DataFrame({"complaints": rng.poisson(1, 300).astype(float),
                      "assets": rng.normal(size=300)})
    t = rng.exponential(200 / np.exp(0.5 * X["complaints"].to_numpy()))
    return X, make_y(np.minimum(t, 365) + 1, t < 365)


def _quiet_fit(model, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(*args, **kw)


# --------------------------------------------------------------------- one dialect
@pytest.mark.parametrize("cls", CLV + SURVIVAL + [GammaGamma, BetaGeoBetaBinom])
def test_constructors_are_keyword_only_and_declare_their_constraints(cls):
    with pytest.raises(TypeError):
        cls(0.1)
    assert cls._parameter_constraints
    assert set(cls._parameter_constraints) <= set(cls().get_params())


@pytest.mark.parametrize("cls", CLV + [GammaGamma, CoxPH, WeibullAFT])
def test_the_penalty_is_called_penalizer_everywhere(cls):
    assert "penalizer" in cls().get_params()


@pytest.mark.parametrize("cls", CLV + [CoxPH, WeibullAFT])
@settings(max_examples=15, deadline=None)
@given(bad=st.one_of(st.floats(max_value=-1e-9), st.just(float("nan")), st.just(float("inf")),
                     st.text(max_size=3), st.booleans()))
def test_invalid_penalizer_is_refused_at_fit_with_the_standard_message(cls, bad, rfm, surv):
    """Constraints are declared once and checked when fit starts (hypothesis draws
    the invalid values)."""
    model = cls(penalizer=bad)
    with pytest.raises(ValueError, match=rf"^The 'penalizer' parameter of {cls.__name__} must be "
                                         r"a float in the range \[0, inf\)\. Got .* instead\.$"):
        model.fit(rfm) if cls in CLV else model.fit(*surv)


def test_fitted_words_are_the_same_for_clv_and_survival(rfm, surv):
    bg = BetaGeo(penalizer=0.01).fit(rfm)
    cox = CoxPH(unit="days", penalizer=0.01).fit(*surv)
    for m in (bg, cox):
        assert isinstance(m.params_, dict) and m.params_
        assert isinstance(m.summary_, pl.DataFrame) and m.summary_.height == len(m.params_)
    assert repr(bg) == "BetaGeo(penalizer=0.01)"  # no fitted numbers in the repr
    assert repr(cox) == "CoxPH(penalizer=0.01, unit='days')"


def test_print_summary_never_wraps_a_row(surv, capsys):
    cox = CoxPH(unit="days", strata=None).fit(*surv)
    cox.print_summary()
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines[1:]) <= 100
    assert not any("│" in line or "…" in line for line in lines)  # a plain table
    assert lines[1].split()[0] == "covariate" and lines[2].split()[0] == "complaints"


# ------------------------------------------------------------------------ horizons
def test_horizons_positional_or_keyword_one_or_many(rfm):
    bg = BetaGeo().fit(rfm)
    one = bg.expected_purchases(rfm, 52)  # was a TypeError (horizon keyword-only)
    assert one.columns == ["customer_id", "expected_purchases"]
    many = bg.expected_purchases(rfm, horizons=[13, 52])
    assert many.columns == ["customer_id", "expected_purchases_13", "expected_purchases_52"]
    np.testing.assert_allclose(many["expected_purchases_52"], one["expected_purchases"])
    with pytest.warns(FutureWarning, match="'horizon' is deprecated"):
        old = bg.expected_purchases(rfm, horizon=52)
    assert old.equals(one)


def test_survival_horizons_are_in_the_explicit_unit(surv):
    X, y = surv
    weeks = CoxPH(unit="weeks", horizons=(4, 13)).fit(X, y)
    out = weeks.predict_churn(X[:5])
    assert out.columns == ["churn_prob_4w", "churn_prob_13w", "restricted_mean_weeks",
                           "median_remaining_weeks"]
    days = CoxPH(unit="days").fit(X, y)
    # the same fit read in days: 4 weeks of the weekly model = 28 of the daily one
    np.testing.assert_allclose(weeks.predict_survival(X[:5], [4.0]) ** 1,
                               days.predict_survival(X[:5], [4.0]), rtol=1e-12)


def test_a_survival_fit_without_unit_says_so(surv):
    X, y = surv
    for cls in SURVIVAL:
        with pytest.warns(DataWarning, match="without unit=.*taken as days"):
            cls().fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        CoxPH(unit="weeks").fit(X, y)  # said explicitly: not a word


def test_grid_search_without_unit_is_no_longer_silent(surv):
    X, y = surv
    with pytest.warns(DataWarning, match="without unit="):
        GridSearchCV(CoxPH(), {"penalizer": [0.0, 0.1]}, cv=2,
                     scoring=concordance).fit(X.to_numpy(), y)


@pytest.mark.parametrize("old, new, value", [
    ("time_unit", "unit", "weeks"), ("horizons_days", "horizons", (30, 90)),
    ("rmst_horizon_days", "rmst_horizon", 200.0)])
def test_old_survival_names_warn_and_keep_their_day_columns(surv, old, new, value):
    X, y = surv
    with pytest.warns(FutureWarning, match=f"'{old}' is deprecated.*'{new}'"):
        m = CoxPH(**{old: value}).fit(X, y)
    cols = m.predict_churn(X[:3]).columns
    assert cols[-2:] == ["restricted_mean_days", "median_remaining_days"]
    assert all(c.endswith("d") for c in cols if c.startswith("churn_prob_"))


def test_deprecated_clv_names_warn(rfm, tmp_path):
    with pytest.warns(FutureWarning, match="'penalizer_coef' is deprecated"):
        m = BetaGeo(penalizer_coef=0.01).fit(rfm)
    np.testing.assert_allclose(list(m.params_.values()),
                               list(BetaGeo(penalizer=0.01).fit(rfm).params_.values()))
    with pytest.warns(FutureWarning, match="'summary' is deprecated"):
        m.summary
    with pytest.warns(FutureWarning, match="'to_json' is deprecated"):
        text = m.to_json()
    with pytest.warns(FutureWarning, match="load_clv_model is deprecated"):
        from crmkit.value import load_clv_model
        assert load_clv_model(text).params_ == m.params_
    assert crmkit.load_model(text).params_ == m.params_  # the old format is still read


# --------------------------------------------------------------------- output type
def test_pandas_output_is_indexed_by_customer(rfm):
    bg = BetaGeo().fit(rfm)
    pdf = bg.probability_alive(rfm, output="pandas")
    assert pdf.index.name == "customer_id" and list(pdf.columns) == ["p_alive"]
    assert pdf.index[0] == rfm["customer_id"][0]


def test_set_output_and_sklearn_config_choose_the_table_type(rfm, surv):
    import sklearn
    bg = BetaGeo().fit(rfm).set_output(transform="pandas")
    assert isinstance(bg.expected_purchases(rfm, 4), pd.DataFrame)
    assert isinstance(bg.expected_purchases(rfm, 4, output="polars"), pl.DataFrame)
    cox = CoxPH(unit="days").fit(*surv)
    with sklearn.config_context(transform_output="pandas"):
        assert isinstance(cox.predict_churn(surv[0][:2], ids=["a", "b"]), pd.DataFrame)
    assert isinstance(cox.predict_churn(surv[0][:2]), pl.DataFrame)
    with pytest.raises(ValueError, match="'transform' parameter of set_output"):
        bg.set_output(transform="arrow")


# ----------------------------------------------------------------------- envelope
def test_envelope_is_strict_json_with_non_finite_numbers_tagged(surv, tmp_path):
    cox = CoxPH(unit="days").fit(*surv)
    cox.summary_ = cox.summary_.with_columns(pl.lit(float("inf")).alias("-log2(p)"))
    env = to_envelope(cox, training_window=(dt.date(2024, 1, 1), dt.date(2024, 12, 31)),
                      metrics={"ibs": float("nan")}, fingerprint="sha256:abc")
    text = json.dumps(env, allow_nan=False)  # would raise on a bare NaN or Infinity
    assert '{"__float__": "inf"}' in text and env["metrics"] == {"ibs": {"__float__": "nan"}}
    assert set(env) >= {"format", "class", "params", "feature_names", "training_window",
                        "metrics", "fingerprint", "crmkit_version"}
    back = from_envelope(json.loads(text))
    assert math.isinf(back.summary_["-log2(p)"][0]) and math.isnan(back.metadata_["metrics"]["ibs"])
    assert back.metadata_["training_window"] == {"start": "2024-01-01", "end": "2024-12-31"}
    np.testing.assert_allclose(back.predict(surv[0]), cox.predict(surv[0]))


def test_a_bare_nan_in_an_envelope_is_refused(surv, tmp_path):
    env = to_envelope(CoxPH(unit="days").fit(*surv))
    env["metrics"] = {"ibs": float("nan")}  # as json.dumps(allow_nan=True) would write it
    path = tmp_path / "m.json"
    path.write_text(json.dumps(env))
    with pytest.raises(ValueError, match="bare non-finite number"):
        crmkit.load_model(path)


def test_load_model_refuses_what_it_does_not_know(tmp_path):
    with pytest.raises(ValueError, match="Not a crmkit model envelope"):
        crmkit.load_model({"format": "pickle"})
    with pytest.raises(ValueError, match="Unknown model class 'os.system'"):
        crmkit.load_model({"format": "crmkit.model/1", "class": "os.system", "params": {}})


@pytest.mark.parametrize("cls", CLV + [GammaGamma])
def test_every_clv_model_round_trips_through_save(cls, rfm, tmp_path):
    m = _quiet_fit(cls(), rfm)
    back = crmkit.load_model(m.save(tmp_path / "m.json"))
    assert type(back) is cls and back.params_ == m.params_
    assert back.summary_.equals(m.summary_)


def test_dir_crmkit_shows_only_public_names():
    names = dir(crmkit)
    assert not {"Any", "annotations", "importlib", "_importlib"} & set(names)
    assert {"load_model", "BetaGeo", "CoxPH"} <= set(names)


# ----------------------------------------------------------------------- CLV fits
@pytest.fixture(scope="module")
def cdnow(reference_dir):
    d = pl.read_csv(reference_dir / "cdnow" / "cdnow_customers_summary.csv")
    return d.select("frequency", pl.col("recency").alias("recency_weeks"),
                    pl.col("T").alias("T_weeks"))


# lifetimes 0.11.3 on the same CDNOW summary (benchmarks/.venv-lifetimes)
LIFETIMES = {
    ("BetaGeo", 0.01): {"r": 0.24294, "alpha": 4.432437, "a": 0.285642, "b": 0.658454},
    ("BetaGeo", 0.1): {"r": 0.230947, "alpha": 4.219288, "a": 0.128655, "b": 0.267127},
    ("ModifiedBetaGeo", 0.01): {"r": 0.615245, "alpha": 6.738469, "a": 0.499079,
                                "b": 0.672276},
    ("ParetoNBD", 0.0): {"r": 0.553261, "alpha": 10.577227, "s": 0.606156, "beta": 11.666206},
    ("ParetoNBD", 0.1): {"r": 0.553546, "alpha": 10.577712, "s": 0.600842, "beta": 11.497161},
}


@pytest.mark.parametrize("name, pen", list(LIFETIMES))
def test_penalizer_is_on_lifetimes_scale(cdnow, name, pen):
    """The issue: at 0.01 crmkit gave r 0.158 / alpha 1.53 against lifetimes' 0.243 / 4.43."""
    m = getattr(crmkit.value, name)(penalizer=pen).fit(cdnow)
    for k, v in LIFETIMES[(name, pen)].items():
        assert m.params_[k] == pytest.approx(v, rel=1e-3), k


def _no_dropout_log(n=3370, seed=1):
    rng = np.random.default_rng(seed)
    lam = rng.gamma(0.8, 1 / 6.0, n)
    T = rng.integers(1, 273, n) / 7.0
    x = rng.poisson(lam * T)
    last = np.array([np.floor(rng.uniform(0, t, k).max() * 7) / 7 if k else 0.0
                     for k, t in zip(x, T)])
    return pl.DataFrame({"frequency": x, "recency_weeks": last, "T_weeks": T})


@pytest.mark.parametrize("cls", [BetaGeo, ParetoNBD])
def test_the_no_dropout_boundary_is_named_with_the_fix_that_works(cls):
    data = _no_dropout_log(1200)
    with pytest.warns(ConvergenceWarning, match="no-dropout boundary.*NBD.*longer calibration"):
        m = cls().fit(data)
    assert m.at_boundary_ and not m.converged_
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nbd = NBD().fit(data)  # the model without dropout fits cleanly
    assert nbd.log_likelihood_ >= m.log_likelihood_ - 3.0


def test_no_false_boundary_alarm_on_cdnow(cdnow):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for cls in (BetaGeo, ParetoNBD, ModifiedBetaGeo):
            assert not cls().fit(cdnow).at_boundary_


def test_pareto_quadrature_agrees_with_the_hypergeometric_form():
    from crmkit.value._paretonbd import _log_A0_hyp, _log_A0_quad
    rng = np.random.default_rng(0)
    x = rng.integers(0, 300, 400).astype(float)
    T = rng.uniform(1, 80, 400)
    t_x = np.where(x > 0, T * rng.uniform(0, 1, 400), 0.0)
    for p in [(0.55, 10.6, 0.6, 11.7), (0.8, 5.9, 40.0, 8e4), (3.0, 300.0, 0.05, 1e4),
              (0.2, 0.5, 5.0, 3000.0), (0.5, 0.05, 1.0, 500.0)]:
        q, h = _log_A0_quad(*p, x, t_x, T), _log_A0_hyp(*p, x, t_x, T)
        z = (max(p[1], p[3]) - min(p[1], p[3])) / (max(p[1], p[3]) + t_x)
        ok = np.isfinite(h) & (z > 0.99)  # where the quadrature is used
        np.testing.assert_allclose(q[ok], h[ok], rtol=5e-8)


def test_clv_models_fit_calibration_holdout_split_output(bank):
    split = calibration_holdout_split(bank["transactions"], calibration_end="2025-06-30",
                                      observation_end="2025-12-31")
    split = split.filter((pl.col("T_cal_weeks") > 0) & ((pl.col("frequency_cal") == 0)
                                                        | (pl.col("monetary_value_cal") > 0)))
    plain = split.select("customer_id", pl.col("frequency_cal").alias("frequency"),
                         pl.col("recency_cal_weeks").alias("recency_weeks"),
                         pl.col("T_cal_weeks").alias("T_weeks"),
                         pl.col("monetary_value_cal").alias("monetary_value"))
    assert BetaGeo().fit(split).params_ == BetaGeo().fit(plain).params_
    gg = _quiet_fit(GammaGamma(), split)
    assert gg.params_ == _quiet_fit(GammaGamma(), plain).params_


def test_standard_errors_are_computed_when_first_asked_for(rfm):
    m = BetaGeo().fit(rfm)
    assert m._se_done is False  # the fit did not pay for the Hessian
    se = m.standard_errors_
    assert m._se_done is True and all(v > 0 for v in se.values())


def test_dead_likelihood_code_is_gone():
    for name in ("_terms", "_loglik", "_loglik_grad"):
        assert name not in vars(BetaGeo)


def test_lifetimes_method_names_give_the_same_numbers(rfm):
    bg = BetaGeo().fit(rfm)
    f, r, T = rfm["frequency"], rfm["recency_weeks"], rfm["T_weeks"]
    np.testing.assert_allclose(bg.conditional_expected_number_of_purchases_up_to_time(10, f, r, T),
                               bg.expected_purchases(rfm, 10)["expected_purchases"])
    np.testing.assert_allclose(bg.conditional_probability_alive(f, r, T),
                               bg.probability_alive(rfm)["p_alive"])


def test_customer_lifetime_value_explains_lifetimes_time(rfm):
    bg, gg = BetaGeo().fit(rfm), _quiet_fit(GammaGamma(), rfm)
    with pytest.raises(TypeError, match="time= counts months.*horizons="):
        crmkit.value.customer_lifetime_value(bg, gg, rfm, time=12, annual_discount_rate=0.1)


def test_bgbb_refuses_to_guess_a_weights_column(reference_dir):
    d = crmkit.datasets.load_donations()
    with pytest.raises(SchemaError, match="'weights' that looks like the number of customers"):
        BetaGeoBetaBinom().fit(d)
    m = BetaGeoBetaBinom().fit(d, weight_col="weights")
    assert m.n_customers_ == 11104  # not 22 "customers"


def test_backtest_reports_the_naive_baseline(bank):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = backtest_clv(bank["transactions"], calibration_end="2025-06-30",
                           observation_end="2025-12-31")
    m = res.metrics
    pred = res.predictions
    base = pred["frequency_cal"] / pred["T_cal_weeks"] * m["holdout_weeks"]
    np.testing.assert_allclose(pred["baseline_holdout"], base)
    mae = float((pred["baseline_holdout"] - pred["frequency_holdout"]).abs().mean())
    assert m["baseline_mae"] == pytest.approx(mae)
    assert m["mae_gain_pct"] == pytest.approx(100 * (m["baseline_mae"] - m["mae"]) / mae)
    assert m["beats_baseline"] == (m["mae"] < m["baseline_mae"])


# --------------------------------------------------------------- scikit-learn glue
def test_churn_outputs_come_through_a_pipeline(surv):
    X, y = surv
    pipe = make_pipeline(StandardScaler(), CoxPH(unit="days")).fit(X.to_numpy(), y)
    out = pipe.predict(X.to_numpy()[:4], horizons=[30, 90])
    assert out.columns == ["churn_prob_30d", "churn_prob_90d"]
    direct = CoxPH(unit="days").fit(StandardScaler().fit_transform(X.to_numpy()), y)
    np.testing.assert_allclose(
        out.to_numpy(), direct.predict_churn(StandardScaler().fit(X.to_numpy()).transform(
            X.to_numpy()[:4]), [30, 90], lifetime=False).to_numpy(), rtol=1e-9)
    assert pipe.predict(X.to_numpy()[:4]).shape == (4,)  # without horizons: the risk score


def test_scorers_work_in_grid_search(surv):
    X, y = surv
    for scoring in (concordance, integrated_brier):
        gs = GridSearchCV(make_pipeline(StandardScaler(), CoxPH(unit="days")),
                          {"coxph__penalizer": [0.0, 1.0]}, cv=KFold(3), scoring=scoring)
        gs.fit(X.to_numpy(), y)
        assert np.all(np.isfinite(gs.cv_results_["mean_test_score"]))
    assert concordance(gs.best_estimator_, X.to_numpy(), y) > 0.6
    assert -0.25 < integrated_brier(gs.best_estimator_, X.to_numpy(), y) < 0


# ----------------------------------------------------------------- the boundary
def test_rfm_summary_refuses_null_ids_and_non_finite_amounts():
    tx = pl.DataFrame({"customer_id": ["a", None, "b", None],
                       "timestamp": [dt.date(2024, 1, d) for d in (1, 2, 3, 4)],
                       "amount": [1.0, 2.0, 3.0, 4.0]})
    with pytest.raises(SchemaError, match=r"rfm_summary: column 'customer_id' has 2 null ids "
                                          r"\(e.g. row 1, row 3\)"):
        rfm_summary(tx)
    tx = tx.with_columns(pl.col("customer_id").fill_null("c"),
                         pl.Series("amount", [1.0, float("nan"), 3.0, float("inf")]))
    with pytest.raises(SchemaError, match=r"rfm_summary: column 'amount' has 2 missing or "
                                          r"non-finite values \(e.g. row 1: nan, row 3: inf\)"):
        rfm_summary(tx)
    with pytest.raises(SchemaError, match="calibration_holdout_split: column 'amount'"):
        calibration_holdout_split(tx, calibration_end="2024-01-02")


def test_iso_date_strings_are_parsed_and_bad_ones_named():
    tx = pl.DataFrame({"customer_id": ["a", "a", "b"],
                       "timestamp": [dt.datetime(2024, 1, 1, 9), dt.datetime(2024, 1, 15),
                                     dt.datetime(2024, 1, 8)], "amount": [1.0, 2.0, 3.0]})
    ref = rfm_summary(tx, observation_end="2024-01-29")
    as_text = tx.to_pandas().astype({"timestamp": str})  # as pandas reads a CSV
    assert rfm_summary(as_text, observation_end="2024-01-29").equals(ref)
    only_dates = tx.with_columns(pl.col("timestamp").dt.strftime("%Y-%m-%d"))
    assert rfm_summary(only_dates, observation_end="2024-01-29").equals(ref)
    bad = only_dates.with_columns(pl.Series("timestamp", ["2024-01-01", "yesterday", "x"]))
    with pytest.raises(SchemaError, match=r"rfm_summary: column 'timestamp' has 2 values that "
                                          r"are not ISO dates .*'yesterday', 'x'"):
        rfm_summary(bad)


INPUTS = ["polars", "lazy", "pandas", "pandas_string_dates", "pyarrow"]


def _convert(kind, frame):
    if kind == "polars":
        return frame
    if kind == "lazy":
        return frame.lazy()
    if kind == "pyarrow":
        return frame.to_arrow()
    pdf = frame.to_pandas()
    if kind == "pandas_string_dates":
        for c, t in frame.schema.items():
            if t == pl.Date or isinstance(t, pl.Datetime):
                pdf[c] = frame[c].cast(pl.String).to_list()  # ISO text, nulls stay None
    return pdf


def _calls(bank):
    """Every public function that takes a table, called on (converted) bank tables."""
    tx = bank["transactions"]
    return {
        "rfm_summary": lambda c: rfm_summary(c(tx), observation_end="2025-12-31"),
        "calibration_holdout_split": lambda c: calibration_holdout_split(
            c(tx), calibration_end="2025-06-30", observation_end="2025-12-31"),
        "backtest_clv": lambda c: backtest_clv(c(tx), calibration_end="2025-06-30",
                                               observation_end="2025-12-31").predictions,
        "build_features": lambda c: build_features({k: c(v) for k, v in bank.items()},
                                                   as_of="2025-12-31"),
        "validate": lambda c: crmkit.validate({k: c(v) for k, v in bank.items()},
                                              as_of="2025-12-31").tables["transactions"],
        "tables_as_of": lambda c: crmkit.tables_as_of({k: c(v) for k, v in bank.items()},
                                                      "2025-10-31")["holdings"],
    }


@pytest.mark.parametrize("kind", INPUTS)
@pytest.mark.parametrize("name", list(_calls({"transactions": None})))
def test_every_public_table_function_takes_every_input_type(bank, name, kind):
    call = _calls(bank)[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = call(lambda f: f)
        got = call(lambda f: _convert(kind, f))
    assert got.equals(ref), f"{name} on {kind} input differs from polars input"


def test_rfm_scorer_speaks_the_same_words(bank, tmp_path):
    from crmkit.value import RFMScorer
    feats = build_features(bank, as_of="2025-12-31")
    s = RFMScorer().fit(feats)
    assert set(s.params_) == {"recency", "frequency", "monetary"}
    assert s.summary_.columns == ["feature", "column", "edges"]
    back = crmkit.load_model(s.save(tmp_path / "rfm.json"))
    assert back.transform(feats).equals(s.transform(feats))
    s.set_output(transform="pandas")
    assert s.transform(feats).index.name == "customer_id"
    with pytest.warns(FutureWarning, match="'to_json' is deprecated"):
        s.to_json()
