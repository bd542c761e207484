"""Database conflicts retried in one place (``db.api.retry_on_conflict``, oslo.db's
``wrap_db_retry``): a real PostgreSQL or MariaDB deadlock is run again and counted; other
errors are not retried."""

from __future__ import annotations

import collections
import threading
import time

import pytest
import sqlalchemy as sa

from stackcore import exception
from stackcore.db import api as db_api
from tests.conftest import SERVER_DATABASES

SERVERS = [pytest.param("postgresql", marks=pytest.mark.postgres),
           pytest.param("mariadb", marks=pytest.mark.mysql)]


@pytest.fixture(params=SERVERS)
def server_url(request: pytest.FixtureRequest) -> str:
    url: str = request.getfixturevalue(SERVER_DATABASES[request.param])
    return url


@pytest.fixture
def db(server_url: str):
    database = db_api.Database(server_url)
    with database.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE counters (id int PRIMARY KEY, value int NOT NULL)")
        conn.exec_driver_sql("INSERT INTO counters VALUES (1, 0), (2, 0)")
    yield database
    database.dispose()


def test_deadlock_is_run_again_until_both_transactions_commit(db) -> None:
    """Two transactions take two rows in opposite orders, each waiting for the other's first
    row: the database aborts one (PostgreSQL: deadlock_detected, MariaDB: ER_LOCK_DEADLOCK);
    it runs again and both commit."""
    both_hold_their_first_row = threading.Barrier(2)
    attempts: collections.Counter[int] = collections.Counter()
    errors: list[BaseException] = []

    @db_api.retry_on_conflict
    def bump(first: int, second: int) -> None:
        attempts[first] += 1
        with db.transaction() as session:
            session.execute(sa.text("UPDATE counters SET value = value + 1 WHERE id = :i"),
                            {"i": first})
            if attempts[first] == 1:
                both_hold_their_first_row.wait(30)
            session.execute(sa.text("UPDATE counters SET value = value + 1 WHERE id = :i"),
                            {"i": second})

    def run(first: int, second: int) -> None:
        try:
            bump(first, second)
        except BaseException as err:
            errors.append(err)

    before = db_api.retry_counts().get(bump.__qualname__, 0)
    threads = [threading.Thread(target=run, args=pair) for pair in ((1, 2), (2, 1))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == [], errors
    assert sum(attempts.values()) == 3, f"one of the two should have run twice: {attempts}"
    assert db_api.retry_counts()[bump.__qualname__] - before == 1
    with db.engine.connect() as conn:
        values = dict(conn.exec_driver_sql("SELECT id, value FROM counters").all())
    assert values == {1: 2, 2: 2}, "each transaction applied exactly once in the end"


def test_other_errors_are_not_retried(db) -> None:
    calls = []

    @db_api.retry_on_conflict
    def duplicate() -> None:
        calls.append(1)
        with db.transaction() as session:
            session.execute(sa.text("INSERT INTO counters VALUES (1, 0)"))

    with pytest.raises(sa.exc.IntegrityError):
        duplicate()
    assert calls == [1]


@pytest.mark.parametrize("wrong", ["database", "password"])
def test_a_wrong_url_is_not_waited_out(server_url: str, wrong: str) -> None:
    """A database that does not exist or a refused password is not an outage: the first
    transaction fails at once (not after the outage wait) naming the database, password
    hidden."""
    url = sa.make_url(server_url)
    url = url.set(database=url.database + "_missing") if wrong == "database" \
        else url.set(password="not-the-password")
    database = db_api.Database(url.render_as_string(hide_password=False))
    started = time.monotonic()
    with pytest.raises(exception.BackendUnavailable) as caught:
        with database.transaction() as session:
            session.execute(sa.text("SELECT 1"))
    took = time.monotonic() - started
    message = str(caught.value)
    assert "refuses the connection" in message and "not-the-password" not in message, message
    assert took < db_api.RECONNECT_WAIT / 2, f"waited {took:.1f} s for a wrong URL"
