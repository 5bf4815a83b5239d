"""crmkit: customer segmentation and relationship-management analytics.

The most used names are available here; each capability lives in its subpackage
(:mod:`crmkit.features`, :mod:`crmkit.value`, :mod:`crmkit.lifecycle`,
:mod:`crmkit.churn`, :mod:`crmkit.pipeline`, :mod:`crmkit.io`, :mod:`crmkit.datasets`).
Names from the model subpackages are imported on first use, so ``import crmkit``
(and the CLI) stays fast.

Examples
--------
>>> import crmkit
>>> bank = crmkit.make_bank(200, seed=0)
>>> crmkit.validate(bank, as_of="2025-12-31").ok
True
"""

from __future__ import annotations

import importlib as _importlib

from crmkit.exceptions import (
    ConfigError,
    ConvergenceWarning,
    CrmkitError,
    DataWarning,
    InputError,
    NotFittedError,
    QualityGateError,
    SchemaError,
)
from crmkit.schema import TABLES, ValidationResult, tables_as_of, validate

__version__ = "0.1.0"

_LAZY = {
    "make_bank": "crmkit.datasets",
    "make_sector": "crmkit.datasets",
    "build_features": "crmkit.features",
    "rfm_summary": "crmkit.features",
    "calibration_holdout_split": "crmkit.features",
    "BetaGeo": "crmkit.value",
    "ParetoNBD": "crmkit.value",
    "GammaGamma": "crmkit.value",
    "customer_lifetime_value": "crmkit.value",
    "backtest_clv": "crmkit.value",
    "RFMScorer": "crmkit.value",
    "assign_tiers": "crmkit.value",
    "assign_stages": "crmkit.lifecycle",
    "label_churn": "crmkit.lifecycle",
    "CoxPH": "crmkit.churn",
    "WeibullAFT": "crmkit.churn",
    "KaplanMeierBaseline": "crmkit.churn",
    "PropensityModel": "crmkit.propensity",
    "run_pipeline": "crmkit.pipeline",
    "load_model": "crmkit._estimator",
    "RMAssigner": "crmkit.assign",
}
_SUBPACKAGES = ("assign", "churn", "datasets", "features", "io", "lifecycle", "pipeline",
                "propensity", "report",
                "schema", "sectors", "value")


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(_importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _SUBPACKAGES:
        return _importlib.import_module(f"crmkit.{name}")
    raise AttributeError(f"module 'crmkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The public names only (no ``annotations``, ``importlib``, ...)."""
    return sorted(set(__all__) | set(_SUBPACKAGES))


__all__ = sorted([
    "ConfigError",
    "ConvergenceWarning",
    "CrmkitError",
    "DataWarning",
    "InputError",
    "NotFittedError",
    "QualityGateError",
    "SchemaError",
    "TABLES",
    "ValidationResult",
    "__version__",
    "tables_as_of",
    "validate",
    *_LAZY,
])
