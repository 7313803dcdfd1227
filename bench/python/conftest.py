"""Fixtures of the Python side of the fixture benchmark: pytest-postgresql and pytest-redis,
configured the way their users configure them (see test_suite.py for the tests).

- ``postgresql_proc``: one PostgreSQL 15 server for the session, started by the plugin through
  pg_ctl on a free port, its unix socket in a temporary directory of its own, with the same
  durability shortcuts as the Rust preset (fsync, synchronous_commit, full_page_writes off).
  schema.sql is loaded once into the template database.
- ``postgresql``: per test, a clean database created from that template, and a psycopg 3
  connection to it; the database is dropped after the test.
- ``redis_proc``: one redis-server for the session, on a free port, without persistence.
- ``redisdb``: per test, a redis-py client; the plugin runs FLUSHALL after the test.

PostgreSQL refuses to run as root (initdb and pg_ctl exit at once) and the plugin has no option
to start it as another OS user: run the suite as an unprivileged user (run_suite.sh does it).
"""

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from pytest_postgresql import factories as pg_factories
from pytest_redis import factories as redis_factories

HERE = Path(__file__).resolve().parent
PG_CTL = "/usr/lib/postgresql/15/bin/pg_ctl"

# The server's unix socket goes to a directory of this run (clients connect by TCP on
# 127.0.0.1; the plugin's default would be the shared temporary directory itself).
PG_SOCKET_DIR = tempfile.mkdtemp(prefix="pytest-pg-sock-")

postgresql_proc = pg_factories.postgresql_proc(
    executable=PG_CTL,
    port=None,  # any free port
    unixsocketdir=PG_SOCKET_DIR,
    postgres_options="-c fsync=off -c synchronous_commit=off -c full_page_writes=off",
    load=[HERE / "schema.sql"],
)
postgresql = pg_factories.postgresql("postgresql_proc")

# save: with no --save argument at all, Redis 7 keeps its built-in snapshot schedule
# (3600 1 300 100 60 10000), and the plugin passes none for an empty value. '""' becomes the
# single argument `--save ""`, which Redis reads as "no snapshots". AOF is off by default.
redis_proc = redis_factories.redis_proc(port=None, save='""')
redisdb = redis_factories.redisdb("redis_proc")


def pytest_unconfigure(config):
    # The server removed its socket and lock file when it stopped; remove the directory.
    shutil.rmtree(PG_SOCKET_DIR, ignore_errors=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(fixturedef, request):
    """With BENCH_DB_TIMES set, appends each clean database's setup time (the `postgresql`
    fixture: the database made from the template and a connection to it), in microseconds:
    what `mirakuru-bench services` compares with the Rust side's."""
    began = time.perf_counter()
    yield
    path = os.environ.get("BENCH_DB_TIMES")
    if path and fixturedef.argname == "postgresql":
        with open(path, "a", encoding="ascii") as times:
            times.write(f"{int((time.perf_counter() - began) * 1e6)}\n")
