"""Migrations and models agree, on SQLite, PostgreSQL and MariaDB; URLs never leak passwords."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from stackcore.db import api as db_api
from stackcore.db.models import Base


def _diff(url: str) -> list:
    db = db_api.Database(url)
    try:
        db.upgrade()
        # env.py imports every family's models; import it the same way for the comparison.
        import importlib

        for module in ("stackcore.db.models", "stackcore.network.models", "stackcore.volume.models"):
            try:
                importlib.import_module(module)
            except ModuleNotFoundError:
                pass
        with db.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return compare_metadata(context, Base.metadata)
    finally:
        db.dispose()


def test_migrations_match_models_sqlite(tmp_path) -> None:
    assert _diff(f"sqlite:///{tmp_path}/m.sqlite") == []


@pytest.mark.postgres
def test_migrations_match_models_postgresql(pg_url) -> None:
    assert _diff(pg_url) == []


@pytest.mark.mysql
def test_migrations_match_models_mariadb(mysql_url) -> None:
    assert _diff(mysql_url) == []


def test_upgrade_is_repeatable(tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/r.sqlite"
    for _ in range(2):
        db = db_api.Database(url)
        db.upgrade()
        db.dispose()


def test_redact_hides_password() -> None:
    assert "s3cret" not in db_api.redact("postgresql://u:s3cret@h/db")
    assert db_api.redact("postgresql://u:s3cret@h/db").startswith("postgresql://u:***@h/db")


def test_bad_url_is_a_config_error_without_password() -> None:
    from stackcore import exception

    with pytest.raises(exception.ConfigError) as caught:
        db_api.Database("nosuchdialect://u:s3cret@h/db")
    assert "s3cret" not in str(caught.value)
