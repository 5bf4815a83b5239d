"""The ordered list of pipeline steps after validation and features.

Each entry names a module under :mod:`crmkit.pipeline.steps` that defines ``STEP``
(a :class:`crmkit.pipeline.Step`). The order here is the order of the run: a step
may read the outputs of the steps above it.
"""

from __future__ import annotations

import importlib

from crmkit.pipeline._step import Step

__all__ = ["STEP_MODULES", "load_steps"]

STEP_MODULES: list[str] = [
    "value",
    "churn",
    "lifecycle",
]


def load_steps() -> list[Step]:
    """Import the registered step modules and return their steps, in run order."""
    return [importlib.import_module(f"crmkit.pipeline.steps.{m}").STEP for m in STEP_MODULES]
