"""The stage engine's invariants (hypothesis) and its behaviour on the sample bank."""

import datetime as dt

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmkit.exceptions import SchemaError
from crmkit.lifecycle import assign_stages, get_preset, lifecycle_features, recent_gap_feature

from ._util import BANK, END, TRUTH, cut

SETTINGS = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _random_features(preset, seed, null_rate, n=200):
    """A frame with every column the preset's rules read, random values and nulls."""
    cfg = get_preset(preset)
    cols = set()
    for _, rule in cfg.ordered_rules():
        cols |= rule.compile(cfg.params).features
    cols -= {"previous_stage", "p_alive", "churn_risk"}
    rng = np.random.default_rng(seed)
    data = {"customer_id": [f"C{i}" for i in range(n)]}
    for c in sorted(cols):
        if c in ("has_transacted", "all_products_closed"):
            values = rng.random(n) < 0.5
        elif "trend" in c:
            values = rng.uniform(-1, 1, n)
        else:
            values = rng.integers(0, 800, n)
        s = pl.Series(c, values)
        if c not in ("has_transacted", "all_products_closed"):
            s = s.scatter(np.flatnonzero(rng.random(n) < null_rate), None)
        data[c] = s
    return pl.DataFrame(data)


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), null_rate=st.floats(0, 0.6),
       preset=st.sampled_from(["retail_bank", "retailer"]),
       with_previous=st.booleans(), with_model=st.booleans())
def test_every_customer_gets_exactly_one_stage(seed, null_rate, preset, with_previous, with_model):
    feats = _random_features(preset, seed, null_rate)
    cfg = get_preset(preset)
    rng = np.random.default_rng(seed + 1)
    if with_model:
        feats = feats.with_columns(p_alive=pl.Series(rng.random(feats.height)),
                                   churn_risk=pl.Series(rng.random(feats.height)))
    previous = None
    if with_previous:
        previous = feats.select("customer_id").sample(fraction=0.7, seed=seed % 1000).with_columns(
            stage=pl.Series(rng.choice(cfg.stages, int(feats.height * 0.7))))
    out = assign_stages(feats, as_of="2025-06-30", previous=previous, preset=preset)
    assert out.height == feats.height
    assert out["customer_id"].sort().equals(feats["customer_id"].sort())
    assert out["stage"].null_count() == 0 and out["stage_rule"].null_count() == 0
    assert set(out["stage"]) <= set(cfg.stages)
    assert set(out["stage_rule"]) <= {r.name for r in cfg.rules} | {cfg.default_rule}


def _reference(frame, rules, default):
    """Pure-Python first-match evaluation of threshold rules, nulls never match."""
    out = []
    for row in frame.iter_rows(named=True):
        chosen = default
        for name, col, op, value in rules:
            v = row[col]
            if v is not None and (v > value if op == ">" else v <= value):
                chosen = name
                break
        out.append(chosen)
    return out


@SETTINGS
@given(data=st.data(), n_rules=st.integers(1, 6))
def test_rule_order_is_respected(data, n_rules):
    cols = ["a", "b", "c"]
    rules = [(f"r{i}", data.draw(st.sampled_from(cols)), data.draw(st.sampled_from([">", "<="])),
              data.draw(st.integers(0, 10))) for i in range(n_rules)]
    order = data.draw(st.permutations(list(range(n_rules))))
    use_priority = data.draw(st.booleans())
    values = data.draw(st.lists(st.tuples(*[st.one_of(st.none(), st.integers(0, 10))] * 3),
                                min_size=1, max_size=40))
    frame = pl.DataFrame({"customer_id": [str(i) for i in range(len(values))],
                          **{c: [v[j] for v in values] for j, c in enumerate(cols)}},
                         schema={"customer_id": pl.String, "a": pl.Int64, "b": pl.Int64,
                                 "c": pl.Int64})
    if use_priority:  # list order shuffled, priorities give the order
        spec = [{"name": n, "stage": "growth", "when": f"{c} {op} {v}", "priority": order[i]}
                for i, (n, c, op, v) in enumerate(rules)]
        ordered = [rules[i] for i in np.argsort(order)]
    else:
        spec = [{"name": n, "stage": "growth", "when": f"{c} {op} {v}"} for n, c, op, v in rules]
        ordered = rules
    cfg = {"kind": "non_contractual", "default_stage": "mature", "rules": spec,
           "churn": {"kind": "non_contractual"}}
    out = assign_stages(frame, as_of="2025-01-01", preset=cfg)
    assert out["stage_rule"].to_list() == _reference(frame, ordered, "default")


