"""Pre-flight: check a run can start (config, inputs, folders) without computing anything."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from crmkit._params import check_date
from crmkit.exceptions import ConfigError
from crmkit.pipeline._config import load_pipeline_config
from crmkit.pipeline._graph import order_steps
from crmkit.pipeline._registry import load_steps, select_steps
from crmkit.pipeline._step import Step

__all__ = ["preflight"]

REQUIRED = ("customers", "transactions")


def preflight(config: str | Path | dict, *, as_of: dt.date | str,
              steps: list[Step] | None = None) -> list[str]:
    """What a run of ``config`` on ``as_of`` would read and write, or the first problem.

    Checks the config (every value), the order of the steps, that the input source
    can be opened and holds the required tables, and that the output and model
    folders can be written. Reads no rows.

    Returns
    -------
    list of str
        One line per check that passed.

    Raises
    ------
    crmkit.ConfigError, FileNotFoundError, PermissionError
        The first check that failed.
    """
    from crmkit.pipeline._run import _check_writable
    from crmkit.pipeline._sources import open_source

    day = check_date(as_of, "as_of", "preflight")
    chosen = steps is not None
    steps = order_steps(load_steps() if steps is None else steps)
    cfg, base = load_pipeline_config(config, steps)
    if not chosen:
        steps = select_steps(steps, cfg.run.steps)
    lines = [f"config ok: steps {', '.join(s.name for s in steps)}"]
    output_dir = Path(cfg.run.output_dir)
    output_dir = (output_dir if output_dir.is_absolute() else base / output_dir).resolve()
    model_dir = Path(cfg.run.model_dir)
    model_dir = model_dir if model_dir.is_absolute() else output_dir / model_dir
    if cfg.inputs.source == "sample":
        if day > cfg.inputs.sample_data_end:
            raise ConfigError(f"The sample bank's data end on {cfg.inputs.sample_data_end}; "
                              f"{day} is after it.")
        lines.append(f"inputs: the sample bank ({cfg.inputs.sample_customers:,} customers)")
    else:
        source = open_source(cfg.inputs, base, day) if "://" in cfg.inputs.source or \
            Path(cfg.inputs.source).suffix in (".duckdb", ".ddb") else None
        names = source.names if source is not None else _folder_tables(cfg.inputs, base)
        missing = [t for t in REQUIRED if t not in names]
        if missing:
            raise ConfigError(f"The input source {cfg.inputs.source} has no "
                              f"{', '.join(missing)} table (it has {', '.join(names) or 'none'}).")
        lines.append(f"inputs: {cfg.inputs.source}: {', '.join(names)}")
    _check_writable(output_dir, model_dir)
    lines.append(f"writable: {output_dir} and {model_dir}")
    return lines


def _folder_tables(inputs, base: Path) -> list[str]:
    from crmkit.pipeline._sources import _parquet_files

    path = Path(inputs.source)
    path = path if path.is_absolute() else base / path
    if not path.is_dir():
        raise FileNotFoundError(f"The input folder {path} does not exist.")
    names = set(_parquet_files(path)[0]) if inputs.format in (None, "parquet") else set()
    if inputs.format in (None, "csv"):
        names |= {p.stem for p in path.glob("*.csv") if not p.name.startswith(".")}
    for name in sorted(names):
        files = list(path.glob(f"{name}.*")) + list((path / name).glob("*.parquet"))
        unreadable = [f for f in files if f.is_file() and not _readable(f)]
        if unreadable:
            raise PermissionError(f"The input file {unreadable[0]} cannot be read.")
    return sorted(names)


def _readable(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            fh.read(1)
        return True
    except OSError:
        return False
