"""Running a long-lived process (a service, an L2 agent) until SIGTERM or SIGINT.

Every console script that runs until told to stop uses :func:`run_until_signalled`, so they all
stop the same way: within :data:`STOP_DEADLINE` seconds of the first SIGTERM/SIGINT, with no
second signal needed. The process first stops taking new work and gives the work in progress
until :data:`GRACE` seconds to finish (the ``stop`` callable: services stop consuming RPC and
wait for their requests, agents end their loops); whatever still runs then is abandoned, and
the process exits at once (``os._exit``: no thread, not even a library's non-daemon one, can
hold it). Abandoned work is what a crash would leave, and every service and agent repairs that
when it starts again (``init_host``, an agent's first pass), so stopping never needs more than
this.

The signals are not handled by a Python signal handler (a handler that sets a
``threading.Event`` can deadlock when the signal lands while the main thread holds that
event's lock); they are blocked in every thread and taken with ``sigtimedwait`` by the main
thread, which does nothing else. Start-up itself runs in a helper thread, so a signal during a
slow start-up (a backend not answering yet) is honoured too.

A signal mask survives ``fork`` and ``exec``: a daemon such a process starts (an agent's
dnsmasq, its metadata proxy) would be born with SIGTERM blocked and ignore the SIGTERM meant to
stop it. Every child that is to outlive or be stopped by a signal is therefore started with
:func:`unblock_stop_signals` as its ``preexec_fn`` (or calls it first thing itself).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import NoReturn

LOG = logging.getLogger(__name__)

#: Seconds given to the work in progress after the signal, before it is abandoned.
GRACE = 3.5
#: The promise: seconds from the signal to the end of the process.
STOP_DEADLINE = 5.0

STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})


def block_stop_signals() -> None:
    """Block SIGTERM/SIGINT in the calling thread and every thread it starts from now on.
    Call it first thing in ``main``, before anything starts a thread: a thread started earlier
    would take the signal with its default action (immediate death, nothing stopped)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


#: What a child process must take again: the stop signals, and SIGHUP (daemons reload on it)
CHILD_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGHUP})


def unblock_stop_signals() -> None:
    """Unblock SIGTERM, SIGINT and SIGHUP in the calling thread. Usable as a
    ``subprocess`` ``preexec_fn`` (it runs in the child between fork and exec, and calls
    nothing that takes a lock): the program then starts with the signals deliverable, whatever
    the parent's thread had blocked (see the module doc)."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, CHILD_SIGNALS)


def run_until_signalled(prog: str, start: Callable[[], object],
                        stop: Callable[[], object], ready: Callable[[], object] | None = None,
                        grace: float = GRACE) -> NoReturn:
    """Run ``start`` (in a helper thread), call ``ready`` once it returned, wait for
    SIGTERM/SIGINT, run ``stop`` for at most ``grace`` seconds, then end the process with
    status 0 (1 if ``start`` raised: the error is printed as ``prog: error``). Never
    returns."""
    block_stop_signals()
    started = threading.Event()
    failures: list[BaseException] = []

    def run_start() -> None:
        try:
            start()
        except BaseException as err:  # noqa: BLE001 - reported by the main thread
            failures.append(err)
        finally:
            started.set()

    threading.Thread(target=run_start, name=f"{prog} start", daemon=True).start()
    announced = False
    while True:
        info = signal.sigtimedwait(STOP_SIGNALS, 0.1)
        # si_signo 0: the wait was interrupted (e.g. SIGSTOP/SIGCONT) and CPython returns an
        # empty siginfo instead of None when the timeout passed meanwhile
        if info is not None and info.si_signo in STOP_SIGNALS:
            signalled_at = time.monotonic()
            LOG.info("%s: %s received, stopping", prog, signal.Signals(info.si_signo).name)
            break
        if failures:
            print(f"{prog}: {failures[0]}", file=sys.stderr)
            _exit(1)
        if started.is_set() and not announced:
            announced = True
            if ready is not None:
                ready()
    if started.is_set() and not failures:
        stopper = threading.Thread(target=_guarded(prog, stop), name=f"{prog} stop",
                                   daemon=True)
        stopper.start()
        stopper.join(max(0.0, grace - (time.monotonic() - signalled_at)))
        if stopper.is_alive():
            LOG.warning("%s: work still in progress after %.1f s, left for the next start to "
                        "reconcile", prog, grace)
    else:
        LOG.warning("%s: stopped during start-up; the next start reconciles", prog)
    LOG.info("%s: stopped %.2f s after the signal", prog, time.monotonic() - signalled_at)
    _exit(0)


def _guarded(prog: str, stop: Callable[[], object]) -> Callable[[], None]:
    def run() -> None:
        try:
            stop()
        except Exception:
            LOG.exception("%s: stopping failed", prog)

    return run


def _exit(status: int) -> NoReturn:
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(status)
