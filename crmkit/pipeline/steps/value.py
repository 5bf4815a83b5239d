"""The ``value`` step: RFM segments, value tiers, tier movement and hidden VIPs.

Per-customer tables in ``<run>/value/``: ``rfm_segments``, ``value_tiers`` and
``tier_movement`` (against the previous run's ``value_tiers``; customers of the
previous run who are gone appear as ``lost``). Aggregates: ``tier_movement_summary``
and ``hidden_vips`` (per branch, the top customers below the lowest VIP tier).

``fit`` (every run, not stored): the RFM quantile edges, from the counts of
distinct (recency, frequency, monetary) rows gathered over the shards, so the
segments are the same whatever the shard count.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import polars as pl
from pydantic import model_validator

from crmkit._config import StrictModel
from crmkit._estimator import to_envelope
from crmkit.exceptions import ConfigError
from crmkit.pipeline._step import FitResult, Shard, ShardOutput, Step, StepSummary
from crmkit.pipeline.steps._common import count_partial, counts_from, sum_counts
from crmkit.value import RFMScorer, TierScheme
from crmkit.value.tiers import assign_tiers, hidden_vips, tier_movement, tier_movement_summary
from crmkit.value._tiers_util import check_keys

__all__ = ["STEP", "ValueConfig"]


class ValueConfig(StrictModel):
    """``[value]``: RFM scorer parameters, the tier scheme and the hidden-VIP list length.

    ``tiers`` is ``"retail_bank"`` or a table ``{tiers = [{name = ..., lower = ...,
    upper = ..., lower_inclusive = ..., upper_inclusive = ..., vip = ...}, ...]}``.
    """

    rfm: dict[str, Any] = {}
    tiers: str | dict[str, Any] = "retail_bank"
    hidden_vip_n: int = 100
    branch_col: str = "branch_id"

    def scheme(self) -> TierScheme:
        """The tier scheme of this section."""
        if self.tiers == "retail_bank":
            return TierScheme.retail_bank()
        if isinstance(self.tiers, Mapping):
            return TierScheme.from_dict(self.tiers)
        raise ConfigError(f"[value] tiers must be 'retail_bank' or a tier scheme table. "
                          f"Got {self.tiers!r} instead.")

    def scorer(self) -> RFMScorer:
        """An unfitted RFM scorer with this section's parameters."""
        return RFMScorer(**self.rfm)

    @model_validator(mode="after")
    def _valid(self) -> ValueConfig:
        if self.hidden_vip_n < 1:
            raise ValueError(f"hidden_vip_n must be a positive number. Got {self.hidden_vip_n}.")
        try:
            check_keys(self.rfm, RFMScorer().get_params(), "[value] rfm")
            self.scorer()._check_params()
            self.scheme()
        except ConfigError as err:
            raise ValueError(str(err)) from None
        return self


def fit_stats(shard: Shard, cfg: ValueConfig, ctx: Any) -> dict[str, pl.DataFrame]:
    """Counts of distinct (recency, frequency, monetary) rows: the RFM edges' statistic."""
    cols = list(cfg.scorer()._cols().values())
    feats = shard.get("features").select(cols)
    return {"rfm": feats.group_by(cols).agg(pl.len().cast(pl.Float64).alias("_w"))}


def fit(stats: Mapping[str, pl.DataFrame], ctx: Any, cfg: ValueConfig) -> FitResult:
    """RFM quantile edges on the whole customer base (from the shard counts)."""
    scorer = cfg.scorer()
    cols = list(scorer._cols().values())
    rfm = (stats["rfm"].group_by(cols).agg(pl.col("_w").sum()).sort(cols, nulls_last=True)
           .with_row_index(scorer.id_col).with_columns(pl.col(scorer.id_col).cast(pl.String)))
    scorer.fit(rfm, sample_weight="_w")
    return FitResult(scorer, {"rfm_scorer": to_envelope(scorer)},
                     training={"customers": int(rfm["_w"].sum())})


def score(shard: Shard, cfg: ValueConfig, scorer: RFMScorer) -> ShardOutput:
    """Segments, tiers and tier movement of one shard's customers."""
    feats = shard.get("features")
    scheme = cfg.scheme()
    segments = scorer.transform(feats).sort("customer_id")
    keep = [cfg.branch_col] if cfg.branch_col in feats.columns else []
    tiers = assign_tiers(feats, scheme, keep=keep).sort("customer_id")
    previous = shard.previous("value", "value_tiers")
    prev = (previous.select("customer_id", "tier") if previous is not None
            else pl.DataFrame(schema={"customer_id": pl.String, "tier": pl.String}))
    movement = tier_movement(prev, tiers.select("customer_id", "tier"), scheme)
    partials = {
        "segments": count_partial(segments, "segment"),
        "tiers": count_partial(tiers, "tier"),
        "movement": count_partial(movement, "from_tier", "to_tier", "movement"),
    }
    if keep and scheme.vip_tiers:
        # the top n of the union of per-shard top-n lists is the top n
        partials["hidden_vips"] = hidden_vips(feats, scheme, n=cfg.hidden_vip_n,
                                              branch_col=cfg.branch_col)
    return ShardOutput(tables={"rfm_segments": segments, "value_tiers": tiers,
                               "tier_movement": movement}, partials=partials)


def finalize(partials: Mapping[str, pl.DataFrame], cfg: ValueConfig, scorer: RFMScorer,
             ctx: Any) -> StepSummary:
    """Tier movement summary, hidden VIPs and the manifest facts."""
    scheme = cfg.scheme()
    moves = sum_counts(partials.get("movement"), "from_tier", "to_tier", "movement")
    rows = moves.select(pl.col("from_tier", "to_tier", "movement").repeat_by("n")).explode(
        ["from_tier", "to_tier", "movement"]) if moves.height else moves.drop("n")
    tables = {"tier_movement_summary": tier_movement_summary(rows, scheme)}
    facts: dict[str, Any] = {
        "rfm_edges": scorer.edges_,
        "segments": counts_from(partials, "segments", "segment"),
        "tiers": counts_from(partials, "tiers", "tier"),
        "tier_movement": counts_from(partials, "movement", "movement"),
        "tier_scheme": {t.name: t.interval for t in scheme.tiers},
    }
    if "hidden_vips" in partials:
        candidates = partials["hidden_vips"]
        value_col = [c for c in candidates.columns if c not in (
            cfg.branch_col, "rank", "customer_id", "tier", "gap_to_vip")][0]
        top = hidden_vips(candidates.drop("rank", "tier", "gap_to_vip"), scheme,
                          n=cfg.hidden_vip_n, value_col=value_col, branch_col=cfg.branch_col)
        tables["hidden_vips"] = top
        facts["hidden_vips"] = int(top.height)
    else:
        facts["hidden_vips"] = "skipped (no branch column or no VIP tier)"
    return StepSummary(tables=tables, facts=facts)


STEP = Step(
    name="value", config_model=ValueConfig, score=score,
    inputs=("features",), outputs=("rfm_segments", "value_tiers", "tier_movement"),
    fit=fit, fit_stats=fit_stats, finalize=finalize,
    doc="RFM segments, value tiers, tier movement, hidden VIPs",
)
