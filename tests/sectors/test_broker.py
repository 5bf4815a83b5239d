"""Securities-broker rules on small hand-made customers, its preset and its run."""

from __future__ import annotations

import datetime as dt
import math
import shutil
from pathlib import Path

import polars as pl
import pytest

from crmkit.sectors import (broker_measures, data_completeness, entitlements, grade_edges,
                            grade_values, persona, preset_path, upgrade_list)

D = dt.date
AS_OF = D(2025, 12, 31)
ROOT = Path(__file__).resolve().parents[2]


def _book():
    customers = pl.DataFrame({"customer_id": ["a", "b", "c"]})
    products = pl.DataFrame({"product_id": ["BRK", "FND", "PTS"],
                             "category": ["brokerage", "fund", "loyalty"],
                             "risk_rating": [4, 2, 1]})
    holdings = pl.DataFrame({
        "account_id": ["1", "2", "3", "4", "5"], "customer_id": ["a", "a", "a", "b", "c"],
        "product_id": ["BRK", "FND", "PTS", "BRK", "BRK"],
        "opened": [D(2024, 1, 1)] * 4 + [D(2024, 1, 1)],
        "closed": [None, None, None, None, D(2025, 6, 1)]},
        schema_overrides={"closed": pl.Date})
    balances = pl.DataFrame({
        "account_id": ["1", "1", "2", "3", "4", "4", "5"],
        "date": [D(2025, 11, 30), D(2025, 12, 31), D(2025, 12, 31), D(2025, 12, 31),
                 D(2025, 9, 30), D(2025, 12, 31), D(2025, 5, 31)],
        "balance": [1.0, 60000.0, 40000.0, 900.0, 5.0, 20000.0, 70000.0]})
    tx = pl.DataFrame({
        "customer_id": ["a", "a", "b", "b"],
        "timestamp": [dt.datetime(2025, 3, 1), dt.datetime(2024, 12, 31), dt.datetime(2025, 12, 1),
                      dt.datetime(2026, 1, 2)],
        "amount": [50000.0, 99999.0, -80000.0, 1.0], "commission": [15.0, 30.0, 24.0, 9.0]})
    return customers, holdings, balances, tx, products


def test_measures_by_yardstick():
    out = broker_measures(*_book(), as_of=AS_OF)
    # a: the latest balances (not November's), points apart from assets; the 2024 trade is
    # outside the 365-day window. b: a sale counts by its size; the 2026 trade is future.
    # c: the account closed in June: no assets
    assert out.select("customer_id", "commission", "assets", "loyalty_points", "trades").rows() \
        == [("a", 15.0, 100000.0, 900.0, 1), ("b", 24.0, 20000.0, 0.0, 1),
            ("c", 0.0, 0.0, 0.0, 0)]
    assert out["turnover_weighted_assets"].to_list() == [
        round(100000 * math.log1p(0.5), 2), round(20000 * math.log1p(4.0), 2), 0.0]


def test_grade_edges_from_shares_and_distance_to_next():
    values = [0.0] * 5 + [10.0, 20.0, 30.0, 40.0, 100.0]
    edges = grade_edges(values, shares={"diamond": 0.1, "gold": 0.3, "standard": 1.0})
    assert edges == {"diamond": 100.0, "gold": 30.0, "standard": 0.0}
    # with most customers at zero, a grade never starts at zero
    assert grade_edges([0.0] * 9 + [5.0], shares={"gold": 0.5, "standard": 1.0})["gold"] == 5.0
    f = pl.DataFrame({"customer_id": list("xyz"), "v": [100.0, 29.0, 0.0]})
    out = grade_values(f, col="v", edges=edges)
    assert out.select("grade", "next_grade", "to_next_grade").rows() == [
        ("diamond", None, None), ("standard", "gold", 1.0), ("standard", "gold", 30.0)]
    with pytest.raises(ValueError, match="the lowest grade to 1"):
        grade_edges(values, shares={"gold": 0.3})


def test_entitlements_by_grade_and_club_basic_for_non_core():
    g = pl.DataFrame({"customer_id": ["a", "b", "c", "d"],
                      "grade": ["gold", "standard", "standard", "gold"],
                      "club": [None, "star", None, "star"]})
    out = entitlements(g, by_grade={"gold": ["adviser", "research"]},
                       by_club={"star": ["events", "research"]}, core_grades=["gold"],
                       basic=["self-service"])
    assert out.select("customer_id", "core", "entitlements").rows() == [
        ("a", True, "adviser; research"), ("b", True, "events; research"),
        ("c", False, "self-service"), ("d", True, "adviser; research; events")]
    with pytest.raises(ValueError, match="Got none for star"):
        entitlements(g, by_grade={}, by_club={}, core_grades=["gold"], basic=[])


