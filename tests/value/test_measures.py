"""Value-measure comparison: metrics against brute force, tie handling, revenue windows."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import polars as pl
import pytest
from scipy import stats
from scipy.integrate import trapezoid  # numpy < 2 (the lower bound 1.26) has no np.trapezoid

from crmkit.exceptions import SchemaError
from crmkit.value._measures import compare_value_measures, next_period_revenue, plot_value_measures


def _data(n=1000, seed=0):
    rng = np.random.default_rng(seed)
    assets = rng.lognormal(10, 1.0, n)
    revenue = np.maximum(0, assets * 0.01 + rng.normal(0, 200, n))
    return pl.DataFrame({
        "customer_id": [f"C{i:05d}" for i in range(n)],
        "assets": assets,
        "noise": rng.normal(size=n),
        "coarse": np.floor(assets / 20_000),  # heavy ties
        "revenue": revenue,
    })


def _brute_gains(x, y, k):
    order = np.argsort(-x)
    ys = y[order]
    capture = ys[:k].sum() / ys.sum()
    curve = np.r_[0, np.cumsum(ys)] / ys.sum()
    area = trapezoid(curve, dx=1 / len(ys))
    return area, capture


def test_metrics_match_brute_force_without_ties():
    d = _data()
    out = compare_value_measures(d, candidates=["assets", "noise"], target_col="revenue")
    x, y = d["assets"].to_numpy(), d["revenue"].to_numpy()
    row = out.filter(pl.col("measure") == "assets").row(0, named=True)
    assert row["spearman"] == pytest.approx(stats.spearmanr(x, y).statistic)
    assert row["r2"] == pytest.approx(stats.linregress(x, y).rvalue ** 2)
    area, capture = _brute_gains(x, y, 100)
    best, _ = _brute_gains(y, y, 100)
    assert row["top_capture"] == pytest.approx(capture)
    assert row["top_lift"] == pytest.approx(capture / 0.1)
    assert row["gini"] == pytest.approx((area - 0.5) / (best - 0.5))
    assert out["measure"].to_list() == ["assets", "noise"]  # best first
    assert row["n_customers"] == 1000 and row["n_null"] == 0


def test_ties_are_the_expectation_over_random_orders():
    d = _data(300, seed=1)
    x, y = d["coarse"].to_numpy(), d["revenue"].to_numpy()
    got = compare_value_measures(d, candidates=["coarse"], target_col="revenue").row(0, named=True)
    rng = np.random.default_rng(0)
    caps, areas = [], []
    for _ in range(3000):
        jitter = rng.random(len(x)) * 1e-6  # random order within ties
        a, c = _brute_gains(x + jitter, y, 30)
        caps.append(c)
        areas.append(a)
    best, _ = _brute_gains(y, y, 30)
    assert got["top_capture"] == pytest.approx(np.mean(caps), abs=3 * np.std(caps) / np.sqrt(3000) + 1e-9)
    assert got["gini"] == pytest.approx((np.mean(areas) - 0.5) / (best - 0.5), abs=2e-3)
    shuffled = d.sample(fraction=1.0, shuffle=True, seed=5)
    again = compare_value_measures(shuffled, candidates=["coarse"], target_col="revenue")
    first = compare_value_measures(d, candidates=["coarse"], target_col="revenue")
    numbers = pl.selectors.numeric()  # pytest 8.0 (the lower bound) approximates no strings
    assert again.select(numbers).to_numpy() == pytest.approx(first.select(numbers).to_numpy())
    assert again.select(~numbers).equals(first.select(~numbers))


def test_perfect_reversed_and_constant_measures():
    d = _data(200, seed=2).with_columns(pl.col("revenue").alias("perfect"),
                                        (-pl.col("revenue")).alias("reversed"),
                                        pl.lit(1.0).alias("flat"))
    out = compare_value_measures(d, candidates=["perfect", "reversed", "flat"], target_col="revenue")
    by = {r["measure"]: r for r in out.iter_rows(named=True)}
    assert by["perfect"]["gini"] == pytest.approx(1.0) and by["perfect"]["spearman"] == pytest.approx(1.0)
    assert by["reversed"]["gini"] < 0
    assert by["flat"]["gini"] == pytest.approx(0.0) and by["flat"]["top_capture"] == pytest.approx(0.1)
    assert out["measure"].to_list() == ["perfect", "flat", "reversed"]


def test_separate_revenue_table_missing_customers_are_zero_and_nulls_lowest():
    f = pl.DataFrame({"customer_id": ["a", "b", "c", "d"], "m": [3.0, None, 2.0, 1.0]})
    r = pl.DataFrame({"customer_id": ["a", "c"], "rev": [10.0, 5.0]})
    out = compare_value_measures(f, r, top_fraction=0.25).row(0, named=True)
    assert out["n_null"] == 1 and out["n_customers"] == 4
    assert out["top_capture"] == pytest.approx(10 / 15)
    assert compare_value_measures(f, r, sort_by="r2")["measure"].to_list() == ["m"]
    with pytest.raises(ValueError, match="The 'sort_by' parameter of compare_value_measures"):
        compare_value_measures(f, r, sort_by="auc")
    with pytest.raises(SchemaError, match="no column 'zz'"):
        compare_value_measures(f, r, candidates=["zz"])
    with pytest.raises(ValueError, match="not positive"):
        compare_value_measures(f, r.with_columns(pl.lit(0.0).alias("rev")))


def test_next_period_revenue_window_is_left_open_right_closed():
    tx = pl.DataFrame({
        "customer_id": ["a", "a", "a", "b", "c"],
        "timestamp": [dt.datetime(2024, 1, 31, 23, 59), dt.datetime(2024, 2, 1, 0, 1),
                      dt.datetime(2024, 3, 1, 12), dt.datetime(2024, 3, 2), dt.datetime(2024, 1, 2)],
        "amount": [1.0, 2.0, 4.0, 8.0, 16.0],
    })
    out = next_period_revenue(tx, as_of="2024-01-31", horizon_days=30)
    assert out.rows() == [("a", 6.0), ("c", 0.0)]  # b first bought after as_of: not a customer yet
    cust = pl.DataFrame({"customer_id": ["a", "b", "z"]})
    out = next_period_revenue(tx, as_of=dt.date(2024, 1, 31), horizon_days=31, customers=cust)
    assert out.rows() == [("a", 6.0), ("b", 8.0), ("z", 0.0)]
    with pytest.raises(ValueError, match="'horizon_days' parameter of next_period_revenue"):
        next_period_revenue(tx, as_of="2024-01-31", horizon_days=0)


@pytest.mark.parametrize("kind", ["polars", "lazy", "pandas", "pyarrow"])
def test_accepts_every_input_type(kind):
    d = _data(100, seed=3)
    conv = {"polars": lambda x: x, "lazy": lambda x: x.lazy(), "pandas": lambda x: x.to_pandas(),
            "pyarrow": lambda x: x.to_arrow()}[kind]
    expect = compare_value_measures(d, target_col="revenue")
    assert compare_value_measures(conv(d), target_col="revenue").equals(expect)
    assert isinstance(compare_value_measures(conv(d), target_col="revenue", output="pandas"), pd.DataFrame)


def test_lower_is_better_negates_and_nulls_count_as_worst():
    f = pl.DataFrame({"customer_id": list("abcd"), "days": [1.0, 5.0, None, 9.0]})
    r = pl.DataFrame({"customer_id": list("abcd"), "rev": [10.0, 5.0, 0.0, 1.0]})
    out = compare_value_measures(f, r, lower_is_better=["days"], top_fraction=0.25).row(0, named=True)
    assert out["direction"] == "lower"
    assert out["top_capture"] == pytest.approx(10 / 16)
    assert out["spearman"] > 0.7
    # the null customer is tied with the worst (days 9): together they are last
    plain = compare_value_measures(f.with_columns(pl.col("days").fill_null(9.0)), r,
                                   lower_is_better=["days"]).row(0, named=True)
    assert out["gini"] == pytest.approx(plain["gini"])
    with pytest.raises(ValueError, match="'lower_is_better' parameter"):
        compare_value_measures(f, r, lower_is_better=["zz"])


def test_plot_value_measures_draws_one_curve_per_candidate():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = _data(300, seed=8)
    fig, ax = plt.subplots()
    out = plot_value_measures(d, candidates=["assets", "coarse"], target_col="revenue", ax=ax)
    assert out is ax
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {"revenue (perfect)", "random", "assets", "coarse"}
    xs, ys = lines["assets"].get_data()
    assert xs[0] == 0 and ys[-1] == pytest.approx(1.0) and np.all(np.diff(xs) > 0)
    # the area under the drawn curve is the one behind the reported Gini
    area = trapezoid(ys, xs)
    px, py = lines["revenue (perfect)"].get_data()
    gini = (area - 0.5) / (trapezoid(py, px) - 0.5)
    row = compare_value_measures(d, candidates=["assets"], target_col="revenue").row(0, named=True)
    assert gini == pytest.approx(row["gini"])
    plt.close(fig)
