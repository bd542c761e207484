"""Resize and cold migration on the compute hosts: the steps each host runs and their repair.

A resize gives a server a new flavor, on a host the scheduler picks (the same host only with
``[compute] allow_resize_to_same_host``); a cold migration is a resize to the same flavor on
another host. Both end ``resized`` (Nova's ``VERIFY_RESIZE``): the server runs on the
destination while the source keeps everything a revert needs, and both hosts keep their
claims, until the user confirms (the source's leftovers and claim go) or reverts (the
destination's go and the server is back on the source as it was). As in Nova.

Who does what is the :class:`~stackcore.compute.models.Migration` row's ``status``; each
status has exactly one owner, and every hand-over (status change plus an RPC cast to the next
owner) is one transaction followed by the cast::

    pre-migrating     API + scheduler   claims: source -> the migration, destination -> server
    migrating         source host       migrate_disk_and_power_off
    post-migrating    destination host  ports bound there, volumes exported there,
                                        finish_migration  -> finished (server RESIZED)
    finished          the user          confirm_resize / revert_resize
    confirming        source host       confirm_migration, source attachments ended,
                                        the migration's claim released  -> confirmed
    reverting         destination host  revert_migration
    finish-reverting  source host       ports and volumes back, finish_revert_migration,
                                        claims back  -> reverted (or error)

A failure of ``migrate_disk_and_power_off`` or ``finish_migration`` is rolled back through
the same revert steps (``error`` records why; the server ends in its old state with the
fault, as Nova's rollback does); a failure of the revert itself leaves the server ERROR on
the source with every claim but the source's released. A failure of ``confirm_migration``
or ``revert_migration`` leaves the server RESIZED with the fault, so the user can try again.

Because each status has one owner, repair is local: a host that restarts (or finds a status
of its own unchanged and unworked for ``rpc_call_timeout`` seconds: a cast lost with a broker
restart) runs its step again - each step is idempotent - or, for ``migrating`` and
``post-migrating``, rolls the migration back. Nothing else touches a server with a migration
in progress: the generic reconciliation of the compute manager skips resize task states.
"""

# HostMigrations is the compute manager's own code, in a module of its own for size: it uses
# the manager's internals (locks, driver calls, faults) as the manager's methods do.
# ruff: noqa: SLF001
from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from stackcore import exception, faults, managers
from stackcore.compute import block_devices, models, moves, objects
from stackcore.compute.models import MigrationStatus
from stackcore.compute.placement import claims
from stackcore.compute.states import TaskState, VmState

if TYPE_CHECKING:
    from stackcore.compute.manager import ComputeManager

LOG = logging.getLogger(__name__)

#: task states of a server with a migration in progress (the generic reconciliation skips
#: them: the migration's owner repairs it)
RESIZE_TASKS = frozenset({TaskState.RESIZE_PREP, TaskState.RESIZE_MIGRATING,
                          TaskState.RESIZE_FINISH, TaskState.RESIZE_CONFIRMING,
                          TaskState.RESIZE_REVERTING})
#: statuses the source host owns (``pre-migrating`` is the API's; its source host only
#: repairs it once it has been left alone for a while)
SOURCE_OWNED = (MigrationStatus.PRE_MIGRATING, MigrationStatus.MIGRATING,
                MigrationStatus.CONFIRMING, MigrationStatus.FINISH_REVERTING)
DEST_OWNED = (MigrationStatus.POST_MIGRATING, MigrationStatus.REVERTING)
IN_PROGRESS = (*SOURCE_OWNED, *DEST_OWNED, MigrationStatus.FINISHED)