def test_persona_style_and_risk_basis():
    m = pl.DataFrame({"customer_id": ["a", "b", "c", "d"], "trades": [10, 30, 5, 0],
                      "turnover": [5.0, 1.0, 0.2, 0.0]})
    c = pl.DataFrame({"customer_id": ["a", "b", "c", "d"], "risk_level": [None, 3, None, 1]},
                     schema_overrides={"risk_level": pl.Int64})
    cust, hold, bal, _, prods = _book()
    hold = hold.with_columns(pl.when(pl.col("customer_id") == "c").then(pl.lit("c"))
                             .otherwise(pl.col("customer_id")).alias("customer_id"))
    out = persona(m, c, hold, bal, prods, as_of=AS_OF)
    # a: no risk level; 60% of assets in the brokerage account (rated 4): aggressive;
    # c: its only account is closed: unknown
    assert out.select("trading_style", "risk_appetite").rows() == [
        ("active_trader", "aggressive"), ("regular", "balanced"), ("buy_and_hold", None),
        ("inactive", "conservative")]
    assert "no risk assessment; 60% of assets in products rated 4-5" in out["persona"][0]


def test_data_completeness_counts_fields_and_patterns():
    c = pl.DataFrame({"customer_id": ["a", "b"], "p_1": ["x", None], "p_2": [" ", "y"],
                      "phone": [None, "1"]})
    out = data_completeness(c, fields=["p_*", "phone"])
    assert out.select("filled", "completeness", "missing").rows() == [
        (1, 0.3333, "p_2, phone"), (2, 0.6667, "p_1")]
    with pytest.raises(ValueError, match="matches no column"):
        data_completeness(c, fields=["email"])


def test_upgrade_list_quadrant_and_near_next_grade():
    f = pl.DataFrame({"customer_id": ["rich", "busy", "near", "both"],
                      "assets": [1e6, 1e6, 10.0, 2e6], "commission": [50.0, 5000.0, 0.0, 100.0],
                      "grade": ["standard", "gold", "standard", "standard"],
                      "next_grade": ["gold", None, "gold", "gold"],
                      "next_grade_value": [300.0, None, 300.0, 300.0],
                      "to_next_grade": [250.0, None, 30.0, 200.0]})
    out = upgrade_list(f, asset_edge=5e5, commission_edge=100.0, near_share=0.1)
    # 'both' pays exactly the commission edge: low contribution (inclusive)
    assert out.select("customer_id", "upgrade_reason").rows() == [
        ("both", "asset_rich_low_commission"), ("near", "near_next_grade"),
        ("rich", "asset_rich_low_commission")]


def test_preset_file_equals_the_builtin_preset():
    from crmkit._config import parse_config
    from crmkit.pipeline.steps.broker import BrokerConfig

    from_file = parse_config(BrokerConfig, {"preset": str(preset_path("broker"))}, "broker")
    assert from_file.model_dump(exclude={"preset"}) == BrokerConfig().model_dump(exclude={"preset"})


def test_pipeline_config_runs_on_the_sample(tmp_path):
    from crmkit.pipeline import run_pipeline

    shutil.copytree(ROOT / "data" / "broker", tmp_path / "data" / "broker")
    (tmp_path / "pipelines").mkdir()
    shutil.copy(ROOT / "pipelines" / "broker.toml", tmp_path / "pipelines")
    result = run_pipeline(tmp_path / "pipelines" / "broker.toml", as_of="2025-12-31")
    out = tmp_path / "runs" / "broker" / "2025-12-31" / "broker"
    comparison = pl.read_parquet(out / "measure_comparison.parquet")
    assert sorted(comparison["measure"]) == sorted(
        ["assets", "commission", "loyalty_points", "turnover_weighted_assets"])
    chosen = comparison.filter(pl.col("grading"))["measure"].to_list()
    assert chosen == [comparison["measure"][0]]  # auto: the best by Spearman
    grades = pl.read_parquet(out / "value_grades.parquet")
    assert (grades["value_measure"] == chosen[0]).all()
    assert grades["reason"].null_count() == 0 and grades["persona"].null_count() == 0
    upgrades = pl.read_parquet(out / "upgrades.parquet")
    assert upgrades.height > 0 and upgrades["reason"].null_count() == 0
    service = pl.read_parquet(out / "service.parquet")
    basic = service.filter(~pl.col("core"))
    assert (basic["service_level"] == "basic").all() and basic["completeness"].is_null().all()
    advisers = pl.read_parquet(out / "adviser_completeness.parquet")
    assert advisers["core_customers"].sum() == service["core"].sum()
    assert result.manifest["steps"]["broker"]["grade_measure"] == chosen[0]


def test_a_book_without_value_has_no_upper_grade_edges():
    edges = grade_edges([0.0, 0.0], shares={"gold": 0.2, "standard": 1.0})
    assert edges == {"gold": None, "standard": 0.0}
    out = grade_values(pl.DataFrame({"customer_id": ["a"], "v": [0.0]}), col="v", edges=edges)
    assert out.select("grade", "next_grade", "to_next_grade").row(0) == ("standard", None, None)
