"""Services started together on an empty database: each runs ``Database.upgrade()`` at the same
moment, and every one of them must start, leaving the schema at the heads once.

Separate processes (``spawn``: nothing shared but the database), released together by a
barrier right before ``upgrade()``. Without the schema lock of
:meth:`stackcore.db.api.Database.upgrade` they collide: on a new PostgreSQL database two create
the same table (a unique violation in PostgreSQL's catalog), every run; on a SQLite database
that wave 1 made, one re-labels the schema while another is migrating it (``Can't locate
revision``, or a table the other just made), about one run in two.

A new, empty SQLite file is not raced here: its tables are made by one ``BEGIN IMMEDIATE``
transaction that checks for them first, so that race was never lost even without the lock - a
test of it could not fail.
"""

from __future__ import annotations

import multiprocessing
import queue
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from stackcore.db import api as db_api
from stackcore.db import heads
from stackcore.db.schema import current_heads
from tests.conftest import SERVER_DATABASES

STARTERS = 4
#: Bound on the whole run (spawning and importing four interpreters on a busy 2-core machine,
#: then the migrations): reaching it means a starter hung, not that the machine is slow.
RUN_TIMEOUT = 180.0


def _start(url: str, barrier: Any, results: Any) -> None:
    """One starter: everything imported and connected first, so that the starters differ only
    by scheduling when the barrier lets them into ``upgrade()``."""
    import alembic.command  # noqa: F401 - the import would otherwise spread the starters out

    from stackcore import families

    families.all_families()
    db = db_api.Database(url)
    try:
        with db.engine.connect():
            pass
        barrier.wait(timeout=RUN_TIMEOUT)
        db.upgrade()
    except BaseException as err:  # reported to the test, which names it
        results.put(f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
    else:
        results.put("ok")
    finally:
        db.dispose()


def _start_together(url: str) -> list[str]:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(STARTERS)
    results = ctx.Queue()
    procs = [ctx.Process(target=_start, args=(url, barrier, results)) for _ in range(STARTERS)]
    for proc in procs:
        proc.start()
    outcomes = []
    try:
        for _ in procs:
            outcomes.append(results.get(timeout=RUN_TIMEOUT))
    except queue.Empty:
        pytest.fail(f"only {len(outcomes)} of {STARTERS} starters reported within "
                    f"{RUN_TIMEOUT:g} s: {outcomes}")
    finally:
        for proc in procs:
            proc.join(RUN_TIMEOUT)
            if proc.is_alive():
                proc.kill()
                proc.join()
    codes = [proc.exitcode for proc in procs]
    assert codes == [0] * STARTERS, f"starter exit codes {codes}, outcomes {outcomes}"
    return outcomes


CASES = [
    # the issue: services started together on a new database
    pytest.param(("postgresql", "empty"), marks=pytest.mark.postgres, id="postgresql-empty"),
    # MariaDB: its DDL is not transactional at all, so only the lock keeps starters apart
    pytest.param(("mariadb", "empty"), marks=pytest.mark.mysql, id="mariadb-empty"),
    # a database made by wave 1: Alembic runs in several transactions (complete wave 1,
    # re-label, upgrade), which starters without the lock interleave
    pytest.param(("sqlite", "wave1"), id="sqlite-wave1"),
]


@pytest.fixture(params=CASES)
def racing_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new SQLite file, PostgreSQL or MariaDB database: empty, or as wave 1 left it."""
    backend, start = request.param
    url: str = f"sqlite:///{tmp_path}/race.sqlite" if backend == "sqlite" else \
        request.getfixturevalue(SERVER_DATABASES[backend])
    if start == "wave1":
        from alembic import command

        wave1 = db_api.Database(url)
        command.upgrade(wave1.alembic_config(legacy=True), "heads")
        wave1.dispose()
    return url


def test_starters_racing_on_one_database_all_start_at_the_heads(racing_url: str) -> None:
    outcomes = _start_together(racing_url)
    assert outcomes == ["ok"] * STARTERS, f"starters' outcomes: {outcomes}"

    db = db_api.Database(racing_url)
    try:
        with db.engine.connect() as conn:
            rows = list(conn.execute(sa.text("SELECT version_num FROM alembic_version"))
                        .scalars())
            tables = set(sa.inspect(conn).get_table_names())
        assert sorted(rows) == sorted(heads.HEADS), \
            f"alembic_version rows {sorted(rows)}, heads {sorted(heads.HEADS)}"
        # every family's tables are there
        expected = {"services", "instances", "volumes", "networks", "images", "quota_limits"}
        assert expected <= tables, f"missing tables {sorted(expected - tables)} in {sorted(tables)}"
        db.upgrade()  # at the heads: the lock-free fast path, nothing to do
        assert current_heads(db) == set(heads.HEADS)
    finally:
        db.dispose()