@SETTINGS
@given(days_back=st.integers(0, 900), extra=st.lists(
    st.tuples(st.integers(0, 299), st.integers(1, 300), st.floats(1, 5000)), max_size=20))
def test_stages_as_of_d_ignore_later_rows(days_back, extra):
    day = END - dt.timedelta(days=days_back)
    truth = assign_stages(lifecycle_features(cut(BANK, day), as_of=day), as_of=day)
    tables = dict(BANK)
    if extra:
        ids = BANK["customers"]["customer_id"]
        who = [ids[i] for i, _, _ in extra]
        later = [day + dt.timedelta(days=k) for _, k, _ in extra]
        tables["transactions"] = pl.concat([BANK["transactions"], pl.DataFrame({
            "transaction_id": [f"TX{i}" for i in range(len(extra))], "customer_id": who,
            "timestamp": [dt.datetime.combine(d, dt.time(9)) for d in later],
            "amount": [a for *_, a in extra], "channel": ["mobile"] * len(extra),
            "product_id": ["P01"] * len(extra)}, schema=BANK["transactions"].schema)])
        tables["holdings"] = pl.concat([BANK["holdings"], pl.DataFrame({
            "account_id": [f"AX{i}" for i in range(len(extra))], "customer_id": who,
            "product_id": ["P04"] * len(extra), "opened": later, "closed": [None] * len(extra),
            "close_reason": [None] * len(extra)}, schema=BANK["holdings"].schema)])
    assert assign_stages(lifecycle_features(tables, as_of=day), as_of=day).equals(truth)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(days_back=st.integers(0, 900))
def test_customer_with_no_rows_is_a_prospect(days_back):
    day = END - dt.timedelta(days=days_back)
    ghost = BANK["customers"].head(1).with_columns(
        pl.lit("GHOST").alias("customer_id"), pl.lit(day - dt.timedelta(days=10)).alias("first_seen"))
    tables = {**BANK, "customers": pl.concat([BANK["customers"], ghost])}
    stages = assign_stages(lifecycle_features(tables, as_of=day), as_of=day)
    # prospect exactly when the customer has no holding and no transaction up to `day`
    active = pl.concat([
        BANK["holdings"].filter(pl.col("opened") <= day).select("customer_id"),
        BANK["transactions"].filter(pl.col("timestamp").cast(pl.Date) <= day).select("customer_id"),
    ]).unique()
    expected = stages.select("customer_id").join(
        active.with_columns(pl.lit(True).alias("has_rows")), on="customer_id", how="left")
    got = stages.join(expected, on="customer_id")
    assert ((got["stage"] == "prospect") == got["has_rows"].is_null()).all()
    assert got.filter(pl.col("customer_id") == "GHOST")["stage"].item() == "prospect"
    # the same for a transactions-only retailer
    tx_only = {"customers": tables["customers"].filter(pl.col("first_seen") <= day),
               "transactions": BANK["transactions"]}
    st2 = assign_stages(lifecycle_features(tx_only, as_of=day), as_of=day, preset="retailer")
    assert st2.filter(pl.col("customer_id") == "GHOST")["stage"].item() == "prospect"


def test_sample_bank_is_plausible():
    feats = lifecycle_features(BANK, as_of=END)
    out = assign_stages(feats, as_of=END).join(TRUTH, on="customer_id")
    share = dict(out.group_by("stage").len().with_columns(pl.col("len") / out.height).rows())
    assert set(share) >= {"prospect", "onboarding", "growth", "mature", "churned", "dormant"}
    # the latent states the generator planted are recovered where they are observable
    agree = lambda latent, stage: out.filter(pl.col("latent_state") == latent)[
        "stage"].eq(stage).mean()
    assert agree("prospect", "prospect") == 1.0
    assert agree("onboarding", "onboarding") > 0.9
    assert agree("churned", "churned") > 0.9
    assert agree("dormant", "dormant") > 0.8
    assert agree("mature", "mature") > 0.7
    # every churned stage has all products closed
    closed = feats.filter(pl.col("all_products_closed"))["customer_id"].sort()
    assert out.filter(pl.col("stage") == "churned")["customer_id"].sort().equals(closed)


