"""The ``crmkit`` command: a thin layer over library functions.

Heavy imports happen inside the commands so that ``crmkit --help`` starts fast.
Errors print one line (``crmkit: error: ...``); ``--verbose`` shows the traceback.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
import traceback
import warnings

import click

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_QUALITY_GATE, EXIT_LOCKED = 0, 1, 2, 3, 4
"""Exit codes a scheduler can act on: ok, failed (retry may help), bad config or input
(fix the data or the config), a quality gate breached, another run holds the date."""

DEMO_CONFIG = """\
# Written by `crmkit demo`: the nightly pipeline over the sample bank in ./data.
[run]
name = "demo"
output_dir = "runs"
# propensity (cross-sell), assign (RM books) and calls (call lists) are opted into
steps = ["value", "clv", "churn", "lifecycle", "propensity", "assign", "calls", "segments"]

[inputs]
source = "data"

[validation]
mode = "quarantine"
# the demo replays history: each run sees the tables as they stood on its date
future_rows = "cut"

# Segments marketing exports each night (docs/segments.md); opted-out customers of
# the channel are left out and counted.
[segments.gold_at_risk]
where = 'tier in ["Gold", "Platinum"] and churn_prob_365d > 0.02 and not holds("fund")'
columns = ["tier", "financial_assets", "churn_prob_365d", "branch_id"]
channel = "phone"
formats = ["csv", "xlsx"]
description = "VIPs drifting away who hold no fund"

