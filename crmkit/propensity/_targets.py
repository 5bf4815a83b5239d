"""Cross-sell training data without leakage: features as of a date, labels after it.

For a landmark date ``D`` and a horizon ``h``, a customer is *eligible* for a target
(a product, or a product category) when the customer is known on ``D`` and holds no
open account of that target on ``D``; the label is 1 when the customer opens an
account of the target in ``(D, D + h]``. Features are computed from rows dated on or
before ``D`` only (:func:`crmkit.features.build_features` plus the holding features
below), so adding rows dated after ``D`` never changes them. Several landmarks are
stacked (one row per customer and date) and the customer id is the group for
cross-validation, so that no customer sits on both sides of a split.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import polars as pl

from crmkit._frames import Output, to_lazy, to_output, to_polars
from crmkit._params import check_choice, check_date, check_positive
from crmkit.exceptions import SchemaError
from crmkit.features import build_features, shard_filter
from crmkit.features._shard import restrict_to_customers
from crmkit.features._units import UNIT_DAYS, UNITS
from crmkit.schema import empty_table

__all__ = [
    "LABEL_PREFIX",
    "RETAIL_BANK_TIERS",
    "build_training_set",
    "holding_features",
    "horizon_end",
    "propensity_features",
    "split_training_set",
]

LABEL_PREFIX = "label__"
"""Prefix of the label columns of :func:`build_training_set` (``label__P05``)."""

RETAIL_BANK_TIERS: tuple[tuple[str, float], ...] = (
    ("Mass", float("-inf")), ("Gold", 100_000.0), ("Platinum", 1_000_000.0),
    ("Diamond", 5_000_000.0))
"""The retail-bank VIP preset on ``financial_assets`` (CNY), lower bounds inclusive:
the same boundaries as ``crmkit.value.TierScheme.retail_bank()``."""

_NOT_FEATURES = ("customer_id", "branch_id", "as_of", "tier")


def horizon_end(as_of: dt.date, horizon: float, unit: str, owner: str = "horizon_end") -> dt.date:
    """The last day of the label window ``(as_of, as_of + horizon]``.

    ``calendar_months`` moves the date by whole months (month ends stay month ends,
    like polars' ``offset_by``); the other units are fixed numbers of days
    (``mean_months`` = 30.4375 days), rounded down to whole days.

    Examples
    --------
    >>> horizon_end(dt.date(2025, 3, 31), 3, "calendar_months")
    datetime.date(2025, 6, 30)
    >>> horizon_end(dt.date(2025, 3, 31), 90, "days")
    datetime.date(2025, 6, 29)
    """
    check_choice(unit, UNITS, "unit", owner)
    check_positive(horizon, "horizon", owner)
    if unit == "calendar_months":
        if float(horizon) != int(horizon):
            raise ValueError(f"The 'horizon' parameter of {owner} must be a whole number of "
                             f"calendar months. Got {horizon!r} instead.")
        return pl.select(pl.lit(as_of).dt.offset_by(f"{int(horizon)}mo")).item()
    return as_of + dt.timedelta(days=int(float(horizon) * UNIT_DAYS[unit]))


def _table(tables: Mapping[str, Any], name: str) -> pl.LazyFrame:
    if name in tables and tables[name] is not None:
        return to_lazy(tables[name], name)
    return empty_table(name).lazy()


def _open_on(day: dt.date) -> pl.Expr:
    return (pl.col("opened") <= day) & (pl.col("closed").is_null() | (pl.col("closed") > day))


def _target_column(level: str) -> str:
    return "product_id" if level == "product" else "category"


def _targets(tables: Mapping[str, Any], level: str, targets: Sequence[str] | None) -> list[str]:
    products = to_polars(tables["products"], "products")
    known = sorted(products[_target_column(level)].unique().to_list())
    if targets is None:
        return known
    unknown = [t for t in targets if t not in known]
    if unknown:
        raise SchemaError(f"products: {len(unknown)} requested {level} target(s) not in the "
                          f"catalogue: {unknown[:5]}; known: {known[:10]}.")
    return list(dict.fromkeys(targets))


def holding_features(tables: Mapping[str, Any], *, as_of: dt.date | str,
                     products: Sequence[str] | None = None,
                     shard: tuple[int, int] | None = None, output: Output = "polars"):
    """Per-product holding features as of a date, one row per customer with a holding.

    Columns: ``holds__<product_id>`` (an account of it is open on ``as_of``),
    ``held_before__<product_id>`` (one was opened and closed on or before
    ``as_of``), ``days_since_last_open`` (days since the latest account opening),
    ``n_opened_365d`` (accounts opened in the year up to ``as_of``) and, from the
    contacts table, ``declined_365d`` (contacts with outcome ``"declined"``).
    Only rows dated on or before ``as_of`` are read.

    Examples
    --------
    >>> from crmkit.datasets import make_bank
    >>> bank = make_bank(200, seed=1)
    >>> hf = holding_features(bank, as_of="2025-06-30")
    >>> hf.columns[:3]
    ['customer_id', 'holds__P01', 'holds__P02']
    """
    day = check_date(as_of, "as_of", "holding_features")
    if products is None:
        products = sorted(to_polars(tables["products"], "products")["product_id"].to_list())
    hold = _table(tables, "holdings").select("customer_id", "product_id", "opened", "closed") \
        .filter(pl.col("opened") <= day)
    contacts = _table(tables, "contacts")
    if "outcome" not in contacts.collect_schema().names():
        contacts = contacts.with_columns(pl.lit(None, pl.String).alias("outcome"))
    contacts = contacts.filter((pl.col("date") <= day)
                               & ((pl.lit(day) - pl.col("date")).dt.total_days() < 365)
                               & (pl.col("outcome") == "declined"))
    if shard is not None:
        hold = hold.filter(shard_filter(pl.col("customer_id"), *shard))
        contacts = contacts.filter(shard_filter(pl.col("customer_id"), *shard))
    is_open = _open_on(day)
    closed_before = pl.col("closed").is_not_null() & (pl.col("closed") <= day)
    ago = (pl.lit(day) - pl.col("opened")).dt.total_days()
    feats = hold.group_by("customer_id").agg(
        *[(is_open & (pl.col("product_id") == p)).any().alias(f"holds__{p}") for p in products],
        *[(closed_before & (pl.col("product_id") == p)).any().alias(f"held_before__{p}")
          for p in products],
        ago.min().cast(pl.Int64).alias("days_since_last_open"),
        (ago < 365).sum().cast(pl.Int64).alias("n_opened_365d"),
    )
    declined = contacts.group_by("customer_id").agg(pl.len().cast(pl.Int64).alias("declined_365d"))
    out = feats.join(declined, on="customer_id", how="full", coalesce=True).with_columns(
        pl.col("declined_365d").fill_null(0), pl.col("n_opened_365d").fill_null(0),
        *[pl.col(f"{k}__{p}").fill_null(False) for p in products for k in ("holds", "held_before")],
    ).sort("customer_id")
    return to_output(out.collect(), output)


def _tier_expr(tiers: Sequence[tuple[str, float]]) -> tuple[pl.Expr, pl.Expr]:
    assets = pl.col("financial_assets").fill_null(0.0)
    rank = pl.lit(0, pl.Int64)
    name = pl.lit(tiers[0][0])
    for i, (label, low) in enumerate(tiers[1:], start=1):
        rank = pl.when(assets >= low).then(pl.lit(i, pl.Int64)).otherwise(rank)
        name = pl.when(assets >= low).then(pl.lit(label)).otherwise(name)
    return name.alias("tier"), rank.alias("tier_rank")


def propensity_features(tables: Mapping[str, Any], *, as_of: dt.date | str,
                        windows: Sequence[int] = (30, 90, 365),
                        tiers: Sequence[tuple[str, float]] = RETAIL_BANK_TIERS,
                        shard: tuple[int, int] | None = None,
                        asset_weights: Mapping[str, float] | None = None,
                        base: Any = None, output: Output = "polars"):
    """The model's input row per customer as of a date: features, holdings and tier.

    :func:`crmkit.features.build_features` (numeric and boolean columns, dates
    dropped), the :func:`holding_features` of every catalogue product, and the
    value tier on ``financial_assets`` (``tier`` name and ``tier_rank``, 0 the
    lowest). The same function feeds training (at each landmark) and scoring (at the
    run date), so the model always sees the features it was fitted on.

    Parameters
    ----------
    tables : mapping of str to table
        Canonical tables; ``customers`` and ``products`` are required.
    as_of : date or str
    windows : sequence of int
        Feature windows in days (see :func:`crmkit.features.build_features`).
    tiers : sequence of (name, lower bound)
        Tiers in increasing order, the first with ``-inf``; default the retail-bank preset.
    shard : (int, int), optional
        Only the customers of shard ``i`` of ``n``.
    asset_weights : mapping of str to float, optional
        Passed to :func:`crmkit.features.build_features` (``financial_assets``, so
        the tier, follow the bank's definition); default its weights.
    base : table, optional
        The :func:`crmkit.features.build_features` rows of these customers as of
        ``as_of`` with the same ``windows`` and ``asset_weights`` (a nightly run has
        built them already): used instead of building them again.
    output : {"polars", "pandas"}

    Examples
    --------
    >>> from crmkit.datasets import make_bank
    >>> f = propensity_features(make_bank(300, seed=2), as_of="2025-09-30")
    >>> f.select("customer_id", "tier", "tier_rank").dtypes
    [String, String, Int64]
    """
    day = check_date(as_of, "as_of", "propensity_features")
    if "products" not in tables:
        raise SchemaError("propensity_features needs a 'products' table (the catalogue).")
    products = sorted(to_polars(tables["products"], "products")["product_id"].to_list())
    base = to_polars(base, "features") if base is not None else build_features(
        tables, as_of=day, windows=windows, asset_weights=asset_weights, shard=shard)
    keep = [c for c, t in base.schema.items()
            if c in ("customer_id", "branch_id") or t.is_numeric() or t == pl.Boolean]
    hf = holding_features(tables, as_of=day, products=products, shard=shard)
    out = base.select(keep).join(hf, on="customer_id", how="left").with_columns(
        *[pl.col(c).fill_null(False) for c in hf.columns if c.startswith(("holds__", "held_"))],
        pl.col("n_opened_365d").fill_null(0), pl.col("declined_365d").fill_null(0),
        *_tier_expr(tiers),
    )
    return to_output(out.sort("customer_id"), output)


def _data_end(tables: Mapping[str, Any]) -> dt.date | None:
    ends = []
    for name, col in (("holdings", "opened"), ("transactions", "timestamp"),
                      ("balances", "date"), ("contacts", "date")):
        if name in tables and tables[name] is not None:
            v = _table(tables, name).select(pl.col(col).cast(pl.Date).max()).collect().item()
            if v is not None:
                ends.append(v)
    return max(ends) if ends else None


def build_training_set(
    tables: Mapping[str, Any],
    *,
    as_of: dt.date | str | Sequence[dt.date | str],
    horizon: float,
    unit: str,
    level: str = "product",
    targets: Sequence[str] | None = None,
    windows: Sequence[int] = (30, 90, 365),
    tiers: Sequence[tuple[str, float]] = RETAIL_BANK_TIERS,
    sample: float | None = None,
    shard: tuple[int, int] | None = None,
    asset_weights: Mapping[str, float] | None = None,
    features: Callable[[dt.date], Any] | None = None,
    output: Output = "polars",
):
    """Stacked (customer, landmark) rows with as-of features and per-target labels.

    Parameters
    ----------
    tables : mapping of str to table
        Canonical tables: ``customers``, ``products``, ``holdings`` (others optional).
    as_of : date or sequence of dates
        Landmark dates. Each gives one row per customer known on it.
    horizon : float
        Length of the label window ``(as_of, as_of + horizon]``.
    unit : {"days", "weeks", "calendar_months", "mean_months"}
        Unit of ``horizon`` (no default: say it).
    level : {"product", "category"}
        Whether a target is a product or a product category.
    targets : sequence of str, optional
        Products (or categories) to label; default the whole catalogue.
    windows, tiers, asset_weights
        Passed to :func:`propensity_features`.
    sample : float in (0, 1], optional
        Keep a deterministic share of the customers (by the CRC-32 of the id, the
        same customers at every landmark and on every machine), for a global fit
        from a sample.
    shard : (int, int), optional
        Only the customers of shard ``i`` of ``n``.
    features : callable, optional
        ``features(day)`` returning one row per customer (``customer_id`` and
        numeric columns) instead of :func:`propensity_features`; it must read
        nothing dated after ``day``.
    output : {"polars", "pandas"}

    Returns
    -------
    DataFrame
        ``customer_id``, ``as_of``, the feature columns, then ``label__<target>``
        per target: 1 if the customer opened it in the window, 0 if not, null if the
        customer held it on ``as_of`` (not eligible). Sorted by ``as_of`` then id.

    Raises
    ------
    ValueError
        When a label window ends after the last dated row of the tables (its labels
        would be silently incomplete).

    Examples
    --------
    >>> from crmkit.datasets import make_bank
    >>> bank = make_bank(400, seed=4)
    >>> ts = build_training_set(bank, as_of=["2025-03-31", "2025-06-30"], horizon=90,
    ...                         unit="days", targets=["P05", "P06"])
    >>> ts.select("label__P05", "label__P06").dtypes
    [Int8, Int8]
    >>> ts["as_of"].n_unique()
    2
    """
    owner = "build_training_set"
    check_choice(level, ("product", "category"), "level", owner)
    dates = [as_of] if isinstance(as_of, (str, dt.date)) else list(as_of)
    if not dates:
        raise ValueError(f"The 'as_of' parameter of {owner} must be a date or a non-empty "
                         f"sequence of dates. Got {as_of!r} instead.")
    dates = sorted({check_date(d, "as_of", owner) for d in dates})
    ends = {d: horizon_end(d, horizon, unit, owner) for d in dates}
    if sample is not None and not (isinstance(sample, (int, float)) and 0 < sample <= 1):
        raise ValueError(f"The 'sample' parameter of {owner} must be a number in (0, 1]. "
                         f"Got {sample!r} instead.")
    for name in ("customers", "products", "holdings"):
        if name not in tables:
            raise SchemaError(f"{owner} needs a {name!r} table.")
    last = _data_end(tables)
    late = [d for d in dates if last is None or ends[d] > last]
    if late:
        raise ValueError(f"{owner}: the label window of as_of {late[0]} ends on {ends[late[0]]}, "
                         f"after the last dated row of the tables ({last}); its labels would be "
                         "incomplete. Use an earlier as_of or a shorter horizon.")
    if sample is not None and sample < 1:
        # features are per customer: build them for the sample only, not for everyone
        # at every landmark (the refit's cost is then set by the sample's size)
        tables = restrict_to_customers(tables, _table(tables, "customers").select("customer_id")
                                       .filter(_sample_filter(pl.col("customer_id"), sample))
                                       .collect())
    tcol = _target_column(level)
    names = _targets(tables, level, targets)
    catalogue = to_lazy(tables["products"], "products").select("product_id", "category")
    hold = (_table(tables, "holdings").select("customer_id", "product_id", "opened", "closed")
            .join(catalogue, on="product_id", how="left"))
    if shard is not None:
        hold = hold.filter(shard_filter(pl.col("customer_id"), *shard))
    parts = []
    for day in dates:
        feats = to_polars(features(day), "features") if features is not None else \
            propensity_features(tables, as_of=day, windows=windows, tiers=tiers, shard=shard,
                                asset_weights=asset_weights)
        if shard is not None and features is not None:
            feats = feats.filter(shard_filter(pl.col("customer_id"), *shard))
        if sample is not None and sample < 1:
            feats = feats.filter(_sample_filter(pl.col("customer_id"), sample))
        end = ends[day]
        held = hold.filter(_open_on(day)).group_by("customer_id").agg(
            *[(pl.col(tcol) == t).any().alias(f"_h{i}") for i, t in enumerate(names)])
        opened = hold.filter((pl.col("opened") > day) & (pl.col("opened") <= end)) \
            .group_by("customer_id").agg(
            *[(pl.col(tcol) == t).any().alias(f"_o{i}") for i, t in enumerate(names)])
        lab = (feats.lazy().select("customer_id")
               .join(held, on="customer_id", how="left")
               .join(opened, on="customer_id", how="left")
               .select("customer_id", *[
                   pl.when(pl.col(f"_h{i}").fill_null(False)).then(None)
                   .otherwise(pl.col(f"_o{i}").fill_null(False).cast(pl.Int8))
                   .cast(pl.Int8).alias(f"{LABEL_PREFIX}{t}")
                   for i, t in enumerate(names)]))
        part = feats.lazy().join(lab, on="customer_id", how="left").with_columns(
            pl.lit(day).alias("as_of"))
        parts.append(part.collect())
    out = pl.concat(parts, how="vertical")
    first = ["customer_id", "as_of"]
    out = out.select(first + [c for c in out.columns if c not in first])
    return to_output(out.sort("as_of", "customer_id"), output)


def _sample_filter(ids: pl.Expr, share: float) -> pl.Expr:
    """A deterministic share of customers: CRC-32 of the id modulo 10,000."""
    from crmkit.features._shard import crc32_of
    cut = int(round(share * 10_000))
    return ids.map_batches(lambda s: crc32_of(s) % 10_000, return_dtype=pl.UInt32) < cut


def split_training_set(frame: Any) -> tuple[pl.DataFrame, pl.DataFrame, pl.Series]:
    """Split a training set into ``(X, Y, groups)`` for :class:`PropensityModel`.

    ``X``: the numeric and boolean feature columns (ids, dates, the tier name and
    labels removed); ``Y``: one column per target (label prefix removed, null where
    not eligible); ``groups``: the customer ids, for group-wise cross-validation.

    Examples
    --------
    >>> import polars as pl, datetime as dt
    >>> ts = pl.DataFrame({"customer_id": ["a", "b"], "as_of": [dt.date(2025, 1, 1)] * 2,
    ...                    "x": [1.0, 2.0], "tier": ["Mass", "Gold"],
    ...                    "label__P1": pl.Series([1, None], dtype=pl.Int8)})
    >>> X, Y, g = split_training_set(ts)
    >>> X.columns, Y.columns, g.to_list()
    (['x'], ['P1'], ['a', 'b'])
    """
    frame = to_polars(frame, "training set")
    labels = [c for c in frame.columns if c.startswith(LABEL_PREFIX)]
    if not labels:
        raise SchemaError(f"training set: no column starts with {LABEL_PREFIX!r}; build it "
                          "with build_training_set.")
    feats = [c for c, t in frame.schema.items() if c not in _NOT_FEATURES and c not in labels
             and (t.is_numeric() or t == pl.Boolean)]
    Y = frame.select(pl.col(c).alias(c[len(LABEL_PREFIX):]) for c in labels)
    return frame.select(feats), Y, frame["customer_id"]
