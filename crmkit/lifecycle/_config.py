"""Configuration of the lifecycle: stage rules, churn definition, validated with pydantic.

Every model rejects unknown keys with the closest valid key named, and every
validation problem surfaces as one :class:`crmkit.ConfigError` listing all of them.
"""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from crmkit._config import StrictModel, format_validation_error
from crmkit.exceptions import ConfigError
from crmkit.lifecycle._expr import CLAUSE_OPS, closest, compile_clauses, compile_condition

__all__ = [
    "STANDARD_STAGES",
    "ChurnDefinition",
    "Clause",
    "LifecycleConfig",
    "StageRule",
    "load_config",
]

STANDARD_STAGES = ("prospect", "onboarding", "growth", "mature", "decline", "dormant",
                   "churned", "reactivated")
"""The relationship stages of the retail-bank preset, in lifecycle order."""

PREVIOUS_STAGE = "previous_stage"
"""Pseudo-feature holding the previous run's stage (null without a previous run)."""


_Strict = StrictModel


class Clause(_Strict):
    """One ``{feature, op, value}`` test; ``value`` may name a parameter."""

    feature: str
    op: str
    value: Any = None

    @model_validator(mode="after")
    def _check_op(self) -> Clause:
        if self.op not in CLAUSE_OPS:
            raise ValueError(f"op {self.op!r} is not one of {', '.join(map(repr, CLAUSE_OPS))}."
                             f"{closest(self.op, CLAUSE_OPS)}")
        return self


class StageRule(_Strict):
    """One stage rule: the stage it assigns and the condition under which it fires.

    The condition is ``when`` (an expression string), ``all_of`` (clauses that must
    all hold) and ``any_of`` (clauses of which one must hold), combined with *and*
    when more than one is given. ``if_missing="skip"`` drops the rule when a feature
    it reads is absent (for rules on optional model outputs such as ``p_alive``).

    Examples
    --------
    >>> rule = StageRule(name="quiet", stage="dormant", when="days_since_last_txn >= limit")
    >>> sorted(rule.compile({"limit": 180}).features)
    ['days_since_last_txn']
    """

    name: str
    stage: str
    when: str | None = None
    all_of: list[Clause] | None = None
    any_of: list[Clause] | None = None
    priority: int | None = None
    if_missing: Literal["error", "skip"] = "error"
    description: str = ""

    @model_validator(mode="after")
    def _has_condition(self) -> StageRule:
        if self.when is None and not self.all_of and not self.any_of:
            raise ValueError(f"rule {self.name!r} has no condition; give 'when', 'all_of' or "
                             "'any_of' (the catch-all is the config's 'default_stage').")
        return self

    def compile(self, params: Mapping[str, Any]):
        """Compile the condition; returns a :class:`CompiledCondition`."""
        where = f"rule {self.name!r}"
        parts = []
        if self.when is not None:
            parts.append(compile_condition(self.when, params=params, where=where))
        for combine, clauses in (("all", self.all_of), ("any", self.any_of)):
            if clauses:
                parts.append(compile_clauses([c.model_dump() for c in clauses],
                                             combine=combine, params=params, where=where))
        expr = parts[0].expr
        for p in parts[1:]:
            expr = expr & p.expr
        feats = frozenset().union(*(p.features for p in parts))
        used = frozenset().union(*(p.params for p in parts))
        return type(parts[0])(expr, feats, used)


