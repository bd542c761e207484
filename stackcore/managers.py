"""Plumbing every manager shares: serialising work per resource, and calling its driver.

* :class:`KeyedLocks` - one lock per resource id, so two operations on the same server or
  volume never interleave while different resources proceed in parallel.
* :func:`call_driver` - the wrapper around every driver call: stackcore errors pass through
  unchanged, anything else becomes a :class:`~stackcore.exception.DriverError` naming the
  driver, the step and the host, which the manager records as the resource's fault.

Faults themselves (the one :class:`~stackcore.faults.Fault` type, how they are written and read)
are in :mod:`stackcore.faults`.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from stackcore import _compat, exception

LOG = logging.getLogger(__name__)

T = TypeVar("T")


class KeyedLocks:
    """Locks by resource id, created on first use."""

    def __init__(self) -> None:
        self._locks: dict[str, threading.Lock] = collections.defaultdict(threading.Lock)
        self._guard = threading.Lock()

    @contextlib.contextmanager
    def locked(self, *keys: str | None) -> Iterator[None]:
        """Hold the locks of ``keys`` (None ignored), taken in sorted order so that two
        callers locking the same set never deadlock."""
        with contextlib.ExitStack() as stack:
            for key in sorted({k for k in keys if k}):
                with self._guard:
                    lock = self._locks[key]
                stack.enter_context(lock)
            yield

    def busy(self, key: str) -> bool:
        """Whether some caller holds the lock of ``key`` now (work on it is in progress)."""
        with self._guard:
            lock = self._locks.get(key)
        return lock is not None and lock.locked()


class Orphans:
    """Which transient resources have been left with no work on them for a while.

    A manager's periodic reconciliation passes :meth:`due` what it sees transient with the
    state it is in and whether work of its own holds it now. A resource becomes due once it
    has been seen in the same state, with nothing holding it, for ``grace`` seconds - by then
    whatever asked for the work has given up waiting for it (callers wait at most the RPC
    timeout), so nobody will finish it but the reconciliation."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[Any, float]] = {}

    def due(self, transient: dict[str, Any], busy: Callable[[str], bool], grace: float,
            now: float) -> list[str]:
        """The keys of ``transient`` (key -> its state) due for reconciliation now."""
        seen = {}
        due = []
        for key, state in transient.items():
            if busy(key):
                continue  # work in progress: not an orphan
            first = self._seen.get(key)
            since = first[1] if first is not None and first[0] == state else now
            if now - since >= grace:
                due.append(key)
            else:
                seen[key] = (state, since)
        self._seen = seen
        return due


def call_driver(
    family: str, driver_name: str, host: str, step: str,
    fn: Callable[..., T], *args: Any, **kwargs: Any,
) -> T:
    """Call ``fn``; anything but a stackcore error becomes a DriverError naming the driver.

    Every call is logged (the operator's record of what the backends were asked, under the
    request id and project of the call being served): DEBUG when it starts; INFO when it is
    done, with its time;
    INFO when the driver refused with a stackcore error (NotFound on an idempotent delete is
    one); ERROR with the traceback when it failed unexpectedly."""
    what = _subject(args)
    LOG.debug("%s driver %r: %s%s on %s starts", family, driver_name, step, what, host)
    started = time.monotonic()
    try:
        result = fn(*args, **kwargs)
    except exception.StackcoreError as err:
        LOG.info("%s driver %r: %s%s on %s refused after %.3f s: %s: %s", family,
                 driver_name, step, what, host, time.monotonic() - started,
                 type(err).__name__, err)
        raise
    except Exception as err:
        LOG.error("%s driver %r: %s%s on %s failed after %.3f s", family, driver_name, step,
                  what, host, time.monotonic() - started, exc_info=True)
        raise exception.DriverError(
            f"{family} driver {driver_name!r} failed in {step} on {host}: "
            f"{type(err).__name__}: {err}",
            step=step,
        ) from err
    LOG.info("%s driver %r: %s%s on %s done in %.3f s", family, driver_name, step, what, host,
             time.monotonic() - started)
    return result


def _subject(args: tuple[Any, ...]) -> str:
    """`` of volume <id>`` for a call whose first argument is a resource (what the operator
    looks for in the log), else ``""``."""
    for arg in args[:1]:
        ident = getattr(arg, "id", None) or getattr(arg, "uuid", None)
        if isinstance(ident, str):
            return f" of {type(arg).__name__.lower()} {ident}"
    return ""


__getattr__ = _compat.moved_names_getattr(__name__)  # names moved in 0.2 (deprecated)
