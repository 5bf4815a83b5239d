"""RFM scores (quantile or fixed edges) and named segments from ordered rules.

Scoring rule (one rule for quantile and fixed edges, so that it is deterministic with
ties): a feature's ``n_scores - 1`` increasing edges cut its values into right-closed
bins ``(-inf, e1], (e1, e2], ..., (e_last, inf)``; a value equal to an edge falls in
the lower bin. Frequency and monetary scores are the bin number (1 = lowest values);
the recency score is reversed (the most recent customers get ``n_scores``). Equal
values always get equal scores, whatever the row order.

Quantile edges are inverted-CDF quantiles (always an observed value) at ``j / n_scores``
computed from the customers who purchased; they depend only on the distribution of
values, so a fit on per-shard ``value -> count`` tables (``sample_weight``) gives the
same edges as a fit on all customers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from crmkit._estimator import CrmkitEstimator, deprecated_alias
from crmkit._frames import Output, to_output, to_polars
from crmkit._params import check_choice
from crmkit.exceptions import ConfigError, NotFittedError, SchemaError
from crmkit.value._tiers_util import check_keys, quantile_edges, value_counts
from crmkit._persist import json_text_from, save_json_text

__all__ = ["DEFAULT_SEGMENTS", "RFMScorer", "SegmentRule", "rfm_segments"]

FEATURES = ("recency", "frequency", "monetary")

#: Default segment rules, first match wins. Score ranges are inclusive ``[low, high]``
#: on the 1-5 scale; an absent feature matches any score. Together they cover every
#: (R, F, M) combination of a 5-score scale.
DEFAULT_SEGMENTS: tuple[dict, ...] = (
    {"name": "Champions", "recency": (4, 5), "frequency": (4, 5), "monetary": (4, 5)},
    {"name": "Loyal", "recency": (3, 5), "frequency": (3, 5)},
    {"name": "New", "recency": (5, 5), "frequency": (1, 1)},
    {"name": "Potential", "recency": (3, 5), "frequency": (1, 2)},
    {"name": "Can't lose", "recency": (1, 2), "frequency": (4, 5), "monetary": (4, 5)},
    {"name": "At risk", "recency": (1, 2), "frequency": (3, 5)},
    {"name": "Hibernating", "recency": (2, 2), "frequency": (1, 2)},
    {"name": "Lost", "recency": (1, 1), "frequency": (1, 2)},
)


class SegmentRule(BaseModel):
    """One named segment: inclusive score ranges for recency, frequency and monetary.

    An absent (``None``) range matches any score.

    Examples
    --------
    >>> SegmentRule(name="Champions", recency=(4, 5), frequency=(4, 5)).monetary is None
    True
    >>> SegmentRule.from_dict({"name": "X", "recency": [2, 1]})
    Traceback (most recent call last):
    ...
    crmkit.exceptions.ConfigError: Invalid segment rule 'X': recency range must be (low, high) with 1 <= low <= high, got (2, 1).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    recency: tuple[int, int] | None = None
    frequency: tuple[int, int] | None = None
    monetary: tuple[int, int] | None = None

    @field_validator("name")
    @classmethod
    def _name_not_empty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("a segment name must not be empty")
        return v

    @model_validator(mode="after")
    def _ranges(self) -> SegmentRule:
        for f in FEATURES:
            r = getattr(self, f)
            if r is not None and not (1 <= r[0] <= r[1]):
                raise ValueError(
                    f"{f} range must be (low, high) with 1 <= low <= high, got {tuple(r)}")
        return self

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SegmentRule:
        """Validate a mapping; unknown keys name the closest valid key."""
        if isinstance(data, SegmentRule):
            return data
        if not isinstance(data, Mapping):
            raise ConfigError(f"A segment rule must be a mapping with a 'name'. Got {data!r} instead.")
        check_keys(data, cls.model_fields, "segment rule")
        try:
            return cls.model_validate(dict(data))
        except ValidationError as err:
            msg = "; ".join(e["msg"].removeprefix("Value error, ") for e in err.errors())
            raise ConfigError(f"Invalid segment rule {data.get('name')!r}: {msg}.") from None

    def expr(self, names: Mapping[str, str]) -> pl.Expr:
        """Polars condition on the score columns named by ``names``."""
        cond = pl.lit(True)
        for f in FEATURES:
            r = getattr(self, f)
            if r is not None:
                cond = cond & pl.col(names[f]).is_between(r[0], r[1], closed="both")
        return cond