class ChurnDefinition(_Strict):
    """The one configurable definition of churn used by :func:`label_churn`.

    Parameters
    ----------
    kind : {"contractual", "non_contractual", "silent", "combined"}
        Contractual: a customer has churned when every product they held is closed
        (churn date = the last closure). Non-contractual: when they made no
        transaction for ``inactivity_days``. Silent: products may stay open, but
        no activity (transaction or account opening) for ``inactivity_days``; the
        churn is dated when the silence began and known only ``inactivity_days``
        later. Combined: contractual or silent, whichever came first.
    inactivity_days : int
        Inactivity that counts as churn in the non-contractual, silent and
        combined definitions (and the silence threshold of the churn risk set).
    churn_date : {"last_activity", "confirmed"}
        Non-contractual churn date: the last transaction (the customer is taken to
        have left after it, the usual survival convention) or the date the
        inactivity reached ``inactivity_days`` (the first day the churn is known).
    reason_lookback_days : int
        Signals (complaints, transfers out, balance falls) count when dated within
        this many days before the churn date.
    closure_reason_map : dict
        Renames closure reasons from the data (``holdings.close_reason``) into reason
        codes; reasons not listed pass through unchanged.
    price_complaint_kinds : list of str
        Complaint kinds that mean "price".
    transfer_out_channels : list of str
        Transaction channels that mean a transfer out to a competitor.
    falling_balance_threshold : float
        Symmetric relative change of total balance over the lookback at or below
        which "falling_balance" is a signal (in [-1, 0]).
    signal_order : list of str
        When several signals are present, the first in this order is the reason.
    fallback_reason : str, optional
        Reason when no closure reason and no signal is found; default "inactivity"
        (non-contractual) or "unknown" (contractual).

    Examples
    --------
    >>> d = ChurnDefinition(kind="non_contractual", inactivity_days=180)
    >>> d.inactivity_days, d.fallback
    (180, 'inactivity')
    """

    kind: Literal["contractual", "non_contractual", "silent", "combined"]
    inactivity_days: int = Field(365, gt=0)
    churn_date: Literal["last_activity", "confirmed"] = "last_activity"
    reason_lookback_days: int = Field(180, gt=0)
    closure_reason_map: dict[str, str] = Field(default_factory=lambda: {"fees": "price"})
    price_complaint_kinds: list[str] = Field(default_factory=lambda: ["fees", "price", "pricing"])
    transfer_out_channels: list[str] = Field(default_factory=lambda: ["transfer_out"])
    falling_balance_threshold: float = Field(-0.33, ge=-1.0, le=0.0)
    signal_order: list[Literal["competitor_transfer", "price", "complaint", "falling_balance"]] = \
        Field(default_factory=lambda: ["competitor_transfer", "price", "complaint",
                                       "falling_balance"])
    fallback_reason: str | None = None

    @property
    def fallback(self) -> str:
        """The reason used when nothing else is found."""
        if self.fallback_reason is not None:
            return self.fallback_reason
        return "unknown" if self.kind == "contractual" else "inactivity"


class LifecycleConfig(_Strict):
    """A complete lifecycle definition: stages, ordered rules, thresholds, churn.

    Rules fire in order: by ``priority`` (lower first) when the rules give one,
    else in list order. Rules with the same priority are allowed only when no
    customer matches more than one of them (checked on the data by
    :func:`assign_stages`, which names the rules otherwise). A customer matched by
    no rule gets ``default_stage`` with rule name ``default_rule``, so every
    customer gets exactly one stage. ``playbook`` (optional) is the preset's own
    stage actions (entries as in :func:`playbook_actions`, checked against
    ``stages``); without it the retail-bank playbook is used.

    Examples
    --------
    >>> cfg = LifecycleConfig.model_validate({
    ...     "kind": "non_contractual", "default_stage": "mature",
    ...     "rules": [{"name": "new", "stage": "onboarding", "when": "days_since_first_txn < 90"}],
    ...     "churn": {"kind": "non_contractual"}})
    >>> [r.name for _, r in cfg.ordered_rules()], cfg.default_rule
    (['new'], 'default')
    """

    name: str = "custom"
    description: str = ""
    kind: Literal["contractual", "non_contractual"]
    stages: list[str] = Field(default_factory=lambda: list(STANDARD_STAGES))
    params: dict[str, int | float | str | bool] = Field(default_factory=dict)
    rules: list[StageRule]
    default_stage: str
    default_rule: str = "default"
    churn: ChurnDefinition
    playbook: list[dict[str, Any]] | None = None

    @model_validator(mode="after")
    def _check(self) -> LifecycleConfig:
        problems = []
        if self.playbook is not None:  # the preset's own stage actions, checked on load
            from crmkit.lifecycle._playbooks import _validate

            try:
                _validate(self.playbook, self.stages)
            except ConfigError as exc:
                problems.append(str(exc))
        if len(set(self.stages)) != len(self.stages):
            dup = sorted({s for s in self.stages if self.stages.count(s) > 1})
            problems.append(f"stages are listed twice: {', '.join(map(repr, dup))}")
        for rule in self.rules:
            if rule.stage not in self.stages:
                problems.append(f"rule {rule.name!r} assigns unknown stage {rule.stage!r}."
                                f"{closest(rule.stage, self.stages)} Known stages: "
                                f"{', '.join(self.stages)}")
        if self.default_stage not in self.stages:
            problems.append(f"default_stage {self.default_stage!r} is not a known stage."
                            f"{closest(self.default_stage, self.stages)}")
        names = [r.name for r in self.rules] + [self.default_rule]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            problems.append(f"rule names must be unique; repeated: {', '.join(map(repr, dup))}")
        with_prio = [r.name for r in self.rules if r.priority is not None]
        if with_prio and len(with_prio) != len(self.rules):
            missing = [r.name for r in self.rules if r.priority is None]
            problems.append("either every rule or no rule has a 'priority'; these have none: "
                            + ", ".join(map(repr, missing)))
        if PREVIOUS_STAGE in self.params:
            problems.append(f"{PREVIOUS_STAGE!r} is reserved for the previous run's stage")
        if problems:
            raise ValueError("; ".join(problems))
        for rule in self.rules:  # syntax and safety of every condition, all at load time
            try:
                rule.compile(self.params)
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        return self

    def ordered_rules(self) -> list[tuple[int, StageRule]]:
        """(order key, rule) pairs in firing order."""
        if self.rules and self.rules[0].priority is not None:
            return sorted(((r.priority, r) for r in self.rules), key=lambda t: t[0])
        return list(enumerate(self.rules))

    def with_params(self, **params: Any) -> LifecycleConfig:
        """A copy with some thresholds changed (unknown names are errors).

        Examples
        --------
        >>> from crmkit.lifecycle import get_preset
        >>> get_preset("retail_bank").with_params(dormant_days=120).params["dormant_days"]
        120
        """
        unknown = [k for k in params if k not in self.params]
        if unknown:
            raise ConfigError(
                "; ".join(f"unknown parameter {k!r} of lifecycle config {self.name!r}."
                          f"{closest(k, self.params)}" for k in unknown)
                + f" Known parameters: {', '.join(sorted(self.params))}.")
        data = self.model_dump()
        data["params"] = {**data["params"], **params}
        return validate_config(data)


