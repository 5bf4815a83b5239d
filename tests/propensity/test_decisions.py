"""Offers: suitability is never violated, held or recent products are never offered."""

import datetime as dt

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_series_equal

from crmkit.datasets import make_bank
from crmkit.propensity import (
    PropensityModel,
    build_training_set,
    next_best_products,
    propensity_features,
    score_shard,
    split_training_set,
)

DAY = dt.date(2025, 12, 31)
PRODUCTS = pl.DataFrame({"product_id": [f"P{i}" for i in range(6)],
                         "risk_rating": [1, 2, 3, 4, 5, 2],
                         "margin": [1.0, 2.0, 3.0, 0.5, 4.0, 1.5]})


@settings(max_examples=60, deadline=None)
@given(data=st.data(), tolerance=st.integers(-1, 2), k=st.integers(1, 6))
def test_suitability_and_held_products_never_violated(data, tolerance, k):
    n = data.draw(st.integers(1, 12))
    levels = data.draw(st.lists(st.one_of(st.none(), st.integers(1, 5)), min_size=n, max_size=n))
    probs = data.draw(st.lists(st.floats(0, 1), min_size=6 * n, max_size=6 * n))
    ids = [f"c{i}" for i in range(n)]
    scores = pl.DataFrame({"customer_id": ids, **{
        f"P{j}": probs[j * n:(j + 1) * n] for j in range(6)}}).rename(
        {f"P{j}": f"p_P{j}" for j in range(6)})
    held_pairs = data.draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, 5),
                                              st.integers(-400, 0), st.booleans()), max_size=20))
    holdings = pl.DataFrame(
        {"customer_id": [ids[c] for c, *_ in held_pairs],
         "product_id": [f"P{p}" for _, p, *_ in held_pairs],
         "opened": [DAY + dt.timedelta(days=o) for _, _, o, _ in held_pairs],
         "closed": [DAY - dt.timedelta(days=1) if closed else None
                    for *_, closed in held_pairs]},
        schema={"customer_id": pl.String, "product_id": pl.String, "opened": pl.Date,
                "closed": pl.Date})
    customers = pl.DataFrame({"customer_id": ids, "risk_level": levels},
                             schema={"customer_id": pl.String, "risk_level": pl.Int64})
    out = next_best_products(scores, customers, holdings, PRODUCTS, as_of=DAY, k=k,
                             lookback_days=90, risk_tolerance=tolerance)
    assert out.group_by("customer_id").len()["len"].max() is None or \
        out.group_by("customer_id").len()["len"].max() <= k
    rating = dict(zip(PRODUCTS["product_id"], PRODUCTS["risk_rating"]))
    level = dict(zip(ids, levels))
    for row in out.iter_rows(named=True):
        lv = level[row["customer_id"]]
        if lv is None:
            assert rating[row["product_id"]] <= 1
        else:
            assert rating[row["product_id"]] <= lv + tolerance
    blocked = holdings.filter(pl.col("closed").is_null()
                              | ((pl.col("opened") > DAY - dt.timedelta(days=90))))
    clash = out.join(blocked, on=["customer_id", "product_id"], how="inner")
    assert clash.height == 0
    # ranks are 1..m by expected value
    for _, grp in out.group_by("customer_id"):
        ev = grp.sort("rank")["expected_value"].to_list()
        assert ev == sorted(ev, reverse=True)
        assert grp["rank"].sort().to_list() == list(range(1, grp.height + 1))


def test_declined_products_are_excluded_and_unknown_ones_named():
    scores = pl.DataFrame({"customer_id": ["a"], "p_P0": [0.9], "p_P1": [0.8]})
    customers = pl.DataFrame({"customer_id": ["a"], "risk_level": [5]})
    holdings = pl.DataFrame(schema={"customer_id": pl.String, "product_id": pl.String,
                                    "opened": pl.Date, "closed": pl.Date})
    contacts = pl.DataFrame({"customer_id": ["a"], "date": [DAY - dt.timedelta(days=10)],
                             "kind": ["call"], "outcome": ["declined"], "product_id": ["P0"]})
    out = next_best_products(scores, customers, holdings, PRODUCTS, as_of=DAY, k=3,
                             contacts=contacts, product_value=None)
    assert out["product_id"].to_list() == ["P1"]
    import pytest
    with pytest.raises(Exception, match="P9"):
        next_best_products(scores.with_columns(pl.lit(0.1).alias("p_P9")), customers,
                           holdings, PRODUCTS, as_of=DAY)