[segments.win_back_email]
where = 'stage in ["dormant", "churned"] and financial_assets > 1000'
columns = ["stage", "financial_assets"]
channel = "email"
"""


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Show the full traceback on errors.")
@click.version_option(package_name="crmkit")
def cli(verbose: bool) -> None:
    """crmkit: customer segmentation and relationship-management analytics."""


def _parse_day(value: str) -> dt.date:
    """Exactly YYYY-MM-DD, and a day that exists."""
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value or ""):
        raise click.BadParameter(f"{value!r} is not a date written YYYY-MM-DD.",
                                 param_hint="--as-of")
    try:
        return dt.date.fromisoformat(value)
    except ValueError as err:
        raise click.BadParameter(f"{value} is not a day of the calendar ({err}).",
                                 param_hint="--as-of") from None


@cli.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--as-of", "as_of", required=True, help="Run date, YYYY-MM-DD.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a terminal).")
@click.option("--force", is_flag=True, help="Recompute a run that is already complete.")
@click.option("--resume/--no-resume", default=True, show_default=True,
              help="Resume a killed run of the date after its last complete step.")
@click.option("--wait", default=0.0, show_default=True, type=float,
              help="Seconds to wait for another run of the same date before exit code 4.")
@click.option("--dry-run", is_flag=True,
              help="Check the config, the inputs and the folders; compute nothing.")
@click.option("--log-json", "log_json", type=click.Path(dir_okay=False), default=None,
              help="Append one JSON line per phase to this file ('-' for stderr).")
def run(config: str, as_of: str, progress: bool | None, force: bool, resume: bool,
        wait: float, dry_run: bool, log_json: str | None) -> None:
    """Run the pipeline described by the TOML file CONFIG as of a date.

    Exit codes: 0 ok, 1 failed, 2 bad config or input, 3 quality gate breached,
    4 another run holds the date.
    """
    from crmkit.pipeline import preflight

    day = _parse_day(as_of)
    if dry_run:
        for line in preflight(config, as_of=day):
            click.echo(line)
        return
    log = _json_logger(log_json) if log_json else None
    _run_and_print(config, day, progress=progress, force=force, wait=wait, log=log,
                   resume=resume)


def _run_and_print(config, day, **kw) -> None:
    from crmkit.pipeline import run_pipeline

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run_pipeline(config, as_of=day, **kw)
    # every warning is in the manifest in full; here one line each
    for w in caught:
        first = (str(w.message).strip().splitlines() or [""])[0]
        click.echo(f"crmkit: warning: {first}", err=True)
    _print_run(result)


def _json_logger(target: str):
    def log(record: dict) -> None:
        line = json.dumps({"ts": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                           **record}, sort_keys=True, default=str)
        if target == "-":
            click.echo(line, err=True)
        else:
            with open(target, "a", encoding="utf-8") as fh:
                fh.write(line + "\n")
    return log


@cli.command()
@click.option("--out", "out", required=True, type=click.Path(file_okay=False),
              help="Folder for the sample data, the config and the runs.")
@click.option("--customers", default=5000, show_default=True, help="Sample bank size.")
@click.option("--seed", default=0, show_default=True)
@click.option("--as-of", "as_of", default="2025-12-31", show_default=True,
              help="Last day of the sample data and date of the last run.")
@click.option("--progress/--no-progress", default=None)
def demo(out: str, customers: int, seed: int, as_of: str, progress: bool | None) -> None:
    """Generate the sample bank into OUT/data and run the nightly pipeline on it,
    for the previous month end and for AS_OF (so movement and transitions show)."""
    import datetime as dt
    from pathlib import Path

    from crmkit._params import check_date
    from crmkit.datasets import make_bank
    from crmkit.io import atomic_write, write_tables

    end = check_date(as_of, "as_of", "crmkit demo")
    root = Path(out)
    click.echo(f"Generating a sample bank of {customers:,} customers (seed {seed}) ...")
    write_tables(make_bank(customers, seed=seed, as_of=end), root / "data")
    config = root / "nightly.toml"
    with atomic_write(config) as tmp:
        tmp.write_text(DEMO_CONFIG)
    previous = end.replace(day=1) - dt.timedelta(days=1)
    for day in (previous, end):
        _run_and_print(config, day, progress=progress)
    click.echo(f"Config: {config}; open {root / 'runs' / end.isoformat() / 'report.html'}")


@cli.command()
@click.argument("segment")
@click.option("--config", "config", required=True, type=click.Path(dir_okay=False),
              help="The pipeline TOML that defines [segments.SEGMENT].")
@click.option("--run", "run_date", required=True, help="The run date, YYYY-MM-DD.")
@click.option("--format", "fmt", type=click.Choice(["csv", "xlsx", "parquet"]), default="csv",
              show_default=True)
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Folder for the export (default: <run folder>/exports).")
@click.option("--channel", type=click.Choice(["email", "sms", "phone"]), default=None,
              help="Suppress the opt-outs of this channel (default: the segment's).")
@click.option("--pseudonymise/--no-pseudonymise", default=None,
              help="Keyed-hash ids (key from CRMKIT_PSEUDONYM_KEY).")
def export(segment: str, config: str, run_date: str, fmt: str, out: str | None,
           channel: str | None, pseudonymise: bool | None) -> None:
    """Export the customers of SEGMENT from a finished run."""
    from crmkit.segments import export_command

    res = export_command(segment, run=_parse_day(run_date), config=config, format=fmt, out=out,
                         channel=channel, pseudonymise=pseudonymise)
    click.echo(f"{segment}: {res.rows:,} row(s) -> {res.path}")


@cli.command("check-config")
@click.argument("config", type=click.Path(dir_okay=False))
def check_config(config: str) -> None:
    """Validate a pipeline config file and print it with every default filled in."""
    import json

    from crmkit.pipeline import load_pipeline_config, load_steps

    cfg, _ = load_pipeline_config(config, load_steps())
    click.echo(json.dumps(cfg.model_dump(mode="json"), indent=2, sort_keys=True))


def _print_run(result) -> None:
    man = result.manifest
    n_bad = sum(t["rejected"] for t in man["inputs"]["tables"].values())
    secs = sum(man["timings_seconds"].values())
    customers = man["outputs"]["features/features.parquet"]["rows"]
    click.echo(f"run {man['run']['as_of']}: {customers:,} customers, "
               f"{len(man['validation']['problems'])} problem(s), {n_bad:,} row(s) quarantined, "
               f"{secs:.1f}s -> {result.run_dir}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``crmkit`` script; returns the exit code."""
    args = sys.argv[1:] if argv is None else list(argv)
    verbose = "-v" in args or "--verbose" in args
    try:
        cli.main(args=args, prog_name="crmkit", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("crmkit: aborted", err=True)
        return 130
    except click.UsageError as err:
        err.show()
        return EXIT_BAD_INPUT
    except click.ClickException as err:
        err.show()
        return err.exit_code
    except Exception as err:  # noqa: BLE001 - the CLI's one-line error contract
        if verbose:
            traceback.print_exc()
        else:
            lines = str(err).strip().splitlines() or [type(err).__name__]
            click.echo(f"crmkit: error: {lines[0]}", err=True)
            for line in lines[1:]:
                click.echo(f"  {line}", err=True)
            click.echo("  (run with --verbose for the traceback)", err=True)
        return exit_code(err)
    return EXIT_OK


def exit_code(err: BaseException) -> int:
    """The exit code of an error (see ``EXIT_*``).

    Examples
    --------
    >>> from crmkit.exceptions import ConfigError
    >>> exit_code(ConfigError("bad")), exit_code(RuntimeError("disk on fire"))
    (2, 1)
    """
    from crmkit.exceptions import ConfigError, RunLockedError, SchemaError

    if isinstance(err, RunLockedError):
        return EXIT_LOCKED
    if type(err).__name__ == "QualityGateError":
        return EXIT_QUALITY_GATE
    if isinstance(err, (ConfigError, SchemaError, FileNotFoundError, PermissionError)):
        return EXIT_BAD_INPUT
    return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
