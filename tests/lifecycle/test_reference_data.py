"""The stage engine and churn labels on real data: CDNOW (non-contractual) and IBM Telco
(contractual snapshot). See docs/lifecycle.md for the mapping and the figures."""

import datetime as dt

import polars as pl
import pytest

from crmkit.datasets import load_cdnow, load_telco, reference_data_dir
from crmkit.lifecycle import assign_stages, label_churn, lifecycle_features

if reference_data_dir(required=False) is None:
    pytest.skip("reference data folder ../shared/data not found; set CRMKIT_REFERENCE_DATA",
                allow_module_level=True)

CDNOW_END = dt.date(1998, 6, 30)
TELCO_AS_OF = dt.date(2018, 1, 31)  # Telco has no dates; any month end serves
ADDONS = ("OnlineSecurity", "OnlineBackup", "DeviceProtection", "TechSupport", "StreamingTV",
          "StreamingMovies")


def telco_features(telco, *, as_of, use_churn_flag):
    """Features for the retail-bank preset from the Telco snapshot.

    Services are the products; the first product date is ``tenure`` calendar months
    before ``as_of``; paying this month's bill is the activity; the spend trend
    (this month's charge against the customer's lifetime average,
    ``TotalCharges / tenure``) stands in for the asset trend. Only with
    ``use_churn_flag`` are churners' services closed.
    """
    n_services = ((pl.col("PhoneService") == "Yes").cast(pl.Int64)
                  + (pl.col("InternetService") != "No").cast(pl.Int64)
                  + pl.sum_horizontal([(pl.col(c) == "Yes").cast(pl.Int64) for c in ADDONS]))
    first = pl.lit(as_of).dt.offset_by(pl.format("-{}mo", pl.col("tenure")))
    days_first = (pl.lit(as_of) - first).dt.total_days()
    avg, now = pl.col("TotalCharges") / pl.col("tenure"), pl.col("MonthlyCharges")
    closed = pl.col("churned") if use_churn_flag else pl.lit(False)
    return telco.select(
        pl.col("customerID").alias("customer_id"),
        pl.lit(True).alias("has_transacted"),
        n_services.alias("n_products_ever"),
        pl.when(closed).then(0).otherwise(n_services).alias("n_products_open"),
        closed.alias("all_products_closed"),
        days_first.alias("days_since_first_product"),
        days_first.alias("days_since_first_txn"),
        pl.lit(0).alias("days_since_last_txn"),
        pl.lit(1).alias("txn_count_30d"),
        pl.lit(0).alias("txn_count_prior_90d"),
        pl.lit(0.0).alias("txn_count_trend_90d"),
        pl.when(pl.col("tenure") > 0).then((now - avg) / (now.abs() + avg.abs()))
        .alias("financial_assets_trend_90d"),
        pl.lit(None, pl.Int64).alias("longest_gap_30d_days"),
    )


@pytest.fixture(scope="module")
def cdnow():
    return load_cdnow("master")


def test_cdnow_retailer_preset(cdnow):
    feats = lifecycle_features({"transactions": cdnow}, as_of=CDNOW_END)
    stages = assign_stages(feats, as_of=CDNOW_END, preset="retailer")
    assert stages.height == 23_570
    # independent count from the raw file: no purchase in the 365 days up to 1998-06-30
    last = cdnow.group_by("customer_id").agg(pl.col("timestamp").max().cast(pl.Date))
    inactive = set(last.filter(pl.col("timestamp") <= CDNOW_END - dt.timedelta(days=365))[
        "customer_id"])
    assert len(inactive) == 15_238
    churned = set(stages.filter(pl.col("stage") == "churned")["customer_id"])
    assert churned == inactive
    # the churn definition and the stage engine agree customer by customer
    labels = label_churn({"transactions": cdnow}, as_of=CDNOW_END, definition="retailer")
    assert set(labels.filter(pl.col("churned"))["customer_id"]) == churned
    assert set(labels.filter(pl.col("churned"))["reason"]) == {"inactivity"}
    # everyone bought in Q1 1997, so nobody is a prospect or onboarding 18 months later
    assert not set(stages["stage"]) & {"prospect", "onboarding"}
    dormant = set(stages.filter(pl.col("stage") == "dormant")["customer_id"])
    recent = last.filter(pl.col("timestamp") > CDNOW_END - dt.timedelta(days=180))
    assert not dormant & set(recent["customer_id"])


def test_telco_contractual_preset():
    telco = load_telco()
    # closure mapping: churners' services closed. Agreement with the flag is by
    # construction; what this checks is that closure wins over every other rule.
    stages = assign_stages(telco_features(telco, as_of=TELCO_AS_OF, use_churn_flag=True),
                           as_of=TELCO_AS_OF, preset="retail_bank")
    joined = stages.join(telco.select(pl.col("customerID").alias("customer_id"), "churned",
                                      "tenure"), on="customer_id")
    confusion = joined.group_by(pl.col("stage") == "churned", "churned").len()
    assert confusion.height == 2 and joined.filter(pl.col("churned"))["stage"].eq(
        "churned").all()
    assert (joined["stage"] == "churned").sum() == 1869
    assert joined.filter(pl.col("churned") & (pl.col("tenure") <= 1)).height > 0  # new + churned
    # blind mapping: the flag unused; stages must still separate churn risk
    blind = assign_stages(telco_features(telco, as_of=TELCO_AS_OF, use_churn_flag=False),
                          as_of=TELCO_AS_OF, preset="retail_bank").join(
        telco.select(pl.col("customerID").alias("customer_id"), "churned"), on="customer_id")
    rate = dict(blind.group_by("stage").agg(pl.col("churned").mean()).rows())
    assert "churned" not in rate
    assert rate["onboarding"] > 0.5 > 0.2 > rate["mature"]
    # the churn definition on a one-account-per-customer holdings table
    holdings = telco.select(
        pl.col("customerID").alias("account_id"), pl.col("customerID").alias("customer_id"),
        pl.lit(dt.date(2010, 1, 1)).alias("opened"),
        pl.when(pl.col("churned")).then(pl.lit(TELCO_AS_OF)).alias("closed"))
    labels = label_churn({"holdings": holdings}, as_of=TELCO_AS_OF, definition="retail_bank")
    assert labels["churned"].sum() == 1869
    assert set(labels.filter(pl.col("churned"))["reason"]) == {"unknown"}
