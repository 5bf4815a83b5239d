"""The contact policy: no action names a channel the customer opted out of, nothing is dropped
silently (issue 9: 143 of 1,833 lifecycle actions on a 1,500-customer bank used an
opted-out channel)."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmkit.contact_policy import (CHANNELS, ContactPolicy, apply_contact_policy,
                                   canonical_channel)
from crmkit.datasets import make_bank
from crmkit.exceptions import ConfigError
from crmkit.lifecycle import (STANDARD_STAGES, assign_stages, lifecycle_features,
                              playbook_actions)
from crmkit.schema import validate

AS_OF = "2025-12-31"


def _opted_out(actions: pl.DataFrame, customers: pl.DataFrame) -> pl.DataFrame:
    """Actions whose channel the customer opted out of, or to a do-not-contact customer."""
    flags = customers.select("customer_id", "opt_out_sms", "opt_out_email", "opt_out_phone",
                             *(["do_not_contact"] if "do_not_contact" in customers.columns else []))
    joined = actions.join(flags, on="customer_id", how="left")
    bad = pl.lit(False)
    for c in ("sms", "email", "phone"):
        bad = bad | ((pl.col("channel") == c) & pl.col(f"opt_out_{c}"))
    if "do_not_contact" in flags.columns:
        bad = bad | pl.col("do_not_contact")
    return joined.filter(bad)


@pytest.fixture(scope="module")
def bank_stages():
    bank = validate(make_bank(1500, seed=0, as_of=AS_OF), as_of=AS_OF).tables
    feats = lifecycle_features(bank, as_of=AS_OF)
    return bank["customers"], assign_stages(feats, as_of=AS_OF)


def test_the_sample_bank_no_longer_contacts_opted_out_customers(bank_stages):
    customers, stages = bank_stages
    plan = playbook_actions(stages)
    before = _opted_out(plan, customers).height
    assert before > 100  # the reproduction: many planned actions use an opted-out channel
    split = playbook_actions(stages, customers=customers)
    assert _opted_out(split.allowed, customers).height == 0
    assert split.allowed.height + split.suppressed.height == plan.height
    assert split.suppressed.height == before
    summary = split.summary()
    assert summary["suppressed"] == before and sum(summary["by_reason"].values()) == before
    assert set(summary["by_reason"]) <= {"opted out of sms", "opted out of email",
                                         "opted out of phone"}
    # nothing lost: the two parts are the plan, row for row
    both = pl.concat([split.allowed, split.suppressed.drop("suppression_reason")])
    assert both.sort(plan.columns).equals(plan.sort(plan.columns))


_flag = st.booleans()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_no_action_names_an_opted_out_channel(data):
    n = data.draw(st.integers(1, 25))
    ids = [f"c{i:02d}" for i in range(n)]
    customers = pl.DataFrame({
        "customer_id": ids,
        "opt_out_sms": data.draw(st.lists(_flag, min_size=n, max_size=n)),
        "opt_out_email": data.draw(st.lists(_flag, min_size=n, max_size=n)),
        "opt_out_phone": data.draw(st.lists(_flag, min_size=n, max_size=n)),
        "do_not_contact": data.draw(st.lists(st.sampled_from([False, False, False, True]),
                                             min_size=n, max_size=n)),
    })
    stages = pl.DataFrame({
        "customer_id": ids,
        "stage": data.draw(st.lists(st.sampled_from(STANDARD_STAGES), min_size=n, max_size=n)),
        "tier": data.draw(st.lists(st.sampled_from([None, "Gold", "Platinum", "Diamond"]),
                                   min_size=n, max_size=n)),
    })
    # a random playbook over every channel name, aliases included
    names = [*CHANNELS, "call", "e-mail", "text", "letter"]
    playbook = [{"stage": s, "action": f"act{i}", "channel": data.draw(st.sampled_from(names))}
                for i, s in enumerate(data.draw(st.lists(st.sampled_from(STANDARD_STAGES),
                                                         min_size=1, max_size=12)))]
    plan = playbook_actions(stages, playbook=playbook)
    split = playbook_actions(stages, playbook=playbook, customers=customers)
    assert _opted_out(split.allowed, customers).height == 0
    assert split.allowed.height + split.suppressed.height == plan.height
    assert split.suppressed["suppression_reason"].null_count() == 0
    # every suppression is justified: nothing allowed was held back
    wrongly = split.suppressed.join(customers, on="customer_id").filter(
        ~pl.col("do_not_contact")
        & ~((pl.col("channel") == "sms") & pl.col("opt_out_sms"))
        & ~((pl.col("channel") == "email") & pl.col("opt_out_email"))
        & ~((pl.col("channel") == "phone") & pl.col("opt_out_phone")))
    assert wrongly.height == 0


def test_reasons_in_order_and_unknown_customers_kept():
    customers = pl.DataFrame({"customer_id": ["a", "b", "c"], "opt_out_sms": [True, True, False],
                              "do_not_contact": [False, True, False]})
    todo = pl.DataFrame({"customer_id": ["a", "b", "c", "zz", "c"],
                         "channel": ["SMS", "sms", "branch", "email", None]})
    split = apply_contact_policy(todo, customers)
    assert split.allowed.rows() == [("c", "branch")]
    assert split.suppressed.rows() == [
        ("a", "SMS", "opted out of sms"), ("b", "sms", "do not contact"),
        ("zz", "email", "customer not in the customers table"), ("c", None, "no channel")]


def test_unknown_channels_are_errors_not_a_way_around_opt_outs():
    todo = pl.DataFrame({"customer_id": ["a"], "channel": ["whatsap"]})
    with pytest.raises(ValueError, match="Unknown contact channel 'whatsap'"):
        apply_contact_policy(todo, pl.DataFrame({"customer_id": ["a"]}))
    with pytest.raises(ConfigError, match="Unknown contact channel 'fax'"):
        playbook_actions(pl.DataFrame({"customer_id": ["a"], "stage": ["growth"]}),
                         playbook=[{"stage": "growth", "action": "x", "channel": "fax"}])
    wa = ContactPolicy(channel_aliases={"whatsapp": "sms"})
    assert canonical_channel("WhatsApp", wa) == "sms"
    with pytest.raises(Exception, match="names unknown channel 'pigeon'"):
        ContactPolicy(channel_aliases={"bird": "pigeon"})


def test_contact_windows_and_quiet_hours_where_the_data_has_them():
    customers = pl.DataFrame({"customer_id": ["a", "b", "c"],
                              "contact_window": ["09:00-12:00", None, "20:00-02:00"]})
    at = [dt.datetime(2025, 1, 6, h, m) for h, m in ((10, 0), (13, 0), (22, 30), (7, 59),
                                                      (23, 0), (1, 0), (13, 0))]
    todo = pl.DataFrame({"customer_id": ["a", "a", "b", "b", "c", "c", "a"],
                         "channel": ["phone", "phone", "sms", "phone", "visit", "call", "email"],
                         "scheduled_at": at})
    split = apply_contact_policy(todo, customers)
    assert split.allowed["scheduled_at"].to_list() == [at[0], at[6]]
    assert split.suppressed["suppression_reason"].to_list() == [
        "outside the customer's contact window 09:00-12:00",
        "quiet hours 21:00-08:00", "quiet hours 21:00-08:00",
        "quiet hours 21:00-08:00", "quiet hours 21:00-08:00"]
    loose = apply_contact_policy(todo, customers, policy={"quiet_hours": None})
    assert loose.suppressed["suppression_reason"].to_list() == [
        "outside the customer's contact window 09:00-12:00"]
    # without scheduled times the time rules do not apply
    assert apply_contact_policy(todo.drop("scheduled_at"), customers).suppressed.height == 0


def test_contact_window_format_is_part_of_the_customers_contract():
    customers = pl.DataFrame({"customer_id": ["a", "b"], "branch_id": ["B", "B"],
                              "first_seen": [dt.date(2024, 1, 1)] * 2,
                              "contact_window": ["9-12", "09:00-12:00"]})
    res = validate({"customers": customers}, mode="quarantine")
    assert res.rejected["customers"]["_reason"].to_list() == [
        "contact_window: contact window not 'HH:MM-HH:MM'"]


def test_pandas_output():
    customers = pl.DataFrame({"customer_id": ["a"], "opt_out_email": [True]})
    split = apply_contact_policy(pl.DataFrame({"customer_id": ["a"], "channel": ["email"]}),
                                 customers, output="pandas")
    assert split.suppressed["suppression_reason"].tolist() == ["opted out of email"]
    assert split.summary()["suppressed"] == 1
