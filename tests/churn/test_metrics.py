"""Metrics against direct (pairwise) formulas and lifelines."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crmkit.churn import KaplanMeierBaseline, make_y
from crmkit.churn.metrics import (
    brier_score,
    calibration_table,
    censoring_survival,
    concordance_index_harrell,
    concordance_index_uno,
    integrated_brier_score,
    time_dependent_auc,
)


def _brute_pairs(d, e, r, w=None):
    num = den = 0.0
    for i in range(d.size):
        if not e[i]:
            continue
        wi = 1.0 if w is None else w[i]
        for j in range(d.size):
            if d[j] > d[i] or (d[j] == d[i] and not e[j]):
                den += wi
                num += wi * ((r[i] > r[j]) + 0.5 * (r[i] == r[j]))
    return num / den


survival_data = st.integers(3, 60).flatmap(lambda n: st.tuples(
    st.lists(st.integers(1, 12), min_size=n, max_size=n),  # many tied times
    st.lists(st.booleans(), min_size=n, max_size=n),
    st.lists(st.integers(0, 5), min_size=n, max_size=n),  # many tied scores
))


@settings(max_examples=60, deadline=None)
@given(survival_data)
def test_harrell_matches_brute_force_and_lifelines(data):
    from lifelines.utils import concordance_index
    d, e, r = (np.asarray(v, dtype=float) for v in data)
    e = e.astype(bool)
    if not e.any() or _count_comparable(d, e) == 0:
        return
    c = concordance_index_harrell(d, e, r)
    assert c == pytest.approx(_brute_pairs(d, e, r))
    assert c == pytest.approx(concordance_index(d, -r, e))


def _count_comparable(d, e):
    return sum(1 for i in range(d.size) if e[i] for j in range(d.size)
               if d[j] > d[i] or (d[j] == d[i] and not e[j]))


def test_harrell_blocks_agree_on_a_larger_sample():
    rng = np.random.default_rng(0)
    n = 5000  # several blocks
    d = rng.integers(1, 300, n).astype(float)
    e = rng.random(n) < 0.6
    r = rng.normal(size=n) - 0.01 * d
    from lifelines.utils import concordance_index
    assert concordance_index_harrell(d, e, r) == pytest.approx(concordance_index(d, -r, e))


@settings(max_examples=40, deadline=None)
@given(survival_data, st.sampled_from([None, 6.0]))
def test_uno_matches_brute_force(data, tau):
    d, e, r = (np.asarray(v, dtype=float) for v in data)
    e = e.astype(bool)
    G = censoring_survival(d, e)
    g = G(d, left=True)
    w = np.where(e & (g > 0) & (True if tau is None else d < tau), 1 / np.maximum(g, 1e-300) ** 2,
                 0.0)
    if not (w > 0).any() or sum(w[i] for i in range(d.size) if e[i] for j in range(d.size)
                                if d[j] > d[i] or (d[j] == d[i] and not e[j])) == 0:
        return
    assert concordance_index_uno(d, e, r, tau=tau) == pytest.approx(_brute_pairs(d, e, r, w))


def test_uno_equals_harrell_without_censoring():
    rng = np.random.default_rng(1)
    d = rng.exponential(size=300)
    r = -d + rng.normal(size=300)
    e = np.ones(300, bool)
    assert concordance_index_uno(d, e, r) == pytest.approx(concordance_index_harrell(d, e, r))


def test_censoring_survival_is_kaplan_meier_of_censoring():
    from lifelines import KaplanMeierFitter
    rng = np.random.default_rng(2)
    d = rng.integers(1, 30, 200).astype(float)
    e = rng.random(200) < 0.5
    G = censoring_survival(d, e)
    km = KaplanMeierFitter().fit(d, ~e)
    t = np.arange(0.5, 31)
    # lifelines treats tied event/censoring as simultaneous; with events first it differs
    # only at tied times, so compare between the integer times
    np.testing.assert_allclose(G(t), km.survival_function_at_times(t).to_numpy(), atol=0.03)


def test_time_dependent_auc_by_hand():
    d = np.array([1.0, 2, 3, 4, 5, 6])
    e = np.array([1, 1, 0, 1, 0, 0], bool)
    r = np.array([5.0, 2, 4, 3, 1, 0])
    auc, mean = time_dependent_auc(d, e, r, [2.5, 4.5])
    G = censoring_survival(d, e)
    # t = 2.5: cases 0, 1 (weights 1/G), controls 2..5
    w = 1 / G(d[[0, 1]], left=True)
    by_hand = (w[0] * 4 + w[1] * 2) / (w.sum() * 4)  # case 1 (r=2) beats r=1, 0
    assert auc[0] == pytest.approx(by_hand)
    assert 0 <= mean <= 1


def test_brier_score_matches_graf_formula():
    rng = np.random.default_rng(4)
    n = 200
    d = rng.integers(1, 50, n).astype(float)
    e = rng.random(n) < 0.6
    times = np.array([10.0, 20.0, 30.0])
    S = rng.uniform(size=(n, 3))
    G = censoring_survival(d, e)
    expect = []
    for k, t in enumerate(times):
        terms = np.where(e & (d <= t), S[:, k] ** 2 / G(d, left=True), 0.0) + np.where(
            (d > t) | ((d == t) & ~e), (1 - S[:, k]) ** 2 / G(t, left=True), 0.0)
        expect.append(terms.mean())
    np.testing.assert_allclose(brier_score(d, e, S, times), expect)
    ibs = integrated_brier_score(d, e, S, times)
    trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy < 2: trapz
    assert ibs == pytest.approx(trapezoid(expect, times) / 20)


def test_perfect_prediction_has_zero_brier_and_km_is_beaten():
    d = np.array([1.0, 2, 3, 4, 5, 6, 7, 8])
    e = np.ones(8, bool)
    times = np.array([1.5, 3.5, 5.5])
    S = (d[:, None] > times[None, :]).astype(float)
    assert integrated_brier_score(d, e, S, times) == 0.0
    km = KaplanMeierBaseline(unit="days").fit(np.zeros((8, 1)), make_y(d, e))
    assert integrated_brier_score(d, e, km.predict_survival(np.zeros((8, 1)), times), times) > 0.1


def test_calibration_table_observed_is_kaplan_meier_per_bin():
    rng = np.random.default_rng(6)
    n = 3000
    p = rng.uniform(0.05, 0.8, n)
    churn_t = np.where(rng.random(n) < p, rng.uniform(0, 1, n), 5.0)
    cens = rng.uniform(0.3, 3, n)  # heavy censoring before the horizon
    d, e = np.minimum(churn_t, cens), churn_t <= cens
    tab = calibration_table(d, e, p, 1.0)
    assert tab["n"].sum() == n and tab.height == 10
    assert np.all(np.diff(tab["predicted"].to_numpy()) > 0)
    np.testing.assert_allclose(tab["observed"], tab["predicted"], atol=0.1)
    assert (tab["observed_lower"] <= tab["observed"]).all()
    # the naive share of churners by the horizon is biased low under censoring
    assert float(((d <= 1) & e).mean()) < float(tab["observed"].mean()) - 0.03


def test_metric_input_errors():
    with pytest.raises(ValueError, match="NaN or infinity"):
        concordance_index_harrell([1, 2], [1, 1], [np.nan, 1])
    with pytest.raises(ValueError, match="No comparable pairs"):
        concordance_index_harrell([1, 2], [0, 0], [1, 2])


# scikit-survival 0.28.0 on _oracle_data(), an independent implementation of the same
# estimators (Uno's C, cumulative/dynamic AUC, Graf's Brier). Produced once by
# `benchmarks/.venv-sksurv/bin/python benchmarks/bench_churn.py --sksurv-oracle`
# (scikit-survival lives only in that venv, never in crmkit's). The data are untied;
# on tied data the two differ slightly by convention: crmkit weights an event at T by
# 1/G(T-) (Gerds & Schumacher 2006), scikit-survival by 1/G(T).
SKSURV = {
    "harrell": 0.6824698659878715,
    "uno_tau12": 0.6769218694543803,
    "auc": [0.7270940304278927, 0.7527266521264083, 0.7733105742242546, 0.7802641538839019],
    "mean_auc": 0.7564113515260128,
    "brier": [0.15033489280047452, 0.192865965226861, 0.19514505128530316,
              0.16057090075988575],
    "ibs": 0.18098630222716697,
}


def _oracle_data() -> dict:
    """Same generator as benchmarks/bench_churn.py::oracle_data."""
    rng = np.random.default_rng(20261122)

    def draw(n):
        x = rng.normal(size=n)
        t = rng.exponential(10 * np.exp(-0.7 * x))
        c = rng.uniform(0, 25, n)
        return x, np.minimum(t, c), t <= c

    xtr, dtr, etr = draw(600)
    xte, dte, ete = draw(400)
    keep = dte < dtr[~etr].max() * 0.95
    xte, dte, ete = xte[keep], dte[keep], ete[keep]
    risk = xte + 0.3 * rng.normal(size=xte.size)
    times = np.array([2.0, 5.0, 10.0, 15.0])
    grid = np.linspace(1.0, 15.0, 30)
    S = np.exp(-np.outer(np.exp(0.7 * xte), times) / 10)
    Sg = np.exp(-np.outer(np.exp(0.7 * xte), grid) / 10)
    return dict(dtr=dtr, etr=etr, d=dte, e=ete, risk=risk, times=times, grid=grid, S=S, Sg=Sg)


def test_metrics_equal_scikit_survival():
    z = _oracle_data()
    kw = dict(train_duration=z["dtr"], train_event=z["etr"])
    assert concordance_index_harrell(z["d"], z["e"], z["risk"]) == pytest.approx(
        SKSURV["harrell"], rel=1e-12)
    assert concordance_index_uno(z["d"], z["e"], z["risk"], tau=12.0, **kw) == pytest.approx(
        SKSURV["uno_tau12"], rel=1e-12)
    auc, mean_auc = time_dependent_auc(z["d"], z["e"], 1 - z["S"], z["times"], **kw)
    np.testing.assert_allclose(auc, SKSURV["auc"], rtol=1e-12)
    assert mean_auc == pytest.approx(SKSURV["mean_auc"], rel=1e-12)
    np.testing.assert_allclose(brier_score(z["d"], z["e"], z["S"], z["times"], **kw),
                               SKSURV["brier"], rtol=1e-12)
    assert integrated_brier_score(z["d"], z["e"], z["Sg"], z["grid"], **kw) == pytest.approx(
        SKSURV["ibs"], rel=1e-12)
