"""``db.api.named_lock`` on the server databases: a second transaction taking the same name
waits until the first ends, another name does not wait, and the lock never outlives its
transaction (on MariaDB, ``GET_LOCK()`` is released when the connection goes back to the pool,
also after a rollback)."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from stackcore.db import api as db_api
from tests.conftest import SERVER_DATABASES, wait_until


@pytest.fixture(params=[pytest.param("postgresql", marks=pytest.mark.postgres),
                        pytest.param("mariadb", marks=pytest.mark.mysql)])
def db(request: pytest.FixtureRequest):
    database = db_api.Database(request.getfixturevalue(SERVER_DATABASES[request.param]))
    yield database
    database.dispose()


def _take_in_thread(db: db_api.Database, name: str) -> tuple[threading.Thread, threading.Event]:
    got = threading.Event()

    def take() -> None:
        with db.transaction() as session:
            db_api.named_lock(session, name)
            got.set()

    thread = threading.Thread(target=take, daemon=True)
    thread.start()
    return thread, got


def _lock_waiters(db: db_api.Database) -> int:
    """Sessions of this database the server shows waiting for a named lock."""
    if db.dialect == "postgresql":
        query = ("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                 "AND database = (SELECT oid FROM pg_database "
                 "WHERE datname = current_database())")
    else:
        query = ("SELECT count(*) FROM information_schema.processlist "
                 "WHERE state = 'User lock' AND db = DATABASE()")
    with db.engine.connect() as conn:
        return int(conn.exec_driver_sql(query).scalar_one())


def test_a_second_taker_waits_for_the_first_transaction_to_end(db) -> None:
    with db.transaction() as session:
        db_api.named_lock(session, "test.a")
        waiting, got_a = _take_in_thread(db, "test.a")
        other, got_b = _take_in_thread(db, "test.b")
        assert got_b.wait(30), "a lock of another name waited"
        # the second taker of test.a is seen waiting by the server, and does not hold it
        wait_until(lambda: _lock_waiters(db), 30, "the second taker to wait for the lock")
        assert not got_a.is_set(), "two transactions held the named lock test.a at once"
    assert got_a.wait(30), "the named lock was not released when its transaction committed"
    waiting.join(30)
    other.join(30)


def test_the_lock_is_released_by_a_rollback_and_no_pooled_connection_keeps_it(db) -> None:
    with pytest.raises(RuntimeError):
        with db.transaction() as session:
            db_api.named_lock(session, "test.c")
            raise RuntimeError("rolled back")
    # every pooled connection: none still holds it
    for _ in range(3):
        thread, got = _take_in_thread(db, "test.c")
        assert got.wait(10), "the named lock was kept after a rollback"
        thread.join(10)
    if db.dialect != "postgresql":
        with db.engine.connect() as conn:
            name = db_api._mysql_lock_name(db.engine.url.database, "named", "test.c")
            holder = conn.scalar(sa.select(sa.func.is_used_lock(name)))
        assert holder is None, f"connection {holder} still holds the named lock"
