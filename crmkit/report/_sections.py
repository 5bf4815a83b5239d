"""The sections of the run report, each built from whatever the run produced.

A section is a title, a one-line lede and blocks (key figures, tables, charts,
notes). When its data is absent the section still appears, with one sentence
saying why it is empty, so a reader never wonders whether something broke.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from crmkit.report import _charts as charts
from crmkit.report._format import (
    fmt_count,
    fmt_money,
    fmt_number,
    fmt_share,
    fmt_value,
    humanize,
)

__all__ = ["Section", "build_sections"]

SECTION_IDS = ("headline", "tiers", "lifecycle", "churn", "clv", "propensity", "workload",
               "sectors", "drift", "exports", "appendix")


NAV = {"headline": "Headline", "tiers": "Tiers", "lifecycle": "Lifecycle", "churn": "Churn",
       "clv": "CLV", "propensity": "Cross-sell", "workload": "RM workload",
       "sectors": "Sector lists", "drift": "Drift",
       "exports": "Exports", "appendix": "Appendix"}


@dataclass
class Section:
    id: str
    title: str
    lede: str = ""
    blocks: list[dict[str, Any]] = field(default_factory=list)
    missing: str | None = None

    @property
    def nav(self) -> str:
        return NAV.get(self.id, self.title)

    def kpis(self, items: list[dict[str, Any]]) -> None:
        self.blocks.append({"kind": "kpis", "items": items})

    def text(self, text: str, cls: str = "") -> None:
        self.blocks.append({"kind": "text", "text": text, "cls": cls})

    def items(self, title: str, items: list[str], cls: str = "") -> None:
        self.blocks.append({"kind": "list", "title": title, "items": items, "cls": cls})

    def figure(self, uri: str, alt: str, caption: str = "") -> None:
        self.blocks.append({"kind": "figure", "src": uri, "alt": alt, "caption": caption})

    def table(self, title: str, columns: Sequence[str], rows: list[list[Any]], *,
              num: Sequence[int] = (), note: str = "", total_rows: int | None = None,
              links: Mapping[int, int] | None = None) -> None:
        cells = []
        for row in rows:
            out = []
            for i, v in enumerate(row):
                c = v if isinstance(v, dict) else {"text": v}
                c.setdefault("num", i in num)
                out.append(c)
            cells.append(out)
        more = (f"Showing {len(rows):,} of {total_rows:,} rows." if total_rows
                and total_rows > len(rows) else "")
        self.blocks.append({"kind": "table", "title": title, "columns": list(columns),
                            "num": set(num), "rows": cells, "note": " ".join(
                                p for p in (more, note) if p)})


def _columns(frame: Any) -> list[str] | None:
    """A table's column names, without reading a LazyFrame's rows."""
    if isinstance(frame, pl.LazyFrame):
        return frame.collect_schema().names()
    return frame.columns if isinstance(frame, pl.DataFrame) else None


def _collect(frame: Any, columns: Sequence[str] | None) -> pl.DataFrame | None:
    """An eager table, only ``columns`` of it (those present) when given."""
    names = _columns(frame)
    if names is None:
        return None
    if columns is not None:
        frame = frame.select([c for c in dict.fromkeys(columns) if c in names])
    return frame.collect() if isinstance(frame, pl.LazyFrame) else frame


@dataclass
class Data:
    """What the sections read, looked up once."""

    manifest: Mapping[str, Any]
    features: pl.DataFrame | None
    outputs: Mapping[str, Mapping[str, pl.DataFrame]]
    previous: Mapping[str, Mapping[str, pl.DataFrame]] | None
    previous_features: pl.DataFrame | None
    currency: str
    risk_threshold: float
    report_dir: Path | None
    _tiers: list[str] | None = field(default=None, init=False, repr=False)

    def table(self, step: str, name: str, columns: Sequence[str] | None = None
              ) -> pl.DataFrame | None:
        """A step table (only ``columns``, those present, when given): a run folder's
        tables come as LazyFrames, so a 10M-customer report reads the columns it draws."""
        return _collect(self.outputs.get(step, {}).get(name), columns)

    def has(self, step: str, name: str) -> bool:
        """Whether the run has a step table (without reading it)."""
        return _columns(self.outputs.get(step, {}).get(name)) is not None

    def prev_table(self, step: str, name: str, columns: Sequence[str] | None = None
                   ) -> pl.DataFrame | None:
        if not self.previous:
            return None
        return _collect(self.previous.get(step, {}).get(name), columns)

    def facts(self, step: str) -> Mapping[str, Any]:
        return self.manifest.get("steps", {}).get(step, {}) or {}

    @property
    def as_of(self) -> str:
        return str(self.manifest.get("run", {}).get("as_of", ""))

    @property
    def previous_run(self) -> str | None:
        return self.manifest.get("run", {}).get("previous_run")

    def money(self, v: Any) -> str:
        return fmt_money(v, self.currency)

    # -- shared lookups ----------------------------------------------------------------
    def tier_order(self) -> list[str]:
        """Tiers from the highest down (by the tier table's rank, else the scheme); read
        once, as most sections ask for it."""
        if self._tiers is None:
            self._tiers = self._tier_order()
        return list(self._tiers)

    def _tier_order(self) -> list[str]:
        tiers = self.table("value", "value_tiers", ["tier", "tier_rank"])
        if tiers is not None and "tier_rank" in tiers.columns:
            return (tiers.group_by("tier").agg(pl.col("tier_rank").max())
                    .sort("tier_rank", descending=True)["tier"].to_list())
        scheme = self.facts("value").get("tier_scheme")
        if isinstance(scheme, Mapping) and scheme:
            def lower(item):  # "[100,000, 1,000,000)" -> 100000; JSON may have sorted the keys
                text = str(item[1]).strip("[]()").split(", ")[0].replace(",", "").strip()
                try:
                    return float(text)
                except ValueError:
                    return float("-inf")
            return [k for k, _ in sorted(scheme.items(), key=lower, reverse=True)]
        if tiers is not None:
            return sorted(tiers["tier"].drop_nulls().unique().to_list())
        return []

    def vip_tiers(self) -> list[str]:
        tiers = self.table("value", "value_tiers", ["tier", "tier_rank"])
        if tiers is not None and "tier_rank" in tiers.columns:
            vip = tiers.filter(pl.col("tier_rank") > 0)["tier"].unique().to_list()
            return [t for t in self.tier_order() if t in vip]
        return self.tier_order()[:-1]

    def churn_column(self) -> str | None:
        names = _columns(self.outputs.get("churn", {}).get("churn_scores"))
        if names is None:
            return None
        cols = [c for c in names if c.startswith("churn_prob_") and c.endswith("d")]
        if "churn_prob_90d" in cols:
            return "churn_prob_90d"
        return cols[0] if cols else None

    def customers(self, columns: Sequence[str] | None = None) -> pl.DataFrame | None:
        """One row per customer: tier, assets, stage, churn risk, CLV where present.

        ``columns``: only those (the ones present), and only the tables holding them
        are read and joined, lazily; the result holds no customer ids unless asked.
        Three sections each read a few columns: at 10M customers the whole join
        (ids and every column of four tables) took 5 GB of a report's 8.7 GB.
        """
        wanted = None if columns is None else set(columns)
        base: pl.LazyFrame | None = None
        have: list[str] = []
        if self.features is not None and "customer_id" in self.features.columns:
            have = [c for c in ("financial_assets", "has_transacted")
                    if c in self.features.columns and (wanted is None or c in wanted)]
            base = self.features.lazy().select(["customer_id", *have])
        churn = [c for c in _columns(self.outputs.get("churn", {}).get("churn_scores")) or []
                 if c.startswith("churn_prob_")
                 or c in ("churn_flag", "risk_status", "churn_cause", "reason_1")]
        for step, name, cols in (("value", "value_tiers", ["tier", "tier_rank",
                                                           "financial_assets"]),
                                 ("lifecycle", "stages", ["stage"]),
                                 ("churn", "churn_scores", churn),
                                 ("clv", "clv", ["clv", "p_alive"])):
            frame = self.outputs.get(step, {}).get(name)
            names = _columns(frame) or []
            want = [c for c in cols if c in names and c not in have
                    and (wanted is None or c in wanted)]
            if "customer_id" not in names or (not want and base is not None):
                continue
            part = frame.lazy().select(["customer_id", *want])
            base = part if base is None else base.join(part, on="customer_id", how="left")
            have += want
        if base is None:
            return None
        if wanted is not None:  # at least the ids: a frame without columns has no rows
            base = base.select([c for c in ["customer_id", *have] if c in wanted]
                               or ["customer_id"])
        return base.collect()


def _rows_note(frame: pl.DataFrame, n: int) -> int | None:
    return frame.height if frame.height > n else None


# --- headline ------------------------------------------------------------------------

def _headline(d: Data, warnings: list[str]) -> Section:
    s = Section("headline", f"Run of {d.as_of}: the headline",
                "What changed for the customers since the previous run, in numbers.")
    col = d.churn_column()
    cust = d.customers([c for c in (col, "stage", "financial_assets") if c])
    items = []
    n = cust.height if cust is not None else None
    movement = d.table("value", "tier_movement", ["movement"])
    new = (int((movement["movement"] == "new").sum()) if movement is not None
           and "movement" in movement.columns else None)
    items.append({"label": "Customers", "value": fmt_count(n),
                  "sub": (f"{fmt_count(new)} new since {d.previous_run}" if new is not None
                          and d.previous_run else "first run: no previous run to compare")})
    tiers = d.table("value", "value_tiers", ["tier"])
    if tiers is not None:
        vip = d.vip_tiers()
        counts = dict(tiers.group_by("tier").len().iter_rows())
        total_vip = sum(counts.get(t, 0) for t in vip)
        items.append({"label": "VIP customers", "value": fmt_count(total_vip),
                      "sub": " · ".join(f"{t} {fmt_count(counts.get(t, 0))}" for t in vip)})
    else:
        items.append({"label": "VIP customers", "value": "–",
                      "sub": "the value step did not run, so there are no tiers"})
    if movement is not None and "movement" in movement.columns:
        up = int(movement["movement"].is_in(["upgrade"]).sum())
        down = int(movement["movement"].is_in(["downgrade"]).sum())
        changes = d.table("lifecycle", "stage_changes")
        moved_stage = (int(changes.filter(pl.col("from_stage") != "(new)").height)
                       if changes is not None and "from_stage" in changes.columns else None)
        sub = f"{fmt_count(up)} up, {fmt_count(down)} down a tier"
        if moved_stage is not None:
            sub += f"; {fmt_count(moved_stage)} changed lifecycle stage"
        items.append({"label": "Tier movers", "value": fmt_count(up + down), "sub": sub})
    else:
        items.append({"label": "Tier movers", "value": "–",
                      "sub": "no tier movement table (value step absent)"})
    if cust is not None and col is not None:
        at_risk = cust.filter(pl.col(col) >= d.risk_threshold)
        if "stage" in at_risk.columns:
            at_risk = at_risk.filter(pl.col("stage").fill_null("") != "churned")
        assets = (at_risk["financial_assets"].sum() if "financial_assets" in at_risk.columns
                  else None)
        items.append({"label": "Assets at risk", "value": d.money(assets),
                      "sub": f"held by {fmt_count(at_risk.height)} customers with a "
                             f"{humanize(col).lower()} of {fmt_share(d.risk_threshold, 0)} "
                             "or more"})
    else:
        items.append({"label": "Assets at risk", "value": "–",
                      "sub": "no churn scores in this run (churn step absent)"})
    calls = d.table("calls", "call_list")
    if calls is not None:
        rms = calls["manager_id"].n_unique() if "manager_id" in calls.columns else None
        items.append({"label": "Call list", "value": fmt_count(calls.height),
                      "sub": f"calls for {fmt_count(rms)} relationship managers"
                             if rms is not None else "calls to make"})
    else:
        items.append({"label": "Call list", "value": "–",
                      "sub": "no call list: the calls step did not run"})
    items.append({"label": "Warnings", "value": fmt_count(len(warnings)),
                  "sub": "listed below" if warnings else "none", "bad": bool(warnings)})
    s.kpis(items)
    if warnings:
        s.items("Warnings", warnings, cls="bad")
    return s


# --- tiers -------------------------------------------------------------------------

def _heat(count: int, top: int, diagonal: bool) -> str:
    if not count or not top:
        return ""
    a = 0.12 + 0.6 * math.sqrt(count / top)
    rgb = "47,111,159" if diagonal else "178,59,59"
    return f"background: rgba({rgb},{a:.2f})"


def _tiers(d: Data) -> Section:
    s = Section("tiers", "Value tiers and tier movement",
                "Customers per tier now, and where each came from since the previous run.")
    tiers = d.table("value", "value_tiers", ["tier", "financial_assets"])
    if tiers is None:
        s.missing = "The value step did not run, so there are no value tiers in this run."
        return s
    order = d.tier_order()
    summary = d.table("value", "tier_movement_summary")
    agg = tiers.group_by("tier").agg(pl.len().alias("n"),
                                     pl.col("financial_assets").sum().alias("assets")
                                     if "financial_assets" in tiers.columns else pl.lit(None)
                                     .alias("assets"))
    by = {r["tier"]: r for r in agg.iter_rows(named=True)}
    sm = {r["tier"]: r for r in summary.iter_rows(named=True)} if summary is not None else {}
    rows = []
    for t in order:
        r = by.get(t, {"n": 0, "assets": 0})
        m = sm.get(t, {})
        rows.append([t, fmt_count(r["n"]), fmt_share(r["n"] / tiers.height if tiers.height else 0),
                     d.money(r["assets"]), fmt_count(m.get("previous")),
                     _signed(m.get("net_change")), fmt_count(m.get("upgraded_in")),
                     fmt_count(m.get("downgraded_in")), fmt_count(m.get("new"))])
    note = "" if summary is not None else "Previous-run columns are blank: no movement summary."
    if not d.previous_run:
        note = "First run: the previous-run columns are blank because there is nothing before it."
    s.table("Customers by tier", ["Tier", "Customers", "Share", "Assets", "Previous run",
                                  "Net change", "Upgraded in", "Downgraded in", "New"], rows,
            num=range(1, 9), note=note)
    s.figure(charts.bar_chart(order, [by.get(t, {"n": 0})["n"] for t in order],
                              title="Customers by tier", xlabel="customers"),
             "Bar chart of customers by tier")
    movement = d.table("value", "tier_movement", ["from_tier", "to_tier"])
    if movement is not None and {"from_tier", "to_tier"} <= set(movement.columns):
        m = movement.with_columns(pl.col("from_tier").fill_null("(new)"))
        counts = {(a, b): n for a, b, n in m.group_by("from_tier", "to_tier").len().iter_rows()}
        froms = [t for t in order if any(k[0] == t for k in counts)]
        if any(k[0] == "(new)" for k in counts):
            froms.append("(new)")
        tos = [t for t in order if any(k[1] == t for k in counts)]
        top = max((v for (a, b), v in counts.items() if a != b), default=0) or 1
        rows = []
        for a in froms:
            row = [a]
            for b in tos:
                c = counts.get((a, b), 0)
                row.append({"text": fmt_count(c) if c else "·",
                            "style": _heat(c, top if a != b else max(counts.values()), a == b)})
            row.append(fmt_count(sum(counts.get((a, b), 0) for b in tos)))
            rows.append(row)
        s.table(f"Tier movement: rows are the tier on {d.previous_run or 'the previous run'}, "
                f"columns the tier on {d.as_of}", ["From \\ to", *tos, "Total"], rows,
                num=range(1, len(tos) + 2),
                note="Blue diagonal: stayed in the tier; red: moved. '·' means nobody moved "
                     "that way; '(new)' are customers who were not in the previous run.")
    hidden = d.table("value", "hidden_vips")
    if hidden is not None and hidden.height:
        top = hidden.sort("financial_assets", descending=True, nulls_last=True).head(10)
        rows = [[r.get("customer_id"), r.get("branch_id"), d.money(r.get("financial_assets")),
                 d.money(r.get("gap_to_vip"))] for r in top.iter_rows(named=True)]
        s.table(f"Hidden VIPs: {fmt_count(hidden.height)} customers just below the VIP line, "
                "largest first", ["Customer", "Branch", "Assets", "Gap to VIP"], rows,
                num=(2, 3), total_rows=_rows_note(hidden, 10),
                note="Listed for tellers and lobby managers so that they recognise them.")
    return s


def _signed(v: Any) -> str:
    if v is None:
        return "–"
    return f"+{int(v):,}" if v > 0 else ("0" if v == 0 else f"−{abs(int(v)):,}")


# --- lifecycle -----------------------------------------------------------------------

def _lifecycle(d: Data) -> Section:
    s = Section("lifecycle", "Lifecycle stages and flows",
                "Where customers are in their relationship with the bank, and who moved.")
    stages = d.table("lifecycle", "stages", ["customer_id", "stage"])
    if stages is None:
        s.missing = "The lifecycle step did not run, so there are no stages in this run."
        return s
    from crmkit.lifecycle._plots import plot_stage_flow, plot_transition_heatmap

    changes = d.table("lifecycle", "stage_changes")
    counts = stages.group_by("stage").len().sort(["len", "stage"], descending=[True, False])
    into = out_of = {}
    if changes is not None and changes.height:
        moved = changes.filter(pl.col("from_stage") != "(new)")
        into = dict(moved.group_by("to_stage").len().iter_rows())
        out_of = dict(moved.group_by("from_stage").len().iter_rows())
    rows = [[st, fmt_count(n), fmt_share(n / stages.height), fmt_count(into.get(st, 0)),
             fmt_count(out_of.get(st, 0))] for st, n in counts.iter_rows()]
    s.table("Customers by stage, largest first", ["Stage", "Customers", "Share", "Moved in",
                                                  "Moved out"], rows, num=(1, 2, 3, 4),
            note="" if d.previous_run else "First run: nobody can have moved yet.")
    if changes is not None and d.previous_run:
        new = set(changes.filter(pl.col("from_stage") == "(new)")["customer_id"].to_list())
        prev = (stages.select("customer_id", "stage")
                .join(changes.filter(pl.col("from_stage") != "(new)")
                      .select("customer_id", pl.col("from_stage").alias("_prev")),
                      on="customer_id", how="left")
                .with_columns(pl.coalesce("_prev", "stage").alias("stage")).drop("_prev")
                .filter(~pl.col("customer_id").is_in(pl.Series(list(new), dtype=pl.String)
                                                     .implode())))
        fig, ax = charts.new_axes(6.4, 4.2)
        plot_stage_flow(prev, stages.select("customer_id", "stage"), ax=ax)
        ax.set_title(f"Stage flow, {d.previous_run} → {d.as_of}", fontsize=10)
        s.figure(charts.png(fig), "Stage flow between the previous run and this run",
                 "Left: stage at the previous run; right: stage now; band width: customers.")
    matrix = d.table("lifecycle", "transition_matrix")
    if matrix is not None and matrix.height and d.previous_run:
        fig, ax = charts.new_axes(6.4, 4.6)
        plot_transition_heatmap(matrix, ax=ax)
        s.figure(charts.png(fig), "Heat map of stage-to-stage transition rates",
                 "Share of each previous stage (rows) now in each stage (columns).")
    actions = d.table("lifecycle", "actions")
    if actions is not None and actions.height:
        by = [c for c in ("action", "channel") if c in actions.columns]
        tab = actions.group_by(by).len().sort(["len", *by], descending=[True] + [False] * len(by))
        rows = [[humanize(r[0]) if i == 0 else r[i] for i in range(len(by))] + [fmt_count(r[-1])]
                for r in tab.iter_rows()]
        s.table("Playbook actions due, most frequent first",
                [humanize(c) for c in by] + ["Customers"], rows, num=(len(by),))
    return s


# --- sector lists --------------------------------------------------------------------

SECTOR_LIST_ROWS = 5
"""Rows of each sector list shown in the report (the full lists are in the run folder)."""
_SECTOR_COLUMNS = 5  # columns shown beside the reason
_SECTOR_KEYS = ("list", "grade", "priority", "status", "stage", "action", "scheduled_at",
                "due_date", "channel")


def _sector_columns(frame: pl.DataFrame) -> tuple[list[str], int]:
    """Who (customer, manager) first, then the list's own columns, the reason last."""
    reasons = [c for c in ("reason", "suppression_reason") if c in frame.columns]
    ids = [c for c in ("customer_id", "manager_id") if c in frame.columns]
    # what the list is about before its other columns
    key = [c for c in _SECTOR_KEYS if c in frame.columns and c not in reasons]
    rest = key + [c for c in frame.columns if c not in ids and c not in reasons and c not in key]
    shown = (ids + rest)[:_SECTOR_COLUMNS]
    return shown + reasons, len(frame.columns) - len(shown) - len(reasons)


def _sectors(d: Data) -> Section:
    from crmkit.datasets import SECTORS

    s = Section("sectors", "Sector lists",
                "The lists a sector step wrote for its people to act on, each row with its "
                "reason: how many rows, and the first of them.")
    ran = [name for name in SECTORS if name in d.manifest.get("steps", {}) or d.outputs.get(name)]
    if not ran:
        s.missing = ("No sector step (insurer, broker, tobacco retail, elderly care) ran in "
                     "this run, so there are no sector lists.")
        return s
    for name in ran:
        tables = {k: f for k in d.outputs.get(name, {})
                  if (f := d.table(name, k)) is not None}
        label = humanize(name)
        if not tables:
            s.text(f"The {label.lower()} step ran but its lists were not loaded for the report.")
            continue
        summary = [[humanize(t), fmt_count(f.height),
                    "yes" if {"reason", "suppression_reason"} & set(f.columns) else "no"]
                   for t, f in tables.items()]
        s.table(f"{label}: the lists and their sizes", ["List", "Rows", "Reason per row"],
                summary, num=(1,), note=f"Full lists: <run>/{name}/<list>.parquet.")
        for t, frame in tables.items():
            if not frame.height:
                continue
            cols, hidden = _sector_columns(frame)
            rows = [[fmt_value(v) for v in row]
                    for row in frame.head(SECTOR_LIST_ROWS).select(cols).iter_rows()]
            num = tuple(i for i, c in enumerate(cols)
                        if frame.schema[c].is_numeric() and not frame.schema[c] == pl.Boolean)
            s.table(f"{label} · {humanize(t)}: first rows", [humanize(c) for c in cols], rows,
                    num=num, total_rows=frame.height,
                    note=(f"{hidden} more column(s) in the file." if hidden else ""))
    return s


# --- churn ---------------------------------------------------------------------------

def _wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    # rounding can put a bound a hair past p (k = 0 or k = n): clamp so it holds p
    return max(0.0, min(mid - half, p)), min(1.0, max(mid + half, p))


def _calibration(d: Data) -> tuple[pl.DataFrame, str, int] | None:
    """Previous run's predicted churn vs churned by now (the latest labelled window)."""
    prev_names = _columns((d.previous or {}).get("churn", {}).get("churn_scores")) or []
    prev_scores = d.prev_table("churn", "churn_scores", [
        "customer_id", *[c for c in prev_names if c.startswith("churn_prob_")]])
    prev_stages = d.prev_table("lifecycle", "stages", ["customer_id", "stage"])
    stages = d.table("lifecycle", "stages", ["customer_id", "stage"])
    if prev_scores is None or stages is None or not d.previous_run:
        return None
    try:
        gap = (dt.date.fromisoformat(d.as_of) - dt.date.fromisoformat(d.previous_run)).days
    except ValueError:
        return None
    horizons = {int(c.removeprefix("churn_prob_").removesuffix("d")): c
                for c in prev_scores.columns
                if c.startswith("churn_prob_") and c.removeprefix("churn_prob_")
                .removesuffix("d").isdigit()}
    if not horizons or gap <= 0:
        return None
    h = min(horizons, key=lambda x: abs(x - gap))
    col = horizons[h]
    df = prev_scores.select("customer_id", pl.col(col).alias("p"))
    if prev_stages is not None:
        df = df.join(prev_stages.select("customer_id", pl.col("stage").alias("was")),
                     on="customer_id", how="left").filter(pl.col("was").fill_null("") != "churned")
    df = df.join(stages.select("customer_id", (pl.col("stage") == "churned").alias("y")),
                 on="customer_id", how="inner").drop_nulls(["p", "y"])
    if df.height < 50:
        return None
    bins = 10
    df = df.sort("p").with_row_index("_i").with_columns(
        (pl.col("_i") * bins // df.height + 1).cast(pl.Int64).alias("bin"))
    tab = df.group_by("bin").agg(pl.len().alias("n"), pl.col("p").mean().alias("predicted"),
                                 pl.col("y").sum().alias("k")).sort("bin")
    lo, hi = zip(*[_wilson(k, n) for k, n in zip(tab["k"], tab["n"])])
    tab = tab.with_columns((pl.col("k") / pl.col("n")).alias("observed"),
                           pl.Series("observed_lower", lo), pl.Series("observed_upper", hi))
    return tab, col, gap


def _churn(d: Data) -> Section:
    s = Section("churn", "Churn risk",
                "Who is likely to leave, by tier, why, and how well last run's risk "
                "predicted who did leave.")
    col = d.churn_column()
    cust = d.customers([col, "stage", "tier", "financial_assets", "reason_1"]) if col else None
    if col is None or cust is None:
        s.missing = "The churn step did not run, so there are no churn scores in this run."
        return s
    live = cust
    churned = 0
    if "stage" in cust.columns:
        churned = int((cust["stage"] == "churned").sum())
        live = cust.filter(pl.col("stage").fill_null("") != "churned")
    group = "tier" if "tier" in live.columns else None
    thr = d.risk_threshold
    if group:
        agg = live.group_by("tier").agg(
            pl.len().alias("n"), pl.col(col).mean().alias("mean"),
            (pl.col(col) >= thr).sum().alias("risky"),
            pl.when(pl.col(col) >= thr).then(pl.col("financial_assets")).otherwise(0).sum()
            .alias("assets") if "financial_assets" in live.columns else pl.lit(None).alias("assets"))
        by = {r["tier"]: r for r in agg.iter_rows(named=True)}
        rows = []
        for t in d.tier_order():
            r = by.get(t)
            if r is None:
                continue
            rows.append([t, fmt_count(r["n"]), fmt_share(r["mean"]), fmt_count(r["risky"]),
                         fmt_share(r["risky"] / r["n"] if r["n"] else 0), d.money(r["assets"])])
        s.table(f"Churn risk by tier ({humanize(col).lower()}), highest tier first",
                ["Tier", "Customers", "Mean risk", f"At risk (≥ {fmt_share(thr, 0)})",
                 "Share at risk", "Assets at risk"], rows, num=range(1, 6),
                note=(f"{fmt_count(churned)} customers already in the churned stage are left "
                      "out: they cannot leave again." if churned else ""))
    s.figure(charts.histogram(live[col].drop_nulls().to_numpy(), title=f"{humanize(col)} "
                              "of current customers", xlabel="probability of leaving",
                              bins=30), f"Histogram of {humanize(col)}")
    reason = "reason_1"
    if reason in live.columns:
        risky = live.filter(pl.col(col) >= thr)
        if risky.height:
            tab = risky.group_by(reason).len().sort(["len", reason], descending=[True, False],
                                                    nulls_last=True).head(8)
            rows = [[humanize(r) if r else "(no reason given)", fmt_count(n),
                     fmt_share(n / risky.height)] for r, n in tab.iter_rows()]
            s.table("Main reason of customers at risk, most common first",
                    ["Main reason", "Customers", "Share"], rows, num=(1, 2))
    facts = d.facts("churn")
    backtest = facts.get("backtest")
    if isinstance(backtest, Mapping) and backtest:
        rows = [[humanize(k), fmt_value(v)] for k, v in backtest.items()]
        s.table(f"Latest backtest of the {facts.get('model', 'churn')} model", ["Measure",
                                                                               "Value"], rows,
                num=(1,), note="C-index and AUC: 0.5 is chance, 1 is perfect ranking. "
                               "Brier score: lower is better.")
    cal = _calibration(d)
    if cal is not None:
        from crmkit.churn._plots import plot_calibration

        tab, pcol, gap = cal
        fig, ax = charts.new_axes(5.2, 4.0)
        plot_calibration(tab, ax=ax, horizon_label=f"{gap} days")
        s.figure(charts.png(fig), "Calibration of the previous run's churn risk",
                 f"Previous run's {humanize(pcol).lower()} (x) against the share of those "
                 f"customers in the churned stage {gap} days later (y), by decile of risk; "
                 "bars are 95% Wilson intervals.")
        rows = [[fmt_count(r["bin"]), fmt_count(r["n"]), fmt_share(r["predicted"], 2),
                 fmt_share(r["observed"], 2)] for r in tab.iter_rows(named=True)]
        s.table("Calibration by risk decile (1 = lowest risk)", ["Decile", "Customers",
                                                                 "Predicted", "Observed"],
                rows, num=(0, 1, 2, 3))
    else:
        s.text("Calibration: not shown, because " + (
            "this is the first run (no earlier prediction to check)." if not d.previous_run
            else "the previous run's churn scores or this run's lifecycle stages are not "
                 "available to the report."), cls="muted")
    return s


# --- CLV ---------------------------------------------------------------------------

def _clv(d: Data) -> Section:
    s = Section("clv", "Customer lifetime value",
                "Expected value of each customer's future purchases over the model's horizon.")
    cust = d.customers(["clv", "has_transacted", "tier"])
    if not d.has("clv", "clv") or cust is None or "clv" not in cust.columns:
        s.missing = "CLV was not computed in this run (the clv step did not run)."
        return s
    facts = d.facts("clv")
    blank = cust.filter(pl.col("clv").is_null())
    if blank.height:
        why = []
        if "has_transacted" in blank.columns:
            never = int((~blank["has_transacted"].fill_null(False)).sum())
            if never:
                why.append(f"{fmt_count(never)} have never transacted, so the purchase model "
                           "has no history to score")
            other = blank.height - never
            if other:
                why.append(f"{fmt_count(other)} were first seen on the run date or bought "
                           "nothing the purchase model counts (refunds only)")
        s.text(f"{fmt_count(blank.height)} of {fmt_count(cust.height)} customers have no CLV: "
               + ("; ".join(why) if why else "the model did not score them") + ". They are "
               "left out of the figures below.", cls="note")
    scored = cust.filter(pl.col("clv").is_not_null())
    if scored.height:
        s.figure(charts.histogram(scored["clv"].to_numpy(), title="CLV of scored customers "
                                  "(log scale)", xlabel=f"CLV ({d.currency})", log=True),
                 "Histogram of customer lifetime value")
    if "tier" in scored.columns and scored.height:
        agg = scored.group_by("tier").agg(pl.len().alias("n"), pl.col("clv").median().alias("med"),
                                          pl.col("clv").mean().alias("mean"),
                                          pl.col("clv").sum().alias("total"))
        by = {r["tier"]: r for r in agg.iter_rows(named=True)}
        total = float(scored["clv"].sum()) or 1.0
        rows = [[t, fmt_count(by[t]["n"]), d.money(by[t]["med"]), d.money(by[t]["mean"]),
                 d.money(by[t]["total"]), fmt_share(by[t]["total"] / total)]
                for t in d.tier_order() if t in by]
        s.table("CLV by tier, highest tier first", ["Tier", "Scored customers", "Median",
                                                    "Mean", "Total", "Share of total"], rows,
                num=range(1, 6))
    # the clv step's manifest: facts["model"] holds the store's record of the fit
    model = facts.get("model") if isinstance(facts.get("model"), Mapping) else {}
    if model:
        facts = {**model, **(model.get("metrics") or {})}
        rows = []
        for part in ("transaction_model", "spend_model"):
            m = facts.get(part)
            if isinstance(m, Mapping):
                params = m.get("params", {})
                rows.append([m.get("model", humanize(part)),
                             ", ".join(f"{k} = {fmt_number(v)}" for k, v in params.items())])
        fitted = facts.get("fitted_as_of")
        s.table("CLV models", ["Model", "Parameters"], rows,
                note=(f"Fitted as of {fitted}; " if fitted else "") +
                     ("refitted in this run." if facts.get("refitted") else
                      "stored model reused (no refit due)."))
    return s


# --- propensity ----------------------------------------------------------------------

def _propensity_lift(d: Data) -> list[tuple[str, int, float, float, float]] | None:
    """Per product: customers scored, mean score, mean of the top 10 % and their ratio,
    from a long (product, score) or a wide (a float column per product) scores table.
    A wide table is read one column at a time: at 10M customers x 14 products, its
    long form alone was 140M rows."""
    frame = d.outputs.get("propensity", {}).get("scores")
    schema = (frame.collect_schema() if isinstance(frame, pl.LazyFrame)
              else getattr(frame, "schema", None))
    if schema is None:
        return None
    prod = next((c for c in ("product", "product_id", "category") if c in schema), None)
    score = next((c for c in ("score", "propensity", "probability", "p") if c in schema), None)
    if prod and score:
        long = d.table("propensity", "scores", [prod, score]).select(
            pl.col(prod).cast(pl.String).alias("product"),
            pl.col(score).cast(pl.Float64).alias("score")).drop_nulls()
        columns = [(str(k[0]), part["score"])
                   for k, part in long.group_by("product", maintain_order=True)]
    else:
        wide = [c for c, t in schema.items() if c != "customer_id" and t.is_float()]
        columns = ((c, d.table("propensity", "scores", [c])[c].drop_nulls()) for c in wide)
    rows = []
    for name, v in columns:
        if not v.len():
            continue
        k = max(1, v.len() // 10)
        mean = v.mean() or 0.0
        top = v.top_k(k).mean() or 0.0
        rows.append((name, v.len(), mean, top, top / mean if mean else float("nan")))
    return rows


def _propensity_backtest(facts: Mapping[str, Any]) -> tuple[list[dict], str] | None:
    """The per-product rows of the propensity step's stored backtest, with its date."""
    model = facts.get("model") if isinstance(facts, Mapping) else None
    metrics = model.get("metrics") if isinstance(model, Mapping) else None
    bt = metrics.get("backtest") if isinstance(metrics, Mapping) else None
    rows = bt.get("per_product") if isinstance(bt, Mapping) else None
    if not rows:
        return None
    return [r for r in rows if isinstance(r, Mapping)], str(bt.get("as_of", ""))


def _propensity(d: Data) -> Section:
    s = Section("propensity", "Cross-sell propensity",
                "Which products each customer is likely to take up next, and how sharply "
                "the model separates them.")
    scores = d.has("propensity", "scores")
    facts = d.facts("propensity")
    backtest = _propensity_backtest(facts)
    if not scores and not backtest:
        s.missing = "The propensity step did not run, so there are no cross-sell scores."
        return s
    if backtest:
        rows, as_of = backtest
        rows = sorted(rows, key=lambda r: -(r.get("top_decile_lift") or 0.0))
        s.table(f"Backtest per product (fitted on the earlier landmarks, scored on {as_of}), "
                "best lift first",
                ["Product", "Take-ups", "AUC", "AUC, popularity in tier", "Top-decile lift",
                 "Lift, popularity in tier"],
                [[humanize(str(r.get("target"))), fmt_count(r.get("positives")),
                  fmt_number(r.get("roc_auc")), fmt_number(r.get("baseline_roc_auc")),
                  fmt_number(r.get("top_decile_lift")),
                  fmt_number(r.get("baseline_top_decile_lift"))] for r in rows],
                num=(1, 2, 3, 4, 5),
                note="Observed on customers' real take-up after the backtest date. Lift: "
                     "take-up among the top-scored 10% divided by take-up among all; 1 means "
                     "no better than chance. The baseline ranks by each product's take-up "
                     "within the customer's tier.")
        lifted = [r for r in rows if isinstance(r.get("top_decile_lift"), (int, float))]
        if lifted:
            s.figure(charts.bar_chart([humanize(str(r["target"])) for r in lifted],
                                      [r["top_decile_lift"] for r in lifted],
                                      title="Observed top-decile lift per product",
                                      xlabel="lift", value_fmt=lambda v: f"{v:.2f}"),
                     "Bar chart of observed lift per product")
    if scores:
        rows = _propensity_lift(d) or []
        if not rows:
            s.text("The propensity scores table has no score columns the report recognises.",
                   cls="muted")
            return s
        rows.sort(key=lambda r: -(r[4] if r[4] == r[4] else -1))
        s.table("Expected lift per product: mean score of the top 10% against all, best first",
                ["Product", "Customers scored", "Mean score", "Top 10% mean", "Expected lift"],
                [[humanize(r[0]), fmt_count(r[1]), fmt_share(r[2]), fmt_share(r[3]),
                  fmt_number(r[4])] for r in rows], num=(1, 2, 3, 4),
                note="Computed from the scores themselves (what the model expects); the "
                     "backtest above gives the lift observed on real take-up.")
        good = [r for r in rows if r[4] == r[4]]
        if good:
            s.figure(charts.bar_chart([humanize(r[0]) for r in good], [r[4] for r in good],
                                      title="Expected lift of the top 10% per product",
                                      xlabel="lift (1 = no better than chance)",
                                      value_fmt=lambda v: f"{v:.2f}"),
                     "Bar chart of expected lift per product")
    return s


# --- workload ------------------------------------------------------------------------

def _workload(d: Data) -> Section:
    s = Section("workload", "Relationship managers: books and calls",
                "Each RM's book against capacity, and today's call list by priority.")
    books = d.table("assign", "books")
    calls = d.table("calls", "call_list")
    if books is None and calls is None:
        s.missing = ("The assignment and call-list steps did not run, so there are no RM "
                     "books or call lists in this run.")
        return s
    if books is not None and "manager_id" in books.columns:
        size = next((c for c in ("customers", "n_customers", "book_size", "n") if c in
                     books.columns), None)
        if size and "capacity" in books.columns:
            b = books.with_columns(
                (pl.col(size) / pl.when(pl.col("capacity") > 0).then(pl.col("capacity")))
                .alias("_u")).sort("_u", descending=True, nulls_last=True)
            over = int((b["_u"] > 1).sum())
            rows = [[r["manager_id"], r.get("level", "–") or "–", r.get("branch_id", "–") or "–",
                     fmt_count(r[size]), fmt_count(r["capacity"]), fmt_share(r["_u"], 0)]
                    for r in b.head(25).iter_rows(named=True)]
            s.table(f"Books against capacity, fullest first ({fmt_count(over)} over capacity)",
                    ["RM", "Level", "Branch", "Customers", "Capacity", "Utilisation"], rows,
                    num=(3, 4, 5), total_rows=_rows_note(b, 25),
                    note="Utilisation – : the RM has no capacity set.")
            top = b.head(20)
            s.figure(charts.bar_chart(top["manager_id"].to_list(),
                                      top[size].cast(pl.Float64).to_list(),
                                      ref=top["capacity"].cast(pl.Float64).to_list(),
                                      ref_label="capacity", title="Book size and capacity "
                                      "(fullest 20)", xlabel="customers"),
                     "Bar chart of RM book sizes with capacity marks")
        else:
            s.text("The books table has no customer count and capacity columns to compare.",
                   cls="muted")
    elif books is None:
        s.text("No RM books: the assignment step did not run.", cls="muted")
    if calls is not None:
        order, desc = [], []
        for c, dsc in (("urgency", False), ("priority", True), ("customer_id", False)):
            if c in calls.columns:
                order.append(c)
                desc.append(dsc)
        c2 = calls.sort(order, descending=desc, nulls_last=True) if order else calls
        show = [c for c in ("manager_id", "customer_id", "tier", "priority", "urgency",
                            "triggers", "action", "channel", "due_date") if c in c2.columns]
        rows = [[fmt_value(v) for v in r] for r in c2.select(show).head(20).iter_rows()]
        num = tuple(i for i, c in enumerate(show) if c2.schema[c].is_numeric())
        s.table(f"Call list, highest priority first ({fmt_count(calls.height)} calls)",
                [humanize(c) for c in show], rows, num=num, total_rows=_rows_note(c2, 20),
                note="The full list per RM is in the run folder (calls/call_list).")
        if "manager_id" in calls.columns:
            per = calls.group_by("manager_id").len().sort(["len", "manager_id"],
                                                          descending=[True, False]).head(10)
            s.table("Calls per RM, busiest first", ["RM", "Calls"],
                    [[m, fmt_count(n)] for m, n in per.iter_rows()], num=(1,))
    else:
        s.text("No call list: the calls step did not run.", cls="muted")
    return s


# --- drift ---------------------------------------------------------------------------

def _drift(d: Data, drift: Any) -> Section:
    s = Section("drift", "Drift and quality gates",
                "Did today's customers and scores shift against the previous run?")
    if drift is None:
        s.missing = ("No drift check: " + ("this is the first run, so there is nothing to "
                     "compare with." if not d.previous_run else "the previous run's tables "
                     "were not available to the report."))
        return s
    result = drift.to_manifest() if hasattr(drift, "to_manifest") else dict(drift)
    status = result.get("status", "ok")
    label = {"ok": "All checks passed.", "warning": "Some checks need a look.",
             "failed": "A quality gate failed: the run is marked failed.",
             "skipped": "Drift checks are switched off."}.get(status, status)
    s.text(label + (" " + result["origin"] if result.get("origin") else ""),
           cls="bad" if status in ("warning", "failed") else "ok")
    if result.get("messages"):
        s.items("Findings", list(result["messages"]), cls="bad")
    rows = []
    for c in result.get("checks", []):
        kind = {"psi": "Stability (PSI)", "movement": "Share moved",
                "metric": "Model metric"}.get(c["check"], c["check"])
        val = c.get("value")
        txt = fmt_share(val) if c["check"] == "movement" else fmt_number(val)
        limit = []
        if c.get("warn_at") is not None:
            limit.append(f"warn {fmt_share(c['warn_at']) if c['check'] == 'movement' else fmt_number(c['warn_at'])}")
        if c.get("fail_at") is not None:
            word = "floor" if c["check"] == "metric" else "fail"
            limit.append(f"{word} {fmt_share(c['fail_at']) if c['check'] == 'movement' else fmt_number(c['fail_at'])}")
        st = c.get("status", "")
        rows.append([kind, humanize(c["subject"]) if "." not in c["subject"] else c["subject"],
                     {"text": txt, "num": True}, ", ".join(limit) or "–",
                     {"text": st, "cls": "bad" if st in ("warning", "breach") else
                      ("muted" if st == "skipped" else "ok")}, c.get("note") or ""])
    if rows:
        s.table("Checks, worst first", ["Check", "Of", "Value", "Thresholds", "Status", "Note"],
                rows, note="PSI below 0.1: stable; 0.1 to 0.25: worth a look; above 0.25: a "
                           "real shift.")
    return s


# --- exports -------------------------------------------------------------------------

def _exports(d: Data, exports: Any, report_dir: Path | None) -> Section:
    s = Section("exports", "Segments and exports",
                "The segment lists written for marketing in this run.")
    facts = d.facts("segments")
    records = []
    for e in (exports if exports is not None else facts.get("exports", []) or []):
        if hasattr(e, "stamp"):
            rec = dict(e.stamp)
            rec["path"] = str(e.path)
            rec["segment"] = e.segment
        else:
            rec = dict(e)
        records.append(rec)
    sizes = facts.get("sizes") if isinstance(facts, Mapping) else None
    table_sizes = d.table("segments", "sizes")
    if not records and not sizes and table_sizes is None:
        s.missing = ("No segments are defined for this run, so nothing was exported "
                     "([segments.<name>] in the pipeline config).")
        return s
    if table_sizes is not None and table_sizes.height:
        rows = [[r["segment"], fmt_count(r["customers"]), fmt_share(r.get("share")),
                 {"text": r.get("where", ""), "cls": "code"}]
                for r in table_sizes.sort(["customers", "segment"], descending=[True, False])
                .iter_rows(named=True)]
        s.table("Segments, largest first", ["Segment", "Customers", "Share", "Definition"], rows,
                num=(1, 2))
    elif isinstance(sizes, Mapping) and sizes:
        defs = facts.get("definitions", {}) or {}
        rows = [[k, fmt_count(v), {"text": defs.get(k, ""), "cls": "code"}]
                for k, v in sorted(sizes.items(), key=lambda kv: -kv[1])]
        s.table("Segments, largest first", ["Segment", "Customers", "Definition"], rows, num=(1,))
    if records:
        rows = []
        for r in sorted(records, key=lambda r: (-int(r.get("rows") or 0), r.get("segment", ""))):
            path = Path(str(r.get("path", "")))
            href = path
            if report_dir is not None and path.is_absolute():
                try:
                    href = path.relative_to(report_dir)
                except ValueError:
                    href = path
            rows.append([r.get("segment"), {"text": path.name, "href": href.as_posix()},
                         fmt_count(r.get("rows")), r.get("channel") or "none",
                         fmt_count(r.get("suppressed_opt_out")),
                         fmt_count(r.get("suppressed_unknown_consent"))])
        s.table("Export files, largest first", ["Segment", "File", "Rows", "Channel",
                                                "Left out: opted out",
                                                "Left out: consent unknown"], rows,
                num=(2, 4, 5), note="Customers who opted out of a segment's channel, or "
                                    "whose consent is not recorded, are never exported. "
                                    "Channel 'none': an analysis list, not for contact.")
    else:
        s.text("No export files were written in this run.", cls="muted")
    return s


# --- appendix ------------------------------------------------------------------------

_INTERVAL = re.compile(r"^([\[(])(-inf|[\d,.]+), (inf|[\d,.]+)([\])])$")


def _interval(text: str) -> str:
    """'[100,000, 1,000,000)' -> '100,000 to under 1,000,000'; '(-inf, 100,000)' -> 'under 100,000'."""
    m = _INTERVAL.match(text)
    if not m:
        return text
    left, lo, hi, right = m.groups()
    if lo == "-inf":
        return f"{'up to' if right == ']' else 'under'} {hi}"
    if hi == "inf":
        return f"{lo} or more" if left == "[" else f"over {lo}"
    start = f"{lo}" if left == "[" else f"over {lo}"
    return f"{start} to {'' if right == ']' else 'under '}{hi}"


def _flatten(prefix: str, value: Any, out: list[tuple[str, str]], depth: int = 0) -> None:
    if isinstance(value, Mapping) and depth < 2 and value:
        for k, v in value.items():
            _flatten(f"{prefix} › {humanize(k)}" if prefix else humanize(k), v, out, depth + 1)
    else:
        if isinstance(value, Mapping):
            text = ", ".join(f"{k} = {fmt_value(v) if not isinstance(v, Mapping) else '…'}"
                             for k, v in value.items())
        elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            text = "; ".join(value)
        elif isinstance(value, str):
            text = _interval(value)
        else:
            text = fmt_value(value)
        out.append((prefix, text))


def _when(stamp: Any) -> str:
    """'2026-12-01T15:46:48+00:00' -> '2026-12-01 15:46:48 UTC'."""
    if not stamp:
        return "–"
    try:
        t = dt.datetime.fromisoformat(str(stamp))
    except ValueError:
        return str(stamp)
    if t.tzinfo is not None:
        t = t.astimezone(dt.timezone.utc)
        return t.strftime("%Y-%m-%d %H:%M:%S UTC")
    return t.strftime("%Y-%m-%d %H:%M:%S")


def _appendix(d: Data) -> Section:
    s = Section("appendix", "Technical appendix",
                "Inputs, validation, timings, versions and what each step recorded.")
    run = d.manifest.get("run", {})
    facts = [("Run", run.get("name")), ("As of", run.get("as_of")),
             ("Previous run", run.get("previous_run") or "none (first run)"),
             ("Started", _when(run.get("started_at"))),
             ("Finished", _when(run.get("finished_at"))),
             ("Input source", d.manifest.get("inputs", {}).get("source"))]
    fp = d.manifest.get("config_fingerprint")
    if fp:
        facts.append(("Config fingerprint", fp[:16] + "…"))
    s.table("Run", ["", ""], [[k, fmt_value(v)] for k, v in facts])
    tables = d.manifest.get("inputs", {}).get("tables", {})
    if tables:
        rows = sorted(tables.items(), key=lambda kv: (-kv[1].get("rejected", 0),
                                                      -kv[1].get("rows", 0)))
        s.table("Inputs, most rejected rows first", ["Table", "Rows read", "Rejected",
                                                     "Rejected share"],
                [[k, fmt_count(v.get("rows")), fmt_count(v.get("rejected")),
                  fmt_share(v.get("rejected", 0) / v["rows"] if v.get("rows") else 0)]
                 for k, v in rows], num=(1, 2, 3),
                note="Rejected rows and their reasons are in the run's quarantine folder.")
    problems = d.manifest.get("validation", {}).get("problems", [])
    if problems:
        s.items(f"Validation: {len(problems)} problem(s)", [str(p) for p in problems], cls="bad")
    else:
        s.text("Validation: no problems found in the inputs.", cls="ok")
    timings = d.manifest.get("timings_seconds", {})
    if timings:
        total = sum(float(v) for v in timings.values())
        rows = [[humanize(k), f"{float(v):.2f} s", fmt_share(float(v) / total if total else 0)]
                for k, v in timings.items()]
        rows.append([{"text": "Total", "cls": "strong"}, f"{total:.2f} s", "100%"])
        s.table("Timings, in run order", ["Stage", "Time", "Share"], rows, num=(1, 2))
    for step, f in d.manifest.get("steps", {}).items():
        if not isinstance(f, Mapping):
            continue
        out: list[tuple[str, str]] = []
        for k, v in f.items():
            if k in ("outputs", "exports"):
                continue
            _flatten(humanize(k), v, out)
        if out:
            s.table(f"Step '{step}': what it recorded", ["Fact", "Value"],
                    [[k, v] for k, v in out])
    versions = d.manifest.get("versions", {})
    if versions:
        s.table("Versions", ["Package", "Version"], [[k, v] for k, v in versions.items()])
    return s


def previous_run_folder(manifest: Mapping[str, Any], report_dir: Path | None) -> Path | None:
    """The previous run's folder, when it has a manifest beside this run's folder: the
    runner writes the report into a temporary sibling of ``<output_dir>/<as_of>/``."""
    prev = manifest.get("run", {}).get("previous_run")
    if not prev or report_dir is None:
        return None
    folder = Path(report_dir).parent / str(prev)
    return folder if (folder / "manifest.json").exists() else None


def _previous_steps(manifest: Mapping[str, Any], report_dir: Path | None) -> dict | None:
    """The previous run's manifest ``steps`` (its models' fit dates), when it is at hand."""
    folder = previous_run_folder(manifest, report_dir)
    if folder is None:
        return None
    try:
        found = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return found.get("steps") if isinstance(found, dict) else None


def build_sections(manifest: Mapping[str, Any], features: pl.DataFrame | None,
                   outputs: Mapping[str, Mapping[str, pl.DataFrame]], *, drift: Any = None,
                   exports: Any = None, previous_outputs=None, previous_features=None,
                   currency: str = "CNY", risk_threshold: float = 0.1,
                   report_dir: Path | None = None) -> tuple[list[Section], list[str]]:
    """Every section of the report, in reading order, and the list of warnings."""
    d = Data(manifest=manifest, features=features, outputs=outputs, previous=previous_outputs,
             previous_features=previous_features, currency=currency,
             risk_threshold=risk_threshold, report_dir=report_dir)
    warnings: list[str] = []
    problems = manifest.get("validation", {}).get("problems", [])
    if problems:
        warnings.append(f"{len(problems)} validation problem(s) in the inputs; bad rows were "
                        "quarantined (see the appendix).")
    drift_result = drift if drift is not None else manifest.get("drift")
    if drift_result is None and previous_outputs is not None:
        from crmkit.pipeline._drift import check_drift

        drift_result = check_drift(features, outputs, previous_features=previous_features,
                                   previous_outputs=previous_outputs,
                                   step_facts=manifest.get("steps", {}),
                                   previous_step_facts=_previous_steps(manifest, report_dir),
                                   ).to_manifest()
        drift_result["origin"] = ("Computed by the report with the default thresholds "
                                  "(no drift gate is configured for this run).")
    if drift_result is not None:
        msgs = (drift_result.messages if hasattr(drift_result, "messages")
                else drift_result.get("messages", []))
        warnings.extend(f"Drift: {m}" for m in msgs)
    value_notes = manifest.get("steps", {}).get("churn", {}).get("notes") or []
    warnings.extend(f"Churn: {n}" for n in value_notes if isinstance(n, str))
    builders = [("tiers", "Value tiers and tier movement", lambda: _tiers(d)),
                ("lifecycle", "Lifecycle stages and flows", lambda: _lifecycle(d)),
                ("churn", "Churn risk", lambda: _churn(d)),
                ("clv", "Customer lifetime value", lambda: _clv(d)),
                ("propensity", "Cross-sell propensity", lambda: _propensity(d)),
                ("workload", "Relationship managers: books and calls", lambda: _workload(d)),
                ("sectors", "Sector lists", lambda: _sectors(d)),
                ("drift", "Drift and quality gates", lambda: _drift(d, drift_result)),
                ("exports", "Segments and exports", lambda: _exports(d, exports, report_dir)),
                ("appendix", "Technical appendix", lambda: _appendix(d))]
    body = []
    for sid, title, build in builders:
        # A report that cannot draw one section still reports the run: the section says
        # what failed, and the headline counts it as a warning.
        try:
            body.append(build())
        except Exception as err:  # noqa: BLE001 - shown to the reader, never swallowed
            msg = f"The report could not draw this section: {type(err).__name__}: {err}"
            body.append(Section(sid, title, missing=msg))
            warnings.append(f"{title}: {msg}")
    return [_headline(d, warnings), *body], warnings
