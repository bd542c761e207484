"""No secret in a whole run's logs (issue 19): a pytest plugin that records, and a check that greps.

With ``STACKCORE_TEST_LOG_DIR`` set (the unit tier sets it), this plugin

* sends every record of stackcore's, its drivers' and os-brick's loggers, **DEBUG included**
  (where connection info and commands are logged), to ``pytest-<pid>.log`` in that folder,
  through the same :class:`stackcore.logs.SecretFilter` the services put on their handlers -
  the file holds what a service's log would hold;
* records every CHAP secret the tgt export helper generates during the run (the lvm driver's
  and the tests' targets) in ``secrets-<pid>.txt`` beside it.

After the run, ``python -m tests.logsecrets DIR`` greps every ``*.log`` of the folder for those
secrets and for the passwords in the test databases' and RabbitMQ's URLs
(``STACKCORE_TEST_*_URL``), prints the counts and exits 1 naming each line that holds one. It
also fails when nothing was logged or no CHAP secret was made: a check that saw nothing proves
nothing. The test Ceph cluster runs with ``auth = none``, so no cephx key exists to leak; if
``STACKCORE_TEST_CEPH_KEY`` is ever set, it is checked too.

Decision: in-process records only. Services the tests start as processes log to their own
standard error, which the tests read; sending them to files too would change what those tests
see. The drivers that handle secrets (tgt, libvirt volumes, os-brick) run in-process in the
tests that use them.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ENV = "STACKCORE_TEST_LOG_DIR"
LOGGERS = ("stackcore", "stackcore_drivers", "os_brick")
URL_VARIABLES = ("STACKCORE_TEST_PG_URL", "STACKCORE_TEST_PG_LAB_URL", "STACKCORE_TEST_MYSQL_URL",
                 "STACKCORE_TEST_RABBIT_URL", "STACKCORE_TEST_RABBIT_LAB_URL")


def pytest_configure(config: pytest.Config) -> None:
    folder = os.environ.get(ENV)
    if not folder:
        return
    from stackcore.logs import SecretFilter

    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path / f"pytest-{os.getpid()}.log", encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    handler.addFilter(SecretFilter())
    for name in LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)
    _record_chap_secrets(path / f"secrets-{os.getpid()}.txt")


def _record_chap_secrets(where: Path) -> None:
    try:
        from stackcore_drivers.volume import tgt
    except ImportError:  # a core-only install has no tgt driver, hence no CHAP secret
        return
    generate: Callable[[], tuple[str, str]] = tgt.generate_chap

    @functools.wraps(generate)
    def recording() -> tuple[str, str]:
        user, password = generate()
        with open(where, "a", encoding="utf-8") as out:
            out.write(password + "\n")
        return user, password

    tgt.generate_chap = recording  # type: ignore[assignment]


def run_secrets(folder: Path) -> dict[str, str]:
    """``{secret: what it is}`` for everything the run used.

    The test backends' passwords are their user names ("stackcore", a word every log line
    holds), so a password is looked for where it would be written as one: in a URL
    (``:PASSWORD@``) or as the value of a password key. CHAP secrets and keys are random and
    looked for anywhere."""
    found: dict[str, str] = {}
    for name in URL_VARIABLES:
        password = urlsplit(os.environ.get(name, "")).password
        if password:
            for shape in (":{}@", "password={}", "password': '{}'", 'password": "{}"',
                          "password = {}"):
                found[shape.format(password)] = f"the password in ${name}"
    if os.environ.get("STACKCORE_TEST_CEPH_KEY"):
        found[os.environ["STACKCORE_TEST_CEPH_KEY"]] = "the cephx key"
    for path in sorted(folder.glob("secrets-*.txt")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                found[line.strip()] = "a CHAP secret"
    return found


def leaks(lines: Iterable[tuple[str, int, str]], secrets: dict[str, str]) -> list[str]:
    """Each ``(file, line number, text)`` that holds a secret, as a message naming both."""
    return [f"{name}:{number}: {what} appears: {text.replace(secret, '<SECRET>')[:300]}"
            for name, number, text in lines
            for secret, what in secrets.items() if secret in text]


def _lines(folder: Path) -> Iterable[tuple[str, int, str]]:
    for path in sorted(folder.glob("*.log")):
        with open(path, encoding="utf-8", errors="replace") as handle:
            for number, text in enumerate(handle, 1):
                yield path.name, number, text.rstrip("\n")


def check(folder: Path) -> int:
    secrets = run_secrets(folder)
    lines = 0

    def counting() -> Iterable[tuple[str, int, str]]:
        nonlocal lines
        for item in _lines(folder):
            lines += 1
            yield item

    found = leaks(counting(), secrets)
    chap = sum(1 for what in secrets.values() if what == "a CHAP secret")
    others = len(set(secrets.values())) - (1 if chap else 0)
    print(f"   {lines} log lines in {len(list(folder.glob('*.log')))} file(s) checked for "
          f"{chap} CHAP secrets and {others} passwords/keys: {len(found)} found")
    problems = list(found)
    if not lines:
        problems.append(f"nothing was logged in {folder}: the check saw nothing")
    if not chap:
        problems.append("no CHAP secret was generated during the run: the check proves nothing")
    for problem in problems:
        print(f"!! {problem}")
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m tests.logsecrets DIR", file=sys.stderr)
        return 2
    return check(Path(args[0]))


if __name__ == "__main__":
    sys.exit(main())
