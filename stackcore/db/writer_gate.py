"""The SQLite writers of one process take turns, in order, with heartbeats first.

Why. SQLite has one write lock per database file. A writer that finds it taken waits in
SQLite's busy handler, which sleeps 1, 2, 5, 10 ... 100 ms between tries: a writer that
arrives while the lock is free takes it at once, so a writer that has been waiting for a while
is overtaken again and again by newcomers. In an embedded cloud (every service in one process,
periodic tasks and API calls writing all the time) the heartbeat thread's one small UPDATE
could lose that race for seconds on a busy machine, and a running service was declared down.

What. :class:`WriterGate` queues this process's writers *before* they ask SQLite for the lock
(at their ``BEGIN IMMEDIATE``, the engine's ``begin`` event) and lets them through one at a
time in arrival order; a transaction whose connection carries the execution option
``stackcore_urgent`` (heartbeats and agents' liveness reports, :data:`URGENT`) goes right
after the transaction in progress and the urgent ones queued before it. The writer leaves
the gate when its transaction commits or rolls back, or when its connection goes back to
the pool if neither happened (a failed ``BEGIN``).

What it is not. Readers (``Database.read()``, a deferred ``BEGIN``) never queue: in WAL mode
they need no lock. Other processes are not in the gate; against them SQLite's own lock and busy
timeout still decide, as before. The gate adds no new hang: a writer that waited
:data:`WAIT_LIMIT` seconds (SQLite's own busy timeout) goes on to SQLite's lock without its
turn, as it did before the gate existed. A thread that already holds the gate and begins a
second write transaction (on another connection) goes through: it would otherwise wait for
itself.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

LOG = logging.getLogger(__name__)

#: The execution option that puts a writer at the head of the queue (heartbeats).
URGENT = "stackcore_urgent"
#: Seconds a writer waits for its turn before going on to SQLite's lock (its busy timeout).
WAIT_LIMIT = 60.0
#: The key, in a connection's ``info``, of the gate turn that connection holds.
_HELD = "stackcore_writer_gate"


class WriterGate:
    """One turn at a time for the write transactions of one engine (see the module doc)."""

    def __init__(self, wait_limit: float = WAIT_LIMIT) -> None:
        self.wait_limit = wait_limit
        self._cond = threading.Condition()
        # urgent writers go before the others, each kind in arrival order
        self._urgent: collections.deque[object] = collections.deque()
        self._normal: collections.deque[object] = collections.deque()
        self._holder: int | None = None  # thread id holding the gate
        self._depth = 0  # nested turns of that thread

    def enter(self, urgent: bool = False) -> bool:
        """Wait for this thread's turn; True if it holds the gate now (False: it waited
        :attr:`wait_limit` seconds and goes on without a turn)."""
        me = threading.get_ident()
        with self._cond:
            if self._holder == me:
                self._depth += 1
                return True
            ticket = object()
            queue = self._urgent if urgent else self._normal
            queue.append(ticket)
            deadline = time.monotonic() + self.wait_limit
            while self._holder is not None or self._head() is not ticket:
                left = deadline - time.monotonic()
                if left <= 0:
                    queue.remove(ticket)
                    self._cond.notify_all()  # the head may have changed
                    LOG.warning("a database writer waited %.0f s for its turn; it goes on to "
                                "SQLite's lock without one", self.wait_limit)
                    return False
                self._cond.wait(left)
            queue.popleft()
            self._holder = me
            self._depth = 1
            return True

    def _head(self) -> object:
        return self._urgent[0] if self._urgent else self._normal[0]

    def leave(self) -> None:
        """End one turn of the holding thread (the gate opens when its outermost one ends)."""
        with self._cond:
            self._depth -= 1
            if self._depth <= 0:
                self._holder = None
                self._depth = 0
                self._cond.notify_all()

    @property
    def waiting(self) -> int:
        """How many writers wait for their turn now (for tests and diagnostics)."""
        with self._cond:
            return len(self._urgent) + len(self._normal)

    def install(self, engine: sa.Engine) -> None:
        """Gate ``engine``'s write transactions: enter before their ``BEGIN IMMEDIATE`` is
        sent (this listener must run before the one that sends it), leave at commit,
        rollback or check-in."""
        event.listen(engine, "begin", self._on_begin)
        event.listen(engine, "commit", self._on_end)
        event.listen(engine, "rollback", self._on_end)
        event.listen(engine.pool, "checkin", self._on_checkin)

    def _on_begin(self, conn: sa.Connection) -> None:
        options = conn.get_execution_options()
        if options.get("stackcore_read"):
            return
        if self.enter(urgent=bool(options.get(URGENT))):
            conn.info[_HELD] = self

    def _on_end(self, conn: sa.Connection) -> None:
        if conn.info.pop(_HELD, None) is not None:
            self.leave()

    def _on_checkin(self, _dbapi_conn: Any, record: Any) -> None:
        # a BEGIN that failed (or a connection invalidated mid-transaction) never reached
        # commit or rollback: its turn ends here
        if record is not None and record.info.pop(_HELD, None) is not None:
            self.leave()
