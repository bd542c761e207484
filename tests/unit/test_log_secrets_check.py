"""The check that greps a run's logs for its secrets can fail (tests/logsecrets.py)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from stackcore.logs import SecretFilter
from tests import logsecrets


def _run(folder: Path, log: str, chap: list[str]) -> int:
    (folder / "pytest-1.log").write_text(log)
    (folder / "secrets-1.txt").write_text("".join(f"{c}\n" for c in chap))
    return logsecrets.check(folder)


def test_a_logged_chap_secret_fails_the_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = _run(tmp_path, "x INFO stackcore a\nx DEBUG tgt CHAP s3cretCHAPvalue1 for target\n",
              ["s3cretCHAPvalue1"])
    out = capsys.readouterr().out
    assert rc == 1, out
    assert "pytest-1.log:2: a CHAP secret appears" in out, out
    assert "s3cretCHAPvalue1" not in out, f"the report itself leaks the secret: {out}"


def test_a_database_password_fails_the_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("STACKCORE_TEST_PG_URL", "postgresql://u:pgPassw0rd@127.0.0.1/db")
    rc = _run(tmp_path, "x ERROR stackcore.db cannot reach postgresql://u:pgPassw0rd@127.0.0.1/db\n", ["abc"])
    assert rc == 1
    assert "the password in $STACKCORE_TEST_PG_URL appears" in capsys.readouterr().out


def test_masked_lines_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record = logging.LogRecord("stackcore_drivers.volume.tgt", logging.DEBUG, __file__, 1,
                               "export %s", ({"auth_password": "s3cretCHAPvalue1"},), None)
    SecretFilter().filter(record)
    rc = _run(tmp_path, f"x DEBUG tgt {record.getMessage()}\n", ["s3cretCHAPvalue1"])
    assert rc == 0, capsys.readouterr().out


@pytest.mark.parametrize(("log", "chap", "why"), [
    ("", ["s3cret"], "nothing was logged"),
    ("x INFO stackcore a\n", [], "no CHAP secret was generated"),
])
def test_a_check_that_saw_nothing_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        log: str, chap: list[str], why: str) -> None:
    assert _run(tmp_path, log, chap) == 1
    assert why in capsys.readouterr().out
