"""Evacuation: a server of a dead compute host rebuilt on another host (Nova's evacuate).

An admin evacuates a server whose host's compute service is **down** (never while its
heartbeat is fresh: the server would run twice - the operator fences the host first). The
scheduler picks another host and claims there, as for a cold migration, and that host
rebuilds the server from its image with the same ports (addresses kept) and volumes. As in
Nova without shared storage, the root disk is made afresh: what was written to a local root
disk is lost; volumes keep their data. A volume-backed server (boot from volume) is Nova's
shared-storage case: its root volume is exported to the new host and booted there, data and
all (the new host's driver must declare ``boot_from_volume``).

The :class:`~stackcore.compute.models.Migration` row (``migration_type`` ``evacuation``) says
who owns the next step, each status one owner, as for resize
(:mod:`stackcore.compute.migration`)::

    pre-migrating   API + scheduler   claims: source -> the migration, new host -> server
    migrating       new host          takes the server: its row's host set in the same
                                      transaction that moves the migration on
    post-migrating  new host          ports bound there, volumes attached there and the
                                      dead host's attachments ended (its exports stop),
                                      spawn from the image  -> done (server ACTIVE/STOPPED)
    done            old host          once its compute service is back: destroys its old
                                      instance (unplugging its VIFs and detaching its
                                      volumes there, as recorded before the new host moved
                                      them), releases the migration's claim -> completed
    error           (failed)          if the new host had taken the server, the old host
                                      cleans up as after ``done`` -> completed

ACTIVE and ERROR servers end ACTIVE, STOPPED ones STOPPED (rebuilt, not started). A failed
rebuild leaves the server ERROR on the new host with the fault and nothing half-made there
(its ports and volumes stay with it there: rebuild or delete it). Repair is the new host's:
an evacuation left ``migrating`` for ``rpc_call_timeout`` seconds (its cast lost) is started
by its orphan pass; one left ``post-migrating`` by a restart (or for that long with no work on
it) is ERROR, "interrupted". An evacuation cut off before it was placed (``pre-migrating``:
its source is down, no host owns it) is ended by the scheduler's periodic pass
(:meth:`~stackcore.compute.placement.manager.SchedulerManager.reconcile_unplaced_evacuations`).
The old host never touches the server itself: its row is the new host's from the moment it
was taken.
"""

# HostEvacuations is the compute manager's own code, in a module of its own for size: it uses
# the manager's internals (locks, driver calls, faults) as the manager's methods do.
# ruff: noqa: SLF001
from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from stackcore import exception, faults, managers
from stackcore.compute import block_devices, models, moves, objects
from stackcore.compute.models import EVACUATION, MigrationStatus
from stackcore.compute.placement import claims
from stackcore.compute.states import TaskState, VmState
from stackcore.db import models as db_models
from stackcore.image import models as image_models

if TYPE_CHECKING:
    from stackcore.compute.manager import ComputeManager

LOG = logging.getLogger(__name__)

#: task states of a server being evacuated (the generic reconciliation skips them)
TASKS = frozenset({TaskState.EVACUATING})
#: vm_states a server may be evacuated from
FROM_STATES = (VmState.ACTIVE, VmState.STOPPED, VmState.ERROR)
#: statuses the new host owns
DEST_OWNED = (MigrationStatus.MIGRATING, MigrationStatus.POST_MIGRATING)
#: statuses after which the old host has its leftovers to remove
ENDED = (MigrationStatus.DONE, MigrationStatus.ERROR)


