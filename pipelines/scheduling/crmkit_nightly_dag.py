"""Airflow DAG: the crmkit nightly run, acting on its exit codes, then segment exports.

Exit codes of ``crmkit run``: 0 ok, 1 failed, 2 bad config or input, 3 quality gate
breached, 4 locked (another run of the date is going). 1 and 4 are retried by
Airflow (``retries``); 2 and 3 fail the task at once without retry
(``AirflowFailException``), because a person must look at the input or the drift.
Exports run only after a good run. Copy this file into the DAGs folder and set the
``crmkit_home`` Airflow Variable (the checkout holding ``.venv/``).
"""

from __future__ import annotations

import datetime as dt
import subprocess

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_QUALITY_GATE, EXIT_LOCKED = 0, 1, 2, 3, 4
SEGMENTS = ["gold_at_risk"]  # the [segments.<name>] to export after each good run


def outcome(code: int) -> str:
    """What a task does with an exit code: "ok", "retry" or "fail" (no retry).

    >>> [outcome(c) for c in (0, 1, 2, 3, 4, 9)]
    ['ok', 'retry', 'fail', 'fail', 'retry', 'fail']
    """
    if code == EXIT_OK:
        return "ok"
    if code in (EXIT_FAILED, EXIT_LOCKED):
        return "retry"
    return "fail"


def run_crmkit(args: list[str], home: str) -> None:
    """Run a crmkit command and turn its exit code into an Airflow outcome."""
    from airflow.exceptions import AirflowException, AirflowFailException

    proc = subprocess.run([f"{home}/.venv/bin/crmkit", *args], cwd=home, capture_output=True,
                          text=True)
    print(proc.stdout)
    print(proc.stderr)
    what = outcome(proc.returncode)
    if what == "ok":
        return
    message = {
        EXIT_FAILED: "the run failed",
        EXIT_BAD_INPUT: "bad config or input: fix it, then clear the task",
        EXIT_QUALITY_GATE: "quality gate breached: see the run report's drift section",
        EXIT_LOCKED: "another run of this date holds the lock",
    }.get(proc.returncode, f"unexpected exit code {proc.returncode}")
    if what == "retry":
        raise AirflowException(f"crmkit {' '.join(args)}: {message}")
    raise AirflowFailException(f"crmkit {' '.join(args)}: {message}")


try:  # the DAG itself needs Airflow; outcome() above is usable (and tested) without it
    from airflow import DAG
    from airflow.models import Variable
    from airflow.operators.python import PythonOperator
except ImportError:  # pragma: no cover - imported outside Airflow
    DAG = None

if DAG is not None:  # pragma: no cover - runs inside Airflow
    with DAG(
        dag_id="crmkit_nightly",
        schedule="30 2 * * *",
        start_date=dt.datetime(2025, 1, 1),
        catchup=False,
        max_active_runs=1,
        default_args={"retries": 3, "retry_delay": dt.timedelta(minutes=15)},
        tags=["crmkit"],
    ) as dag:
        nightly = PythonOperator(
            task_id="nightly_run",
            python_callable=lambda ds, **_: run_crmkit(
                ["run", "pipelines/nightly.toml", "--as-of", ds, "--no-progress"],
                Variable.get("crmkit_home")),
            execution_timeout=dt.timedelta(hours=4),
        )
        for name in SEGMENTS:
            export = PythonOperator(
                task_id=f"export_{name}",
                python_callable=lambda ds, _name=name, **_: run_crmkit(
                    ["export", _name, "--run", ds, "--format", "csv"],
                    Variable.get("crmkit_home")),
            )
            nightly >> export
