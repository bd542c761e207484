"""``stackcore db sync | version | check`` on SQLite (PostgreSQL, and a service refusing an
unmigrated database: tests/functional/test_db_cli.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from stackcore.cli.main import main
from stackcore.db import api as db_api
from stackcore.db import heads
from stackcore.db.schema import current_heads

HEADS = ", ".join(sorted(heads.HEADS))


def _config(tmp_path: Path, body: str) -> str:
    path = tmp_path / "stackcore.conf"
    path.write_text(body)
    return str(path)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_sync_version_check_on_a_new_state_path(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state"
    config = _config(tmp_path, f"[DEFAULT]\nstate_path = {state}\n")
    url = f"sqlite:///{state}/stackcore.sqlite"

    # looking creates nothing
    status, out, err = _run(capsys, "db", "version", "--config-file", config)
    assert (status, err) == (0, ""), (status, err)
    assert out.splitlines() == [f"database  {url}", "current   none (never migrated)",
                                f"heads     {HEADS}", "at heads  no"], out
    status, out, err = _run(capsys, "db", "check", "--config-file", config)
    assert (status, out) == (1, ""), (status, out, err)
    assert err.strip() == (
        f"stackcore db check: the database {url} is empty (never migrated): migrate it "
        "(`stackcore db sync --config-file FILE`, or `[database] auto_migrate = true`, the "
        "default) before starting with auto_migrate off"), err
    assert not state.exists(), sorted(p.name for p in state.iterdir())

    status, out, err = _run(capsys, "db", "sync", "--config-file", config)
    assert (status, err) == (0, ""), (status, err)
    assert out.strip() == (f"database {url}: migrated from none (never migrated) to the heads: "
                           f"{HEADS}"), out
    db = db_api.Database(url)
    assert current_heads(db) == set(heads.HEADS)
    db.dispose()

    status, out, err = _run(capsys, "db", "check", "--config-file", config)
    assert (status, out.strip(), err) == (0, f"database {url}: at the heads: {HEADS}", ""), \
        (status, out, err)
    status, out, _ = _run(capsys, "db", "version", "--config-file", config)
    assert out.splitlines()[1:] == [f"current   {HEADS}", f"heads     {HEADS}",
                                    "at heads  yes"], out
    status, out, _ = _run(capsys, "db", "sync", "--config-file", config)
    assert (status, out.strip()) == (0, f"database {url}: already at the heads: {HEADS}"), out


def test_sync_migrates_a_wave1_database(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path}/old.sqlite"
    old = db_api.Database(url)
    command.upgrade(old.alembic_config(legacy=True), "heads")
    wave1 = ", ".join(sorted(current_heads(old)))
    old.dispose()
    config = _config(tmp_path, f"[database]\nconnection = {url}\n")

    status, _, err = _run(capsys, "db", "check", "--config-file", config)
    assert status == 1, (status, err)
    assert f"is at {wave1}, this stackcore needs {HEADS}: migrate it" in err, err
    status, out, err = _run(capsys, "db", "sync", "--config-file", config)
    assert (status, out.strip(), err) == (
        0, f"database {url}: migrated from {wave1} to the heads: {HEADS}", ""), (status, out, err)
    status, _, err = _run(capsys, "db", "check", "--config-file", config)
    assert (status, err) == (0, ""), (status, err)


def test_without_a_database_in_the_config_file_says_so(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path, "[DEFAULT]\nreport_interval = 10\n")
    for sub in ("sync", "version", "check"):
        status, out, err = _run(capsys, "db", sub, "--config-file", config)
        assert (status, out) == (2, ""), (sub, status, out, err)
        assert err.strip() == (
            f"stackcore: ConfigError: {config} sets neither [database] connection nor [DEFAULT] "
            "state_path: there is no database to work on (a Cloud without them uses a "
            "temporary one)"), (sub, err)


def test_a_file_that_is_not_a_database_is_named(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "junk.sqlite"
    junk.write_text("not a database " * 100)
    config = _config(tmp_path, f"[database]\nconnection = sqlite:///{junk}\n")
    for sub in ("sync", "version", "check"):
        status, out, err = _run(capsys, "db", sub, "--config-file", config)
        assert (status, out) == (2, ""), (sub, status, out, err)
        assert err.startswith(f"stackcore: ConfigError: [database] connection sqlite:///{junk} "
                              "cannot be used as a database: file is not a database"), (sub, err)
    assert junk.read_text() == "not a database " * 100


def test_a_database_of_a_newer_stackcore_is_not_migrated(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path}/newer.sqlite"
    db = db_api.Database(url)
    db.upgrade()
    with db.engine.begin() as conn:  # as a later release would leave it
        conn.execute(sa.text("UPDATE alembic_version SET version_num = 'compute_9999' "
                             "WHERE version_num LIKE 'compute_%'"))
    recorded = ", ".join(sorted(current_heads(db)))
    db.dispose()
    config = _config(tmp_path, f"[database]\nconnection = {url}\n")

    status, _, err = _run(capsys, "db", "check", "--config-file", config)
    assert status == 1, (status, err)
    assert f"is at {recorded}, this stackcore needs {HEADS}" in err, err
    status, out, err = _run(capsys, "db", "sync", "--config-file", config)
    assert (status, out) == (2, ""), (status, out, err)
    assert err.strip() == (f"stackcore: ConfigError: [database] connection {url} cannot be "
                           "migrated: Can't locate revision identified by 'compute_9999'"), err
