"""Running a manager as a service: registration, reconciliation, RPC, heartbeat, periodic tasks.

The same :class:`Service` runs in the embedded Cloud (several in one process) and in the
console scripts (one per process). Start-up order is fixed and matters: register the service
row, let the manager reconcile (``init_host``), then consume RPC, then begin heartbeats - so a
host is never offered to the scheduler before its manager has cleaned up after a restart.

Liveness. A service is *up* while its last heartbeat is at most ``[DEFAULT]
service_down_time`` seconds old (:func:`is_up`, the one rule for services and L2 agents).
Heartbeats have a thread of their own that does nothing else (one small UPDATE every
``report_interval`` seconds, for all the services of the process at once); the manager's
periodic tasks run in another thread every ``periodic_interval`` seconds, so slow periodic
work (a backend's statistics taking long) never delays a heartbeat. And the down time must
be at least :data:`DOWN_TIME_FACTOR` times the interval (checked at start-up,
:func:`check_down_time`): a process starved for a while (CPU contention, a stopped process, a
database busy for a few seconds) misses a heartbeat or two without being declared down.
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import sqlalchemy as sa
from oslo_config import cfg

from stackcore import exception
from stackcore.db import api as db_api
from stackcore.db import models
from stackcore.rpc import Server, Target, Transport

LOG = logging.getLogger(__name__)

#: Heartbeats a service (or agent) may miss in a row and still be up: the down time must be at
#: least this many report intervals.
DOWN_TIME_FACTOR = 3

#: Seconds :meth:`Service.stop` waits for the RPC requests and the periodic task in progress;
#: what still runs then is left for the next start's reconciliation.
STOP_TIMEOUT = 3.0


class _InFlight:
    """The manager as the RPC server sees it: every call counted while it runs, so that a
    stopping service waits for exactly the requests in progress - not for the transport's
    poll loop, which with oslo.messaging may sleep up to 5 s between two polls of an idle
    queue."""

    def __init__(self, manager: Any) -> None:
        self._manager = manager
        self._count = 0
        self._idle = threading.Condition()

    @property
    def target(self) -> Target:
        target: Target = self._manager.target
        return target

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._manager, name)
        if not callable(attr):
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            with self._idle:
                self._count += 1
            try:
                return attr(*args, **kwargs)
            finally:
                with self._idle:
                    self._count -= 1
                    self._idle.notify_all()

        return counted

    @property
    def count(self) -> int:
        return self._count

    def wait_idle(self, timeout: float) -> bool:
        with self._idle:
            return self._idle.wait_for(lambda: self._count == 0, timeout)


def is_up(last_seen_at: datetime.datetime | None, down_time: float,
          now: datetime.datetime | None = None) -> bool:
    """The liveness rule of every service and agent: seen within ``down_time`` seconds
    (``[DEFAULT] service_down_time`` for services, ``[network] agent_down_time`` for agents)."""
    if last_seen_at is None:
        return False
    return ((now or models.utcnow()) - last_seen_at).total_seconds() <= down_time


def check_down_time(down_time: float, interval: float, down_option: str,
                    interval_option: str) -> None:
    """ConfigError naming both options unless ``down_time >= DOWN_TIME_FACTOR * interval``."""
    if down_time < DOWN_TIME_FACTOR * interval:
        raise exception.ConfigError(
            f"{down_option} = {down_time:g} must be at least {DOWN_TIME_FACTOR} x "
            f"{interval_option} (= {DOWN_TIME_FACTOR * interval:g}): with less, a live "
            f"service whose heartbeat is late is declared down",
            option=down_option)


def check_intervals(conf: cfg.ConfigOpts) -> None:
    """The services' liveness settings of ``conf`` (see the module doc)."""
    check_down_time(conf.service_down_time, conf.report_interval,
                    "[DEFAULT] service_down_time", "[DEFAULT] report_interval")


class _Heartbeats:
    """The heartbeat thread of one database and interval, shared by every service of this
    process that uses them: each beat is ONE small transaction that refreshes all of their
    rows. Several services in one process (an embedded cloud, a compute service with several
    hosts) would otherwise queue their writes one behind the other - on SQLite for its write
    lock, everywhere for the interpreter when the process is busy - and a late beat is a
    service that looks down."""

    _shared: dict[tuple[int, float], _Heartbeats] = {}
    _shared_lock = threading.Lock()

    def __init__(self, db: db_api.Database, interval: float) -> None:
        self.db = db
        self.interval = interval
        self.services: dict[tuple[str, str], Service] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True,
                                        name=f"heartbeats every {interval:g} s")
        self._thread.start()

    @classmethod
    def join(cls, service: Service) -> None:
        key = (id(service.db), float(service.conf.report_interval))
        with cls._shared_lock:
            beats = cls._shared.get(key)
            if beats is None:
                beats = cls._shared[key] = cls(service.db, key[1])
            beats.services[(service.host, service.binary)] = service

    @classmethod
    def leave(cls, service: Service) -> None:
        key = (id(service.db), float(service.conf.report_interval))
        with cls._shared_lock:
            beats = cls._shared.get(key)
            if beats is None:
                return
            beats.services.pop((service.host, service.binary), None)
            if not beats.services:
                beats.stop()
                del cls._shared[key]

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        due = time.monotonic() + self.interval
        while not self._stop.wait(max(0.0, due - time.monotonic())):
            due = max(due + self.interval, time.monotonic())
            with self._shared_lock:
                who = sorted(self.services)
            if not who:
                continue
            try:
                beat(self.db, who)
            except Exception:
                LOG.exception("heartbeat of %s failed", ", ".join(f"{b}@{h}" for h, b in who))


