"""Waiting for a resource to reach a state, without busy polling.

The API layer casts work to a manager and, when the caller asked to wait, re-reads the resource
until it settles. In one process (the embedded default) every committed write wakes the waiter
at once (:meth:`stackcore.db.api.Database.wait_for_write`); across processes the waiter still
re-reads at least every ``max_interval`` seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from stackcore import exception
from stackcore.db.api import Database

T = TypeVar("T")


def until(
    db: Database,
    read: Callable[[], T],
    done: Callable[[T], bool],
    timeout: float,
    describe: Callable[[T], str],
    max_interval: float = 0.05,
) -> T:
    """Return ``read()`` once ``done`` holds for it; raise OperationTimeout after ``timeout``.

    ``describe(value)`` words the last seen state for the timeout message. A read the database
    cut off (it went away during the transaction: a restart) is read again: reading has no
    effect to undo, and the work waited for goes on meanwhile.
    """
    deadline = time.monotonic() + timeout
    while True:
        generation = db.generation
        try:
            value = read()
        except exception.BackendUnavailable as err:
            if getattr(err, "backend", None) != "database" or time.monotonic() > deadline:
                raise
            time.sleep(max_interval)
            continue
        if done(value):
            return value
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise exception.OperationTimeout(
                f"{describe(value)} after {timeout:g}s", timeout=timeout
            )
        db.wait_for_write(generation, min(remaining, max_interval))
