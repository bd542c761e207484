"""The heads computed when the migrations were written (stackcore.db.heads) are the migrations'
heads, and a fresh embedded database created from the models (no Alembic) is the database the
migrations build."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command

from stackcore.db import api, heads, schema


def test_heads_are_the_migrations_heads(tmp_path: Path) -> None:
    db = api.Database(f"sqlite:///{tmp_path}/x.sqlite")
    try:
        wanted = schema.expected_heads(db)
    finally:
        db.dispose()
    assert heads.HEADS == wanted, (
        f"stackcore/db/heads.py lists {sorted(heads.HEADS)}, the migrations end at "
        f"{sorted(wanted)}: run `python -m stackcore.db.heads`")


def _describe(path: Path) -> dict[str, Any]:
    """Everything SQLite keeps of the schema, in a comparable form."""
    engine = sa.create_engine(f"sqlite:///{path}")
    try:
        inspector = sa.inspect(engine)
        found: dict[str, Any] = {}
        for table in sorted(inspector.get_table_names()):
            found[table] = {
                "columns": sorted((c["name"], str(c["type"]), c["nullable"],
                                   str(c.get("default")), c.get("autoincrement"))
                                  for c in inspector.get_columns(table)),
                "pk": inspector.get_pk_constraint(table)["constrained_columns"],
                "fks": sorted((tuple(f["constrained_columns"]), f["referred_table"],
                               tuple(f["referred_columns"]),
                               str(sorted((f.get("options") or {}).items())))
                              for f in inspector.get_foreign_keys(table)),
                "indexes": sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]))
                                  for i in inspector.get_indexes(table)),
                "uniques": sorted(tuple(u["column_names"])
                                  for u in inspector.get_unique_constraints(table)),
                "checks": sorted(str(c["sqltext"]).replace(" ", "")
                                 for c in inspector.get_check_constraints(table)),
            }
    finally:
        engine.dispose()
    with sqlite3.connect(path) as conn:
        found["alembic_version"] = sorted(r[0] for r in conn.execute(
            "SELECT version_num FROM alembic_version"))
    return found


def test_fresh_sqlite_from_the_models_equals_the_migrated_one(tmp_path: Path) -> None:
    fast_path, migrated_path = tmp_path / "fast.sqlite", tmp_path / "migrated.sqlite"
    fast = api.Database(f"sqlite:///{fast_path}")
    migrated = api.Database(f"sqlite:///{migrated_path}")
    try:
        fast.upgrade()  # empty SQLite: from the models, no Alembic
        command.upgrade(migrated.alembic_config(), "heads")  # the migrations
        fast.upgrade()  # at the heads: nothing to do
        command.upgrade(fast.alembic_config(), "heads")  # and Alembic agrees: nothing to do
    finally:
        fast.dispose()
        migrated.dispose()
    got, wanted = _describe(fast_path), _describe(migrated_path)
    assert got.keys() == wanted.keys(), (sorted(got.keys() ^ wanted.keys()))
    for table in wanted:
        assert got[table] == wanted[table], f"table {table}: models {got[table]} != " \
                                            f"migrations {wanted[table]}"


def test_embedded_start_does_not_import_alembic(tmp_path: Path) -> None:
    code = ("import sys, stackcore\n"
            f"c = stackcore.Cloud(overrides={{'DEFAULT': {{'state_path': {str(tmp_path)!r}}}}})\n"
            "c.close()\n"
            "c = stackcore.Cloud(overrides={'DEFAULT': {'state_path': "
            f"{str(tmp_path)!r}}}}})\n"
            "c.close()\n"
            "print(sorted(m for m in ('alembic', 'jsonschema', 'numpy') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True).stdout
    assert out.strip().splitlines()[-1] == "[]", out
