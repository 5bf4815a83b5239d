"""Response rates per stage action: the previous run's actions against the contacts
(and their outcome) logged since."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import polars as pl
import pytest

from crmkit.exceptions import SchemaError
from crmkit.lifecycle import action_responses

ROOT = Path(__file__).resolve().parents[2]


def test_window_outcomes_and_one_count_per_customer_action():
    acts = pl.DataFrame({
        "customer_id": ["a", "b", "c", "d", "e", "e", "a"],
        "stage": ["decline", "decline", "decline", "decline", "onboarding", "onboarding",
                  "decline"],
        "action": ["retention_call", "retention_call", "retention_call", "retention_call",
                   "welcome_call", "needs_review", "retention_call"],   # a listed twice
        "channel": ["phone"] * 5 + ["branch", "phone"]})
    con = pl.DataFrame({
        "customer_id": ["a", "a", "b", "c", "d", "e", "x"],
        "date": [dt.date(2025, 11, 30),   # on the previous run's day: before the actions
                 dt.date(2025, 12, 31),   # on this run's day: counts
                 dt.date(2025, 12, 10), dt.date(2026, 1, 1),       # c: after this run
                 dt.date(2025, 12, 2), dt.date(2025, 12, 3), dt.date(2025, 12, 3)],
        "outcome": ["sale", "no_answer", "reached", "reached", None, "sale", "sale"]})
    out = action_responses(acts, con, since="2025-11-30", until="2025-12-31")
    rows = {r["action"]: r for r in out.iter_rows(named=True)}
    assert sorted(rows) == ["needs_review", "retention_call", "welcome_call"]
    ret = rows["retention_call"]
    # a: contacted (no answer), b: reached, c: nothing in the window, d: contacted, no outcome
    assert (ret["actions"], ret["contacted"], ret["responded"]) == (4, 3, 1)
    assert ret["response_rate"] == 0.25 and ret["contact_rate"] == 0.75
    # e's one contact answers both of e's actions (the log does not say which)
    for name in ("welcome_call", "needs_review"):
        assert (rows[name]["actions"], rows[name]["responded"]) == (1, 1)
    custom = action_responses(acts, con, since="2025-11-30", until="2025-12-31",
                              response_outcomes=["no_answer"])
    assert custom.filter(pl.col("action") == "retention_call")["responded"].item() == 1


def test_bad_input_is_named():
    acts = pl.DataFrame({"customer_id": ["a"], "stage": ["x"], "action": ["y"]})
    con = pl.DataFrame({"customer_id": ["a"], "date": [dt.date(2025, 1, 1)], "outcome": ["r"]})
    with pytest.raises(SchemaError, match="actions table has no column 'channel'"):
        action_responses(acts, con, since="2024-12-31", until="2025-01-31")
    with pytest.raises(ValueError, match="before"):
        action_responses(acts.with_columns(channel=pl.lit("phone")), con,
                         since="2025-01-31", until="2024-12-31")


def test_the_step_measures_the_previous_runs_actions(tmp_path):
    """Two runs of the insurer config: the second run's action_responses is the first
    run's actions against the contacts logged between the two run dates."""
    from crmkit.pipeline import run_pipeline

    shutil.copytree(ROOT / "data" / "insurer", tmp_path / "data" / "insurer")
    (tmp_path / "pipelines").mkdir()
    cfg = tmp_path / "pipelines" / "insurer.toml"
    # the first run sees the history as it stood on its day; the sample book doubles
    # its policies in December, so the volume check against the previous run is off
    cfg.write_text((ROOT / "pipelines" / "insurer.toml").read_text()
                   + '\n[validation]\nfuture_rows = "cut"\n\n[validation.quality]\n'
                     'volume_tolerance = 100.0\n')
    first = run_pipeline(cfg, as_of="2025-11-30")
    assert first.outputs["lifecycle"]["action_responses"].height == 0
    second = run_pipeline(cfg, as_of="2025-12-31")
    got = second.outputs["lifecycle"]["action_responses"]
    acts = first.outputs["lifecycle"]["actions"]
    contacts = pl.read_parquet(tmp_path / "data" / "insurer" / "contacts.parquet")
    window = contacts.filter(pl.col("date").is_between(dt.date(2025, 12, 1),
                                                       dt.date(2025, 12, 31)))
    responders = set(window.filter(pl.col("outcome").is_in(["reached", "sale"]))["customer_id"])
    contacted = set(window["customer_id"])
    for row in got.iter_rows(named=True):
        mine = acts.filter((pl.col("stage") == row["stage"]) & (pl.col("action") == row["action"])
                           & (pl.col("channel") == row["channel"]))
        ids = set(mine["customer_id"])
        assert row["actions"] == len(ids)
        assert row["contacted"] == len(ids & contacted)
        assert row["responded"] == len(ids & responders)
    assert got["actions"].sum() == acts.select("customer_id", "stage", "action").unique().height
    assert got["responded"].sum() > 0
    facts = second.manifest["steps"]["lifecycle"]["action_responses"]
    assert set(facts) == {f"{s}.{a}" for s, a in got.select("stage", "action").iter_rows()}
