"""As-of features: RFM summaries, calibration/holdout splits, windowed customer features.

Every function here looks only at rows dated on or before its as-of date.
"""

from crmkit.features._asof import DEFAULT_ASSET_WEIGHTS, build_features
from crmkit.features._rfm import calibration_holdout_split, rfm_summary, rfm_unit
from crmkit.features._shard import shard_filter, shard_of
from crmkit.features._units import PERIODS, UNIT_DAYS, UNITS

__all__ = sorted([
    "DEFAULT_ASSET_WEIGHTS",
    "build_features",
    "shard_filter",
    "shard_of",
    "PERIODS",
    "UNITS",
    "UNIT_DAYS",
    "calibration_holdout_split",
    "rfm_summary",
    "rfm_unit",
])
