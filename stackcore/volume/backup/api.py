"""Backups on ``cloud.volume`` (mixed into :class:`stackcore.volume.api.VolumeAPI`).

A backup is made by the volume service of the volume's backend with its ``[backup]`` backup
driver; the API learns which driver a service runs, and what it declares, from the ``backup``
part of that backend's stats report (:meth:`BackupManager.report`). Arguments are checked and
quotas (``backups``, ``backup_gigabytes``) claimed before anything is written; the work goes to
the volume service over RPC.
"""

from __future__ import annotations

import dataclasses
import datetime
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from stackcore import exception, schemas, validate, wait
from stackcore import schemas as s
from stackcore.db import paging
from stackcore.faults import Fault
from stackcore.project import policy
from stackcore.volume import models
from stackcore.volume.backup.manager import dependent
from stackcore.volume.states import BackupStatus, VolumeStatus

if TYPE_CHECKING:
    from oslo_config import cfg

    from stackcore.db.api import Database
    from stackcore.project.quota import Quotas
    from stackcore.volume.rpcapi import VolumeRPCAPI

BACKUP_STATUSES = tuple(v.value for v in BackupStatus)
SORT_KEYS = ("created_at", "name", "id", "size")
_FINAL = ("available", "error", "deleted")


@dataclasses.dataclass(frozen=True)
class VolumeBackup:
    id: str
    volume_id: str
    name: str | None
    size: int  # GiB of the volume when it was backed up
    status: str
    is_incremental: bool
    parent_id: str | None
    has_dependent_backups: bool
    backup_driver: str
    checksum: str | None  # "sha256:<hex>" of the volume's data, verified on every restore
    stored_bytes: int | None  # what the backup occupies on its target
    created_at: datetime.datetime
    fault: Fault | None


