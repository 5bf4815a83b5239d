"""From propensities to offers: suitability, exclusions, expected value, top k with reasons."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any


import polars as pl

from crmkit._frames import Output, to_output, to_polars
from crmkit._params import check_date, check_positive
from crmkit.exceptions import SchemaError

__all__ = ["eligible_offers", "next_best_products", "suitable"]


def suitable(risk_level: pl.Expr, risk_rating: pl.Expr, *, risk_tolerance: int = 0,
             unassessed_max_rating: int | None = 1) -> pl.Expr:
    """Suitability rule: a product's risk rating may not exceed the customer's risk level.

    ``risk_rating <= risk_level + risk_tolerance``; a customer without a risk level
    (never assessed) may be offered products rated at most ``unassessed_max_rating``
    (None: nothing).

    Examples
    --------
    >>> df = pl.DataFrame({"level": [3, 3, None], "rating": [3, 4, 1]})
    >>> df.select(suitable(pl.col("level"), pl.col("rating")).alias("ok"))["ok"].to_list()
    [True, False, True]
    """
    ok = risk_rating <= risk_level + risk_tolerance
    if unassessed_max_rating is None:
        return ok.fill_null(False)
    return pl.when(risk_level.is_null()).then(risk_rating <= unassessed_max_rating).otherwise(ok)


def _value_of(products: pl.DataFrame, product_value: Any) -> pl.DataFrame:
    if product_value is None:
        return products.with_columns(pl.lit(1.0).alias("_value"))
    if isinstance(product_value, str):
        if product_value not in products.columns:
            raise SchemaError(f"products: product_value={product_value!r} is not a column "
                              f"(columns: {products.columns}).")
        out = products.with_columns(pl.col(product_value).cast(pl.Float64).alias("_value"))
    elif isinstance(product_value, Mapping):
        missing = [p for p in products["product_id"].to_list() if p not in product_value]
        if missing:
            raise SchemaError(f"product_value: {len(missing)} product(s) have no value: "
                              f"{missing[:5]}.")
        out = products.with_columns(pl.col("product_id").replace_strict(
            {k: float(v) for k, v in product_value.items()}, default=None,
            return_dtype=pl.Float64).alias("_value"))
    else:
        raise TypeError("product_value must be a column name of products, a mapping "
                        f"product_id -> value, or None. Got {type(product_value).__name__}.")
    bad = out.filter(pl.col("_value").is_null() | ~pl.col("_value").is_finite())
    if bad.height:
        raise SchemaError(f"products.{product_value if isinstance(product_value, str) else 'value'}"
                          f": {bad.height} product(s) without a finite value: "
                          f"{bad['product_id'].head(5).to_list()}; give them a value or drop "
                          "them from the scores.")
    return out


def eligible_offers(scores: Any, customers: Any, holdings: Any, products: Any, *,
                    as_of: dt.date | str, lookback_days: int = 90, contacts: Any = None,
                    product_value: Any = "margin", risk_tolerance: int = 0,
                    unassessed_max_rating: int | None = 1) -> pl.DataFrame:
    """Every allowed (customer, product) offer with its propensity and expected value.

    Long table ``customer_id, product_id, propensity, value, expected_value`` of the
    pairs that pass every rule of :func:`next_best_products` (before the top ``k``).
    """
    day = check_date(as_of, "as_of", "next_best_products")
    lookback = int(check_positive(lookback_days, "lookback_days", "next_best_products",
                                  allow_zero=True))
    sc = to_polars(scores, "scores")
    if "customer_id" not in sc.columns:
        raise SchemaError("scores: needs a 'customer_id' column and one 'p_<product_id>' column "
                          "per product (PropensityModel.predict_propensities(ids=...)).")
    prod = to_polars(products, "products")
    pcols = [c for c in sc.columns if c.startswith("p_")]
    unknown = [c[2:] for c in pcols if c[2:] not in set(prod["product_id"].to_list())]
    if unknown:
        raise SchemaError(f"scores: {len(unknown)} product column(s) not in the products "
                          f"table: {unknown[:5]}.")
    prod = _value_of(prod.filter(pl.col("product_id").is_in([c[2:] for c in pcols])),
                     product_value)
    cust = to_polars(customers, "customers")
    risk = cust.select("customer_id", (pl.col("risk_level").cast(pl.Int64)
                                       if "risk_level" in cust.columns
                                       else pl.lit(None, pl.Int64)).alias("_level"))
    long = sc.select("customer_id", *pcols).unpivot(
        index="customer_id", on=pcols, variable_name="product_id", value_name="propensity"
    ).with_columns(pl.col("product_id").str.slice(2))
    hold = to_polars(holdings, "holdings").select("customer_id", "product_id", "opened", "closed")
    since = day - dt.timedelta(days=lookback)
    blocked = hold.filter(
        ((pl.col("opened") <= day) & (pl.col("closed").is_null() | (pl.col("closed") > day)))
        | ((pl.col("opened") > since) & (pl.col("opened") <= day))
    ).select("customer_id", "product_id")
    if contacts is not None:
        con = to_polars(contacts, "contacts")
        if "product_id" in con.columns and "outcome" in con.columns:
            blocked = pl.concat([blocked, con.filter(
                (pl.col("outcome") == "declined") & (pl.col("date") > since)
                & (pl.col("date") <= day) & pl.col("product_id").is_not_null()
            ).select("customer_id", "product_id")])
    out = (long.join(blocked.unique(), on=["customer_id", "product_id"], how="anti")
           .join(risk, on="customer_id", how="left")
           .join(prod.select("product_id", "risk_rating", "_value"), on="product_id", how="left")
           .filter(suitable(pl.col("_level"), pl.col("risk_rating"),
                            risk_tolerance=risk_tolerance,
                            unassessed_max_rating=unassessed_max_rating)
                   & pl.col("propensity").is_not_null())
           .select("customer_id", "product_id", "propensity", pl.col("_value").alias("value"),
                   (pl.col("propensity") * pl.col("_value")).alias("expected_value"),
                   pl.col("_level").alias("risk_level"), "risk_rating"))
    return out


def next_best_products(scores: Any, customers: Any, holdings: Any, products: Any, *,
                       as_of: dt.date | str, k: int = 3, lookback_days: int = 90,
                       contacts: Any = None, product_value: Any = "margin",
                       risk_tolerance: int = 0, unassessed_max_rating: int | None = 1,
                       model: Any = None, features: Any = None, reasons: int = 3,
                       reason_ranks: int | None = None, reason_customers: Any = None,
                       reason_min_propensity: float = 0.0, output: Output = "polars"):
    """Top ``k`` products per customer by expected value, with the reasons.

    Rules, in order: a product the customer holds on ``as_of`` is never offered;
    nor one opened in the ``lookback_days`` before ``as_of`` (even if closed since),
    nor one the customer declined in that window (``contacts`` rows with
    ``outcome == "declined"`` and a ``product_id`` column; contacts without a
    product cannot say what was declined and exclude nothing); a product whose
    risk rating exceeds the customer's risk level (plus ``risk_tolerance``) is never
    offered (see :func:`suitable`). The rest are ranked by
    ``expected_value = propensity x value`` (ties: higher propensity, then product
    id), and the first ``k`` kept.

    Parameters
    ----------
    scores : table
        ``customer_id`` and ``p_<product_id>`` columns
        (:meth:`PropensityModel.predict_propensities` with ``ids=``).
    customers, holdings, products : tables
        Canonical tables (``risk_level`` from customers, ``risk_rating`` and the
        value from products).
    as_of : date or str
    k : int
        Offers per customer (fewer when fewer products are allowed).
    lookback_days : int
    contacts : table, optional
    product_value : str, mapping or None, default "margin"
        Column of ``products`` (or mapping ``product_id -> value``) giving the value
        of a take-up; None ranks by propensity alone.
    risk_tolerance, unassessed_max_rating : int
        Suitability rule (see :func:`suitable`).
    model : PropensityModel, optional
        With ``features``, adds the reasons: the features that raised this
        customer's score for this product most (exact contributions, log-odds).
    features : table, optional
        The model's input rows with ``customer_id`` (what ``scores`` came from).
    reasons : int
        Number of reasons per offer.
    reason_ranks : int, optional
        Explain only the offers ranked up to this (exact contributions cost more
        than scores); the others get an empty list. Default: every offer.
    reason_customers : sequence of str, optional
        Explain only the offers of these customers (e.g. those with a named
        relationship manager, the only ones a call list can hold). Default: every
        customer.
    reason_min_propensity : float or mapping, default 0.0
        Explain only the offers with at least this propensity (a mapping
        ``product_id -> cut-off`` for one per product; a product not in it has
        no cut-off).
    output : {"polars", "pandas"}

    Returns
    -------
    DataFrame
        ``customer_id, rank, product_id, propensity, value, expected_value,
        risk_level, risk_rating`` and, with a model, ``reasons`` (list of
        ``{feature, value, contribution}``) and ``reason_text``.

    Examples
    --------
    >>> import datetime as dt
    >>> scores = pl.DataFrame({"customer_id": ["a"], "p_P1": [0.5], "p_P2": [0.2], "p_P3": [0.9]})
    >>> customers = pl.DataFrame({"customer_id": ["a"], "risk_level": [2]})
    >>> products = pl.DataFrame({"product_id": ["P1", "P2", "P3"], "risk_rating": [1, 2, 5],
    ...                          "margin": [1.0, 1.0, 1.0]})
    >>> holdings = pl.DataFrame({"customer_id": ["a"], "product_id": ["P1"],
    ...                          "opened": [dt.date(2020, 1, 1)], "closed": [None]},
    ...                         schema_overrides={"closed": pl.Date})
    >>> next_best_products(scores, customers, holdings, products, as_of="2025-01-01",
    ...                    k=2)["product_id"].to_list()
    ['P2']
    """
    k = int(check_positive(k, "k", "next_best_products"))
    offers = eligible_offers(scores, customers, holdings, products, as_of=as_of,
                             lookback_days=lookback_days, contacts=contacts,
                             product_value=product_value, risk_tolerance=risk_tolerance,
                             unassessed_max_rating=unassessed_max_rating)
    top = (offers.sort(["customer_id", "expected_value", "propensity", "product_id"],
                       descending=[False, True, True, False])
           .with_columns(pl.int_range(1, pl.len() + 1).over("customer_id").alias("rank"))
           .filter(pl.col("rank") <= k)
           .select("customer_id", pl.col("rank").cast(pl.Int64), "product_id", "propensity",
                   "value", "expected_value", "risk_level", "risk_rating"))
    if model is not None:
        if features is None:
            raise ValueError("next_best_products: reasons need the model's input rows; pass "
                             "features= (with customer_id) together with model=.")
        cuts = reason_min_propensity if isinstance(reason_min_propensity, Mapping) else \
            {None: reason_min_propensity}
        min_p = {k: float(check_positive(v, "reason_min_propensity", "next_best_products",
                                         allow_zero=True)) for k, v in cuts.items()}
        if reason_ranks is not None:
            reason_ranks = int(check_positive(reason_ranks, "reason_ranks", "next_best_products"))
        top = _with_reasons(top, model, to_polars(features, "features"), int(reasons),
                            _explain_mask(reason_ranks, reason_customers, min_p))
    return to_output(top, output)


_REASON = pl.Struct({"feature": pl.String, "value": pl.Float64, "contribution": pl.Float64})


def _explain_mask(ranks: int | None, customers: Any, min_propensity: dict) -> pl.Expr:
    """Which offers get their reasons computed."""
    mask = pl.lit(True)
    if ranks is not None:
        mask = mask & (pl.col("rank") <= ranks)
    if None in min_propensity:  # one cut-off for every product
        if min_propensity[None] > 0:
            mask = mask & (pl.col("propensity") >= min_propensity[None])
    elif min_propensity:
        cut = pl.col("product_id").replace_strict(min_propensity, default=0.0,
                                                  return_dtype=pl.Float64)
        mask = mask & (pl.col("propensity") >= cut)
    if customers is not None:
        ids = customers.cast(pl.String) if isinstance(customers, pl.Series) else \
            pl.Series(list(customers), dtype=pl.String)
        mask = mask & pl.col("customer_id").is_in(ids.unique().implode())
    return mask


def _with_reasons(top: pl.DataFrame, model: Any, feats: pl.DataFrame, n: int,
                  mask: pl.Expr) -> pl.DataFrame:
    parts = []
    top = top.with_row_index("_i").with_columns(mask.alias("explained"))
    parts.append(top.filter(~pl.col("explained")).with_columns(
        pl.lit([], pl.List(_REASON)).alias("reasons")))
    top = top.filter(pl.col("explained"))
    for (pid,), rows in top.group_by(["product_id"], maintain_order=True):
        kind = model._models.get(pid, {}).get("kind") if hasattr(model, "_models") else None
        if kind != "model":  # a popularity baseline has no features to explain it
            parts.append(rows.with_columns(pl.lit(False).alias("explained"),
                                           pl.lit([], pl.List(_REASON)).alias("reasons")))
            continue
        X = rows.select("_i", "customer_id").join(feats, on="customer_id", how="left")
        ex = model.explain(X, pid, top=n, ids=X["_i"].cast(pl.String).to_list())
        ex = to_polars(ex).with_columns(pl.col("customer_id").cast(pl.UInt32).alias("_i"))
        agg = ex.group_by("_i").agg(pl.struct("feature", "value", "contribution")
                                    .sort_by("rank").alias("reasons"))
        parts.append(rows.join(agg, on="_i", how="left").with_columns(
            pl.col("reasons").fill_null(pl.lit([], pl.List(_REASON)))))
    out = pl.concat(parts).sort("_i").drop("_i")
    text = pl.col("reasons").list.eval(
        pl.format("{}={} ({})", pl.element().struct.field("feature"),
                  pl.element().struct.field("value").round(2),
                  pl.element().struct.field("contribution").round(3))
    ).list.join("; ")
    return out.with_columns(text.alias("reason_text"))



