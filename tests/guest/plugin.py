"""pytest plugin: tests that need the full-kernel test guest (tests/guest/vm.py).

Two kinds of tests use the guest, both selected with ``-m guest``:

* ``@pytest.mark.guest("device-mapper")`` - the test **runs inside the guest**, where the
  kernel feature it names exists (device-mapper, 802.1q, the OVS kernel datapath, the iSCSI
  initiator, the NFS client). On the host such tests are not run one by one: the first one
  reached starts ONE pytest inside the guest for all of them (same node ids, same repository,
  the guest's environment from ``tools/guest/setup.sh``), and each test's reports come back
  through the guest's writable share and are reported here as if they had run here.
  ``@pytest.mark.guest("device-mapper", concurrent=True)``: the test gets an in-guest pytest
  of its own, started when the session reaches its first guest test and running at the same
  time as all the others - for a long test that shares no state with them (the lvm
  conformance suite: its own volume group and iSCSI target prefix).
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
import re
import shutil
import threading
import time
from collections.abc import Iterator
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
                    "(results/*.json, and their output, *.log) into DIR when the session ends")
    group.addoption("--guest-report", metavar="PATH",
                    help="(inside the guest) append each test report to PATH as JSON lines")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "guest(feature): needs the full-kernel test guest: runs inside it (or, "
        "with the guest fixture, drives it from the host); feature names what only the guest "
        "kernel has; concurrent=True: in an in-guest pytest of its own, alongside the others")
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
        batches = ", ".join(f"{name} {seconds:.1f} s"
                            for name, seconds in sorted(session.batch_seconds.items()))
        terminalreporter.write_line(
            f"guest: booted in {boot:.1f} s, set up in {setup:.1f} s; "
            f"in-guest pytest runs (at the same time): {batches or 'none'}")


def pytest_sessionfinish(session: pytest.Session) -> None:
    guest_session = session.config.stash.get(_GUEST_KEY, None)
    if guest_session is not None:
        guest_session.close(failed=session.testsfailed > 0)


# --- the guest, shared by the fixture and the delegated tests ----------------------------------


class _Batch:
    """One pytest run inside the guest, of the given delegated tests, in a thread of its own;
    each test's reports come back as JSON lines in ``report_path`` (the share)."""

    def __init__(self, guest: Guest, name: str, nodeids: list[str]) -> None:
        self.report_path = guest.share / f"reports-{name}.jsonl"
        self.log_path = guest.share / f"pytest-{name}.log"
        self.done = threading.Event()
        self.result: Any = None
        self.seconds = 0.0
        self.reports: dict[str, list[dict[str, Any]]] = {}
        self._offset = 0
        argv = [str(REPO / ".venv" / "bin" / "python"), "-m", "pytest", "-p", "no:cacheprovider",
                "-rfEs", "-v", "--guest-report", str(self.report_path),
                "--junitxml", str(guest.share / f"junit-{name}.xml"), *nodeids]

        def run() -> None:
            started = time.monotonic()
            try:
                self.result = guest.run(
                    ["bash", "-c", 'exec "$@" >"$0" 2>&1', str(self.log_path), *argv],
                    timeout=BATCH_TIMEOUT)
            except GuestError as err:
                self.result = err
            finally:
                self.seconds = time.monotonic() - started
                self.done.set()

        self.thread = threading.Thread(target=run, name=f"guest-pytest-{name}", daemon=True)
        self.thread.start()

    def _read_reports(self) -> None:
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
            done = self.done.is_set()
            self._read_reports()
            found = self.reports.get(nodeid, [])
            if any(r.get("when") == "teardown" for r in found):
                return found
            if done:
                return found or None
            self.done.wait(0.5)

    def log_tail(self, lines: int = 60) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


