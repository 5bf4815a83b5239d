"""The nightly pipeline's TOML configuration, validated with pydantic.

The file has fixed sections (``run``, ``inputs``, ``validation``, ``features``) and
one section per registered step (``value``, ``lifecycle``, ``churn``, ...), each
validated by that step's own model. An unknown key anywhere is an error that names
the closest valid key.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, create_model, field_validator

from crmkit._config import StrictModel, parse_config
from crmkit.exceptions import ConfigError
from crmkit.features import DEFAULT_ASSET_WEIGHTS
from crmkit.schema import Contract, QualityGate
from crmkit.pipeline._graph import order_steps
from crmkit.pipeline._step import Step

__all__ = ["FeaturesSection", "InputsSection", "RunSection", "ValidationSection",
           "load_pipeline_config", "pipeline_config_model"]


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

    @field_validator("n_shards")
    @classmethod
    def _shards(cls, value: int | str) -> int | str:
        if isinstance(value, int) and not 1 <= value <= 4096:
            raise ValueError("n_shards must be 'auto' or a whole number from 1 to 4096")
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
        path = Path(source)
        if not path.exists():
            raise ConfigError(f"Config file {path} does not exist.")
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{path}: invalid TOML: {err}") from None
        base = path.resolve().parent
    order_steps(steps)  # a missing input or a cycle is a config error, before any work
    config = parse_config(pipeline_config_model(steps), data, "pipeline",
                          context={"base_dir": base})
    return config, base
