"""The contract between the nightly run and its steps.

A step is a pure function of a :class:`RunContext` and its own validated config
section; it returns the tables it produced (written by the runner into
``<run>/<step>/<table>.parquet``) and facts for the manifest. Steps never write
into the run folder themselves, except models, which live in ``ctx.model_dir``
(outside the run folder, shared by successive runs) and are saved as data.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
from pydantic import BaseModel

from crmkit._refit import REFIT_SCHEDULES, due_for_refit

__all__ = ["REFIT_SCHEDULES", "RunContext", "Step", "StepResult", "due_for_refit"]

@dataclass
class StepResult:
    """What a step produced: tables to write, and JSON-able facts for the manifest."""

    tables: dict[str, pl.DataFrame] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunContext:
    """Everything a step may read.

    Attributes
    ----------
    as_of : datetime.date
        The run date; no row after it influenced ``tables`` or ``features``.
    tables : dict of str to polars.DataFrame
        The validated input tables (quarantined rows removed).
    features : polars.DataFrame
        :func:`crmkit.features.build_features` as of ``as_of``, one row per customer.
    outputs : dict of str to dict of str to polars.DataFrame
        Tables produced by the steps that ran before, by step name.
    model_dir : pathlib.Path
        Persistent folder for fitted models (JSON data), shared across runs.
    previous_run_dir : pathlib.Path or None
        The folder of the latest earlier run, for movement and transitions.
    feature_options : dict
        The run's ``[features]`` settings as keyword arguments of
        :func:`crmkit.features.build_features` (``windows``, ``asset_weights``), for
        steps that build features as of other dates (training windows, backtests).
    """

    as_of: dt.date
    tables: dict[str, pl.DataFrame]
    features: pl.DataFrame
    outputs: dict[str, dict[str, pl.DataFrame]] = field(default_factory=dict)
    model_dir: Path = Path("models")
    previous_run_dir: Path | None = None
    feature_options: dict[str, Any] = field(default_factory=dict)

    def previous_output(self, step: str, table: str) -> pl.DataFrame | None:
        """A table written by ``step`` in the previous run, or None when there is none.

        Examples
        --------
        >>> ctx = RunContext(dt.date(2025, 1, 31), {}, pl.DataFrame())
        >>> ctx.previous_output("value", "tiers") is None
        True
        """
        if self.previous_run_dir is None:
            return None
        path = self.previous_run_dir / step / f"{table}.parquet"
        return pl.read_parquet(path) if path.exists() else None

    def model_path(self, name: str) -> Path:
        """Where the model ``name`` is stored (``<model_dir>/<name>.json``)."""
        self.model_dir.mkdir(parents=True, exist_ok=True)
        return self.model_dir / f"{name}.json"

    def stored_fit_date(self, name: str) -> dt.date | None:
        """The ``fitted_as_of`` date recorded in a stored model's JSON, if any."""
        path = self.model_dir / f"{name}.json"
        if not path.exists():
            return None
        value = json.loads(path.read_text()).get("fitted_as_of")
        return dt.date.fromisoformat(value) if value else None


@dataclass(frozen=True)
class Step:
    """A pipeline step: a name (its config section and output folder), the pydantic
    model of its config section, and the function that runs it."""

    name: str
    config_model: type[BaseModel]
    run: Callable[[RunContext, Any], StepResult]
    doc: str = ""
