"""Stable hash-based control groups and the contacted-vs-control outcome comparison."""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from crmkit._frames import Output, to_output, to_polars
from crmkit._params import check_date
from crmkit.exceptions import SchemaError

__all__ = ["compare_outcomes", "control_group"]


def _unit_hash(campaign: str, ids: Sequence[str]) -> np.ndarray:
    """A uniform number in [0, 1) per id from BLAKE2b of ``campaign + id``: the same on
    every machine, Python and polars version (unlike ``hash()`` or ``Series.hash``)."""
    prefix = campaign.encode() + b"\x1f"
    out = np.fromiter((int.from_bytes(hashlib.blake2b(prefix + s.encode(), digest_size=8).digest(), "big")
                       for s in ids), dtype=np.uint64, count=len(ids))
    return out.astype(np.float64) / 2.0 ** 64


def control_group(customers: Any, *, campaign: str, share: float, as_of: dt.date | str | None = None,
                  output: Output = "polars"):
    """Hold out a stable share of customers from a campaign or call list.

    A customer is in the control group when ``u < share``, where ``u`` is a uniform
    number computed from a cryptographic hash of ``campaign`` and ``customer_id``: the
    same customer is held out of the same campaign on every run, on every machine,
    and growing ``share`` only adds customers to the control group. Different
    campaigns hold out independent groups.

    Parameters
    ----------
    customers : table
        ``customer_id`` (other columns are ignored).
    campaign : str
        Campaign or call-list name.
    share : float
        Share in [0, 1) held out.
    as_of : date, optional
        Recorded with each row.

    Returns
    -------
    DataFrame
        ``customer_id``, ``campaign``, ``as_of``, ``u``, ``group`` (``"control"`` or
        ``"contact"``): the record to keep for :func:`compare_outcomes`.

    Examples
    --------
    >>> import polars as pl
    >>> ids = pl.DataFrame({"customer_id": [f"C{i}" for i in range(1000)]})
    >>> g = control_group(ids, campaign="retention-2025-06", share=0.1)
    >>> int((g["group"] == "control").sum())
    91
    >>> g.equals(control_group(ids.reverse(), campaign="retention-2025-06", share=0.1))
    True
    """
    if not isinstance(campaign, str) or not campaign:
        raise ValueError(f"The 'campaign' parameter of control_group must be a non-empty string. "
                         f"Got {campaign!r} instead.")
    ok = isinstance(share, (int, float)) and not isinstance(share, bool) and 0 <= share < 1
    if not ok:
        raise ValueError(f"The 'share' parameter of control_group must be a number in [0, 1). "
                         f"Got {share!r} instead.")
    day = check_date(as_of, "as_of", "control_group") if as_of is not None else None
    df = to_polars(customers, "customers")
    if "customer_id" not in df.columns:
        raise SchemaError(f"control_group: table 'customers' has no column 'customer_id'; it has "
                          f"{', '.join(df.columns)}.")
    ids = df["customer_id"].cast(pl.String)
    if ids.null_count():
        raise SchemaError(f"control_group: table 'customers' column 'customer_id' has {ids.null_count()} nulls.")
    ids = ids.unique().sort()
    u = _unit_hash(campaign, ids.to_list())
    out = pl.DataFrame({"customer_id": ids, "campaign": pl.Series([campaign] * len(ids), dtype=pl.String),
                        "as_of": pl.Series([day] * len(ids), dtype=pl.Date), "u": u})
    out = out.with_columns(pl.when(pl.col("u") < share).then(pl.lit("control"))
                           .otherwise(pl.lit("contact")).alias("group"))
    return to_output(out, output)