def _parse_rules(segments: Sequence | None, n_scores: int) -> list[SegmentRule]:
    raw = DEFAULT_SEGMENTS if segments is None else segments
    if isinstance(raw, (str, bytes, Mapping)) or not isinstance(raw, Sequence) or not raw:
        raise ConfigError(
            f"The 'segments' parameter of RFMScorer must be a non-empty list of rules "
            f"(mappings with 'name' and optional 'recency', 'frequency', 'monetary'). Got {raw!r} instead.")
    rules = [SegmentRule.from_dict(r) for r in raw]
    seen = set()
    for r in rules:
        for f in FEATURES:
            rng = getattr(r, f)
            if rng is not None and rng[1] > n_scores:
                raise ConfigError(
                    f"Segment rule {r.name!r}: the {f} range {rng} exceeds n_scores={n_scores}; "
                    f"scores run from 1 to {n_scores}.")
        if r.name in seen:
            continue  # a name may have several rules (a union of boxes)
        seen.add(r.name)
    return rules


class RFMScorer(CrmkitEstimator):
    """Recency, frequency and monetary scores (1..``n_scores``) and a named segment.

    Parameters
    ----------
    n_scores : int, default 5
        Number of score levels per feature.
    edges : dict, optional
        Fixed edges per feature (``"recency"``, ``"frequency"``, ``"monetary"``), each a
        strictly increasing list of ``n_scores - 1`` numbers; features not listed get
        quantile edges fitted on the data. Bins are right-closed: a value equal to an
        edge falls in the lower bin (for recency: the better score).
    recency_col, frequency_col, monetary_col : str
        Input columns. Recency is the time since the last purchase (smaller is better,
        e.g. ``days_since_last_txn`` of :func:`crmkit.features.build_features`); a null
        recency marks a customer who never purchased (a prospect).
    id_col : str, default "customer_id"
    segments : list of dict or SegmentRule, optional
        Ordered segment rules, first match wins (default :data:`DEFAULT_SEGMENTS`).
    prospect_segment : str, default "Prospect"
        Segment of customers with a null recency (no purchase yet).
    other_segment : str, default "Other"
        Catch-all for scores no rule matches, so that every customer gets exactly one segment.

    Attributes
    ----------
    edges_ : dict of str to list of float
        The edges used for each feature.
    n_fitted_ : float
        Number (total weight) of purchasing customers the quantiles were fitted on.

    Examples
    --------
    >>> import polars as pl
    >>> X = pl.DataFrame({
    ...     "customer_id": ["a", "b", "c", "d", "e", "f"],
    ...     "days_since_last_txn": [3, 40, 200, 10, 400, None],
    ...     "txn_count_365d": [30, 5, 1, 12, 0, 0],
    ...     "txn_amount_365d": [900.0, 120.0, 15.0, 300.0, 0.0, 0.0],
    ... })
    >>> scorer = RFMScorer().fit(X)
    >>> scorer.transform(X).select("customer_id", "rfm_code", "segment").rows()
    [('a', '555', 'Champions'), ('b', '333', 'Loyal'), ('c', '222', 'Hibernating'), ('d', '444', 'Champions'), ('e', '111', 'Lost'), ('f', None, 'Prospect')]
    """

    def __init__(self, *, n_scores: int = 5, edges: Mapping | None = None,
                 recency_col: str = "days_since_last_txn", frequency_col: str = "txn_count_365d",
                 monetary_col: str = "txn_amount_365d", id_col: str = "customer_id",
                 segments: Sequence | None = None, prospect_segment: str = "Prospect",
                 other_segment: str = "Other"):
        self.n_scores = n_scores
        self.edges = edges
        self.recency_col = recency_col
        self.frequency_col = frequency_col
        self.monetary_col = monetary_col
        self.id_col = id_col
        self.segments = segments
        self.prospect_segment = prospect_segment
        self.other_segment = other_segment

    # -- helpers -----------------------------------------------------------------
    def _cols(self) -> dict[str, str]:
        return {"recency": self.recency_col, "frequency": self.frequency_col,
                "monetary": self.monetary_col}

    def _check_params(self) -> None:
        n = self.n_scores
        if not isinstance(n, int) or isinstance(n, bool) or not 2 <= n <= 100:
            raise ValueError(f"The 'n_scores' parameter of RFMScorer must be an integer in [2, 100]. "
                             f"Got {n!r} instead.")
        if self.edges is not None:
            if not isinstance(self.edges, Mapping):
                raise ValueError(f"The 'edges' parameter of RFMScorer must be a dict of feature -> "
                                 f"edges or None. Got {self.edges!r} instead.")
            check_keys(self.edges, FEATURES, "RFMScorer edges")
            for f, e in self.edges.items():
                e = list(e)
                ok = (len(e) == n - 1 and all(isinstance(x, (int, float)) and math.isfinite(x) for x in e)
                      and all(a < b for a, b in zip(e, e[1:])))
                if not ok:
                    raise ValueError(
                        f"The 'edges' parameter of RFMScorer must give {n - 1} finite, strictly "
                        f"increasing edges for {f!r} (n_scores={n}). Got {e!r} instead.")
        _parse_rules(self.segments, n)

    def _frame(self, X: Any) -> pl.DataFrame:
        df = to_polars(X, "X")
        need = [self.id_col, *self._cols().values()]
        missing = [c for c in need if c not in df.columns]
        if missing:
            raise SchemaError(
                f"RFMScorer: the input has no column {', '.join(map(repr, missing))}; it has "
                f"{', '.join(df.columns)}. Name the columns with id_col=, recency_col=, "
                f"frequency_col=, monetary_col=.")
        floats = [c for c in self._cols().values() if df.schema[c].is_float()]
        if floats:  # NaN means missing, like null (a NaN recency is a prospect)
            df = df.with_columns(pl.col(c).fill_nan(None) for c in floats)
        return df

    # -- estimator API -----------------------------------------------------------
    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> RFMScorer:
        """Fit quantile edges on the customers who purchased (non-null recency).

        Parameters
        ----------
        X : table
            One row per customer, or one row per distinct (recency, frequency, monetary)
            combination with its count in ``sample_weight`` (the sufficient statistic).
        y : ignored
        sample_weight : str or array-like, optional
            Weight of each row (a column name of ``X`` or values).

        Returns
        -------
        self
        """
        self._check_params()
        df = self._frame(X)
        if isinstance(sample_weight, str):
            weights = df[sample_weight]
        elif sample_weight is not None:
            weights = pl.Series("w", np.asarray(sample_weight, dtype=float))
        else:
            weights = pl.Series("w", np.ones(df.height))
        if len(weights) != df.height:
            raise ValueError(f"The 'sample_weight' parameter of RFMScorer.fit must have one value "
                             f"per row ({df.height}). Got {len(weights)} values instead.")
        cols = self._cols()
        buyers = df[cols["recency"]].is_not_null().to_numpy()
        fixed = dict(self.edges or {})
        probs = [j / self.n_scores for j in range(1, self.n_scores)]
        edges: dict[str, list[float]] = {}
        n_fitted = float(weights.filter(pl.Series(buyers)).sum() or 0.0)
        for f in FEATURES:
            if f in fixed:
                edges[f] = [float(x) for x in fixed[f]]
                continue
            vals = df[cols[f]].cast(pl.Float64).filter(pl.Series(buyers))
            if f != "recency":
                vals = vals.fill_null(0.0)
            v, w = value_counts(vals, weights.filter(pl.Series(buyers)))
            if len(v) == 0:
                raise ValueError(
                    f"RFMScorer.fit: no customer with a purchase (non-null {cols['recency']!r}) "
                    f"to fit quantile edges for {f!r}; pass fixed edges= or more data.")
            edges[f] = quantile_edges(v, w, probs)
        self.edges_ = edges
        self.rules_ = _parse_rules(self.segments, self.n_scores)
        self.n_fitted_ = n_fitted
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "edges_"):
            raise NotFittedError("This RFMScorer is not fitted yet; call fit(X) first or load a "
                                 "fitted scorer with RFMScorer.from_json(...).")

    def score_exprs(self) -> dict[str, pl.Expr]:
        """Polars expressions of the three scores (for use inside a larger query)."""
        self._check_fitted()
        cols = self._cols()
        out = {}
        for f in FEATURES:
            x = pl.col(cols[f]).cast(pl.Float64)
            if f != "recency":
                x = x.fill_null(0.0)
            above = pl.sum_horizontal([(x > e).cast(pl.Int8) for e in self.edges_[f]])
            score = (self.n_scores - above) if f == "recency" else (1 + above)
            prospect = pl.col(cols["recency"]).is_null()
            out[f] = pl.when(prospect).then(None).otherwise(score).cast(pl.Int8).alias(f"{f}_score")
        return out

    def transform(self, X: Any, output: Output | None = None):
        """Scores, code and segment per customer.

        Returns
        -------
        DataFrame
            ``<id_col>``, ``recency_score``, ``frequency_score``, ``monetary_score``
            (null for prospects), ``rfm_code`` (e.g. ``"545"``, null for prospects) and
            ``segment`` (never null).
        """
        self._check_fitted()
        df = self._frame(X)
        ex = self.score_exprs()
        names = {f: f"{f}_score" for f in FEATURES}
        seg = pl.when(pl.col("recency_score").is_null()).then(pl.lit(self.prospect_segment))
        for rule in self.rules_:
            seg = seg.when(rule.expr(names)).then(pl.lit(rule.name))
        seg = seg.otherwise(pl.lit(self.other_segment)).alias("segment")
        if self.n_scores < 10:  # one digit per score: integer arithmetic is faster than concat
            r, f, m = (pl.col(names[x]).cast(pl.Int32) for x in FEATURES)
            code = (r * 100 + f * 10 + m).cast(pl.String)
        else:
            code = pl.concat_str([pl.col(names[f]).cast(pl.String) for f in FEATURES], separator="-")
        out = (df.lazy().select(pl.col(self.id_col), *ex.values())
               .with_columns(code.alias("rfm_code"), seg))
        return self._to_output(out.collect(), output)

    def fit_transform(self, X: Any, y: Any = None, sample_weight: Any = None,
                      output: Output | None = None):
        """``fit(X).transform(X)``."""
        return self.fit(X, sample_weight=sample_weight).transform(X, output=output)

    @property
    def segment_names(self) -> list[str]:
        """All segment names a customer can get, in rule order, then prospect and other."""
        rules = self.rules_ if hasattr(self, "rules_") else _parse_rules(self.segments, self.n_scores)
        names = list(dict.fromkeys(r.name for r in rules))
        return names + [s for s in (self.prospect_segment, self.other_segment) if s not in names]

    # -- the shared estimator words -------------------------------------------------
    _STATE_ATTRS = ("edges_", "n_fitted_")

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "edges_")

    @property
    def params_(self) -> dict:
        """The fitted score edges per feature (``edges_``)."""
        self._check_fitted()
        return {f: list(v) for f, v in self.edges_.items()}

    @property
    def summary_(self) -> pl.DataFrame:
        """One row per feature: its column and the score edges."""
        self._check_fitted()
        cols = self._cols()
        return pl.DataFrame({"feature": list(self.edges_), "column": [cols[f] for f in self.edges_],
                             "edges": [", ".join(f"{e:g}" for e in v)
                                       for v in self.edges_.values()]})

    def _envelope_params(self) -> dict:
        params = self.get_params()
        if params["segments"] is not None:
            params["segments"] = [SegmentRule.from_dict(r).model_dump() for r in params["segments"]]
        if params["edges"] is not None:
            params["edges"] = {k: [float(x) for x in v] for k, v in params["edges"].items()}
        return params

    @classmethod
    def _params_from_envelope(cls, params: dict) -> dict:
        if params.get("segments") is not None:
            params["segments"] = [{k: (tuple(v) if isinstance(v, list) else v) for k, v in r.items()}
                                  for r in params["segments"]]
        return params

    def _set_state(self, state: dict) -> None:
        self._check_params()
        self.edges_ = {k: [float(x) for x in v] for k, v in state["edges_"].items()}
        self.n_fitted_ = float(state["n_fitted_"])
        self.rules_ = _parse_rules(self.segments, self.n_scores)

    # -- persistence --------------------------------------------------------------
    def to_json(self, path: str | Path | None = None) -> str:
        """Deprecated: use :meth:`save` and :func:`crmkit.load_model`.

        Serialise parameters and fitted edges as JSON (written to ``path`` if given).

        Examples
        --------
        >>> s = RFMScorer(edges={"recency": [7, 30, 90, 365], "frequency": [1, 2, 5, 10],
        ...                       "monetary": [10, 50, 200, 1000]})
        >>> s.fit(pl.DataFrame({"customer_id": ["a"], "days_since_last_txn": [1],
        ...                     "txn_count_365d": [3], "txn_amount_365d": [20.0]})).edges_["recency"]
        [7.0, 30.0, 90.0, 365.0]
        >>> import crmkit, tempfile, pathlib
        >>> path = s.save(pathlib.Path(tempfile.mkdtemp()) / "rfm.json")
        >>> crmkit.load_model(path).edges_ == s.edges_
        True
        """
        deprecated_alias("RFMScorer", "to_json", "save", note=" (read with crmkit.load_model)")
        self._check_fitted()
        params = self.get_params()
        if params["segments"] is not None:
            params["segments"] = [SegmentRule.from_dict(r).model_dump() for r in params["segments"]]
        if params["edges"] is not None:
            params["edges"] = {k: [float(x) for x in v] for k, v in params["edges"].items()}
        from crmkit import __version__
        doc = {"model": "RFMScorer", "crmkit_version": __version__, "params": params,
               "state": {"edges_": self.edges_, "n_fitted_": self.n_fitted_}}
        text = json.dumps(doc, indent=2, sort_keys=True)
        if path is not None:
            save_json_text(text, path)
        return text

    @classmethod
    def from_json(cls, source: str | Path) -> RFMScorer:
        """Load a scorer written by :meth:`to_json` (a path or the JSON text). Runs no code."""
        text = json_text_from(source)
        doc = json.loads(text)
        if doc.get("model") != "RFMScorer":
            raise ValueError(f"Not an RFMScorer file: model={doc.get('model')!r}.")
        params = doc["params"]
        if params.get("segments") is not None:
            params["segments"] = [{k: (tuple(v) if isinstance(v, list) else v) for k, v in r.items()}
                                  for r in params["segments"]]
        obj = cls(**params)
        obj._check_params()
        obj.edges_ = {k: [float(x) for x in v] for k, v in doc["state"]["edges_"].items()}
        obj.n_fitted_ = float(doc["state"]["n_fitted_"])
        obj.rules_ = _parse_rules(obj.segments, obj.n_scores)
        return obj


def rfm_segments(frame: Any, *, output: Output = "polars", **params):
    """Fit an :class:`RFMScorer` on ``frame`` and return its scores and segments.

    Parameters
    ----------
    frame : table
        One row per customer (e.g. the output of :func:`crmkit.features.build_features`).
    output : {"polars", "pandas"}
    **params
        Parameters of :class:`RFMScorer`.

    Examples
    --------
    >>> import polars as pl
    >>> X = pl.DataFrame({"customer_id": ["a", "b"], "days_since_last_txn": [1, 300],
    ...                   "txn_count_365d": [9, 1], "txn_amount_365d": [500.0, 5.0]})
    >>> fixed = {"recency": [7, 30, 90, 365], "frequency": [1, 2, 4, 8],
    ...          "monetary": [10, 50, 100, 400]}
    >>> rfm_segments(X, edges=fixed).select("rfm_code", "segment").rows()
    [('555', 'Champions'), ('211', 'Hibernating')]
    """
    check_choice(output, ("polars", "pandas"), "output", "rfm_segments")
    return RFMScorer(**params).fit_transform(frame, output=output)
