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
HEADS: frozenset[str] = frozenset({
    "base_0002", "compute_0006", "image_0004", "network_0006", "volume_0005",
})


def _write() -> None:  # pragma: no cover - a maintainer's tool
    import re
    import tempfile
    import textwrap

    from stackcore.db import api, schema

    with tempfile.TemporaryDirectory() as tmp:
        db = api.Database(f"sqlite:///{tmp}/heads.sqlite")
        heads = sorted(schema.expected_heads(db))
        db.dispose()
    with open(__file__, encoding="utf-8") as handle:
        text = handle.read()
    listed = textwrap.fill(", ".join(f'"{h}"' for h in heads) + ",", width=96,
                           initial_indent="    ", subsequent_indent="    ")
    block = "HEADS: frozenset[str] = frozenset({\n" + listed + "\n})"
    text = re.sub(r"^HEADS: .*?\}\)$", lambda _: block, text, count=1,
                  flags=re.MULTILINE | re.DOTALL)
    with open(__file__, "w", encoding="utf-8") as handle:
        handle.write(text)
    print(f"HEADS = {heads}")


if __name__ == "__main__":
    _write()
