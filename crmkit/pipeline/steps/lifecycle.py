"""The ``lifecycle`` step: stages as of the run date, stage changes, transition matrix.

Per-customer tables in ``<run>/lifecycle/``: ``stages`` (customer_id, as_of, stage,
stage_rule), ``stage_changes`` (against the previous run's ``stages``; every
customer is a ``(new)`` arrival in the first run) and, with ``playbook = true``,
``actions`` (the playbook's standard actions per customer, tier-specific where the
``value`` step ran, through the contact policy: ``suppressed_actions`` holds those
on a channel the customer opted out of, or otherwise not allowed, with the reason). Aggregate: ``transition_matrix`` (long form, counts and row
rates), combined from per-shard pair counts, and ``action_responses``: per stage
action of the previous run, how many of its customers were contacted since and how
many responded (a ``contacts.outcome`` in ``response_outcomes``; empty in the first
run), see :func:`crmkit.lifecycle.action_responses`.

Model outputs of other steps (by default ``p_alive`` of ``clv.clv`` and, as
``churn_risk``, the capacity-sized ``churn_flag`` of ``churn.churn_scores``) are
joined to the features when those steps run, so preset rules on them fire; rules
on absent model outputs are skipped, and the manifest says which were used. A
boolean output is joined as 1.0 / 0.0 (null stays null), so the retail preset's
``churn_risk >= churn_risk_threshold`` (0.5) fires exactly for the customers the
churn step flagged: the cut is the churn step's, sized to capacity, not a fixed
probability. Point ``model_inputs`` at ``churn_prob_<h>d`` to cut a probability
instead. The sector presets read columns of their sector step's per-customer table
the same way (``insurer.policy_churn``, ``tobacco_retail.status``,
``elderly_care.priority_register``; see ``pipelines/<sector>.toml``), their flags
as ``flag == 1``. A preset's own ``playbook`` replaces the retail-bank stage actions.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl
from pydantic import Field, ValidationInfo, field_validator, model_validator

from crmkit._config import StrictModel
from crmkit.exceptions import ConfigError
from crmkit.lifecycle import (
    load_config,
    playbook_actions,
    recent_gap_feature,
    stage_changes,
    transition_matrix_from_counts,
)
from crmkit.lifecycle._responses import KEYS, RESPONSE_COUNTS, action_responses, response_rates
from crmkit.lifecycle._stages import GAP_FEATURE, assign_stages
from crmkit.lifecycle._transitions import GONE, NEW
from crmkit.pipeline._step import Shard, ShardOutput, Step, StepSummary
from crmkit.pipeline.steps._common import count_partial, counts_from

__all__ = ["STEP", "LifecycleStepConfig", "ModelInput"]


class ModelInput(StrictModel):
    """A column of another step's table joined to the features under ``feature``."""

    step: str
    table: str
    column: str
    feature: str

    @property
    def input_name(self) -> str:
        return f"{self.step}.{self.table}"


class LifecycleStepConfig(StrictModel):
    """``[lifecycle]``: the stage preset (name or TOML path), threshold overrides,
    model outputs to use and whether to write the playbook actions."""

    preset: str = "retail_bank"
    params: dict[str, int | float | str | bool] = Field(default_factory=dict)
    model_inputs: list[ModelInput] = Field(default_factory=lambda: [
        ModelInput(step="clv", table="clv", column="p_alive", feature="p_alive"),
        ModelInput(step="churn", table="churn_scores", column="churn_flag",
                   feature="churn_risk")])
    playbook: bool = True
    response_outcomes: list[str] = Field(default_factory=lambda: ["reached", "sale"])

    @field_validator("preset")
    @classmethod
    def _relative_to_config(cls, value: str, info: ValidationInfo) -> str:
        # a TOML preset path is relative to the pipeline config file, not the cwd
        base = (info.context or {}).get("base_dir")
        path = Path(value)
        if base is not None and path.suffix == ".toml" and not path.is_absolute():
            return str(Path(base) / path)
        return value

    @model_validator(mode="after")
    def _valid(self) -> LifecycleStepConfig:
        unknown = [m.input_name for m in self.model_inputs if m.input_name not in OPTIONAL]
        if unknown:
            raise ValueError(f"model_inputs: {', '.join(unknown)} is not a table this step can "
                             f"read; choose from {', '.join(OPTIONAL)}")
        try:
            config = load_config(self.preset)
            if self.params:
                config.with_params(**self.params)
        except ConfigError as err:
            raise ValueError(str(err)) from None
        return self


OPTIONAL = ("clv.clv", "churn.churn_scores", "value.value_tiers",
            # per-customer tables of the sector steps, read by the sector presets' rules
            "insurer.policy_churn", "tobacco_retail.status", "elderly_care.priority_register")


