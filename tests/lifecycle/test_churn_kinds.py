"""Silent and combined churn definitions of label_churn."""

import datetime as dt

import polars as pl

from crmkit.lifecycle import ChurnDefinition, label_churn


def _tables():
    h = pl.DataFrame({
        "account_id": ["A1", "A2", "A3", "A4"], "customer_id": ["quiet", "closer", "both", "live"],
        "opened": [dt.date(2023, 1, 1)] * 4,
        "closed": [None, dt.date(2024, 5, 1), dt.date(2024, 11, 1), None],
        "close_reason": [None, "fees", "moved", None]})
    tx = pl.DataFrame({"customer_id": ["quiet", "closer", "both", "live"],
                       "timestamp": [dt.datetime(2024, 1, 5), dt.datetime(2024, 4, 20),
                                     dt.datetime(2024, 2, 1), dt.datetime(2024, 12, 1)]})
    return {"holdings": h, "transactions": tx}


def test_combined_says_which_cause():
    out = label_churn(_tables(), as_of="2024-12-31",
                      definition={"kind": "combined", "inactivity_days": 180})
    rows = {r["customer_id"]: r for r in out.to_dicts()}
    # silent for 180 days, products open: dated when the silence began
    assert (rows["quiet"]["cause"], rows["quiet"]["churn_date"]) == ("silence", dt.date(2024, 1, 5))
    assert rows["quiet"]["reason"] == "inactivity"
    # closed everything 11 days after the last transaction: a closure, with its reason
    assert (rows["closer"]["cause"], rows["closer"]["reason"]) == ("closure", "price")
    # silent from February, closed in November (after 180 silent days): the silence
    assert (rows["both"]["cause"], rows["both"]["churn_date"]) == ("silence", dt.date(2024, 2, 1))
    assert not rows["live"]["churned"] and rows["live"]["cause"] is None


def test_silent_kind_ignores_closures_and_counts_openings_as_activity():
    t = _tables()
    out = label_churn(t, as_of="2024-12-31", definition={"kind": "silent", "inactivity_days": 180})
    assert dict(zip(out["customer_id"], out["churned"])) == {
        "both": True, "closer": True, "live": False, "quiet": True}
    # an account opened recently is activity: not silent
    t["holdings"] = pl.concat([t["holdings"], pl.DataFrame({
        "account_id": ["A5"], "customer_id": ["quiet"], "opened": [dt.date(2024, 10, 1)],
        "closed": [None], "close_reason": [None]}, schema=t["holdings"].schema)])
    out = label_churn(t, as_of="2024-12-31", definition={"kind": "silent", "inactivity_days": 180})
    assert not out.filter(pl.col("customer_id") == "quiet")["churned"].item()


def test_bank_presets():
    from crmkit.lifecycle._config import validate_churn_definition
    d = validate_churn_definition("retail_bank_combined")
    assert isinstance(d, ChurnDefinition) and (d.kind, d.inactivity_days) == ("combined", 180)
    assert validate_churn_definition("retail_bank").kind == "contractual"