def compare_outcomes(groups: Any, outcomes: Any, *, outcome_cols: Sequence[str] | None = None,
                     confidence: float = 0.95, output: Output = "polars"):
    """Outcomes of the contacted group against the control group, per campaign.

    An intention-to-treat comparison: everyone assigned to ``"contact"`` counts as
    contacted. For each outcome (``retained``, ``products_opened``, ...) it reports
    both means, the difference (uplift), its Welch standard error, a normal
    confidence interval and a two-sided p-value (for a 0/1 outcome this is the
    unpooled two-proportion z-test).

    Parameters
    ----------
    groups : table
        Records of :func:`control_group` (``customer_id``, ``campaign``, ``group``),
        possibly from several runs and campaigns.
    outcomes : table
        ``customer_id`` and numeric or boolean outcome columns, measured later.
    outcome_cols : list of str, optional
        Default: every numeric or boolean column of ``outcomes`` but ``customer_id``.
    confidence : float, default 0.95

    Returns
    -------
    DataFrame
        Per campaign and outcome: ``n_contact``, ``n_control``, ``mean_contact``,
        ``mean_control``, ``uplift``, ``se``, ``ci_low``, ``ci_high``, ``p_value``.

    Examples
    --------
    >>> import polars as pl
    >>> g = pl.DataFrame({"customer_id": list("abcdefgh"), "campaign": ["x"] * 8,
    ...                   "group": ["contact"] * 4 + ["control"] * 4})
    >>> o = pl.DataFrame({"customer_id": list("abcdefgh"),
    ...                   "retained": [1, 1, 1, 0, 1, 0, 0, 0]})
    >>> compare_outcomes(g, o).select("mean_contact", "mean_control", "uplift").row(0)
    (0.75, 0.25, 0.5)
    """
    from scipy.stats import norm
    g = to_polars(groups, "groups")
    o = to_polars(outcomes, "outcomes")
    for table, frame, cols in (("groups", g, ("customer_id", "campaign", "group")), ("outcomes", o, ("customer_id",))):
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise SchemaError(f"compare_outcomes: table {table!r} has no column "
                              f"{', '.join(map(repr, missing))}; it has {', '.join(frame.columns)}.")
    if outcome_cols is None:
        outcome_cols = [c for c, t in o.schema.items() if c != "customer_id" and (t.is_numeric() or t == pl.Boolean)]
    if not outcome_cols:
        raise SchemaError("compare_outcomes: table 'outcomes' has no numeric or boolean outcome column.")
    if not 0 < confidence < 1:
        raise ValueError(f"The 'confidence' parameter of compare_outcomes must be in (0, 1). Got {confidence!r} instead.")
    z = float(norm.ppf(0.5 + confidence / 2))
    j = g.select("customer_id", "campaign", "group").unique().join(o, on="customer_id", how="inner")
    rows = []
    for col in outcome_cols:
        s = (j.with_columns(pl.col(col).cast(pl.Float64)).drop_nulls(col)
             .group_by("campaign", "group").agg(pl.len().alias("n"), pl.col(col).mean().alias("m"),
                                                pl.col(col).var().alias("v")))
        for camp in sorted(s["campaign"].unique().to_list()):
            part = {r["group"]: r for r in s.filter(pl.col("campaign") == camp).iter_rows(named=True)}
            a, b = part.get("contact"), part.get("control")
            if a is None or b is None:
                rows.append((camp, col, a and a["n"] or 0, b and b["n"] or 0, a and a["m"], b and b["m"],
                             None, None, None, None, None))
                continue
            up = a["m"] - b["m"]
            se = math.sqrt((a["v"] or 0.0) / a["n"] + (b["v"] or 0.0) / b["n"])
            p = float(2 * norm.sf(abs(up) / se)) if se > 0 else None
            rows.append((camp, col, a["n"], b["n"], a["m"], b["m"], up, se,
                         up - z * se, up + z * se, p))
    out = pl.DataFrame(rows, schema={"campaign": pl.String, "outcome": pl.String, "n_contact": pl.Int64,
                                     "n_control": pl.Int64, "mean_contact": pl.Float64,
                                     "mean_control": pl.Float64, "uplift": pl.Float64, "se": pl.Float64,
                                     "ci_low": pl.Float64, "ci_high": pl.Float64, "p_value": pl.Float64},
                       orient="row")
    return to_output(out, output)