class HostMigrations(moves.HostMoves):
    """The migration steps of one compute host (its :class:`ComputeManager` delegates its
    API 1.4 methods here). Every step runs under the server's lock on this host."""

    def __init__(self, manager: ComputeManager) -> None:
        super().__init__(manager)
        self._orphans = managers.Orphans()

    # --- plumbing ---------------------------------------------------------------------------

    def _with_flavor(self, instance: objects.Instance, flavor: dict[str, Any]
                     ) -> objects.Instance:
        return dataclasses.replace(instance, flavor=objects.Flavor(**flavor), host=self.m.host)

    # --- the steps (compute API 1.4) -------------------------------------------------------

    def resize_instance(self, uuid: str, migration_id: str) -> None:
        """Source host: power off and send the disks, then hand over to the destination."""
        m = self.m
        with m._instance_lock(uuid):
            loaded = self.load(uuid, migration_id, MigrationStatus.MIGRATING, "source_host")
            if loaded is None:
                return
            migration, instance = loaded
            m._update(uuid, task_state=TaskState.RESIZE_MIGRATING)
            m._notify("instance.resize.start", uuid)
            step = "migrate_disk_and_power_off"
            try:
                rpc = self.rpc()
                disk_info = m._driver_call(
                    step, m.driver.migrate_disk_and_power_off, instance,
                    str(migration.dest_host), objects.Flavor(**migration.new_flavor),
                    m._network_info(uuid), m._block_device_info(uuid))
                with m.db.transaction() as session:
                    session.execute(sa.update(models.Migration)
                                    .where(models.Migration.id == migration_id)
                                    .values(disk_info=dict(disk_info)))
                step = "hand_over"
                handed = self.hand_over(migration_id, MigrationStatus.MIGRATING,
                                         MigrationStatus.POST_MIGRATING,
                                         TaskState.RESIZE_FINISH)
            except Exception as err:  # noqa: BLE001 - rolled back, recorded as a fault
                m._record_fault(uuid, step, err)
                self._roll_back_here(uuid, migration_id, MigrationStatus.MIGRATING,
                                     f"{step} failed on {m.host}: {err}")
                return
        if handed:
            rpc.finish_resize(migration.dest_host, uuid, migration_id)

    def finish_resize(self, uuid: str, migration_id: str) -> None:
        """Destination host: bind the ports and export the volumes here, make the instance
        with the new flavor; the server is RESIZED. A failure is undone here and handed to
        the source for the rest of the rollback."""
        m = self.m
        with m._instance_lock(uuid):
            loaded = self.load(uuid, migration_id, MigrationStatus.POST_MIGRATING, "dest_host")
            if loaded is None:
                return
            migration, instance = loaded
            instance = self._with_flavor(instance, migration.new_flavor)
            bdms = self.bdms(uuid)
            network_info: list[dict[str, Any]] = []
            step = "migrate_ports"
            try:
                if block_devices.root_volume(bdms) is not None:
                    step = "boot_from_volume"
                    m._capable("boot_from_volume")  # before anything is moved here
                    step = "migrate_ports"
                with m.db.transaction() as session:  # recorded before any is replaced
                    if not migration.source_attachments:
                        session.execute(
                            sa.update(models.Migration)
                            .where(models.Migration.id == migration_id)
                            .values(source_attachments={b.volume_id: b.attachment_id
                                                        for b in bdms}))
                network_info = self.ports_here(uuid)
                step = "connect_volumes"
                infos, _ = self.connect_volumes_here(uuid, bdms)
                step = "fetch_image"  # a qcow2 overlay backs onto this host's copy
                _, _, _, source = m._load_with_requests(uuid, False)
                with m._cached_image(m._source_to_fetch(source, instance.image)):
                    step = "finish_migration"
                    m._driver_call(step, m.driver.finish_migration, instance,
                                   dict(migration.disk_info), network_info,
                                   block_devices.block_device_info(bdms, infos),
                                   migration.migration_type == "resize",
                                   migration.old_vm_state == VmState.ACTIVE)
                power = m._power_state(instance)
                step = "finish_resize"
                new = migration.new_flavor
                if not self.hand_over(
                        migration_id, MigrationStatus.POST_MIGRATING, MigrationStatus.FINISHED,
                        None, host=m.host, flavor=new, flavor_id=migration.new_flavor_id,
                        vm_state=VmState.RESIZED, power_state=int(power)):
                    return
            except Exception as err:  # noqa: BLE001 - rolled back, recorded as a fault
                m._record_fault(uuid, step, err)
                self._undo_destination(uuid, migration_id, instance,
                                       MigrationStatus.POST_MIGRATING,
                                       f"{step} failed on {m.host}: {err}")
                return
            m._notify("instance.resize.end", uuid)
        m.update_available_resource()

    def _undo_destination(self, uuid: str, migration_id: str, instance: objects.Instance,
                          expected: MigrationStatus, why: str) -> None:
        """Remove what the destination made (instance, volume attachments) and hand the
        rollback to the source. A failure of the clean-up is recorded; the rollback goes
        on (the source's side must still be restored)."""
        m = self.m
        bdms = self.bdms(uuid)
        try:
            m._driver_call("revert_migration", m.driver.revert_migration, instance,
                           m._network_info(uuid), block_devices.block_device_info(bdms))
        except Exception as err:  # noqa: BLE001
            m._record_fault(uuid, "cleanup", f"removing the new instance on {m.host} failed: "
                                             f"{err}", type(err).__name__)
        with m.db.read() as session:
            kept = dict(session.execute(sa.select(models.Migration.source_attachments).where(
                models.Migration.id == migration_id)).scalar_one() or {})
        for bdm in bdms:
            source = kept.get(bdm.volume_id)
            if bdm.attachment_id is not None and bdm.attachment_id != source:
                try:
                    self.end_attachments(uuid, bdm.volume_id, {bdm.attachment_id})
                except Exception as err:  # noqa: BLE001
                    m._record_fault(uuid, "cleanup", f"ending the export of volume "
                                                     f"{bdm.volume_id} to {m.host} failed: "
                                                     f"{err}", type(err).__name__)
                    continue
                m._set_bdm(bdm.id, attachment_id=source)
        m._notify("instance.resize.error", uuid, exception.DriverError(why), "finish_resize")
        self._send_back(uuid, migration_id, expected, why)

    def _send_back(self, uuid: str, migration_id: str, expected: MigrationStatus,
                   why: str | None) -> None:
        """Hand the migration to its source host for ``finish_revert_resize``."""
        with self.m.db.read() as session:
            source = session.execute(sa.select(models.Migration.source_host).where(
                models.Migration.id == migration_id)).scalar_one()
        if not self.hand_over(migration_id, expected, MigrationStatus.FINISH_REVERTING,
                               TaskState.RESIZE_REVERTING, error=why):
            return
        if source == self.m.host:
            self._finish_revert(uuid, migration_id)
        else:
            self.rpc().finish_revert_resize(source, uuid, migration_id)

    def _roll_back_here(self, uuid: str, migration_id: str, expected: MigrationStatus,
                        why: str) -> None:
        """A failure on the source before the destination did anything: restore here."""
        if self.hand_over(migration_id, expected, MigrationStatus.FINISH_REVERTING,
                           TaskState.RESIZE_REVERTING, error=why):
            self._finish_revert(uuid, migration_id)
        self.m._notify("instance.resize.error", uuid, exception.DriverError(why),
                       "resize_instance")

    def confirm_resize(self, uuid: str, migration_id: str) -> None:
        """Source host: remove what was kept for a revert, end the source's volume
        attachments, release the source claim; the server is ACTIVE (or STOPPED) again."""
        m = self.m
        with m._instance_lock(uuid):
            loaded = self.load(uuid, migration_id, MigrationStatus.CONFIRMING, "source_host")
            if loaded is None:
                return
            migration, instance = loaded
            instance = self._with_flavor(instance, migration.old_flavor)
            m._notify("instance.resize_confirm.start", uuid)
            step = "confirm_migration"
            try:
                m._driver_call(step, m.driver.confirm_migration, instance,
                               m._network_info(uuid))
                step = "detach_volumes"
                current = {b.volume_id: b.attachment_id for b in self.bdms(uuid)}
                for volume_id, attachment_id in dict(migration.source_attachments).items():
                    if attachment_id and attachment_id != current.get(volume_id):
                        self.end_attachments(uuid, volume_id, {attachment_id})
                step = "finish_confirm"
                new = migration.new_flavor
                with m.db.transaction() as session:
                    moved = session.execute(
                        sa.update(models.Migration)
                        .where(models.Migration.id == migration_id,
                               models.Migration.status == MigrationStatus.CONFIRMING)
                        .values(status=MigrationStatus.CONFIRMED)
                    ).rowcount  # type: ignore[attr-defined]
                    if moved == 1:
                        claims.release(session, migration_id)
                        session.execute(
                            sa.update(models.Instance).where(models.Instance.uuid == uuid)
                            .values(task_state=None, vm_state=migration.old_vm_state,
                                    vcpus=int(new["vcpus"]), memory_mb=int(new["ram_mb"])))
            except Exception as err:  # noqa: BLE001 - RESIZED again: confirm may be retried
                m._record_fault(uuid, step, err)
                self.hand_over(migration_id, MigrationStatus.CONFIRMING,
                                MigrationStatus.FINISHED, None)
                m._notify("instance.resize_confirm.error", uuid, err, step)
                return
            m._notify("instance.resize_confirm.end", uuid)
        m.update_available_resource()

    def revert_resize(self, uuid: str, migration_id: str) -> None:
        """Destination host: remove the new instance, then hand the server back to the
        source. A failure leaves it RESIZED with the fault (revert may be retried)."""
        m = self.m
        with m._instance_lock(uuid):
            loaded = self.load(uuid, migration_id, MigrationStatus.REVERTING, "dest_host")
            if loaded is None:
                return
            migration, instance = loaded
            instance = self._with_flavor(instance, migration.new_flavor)
            m._notify("instance.resize_revert.start", uuid)
            try:
                m._driver_call("revert_migration", m.driver.revert_migration, instance,
                               m._network_info(uuid), m._block_device_info(uuid))
            except Exception as err:  # noqa: BLE001
                m._record_fault(uuid, "revert_migration", err)
                self.hand_over(migration_id, MigrationStatus.REVERTING,
                                MigrationStatus.FINISHED, None)
                m._notify("instance.resize_revert.error", uuid, err, "revert_migration")
                return
            self._send_back(uuid, migration_id, MigrationStatus.REVERTING, None)
        m.update_available_resource()

    def finish_revert_resize(self, uuid: str, migration_id: str) -> None:
        """Source host: the server back here as it was (cast by the destination)."""
        with self.m._instance_lock(uuid):
            self._finish_revert(uuid, migration_id)
        self.m.update_available_resource()

    def _finish_revert(self, uuid: str, migration_id: str) -> None:
        """Ports and volumes back to this host, the old instance started again, claims
        back to before the migration. A failure leaves the server ERROR here, with the
        source claim its own and the destination's released."""
        m = self.m
        loaded = self.load(uuid, migration_id, MigrationStatus.FINISH_REVERTING, "source_host")
        if loaded is None:
            return
        migration, instance = loaded
        instance = self._with_flavor(instance, migration.old_flavor)
        old = migration.old_flavor
        values: dict[str, Any] = {
            "host": m.host, "flavor": old, "flavor_id": migration.old_flavor_id,
            "vcpus": int(old["vcpus"]), "memory_mb": int(old["ram_mb"]), "task_state": None}
        step = "migrate_ports"
        try:
            network_info = self.ports_here(uuid)
            step = "connect_volumes"
            bdms = self.bdms(uuid)
            before = {b.volume_id: b.attachment_id for b in bdms}
            infos, created = self.connect_volumes_here(uuid, bdms)
            for volume_id, attachment_id in created.items():
                stale = {before.get(volume_id),
                         dict(migration.source_attachments).get(volume_id)}
                self.end_attachments(uuid, volume_id,
                                      {a for a in stale if a and a != attachment_id})
            step = "finish_revert_migration"
            m._driver_call(step, m.driver.finish_revert_migration, instance, network_info,
                           block_devices.block_device_info(bdms, infos),
                           migration.old_vm_state == VmState.ACTIVE)
            values["power_state"] = int(m._power_state(instance))
            values["vm_state"] = migration.old_vm_state
        except Exception as err:  # noqa: BLE001 - the server cannot be brought back
            m._record_fault(uuid, step, err)
            values["vm_state"] = VmState.ERROR
            self._finish(migration_id, MigrationStatus.ERROR, values, uuid)
            m._notify("instance.resize_revert.error", uuid, err, step)
            return
        self._finish(migration_id, MigrationStatus.ERROR if migration.error
                     else MigrationStatus.REVERTED, values, uuid)
        m._notify("instance.resize_revert.end", uuid)

    def _finish(self, migration_id: str, status: MigrationStatus, values: dict[str, Any],
                uuid: str) -> None:
        """The migration ends ``status``; its claims as before it (destination released,
        source the server's), the server's row ``values``."""
        with self.m.db.transaction() as session:
            moved = session.execute(
                sa.update(models.Migration)
                .where(models.Migration.id == migration_id,
                       models.Migration.status == MigrationStatus.FINISH_REVERTING)
                .values(status=status)).rowcount  # type: ignore[attr-defined]
            if moved != 1:
                return
            claims.move_back_from_migration(session, uuid, migration_id)
            session.execute(sa.update(models.Instance).where(models.Instance.uuid == uuid)
                            .values(**values))

    # --- repair ----------------------------------------------------------------------------

    def owned(self, pending_only: bool) -> list[tuple[str, str, str]]:
        """``(instance_uuid, migration_id, status)`` of the migrations whose step is this
        host's; with ``pending_only``, without ``pre-migrating`` (the API's). Evacuations
        are not: their statuses mean other things (:mod:`stackcore.compute.evacuation`)."""
        mig = models.Migration
        source = [s for s in SOURCE_OWNED
                  if not (pending_only and s == MigrationStatus.PRE_MIGRATING)]
        with self.m.db.read() as session:
            rows = session.execute(sa.select(mig.instance_uuid, mig.id, mig.status).where(
                # stackcore.compute.evacuation's and stackcore.compute.live_migration's
                mig.migration_type.not_in((models.EVACUATION, models.LIVE_MIGRATION)),
                sa.or_(sa.and_(mig.source_host == self.m.host, mig.status.in_(source)),
                       sa.and_(mig.dest_host == self.m.host, mig.status.in_(DEST_OWNED))))
                .order_by(mig.created_at)).all()
        return [(str(r[0]), str(r[1]), str(r[2])) for r in rows]

    def migrating_here(self) -> set[str]:
        """Servers with a migration in progress from or to this host: the hypervisor may
        have an instance of theirs here that the server's row does not place here (the old
        one kept for a revert, a new one not finished yet) - not unknown instances."""
        mig = models.Migration
        with self.m.db.read() as session:
            return set(session.execute(sa.select(mig.instance_uuid).where(
                mig.migration_type.not_in((models.EVACUATION, models.LIVE_MIGRATION)),
                sa.or_(mig.source_host == self.m.host, mig.dest_host == self.m.host),
                mig.status.in_(IN_PROGRESS))).scalars())

    def reconcile_at_start(self) -> None:
        """After a restart nothing of this host works on its migrations: repair them now."""
        for uuid, migration_id, status in self.owned(pending_only=True):
            self._repair(uuid, migration_id, status, f"a restart of the compute service on "
                                                     f"{self.m.host}")

    def reconcile_orphans(self) -> list[str]:
        """Periodic: repair the migrations of this host left in the same status, with no
        work on them, for ``rpc_call_timeout`` seconds (a cast lost with a broker restart,
        an API that died waiting for the scheduler)."""
        return self.repair_orphans(self._orphans, self.owned(pending_only=False),
                                   self._repair, "migration")

    def _repair(self, uuid: str, migration_id: str, status: str, cause: str) -> None:
        LOG.warning("server %s: migration %s is %s after %s; repairing", uuid, migration_id,
                    status, cause)
        why = f"the migration was interrupted by {cause}"
        if status == MigrationStatus.PRE_MIGRATING:
            self._abort_unplaced(uuid, migration_id, why)
        elif status == MigrationStatus.MIGRATING:
            with self.m._instance_lock(uuid):
                self.m._record_fault(uuid, "resize_instance", exception.DriverError(why))
                self._roll_back_here(uuid, migration_id, MigrationStatus.MIGRATING, why)
        elif status == MigrationStatus.POST_MIGRATING:
            with self.m._instance_lock(uuid):
                loaded = self.load(uuid, migration_id, MigrationStatus.POST_MIGRATING,
                                    "dest_host")
                if loaded is None:
                    return
                migration, instance = loaded
                self.m._record_fault(uuid, "finish_resize", exception.DriverError(why))
                self._undo_destination(uuid, migration_id,
                                       self._with_flavor(instance, migration.new_flavor),
                                       MigrationStatus.POST_MIGRATING, why)
        elif status == MigrationStatus.CONFIRMING:
            self.confirm_resize(uuid, migration_id)
        elif status == MigrationStatus.REVERTING:
            self.revert_resize(uuid, migration_id)
        elif status == MigrationStatus.FINISH_REVERTING:
            self.finish_revert_resize(uuid, migration_id)

    def _abort_unplaced(self, uuid: str, migration_id: str, why: str) -> None:
        """A migration that never got its destination: nothing was claimed or moved."""
        with self.m.db.transaction() as session:
            migration = session.get(models.Migration, migration_id, with_for_update=True)
            if migration is None or migration.status != MigrationStatus.PRE_MIGRATING:
                return
            migration.status = MigrationStatus.ERROR
            migration.error = why
            old = migration.old_flavor
            session.add(faults.new(models.InstanceFault, exception.DriverError(why),
                                   step="schedule", instance_uuid=uuid, host=self.m.host))
            session.execute(sa.update(models.Instance).where(models.Instance.uuid == uuid)
                            .values(task_state=None, vcpus=int(old["vcpus"]),
                                    memory_mb=int(old["ram_mb"])))
