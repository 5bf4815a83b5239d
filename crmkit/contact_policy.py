"""One contact policy for every output that names a channel.

Lifecycle actions, call lists and segment exports all end in "contact this
customer through this channel". Before any of them leaves crmkit it goes through
:func:`apply_contact_policy`, which splits the intended contacts into those
allowed and those suppressed, each suppressed row with its reason. Nothing is
dropped silently: ``allowed`` plus ``suppressed`` is every intended contact, and
:meth:`ContactSplit.summary` gives the counts for the run manifest.

The rules, in the order a reason is given (the first that applies):

1. the customer is not in the customers table (nothing is known about consent);
2. the customer's ``do_not_contact`` flag is set (every channel);
3. the customer opted out of the channel (``opt_out_<channel>``: ``opt_out_sms``,
   ``opt_out_email``, ``opt_out_phone``; a null there is no recorded consent);
4. with a scheduled time (``scheduled_at``) on a timed channel (phone, sms, visit):
   outside the customer's agreed ``contact_window`` ("HH:MM-HH:MM"), or inside the
   policy's quiet hours.

Channel names are normalised (``"call"`` is ``phone``, ``"e-mail"`` is ``email``,
``"text"`` is ``sms``); an unknown channel is an error, so that a misspelt channel
can never slip past an opt-out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl
from pydantic import field_validator

from crmkit._config import StrictModel, closest
from crmkit._frames import Output, to_output, to_polars
from crmkit.exceptions import SchemaError

__all__ = ["CHANNELS", "CHANNEL_ALIASES", "ContactPolicy", "ContactSplit",
           "apply_contact_policy", "canonical_channel"]

CHANNELS = ("sms", "email", "phone", "mail", "visit", "branch")
"""Contact channels: remote (sms, email, phone, postal mail), an RM's visit, and a
meeting at the branch."""

CHANNEL_ALIASES = {
    "call": "phone", "telephone": "phone", "tel": "phone", "phone_call": "phone",
    "e-mail": "email", "mail_electronic": "email",
    "text": "sms", "text_message": "sms",
    "post": "mail", "letter": "mail",
    "in_person": "visit", "meeting": "visit",
}
"""Other names of the channels (lower case), as found in contact logs and playbooks."""

REASON_COLUMN = "suppression_reason"
_WINDOW = re.compile(r"^([01]\d|2[0-3]):[0-5]\d-(([01]\d|2[0-3]):[0-5]\d|24:00)$")
_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def _minutes(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


class ContactPolicy(StrictModel):
    """Settings of the contact policy (a TOML table too).

    Parameters
    ----------
    channel_aliases : dict of str to str
        More names for channels, on top of :data:`CHANNEL_ALIASES`.
    quiet_hours : list of two "HH:MM", or None
        ``[start, end)`` in which timed channels are not used; it may wrap
        midnight (``["21:00", "08:00"]``, the default). None: no quiet hours.
    timed_channels : list of str
        Channels that reach the customer at a moment (quiet hours and contact
        windows apply to them when a contact has a scheduled time).

    Examples
    --------
    >>> ContactPolicy().canonical("Call")
    'phone'
    """

    channel_aliases: dict[str, str] = {}
    quiet_hours: list[str] | None = ["21:00", "08:00"]
    timed_channels: list[str] = ["phone", "sms", "visit"]

    @field_validator("channel_aliases")
    @classmethod
    def _aliases(cls, value: dict[str, str]) -> dict[str, str]:
        for name, channel in value.items():
            if channel not in CHANNELS:
                raise ValueError(f"alias {name!r} names unknown channel {channel!r}."
                                 f"{closest(channel, CHANNELS)} Channels: {', '.join(CHANNELS)}.")
        return {k.lower(): v for k, v in value.items()}

    @field_validator("quiet_hours")
    @classmethod
    def _quiet(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and (len(value) != 2 or not all(_TIME.match(v) for v in value)):
            raise ValueError(f"must be two times 'HH:MM' (start, end); got {value!r}.")
        return value

    @field_validator("timed_channels")
    @classmethod
    def _timed(cls, value: list[str]) -> list[str]:
        for channel in value:
            if channel not in CHANNELS:
                raise ValueError(f"unknown channel {channel!r}.{closest(channel, CHANNELS)}")
        return value

    def aliases(self) -> dict[str, str]:
        """Every name (lower case) to its channel."""
        return {**{c: c for c in CHANNELS}, **CHANNEL_ALIASES, **self.channel_aliases}

    def canonical(self, channel: str) -> str:
        """The channel a name stands for; an unknown name is a ``ValueError``."""
        return canonical_channel(channel, self)


def canonical_channel(channel: str, policy: ContactPolicy | None = None) -> str:
    """The channel ``channel`` names (``"Call"`` -> ``"phone"``), or a ``ValueError``.

    Examples
    --------
    >>> canonical_channel("E-Mail")
    'email'
    >>> canonical_channel("fax")
    Traceback (most recent call last):
    ...
    ValueError: Unknown contact channel 'fax'. Channels: sms, email, phone, mail, visit, branch (other names: call, e-mail, in_person, letter, mail_electronic, meeting, phone_call, post, tel, telephone, text, text_message).
    """
    names = (policy or ContactPolicy()).aliases()
    key = str(channel).strip().lower()
    if key not in names:
        others = sorted(set(names) - set(CHANNELS))
        raise ValueError(f"Unknown contact channel {channel!r}.{closest(key, names)} Channels: "
                         f"{', '.join(CHANNELS)} (other names: {', '.join(others)}).")
    return names[key]


@dataclass
class ContactSplit:
    """Intended contacts split by the contact policy.

    Attributes
    ----------
    allowed : DataFrame
        The contacts that may go out, columns as given.
    suppressed : DataFrame
        The others, columns as given plus ``suppression_reason``.
    """

    allowed: Any
    suppressed: Any

    def counts(self) -> pl.DataFrame:
        """Suppressed contacts per reason (``reason``, ``n``), most frequent first."""
        frame = to_polars(self.suppressed, "suppressed")
        return (frame.group_by(pl.col(REASON_COLUMN).alias("reason")).len("n")
                .sort(["n", "reason"], descending=[True, False]))

    def summary(self) -> dict[str, Any]:
        """Counts for a run manifest: intended, allowed, suppressed, and by reason.

        Examples
        --------
        >>> import polars as pl
        >>> cust = pl.DataFrame({"customer_id": ["a", "b"], "opt_out_sms": [True, False]})
        >>> todo = pl.DataFrame({"customer_id": ["a", "b", "c"], "channel": ["sms"] * 3})
        >>> apply_contact_policy(todo, cust).summary()
        {'intended': 3, 'allowed': 1, 'suppressed': 2, 'by_reason': {'customer not in the customers table': 1, 'opted out of sms': 1}}
        """
        allowed = to_polars(self.allowed, "allowed").height
        suppressed = to_polars(self.suppressed, "suppressed").height
        return {"intended": allowed + suppressed, "allowed": allowed, "suppressed": suppressed,
                "by_reason": {r: int(n) for r, n in self.counts().iter_rows()}}


def _policy(policy: ContactPolicy | Mapping[str, Any] | None) -> ContactPolicy:
    if policy is None:
        return ContactPolicy()
    if isinstance(policy, ContactPolicy):
        return policy
    from crmkit._config import parse_config

    return parse_config(ContactPolicy, policy, "contact policy")


def apply_contact_policy(contacts: Any, customers: Any, *,
                         policy: ContactPolicy | Mapping[str, Any] | None = None,
                         channel_col: str = "channel", customer_col: str = "customer_id",
                         time_col: str = "scheduled_at", output: Output = "polars"
                         ) -> ContactSplit:
    """Split intended contacts into allowed and suppressed-with-reason (see the module docs).

    Parameters
    ----------
    contacts : DataFrame
        One row per intended contact: ``customer_col``, ``channel_col`` and, when
        known, ``time_col`` (a datetime in the bank's zone). Other columns are kept.
    customers : DataFrame
        The customers table: ``customer_col`` and any of ``do_not_contact``,
        ``opt_out_<channel>``, ``contact_window`` ("HH:MM-HH:MM", null: any time).
    policy : ContactPolicy or mapping, optional
    channel_col, customer_col, time_col : str
    output : {"polars", "pandas"}

    Returns
    -------
    ContactSplit
        ``allowed`` and ``suppressed`` (with ``suppression_reason``), each in the
        order of ``contacts``.

    Raises
    ------
    ValueError
        A channel that is not a known channel or alias (named, with the closest).

    Examples
    --------
    >>> import polars as pl
    >>> customers = pl.DataFrame({"customer_id": ["a", "b"], "opt_out_email": [True, False],
    ...                           "do_not_contact": [False, True]})
    >>> todo = pl.DataFrame({"customer_id": ["a", "a", "b"], "channel": ["email", "call", "sms"]})
    >>> split = apply_contact_policy(todo, customers)
    >>> split.allowed.rows()
    [('a', 'call')]
    >>> split.suppressed.rows()
    [('a', 'email', 'opted out of email'), ('b', 'sms', 'do not contact')]
    """
    policy = _policy(policy)
    todo = to_polars(contacts, "contacts")
    cust = to_polars(customers, "customers")
    for frame, what, cols in ((todo, "contacts", (customer_col, channel_col)),
                              (cust, "customers", (customer_col,))):
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise SchemaError(f"apply_contact_policy: the {what} table has no column "
                              f"{', '.join(map(repr, missing))}; it has {', '.join(frame.columns)}.")
    names = policy.aliases()
    raw = todo[channel_col].cast(pl.String)
    unknown = sorted(set(raw.drop_nulls().str.strip_chars().str.to_lowercase().unique())
                     - set(names))
    if unknown:
        canonical_channel(unknown[0], policy)  # raises, naming the first unknown channel
    channel = raw.str.strip_chars().str.to_lowercase().replace_strict(names, default=None)

    attrs = [pl.col(customer_col), pl.lit(True).alias("__known")]
    if "do_not_contact" in cust.columns:
        attrs.append(pl.col("do_not_contact").cast(pl.Boolean).alias("__dnc"))
    opt_outs = [c for c in CHANNELS if f"opt_out_{c}" in cust.columns]
    attrs += [pl.col(f"opt_out_{c}").cast(pl.Boolean).alias(f"__oo_{c}") for c in opt_outs]
    has_window = "contact_window" in cust.columns
    if has_window:
        attrs.append(pl.col("contact_window").cast(pl.String).alias("__win"))
    per_customer = cust.select(attrs).unique(customer_col, keep="first", maintain_order=True)
    joined = (todo.select(pl.col(customer_col)).with_columns(channel.alias("__ch"))
              .join(per_customer, on=customer_col, how="left", maintain_order="left"))

    ch = pl.col("__ch")
    rules: list[tuple[pl.Expr, pl.Expr]] = [
        (pl.col("__known").is_null(), pl.lit("customer not in the customers table")),
        (ch.is_null(), pl.lit("no channel")),
    ]
    if "do_not_contact" in cust.columns:
        rules.append((pl.col("__dnc").fill_null(False), pl.lit("do not contact")))
    for c in opt_outs:
        flag = pl.col(f"__oo_{c}")
        rules.append(((ch == c) & flag.is_null(), pl.lit(f"no recorded consent for {c}")))
        rules.append(((ch == c) & flag.fill_null(False), pl.lit(f"opted out of {c}")))
    if time_col in todo.columns:
        minute = pl.lit(todo[time_col]).dt.hour().cast(pl.Int32) * 60 \
            + pl.lit(todo[time_col]).dt.minute().cast(pl.Int32)
        timed = ch.is_in(policy.timed_channels) & minute.is_not_null()
        if has_window:
            window = pl.col("__win").str.strip_chars()
            ok = window.str.contains(_WINDOW.pattern)
            start = window.str.slice(0, 2).cast(pl.Int32, strict=False) * 60 \
                + window.str.slice(3, 2).cast(pl.Int32, strict=False)
            end = window.str.slice(6, 2).cast(pl.Int32, strict=False) * 60 \
                + window.str.slice(9, 2).cast(pl.Int32, strict=False)
            inside = pl.when(start <= end).then((minute >= start) & (minute < end)) \
                .otherwise((minute >= start) | (minute < end))
            rules.append((timed & window.is_not_null() & ~ok,
                          pl.lit("contact window not readable (want 'HH:MM-HH:MM')")))
            rules.append((timed & ok & ~inside,
                          pl.lit("outside the customer's contact window ") + window))
        if policy.quiet_hours is not None:
            q0, q1 = (_minutes(t) for t in policy.quiet_hours)
            quiet = (minute >= q0) & (minute < q1) if q0 <= q1 else (minute >= q0) | (minute < q1)
            rules.append((timed & quiet, pl.lit(f"quiet hours {policy.quiet_hours[0]}-"
                                                f"{policy.quiet_hours[1]}")))
    reason = pl.when(rules[0][0]).then(rules[0][1])
    for cond, text in rules[1:]:
        reason = reason.when(cond.fill_null(False)).then(text)
    reasons = joined.select(reason.otherwise(None).alias(REASON_COLUMN)).to_series()
    bad = reasons.is_not_null()
    allowed = todo.filter(~bad)
    suppressed = todo.filter(bad).with_columns(reasons.filter(bad))
    return ContactSplit(to_output(allowed, output), to_output(suppressed, output))
