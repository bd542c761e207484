"""Alembic environment: runs against the engine the Database handed over (never a URL in a file)."""

from alembic import context

from stackcore.compute import models as compute_models  # noqa: F401 - compute wiring tables
from stackcore.db import models  # noqa: F401 - registers the core tables
from stackcore.db.models import Base
from stackcore.network import models as network_models  # noqa: F401 - network tables
from stackcore.scheduler import models as scheduler_models  # noqa: F401 - scheduler tables
from stackcore.volume import models as volume_models  # noqa: F401 - volume tables

config = context.config
engine = config.attributes["engine"]

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
