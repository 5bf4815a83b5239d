"""Customer value: CLV models (BG/NBD, Pareto/NBD, MBG/NBD, BG/BB, sBG, Gamma-Gamma)."""

from crmkit.value._bgnbd import BetaGeo
from crmkit.value._clv_base import CLVModel, load_clv_model

__all__ = sorted([
    "BetaGeo",
    "CLVModel",
    "load_clv_model",
])
