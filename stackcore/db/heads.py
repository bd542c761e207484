"""The revisions ``alembic_version`` holds once every family's branch is migrated to its
newest revision - computed when the migrations are written, not at every start-up.

Reading them from the migration scripts means importing Alembic and every revision file (about
a hundred milliseconds of every ``Cloud()``); with them here, a start-up on a database that is
already current never imports Alembic, and a fresh embedded SQLite database is created from the
models in one transaction and stamped with them (:meth:`stackcore.db.api.Database.upgrade`).
``tests/unit/test_db_heads.py`` fails when this list and the migrations disagree; after adding
a revision, regenerate it:

    python -m stackcore.db.heads
"""

from __future__ import annotations

#: :func:`stackcore.db.schema.expected_heads` of the migrations in this tree
HEADS: frozenset[str] = frozenset({"compute_0002", "image_0004", "network_0003", "volume_0004"})


def _write() -> None:  # pragma: no cover - a maintainer's tool
    import re
    import tempfile

    from stackcore.db import api, schema

    with tempfile.TemporaryDirectory() as tmp:
        db = api.Database(f"sqlite:///{tmp}/heads.sqlite")
        heads = sorted(schema.expected_heads(db))
        db.dispose()
    with open(__file__, encoding="utf-8") as handle:
        text = handle.read()
    listed = ", ".join(f'"{h}"' for h in heads)
    line = "HEADS: frozenset[str] = frozenset({" + listed + "})"
    text = re.sub(r"^HEADS: .*$", line, text, count=1, flags=re.MULTILINE)
    with open(__file__, "w", encoding="utf-8") as handle:
        handle.write(text)
    print(f"HEADS = {heads}")


if __name__ == "__main__":
    _write()
