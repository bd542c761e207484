"""pytest plugin: tests that need the full-kernel test guest (tests/guest/vm.py).

Two kinds of tests use the guest, both selected with ``-m guest``:

* ``@pytest.mark.guest("device-mapper")`` - the test **runs inside the guest**, where the
  kernel feature it names exists (device-mapper, 802.1q, the OVS kernel datapath, the iSCSI
  initiator, the NFS client). On the host such tests are not run one by one: the first one
  reached starts ONE pytest inside the guest for all of them (same node ids, same repository,
  the guest's environment from ``tools/guest/setup.sh``), and each test's reports come back
  through the guest's writable share and are reported here as if they had run here.
* tests that take the ``guest`` fixture (and carry the marker, with no reason needed) **run on
  the host and drive the guest**: ``guest.run([...])`` runs a command inside it - e.g. the
  host's tgtd and nfs-ganesha serve, the guest attaches with os-brick.

One guest per test session: booted on first use (40-65 s under TCG on a busy machine), powered
off when the session ends. Without ``--guest`` these tests are deselected (the unit tier runs
without them; ``tools/tiers/guest.sh`` runs ``pytest -m guest --guest``), and the terminal
summary says how many and how to run them. Inside the guest (``STACKCORE_TEST_IN_GUEST=1``)
every test given runs normally.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.guest.vm import REPO, Guest, GuestError

IN_GUEST = os.environ.get("STACKCORE_TEST_IN_GUEST") == "1"
_GUEST_KEY = pytest.StashKey["_GuestSession"]()
_DESELECTED_KEY = pytest.StashKey[int]()
#: The in-guest pytest run of every delegated test: its timeout (seconds).
BATCH_TIMEOUT = 3600


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("stackcore-guest", "the full-kernel test guest")
    group.addoption("--guest", action="store_true",
                    help="boot the full-kernel guest (once per session) and run the tests "
                    "marked guest; without it they are deselected")
    group.addoption("--guest-results", metavar="DIR",
                    help="copy the conformance results the guest tests leave in the share "
                    "(results/*.json) into DIR when the session ends")
    group.addoption("--guest-report", metavar="PATH",
                    help="(inside the guest) append each test report to PATH as JSON lines")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "guest(feature): needs the full-kernel test guest: runs inside it (or, "
        "with the guest fixture, drives it from the host); feature names what only the guest "
        "kernel has")
    config.stash[_GUEST_KEY] = _GuestSession(config)
    config.stash[_DESELECTED_KEY] = 0


def _drives(item: pytest.Item) -> bool:
    return "guest" in getattr(item, "fixturenames", ())


def _inside(item: pytest.Item) -> bool:
    return item.get_closest_marker("guest") is not None and not _drives(item)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if IN_GUEST:
        return
    for item in items:
        if _drives(item) and item.get_closest_marker("guest") is None:
            item.add_marker(pytest.mark.guest)
    if config.getoption("--guest"):
        return
    kept = [i for i in items if i.get_closest_marker("guest") is None]
    dropped = [i for i in items if i.get_closest_marker("guest") is not None]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
        config.stash[_DESELECTED_KEY] = len(dropped)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    count = config.stash.get(_DESELECTED_KEY, 0)
    if count:
        terminalreporter.write_line(
            f"{count} test(s) need the full-kernel guest and were deselected: run them with "
            "`pytest -m guest --guest` (tools/tiers/guest.sh)")
    session = config.stash.get(_GUEST_KEY, None)
    if session is not None and session.figures is not None:
        # (the guest is off by now: the session finished before the terminal summary)
        boot, setup = session.figures
        terminalreporter.write_line(
            f"guest: booted in {boot:.1f} s, set up in {setup:.1f} s; "
            f"in-guest pytest {session.batch_seconds:.1f} s; log {session.log_path}")


def pytest_sessionfinish(session: pytest.Session) -> None:
    guest_session = session.config.stash.get(_GUEST_KEY, None)
    if guest_session is not None:
        guest_session.close(failed=session.testsfailed > 0)


# --- the guest, shared by the fixture and the delegated tests ----------------------------------


class _GuestSession:
    """The session's one guest (booted on first use) and the in-guest batch of tests."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.guest: Guest | None = None
        self.boot_error: str | None = None
        self._lock = threading.Lock()
        self.batch: threading.Thread | None = None
        self.batch_done = threading.Event()
        self.batch_result: Any = None
        self.batch_seconds = 0.0
        self.reports: dict[str, list[dict[str, Any]]] = {}
        self._offset = 0
        self.report_path: Path | None = None
        self.log_path: Path | None = None
        #: (boot seconds, set-up seconds) of the guest, kept for the summary after close
        self.figures: tuple[float, float] | None = None

    def get(self) -> Guest:
        with self._lock:
            if self.guest is None and self.boot_error is None:
                try:
                    self.guest = Guest.boot()
                except GuestError as err:
                    self.boot_error = str(err)
            if self.guest is None:
                raise GuestError(f"the test guest did not boot: {self.boot_error}")
            return self.guest

    def start_batch(self, items: list[pytest.Item]) -> None:
        guest = self.get()
        self.report_path = guest.share / "reports.jsonl"
        self.log_path = guest.share / "pytest.log"
        nodeids = [item.nodeid for item in items]
        argv = [str(REPO / ".venv" / "bin" / "python"), "-m", "pytest", "-p", "no:cacheprovider",
                "-rfEs", "-v", "--guest-report", str(self.report_path),
                "--junitxml", str(guest.share / "junit.xml"), *nodeids]

        def run() -> None:
            started = time.monotonic()
            try:
                self.batch_result = guest.run(
                    ["bash", "-c", 'exec "$@" >"$0" 2>&1', str(self.log_path), *argv],
                    timeout=BATCH_TIMEOUT)
            except GuestError as err:
                self.batch_result = err
            finally:
                self.batch_seconds = time.monotonic() - started
                self.batch_done.set()

        self.batch = threading.Thread(target=run, name="guest-pytest", daemon=True)
        self.batch.start()

    def _read_reports(self) -> None:
        assert self.report_path is not None
        try:
            with open(self.report_path, encoding="utf-8") as handle:
                handle.seek(self._offset)
                while True:
                    line = handle.readline()
                    if not line.endswith("\n"):
                        break  # a line still being written
                    self._offset = handle.tell()
                    data = json.loads(line)
                    self.reports.setdefault(data["nodeid"], []).append(data)
        except FileNotFoundError:
            pass

    def reports_of(self, nodeid: str) -> list[dict[str, Any]] | None:
        """The item's three reports once its teardown has been reported, None if the batch
        ended without them."""
        while True:
            done = self.batch_done.is_set()
            self._read_reports()
            found = self.reports.get(nodeid, [])
            if any(r.get("when") == "teardown" for r in found):
                return found
            if done:
                return found or None
            self.batch_done.wait(0.5)

    def close(self, failed: bool) -> None:
        results = self.config.getoption("--guest-results")
        if self.guest is not None and results:
            os.makedirs(results, exist_ok=True)
            for found in sorted((self.guest.share / "results").glob("*.json")):
                if found.name != "run.json":
                    shutil.copy(found, os.path.join(results, found.name))
        if self.guest is not None:
            self.figures = (self.guest.boot_seconds, self.guest.setup_seconds)
            self.guest.close(keep=failed)
            self.guest = None


