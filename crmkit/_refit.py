"""When a stored model must be refitted: one rule for every model-owning step."""

from __future__ import annotations

import datetime as dt

from crmkit._params import check_choice

__all__ = ["REFIT_SCHEDULES", "due_for_refit"]

REFIT_SCHEDULES = ("always", "weekly", "monthly", "quarterly", "yearly", "never")
"""How often a step refits its model; between refits it loads the stored one."""


def due_for_refit(last_fit: dt.date | None, as_of: dt.date, schedule: str) -> bool:
    """Whether a model fitted on ``last_fit`` must be refitted for a run on ``as_of``.

    ``weekly``/``monthly``/``quarterly``/``yearly`` refit when ``as_of`` is in a later
    calendar week/month/quarter/year than the last fit; ``always`` every run;
    ``never`` only when there is no stored model.

    Examples
    --------
    >>> due_for_refit(dt.date(2025, 1, 31), dt.date(2025, 2, 1), "monthly")
    True
    >>> due_for_refit(dt.date(2025, 1, 3), dt.date(2025, 1, 31), "monthly")
    False
    >>> due_for_refit(None, dt.date(2025, 1, 31), "never")
    True
    """
    check_choice(schedule, REFIT_SCHEDULES, "schedule", "due_for_refit")
    if last_fit is None or schedule == "always":
        return True
    if schedule == "never" or as_of <= last_fit:
        return False
    if schedule == "weekly":
        return as_of.isocalendar()[:2] != last_fit.isocalendar()[:2]
    if schedule == "monthly":
        return (as_of.year, as_of.month) != (last_fit.year, last_fit.month)
    if schedule == "quarterly":
        return (as_of.year, (as_of.month - 1) // 3) != (last_fit.year, (last_fit.month - 1) // 3)
    return as_of.year != last_fit.year
