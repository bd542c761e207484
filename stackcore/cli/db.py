"""``stackcore db``: the database's schema, apart from any service's start-up.

* ``sync`` - migrate the schema to the heads (:meth:`stackcore.db.api.Database.upgrade`: safe
  while services start, it serialises with them);
* ``version`` - the revisions the database records, the heads this stackcore needs, and
  whether they are the same;
* ``check`` - exit status 0 when the schema is at the heads, 1 (saying where it is and what to
  do) when it is not; 2, as every ``stackcore`` command, when the database cannot be read.

Each reads the database from ``--config-file`` as a service does: ``[database] connection``,
else the SQLite file in ``[DEFAULT] state_path``. The URL is printed with its password hidden.
Run ``sync`` before starting services with ``[database] auto_migrate = false``.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from stackcore import exception


def register(sub: Any) -> None:
    """Add ``db`` and its subcommands to the ``stackcore`` parser's subparsers ``sub``."""
    parser = sub.add_parser("db", help="migrate or inspect the database's schema")
    commands = parser.add_subparsers(dest="db_command", required=True)
    for name, func, what in (
            ("sync", _sync, "migrate the schema to the heads of this stackcore"),
            ("version", _version, "print the revisions recorded and whether they are the heads"),
            ("check", _check, "exit 0 when the schema is at the heads, 1 when it is not")):
        p = commands.add_parser(name, help=what)
        p.add_argument("--config-file", required=True)
        p.set_defaults(func=func)


def _open(config_file: str, create: bool = False) -> Any:
    """The Database a service started from ``config_file`` would use. ``create``: make the
    state directory of a SQLite database that does not exist yet."""
    from stackcore import conf as sc_conf
    from stackcore.db.api import Database

    conf = sc_conf.load([config_file])
    url = conf.database.connection
    if not url:
        if not conf.state_path:
            raise exception.ConfigError(
                f"{config_file} sets neither [database] connection nor [DEFAULT] state_path: "
                "there is no database to work on (a Cloud without them uses a temporary one)",
                section="database", option="connection")
        if create:
            os.makedirs(conf.state_path, exist_ok=True)
        url = f"sqlite:///{conf.state_path}/stackcore.sqlite"
    return Database(url)


def _listed(revisions: set[str] | frozenset[str]) -> str:
    return ", ".join(sorted(revisions)) or "none (never migrated)"


def _sync(args: argparse.Namespace) -> int:
    from stackcore.db import heads, schema
    from stackcore.db.api import redact

    db = _open(args.config_file, create=True)
    try:
        before = schema.current_heads(db)
        db.upgrade()
        after = schema.current_heads(db)
    finally:
        db.dispose()
    if after != set(heads.HEADS):  # upgrade() reaches the heads or raises: a bug if not
        raise exception.StackcoreError(f"the database {redact(db.url)} is at {_listed(after)} "
                                       f"after the migration, not {_listed(heads.HEADS)}")
    change = "already at the heads" if before == after else \
        f"migrated from {_listed(before)} to the heads"
    print(f"database {redact(db.url)}: {change}: {_listed(after)}")
    return 0


def _version(args: argparse.Namespace) -> int:
    from stackcore.db import heads, schema
    from stackcore.db.api import redact

    db = _open(args.config_file)
    try:
        found = schema.current_heads(db)
    finally:
        db.dispose()
    print(f"database  {redact(db.url)}\n"
          f"current   {_listed(found)}\n"
          f"heads     {_listed(heads.HEADS)}\n"
          f"at heads  {'yes' if found == set(heads.HEADS) else 'no'}")
    return 0


def _check(args: argparse.Namespace) -> int:
    import sys

    from stackcore.db import heads, schema
    from stackcore.db.api import redact

    db = _open(args.config_file)
    try:
        problem = schema.out_of_date(db)
    finally:
        db.dispose()
    if problem is not None:
        print(f"stackcore db check: {problem}", file=sys.stderr)
        return 1
    print(f"database {redact(db.url)}: at the heads: {_listed(heads.HEADS)}")
    return 0
