"""The database handle: engine, transactions, migrations.

Managers own every state transition, each in one short transaction from
:meth:`Database.transaction`. SQLite (the embedded default) runs in WAL mode with
``BEGIN IMMEDIATE`` so concurrent threads queue on the write lock instead of failing with
"database is locked" when a read transaction tries to upgrade. PostgreSQL is used as is.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from stackcore import exception

MIGRATIONS = os.path.join(os.path.dirname(__file__), "migrations")


def redact(url: str) -> str:
    """The URL with its password hidden, for messages and logs."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is shown by scheme only
        return url.split(":", 1)[0] + "://****"


class Database:
    """One engine and its session factory."""

    def __init__(self, url: str) -> None:
        try:
            parsed = sa.make_url(url)
        except sa.exc.ArgumentError as err:
            raise exception.ConfigError(
                f"[database] connection is not a valid SQLAlchemy URL ({redact(url)})"
            ) from err
        self.url = url
        self.dialect = parsed.get_backend_name()
        kwargs: dict[str, Any] = {"future": True}
        if self.dialect == "sqlite":
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 60}
        else:
            kwargs.update(pool_pre_ping=True, pool_size=10, max_overflow=20)
        try:
            self.engine = sa.create_engine(url, **kwargs)
        except Exception as err:
            raise exception.ConfigError(
                f"[database] connection {redact(url)} cannot be used: {type(err).__name__}"
            ) from err
        if self.dialect == "sqlite":
            _make_sqlite_transactional(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on any error."""
        with self._sessions() as session, session.begin():
            yield session

    def upgrade(self) -> None:
        """Migrate the schema to the newest revision of every branch."""
        from alembic import command

        try:
            command.upgrade(self.alembic_config(), "heads")
        except sa.exc.OperationalError as err:
            raise exception.BackendUnavailable(
                f"database {redact(self.url)} is unreachable: {type(err.orig).__name__}"
            ) from None

    def alembic_config(self) -> Any:
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", MIGRATIONS)
        config.attributes["engine"] = self.engine
        return config

    def dispose(self) -> None:
        self.engine.dispose()


def _make_sqlite_transactional(engine: sa.Engine) -> None:
    """Let SQLAlchemy, not pysqlite, issue BEGIN - as BEGIN IMMEDIATE (see module doc)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
