"""The run's customer table, segment definitions, segment sizes and overlaps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import polars as pl
from pydantic import RootModel, field_validator, model_validator

from crmkit._config import StrictModel
from crmkit._frames import to_polars
from crmkit.exceptions import ConfigError
from crmkit.segments._expr import compile_segment

__all__ = ["CHANNELS", "Segment", "SegmentsConfig", "customer_table", "segment_members", "segment_membership",
           "segment_overlaps", "segment_sizes"]

CHANNELS = ("email", "sms", "phone")


class Segment(StrictModel):
    """One segment: a name, a condition over the customer table, and what to export.

    In a pipeline config this is ``[segments.<name>]`` with the keys below.

    Attributes
    ----------
    name : str
        Letters, digits, ``_`` and ``-``; used in export file names.
    where : str
        The condition (see :func:`crmkit.segments.compile_segment` for the grammar).
    columns : list of str
        The only columns an export contains (``customer_id`` is always first).
    channel : {"email", "sms", "phone"} or None
        The channel the segment is for: customers who opted out of it are left out
        of every export. ``None`` for an analysis list that nobody is contacted from.
    description : str
        A sentence for the report and the export's stamp.
    formats : list of {"csv", "xlsx", "parquet"}
        The files a run writes for the segment.
    pseudonymise : bool
        Replace ids by keyed pseudonyms in its exports (key from the environment).

    Examples
    --------
    >>> seg = Segment(name="gold_at_risk", where='tier == "Gold" and churn_prob_90d > 0.3',
    ...               columns=["tier", "churn_prob_90d"], channel="email")
    >>> seg.channel
    'email'
    """

    name: str
    where: str
    columns: list[str] = ["customer_id"]
    channel: Literal["email", "sms", "phone"] | None = None
    description: str = ""
    formats: list[Literal["csv", "xlsx", "parquet"]] = ["csv"]
    pseudonymise: bool = False

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        ok = value and all(c.isascii() and (c.isalnum() or c in "_-") for c in value)
        if not ok:
            raise ValueError(f"a segment name must be letters, digits, '_' or '-'. Got "
                             f"{value!r} instead.")
        return value

    @field_validator("columns")
    @classmethod
    def _columns(cls, value: list[str]) -> list[str]:
        dupes = sorted({c for c in value if value.count(c) > 1})
        if dupes:
            raise ValueError(f"columns are listed twice: {', '.join(dupes)}.")
        return ["customer_id", *[c for c in value if c != "customer_id"]]


class SegmentsConfig(RootModel[dict[str, dict[str, Any]]]):
    """``[segments]``: one ``[segments.<name>]`` table per segment (the fields of
    :class:`Segment` but ``name``). Each is checked when the config is read.

    Examples
    --------
    >>> cfg = SegmentsConfig.model_validate({"vip": {"where": 'tier == "Gold"',
    ...                                              "channel": "email"}})
    >>> [s.name for s in cfg.segments()]
    ['vip']
    >>> SegmentsConfig.model_validate({"vip": {"where": "x > 1", "chanel": "email"}})
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for SegmentsConfig
      Value error, Invalid segment 'vip': unknown key 'chanel' in Segment. Did you mean 'channel'? ...
    """

    root: dict[str, dict[str, Any]] = {}

    @model_validator(mode="after")
    def _check(self) -> SegmentsConfig:
        for name, fields in self.root.items():
            try:
                as_segment(fields, name)
            except ConfigError as err:
                raise ValueError(str(err)) from None
        return self

    def segments(self) -> list[Segment]:
        """The segments, in config order."""
        return [as_segment(fields, name) for name, fields in self.root.items()]


def as_segment(segment: Segment | Mapping[str, Any] | str, name: str = "segment") -> Segment:
    """A :class:`Segment` from a Segment, a mapping of its fields, or an expression."""
    if isinstance(segment, Segment):
        return segment
    if isinstance(segment, str):
        return Segment(name=name, where=segment)
    try:
        return Segment.model_validate({"name": name, **dict(segment)})
    except Exception as err:  # pydantic's message, one line
        from pydantic import ValidationError

        from crmkit._config import format_validation_error

        if isinstance(err, ValidationError):
            raise ConfigError(f"Invalid segment {name!r}: {format_validation_error(err)}") from None
        raise


def customer_table(outputs: Mapping[str, Mapping[str, Any]], features: Any = None,
                   customers: Any = None) -> pl.DataFrame:
    """Every per-customer output of a run joined into one row per customer.

    The base is the feature table (or the union of customer ids when it is
    absent). Then, in order, the customer columns of ``customers`` (opt-outs,
    area, ...) and every step output that has one row per ``customer_id`` are
    left-joined by ``customer_id``. A column name that is already present is not
    joined again (the first source wins: features, customers, then steps in run
    order); tables with several rows per customer (actions, stage changes) are
    not joined.

    Parameters
    ----------
    outputs : mapping
        Step name to {table name: frame}, as the runner passes them.
    features : table, optional
    customers : table, optional
        The input ``customers`` table (for ``opt_out_<channel>`` columns).

    Returns
    -------
    polars.DataFrame
        Sorted by ``customer_id``.

    Examples
    --------
    >>> import polars as pl
    >>> feats = pl.DataFrame({"customer_id": ["a", "b"], "holds_fund": [True, False]})
    >>> outs = {"value": {"value_tiers": pl.DataFrame({"customer_id": ["a", "b"],
    ...                                                 "tier": ["Gold", "Mass"]})}}
    >>> customer_table(outs, feats).columns
    ['customer_id', 'holds_fund', 'tier']
    """
    frames: list[pl.DataFrame] = []
    if features is not None:
        frames.append(to_polars(features, "features"))
    if customers is not None:
        frames.append(to_polars(customers, "customers"))
    for step, tables in outputs.items():
        for name, frame in tables.items():
            frames.append(to_polars(frame, f"{step}.{name}"))
    per_customer = [f for f in frames
                    if "customer_id" in f.columns and f.height and f["customer_id"].is_unique().all()]
    if features is not None:
        base = to_polars(features, "features")
        if "customer_id" not in base.columns:
            raise ConfigError("customer_table: the features table has no 'customer_id' column.")
        ids = base.select("customer_id").unique()
    elif per_customer:
        ids = pl.concat([f.select(pl.col("customer_id").cast(pl.String)) for f in per_customer]
                        ).unique()
    else:
        return pl.DataFrame({"customer_id": []}, schema={"customer_id": pl.String})
    out = ids
    for frame in per_customer:
        new = [c for c in frame.columns if c not in out.columns]
        if not new:
            continue
        out = out.join(frame.select(["customer_id", *new]), on="customer_id", how="left")
    return out.sort("customer_id")


def segment_members(table: Any, segment: Segment | Mapping[str, Any] | str, *,
                    name: str = "segment") -> pl.DataFrame:
    """The rows of ``table`` that are in ``segment`` (all columns, sorted by customer).

    Examples
    --------
    >>> import polars as pl
    >>> t = pl.DataFrame({"customer_id": ["a", "b"], "clv": [10.0, None]})
    >>> segment_members(t, "clv > 5")["customer_id"].to_list()
    ['a']
    """
    seg = as_segment(segment, name)
    frame = to_polars(table, "customer_table")
    compiled = compile_segment(seg.where, frame, name=seg.name)
    return frame.filter(compiled.expr)


def _flags(frame: pl.DataFrame, segments: Sequence[Segment]) -> pl.DataFrame:
    exprs = []
    for seg in segments:
        compiled = compile_segment(seg.where, frame, name=seg.name)
        exprs.append(compiled.expr.alias(seg.name))
    return frame.select(exprs)


def _segments(segments: Any) -> list[Segment]:
    if isinstance(segments, SegmentsConfig):
        return segments.segments()
    if isinstance(segments, Mapping):
        return [as_segment(v, k) for k, v in segments.items()]
    return [as_segment(s) for s in segments]


def segment_sizes(table: Any, segments: Mapping[str, Any] | Sequence[Segment]) -> pl.DataFrame:
    """Size of each segment: customers, share of all customers, and the definition.

    Parameters
    ----------
    table : table
        The customer table (:func:`customer_table`).
    segments : mapping of name to Segment/fields/expression, or a list of Segment

    Returns
    -------
    polars.DataFrame
        ``segment, customers, share, where``, largest first.

    Examples
    --------
    >>> import polars as pl
    >>> t = pl.DataFrame({"customer_id": ["a", "b", "c"], "clv": [10.0, 1.0, 30.0]})
    >>> segment_sizes(t, {"high": "clv > 5", "low": "clv <= 5"}).rows()
    [('high', 2, 0.6666666666666666, 'clv > 5'), ('low', 1, 0.3333333333333333, 'clv <= 5')]
    """
    frame = to_polars(table, "customer_table")
    segs = _segments(segments)
    flags = _flags(frame, segs)
    total = frame.height
    return pl.DataFrame({
        "segment": [s.name for s in segs],
        "customers": [int(flags[s.name].sum()) for s in segs],
        "share": [float(flags[s.name].sum()) / total if total else 0.0 for s in segs],
        "where": [s.where for s in segs],
    }, schema={"segment": pl.String, "customers": pl.Int64, "share": pl.Float64,
               "where": pl.String}).sort(["customers", "segment"], descending=[True, False])


def segment_overlaps(table: Any, segments: Mapping[str, Any] | Sequence[Segment]) -> pl.DataFrame:
    """Customers in both of every pair of segments (long form, one row per ordered pair).

    ``share_of_a`` is the overlap as a share of segment ``a``: how much of ``a``
    is also in ``b``.

    Examples
    --------
    >>> import polars as pl
    >>> t = pl.DataFrame({"customer_id": ["a", "b", "c"], "clv": [10.0, 1.0, 30.0]})
    >>> segment_overlaps(t, {"high": "clv > 5", "top": "clv > 20"}).rows()
    [('high', 'high', 2, 1.0), ('high', 'top', 1, 0.5), ('top', 'high', 1, 1.0), ('top', 'top', 1, 1.0)]
    """
    frame = to_polars(table, "customer_table")
    segs = _segments(segments)
    flags = _flags(frame, segs)
    rows = []
    for a in segs:
        size_a = int(flags[a.name].sum())
        for b in segs:
            both = int((flags[a.name] & flags[b.name]).sum())
            rows.append((a.name, b.name, both, both / size_a if size_a else 0.0))
    return pl.DataFrame(rows, schema={"a": pl.String, "b": pl.String, "customers": pl.Int64,
                                      "share_of_a": pl.Float64}, orient="row")


def segment_membership(table: Any, segments: Mapping[str, Any] | Sequence[Segment]) -> pl.DataFrame:
    """Who is in which segment, long form (``segment, customer_id``): for a database.

    No consent filtering here: this records membership, it is not a contact list.

    Examples
    --------
    >>> import polars as pl
    >>> t = pl.DataFrame({"customer_id": ["a", "b", "c"], "clv": [10.0, 1.0, 30.0]})
    >>> segment_membership(t, {"high": "clv > 5", "top": "clv > 20"}).rows()
    [('high', 'a'), ('high', 'c'), ('top', 'c')]
    """
    frame = to_polars(table, "customer_table")
    segs = _segments(segments)
    flags = _flags(frame, segs).with_columns(frame["customer_id"])
    parts = [flags.filter(pl.col(s.name)).select(pl.lit(s.name).alias("segment"), "customer_id")
             for s in segs]
    if not parts:
        return pl.DataFrame(schema={"segment": pl.String, "customer_id": pl.String})
    return pl.concat(parts).sort("segment", "customer_id")
