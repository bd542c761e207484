"""The backup side of a volume manager: one :class:`BackupManager` per volume service whose
process configures ``[backup] backup_driver``, the only caller of that backup driver.

The data path (why every volume driver works with every backup driver): a backup stages the
volume as a local raw file with the volume driver's ``copy_volume_to_image``, computes its
sha256 and gives the file to the backup driver; a restore has the backup driver write a raw
file, checks its sha256 against the one recorded at backup time, and only then writes it into
the volume with ``copy_image_to_volume``. A backup that does not give back its bytes never
reaches a volume.

Every operation follows the volume manager's pattern: the API has moved the backup (and the
volume) into a transient state; this calls the drivers, then sets the final states - or, on
any failure, records a fault, moves the backup to ``error`` (create, delete) and the volume
back to its previous status, and removes what was half made. :meth:`BackupManager.reconcile`
repairs what a killed service left transient.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa

from stackcore import exception, faults, managers, notifications
from stackcore.db import models as core_models
from stackcore.volume import models, objects
from stackcore.volume.backup import stats as backup_stats
from stackcore.volume.backup.driver import UPDATE_KEYS, Backup, BackupDriver
from stackcore.volume.states import BackupStatus, VolumeStatus

if TYPE_CHECKING:
    from stackcore.volume.manager import VolumeManager

LOG = logging.getLogger(__name__)
T = TypeVar("T")
_READ = 4 * 1024 * 1024


class ChecksumMismatch(exception.DriverError):
    """What a backup driver restored is not what was backed up (sha256 or size differs)."""


def _extent(fd: int, offset: int, size: int) -> tuple[int, int]:
    """``(start, end)`` of the next data extent from ``offset`` (``(size, size)``: holes up to
    the end); a file system without ``SEEK_DATA`` is all data."""
    try:
        start = os.lseek(fd, offset, os.SEEK_DATA)
    except OSError as err:
        if err.errno == errno.ENXIO:
            return size, size
        return offset, size
    start = min(start, size)
    return start, min(os.lseek(fd, start, os.SEEK_HOLE), size) if start < size else size


def sha256_of(path: str) -> str:
    """``sha256:<hex>`` of a file's bytes. Holes (``SEEK_HOLE``: a staged thin volume is
    mostly holes) are hashed as the zeros they read without being read."""
    digest = hashlib.sha256()
    zeros = bytes(_READ)
    with open(path, "rb") as handle:
        fd, size, offset = handle.fileno(), os.fstat(handle.fileno()).st_size, 0
        while offset < size:
            data_at, hole_at = _extent(fd, offset, size)
            while offset < data_at:
                n = min(_READ, data_at - offset)
                digest.update(zeros[:n])
                offset += n
            if offset >= size:
                break
            handle.seek(offset)
            while offset < hole_at:
                chunk = handle.read(min(_READ, hole_at - offset))
                if not chunk:
                    raise exception.DriverError(f"{path} ends at {offset} of {size} bytes")
                digest.update(chunk)
                offset += len(chunk)
    return f"sha256:{digest.hexdigest()}"


def backup_object(session: Any, row: models.VolumeBackup) -> Backup:
    """The driver's view of a backup row, with its parents down to the full backup."""
    parent = None
    if row.parent_id:
        parent_row = session.get(models.VolumeBackup, row.parent_id)
        if parent_row is not None:
            parent = backup_object(session, parent_row)
    return Backup(id=row.id, volume_id=row.volume_id, size=row.size, size_bytes=row.size_bytes,
                  parent=parent, location=row.location, driver_data=dict(row.driver_data or {}))


