"""The value step of the nightly run, as a pure function (I/O stays with the caller).

RFM segments, CLV (BG/NBD + Gamma-Gamma, refitted on a schedule, otherwise the models
of the previous run are reused), value tiers, tier movement against the previous run
and hidden-VIP lists, each returned as a table.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, ValidationError

from crmkit._frames import to_polars
from crmkit._params import check_date
from crmkit.exceptions import ConfigError
from crmkit.value._rfm_segments import RFMScorer
from crmkit.value._tiers_util import check_keys
from crmkit.value.tiers import (
    TierScheme,
    assign_tiers,
    hidden_vips,
    tier_movement,
    tier_movement_summary,
)

__all__ = ["CLVSettings", "ValueSettings", "ValueStepResult", "run_value_step"]


class CLVSettings(BaseModel):
    """CLV part of the value step.

    ``refit_every_days``: the BG/NBD and Gamma-Gamma models are refitted when no
    previous fit is given or the previous fit is at least this many days older than
    ``as_of``; otherwise the previous models are reused (their predictions are still
    made from today's data).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    unit: Literal["days", "weeks", "mean_months"] = "weeks"
    horizon: float = 52.0
    annual_discount_rate: float = 0.10
    margin: float = 1.0
    penalizer_coef: float = 0.0
    refit_every_days: int = 30


class ValueSettings(BaseModel):
    """Settings of :func:`run_value_step` (e.g. the ``[value]`` table of a pipeline TOML).

    ``tiers`` is ``"retail_bank"`` or a :class:`TierScheme` mapping; ``rfm`` holds
    parameters of :class:`RFMScorer`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    rfm: dict = {}
    tiers: Any = "retail_bank"
    hidden_vip_n: int = 100
    branch_col: str = "branch_id"
    clv: CLVSettings = CLVSettings()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> ValueSettings:
        """Validate a mapping; an unknown key names the closest valid key.

        Examples
        --------
        >>> ValueSettings.from_dict({"hidden_vip_n": 50}).hidden_vip_n
        50
        >>> ValueSettings.from_dict({"hiden_vip_n": 50})
        Traceback (most recent call last):
        ...
        crmkit.exceptions.ConfigError: Unknown key 'hiden_vip_n' in value settings; did you mean 'hidden_vip_n'? Valid keys: branch_col, clv, hidden_vip_n, rfm, tiers.
        """
        data = dict(data or {})
        check_keys(data, cls.model_fields, "value settings")
        if isinstance(data.get("clv"), Mapping):
            check_keys(data["clv"], CLVSettings.model_fields, "value settings [clv]")
        if isinstance(data.get("rfm"), Mapping):
            check_keys(data["rfm"], RFMScorer().get_params(), "value settings [rfm]")
        try:
            out = cls.model_validate(data)
        except ValidationError as err:
            msg = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
            raise ConfigError(f"Invalid value settings: {msg}.") from None
        out.scheme()  # validate the tiers now, not in the middle of a run
        return out

    def scheme(self) -> TierScheme:
        """The tier scheme these settings describe."""
        if isinstance(self.tiers, TierScheme):
            return self.tiers
        if self.tiers == "retail_bank":
            return TierScheme.retail_bank()
        if isinstance(self.tiers, Mapping):
            return TierScheme.from_dict(self.tiers)
        raise ConfigError(f"value settings: 'tiers' must be 'retail_bank' or a tier scheme table. "
                          f"Got {self.tiers!r} instead.")


@dataclass
class ValueStepResult:
    """Output of :func:`run_value_step`.

    Attributes
    ----------
    tables : dict of str to polars.DataFrame
        ``rfm_segments``, ``clv`` (when enabled and transactions are given),
        ``value_tiers``, ``tier_movement``, ``tier_movement_summary``, ``hidden_vips``.
    models : dict of str to str
        JSON texts to keep for the next run: ``rfm_scorer``, ``tier_scheme`` and, with
        CLV, ``clv_transaction_model``, ``clv_spend_model``, ``clv_fitted_as_of``.
    clv_refitted : bool
    notes : list of str
        What was done, one line each (for the run log / manifest).
    """

    tables: dict[str, pl.DataFrame]
    models: dict[str, str]
    clv_refitted: bool = False
    notes: list[str] = field(default_factory=list)


def _clv(features: pl.DataFrame, transactions: Any, as_of: dt.date, cfg: CLVSettings,
         previous: Mapping[str, str] | None, refit_clv: bool | None, notes: list[str]):
    from crmkit.features import rfm_summary
    from crmkit.value._bgnbd import BetaGeo
    from crmkit.value._clv_base import load_clv_model
    from crmkit.value._gammagamma import GammaGamma

    tx = to_polars(transactions, "transactions")
    # refunds and zero-value rows are not purchases for the CLV models
    tx = tx.filter(pl.col("amount") > 0)
    rfm = rfm_summary(tx, observation_end=as_of, unit=cfg.unit)
    # customers first seen on as_of (T = 0) carry no information yet: their CLV is null
    rfm = (rfm.join(features.select("customer_id"), on="customer_id", how="semi")
           .filter(pl.col(f"T_{cfg.unit}") > 0).sort("customer_id"))  # order-free fits
    refit = True
    if previous and previous.get("clv_fitted_as_of"):
        fitted = check_date(previous["clv_fitted_as_of"], "clv_fitted_as_of", "run_value_step")
        age = (as_of - fitted).days
        refit = (age >= cfg.refit_every_days or age < 0) if refit_clv is None else bool(refit_clv)
        if not refit:
            bg = load_clv_model(previous["clv_transaction_model"])
            gg = load_clv_model(previous["clv_spend_model"])
            notes.append(f"clv: reused models fitted as of {fitted} ({age} days old)")
    if refit:
        bg = BetaGeo(penalizer_coef=cfg.penalizer_coef).fit(rfm)
        gg = GammaGamma(penalizer_coef=cfg.penalizer_coef).fit(rfm)
        fitted = as_of
        notes.append(f"clv: refitted BetaGeo and GammaGamma on {rfm.height} customers as of {as_of}")
    try:
        from crmkit.value._clv_value import customer_lifetime_value
    except ImportError:  # pragma: no cover - the CLV helper's function is not there yet
        customer_lifetime_value = None
    p_alive = bg.probability_alive(rfm)
    if customer_lifetime_value is not None:
        clv = customer_lifetime_value(bg, gg, rfm, horizon=cfg.horizon,
                                      annual_discount_rate=cfg.annual_discount_rate,
                                      margin=cfg.margin)
    else:  # pragma: no cover
        ep = bg.expected_purchases(rfm, horizon=cfg.horizon)
        es = gg.expected_spend(rfm)
        clv = ep.join(es, on="customer_id").with_columns(
            (cfg.margin * pl.col("expected_purchases") * pl.col("expected_spend")).alias("clv"))
        notes.append("clv: undiscounted (customer_lifetime_value not available)")
    table = (features.select("customer_id")
             .join(clv.join(p_alive, on="customer_id"), on="customer_id", how="left")
             .sort("customer_id"))
    models = {"clv_transaction_model": bg.to_json(), "clv_spend_model": gg.to_json(),
              "clv_fitted_as_of": fitted.isoformat()}
    return table, models, refit


def run_value_step(features: Any, *, as_of: dt.date | str, transactions: Any = None,
                   previous_tiers: Any = None, previous_models: Mapping[str, str] | None = None,
                   settings: ValueSettings | Mapping[str, Any] | None = None,
                   refit_clv: bool | None = None) -> ValueStepResult:
    """Compute the value tables of one nightly run.

    Parameters
    ----------
    features : table
        Output of :func:`crmkit.features.build_features` as of ``as_of``.
    as_of : date or str
    transactions : table, optional
        Canonical transactions, needed for CLV (skipped without them).
    previous_tiers : table, optional
        The ``value_tiers`` table of the previous run (``customer_id``, ``tier``); without
        it every customer is ``new`` in the tier movement.
    previous_models : dict, optional
        The ``models`` of the previous run's result (reused CLV models between refits).
    settings : ValueSettings or mapping, optional
    refit_clv : bool, optional
        Force (True) or skip (False) the CLV refit; default: refit when the previous fit
        is ``settings.clv.refit_every_days`` or more days old. Without previous models
        the CLV models are always fitted.

    Returns
    -------
    ValueStepResult

    Examples
    --------
    >>> import polars as pl
    >>> f = pl.DataFrame({"customer_id": ["a", "b", "c"], "branch_id": ["B01"] * 3,
    ...                   "days_since_last_txn": [2, 90, None], "txn_count_365d": [12, 2, 0],
    ...                   "txn_amount_365d": [800.0, 40.0, 0.0],
    ...                   "financial_assets": [2e6, 6e4, 0.0]})
    >>> res = run_value_step(f, as_of="2025-12-31", settings={"clv": {"enabled": False}})
    >>> sorted(res.tables)
    ['hidden_vips', 'rfm_segments', 'tier_movement', 'tier_movement_summary', 'value_tiers']
    >>> res.tables["value_tiers"]["tier"].to_list()
    ['Platinum', 'Mass', 'Mass']
    """
    as_of = check_date(as_of, "as_of", "run_value_step")
    if not isinstance(settings, ValueSettings):
        settings = ValueSettings.from_dict(settings)
    feats = to_polars(features, "features")
    notes: list[str] = []
    tables: dict[str, pl.DataFrame] = {}
    models: dict[str, str] = {}

    scorer = RFMScorer(**settings.rfm).fit(feats)
    tables["rfm_segments"] = scorer.transform(feats).sort(scorer.id_col)
    models["rfm_scorer"] = scorer.to_json()
    counts = tables["rfm_segments"]["segment"].value_counts(sort=True)
    notes.append("rfm: " + ", ".join(f"{s} {n}" for s, n in counts.iter_rows()))

    refitted = False
    if settings.clv.enabled and transactions is not None:
        tables["clv"], clv_models, refitted = _clv(feats, transactions, as_of, settings.clv,
                                                   previous_models, refit_clv, notes)
        models.update(clv_models)
    elif settings.clv.enabled:
        notes.append("clv: skipped (no transactions given)")

    scheme = settings.scheme()
    keep = [settings.branch_col] if settings.branch_col in feats.columns else []
    tiers = assign_tiers(feats, scheme, keep=keep).sort("customer_id")
    tables["value_tiers"] = tiers
    models["tier_scheme"] = scheme.to_json()
    prev = (to_polars(previous_tiers, "previous_tiers") if previous_tiers is not None
            else pl.DataFrame(schema={"customer_id": pl.String, "tier": pl.String}))
    mv = tier_movement(prev.select("customer_id", "tier"), tiers.select("customer_id", "tier"), scheme)
    tables["tier_movement"] = mv
    tables["tier_movement_summary"] = tier_movement_summary(mv, scheme)
    moves = mv["movement"].value_counts(sort=True)
    notes.append("tiers: " + ", ".join(f"{m} {n}" for m, n in moves.iter_rows()))
    if keep and scheme.vip_tiers:
        tables["hidden_vips"] = hidden_vips(feats, scheme, n=settings.hidden_vip_n,
                                            branch_col=settings.branch_col)
        notes.append(f"hidden_vips: {tables['hidden_vips'].height} customers listed")
    else:
        notes.append("hidden_vips: skipped (no branch column or no VIP tier)")
    return ValueStepResult(tables=tables, models=models, clv_refitted=refitted, notes=notes)
