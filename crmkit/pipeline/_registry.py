"""The registered pipeline steps.

Each entry names a module under :mod:`crmkit.pipeline.steps` that defines ``STEP``
(a :class:`crmkit.pipeline.Step`). The runner orders them from their declared
inputs and outputs (:func:`crmkit.pipeline._graph.order_steps`); the order here
only breaks ties.
"""

from __future__ import annotations

import importlib

from crmkit.pipeline._step import Step

__all__ = ["STEP_MODULES", "load_steps"]

STEP_MODULES: list[str] = [
    "value",
    "clv",
    "churn",
    "lifecycle",
    "segments",
]


def load_steps() -> list[Step]:
    """Import the registered step modules and return their steps."""
    return [importlib.import_module(f"crmkit.pipeline.steps.{m}").STEP for m in STEP_MODULES]
