"""One nightly run, shard by shard.

1. **stage**: read the inputs in batches and split them into customer shards on
   disk (:mod:`crmkit.pipeline._shards`); memory holds one batch;
2. **validate** and **features**, one shard at a time;
3. each **step**, in the order its declared inputs give: its model is loaded from
   the store or refitted (``fit`` on statistics gathered over the shards), then
   ``score`` runs shard by shard, writing each shard's tables, and ``finalize``
   combines the shards' partial aggregates;
4. **write**: shard parts are merged into one sorted file per table, with the
   manifest and report, into a temporary folder renamed into place; models fitted
   by the run are published to the store only then.

Peak memory is set by the shard size; the outputs are identical, byte for byte,
for any number of shards.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import shutil
import uuid
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from crmkit._params import check_date
from crmkit.exceptions import QualityGateError, SchemaError
from crmkit.features import build_features
from crmkit.features._shard import crc32_of, shard_index
from crmkit.io import atomic_dir, write_json
from crmkit.pipeline._config import load_pipeline_config
from crmkit.pipeline._engines import Engine, make_engine
from crmkit.pipeline._graph import order_steps
from crmkit.pipeline._journal import Journal, resume_key
from crmkit.pipeline._lock import remove_stale, run_lock
from crmkit.pipeline._manifest import PhaseMeter, file_sha256, versions
from crmkit.pipeline._registry import load_steps, select_steps
from crmkit.pipeline._shards import (
    WORK_COMPRESSION,
    InputSource,
    StagedInputs,
    finish_fingerprint,
    merge_parts,
    part_path,
    remove_tree,
    shard_fingerprint,
    split_file,
    stage_inputs,
    write_frame,
    write_part,
)
from crmkit.pipeline._sources import open_source, source_signature
from crmkit.pipeline._step import Shard, ShardOutput, Step, StepSummary
from crmkit.segments._run import RunTables, read_features
from crmkit.pipeline._store import (
    ModelStore,
    check_never,
    due_for_refit,
    settings_match,
)
from crmkit.schema import Problem, empty_table, quality_gate, tables_as_of, validate

__all__ = ["FitContext", "RunResult", "find_previous_run", "run_pipeline"]


@dataclass
class FitContext:
    """What a step's ``fit``, ``fit_stats`` and ``finalize`` may know about the run."""

    as_of: dt.date
    n_customers: int
    feature_options: dict[str, Any]
    previous_run_dir: Path | None
    input_fingerprint: str
    notes: list[str] = field(default_factory=list)
    work: Path | None = None
    config_fingerprint: str = ""

    def files_dir(self, step: str) -> Path:
        """A folder for files a step writes besides its tables (exports); the runner
        moves its contents into ``<run>/<step>/`` when the run is written."""
        if self.work is None:
            raise RuntimeError("files_dir is only available inside a run")
        folder = self.work / "files" / step
        folder.mkdir(parents=True, exist_ok=True)
        return folder


@dataclass
class RunResult:
    """What :func:`run_pipeline` did: the run folder and its manifest.

    Tables are read from the run folder when asked for (``features``,
    ``outputs[step][table]``), so a result of a 10M-customer run costs nothing.
    """

    run_dir: Path
    manifest: dict[str, Any]

    @property
    def features(self) -> pl.DataFrame:
        """The run's features table."""
        return pl.read_parquet(self.run_dir / "features" / "features.parquet")

    @property
    def outputs(self) -> dict[str, dict[str, pl.DataFrame]]:
        """Every step's tables, by step and table name (read from the run folder)."""
        out: dict[str, dict[str, pl.DataFrame]] = {}
        for step, facts in self.manifest.get("steps", {}).items():
            out[step] = {t: pl.read_parquet(self.run_dir / rel)
                         for t, rel in facts.get("outputs", {}).items()}
        return out


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


WORKING_SET_FACTOR = 6


