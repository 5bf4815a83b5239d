import datetime as dt

import polars as pl
import pytest

from crmkit.exceptions import SchemaError
from crmkit.features import calibration_holdout_split, rfm_summary, rfm_unit

TX = pl.DataFrame({
    "customer_id": ["a", "a", "a", "a", "b", "c"],
    "timestamp": [dt.datetime(2024, 1, 1, 9), dt.datetime(2024, 1, 1, 18), dt.datetime(2024, 1, 3),
                  dt.datetime(2024, 2, 20), dt.datetime(2024, 1, 10), dt.datetime(2024, 3, 5)],
    "amount": [10.0, 5.0, 20.0, 30.0, 7.0, 1.0],
})


def test_definitions_in_days(as_input):
    out = rfm_summary(as_input(TX), observation_end="2024-02-29", unit="days").sort("customer_id")
    a = out.row(0, named=True)
    # a: distinct days 1/1, 1/3, 2/20 -> 2 repeats; same-day purchases summed (15.0 first)
    assert a["frequency"] == 2
    assert a["recency_days"] == (dt.date(2024, 2, 20) - dt.date(2024, 1, 1)).days
    assert a["T_days"] == (dt.date(2024, 2, 29) - dt.date(2024, 1, 1)).days
    assert a["monetary_value"] == pytest.approx((20.0 + 30.0) / 2)
    # c bought after observation_end: absent
    assert out["customer_id"].to_list() == ["a", "b"]


def test_weeks_period_collapses_same_week():
    out = rfm_summary(TX, observation_end="2024-02-29", unit="weeks", period="weeks").sort("customer_id")
    # 1/1 and 1/3 2024 are in the same ISO week
    assert out["frequency"].to_list() == [1, 0]


def test_calendar_months_and_mean_months():
    cal = rfm_summary(TX, observation_end="2024-03-31", unit="calendar_months")
    a = cal.filter(pl.col("customer_id") == "a").row(0, named=True)
    assert a["frequency"] == 1 and a["recency_calendar_months"] == 1.0
    assert a["T_calendar_months"] == 2.0
    mean = rfm_summary(TX, observation_end="2024-03-31", unit="mean_months")
    assert "T_mean_months" in mean.columns
    with pytest.raises(ValueError, match="calendar_months"):
        rfm_summary(TX, unit="calendar_months", period="days")


def test_missing_column_and_unit_detection():
    with pytest.raises(SchemaError, match="no column 'when'"):
        rfm_summary(TX, time_col="when")
    assert rfm_unit(rfm_summary(TX, unit="days")) == "days"
    with pytest.raises(SchemaError):
        rfm_unit(["frequency", "recency", "T"])


def test_pandas_output_and_no_value_col():
    out = rfm_summary(TX, value_col=None, output="pandas")
    assert out.index.name == "customer_id"  # indexed by customer, as lifetimes' frames
    assert list(out.columns) == ["frequency", "recency_weeks", "T_weeks"]


def test_calibration_holdout_split_counts_holdout_periods():
    out = calibration_holdout_split(TX, calibration_end="2024-01-31", observation_end="2024-03-31",
                                    unit="days").sort("customer_id")
    assert out["customer_id"].to_list() == ["a", "b"]  # c first bought in the holdout
    assert out["frequency_cal"].to_list() == [1, 0]
    assert out["frequency_holdout"].to_list() == [1, 0]
    assert out["monetary_value_holdout"].to_list() == [30.0, 0.0]
    assert out["duration_holdout_days"].to_list() == [60.0, 60.0]
    with pytest.raises(ValueError, match="after calibration_end"):
        calibration_holdout_split(TX, calibration_end="2024-03-31", observation_end="2024-01-01")
