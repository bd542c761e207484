"""The scheduler service: picks a compute host for a server and claims its resources.

``select_destinations`` builds the host states from the database (services, compute nodes,
claims, aggregates, server groups), runs the configured filters and weighers
(:mod:`stackcore.scheduler.handler`), then claims the best host atomically
(:mod:`stackcore.compute.placement.claims`: one conditional UPDATE, so concurrent schedulers -
threads
or processes on PostgreSQL - never overcommit). If a concurrent request took the room first,
the next host in the ranking is tried. Hard server-group policies are re-checked inside the
claim transaction under a row lock on the group, so two members of an anti-affinity group
placed at the same time cannot land together either.

``reschedule`` is called by a compute host whose spawn failed: it records the attempt, gives
back the claim and places the server on an alternate host it has not tried, until
``[scheduler] max_attempts`` hosts have been tried. ``explain`` returns the filter trace and
the weighed ranking of a request without placing anything.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from oslo_config import cfg
from sqlalchemy.orm import Session

from stackcore import exception, faults, managers, service
from stackcore.compute import models
from stackcore.compute.family import COMPUTE_BINARY
from stackcore.compute.placement import claims, load_handler
from stackcore.compute.placement import models as sched_models
from stackcore.compute.placement.hosts import (
    HostSet,
    HostState,
    capabilities_from_stats,
    merge_aggregate_metadata,
)
from stackcore.compute.placement.request import ComputeRequest, ServerGroupInfo, build
from stackcore.compute.states import TaskState, VmState
from stackcore.db import api as db_api
from stackcore.db import models as db_models
from stackcore.image import models as image_models
from stackcore.rpc import Target
from stackcore.scheduler import handler

LOG = logging.getLogger(__name__)

#: the task a server waiting for its migration's destination has, by migration type (a
#: resize or cold migration otherwise)
_PLACING_TASK = {models.EVACUATION: TaskState.EVACUATING,
                 models.LIVE_MIGRATION: TaskState.MIGRATING}
TOPIC = "scheduler"

#: task states that keep a host's disk or hypervisor busy: a server in one counts in its
#: host's ``num_io_ops`` (IoOpsFilter, IoOpsWeigher). Nova's ``Stats.io_workload`` counts
#: builds, rebuilds (an evacuation is a rebuild there), resizes and cold migrations, snapshots
#: and rescues; those are here (a build is ``scheduling`` then ``spawning``; an evacuation is
#: ``evacuating``; every step of a resize or cold migration: each copies, builds or removes
#: disks), with the deletes, reboots and power changes this scheduler counted before (they
#: work the hypervisor too). The host is the server's: a resize counts on its source until
#: the destination takes the server, an evacuation on its new host once taken (before, on the
#: dead host, which takes no placement anyway), a live migration (``migrating``: memory and
#: disks copied) on its source until the guest switched over, then on the destination.
IO_TASKS = frozenset({
    TaskState.SCHEDULING, TaskState.SPAWNING, TaskState.DELETING, TaskState.REBOOTING,
    TaskState.REBOOTING_HARD, TaskState.POWERING_OFF, TaskState.POWERING_ON,
    TaskState.REBUILDING, TaskState.EVACUATING, TaskState.IMAGE_SNAPSHOT, TaskState.RESCUING,
    TaskState.RESIZE_PREP, TaskState.RESIZE_MIGRATING, TaskState.RESIZE_FINISH,
    TaskState.RESIZE_CONFIRMING, TaskState.RESIZE_REVERTING, TaskState.MIGRATING,
})


class _NoRoom(Exception):
    """The candidate had no room for a migration's claim: its transaction is rolled back."""


class _GroupConflict(Exception):
    """A concurrent member of the server's hard-policy group took the candidate first."""