def test_score_shard_on_the_sample_bank_with_reasons():
    bank = make_bank(1500, seed=5)
    ts = build_training_set(bank, as_of=["2025-03-31", "2025-06-30"], horizon=90, unit="days",
                            targets=["P02", "P03", "P05", "P08"])
    X, Y, g = split_training_set(ts)
    m = PropensityModel(n_estimators=20, min_positives=10, min_child_samples=20).fit(X, Y,
                                                                                  groups=g)
    # a model of a subset of products scores and offers only those
    shards = [score_shard(m, bank, as_of="2025-12-31", shard=(i, 2), k=2) for i in range(2)]
    scores = pl.concat([s for s, _ in shards])
    offers = pl.concat([o for _, o in shards])
    feats = propensity_features(bank, as_of="2025-12-31")
    assert scores.height == feats.height and scores["customer_id"].is_unique().all()
    held = bank["holdings"].filter(pl.col("closed").is_null())
    assert offers.join(held, on=["customer_id", "product_id"]).height == 0
    modelled = offers.filter(pl.col("reasons").list.len() > 0)
    assert modelled.height > 0
    r = modelled["reasons"][0][0]
    assert set(r) == {"feature", "value", "contribution"} and r["contribution"] > 0
    # scores are a pure function of the shard: the same as scoring everyone at once
    whole, _ = score_shard(m, bank, as_of="2025-12-31", k=2, reasons=0)
    assert whole.sort("customer_id").equals(scores.sort("customer_id"))
    assert np.isfinite(scores.select(pl.selectors.starts_with("p_")).to_numpy()).all()


def test_reasons_for_some_offers_equal_the_full_computation():
    """Explaining only some offers (call-list candidates, first offers, above a cut-off)
    gives those offers exactly the reasons the full computation gives, and changes
    nothing else."""
    bank = make_bank(1500, seed=7)
    ts = build_training_set(bank, as_of=["2025-03-31", "2025-06-30"], horizon=90, unit="days",
                            targets=["P02", "P03", "P05", "P08"])
    X, Y, g = split_training_set(ts)
    m = PropensityModel(n_estimators=20, min_positives=10, min_child_samples=20).fit(X, Y,
                                                                                  groups=g)
    _, full = score_shard(m, bank, as_of="2025-12-31", k=3, reasons=3)
    assert full["explained"].all()
    ids = sorted(full["customer_id"].unique().to_list())[::3]
    cuts = {"P02": 0.01, "P03": 0.02, "P05": 0.0}            # P08: no cut-off
    _, some = score_shard(m, bank, as_of="2025-12-31", k=3, reasons=3, reason_ranks=1,
                          reason_customers=ids, reason_min_propensity=cuts)
    cols = [c for c in full.columns if c not in ("explained", "reasons", "reason_text")]
    assert some.select(cols).equals(full.select(cols))       # same offers, same order
    expect = ((some["rank"] == 1) & some["customer_id"].is_in(ids)
              & (some["propensity"] >= some["product_id"].replace_strict(
                  cuts, default=0.0, return_dtype=pl.Float64)))
    assert some["explained"].to_list() == expect.to_list()
    assert 0 < some["explained"].sum() < full.height
    done = some["explained"].to_numpy()
    assert_series_equal(some.filter(pl.col("explained"))["reasons"],   # NaN values equal
                        full.filter(pl.Series(done))["reasons"], check_exact=True)
    assert some.filter(~pl.col("explained"))["reasons"].list.len().max() == 0
    # with nobody to explain, no contributions are computed at all
    _, none = score_shard(m, bank, as_of="2025-12-31", k=3, reasons=3, reason_customers=[])
    assert not none["explained"].any() and none.select(cols).equals(full.select(cols))
