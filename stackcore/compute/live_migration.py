"""Live migration on the compute hosts: a running (or paused) server moved to another host
while it runs (Nova's live migration), the steps each host runs and their repair.

The scheduler picks the destination (or checks the one the admin named) and claims there,
as for a cold migration; both hosts keep their claims until the move is over. Unlike a
cold migration there is nothing to confirm: once the guest runs on the destination the
source removes what is left of it. A failure before the switch-over leaves the server
running on the source, untouched, with the fault; the destination removes what it prepared.

The :class:`~stackcore.compute.models.Migration` row (``migration_type`` ``live-migration``)
says who owns the next step, each status one owner, as for resize
(:mod:`stackcore.compute.migration`)::

    pre-migrating   API + scheduler   claims: source -> the migration, destination -> server
    migrating       source host       asks the destination to prepare (RPC call: volumes
                                      attached there, VIFs plugged, pre_live_migration),
                                      then live_migration; on success the server's row
                                      moves to the destination in the transaction that
                                      hands over
    post-migrating  destination host  ports bound here, post_live_migration_at_destination
    completing      source host       post_live_migration, the source's volume exports
                                      ended, the migration's claim released -> completed
    error           (failed)          rolled back: destination's preparations removed (RPC
                                      call), claims as before, the server as before with
                                      the fault

Why the preparation is a call inside the source's step rather than a status of its own:
the guest can only leave once the destination is ready, and a failure there is undone by
the same rollback as a failed ``live_migration`` - one owner (the source) decides, as in
Nova's ``pre_live_migration``.

An abort (:meth:`HostLiveMigrations.abort`) is the one request that does not wait for the
server's lock: it reaches the source while ``live_migration`` runs and asks the driver to
cancel; the step then fails and is rolled back as any failure (the migration's ``error``
says it was aborted).

Repair is local, as for resize: after a restart (or once a status was left with no work on
it for ``rpc_call_timeout`` seconds) the owner runs its step again. A ``migrating``
migration cut off mid-way is decided by where the guest runs: still here (the usual case: a
hypervisor aborts a migration whose client went away) -> rolled back; arrived on the
destination -> handed over as after a success; on neither -> the server is ERROR.
"""

# HostLiveMigrations is the compute manager's own code, in a module of its own for size: it
# uses the manager's internals (locks, driver calls, faults) as the manager's methods do.
# ruff: noqa: SLF001
from __future__ import annotations

import dataclasses
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from stackcore import exception, managers
from stackcore.compute import block_devices, models, moves, objects
from stackcore.compute.models import LIVE_MIGRATION, MigrationStatus
from stackcore.compute.placement import claims
from stackcore.compute.states import TaskState, VmState

if TYPE_CHECKING:
    from stackcore.compute.manager import ComputeManager

LOG = logging.getLogger(__name__)

#: task states of a server being live-migrated (the generic reconciliation skips them)
TASKS = frozenset({TaskState.MIGRATING})
#: vm_states a server may be live-migrated from (its guest runs)
FROM_STATES = (VmState.ACTIVE, VmState.PAUSED)
SOURCE_OWNED = (MigrationStatus.PRE_MIGRATING, MigrationStatus.MIGRATING,
                MigrationStatus.COMPLETING)
DEST_OWNED = (MigrationStatus.POST_MIGRATING,)
IN_PROGRESS = (*SOURCE_OWNED, *DEST_OWNED)
#: seconds between two asks of an abort the driver cannot take yet
_ABORT_POLL = 0.05
#: power states of a guest that runs (paused counts: its memory is live)
_RUNS = (objects.PowerState.RUNNING, objects.PowerState.PAUSED)


