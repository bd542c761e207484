"""The scheduler service: picks a compute host for a server and claims its resources.

The placement here is deliberately minimal but correct: a host qualifies when its compute
service is up and enabled, its driver is reporting valid stats, it is in the requested
availability zone, and the request fits under the allocation ratios; qualifying hosts are
ordered by free RAM (spread). The chosen host is claimed atomically (see
:mod:`stackcore.scheduler.claims`); if a concurrent request took the room first, the next host
is tried. ``select_destinations`` is the seam the pluggable filter scheduler replaces.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from oslo_config import cfg

from stackcore import exception
from stackcore.db import api as db_api
from stackcore.db import models
from stackcore.rpc import Target
from stackcore.scheduler import claims

TOPIC = "scheduler"
COMPUTE_BINARY = "stackcore-compute"


@dataclasses.dataclass
class HostState:
    """What the scheduler knows of one compute host when a request arrives."""

    host: str
    availability_zone: str
    up: bool
    disabled: bool
    reporting: bool
    vcpus: int
    memory_mb: int
    local_gb: int
    alloc_vcpus: int
    alloc_memory_mb: int
    alloc_disk_gb: int
    ratios: claims.Ratios

    @property
    def free_ram_mb(self) -> float:
        return self.memory_mb * self.ratios.ram - self.alloc_memory_mb

    @property
    def free_vcpus(self) -> float:
        return self.vcpus * self.ratios.cpu - self.alloc_vcpus

    @property
    def free_disk_gb(self) -> float:
        return self.local_gb * self.ratios.disk - self.alloc_disk_gb


# (name, predicate, describe-the-shortfall) - the checks of the minimal placement, in order.
Predicate = Callable[[HostState, dict[str, Any]], bool]
Describe = Callable[[HostState, dict[str, Any]], str]
Check = tuple[str, Predicate, Describe]

CHECKS: tuple[Check, ...] = (
    ("ComputeFilter", lambda h, r: h.up and not h.disabled and h.reporting,
     lambda h, r: f"{h.host} is {'disabled' if h.disabled else 'down or not reporting'}"),
    ("AvailabilityZoneFilter",
     lambda h, r: not r.get("availability_zone") or h.availability_zone == r["availability_zone"],
     lambda h, r: f"wants zone {r.get('availability_zone')!r}, {h.host} is in "
                  f"{h.availability_zone!r}"),
    ("RamFilter", lambda h, r: h.free_ram_mb >= r["memory_mb"],
     lambda h, r: f"needs {r['memory_mb']} MB, {h.host} had {h.free_ram_mb:.0f} MB free"),
    ("CoreFilter", lambda h, r: h.free_vcpus >= r["vcpus"],
     lambda h, r: f"needs {r['vcpus']} vCPUs, {h.host} had {h.free_vcpus:.0f} free"),
    ("DiskFilter", lambda h, r: h.free_disk_gb >= r["disk_gb"],
     lambda h, r: f"needs {r['disk_gb']} GB, {h.host} had {h.free_disk_gb:.0f} GB free"),
)


class SchedulerManager:
    """RPC endpoint of the scheduler service (topic ``scheduler``)."""

    target = Target(TOPIC, version="1.0")

    def __init__(self, conf: cfg.ConfigOpts, db: db_api.Database) -> None:
        self.conf = conf
        self.db = db

    def init_host(self) -> None:
        """Nothing to reconcile: the scheduler keeps no state outside the database."""

    def periodic_tasks(self) -> None:
        """Nothing periodic yet."""

    def _ratios(self) -> claims.Ratios:
        sched = self.conf.scheduler
        return claims.Ratios(
            sched.cpu_allocation_ratio, sched.ram_allocation_ratio, sched.disk_allocation_ratio
        )

    def host_states(self) -> list[HostState]:
        """Every compute host with its service and node rows."""
        now = models.utcnow()
        down_after = datetime.timedelta(seconds=self.conf.service_down_time)
        ratios = self._ratios()
        with self.db.transaction() as session:
            rows = session.execute(
                sa.select(models.Service, models.ComputeNode)
                .join(models.ComputeNode, models.ComputeNode.host == models.Service.host)
                .where(models.Service.binary == COMPUTE_BINARY)
            ).all()
        return [
            HostState(
                host=svc.host,
                availability_zone=svc.availability_zone,
                up=svc.last_seen_at is not None and now - svc.last_seen_at <= down_after,
                disabled=svc.disabled,
                reporting=node.reporting,
                vcpus=node.vcpus,
                memory_mb=node.memory_mb,
                local_gb=node.local_gb,
                alloc_vcpus=node.alloc_vcpus,
                alloc_memory_mb=node.alloc_memory_mb,
                alloc_disk_gb=node.alloc_disk_gb,
                ratios=ratios,
            )
            for svc, node in rows
        ]

    def _filter(self, request: dict[str, Any]) -> tuple[list[HostState], list[str]]:
        hosts = self.host_states()
        reasons: list[str] = []
        if not hosts:
            return [], ["no compute host has registered"]
        for name, passes, describe in CHECKS:
            kept = [h for h in hosts if passes(h, request)]
            rejected = [h for h in hosts if not passes(h, request)]
            if rejected:
                reasons.append(f"{name} rejected {len(rejected)} host(s): "
                               f"{describe(rejected[0], request)}")
            hosts = kept
            if not hosts:
                break
        return hosts, reasons

    def select_destinations(self, instance_uuid: str, request: dict[str, Any]) -> dict[str, Any]:
        """Pick a host for ``instance_uuid``, claim ``request`` on it and record it as the
        instance's host, all in one transaction. Returns ``{"host": ..., "alternates": [...]}``.

        ``request`` holds ``vcpus``, ``memory_mb``, ``disk_gb`` and optionally
        ``availability_zone`` and ``exclude_hosts``. Raises NoValidHost with one reason per check
        that rejected hosts.
        """
        hosts, reasons = self._filter(request)
        excluded = set(request.get("exclude_hosts", []))
        hosts = [h for h in hosts if h.host not in excluded]
        hosts.sort(key=lambda h: (-h.free_ram_mb, h.host))
        want = claims.Request(request["vcpus"], request["memory_mb"], request["disk_gb"])
        ratios = self._ratios()
        for index, candidate in enumerate(hosts):
            with self.db.transaction() as session:
                claims.release(session, instance_uuid)  # a retry gives back the old claim
                if not claims.claim(session, candidate.host, instance_uuid, want, ratios):
                    reasons.append(f"{candidate.host} was filled by a concurrent request")
                    continue
                session.execute(
                    sa.update(models.Instance)
                    .where(models.Instance.uuid == instance_uuid)
                    .values(host=candidate.host)
                )
            last = index + self.conf.scheduler.max_attempts
            alternates = [h.host for h in hosts[index + 1 : last]]
            return {"host": candidate.host, "alternates": alternates}
        raise exception.NoValidHost("no valid host was found", reasons=reasons)
