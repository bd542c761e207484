"""One process's kit run under a unittest runner: the driver under test, session fixtures,
per-test records and the JSON result written when the process ends.

Configuration comes from the environment (a unittest runner has no command-line options to
lend): ``STACKCORE_DRIVER`` (``FAMILY:NAME``, required), ``STACKCORE_CONFIG`` (oslo.config
files, separated by ``os.pathsep``), ``STACKCORE_SET`` (``GROUP.OPTION=VALUE`` settings
separated by ``;``), ``STACKCORE_RESULTS`` (the JSON result's path), ``STACKCORE_CONFORMANCE_RUN``
(the run id) and ``STACKCORE_SETTLE`` (seconds, default 20) - the same meaning as the pytest
plugin's ``--stackcore-*`` options.

The result is written by an ``atexit`` hook, after the session fixtures' teardowns (as pytest
tears them down before its session ends), and only when this process ran kit tests: a stestr
worker that ran none, or ``stestr list``, writes nothing. All the kit's tests must therefore
run in one process (``group_regex`` in ``.stestr.conf``, see the docs).
"""

from __future__ import annotations

import atexit
import json
import os
from collections.abc import Callable, Mapping
from typing import Any

from stackcore.exception import StackcoreError
from stackcore.testing import harness, plugin
from stackcore.testing.xunit import fixtures

DRIVER_ENV = "STACKCORE_DRIVER"


class NoDriverSelected(StackcoreError):
    """STACKCORE_DRIVER is not set (or the driver could not be built)."""


class Session:
    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = dict(environ)
        self.spec = self.environ.get(DRIVER_ENV, "")
        self.records: dict[str, dict[str, Any]] = {}
        self.started = plugin.now()
        self.scope = fixtures.Scope()
        self.tmp = fixtures.TmpPathFactory()
        self.last: str | None = None
        self._target: harness.DriverUnderTest | None = None
        self._error: StackcoreError | None = None

    @property
    def family(self) -> str | None:
        """The family of ``STACKCORE_DRIVER`` (known without loading the driver)."""
        return self.spec.partition(":")[0] or None

    def target(self) -> harness.DriverUnderTest:
        """The driver under test, built once; a configuration error fails every test alike."""
        if self._target is None and self._error is None:
            if not self.spec:
                self._error = NoDriverSelected(
                    f"no driver selected: set {DRIVER_ENV}=FAMILY:NAME (e.g. compute:fake)")
            else:
                files = [p for p in self.environ.get("STACKCORE_CONFIG", "").split(os.pathsep)
                         if p]
                settings = [s.strip() for s in self.environ.get("STACKCORE_SET", "").split(";")
                            if s.strip()]
                try:
                    self._target = harness.DriverUnderTest.from_spec(self.spec, files, settings)
                except StackcoreError as err:
                    self._error = NoDriverSelected(
                        f"stackcore conformance: {type(err).__name__}: {err}")
        if self._error is not None:
            raise self._error
        assert self._target is not None
        return self._target

    def settle(self) -> float:
        return float(self.environ.get("STACKCORE_SETTLE", "20"))

    def provided(self) -> dict[str, Callable[[], Any]]:
        """The kit's own fixtures (the pytest plugin's ``stackcore_*``)."""
        return {"stackcore_target": self.target, "stackcore_settle": self.settle}

    def record(self, nodeid: str, feature: str) -> dict[str, Any]:
        self.last = nodeid
        return self.records.setdefault(
            nodeid, {"feature": feature, "outcome": None, "message": "", "phase": ""})

    def finish(self) -> str | None:
        """Tear the session fixtures down, write the JSON result; return its path (if any)."""
        errors = self.scope.close()
        if errors and self.last is not None:  # as pytest: against the last test that ran
            record = self.records[self.last]
            text = "teardown: " + plugin.exconly(errors[0])
            record.update(outcome="fail", phase="teardown",
                          message=f"{record['message']}; {text}" if record["message"] else text)
        self.tmp.close()
        if self._target is None:
            return None
        try:
            if not self.records:
                return None
            run = self.environ.get("STACKCORE_CONFORMANCE_RUN", "")
            document = plugin.result_document(self._target, self.records, run, self.started)
            path = self.environ.get("STACKCORE_RESULTS") or os.path.join(
                ".stackcore-conformance", f"{self._target.family}-{self._target.name}.json")
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            with open(path, "w", encoding="utf-8") as handle:
                json.dump(document, handle, indent=2, sort_keys=True)
                handle.write("\n")
            return path
        finally:
            self._target.close()


_current: Session | None = None


def current() -> Session:
    """This process's session (made, and its end registered with atexit, on first use)."""
    global _current
    if _current is None:
        _current = Session(os.environ)
        atexit.register(_current.finish)
    return _current


def reset(environ: Mapping[str, str]) -> Session:
    """Start a new session (for tests of the runner itself); the previous one is finished."""
    global _current
    if _current is not None:
        atexit.unregister(_current.finish)
        _current.finish()
    _current = Session(environ)
    atexit.register(_current.finish)
    return _current