def _n_shards(setting: int | str, source: InputSource, target_mb: int) -> int:
    if setting != "auto":
        return int(setting)
    if source.n_partitions:  # inputs already split by shard are read where they are
        return source.n_partitions
    # validating a shard and building its features takes about six times the shard's
    # inputs in memory (measured at 100k and 1M customers); keep that near the target
    return max(1, min(4096, -(-WORKING_SET_FACTOR * source.nbytes // (target_mb * 1024 * 1024))))


def _merge_problems(found: list[Problem]) -> list[Problem]:
    merged: dict[tuple, list[Problem]] = {}
    for p in found:
        merged.setdefault((p.table, p.column, p.check, p.structural), []).append(p)

    def row_no(example: str) -> int:
        head = example.split(":", 1)[0]
        return int(head[4:]) if head.startswith("row ") and head[4:].isdigit() else 0

    out = []
    for (table, column, check, structural), group in merged.items():
        examples = sorted({e for p in group for e in p.examples}, key=row_no)[:5]
        out.append(Problem(table, column, check, sum(p.n_rows for p in group),
                           tuple(examples), structural))
    return out


class _Run:
    """The state of one run while it is under way (work folder, shard count, parts)."""

    def __init__(self, cfg: Any, day: dt.date, work: Path, staged: StagedInputs,
                 previous: Path | None, feature_options: dict[str, Any]) -> None:
        self.cfg = cfg
        self.day = day
        self.work = work
        self.staged = staged
        self.n = staged.n_shards
        self.previous_dir = previous
        self.feature_options = feature_options
        self.outputs: dict[str, tuple[str, str]] = {"features": ("features", "features")}
        self.clean = work / "clean"
        self.engine: Engine = make_engine(cfg.run.engine, cfg.engine)

    def __getstate__(self) -> dict[str, Any]:
        # what a shard task needs on a worker: paths, the shard count, the small shared
        # tables; not the config (a class made at run time) nor the engine
        state = dict(self.__dict__)
        state.pop("cfg", None)
        state.pop("engine", None)
        return state

    def input_reader(self, name: str, index: int) -> _Reader:
        if name == "features" or name in self.outputs:
            step, table = self.outputs[name]
            return _Reader(part_path(self.work / "out", step, table, index))
        if name in self.staged.shared:
            return _Reader(None, self.staged.shared[name])
        return _Reader(self.clean / name / f"{index:05d}.parquet", name=name)

    def previous(self, step: str, table: str, shard: Shard) -> pl.DataFrame | None:
        if self.previous_dir is None:
            return None
        path = self.previous_dir / step / f"{table}.parquet"
        if not path.exists():
            return None
        if shard.count == 1:
            return pl.read_parquet(path)
        folder = self.work / "previous" / step / table
        if not folder.exists():
            # split the previous run's table into this run's shards once, not once a shard;
            # into a temporary folder renamed into place, as tasks on an engine may race
            tmp = folder.with_name(f".{folder.name}.{uuid.uuid4().hex}")
            split_file(path, shard.count, tmp)
            try:
                os.rename(tmp, folder)
            except OSError:  # another task split it first
                remove_tree(tmp)
        return pl.read_parquet(folder / f"{shard.index:05d}.parquet")

    def shard(self, step: Step, index: int) -> Shard:
        readers = {name: self.input_reader(name, index) for name in step.inputs}
        readers.update({name: self.input_reader(name, index) for name in step.optional_inputs
                        if name in self.outputs})
        return Shard(index, self.n, self.day, readers, self.previous, self.feature_options,
                     step.name)

    def global_shard(self, step: Step) -> Shard:
        def reader(name: str):
            if name in self.staged.shared:  # one table for every shard: read it once
                return self.input_reader(name, 0)
            parts = [self.input_reader(name, i) for i in range(self.n)]
            return _Reader(None, parts=parts)

        readers = {name: reader(name) for name in step.inputs}
        readers.update({name: reader(name) for name in step.optional_inputs
                        if name in self.outputs})
        return Shard(0, 1, self.day, readers, self.previous, self.feature_options, step.name)


class _Reader:
    """A step input of one shard (a Parquet part, a shared table, or every shard's parts
    for a global step), read when the step asks, for the columns it names."""

    takes_columns = True

    def __init__(self, path: Path | None, frame: pl.DataFrame | None = None, *,
                 name: str | None = None, parts: list[_Reader] | None = None) -> None:
        self.path, self.frame, self.name, self.parts = path, frame, name, parts

    def column_names(self) -> list[str]:
        if self.parts is not None:
            return self.parts[0].column_names()
        if self.frame is not None:
            return list(self.frame.columns)
        if self.name is not None and not self.path.exists():
            return list(empty_table(self.name).columns)
        return list(pl.read_parquet_schema(self.path))

    def __call__(self, columns: list[str] | None = None) -> pl.DataFrame:
        if self.parts is not None:
            return pl.concat([p(columns) for p in self.parts], how="vertical_relaxed")
        if self.frame is not None:
            return self.frame if columns is None else self.frame.select(columns)
        if self.name is not None and not self.path.exists():  # an absent optional table
            frame = empty_table(self.name)
            return frame if columns is None else frame.select(columns)
        return pl.read_parquet(self.path, columns=columns)


def _prepare_shards(run: _Run, mode: str, cut: bool, tick) -> dict[str, Any]:
    """Validate every shard and build its features; returns the input facts."""
    staged, day = run.staged, run.day
    contract = run.cfg.validation.contract
    shared_check = validate({"customers": empty_table("customers"), **{
        n: f for n, f in staged.shared.items()}}, as_of=None if cut else day, mode="quarantine",
        contract=contract)
    shared = {n: shared_check.tables[n] for n in staged.shared if n in shared_check.tables}
    problems = list(shared_check.problems)
    rejected_counts = {n: 0 for n in staged.facts}
    for name, frame in shared_check.rejected.items():
        rejected_counts[name] = frame.height
        write_part(frame, part_path(run.work / "rejected", "q", name, 0), key="_row")
    staged.shared = shared
    done = [0]

    def shard_done(_: int) -> None:
        done[0] += 1
        tick(f"shard {done[0]}/{run.n}", None)

    sums = {name: 0 for name in staged.in_place}
    for found, counts, fingerprints in run.engine.map(
            _prepare_shard, range(run.n), shared=(run, cut, contract), on_done=shard_done):
        problems.extend(found)
        for name, rows in counts.items():
            rejected_counts[name] += rows
        for name, value in fingerprints.items():
            sums[name] += value
    for name, value in sums.items():
        finish_fingerprint(staged, name, value)
    problems = _merge_problems(problems)
    if problems and mode == "strict":
        n = len(problems)
        raise SchemaError(f"{n} problem{'s' if n != 1 else ''} in the input tables:\n"
                          + "\n".join(str(p) for p in problems), problems)
    previous_counts = None
    if run.previous_dir is not None and (run.previous_dir / "manifest.json").exists():
        previous_counts = {t: f["rows"] for t, f in json.loads(
            (run.previous_dir / "manifest.json").read_text(encoding="utf-8")
        )["inputs"]["tables"].items()}
    # the rejected share, required tables and volumes against the previous run, over all
    # shards: a broken day fails the run (exit code 3) before any model sees it
    quality = quality_gate(previous_counts=previous_counts, gate=run.cfg.validation.quality,
                           rows={n: f["rows"] for n, f in staged.facts.items()},
                           rejected=rejected_counts, problems=problems)
    return {"problems": problems, "rejected": rejected_counts, "quality": quality}


def _write_part(frame: pl.DataFrame, dest: Path, key: str | None = "customer_id") -> None:
    """:func:`write_part` (sorted by ``key``; :func:`write_frame` as it is when None) under a
    temporary name renamed into place: a task run again (its worker lost) replaces its
    part whole, never leaves half a file."""
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.tmp")
    dest.parent.mkdir(parents=True, exist_ok=True)
    if key is None:
        write_frame(frame, tmp, compression=WORK_COMPRESSION)
    else:
        write_part(frame, tmp, key=key)
    os.replace(tmp, dest)


def _prepare_shard(shared: tuple[_Run, bool, Any], i: int
                   ) -> tuple[list[Problem], dict[str, int], dict[str, int]]:
    """Validate shard ``i`` and build its features (one engine task); returns its
    problems, rejected-row counts and, for tables read in place, fingerprint sums."""
    run, cut, contract = shared
    staged, day = run.staged, run.day
    raw = {name: staged.read(name, i) for name in staged.sharded}
    fingerprints = {name: shard_fingerprint(raw[name]) for name in staged.in_place}
    for name in staged.in_place:
        _check_partition(name, raw[name], i, run.n)
    raw.update(staged.shared)
    checked = validate(raw, as_of=None if cut else day, mode="quarantine", contract=contract)
    tables = tables_as_of(checked.tables, day) if cut else checked.tables
    for name in staged.sharded:
        if name in tables:
            _write_part(tables[name], run.clean / name / f"{i:05d}.parquet", key=None)
    counts: dict[str, int] = {}
    for name, frame in checked.rejected.items():
        if name in staged.shared:
            continue
        counts[name] = counts.get(name, 0) + frame.height
        _write_part(frame, part_path(run.work / "rejected", "q", name, i + 1), key="_row")
    problems = list(checked.problems)
    del raw, checked
    features = build_features(tables, as_of=day, **run.feature_options)
    _write_part(features, part_path(run.work / "out", "features", "features", i))
    return problems, counts, fingerprints


def _check_partition(name: str, frame: pl.DataFrame, i: int, n: int) -> None:
    """Rows of a table read in place must be of their folder's shard: a customer's rows
    split over two shards would be checked and scored apart, silently wrong."""
    if "customer_id" not in frame.columns or frame.height == 0:
        return
    ids = frame["customer_id"].cast(pl.String, strict=False)
    wrong = frame.filter(pl.Series((crc32_of(ids) % n) != i).fill_null(True))
    if wrong.height:
        sample = ", ".join(repr(c) for c in wrong["customer_id"].head(3).to_list())
        raise SchemaError(
            f"{name}: {wrong.height} row(s) in folder shard={i} belong to other shards "
            f"(e.g. customer_id {sample}); a table split into shard=K folders must hold in "
            f"folder K the customers with CRC-32(customer_id) mod {n} = K. Rewrite it with "
            f"crmkit.pipeline.write_partitioned, or remove the shard= folders.",
            [Problem(name, "customer_id", f"in the wrong shard= folder (shard {i} of {n})",
                     wrong.height)])


def _one_blas_thread() -> threadpool_limits:
    """Steps fit and score with a single BLAS thread: a multithreaded BLAS splits its
    sums by thread count, so the same run on another machine (or a Dask worker, or a
    process whose thread pools an earlier library capped) would differ in the last
    bits. Measured: the churn scores of one sample run changed with
    ``OPENBLAS_NUM_THREADS`` 1 vs 2. The models' matrices are small (a sample's
    landmark rows by some 30 covariates), so the second thread bought nothing."""
    return threadpool_limits(limits=1, user_api="blas")


def _fit_stats_shard(shared: tuple[_Run, Step, Any, FitContext], i: int
                     ) -> dict[str, pl.DataFrame]:
    """A step's fit statistics of shard ``i`` (one engine task)."""
    run, step, cfg, ctx = shared
    with _one_blas_thread():
        return step.fit_stats(run.shard(step, i), cfg, ctx)


def _score_shard(shared: tuple[_Run, Step, Any, Any], i: int) -> dict[str, pl.DataFrame]:
    """Score shard ``i`` of a step, write its tables; returns its partials (one engine task)."""
    run, step, cfg, state = shared
    with _one_blas_thread():
        out: ShardOutput = step.score(run.shard(step, i), cfg, state)
    _check_tables(step, out)
    for table in step.outputs:
        _write_part(out.tables[table], part_path(run.work / "out", step.name, table, i))
    return out.partials


def _check_tables(step: Step, out: ShardOutput) -> None:
    unknown = set(out.tables) - set(step.outputs)
    if unknown:
        raise RuntimeError(f"step {step.name!r} returned tables it does not declare: "
                           f"{', '.join(sorted(unknown))}")
    for table in step.outputs:
        if out.tables.get(table) is None:
            raise RuntimeError(f"step {step.name!r} did not return its output {table!r}")


def _gather(step: Step, cfg: Any, run: _Run, ctx: FitContext) -> dict[str, pl.DataFrame]:
    """The step's fit statistics of every shard, concatenated (shard order)."""
    if step.fit_stats is None:
        return {}
    gathered: dict[str, list[pl.DataFrame]] = {}
    for stats in run.engine.map(_fit_stats_shard, range(run.n), shared=(run, step, cfg, ctx)):
        for name, frame in stats.items():
            gathered.setdefault(name, []).append(frame)
    return {n: pl.concat(fs, how="vertical_relaxed") for n, fs in gathered.items()}


def _load_or_fit(step: Step, cfg: Any, run: _Run, ctx: FitContext, store: ModelStore,
                 staging: list[Path]) -> tuple[Any, dict[str, Any]]:
    """The step's fitted state (stored or refitted) and what the manifest says of it."""
    spec = step.model
    schedule = spec.schedule(cfg)
    settings = spec.settings(cfg)
    if "features" in step.inputs:
        # fitted on features built with other [features] options (windows, asset weights:
        # the tiers' and the models' inputs): refitted, as for other settings
        settings = {**settings, "[features]": run.feature_options}
    facts: dict[str, Any] = {"model": spec.name, "refit_schedule": schedule}
    reason = None
    stored = None
    for fit_day, path in store.candidates(spec.name, run.day):
        try:
            from crmkit.pipeline._store import load_envelope

            envelope = load_envelope(path)
            if envelope.get("name") != spec.name:
                raise ValueError(f"model file {path} holds {envelope.get('name')!r}")
            stored = (fit_day, path, envelope)
        except ValueError as err:
            reason = f"{err}; refitted"
            check_never(schedule, spec.name, str(err))
        break
    state = None
    if stored is not None:
        fit_day, path, envelope = stored
        if not settings_match(envelope, settings):
            reason = f"settings changed since the fit of {fit_day} ({path.name}); refitted"
        elif not due_for_refit(fit_day, run.day, schedule):
            try:
                state = spec.load(envelope["payload"], cfg)
            except Exception as err:  # a payload that does not load is a corrupt model
                reason = f"model file {path} does not load ({err}); refitted"
                check_never(schedule, spec.name, f"model file {path} does not load ({err})")
            else:
                facts.update(refitted=False, fitted_as_of=fit_day.isoformat(),
                             stored_at=str(path), training=envelope.get("training", {}),
                             metrics=envelope.get("metrics", {}))
                return state, facts
        else:
            reason = f"due on the {schedule} schedule (last fit {fit_day.isoformat()})"
    elif reason is None:
        reason = "no stored model fitted on or before the run date"
    result = step.fit(_gather(step, cfg, run, ctx), ctx, cfg)
    folder = store.stage(run.day, spec.name, step.name, settings, payload=result.payload,
                         fingerprint=ctx.input_fingerprint, training=result.training,
                         metrics=result.metrics, staging=staging[0] if staging else None)
    if not staging:
        staging.append(folder)
    facts.update(refitted=True, refit_reason=reason, fitted_as_of=run.day.isoformat(),
                 training=result.training, metrics=result.metrics)
    return result.state, facts


def _run_step(step: Step, cfg: Any, run: _Run, ctx: FitContext, store: ModelStore,
              staging: list[Path]) -> dict[str, Any]:
    with _one_blas_thread():
        return _run_step_once(step, cfg, run, ctx, store, staging)


def _run_step_once(step: Step, cfg: Any, run: _Run, ctx: FitContext, store: ModelStore,
                   staging: list[Path]) -> dict[str, Any]:
    state, facts = (None, {})
    if step.model is not None:
        state, model_facts = _load_or_fit(step, cfg, run, ctx, store, staging)
        facts["model"] = model_facts
    elif step.fit is not None:  # a global fit made afresh every run, not stored
        state = step.fit(_gather(step, cfg, run, ctx), ctx, cfg).state
    partials: dict[str, list[pl.DataFrame]] = {}
    if step.scope == "global":  # one (small) table of every customer, in this process
        out: ShardOutput = step.score(run.global_shard(step), cfg, state)
        _check_tables(step, out)
        for table in step.outputs:
            frame = out.tables[table]
            # one part per shard file name keeps the reader uniform
            for i in range(run.n):
                part = frame if run.n == 1 else frame.filter(
                    shard_index(pl.col("customer_id"), run.n) == i)
                write_part(part, part_path(run.work / "out", step.name, table, i))
        found = [out.partials]
        del out
    else:
        found = run.engine.map(_score_shard, range(run.n), shared=(run, step, cfg, state))
    for shard_partials in found:
        for name, frame in shard_partials.items():
            partials.setdefault(name, []).append(frame)
    for table in step.outputs:
        run.outputs[f"{step.name}.{table}"] = (step.name, table)
    summary = StepSummary()
    if step.finalize is not None:
        combined = {n: pl.concat(fs, how="vertical_relaxed") for n, fs in partials.items()}
        summary = step.finalize(combined, cfg, state, ctx)
    facts.update(summary.facts)
    facts["_tables"] = summary.tables
    return facts


def run_pipeline(
    config: str | Path | dict,
    *,
    as_of: dt.date | str,
    steps: list[Step] | None = None,
    progress: bool | None = None,
    force: bool = False,
    wait: float = 0.0,
    log: Callable[[dict[str, Any]], None] | None = None,
    resume: bool = True,
) -> RunResult:
    """Run the nightly pipeline described by ``config`` as of one date.

    The run folder ``<output_dir>/<as_of>/`` holds ``features/features.parquet``,
    one folder per step with its tables, ``quarantine/`` (rejected rows with their
    reasons, and ``problems.csv``), ``manifest.json`` (inputs, row counts, config,
    versions, models, warnings, timings, output checksums) and ``report.html``. It is
    written to a temporary folder and renamed into place, so a crash never leaves
    half a run. Models fitted by the run are published to the model store only when
    the run folder is complete. Outputs are a pure function of (inputs, config,
    as_of, stored models), whatever the number of shards.

    One run per date at a time: a second run for the same date waits up to ``wait``
    seconds for the first, then raises :class:`crmkit.RunLockedError`. Holding the
    lock, a run removes what killed runs of its date left behind. A complete run
    with the same config is not repeated unless ``force``. A run that was killed is
    resumed after its last complete phase (inputs validated, or a step) when the
    config, inputs, previous run and stored models are those it saw (see
    :mod:`crmkit.pipeline._journal`); the outputs equal an uninterrupted run's.

    Parameters
    ----------
    config : str, path or dict
        A TOML file (see ``pipelines/nightly.toml``) or the same as a mapping.
    as_of : date or str
        The run date.
    steps : list of Step, optional
        Defaults to the registered steps; ordered by their declared inputs.
    progress : bool, optional
        Show a progress bar (default: when stderr is a terminal).
    force : bool
        Recompute a run that is already complete with this config.
    wait : float
        Seconds to wait for another run of the same date.
    log : callable, optional
        Called with one JSON-able record per phase (``event``, ``phase``, timings,
        peak memory, counts): the CLI's ``--log-json``.
    resume : bool
        Resume a killed run of the date where it stopped (default); False starts afresh.

    Returns
    -------
    RunResult
    """
    day = check_date(as_of, "as_of", "run_pipeline")
    chosen = steps is not None
    steps = order_steps(load_steps() if steps is None else steps)
    cfg, base = load_pipeline_config(config, steps)
    if not chosen:
        steps = select_steps(steps, cfg.run.steps)
    output_dir = Path(cfg.run.output_dir)
    output_dir = (output_dir if output_dir.is_absolute() else base / output_dir).resolve()
    model_dir = Path(cfg.run.model_dir)
    model_dir = model_dir if model_dir.is_absolute() else output_dir / model_dir
    store = ModelStore(model_dir)
    run_dir = output_dir / day.isoformat()
    previous = find_previous_run(output_dir, day)
    fcfg = cfg.features
    feature_options = {"windows": list(fcfg.windows), "asset_weights": dict(fcfg.asset_weights)}

    started = dt.datetime.now(dt.timezone.utc)
    meter = PhaseMeter()
    bar = tqdm(total=3 + len(steps), desc=f"{cfg.run.name} {day}", unit="step",
               disable=(not progress) if progress is not None else None, leave=False)

    def tick(name: str, done: str | None = "") -> None:
        if done is None:  # progress within a phase
            bar.set_postfix_str(name)
            _emit(log, {"event": "progress", "as_of": day.isoformat(), "detail": name,
                        "peak_rss_mb": meter.current_peak_mb()})
            return
        meter.lap(name)
        bar.update(1)
        bar.set_postfix_str(name)
        _emit(log, {"event": "phase", "as_of": day.isoformat(), "phase": name,
                    "seconds": meter.seconds[name], "peak_rss_mb": meter.peak_mb[name]})

    _check_writable(output_dir, model_dir)
    with run_lock(output_dir, day, wait):
        stale = remove_stale(output_dir, day, model_dir)
        done = run_dir / "manifest.json"
        if done.exists() and not force:
            manifest = json.loads(done.read_text(encoding="utf-8"))
            if manifest.get("config") == cfg.model_dump(mode="json"):
                _emit(log, {"event": "skipped", "as_of": day.isoformat(),
                            "reason": "complete run with the same config; use force"})
                bar.close()
                return RunResult(run_dir=run_dir, manifest=manifest)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            key = resume_key(config=cfg.model_dump(mode="json"), day=day,
                             steps=[s.name for s in steps],
                             signature=source_signature(cfg.inputs, base), previous=previous,
                             model_dir=model_dir)
            journal = Journal(output_dir, model_dir, day, key, resume=resume)
            if journal.resumed:
                _emit(log, {"event": "resumed", "as_of": day.isoformat(),
                            "after": journal.resumed[-1]})
            manifest = _execute(cfg, base, day, steps, output_dir, run_dir, store, previous,
                                feature_options, started, meter, bar, tick, stale, caught,
                                journal)
    _emit(log, {"event": "done", "as_of": day.isoformat(), "run_dir": str(run_dir),
                "n_shards": manifest["run"]["n_shards"],
                "rows": {k: v["rows"] for k, v in manifest["outputs"].items()},
                "rejected": {k: v["rejected"] for k, v in manifest["inputs"]["tables"].items()},
                "problems": len(manifest["validation"]["problems"]),
                "warnings": len(manifest["warnings"])})
    for line in manifest["warnings"]:
        warnings.warn(line, RunWarning, stacklevel=2)
    return RunResult(run_dir=run_dir, manifest=manifest)


def _execute(cfg, base, day, steps, output_dir, run_dir, store, previous, feature_options,
             started, meter, bar, tick, stale, caught, journal: Journal) -> dict[str, Any]:
    work = journal.folder
    staging: list[Path] = [journal.staging]
    run = None
    try:
        prepared = journal.done("prepare")
        if prepared is None:
            source = open_source(cfg.inputs, base, day)
            n = _n_shards(cfg.run.n_shards, source, cfg.run.shard_memory_mb)
            remove_tree(work / "inputs")
            staged = stage_inputs(source, n, work / "inputs")
            del source
            tick("load")
            run = _Run(cfg, day, work, staged, previous, feature_options)
            checked = _prepare_shards(run, cfg.validation.mode,
                                      cfg.validation.future_rows == "cut", tick)
            tick("validate_features")
            remove_tree(work / "inputs")  # validated shards are in work/clean now
            fingerprint = hashlib.sha256("".join(
                f"{k}:{v['fingerprint']}" for k, v in sorted(staged.facts.items())).encode()
            ).hexdigest()
            n_customers = sum(pl.scan_parquet(part_path(work / "out", "features", "features", i))
                              .select(pl.len()).collect().item() for i in range(n))
            journal.record("prepare", _prepared_record(
                work, staged, checked, fingerprint, n_customers, meter, caught))
        else:
            staged, checked, fingerprint, n_customers = _restore_prepared(work, prepared, meter)
            n = staged.n_shards
            run = _Run(cfg, day, work, staged, previous, feature_options)
            bar.update(2)
        ctx = FitContext(day, n_customers, feature_options, previous, fingerprint, work=work,
                         config_fingerprint=hashlib.sha256(json.dumps(
                             cfg.model_dump(mode="json"), sort_keys=True).encode()).hexdigest())
        step_facts: dict[str, Any] = {}
        for step in steps:
            phase = f"step:{step.name}"
            done_before = journal.done(phase)
            if done_before is not None:
                step_facts[step.name] = _restore_step(work, step, run, done_before, meter)
                bar.update(1)
                continue
            step_facts[step.name] = _run_step(step, getattr(cfg, step.name), run, ctx, store,
                                              staging)
            tick(step.name)
            journal.record(phase, _step_record(work, step, step_facts[step.name], meter,
                                               caught))

        manifest: dict[str, Any] = {
            "run": {"name": cfg.run.name, "as_of": day.isoformat(),
                    "started_at": started.isoformat(timespec="seconds"),
                    "previous_run": previous.name if previous else None},
            "config": cfg.model_dump(mode="json"),
            "versions": versions(),
            "inputs": {
                "source": cfg.inputs.source,
                "fingerprint": fingerprint,
                "tables": {name: {**facts, "rejected": checked["rejected"].get(name, 0)}
                           for name, facts in sorted(staged.facts.items())},
            },
            "validation": {"mode": cfg.validation.mode,
                           "future_rows": cfg.validation.future_rows,
                           "problems": [str(p) for p in checked["problems"]],
                           "quality": checked["quality"]},
            "steps": {},
        }
        with atomic_dir(run_dir) as tmp:
            written: dict[str, dict[str, Any]] = {}

            def record(rel: str, rows: int) -> None:
                written[rel] = {"rows": int(rows), "sha256": file_sha256(tmp / rel)}

            def merged(step: str, table: str, key: str = "customer_id") -> str:
                rel = f"{step}/{table}.parquet"
                parts = [part_path(work / "out", step, table, i) for i in range(n)]
                record(rel, merge_parts(parts, tmp / rel, key=key))
                return rel

            merged("features", "features")
            for name in sorted(staged.facts):
                parts = sorted((work / "rejected" / "q" / name).glob("*.parquet"))
                if parts and checked["rejected"].get(name):
                    rel = f"quarantine/{name}.parquet"
                    record(rel, merge_parts(parts, tmp / rel, key="_row"))
            if checked["problems"]:
                problems = pl.DataFrame(
                    {"table": [p.table for p in checked["problems"]],
                     "column": [p.column for p in checked["problems"]],
                     "check": [p.check for p in checked["problems"]],
                     "n_rows": [p.n_rows for p in checked["problems"]],
                     "examples": [" | ".join(p.examples) for p in checked["problems"]]},
                    schema={"table": pl.String, "column": pl.String, "check": pl.String,
                            "n_rows": pl.Int64, "examples": pl.String})
                (tmp / "quarantine").mkdir(exist_ok=True)
                problems.write_csv(tmp / "quarantine" / "problems.csv")
                record("quarantine/problems.csv", problems.height)
            for step in steps:
                facts = step_facts[step.name]
                outs = {t: merged(step.name, t) for t in step.outputs}
                for table, frame in facts.pop("_tables").items():
                    rel = f"{step.name}/{table}.parquet"
                    write_frame(frame, tmp / rel)
                    record(rel, frame.height)
                    outs[table] = rel
                manifest["steps"][step.name] = {"outputs": dict(sorted(outs.items())), **facts}
                files = work / "files" / step.name
                if files.is_dir():
                    for path in sorted(p for p in files.rglob("*") if p.is_file()):
                        rel = f"{step.name}/{path.relative_to(files).as_posix()}"
                        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                        shutil.move(path, tmp / rel)
                        written[rel] = {"rows": None, "sha256": file_sha256(tmp / rel)}
            drift = _drift(cfg, tmp, manifest, previous)
            if drift is not None:
                manifest["drift"] = drift.to_manifest()
                if drift.failed and cfg.drift.on_breach == "fail":
                    raise QualityGateError(
                        "The run breached its quality gates (nothing was written): "
                        + "; ".join(drift.messages))
            manifest["outputs"] = written
            tick("write")
            manifest["timings_seconds"] = meter.seconds
            manifest["peak_rss_mb"] = meter.peak_mb
            if meter.worker_peak_mb:
                manifest["worker_peak_rss_mb"] = meter.worker_peak_mb
            manifest["stale_removed"] = stale
            manifest["warnings"] = _warning_lines(caught, journal.warnings())
            if journal.resumed:
                manifest["run"]["resumed_after"] = journal.resumed[-1]
            manifest["run"]["n_shards"] = n
            manifest["run"]["finished_at"] = dt.datetime.now(dt.timezone.utc).isoformat(
                timespec="seconds")
            if cfg.run.write_back:
                manifest["write_back"] = _write_back(cfg.run.write_back, base, tmp, manifest, day)
            if cfg.run.report:
                from crmkit.report import write_run_report

                write_run_report(tmp / "report.html", manifest, _report_features(tmp),
                                 RunTables.from_manifest(tmp, manifest, scan=True))
            write_json(manifest, tmp / "manifest.json")
        for folder in staging:
            store.publish(folder)
        staging.clear()
    finally:
        if run is not None:
            run.engine.close()
        # a run that ends (done, or failed with an error) leaves nothing; only a killed
        # run leaves its journal behind, for the next run of the date to resume
        journal.discard()
        bar.close()
    return manifest


def _prepared_record(work: Path, staged: StagedInputs, checked: dict[str, Any],
                     fingerprint: str, n_customers: int, meter: PhaseMeter,
                     caught: list) -> dict[str, Any]:
    """What the steps need of the load and validate phases, for a resumed run."""
    for name, frame in staged.shared.items():
        write_frame(frame, work / "shared" / f"{name}.parquet", compression=WORK_COMPRESSION)
    return {"n_shards": staged.n_shards, "facts": staged.facts, "sharded": staged.sharded,
            "shared": sorted(staged.shared), "fingerprint": fingerprint,
            "n_customers": n_customers,
            "problems": [dataclasses.asdict(p) for p in checked["problems"]],
            "rejected": checked["rejected"], "quality": checked["quality"],
            **_meter_record(meter, caught)}


def _restore_prepared(work: Path, rec: dict[str, Any], meter: PhaseMeter):
    shared = {name: pl.read_parquet(work / "shared" / f"{name}.parquet")
              for name in rec["shared"]}
    staged = StagedInputs(work / "inputs", rec["n_shards"], list(rec["sharded"]), shared,
                          facts=rec["facts"])
    checked = {"problems": [Problem(**{**p, "examples": tuple(p["examples"])})
                            for p in rec["problems"]],
               "rejected": rec["rejected"], "quality": rec["quality"]}
    _restore_meter(meter, rec)
    return staged, checked, rec["fingerprint"], rec["n_customers"]


def _step_record(work: Path, step: Step, facts: dict[str, Any], meter: PhaseMeter,
                 caught: list) -> dict[str, Any]:
    tables = {}
    for table, frame in facts["_tables"].items():
        write_frame(frame, work / "tables" / step.name / f"{table}.parquet",
                    compression=WORK_COMPRESSION)
        tables[table] = True
    return {"facts": {k: v for k, v in facts.items() if k != "_tables"},
            "tables": sorted(tables), **_meter_record(meter, caught)}


def _restore_step(work: Path, step: Step, run: _Run, rec: dict[str, Any],
                  meter: PhaseMeter) -> dict[str, Any]:
    for table in step.outputs:
        run.outputs[f"{step.name}.{table}"] = (step.name, table)
    facts = dict(rec["facts"])
    facts["_tables"] = {t: pl.read_parquet(work / "tables" / step.name / f"{t}.parquet")
                        for t in rec["tables"]}
    _restore_meter(meter, rec)
    return facts


def _meter_record(meter: PhaseMeter, caught: list) -> dict[str, Any]:
    return {"seconds": dict(meter.seconds), "peak_mb": dict(meter.peak_mb),
            "worker_peak_mb": dict(meter.worker_peak_mb), "warnings": _warning_lines(caught)}


def _restore_meter(meter: PhaseMeter, rec: dict[str, Any]) -> None:
    meter.seconds.update({k: v for k, v in rec["seconds"].items() if k not in meter.seconds})
    meter.peak_mb.update({k: v for k, v in rec["peak_mb"].items() if k not in meter.peak_mb})
    meter.worker_peak_mb.update({k: v for k, v in rec.get("worker_peak_mb", {}).items()
                                 if k not in meter.worker_peak_mb})


class RunWarning(UserWarning):
    """A warning raised during a run, passed on once the run is complete."""


def _warning_lines(caught: list, earlier: list[str] = ()) -> list[str]:
    """Each distinct warning once, as ``Category: message`` (the manifest keeps them all),
    after ``earlier`` lines (those of the killed run this run resumed)."""
    seen: dict[str, None] = dict.fromkeys(earlier)
    for w in caught:
        if issubclass(w.category, RunWarning):
            continue
        seen.setdefault(f"{w.category.__name__}: {str(w.message).strip()}", None)
    return list(seen)


def _emit(log: Callable[[dict[str, Any]], None] | None, record: dict[str, Any]) -> None:
    if log is not None:
        log(record)


def _check_writable(*folders: Path) -> None:
    """Fail before any work when an output or model folder cannot be written."""
    for folder in folders:
        probe = folder
        while not probe.exists():
            probe = probe.parent
        if not os.access(probe, os.W_OK | os.X_OK):
            raise PermissionError(f"The folder {folder} cannot be written (checked before "
                                  "the run started); fix its permissions or change "
                                  "[run] output_dir / model_dir.")


def _drift(cfg: Any, run_dir: Path, manifest: dict[str, Any], previous: Path | None):
    """The drift checks against the previous run (key feature columns only are read)."""
    from crmkit.pipeline._drift import check_drift

    if not cfg.drift.enabled:
        return None

    def features_of(folder: Path) -> pl.DataFrame | None:
        return read_features(folder, ["customer_id", *cfg.drift.features])

    prev_manifest = None
    if previous is not None and (previous / "manifest.json").exists():
        prev_manifest = json.loads((previous / "manifest.json").read_text(encoding="utf-8"))
    return check_drift(features_of(run_dir), RunTables.from_manifest(run_dir, manifest, scan=True),
                       previous_features=features_of(previous) if previous else None,
                       previous_outputs=RunTables.from_manifest(previous, prev_manifest, scan=True)
                       if prev_manifest else None,
                       step_facts=manifest.get("steps"),
                       previous_step_facts=(prev_manifest or {}).get("steps"), config=cfg.drift)


WRITE_BACK = ("value.value_tiers", "clv.clv", "churn.churn_scores", "lifecycle.stages",
              "lifecycle.actions", "propensity.offers", "segments.membership",
              "calls.call_list")
"""The run tables written back to the database (as ``<step>_<table>``), when they exist."""


def _write_back(dest: str, base: Path, run_dir: Path, manifest: dict[str, Any],
                day: dt.date) -> dict[str, Any]:
    """Replace the run date's rows in the database, in one transaction, before the run
    folder is published: a failed write-back fails the run, and its rerun writes again."""
    from crmkit.io import write_back

    if "://" not in dest and not Path(dest).is_absolute():
        dest = str(base / dest)
    tables = {}
    for name in WRITE_BACK:
        step, table = name.split(".")
        rel = manifest["steps"].get(step, {}).get("outputs", {}).get(table)
        if rel is not None:
            tables[f"{step}_{table}"] = pl.read_parquet(run_dir / rel)
    written = write_back(tables, dest, run_date=day)
    return {"tables": written, "destination": dest.split("@")[-1]}


def _report_features(run_dir: Path) -> pl.DataFrame | None:
    """The feature columns the report reads (not the whole table: 57 columns of 10M
    customers are 4.5 GB)."""
    from crmkit.report import REPORT_FEATURES

    return read_features(run_dir, list(REPORT_FEATURES))