@pytest.fixture(scope="session")
def guest(request: pytest.FixtureRequest) -> Iterator[Guest]:
    """The session's full-kernel guest (booted on first use, powered off at the end of the
    session): ``guest.run(argv, env=..., timeout=...)`` runs a command in it."""
    if IN_GUEST:
        pytest.fail("the guest fixture is for the host; this test already runs in the guest")
    session = request.config.stash[_GUEST_KEY]
    try:
        yield session.get()
    except GuestError as err:
        pytest.fail(str(err), pytrace=False)


# --- running the marked tests inside the guest ----------------------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
    if IN_GUEST or not _inside(item):
        return None
    session: _GuestSession = item.config.stash[_GUEST_KEY]
    ihook = item.ihook
    ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    try:
        if session.batch is None:
            session.start_batch([i for i in item.session.items if _inside(i)])
        found = session.reports_of(item.nodeid)
    except GuestError as err:
        found = None
        session.boot_error = session.boot_error or str(err)
    if found:
        for data in found:
            report = item.config.hook.pytest_report_from_serializable(config=item.config,
                                                                       data=data)
            ihook.pytest_runtest_logreport(report=report)
    else:
        ihook.pytest_runtest_logreport(report=_failed(item, session))
    # What pytest's own teardown step would do: finalise the fixtures of the collectors (a
    # package, a module) the next item is not in. An item delegated here sets nothing up, but
    # a host-run item before it left its package's and session's state on the stack, which the
    # next host-run item's setup refuses unless it shares those collectors ("previous item was
    # not torn down properly"). (The teardown hook itself cannot be called: plugins such as
    # logging expect the setup they did for the item.)
    info = pytest.CallInfo.from_call(
        lambda: item.session._setupstate.teardown_exact(nextitem), "teardown")
    if info.excinfo is not None:  # a finaliser failed: reported as pytest would
        ihook.pytest_runtest_logreport(report=pytest.TestReport.from_item_and_call(item, info))
    ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True


def _failed(item: pytest.Item, session: _GuestSession) -> pytest.TestReport:
    if session.boot_error:
        why = session.boot_error
    else:
        result = session.batch_result
        tail = ""
        if session.log_path is not None and session.log_path.exists():
            tail = "\n".join(session.log_path.read_text(errors="replace").splitlines()[-60:])
        why = (f"no result from the guest for this test (in-guest pytest: {result!r}); "
               f"last lines of {session.log_path}:\n{tail}")
    return pytest.TestReport(item.nodeid, item.location, {k: 1 for k in item.keywords},
                             "failed", why, "call", [], 0.0)


# --- inside the guest: write every report for the host ---------------------------------------


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if not IN_GUEST:
        return
    config = _CONFIG.get("config")
    if config is None:
        return
    path = config.getoption("--guest-report")
    if not path:
        return
    data = config.hook.pytest_report_to_serializable(config=config, report=report)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(data) + "\n")


_CONFIG: dict[str, pytest.Config] = {}


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    _CONFIG["config"] = session.config
