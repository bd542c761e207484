"""Fixtures of the backend-fault tests: PRIVATE backend instances the tests kill and restart.

The shared backends of ``tools/backends/up.sh`` serve other tests and other people at the same
time (and a nested guest uses the host's tgtd and ganesha): they are never stopped here. Each
test starts its own instance with ``tools/backends/private.sh`` (postgres, rabbitmq, tgt, nfs,
ceph), ``tools/backends/ovs-instance.sh`` (ovs) or a libvirtd in its own mount namespace, kills
it as a crash would in the middle of work, starts it again with the data it had, and checks
what the services made of it.

Each test prints the recovery time of its backend: from the moment the restarted backend
answers again to the first operation through stackcore that succeeds (the services reconnect by
themselves; nothing is restarted but the backend). The figures are also listed at the end of
the run.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]
PRIVATE = REPO / "tools" / "backends" / "private.sh"
OVS_INSTANCE = REPO / "tools" / "backends" / "ovs-instance.sh"
#: where ovs-instance.sh keeps an instance's database and run directory (``ovs-NAME``);
#: ``--stop`` leaves it, the tests' instances (unique names) delete it
OVS_STATE = Path("/var/lib/stackcore-backends")

#: (backend, what was measured, seconds) of this session, for the summary
RECOVERIES: list[tuple[str, str, float]] = []
_names = itertools.count(1)


def _run(*cmd: str, timeout: float = 300) -> str:
    result = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout,
                            check=False)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stderr[-3000:]}",
                    pytrace=False)
    return result.stdout


@dataclass
class PrivateBackend:
    """One private instance of ``tools/backends/private.sh``."""

    kind: str
    name: str
    env: dict[str, str] = field(default_factory=dict)

    def start(self) -> dict[str, str]:
        """Start it (again: with the data it had); its variables (URL, PORT, ...)."""
        out = _run("bash", str(PRIVATE), self.kind, "start", self.name)
        self.env = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        return self.env

    def kill(self) -> None:
        """Kill it as a crash would (SIGKILL; PostgreSQL: immediate shutdown)."""
        _run("bash", str(PRIVATE), self.kind, "kill", self.name)

    def freeze(self) -> None:
        """nfs only: make it stop answering, its connections left open (SIGSTOP)."""
        _run("bash", str(PRIVATE), self.kind, "freeze", self.name)

    def thaw(self) -> None:
        """nfs only: let a frozen instance answer again (SIGCONT)."""
        _run("bash", str(PRIVATE), self.kind, "thaw", self.name)

    def stop(self) -> None:
        """Stop it and delete its state."""
        _run("bash", str(PRIVATE), self.kind, "stop", self.name)

    def queues(self) -> str:
        """RabbitMQ only: its queues with their consumers and messages (for failure reports:
        a service's queue left without a consumer is a subscription lost in a reconnect)."""
        try:
            return _run("bash", str(PRIVATE), self.kind, "queues", self.name)
        except (Exception, pytest.fail.Exception) as err:  # a report must not
            # hide the failure it is attached to
            return f"(queues unavailable: {err})"


def unique_name(prefix: str) -> str:
    """A name no other run on this machine uses at the same time (its pid is in it)."""
    return f"{prefix}{os.getpid()}x{next(_names)}"


@pytest.fixture
def private_backend() -> Iterator[Callable[[str], PrivateBackend]]:
    """``private_backend(kind)``: a started private instance, stopped and deleted at the end."""
    made: list[PrivateBackend] = []

    def make(kind: str) -> PrivateBackend:
        backend = PrivateBackend(kind, unique_name(kind[:2]))
        made.append(backend)
        backend.start()
        return backend

    yield make
    for backend in reversed(made):
        backend.stop()


class Recovery:
    """Clock of one fault: :meth:`backend_back` when the restarted backend answers again,
    :meth:`service_back` once an operation through stackcore succeeded again."""

    def __init__(self, backend: str, capsys: pytest.CaptureFixture[str]) -> None:
        self.backend = backend
        self._capsys = capsys
        self.killed_at = time.monotonic()
        self.back_at: float | None = None
        self.seconds: float | None = None

    def backend_back(self) -> None:
        self.back_at = time.monotonic()

    def service_back(self, what: str) -> float:
        assert self.back_at is not None, "backend_back() first"
        self.seconds = time.monotonic() - self.back_at
        RECOVERIES.append((self.backend, what, self.seconds))
        with self._capsys.disabled():
            print(f"\nrecovery after a {self.backend} restart: {self.seconds:.2f} s until "
                  f"{what} (backend down {self.back_at - self.killed_at:.2f} s)")
        return self.seconds


@pytest.fixture
def recovery(capsys: pytest.CaptureFixture[str]) -> Callable[[str], Recovery]:
    """``recovery(backend)``: start the clock of a fault (call it when killing the backend)."""
    return lambda backend: Recovery(backend, capsys)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if RECOVERIES:
        terminalreporter.write_sep("=", "recovery after a backend restart")
        for backend, what, seconds in RECOVERIES:
            terminalreporter.write_line(f"{backend:<16} {seconds:7.2f} s  until {what}")


def poll(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """``check()`` until it returns something true (returned), at most ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what} (last: {value!r})"
                        f"\n{where_threads_are()}", pytrace=False)
        time.sleep(interval)


def where_threads_are(names: Collection[str] | None = None) -> str:
    """The stack of every other thread of this process (or of those named ``names``) and the
    child processes still running: what a timed-out wait prints, so a call stuck in a driver
    or a backend command shows where it is stuck instead of only that something is."""
    current = threading.get_ident()
    by_ident = {t.ident: t.name for t in threading.enumerate()}
    parts = []
    for ident, frame in sys._current_frames().items():
        name = by_ident.get(ident, str(ident))
        if ident == current or (names is not None and name not in names):
            continue
        parts.append(f"--- thread {name}:\n" + "".join(traceback.format_stack(frame)[-12:]))
    children = subprocess.run(["ps", "--ppid", str(os.getpid()), "-o", "pid,etimes,args"],
                              capture_output=True, text=True, check=False).stdout
    return "\n".join(parts) + f"\n--- child processes:\n{children}"