class BackupAPI:
    """``create_backup``, ``get_backup``, ``list_backups``, ``wait_backup``,
    ``restore_backup``, ``delete_backup``."""

    if TYPE_CHECKING:
        conf: cfg.ConfigOpts
        db: Database
        rpc: VolumeRPCAPI
        quotas: Quotas
        project_id: str
        user_id: str
        create: Callable[..., Any]
        get: Callable[..., Any]
        delete: Callable[[str], None]
        _visible: Callable[[str], bool]
        _backend_of: Callable[[str, Any], models.Volume]
        _fault: Callable[[Any, str], Fault | None]
        _scope_list: Callable[..., Any]

    # --- helpers ---------------------------------------------------------------------------

    @staticmethod
    def _backup_service(session: Any, host: str | None) -> dict[str, Any]:
        """The ``backup`` part of the stats of the volume service ``host``; Conflict naming
        it when it runs no backup driver."""
        backend = session.execute(sa.select(models.VolumeBackend).where(
            models.VolumeBackend.host == host)).scalar_one_or_none()
        found = (backend.stats or {}).get("backup") if backend is not None else None
        if not found:
            raise exception.Conflict(
                f"volume service {host} runs no backup driver ([backup] backup_driver)",
                host=host)
        return dict(found)

    def _backup_row(self, session: Any, backup_id: str,
                    include_deleted: bool = False) -> models.VolumeBackup:
        validate.uuid_like("backup_id", backup_id)
        row = session.get(models.VolumeBackup, backup_id)
        if row is None or (row.status == BackupStatus.DELETED and not include_deleted) or \
                not self._visible(row.project_id):
            raise exception.NotFound("backup", backup_id)
        return row  # type: ignore[no-any-return]

    def _backup_view(self, session: Any, row: models.VolumeBackup) -> VolumeBackup:
        return VolumeBackup(
            row.id, row.volume_id, row.display_name, row.size, row.status, row.is_incremental,
            row.parent_id, dependent(session, row.id) is not None, row.backup_driver,
            row.checksum, row.stored_bytes, row.created_at,
            self._fault(session, row.id) if row.status == BackupStatus.ERROR else None)

    # --- calls -----------------------------------------------------------------------------

    @schemas.accepts(volume_id=s.UUID, name=s.OPTIONAL_NAME, incremental=s.BOOLEAN,
                     force=s.BOOLEAN, wait=s.BOOLEAN, timeout=s.TIMEOUT)
    @policy.authorize("volume:backup:create")
    def create_backup(self, volume_id: str, name: str | None = None,
                      incremental: bool = False, force: bool = False, wait: bool = True,
                      timeout: float | None = None) -> VolumeBackup:
        """Back up an available volume (an attached one only with ``force``: its data is
        read while the guest may write). ``incremental`` stores only what changed since the
        volume's newest available backup (its parent) - the backup driver must declare
        ``incremental`` (else CapabilityNotSupported naming it), and there must be such a
        backup of the volume's current size. The volume is ``backing-up`` meanwhile and goes
        back to its status after. Returns once ``available`` or ``error`` (``wait``)."""
        if name is not None:
            validate.name("name", name)
        backup_id = str(uuid.uuid4())
        with self.db.transaction() as session:
            row = self._backend_of(volume_id, session)
            allowed = [VolumeStatus.AVAILABLE] + ([VolumeStatus.IN_USE] if force else [])
            if row.status not in allowed:
                raise exception.InvalidState(
                    f"cannot back up volume {volume_id} while it is {row.status}"
                    + (" (use force=True for an attached volume)"
                       if row.status == VolumeStatus.IN_USE else ""), state=row.status)
            service = self._backup_service(session, row.host)
            parent_id = None
            if incremental:
                if not service.get("capabilities", {}).get("incremental"):
                    raise exception.CapabilityNotSupported(service["driver"], "incremental")
                bk = models.VolumeBackup
                parent_id = session.execute(sa.select(bk.id).where(
                    bk.volume_id == volume_id, bk.status == BackupStatus.AVAILABLE,
                    bk.backup_driver == service["driver"], bk.size == row.size)
                    .order_by(bk.created_at.desc(), bk.id).limit(1)).scalar()
                if parent_id is None:
                    raise exception.Invalid(
                        "incremental", f"volume {volume_id} has no available backup of its "
                        f"current size ({row.size} GiB) by backup driver "
                        f"{service['driver']!r} to build on; make a full backup first")
            self.quotas.check(session, row.project_id, {"backups": 1,
                                                         "backup_gigabytes": row.size})
            session.add(models.VolumeBackup(
                id=backup_id, volume_id=volume_id, display_name=name,
                project_id=row.project_id, user_id=self.user_id, size=row.size,
                size_bytes=0, status=BackupStatus.CREATING, host=row.host,
                backup_driver=service["driver"], parent_id=parent_id,
                is_incremental=parent_id is not None, driver_data={}))
            row.previous_status = row.status
            row.status = VolumeStatus.BACKING_UP
            host = row.host
        assert host is not None
        try:
            self.rpc.create_backup(host, backup_id)
        except exception.StackcoreError as err:  # never reached the volume service
            self._backup_dispatch_failed(backup_id, volume_id, None, "create_backup", err)
            raise
        if not wait:
            return self.get_backup(backup_id)
        return self.wait_backup(backup_id, ("available", "error"), timeout)

    def _backup_dispatch_failed(self, backup_id: str, volume_id: str | None,
                                status: str | None, step: str, err: BaseException) -> None:
        """The request could not be handed to the volume service: the backup goes to
        ``status`` (None: ``error``) with the fault, the volume back to its previous status."""
        from stackcore import faults

        with self.db.transaction() as session:
            backup = session.get(models.VolumeBackup, backup_id)
            if backup is not None:
                backup.status = status or BackupStatus.ERROR
                backup.restore_volume_id = None
            session.add(faults.new(models.VolumeFault, err, step=step, resource="backup",
                                   resource_id=backup_id, host=None))
            volume = session.get(models.Volume, volume_id) if volume_id else None
            if volume is not None and volume.status in (VolumeStatus.BACKING_UP,
                                                        VolumeStatus.RESTORING_BACKUP):
                volume.status = volume.previous_status or VolumeStatus.ERROR
                volume.previous_status = None

    @schemas.accepts(backup_id=s.UUID, statuses=s.array(s.enum(*BACKUP_STATUSES), 16),
                     timeout=s.TIMEOUT)
    @policy.authorize("volume:backup:get")
    def wait_backup(self, backup_id: str, statuses: tuple[str, ...] = _FINAL,
                    timeout: float | None = None) -> VolumeBackup:
        return wait.until(
            self.db, lambda: self.get_backup(backup_id, include_deleted=True),
            lambda b: b.status in statuses, timeout or self.conf.volume.operation_timeout,
            lambda b: f"backup {backup_id} still {b.status}",
        )

    @schemas.accepts(backup_id=s.UUID, include_deleted=s.BOOLEAN)
    @policy.authorize("volume:backup:get")
    def get_backup(self, backup_id: str, include_deleted: bool = False) -> VolumeBackup:
        with self.db.transaction() as session:
            return self._backup_view(session, self._backup_row(session, backup_id,
                                                               include_deleted))

    @schemas.accepts(volume_id=s.OPTIONAL_UUID, all_projects=s.BOOLEAN,
                     **paging.schema(SORT_KEYS))
    @policy.authorize("volume:backup:list")
    def list_backups(self, volume_id: str | None = None, *, all_projects: bool = False,
                     limit: int | None = None, marker: str | None = None,
                     sort_key: str = "created_at", sort_dir: str = "asc") -> list[VolumeBackup]:
        """The caller's project's backups (of ``volume_id``; every project's:
        ``all_projects``), ``limit`` at a time after the backup ``marker``."""
        bk = models.VolumeBackup
        query = self._scope_list(sa.select(bk), bk.project_id, all_projects,
                                 "volume:backup:list").where(bk.status != BackupStatus.DELETED)
        if volume_id is not None:
            query = query.where(bk.volume_id == volume_id)
        with self.db.transaction() as session:
            query = paging.page(session, query, bk.id, {
                "created_at": bk.created_at, "name": bk.display_name, "id": bk.id,
                "size": bk.size}, limit=limit, marker=marker, sort_key=sort_key,
                sort_dir=sort_dir, resource="backup")
            return [self._backup_view(session, r) for r in session.execute(query).scalars()]

    @schemas.accepts(backup_id=s.UUID, volume_id=s.OPTIONAL_UUID, name=s.OPTIONAL_NAME,
                     wait=s.BOOLEAN, timeout=s.TIMEOUT)
    @policy.authorize("volume:backup:restore")
    def restore_backup(self, backup_id: str, volume_id: str | None = None,
                       name: str | None = None, wait: bool = True,
                       timeout: float | None = None) -> Any:
        """Restore an available backup into volume ``volume_id`` (available, at least the
        backup's size, on a volume service running the backup's driver), or into a new volume
        of the backup's size (``name``; made first, like :meth:`create`). The data is checked
        against the checksum recorded at backup time before the volume is written. The volume
        is ``restoring-backup`` meanwhile; returns the volume once the restore ended
        (``wait``): ``available``, or ``error`` / its previous status with a fault (see
        :meth:`~stackcore.volume.backup.manager.BackupManager.restore_backup`)."""
        if name is not None:
            validate.name("name", name)
        with self.db.transaction() as session:
            backup = self._backup_row(session, backup_id)
            if backup.status != BackupStatus.AVAILABLE:
                raise exception.InvalidState(
                    f"cannot restore backup {backup_id} while it is {backup.status}",
                    state=backup.status)
            size, driver = backup.size, backup.backup_driver
            if volume_id is not None:
                self._restore_target(session, backup, volume_id)
        made = False
        if volume_id is None:
            volume = self.create(size, name=name or f"restore-{backup_id}")
            if volume.status != VolumeStatus.AVAILABLE:
                raise exception.DriverError(f"the volume made to restore backup {backup_id} "
                                            f"into ended {volume.status}", volume_id=volume.id)
            volume_id, made = volume.id, True
        try:
            with self.db.transaction() as session:
                backup = self._backup_row(session, backup_id)
                target = self._restore_target(session, backup, volume_id)
                if backup.status != BackupStatus.AVAILABLE:
                    raise exception.InvalidState(
                        f"cannot restore backup {backup_id} while it is {backup.status}",
                        state=backup.status)
                service = self._backup_service(session, target.host)
                if service["driver"] != driver:
                    raise exception.Conflict(
                        f"backup {backup_id} was made by backup driver {driver!r}; volume "
                        f"service {target.host} runs {service['driver']!r}")
                backup.status = BackupStatus.RESTORING
                backup.restore_volume_id = volume_id
                # a volume made here has no status to go back to (see the manager)
                target.previous_status = None if made else target.status
                target.status = VolumeStatus.RESTORING_BACKUP
                host = target.host
        except exception.StackcoreError:
            if made:
                self._discard_new(volume_id)
            raise
        assert host is not None
        try:
            self.rpc.restore_backup(host, backup_id, volume_id)
        except exception.StackcoreError as err:
            self._backup_dispatch_failed(backup_id, volume_id, BackupStatus.AVAILABLE,
                                         "restore_backup", err)
            raise
        if not wait:
            return self.get(volume_id)
        self.wait_backup(backup_id, ("available", "error"), timeout)
        return self.get(volume_id)

    def _discard_new(self, volume_id: str) -> None:
        try:
            self.delete(volume_id)
        except exception.StackcoreError:
            pass  # stays for the caller to see and delete

    def _restore_target(self, session: Any, backup: models.VolumeBackup,
                        volume_id: str) -> models.Volume:
        target = self._backend_of(volume_id, session)
        if target.status != VolumeStatus.AVAILABLE:
            raise exception.InvalidState(
                f"cannot restore into volume {volume_id} while it is {target.status} "
                "(it must be available: not attached, not in use by another operation)",
                state=target.status)
        if target.size < backup.size:
            raise exception.Invalid("volume_id", f"volume {volume_id} ({target.size} GiB) is "
                                    f"smaller than backup {backup.id} ({backup.size} GiB)",
                                    volume_id)
        return target

    @schemas.accepts(backup_id=s.UUID)
    @policy.authorize("volume:backup:delete")
    def delete_backup(self, backup_id: str) -> None:
        """Delete a backup; deleting a deleted one succeeds. Refused (Conflict, naming it)
        while an incremental backup depends on it, and (InvalidState) while it is being made
        or restored."""
        with self.db.transaction() as session:
            row = self._backup_row(session, backup_id, include_deleted=True)
            if row.status == BackupStatus.DELETED:
                return
            if row.status not in (BackupStatus.AVAILABLE, BackupStatus.ERROR):
                raise exception.InvalidState(
                    f"cannot delete backup {backup_id} while it is {row.status}",
                    state=row.status)
            child = dependent(session, backup_id)
            if child is not None:
                raise exception.Conflict(
                    f"backup {backup_id} has incremental backup {child} depending on it; "
                    "delete that one first", backup_id=backup_id, dependent=child)
            host = row.host
        if host is None:
            raise exception.InvalidState(f"backup {backup_id} is on no volume service")
        self.rpc.delete_backup(host, backup_id)
