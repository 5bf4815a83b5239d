"""Books, scorecards, handover sheets and plots on the sample bank and by hand."""

from __future__ import annotations

import datetime as dt

import matplotlib
import polars as pl
import pytest

from crmkit.assign import (
    RMAssigner,
    handover_sheets,
    plot_books,
    plot_call_reasons,
    plot_scorecards,
    rm_books,
    rm_scorecards,
)

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def bank():
    from crmkit.datasets import make_bank
    from crmkit.features import build_features
    from crmkit.value import assign_tiers
    b = make_bank(2000, seed=5)
    feats = build_features(b, as_of="2025-12-31")
    tiers = assign_tiers(feats, keep=["branch_id"])
    cust = feats.join(tiers.select("customer_id", "tier"), on="customer_id")
    return b, cust


def test_books_follow_the_preset(bank):
    b, cust = bank
    model = RMAssigner().fit(cust, b["managers"], b["assignments"])
    books = rm_books(model.assignment_, cust, b["managers"])
    lv = dict(b["managers"].select("manager_id", "level").rows())
    for r in books.iter_rows(named=True):
        assert r["n_customers"] <= r["capacity"]
        if lv[r["manager_id"]] == "branch":
            assert r["n_Diamond"] == r["n_Platinum"] == 0
        if lv[r["manager_id"]] == "private_banking":
            assert r["n_Gold"] == r["n_Platinum"] == 0
    assert books["n_customers"].sum() == model.assignment_.height
    assert books["assets"].sum() == pytest.approx(
        cust.join(model.assignment_, on="customer_id")["financial_assets"].sum())
    branch = rm_books(model.assignment_, cust, b["managers"], by="branch")
    assert branch["n_customers"].sum() == books["n_customers"].sum()
    assert plot_books(books).get_ylabel() == "customers in book"


def test_scorecards_rank_within_level(bank):
    b, cust = bank
    model = RMAssigner().fit(cust, b["managers"], b["assignments"])
    sc = rm_scorecards(model.assignment_, cust, b["managers"], complaints=b["complaints"], as_of="2025-12-31")
    assert {"asset_growth", "product_coverage", "complaint_share", "data_completeness", "score", "rank"} <= set(sc.columns)
    for lvl, part in sc.group_by("level"):
        assert sorted(part["rank"].to_list())[0] == 1
        assert (part["n_peers"] == part.height).all()
        best = part.sort("rank").row(0, named=True)
        assert best["score"] == part["score"].max()
    assert sc["complaint_share"].is_between(0, 1).all()
    assert plot_scorecards(sc).get_ylabel() == "score"


def test_scorecard_metrics_by_hand():
    asg = pl.DataFrame({"customer_id": ["a", "b", "c"], "manager_id": ["M1", "M1", "M2"]})
    cust = pl.DataFrame({"customer_id": ["a", "b", "c"], "tier": ["Diamond", "Gold", "Diamond"],
                         "financial_assets": [150.0, 50.0, 90.0],
                         "financial_assets_prior_90d": [100.0, 100.0, 100.0],
                         "n_categories_open": [4, 0, 2], "birth_year": [1970, None, None],
                         "risk_level": [3, None, 2]})
    comp = pl.DataFrame({"customer_id": ["a", "c"], "date": [dt.date(2025, 1, 1), dt.date(2023, 1, 1)],
                         "kind": ["fees", "fees"]})
    mgr = pl.DataFrame({"manager_id": ["M1", "M2"], "branch_id": ["B", "B"], "level": ["branch", "branch"],
                        "capacity": [5, 5]})
    sc = rm_scorecards(asg, cust, mgr, complaints=comp, as_of="2025-06-30")
    r = {x["manager_id"]: x for x in sc.iter_rows(named=True)}
    assert r["M1"]["asset_growth"] == 0.0 and r["M2"]["asset_growth"] == pytest.approx(-0.1)
    assert r["M1"]["product_coverage"] == 0.25 and r["M2"]["product_coverage"] == 0.25
    assert r["M1"]["complaint_share"] == 0.5 and r["M2"]["complaint_share"] == 0.0  # c's is too old
    assert r["M1"]["data_completeness"] == 1.0 and r["M2"]["data_completeness"] == 0.5
    assert r["M1"]["pct_asset_growth"] == 1.0 and r["M2"]["pct_complaint_share"] == 1.0


def test_handover_sheet_for_a_leaver(bank):
    b, cust = bank
    first = RMAssigner().fit(cust, b["managers"], b["assignments"])
    leaver = first.workload_.filter(pl.col("level") == "wealth").sort("n_customers", descending=True)["manager_id"][0]
    mgr = b["managers"].with_columns((pl.col("active") & (pl.col("manager_id") != leaver)).alias("active"))
    second = RMAssigner().fit(cust, mgr, first.assignment_)
    sheet = handover_sheets(second.moves_, cust, contacts=b["contacts"], complaints=b["complaints"],
                            as_of="2025-12-31", managers=mgr)
    booked = set(first.assignment_.filter(pl.col("manager_id") == leaver)["customer_id"])
    assert set(sheet["customer_id"]) == booked
    assert (sheet["from_manager_id"] == leaver).all()
    assert {"tier", "financial_assets", "open_issues", "last_contacts", "to_level"} <= set(sheet.columns)
    assert sheet["open_issues"].min() >= 0


def test_plot_call_reasons_takes_an_axis():
    import matplotlib.pyplot as plt
    _, ax = plt.subplots()
    c = pl.DataFrame({"tier": ["Gold", "Diamond"], "triggers": [["cadence_due"], ["cadence_due", "high_risk"]]})
    assert plot_call_reasons(c, ax=ax) is ax
    plt.close("all")
