"""Checks of user-supplied parameters with one message format (scikit-learn's)."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

__all__ = ["check_choice", "check_date", "check_positive"]


def _fail(param: str, owner: str, must: str, value: Any) -> ValueError:
    return ValueError(f"The {param!r} parameter of {owner} must be {must}. Got {value!r} instead.")


def check_positive(value: Any, param: str, owner: str, *, allow_zero: bool = False) -> float:
    """Return ``value`` as float, or raise the standard message.

    Examples
    --------
    >>> check_positive(3, "horizon", "BetaGeo")
    3.0
    >>> check_positive(-3, "horizon", "BetaGeo")
    Traceback (most recent call last):
    ...
    ValueError: The 'horizon' parameter of BetaGeo must be a positive number. Got -3 instead.
    """
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        must = "a non-negative number" if allow_zero else "a positive number"
        raise _fail(param, owner, must, value)
    return float(value)


def check_choice(value: Any, choices: tuple, param: str, owner: str) -> Any:
    """Return ``value`` if it is one of ``choices``, else raise the standard message.

    Examples
    --------
    >>> check_choice("weeks", ("days", "weeks"), "unit", "rfm_summary")
    'weeks'
    """
    if value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise _fail(param, owner, f"one of {listed}", value)
    return value


def check_date(value: Any, param: str, owner: str) -> dt.date:
    """Return ``value`` as a ``datetime.date`` (accepts date, datetime, ISO string).

    Examples
    --------
    >>> check_date("2024-03-31", "as_of", "build_features")
    datetime.date(2024, 3, 31)
    """
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if hasattr(value, "to_pydatetime"):  # pandas Timestamp
        return value.to_pydatetime().date()
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value[:10])
        except ValueError:
            pass
    raise _fail(param, owner, "a date (datetime.date or 'YYYY-MM-DD')", value)
