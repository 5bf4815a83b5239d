"""Exceptions and warnings raised by crmkit.

Every error says what is wrong and what to do about it; see DESIGN.md section 5.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "ConvergenceWarning",
    "CrmkitError",
    "CrmkitWarning",
    "DataWarning",
    "NotFittedError",
    "QualityGateError",
    "RunLockedError",
    "SchemaError",
]


class CrmkitError(Exception):
    """Base class of every error crmkit raises on purpose."""


class SchemaError(CrmkitError, ValueError):
    """Input tables do not satisfy the canonical schema.

    Parameters
    ----------
    message : str
        The human-readable report (every problem, one per line).
    problems : list of Problem, optional
        The structured problems, as found by :func:`crmkit.schema.validate`.

    Examples
    --------
    >>> err = SchemaError("customers.customer_id: 2 null values")
    >>> err.problems
    []
    """

    def __init__(self, message: str, problems: list | None = None):
        super().__init__(message)
        self.problems = list(problems or [])


class ConfigError(CrmkitError, ValueError):
    """A pipeline or model configuration is invalid (unknown key, bad value)."""


class NotFittedError(CrmkitError, AttributeError):
    """A model was used before ``fit``.

    Subclasses scikit-learn's contract (``AttributeError``/``ValueError``) so that
    ``sklearn.utils.validation.check_is_fitted`` callers can catch either.
    """


class CrmkitWarning(UserWarning):
    """Base class of crmkit's warnings."""


class ConvergenceWarning(CrmkitWarning):
    """An optimiser stopped without meeting its tolerance; the message names a remedy."""


class DataWarning(CrmkitWarning):
    """Input data were usable but something in them deserves attention."""


class RunLockedError(CrmkitError, RuntimeError):
    """Another run for the same date holds its lock (the CLI's exit code 4)."""


class QualityGateError(CrmkitError, RuntimeError):
    """A run breached a quality gate (the CLI's exit code 3)."""
