"""Metrics: lift with ties, Success@k, calibration curve, cross-sell rate and penetration."""

import numpy as np
import polars as pl
import pytest

from crmkit.datasets import make_bank
from crmkit.propensity import (
    calibration_curve,
    cross_sell_rate,
    evaluate_propensities,
    lift_table,
    product_penetration,
    success_at_k,
)


def test_lift_of_a_constant_score_is_one_everywhere():
    rng = np.random.default_rng(0)
    y = rng.random(1000) < 0.1
    lt = lift_table(y, np.zeros(1000))
    np.testing.assert_allclose(lt["lift"].to_numpy(), 1.0)
    np.testing.assert_allclose(lt["cumulative_gain"].to_numpy(), np.arange(1, 11) / 10)


def test_lift_matches_a_direct_count_without_ties():
    rng = np.random.default_rng(1)
    s = rng.random(2000)
    y = rng.random(2000) < s * 0.2
    lt = lift_table(y, s)
    top = np.argsort(-s)[:200]
    assert lt["lift"][0] == pytest.approx(y[top].mean() / y.mean())
    assert lt["cumulative_gain"][-1] == pytest.approx(1.0)


def test_success_at_k_shares_ties_fairly():
    lab = pl.DataFrame({"A": [1.0], "B": [0.0], "C": [0.0], "D": [0.0]})
    sc = pl.DataFrame({"p_A": [0.5], "p_B": [0.5], "p_C": [0.5], "p_D": [0.5]})
    assert success_at_k(lab, sc, k=1) == pytest.approx(0.25)
    assert success_at_k(lab, sc, k=2) == pytest.approx(0.5)


def test_calibration_curve_and_evaluation():
    rng = np.random.default_rng(2)
    p = rng.uniform(0, 0.3, 50_000)
    y = rng.random(p.size) < p
    cc = calibration_curve(y, p)
    np.testing.assert_allclose(cc["predicted"], cc["observed"], atol=0.02)
    ev = evaluate_propensities(pl.DataFrame({"T": y.astype(float)}), pl.DataFrame({"p_T": p}),
                               pl.DataFrame({"p_T": np.full(p.size, y.mean())}))
    row = ev.row(0, named=True)
    assert row["baseline_roc_auc"] == pytest.approx(0.5)
    assert row["roc_auc"] > 0.6 and row["beats_baseline"]


def test_cross_sell_rate_and_penetration_by_tier():
    bank = make_bank(800, seed=3)
    xs = cross_sell_rate(bank, as_of=["2025-06-30", "2025-12-31"])
    assert set(xs["as_of"].cast(pl.String)) == {"2025-06-30", "2025-12-31"}
    allr = xs.filter((pl.col("tier") == "All") & (pl.col("as_of").cast(pl.String) == "2025-12-31"))
    held = bank["holdings"].filter(pl.col("closed").is_null())
    per = held.group_by("customer_id").agg(pl.col("product_id").n_unique())
    assert allr["customers"][0] == per.height
    assert allr["products_per_customer"][0] == pytest.approx(per["product_id"].mean())
    pen = product_penetration(bank, as_of="2025-12-31")
    p01 = pen.filter(pl.col("product_id") == "P01")
    total = (p01["holders"].sum()) / p01["customers"].sum()
    assert total == pytest.approx(held.filter(pl.col("product_id") == "P01")["customer_id"]
                                  .n_unique() / per.height)
    assert pen["penetration"].is_between(0, 1).all()