class BackupManager:
    """Backups of the volumes of one volume manager's backend, and restores into them."""

    def __init__(self, volumes: VolumeManager, driver: BackupDriver, driver_name: str) -> None:
        self.volumes = volumes
        self.db = volumes.db
        self.conf = volumes.conf
        self.host = volumes.host
        self.driver = driver
        self.driver_name = driver_name
        # One directory per volume service: start-up reconciliation empties its own, never
        # the files of another backend's backup in flight in the same process.
        self.staging_dir = os.path.join(
            self.conf.backup.backup_staging_dir
            or os.path.join(self.conf.state_path, "backup-staging"),
            self.host.replace("/", "_"))

    # --- plumbing --------------------------------------------------------------------------

    def _call(self, step: str, fn: Callable[..., T], *args: Any) -> T:
        return managers.call_driver("backup", self.driver_name, self.host, step, fn, *args)

    def _staging(self, name: str) -> str:
        os.makedirs(self.staging_dir, mode=0o700, exist_ok=True)
        path = os.path.join(self.staging_dir, name)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # a leftover of a killed run
        return path

    def _fault(self, session: Any, resource: str, resource_id: str, step: str,
               err: BaseException) -> None:
        session.add(faults.new(models.VolumeFault, err, step=step, resource=resource,
                               resource_id=resource_id, host=self.host))

    def _notify(self, event_type: str, backup_id: str, err: BaseException | None = None,
                step: str = "", restore_volume_id: str | None = None) -> None:
        """Emit ``event_type`` (``backup.create.start`` ...) with the backup as the database has
        it now - after the step's transaction, so an ``.end`` shows ``available`` - and, for a
        restore, the volume written; with ``err``, as an ``.error`` with the fault."""
        def build() -> dict[str, Any]:
            with self.db.read() as session:
                found = notifications.fields("backup",
                                             session.get(models.VolumeBackup, backup_id))
            if restore_volume_id is not None:
                found["restore_volume_id"] = restore_volume_id
            return found
        notifier = self.volumes.notifier
        if err is None:
            notifier.info(event_type, build)
        else:
            notifier.error(event_type, build, err, step)

    @staticmethod
    def _update(update: Any, step: str) -> dict[str, Any]:
        if update is None:
            return {}
        if not isinstance(update, Mapping) or set(update) - UPDATE_KEYS:
            raise exception.DriverContractError(
                f"{step} returned {type(update).__name__} with keys "
                f"{sorted(update) if isinstance(update, Mapping) else '-'}; a backup update "
                f"may only hold {', '.join(sorted(UPDATE_KEYS))}")
        values = dict(update)
        stored = values.get("stored_bytes")
        if stored is not None and (not isinstance(stored, int) or stored < 0):
            raise exception.DriverContractError(
                f"{step} returned stored_bytes={stored!r}; expected an integer >= 0")
        if "driver_data" in values and not isinstance(values["driver_data"], Mapping):
            raise exception.DriverContractError(f"{step} returned driver_data that is not a "
                                                "mapping")
        return values

    # --- set-up and stats ------------------------------------------------------------------

    def setup(self) -> None:
        self._call("do_setup", self.driver.do_setup)
        self._call("check_for_setup_error", self.driver.check_for_setup_error)

    def report(self) -> dict[str, Any]:
        """What the volume manager publishes under ``backup`` in its backend stats: the driver,
        its declared capabilities and its validated stats (or the error)."""
        found: dict[str, Any] = {"driver": self.driver_name,
                                 "capabilities": dict(self.driver.capabilities)}
        try:
            found["stats"] = backup_stats.validate(
                self._call("get_backup_stats", self.driver.get_backup_stats, True),
                f"backup driver {self.driver_name!r} on {self.host}")
        except exception.StackcoreError as err:
            LOG.error("%s", err)
            found["report_error"] = str(err)
        return found

    # --- create ----------------------------------------------------------------------------

    def create_backup(self, backup_id: str) -> None:
        with self.db.read() as session:
            row = session.get(models.VolumeBackup, backup_id)
            if row is None or row.status != BackupStatus.CREATING:
                return  # deleted while queued, or already handled
            volume_id = row.volume_id
        with self.volumes.locked(volume_id):
            self._create_backup(backup_id, volume_id)

    def _create_backup(self, backup_id: str, volume_id: str) -> None:
        staged = self._staging(f"backup-{backup_id}.raw")
        step = "copy_volume_to_image"
        self._notify("backup.create.start", backup_id)
        try:
            volume = self.volumes.volume_object(volume_id)
            self.volumes.driver_call(step, self.volumes.driver.copy_volume_to_image, volume,
                                      objects.ImageFile(backup_id, staged, "raw"))
            size_bytes = os.path.getsize(staged)
            if size_bytes != volume.size_bytes:
                raise exception.DriverError(
                    f"volume {volume_id} staged as {size_bytes} bytes, expected "
                    f"{volume.size_bytes} ({volume.size} GiB)")
            step = "checksum"
            checksum = sha256_of(staged)
            with self.db.read() as session:
                row = session.get(models.VolumeBackup, backup_id)
                assert row is not None
                backup = backup_object(session, row)
            backup = Backup(backup.id, backup.volume_id, backup.size, size_bytes, backup.parent)
            if backup.parent is not None:
                step = "create_incremental_backup"
                update = self._call(step, self.driver.create_incremental_backup, backup, staged)
            else:
                step = "create_backup"
                update = self._call(step, self.driver.create_backup, backup, staged)
            values = self._update(update, step)
            with self.db.transaction() as session:
                session.execute(sa.update(models.VolumeBackup)
                                .where(models.VolumeBackup.id == backup_id)
                                .values(status=BackupStatus.AVAILABLE, checksum=checksum,
                                        size_bytes=size_bytes, **values))
                self._volume_back(session, volume_id)
        except Exception as err:  # noqa: BLE001 - a database outage too: never left creating
            self._fail_create(backup_id, volume_id, step, err)
        else:
            self._notify("backup.create.end", backup_id)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(staged)

    @staticmethod
    def _volume_back(session: Any, volume_id: str) -> None:
        """The volume back to the status it had before the backup (``previous_status``)."""
        row = session.get(models.Volume, volume_id)
        if row is not None and row.status == VolumeStatus.BACKING_UP:
            row.status = row.previous_status or VolumeStatus.AVAILABLE
            row.previous_status = None

    def _fail_create(self, backup_id: str, volume_id: str, step: str,
                     err: BaseException) -> None:
        """Remove what the backup driver half made, then ``error`` + fault and the volume back,
        in one transaction (whoever sees ``error`` sees nothing left on the target)."""
        LOG.warning("backup %s: %s failed on %s: %s", backup_id, step, self.host, err)
        cleanup_error: BaseException | None = None
        try:
            with self.db.read() as session:
                row = session.get(models.VolumeBackup, backup_id)
                backup = backup_object(session, row) if row is not None else None
            if backup is not None:
                self._call("delete_backup", self.driver.delete_backup, backup)
        except Exception as cleanup_err:  # noqa: BLE001 - recorded below with the failure
            cleanup_error = exception.DriverError(
                f"cleanup after failure also failed: {cleanup_err}")
        with self.db.transaction() as session:
            if cleanup_error is not None:
                self._fault(session, "backup", backup_id, "cleanup", cleanup_error)
            self._fault(session, "backup", backup_id, step, err)
            session.execute(sa.update(models.VolumeBackup)
                            .where(models.VolumeBackup.id == backup_id)
                            .values(status=BackupStatus.ERROR))
            self._volume_back(session, volume_id)
        self._notify("backup.create.error", backup_id, err, step)

    # --- restore ---------------------------------------------------------------------------

    def restore_backup(self, backup_id: str, volume_id: str) -> None:
        """Write backup ``backup_id`` into volume ``volume_id`` (``restoring-backup``, on this
        backend). The data is verified before the volume is written: on a driver failure or a
        checksum mismatch the volume keeps its data and goes back to its previous status (a
        volume made for this restore - ``previous_status`` None - goes to ``error``); a failure
        while the volume is being written leaves it ``error``. The backup goes back to
        ``available`` (``error`` when its data proved corrupt); each failure is a fault of the
        backup and of the volume."""
        with self.volumes.locked(volume_id):
            with self.db.read() as session:
                row = session.get(models.VolumeBackup, backup_id)
                if row is None or row.status != BackupStatus.RESTORING or \
                        row.restore_volume_id != volume_id:
                    return
            self._restore(backup_id, volume_id)

    def _restore(self, backup_id: str, volume_id: str) -> None:
        target = self._staging(f"restore-{backup_id}-{volume_id}.raw")
        step = "restore_backup"
        written = False
        self._notify("backup.restore.start", backup_id, restore_volume_id=volume_id)
        try:
            with self.db.read() as session:
                row = session.get(models.VolumeBackup, backup_id)
                assert row is not None
                backup = backup_object(session, row)
                checksum = row.checksum
            volume = self.volumes.volume_object(volume_id)
            with open(target, "xb") as handle:
                handle.truncate(backup.size_bytes)
            self._call(step, self.driver.restore_backup, backup, target)
            step = "verify"
            got_size = os.path.getsize(target)
            got = sha256_of(target)
            if got_size != backup.size_bytes or got != checksum:
                raise ChecksumMismatch(
                    f"backup {backup_id} restored by backup driver {self.driver_name!r} on "
                    f"{self.host} is not the data backed up: {got_size} bytes with {got}, "
                    f"expected {backup.size_bytes} bytes with {checksum}; volume {volume_id} "
                    "was not written", backup_id=backup_id)
            if volume.size_bytes > backup.size_bytes:
                # A larger target: the image file must be the volume's size, the rest zeros.
                with open(target, "r+b") as handle:
                    handle.truncate(volume.size_bytes)
            step = "copy_image_to_volume"
            written = True
            self.volumes.driver_call(step, self.volumes.driver.copy_image_to_volume, volume,
                                      objects.ImageFile(backup_id, target, "raw"))
            with self.db.transaction() as session:
                session.execute(sa.update(models.VolumeBackup)
                                .where(models.VolumeBackup.id == backup_id)
                                .values(status=BackupStatus.AVAILABLE, restore_volume_id=None))
                vol = session.get(models.Volume, volume_id)
                if vol is not None and vol.status == VolumeStatus.RESTORING_BACKUP:
                    vol.status = vol.previous_status or VolumeStatus.AVAILABLE
                    vol.previous_status = None
        except Exception as err:  # noqa: BLE001 - never left restoring
            self._fail_restore(backup_id, volume_id, step, err, written)
        else:
            self._notify("backup.restore.end", backup_id, restore_volume_id=volume_id)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(target)

    def _fail_restore(self, backup_id: str, volume_id: str, step: str, err: BaseException,
                      written: bool) -> None:
        LOG.warning("restore of backup %s into volume %s: %s failed on %s: %s", backup_id,
                    volume_id, step, self.host, err)
        with self.db.transaction() as session:
            self._fault(session, "backup", backup_id, step, err)
            self._fault(session, "volume", volume_id, step, err)
            status = BackupStatus.ERROR if isinstance(err, ChecksumMismatch) \
                else BackupStatus.AVAILABLE
            session.execute(sa.update(models.VolumeBackup)
                            .where(models.VolumeBackup.id == backup_id)
                            .values(status=status, restore_volume_id=None))
            vol = session.get(models.Volume, volume_id)
            if vol is not None and vol.status == VolumeStatus.RESTORING_BACKUP:
                # A volume made for this restore has no previous status: its only content
                # would have been the backup's, so it is an error, not an empty volume.
                previous = vol.previous_status
                vol.status = previous if previous is not None and not written \
                    else VolumeStatus.ERROR
                vol.previous_status = None
        self._notify("backup.restore.error", backup_id, err, step, restore_volume_id=volume_id)

    # --- delete ----------------------------------------------------------------------------

    def delete_backup(self, backup_id: str) -> None:
        """Remove the backup from the target and mark it deleted; Conflict if a live backup
        builds on it (checked again here, under the volume's lock); a driver failure leaves
        it ``error`` with the fault and raises."""
        with self.db.read() as session:
            row = session.get(models.VolumeBackup, backup_id)
            if row is None or row.status == BackupStatus.DELETED:
                return
            volume_id = row.volume_id
        with self.volumes.locked(volume_id):
            self._delete(backup_id)

    def _delete(self, backup_id: str) -> None:
        with self.db.transaction() as session:
            row = session.get(models.VolumeBackup, backup_id)
            if row is None or row.status == BackupStatus.DELETED:
                return
            child = dependent(session, backup_id)
            if child is not None:
                if row.status == BackupStatus.DELETING:
                    row.status = BackupStatus.AVAILABLE
                raise exception.Conflict(
                    f"backup {backup_id} has incremental backup {child} depending on it; "
                    "delete that one first", backup_id=backup_id, dependent=child)
            row.status = BackupStatus.DELETING
            backup = backup_object(session, row)
        self._notify("backup.delete.start", backup_id)
        try:
            self._call("delete_backup", self.driver.delete_backup, backup)
        except Exception as err:
            with self.db.transaction() as session:
                self._fault(session, "backup", backup_id, "delete_backup", err)
                session.execute(sa.update(models.VolumeBackup)
                                .where(models.VolumeBackup.id == backup_id)
                                .values(status=BackupStatus.ERROR))
            self._notify("backup.delete.error", backup_id, err, "delete_backup")
            raise
        with self.db.transaction() as session:
            session.execute(sa.update(models.VolumeBackup)
                            .where(models.VolumeBackup.id == backup_id)
                            .values(status=BackupStatus.DELETED,
                                    deleted_at=core_models.utcnow()))
        self._notify("backup.delete.end", backup_id)

    # --- reconciliation --------------------------------------------------------------------

    def reconcile_volume(self, volume_id: str, err: BaseException) -> None:
        """A volume left ``backing-up``/``restoring-backup`` with no work of this service on
        it (a request lost on its way, :meth:`VolumeManager.reconcile_orphans`): its backup
        still ``creating`` goes to ``error``, a restore into it ends as at start-up."""
        bk = models.VolumeBackup
        with self.db.read() as session:
            creating = session.execute(sa.select(bk.id).where(
                bk.volume_id == volume_id, bk.host == self.host,
                bk.status == BackupStatus.CREATING)).scalars().all()
            restoring = session.execute(sa.select(bk.id).where(
                bk.restore_volume_id == volume_id,
                bk.status == BackupStatus.RESTORING)).scalars().all()
        for backup_id in creating:
            self._fail_create(backup_id, volume_id, "create_backup", err)
        for backup_id in restoring:
            self._fail_restore(backup_id, volume_id, "restore_backup", err, True)

    def reconcile(self) -> None:
        """At start-up (after the drivers' set-up, before the volumes are reconciled): what a
        killed service left transient is settled, nothing stays ``creating``/``restoring``/
        ``deleting``:

        * backups ``creating`` here -> ``error`` (fault: interrupted), their half-made data
          removed, the volume back to its previous status;
        * backups ``deleting`` here -> the delete is finished (``error`` if it fails);
        * restores into a volume of this backend -> the backup ``available`` again, the volume
          ``error`` (it may hold part of the data), each with a fault;
        * staging files of this host's interrupted runs are removed."""
        interrupted = exception.DriverError(
            f"interrupted by a restart of the volume service on {self.host}")
        bk, vol = models.VolumeBackup, models.Volume
        with self.db.read() as session:
            creating = session.execute(sa.select(bk.id, bk.volume_id).where(
                bk.host == self.host, bk.status == BackupStatus.CREATING)).all()
            deleting = session.execute(sa.select(bk.id).where(
                bk.host == self.host, bk.status == BackupStatus.DELETING)).scalars().all()
            restoring = session.execute(
                sa.select(bk.id, bk.restore_volume_id)
                .join(vol, vol.id == bk.restore_volume_id)
                .where(vol.host == self.host, bk.status == BackupStatus.RESTORING)).all()
            # a volume left backing-up/restoring-backup whose backup row says otherwise
            stuck = session.execute(sa.select(vol.id, vol.status).where(
                vol.host == self.host, vol.status.in_([VolumeStatus.BACKING_UP,
                                                       VolumeStatus.RESTORING_BACKUP]))).all()
        for backup_id, volume_id in creating:
            try:
                self._fail_create(backup_id, volume_id, "create_backup", interrupted)
            except Exception as err:  # noqa: BLE001 - logged; the next start tries again
                LOG.warning("reconciling backup %s failed: %s", backup_id, err)
        for backup_id in deleting:
            with contextlib.suppress(Exception):
                self._delete(backup_id)
        for backup_id, target_id in restoring:
            if target_id is None:
                continue
            try:
                self._fail_restore(backup_id, target_id, "restore_backup", interrupted, True)
            except Exception as err:  # noqa: BLE001
                LOG.warning("reconciling restore of backup %s failed: %s", backup_id, err)
        for volume_id, _status in stuck:
            settle_volume(self.db, self.host, volume_id, interrupted)
        if os.path.isdir(self.staging_dir):
            for name in os.listdir(self.staging_dir):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(self.staging_dir, name))


def settle_volume(db: Any, host: str, volume_id: str, err: BaseException) -> None:
    """A volume left ``backing-up`` goes back to its previous status (reading it changed
    nothing); one left ``restoring-backup`` goes to ``error`` with a fault (it may hold part of
    a backup's data). Used at start-up and by the volume manager's orphan reconciliation."""
    with db.transaction() as session:
        row = session.get(models.Volume, volume_id)
        if row is None:
            return
        if row.status == VolumeStatus.BACKING_UP:
            row.status = row.previous_status or VolumeStatus.AVAILABLE
            row.previous_status = None
        elif row.status == VolumeStatus.RESTORING_BACKUP:
            row.status = VolumeStatus.ERROR
            row.previous_status = None
            session.add(faults.new(models.VolumeFault, err, step="restore_backup",
                                   resource="volume", resource_id=volume_id, host=host))


def dependent(session: Any, backup_id: str) -> str | None:
    """The id of a live backup whose parent is ``backup_id`` (None: nothing depends on it)."""
    bk = models.VolumeBackup
    found: str | None = session.execute(sa.select(bk.id).where(
        bk.parent_id == backup_id, bk.status != BackupStatus.DELETED).limit(1)).scalar()
    return found
