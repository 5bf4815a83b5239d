"""The SQL backend against a real PostgreSQL server.

The server is a throw-away cluster that the fixture creates with the Debian
``postgresql`` package's binaries and starts on 127.0.0.1 (a free port, fsync off),
or the database named by ``CRMKIT_TEST_POSTGRES_URI``. Without server binaries or
the ``psycopg`` driver the tests skip and say which is missing; SQLite through the
same SQLAlchemy code path is tested in ``test_io.py`` in every case.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from crmkit.io import read_tables, write_tables
from crmkit.schema import validate
from tests.io.test_io import bank_tables


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_uri():
    given = os.environ.get("CRMKIT_TEST_POSTGRES_URI")
    if given:
        yield given
        return
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("PostgreSQL tests need the psycopg driver: pip install 'psycopg[binary]' "
                    "(or set CRMKIT_TEST_POSTGRES_URI)")
    initdb = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb")) or [shutil.which("initdb")]
    if not initdb[-1]:
        pytest.skip("PostgreSQL tests need a server: apt-get install postgresql "
                    "(or set CRMKIT_TEST_POSTGRES_URI)")
    bindir = os.path.dirname(initdb[-1])
    as_user: list[str] = []
    base = tempfile.mkdtemp(prefix="crmkit-pg-", dir="/tmp")
    if os.geteuid() == 0:  # the server refuses to run as root
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(base)
            pytest.skip("running as root and there is no 'postgres' user to run the server")
        os.chown(base, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = os.path.join(base, "data"), _free_port()
    run = dict(check=True, capture_output=True, timeout=120)
    try:
        subprocess.run(as_user + [f"{bindir}/initdb", "-D", data, "-A", "trust", "-U", "crmkit",
                                  "--no-sync"], **run)
        subprocess.run(as_user + [f"{bindir}/pg_ctl", "-D", data, "-w", "-t", "60", "-l",
                                  os.path.join(base, "log"), "-o",
                                  f"-c listen_addresses=127.0.0.1 -p {port} -k {base} "
                                  "-c fsync=off", "start"], **run)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as err:
        shutil.rmtree(base, ignore_errors=True)
        pytest.skip(f"could not start a local PostgreSQL server: {err}")
    try:
        yield f"postgresql+psycopg://crmkit@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(as_user + [f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


def test_round_trip_every_canonical_table(postgres_uri):
    tables = bank_tables()
    write_tables(tables, postgres_uri)
    back = read_tables(postgres_uri)
    assert set(tables) <= set(back)
    for name, frame in tables.items():
        assert_frame_equal(back[name], frame, check_exact=True)
    assert validate({k: back[k] for k in tables}).ok


def test_failed_write_rolls_back(postgres_uri, monkeypatch):
    tables = bank_tables()
    write_tables(tables, postgres_uri)
    calls = {"n": 0}
    real = pl.DataFrame.to_dicts

    def fail_second(self):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("connection lost")
        return real(self)

    monkeypatch.setattr(pl.DataFrame, "to_dicts", fail_second)
    with pytest.raises(RuntimeError):
        write_tables({"products": tables["products"].head(1), "extra": tables["managers"]},
                     postgres_uri)
    monkeypatch.undo()
    back = read_tables(postgres_uri, tables=["products"])
    assert_frame_equal(back["products"], tables["products"])
    with pytest.raises(FileNotFoundError, match="no table 'extra'"):
        read_tables(postgres_uri, tables=["extra"])
