"""Database.read(): a reader on SQLite neither waits for a writer nor may write."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from stackcore.db import api, models


def test_reader_does_not_wait_for_a_writer_and_sees_the_last_commit(tmp_path: Path) -> None:
    db = api.Database(f"sqlite:///{tmp_path}/r.sqlite")
    db.upgrade()
    try:
        with db.transaction() as session:
            session.add(models.Service(host="h1", binary="b", topic="t"))
        holding, release = threading.Event(), threading.Event()

        def writer() -> None:
            with db.transaction() as session:  # BEGIN IMMEDIATE: holds the write lock
                session.add(models.Service(host="h2", binary="b", topic="t"))
                session.flush()
                holding.set()
                release.wait(30)

        thread = threading.Thread(target=writer)
        thread.start()
        assert holding.wait(30), "the writer never started"
        try:
            done = threading.Event()
            hosts: list[str] = []

            def reader() -> None:
                with db.read() as session:
                    hosts.extend(session.execute(sa.select(models.Service.host)).scalars())
                done.set()

            threading.Thread(target=reader).start()
            # the writer still holds the lock: a reader that queued behind it would time out
            assert done.wait(10), "the reader waited for the writer's lock"
            assert hosts == ["h1"], f"the reader saw {hosts}, not the last commit only"
        finally:
            release.set()
            thread.join(30)
    finally:
        db.dispose()


def test_a_write_inside_read_is_refused(tmp_path: Path) -> None:
    db = api.Database(f"sqlite:///{tmp_path}/r.sqlite")
    db.upgrade()
    try:
        with pytest.raises(RuntimeError, match="Database.read"), db.read() as session:
            session.add(models.Service(host="h1", binary="b", topic="t"))
        with pytest.raises(RuntimeError, match="Database.read"), db.read() as session:
            session.execute(sa.insert(models.Service).values(host="h1", binary="b", topic="t"))
        with db.read() as session:
            assert session.execute(sa.select(sa.func.count()).select_from(models.Service)
                                   ).scalar_one() == 0
    finally:
        db.dispose()