class HostLiveMigrations(moves.HostMoves):
    """The live-migration steps of one compute host (compute API 1.6), as source and as
    destination. Every step but :meth:`abort` runs under the server's lock on this host."""

    def __init__(self, manager: ComputeManager) -> None:
        super().__init__(manager)
        self._orphans = managers.Orphans()
        #: servers whose migration step runs here now; migrations asked to abort
        self._running: set[str] = set()
        self._aborted: set[str] = set()
        self._guard = threading.Lock()

    def _here(self, instance: objects.Instance) -> objects.Instance:
        return dataclasses.replace(instance, host=self.m.host)

    # --- source: the move ------------------------------------------------------------------

    def live_migrate_instance(self, uuid: str, migration_id: str) -> None:
        """Source host: the destination prepares, the guest moves, the destination takes
        over. A failure before the switch-over is rolled back (server as before, fault)."""
        m = self.m
        with m._instance_lock(uuid):
            loaded = self.load(uuid, migration_id, MigrationStatus.MIGRATING, "source_host")
            if loaded is None:
                return  # a stale or repeated cast: someone else owns it now
            migration, instance = loaded
            dest = str(migration.dest_host)
            m._notify("instance.live_migration.start", uuid)
            with self._guard:
                self._running.add(uuid)
            step = "pre_live_migration"
            prepared = False
            try:
                m._capable("live_migration")
                rpc = self.rpc()
                requested = dict(migration.disk_info or {}).get("block_migration")
                migrate_data = dict(rpc.pre_live_migration(dest, uuid, migration_id,
                                                           requested))
                prepared = True
                self._store(migration_id, migrate_data=migrate_data)
                step = "live_migration"
                self._check_not_aborted(uuid, migration_id, dest)
                figures = m._driver_call(step, m.driver.live_migration, instance, dest,
                                         migrate_data, m._block_device_info(uuid))
            except Exception as err:  # noqa: BLE001 - rolled back, recorded as a fault
                m._record_fault(uuid, step, err)
                self._roll_back(uuid, migration_id, dest, prepared, f"{step} failed: {err}")
                m._notify("instance.live_migration.error", uuid, err, step)
                return
            finally:
                with self._guard:
                    self._running.discard(uuid)
                    self._aborted.discard(migration_id)
            self._store(migration_id, figures=dict(figures))
            LOG.info("server %s: live-migrated from %s to %s (%s)", uuid, m.host, dest,
                     ", ".join(f"{k} {v}" for k, v in sorted(dict(figures).items())))
            handed = self.hand_over(migration_id, MigrationStatus.MIGRATING,
                                    MigrationStatus.POST_MIGRATING, TaskState.MIGRATING,
                                    host=dest)
        if handed:
            rpc.post_live_migration_at_destination(dest, uuid, migration_id)
        m.update_available_resource()

    def _check_not_aborted(self, uuid: str, migration_id: str, dest: str) -> None:
        with self._guard:
            if migration_id in self._aborted:
                raise exception.DriverError(
                    f"live migration of server {uuid} to {dest} aborted before the guest "
                    "started to move")

    def _store(self, migration_id: str, **values: Any) -> None:
        """Merge ``values`` into the migration's ``disk_info`` (its migrate_data and
        figures: JSON, no secrets - the contract's rule for migrate_data)."""
        with self.m.db.transaction() as session:
            row = session.get(models.Migration, migration_id, with_for_update=True)
            if row is not None:
                row.disk_info = {**dict(row.disk_info or {}), **values}

    def _roll_back(self, uuid: str, migration_id: str, dest: str, prepared: bool,
                   why: str, reach_dest: bool = True) -> None:
        """The guest did not move: the destination removes what its driver prepared (it
        undid its own failed preparation already; when it cannot be reached it does so
        itself later, :meth:`clean_up_rolled_back`), the volume exports made there end and
        the mappings point at the source's again, claims go back, the server keeps its
        state here."""
        m = self.m
        pending = prepared and not reach_dest  # at start-up: the destination may not run
        if prepared and reach_dest:
            try:
                self.rpc().rollback_live_migration_at_destination(dest, uuid, migration_id)
            except Exception as err:  # noqa: BLE001 - recorded; the source side goes on
                pending = True
                m._record_fault(uuid, "rollback_live_migration_at_destination",
                                f"removing what {dest} prepared failed ({dest} does it "
                                f"when its compute service runs again): {err}",
                                type(err).__name__)
        with m.db.read() as session:
            kept = dict(session.execute(sa.select(models.Migration.source_attachments).where(
                models.Migration.id == migration_id)).scalar_one() or {})
        for bdm in self.bdms(uuid):
            source = kept.get(bdm.volume_id)
            if source and bdm.attachment_id is not None and bdm.attachment_id != source:
                try:
                    self.end_attachments(uuid, bdm.volume_id, {bdm.attachment_id})
                except Exception as err:  # noqa: BLE001
                    m._record_fault(uuid, "cleanup", f"ending the export of volume "
                                                     f"{bdm.volume_id} to {dest} failed: "
                                                     f"{err}", type(err).__name__)
                    continue
                m._set_bdm(bdm.id, attachment_id=source)
        with m.db.transaction() as session:
            row = session.get(models.Migration, migration_id, with_for_update=True)
            if row is None or row.status != MigrationStatus.MIGRATING:
                return
            row.status = MigrationStatus.ERROR
            row.error = why[:2000]
            if pending:
                row.disk_info = {**dict(row.disk_info or {}), "dest_cleanup": "pending"}
            claims.move_back_from_migration(session, uuid, migration_id)
            session.execute(sa.update(models.Instance).where(models.Instance.uuid == uuid)
                            .values(task_state=None, host=m.host))

    def abort(self, uuid: str, migration_id: str) -> None:
        """Source host, without the server's lock (its migration step holds it): cancel the
        migration in progress. InvalidState when it is past the point of no return (the
        guest switched over) or not this host's."""
        m = self.m
        with m.db.read() as session:
            migration = session.get(models.Migration, migration_id)
            if migration is None or migration.instance_uuid != uuid \
                    or migration.source_host != m.host \
                    or migration.status not in (MigrationStatus.PRE_MIGRATING,
                                                MigrationStatus.MIGRATING):
                state = "gone" if migration is None else migration.status
                raise exception.InvalidState(
                    f"live migration {migration_id} of server {uuid} is {state}: only one "
                    "still migrating can be aborted", state=state)
        with self._guard:
            self._aborted.add(migration_id)
            running = uuid in self._running
        m._notify("instance.live_migration_abort.start", uuid)
        if running:  # else not started here yet: the step sees the flag before it moves
            self._abort_job(uuid)
        m._notify("instance.live_migration_abort.end", uuid)

    def _abort_job(self, uuid: str) -> None:
        """Ask the driver to abort the move of ``uuid``. The driver knows no move before its
        ``live_migration`` started one (InvalidState): asked again until it does, or until the
        step ended (the flag stopped it before the move, or the guest had switched over: too
        late), at most ``rpc_call_timeout`` seconds."""
        m = self.m
        _, instance = m._load(uuid)
        deadline = time.monotonic() + m.conf.rpc_call_timeout
        while True:
            try:
                m._driver_call("live_migration_abort", m.driver.live_migration_abort,
                               instance)
                return
            except exception.InvalidState:
                with self._guard:
                    running = uuid in self._running
                if not running or time.monotonic() > deadline:
                    return
            time.sleep(_ABORT_POLL)

    # --- destination: prepare, roll back, take over ------------------------------------------

    def pre_live_migration(self, uuid: str, migration_id: str,
                           block_migration: bool | None) -> dict[str, Any]:
        """Destination host (RPC call from the source): attach the volumes here, fetch the
        image, let the driver prepare; its migrate_data. A failure removes what was made
        here before it is raised to the source."""
        m = self.m
        with m._instance_lock(uuid):
            loaded = self.load(uuid, migration_id, MigrationStatus.MIGRATING, "dest_host")
            if loaded is None:
                raise exception.InvalidState(
                    f"live migration {migration_id} of server {uuid} is not migrating to "
                    f"{m.host}", state="stale")
            migration, instance = loaded
            instance = self._here(instance)
            bdms = self.bdms(uuid)
            step = "live_migration"
            try:
                m._capable("live_migration")
                if block_devices.root_volume(bdms) is not None:
                    step = "boot_from_volume"
                    m._capable("boot_from_volume")
                step = "connect_volumes"
                with m.db.transaction() as session:  # recorded before any is replaced
                    if not migration.source_attachments:
                        session.execute(
                            sa.update(models.Migration)
                            .where(models.Migration.id == migration_id)
                            .values(source_attachments={b.volume_id: b.attachment_id
                                                        for b in bdms}))
                infos, _ = self.connect_volumes_here(uuid, bdms)
                step = "fetch_image"
                _, _, _, source = m._load_with_requests(uuid, False)
                with m._cached_image(m._source_to_fetch(source, instance.image)):
                    step = "pre_live_migration"
                    data = m._driver_call(step, m.driver.pre_live_migration, instance,
                                          m._network_info(uuid),
                                          block_devices.block_device_info(bdms, infos),
                                          block_migration)
            except Exception:
                self._undo_here(instance, {})
                raise
            return dict(data)

    def rollback_live_migration_at_destination(self, uuid: str, migration_id: str) -> None:
        """Destination host (RPC call from the source after a failed move)."""
        with self.m._instance_lock(uuid):
            loaded = self.load(uuid, migration_id, MigrationStatus.MIGRATING, "dest_host")
            if loaded is None:
                return
            migration, instance = loaded
            self._undo_here(self._here(instance),
                            dict(dict(migration.disk_info or {}).get("migrate_data") or {}))
        self.m.update_available_resource()

    def _undo_here(self, instance: objects.Instance, migrate_data: dict[str, Any]) -> None:
        """Remove what this destination's driver prepared (the source ends the volume
        exports made here). A failure is recorded: the source's rollback goes on."""
        m = self.m
        try:
            m._driver_call("rollback_live_migration_at_destination",
                           m.driver.rollback_live_migration_at_destination, instance,
                           m._network_info(instance.uuid),
                           m._block_device_info(instance.uuid), migrate_data)
        except Exception as err:  # noqa: BLE001
            m._record_fault(instance.uuid, "cleanup",
                            f"removing what {m.host} prepared for the live migration "
                            f"failed: {err}", type(err).__name__)

    def clean_up_rolled_back(self) -> list[str]:
        """Live migrations to this host rolled back while it could not be reached: remove
        what its driver prepared for them (at start-up and periodically)."""
        mig = models.Migration
        with self.m.db.read() as session:
            rows = session.execute(sa.select(mig).where(
                mig.migration_type == LIVE_MIGRATION, mig.dest_host == self.m.host,
                mig.status == MigrationStatus.ERROR)).scalars().all()
            pending = [(r.id, r.instance_uuid, dict(r.disk_info or {})) for r in rows
                       if dict(r.disk_info or {}).get("dest_cleanup") == "pending"]
        done = []
        for migration_id, uuid, info in pending:
            with self.m._instance_lock(uuid):
                try:
                    row, instance = self.m._load(uuid)
                except exception.NotFound:
                    row = None
                if row is not None and row.host == self.m.host:
                    continue  # the server lives here now: nothing of that try is left
                if row is not None:
                    self._undo_here(self._here(instance),
                                    dict(info.get("migrate_data") or {}))
                self._store(migration_id, dest_cleanup="done")
                done.append(uuid)
        return done

    def arrived(self, uuid: str, migration_id: str) -> bool:
        """Destination host (RPC call from a source repairing an interrupted move): whether
        the guest runs here."""
        loaded = self.load(uuid, migration_id, MigrationStatus.MIGRATING, "dest_host")
        if loaded is None:
            return False
        try:
            return self.m._power_state(self._here(loaded[1])) in _RUNS
        except exception.NotFound:
            return False

    def post_live_migration_at_destination(self, uuid: str, migration_id: str) -> None:
        """Destination host: the ports bound here, the driver makes the guest this host's
        for good; then the source cleans up. A failure leaves the server ERROR here (it
        runs here, not fully set up), the source still cleans up."""
        m = self.m
        with m._instance_lock(uuid):
            loaded = self.load(uuid, migration_id, MigrationStatus.POST_MIGRATING,
                               "dest_host")
            if loaded is None:
                return
            migration, instance = loaded
            step = "migrate_ports"
            values: dict[str, Any] = {}
            try:
                network_info = self.ports_here(uuid)
                step = "post_live_migration_at_destination"
                m._driver_call(step, m.driver.post_live_migration_at_destination, instance,
                               network_info, m._block_device_info(uuid))
                values["power_state"] = int(m._power_state(instance))
            except Exception as err:  # noqa: BLE001 - ERROR here; the source still cleans up
                m._record_fault(uuid, step, err)
                values["vm_state"] = VmState.ERROR
                m._notify("instance.live_migration.error", uuid, err, step)
            handed = self.hand_over(migration_id, MigrationStatus.POST_MIGRATING,
                                    MigrationStatus.COMPLETING, TaskState.MIGRATING, **values)
        if handed:
            self.rpc().complete_live_migration(migration.source_host, uuid, migration_id)
        m.update_available_resource()

    # --- source: clean up -------------------------------------------------------------------

    def complete_live_migration(self, uuid: str, migration_id: str) -> None:
        """Source host: remove what is left here, end this host's volume exports, give back
        the migration's claim. A failure is recorded on the server (which runs on the
        destination either way) and the migration ends ``error``: what the driver left
        here shows up as an instance the database does not place here."""
        m = self.m
        with m._instance_lock(uuid):
            loaded = self.load(uuid, migration_id, MigrationStatus.COMPLETING, "source_host")
            if loaded is None:
                return
            migration, instance = loaded
            instance = self._here(instance)
            migrate_data = dict(dict(migration.disk_info or {}).get("migrate_data") or {})
            step = "post_live_migration"
            error: str | None = None
            try:
                m._driver_call(step, m.driver.post_live_migration, instance,
                               m._network_info(uuid), m._block_device_info(uuid),
                               migrate_data)
                step = "detach_volumes"
                current = {b.volume_id: b.attachment_id for b in self.bdms(uuid)}
                for volume_id, attachment_id in dict(migration.source_attachments).items():
                    if attachment_id and attachment_id != current.get(volume_id):
                        self.end_attachments(uuid, volume_id, {attachment_id})
            except Exception as err:  # noqa: BLE001 - the server runs on the destination
                m._record_fault(uuid, step, err)
                error = f"{step} failed on {m.host}: {err}"
                m._notify("instance.live_migration.error", uuid, err, step)
            with m.db.transaction() as session:
                moved = session.execute(
                    sa.update(models.Migration)
                    .where(models.Migration.id == migration_id,
                           models.Migration.status == MigrationStatus.COMPLETING)
                    .values(status=MigrationStatus.ERROR if error
                            else MigrationStatus.COMPLETED,
                            **({"error": error[:2000]} if error else {}))
                ).rowcount  # type: ignore[attr-defined]
                if moved == 1:
                    claims.release(session, migration_id)
                    session.execute(sa.update(models.Instance)
                                    .where(models.Instance.uuid == uuid)
                                    .values(task_state=None))
            if error is None:
                m._notify("instance.live_migration.end", uuid)
        m.update_available_resource()

    # --- repair ----------------------------------------------------------------------------

    def owned(self) -> list[tuple[str, str, str]]:
        """``(instance_uuid, migration_id, status)`` of the live migrations whose step is
        this host's."""
        mig = models.Migration
        with self.m.db.read() as session:
            rows = session.execute(sa.select(mig.instance_uuid, mig.id, mig.status).where(
                mig.migration_type == LIVE_MIGRATION,
                sa.or_(sa.and_(mig.source_host == self.m.host,
                               mig.status.in_(SOURCE_OWNED)),
                       sa.and_(mig.dest_host == self.m.host, mig.status.in_(DEST_OWNED))))
                .order_by(mig.created_at)).all()
        return [(str(r[0]), str(r[1]), str(r[2])) for r in rows]

    def here(self) -> set[str]:
        """Servers with a live migration in progress from or to this host: the hypervisor
        may hold their guest (arriving, or left behind) without the row placing it here."""
        mig = models.Migration
        with self.m.db.read() as session:
            return set(session.execute(sa.select(mig.instance_uuid).where(
                mig.migration_type == LIVE_MIGRATION,
                sa.or_(mig.source_host == self.m.host, mig.dest_host == self.m.host),
                mig.status.in_(IN_PROGRESS))).scalars())

    def reconcile_at_start(self) -> None:
        """After a restart nothing of this host works on its live migrations. A move whose
        guest left this host is decided by the periodic pass (:meth:`reconcile_orphans`):
        that needs the destination, which may not run yet."""
        try:
            self.clean_up_rolled_back()
        except Exception as err:  # noqa: BLE001 - the periodic pass tries again
            LOG.warning("removing what %s prepared for failed live migrations failed: %s",
                        self.m.host, err)
        for uuid, migration_id, status in self.owned():
            if status == MigrationStatus.PRE_MIGRATING:
                continue  # the API's (or the periodic pass's, once left alone)
            try:
                self._repair(uuid, migration_id, status,
                             f"a restart of the compute service on {self.m.host}",
                             start=True)
            except Exception as err:  # noqa: BLE001 - the periodic pass tries again
                LOG.warning("repairing live migration %s of server %s failed: %s",
                            migration_id, uuid, err)

    def reconcile_orphans(self) -> list[str]:
        """Periodic: repair the live migrations of this host left in one status with no
        work on them for ``rpc_call_timeout`` seconds."""
        try:
            self.clean_up_rolled_back()
        except Exception as err:  # noqa: BLE001 - the next pass tries again
            LOG.warning("removing what %s prepared for failed live migrations failed: %s",
                        self.m.host, err)
        return self.repair_orphans(self._orphans, self.owned(), self._repair,
                                   "live migration")

    def _repair(self, uuid: str, migration_id: str, status: str, cause: str,
                start: bool = False) -> None:
        LOG.warning("server %s: live migration %s is %s after %s; repairing", uuid,
                    migration_id, status, cause)
        why = f"the live migration was interrupted by {cause}"
        if status == MigrationStatus.PRE_MIGRATING:
            self.m.migrations._abort_unplaced(uuid, migration_id, why)
        elif status == MigrationStatus.MIGRATING:
            self._repair_move(uuid, migration_id, why, start)
        elif status == MigrationStatus.POST_MIGRATING:
            self.post_live_migration_at_destination(uuid, migration_id)
        elif status == MigrationStatus.COMPLETING:
            self.complete_live_migration(uuid, migration_id)

    def _repair_move(self, uuid: str, migration_id: str, why: str, start: bool) -> None:
        """An interrupted move: where does the guest run? Still here: rolled back (the
        destination's part by RPC, or by itself later). Not here: asked of the destination
        - not at start-up (it may not run yet): the periodic pass asks, and asks again
        while it cannot be reached; the server stays ``migrating`` until then."""
        m = self.m
        with m._instance_lock(uuid):
            loaded = self.load(uuid, migration_id, MigrationStatus.MIGRATING, "source_host")
            if loaded is None:
                return
            migration, instance = loaded
            dest = str(migration.dest_host)
            try:
                here = m._power_state(instance) in _RUNS
            except exception.NotFound:
                here = False
            if here:
                m._record_fault(uuid, "live_migration", exception.DriverError(why))
                self._roll_back(uuid, migration_id, dest, True, why, reach_dest=not start)
                m._notify("instance.live_migration.error", uuid,
                          exception.DriverError(why), "live_migration")
                return
            if start:
                return
            rpc = self.rpc()
            if rpc.live_migration_arrived(dest, uuid, migration_id):
                handed = self.hand_over(migration_id, MigrationStatus.MIGRATING,
                                        MigrationStatus.POST_MIGRATING, TaskState.MIGRATING,
                                        host=dest)
            else:
                handed = False
                lost = exception.DriverError(f"{why}; the guest runs neither on {m.host} "
                                             f"nor on {dest}")
                m._record_fault(uuid, "live_migration", lost)
                self._roll_back(uuid, migration_id, dest, True, str(lost))
                m._update(uuid, vm_state=VmState.ERROR)
        if handed:
            rpc.post_live_migration_at_destination(dest, uuid, migration_id)
