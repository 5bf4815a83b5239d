"""The ``segments`` step: declarative segments over the run's customer table, and exports.

Each ``[segments.<name>]`` table names a condition over the run's customer table
(the features, the customers' own columns and every per-customer output of the
other steps, joined by ``customer_id``), the columns to export, a channel whose
opt-outs are suppressed, and the formats. Per shard, the step keeps the rows of
customers in at least one segment; ``finalize`` sizes the segments, counts their
overlaps and writes each export (``exports/<segment>_<date>.<format>`` with a
stamp), so memory holds the segments' members, never the whole customer base.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import polars as pl

from crmkit.pipeline._step import Shard, ShardOutput, Step, StepSummary
from crmkit.segments import SegmentsConfig, customer_table, run_segments, segment_membership
from crmkit.segments._run import PER_CUSTOMER_TABLES

__all__ = ["STEP"]

READS = PER_CUSTOMER_TABLES
"""Per-customer outputs a segment may use, when their steps run."""


def score(shard: Shard, cfg: SegmentsConfig, state: Any) -> ShardOutput:
    """The shard's customers in at least one segment, with every column of their row."""
    segments = cfg.segments()
    if not segments:
        return ShardOutput()
    outputs: dict[str, dict[str, pl.DataFrame]] = {}
    for name in READS:
        frame = shard.optional(name)
        if frame is not None:
            step, table = name.split(".")
            outputs.setdefault(step, {})[table] = frame
    table = customer_table(outputs, shard.get("features"), shard.get("customers"))
    members = segment_membership(table, segments).select("customer_id").unique()
    return ShardOutput(partials={"members": table.join(members, on="customer_id", how="semi")})


def finalize(partials: Mapping[str, pl.DataFrame], cfg: SegmentsConfig, state: Any,
             ctx: Any) -> StepSummary:
    """Sizes, overlaps and the export files of every segment."""
    segments = cfg.segments()
    if not segments:
        return StepSummary(facts={"segments": 0})
    members = partials.get("members")
    if members is None:
        return StepSummary(facts={"segments": 0})
    files = ctx.files_dir("segments")
    res = run_segments(members.sort("customer_id"), {s.name: s for s in segments},
                       export_dir=files / "exports", run_date=ctx.as_of,
                       config_fingerprint=ctx.config_fingerprint, link_base=files.parent)
    return StepSummary(tables=res.tables, facts=res.manifest)


STEP = Step(
    name="segments", config_model=SegmentsConfig, score=score,
    inputs=("features", "customers"), optional_inputs=READS, finalize=finalize,
    doc="declarative segments: sizes, overlaps, stamped exports without opted-out customers",
)
