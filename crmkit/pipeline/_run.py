"""One nightly run: load, validate, features, the registered steps, then write the
run folder atomically with its manifest and report."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
from tqdm.auto import tqdm

from crmkit._params import check_date
from crmkit.exceptions import ConfigError
from crmkit.features import build_features
from crmkit.io import atomic_dir, read_tables, write_json, write_table
from crmkit.pipeline._config import load_pipeline_config
from crmkit.pipeline._manifest import file_sha256, frame_fingerprint, versions
from crmkit.pipeline._registry import load_steps
from crmkit.pipeline._step import RunContext, Step
from crmkit.schema import tables_as_of, validate

__all__ = ["RunResult", "find_previous_run", "run_pipeline"]


@dataclass
class RunResult:
    """What :func:`run_pipeline` did: the run folder, its manifest, and every table."""

    run_dir: Path
    manifest: dict[str, Any]
    features: pl.DataFrame
    outputs: dict[str, dict[str, pl.DataFrame]]


def find_previous_run(output_dir: Path, as_of: dt.date) -> Path | None:
    """The latest complete run folder (one with a manifest) dated before ``as_of``."""
    if not output_dir.is_dir():
        return None
    found = []
    for child in output_dir.iterdir():
        try:
            day = dt.date.fromisoformat(child.name)
        except ValueError:
            continue
        if day < as_of and (child / "manifest.json").exists():
            found.append((day, child))
    return max(found)[1] if found else None


def _load_inputs(inputs, base: Path, as_of: dt.date) -> dict[str, pl.DataFrame]:
    if inputs.source == "sample":
        from crmkit.datasets import make_bank

        if as_of > inputs.sample_data_end:
            raise ConfigError(
                f"The sample bank's data end on {inputs.sample_data_end.isoformat()}; run with "
                f"--as-of on or before it, or set inputs.sample_data_end.")
        bank = make_bank(inputs.sample_customers, seed=inputs.sample_seed,
                         as_of=inputs.sample_data_end, years=inputs.sample_years)
        return tables_as_of(bank, as_of)
    source = inputs.source
    if "://" not in source:
        path = Path(source)
        source = str(path if path.is_absolute() else (base / path))
    return read_tables(source, format=inputs.format)


def run_pipeline(
    config: str | Path | dict,
    *,
    as_of: dt.date | str,
    steps: list[Step] | None = None,
    progress: bool | None = None,
) -> RunResult:
    """Run the nightly pipeline described by ``config`` as of one date.

    The run folder ``<output_dir>/<as_of>/`` holds ``features/features.parquet``,
    one folder per step with its tables, ``quarantine/`` (rejected rows with their
    reasons, and ``problems.csv``), ``manifest.json`` (inputs, row counts, config,
    versions, timings, output checksums) and ``report.html``. It is written to a
    temporary folder and renamed into place, so a crash never leaves half a run;
    a rerun for the same date replaces the folder whole. Outputs are a pure
    function of (inputs, config, as_of, stored models): a rerun gives identical
    tables.

    Parameters
    ----------
    config : str, path or dict
        A TOML file (see ``pipelines/nightly.toml``) or the same as a mapping.
    as_of : date or str
        The run date.
    steps : list of Step, optional
        Defaults to the registered steps.
    progress : bool, optional
        Show a progress bar (default: when stderr is a terminal).

    Returns
    -------
    RunResult
    """
    day = check_date(as_of, "as_of", "run_pipeline")
    steps = load_steps() if steps is None else steps
    cfg, base = load_pipeline_config(config, steps)
    output_dir = Path(cfg.run.output_dir)
    output_dir = (output_dir if output_dir.is_absolute() else base / output_dir).resolve()
    model_dir = Path(cfg.run.model_dir)
    model_dir = model_dir if model_dir.is_absolute() else output_dir / model_dir
    run_dir = output_dir / day.isoformat()
    previous = find_previous_run(output_dir, day)

    started = dt.datetime.now(dt.timezone.utc)
    timings: dict[str, float] = {}
    names = ["load", "validate", "features", *[s.name for s in steps], "write"]
    bar = tqdm(total=len(names), desc=f"{cfg.run.name} {day}", unit="step",
               disable=(not progress) if progress is not None else None, leave=False)

    def tick(name: str, t0: float) -> None:
        timings[name] = round(time.perf_counter() - t0, 3)
        bar.update(1)
        bar.set_postfix_str(name)

    t0 = time.perf_counter()
    raw = _load_inputs(cfg.inputs, base, day)
    tick("load", t0)

    t0 = time.perf_counter()
    cut = cfg.validation.future_rows == "cut"
    checked = validate(raw, as_of=None if cut else day, mode=cfg.validation.mode)
    tables = tables_as_of(checked.tables, day) if cut else checked.tables
    tick("validate", t0)

    t0 = time.perf_counter()
    fcfg = cfg.features
    feature_options = {"windows": list(fcfg.windows), "asset_weights": dict(fcfg.asset_weights)}
    if fcfg.n_shards > 1:
        features = pl.concat([
            build_features(tables, as_of=day, shard=(i, fcfg.n_shards), **feature_options)
            for i in range(fcfg.n_shards)
        ]).sort("customer_id")
    else:
        features = build_features(tables, as_of=day, **feature_options)
    tick("features", t0)

    ctx = RunContext(as_of=day, tables=tables, features=features, model_dir=model_dir,
                     previous_run_dir=previous, feature_options=feature_options)
    step_facts: dict[str, Any] = {}
    for step in steps:
        t0 = time.perf_counter()
        result = step.run(ctx, getattr(cfg, step.name))
        ctx.outputs[step.name] = result.tables
        step_facts[step.name] = result.manifest
        tick(step.name, t0)

    t0 = time.perf_counter()
    manifest: dict[str, Any] = {
        "run": {"name": cfg.run.name, "as_of": day.isoformat(),
                "started_at": started.isoformat(timespec="seconds"),
                "previous_run": previous.name if previous else None},
        "config": cfg.model_dump(mode="json"),
        "versions": versions(),
        "inputs": {
            "source": cfg.inputs.source,
            "tables": {name: {"rows": int(raw[name].height),
                              "rejected": int(checked.rejected[name].height)
                              if name in checked.rejected else 0,
                              "fingerprint": frame_fingerprint(raw[name])}
                       for name in raw},
        },
        "validation": {"mode": cfg.validation.mode, "future_rows": cfg.validation.future_rows,
                       "problems": [str(p) for p in checked.problems]},
        "steps": {},
    }
    with atomic_dir(run_dir) as tmp:
        written: dict[str, dict[str, Any]] = {}

        def put(rel: str, frame: pl.DataFrame) -> None:
            path = write_table(frame, tmp / rel)
            written[rel] = {"rows": frame.height, "sha256": file_sha256(path)}

        put("features/features.parquet", features)
        for name, frame in checked.rejected.items():
            put(f"quarantine/{name}.parquet", frame)
        if checked.problems:
            put("quarantine/problems.csv", checked.problems_frame())
        for step in steps:
            outs = {}
            for table, frame in ctx.outputs[step.name].items():
                rel = f"{step.name}/{table}.parquet"
                put(rel, frame)
                outs[table] = rel
            manifest["steps"][step.name] = {"outputs": outs, **step_facts[step.name]}
        manifest["outputs"] = written
        tick("write", t0)
        manifest["timings_seconds"] = timings
        manifest["run"]["finished_at"] = dt.datetime.now(dt.timezone.utc).isoformat(
            timespec="seconds")
        if cfg.run.report:
            from crmkit.report import write_run_report

            write_run_report(tmp / "report.html", manifest, features, ctx.outputs)
        write_json(manifest, tmp / "manifest.json")
    bar.close()
    return RunResult(run_dir=run_dir, manifest=manifest, features=features, outputs=ctx.outputs)
