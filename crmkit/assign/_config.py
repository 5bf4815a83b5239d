"""Configuration of the assignment solver and of the call lists (the ``[assign]`` and
``[calls]`` sections of a pipeline TOML), and the tier-to-level eligibility presets."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import Field, field_validator, model_validator

from crmkit._config import StrictModel, closest
from crmkit.schema import MANAGER_LEVELS

__all__ = [
    "AssignConfig",
    "CallsConfig",
    "ELIGIBILITY_PRESETS",
    "TERRITORY_PRESET",
    "resolve_eligibility",
]

Territory = Literal["branch", "region", "anywhere"]

ELIGIBILITY_PRESETS: dict[str, dict[str, tuple[str, ...]]] = {
    # DESIGN 1: Diamond -> private-banking RM, Platinum -> wealth-centre RM,
    # Gold -> outlet (branch) RM; below Gold no named RM.
    "retail_bank": {
        "Diamond": ("private_banking",),
        "Platinum": ("wealth",),
        "Gold": ("branch",),
    },
    # The same owners first, but a more senior level may serve a tier when the
    # preferred level is full (the solver prefers the first level listed).
    "retail_bank_senior": {
        "Diamond": ("private_banking",),
        "Platinum": ("wealth", "private_banking"),
        "Gold": ("branch", "wealth"),
    },
}
"""Tier -> RM levels allowed to own it, preferred level first. Tiers not listed get no named RM."""

TERRITORY_PRESET: dict[str, str] = {
    "private_banking": "anywhere",  # private bankers sit centrally and serve every branch
    "wealth": "branch",
    "branch": "branch",
}
"""Where each level may serve customers: same ``branch``, same ``region`` or ``anywhere``."""


def resolve_eligibility(eligibility: str | Mapping[str, object]) -> dict[str, tuple[str, ...]]:
    """The eligibility table for a preset name or an explicit mapping, validated.

    Examples
    --------
    >>> resolve_eligibility("retail_bank_senior")["Gold"]
    ('branch', 'wealth')
    >>> resolve_eligibility({"Gold": ["branch", "privat_banking"]})
    Traceback (most recent call last):
    ...
    ValueError: The 'eligibility' parameter must map tiers to levels among 'private_banking', 'wealth', 'branch'. Got unknown level 'privat_banking' for tier 'Gold' instead. Did you mean 'private_banking'?
    """
    if isinstance(eligibility, str):
        if eligibility not in ELIGIBILITY_PRESETS:
            raise ValueError(
                f"The 'eligibility' parameter must be one of "
                f"{', '.join(map(repr, ELIGIBILITY_PRESETS))} or a mapping of tier to levels. "
                f"Got {eligibility!r} instead.{closest(eligibility, ELIGIBILITY_PRESETS)}")
        return dict(ELIGIBILITY_PRESETS[eligibility])
    if not isinstance(eligibility, Mapping) or not eligibility:
        raise ValueError("The 'eligibility' parameter must be a preset name or a non-empty mapping "
                         f"of tier to levels. Got {eligibility!r} instead.")
    out: dict[str, tuple[str, ...]] = {}
    for tier, levels in eligibility.items():
        levels = (levels,) if isinstance(levels, str) else tuple(levels)  # type: ignore[arg-type]
        if not levels:
            raise ValueError(f"The 'eligibility' parameter must list at least one level per tier. "
                             f"Got no level for tier {tier!r} instead.")
        for lvl in levels:
            if lvl not in MANAGER_LEVELS:
                raise ValueError(
                    f"The 'eligibility' parameter must map tiers to levels among "
                    f"{', '.join(map(repr, MANAGER_LEVELS))}. Got unknown level {lvl!r} for tier "
                    f"{tier!r} instead.{closest(str(lvl), MANAGER_LEVELS)}")
        if len(set(levels)) != len(levels):
            raise ValueError(f"The 'eligibility' parameter must not repeat a level. Got {list(levels)!r} "
                             f"for tier {tier!r} instead.")
        out[str(tier)] = levels
    return out


def resolve_territory(territory: str | Mapping[str, str]) -> dict[str, str]:
    """Territory rule per level (one rule for all levels when a string is given)."""
    valid = ("branch", "region", "anywhere")
    if isinstance(territory, str):
        if territory not in valid:
            raise ValueError(f"The 'territory' parameter must be one of 'branch', 'region', "
                             f"'anywhere' or a mapping of level to one of them. Got {territory!r} instead.")
        return {lvl: territory for lvl in MANAGER_LEVELS}
    out = dict(TERRITORY_PRESET)
    for lvl, rule in dict(territory).items():
        if lvl not in MANAGER_LEVELS:
            raise ValueError(f"The 'territory' parameter must be keyed by levels among "
                             f"{', '.join(map(repr, MANAGER_LEVELS))}. Got {lvl!r} instead."
                             f"{closest(str(lvl), MANAGER_LEVELS)}")
        if rule not in valid:
            raise ValueError(f"The 'territory' parameter must map levels to 'branch', 'region' or "
                             f"'anywhere'. Got {rule!r} for level {lvl!r} instead.")
        out[lvl] = rule
    return out


class AssignConfig(StrictModel):
    """The ``[assign]`` section: rules and weights of the RM assignment.

    Every field is a keyword of :class:`crmkit.assign.RMAssigner` of the same name.

    Examples
    --------
    >>> from crmkit._config import parse_config
    >>> cfg = parse_config(AssignConfig, {"team_size": 2, "continuity": 50}, "assign")
    >>> cfg.team_size, cfg.eligibility
    (2, 'retail_bank')
    >>> parse_config(AssignConfig, {"team_sise": 2}, "assign")
    Traceback (most recent call last):
    ...
    crmkit.exceptions.ConfigError: Invalid assign config: unknown key 'team_sise' in AssignConfig. Did you mean 'team_size'? Valid keys: ...
    """

    eligibility: str | dict[str, list[str]] = "retail_bank"
    territory: Territory | dict[str, Territory] = Field(default_factory=lambda: dict(TERRITORY_PRESET))
    capacity: Literal["count", "workload", "both"] = "count"
    team_size: int = Field(1, ge=1, le=5)
    team_tiers: list[str] = Field(default_factory=lambda: ["Diamond", "Platinum"])
    continuity: float = Field(20.0, ge=0)
    backup_continuity: float = Field(0.75, ge=0, le=1)
    level_weight: float = Field(1.0, ge=0)
    distance_weight: float = Field(1.0, ge=0)
    balance_weight: float = Field(1.0, ge=0)
    balance_bands: list[tuple[float, float]] = Field(
        default_factory=lambda: [(0.5, 1.0), (0.75, 2.0), (0.9, 4.0)])
    keep_valid: bool = False
    max_candidates: int | None = Field(None, ge=1)
    max_pairs: int | None = Field(25_000_000, ge=1)
    cost_scale: int = Field(1000, ge=1)
    solver: Literal["auto", "flow", "mip"] = "auto"
    time_limit: float = Field(60.0, gt=0)
    mip_rel_gap: float = Field(1e-4, ge=0)
    decompose: Literal["none", "region", "branch"] = "none"
    decompose_bound: bool = True

    @field_validator("eligibility")
    @classmethod
    def _elig(cls, v):
        resolve_eligibility(v)
        return v

    @field_validator("territory")
    @classmethod
    def _terr(cls, v):
        resolve_territory(v)
        return v

    @field_validator("balance_bands")
    @classmethod
    def _bands(cls, v):
        _check_bands(v, "AssignConfig")
        return v

    def estimator_params(self) -> dict:
        """The fields as keyword arguments of :class:`RMAssigner`."""
        return self.model_dump()


def _check_bands(bands, owner: str) -> None:
    prev_t, prev_c = 0.0, 0.0
    for item in bands:
        t, c = item
        if not (prev_t < t < 1) or c < prev_c:
            raise ValueError(
                f"The 'balance_bands' parameter of {owner} must be (utilisation, cost) pairs with "
                f"utilisations increasing in (0, 1) and costs not decreasing (a convex penalty). "
                f"Got {list(bands)!r} instead.")
        prev_t, prev_c = t, c


class CallsConfig(StrictModel):
    """The ``[calls]`` section: priority score, triggers, cadence and contact rules.

    Examples
    --------
    >>> CallsConfig().cadence_days["Diamond"]
    30
    >>> from crmkit._config import parse_config
    >>> parse_config(CallsConfig, {"cooldown_day": 3}, "calls")
    Traceback (most recent call last):
    ...
    crmkit.exceptions.ConfigError: Invalid calls config: unknown key 'cooldown_day' in CallsConfig. Did you mean 'cooldown_days'? Valid keys: ...
    """

    top_n: int = Field(20, ge=1)
    # priority = value_part ** w_value * risk_part ** w_risk * offer_part ** w_offer
    value_col: str | None = "financial_assets"
    risk_col: str | None = "churn_probability"
    offer_col: str | None = "offer_value"
    value_weight: float = Field(1.0, ge=0)
    risk_weight: float = Field(1.0, ge=0)
    offer_weight: float = Field(1.0, ge=0)
    value_scale: float = Field(10_000_000.0, gt=1)
    offer_scale: float = Field(10_000.0, gt=1)
    part_floor: float = Field(0.01, gt=0, le=1)
    # cadence and triggers
    cadence_days: dict[str, int] = Field(
        default_factory=lambda: {"Diamond": 30, "Platinum": 60, "Gold": 90})
    new_customer_days: int = Field(30, ge=0)
    outflow_col: str = "financial_assets_trend_90d"
    outflow_threshold: float = Field(-0.2, lt=0)
    renewal_col: str = "next_maturity_date"
    renewal_days: int = Field(30, ge=0)
    birthday_col: str = "birth_date"
    birthday_days: int = Field(7, ge=0)
    risk_threshold: float = Field(0.5, ge=0, le=1)
    # a capacity-sized flag (the churn step's churn_flag) fires high_risk instead of the
    # fixed risk_threshold when the customer rows have that column
    risk_flag_col: str | None = "churn_flag"
    stages: list[str] = Field(default_factory=lambda: ["onboarding", "decline", "reactivated"])
    # contact rules
    cooldown_days: int = Field(7, ge=0)
    rejected_offer_days: int = Field(90, ge=0)
    channels: list[str] = Field(default_factory=lambda: ["phone", "visit", "email", "sms"])
    opt_out_columns: dict[str, str | None] = Field(default_factory=lambda: {
        "phone": "opt_out_phone", "visit": "opt_out_phone", "email": "opt_out_email",
        "sms": "opt_out_sms", "branch": None})
    default_contact_window: str = "09:00-18:00"
    # measurable effect
    campaign: str = "daily_calls"
    control_share: float = Field(0.0, ge=0, lt=1)
    # branch-staff list
    hidden_vip_n: int = Field(100, ge=1)

    @model_validator(mode="after")
    def _channels_known(self):
        unknown = [c for c in self.channels if c not in self.opt_out_columns]
        if unknown:
            raise ValueError(f"channels {unknown!r} have no entry in opt_out_columns; map each "
                             f"channel to its opt-out column (or null when none applies)")
        return self
