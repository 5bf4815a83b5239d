"""Chunked scoring equals one-shot prediction; plots return their axes."""

from __future__ import annotations

import matplotlib
import numpy as np
import polars as pl
import pytest

from crmkit.churn import (
    CoxPH,
    WeibullAFT,
    load_model,
    make_y,
    metrics,
    plot_calibration,
    plot_reason_codes,
    plot_survival_by_group,
    score_customers,
)

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(8)
    n = 2000
    X = pl.DataFrame({"a": rng.normal(size=n), "b": rng.poisson(2, n).astype(float),
                      "tier": rng.choice(["x", "y", "z"], n)})
    t = 300 * rng.exponential(size=n) / np.exp(0.4 * X["a"].to_numpy())
    y = make_y(np.minimum(t, 500) + 1, t < 500)
    frame = X.with_columns(customer_id=pl.int_range(n).cast(pl.String),
                           tenure=pl.Series(rng.uniform(0, 200, n)))
    return CoxPH(unit="days", strata="tier").fit(X, y), WeibullAFT(unit="days").fit(X.drop("tier"), y), frame, y


@pytest.mark.parametrize("which", [0, 1])
def test_chunked_equals_one_shot(fitted, which, tmp_path):
    model, frame = fitted[which], fitted[2]
    full = model.predict_churn(frame, elapsed="tenure", ids=frame["customer_id"])
    out = score_customers(model, frame, elapsed_col="tenure", lifetime=True, reasons=2,
                          chunk_rows=333)
    np.testing.assert_allclose(out.select(full.columns[1:]).to_numpy(),
                               full.select(full.columns[1:]).to_numpy(), equal_nan=True)
    assert out["customer_id"].to_list() == frame["customer_id"].to_list()
    rc = model.reason_codes(frame[:50], top=2, ids=frame["customer_id"][:50])
    first = rc.filter(pl.col("rank") == 1)
    joined = out[:50].join(first, on="customer_id", how="left")
    assert (joined.filter(pl.col("covariate").is_not_null())["reason_1"]
            == joined.filter(pl.col("covariate").is_not_null())["covariate"]).all()
    # streamed from and to Parquet, with a model loaded from JSON
    src = tmp_path / "in.parquet"
    frame.write_parquet(src)
    sink = score_customers(load_model(model.to_json()), src, elapsed_col="tenure",
                           chunk_rows=500, sink=tmp_path / "out.parquet")
    got = pl.read_parquet(sink)
    np.testing.assert_allclose(got.select(full.columns[1:5]).to_numpy(),
                               full.select(full.columns[1:5]).to_numpy())


def test_scoring_refuses_missing_ids(fitted):
    with pytest.raises(ValueError, match="id column"):
        score_customers(fitted[0], fitted[2].drop("customer_id"))


def test_plots_return_axes(fitted):
    model, _, frame, y = fitted
    import matplotlib.pyplot as plt
    before = plt.get_fignums()
    ax = plot_survival_by_group(y["duration"], y["event"], frame["tier"], unit="days")
    assert len(ax.get_lines()) == 3
    legend = ax.get_legend()
    assert legend.get_title().get_text() == "tier, 95% band"
    assert all(t.get_text().startswith("tier = ") for t in legend.get_texts())
    assert len(ax.collections) == 3  # one confidence band per group
    assert plt.get_fignums() == before  # no figure left open in pyplot (Agg backend)
    prob = model.predict_churn(frame, horizons_days=(180,), lifetime=False).to_series()
    tab = metrics.calibration_table(y["duration"], y["event"], prob, 180.0)
    import matplotlib.pyplot as plt
    _, given = plt.subplots()
    assert plot_calibration(tab, ax=given, horizon_label="180 days") is given
    rc = model.reason_codes(frame[:5], ids=frame["customer_id"][:5])
    ax = plot_reason_codes(rc, rc["customer_id"][0])
    assert len(ax.patches) == rc.filter(pl.col("customer_id") == rc["customer_id"][0]).height
    plt.close("all")
