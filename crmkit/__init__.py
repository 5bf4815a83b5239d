"""crmkit: customer segmentation and relationship-management analytics."""

from crmkit.exceptions import (
    ConfigError,
    ConvergenceWarning,
    CrmkitError,
    DataWarning,
    NotFittedError,
    SchemaError,
)
from crmkit.schema import TABLES, ValidationResult, validate

__version__ = "0.1.0"

__all__ = sorted([
    "ConfigError",
    "ConvergenceWarning",
    "CrmkitError",
    "DataWarning",
    "NotFittedError",
    "SchemaError",
    "TABLES",
    "ValidationResult",
    "__version__",
    "validate",
])
