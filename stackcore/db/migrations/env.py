"""Alembic environment: runs against the engine the Database handed over (never a URL in a file).

Every registered family's models are imported so that ``Base.metadata`` holds all tables
(autogenerate compares against it); each family's revisions live in its own folder
(``stackcore/<family>/migrations``), listed by :meth:`stackcore.db.api.Database.alembic_config`.
"""

import importlib

from alembic import context

from stackcore import families
from stackcore.db.models import Base

for family in families.all_families():
    for module in family.models:
        importlib.import_module(module)

config = context.config
engine = config.attributes["engine"]

with engine.connect() as connection:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # Batch migrations rebuild a SQLite table (copy, drop, rename): with foreign keys on,
        # dropping the old table would cascade into its children. Off for the migration (on a
        # raw connection: the pragma is ignored inside a transaction), checked after.
        connection.connection.dbapi_connection.execute("PRAGMA foreign_keys=OFF")
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
    if sqlite:
        raw = connection.connection.dbapi_connection
        broken = raw.execute("PRAGMA foreign_key_check").fetchall()
        raw.execute("PRAGMA foreign_keys=ON")
        if broken:
            raise RuntimeError(f"the migration left rows breaking foreign keys: {broken[:5]}")