def score(shard: Shard, cfg: LifecycleStepConfig, state: Any) -> ShardOutput:
    """Stages, stage changes and actions of one shard's customers."""
    features = shard.get("features")
    if GAP_FEATURE not in features.columns:
        gaps = recent_gap_feature(shard.get("transactions"), as_of=shard.as_of)
        features = features.join(gaps, on="customer_id", how="left", maintain_order="left")
    used: list[str] = []
    for m in cfg.model_inputs:
        table = shard.optional(m.input_name)
        if table is not None and m.column in table.columns and m.feature not in features.columns:
            col = pl.col(m.column)
            if table.schema[m.column] == pl.Boolean:  # a flag: 1.0 / 0.0 for threshold rules
                col = col.cast(pl.Float64)
            features = features.join(table.select("customer_id", col.alias(m.feature)),
                                     on="customer_id", how="left", maintain_order="left")
            used.append(f"{m.input_name}.{m.column}")
    previous = shard.previous("lifecycle", "stages")
    config = load_config(cfg.preset)
    stages = assign_stages(features, as_of=shard.as_of, previous=previous, preset=config,
                           params=cfg.params or None)
    prev = previous if previous is not None else pl.DataFrame(
        schema={"customer_id": pl.String, "stage": pl.String})
    changes = stage_changes(prev, stages, as_of=shard.as_of)
    pairs = (prev.select("customer_id", pl.col("stage").alias("from_stage"))
             .join(stages.select("customer_id", pl.col("stage").alias("to_stage")),
                   on="customer_id", how="full", coalesce=True)
             .with_columns(pl.col("from_stage").fill_null(NEW), pl.col("to_stage").fill_null(GONE)))
    tables = {"stages": stages, "stage_changes": changes}
    partials = {"pairs": count_partial(pairs, "from_stage", "to_stage"),
                "stages": count_partial(stages, "stage"),
                "rules": count_partial(stages, "stage_rule"),
                "used": pl.DataFrame({"used": used}, schema={"used": pl.String}),
                "changes": pl.DataFrame({"n": [changes.height]})}
    if cfg.playbook:
        tiers = shard.optional("value.value_tiers")
        with_tier = stages
        if tiers is not None and "tier" in tiers.columns:
            with_tier = stages.join(tiers.select("customer_id", pl.col("tier").cast(pl.String)),
                                    on="customer_id", how="left")
        # every action that names a channel goes through the one contact policy:
        # opted-out channels, do-not-contact and contact windows are suppressed, counted
        split = playbook_actions(with_tier, playbook=config.playbook,
                                 stage_names=config.stages, as_of=shard.as_of,
                                 customers=shard.get("customers"))
        tables["actions"] = split.allowed
        tables["suppressed_actions"] = split.suppressed
        partials["actions"] = count_partial(split.allowed, "action")
        partials["suppressed"] = count_partial(split.suppressed, "suppression_reason")
    else:
        tables["actions"] = pl.DataFrame(schema={"customer_id": pl.String, "action": pl.String})
        tables["suppressed_actions"] = pl.DataFrame(
            schema={"customer_id": pl.String, "action": pl.String,
                    "suppression_reason": pl.String})
    # response to the previous run's stage actions: contacts (and their outcome) since then
    responses = pl.DataFrame(schema={**{k: pl.String for k in KEYS},
                                     **{c: pl.Int64 for c in RESPONSE_COUNTS}})
    prev_actions = shard.previous("lifecycle", "actions")
    if (prev_actions is not None and previous is not None and previous.height
            and set(KEYS) <= set(prev_actions.columns) and "as_of" in previous.columns):
        since = previous["as_of"].max()
        contacts = shard.get("contacts")
        if since < shard.as_of and "outcome" in contacts.columns:
            responses = action_responses(prev_actions, contacts, since=since, until=shard.as_of,
                                         response_outcomes=cfg.response_outcomes).select(
                *KEYS, *RESPONSE_COUNTS)
    partials["responses"] = responses
    return ShardOutput(tables=tables, partials=partials)


def finalize(partials: Mapping[str, pl.DataFrame], cfg: LifecycleStepConfig, state: Any,
             ctx: Any) -> StepSummary:
    """The transition matrix and the manifest facts."""
    config = load_config(cfg.preset)
    pairs = partials["pairs"].rename({"n": "count"})
    matrix = transition_matrix_from_counts(pairs, stages=list(config.stages)).select(
        pl.lit(ctx.as_of, pl.Date).alias("as_of"), pl.all())
    changes = int(partials["changes"]["n"].sum())
    facts: dict[str, Any] = {
        "preset": config.name,
        "params": {**config.params, **cfg.params},
        "previous_run": ctx.previous_run_dir is not None,
        "model_inputs_used": sorted(set(partials["used"]["used"].to_list())),
        "stages": counts_from(partials, "stages", "stage"),
        "rules_fired": counts_from(partials, "rules", "stage_rule"),
        "stage_changes": changes,
    }
    responses = response_rates(partials["responses"]).select(
        pl.lit(ctx.as_of, pl.Date).alias("as_of"), pl.all())
    facts["action_responses"] = {
        f"{r['stage']}.{r['action']}": {"actions": r["actions"], "responded": r["responded"],
                                        "response_rate": r["response_rate"]}
        for r in responses.iter_rows(named=True)}
    if "actions" in partials:
        facts["actions"] = counts_from(partials, "actions", "action")
        facts["actions_suppressed"] = counts_from(partials, "suppressed", "suppression_reason")
    return StepSummary(tables={"transition_matrix": matrix, "action_responses": responses},
                       facts=facts)


STEP = Step(
    name="lifecycle", config_model=LifecycleStepConfig, score=score,
    inputs=("features", "transactions", "customers", "contacts"), optional_inputs=OPTIONAL,
    outputs=("stages", "stage_changes", "actions", "suppressed_actions"), finalize=finalize,
    doc="lifecycle stages, stage-change events against the previous run, transition matrix, "
        "playbook actions",
)
