"""RFM scores and segments: tie rules, fixed edges, sharded fits, config errors, persistence."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone

from crmkit.exceptions import ConfigError, NotFittedError, SchemaError
from crmkit.value._rfm_segments import DEFAULT_SEGMENTS, RFMScorer, SegmentRule, rfm_segments


def _frame(rng: np.random.Generator, n: int, prospects: float = 0.1) -> pl.DataFrame:
    rec = rng.integers(0, 720, n).astype(float)
    rec[rng.random(n) < prospects] = np.nan
    freq = rng.poisson(3, n)
    mon = np.round(rng.gamma(2.0, 50.0, n) * (freq > 0), 2)
    return pl.DataFrame({
        "customer_id": [f"C{i:05d}" for i in range(n)],
        "days_since_last_txn": pl.Series(rec, nan_to_null=True).cast(pl.Int64),
        "txn_count_365d": freq,
        "txn_amount_365d": mon,
    })


def test_quantile_scores_match_numpy_inverted_cdf():
    X = _frame(np.random.default_rng(1), 500)
    s = RFMScorer().fit(X)
    buyers = X.filter(pl.col("days_since_last_txn").is_not_null())
    for f, col in [("recency", "days_since_last_txn"), ("frequency", "txn_count_365d"),
                   ("monetary", "txn_amount_365d")]:
        expect = np.quantile(buyers[col].to_numpy().astype(float), [0.2, 0.4, 0.6, 0.8],
                             method="inverted_cdf")
        assert s.edges_[f] == pytest.approx(expect.tolist())
    out = s.transform(X)
    # score = 1 + number of edges strictly below the value; recency reversed
    e = s.edges_["frequency"]
    f_expect = 1 + sum((X["txn_count_365d"].to_numpy() > x).astype(int) for x in e)
    assert out["frequency_score"].to_list() == [
        None if r is None else int(v) for r, v in zip(X["days_since_last_txn"], f_expect)]
    e = s.edges_["recency"]
    r = X["days_since_last_txn"].to_numpy(allow_copy=True).astype(float)
    r_expect = 5 - sum((r > x).astype(int) for x in e)
    got = out["recency_score"].to_numpy(allow_copy=True).astype(float)
    mask = ~np.isnan(r)
    np.testing.assert_array_equal(got[mask], r_expect[mask])
    assert np.isnan(got[~mask]).all()


def test_value_on_an_edge_falls_in_lower_bin_and_recency_reversed():
    X = pl.DataFrame({"customer_id": ["a", "b", "c", "d"], "days_since_last_txn": [7, 8, 30, 400],
                      "txn_count_365d": [1, 2, 8, 9], "txn_amount_365d": [10.0, 10.01, 400.0, 1e6]})
    s = RFMScorer(edges={"recency": [7, 30, 90, 365], "frequency": [1, 2, 4, 8],
                         "monetary": [10, 50, 100, 400]}).fit(X)
    out = s.transform(X)
    assert out["recency_score"].to_list() == [5, 4, 4, 1]
    assert out["frequency_score"].to_list() == [1, 2, 4, 5]
    assert out["monetary_score"].to_list() == [1, 2, 4, 5]


def test_ties_get_equal_scores_and_row_order_does_not_matter():
    rng = np.random.default_rng(2)
    X = _frame(rng, 400).with_columns(pl.col("txn_count_365d").clip(0, 3))  # heavy ties
    a = RFMScorer().fit_transform(X).sort("customer_id")
    Xs = X.sample(fraction=1.0, shuffle=True, seed=3)
    b = RFMScorer().fit_transform(Xs).sort("customer_id")
    assert a.equals(b)
    joined = X.join(a, on="customer_id")
    per_value = joined.drop_nulls("frequency_score").group_by("txn_count_365d").agg(
        pl.col("frequency_score").n_unique())
    assert (per_value["frequency_score"] == 1).all()


def test_fit_on_shard_counts_equals_fit_on_all_customers():
    X = _frame(np.random.default_rng(4), 2000).with_columns((pl.col("txn_amount_365d") // 10 * 10))
    full = RFMScorer().fit(X)
    shards = [X.filter(pl.col("customer_id").hash(seed=0) % 3 == k) for k in range(3)]
    cols = ["days_since_last_txn", "txn_count_365d", "txn_amount_365d"]
    counts = (pl.concat([sh.group_by(cols).len() for sh in shards])
              .group_by(cols).agg(pl.col("len").sum())
              .with_columns(pl.lit("x").alias("customer_id")))
    assert counts.height < X.height
    from_counts = RFMScorer().fit(counts, sample_weight="len")
    assert from_counts.edges_ == full.edges_
    assert from_counts.n_fitted_ == full.n_fitted_
    # scoring per shard gives the same answer as scoring all at once
    per_shard = pl.concat([from_counts.transform(sh) for sh in shards]).sort("customer_id")
    assert per_shard.equals(full.transform(X).sort("customer_id"))


def test_prospects_get_prospect_segment_and_null_scores():
    X = pl.DataFrame({"customer_id": ["a", "b", "c"], "days_since_last_txn": [None, 5, 50],
                      "txn_count_365d": [0, 4, 1], "txn_amount_365d": [None, 80.0, 5.0]})
    out = RFMScorer(prospect_segment="No purchase").fit_transform(X)
    row = out.filter(pl.col("customer_id") == "a").row(0, named=True)
    assert row["segment"] == "No purchase"
    assert row["rfm_code"] is None and row["recency_score"] is None


@settings(max_examples=40, deadline=None)
@given(
    rec=st.lists(st.one_of(st.none(), st.integers(0, 1000)), min_size=1, max_size=60),
    n_scores=st.integers(2, 7),
    seed=st.integers(0, 10_000),
)
def test_every_customer_exactly_one_segment(rec, n_scores, seed):
    rng = np.random.default_rng(seed)
    n = len(rec)
    if all(r is None for r in rec):
        rec[0] = 1
    X = pl.DataFrame({"customer_id": [f"c{i}" for i in range(n)],
                      "days_since_last_txn": pl.Series(rec, dtype=pl.Int64),
                      "txn_count_365d": rng.integers(0, 5, n),
                      "txn_amount_365d": rng.choice([0.0, 1.0, 2.5, 100.0], n)})
    # default rules are written for 5 scores; scale them to n_scores
    rules = None if n_scores == 5 else [{"name": "Top", "recency": (n_scores, n_scores)},
                                         {"name": "Rest", "frequency": (1, n_scores - 1)}]
    s = RFMScorer(n_scores=n_scores, segments=rules)
    out = s.fit_transform(X)
    assert out.height == n
    assert out["customer_id"].to_list() == X["customer_id"].to_list()
    assert out["segment"].null_count() == 0
    assert set(out["segment"].unique()) <= set(s.segment_names)
    scores = out.drop_nulls("recency_score")
    for c in ("recency_score", "frequency_score", "monetary_score"):
        assert scores[c].is_between(1, n_scores).all()
    # monotone: a larger frequency never gets a smaller score
    j = X.join(out, on="customer_id").drop_nulls("frequency_score").sort("txn_count_365d")
    assert (j["frequency_score"].diff().drop_nulls() >= 0).all()
    j = X.join(out, on="customer_id").drop_nulls("recency_score").sort("days_since_last_txn")
    assert (j["recency_score"].diff().drop_nulls() <= 0).all()


def test_default_rules_cover_every_score_combination():
    rules = [SegmentRule.from_dict(r) for r in DEFAULT_SEGMENTS]
    grid = pl.DataFrame([(r, f, m) for r in range(1, 6) for f in range(1, 6) for m in range(1, 6)],
                        schema=["r", "f", "m"], orient="row")
    names = {"recency": "r", "frequency": "f", "monetary": "m"}
    hit = grid.select(pl.any_horizontal([rule.expr(names) for rule in rules]))
    assert hit.to_series().all()


def test_catch_all_segment_when_rules_do_not_cover():
    X = pl.DataFrame({"customer_id": ["a", "b"], "days_since_last_txn": [1, 500],
                      "txn_count_365d": [5, 1], "txn_amount_365d": [9.0, 1.0]})
    out = RFMScorer(segments=[{"name": "Recent", "recency": (5, 5)}],
                    edges={"recency": [10, 20, 30, 40]}).fit_transform(X)
    assert out["segment"].to_list() == ["Recent", "Other"]


def test_unknown_rule_key_names_closest_valid_key():
    with pytest.raises(ConfigError, match="'recenty'.*did you mean 'recency'"):
        RFMScorer(segments=[{"name": "X", "recenty": (1, 2)}]).fit(_frame(np.random.default_rng(0), 10))
    with pytest.raises(ConfigError, match="did you mean 'monetary'"):
        RFMScorer(edges={"monetry": [1, 2, 3, 4]}).fit(_frame(np.random.default_rng(0), 10))
    with pytest.raises(ConfigError, match="exceeds n_scores=3"):
        RFMScorer(n_scores=3).fit(_frame(np.random.default_rng(0), 10))


def test_bad_parameters_use_standard_message():
    X = _frame(np.random.default_rng(0), 10)
    with pytest.raises(ValueError, match="The 'n_scores' parameter of RFMScorer must be"):
        RFMScorer(n_scores=1).fit(X)
    with pytest.raises(ValueError, match="strictly increasing edges for 'recency'"):
        RFMScorer(edges={"recency": [3, 2, 1, 0]}).fit(X)
    with pytest.raises(SchemaError, match="no column 'txn_count_365d'"):
        RFMScorer().fit(X.drop("txn_count_365d"))
    with pytest.raises(NotFittedError):
        RFMScorer().transform(X)


def test_estimator_contract_and_json_roundtrip(tmp_path):
    X = _frame(np.random.default_rng(5), 300)
    s = RFMScorer(n_scores=4, segments=[{"name": "Top", "recency": (3, 4), "frequency": (3, 4)}])
    c = clone(s)
    assert c.get_params() == s.get_params()
    assert not hasattr(c, "edges_")
    s.fit(X)
    path = tmp_path / "rfm.json"
    s.to_json(path)
    loaded = RFMScorer.from_json(path)
    assert loaded.get_params()["n_scores"] == 4
    assert loaded.transform(X).equals(s.transform(X))
    assert "import" not in path.read_text()  # data only


@pytest.mark.parametrize("kind", ["polars", "lazy", "pandas", "pyarrow"])
def test_accepts_every_input_type(kind):
    X = _frame(np.random.default_rng(6), 50)
    expect = rfm_segments(X)
    conv = {"polars": lambda d: d, "lazy": lambda d: d.lazy(), "pandas": lambda d: d.to_pandas(),
            "pyarrow": lambda d: d.to_arrow()}[kind]
    got = rfm_segments(conv(X))
    assert got.equals(expect)
    pdf = rfm_segments(conv(X), output="pandas")
    assert isinstance(pdf, pd.DataFrame) and len(pdf) == 50
    assert isinstance(X.to_arrow(), pa.Table)


def test_nan_is_missing_like_null():
    X = pl.DataFrame({"customer_id": ["a", "b", "c"], "days_since_last_txn": [float("nan"), 5.0, 50.0],
                      "txn_count_365d": [0.0, 4.0, float("nan")], "txn_amount_365d": [0.0, 80.0, 5.0]})
    out = RFMScorer(edges={"recency": [1, 2, 10, 20], "frequency": [0, 1, 2, 3]}).fit_transform(X)
    assert out["segment"][0] == "Prospect" and out["recency_score"][0] is None
    assert out["frequency_score"][2] == 1  # NaN frequency of a buyer counts as 0