class SchedulerManager:
    """RPC endpoint of the scheduler service (topic ``scheduler``).

    API versions: 1.0 select_destinations; 1.1 explain, reschedule; 1.2
    select_migration_destination (resize, cold migration); 1.3 the same for an evacuation
    (a 1.2 scheduler would refuse its task state: the caller asks for 1.3); 1.4 its request's
    ``requested_host`` (an evacuation to a named host) honoured; 1.5 the same for a live
    migration (its server's task is ``migrating``).
    """

    target = Target(TOPIC, version="1.5")

    def __init__(self, conf: cfg.ConfigOpts, db: db_api.Database) -> None:
        self.conf = conf
        self.db = db
        self.handler = load_handler(conf)
        # [scheduler] host_state_max_age: the host states last read, and when
        self._states_lock = threading.Lock()
        self._states: HostSet | None = None
        self._states_read_at = 0.0
        # servers being placed by this process now (not orphans), and the orphans' clock
        self._placing = managers.KeyedLocks()
        self._orphans = managers.Orphans()
        self._evacuation_orphans = managers.Orphans()  # (a clock of their own)

    def init_host(self) -> None:
        """Nothing to reconcile: the scheduler keeps no state outside the database."""

    def periodic_tasks(self) -> None:
        self.reconcile_unplaced()
        self.reconcile_unplaced_evacuations()

    def reconcile_unplaced(self) -> list[str]:
        """Periodic: a server left ``building`` (``scheduling``) with no host is an orphan
        once it has been seen so, with no placement of this process working on it, for
        ``rpc_call_timeout`` seconds - its ``create_server`` was cut off between the intent
        and the claim (the API process killed, or the database gone while the API recorded
        the scheduler's failure), and no compute host owns it. It becomes ERROR with a fault
        saying so; nothing was claimed for it. Returns the servers it failed."""
        inst = models.Instance
        with self.db.read() as session:
            unplaced = list(session.execute(sa.select(inst.uuid).where(
                inst.vm_state == VmState.BUILDING, inst.host.is_(None),
                inst.task_state == TaskState.SCHEDULING)).scalars())
        due = self._orphans.due({uuid: TaskState.SCHEDULING for uuid in unplaced},
                                self._placing.busy, self.conf.rpc_call_timeout,
                                time.monotonic())
        failed = []
        for uuid in due:
            why = (f"scheduling of server {uuid} was cut off: no host was claimed for it "
                   f"within {self.conf.rpc_call_timeout} s ([DEFAULT] rpc_call_timeout), and "
                   "its create_server call is gone (an API process stopped, or the database "
                   "went away while it recorded the outcome)")
            with self.db.transaction() as session:
                row = session.get(models.Instance, uuid, with_for_update=True)
                if row is None or row.vm_state != VmState.BUILDING or row.host is not None \
                        or row.task_state != TaskState.SCHEDULING:
                    continue  # placed, deleted or failed meanwhile
                session.add(faults.new(models.InstanceFault, exception.NoValidHost(why),
                                       step="schedule", instance_uuid=uuid))
                row.vm_state = VmState.ERROR
                row.task_state = None
            LOG.warning("%s; it is ERROR now", why)
            failed.append(uuid)
        return failed

    def reconcile_unplaced_evacuations(self) -> list[str]:
        """Periodic: an evacuation left ``pre-migrating`` (no host chosen), with no placement
        of this process working on it, for ``rpc_call_timeout`` seconds - its
        ``evacuate_server`` was cut off before the scheduler placed it. Its source host is
        down (that is why it was evacuated), so nothing else owns it: the migration is
        ``error`` and the server's task cleared with a fault; nothing was claimed or moved
        (that happens with the placement). Returns the servers it repaired."""
        mig = models.Migration
        with self.db.read() as session:
            rows = {str(m): str(u) for m, u in session.execute(
                sa.select(mig.id, mig.instance_uuid).where(
                    mig.migration_type == models.EVACUATION,
                    mig.status == models.MigrationStatus.PRE_MIGRATING)).all()}
        due = self._evacuation_orphans.due(
            {m: models.MigrationStatus.PRE_MIGRATING for m in rows},
            lambda key: self._placing.busy(rows[key]), self.conf.rpc_call_timeout,
            time.monotonic())
        repaired = []
        for migration_id in due:
            uuid = rows[migration_id]
            why = (f"evacuation {migration_id} of server {uuid} was cut off before a host was "
                   f"chosen (no placement within {self.conf.rpc_call_timeout} s, [DEFAULT] "
                   "rpc_call_timeout): its evacuate_server call is gone")
            with self.db.transaction() as session:
                row = session.get(models.Instance, uuid, with_for_update=True)
                migration = session.get(mig, migration_id)
                if migration is None \
                        or migration.status != models.MigrationStatus.PRE_MIGRATING:
                    continue  # placed or failed meanwhile
                migration.status = models.MigrationStatus.ERROR
                migration.error = why
                if row is not None and row.task_state == TaskState.EVACUATING:
                    session.add(faults.new(models.InstanceFault, exception.NoValidHost(why),
                                           step="evacuate", instance_uuid=uuid))
                    row.task_state = None
            LOG.warning("%s; the server keeps its state", why)
            repaired.append(uuid)
        return repaired

    def _ratios(self) -> claims.Ratios:
        sched = self.conf.scheduler
        return claims.Ratios(
            sched.cpu_allocation_ratio, sched.ram_allocation_ratio, sched.disk_allocation_ratio
        )

    # --- host states -----------------------------------------------------------------------

    def host_states(self) -> HostSet:
        """Every compute host with its service, node, claims, I/O load and aggregates."""
        now = db_models.utcnow()
        down_time = self.conf.service_down_time
        ratios = self._ratios()
        with self.db.read() as session:
            rows = session.execute(
                sa.select(db_models.Service, models.ComputeNode)
                .join(models.ComputeNode, models.ComputeNode.host == db_models.Service.host)
                .where(db_models.Service.binary == COMPUTE_BINARY)
            ).all()
            io_ops = dict(session.execute(
                sa.select(models.Instance.host, sa.func.count())
                .where(models.Instance.host.is_not(None),
                       models.Instance.task_state.in_(sorted(str(t) for t in IO_TASKS)),
                       models.Instance.vm_state != VmState.DELETED)
                .group_by(models.Instance.host)
            ).all())
            agg_rows = session.execute(
                sa.select(sched_models.AggregateHost.host, sched_models.Aggregate.metadata_)
                .join(sched_models.Aggregate,
                      sched_models.Aggregate.id == sched_models.AggregateHost.aggregate_id)
            ).all()
        per_host: dict[str, list[dict[str, Any]]] = {}
        for host, meta in agg_rows:
            per_host.setdefault(host, []).append(dict(meta or {}))
        states = []
        for svc, node in rows:
            meta = merge_aggregate_metadata(per_host.get(svc.host, []))
            zones = sorted(meta.get("availability_zone", ()))
            states.append(HostState(
                host=svc.host,
                availability_zone=zones[0] if zones else svc.availability_zone,
                up=service.is_up(svc.last_seen_at, down_time, now),
                disabled=svc.disabled,
                disabled_reason=svc.disabled_reason,
                reporting=node.reporting,
                report_error=node.report_error,
                vcpus=node.vcpus,
                memory_mb=node.memory_mb,
                local_gb=node.local_gb,
                alloc_vcpus=node.alloc_vcpus,
                alloc_memory_mb=node.alloc_memory_mb,
                alloc_disk_gb=node.alloc_disk_gb,
                num_instances=node.alloc_instances,
                num_io_ops=int(io_ops.get(svc.host, 0)),
                cpu_allocation_ratio=ratios.cpu,
                ram_allocation_ratio=ratios.ram,
                disk_allocation_ratio=ratios.disk,
                capabilities=capabilities_from_stats(node.stats or {}) if node.reporting else {},
                aggregate_metadata=meta,
            ))
        return HostSet.from_states(states)

    def _current_host_states(self) -> HostSet:
        """The host states for a placement: read now, or reused while younger than
        ``[scheduler] host_state_max_age`` (see the option)."""
        max_age = self.conf.scheduler.host_state_max_age
        if max_age <= 0:
            return self.host_states()
        with self._states_lock:
            now = time.monotonic()
            if self._states is None or now - self._states_read_at > max_age:
                self._states, self._states_read_at = self.host_states(), now
            return self._states

    def _claimed(self, hosts: HostSet, host: str, want: claims.Request | None) -> None:
        """Keep reused host states current with this process's claim on ``host``; ``None``:
        the claim found the host full (another process filled it), so count it full until the
        states are read again."""
        if hosts is not self._states:
            return
        i = hosts.index.get(host)
        if i is None:
            return
        with self._states_lock:
            if want is None:
                hosts.alloc_vcpus[i] = hosts.vcpus[i] * hosts.cpu_allocation_ratio[i]
                hosts.alloc_memory_mb[i] = hosts.memory_mb[i] * hosts.ram_allocation_ratio[i]
                hosts.alloc_disk_gb[i] = hosts.local_gb[i] * hosts.disk_allocation_ratio[i]
            else:
                hosts.alloc_vcpus[i] += want.vcpus
                hosts.alloc_memory_mb[i] += want.memory_mb
                hosts.alloc_disk_gb[i] += want.disk_gb
                hosts.num_instances[i] += 1

    # --- server groups ---------------------------------------------------------------------

    @staticmethod
    def _group_info(session: Session, group_id: str, instance_uuid: str | None,
                    lock: bool = False) -> ServerGroupInfo:
        query = sa.select(sched_models.ServerGroup).where(sched_models.ServerGroup.id == group_id)
        if lock:
            query = query.with_for_update()
        group = session.execute(query).scalar_one_or_none()
        if group is None:
            raise exception.NotFound("server group", group_id)
        member = sched_models.ServerGroupMember
        hosts = dict(session.execute(
            sa.select(models.Instance.host, sa.func.count())
            .join(member, member.instance_uuid == models.Instance.uuid)
            .where(member.group_id == group_id, models.Instance.host.is_not(None),
                   models.Instance.vm_state != VmState.DELETED,
                   models.Instance.uuid != (instance_uuid or ""))
            .group_by(models.Instance.host)
        ).all())
        rules = dict(group.rules or {})
        return ServerGroupInfo(group.id, group.policy, {str(h): int(n) for h, n in hosts.items()},
                               int(rules.get("max_server_per_host", 1)))

    def _request(self, instance_uuid: str | None, request: dict[str, Any]) -> ComputeRequest:
        """The request with its server group resolved from the database (authoritative)."""
        group = request.get("server_group")
        if group:
            group_id = group["id"] if isinstance(group, dict) else str(group)
            with self.db.read() as session:
                info = self._group_info(session, group_id, instance_uuid)
            request = {**request, "server_group": info.to_dict()}
        return ComputeRequest.from_dict(request)

    # --- RPC methods -----------------------------------------------------------------------

    def explain(self, request: dict[str, Any], limit: int | None = 20) -> dict[str, Any]:
        """The filter trace and the weighed ranking (best ``limit`` hosts) for ``request``,
        without claiming anything."""
        req = self._request(None, request)
        decision = self.handler.run(self.host_states(), req, exclude=sorted(req.exclude_hosts))
        return decision.to_dict(limit)

    def select_destinations(self, instance_uuid: str, request: dict[str, Any]) -> dict[str, Any]:
        """Pick a host for ``instance_uuid``, claim ``request`` on it and record it as the
        instance's host, all in one transaction. Returns ``{"host": ..., "alternates": [...]}``
        (alternates: the next hosts of the ranking, up to ``max_attempts - 1``).

        ``request`` holds ``vcpus``, ``memory_mb``, ``disk_gb`` and optionally
        ``availability_zone``, ``extra_specs``, ``image_properties``, ``server_group`` (id)
        and ``exclude_hosts``. Raises NoValidHost with one reason per filter that rejected
        hosts, NotFound (nothing claimed) if the server was deleted while being scheduled."""
        with self._placing.locked(instance_uuid):
            return self._select_destinations(instance_uuid, request)

    def _select_destinations(self, instance_uuid: str, request: dict[str, Any]
                             ) -> dict[str, Any]:
        req = self._request(instance_uuid, request)
        hosts = self._current_host_states()
        if not len(hosts):
            raise exception.NoValidHost("no valid host was found",
                                        reasons=["no compute host has registered"])
        decision = self.handler.run(hosts, req, exclude=sorted(req.exclude_hosts))
        reasons: list[str] = []  # claims lost to concurrent requests
        attempts = self.conf.scheduler.max_attempts
        want = claims.Request(req.vcpus, req.memory_mb, req.disk_gb)
        ratios = self._ratios()
        group = req.server_group
        hard = group if group and group.policy in ("affinity", "anti-affinity") else None
        for index, candidate in enumerate(self._ranking(decision, attempts)):
            try:
                if not self._claim(instance_uuid, candidate, want, ratios, hard):
                    self._claimed(hosts, candidate, None)
                    reasons.append(self._lost_claim(candidate))
                    continue
                self._claimed(hosts, candidate, want)
            except _GroupConflict:
                reasons.append(f"{candidate} took another member of {hard.policy if hard else ''}"
                               f" group {hard.id if hard else ''} concurrently")
                continue
            alternates = decision.top(index + attempts)[index + 1 :]
            return {"host": candidate, "alternates": alternates}
        raise exception.NoValidHost("no valid host was found",
                                    reasons=decision.reasons() + reasons)

    def _lost_claim(self, host: str) -> str:
        """Why a claim on ``host`` failed after the filters passed it: its driver stopped
        reporting meanwhile (the hypervisor went away: its error says which), or another
        request took the room."""
        with self.db.read() as session:
            node = session.execute(
                sa.select(models.ComputeNode.reporting, models.ComputeNode.report_error)
                .where(models.ComputeNode.host == host)).first()
        if node is not None and not node.reporting:
            why = f": {node.report_error}" if node.report_error else ""
            return f"{host} stopped reporting valid stats meanwhile{why}"
        return f"{host} was filled by a concurrent request"

    @db_api.retry_on_conflict
    def _claim(self, instance_uuid: str, candidate: str, want: claims.Request,
               ratios: claims.Ratios, hard: ServerGroupInfo | None) -> bool:
        """One transaction: lock the server's row, claim ``want`` on ``candidate`` and record
        it as the server's host. False if the host has no room left. Raises NotFound, having
        claimed nothing, when the server was deleted (or is being deleted) meanwhile: the
        delete holds the same row lock while it decides, so a claim is either made before
        it (the delete then sees the host and goes through it) or never."""
        with self.db.transaction() as session:
            row = session.get(models.Instance, instance_uuid, with_for_update=True)
            if row is None or row.vm_state != VmState.BUILDING \
                    or row.task_state == TaskState.DELETING:
                raise exception.NotFound(
                    "server", instance_uuid,
                    f"server {instance_uuid} was deleted while being scheduled")
            if hard is not None:
                # Lock the group next (same order everywhere), then re-check the policy
                # against members placed since the host states were read.
                now = self._group_info(session, hard.id, instance_uuid, lock=True)
                on_host = now.hosts.get(candidate, 0)
                if (hard.policy == "anti-affinity" and on_host >= now.max_server_per_host) or (
                        hard.policy == "affinity" and now.hosts and not on_host):
                    raise _GroupConflict(candidate)
            if row.host is not None:
                # a reschedule (or a retried transaction) gives back the old claim; a server
                # without a host holds none (claim and host are set in one transaction)
                claims.release(session, instance_uuid)
            if not claims.claim(session, candidate, instance_uuid, want, ratios):
                return False
            row.host = candidate
            session.add(sched_models.SchedulingAttempt(instance_uuid=instance_uuid,
                                                       host=candidate))
            return True

    def select_migration_destination(self, instance_uuid: str, migration_id: str,
                                     request: dict[str, Any]) -> dict[str, Any]:
        """Place a resize, cold migration (API 1.2) or evacuation (1.3): pick a host for the
        server's new flavor in ``request`` (``exclude_hosts`` names the source unless a
        same-host resize is allowed; an evacuation's always does) and, in one transaction
        per candidate, hand the server's source claim over to the migration
        (:func:`claims.move_to_migration`) and claim ``request`` for the server on the
        candidate. With a ``requested_host`` (API 1.4) that host is the only candidate, still
        filtered. Returns ``{"host": ...}``. Raises NoValidHost (nothing moved or claimed)
        when no host fits - naming the requested host, when there is one, with why it does
        not - and InvalidState when the server or the migration is no longer waiting for a
        host."""
        with self._placing.locked(instance_uuid):  # not an orphan while placed here
            req = self._request(instance_uuid, request)
            hosts = self._current_host_states()
            if req.requested_host is not None:
                decision = self._requested(hosts, req, instance_uuid)
                ranking: Iterator[str] = iter(decision.names)
                refused = f"host {req.requested_host} cannot take server {instance_uuid}"
            else:
                decision = self.handler.run(hosts, req, exclude=sorted(req.exclude_hosts))
                ranking = self._ranking(decision, self.conf.scheduler.max_attempts)
                refused = "no valid host was found"
            reasons: list[str] = []
            want = claims.Request(req.vcpus, req.memory_mb, req.disk_gb)
            ratios = self._ratios()
            for candidate in ranking:
                if not self._claim_migration(instance_uuid, migration_id, candidate, want, ratios):
                    self._claimed(hosts, candidate, None)
                    reasons.append(self._lost_claim(candidate))
                    continue
                self._claimed(hosts, candidate, want)
                return {"host": candidate}
            raise exception.NoValidHost(refused, reasons=decision.reasons() + reasons)

    def _requested(self, hosts: HostSet, req: ComputeRequest, instance_uuid: str
                   ) -> handler.Decision:
        """The filters run on the requested host alone (a set of one: the trace then says
        why exactly that host fails). NoValidHost naming it if it is no compute host, is
        excluded (the server's own), or fails a filter."""
        name = req.requested_host
        assert name is not None
        refused = f"host {name} cannot take server {instance_uuid}"
        i = hosts.index.get(name)
        if i is None:
            raise exception.NoValidHost(refused, reasons=[f"{name} is no compute host"])
        if name in req.exclude_hosts:
            raise exception.NoValidHost(refused, reasons=[
                f"{name} is excluded (the host the server is moved away from)"])
        state = hosts.state(i)
        decision = self.handler.run(HostSet.from_states([state]), req)
        if not decision.passed.size:
            raise exception.NoValidHost(refused, reasons=[
                f"{step.name}: {step.filter.reason(state, req)}"
                for step in decision.steps if step.rejected])
        return decision

    @db_api.retry_on_conflict
    def _claim_migration(self, instance_uuid: str, migration_id: str, candidate: str,
                         want: claims.Request, ratios: claims.Ratios) -> bool:
        """One transaction: lock the server's row, move its claim to the migration, claim
        ``want`` on ``candidate`` for it and record the destination. False (all rolled
        back) if the candidate has no room."""
        try:
            with self.db.transaction() as session:
                row = session.get(models.Instance, instance_uuid, with_for_update=True)
                migration = session.get(models.Migration, migration_id)
                task = _PLACING_TASK.get(migration.migration_type if migration else "",
                                         TaskState.RESIZE_PREP)
                if row is None or row.task_state != task or migration is None \
                        or migration.status != models.MigrationStatus.PRE_MIGRATING:
                    raise exception.InvalidState(
                        f"server {instance_uuid} is no longer waiting for a host for migration "
                        f"{migration_id}")
                claims.move_to_migration(session, instance_uuid, migration_id)
                if not claims.claim(session, candidate, instance_uuid, want, ratios):
                    raise _NoRoom(candidate)
                migration.dest_host = candidate
                migration.status = models.MigrationStatus.MIGRATING
        except _NoRoom:
            return False
        return True

    @staticmethod
    def _ranking(decision: handler.Decision, attempts: int) -> Iterator[str]:
        """The ranking, best first, sorted lazily: the claim loop only walks past the first
        few hosts while concurrent requests fill them."""
        first = decision.top(max(16, attempts * 4))
        yield from first
        if len(first) < decision.passed.size:
            seen = set(first)
            yield from (name for name in decision.names if name not in seen)

    def reschedule(self, instance_uuid: str, failed_host: str, reason: str) -> dict[str, Any]:
        """A build failed on ``failed_host``: record it, give back the claim and place the
        server on a host not tried yet. Returns ``{"host": new}``, or ``{"host": None,
        "reason": why}`` when ``max_attempts`` hosts were tried or no alternate fits (the
        caller then puts the server in ERROR)."""
        attempt = sched_models.SchedulingAttempt
        with self.db.transaction() as session:
            row = session.get(models.Instance, instance_uuid)
            if row is None or row.vm_state != VmState.BUILDING:
                return {"host": None, "reason": "the server is no longer building"}
            session.execute(
                sa.update(attempt)
                .where(attempt.instance_uuid == instance_uuid, attempt.host == failed_host,
                       attempt.reason.is_(None))
                .values(reason=reason[:2000])
            )
            tried = sorted(set(session.execute(
                sa.select(attempt.host).where(attempt.instance_uuid == instance_uuid)
            ).scalars()) | {failed_host})
            flavor = dict(row.flavor)
            image = session.get(image_models.Image, row.image_id)
            group = session.execute(
                sa.select(sched_models.ServerGroupMember.group_id)
                .where(sched_models.ServerGroupMember.instance_uuid == instance_uuid)
            ).scalar_one_or_none()
            zone = row.availability_zone
            if len(tried) >= self.conf.scheduler.max_attempts:
                return {"host": None,
                        "reason": f"tried {len(tried)} host(s) ({', '.join(tried)}); "
                                  f"[scheduler] max_attempts is "
                                  f"{self.conf.scheduler.max_attempts}"}
        # The failed host's claim is given back by select_destinations in the transaction
        # that claims the alternate (or by the compute host failing the build).
        request = build(flavor, dict(image.properties) if image else {},
                        availability_zone=zone, server_group=group, exclude_hosts=tried)
        try:
            chosen = self.select_destinations(instance_uuid, request)
        except exception.NoValidHost as err:
            return {"host": None, "reason": f"no alternate host: {err}"}
        LOG.info("server %s rescheduled from %s to %s", instance_uuid, failed_host,
                 chosen["host"])
        return {"host": chosen["host"]}
