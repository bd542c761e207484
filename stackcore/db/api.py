"""The database handle: engine, transactions, migrations.

Managers own every state transition, each in one short transaction from
:meth:`Database.transaction`. SQLite (the embedded default) runs in WAL mode with
``BEGIN IMMEDIATE`` so concurrent threads queue on the write lock instead of failing with
"database is locked" when a read transaction tries to upgrade; a transaction that only reads
(:meth:`Database.read`) begins deferred instead, so a reader never queues behind a writer.
PostgreSQL is used as is. MariaDB (or MySQL) runs at READ COMMITTED, PostgreSQL's level (its
own default, REPEATABLE READ, takes gap locks that deadlock far more often), and its tables
compare strings case-sensitively (``utf8mb4_bin``) like the other two.

Conflicts. On PostgreSQL or MariaDB two transactions may deadlock, or one may lose a
serialization conflict or wait for a row lock longer than the server allows; the database
aborts one of them, and the whole transaction must run again. That is
done in one place, :func:`retry_on_conflict`, a decorator for the functions that open a
transaction (never for code inside one: the aborted transaction cannot continue). It is
oslo.db's ``wrap_db_retry`` (imported on first use, so ``import stackcore`` stays cheap) with
:func:`is_retriable` deciding what is a conflict. :func:`named_lock` serialises the
transactions that take the same named lock, for the read-modify-write updates that row locks
cannot protect (a row that does not exist yet cannot be locked).

Outages. A PostgreSQL server that restarts (or fails over) drops every connection. A
transaction first takes a connection that answers, waiting (oslo.db ``wrap_db_retry``, about
:data:`RECONNECT_WAIT` seconds in all) while the server does not take connections; a
transaction the outage cuts off fails with :class:`~stackcore.exception.BackendUnavailable`
naming the database, and the next one reconnects by itself. So a service survives a database
restart: the operation in flight ends in ERROR with that fault (its failure handler's
transaction waits for the database), the next ones work.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import hashlib
import logging
import os
import re
import threading
import zlib
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from stackcore import exception
from stackcore.db.writer_gate import URGENT, WriterGate

LOG = logging.getLogger(__name__)
T = TypeVar("T")

MIGRATIONS = os.path.join(os.path.dirname(__file__), "migrations")

#: The wave-1 revisions (one graph for every family, frozen in ``migrations/legacy``).
LEGACY_REVISIONS = frozenset({"0001_core", "0100_network", "0200_volume", "0300_scheduler",
                              "0400_e2e"})
#: The family baselines whose schema equals the wave-1 head (a unit test proves it); the base
#: branch (services) is their common ancestor, so it is not a head of its own.
LEGACY_TO_BASELINES = ("image_0001", "compute_0001", "volume_0001", "network_0001")


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
        if self.dialect in _MYSQL_DIALECTS:
            kwargs["isolation_level"] = "READ COMMITTED"
        try:
            self.engine = sa.create_engine(url, **kwargs)
        except Exception as err:
            raise exception.ConfigError(
                f"[database] connection {redact(url)} cannot be used: {type(err).__name__}"
            ) from err
        #: SQLite: this process's writers take turns in order, heartbeats first (see
        #: :mod:`stackcore.db.writer_gate`); None elsewhere (the server queues fairly).
        self.writer_gate: WriterGate | None = None
        if self.dialect == "sqlite":
            self.writer_gate = WriterGate()
            self.writer_gate.install(self.engine)  # before the listener that sends BEGIN
            _make_sqlite_transactional(self.engine)
        elif self.dialect in _MYSQL_DIALECTS:
            event.listen(self.engine, "reset", _release_mysql_named_locks)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # read(): the same engine and pool, its connections begin a deferred transaction
        self._readers = sessionmaker(self.engine.execution_options(stackcore_read=True),
                                     expire_on_commit=False)
        #: The same engine for a transaction that must not wait behind this process's other
        #: writers (heartbeats: a late one is a service declared down).
        self.urgent_engine = self.engine.execution_options(**{URGENT: True})
        self._urgent_sessions = sessionmaker(self.urgent_engine, expire_on_commit=False)

        # Writers bump a generation counter after commit so that waiters in this process
        # (``wait_for_write``) wake at once instead of sleeping out a poll interval.
        self._generation = 0
        self._changed = threading.Condition()
        event.listen(self._sessions, "do_orm_execute", _flag_dml)
        event.listen(self._sessions, "after_flush", _flag_flush)
        event.listen(self._urgent_sessions, "do_orm_execute", _flag_dml)
        event.listen(self._urgent_sessions, "after_flush", _flag_flush)
        event.listen(self._readers, "do_orm_execute", _refuse_dml)
        event.listen(self._readers, "before_flush", _refuse_flush)

    @contextlib.contextmanager
    def transaction(self, urgent: bool = False) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on any error.

        ``urgent``: on SQLite, this transaction goes first in the process's queue of writers
        (liveness reports: a late one is a service or agent declared down).

        On a server database, the transaction starts on a connection proven to answer (waiting
        up to about :data:`RECONNECT_WAIT` seconds for the database to take connections again);
        an outage during it raises BackendUnavailable naming the database."""
        if self.dialect == "sqlite":  # a file: nothing to reconnect to
            with (self._urgent_sessions if urgent else self._sessions)() as session:
                with session.begin():
                    yield session
                self._committed(session)
            return
        connection = self._connect()
        try:
            with self._sessions(bind=connection) as session:
                with session.begin():
                    yield session
                self._committed(session)
        except sa.exc.DBAPIError as err:
            if is_disconnect(err):
                raise self._unavailable("went away during a transaction", err) from err
            raise
        finally:
            connection.close()

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        """A session in one transaction that only reads (writing in it is a bug).

        On SQLite it begins as a plain (deferred) ``BEGIN``: in WAL mode a reader neither
        waits for nor blocks the writer, where ``BEGIN IMMEDIATE`` would queue every read - a
        caller polling a server's state - behind the writes it is waiting for. Elsewhere it is
        :meth:`transaction`."""
        if self.dialect != "sqlite":
            with self.transaction() as session:
                yield session
            return
        with self._readers() as session:
            with session.begin():
                yield session

    def _committed(self, session: Session) -> None:
        if session.info.pop("wrote", False):
            with self._changed:
                self._generation += 1
                self._changed.notify_all()

    def _connect(self) -> sa.Connection:
        """A pooled connection that answers (the pool pings it), waiting for the database to
        take connections again; BackendUnavailable naming the database if it never does."""
        global _reconnecting
        if _reconnecting is None:
            from oslo_db import api as oslo_db_api

            _reconnecting = oslo_db_api.wrap_db_retry(
                max_retries=RECONNECT_RETRIES, retry_interval=RECONNECT_INTERVAL,
                inc_retry_interval=True, max_retry_interval=MAX_RECONNECT_INTERVAL,
                exception_checker=_log_unreachable)(lambda engine: engine.connect())
        try:
            connection: sa.Connection = _reconnecting(self.engine)
        except sa.exc.DBAPIError as err:
            if _PERMANENT.search(str(err.orig)):
                raise self._unavailable("refuses the connection (check the URL)", err) from err
            raise self._unavailable(f"does not take connections after {RECONNECT_WAIT:g} s",
                                    err) from err
        return connection

    def _unavailable(self, what: str, err: sa.exc.DBAPIError) -> exception.BackendUnavailable:
        return exception.BackendUnavailable(
            f"database {redact(self.url)} {what}: {type(err.orig).__name__}: "
            f"{_first_line(err.orig)}",
            backend="database")

    @property
    def generation(self) -> int:
        """How many writing transactions this process has committed so far."""
        return self._generation

    def wait_for_write(self, since: int, timeout: float) -> None:
        """Block until a transaction of this process commits a write after generation
        ``since``, or ``timeout`` seconds pass. Writes by other processes are not seen, so
        callers use a bounded ``timeout`` and re-check (see :func:`stackcore.wait.until`)."""
        with self._changed:
            self._changed.wait_for(lambda: self._generation != since, timeout)

    def upgrade(self) -> None:
        """Migrate the schema to the newest revision of every family's branch.

        A database made by wave 1 (one revision graph, 0001_core ... 0400_e2e, before each
        family had its own branch) is first brought to the wave-1 head by the frozen wave-1
        revisions, then re-labelled with the family baselines that describe exactly that
        schema (:data:`LEGACY_TO_BASELINES`) - no table is touched - and upgraded from there.

        Two cases need no Alembic at all (importing it and every revision script is most of
        an embedded start-up): a database already at :data:`stackcore.db.heads.HEADS`, and a
        new, empty SQLite database, which gets every family's tables from the models in one
        transaction, stamped with those heads (the unit tests prove that this schema is the one
        the migrations build).

        Several processes may run this at the same moment: services started together on a
        new database each migrate at start-up. Unserialised they collide - two create the same
        table (PostgreSQL creates tables in concurrent transactions and fails the second), or
        one finds the schema half-way through another's migration (the wave-1 path takes
        several transactions) and fails on a revision it does not know. So every change of
        the schema happens under one lock across processes, :meth:`_schema_lock`, and the
        schema is checked again once it is held: the processes that waited find it at the
        heads and do nothing. A database already at the heads - every start but the first -
        is recognised before, without the lock: one query, no lock round trip.
        """
        from stackcore.db import heads

        with self.named_errors():
            if self._at(heads.HEADS):
                return
            with self._schema_lock():
                # an empty SQLite file first: that check is part of the transaction creating
                # the tables, so the embedded start-up pays for no second look
                if self._create_if_empty(heads.HEADS) or self._at(heads.HEADS):
                    return
                self._migrate()

    def _migrate(self) -> None:
        """Alembic's ``upgrade heads`` (the wave-1 path first when the database is wave 1's);
        only under :meth:`_schema_lock`."""
        from alembic import command
        from alembic.util import CommandError

        try:
            if self.dialect in _MYSQL_DIALECTS:
                # On a new database, the default of the tables the migrations create:
                # case-sensitive unique names and lookups, as on PostgreSQL and SQLite
                # (MariaDB's default collation ignores case). Not once tables exist: a foreign
                # key between columns of different collations cannot be created.
                with self.engine.begin() as conn:
                    if not sa.inspect(conn).get_table_names():
                        conn.exec_driver_sql("ALTER DATABASE CHARACTER SET utf8mb4 "
                                             "COLLATE utf8mb4_bin")
            if self._legacy_revisions():
                command.upgrade(self.alembic_config(legacy=True), "heads")
                with self.engine.begin() as conn:
                    conn.execute(sa.text("DELETE FROM alembic_version"))
                    for revision in LEGACY_TO_BASELINES:
                        conn.execute(sa.text("INSERT INTO alembic_version (version_num) "
                                             "VALUES (:rev)"), {"rev": revision})
            command.upgrade(self.alembic_config(), "heads")
        except CommandError as err:  # e.g. a revision of a newer stackcore
            raise exception.ConfigError(
                f"[database] connection {redact(self.url)} cannot be migrated: {err}",
                section="database", option="connection") from None

    @contextlib.contextmanager
    def named_errors(self) -> Iterator[None]:
        """Around direct uses of the engine: a database that does not answer becomes
        BackendUnavailable, one that is not a database (or not one stackcore can use) a
        ConfigError naming the option - each naming the database, its password hidden."""
        try:
            yield
        except sa.exc.OperationalError as err:
            raise exception.BackendUnavailable(
                f"database {redact(self.url)} is unreachable: {type(err.orig).__name__}"
            ) from None
        except sa.exc.DatabaseError as err:  # e.g. SQLite: "file is not a database"
            raise exception.ConfigError(
                f"[database] connection {redact(self.url)} cannot be used as a database: "
                f"{err.orig}", section="database", option="connection") from None

    @contextlib.contextmanager
    def _schema_lock(self) -> Iterator[None]:
        """Held by one process at a time (per database), around any change of the schema.

        PostgreSQL: a session-level advisory lock (:data:`SCHEMA_LOCK_KEY`) on a connection
        of its own - session-level because Alembic migrates in transactions of its own, on
        other connections, and it is released when that connection closes, so a process that
        dies migrating never leaves it held. SQLite: ``flock`` on a file beside the database
        (:func:`_sqlite_schema_lock`). MariaDB/MySQL: ``GET_LOCK()`` on a connection of its
        own, for the same reasons (:meth:`_mysql_schema_lock`); other dialects (not supported,
        see :func:`named_lock`) are not serialised. A process that has to wait says so in the
        log."""
        if self.dialect == "postgresql":
            with self._pg_schema_lock():
                yield
        elif self.dialect in _MYSQL_DIALECTS:
            with self._mysql_schema_lock():
                yield
        elif self.dialect == "sqlite":
            with _sqlite_schema_lock(self.url):
                yield
        else:
            yield

    @contextlib.contextmanager
    def _pg_schema_lock(self) -> Iterator[None]:
        # autocommit: the connection holds a lock, not a transaction (no snapshot kept open
        # for the length of a migration)
        conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        released = False
        try:
            if not conn.scalar(sa.select(sa.func.pg_try_advisory_lock(SCHEMA_LOCK_KEY))):
                LOG.info("another process is migrating the schema of %s: waiting for it",
                         redact(self.url))
                conn.scalar(sa.select(sa.func.pg_advisory_lock(SCHEMA_LOCK_KEY)))
            try:
                yield
            finally:
                with contextlib.suppress(sa.exc.DBAPIError):  # gone: the lock went with it
                    conn.scalar(sa.select(sa.func.pg_advisory_unlock(SCHEMA_LOCK_KEY)))
                    released = True
        finally:
            if not released:
                # interrupted, or the unlock failed: a pooled connection must never keep the
                # lock, and closing the session releases it
                conn.invalidate()
            conn.close()

    @contextlib.contextmanager
    def _mysql_schema_lock(self) -> Iterator[None]:
        # GET_LOCK names are server-wide (PostgreSQL's advisory keys are per database): the
        # database's name is part of it. The lock belongs to the connection's session, so it
        # is released when that connection closes, like PostgreSQL's.
        name = _mysql_lock_name(self.engine.url.database, "schema", "")
        conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        released = False
        try:
            if conn.scalar(sa.select(sa.func.get_lock(name, 0))) != 1:
                LOG.info("another process is migrating the schema of %s: waiting for it",
                         redact(self.url))
                # a bounded wait per call (GET_LOCK's infinite timeout differs between MySQL
                # and MariaDB versions), as long as it takes in all, as on PostgreSQL
                while conn.scalar(sa.select(sa.func.get_lock(name, 60))) != 1:
                    pass
            try:
                yield
            finally:
                with contextlib.suppress(sa.exc.DBAPIError):  # gone: the lock went with it
                    conn.scalar(sa.select(sa.func.release_lock(name)))
                    released = True
        finally:
            if not released:
                conn.invalidate()  # closing the session is what releases the lock
            conn.close()

    def _at(self, revisions: frozenset[str]) -> bool:
        """True when ``alembic_version`` holds exactly ``revisions``."""
        with self.engine.connect() as conn:
            if not sa.inspect(conn).has_table("alembic_version"):
                return False
            found = set(conn.execute(sa.text("SELECT version_num FROM alembic_version"))
                        .scalars())
        return found == revisions

    def _create_if_empty(self, revisions: frozenset[str]) -> bool:
        """On a SQLite database without any table: create every family's tables from the
        models and stamp ``revisions``, in one transaction (``BEGIN IMMEDIATE``: a concurrent
        starter waits, then finds the tables). False, having done nothing, otherwise."""
        if self.dialect != "sqlite":
            return False
        import importlib

        from stackcore import families
        from stackcore.db.models import Base

        modules = {m for family in families.all_families() for m in family.models}
        modules.add("stackcore.db.models")
        for module in sorted(modules):
            importlib.import_module(module)
        # only the tables of the registered families' model modules: what the migrations make
        tables = [table for table in Base.metadata.sorted_tables
                  if _module_of(table) in modules]
        version = sa.Table("alembic_version", sa.MetaData(),
                           sa.Column("version_num", sa.String(32), nullable=False),
                           sa.PrimaryKeyConstraint("version_num", name="alembic_version_pkc"))
        with self.engine.begin() as conn:
            if sa.inspect(conn).get_table_names():
                return False
            # checkfirst=False: the database was just seen empty in this transaction, so
            # SQLAlchemy's per-table existence probes would only double the statements
            Base.metadata.create_all(conn, tables=tables, checkfirst=False)
            version.create(conn)
            conn.execute(version.insert(), [{"version_num": r} for r in sorted(revisions)])
        return True

    def _legacy_revisions(self) -> set[str]:
        with self.engine.connect() as conn:
            if not sa.inspect(conn).has_table("alembic_version"):
                return set()
            found = set(conn.execute(sa.text("SELECT version_num FROM alembic_version"))
                        .scalars())
        return found & LEGACY_REVISIONS

    def alembic_config(self, legacy: bool = False) -> Any:
        """Alembic's configuration: the shared environment, the base branch and every
        family's branch (``legacy``: the frozen wave-1 revisions instead)."""
        from alembic.config import Config

        from stackcore import families

        config = Config()
        config.set_main_option("script_location", MIGRATIONS)
        if legacy:
            locations = [os.path.join(MIGRATIONS, "legacy")]
        else:
            locations = [os.path.join(MIGRATIONS, "versions")]
            locations += [family.migrations for family in families.all_families()]
        config.set_main_option("path_separator", "os")
        config.set_main_option("version_locations", os.pathsep.join(locations))
        config.attributes["engine"] = self.engine
        return config

    def dispose(self) -> None:
        self.engine.dispose()


