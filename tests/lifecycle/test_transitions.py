"""Stage changes, transition matrices, flows, cohorts, playbooks, plots and the run step."""

import datetime as dt

import matplotlib
import polars as pl
import pytest

from crmkit.exceptions import ConfigError, SchemaError
from crmkit.lifecycle import (
    assign_stages,
    cohort_stages,
    default_playbook,
    lifecycle_features,
    playbook_actions,
    plot_stage_distribution,
    plot_stage_flow,
    plot_transition_heatmap,
    run_lifecycle_step,
    stage_changes,
    stage_flows,
    transition_matrix,
)

from ._util import BANK, END

matplotlib.use("Agg")
RUNS = [dt.date(2025, 9, 30), dt.date(2025, 10, 31), dt.date(2025, 11, 30), END]


@pytest.fixture(scope="module")
def history():
    out, prev = {}, None
    for day in RUNS:
        stages = assign_stages(lifecycle_features(BANK, as_of=day), as_of=day, previous=prev)
        out[day] = prev = stages
    return out


PREV = pl.DataFrame({"customer_id": ["a", "b", "c", "d"],
                     "stage": ["growth", "growth", "mature", "dormant"]})
CUR = pl.DataFrame({"customer_id": ["a", "b", "c", "e"],
                    "stage": ["growth", "decline", "mature", "prospect"],
                    "stage_rule": ["growth", "decline", "mature", "prospect"],
                    "as_of": [dt.date(2025, 2, 28)] * 4})


def test_stage_changes(as_input):
    out = stage_changes(as_input(PREV), as_input(CUR))
    assert out.rows() == [("b", "growth", "decline", dt.date(2025, 2, 28), "decline"),
                          ("e", None, "prospect", dt.date(2025, 2, 28), "prospect")]
    assert stage_changes(PREV, CUR, include_new=False)["customer_id"].to_list() == ["b"]
    with pytest.raises(SchemaError, match="needs columns customer_id and stage"):
        stage_changes(PREV.rename({"stage": "s"}), CUR)


def test_transition_matrix_counts_and_rates():
    m = transition_matrix(PREV, CUR)
    assert m.filter(pl.col("count") > 0).select("from_stage", "to_stage", "count").rows() == [
        ("growth", "growth", 1), ("growth", "decline", 1), ("mature", "mature", 1),
        ("dormant", "(gone)", 1), ("(new)", "prospect", 1)]
    rates = m.group_by("from_stage").agg(pl.col("rate").sum(), pl.col("count").sum())
    # each occupied row sums to 1; stages nobody came from have rate 0
    assert (rates.filter(pl.col("count") > 0)["rate"] - 1).abs().max() < 1e-12
    assert (rates.filter(pl.col("count") == 0)["rate"] == 0).all()
    assert m["count"].sum() == 5
    wide = transition_matrix(PREV, CUR, form="wide", include_new=False,
                             stages=["growth", "mature", "decline"])
    assert wide.columns[:4] == ["from_stage", "growth", "mature", "decline"]
    assert wide.filter(pl.col("from_stage") == "growth").row(0)[1:4] == (1, 0, 1)


def test_flows_and_cohorts(history):
    flows = stage_flows(history)
    assert flows["from_as_of"].unique().sort().to_list() == RUNS[:-1]
    # every customer of each run is counted once in the flow into it
    for day in RUNS[1:]:
        assert flows.filter(pl.col("to_as_of") == day)["count"].sum() == history[day].height
    stacked = pl.concat(list(history.values()))
    assert stage_flows(stacked).equals(flows)
    cohorts = cohort_stages(stacked)
    assert cohorts["cohort"].min() == dt.date(2025, 9, 1)
    total = cohorts.group_by("cohort").agg(pl.col("share").sum())
    assert (total["share"] - 1).abs().max() < 1e-12
    onboarded_sep = history[RUNS[0]].filter(pl.col("stage") == "onboarding").height
    assert cohorts.filter(pl.col("cohort") == dt.date(2025, 9, 1))["count"].sum() == onboarded_sep


