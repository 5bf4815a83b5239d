"""Value tiers: scheme validation, presets, quantile/pareto cuts, hidden VIPs, tier movement."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crmkit.exceptions import ConfigError, SchemaError
from crmkit.value.tiers import (
    Tier,
    TierScheme,
    assign_tiers,
    hidden_vips,
    tier_movement,
    tier_movement_summary,
)


def _customers(n: int, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    assets = np.round(rng.lognormal(11, 1.6, n), 2)
    assets[rng.random(n) < 0.05] = np.nan
    return pl.DataFrame({
        "customer_id": [f"C{i:06d}" for i in range(n)],
        "branch_id": [f"B{b:02d}" for b in rng.integers(1, 6, n)],
        "financial_assets": pl.Series(assets, nan_to_null=True),
    })


def test_retail_bank_edges_inclusive_lower_and_upper():
    df = pl.DataFrame({"customer_id": list("abcdefgh"),
                       "financial_assets": [-5.0, 0.0, 99_999.99, 100_000.0, 999_999.0,
                                            1_000_000.0, 5_000_000.0, 5_000_000.01]})
    lower = assign_tiers(df, TierScheme.retail_bank())["tier"].to_list()
    assert lower == ["Mass", "Mass", "Mass", "Gold", "Gold", "Platinum", "Diamond", "Diamond"]
    upper = assign_tiers(df, TierScheme.retail_bank(inclusive="upper"))["tier"].to_list()
    assert upper == ["Mass", "Mass", "Mass", "Mass", "Gold", "Gold", "Platinum", "Diamond"]
    s = TierScheme.retail_bank()
    assert s.vip_tiers == ["Gold", "Platinum", "Diamond"] and s.vip_threshold == 100_000
    assert s.unit == "CNY" and s.value_col == "financial_assets"


def test_null_and_nan_values_get_null_tier():
    df = pl.DataFrame({"customer_id": ["a", "b", "c"], "financial_assets": [None, float("nan"), 2e6]})
    assert assign_tiers(df)["tier"].to_list() == ["Mass", "Mass", "Platinum"]
    s = TierScheme.fixed([10], ["Low", "High"], null_tier="High")
    assert assign_tiers(df, s)["tier"].to_list() == ["High", "High", "High"]


@pytest.mark.parametrize("tiers, msg", [
    ([{"name": "A", "upper": 10}, {"name": "B", "lower": 20}], "gap between tier 'A'"),
    ([{"name": "A", "upper": 10, "upper_inclusive": True}, {"name": "B", "lower": 10}],
     "overlap between tier 'A'.*both include 10"),
    ([{"name": "A", "upper": 10}, {"name": "B", "lower": 10, "lower_inclusive": False}],
     "neither includes 10"),
    ([{"name": "A", "upper": 30}, {"name": "B", "lower": 20}], "overlap between"),
    ([{"name": "A", "lower": 0, "upper": 10}, {"name": "B", "lower": 10}], "unbounded below"),
    ([{"name": "A", "upper": 10}, {"name": "A", "lower": 10}], "repeated: A"),
    ([{"name": "A", "lower": 5, "upper": 1}], "above upper edge"),
])
def test_invalid_schemes_are_rejected_with_a_reason(tiers, msg):
    with pytest.raises(ConfigError, match=msg):
        TierScheme(tiers=tiers)


def test_declared_gaps_get_the_gap_tier():
    s = TierScheme(tiers=[{"name": "A", "upper": 10}, {"name": "B", "lower": 20}], allow_gaps=True)
    df = pl.DataFrame({"customer_id": ["x", "y", "z"], "financial_assets": [5.0, 15.0, 25.0]})
    out = assign_tiers(df, s)
    assert out["tier"].to_list() == ["A", "Unassigned", "B"]
    assert out["tier_rank"].to_list() == [0, -1, 1]


def test_unknown_keys_name_the_closest_valid_key():
    with pytest.raises(ConfigError, match="'valu_col'.*did you mean 'value_col'"):
        TierScheme(tiers=[{"name": "A"}], valu_col="x")
    with pytest.raises(ConfigError, match="'lower_inclusiv'.*did you mean 'lower_inclusive'"):
        TierScheme.from_dict({"tiers": [{"name": "A", "lower_inclusiv": True}]})


def test_json_roundtrip(tmp_path):
    s = TierScheme.fixed([1e5, 1e6], ["Mass", "Gold", "Platinum"], vip=["Gold", "Platinum"],
                         inclusive="upper", unit="CNY")
    s.to_json(tmp_path / "s.json")
    assert TierScheme.from_json(tmp_path / "s.json") == s
    assert TierScheme.from_json(s.to_json()) == s


def test_quantile_tiers_match_numpy_and_top_tier_never_exceeds_its_share():
    df = _customers(5000, seed=1)
    s = TierScheme.quantile(df, quantiles=[0.5, 0.8, 0.95], names=["D", "C", "B", "A"])
    vals = df["financial_assets"].drop_nulls().to_numpy()
    expect = np.quantile(vals, [0.5, 0.8, 0.95], method="inverted_cdf")
    assert [t.upper for t in s.tiers[:-1]] == pytest.approx(expect.tolist())
    out = assign_tiers(df.drop_nulls(), s)
    assert (out["tier"] == "A").mean() <= 0.05 + 1e-12
    # heavy ties: 60% zeros, cut at 0.5 keeps all zeros in the lowest tier
    tied = np.r_[np.zeros(60), np.arange(1, 41)]
    st_ = TierScheme.quantile(tied, quantiles=[0.5, 0.9], names=["L", "M", "H"])
    got = assign_tiers(pl.DataFrame({"customer_id": range(100), "financial_assets": tied}), st_)
    assert got.filter(pl.col("financial_assets") == 0)["tier"].unique().to_list() == ["L"]
    assert (got["tier"] == "H").sum() <= 10


def test_quantile_from_shard_counts_equals_full_fit():
    df = _customers(3000, seed=2).with_columns((pl.col("financial_assets") // 1000 * 1000))
    full = TierScheme.quantile(df, quantiles=[0.5, 0.9, 0.99])
    shards = [df.filter(pl.col("customer_id").hash(seed=1) % 4 == k) for k in range(4)]
    counts = pl.concat([sh.group_by("financial_assets").len() for sh in shards])
    assert TierScheme.quantile(counts, quantiles=[0.5, 0.9, 0.99], weight_col="len") == full
    p_full = TierScheme.pareto(df)
    assert TierScheme.pareto(counts, weight_col="len") == p_full


def test_pareto_cut_is_the_smallest_top_group_reaching_the_share():
    rng = np.random.default_rng(3)
    v = np.round(rng.pareto(1.2, 2000) * 1000, 0)
    s = TierScheme.pareto(v, share=0.8)
    t = s.tiers[1].lower
    top = v[v >= t]
    assert top.sum() >= 0.8 * v.sum()
    above = v[v > t]
    assert above.sum() < 0.8 * v.sum()  # dropping the threshold value falls short
    assert s.tiers[1].vip and not s.tiers[0].vip


def test_hidden_vips_match_brute_force():
    df = _customers(4000, seed=4)
    got = hidden_vips(df, n=25)
    pdf = df.to_pandas()
    pdf = pdf[(pdf.financial_assets < 100_000) & (pdf.financial_assets > 0)]
    pdf = pdf.sort_values(["branch_id", "financial_assets", "customer_id"],
                          ascending=[True, False, True])
    pdf["rank"] = pdf.groupby("branch_id").cumcount() + 1
    pdf = pdf[pdf["rank"] <= 25]
    assert got["customer_id"].to_list() == pdf["customer_id"].tolist()
    assert got["rank"].to_list() == pdf["rank"].tolist()
    assert (got["tier"] == "Mass").all()
    assert got["gap_to_vip"].to_numpy() == pytest.approx(100_000 - pdf["financial_assets"].to_numpy())


def test_hidden_vips_ties_broken_by_customer_id_and_shardable():
    df = pl.DataFrame({"customer_id": ["z", "y", "x", "w"], "branch_id": ["B1"] * 4,
                       "financial_assets": [50_000.0, 50_000.0, 50_000.0, 200_000.0]})
    assert hidden_vips(df, n=2)["customer_id"].to_list() == ["x", "y"]
    big = _customers(3000, seed=5)
    shards = [big.filter(pl.col("customer_id").hash(seed=2) % 3 == k) for k in range(3)]
    merged = hidden_vips(pl.concat([hidden_vips(sh, n=10).drop("rank", "tier", "gap_to_vip")
                                    for sh in shards]), n=10)
    assert merged.equals(hidden_vips(big, n=10))


def test_hidden_vips_threshold_follows_inclusive_edge():
    df = pl.DataFrame({"customer_id": ["a", "b"], "branch_id": ["B1", "B1"],
                       "financial_assets": [100_000.0, 90_000.0]})
    assert hidden_vips(df)["customer_id"].to_list() == ["b"]
    assert hidden_vips(df, TierScheme.retail_bank(inclusive="upper"))["customer_id"].to_list() == ["a", "b"]
    with pytest.raises(ValueError, match="flags no tier as VIP"):
        hidden_vips(df, TierScheme.fixed([1], ["a", "b"]))
    with pytest.raises(SchemaError, match="no column 'branch_id'"):
        hidden_vips(df.drop("branch_id"))


def test_tier_movement_and_summary():
    prev = pl.DataFrame({"customer_id": ["a", "b", "c", "d", "f"],
                         "tier": ["Mass", "Gold", "Diamond", "Gold", "Platinum"]})
    cur = pl.DataFrame({"customer_id": ["a", "b", "c", "e", "f"],
                        "tier": ["Gold", "Gold", "Platinum", "Mass", "Diamond"]})
    mv = tier_movement(prev, cur)
    assert mv.rows() == [("a", "Mass", "Gold", "upgrade"), ("b", "Gold", "Gold", "same"),
                         ("c", "Diamond", "Platinum", "downgrade"), ("d", "Gold", None, "lost"),
                         ("e", None, "Mass", "new"), ("f", "Platinum", "Diamond", "upgrade")]
    summ = tier_movement_summary(mv)
    assert summ["tier"].to_list() == ["Mass", "Gold", "Platinum", "Diamond"]
    plat = summ.filter(pl.col("tier") == "Platinum").row(0, named=True)
    assert plat == {"tier": "Platinum", "previous": 1, "current": 1, "same": 0, "upgraded_in": 0,
                    "downgraded_in": 1, "new": 0, "upgraded_out": 1, "downgraded_out": 0, "lost": 0,
                    "net_change": 0}
    with pytest.raises(ValueError, match="'Bronze' are not in the tier order"):
        tier_movement(prev, cur.with_columns(pl.lit("Bronze").alias("tier")))
    with pytest.raises(SchemaError, match="duplicate"):
        tier_movement(pl.concat([prev, prev]), cur)


@settings(max_examples=40, deadline=None)
@given(
    values=st.lists(st.one_of(st.none(), st.floats(-1e7, 1e8, allow_nan=False)), min_size=1, max_size=80),
    edges=st.lists(st.floats(-1e6, 1e7, allow_nan=False), min_size=1, max_size=5, unique=True),
    inclusive=st.sampled_from(["lower", "upper"]),
)
def test_every_customer_in_exactly_one_tier_and_tiers_monotone(values, edges, inclusive):
    edges = sorted(edges)
    names = [f"T{i}" for i in range(len(edges) + 1)]
    s = TierScheme.fixed(edges, names, inclusive=inclusive)
    df = pl.DataFrame({"customer_id": [str(i) for i in range(len(values))],
                       "financial_assets": pl.Series(values, dtype=pl.Float64)})
    out = assign_tiers(df, s)
    assert out.height == df.height and out["tier"].null_count() == 0
    # exactly one tier: the membership conditions of all tiers are mutually exclusive
    hits = df.drop_nulls().select(pl.sum_horizontal(
        [t.contains("financial_assets").cast(pl.Int8) for t in s.tiers]).alias("k"))
    assert (hits["k"] == 1).all()
    # monotone: sorted by value, tier rank never decreases
    ranked = out.drop_nulls("financial_assets").sort("financial_assets")
    assert (ranked["tier_rank"].diff().drop_nulls() >= 0).all()
    q = TierScheme.quantile(df.drop_nulls() if df.drop_nulls().height else pl.DataFrame(
        {"financial_assets": [0.0]}), quantiles=[0.3, 0.7, 0.9])
    qr = assign_tiers(df, q).drop_nulls("financial_assets").sort("financial_assets")
    assert (qr["tier_rank"].diff().drop_nulls() >= 0).all()


@settings(max_examples=40, deadline=None)
@given(prev=st.dictionaries(st.integers(0, 40), st.sampled_from(["Mass", "Gold", "Platinum", "Diamond"])),
       cur=st.dictionaries(st.integers(0, 40), st.sampled_from(["Mass", "Gold", "Platinum", "Diamond"])))
def test_movement_summary_balances(prev, cur):
    P = pl.DataFrame({"customer_id": [str(k) for k in prev], "tier": list(prev.values())},
                     schema={"customer_id": pl.String, "tier": pl.String})
    C = pl.DataFrame({"customer_id": [str(k) for k in cur], "tier": list(cur.values())},
                     schema={"customer_id": pl.String, "tier": pl.String})
    mv = tier_movement(P, C)
    assert mv.height == len(set(prev) | set(cur))
    s = tier_movement_summary(mv)
    lhs = s["current"]
    rhs = (s["previous"] - s["upgraded_out"] - s["downgraded_out"] - s["lost"]
           + s["upgraded_in"] + s["downgraded_in"] + s["new"])
    assert (lhs == rhs).all()
    assert s["previous"].sum() == len(prev) and s["current"].sum() == len(cur)
    assert s["upgraded_in"].sum() == s["upgraded_out"].sum()


@pytest.mark.parametrize("kind", ["polars", "lazy", "pandas", "pyarrow"])
def test_accepts_every_input_type(kind):
    df = _customers(200, seed=6)
    conv = {"polars": lambda d: d, "lazy": lambda d: d.lazy(), "pandas": lambda d: d.to_pandas(),
            "pyarrow": lambda d: d.to_arrow()}[kind]
    assert assign_tiers(conv(df)).equals(assign_tiers(df))
    assert hidden_vips(conv(df), n=5).equals(hidden_vips(df, n=5))
    t = assign_tiers(df)
    assert tier_movement(conv(t), conv(t))["movement"].unique().to_list() == ["same"]
    assert isinstance(assign_tiers(conv(df), output="pandas"), pd.DataFrame)
    assert TierScheme.quantile(conv(df)) == TierScheme.quantile(df)


def test_tier_model_rejects_infinite_edges():
    with pytest.raises(Exception, match="use None"):
        Tier(name="x", lower=float("-inf"))


def test_tier_movement_matches_a_join_reference():
    rng = np.random.default_rng(7)
    names = ["Mass", "Gold", "Platinum", "Diamond"]
    prev = pl.DataFrame({"customer_id": [f"C{i:04d}" for i in rng.permutation(3000)[:2000]],
                         "tier": rng.choice(names, 2000)})
    cur = pl.DataFrame({"customer_id": [f"C{i:04d}" for i in rng.permutation(3000)[:2500]],
                        "tier": rng.choice(names, 2500)})
    got = tier_movement(prev, cur)
    ref = prev.to_pandas().merge(cur.to_pandas(), on="customer_id", how="outer",
                                 suffixes=("_from", "_to")).sort_values("customer_id")
    rank = {n: i for i, n in enumerate(names)}
    fr, to = ref["tier_from"].map(rank), ref["tier_to"].map(rank)
    expect = np.select([fr.isna(), to.isna(), to > fr, to < fr],
                       ["new", "lost", "upgrade", "downgrade"], "same")
    assert got["customer_id"].to_list() == ref["customer_id"].tolist()
    assert got["movement"].to_list() == expect.tolist()
    assert got["from_tier"].to_list() == [None if pd.isna(v) else v for v in ref["tier_from"]]
    assert got["to_tier"].to_list() == [None if pd.isna(v) else v for v in ref["tier_to"]]