def test_previous_stage_drives_reactivation():
    feats = lifecycle_features(BANK, as_of=END)
    active = feats.filter(pl.col("txn_count_30d") > 0, ~pl.col("all_products_closed"))
    who = active["customer_id"][:5]
    previous = pl.DataFrame({"customer_id": who, "stage": ["dormant"] * 5})
    out = assign_stages(feats, as_of=END, previous=previous)
    assert out.filter(pl.col("customer_id").is_in(who.implode()))["stage"].unique().to_list() == \
        ["reactivated"]


def test_accepts_every_input_type(as_input):
    feats = lifecycle_features(BANK, as_of=END)
    ref = assign_stages(feats, as_of=END)
    out = assign_stages(as_input(feats), as_of=END, output="pandas")
    assert pl.from_pandas(out.reset_index()).equals(ref)  # pandas output: indexed by customer


def test_duplicate_or_missing_ids():
    feats = lifecycle_features(BANK, as_of=END)
    with pytest.raises(SchemaError, match="not unique.*e.g."):
        assign_stages(pl.concat([feats, feats.head(2)]), as_of=END)
    prev = assign_stages(feats, as_of=END)
    with pytest.raises(SchemaError, match="not unique in 'previous'.*e.g. "
                                          + prev["customer_id"][0]):
        assign_stages(feats, as_of=END, previous=pl.concat([prev, prev.head(1)]))
    with pytest.raises(SchemaError, match="no 'customer_id'"):
        assign_stages(feats.drop("customer_id"), as_of=END)


def _gaps_by_definition(rows, as_of, window):
    """The longest gap between consecutive distinct days whose later day is in the window."""
    start = as_of - dt.timedelta(days=window)
    out = {}
    for cust in {c for c, _ in rows}:
        days = sorted({d for c, d in rows if c == cust and d <= as_of})
        if not days:
            continue
        gaps = [(b - a).days for a, b in zip(days, days[1:]) if b > start]
        out[cust] = max(gaps) if gaps else None
    return out


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abcde"), st.integers(0, 120)), max_size=40),
       st.integers(0, 130), st.integers(1, 40))
def test_recent_gap_feature_follows_its_definition(events, as_of_day, window):
    # only the window's days are sorted: the gap into the window comes from the last
    # day before it, and customers whose every day is later than as_of are left out
    base = dt.date(2024, 1, 1)
    rows = [(c, base + dt.timedelta(days=d)) for c, d in events]
    as_of = base + dt.timedelta(days=as_of_day)
    tx = pl.DataFrame({"customer_id": [c for c, _ in rows],
                       "timestamp": [dt.datetime.combine(d, dt.time(h % 24))
                                     for h, (_, d) in enumerate(rows)]},
                      schema={"customer_id": pl.String, "timestamp": pl.Datetime("us")})
    out = recent_gap_feature(tx, as_of=as_of, window_days=window)
    assert out["customer_id"].to_list() == sorted(out["customer_id"].to_list())
    assert dict(out.iter_rows()) == _gaps_by_definition(rows, as_of, window)


def test_recent_gap_feature_by_hand():
    tx = pl.DataFrame({"customer_id": ["a"] * 4 + ["b"] * 2,
                       "timestamp": [dt.datetime(2024, 1, 1), dt.datetime(2024, 12, 10),
                                     dt.datetime(2024, 12, 10, 15), dt.datetime(2024, 12, 20),
                                     dt.datetime(2024, 12, 1), dt.datetime(2025, 2, 1)]})
    out = recent_gap_feature(tx, as_of="2024-12-31").sort("customer_id")
    # a: gaps ending in the window are 344 (Jan 1 -> Dec 10) and 10; b: one day only
    assert out["longest_gap_30d_days"].to_list() == [344, None]
    out = recent_gap_feature(tx, as_of="2025-02-01", window_days=5)
    assert out.sort("customer_id")["longest_gap_30d_days"].to_list() == [None, 62]
