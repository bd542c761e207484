"""Running a manager as a service: registration, reconciliation, RPC, heartbeat, periodic tasks.

The same :class:`Service` runs in the embedded Cloud (several in one process) and in the
console scripts (one per process). Start-up order is fixed and matters: register the service
row, let the manager reconcile (``init_host``), then consume RPC, then begin heartbeats - so a
host is never offered to the scheduler before its manager has cleaned up after a restart.
"""

from __future__ import annotations

import datetime
import logging
import threading
from typing import Any, Protocol

import sqlalchemy as sa
from oslo_config import cfg

from stackcore.db import api as db_api
from stackcore.db import models
from stackcore.rpc import Server, Target, Transport

LOG = logging.getLogger(__name__)


def is_up(last_seen_at: datetime.datetime | None, down_time: float,
          now: datetime.datetime | None = None) -> bool:
    """The liveness rule of every service and agent: seen within ``down_time`` seconds
    (``[DEFAULT] service_down_time`` for services, ``[network] agent_down_time`` for agents)."""
    if last_seen_at is None:
        return False
    return ((now or models.utcnow()) - last_seen_at).total_seconds() <= down_time


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
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._register()
        self.manager.init_host()
        topic = self.manager.target.topic
        self._server = self.transport.serve(Target(topic, self.host), self.manager)
        self.tick()
        self._thread = threading.Thread(
            target=self._loop, name=f"{self.binary}@{self.host}", daemon=True
        )
        self._thread.start()

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
        with self.db.transaction() as session:
            session.execute(
                sa.update(models.Service)
                .where(models.Service.host == self.host, models.Service.binary == self.binary)
                .values(last_seen_at=models.utcnow(), report_count=models.Service.report_count + 1)
            )

    def tick(self) -> None:
        """One round of periodic work: the manager's tasks, then the heartbeat."""
        try:
            self.manager.periodic_tasks()
        except Exception:
            LOG.exception("periodic tasks of %s on %s failed", self.binary, self.host)
        self.heartbeat()

    def _loop(self) -> None:
        while not self._stop.wait(self.conf.report_interval):
            try:
                self.tick()
            except Exception:
                LOG.exception("heartbeat of %s on %s failed", self.binary, self.host)

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