class _GuestSession:
    """The session's one guest (booted on first use) and its in-guest pytest batches: one of
    every delegated test in collection order ("shared"), and one of its own for each test
    marked ``guest(..., concurrent=True)``, started as soon as the session reaches its first
    guest test and running alongside everything else (the lvm conformance suite: half the
    tier's time, on a volume group and target prefix of its own)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.guest: Guest | None = None
        self.boot_error: str | None = None
        self._lock = threading.Lock()
        self.batches: dict[str, _Batch] = {}  # batch name -> batch
        #: (boot seconds, set-up seconds) of the guest, kept for the summary after close
        self.figures: tuple[float, float] | None = None
        self.batch_seconds: dict[str, float] = {}

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

    def start_concurrent(self, items: list[pytest.Item]) -> None:
        """Start the batch of each ``concurrent`` delegated test not started yet."""
        for item in items:
            name = _concurrent_name(item)
            if _inside(item) and name is not None and name not in self.batches:
                self.batches[name] = _Batch(self.get(), name, [item.nodeid])

    def batch_of(self, item: pytest.Item) -> _Batch:
        """The batch that runs ``item`` (the shared one started on first need)."""
        name = _concurrent_name(item)
        if name is not None:
            self.start_concurrent([item])
            return self.batches[name]
        if "shared" not in self.batches:
            self.batches["shared"] = _Batch(
                self.get(), "shared",
                [i.nodeid for i in item.session.items
                 if _inside(i) and _concurrent_name(i) is None])
        return self.batches["shared"]

    def close(self, failed: bool) -> None:
        # (each batch has ended: the session waited for its tests' reports; one whose tests
        # were never reached, after -x or an interrupt, ends with the guest)
        self.batch_seconds = {name: b.seconds for name, b in self.batches.items()}
        results = self.config.getoption("--guest-results")
        if self.guest is not None and results:
            os.makedirs(results, exist_ok=True)
            for found in sorted((self.guest.share / "results").iterdir()):
                # the suites' results and their output (*.log)
                if found.suffix in (".json", ".log") and found.name != "run.json":
                    shutil.copy(found, os.path.join(results, found.name))
        if self.guest is not None:
            self.figures = (self.guest.boot_seconds, self.guest.setup_seconds)
            self.guest.close(keep=failed)
            self.guest = None


def _concurrent_name(item: pytest.Item) -> str | None:
    """The name of the in-guest batch of its own a ``guest(..., concurrent=True)`` test runs
    in; None for the others."""
    marker = item.get_closest_marker("guest")
    if marker is None or not marker.kwargs.get("concurrent"):
        return None
    # one per test (two concurrent tests of one module get two batches), usable in file names
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", item.nodeid.rsplit("/", 1)[-1].replace(".py::", "-"))


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
    if IN_GUEST or item.get_closest_marker("guest") is None:
        return None
    if not _inside(item):  # drives the guest: the concurrent batches run meanwhile
        try:
            item.config.stash[_GUEST_KEY].start_concurrent(item.session.items)
        except GuestError:
            pass  # the guest fixture reports it
        return None
    session: _GuestSession = item.config.stash[_GUEST_KEY]
    ihook = item.ihook
    ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    batch = None
    try:
        session.start_concurrent(item.session.items)
        batch = session.batch_of(item)
        found = batch.reports_of(item.nodeid)
    except GuestError as err:
        found = None
        session.boot_error = session.boot_error or str(err)
    if found:
        for data in found:
            report = item.config.hook.pytest_report_from_serializable(config=item.config,
                                                                       data=data)
            ihook.pytest_runtest_logreport(report=report)
    else:
        ihook.pytest_runtest_logreport(report=_failed(item, session, batch))
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


def _failed(item: pytest.Item, session: _GuestSession, batch: _Batch | None
            ) -> pytest.TestReport:
    if session.boot_error or batch is None:
        why = session.boot_error or "the test guest did not boot"
    else:
        why = (f"no result from the guest for this test (in-guest pytest: {batch.result!r}); "
               f"last lines of {batch.log_path}:\n{batch.log_tail()}")
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
