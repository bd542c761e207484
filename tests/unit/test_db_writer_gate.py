"""The SQLite writer gate: this process's writers take turns in order, heartbeats first."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from stackcore.db import api
from stackcore.db.writer_gate import WriterGate
from tests.conftest import wait_until


@pytest.fixture
def db(tmp_path: Path) -> Iterator[api.Database]:
    database = api.Database(f"sqlite:///{tmp_path}/gate.sqlite")
    with database.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE log (who TEXT)")
    yield database
    database.dispose()


def test_writers_get_their_turn_in_arrival_order_and_urgent_ones_go_first(
        db: api.Database) -> None:
    gate = db.writer_gate
    assert gate is not None, "a SQLite database has a writer gate"
    holding, release = threading.Event(), threading.Event()
    order: list[str] = []

    def holder() -> None:
        with db.engine.begin() as conn:  # BEGIN IMMEDIATE: holds the turn and the lock
            conn.exec_driver_sql("INSERT INTO log VALUES ('holder')")
            holding.set()
            release.wait(30)

    def writer(name: str, engine: sa.Engine | None) -> None:
        if engine is None:  # an agent's liveness report: an urgent ORM transaction
            with db.transaction(urgent=True) as session:
                order.append(name)
                session.execute(sa.text("INSERT INTO log VALUES (:n)"), {"n": name})
            return
        with engine.begin() as conn:
            order.append(name)  # inside the transaction: the order turns were given in
            conn.exec_driver_sql("INSERT INTO log VALUES (?)", (name,))

    threads = [threading.Thread(target=holder)]
    threads[0].start()
    assert holding.wait(30), "the first writer never began"
    queued: list[tuple[str, sa.Engine | None]] = [
        ("w1", db.engine), ("report", None), ("w2", db.engine), ("heartbeat", db.urgent_engine),
        ("w3", db.engine)]
    for n, (name, engine) in enumerate(queued, start=1):
        thread = threading.Thread(target=writer, args=(name, engine))
        thread.start()
        threads.append(thread)
        wait_until(lambda n=n: gate.waiting == n, 30, f"{n} writers queued (now {gate.waiting})",
                   interval=0.005)
    release.set()
    for thread in threads:
        thread.join(30)
    assert order == ["report", "heartbeat", "w1", "w2", "w3"], order
    with db.read() as session:
        written = session.execute(sa.text("SELECT who FROM log")).scalars().all()
    assert sorted(written) == ["heartbeat", "holder", "report", "w1", "w2", "w3"], written
    assert gate.waiting == 0


def test_readers_never_queue_behind_a_writer(db: api.Database) -> None:
    holding, release = threading.Event(), threading.Event()

    def holder() -> None:
        with db.transaction() as session:
            session.execute(sa.text("INSERT INTO log VALUES ('holder')"))
            holding.set()
            release.wait(30)

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert holding.wait(30)
        with db.read() as session:  # would hang here if readers took a turn
            rows = session.execute(sa.text("SELECT count(*) FROM log")).scalar_one()
        assert rows == 0, f"a reader saw {rows} uncommitted row(s)"
        assert db.writer_gate is not None and db.writer_gate.waiting == 0
    finally:
        release.set()
        thread.join(30)


def test_a_rolled_back_or_failed_transaction_gives_its_turn_back(db: api.Database) -> None:
    with pytest.raises(sa.exc.OperationalError):
        with db.engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO nowhere VALUES (1)")
    done = threading.Event()

    def writer() -> None:
        with db.engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO log VALUES ('after')")
        done.set()

    threading.Thread(target=writer).start()
    assert done.wait(30), "a writer after a failed transaction never got its turn"


def test_one_holder_at_a_time_and_its_own_nested_turns_go_through() -> None:
    gate = WriterGate()
    assert gate.enter() is True
    assert gate.enter() is True, "the holding thread's second turn must not wait for itself"
    got: list[bool] = []
    other = threading.Thread(target=lambda: got.append(gate.enter()))
    other.start()
    wait_until(lambda: gate.waiting == 1, 30, "the other thread queued", interval=0.005)
    gate.leave()
    other.join(0.2)  # the gate stays closed: one nested turn of the holder is still open
    assert other.is_alive() and got == [], f"the gate opened early: {got}"
    gate.leave()
    other.join(30)
    assert got == [True], got


def test_a_writer_that_waits_past_the_limit_goes_on_without_its_turn() -> None:
    gate = WriterGate(wait_limit=0.2)
    assert gate.enter()
    got: list[bool] = []
    started = time.monotonic()
    other = threading.Thread(target=lambda: got.append(gate.enter()))
    other.start()
    other.join(30)
    waited = time.monotonic() - started
    assert got == [False], got
    assert 0.2 <= waited < 30, f"waited {waited:.2f} s"
    assert gate.waiting == 0, "the writer that gave up is still queued"
    gate.leave()
    assert gate.enter() is True, "the gate stayed closed after its holder left"
