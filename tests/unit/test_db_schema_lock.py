"""The schema lock of :meth:`stackcore.db.api.Database.upgrade`: held by another process, it
holds back an upgrade before anything is created, and the upgrade completes once it is
released; a database at the heads upgrades without looking at the lock; the lock is never left
held. (Processes racing for real: tests/functional/test_schema_race.py.)"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from stackcore.db import api as db_api
from stackcore.db import heads
from stackcore.db.schema import current_heads
from tests.conftest import ALL_DATABASES, SERVER_DATABASES, wait_until

WAITING = "another process is migrating the schema of"


@contextlib.contextmanager
def _pg_lock_held(url: str) -> Iterator[Callable[[], None]]:
    """The schema lock held by another session until the yielded function is called."""
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    conn = engine.connect()
    conn.scalar(sa.select(sa.func.pg_advisory_lock(db_api.SCHEMA_LOCK_KEY)))
    try:
        yield lambda: conn.scalar(sa.select(sa.func.pg_advisory_unlock(db_api.SCHEMA_LOCK_KEY)))
    finally:
        conn.close()
        engine.dispose()


@contextlib.contextmanager
def _mysql_lock_held(url: str) -> Iterator[Callable[[], None]]:
    """The schema lock held by another session until the yielded function is called."""
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    name = db_api._mysql_lock_name(engine.url.database, "schema", "")
    conn = engine.connect()
    assert conn.scalar(sa.select(sa.func.get_lock(name, 0))) == 1
    try:
        yield lambda: conn.scalar(sa.select(sa.func.release_lock(name)))
    finally:
        conn.close()
        engine.dispose()


@contextlib.contextmanager
def _sqlite_lock_held(url: str) -> Iterator[Callable[[], None]]:
    fd = os.open(f"{sa.make_url(url).database}.schema-lock", os.O_RDONLY | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)  # an open file description of its own: as another process
    try:
        yield lambda: fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@pytest.fixture(params=ALL_DATABASES)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/lock.sqlite"
    found: str = request.getfixturevalue(SERVER_DATABASES[request.param])
    return found


def _held(url: str) -> contextlib.AbstractContextManager[Callable[[], None]]:
    if url.startswith("postgresql"):
        return _pg_lock_held(url)
    if url.startswith("mysql"):
        return _mysql_lock_held(url)
    return _sqlite_lock_held(url)


def _tables(db: db_api.Database) -> list[str]:
    with db.engine.connect() as conn:
        return sorted(sa.inspect(conn).get_table_names())


def test_an_upgrade_waits_for_the_lock_before_touching_the_schema(
        url: str, caplog: pytest.LogCaptureFixture) -> None:
    db = db_api.Database(url)
    done = threading.Event()
    failures: list[BaseException] = []

    def upgrade() -> None:
        try:
            db.upgrade()
        except BaseException as err:  # reported by the test
            failures.append(err)
        finally:
            done.set()

    caplog.set_level(logging.INFO, logger="stackcore.db.api")
    try:
        with _held(url) as release:
            threading.Thread(target=upgrade, daemon=True).start()
            wait_until(lambda: any(WAITING in r.getMessage() for r in caplog.records), 30,
                       "the upgrade to wait for the lock")
            assert not done.is_set() and not failures, failures
            assert _tables(db) == [], "the upgrade changed the schema without the lock"
            release()
            assert done.wait(120), "the upgrade did not complete once the lock was released"
        assert not failures, failures
        assert current_heads(db) == set(heads.HEADS)
    finally:
        db.dispose()


def test_at_the_heads_an_upgrade_ignores_the_lock(url: str,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    db = db_api.Database(url)
    try:
        db.upgrade()
        caplog.set_level(logging.INFO, logger="stackcore.db.api")
        with _held(url):
            upgrade = threading.Thread(target=db.upgrade, daemon=True)
            upgrade.start()
            upgrade.join(30)  # the fast path: one query; were it to take the lock, it would wait
            assert not upgrade.is_alive(), "an upgrade at the heads waited for the schema lock"
        assert not [r.getMessage() for r in caplog.records if WAITING in r.getMessage()]
    finally:
        db.dispose()


@pytest.mark.postgres
def test_the_postgresql_lock_is_released_and_no_pooled_connection_keeps_it(pg_url: str) -> None:
    db = db_api.Database(pg_url)
    try:
        db.upgrade()
        key = db_api.SCHEMA_LOCK_KEY
        with db.engine.connect() as conn:
            held = conn.execute(sa.text(
                # advisory locks are per database: other tests' databases may hold theirs
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = :hi "
                "AND objid = :lo AND objsubid = 1 AND database = "
                "(SELECT oid FROM pg_database WHERE datname = current_database())"), {"hi": key >> 32, "lo": key & 0xFFFFFFFF}
            ).scalars().all()
        assert held == [], f"the schema lock is still held by backend(s) {held}"
        # and another session can take it at once
        with _pg_lock_held(pg_url) as release:
            release()
    finally:
        db.dispose()