def test_cohorts_from_entry_dates(history):
    feats = lifecycle_features(BANK, as_of=END)
    entry = feats.select("customer_id", "first_product_date")
    cohorts = cohort_stages(history, entry_dates=entry, freq="1q")
    opened = feats.filter(pl.col("first_product_date").is_not_null())
    assert cohorts["count"].sum() == opened.height
    recent = opened.filter(pl.col("first_product_date") >= dt.date(2025, 10, 1)).height
    assert cohorts.filter(pl.col("cohort") == dt.date(2025, 10, 1))["count"].sum() == recent
    with pytest.raises(SchemaError, match="exactly one date column"):
        cohort_stages(history, entry_dates=feats.select("customer_id", "first_product_date",
                                                        "last_txn_date"))


def test_shards_give_the_same_stages():
    whole = assign_stages(lifecycle_features(BANK, as_of=END), as_of=END)
    parts = [assign_stages(lifecycle_features(BANK, as_of=END, shard=(i, 3)), as_of=END)
             for i in range(3)]
    assert pl.concat(parts).sort("customer_id").equals(whole.sort("customer_id"))


def test_reactivation_and_changes_across_runs(history):
    changes = stage_changes(history[RUNS[-2]], history[RUNS[-1]])
    assert (changes["from_stage"] != changes["to_stage"]).all()
    assert set(changes["rule"]) <= {r for r in history[RUNS[-1]]["stage_rule"]}


def test_playbook_actions():
    st = pl.DataFrame({"customer_id": ["a", "b", "c", "d"],
                       "stage": ["decline", "decline", "onboarding", "mature"],
                       "as_of": [dt.date(2025, 1, 31)] * 4})
    tiers = pl.DataFrame({"customer_id": ["a", "b"], "tier": ["Diamond", "Gold"]})
    out = playbook_actions(st, tiers=tiers)
    assert out.select("customer_id", "action", "action_priority").rows() == [
        ("a", "senior_rm_visit", 1), ("b", "retention_call", 1), ("b", "retention_offer", 2),
        ("c", "welcome_call", 2), ("c", "needs_review", 3), ("d", "relationship_review", 4)]
    assert out.filter(pl.col("customer_id") == "c")["due_date"].to_list() == [
        dt.date(2025, 2, 7), dt.date(2025, 3, 2)]
    custom = [{"stage": "decline", "action": "call"}]
    assert playbook_actions(st, playbook=custom)["customer_id"].to_list() == ["a", "b"]
    with pytest.raises(ConfigError, match="unknown stage 'declin'.*'decline'"):
        playbook_actions(st, playbook=[{"stage": "declin", "action": "call"}])
    with pytest.raises(ConfigError, match="unknown key 'acton'.*'action'"):
        playbook_actions(st, playbook=[{"stage": "decline", "acton": "call"}])
    assert default_playbook()["stage"].n_unique() == 8


def test_plots_return_axes(history, tmp_path):
    ax = plot_stage_distribution(history)
    assert ax.get_ylabel() == "share of customers"
    ax = plot_transition_heatmap(transition_matrix(history[RUNS[-2]], history[RUNS[-1]]),
                                 value="count")
    assert ax.get_ylabel() == "stage in previous run"
    ax = plot_stage_flow(history[RUNS[0]], history[RUNS[-1]])
    ax.figure.savefig(tmp_path / "flow.png")
    assert (tmp_path / "flow.png").stat().st_size > 1000
    import matplotlib.pyplot as plt

    plt.close("all")


def test_run_step(history):
    feats = lifecycle_features(BANK, as_of=END)
    out = run_lifecycle_step(feats, history[RUNS[-2]], END, "retail_bank")
    assert out["stages"].equals(history[END])
    assert out["stage_changes"].equals(stage_changes(history[RUNS[-2]], history[END]))
    m = out["transition_matrix"]
    assert m["as_of"].unique().to_list() == [END]
    assert m["count"].sum() == feats.height  # nobody disappears from the bank
    first = run_lifecycle_step(feats, None, END, "retail_bank")
    assert first["stage_changes"].height == feats.height
    assert set(first["transition_matrix"].filter(pl.col("count") > 0)["from_stage"]) == {"(new)"}
