"""rfm_summary reproduces the published CDNOW calibration summary.

Fader, Hardie & Lee (2005), "Counting your customers the easy way", Marketing
Science 24(2): the 1/10 CDNOW sample, 39-week calibration period ending 1997-09-30,
recency and T in weeks. The file cdnow_customers_summary.csv is that summary.
"""

import polars as pl

from crmkit.datasets import load_cdnow, load_cdnow_summary
from crmkit.features import rfm_summary


def test_rfm_summary_reproduces_cdnow_weeks(reference_dir):
    mine = rfm_summary(load_cdnow("sample"), observation_end="1997-09-30", unit="weeks")
    ref = load_cdnow_summary()
    assert mine.height == ref.height == 2357
    both = ref.join(mine, on="customer_id", how="full", suffix="_mine", coalesce=True)
    assert both.height == 2357
    assert (both["frequency"] == both["frequency_mine"]).all()
    assert (both["recency_weeks"] - both["recency_weeks_mine"]).abs().max() <= 0.01
    assert (both["T_weeks"] - both["T_weeks_mine"]).abs().max() <= 0.01


def test_monetary_value_is_mean_repeat_spend(reference_dir):
    """zbar of the 946 repeat buyers (Fader & Hardie's Gamma-Gamma note) to the cent."""
    mine = rfm_summary(load_cdnow("sample"), observation_end="1997-09-30", unit="weeks")
    ref = load_cdnow_summary(with_spend=True).filter(pl.col("frequency") > 0)
    both = ref.join(mine, on="customer_id", suffix="_mine")
    assert both.height == 946
    assert (both["monetary_value"] - both["monetary_value_mine"]).abs().max() <= 0.0051
