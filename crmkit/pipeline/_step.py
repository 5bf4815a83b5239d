"""The step contract: what every step of the nightly run declares and implements.

A step is declared in one file, ``crmkit/pipeline/steps/<name>.py``, as a
:class:`Step`:

- ``config_model``: the strict pydantic model of its ``[<name>]`` TOML section;
- ``inputs`` and ``outputs`` by name. Inputs are ``"features"``, an input table
  (``"transactions"``, ``"holdings"``, ...) or an earlier step's output
  (``"value.clv"``); outputs are the step's per-customer tables (``"clv"`` becomes
  ``"value.clv"``). The runner orders the steps from these declarations and
  rejects a cycle or an input nobody produces at config check;
- ``fit`` (optional, global): a model fitted once per run from small per-shard
  statistics (``fit_stats``) gathered over all shards, or loaded from the model
  store when no refit is due (``ModelSpec``);
- ``score`` (per shard): a pure function of one customer shard and the fitted
  state, returning per-customer tables (merged by the runner into one file sorted
  by ``customer_id``) and small ``partials`` (counts, top-k candidates) that
  ``finalize`` turns into the step's aggregate tables and manifest facts.

A step that is global by nature (an assignment across all customers) sets
``scope = "global"`` and gets one shard holding every customer's rows of its
(small) inputs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import polars as pl
from pydantic import BaseModel

__all__ = ["FitResult", "ModelSpec", "Shard", "ShardOutput", "Step", "StepSummary"]


@dataclass
class ShardOutput:
    """What ``score`` returns for one shard.

    Attributes
    ----------
    tables : dict of str to polars.DataFrame
        Per-customer tables (one row per customer of the shard, with ``customer_id``),
        named as in the step's ``outputs``.
    partials : dict of str to polars.DataFrame
        Small tables that ``finalize`` combines over shards (e.g. counts by tier).
    """

    tables: dict[str, pl.DataFrame] = field(default_factory=dict)
    partials: dict[str, pl.DataFrame] = field(default_factory=dict)


@dataclass
class StepSummary:
    """What ``finalize`` returns: aggregate tables and JSON-able manifest facts."""

    tables: dict[str, pl.DataFrame] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass
class FitResult:
    """A fitted state and how to store it.

    Attributes
    ----------
    state : Any
        What ``score`` receives (estimators, edges, ...).
    payload : dict
        The state as JSON data (what the model store writes; ``ModelSpec.load``
        turns it back into ``state``).
    training : dict
        The training window and row counts.
    metrics : dict
        Backtest or fit metrics, recorded in the store and the manifest.
    """

    state: Any
    payload: dict[str, Any]
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelSpec:
    """How a step's fitted state is refitted and stored.

    Attributes
    ----------
    name : str
        The model's name in the store (``<model_dir>/<name>/<fitted_as_of>.json``).
    schedule : callable
        ``schedule(cfg) -> str``: the refit schedule (see ``REFIT_SCHEDULES``).
    settings : callable
        ``settings(cfg) -> dict``: the part of the config that shapes the fit; a
        stored model fitted with other settings is refitted.
    load : callable
        ``load(payload, cfg) -> state``; raises on a payload it cannot use.
    """

    name: str
    schedule: Callable[[Any], str]
    settings: Callable[[Any], dict[str, Any]]
    load: Callable[[dict[str, Any], Any], Any]


@dataclass(frozen=True)
class Step:
    """A pipeline step (see the module docstring for the contract).

    Parameters
    ----------
    name : str
        Its config section and output folder.
    config_model : type of pydantic.BaseModel
    score : callable
        ``score(shard, cfg, state) -> ShardOutput``.
    inputs, outputs : tuple of str
    optional_inputs : tuple of str
        Outputs of other steps read when those steps run (``Shard.optional`` gives
        None otherwise).
    fit : callable, optional
        ``fit(stats, ctx, cfg) -> FitResult`` where ``stats`` maps each name
        returned by ``fit_stats`` to the concatenation over shards.
    fit_stats : callable, optional
        ``fit_stats(shard, cfg, ctx) -> dict of str to DataFrame``: the shard's
        share of what ``fit`` needs (sufficient statistics or a deterministic
        sample of customers).
    model : ModelSpec, optional
        Required with ``fit``.
    finalize : callable, optional
        ``finalize(partials, cfg, state, ctx) -> StepSummary``.
    scope : {"shard", "global"}
    doc : str
    """

    name: str
    config_model: type[BaseModel]
    score: Callable[[Shard, Any, Any], ShardOutput]
    inputs: tuple[str, ...] = ("features",)
    outputs: tuple[str, ...] = ()
    optional_inputs: tuple[str, ...] = ()
    fit: Callable[[Mapping[str, pl.DataFrame], Any, Any], FitResult] | None = None
    fit_stats: Callable[[Shard, Any, Any], dict[str, pl.DataFrame]] | None = None
    model: ModelSpec | None = None
    finalize: Callable[[Mapping[str, pl.DataFrame], Any, Any, Any], StepSummary] | None = None
    scope: Literal["shard", "global"] = "shard"
    doc: str = ""

    def qualified_outputs(self) -> list[str]:
        """The outputs as other steps name them (``"<step>.<table>"``)."""
        return [f"{self.name}.{t}" for t in self.outputs]


class Shard:
    """One customer shard as a step sees it: its declared inputs, nothing else.

    Parameters
    ----------
    index, count : int
        Shard ``index`` of ``count`` (``crc32(customer_id) % count``).
    as_of : datetime.date
    readers : mapping of str to callable
        For each declared input name, a function returning that input's rows for
        this shard (read lazily, once).
    previous : callable
        ``previous(step, table, customers) -> DataFrame | None``.
    feature_options : dict
        The run's ``[features]`` settings as keyword arguments of
        :func:`crmkit.features.build_features`.
    step : str
        The step this view is for (named in errors).

    Examples
    --------
    >>> shard = Shard(0, 1, dt.date(2025, 1, 31),
    ...               {"features": lambda: pl.DataFrame({"customer_id": ["a"]})})
    >>> shard.get("features").height
    1
    >>> shard.get("value.clv")
    Traceback (most recent call last):
    ...
    KeyError: "step '?' did not declare the input 'value.clv'; declared: features"
    """

    def __init__(self, index: int, count: int, as_of: dt.date,
                 readers: Mapping[str, Callable[[], pl.DataFrame]],
                 previous: Callable[[str, str, pl.DataFrame], pl.DataFrame | None] | None = None,
                 feature_options: Mapping[str, Any] | None = None, step: str = "?") -> None:
        self.index = index
        self.count = count
        self.as_of = as_of
        self._readers = dict(readers)
        self._cache: dict[str, pl.DataFrame] = {}
        self._previous = previous
        self.feature_options = dict(feature_options or {})
        self.step = step

    def get(self, name: str, columns: Sequence[str] | None = None) -> pl.DataFrame:
        """The shard's rows of the declared input ``name`` (only ``columns``, if given).

        Naming the columns matters in a global step, whose one shard holds every
        customer: the runner then reads those columns alone from disk.
        """
        if name not in self._readers or self._readers[name] is None:
            raise KeyError(f"step {self.step!r} did not declare the input {name!r}; "
                           f"declared: {', '.join(sorted(self._readers))}")
        if name in self._cache:
            frame = self._cache[name]
            return frame if columns is None else frame.select(columns)
        if columns is None:
            self._cache[name] = self._readers[name]()
            return self._cache[name]
        key = f"{name}[{','.join(columns)}]"
        if key not in self._cache:
            reader = self._readers[name]
            self._cache[key] = reader(list(columns)) if getattr(reader, "takes_columns", False) \
                else reader().select(columns)
        return self._cache[key]

    def columns(self, name: str) -> list[str]:
        """The column names of the declared input ``name`` (read from the file's
        schema where the runner can, without reading rows)."""
        if name in self._cache:
            return list(self._cache[name].columns)
        reader = self._readers.get(name)
        if reader is None:
            self.get(name)  # raises the error that names the declared inputs
        schema_of = getattr(reader, "column_names", None)
        return schema_of() if schema_of is not None else list(self.get(name).columns)

    def optional_present(self, name: str) -> bool:
        """Whether an optional input was produced by a step of this run."""
        return self._readers.get(name) is not None

    def optional(self, name: str) -> pl.DataFrame | None:
        """The shard's rows of an optional input, or None when no step produced it."""
        reader = self._readers.get(name)
        if reader is None:
            return None
        return self.get(name)

    def tables(self, names: Sequence[str]) -> dict[str, pl.DataFrame]:
        """Several declared input tables as a mapping (what the library functions take)."""
        return {n: self.get(n) for n in names}

    def join(self, base: str, columns: Mapping[str, Sequence[str]]) -> pl.DataFrame:
        """``base`` with columns of other declared inputs joined by ``customer_id``.

        Examples
        --------
        >>> s = Shard(0, 1, dt.date(2025, 1, 31), {
        ...     "features": lambda: pl.DataFrame({"customer_id": ["a", "b"]}),
        ...     "value.clv": lambda: pl.DataFrame({"customer_id": ["b"], "clv": [9.0]})})
        >>> s.join("features", {"value.clv": ["clv"]}).rows()
        [('a', None), ('b', 9.0)]
        """
        out = self.get(base)
        for name, cols in columns.items():
            out = out.join(self.get(name).select("customer_id", *cols), on="customer_id",
                           how="left", maintain_order="left")
        return out

    def previous(self, step: str, table: str) -> pl.DataFrame | None:
        """The previous run's ``<step>/<table>`` rows of this shard's customers, if any."""
        if self._previous is None:
            return None
        return self._previous(step, table, self)