class HostEvacuations(moves.HostMoves):
    """The evacuation steps of one compute host, as the new host (``evacuate_instance``,
    compute API 1.5) and as the old one (:meth:`clean_up_evacuated`)."""

    def __init__(self, manager: ComputeManager) -> None:
        super().__init__(manager)
        self._orphans = managers.Orphans()

    # --- the new host ----------------------------------------------------------------------

    def evacuate_instance(self, uuid: str, migration_id: str) -> None:
        """Take the server (its row's host is this host from now on) and rebuild it here."""
        m = self.m
        with m._instance_lock(uuid):
            loaded = self.load(uuid, migration_id, MigrationStatus.MIGRATING, "dest_host")
            if loaded is None:
                return  # taken already, or failed meanwhile: a stale or repeated cast
            migration, instance = loaded
            if not self.hand_over(migration_id, MigrationStatus.MIGRATING,
                                  MigrationStatus.POST_MIGRATING, TaskState.EVACUATING,
                                  host=m.host):
                return
            m._notify("instance.evacuate.start", uuid)
            self._rebuild(uuid, migration, instance)
        m.update_available_resource()

    def _rebuild(self, uuid: str, migration: models.Migration,
                 instance: objects.Instance) -> None:
        m = self.m
        bdms = self.bdms(uuid)
        network_info: list[dict[str, Any]] = []
        device_info: list[dict[str, Any]] = []
        step = "migrate_ports"
        try:
            if block_devices.root_volume(bdms) is not None:
                step = "boot_from_volume"
                m._capable("boot_from_volume")  # before anything is moved here
                step = "migrate_ports"
            # What the dead host's instance was wired with, recorded before anything is
            # moved here: its destroy, when that host is back, unplugs those VIFs and
            # detaches those devices there (the ports' bindings are this host's by then).
            dead = {b.volume_id: b.attachment_id for b in bdms}
            with m.db.transaction() as session:
                session.execute(sa.update(models.Migration)
                                .where(models.Migration.id == migration.id)
                                .values(source_attachments=dead,
                                        source_network_info=m._network_info(uuid),
                                        source_block_devices=block_devices.block_device_info(
                                            bdms)))
            network_info = self.ports_here(uuid)
            step = "connect_volumes"
            infos, created = self.connect_volumes_here(uuid, bdms)
            for volume_id, attachment_id in created.items():
                old = dead.get(volume_id)
                if old and old != attachment_id:  # the dead host's export ends
                    self.end_attachments(uuid, volume_id, {old})
            device_info = block_devices.block_device_info(bdms, infos)
            step = "fetch_image"
            _, _, _, source = m._load_with_requests(uuid, False)
            with m._cached_image(m._source_to_fetch(source, instance.image)):
                step = "spawn"
                m._driver_call(step, m.driver.spawn, instance, instance.image, network_info,
                               device_info)
            stopped = migration.old_vm_state == VmState.STOPPED
            if stopped:
                step = "power_off"
                m._driver_call(step, m.driver.power_off, instance, 0)
            power = m._power_state(instance)
            step = "finish_evacuate"
            with m.db.transaction() as session:
                moved = session.execute(
                    sa.update(models.Migration)
                    .where(models.Migration.id == migration.id,
                           models.Migration.status == MigrationStatus.POST_MIGRATING)
                    .values(status=MigrationStatus.DONE)
                ).rowcount  # type: ignore[attr-defined]
                if moved == 1:
                    session.execute(
                        sa.update(models.Instance).where(models.Instance.uuid == uuid)
                        .values(task_state=None, power_state=int(power),
                                vm_state=VmState.STOPPED if stopped else VmState.ACTIVE,
                                launched_at=db_models.utcnow()))
        except Exception as err:  # noqa: BLE001 - recorded as a fault, ERROR here
            m._cleanup_half_made(instance, network_info, device_info)
            self._fail(uuid, migration.id, step, err)
            return
        if moved != 1:  # declared interrupted meanwhile (ERROR): what was made here goes
            m._cleanup_half_made(instance, network_info, device_info)
            return
        m._notify("instance.evacuate.end", uuid)

    def _fail(self, uuid: str, migration_id: str, step: str, err: BaseException) -> None:
        """The server ERROR on this host with the fault, the migration ``error`` (the old
        host still cleans up after it); in one transaction."""
        LOG.warning("server %s: evacuation failed on %s at %s: %s", uuid, self.m.host, step,
                    err)
        with self.m.db.transaction() as session:
            session.execute(
                sa.update(models.Migration)
                .where(models.Migration.id == migration_id,
                       models.Migration.status == MigrationStatus.POST_MIGRATING)
                .values(status=MigrationStatus.ERROR,
                        error=f"{step} failed on {self.m.host}: {err}"[:2000]))
            session.add(faults.new(models.InstanceFault, err, step=step, instance_uuid=uuid,
                                   host=self.m.host))
            session.execute(sa.update(models.Instance).where(models.Instance.uuid == uuid)
                            .values(vm_state=VmState.ERROR, task_state=None))
        self.m._notify("instance.evacuate.error", uuid, err, step)

    def _interrupted(self, uuid: str, migration_id: str, cause: str) -> None:
        """A rebuild ``cause`` cut off: what it made here is destroyed, the server ERROR."""
        m = self.m
        with m._instance_lock(uuid):
            loaded = self.load(uuid, migration_id, MigrationStatus.POST_MIGRATING, "dest_host")
            if loaded is None:
                return
            _, instance = loaded
            LOG.warning("server %s: its evacuation to %s was interrupted by %s", uuid, m.host,
                        cause)
            if uuid in m._driver_call("list_instances", m.driver.list_instances):
                m._cleanup_half_made(instance, m._network_info(uuid),
                                     m._block_device_info(uuid))
            self._fail(uuid, migration_id, "evacuate",
                       exception.DriverError(f"the evacuation was interrupted by {cause}"))

    def owned(self) -> list[tuple[str, str, str]]:
        """``(instance_uuid, migration_id, status)`` of the evacuations whose step is this
        host's, as the new host."""
        mig = models.Migration
        with self.m.db.read() as session:
            rows = session.execute(sa.select(mig.instance_uuid, mig.id, mig.status).where(
                mig.migration_type == EVACUATION, mig.dest_host == self.m.host,
                mig.status.in_(DEST_OWNED)).order_by(mig.created_at)).all()
        return [(str(r[0]), str(r[1]), str(r[2])) for r in rows]

    def reconcile_at_start(self) -> None:
        """After a restart nothing of this host rebuilds: its rebuilds in progress failed.
        (One not taken yet, its cast maybe still queued, is left to the orphan pass.)"""
        for uuid, migration_id, status in self.owned():
            if status == MigrationStatus.POST_MIGRATING:
                self._interrupted(uuid, migration_id, f"a restart of the compute service on "
                                                      f"{self.m.host}")

    def reconcile_orphans(self) -> list[str]:
        """Periodic: the old host's clean-up (:meth:`clean_up_evacuated`), and the
        evacuations of this host left in the same status with no work on them for
        ``rpc_call_timeout`` seconds: one never taken (its cast lost with a broker restart)
        is started, one cut off while rebuilding is ERROR."""
        self.clean_up_evacuated()
        owned = self.owned()
        states = {migration_id: status for _, migration_id, status in owned}
        uuids = {migration_id: uuid for uuid, migration_id, _ in owned}
        due = self._orphans.due(states, lambda key: self.m._locks.busy(uuids[key]),
                                self.m.conf.rpc_call_timeout, time.monotonic())
        for migration_id in due:
            uuid = uuids[migration_id]
            try:
                if states[migration_id] == MigrationStatus.MIGRATING:
                    LOG.warning("server %s: the evacuation to %s was not started for %s s; "
                                "starting it", uuid, self.m.host, self.m.conf.rpc_call_timeout)
                    self.evacuate_instance(uuid, migration_id)
                else:
                    self._interrupted(uuid, migration_id, f"an interruption (rebuilding with "
                                      f"no work in progress on {self.m.host} for "
                                      f"{self.m.conf.rpc_call_timeout} s)")
            except Exception as err:  # noqa: BLE001 - the next pass tries again
                LOG.warning("repairing evacuation %s of server %s failed: %s", migration_id,
                            uuid, err)
        return [uuids[d] for d in due]

    # --- the old host ----------------------------------------------------------------------

    def here(self) -> set[str]:
        """Servers evacuated from this host whose old instance may still be on its
        hypervisor (not unknown instances: :meth:`clean_up_evacuated` removes them)."""
        mig = models.Migration
        with self.m.db.read() as session:
            return set(session.execute(sa.select(mig.instance_uuid).where(
                mig.migration_type == EVACUATION, mig.source_host == self.m.host,
                mig.status != MigrationStatus.COMPLETED)).scalars())

    def clean_up_evacuated(self) -> list[str]:
        """This host's compute service is back: destroy the old instance of each server
        evacuated from here and release the migration's claim (migration ``completed``, so it
        is read once). The destroy is the driver's only, with the wiring the old instance had
        here (:meth:`_old_wiring`) so that it unplugs its VIFs and detaches its volumes on this
        host; the ports' bindings and the volume attachments are the new host's now and are
        not touched (as Nova's ``_destroy_evacuated_instances``).
        Evacuations that got a new host (``done``, or ``error`` - failed after taking the
        server, or given up before); never touches the servers themselves, nor an instance
        of a server that lives here again (given up before it was taken, or evacuated back
        since: only the claim the migration may still hold goes). One that never got a new
        host (no valid host) held nothing and is left ``error``. A failure is logged and
        retried on the next pass."""
        mig, inst = models.Migration, models.Instance
        with self.m.db.read() as session:
            rows = session.execute(
                sa.select(mig.id, mig.instance_uuid, inst.host, mig.source_network_info,
                          mig.source_block_devices)
                .join(inst, inst.uuid == mig.instance_uuid)
                .where(mig.migration_type == EVACUATION, mig.source_host == self.m.host,
                       mig.status.in_(ENDED), mig.dest_host.is_not(None))
                .order_by(mig.created_at)).all()
        if not rows:
            return []
        m = self.m
        on_backend = set(m._driver_call("list_instances", m.driver.list_instances))
        cleaned = []
        for migration_id, uuid, host, network_info, block_device_info in rows:
            try:
                with m._instance_lock(uuid):
                    if uuid in on_backend and host != m.host:
                        m._driver_call("destroy", m.driver.destroy, self._old_instance(uuid),
                                       *self._old_wiring(uuid, network_info,
                                                         block_device_info), True)
                        on_backend.discard(uuid)
                    with m.db.transaction() as session:
                        moved = session.execute(
                            sa.update(mig).where(mig.id == migration_id, mig.status.in_(ENDED))
                            .values(status=MigrationStatus.COMPLETED)
                        ).rowcount  # type: ignore[attr-defined]
                        if moved == 1:
                            claims.release(session, migration_id)
            except Exception as err:  # noqa: BLE001 - the next pass tries again
                LOG.warning("server %s was evacuated from %s: removing its old instance "
                            "failed: %s", uuid, m.host, err)
                continue
            LOG.info("server %s was evacuated from %s: its old instance is destroyed", uuid,
                     m.host)
            cleaned.append(str(uuid))
        if cleaned:
            m.update_available_resource()
        return cleaned

    def _old_wiring(self, uuid: str, network_info: list[dict[str, Any]] | None,
                    block_device_info: list[dict[str, Any]] | None
                    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The ``network_info`` and ``block_device_info`` of the old instance on this host:
        as the new host recorded them before it moved the ports and volumes (also right
        once the server is deleted: its ports and mappings are gone then). An evacuation
        recorded without them (made before they were) gets the server's ports and mappings
        as they are now, as Nova does: the same VIFs (port ids, MACs, device names) and
        devices, the ports' binding details being the new host's. No ``connection_info``
        (the driver contract's destroy never gets one: it is never stored, and asking the
        volume service for one for this host's connector would export the volumes to the
        dead host again, which the evacuation ended)."""
        if network_info is None:
            network_info = self.m._network_info(uuid)
        if block_device_info is None:
            block_device_info = self.m._block_device_info(uuid)
        return list(network_info), list(block_device_info)

    def _old_instance(self, uuid: str) -> objects.Instance:
        """The server as this host's driver knew it (also a deleted one: its old instance
        is still here)."""
        with self.m.db.read() as session:
            row = session.get(models.Instance, uuid)
            if row is None:
                raise exception.NotFound("server", uuid)
            image = session.get(image_models.Image, row.image_id)
            return self.m._to_object(row, image)

