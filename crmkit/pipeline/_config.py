"""The nightly pipeline's TOML configuration, validated with pydantic.

The file has fixed sections (``run``, ``inputs``, ``validation``, ``features``) and
one section per registered step (``value``, ``lifecycle``, ``churn``, ...), each
validated by that step's own model. An unknown key anywhere is an error that names
the closest valid key.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, create_model, field_validator

from crmkit._config import StrictModel, parse_config, read_toml
from crmkit.exceptions import ConfigError
from crmkit.features import DEFAULT_ASSET_WEIGHTS
from crmkit.schema import Contract, QualityGate
from crmkit.pipeline._graph import order_steps
from crmkit.pipeline._step import Step

__all__ = ["EngineSection", "FeaturesSection", "InputsSection", "RunSection",
           "ValidationSection", "load_pipeline_config", "pipeline_config_model"]


class RunSection(StrictModel):
    """``[run]``: what the run is called and where its folders go."""

    name: str = "nightly"
    output_dir: str = Field("runs", description="run folders <output_dir>/<as_of>/, relative "
                                                "to the config file")
    model_dir: str = Field("models", description="fitted models, relative to output_dir")
    report: bool = True
    write_back: str | None = Field(None, description="a SQLAlchemy URI or DuckDB file: the "
                                                      "run's per-customer tables replace that "
                                                      "date's rows there, in one transaction")
    steps: list[str] | None = Field(None, description="the registered steps to run "
                                                      "(default: value, clv, churn, "
                                                      "lifecycle, segments)")
    n_shards: int | Literal["auto"] = Field(
        "auto", description="customer shards processed one at a time (memory is set by the "
                            "shard size); 'auto' sizes them from the inputs and free memory")
    shard_memory_mb: int = Field(2000, gt=0, description="with n_shards = 'auto': the working "
                                                         "memory to aim for per shard (about "
                                                         "six times its inputs in memory)")
    engine: Literal["local", "dask", "spark"] = Field(
        "local", description="where the per-shard work runs: this process one shard at a "
                             "time, a Dask cluster or Spark (settings in [engine])")

    @field_validator("n_shards")
    @classmethod
    def _shards(cls, value: int | str) -> int | str:
        if isinstance(value, int) and not 1 <= value <= 4096:
            raise ValueError("n_shards must be 'auto' or a whole number from 1 to 4096")
        return value


_DASK_ADDRESS = re.compile(r"^(tcp|tls|inproc|ucx|ws|wss)://\S+$")
_SPARK_MASTER = re.compile(r"^(local(\[(\d+|\*)(,\s*\d+)?\])?|local-cluster\[\d+,\s*\d+,\s*\d+\]|"
                           r"(spark|k8s|mesos)://\S+|yarn)$")
_DASK_KEYS = ("scheduler", "n_workers", "threads_per_worker", "memory_limit")
_SPARK_KEYS = ("spark_master", "spark_conf")


class EngineSection(StrictModel):
    """``[engine]``: settings of the engine named by ``[run] engine``.

    Dask: ``scheduler`` (an address such as ``"tcp://host:8786"``; default a
    ``LocalCluster`` of ``n_workers`` processes with ``threads_per_worker`` threads
    and ``memory_limit`` each). Spark: ``spark_master`` (default ``"local[2]"``)
    and ``spark_conf`` (extra ``spark.*`` settings). A setting of the other engine
    is an error, so a config never says one thing and does another.
    """

    scheduler: str | None = Field(None, description="Dask scheduler address; default a "
                                                    "LocalCluster")
    n_workers: int = Field(2, ge=1, le=1024, description="Dask LocalCluster worker processes")
    threads_per_worker: int = Field(1, ge=1, le=256)
    memory_limit: str = Field("auto", description="per Dask worker: 'auto' or a size such "
                                                  "as '4GB'")
    spark_master: str = Field("local[2]", description="Spark master URL")
    spark_conf: dict[str, str] = Field(default_factory=dict, description="extra spark.* "
                                                                          "settings")

    @field_validator("scheduler")
    @classmethod
    def _scheduler(cls, value: str | None) -> str | None:
        if value is not None and not _DASK_ADDRESS.match(value):
            raise ValueError(f"scheduler must be a Dask scheduler address such as "
                             f"'tcp://host:8786'; got {value!r}")
        return value

    @field_validator("memory_limit")
    @classmethod
    def _memory(cls, value: str) -> str:
        if not re.match(r"^(auto|\d+(\.\d+)?\s*([kKMGT]i?B)?)$", value):
            raise ValueError(f"memory_limit must be 'auto' or a size such as '4GB'; "
                             f"got {value!r}")
        return value

    @field_validator("spark_master")
    @classmethod
    def _master(cls, value: str) -> str:
        if not _SPARK_MASTER.match(value):
            raise ValueError(f"spark_master must be a Spark master such as 'local[2]', "
                             f"'local[2,3]', 'spark://host:7077' or 'yarn'; got {value!r}")
        return value

    @field_validator("spark_conf")
    @classmethod
    def _conf(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [k for k in value if not k.startswith("spark.")]
        if bad:
            raise ValueError(f"spark_conf keys must start with 'spark.'; got {bad[0]!r}")
        return value


class InputsSection(StrictModel):
    """``[inputs]``: where the canonical tables come from."""

    source: str = Field("sample", description="'sample', a folder of parquet/csv files, a "
                                               ".duckdb file or a SQLAlchemy URI")
    format: Literal["parquet", "csv"] | None = None
    sample_customers: int = Field(5000, gt=0)
    sample_seed: int = 0
    sample_data_end: dt.date = dt.date(2025, 12, 31)
    sample_years: int = Field(3, gt=0)


class ValidationSection(StrictModel):
    """``[validation]``: strict stops the run on any bad row; quarantine writes the bad
    rows with their reasons to ``<run>/quarantine/`` and goes on with the rest.
    ``future_rows``: ``reject`` treats rows dated after the run date as bad rows;
    ``cut`` replays history as it stood on the run date (for backtests)."""

    mode: Literal["strict", "quarantine"] = "quarantine"
    future_rows: Literal["reject", "cut"] = "reject"
    contract: Contract = Field(default_factory=Contract,
                               description="formats, time zone, money bounds, cross-table rules")
    quality: QualityGate = Field(default_factory=QualityGate,
                                 description="rejected-row shares, volume against the previous "
                                             "run, required tables")


class FeaturesSection(StrictModel):
    """``[features]``: as-of feature settings."""

    windows: list[int] = [30, 90, 365]
    asset_weights: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_ASSET_WEIGHTS))

    @field_validator("windows")
    @classmethod
    def _windows(cls, value: list[int]) -> list[int]:
        if not value or min(value) <= 0:
            raise ValueError("windows must be a non-empty list of positive day counts")
        return value


def pipeline_config_model(steps: list[Step]):
    """The pydantic model of a whole config file for the given steps."""
    fields: dict[str, Any] = {
        "run": (RunSection, RunSection()),
        "inputs": (InputsSection, InputsSection()),
        "validation": (ValidationSection, ValidationSection()),
        "features": (FeaturesSection, FeaturesSection()),
        "engine": (EngineSection, EngineSection()),
    }
    from crmkit.pipeline._drift import DriftConfig

    fields["drift"] = (DriftConfig, DriftConfig())
    for step in steps:
        fields[step.name] = (step.config_model, step.config_model())
    return create_model("PipelineConfig", __base__=StrictModel, **fields)


def load_pipeline_config(source: str | Path | dict, steps: list[Step]):
    """Read and validate a pipeline config from a TOML file (or a mapping).

    Relative paths in ``[run]`` and ``[inputs]`` are resolved against the file's folder.

    Raises
    ------
    crmkit.ConfigError
        On a TOML syntax error, an unknown key (the closest valid key is named) or a
        bad value; every problem is listed.
    """
    base = Path.cwd()
    if isinstance(source, dict):
        data = source
    else:
        data, base = read_toml(source)
    order_steps(steps)  # a missing input or a cycle is a config error, before any work
    config = parse_config(pipeline_config_model(steps), data, "pipeline",
                          context={"base_dir": base})
    _check_engine(config, data)
    return config, base


def _check_engine(config: Any, data: Any) -> None:
    """A setting of ``[engine]`` that the chosen engine does not use is an error."""
    given = set((data.get("engine") or {}) if isinstance(data, dict) else {})
    engine = config.run.engine
    foreign = {"local": given, "dask": given & set(_SPARK_KEYS),
               "spark": given & set(_DASK_KEYS)}[engine]
    if foreign:
        key = sorted(foreign)[0]
        raise ConfigError(f"Invalid pipeline config: engine.{key} is not a setting of "
                          f"run.engine = {engine!r}; remove it or set run.engine to "
                          f"{'spark' if key in _SPARK_KEYS else 'dask'!r}.")
