"""RFM segments, tiers, hidden VIPs, movement and value measures give the same answer
for every accepted input type (polars, lazy polars, pandas, pyarrow), and pandas
output on request."""

import polars as pl

from crmkit.datasets import make_bank
from crmkit.features import build_features
from crmkit.value import (
    assign_tiers,
    compare_value_measures,
    hidden_vips,
    next_period_revenue,
    rfm_segments,
    tier_movement,
    tier_movement_summary,
)

BANK = make_bank(600, seed=4, years=2)
FEATURES = build_features(BANK, as_of="2025-06-30")
LATER = build_features(BANK, as_of="2025-12-31")


def _same(result, expected):
    result = result if isinstance(result, pl.DataFrame) else pl.from_pandas(result)
    assert result.equals(expected)


def test_value_functions_accept_every_input_type(as_input):
    expected = {
        "segments": rfm_segments(FEATURES),
        "tiers": assign_tiers(FEATURES),
        "vips": hidden_vips(FEATURES, n=5),
        "revenue": next_period_revenue(BANK["transactions"], as_of="2025-06-30", horizon_days=180),
    }
    _same(rfm_segments(as_input(FEATURES)), expected["segments"])
    _same(assign_tiers(as_input(FEATURES)), expected["tiers"])
    _same(hidden_vips(as_input(FEATURES), n=5), expected["vips"])
    _same(next_period_revenue(as_input(BANK["transactions"]), as_of="2025-06-30",
                              horizon_days=180), expected["revenue"])
    before, after = expected["tiers"], assign_tiers(LATER)
    movement = tier_movement(before, after)
    _same(tier_movement(as_input(before), as_input(after)), movement)
    _same(tier_movement_summary(as_input(movement)), tier_movement_summary(movement))
    measures = compare_value_measures(FEATURES, expected["revenue"],
                                      candidates=["financial_assets", "txn_amount_365d"])
    _same(compare_value_measures(as_input(FEATURES), as_input(expected["revenue"]),
                                 candidates=["financial_assets", "txn_amount_365d"]), measures)


def test_pandas_output_on_request():
    assert type(assign_tiers(FEATURES, output="pandas")).__module__.startswith("pandas")
    assert type(rfm_segments(FEATURES, output="pandas")).__module__.startswith("pandas")
