"""The registered pipeline steps.

Each entry names a module under :mod:`crmkit.pipeline.steps` that defines ``STEP``
(a :class:`crmkit.pipeline.Step`). The runner orders them from their declared
inputs and outputs (:func:`crmkit.pipeline._graph.order_steps`); the order here
only breaks ties.
"""

from __future__ import annotations

import importlib

from crmkit.pipeline._step import Step

__all__ = ["DEFAULT_STEPS", "STEP_MODULES", "load_steps", "select_steps"]

STEP_MODULES: list[str] = [
    "value",
    "clv",
    "churn",
    "lifecycle",
    "propensity",
    "assign",
    "calls",
    "segments",
    "insurer",
    "tobacco_retail",
    "elderly_care",
    "broker",
]

DEFAULT_STEPS: tuple[str, ...] = ("value", "clv", "churn", "lifecycle", "segments")
"""The steps a run uses unless ``[run] steps`` names others (propensity trains one model
per product, assign and calls solve for every VIP at once: they are opted into)."""


def load_steps() -> list[Step]:
    """Import the registered step modules and return their steps."""
    return [importlib.import_module(f"crmkit.pipeline.steps.{m}").STEP for m in STEP_MODULES]


def select_steps(steps: list[Step], names: list[str] | None) -> list[Step]:
    """The steps named in ``[run] steps`` (default :data:`DEFAULT_STEPS`), in run order.

    A name that is not a registered step is an error naming the closest one; a
    chosen step whose inputs come from a step left out is an error too.
    """
    from crmkit._config import closest
    from crmkit.exceptions import ConfigError
    from crmkit.pipeline._graph import order_steps

    wanted = list(DEFAULT_STEPS if names is None else names)
    known = [s.name for s in steps]
    for name in wanted:
        if name not in known:
            raise ConfigError(f"[run] steps: {name!r} is not a step.{closest(name, known)} "
                              f"Steps: {', '.join(known)}.")
    return order_steps([s for s in steps if s.name in wanted])