#: The PostgreSQL advisory lock key of :meth:`Database._schema_lock`: the same constant in every
#: stackcore process ("stackcor" as a 64-bit integer). Outside the 32-bit range of
#: :func:`named_lock`'s keys, so never one of them.
SCHEMA_LOCK_KEY = int.from_bytes(b"stackcor", "big")


@contextlib.contextmanager
def _sqlite_schema_lock(url: str) -> Iterator[None]:
    """An exclusive ``flock`` on ``<database file>.schema-lock``.

    Not the database file itself: SQLite locks it with POSIX (``fcntl``) locks, which a process
    loses on closing any descriptor of that file. ``flock`` locks are independent of those and
    released by the kernel when the process ends. The file stays: deleting a lock file races
    with a process that has just opened it. An in-memory database has no other process to wait
    for, and needs no lock."""
    import fcntl

    parsed = sa.make_url(url)
    path = parsed.database
    if not path or path == ":memory:" or parsed.query.get("uri"):
        yield
        return
    lock_path = f"{path}.schema-lock"
    try:
        # read-only is enough for flock, so any user who may read the database may lock it
        fd = os.open(lock_path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as err:
        raise exception.ConfigError(
            f"[database] connection {redact(url)}: cannot open the schema lock {lock_path}: "
            f"{err.strerror}", section="database", option="connection") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            LOG.info("another process is migrating the schema of %s: waiting for it",
                     redact(url))
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _module_of(table: sa.Table) -> str | None:
    """The module declaring the model mapped to ``table`` (None: no mapped class)."""
    from stackcore.db.models import Base

    for mapper in Base.registry.mappers:
        if table in mapper.tables:
            return str(mapper.class_.__module__)
    return None


def _flag_dml(state: Any) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        state.session.info["wrote"] = True


def _refuse_dml(state: Any) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        raise RuntimeError("a write inside Database.read(): use Database.transaction()")


def _refuse_flush(session: Session, _context: Any, _instances: Any) -> None:
    if session.new or session.dirty or session.deleted:
        raise RuntimeError("a write inside Database.read(): use Database.transaction()")


def _flag_flush(session: Session, _context: Any) -> None:
    session.info["wrote"] = True


def _make_sqlite_transactional(engine: sa.Engine) -> None:
    """Let SQLAlchemy, not pysqlite, issue BEGIN - as BEGIN IMMEDIATE (see module doc)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        # In WAL mode NORMAL never corrupts the database; it only defers the fsync to
        # checkpoints, so a power cut may lose the last commits - acceptable for the embedded
        # default, and it removes a disk sync from every state transition.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        # Database.read(): a reader takes no write lock (WAL readers see a snapshot)
        read = conn.get_execution_options().get("stackcore_read")
        conn.exec_driver_sql("BEGIN" if read else "BEGIN IMMEDIATE")


# --- conflicts: retry the whole transaction -------------------------------------------------

#: oslo.db ``wrap_db_retry`` settings of :func:`retry_on_conflict`: up to MAX_RETRIES re-runs,
#: the first after RETRY_INTERVAL seconds, then doubling (with jitter) up to MAX_RETRY_INTERVAL.
MAX_RETRIES = 20
RETRY_INTERVAL = 0.02
MAX_RETRY_INTERVAL = 1.0

_PG_CONFLICTS = ("40P01", "40001")  # deadlock_detected, serialization_failure
#: MariaDB/MySQL error numbers: ER_LOCK_DEADLOCK, ER_LOCK_WAIT_TIMEOUT (oslo.db's DBDeadlock)
_MYSQL_CONFLICTS = (1213, 1205)
_MYSQL_DIALECTS = ("mysql", "mariadb")
_retries: collections.Counter[str] = collections.Counter()
_retries_lock = threading.Lock()


def is_retriable(err: BaseException) -> bool:
    """Whether ``err`` means "the database aborted this transaction for a conflict; running it
    again may succeed": a PostgreSQL deadlock or serialization failure, a MariaDB deadlock or
    lock wait timeout, or SQLite's "database is locked" (a writer waited longer than the busy
    timeout)."""
    if not isinstance(err, sa.exc.DBAPIError):
        return False
    if getattr(err.orig, "pgcode", None) in _PG_CONFLICTS:
        return True
    if _mysql_errno(err) in _MYSQL_CONFLICTS:
        return True
    return "database is locked" in str(err.orig)


def retry_on_conflict(fn: Callable[..., T]) -> Callable[..., T]:
    """Run ``fn`` again when its transaction lost a conflict (:func:`is_retriable`).

    ``fn`` must open its transaction(s) itself and do nothing before it that cannot be done
    twice: each attempt starts from scratch. Each conflict is logged and counted
    (:func:`retry_counts`); after :data:`MAX_RETRIES` re-runs the error propagates.
    """
    name = getattr(fn, "__qualname__", repr(fn))
    retrying: Callable[..., T] | None = None

    def conflict(err: Exception) -> bool:
        if not is_retriable(err):
            return False
        with _retries_lock:
            _retries[name] += 1
        LOG.info("%s lost a database conflict (%s); running it again", name,
                 getattr(err, "orig", err))
        return True

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        nonlocal retrying
        if retrying is None:
            from oslo_db import api as oslo_db_api

            retrying = oslo_db_api.wrap_db_retry(
                max_retries=MAX_RETRIES, retry_interval=RETRY_INTERVAL,
                inc_retry_interval=True, max_retry_interval=MAX_RETRY_INTERVAL, jitter=True,
                exception_checker=conflict,
            )(fn)
        assert retrying is not None
        return retrying(*args, **kwargs)

    return wrapper


# --- outages: wait for the database to come back ------------------------------------------

#: oslo.db ``wrap_db_retry`` settings of :meth:`Database._connect`: RECONNECT_RETRIES more
#: attempts, the first RECONNECT_INTERVAL seconds after the failure, then doubling up to
#: MAX_RECONNECT_INTERVAL - RECONNECT_WAIT seconds in all.
RECONNECT_RETRIES = 35
RECONNECT_INTERVAL = 0.1
MAX_RECONNECT_INTERVAL = 2.0
RECONNECT_WAIT = 63.1  # 0.1 + 0.2 + 0.4 + 0.8 + 1.6 + 30 x 2

#: SQLSTATEs of a server that is going away or not taking connections yet: admin_shutdown,
#: crash_shutdown, cannot_connect_now, and the connection_exception class (08xxx).
_PG_UNAVAILABLE = ("57P01", "57P02", "57P03")

_reconnecting: Callable[[sa.Engine], sa.Connection] | None = None


#: MariaDB/MySQL error numbers of a server going away or not reachable: ER_SERVER_SHUTDOWN,
#: and the client's CR_CONNECTION_ERROR, CR_CONN_HOST_ERROR, CR_SERVER_GONE_ERROR,
#: CR_SERVER_LOST.
_MYSQL_UNAVAILABLE = (1053, 2002, 2003, 2006, 2013)


def is_disconnect(err: BaseException) -> bool:
    """Whether ``err`` says the database connection is gone or the server is not taking
    connections (as opposed to the statement failing)."""
    if not isinstance(err, sa.exc.DBAPIError):
        return False
    code = getattr(err.orig, "pgcode", None) or ""
    return bool(err.connection_invalidated) or code in _PG_UNAVAILABLE or code.startswith("08") \
        or _mysql_errno(err) in _MYSQL_UNAVAILABLE


def _mysql_errno(err: sa.exc.DBAPIError) -> int | None:
    """The MariaDB/MySQL error number of ``err`` (PyMySQL and mysqlclient put it first in the
    exception's args), None for other databases."""
    if not type(err.orig).__module__.startswith(("pymysql", "MySQLdb")):
        return None
    args = getattr(err.orig, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


#: What a server that answers says when the URL itself is wrong: no such database or role, a
#: refused password or host. Waiting does not help (an outage does not say these), so they are
#: not waited out - the caller gets BackendUnavailable naming the database at once. libpq
#: reports connection failures as text without a SQLSTATE, hence the messages (as oslo.db's
#: exception filters match them).
_PERMANENT = re.compile(r'database ".*" does not exist|role ".*" does not exist|'
                        r"password authentication failed|no pg_hba\.conf entry|"
                        r"Access denied for user|Unknown database")


def _log_unreachable(err: Exception) -> bool:
    """wrap_db_retry's test while connecting: every failure to connect is waited out (a
    server starting up refuses connections, or accepts them and says it is not ready) but
    those that say the URL is wrong (:data:`_PERMANENT`)."""
    if not isinstance(err, sa.exc.OperationalError | sa.exc.InterfaceError) \
            and not is_disconnect(err):
        return False
    if _PERMANENT.search(str(getattr(err, "orig", err))):
        return False
    LOG.warning("database not taking connections (%s); trying again",
                _first_line(getattr(err, "orig", err)))
    return True


def _first_line(err: BaseException | None) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def retry_counts() -> dict[str, int]:
    """Conflicts seen (hence re-runs started, but for a last failed one) per operation in this
    process since it started."""
    with _retries_lock:
        return dict(_retries)


def named_lock(session: Session, name: str) -> None:
    """Hold the lock ``name`` until ``session``'s transaction ends; transactions taking the
    same name run one after the other.

    PostgreSQL: a transaction-scoped advisory lock (``pg_advisory_xact_lock``) on a key derived
    from ``name``. SQLite: nothing to do, the transaction already holds the database's write
    lock from its first statement (``BEGIN IMMEDIATE``). MariaDB/MySQL have no
    transaction-scoped lock: ``GET_LOCK()`` on the transaction's connection, released when the
    connection goes back to the pool (:func:`_release_mysql_named_locks`) - at the end of the
    transaction for :meth:`Database.transaction`, whose connection lives exactly as long. Other
    databases are not supported.
    """
    bind = session.get_bind()
    dialect = bind.dialect.name
    if dialect == "sqlite":
        return
    if dialect in _MYSQL_DIALECTS:
        lock = _mysql_lock_name(bind.engine.url.database, "named", name)
        connection = session.connection()
        # flagged before asking: a wait that fails half-way must not leave a lock behind
        connection.connection.info[_MYSQL_LOCKS] = True
        # bounded waits, as long as it takes in all (a PostgreSQL advisory lock waits
        # forever): a conflict with a row lock ends in InnoDB's lock wait timeout (retried)
        while session.scalar(sa.select(sa.func.get_lock(lock, 60))) != 1:
            LOG.info("still waiting for the named lock %s", name)
        return
    if dialect != "postgresql":
        raise exception.ConfigError(f"database dialect {dialect!r} is not supported "
                                    "(SQLite, PostgreSQL or MariaDB)")
    key = zlib.crc32(name.encode()) - 2**31
    session.execute(sa.select(sa.func.pg_advisory_xact_lock(key)))


#: Key in a pooled MariaDB connection's info: it took named locks (:func:`named_lock`).
_MYSQL_LOCKS = "stackcore_named_locks"


def _mysql_lock_name(database: str | None, kind: str, name: str) -> str:
    """A ``GET_LOCK()`` name for the lock ``kind`` (``schema``, ``named``) ``name`` in
    ``database``: the locks are server-wide, and their names at most 64 characters."""
    digest = hashlib.sha1(f"{kind}\0{database}\0{name}".encode(),
                          usedforsecurity=False).hexdigest()
    return f"stackcore:{digest}"


def _release_mysql_named_locks(dbapi_connection: Any, record: Any, _state: Any) -> None:
    """Pool ``reset`` listener of MariaDB engines: a connection that took named locks
    releases them all before it is pooled again. Should that fail, the pool invalidates the
    connection (it logs an exception raised here), and closing it releases them."""
    if record is None or not record.info.pop(_MYSQL_LOCKS, False):
        return
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("DO RELEASE_ALL_LOCKS()")
    finally:
        cursor.close()
