"""Is the database's schema the one this stackcore expects? Checked at start-up when
``[database] auto_migrate`` is off, so an empty or out-of-date database is refused with what to
do, instead of failing at the first query with ``no such table``; and by ``stackcore db``
(:mod:`stackcore.cli.db`)."""

from __future__ import annotations

import os

import sqlalchemy as sa

from stackcore import exception
from stackcore.db.api import Database, redact


def current_heads(db: Database) -> set[str]:
    """The revisions recorded in the database (empty: never migrated).

    A SQLite file that does not exist is not created (connecting would create it): looking
    never changes anything."""
    url = sa.make_url(db.url)
    if db.dialect == "sqlite" and url.database not in (None, "", ":memory:") \
            and not url.query.get("uri") and not os.path.exists(url.database):
        return set()
    with db.named_errors(), db.engine.connect() as conn:
        if not sa.inspect(conn).has_table("alembic_version"):
            return set()
        return set(conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars())


def expected_heads(db: Database) -> set[str]:
    """What ``alembic_version`` holds once every family's branch is at its newest revision:
    the heads, less those another revision depends on (the ``base`` branch, which Alembic
    records as applied through its dependants)."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(db.alembic_config())
    depended = {down for rev in script.walk_revisions()
                for down in rev._all_down_revisions}  # noqa: SLF001 - down revisions + deps
    return set(script.get_heads()) - depended


def out_of_date(db: Database) -> str | None:
    """None when the schema is at the newest revision of every branch; otherwise what is
    wrong and what to do. BackendUnavailable or ConfigError when the database cannot be read."""
    from stackcore.db import heads

    # the heads computed when the migrations were written (equal to expected_heads(db), a
    # unit test proves it): checking needs no Alembic
    found, wanted = current_heads(db), set(heads.HEADS)
    if found == wanted:
        return None
    state = "is empty (never migrated)" if not found else (
        f"is at {', '.join(sorted(found))}, this stackcore needs {', '.join(sorted(wanted))}")
    return (f"the database {redact(db.url)} {state}: migrate it (`stackcore db sync "
            "--config-file FILE`, or `[database] auto_migrate = true`, the default) before "
            "starting with auto_migrate off")


def check_current(db: Database) -> None:
    """ConfigError (naming ``[database] auto_migrate``) unless the schema is at the newest
    revision of every branch (:func:`out_of_date`)."""
    problem = out_of_date(db)
    if problem is not None:
        raise exception.ConfigError(problem, section="database", option="auto_migrate")
