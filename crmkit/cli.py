"""The ``crmkit`` command: a thin layer over library functions.

Heavy imports happen inside the commands so that ``crmkit --help`` starts fast.
Errors print one line (``crmkit: error: ...``); ``--verbose`` shows the traceback.
"""

from __future__ import annotations

import sys
import traceback

import click

DEMO_CONFIG = """\
# Written by `crmkit demo`: the nightly pipeline over the sample bank in ./data.
[run]
name = "demo"
output_dir = "runs"

[inputs]
source = "data"

[validation]
mode = "quarantine"
# the demo replays history: each run sees the tables as they stood on its date
future_rows = "cut"
"""


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Show the full traceback on errors.")
@click.version_option(package_name="crmkit")
def cli(verbose: bool) -> None:
    """crmkit: customer segmentation and relationship-management analytics."""


@cli.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--as-of", "as_of", required=True, help="Run date, YYYY-MM-DD.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a terminal).")
def run(config: str, as_of: str, progress: bool | None) -> None:
    """Run the pipeline described by the TOML file CONFIG as of a date."""
    from crmkit.pipeline import run_pipeline

    result = run_pipeline(config, as_of=as_of, progress=progress)
    _print_run(result)


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
    from crmkit.pipeline import run_pipeline

    end = check_date(as_of, "as_of", "crmkit demo")
    root = Path(out)
    click.echo(f"Generating a sample bank of {customers:,} customers (seed {seed}) ...")
    write_tables(make_bank(customers, seed=seed, as_of=end), root / "data")
    config = root / "nightly.toml"
    with atomic_write(config) as tmp:
        tmp.write_text(DEMO_CONFIG)
    previous = end.replace(day=1) - dt.timedelta(days=1)
    for day in (previous, end):
        _print_run(run_pipeline(config, as_of=day, progress=progress))
    click.echo(f"Config: {config}; open {root / 'runs' / end.isoformat() / 'report.html'}")


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
    click.echo(f"run {man['run']['as_of']}: {result.features.height:,} customers, "
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
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