def beat(db: db_api.Database, who: list[tuple[str, str]]) -> None:
    """Refresh the heartbeat of the services ``[(host, binary)]`` in one short transaction
    (SQLAlchemy Core on a connection: the fewest interpreter steps, since a busy process is
    exactly when a heartbeat must get through)."""
    svc = models.Service
    condition = sa.or_(*[sa.and_(svc.host == host, svc.binary == binary)
                         for host, binary in who])
    with db.urgent_engine.begin() as conn:  # first in this process's queue of writers
        conn.execute(sa.update(svc).where(condition).values(
            last_seen_at=models.utcnow(), report_count=svc.report_count + 1))


class Manager(Protocol):
    target: Target

    def init_host(self) -> None: ...

    def periodic_tasks(self) -> None: ...


class Service:
    """One manager bound to a host, a topic and a transport."""

    def __init__(
        self,
        conf: cfg.ConfigOpts,
        db: db_api.Database,
        transport: Transport,
        manager: Any,
        *,
        binary: str,
        host: str,
        availability_zone: str = "nova",
    ) -> None:
        self.conf = conf
        self.db = db
        self.transport = transport
        self.manager = manager
        self.binary = binary
        self.host = host
        self.availability_zone = availability_zone
        self._server: Server | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        # named like the manager: RPC errors name the endpoint's class
        self._in_flight = type(type(manager).__name__, (_InFlight,), {})(manager)

    def start(self) -> None:
        self._register()
        self.manager.init_host()
        topic = self.manager.target.topic
        self._server = self.transport.serve(Target(topic, self.host), self._in_flight)
        self.tick()
        self._stop.clear()
        _Heartbeats.join(self)
        self._threads = [self._every(self.conf.periodic_interval, self.manager.periodic_tasks,
                                     "periodic tasks")]

    def _every(self, interval: float, work: Callable[[], None], what: str
               ) -> threading.Thread:
        """A daemon thread running ``work`` every ``interval`` seconds (from the start of one
        run to the start of the next) until :meth:`stop`; failures are logged."""

        def loop() -> None:
            due = time.monotonic() + interval
            while not self._stop.wait(max(0.0, due - time.monotonic())):
                due = max(due + interval, time.monotonic())
                try:
                    work()
                except Exception:
                    LOG.exception("%s of %s on %s failed", what, self.binary, self.host)

        thread = threading.Thread(target=loop, name=f"{self.binary}@{self.host} {what}",
                                  daemon=True)
        thread.start()
        return thread

    def _register(self) -> None:
        with self.db.transaction() as session:
            row = session.execute(
                sa.select(models.Service).where(
                    models.Service.host == self.host, models.Service.binary == self.binary
                )
            ).scalar_one_or_none()
            if row is None:
                session.add(
                    models.Service(
                        host=self.host,
                        binary=self.binary,
                        topic=self.manager.target.topic,
                        availability_zone=self.availability_zone,
                    )
                )
            else:
                row.availability_zone = self.availability_zone

    def heartbeat(self) -> None:
        """Refresh this service's heartbeat now (the shared heartbeat thread does it every
        ``report_interval`` seconds)."""
        beat(self.db, [(self.host, self.binary)])

    def tick(self) -> None:
        """One round of periodic work now: the manager's tasks, then the heartbeat."""
        try:
            self.manager.periodic_tasks()
        except Exception:
            LOG.exception("periodic tasks of %s on %s failed", self.binary, self.host)
        self.heartbeat()

    @property
    def requests_in_progress(self) -> int:
        """RPC requests this service is running now."""
        return int(self._in_flight.count)

    def request_stop(self) -> None:
        """Stop taking RPC requests and starting periodic work (returns at once; see
        :meth:`stop`). The transport's own stop runs in a daemon thread: with oslo.messaging
        it waits for its poll loop, which is not work of ours."""
        self._stop.set()
        _Heartbeats.leave(self)
        if self._server is not None:
            server, self._server = self._server, None
            stopper = threading.Thread(target=server.stop, daemon=True,
                                       name=f"{self.binary}@{self.host} rpc stop")
            stopper.start()
            stopper.join(0.2)  # the in-process transport stops at once

    def wait_stopped(self, deadline: float) -> bool:
        """Wait until the requests and the periodic work in progress are done, at most until
        ``deadline`` (``time.monotonic()``). False if some still run: they are abandoned
        (daemon threads) and the next start's ``init_host`` finishes or undoes them."""
        idle = self._in_flight.wait_idle(max(0.0, deadline - time.monotonic()))
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        busy = not idle or any(t.is_alive() for t in self._threads)
        if busy:
            LOG.warning("%s on %s: %d request(s) or a periodic task still running at stop; "
                        "left for the next start to reconcile", self.binary, self.host,
                        self.requests_in_progress)
        self._threads = []
        return not busy

    def stop(self, timeout: float = STOP_TIMEOUT) -> bool:
        """Stop taking work and wait at most ``timeout`` seconds for the work in progress
        (:meth:`request_stop` then :meth:`wait_stopped`). True if nothing was abandoned."""
        self.request_stop()
        return self.wait_stopped(time.monotonic() + timeout)
