"""Numbers and values formatted for people (the report never shows a Python repr)."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

__all__ = ["fmt_count", "fmt_money", "fmt_number", "fmt_share", "fmt_value", "humanize"]


def _bad(value: Any) -> bool:
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def fmt_count(value: Any) -> str:
    """A count with thousands separators.

    Examples
    --------
    >>> fmt_count(12345), fmt_count(None)
    ('12,345', '–')
    """
    if _bad(value):
        return "–"
    return f"{int(round(float(value))):,}"


def fmt_money(value: Any, currency: str = "") -> str:
    """An amount: whole units below 10,000, then k / M / bn with three significant digits.

    Examples
    --------
    >>> fmt_money(374.16999999999996), fmt_money(1_234_567.8, "CNY"), fmt_money(-52_000)
    ('374', 'CNY 1.23M', '−52.0k')
    """
    if _bad(value):
        return "–"
    v = float(value)
    sign = "−" if v < 0 else ""
    a = abs(v)
    if a < 10_000:
        text = f"{a:,.0f}"
    elif a < 1e6:
        text = f"{a / 1e3:.1f}k" if a < 1e5 else f"{a / 1e3:.0f}k"
    elif a < 1e9:
        text = f"{a / 1e6:.2f}M" if a < 1e7 else f"{a / 1e6:.1f}M" if a < 1e8 else f"{a / 1e6:.0f}M"
    else:
        text = f"{a / 1e9:.2f}bn"
    return f"{currency + ' ' if currency else ''}{sign}{text}"


def fmt_share(value: Any, digits: int = 1) -> str:
    """A share as a percentage; tiny non-zero shares say so.

    Examples
    --------
    >>> fmt_share(0.12345), fmt_share(0.00001), fmt_share(0)
    ('12.3%', '<0.1%', '0%')
    """
    if _bad(value):
        return "–"
    v = float(value) * 100
    if v == 0:
        return "0%"
    floor = 10 ** -digits
    if 0 < abs(v) < floor:
        return f"<{floor:g}%"
    return f"{v:.{digits}f}%"


def fmt_number(value: Any, digits: int = 3) -> str:
    """A measurement with ``digits`` significant digits (no float noise).

    Examples
    --------
    >>> fmt_number(0.9351622607352981), fmt_number(1923.4), fmt_number(2.0)
    ('0.935', '1,923', '2')
    """
    if _bad(value):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    v = float(value)
    if v == int(v) and abs(v) < 1e15:
        return f"{int(v):,}"
    if abs(v) >= 10 ** digits:
        return f"{v:,.0f}"
    text = f"{v:.{digits}g}"
    return text if "e" not in text else f"{v:.2e}"


def humanize(name: str) -> str:
    """A column or key name as words.

    Examples
    --------
    >>> humanize("churn_prob_90d"), humanize("auc_horizon")
    ('Churn prob 90d', 'AUC horizon')
    """
    words = str(name).replace("_", " ").split()
    upper = {"auc", "clv", "rfm", "psi", "id", "rm", "vip", "km", "c"}
    out = [w.upper() if w.lower() in upper else w for w in words]
    text = " ".join(out)
    return text[:1].upper() + text[1:] if text else text


def fmt_value(value: Any) -> str:
    """Any cell value for a table: numbers as :func:`fmt_number`, lists joined, dates ISO.

    Examples
    --------
    >>> fmt_value(["cadence_due", "high_risk"]), fmt_value(True), fmt_value(None)
    ('cadence due, high risk', 'yes', '–')
    >>> fmt_value([111.02, 374.16999999999996, [1, 0.03846153846153846]])
    '111, 374, (1, 0.0385)'

    """
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return fmt_number(value)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        parts = [f"({fmt_value(v)})" if isinstance(v, (list, tuple)) else
                 str(v).replace("_", " ") if isinstance(v, str) else fmt_value(v) for v in value]
        return ", ".join(parts) or "–"
    if isinstance(value, dict):
        return ", ".join(f"{humanize(k)}: {fmt_value(v)}" for k, v in value.items())
    return str(value)
