"""Playbooks: the standard service actions each stage (and optionally tier) triggers.

Actions name a channel, so with the customers table they go through the one
contact policy (:mod:`crmkit.contact_policy`): opted-out channels and
do-not-contact customers are suppressed with a reason, never dropped silently.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import polars as pl
from pydantic import Field, ValidationError, field_validator

from crmkit._frames import Output, to_lazy, to_output, to_polars
from crmkit._params import check_date
from crmkit.contact_policy import ContactPolicy, apply_contact_policy, canonical_channel
from crmkit.exceptions import ConfigError, SchemaError
from crmkit.lifecycle._config import STANDARD_STAGES, _format_errors, _Strict
from crmkit.lifecycle._expr import closest

__all__ = ["DEFAULT_PLAYBOOK", "PlaybookEntry", "default_playbook", "playbook_actions"]


class PlaybookEntry(_Strict):
    """One standard action: for customers in ``stage`` (and ``tier``, if given).

    Examples
    --------
    >>> PlaybookEntry(stage="decline", action="retention_call").due_days
    14
    """

    stage: str
    tier: str | None = None
    action: str
    channel: str = "phone"
    priority: int = Field(3, ge=1, le=9)
    due_days: int = Field(14, ge=0)
    description: str = ""

    @field_validator("channel")
    @classmethod
    def _channel(cls, value: str) -> str:
        return canonical_channel(value)  # "call" is phone: one name per channel


DEFAULT_PLAYBOOK: tuple[dict[str, Any], ...] = (
    {"stage": "prospect", "action": "invitation", "channel": "sms", "priority": 5,
     "due_days": 30, "description": "invite to open a first product"},
    {"stage": "onboarding", "action": "welcome_call", "channel": "phone", "priority": 2,
     "due_days": 7, "description": "welcome call by the assigned RM"},
    {"stage": "onboarding", "action": "needs_review", "channel": "branch", "priority": 3,
     "due_days": 30, "description": "needs and risk-profile review, first cross-sell"},
    {"stage": "growth", "action": "product_review", "channel": "phone", "priority": 3,
     "due_days": 30, "description": "review holdings, propose suitable products"},
    {"stage": "mature", "action": "relationship_review", "channel": "phone", "priority": 4,
     "due_days": 90, "description": "periodic relationship and portfolio review"},
    {"stage": "decline", "action": "retention_call", "channel": "phone", "priority": 1,
     "due_days": 7, "description": "call to understand the fall in activity or assets"},
    {"stage": "decline", "action": "retention_offer", "channel": "phone", "priority": 2,
     "due_days": 14, "description": "retention offer (pricing, service upgrade)"},
    {"stage": "dormant", "action": "win_back", "channel": "sms", "priority": 3,
     "due_days": 30, "description": "reactivation campaign for open but unused products"},
    {"stage": "churned", "action": "win_back", "channel": "email", "priority": 4,
     "due_days": 60, "description": "win-back offer to a former customer"},
    {"stage": "churned", "action": "exit_survey", "channel": "email", "priority": 5,
     "due_days": 30, "description": "ask why the customer left (feeds reason codes)"},
    {"stage": "reactivated", "action": "welcome_back_call", "channel": "phone", "priority": 2,
     "due_days": 7, "description": "welcome back, confirm needs"},
    {"stage": "decline", "tier": "Diamond", "action": "senior_rm_visit", "channel": "visit",
     "priority": 1, "due_days": 3, "description": "private-banking RM visits in person"},
    {"stage": "decline", "tier": "Platinum", "action": "senior_rm_visit", "channel": "visit",
     "priority": 1, "due_days": 7, "description": "wealth-centre RM visits in person"},
)
"""The retail-bank playbook: generic stage actions plus tier-specific overrides."""


def default_playbook(output: Output = "polars"):
    """The default playbook as a table (stage, tier, action, channel, priority, due_days).

    Examples
    --------
    >>> default_playbook().filter(stage="onboarding")["action"].to_list()
    ['welcome_call', 'needs_review']
    """
    return to_output(_frame(_validate(DEFAULT_PLAYBOOK, STANDARD_STAGES)), output)


def _validate(entries: Any, stages: Sequence[str]) -> list[PlaybookEntry]:
    if isinstance(entries, (pl.DataFrame, pl.LazyFrame)) or hasattr(entries, "to_dict"):
        entries = to_polars(entries, "playbook").to_dicts()
    out, problems = [], []
    for i, e in enumerate(entries):
        try:
            entry = e if isinstance(e, PlaybookEntry) else PlaybookEntry.model_validate(
                {k: v for k, v in dict(e).items() if v is not None or k != "tier"})
        except ValidationError as err:
            problems.append(f"entry {i}: {_format_errors(err)}")
            continue
        if entry.stage not in stages:
            problems.append(f"entry {i} names unknown stage {entry.stage!r}."
                            f"{closest(entry.stage, stages)}")
        out.append(entry)
    if problems:
        raise ConfigError("Invalid playbook: " + "; ".join(problems))
    return out


def _frame(entries: list[PlaybookEntry]) -> pl.DataFrame:
    return pl.DataFrame(
        [e.model_dump() for e in entries],
        schema={"stage": pl.String, "tier": pl.String, "action": pl.String, "channel": pl.String,
                "priority": pl.Int64, "due_days": pl.Int64, "description": pl.String},
    )


def playbook_actions(stages: Any, *, playbook: Any = None, tiers: Any = None,
                     stage_names: Sequence[str] = STANDARD_STAGES,
                     as_of: dt.date | str | None = None, customers: Any = None,
                     contact_policy: ContactPolicy | dict | None = None,
                     output: Output = "polars"):
    """The standard actions for each customer, from their stage and tier.

    For each customer the playbook entries of their stage that name their tier are
    used; when none does, the stage's generic entries (no tier) are. A stage
    without entries yields no action.

    With ``customers`` the actions go through the contact policy
    (:func:`crmkit.contact_policy.apply_contact_policy`) and the result is a
    :class:`~crmkit.contact_policy.ContactSplit`: ``allowed`` holds the actions
    that may go out, ``suppressed`` the others with their ``suppression_reason``
    (opted out of the channel, do not contact, unknown customer), and
    ``summary()`` the counts for the manifest. Without ``customers`` the result
    is the plan before any consent check: not to be sent as it is.

    Parameters
    ----------
    stages : DataFrame
        ``customer_id``, ``stage`` (as from :func:`assign_stages`), optionally ``tier``.
    playbook : list of dict or DataFrame, optional
        Entries with ``stage``, ``action`` and optionally ``tier``, ``channel``,
        ``priority`` (1 = most urgent), ``due_days``, ``description``; default
        :data:`DEFAULT_PLAYBOOK`.
    tiers : DataFrame, optional
        ``customer_id``, ``tier`` (e.g. the VIP tiers of ``crmkit.value``), joined
        when ``stages`` has no ``tier`` column.
    stage_names : sequence of str
        Valid stages (entries naming another stage are an error).
    as_of : date, optional
        Run date; ``due_date = as_of + due_days``. Defaults to ``stages.as_of``
        when present.
    customers : DataFrame, optional
        The customers table (``opt_out_sms``, ``opt_out_email``,
        ``opt_out_phone``, ``do_not_contact``, ...): apply the contact policy.
    contact_policy : ContactPolicy or dict, optional
        Policy settings (default :class:`~crmkit.contact_policy.ContactPolicy`).

    Returns
    -------
    DataFrame or ContactSplit
        ``customer_id``, ``stage``, ``tier``, ``action``, ``channel``,
        ``action_priority``, ``due_date`` (if a date is known), ``description``;
        sorted by customer and priority: ready to be carried by call lists. With
        ``customers``: a ``ContactSplit`` of such tables.

    Examples
    --------
    >>> import polars as pl
    >>> st = pl.DataFrame({"customer_id": ["a", "b"], "stage": ["decline", "decline"],
    ...                    "tier": ["Diamond", "Gold"]})
    >>> playbook_actions(st).select("customer_id", "action").rows()
    [('a', 'senior_rm_visit'), ('b', 'retention_call'), ('b', 'retention_offer')]
    >>> customers = pl.DataFrame({"customer_id": ["a", "b"], "opt_out_phone": [False, True]})
    >>> split = playbook_actions(st, customers=customers)
    >>> split.allowed.select("customer_id", "action", "channel").rows()
    [('a', 'senior_rm_visit', 'visit')]
    >>> split.suppressed.select("action", "suppression_reason").rows()
    [('retention_call', 'opted out of phone'), ('retention_offer', 'opted out of phone')]
    """
    entries = _frame(_validate(DEFAULT_PLAYBOOK if playbook is None else playbook, stage_names))
    lf = to_lazy(stages, "stages")
    names = lf.collect_schema().names()
    if not {"customer_id", "stage"} <= set(names):
        raise SchemaError("playbook_actions: 'stages' needs customer_id and stage columns; "
                          f"it has {', '.join(names)}.")
    if "tier" not in names:
        if tiers is not None:
            lf = lf.join(to_lazy(tiers, "tiers").select("customer_id", pl.col("tier").cast(pl.String)),
                         on="customer_id", how="left")
        else:
            lf = lf.with_columns(pl.lit(None, pl.String).alias("tier"))
    if as_of is not None:
        date = pl.lit(check_date(as_of, "as_of", "playbook_actions"), pl.Date)
    elif "as_of" in names:
        date = pl.col("as_of").cast(pl.Date)
    else:
        date = None
    base = lf.select("customer_id", pl.col("stage").cast(pl.String),
                     pl.col("tier").cast(pl.String),
                     *([date.alias("__date")] if date is not None else []))
    specific = entries.filter(pl.col("tier").is_not_null()).lazy()
    generic = entries.filter(pl.col("tier").is_null()).drop("tier").lazy()
    hit = base.join(specific, on=["stage", "tier"], how="inner")
    has_specific = hit.select("customer_id").unique().with_columns(pl.lit(True).alias("__sp"))
    rest = (base.join(has_specific, on="customer_id", how="left")
            .filter(pl.col("__sp").is_null()).drop("__sp")
            .join(generic, on="stage", how="inner"))
    cols = ["customer_id", "stage", "tier", "action", "channel",
            pl.col("priority").alias("action_priority")]
    if date is not None:
        cols.append((pl.col("__date") + pl.duration(days=pl.col("due_days"))).alias("due_date"))
    cols.append("description")
    out = (pl.concat([hit.select(cols), rest.select(cols)])
           .sort("customer_id", "action_priority", "action").collect())
    if customers is not None:
        return apply_contact_policy(out, customers, policy=contact_policy, output=output)
    return to_output(out, output)
