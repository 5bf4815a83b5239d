"""The ``lifecycle`` step: stages as of the run date, stage changes, transition matrix.

Tables written to ``<run>/lifecycle/``: ``stages`` (customer_id, as_of, stage,
stage_rule), ``stage_changes`` (against the previous run's ``stages``; every customer
is a ``(new)`` arrival in the first run), ``transition_matrix`` (long form, counts and
row rates) and, with ``playbook = true``, ``actions`` (the playbook's standard actions
per customer, tier-specific where the value step produced ``value_tiers``).

Model outputs of earlier steps (by default ``p_alive`` from the value step's ``clv``
table and, as ``churn_risk``, ``churn_prob_180d`` from the churn step's
``churn_scores``) are joined to the features when present, so preset rules on them
fire (run the lifecycle step after those steps); rules on absent model outputs are
skipped, and the manifest says which were used.
"""

from __future__ import annotations

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
    run_lifecycle_step,
)
from crmkit.lifecycle._stages import GAP_FEATURE
from crmkit.pipeline._step import RunContext, Step, StepResult

__all__ = ["STEP", "LifecycleStepConfig", "ModelInput", "run"]


class ModelInput(StrictModel):
    """A column of an earlier step's table joined to the features under ``feature``."""

    step: str
    table: str
    column: str
    feature: str


class LifecycleStepConfig(StrictModel):
    """``[lifecycle]``: the stage preset (name or TOML path), threshold overrides,
    model outputs to use and whether to write the playbook actions."""

    preset: str = "retail_bank"
    params: dict[str, int | float | str | bool] = Field(default_factory=dict)
    model_inputs: list[ModelInput] = Field(default_factory=lambda: [
        ModelInput(step="value", table="clv", column="p_alive", feature="p_alive"),
        ModelInput(step="churn", table="churn_scores", column="churn_prob_180d",
                   feature="churn_risk")])
    playbook: bool = True

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
        try:
            config = load_config(self.preset)
            if self.params:
                config.with_params(**self.params)
        except ConfigError as err:
            raise ValueError(str(err)) from None
        return self


def run(ctx: RunContext, cfg: LifecycleStepConfig) -> StepResult:
    """Run the lifecycle step on the run context (see the module docstring)."""
    features = ctx.features
    if GAP_FEATURE not in features.columns:
        tx = ctx.tables.get("transactions")
        if tx is not None:
            gaps = recent_gap_feature(tx, as_of=ctx.as_of)
        else:
            gaps = pl.DataFrame(schema={"customer_id": pl.String, GAP_FEATURE: pl.Int64})
        features = features.join(gaps, on="customer_id", how="left", maintain_order="left")
    used: list[str] = []
    for m in cfg.model_inputs:
        table = ctx.outputs.get(m.step, {}).get(m.table)
        if table is not None and m.column in table.columns and m.feature not in features.columns:
            features = features.join(
                table.select("customer_id", pl.col(m.column).alias(m.feature)),
                on="customer_id", how="left", maintain_order="left")
            used.append(f"{m.step}.{m.table}.{m.column}")
    previous = ctx.previous_output("lifecycle", "stages")
    config = load_config(cfg.preset)
    out = run_lifecycle_step(features, previous, ctx.as_of, config, params=cfg.params or None)
    if cfg.playbook:
        tiers = ctx.outputs.get("value", {}).get("value_tiers")
        stages = out["stages"]
        if tiers is not None and "tier" in tiers.columns:
            stages = stages.join(tiers.select("customer_id", pl.col("tier").cast(pl.String)),
                                 on="customer_id", how="left")
        out["actions"] = playbook_actions(stages, stage_names=config.stages)

    def counts(frame: pl.DataFrame, col: str) -> dict[str, int]:
        return {str(k): int(v) for k, v in frame[col].value_counts().sort(col).iter_rows()}

    facts: dict[str, Any] = {
        "preset": config.name,
        "params": {**config.params, **cfg.params},
        "previous_run": previous is not None,
        "model_inputs_used": used,
        "stages": counts(out["stages"], "stage"),
        "rules_fired": counts(out["stages"], "stage_rule"),
        "stage_changes": int(out["stage_changes"].height),
    }
    if "actions" in out:
        facts["actions"] = counts(out["actions"], "action")
    return StepResult(tables=out, manifest=facts)


STEP = Step(name="lifecycle", config_model=LifecycleStepConfig, run=run,
            doc="lifecycle stages, stage-change events against the previous run, "
                "transition matrix, playbook actions")
