"""The database's lifecycle on PostgreSQL, through the console script: a service started with
``[database] auto_migrate = false`` on a new database refuses to start and creates nothing;
``stackcore db check | sync | version`` say where the schema is and migrate it; then the same
service starts. The database's password is never printed."""

from __future__ import annotations

import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from stackcore.cli.main import main
from stackcore.db import heads

pytestmark = [pytest.mark.postgres]

HEADS = ", ".join(sorted(heads.HEADS))


def _stackcore(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stackcore.cli.main", *argv],
                          capture_output=True, text=True, timeout=120, check=False)


def _in_process(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``stackcore ARGV`` run by this interpreter (the db commands return; a service exits)."""
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def _tables(url: str) -> list[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return sorted(sa.inspect(conn).get_table_names())
    finally:
        engine.dispose()


def test_auto_migrate_off_refuses_an_empty_database_until_db_sync(
        pg_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parsed = sa.make_url(pg_url)
    assert parsed.password, f"the test server's URL has no password to hide: {parsed!r}"
    secret = f":{parsed.password}@"
    shown = parsed.render_as_string(hide_password=True)
    config = tmp_path / "scheduler.conf"
    config.write_text(f"[DEFAULT]\nstate_path = {tmp_path / 'state'}\n"
                      f"[database]\nconnection = {pg_url}\nauto_migrate = false\n")

    service = _stackcore("service", "scheduler", "--config-file", str(config))
    assert service.returncode == 1, service
    assert service.stderr.strip().splitlines()[-1] == (
        f"stackcore service scheduler: the database {shown} is empty (never migrated): migrate "
        "it (`stackcore db sync --config-file FILE`, or `[database] auto_migrate = true`, the "
        "default) before starting with auto_migrate off"), service.stderr
    assert _tables(pg_url) == [], "a service refusing to start created tables"

    status, out, err = _in_process(capsys, "db", "check", "--config-file", str(config))
    assert (status, out) == (1, ""), (status, out, err)
    assert f"the database {shown} is empty (never migrated)" in err, err
    printed = out + err

    status, out, err = _in_process(capsys, "db", "sync", "--config-file", str(config))
    assert (status, err, out.strip()) == (
        0, "", f"database {shown}: migrated from none (never migrated) to the heads: {HEADS}"), \
        (status, out, err)
    printed += out + err
    status, out, err = _in_process(capsys, "db", "version", "--config-file", str(config))
    assert (status, out.splitlines()) == (
        0, [f"database  {shown}", f"current   {HEADS}", f"heads     {HEADS}", "at heads  yes"]), \
        (status, out, err)
    printed += out + err + service.stdout + service.stderr
    assert secret not in printed, f"the password was printed: {printed}"

    # migrated: the same service, auto_migrate still off, starts
    log = tmp_path / "scheduler.log"
    with open(log, "w") as errors:  # a file: a pipe nobody reads could fill and block it
        proc = subprocess.Popen([sys.executable, "-m", "stackcore.cli.main", "service",
                                 "scheduler", "--config-file", str(config)],
                                stdout=subprocess.PIPE, stderr=errors, text=True)
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        line = proc.stdout.readline() if ready else ""
        assert line == "stackcore scheduler service running\n", \
            (line, proc.poll(), log.read_text()[-3000:])
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert proc.returncode == 0, (proc.returncode, log.read_text()[-3000:])
    assert secret not in log.read_text(), f"the service logged the password: {log.read_text()}"
