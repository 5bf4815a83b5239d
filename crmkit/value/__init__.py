"""Customer value: CLV models (BG/NBD, Pareto/NBD, MBG/NBD, BG/BB, sBG, Gamma-Gamma), RFM segments, value tiers."""

from crmkit.value._backtest import BacktestResult, backtest_clv
from crmkit.value._bgbb import BetaGeoBetaBinom
from crmkit.value._bgnbd import BetaGeo
from crmkit.value._clv_base import CLVModel, load_clv_model
from crmkit.value._clv_plots import (
    plot_calibration_holdout,
    plot_frequency_fit,
    plot_history_alive,
    plot_probability_alive_matrix,
)
from crmkit.value._clv_value import customer_lifetime_value
from crmkit.value._gammagamma import GammaGamma
from crmkit.value._measures import (
    compare_value_measures,
    next_period_revenue,
    plot_value_measures,
)
from crmkit.value._mbgnbd import ModifiedBetaGeo
from crmkit.value._paretonbd import ParetoNBD
from crmkit.value._sbg import ShiftedBetaGeometric
from crmkit.value._rfm_segments import DEFAULT_SEGMENTS, RFMScorer, SegmentRule, rfm_segments
from crmkit.value.tiers import (
    Tier,
    TierScheme,
    assign_tiers,
    hidden_vips,
    tier_movement,
    tier_movement_summary,
)

__all__ = sorted([
    "BacktestResult",
    "BetaGeo",
    "BetaGeoBetaBinom",
    "CLVModel",
    "DEFAULT_SEGMENTS",
    "GammaGamma",
    "ModifiedBetaGeo",
    "ParetoNBD",
    "RFMScorer",
    "SegmentRule",
    "ShiftedBetaGeometric",
    "Tier",
    "TierScheme",
    "assign_tiers",
    "backtest_clv",
    "compare_value_measures",
    "customer_lifetime_value",
    "hidden_vips",
    "load_clv_model",
    "next_period_revenue",
    "plot_calibration_holdout",
    "plot_frequency_fit",
    "plot_history_alive",
    "plot_probability_alive_matrix",
    "plot_value_measures",
    "rfm_segments",
    "tier_movement",
    "tier_movement_summary",
])
