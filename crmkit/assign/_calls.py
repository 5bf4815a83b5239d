"""Priority scores, per-RM daily call lists and the branch-staff list."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

import polars as pl

from crmkit._config import parse_config
from crmkit._frames import Output, to_output, to_polars
from crmkit._params import check_date
from crmkit.assign._config import CallsConfig
from crmkit.assign._control import control_group
from crmkit.exceptions import SchemaError

__all__ = ["CallListResult", "branch_staff_list", "build_call_lists", "priority_score"]

_URGENCY = {"new_customer": 3, "large_outflow": 2, "renewal_due": 2, "birthday": 2,
            "high_risk": 1, "stage": 1, "cadence_due": 1}


def _cfg(config: Any) -> CallsConfig:
    return parse_config(CallsConfig, config or {}, "calls")


def _need(df: pl.DataFrame, cols, what: str, table: str = "customers") -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise SchemaError(f"{what}: table {table!r} has no column {', '.join(map(repr, missing))}; it has "
                          f"{', '.join(df.columns)}. Set the column name in the config (or null to "
                          f"leave that part out).")


# ----------------------------------------------------------------------------------------
# priority
# ----------------------------------------------------------------------------------------

def _priority_expr(cfg: CallsConfig, columns: list[str]) -> pl.Expr:
    floor = cfg.part_floor
    expr = pl.lit(1.0)
    parts = [(cfg.value_col, cfg.value_weight, cfg.value_scale, "log"),
             (cfg.risk_col, cfg.risk_weight, None, "prob"),
             (cfg.offer_col, cfg.offer_weight, cfg.offer_scale, "log")]
    for col, w, scale, kind in parts:
        if col is None or w == 0:
            continue
        if col not in columns:
            raise SchemaError(f"priority_score: table 'customers' has no column {col!r}; it has "
                              f"{', '.join(columns)}. Name the column in the config or set it to null "
                              f"(or its weight to 0) to leave that part out.")
        x = pl.col(col).cast(pl.Float64)
        if kind == "log":
            part = x.clip(lower_bound=0).log1p() / math.log1p(scale)
        else:
            part = x
        part = part.fill_nan(None).fill_null(floor).clip(floor, 1.0)
        expr = expr * part.pow(w)
    return expr


def priority_score(customers: Any, *, config: CallsConfig | Mapping[str, Any] | None = None,
                   output: Output = "polars"):
    """Priority of each customer: value x churn risk x best cross-sell value, in [0, 1].

    ``priority = value_part ** value_weight * risk_part ** risk_weight * offer_part ** offer_weight``
    with ``value_part = log1p(value) / log1p(value_scale)`` (assets of ``value_scale``
    or more score 1), ``risk_part`` the churn probability, ``offer_part`` the same log
    scale on the best offer's value; every part is clipped to ``[part_floor, 1]`` and a
    missing (null) value counts as ``part_floor``. A part is left out when its column
    is set to null or its weight to 0. The score depends on the customer's own row
    only, so it can be computed shard by shard.

    Parameters
    ----------
    customers : table
        ``customer_id`` and the configured columns.
    config : CallsConfig or mapping, optional

    Returns
    -------
    DataFrame
        The input with a ``priority`` column.

    Examples
    --------
    >>> import polars as pl
    >>> df = pl.DataFrame({"customer_id": ["a", "b"], "financial_assets": [1e7, 1e5],
    ...                    "churn_probability": [0.2, 0.8]})
    >>> priority_score(df, config={"offer_col": None})["priority"].round(3).to_list()
    [0.2, 0.571]
    """
    cfg = _cfg(config)
    df = to_polars(customers, "customers")
    return to_output(df.with_columns(_priority_expr(cfg, df.columns).alias("priority")), output)


# ----------------------------------------------------------------------------------------
# contact policy (one private function, to be replaced by crmkit.contact_policy)
# ----------------------------------------------------------------------------------------

def _allowed_channels(df: pl.DataFrame, cfg: CallsConfig) -> pl.Expr:
    """List of channels each customer may be contacted through, in preference order.

    A channel is allowed unless its opt-out column (``cfg.opt_out_columns``) is true or
    null (unknown consent counts as an opt-out); a column that the table lacks means no
    opt-out was recorded (the schema's default, False). This is the one place call
    lists apply contact opt-outs: swap it for ``crmkit.contact_policy`` when that exists.
    """
    allowed = []
    for ch in cfg.channels:
        col = cfg.opt_out_columns.get(ch)
        ok = pl.lit(True) if col is None or col not in df.columns else ~pl.col(col).cast(pl.Boolean).fill_null(True)
        allowed.append(pl.when(ok).then(pl.lit(ch)))
    return pl.concat_list(allowed).list.drop_nulls()


# ----------------------------------------------------------------------------------------
# call lists
# ----------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class CallListResult:
    """The outputs of :func:`build_call_lists`.

    Attributes
    ----------
    calls : DataFrame
        Per RM, the top ``top_n`` customers to contact today, ranked.
    suppressed : DataFrame
        Customers with a trigger who are not on a list, and why (``cooldown``,
        ``opted_out``, ``control``, ``below_top_n``).
    control : DataFrame
        The control-group record of the campaign (every triggered customer with
        ``group`` = ``"contact"`` or ``"control"``); empty when ``control_share`` is 0.
    """

    calls: pl.DataFrame
    suppressed: pl.DataFrame
    control: pl.DataFrame


def build_call_lists(customers: Any, *, as_of: dt.date | str, contacts: Any = None,
                     assignment: Any = None, config: CallsConfig | Mapping[str, Any] | None = None,
                     playbook: Any = None, output: Output = "polars") -> CallListResult:
    """Per RM, today's call list: who to contact, why, through which channel, with what.

    A customer with a named RM goes on the list when a trigger fires: a new customer
    not yet contacted (at once, even off-plan), a large asset outflow, a product
    maturity or renewal due, a birthday, a high churn risk, a lifecycle stage that
    calls for an action, or the tier's cadence (e.g. Diamond at least every 30 days)
    being due. Triggers whose column the table lacks are skipped. Customers contacted
    within the cool-down are left out, as are customers with no allowed channel
    (opt-outs) and the campaign's control group; a product the customer declined
    within ``rejected_offer_days`` is not offered. Lists are ranked by trigger urgency,
    then priority, then ``customer_id``, and cut at ``top_n`` per RM.

    Parameters
    ----------
    customers : table
        One row per customer: ``customer_id``, ``tier``, ``manager_id`` (or via
        ``assignment``), ``opt_out_sms``/``opt_out_email``/``opt_out_phone``; optional
        ``priority`` (else computed by :func:`priority_score`), ``first_seen``, ``stage``,
        ``churn_probability`` and ``reason_1``..``reason_k``, ``churn_flag`` (a
        capacity-sized churn flag: when present it fires ``high_risk`` instead of
        ``risk_threshold``), ``next_best_product``,
        ``contact_window``, and the trigger columns named in the config.
    as_of : date
    contacts : table, optional
        The canonical ``contacts`` (dates after ``as_of`` ignored); an optional
        ``product_id`` column with outcome ``declined`` records a rejected offer.
        Without it, a ``days_since_last_contact`` column of ``customers`` is used.
    assignment : table, optional
        ``assignment_`` of :class:`RMAssigner`; its primary RM sets ``manager_id``.
    config : CallsConfig or mapping, optional
    playbook : table or list of dict, optional
        Lifecycle playbook for the suggested action (default
        :data:`crmkit.lifecycle.DEFAULT_PLAYBOOK`).

    Returns
    -------
    CallListResult

    Examples
    --------
    >>> import polars as pl, datetime as dt
    >>> cust = pl.DataFrame({"customer_id": ["a", "b", "c"], "tier": ["Gold"] * 3,
    ...                      "manager_id": ["M1"] * 3, "priority": [0.5, 0.9, 0.7],
    ...                      "opt_out_phone": [False, False, True], "churn_probability": [0.1, 0.9, 0.2],
    ...                      "first_seen": [dt.date(2020, 1, 1)] * 3})
    >>> contacts = pl.DataFrame({"customer_id": ["a", "b"], "kind": ["call", "call"],
    ...                          "date": [dt.date(2025, 1, 1), dt.date(2025, 6, 28)]})
    >>> res = build_call_lists(cust, as_of="2025-06-30", contacts=contacts)
    >>> res.calls.select("rank", "customer_id", "channel", "reason").rows()
    [(1, 'c', 'email', 'cadence due (Gold every 90 days; never contacted)'), (2, 'a', 'phone', 'cadence due (Gold every 90 days; last contact 180 days ago)')]
    >>> res.suppressed.select("customer_id", "triggers", "why").rows()
    [('b', ['high_risk'], 'cooldown')]
    """
    cfg = _cfg(config)
    day = check_date(as_of, "as_of", "build_call_lists")
    df = to_polars(customers, "customers")
    _need(df, ["customer_id", "tier"], "build_call_lists")
    if assignment is not None:
        asg = to_polars(assignment, "assignment")
        _need(asg, ["customer_id", "manager_id"], "build_call_lists", "assignment")
        if "role" in asg.columns:
            asg = asg.filter(pl.col("role") == "primary")
        df = df.drop("manager_id", strict=False).join(
            asg.select("customer_id", "manager_id"), on="customer_id", how="left")
    _need(df, ["manager_id"], "build_call_lists")
    if "priority" not in df.columns:
        df = df.with_columns(_priority_expr(cfg, df.columns).alias("priority"))
    df = df.filter(pl.col("manager_id").is_not_null())

    # last contact and declined offers, from the contact history up to as_of
    declined = None
    if contacts is not None:
        ct = to_polars(contacts, "contacts")
        _need(ct, ["customer_id", "date"], "build_call_lists", "contacts")
        ct = ct.filter(pl.col("date").cast(pl.Date) <= day)
        last = ct.group_by("customer_id").agg(pl.col("date").cast(pl.Date).max().alias("last_contact_date"))
        df = df.drop("last_contact_date", strict=False).join(last, on="customer_id", how="left")
        if "product_id" in ct.columns and "outcome" in ct.columns and cfg.rejected_offer_days:
            since = day - dt.timedelta(days=cfg.rejected_offer_days)
            declined = (ct.filter((pl.col("outcome") == "declined") & pl.col("product_id").is_not_null()
                                  & (pl.col("date").cast(pl.Date) > since))
                        .group_by("customer_id").agg(pl.col("product_id").unique().alias("_declined")))
    elif "days_since_last_contact" in df.columns:
        df = df.with_columns((pl.lit(day) - pl.duration(days=pl.col("days_since_last_contact")))
                             .cast(pl.Date).alias("last_contact_date"))
    else:
        df = df.with_columns(pl.lit(None, pl.Date).alias("last_contact_date"))
    since_last = (pl.lit(day) - pl.col("last_contact_date")).dt.total_days()

    # triggers
    trig: list[pl.Expr] = []
    labels: list[pl.Expr] = []
    cols = df.columns

    def add(name: str, cond: pl.Expr, label: pl.Expr) -> None:
        trig.append(pl.when(cond.fill_null(False)).then(pl.lit(name)))
        labels.append(pl.when(cond.fill_null(False)).then(label))

    if "first_seen" in cols:
        fs = pl.col("first_seen").cast(pl.Date)
        new = ((pl.lit(day) - fs).dt.total_days() <= cfg.new_customer_days) & (
            pl.col("last_contact_date").is_null() | (pl.col("last_contact_date") < fs))
        add("new_customer", new, pl.format("new customer since {}", fs.cast(pl.String)))
    if cfg.outflow_col in cols:
        x = pl.col(cfg.outflow_col).cast(pl.Float64)
        add("large_outflow", x <= cfg.outflow_threshold,
            pl.format("large asset outflow ({}% over 90 days)", (x * 100).round(0).cast(pl.Int64)))
    if cfg.renewal_col in cols:
        d = pl.col(cfg.renewal_col).cast(pl.Date)
        dd = (d - pl.lit(day)).dt.total_days()
        add("renewal_due", (dd >= 0) & (dd <= cfg.renewal_days), pl.format("maturity/renewal on {}", d.cast(pl.String)))
    if cfg.birthday_col in cols:
        b = pl.col(cfg.birthday_col).cast(pl.Date)
        # days until the next birthday (29 February falls on 1 March in other years)
        this = pl.date(pl.lit(day.year), b.dt.month(), pl.lit(1)).dt.offset_by(
            pl.format("{}d", b.dt.day() - 1))
        nxt = pl.when(this < pl.lit(day)).then(this.dt.offset_by("1y")).otherwise(this)
        dd = (nxt - pl.lit(day)).dt.total_days()
        add("birthday", dd <= cfg.birthday_days, pl.format("birthday on {}", nxt.dt.strftime("%m-%d")))
    if cfg.risk_col and cfg.risk_col in cols:
        r = pl.col(cfg.risk_col).cast(pl.Float64)
        rc = sorted(c for c in cols if c.startswith("reason_") and c[7:].isdigit())
        why = (pl.concat_list([pl.col(c).cast(pl.String) for c in rc]).list.drop_nulls().list.join(", ")
               if rc else pl.lit(""))
        # the churn model's capacity-sized flag where it is given, else the fixed cut
        flagged = (pl.col(cfg.risk_flag_col).cast(pl.Boolean)
                   if cfg.risk_flag_col and cfg.risk_flag_col in cols else r >= cfg.risk_threshold)
        add("high_risk", flagged,
            pl.format("churn risk {}{}", r.round(2).cast(pl.String),
                      pl.when(why != "").then(pl.format(" ({})", why)).otherwise(pl.lit(""))))
    if "stage" in cols and cfg.stages:
        add("stage", pl.col("stage").is_in(cfg.stages), pl.format("stage {}", pl.col("stage")))
    if cfg.cadence_days:
        cad = pl.col("tier").replace_strict(cfg.cadence_days, default=None, return_dtype=pl.Int64)
        due = cad.is_not_null() & (pl.col("last_contact_date").is_null() | (since_last >= cad))
        add("cadence_due", due, pl.format("cadence due ({} every {} days; {})", pl.col("tier"), cad,
                                          pl.when(pl.col("last_contact_date").is_null())
                                          .then(pl.lit("never contacted"))
                                          .otherwise(pl.format("last contact {} days ago", since_last))))
    if not trig:
        trig, labels = [pl.lit(None, pl.String)], [pl.lit(None, pl.String)]
    df = df.with_columns(pl.concat_list(trig).list.drop_nulls().alias("triggers"),
                         pl.concat_list(labels).list.drop_nulls().list.join("; ").alias("reason"),
                         _allowed_channels(df, cfg).alias("_channels"))
    df = df.filter(pl.col("triggers").list.len() > 0)
    urg = pl.col("triggers").list.eval(pl.element().replace_strict(_URGENCY, default=0)).list.max()
    df = df.with_columns(urg.alias("urgency"))

    # suppression: cool-down, opt-outs, control group
    cool = pl.col("last_contact_date").is_not_null() & (since_last < cfg.cooldown_days)
    df = df.with_columns(pl.when(cool).then(pl.lit("cooldown"))
                         .when(pl.col("_channels").list.len() == 0).then(pl.lit("opted_out"))
                         .alias("why"))
    control = control_group(df.filter(pl.col("why").is_null()).select("customer_id"),
                            campaign=cfg.campaign, share=cfg.control_share, as_of=day) \
        if cfg.control_share > 0 else None
    if control is not None:
        df = df.join(control.select("customer_id", "group"), on="customer_id", how="left").with_columns(
            pl.when(pl.col("why").is_null() & (pl.col("group") == "control")).then(pl.lit("control"))
            .otherwise(pl.col("why")).alias("why")).drop("group")

    # action from the playbook, channel, product
    if "stage" in cols:
        from crmkit.lifecycle import playbook_actions
        acts = playbook_actions(df.select("customer_id", "stage", "tier"), playbook=playbook, as_of=day)
        acts = (acts.sort("customer_id", "action_priority").group_by("customer_id", maintain_order=True)
                .agg(pl.col("action").first(), pl.col("channel").first().alias("_play_channel")))
        df = df.join(acts, on="customer_id", how="left")
    else:
        df = df.with_columns(pl.lit(None, pl.String).alias("action"), pl.lit(None, pl.String).alias("_play_channel"))
    df = df.with_columns(
        pl.when(pl.col("_channels").list.contains(pl.col("_play_channel")))
        .then(pl.col("_play_channel")).otherwise(pl.col("_channels").list.first()).alias("channel"))
    if "next_best_product" in cols:
        if declined is not None:
            df = df.join(declined, on="customer_id", how="left")
            rej = pl.col("_declined").list.contains(pl.col("next_best_product")).fill_null(False)
            df = df.with_columns(
                pl.when(rej).then(pl.col("next_best_product")).alias("suppressed_offer"),
                pl.when(rej).then(None).otherwise(pl.col("next_best_product")).alias("next_best_product"))
        else:
            df = df.with_columns(pl.lit(None, pl.String).alias("suppressed_offer"))
    window = (pl.col("contact_window").fill_null(cfg.default_contact_window) if "contact_window" in cols
              else pl.lit(cfg.default_contact_window))
    df = df.with_columns(window.alias("contact_window"))

    order = ["manager_id", "urgency", "priority", "customer_id"]
    desc = [False, True, True, False]
    ok = df.filter(pl.col("why").is_null()).sort(order, descending=desc).with_columns(
        pl.int_range(1, pl.len() + 1, dtype=pl.Int32).over("manager_id").alias("rank"))
    keep = [c for c in ("manager_id", "rank", "customer_id", "tier", "branch_id", "priority", "urgency",
                        "triggers", "reason", "stage", cfg.risk_col, "action", "channel",
                        "next_best_product", "suppressed_offer", "contact_window", "last_contact_date")
            if c and c in ok.columns]
    calls = ok.filter(pl.col("rank") <= cfg.top_n).select(keep).with_columns(pl.lit(day).alias("as_of"))
    cut = ok.filter(pl.col("rank") > cfg.top_n).with_columns(pl.lit("below_top_n").alias("why"))
    supp = pl.concat([df.filter(pl.col("why").is_not_null()).select("customer_id", "manager_id", "triggers", "why"),
                      cut.select("customer_id", "manager_id", "triggers", "why")]).sort("customer_id")
    ctrl = control if control is not None else pl.DataFrame(
        schema={"customer_id": pl.String, "campaign": pl.String, "as_of": pl.Date, "u": pl.Float64,
                "group": pl.String})
    return CallListResult(calls=to_output(calls, output), suppressed=to_output(supp, output),
                          control=to_output(ctrl, output))


# ----------------------------------------------------------------------------------------
# branch staff
# ----------------------------------------------------------------------------------------

def branch_staff_list(customers: Any, *, as_of: dt.date | str, contacts: Any = None, scheme: Any = None,
                      n: int = 100, value_col: str | None = None, output: Output = "polars"):
    """For tellers and lobby managers: hidden VIPs and VIPs the bank never contacted.

    Hidden VIPs are customers below the lowest VIP tier who rank in their branch's
    top ``n`` by value (:func:`crmkit.value.hidden_vips`); never-contacted VIPs are
    customers of a VIP tier with no contact on or before ``as_of``.

    Parameters
    ----------
    customers : table
        ``customer_id``, ``branch_id``, the value column (``financial_assets``) and ``tier``.
    as_of : date
    contacts : table, optional
        The canonical contacts; without it ``days_since_last_contact`` (null = never) is used.
    scheme : TierScheme, default retail-bank preset
    n : int, default 100

    Returns
    -------
    DataFrame
        ``branch_id``, ``list`` (``hidden_vip`` / ``never_contacted_vip``), ``rank``,
        ``customer_id``, ``tier``, the value column.

    Examples
    --------
    >>> import polars as pl
    >>> cust = pl.DataFrame({"customer_id": ["a", "b", "c"], "branch_id": ["B1"] * 3,
    ...                      "financial_assets": [90_000.0, 2e6, 5e4], "tier": ["Mass", "Platinum", "Mass"],
    ...                      "days_since_last_contact": [10, None, 400]})
    >>> branch_staff_list(cust, as_of="2025-06-30", n=1).select("list", "customer_id").rows()
    [('hidden_vip', 'a'), ('never_contacted_vip', 'b')]
    """
    from crmkit.value import TierScheme, hidden_vips
    day = check_date(as_of, "as_of", "branch_staff_list")
    scheme = scheme or TierScheme.retail_bank()
    col = value_col or scheme.value_col
    df = to_polars(customers, "customers")
    _need(df, ["customer_id", "branch_id", col], "branch_staff_list")
    if "tier" not in df.columns:
        df = df.with_columns(scheme.tier_expr(col).alias("tier"))
    hv = hidden_vips(df, scheme, n=n, value_col=col).select(
        "branch_id", pl.lit("hidden_vip").alias("list"), "rank", "customer_id", "tier", col)
    vip = df.filter(pl.col("tier").is_in(scheme.vip_tiers))
    if contacts is not None:
        ct = to_polars(contacts, "contacts").filter(pl.col("date").cast(pl.Date) <= day)
        never = vip.join(ct.select("customer_id").unique(), on="customer_id", how="anti")
    elif "days_since_last_contact" in df.columns:
        never = vip.filter(pl.col("days_since_last_contact").is_null())
    else:
        raise SchemaError("branch_staff_list: pass contacts= or a 'days_since_last_contact' column to "
                          "find the VIPs never contacted.")
    never = (never.sort(["branch_id", col, "customer_id"], descending=[False, True, False])
             .with_columns(pl.int_range(1, pl.len() + 1, dtype=pl.Int32).over("branch_id").alias("rank"))
             .select("branch_id", pl.lit("never_contacted_vip").alias("list"), "rank", "customer_id",
                     "tier", pl.col(col).cast(pl.Float64)))
    out = pl.concat([hv, never]).sort("branch_id", "list", "rank")
    return to_output(out, output)
