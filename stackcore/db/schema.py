"""Is the database's schema the one this stackcore expects? Checked at start-up when
``[database] auto_migrate`` is off, so an empty or out-of-date database is refused with what to
do, instead of failing at the first query with ``no such table``."""

from __future__ import annotations

import sqlalchemy as sa

from stackcore import exception
from stackcore.db.api import Database, redact


def current_heads(db: Database) -> set[str]:
    """The revisions recorded in the database (empty: never migrated)."""
    try:
        with db.engine.connect() as conn:
            if not sa.inspect(conn).has_table("alembic_version"):
                return set()
            return set(conn.execute(sa.text("SELECT version_num FROM alembic_version"))
                       .scalars())
    except sa.exc.DatabaseError as err:
        raise exception.ConfigError(
            f"[database] connection {redact(db.url)} cannot be read as a database: "
            f"{type(err.orig).__name__}", section="database", option="connection") from None


def expected_heads(db: Database) -> set[str]:
    """What ``alembic_version`` holds once every family's branch is at its newest revision:
    the heads, less those another revision depends on (the ``base`` branch, which Alembic
    records as applied through its dependants)."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(db.alembic_config())
    depended = {down for rev in script.walk_revisions()
                for down in rev._all_down_revisions}  # noqa: SLF001 - down revisions + deps
    return set(script.get_heads()) - depended


def check_current(db: Database) -> None:
    """ConfigError unless the schema is at the newest revision of every branch."""
    from stackcore.db import heads

    # the heads computed when the migrations were written (equal to expected_heads(db), a
    # unit test proves it): checking needs no Alembic
    found, wanted = current_heads(db), set(heads.HEADS)
    if found == wanted:
        return
    state = "is empty (never migrated)" if not found else (
        f"is at {', '.join(sorted(found))}, this stackcore needs {', '.join(sorted(wanted))}")
    raise exception.ConfigError(
        f"the database {redact(db.url)} {state}: migrate it (`[database] auto_migrate = true`, "
        "the default) before starting with auto_migrate off", section="database",
        option="auto_migrate")