_format_errors = format_validation_error


def validate_config(data: Mapping[str, Any] | LifecycleConfig) -> LifecycleConfig:
    """Validate a mapping as a :class:`LifecycleConfig`, raising :class:`ConfigError`."""
    if isinstance(data, LifecycleConfig):
        return data
    try:
        return LifecycleConfig.model_validate(copy.deepcopy(dict(data)))
    except ValidationError as err:
        raise ConfigError(f"Invalid lifecycle config: {_format_errors(err)}") from None


def validate_churn_definition(data: Any) -> ChurnDefinition:
    """Validate a mapping (or pass through a model) as a :class:`ChurnDefinition`."""
    if isinstance(data, ChurnDefinition):
        return data
    if isinstance(data, LifecycleConfig):
        return data.churn
    if isinstance(data, str):
        from crmkit.lifecycle._presets import CHURN_PRESETS

        if data in CHURN_PRESETS:
            return ChurnDefinition.model_validate(copy.deepcopy(CHURN_PRESETS[data]))
        return load_config(data).churn
    try:
        return ChurnDefinition.model_validate(dict(data))
    except ValidationError as err:
        raise ConfigError(f"Invalid churn definition: {_format_errors(err)}") from None


def load_config(source: str | Path | Mapping[str, Any] | LifecycleConfig) -> LifecycleConfig:
    """Load a lifecycle config from a preset name, a TOML file, or a mapping.

    Parameters
    ----------
    source : str, path, mapping or LifecycleConfig
        A preset name (``"retail_bank"``, ``"retailer"``), a path to a TOML file
        (its ``[lifecycle]`` table if present, else the whole file), or a mapping.

    Returns
    -------
    LifecycleConfig

    Examples
    --------
    >>> load_config("retail_bank").kind
    'contractual'
    >>> load_config({"kind": "contractual", "rules": [{"name": "x", "stage": "dormnt",
    ...              "when": "a > 1"}], "default_stage": "growth",
    ...              "churn": {"kind": "contractual"}})
    Traceback (most recent call last):
    ...
    crmkit.exceptions.ConfigError: Invalid lifecycle config: rule 'x' assigns unknown stage 'dormnt'. Did you mean 'dormant'? ...
    """
    from crmkit.lifecycle._presets import PRESETS

    if isinstance(source, LifecycleConfig):
        return source
    if isinstance(source, Mapping):
        return validate_config(source)
    text = str(source)
    if isinstance(source, str) and source in PRESETS:
        return validate_config(PRESETS[source])
    path = Path(text)
    if path.suffix == ".toml" or path.exists():
        if not path.exists():
            raise ConfigError(f"Lifecycle config file {path} does not exist.")
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        return validate_config(data.get("lifecycle", data))
    raise ConfigError(f"Unknown lifecycle preset {text!r}.{closest(text, PRESETS)} "
                      f"Presets: {', '.join(sorted(PRESETS))}; or give a path to a TOML file.")
