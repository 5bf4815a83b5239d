"""The ``value`` step: RFM segments, CLV, value tiers, tier movement and hidden VIPs.

Tables written to ``<run>/value/``: ``rfm_segments``, ``clv`` (BG/NBD + Gamma-Gamma),
``value_tiers``, ``tier_movement`` (against the previous run's ``value_tiers``),
``tier_movement_summary`` and ``hidden_vips``. The CLV models are refitted on the
``[value.clv] refit`` schedule and stored as JSON data in ``<model_dir>/value_clv.json``;
between refits the stored models score today's data.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import field_validator, model_validator

from crmkit._config import StrictModel, closest
from crmkit.exceptions import ConfigError
from crmkit.io import write_json
from crmkit.pipeline._step import REFIT_SCHEDULES, RunContext, Step, StepResult, due_for_refit
from crmkit.value._tiers_step import ValueSettings, run_value_step

__all__ = ["STEP", "ValueClvConfig", "ValueConfig", "run"]

MODEL_NAME = "value_clv"


class ValueClvConfig(StrictModel):
    """``[value.clv]``: the CLV models (BG/NBD purchases, Gamma-Gamma spend)."""

    enabled: bool = True
    refit: str = "monthly"
    unit: Literal["days", "weeks", "mean_months"] = "weeks"
    horizon: float = 52.0
    annual_discount_rate: float = 0.10
    margin: float = 1.0
    penalizer_coef: float = 0.0

    @field_validator("refit")
    @classmethod
    def _schedule(cls, value: str) -> str:
        if value not in REFIT_SCHEDULES:
            raise ValueError(f"refit must be one of {', '.join(REFIT_SCHEDULES)}."
                             f"{closest(value, REFIT_SCHEDULES)}")
        return value


class ValueConfig(StrictModel):
    """``[value]``: RFM scorer parameters, the tier scheme and hidden-VIP list length.

    ``tiers`` is ``"retail_bank"`` or a table ``{tiers = [{name = ..., lower = ...,
    upper = ..., lower_inclusive = ..., upper_inclusive = ..., vip = ...}, ...]}``.
    """

    rfm: dict[str, Any] = {}
    tiers: str | dict[str, Any] = "retail_bank"
    hidden_vip_n: int = 100
    branch_col: str = "branch_id"
    clv: ValueClvConfig = ValueClvConfig()

    def settings(self) -> ValueSettings:
        """The library settings of :func:`crmkit.value.run_value_step`."""
        clv = self.clv.model_dump(exclude={"refit"})
        return ValueSettings.from_dict({"rfm": self.rfm, "tiers": self.tiers,
                                        "hidden_vip_n": self.hidden_vip_n,
                                        "branch_col": self.branch_col, "clv": clv})

    @model_validator(mode="after")
    def _valid(self) -> ValueConfig:
        try:
            self.settings()
        except ConfigError as err:
            raise ValueError(str(err)) from None
        return self


def _stored_models(ctx: RunContext) -> dict[str, str] | None:
    path = ctx.model_dir / f"{MODEL_NAME}.json"
    if not path.exists():
        return None
    doc = json.loads(path.read_text(encoding="utf-8"))
    return {"clv_fitted_as_of": doc["fitted_as_of"],
            "clv_transaction_model": json.dumps(doc["transaction_model"]),
            "clv_spend_model": json.dumps(doc["spend_model"])}


def run(ctx: RunContext, cfg: ValueConfig) -> StepResult:
    """Run the value step on the run context (see the module docstring)."""
    settings = cfg.settings()
    transactions = ctx.tables.get("transactions")
    refit = due_for_refit(ctx.stored_fit_date(MODEL_NAME), ctx.as_of, cfg.clv.refit)
    res = run_value_step(ctx.features, as_of=ctx.as_of, transactions=transactions,
                         previous_tiers=ctx.previous_output("value", "value_tiers"),
                         previous_models=_stored_models(ctx), settings=settings, refit_clv=refit)
    facts: dict[str, Any] = {"notes": res.notes}
    if "clv" in res.tables:
        if res.clv_refitted:
            write_json({"fitted_as_of": res.models["clv_fitted_as_of"],
                        "transaction_model": json.loads(res.models["clv_transaction_model"]),
                        "spend_model": json.loads(res.models["clv_spend_model"])},
                       ctx.model_path(MODEL_NAME))
        bg = json.loads(res.models["clv_transaction_model"])
        gg = json.loads(res.models["clv_spend_model"])
        facts["clv"] = {"refitted": res.clv_refitted, "refit_schedule": cfg.clv.refit,
                        "fitted_as_of": res.models["clv_fitted_as_of"],
                        "transaction_model": {"model": bg["model"], "params": bg["params"]},
                        "spend_model": {"model": gg["model"], "params": gg["params"]}}
    scorer = json.loads(res.models["rfm_scorer"])
    facts["rfm_edges"] = scorer["state"]["edges_"]

    def counts(table: str, col: str) -> dict[str, int]:
        vc = res.tables[table][col].value_counts().sort(col)
        return {str(k): int(v) for k, v in vc.iter_rows()}

    facts["segments"] = counts("rfm_segments", "segment")
    facts["tiers"] = counts("value_tiers", "tier")
    facts["tier_movement"] = counts("tier_movement", "movement")
    facts["tier_scheme"] = {t.name: t.interval for t in settings.scheme().tiers}
    if "hidden_vips" in res.tables:
        facts["hidden_vips"] = int(res.tables["hidden_vips"].height)
    return StepResult(tables=res.tables, manifest=facts)


STEP = Step(name="value", config_model=ValueConfig, run=run,
            doc="RFM segments, CLV (refit on a schedule), value tiers, tier movement, hidden VIPs")
