"""The volume manager: one per backend (``<host>@<backend>``), the only caller of its driver.

It owns every state transition of the volumes, snapshots and attachments on its backend. Each
operation follows one pattern: the API has already moved the resource into a transient state
(and claimed capacity); the manager calls the driver, then sets the final state - or, if the
driver raised, records a fault, moves the resource to an error state, gives back the capacity
claim when nothing usable was made, and asks the driver to remove what it half made
(``delete_volume`` after a failed create, ``delete_snapshot`` after a failed snapshot,
``remove_export`` after a failed attach). Nothing stays transient after a failure, and
:meth:`VolumeManager.init_host` repairs what a crash or kill left behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from oslo_config import cfg

from stackcore import exception, faults, managers, notifications
from stackcore import progress as copy_progress
from stackcore.db import api as db_api
from stackcore.db import models as core_models
from stackcore.image import cache as image_cache
from stackcore.image import format as image_format
from stackcore.image import models as image_models
from stackcore.rpc import Target, Transport, instance_events
from stackcore.volume import connection_info, models, objects, stats
from stackcore.volume import opts as volume_opts
from stackcore.volume.driver import (
    MANAGEABLE_KEYS,
    MODEL_UPDATE_KEYS,
    SOURCE_NAME,
    VolumeDriver,
    source_name,
)
from stackcore.volume.family import VOLUME_BINARY as BINARY
from stackcore.volume.migration import COPY_MADE, VolumeMigrations
from stackcore.volume.placement import capacity, claims
from stackcore.volume.states import TRANSIENT as VOLUME_TRANSIENT
from stackcore.volume.states import AttachStatus, SnapshotStatus, VolumeStatus

if TYPE_CHECKING:
    from stackcore.image.api import ImageAPI
    from stackcore.image.store import ImageStore
    from stackcore.volume.backup.driver import BackupDriver
    from stackcore.volume.backup.manager import BackupManager

LOG = logging.getLogger(__name__)
TOPIC = "volume"
T = TypeVar("T")


class _StatsGate:
    """Shared/exclusive gate: driver calls that change provisioned space hold it shared until
    the database shows their result; a stats report holds it exclusive. So every report sees
    the backend and the database agree on which claims are already on the backend (the rest,
    still ``creating``/``extending``, keep consuming headroom) - without it a report read
    mid-create would forget an in-flight claim and let placement overcommit."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._shared = 0
        self._exclusive = False

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._exclusive)
            self._shared += 1
        try:
            yield
        finally:
            with self._cond:
                self._shared -= 1
                self._cond.notify_all()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._exclusive)
            self._exclusive = True
            self._cond.wait_for(lambda: self._shared == 0)
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()


class _Advancing:
    """``read(n)`` over an open file that tells ``advance`` how many bytes each read gave (the
    volume's progress while its file is uploaded into an image store)."""

    def __init__(self, handle: Any, advance: Callable[[int], None]) -> None:
        self._handle = handle
        self._advance = advance

    def read(self, size: int = -1, /) -> bytes:
        data: bytes = self._handle.read(size)
        self._advance(len(data))
        return data


def backend_host(host: str, backend: str) -> str:
    """The service host of one backend: ``<host>@<backend>`` (Cinder's convention)."""
    return f"{host}@{backend}"


class VolumeManager:
    """RPC endpoint of the volume service of one backend (topic ``volume``, server =
    ``<host>@<backend>``).

    API versions: 1.0 create/delete volume and snapshot, extend, attach/detach, upload;
    create/restore/delete backup (served when a backup driver is configured, see
    :mod:`stackcore.volume.backup.manager`). 1.1: ``copy_volume_to_image`` uploads into an
    image the caller created (``image_id``, ``store``); a 1.0 caller's form (``image_name``,
    ``disk_format``) is still served for one release: the image is then created here, in the
    volume's project. 1.2: ``manage_existing_get_size``, ``manage_existing``,
    ``unmanage_volume``, ``list_manageable_volumes`` (driver capability ``manage_existing``).
    1.3: ``migrate_volume`` (to another backend of this service, see :meth:`migrate_volume`),
    ``reimage_volume``.
    """

    target = Target(TOPIC, version="1.3")
    #: the managers of every backend this process serves, by ``<host>@<backend>`` (this one
    #: too), set by :func:`stackcore.volume.backends.build_managers`: a migration writes
    #: into one of them
    siblings: Mapping[str, VolumeManager] = {}
    #: where lifecycle events and stats samples go (the Cloud sets its own)
    notifier: notifications.Notifier = notifications.NULL
    #: where instance events go (the compute hosts of attached servers); the family sets it
    transport: Transport | None = None

    def __init__(
        self,
        conf: cfg.ConfigOpts,
        db: db_api.Database,
        host: str,
        backend: str,
        driver: VolumeDriver,
        driver_name: str,
        image_stores: Mapping[str, ImageStore] | None = None,
        backup_driver: tuple[BackupDriver, str] | None = None,
        image_api: ImageAPI | None = None,
    ) -> None:
        self.conf = conf
        self.db = db
        self.host = host
        self.backend = backend
        # Images of any store reach the driver as a local file (objects.ImageFile, the
        # driver contract unchanged): fetched into this volume host's own image cache, checked
        # (sha256, format) there. Its own directory: nothing here knows which cached images
        # a compute host's servers use, so it must not clean theirs.
        self.image_cache = image_cache.ImageCache.for_host(
            conf, "volume-" + host.replace("/", "_"), image_stores or {})
        #: where volumes are uploaded to (``copy_volume_to_image``): ``cloud.image``
        self.image_api = image_api
        self.driver = driver
        self.driver_name = driver_name
        self.unknown_objects: list[str] = []
        self._locks = managers.KeyedLocks()
        self._orphans = managers.Orphans()
        self._stats_gate = _StatsGate()
        self.migrations = VolumeMigrations(self)
        self.backups: BackupManager | None = None
        if backup_driver is not None:
            from stackcore.volume.backup.manager import BackupManager

            self.backups = BackupManager(self, *backup_driver)

    # --- plumbing --------------------------------------------------------------------------

    def _locked(self, *ids: str | None) -> contextlib.AbstractContextManager[None]:
        """Serialise work on these volumes."""
        return self._locks.locked(*ids)

    def _driver_call(self, step: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call the driver; anything but a stackcore error becomes a DriverError naming it."""
        return managers.call_driver("volume", self.driver_name, self.host, step, fn, *args,
                                    **kwargs)

    def _row(self, session: Any, volume_id: str) -> models.Volume:
        row = session.get(models.Volume, volume_id)
        if row is None or row.status == VolumeStatus.DELETED:
            raise exception.NotFound("volume", volume_id)
        return row  # type: ignore[no-any-return]

    def _volume(self, row: models.Volume, session: Any) -> objects.Volume:
        specs: dict[str, str] = {}
        if row.volume_type_id:
            vtype = session.get(models.VolumeType, row.volume_type_id)
            specs = dict(vtype.extra_specs) if vtype else {}
        return objects.Volume(
            id=row.id,
            size=row.size,
            display_name=row.display_name or "",
            extra_specs=specs,
            metadata=dict(row.metadata_),
            provider_location=row.provider_location,
            provider_auth=row.provider_auth,
            driver_data=dict(row.driver_data or {}),
            multiattach=row.multiattach,
            pool=row.pool,
            attached=VolumeStatus.IN_USE in (row.status, row.previous_status),
        )

    def _load(self, volume_id: str) -> tuple[models.Volume, objects.Volume]:
        with self.db.read() as session:
            row = self._row(session, volume_id)
            return row, self._volume(row, session)

    def _load_snapshot(self, snapshot_id: str) -> tuple[models.Snapshot, objects.Snapshot]:
        with self.db.read() as session:
            snap = session.get(models.Snapshot, snapshot_id)
            if snap is None or snap.status == SnapshotStatus.DELETED:
                raise exception.NotFound("snapshot", snapshot_id)
            volume = self._volume(self._row(session, snap.volume_id), session)
            return snap, objects.Snapshot(
                id=snap.id,
                volume=volume,
                volume_size=snap.volume_size,
                provider_location=snap.provider_location,
                driver_data=dict(snap.driver_data or {}),
            )

    def _update(self, volume_id: str, **values: Any) -> None:
        with self.db.transaction() as session:
            session.execute(
                sa.update(models.Volume).where(models.Volume.id == volume_id).values(**values)
            )

    def _update_snapshot(self, snapshot_id: str, **values: Any) -> None:
        with self.db.transaction() as session:
            session.execute(
                sa.update(models.Snapshot).where(models.Snapshot.id == snapshot_id)
                .values(**values)
            )

    @staticmethod
    def _model_update(update: Any, step: str) -> dict[str, Any]:
        if update is None:
            return {}
        if not isinstance(update, Mapping) or set(update) - MODEL_UPDATE_KEYS:
            raise exception.DriverContractError(
                f"{step} returned {type(update).__name__} with keys "
                f"{sorted(update) if isinstance(update, Mapping) else '-'}; a model update may "
                f"only hold {', '.join(sorted(MODEL_UPDATE_KEYS))}"
            )
        return dict(update)

    def _fault(self, resource: str, resource_id: str, step: str, err: BaseException,
               session: Any | None = None) -> None:
        fault = faults.new(models.VolumeFault, err, step=step, resource=resource,
                           resource_id=resource_id, host=self.host)
        if session is not None:
            session.add(fault)
            return
        with self.db.transaction() as own:
            own.add(fault)

    def _notify(self, event_type: str, resource_id: str, err: BaseException | None = None,
                step: str = "", attachments: list[str] | None = None) -> None:
        """Emit ``event_type`` with the volume's (or snapshot's) state as the database has it
        now (and, for attach/detach, ``attachments``); with ``err``, as an error event."""
        def build() -> dict[str, Any]:
            with self.db.read() as session:
                if event_type.startswith("snapshot."):
                    return notifications.fields(
                        "snapshot", session.get(models.Snapshot, resource_id))
                found = notifications.fields("volume", session.get(models.Volume, resource_id))
                if attachments is not None:
                    found["attachments"] = [notifications.fields(
                        "attachment", session.get(models.Attachment, a)) for a in attachments]
                return found
        if err is None:
            self.notifier.info(event_type, build)
        else:
            self.notifier.error(event_type, build, err, step)

    # --- service hooks ---------------------------------------------------------------------

    def init_host(self) -> None:
        """Set the driver up, then reconcile, before the backend is offered for placement.

        * volumes left ``creating``/``downloading`` -> ``error`` (fault: interrupted), claim
          given back, half-made backend volume deleted;
        * ``managing`` -> ``error_managing`` (fault: interrupted); nothing is deleted (the
          object was never the volume's);
        * ``deleting`` -> the delete is finished; ``extending`` -> ``error_extending``;
          ``uploading`` -> available, the image it was filling (never active) deleted;
        * attachments left ``attaching`` -> removed (export removed when unused), ``detaching``
          -> the detach is finished;
        * volumes with attachments -> ``ensure_export`` (a restarted target lost them);
        * snapshots ``creating`` -> ``error`` and removed; ``deleting`` -> deleted;
        * ``migrating``/``retyping`` -> back where it was (new copy deleted, ``error``) before
          the switch, finished after it; a migration's leftover ``reserved`` copy deleted;
        * backend objects nobody knows -> :attr:`unknown_objects` (logged, never destroyed).
        """
        self._driver_call("do_setup", self.driver.do_setup)
        self._driver_call("check_for_setup_error", self.driver.check_for_setup_error)
        volume_opts.mosr(self.conf, self.backend)  # refuses a ratio < 1 at start-up
        for feature, reason in self.driver.unavailable_features().items():
            LOG.warning("backend %s cannot offer %s here: %s", self.host, feature, reason)
        if self.backups is not None:
            self.backups.setup()
            self.backups.reconcile()
        with self.db.transaction() as session:
            rows = session.execute(
                sa.select(models.Volume.id, models.Volume.status).where(
                    models.Volume.host == self.host,
                    models.Volume.status != VolumeStatus.DELETED,
                )
            ).all()
            snaps = session.execute(
                sa.select(models.Snapshot.id, models.Snapshot.status)
                .join(models.Volume, models.Volume.id == models.Snapshot.volume_id)
                .where(models.Volume.host == self.host,
                       models.Snapshot.status.in_([SnapshotStatus.CREATING,
                                                   SnapshotStatus.DELETING]))
            ).all()
        for snap_id, status in snaps:
            if status == SnapshotStatus.CREATING:
                self._fail_snapshot(snap_id, "create_snapshot", exception.DriverError(
                    f"snapshot creation interrupted by a restart of {BINARY} on {self.host}"))
            else:
                with contextlib.suppress(exception.StackcoreError):
                    self._delete_snapshot(snap_id)
        for volume_id, status in rows:
            try:
                self._reconcile_volume(volume_id, status)
            except exception.StackcoreError as err:
                LOG.warning("reconciling volume %s on %s failed: %s", volume_id, self.host, err)
        self._find_unknown_objects()
        self.publish_stats()

    def _reconcile_volume(self, volume_id: str, status: str, cause: str = "") -> None:
        interrupted = exception.DriverError(
            f"{status} interrupted by {cause or f'a restart of {BINARY} on {self.host}'}")
        if status in (VolumeStatus.RESERVED, VolumeStatus.MIGRATING, VolumeStatus.RETYPING):
            self.migrations.reconcile(volume_id, status, interrupted)
            return
        if status == VolumeStatus.DOWNLOADING and self._reimaging(volume_id):
            self._fail_reimage(volume_id, "reimage_volume", interrupted)  # never deleted
            return
        if status in (VolumeStatus.CREATING, VolumeStatus.DOWNLOADING):
            self._fail_create(volume_id, "create_volume", interrupted)
            return
        if status == VolumeStatus.MANAGING:
            self._fail_manage(volume_id, "manage_existing", interrupted)
            return
        if status == VolumeStatus.DELETING:
            with contextlib.suppress(exception.StackcoreError):
                self._delete(volume_id)
            return
        if status in (VolumeStatus.BACKING_UP, VolumeStatus.RESTORING_BACKUP):
            from stackcore.volume.backup.manager import settle_volume

            if self.backups is not None:  # the backup (or restore) row is settled too
                self.backups.reconcile_volume(volume_id, interrupted)
            settle_volume(self.db, self.host, volume_id, interrupted)
            return
        if status == VolumeStatus.EXTENDING:
            with self.db.transaction() as session:
                row = self._row(session, volume_id)
                claims.release_part(session, volume_id, row.allocated_gb - row.size)
                row.status = VolumeStatus.ERROR_EXTENDING
                self._fault("volume", volume_id, "extend_volume", interrupted, session)
            return
        with self.db.transaction() as session:
            atts = session.execute(
                sa.select(models.Attachment).where(
                    models.Attachment.volume_id == volume_id,
                    models.Attachment.attach_status.in_(
                        [AttachStatus.ATTACHING, AttachStatus.ATTACHED, AttachStatus.DETACHING])
                )
            ).scalars().all()
        for att in atts:
            if att.attach_status == AttachStatus.ATTACHING:
                self._mark_attachment(att.id, AttachStatus.ERROR)
                self._fault("volume", volume_id, "attach", interrupted)
            elif att.attach_status == AttachStatus.DETACHING:
                _, volume = self._load(volume_id)
                with contextlib.suppress(exception.StackcoreError):
                    self._driver_call("terminate_connection", self.driver.terminate_connection,
                                      volume, att.connector)
                self._mark_attachment(att.id, AttachStatus.DETACHED)
        _, volume = self._load(volume_id)
        if self._active_attachments(volume_id):
            update = self._driver_call("ensure_export", self.driver.ensure_export, volume)
            self._update(volume_id, status=VolumeStatus.IN_USE,
                         **self._model_update(update, "ensure_export"))
        else:
            if status in (VolumeStatus.ATTACHING, VolumeStatus.DETACHING, VolumeStatus.IN_USE):
                with contextlib.suppress(exception.StackcoreError):
                    self._driver_call("remove_export", self.driver.remove_export, volume)
            if status in (VolumeStatus.ATTACHING, VolumeStatus.DETACHING, VolumeStatus.IN_USE,
                          VolumeStatus.UPLOADING):
                self._update(volume_id, status=VolumeStatus.AVAILABLE, previous_status=None)
        if status == VolumeStatus.UPLOADING:
            self._discard_unfinished_uploads(volume_id)

    def _reimaging(self, volume_id: str) -> bool:
        """A ``downloading`` volume that existed before (a reimage: ``previous_status`` set),
        not one being created."""
        with self.db.read() as session:
            return self._row(session, volume_id).previous_status is not None

    def _find_unknown_objects(self) -> None:
        try:
            on_backend = self._driver_call("list_backend_objects",
                                           self.driver.list_backend_objects)
        except exception.StackcoreError as err:
            LOG.warning("cannot list objects of %s: %s", self.host, err)
            return
        known = set(self._managed_names())  # volumes here, and migrations' copies here
        with self.db.transaction() as session:
            snaps = session.execute(
                sa.select(models.Snapshot.id)
                .join(models.Volume, models.Volume.id == models.Snapshot.volume_id)
                .where(models.Volume.host == self.host,
                       models.Snapshot.status != SnapshotStatus.DELETED)
            ).scalars().all()
        known |= {objects.SNAPSHOT_NAME_TEMPLATE % s for s in snaps}
        self.unknown_objects = sorted(
            name for name in on_backend
            if not any(name == k or name.startswith(k + ".") or name.endswith(k) for k in known)
            and (name.startswith("volume-") or name.startswith("snapshot-"))
        )
        if self.unknown_objects:
            LOG.warning("backend %s holds objects the database does not know: %s",
                        self.host, ", ".join(self.unknown_objects))

    def periodic_tasks(self) -> None:
        self.publish_stats()
        self.reconcile_orphans()
        self.ensure_exports()

    def ensure_exports(self) -> None:
        """Periodic: ``ensure_export`` of every attached volume of this backend that no
        request is working on, so exports a restarted target daemon lost (tgtd keeps its
        targets in memory) come back without restarting this service. Failures are logged
        and tried again next time."""
        with self.db.transaction() as session:
            ids = session.execute(
                sa.select(models.Volume.id).distinct()
                .join(models.Attachment, models.Attachment.volume_id == models.Volume.id)
                .where(models.Volume.host == self.host,
                       models.Volume.status == VolumeStatus.IN_USE,
                       models.Attachment.attach_status == AttachStatus.ATTACHED)
            ).scalars().all()
        for volume_id in ids:
            if self._locks.busy(volume_id):
                continue
            try:
                with self._locked(volume_id):
                    row, volume = self._load(volume_id)
                    if row.status != VolumeStatus.IN_USE:
                        continue
                    update = self._driver_call("ensure_export", self.driver.ensure_export,
                                               volume)
                    values = self._model_update(update, "ensure_export")
                    if values:
                        self._update(volume_id, **values)
            except exception.StackcoreError as err:
                LOG.warning("export of volume %s on %s not ensured: %s", volume_id, self.host,
                            err)

    def reconcile_orphans(self) -> list[str]:
        """Periodic: finish or undo what was left transient on this backend with no work of
        this service on it - a create request lost with a broker restart, an operation a
        database or backend outage cut off, a call from another service that timed out
        half-way. A volume (transient itself, or with a snapshot creating/deleting or an
        attachment attaching/detaching) is an orphan once it has been seen so, in the same
        state and with no request of this service holding it, for ``rpc_call_timeout``
        seconds (by then the caller has stopped waiting, and a request on its way would have
        arrived). A create (volume or snapshot) that never started is started; a volume
        left creating with no backend at all is removed (:meth:`_remove_unplaced`); anything
        else is handled as at start-up (:meth:`init_host`). Returns the volumes it handled."""
        att, snap, vol = models.Attachment, models.Snapshot, models.Volume
        with self.db.transaction() as session:
            transient: dict[str, Any] = {
                vid: [status] for vid, status in session.execute(
                    sa.select(vol.id, vol.status).where(
                        vol.host == self.host,
                        vol.status.in_([str(s) for s in VOLUME_TRANSIENT])))}
            for vid, sid, status in session.execute(
                    sa.select(snap.volume_id, snap.id, snap.status)
                    .join(vol, vol.id == snap.volume_id)
                    .where(vol.host == self.host, snap.status.in_(
                        [SnapshotStatus.CREATING, SnapshotStatus.DELETING]))):
                transient.setdefault(vid, []).append(f"snapshot {sid} {status}")
            for vid, aid, status in session.execute(
                    sa.select(att.volume_id, att.id, att.attach_status)
                    .join(vol, vol.id == att.volume_id)
                    .where(vol.host == self.host, att.attach_status.in_(
                        [AttachStatus.ATTACHING, AttachStatus.DETACHING]))):
                transient.setdefault(vid, []).append(f"attachment {aid} {status}")
            # Unplaced: a create the volume API cut off between its row and the claim (its
            # process gone, or the database gone while it removed the row after a failed
            # placement). No backend owns it, so every volume service looks at it; the first
            # to find it due removes it (under a row lock, re-checked).
            unplaced = set(session.execute(sa.select(vol.id).where(
                vol.host.is_(None), vol.status == VolumeStatus.CREATING)).scalars())
            for vid in unplaced:
                transient[vid] = ["unplaced"]
        due = self._orphans.due({k: tuple(sorted(v)) for k, v in transient.items()},
                                self._locks.busy, self.conf.rpc_call_timeout,
                                time.monotonic())
        for volume_id in due:
            try:
                if volume_id in unplaced:
                    self._remove_unplaced(volume_id)
                    continue
                self._reconcile_orphan(volume_id)
            except Exception as err:  # noqa: BLE001 - the next pass tries again
                LOG.warning("reconciling orphaned volume %s on %s failed: %s", volume_id,
                            self.host, err)
        return due

    def _remove_unplaced(self, volume_id: str) -> None:
        """Remove a volume row left ``creating`` with no backend: what the volume API does
        itself when placement fails (its caller got the error, never the volume). Nothing
        was claimed for it: a placement still running finds the row gone and its claim is
        rolled back (:func:`claims.claim` raises NotFound)."""
        vol = models.Volume
        with self.db.transaction() as session:
            row = session.get(vol, volume_id, with_for_update=True)
            if row is None or row.host is not None or row.status != VolumeStatus.CREATING:
                return  # placed or deleted meanwhile
            session.delete(row)
        LOG.warning("volume %s: left creating with no backend for %d s (its create was cut "
                    "off before a backend was claimed); removed", volume_id,
                    self.conf.rpc_call_timeout)

    def _reconcile_orphan(self, volume_id: str) -> None:
        with self.db.transaction() as session:
            row = session.get(models.Volume, volume_id)
            if row is None or row.host != self.host:
                return
            status = row.status
            snaps = session.execute(sa.select(models.Snapshot.id, models.Snapshot.status).where(
                models.Snapshot.volume_id == volume_id,
                models.Snapshot.status.in_([SnapshotStatus.CREATING,
                                            SnapshotStatus.DELETING]))).all()
        LOG.warning("volume %s on %s: %s with no work in progress for %d s; reconciling",
                    volume_id, self.host, status, self.conf.rpc_call_timeout)
        if status == VolumeStatus.CREATING:
            self.create_volume(volume_id)  # its create request never arrived
            return
        for snap_id, snap_status in snaps:
            if snap_status == SnapshotStatus.CREATING:
                self.create_snapshot(snap_id)  # likewise
        with self._locked(volume_id), self._stats_gate.shared():
            for snap_id, snap_status in snaps:
                if snap_status == SnapshotStatus.DELETING:
                    with contextlib.suppress(exception.StackcoreError):
                        self._delete_snapshot(snap_id)
            with self.db.transaction() as session:
                row = session.get(models.Volume, volume_id)
                if row is None or row.status == VolumeStatus.DELETED:
                    return
                status = row.status
            self._reconcile_volume(volume_id, status, cause=(
                f"an interruption ({status} with no work in progress on {self.host} for "
                f"{self.conf.rpc_call_timeout} s)"))

    def publish_stats(self) -> dict[str, Any]:
        """Read, validate and store the driver's stats with ``allocated_capacity_gb`` per pool,
        and recompute each pool's claimable headroom. A bad report marks the backend as not
        reporting (nothing is placed on it) and stores the error; it never raises."""
        with self._stats_gate.exclusive():
            report = self._publish_stats()
        self.notifier.sample("volume.stats", lambda: {
            "host": self.host, "reporting": report["reporting"],
            "report_error": report.get("report_error"),
            **{k: report[k] for k in ("volume_backend_name", "pools") if k in report}})
        return report

    @db_api.retry_on_conflict
    def _publish_stats(self) -> dict[str, Any]:
        source = f"volume driver {self.driver_name!r} on {self.host}"
        try:
            report = stats.validate(
                self._driver_call("get_volume_stats", self.driver.get_volume_stats, True),
                source,
            )
        except exception.StackcoreError as err:
            LOG.error("%s", err)
            with self.db.transaction() as session:
                backend = self._backend_row(session)
                backend.reporting, backend.report_error = False, str(err)
                session.execute(sa.update(models.VolumePool)
                                .where(models.VolumePool.host == self.host)
                                .values(present=False))
            return {"reporting": False, "report_error": str(err)}
        default_mosr = volume_opts.mosr(self.conf, self.backend)
        # the backup driver's report rides with the backend's (the API reads it to know what
        # this service offers); read before the transaction, like the volume stats
        extra = {"backup": self.backups.report()} if self.backups is not None else {}
        now = core_models.utcnow()
        with self.db.transaction() as session:
            # Lock the pool rows first: a claim or release changes a pool row and its volume
            # in one transaction, so once these locks are held every claim and release of
            # these pools is committed (and visible to the sums below) or waits for this
            # report. Reading the sums first would let one commit in between, and writing
            # the stale sum would lose it (a release lost is capacity leaked for good).
            pools = session.execute(sa.select(models.VolumePool).where(
                models.VolumePool.host == self.host).order_by(models.VolumePool.pool_name)
                .with_for_update()).scalars().all()
            allocated = dict(session.execute(
                sa.select(models.Volume.pool, sa.func.coalesce(
                    sa.func.sum(models.Volume.allocated_gb), 0))
                .where(models.Volume.host == self.host,
                       models.Volume.status != VolumeStatus.DELETED)
                .group_by(models.Volume.pool)
            ).all())
            # Claims not on the backend yet: creates not started, extends not done.
            inflight: dict[str | None, int] = dict(session.execute(
                sa.select(models.Volume.pool, sa.func.coalesce(sa.func.sum(sa.case(
                    (models.Volume.status == VolumeStatus.CREATING, models.Volume.allocated_gb),
                    (models.Volume.status == VolumeStatus.EXTENDING,
                     models.Volume.allocated_gb - models.Volume.size),
                    # a migration's destination before its copy is made on the backend
                    (sa.and_(models.Volume.status == VolumeStatus.RESERVED,
                             models.Volume.previous_status.is_distinct_from(COPY_MADE)),
                     models.Volume.allocated_gb),
                    else_=0)), 0))
                .where(models.Volume.host == self.host)
                .group_by(models.Volume.pool)
            ).all())
            by_name = {p.pool_name: p for p in pools}
            published = []
            for pool_stats in report["pools"]:
                name = pool_stats["pool_name"]
                alloc = int(allocated.get(name, 0))
                pool_stats = {**pool_stats, "allocated_capacity_gb": alloc}
                published.append(pool_stats)
                cap = capacity.Pool.from_stats(pool_stats)
                row = by_name.get(name)
                if row is None:
                    row = models.VolumePool(host=self.host, pool_name=name)
                    session.add(row)
                row.stats = pool_stats
                row.present = True
                row.allocated_capacity_gb = alloc
                row.allocated_at_report = alloc - int(inflight.get(name, 0))
                row.headroom_thin_gb = capacity.headroom(cap, True, default_mosr)
                row.headroom_thick_gb = capacity.headroom(cap, False, default_mosr)
                row.reported_at = now
            reported = {p["pool_name"] for p in report["pools"]}
            for row in pools:
                if row.pool_name not in reported:
                    row.present = False
            backend = self._backend_row(session)
            backend.volume_backend_name = report["volume_backend_name"]
            backend.stats = {**report, "pools": published,
                             "unknown_objects": self.unknown_objects, **extra}
            backend.reporting, backend.report_error, backend.reported_at = True, None, now
        return {"reporting": True, **report, "pools": published}

    def _backend_row(self, session: Any) -> models.VolumeBackend:
        row = session.execute(sa.select(models.VolumeBackend).where(
            models.VolumeBackend.host == self.host)).scalar_one_or_none()
        if row is None:
            row = models.VolumeBackend(host=self.host)
            session.add(row)
        return row  # type: ignore[no-any-return]

    # --- volumes ---------------------------------------------------------------------------

    def create_volume(self, volume_id: str) -> None:
        """Make a volume the API placed here (status ``creating``): empty, from a snapshot,
        as a clone, or from an image - a raw image of a store as the driver's copy-on-write
        clone of it when the driver can (capability ``clone_image``), else created and the
        image copied into it (``downloading``)."""
        with self.db.read() as session:
            row = session.get(models.Volume, volume_id)
            if row is None or row.status != VolumeStatus.CREATING:
                return  # deleted while queued, or already handled
            source = row.source_volid
        with self._locked(volume_id, source), self._stats_gate.shared():
            row, volume = self._load(volume_id)
            if row.status != VolumeStatus.CREATING:
                return
            self._notify("volume.create.start", volume_id)
            step = "create_volume"
            cloned = False
            try:
                if row.snapshot_id:
                    step = "create_volume_from_snapshot"
                    _, snap = self._load_snapshot(row.snapshot_id)
                    update = self._driver_call(step, self.driver.create_volume_from_snapshot,
                                               volume, snap)
                elif row.source_volid:
                    step = "create_cloned_volume"
                    _, src = self._load(row.source_volid)
                    update = self._driver_call(step, self.driver.create_cloned_volume,
                                               volume, src)
                else:
                    step = "clone_image"
                    cloned, update = self._clone_image(volume, row.image_id)
                    if not cloned:
                        step = "create_volume"
                        update = self._driver_call(step, self.driver.create_volume, volume)
                values = self._model_update(update, step)
                self._update(volume_id, image_clone=cloned, **values)
                if row.image_id and not cloned:
                    step = "copy_image_to_volume"
                    self._update(volume_id, status=VolumeStatus.DOWNLOADING)
                    image, cached = self._image_file(row.image_id)
                    _, volume = self._load(volume_id)
                    # the volume's progress: the bytes of the image's fetch into this host's
                    # cache, then the driver's copy (which reports no bytes)
                    with copy_progress.Reporter(
                            self.db, "volume", volume_id, "fetch_image",
                            cached.size if cached is not None else None) as reporter, \
                            self._cached_image(image, cached, reporter.advance):
                        reporter.phase(step)
                        self._driver_call(step, self.driver.copy_image_to_volume, volume,
                                          image)
                step = "finish_create"
                self._update(volume_id, status=VolumeStatus.AVAILABLE)
            except Exception as err:  # noqa: BLE001 - a database outage too: never left creating
                self._fail_create(volume_id, step, err)
                self._notify("volume.create.error", volume_id, err, step)
                return
            self._notify("volume.create.end", volume_id)

    def reimage_volume(self, volume_id: str, image_id: str) -> None:
        """Write the image over the volume's data (status ``downloading``, set by the API
        with ``previous_status`` ``available``): the image fetched into this host's cache,
        then the driver's ``copy_image_to_volume``; ``available`` again, or ``error`` with a
        fault (nothing is deleted: the volume is the user's)."""
        with self._locked(volume_id):
            row, volume = self._load(volume_id)
            if row.status != VolumeStatus.DOWNLOADING or row.previous_status is None:
                return  # settled meanwhile, or a create's download (not ours)
            self._notify("volume.reimage.start", volume_id)
            step = "fetch_image"
            try:
                image, cached = self._image_file(image_id)
                with copy_progress.Reporter(
                        self.db, "volume", volume_id, step,
                        cached.size if cached is not None else None) as reporter, \
                        self._cached_image(image, cached, reporter.advance):
                    step = "copy_image_to_volume"
                    reporter.phase(step)
                    self._driver_call(step, self.driver.copy_image_to_volume, volume, image)
                self._update(volume_id, status=VolumeStatus.AVAILABLE, previous_status=None)
            except Exception as err:  # noqa: BLE001 - a database outage too: never left so
                self._fail_reimage(volume_id, step, err)
                self._notify("volume.reimage.error", volume_id, err, step)
                return
            self._notify("volume.reimage.end", volume_id)

    def _fail_reimage(self, volume_id: str, step: str, err: BaseException) -> None:
        LOG.warning("volume %s: reimage failed at %s on %s: %s", volume_id, step, self.host,
                    err)
        with self.db.transaction() as session:
            self._fault("volume", volume_id, step, err, session)
            session.execute(sa.update(models.Volume).where(models.Volume.id == volume_id)
                            .values(status=VolumeStatus.ERROR, previous_status=None))

    def _clone_image(self, volume: objects.Volume, image_id: str | None
                     ) -> tuple[bool, Any]:
        """Try the driver's ``clone_image`` for a raw image of a store (capability
        ``clone_image``): ``(True, model update)`` when the volume was made as a clone;
        ``(False, None)`` when the driver cannot or may not clone it (then the volume is
        created and the image copied). A raising driver raises (step ``clone_image``)."""
        if image_id is None or not self.driver.capabilities.get("clone_image", False):
            return False, None
        with self.db.read() as session:
            image = session.get(image_models.Image, image_id)
            if image is None or image.store is None or image.location is None \
                    or image.disk_format != "raw" or image.status != "active":
                return False, None
            offered = objects.StoreImage(image.id, image.store, image.location,
                                         image.disk_format, image.size_bytes,
                                         image.virtual_size or image.size_bytes)
        result = self._driver_call("clone_image", self.driver.clone_image, volume, offered)
        if not (isinstance(result, tuple) and len(result) == 2
                and isinstance(result[0], bool)):
            raise exception.DriverContractError(
                f"clone_image returned {type(result).__name__}, not (cloned, model update)")
        cloned, update = result
        if not cloned and update:
            raise exception.DriverContractError(
                "clone_image returned a model update with cloned=False")
        if cloned:
            LOG.info("volume %s: a copy-on-write clone of image %s (%s)", volume.id,
                     image_id, offered.location)
        return cloned, update

    def _image_file(self, image_id: str
                    ) -> tuple[objects.ImageFile, image_cache.CachedSource | None]:
        """The image as the driver reads it (a local file) and, for an uploaded image, where
        its copy in this host's image cache comes from (:meth:`_cached_image` fetches it)."""
        with self.db.read() as session:
            image = session.get(image_models.Image, image_id)
            if image is None:
                raise exception.NotFound("image", image_id)
            source = image_cache.source_of(image.id, image.store, image.location,
                                           image.size_bytes, image.sha256, image.disk_format)
            path = image.path if source is None else self.image_cache.path(image.id)
            found = objects.ImageFile(image.id, path, image.disk_format)
        return found, source

    @contextlib.contextmanager
    def _cached_image(self, image: objects.ImageFile,
                      source: image_cache.CachedSource | None,
                      on_bytes: Callable[[int], object] | None = None) -> Iterator[None]:
        """The image's file ready for the driver while the block runs: an uploaded image
        fetched into this host's cache (size, sha256 and format checked there) and held;
        a registered file inspected again in place - the file on that path may have changed
        since it was registered (stackcore.image.format says why)."""
        if source is None:
            image_format.inspect(image.path, image.disk_format, field=f"image {image.id}")
            yield
            return
        with self.image_cache.use(source, on_bytes):
            yield

    def _fail_create(self, volume_id: str, step: str, err: BaseException) -> None:
        """Remove what the driver half made, then record the fault, ``error`` and give back the
        claim in one transaction - in that order, so that whoever sees ``error`` also sees a
        backend with nothing left on it."""
        LOG.warning("volume %s: %s failed on %s: %s", volume_id, step, self.host, err)
        cleanup_error: BaseException | None = None
        try:
            _, volume = self._load(volume_id)
            self._driver_call("delete_volume", self.driver.delete_volume, volume)
        except Exception as cleanup_err:  # noqa: BLE001 - recorded below with the failure
            cleanup_error = exception.DriverError(
                f"cleanup after failure also failed: {cleanup_err}")
        with self.db.transaction() as session:
            if cleanup_error is not None:
                self._fault("volume", volume_id, "cleanup", cleanup_error, session)
            self._fault("volume", volume_id, step, err, session)  # the latest: the story
            claims.release(session, volume_id)
            session.execute(sa.update(models.Volume).where(models.Volume.id == volume_id)
                            .values(status=VolumeStatus.ERROR))

    def delete_volume(self, volume_id: str) -> None:
        """Delete the volume on the backend, give back its claim, mark it deleted. Holds the
        stats gate like a create: a report taken between the backend delete and the release
        would count the freed space twice (gone from the backend's provisioned figure, then
        given back by the release) and let placement overcommit."""
        with self._locked(volume_id), self._stats_gate.shared():
            self._delete(volume_id)

    def _delete(self, volume_id: str) -> None:
        with self.db.transaction() as session:
            row = session.get(models.Volume, volume_id)
            if row is None or row.status == VolumeStatus.DELETED:
                return
            self._refuse_if_busy(session, row)
            row.status = VolumeStatus.DELETING
            volume = self._volume(row, session)
        self._notify("volume.delete.start", volume_id)
        try:
            self._driver_call("delete_volume", self.driver.delete_volume, volume)
        except Exception as err:
            LOG.warning("volume %s: delete failed on %s: %s", volume_id, self.host, err)
            with self.db.transaction() as session:
                self._fault("volume", volume_id, "delete_volume", err, session)
                session.execute(sa.update(models.Volume).where(models.Volume.id == volume_id)
                                .values(status=VolumeStatus.ERROR_DELETING))
            self._notify("volume.delete.error", volume_id, err, "delete_volume")
            raise
        with self.db.transaction() as session:
            claims.release(session, volume_id)
            session.execute(sa.update(models.Volume).where(models.Volume.id == volume_id)
                            .values(status=VolumeStatus.DELETED, deleted_at=core_models.utcnow()))
        self._notify("volume.delete.end", volume_id)

    @staticmethod
    def _refuse_if_busy(session: Any, row: models.Volume) -> None:
        snaps = session.execute(sa.select(sa.func.count()).where(
            models.Snapshot.volume_id == row.id,
            models.Snapshot.status != SnapshotStatus.DELETED)).scalar_one()
        if snaps:
            raise exception.InvalidState(
                f"volume {row.id} has {snaps} snapshot(s); delete them first", state=row.status)
        atts = session.execute(sa.select(sa.func.count()).where(
            models.Attachment.volume_id == row.id,
            models.Attachment.attach_status.in_(
                [AttachStatus.ATTACHING, AttachStatus.ATTACHED, AttachStatus.DETACHING]))
        ).scalar_one()
        if atts:
            raise exception.InvalidState(
                f"volume {row.id} has {atts} attachment(s); detach it first", state=row.status)

    def extend_volume(self, volume_id: str, new_size: int) -> None:
        """Grow the volume (status ``extending``; the API claimed the extra GiB)."""
        with self._locked(volume_id), self._stats_gate.shared():
            row, volume = self._load(volume_id)
            if row.status != VolumeStatus.EXTENDING:
                return
            self._notify("volume.resize.start", volume_id)
            try:
                self._driver_call("extend_volume", self.driver.extend_volume, volume, new_size)
            except Exception as err:
                # InvalidState: the driver refused before changing anything (contract)
                refused = isinstance(err, exception.InvalidState)
                status = (row.previous_status or VolumeStatus.AVAILABLE) if refused \
                    else VolumeStatus.ERROR_EXTENDING
                with self.db.transaction() as session:
                    if not refused:  # a refusal is the caller's answer, not a failure
                        self._fault("volume", volume_id, "extend_volume", err, session)
                    claims.release_part(session, volume_id, new_size - row.size)
                    session.execute(sa.update(models.Volume).where(models.Volume.id == volume_id)
                                    .values(status=status,
                                            previous_status=None if refused else
                                            models.Volume.previous_status))
                self._notify("volume.resize.error", volume_id, err, "extend_volume")
                raise
            self._update(volume_id, size=new_size,
                         status=row.previous_status or VolumeStatus.AVAILABLE,
                         previous_status=None)
            self._notify("volume.resize.end", volume_id)
            if row.previous_status == VolumeStatus.IN_USE:
                self._tell_servers_extended(volume_id)

    def _tell_servers_extended(self, volume_id: str) -> None:
        """Cinder's ``volume-extended`` event to the compute host of every server the volume
        is attached to, so its hypervisor shows the guest the new size (best effort: see
        :mod:`stackcore.rpc.instance_events`). Sent after the size is committed: the compute
        service reads it from the volume."""
        if self.transport is None:
            return
        with self.db.read() as session:
            attached = session.execute(sa.select(
                models.Attachment.instance_uuid, models.Attachment.connector).where(
                models.Attachment.volume_id == volume_id,
                models.Attachment.attach_status == AttachStatus.ATTACHED,
                models.Attachment.instance_uuid.is_not(None))).all()
        for instance_uuid, connector in attached:
            host = (connector or {}).get("host")
            if host:
                instance_events.send(self.transport, host, instance_uuid,
                                     instance_events.VOLUME_EXTENDED, volume_id)

    # --- manage / unmanage (1.2, capability manage_existing) -------------------------------

    def _refuse_managed(self, existing_ref: Any) -> str:
        """The object's name (Invalid for a malformed ``existing_ref``); Invalid too when it
        is the object of a volume of this backend the database still has - what a driver
        cannot know (an unmanaged volume's ``volume-<id>`` object is free to adopt) - or a
        migration's copy of a volume here (named after that volume)."""
        name = source_name(existing_ref)
        owner = name.removeprefix("volume-") if name.startswith("volume-") else None
        if owner:
            v = models.Volume
            with self.db.read() as session:  # the one name asked about, not every volume
                taken = session.execute(sa.select(v.id).where(
                    v.host == self.host, v.status != VolumeStatus.DELETED,
                    sa.or_(v.id == owner, sa.and_(v.status == VolumeStatus.RESERVED,
                                                  v.migration_status == f"target:{owner}")))
                    .limit(1)).scalar_one_or_none()
            if taken is not None:
                raise exception.Invalid("existing_ref", f"{name} is the object of volume "
                                        f"{owner} of {self.host}, managed already",
                                        existing_ref)
        return name

    def _managed_names(self) -> dict[str, str]:
        """Backend name -> id of every volume of this backend not deleted (a migration's
        reserved copy here is named after its volume)."""
        with self.db.read() as session:
            rows = session.execute(sa.select(
                models.Volume.id, models.Volume.status, models.Volume.migration_status).where(
                models.Volume.host == self.host,
                models.Volume.status != VolumeStatus.DELETED)).all()
        names = {}
        for volume_id, status, migration in rows:
            if status == VolumeStatus.RESERVED:
                volume_id = (migration or "").removeprefix("target:")
            names[objects.VOLUME_NAME_TEMPLATE % volume_id] = volume_id
        return names

    def _get_size(self, volume: objects.Volume, existing_ref: Any) -> int:
        step = "manage_existing_get_size"
        size = self._driver_call(step, self.driver.manage_existing_get_size, volume,
                                 dict(existing_ref))
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise exception.DriverContractError(
                f"{step} returned {size!r}, not a size in GiB (an int, rounded up)")
        return size

    def manage_existing_get_size(self, volume_id: str, pool: str,
                                 existing_ref: dict[str, Any]) -> int:
        """The size in GiB of the object ``existing_ref`` names, for the volume ``volume_id``
        would become in ``pool`` (asked by the API before it writes anything, so that quota
        counts the size). NotFound / Invalid from the driver reach the caller."""
        self._refuse_managed(existing_ref)
        return self._get_size(objects.Volume(id=volume_id, size=0, pool=pool), existing_ref)

    def manage_existing(self, volume_id: str, existing_ref: dict[str, Any]) -> None:
        """Adopt the object as volume ``volume_id`` (status ``managing``, its size the one the
        API counted): measured again (an object whose size changed is not adopted), then
        :meth:`VolumeDriver.manage_existing`; ``available`` with its capacity counted on its
        pool. On failure ``error_managing`` with a fault, and nothing else is called: the
        object is not the volume's (the driver left it under its old name)."""
        with self.db.read() as session:
            row = session.get(models.Volume, volume_id)
            if row is None or row.status != VolumeStatus.MANAGING:
                return  # deleted while queued, or already handled
        name = existing_ref.get(SOURCE_NAME) if isinstance(existing_ref, Mapping) else None
        # two manages of one object are serialised: the second finds it renamed
        with self._locked(volume_id, f"manage:{name}"), self._stats_gate.shared():
            row, volume = self._load(volume_id)
            if row.status != VolumeStatus.MANAGING:
                return
            self._notify("volume.manage_existing.start", volume_id)
            step = "manage_existing_get_size"
            try:
                self._refuse_managed(existing_ref)
                size = self._get_size(volume, existing_ref)
                if size != row.size:
                    raise exception.Conflict(
                        f"{name} is {size} GiB now, {row.size} GiB when its manage was asked "
                        "(counted in quota); not adopted", volume_id=volume_id)
                step = "manage_existing"
                update = self._driver_call(step, self.driver.manage_existing, volume,
                                           dict(existing_ref))
                values = self._model_update(update, step)
                step = "finish_manage"
                with self.db.transaction() as session:
                    claims.add_existing(session, volume_id, row.size)
                    session.execute(sa.update(models.Volume)
                                    .where(models.Volume.id == volume_id)
                                    .values(status=VolumeStatus.AVAILABLE, **values))
            except Exception as err:  # noqa: BLE001 - a database outage too: never left managing
                self._fail_manage(volume_id, step, err)
                self._notify("volume.manage_existing.error", volume_id, err, step)
                return
            LOG.info("volume %s: adopted %s on %s (%d GiB)", volume_id, name, self.host,
                     row.size)
            self._notify("volume.manage_existing.end", volume_id)

    def _fail_manage(self, volume_id: str, step: str, err: BaseException) -> None:
        """Fault and ``error_managing`` in one transaction. No driver call: the object was
        not adopted and is not the volume's to delete."""
        LOG.warning("volume %s: %s failed on %s: %s", volume_id, step, self.host, err)
        with self.db.transaction() as session:
            self._fault("volume", volume_id, step, err, session)
            claims.release(session, volume_id)
            session.execute(sa.update(models.Volume).where(models.Volume.id == volume_id)
                            .values(status=VolumeStatus.ERROR_MANAGING))

    def unmanage_volume(self, volume_id: str) -> None:
        """Give the volume up: its export removed, :meth:`VolumeDriver.unmanage` (the object
        and its data stay on the backend), then its claim given back and the volume
        ``deleted`` (quota given back) in one transaction. Only an ``available`` or ``error``
        volume without snapshots or attachments (InvalidState naming its status otherwise,
        checked again here under the volume's lock). A driver error is raised, recorded as a
        fault, and the volume stays managed with its status."""
        with self._locked(volume_id), self._stats_gate.shared():
            with self.db.transaction() as session:
                row = self._row(session, volume_id)
                if row.status not in (VolumeStatus.AVAILABLE, VolumeStatus.ERROR):
                    raise exception.InvalidState(
                        f"cannot unmanage volume {volume_id} while it is {row.status}",
                        state=row.status)
                self._refuse_if_busy(session, row)
                volume = self._volume(row, session)
            self._notify("volume.unmanage.start", volume_id)
            step = "remove_export"
            try:
                self._driver_call(step, self.driver.remove_export, volume)
                step = "unmanage"
                self._driver_call(step, self.driver.unmanage, volume)
            except Exception as err:
                self._fault("volume", volume_id, step, err)
                self._notify("volume.unmanage.error", volume_id, err, step)
                raise
            with self.db.transaction() as session:
                claims.release(session, volume_id)
                session.execute(sa.update(models.Volume).where(models.Volume.id == volume_id)
                                .values(status=VolumeStatus.DELETED,
                                        deleted_at=core_models.utcnow()))
            LOG.info("volume %s: unmanaged on %s; its object %s stays on the backend",
                     volume_id, self.host, volume.name)
            self._notify("volume.unmanage.end", volume_id)

    def list_manageable_volumes(self) -> list[dict[str, Any]]:
        """The driver's :meth:`VolumeDriver.list_manageable_volumes`, checked, with the
        objects of volumes the database has on this backend marked not safe."""
        step = "list_manageable_volumes"
        found = self._driver_call(step, self.driver.list_manageable_volumes)
        if not isinstance(found, list):
            raise exception.DriverContractError(f"{step} returned {type(found).__name__}, "
                                                "not a list")
        managed = self._managed_names()
        return [self._manageable(entry, managed) for entry in found]

    @staticmethod
    def _manageable(entry: Any, managed: Mapping[str, str]) -> dict[str, Any]:
        step = "list_manageable_volumes"
        if not isinstance(entry, Mapping) or not MANAGEABLE_KEYS <= set(entry) \
                or set(entry) - MANAGEABLE_KEYS - {"extra_info"}:
            raise exception.DriverContractError(
                f"{step} returned an entry {entry!r}; each has exactly "
                f"{', '.join(sorted(MANAGEABLE_KEYS))} (and optionally extra_info)")
        size, safe, reason = entry["size"], entry["safe_to_manage"], entry["reason_not_safe"]
        try:
            name = source_name(entry["reference"])
        except exception.Invalid as err:
            raise exception.DriverContractError(f"{step}: {err}") from None
        if isinstance(size, bool) or not isinstance(size, int) or size < 0 \
                or not isinstance(safe, bool) or not (reason is None or isinstance(reason, str)):
            raise exception.DriverContractError(
                f"{step} returned {entry!r}: size is GiB (int), safe_to_manage a bool, "
                "reason_not_safe a string or None")
        result = {"reference": {SOURCE_NAME: name}, "size": size, "safe_to_manage": safe,
                  "reason_not_safe": reason, "extra_info": dict(entry.get("extra_info") or {})}
        if name in managed:
            result.update(safe_to_manage=False,
                          reason_not_safe=f"already managed (volume {managed[name]})")
        return result

    # --- backups (stackcore.volume.backup.manager) ------------------------------------------

    # What the backup manager uses: the same per-volume lock, the same driver-call wrapping.
    # --- migration (1.3): see stackcore.volume.migration -----------------------------------

    def migrate_volume(self, volume_id: str, target_id: str) -> None:
        """Move the volume to the backend of its reserved row ``target_id`` (cast by
        ``cloud.volume.migrate``/``retype``; :meth:`VolumeMigrations.migrate_volume`)."""
        self.migrations.migrate_volume(volume_id, target_id)

    def provisioning(self) -> contextlib.AbstractContextManager[None]:
        """Held while a driver call changes this backend's provisioned space and the database
        catches up (a stats report waits for it; see :class:`_StatsGate`)."""
        return self._stats_gate.shared()

    def locked(self, *ids: str | None) -> contextlib.AbstractContextManager[None]:
        return self._locked(*ids)

    def driver_view(self, row: models.Volume, session: Any) -> objects.Volume:
        """The driver's view of a volume row read in ``session``."""
        return self._volume(row, session)

    def update(self, volume_id: str, **values: Any) -> None:
        self._update(volume_id, **values)

    def model_update(self, update: Any, step: str) -> dict[str, Any]:
        """A driver's model update, checked (DriverContractError unless its keys are)."""
        return self._model_update(update, step)

    def fault(self, resource: str, resource_id: str, step: str, err: BaseException,
              session: Any | None = None) -> None:
        self._fault(resource, resource_id, step, err, session)

    def notify(self, event_type: str, resource_id: str, err: BaseException | None = None,
               step: str = "") -> None:
        self._notify(event_type, resource_id, err, step)

    def scratch(self) -> str:
        return self._scratch()

    def volume_object(self, volume_id: str) -> objects.Volume:
        """The driver's view of volume ``volume_id`` (NotFound when deleted)."""
        return self._load(volume_id)[1]

    def driver_call(self, step: str, fn: Callable[..., T], *args: Any) -> T:
        return self._driver_call(step, fn, *args)

    def _backups(self) -> BackupManager:
        if self.backups is None:
            raise exception.ConfigError(f"volume service {self.host} has no [backup] "
                                        "backup_driver", section="backup",
                                        option="backup_driver")
        return self.backups

    def create_backup(self, backup_id: str) -> None:
        self._backups().create_backup(backup_id)

    def restore_backup(self, backup_id: str, volume_id: str) -> None:
        self._backups().restore_backup(backup_id, volume_id)

    def delete_backup(self, backup_id: str) -> None:
        self._backups().delete_backup(backup_id)

    # --- snapshots -------------------------------------------------------------------------

    def create_snapshot(self, snapshot_id: str) -> None:
        with self.db.read() as session:
            snap_row = session.get(models.Snapshot, snapshot_id)
            if snap_row is None or snap_row.status != SnapshotStatus.CREATING:
                return
            volume_id = snap_row.volume_id
        with self._locked(volume_id):
            _, snap = self._load_snapshot(snapshot_id)
            self._notify("snapshot.create.start", snapshot_id)
            try:
                update = self._driver_call("create_snapshot", self.driver.create_snapshot, snap)
                values = self._model_update(update, "create_snapshot")
                values.pop("provider_auth", None)
                self._update_snapshot(snapshot_id, status=SnapshotStatus.AVAILABLE, **values)
            except Exception as err:  # noqa: BLE001 - a database outage too: never left creating
                self._fail_snapshot(snapshot_id, "create_snapshot", err)
                self._notify("snapshot.create.error", snapshot_id, err, "create_snapshot")
                return
            self._notify("snapshot.create.end", snapshot_id)

    def _fail_snapshot(self, snapshot_id: str, step: str, err: BaseException) -> None:
        """Like :meth:`_fail_create`: clean the backend first, then publish ``error``."""
        LOG.warning("snapshot %s: %s failed on %s: %s", snapshot_id, step, self.host, err)
        cleanup_error: BaseException | None = None
        try:
            _, snap = self._load_snapshot(snapshot_id)
            self._driver_call("delete_snapshot", self.driver.delete_snapshot, snap)
        except Exception as cleanup_err:  # noqa: BLE001 - recorded below with the failure
            cleanup_error = exception.DriverError(
                f"cleanup after failure also failed: {cleanup_err}")
        with self.db.transaction() as session:
            if cleanup_error is not None:
                self._fault("snapshot", snapshot_id, "cleanup", cleanup_error, session)
            self._fault("snapshot", snapshot_id, step, err, session)
            session.execute(sa.update(models.Snapshot).where(models.Snapshot.id == snapshot_id)
                            .values(status=SnapshotStatus.ERROR))

    def delete_snapshot(self, snapshot_id: str) -> None:
        with self.db.read() as session:
            snap_row = session.get(models.Snapshot, snapshot_id)
            if snap_row is None or snap_row.status == SnapshotStatus.DELETED:
                return
            volume_id = snap_row.volume_id
        with self._locked(volume_id):
            self._delete_snapshot(snapshot_id)

    def _delete_snapshot(self, snapshot_id: str) -> None:
        _, snap = self._load_snapshot(snapshot_id)
        self._update_snapshot(snapshot_id, status=SnapshotStatus.DELETING)
        self._notify("snapshot.delete.start", snapshot_id)
        try:
            self._driver_call("delete_snapshot", self.driver.delete_snapshot, snap)
        except Exception as err:
            with self.db.transaction() as session:
                self._fault("snapshot", snapshot_id, "delete_snapshot", err, session)
                session.execute(sa.update(models.Snapshot)
                                .where(models.Snapshot.id == snapshot_id)
                                .values(status=SnapshotStatus.ERROR_DELETING))
            self._notify("snapshot.delete.error", snapshot_id, err, "delete_snapshot")
            raise
        self._update_snapshot(snapshot_id, status=SnapshotStatus.DELETED,
                              deleted_at=core_models.utcnow())
        self._notify("snapshot.delete.end", snapshot_id)

    # --- attach / detach -------------------------------------------------------------------

    def _active_attachments(self, volume_id: str, exclude: str | None = None) -> list[str]:
        with self.db.transaction() as session:
            ids = session.execute(sa.select(models.Attachment.id).where(
                models.Attachment.volume_id == volume_id,
                models.Attachment.attach_status == AttachStatus.ATTACHED,
            )).scalars().all()
        return [i for i in ids if i != exclude]

    def _mark_attachment(self, attachment_id: str, status: AttachStatus) -> None:
        with self.db.transaction() as session:
            values: dict[str, Any] = {"attach_status": status}
            if status in (AttachStatus.DETACHED, AttachStatus.ERROR):
                values["detached_at"] = core_models.utcnow()
            session.execute(sa.update(models.Attachment)
                            .where(models.Attachment.id == attachment_id).values(**values))

    @staticmethod
    def _only_attached_to(session: Any, volume_id: str, instance_uuid: str | None) -> bool:
        """Whether every live attachment of the volume is server ``instance_uuid``'s (and
        there is one)."""
        if instance_uuid is None:
            return False
        owners = set(session.execute(sa.select(models.Attachment.instance_uuid).where(
            models.Attachment.volume_id == volume_id,
            models.Attachment.attach_status.in_([AttachStatus.ATTACHING,
                                                 AttachStatus.ATTACHED]))).scalars())
        return owners == {instance_uuid}

    def attach_volume(
        self,
        volume_id: str,
        connector: dict[str, Any],
        instance_uuid: str | None = None,
        mountpoint: str | None = None,
    ) -> dict[str, Any]:
        """Export the volume and return its connection_info for ``connector`` (with
        ``attachment_id``). A failure removes the export (if no other attachment uses it),
        restores the volume's status, records a fault and raises."""
        with self._locked(volume_id):
            attachment_id = str(uuid.uuid4())
            with self.db.transaction() as session:
                row = self._row(session, volume_id)
                allowed = [VolumeStatus.AVAILABLE]
                if row.multiattach or self._only_attached_to(session, volume_id,
                                                             instance_uuid):
                    # a second attachment of the same server (Cinder's rule too): a resize
                    # or migration connects the volume to the new host before the old
                    # host's attachment ends, so the volume is never free in between
                    allowed.append(VolumeStatus.IN_USE)
                if row.status not in allowed:
                    raise exception.InvalidState(
                        f"cannot attach volume {volume_id} while it is {row.status}"
                        + ("" if row.multiattach else " (not a multiattach volume)"),
                        state=row.status)
                previous = row.status
                row.status = VolumeStatus.ATTACHING
                session.add(models.Attachment(
                    id=attachment_id, volume_id=volume_id, instance_uuid=instance_uuid,
                    mountpoint=mountpoint, connector=dict(connector),
                    attach_status=AttachStatus.ATTACHING))
                volume = self._volume(row, session)
            self._notify("volume.attach.start", volume_id, attachments=[attachment_id])
            step = "create_export"
            try:
                update = self._model_update(
                    self._driver_call(step, self.driver.create_export, volume, connector), step)
                if update:
                    self._update(volume_id, **update)
                    _, volume = self._load(volume_id)
                step = "initialize_connection"
                info = connection_info.validate(
                    self._driver_call(step, self.driver.initialize_connection, volume,
                                      connector),
                    f"volume driver {self.driver_name!r} on {self.host}",
                )
            except Exception as err:
                self._mark_attachment(attachment_id, AttachStatus.ERROR)
                self._fault("volume", volume_id, step, err)
                if not self._active_attachments(volume_id):
                    try:
                        self._driver_call("remove_export", self.driver.remove_export, volume)
                    except Exception as cleanup_err:  # noqa: BLE001
                        self._fault("volume", volume_id, "cleanup", exception.DriverError(
                            f"removing the export after a failed attach failed: "
                            f"{cleanup_err}"))
                self._update(volume_id, status=previous)
                self._notify("volume.attach.error", volume_id, err, step, [attachment_id])
                raise
            self._mark_attachment(attachment_id, AttachStatus.ATTACHED)
            self._update(volume_id, status=VolumeStatus.IN_USE)
            self._notify("volume.attach.end", volume_id, attachments=[attachment_id])
        data = {**info["data"], "access_mode": "rw"}
        # multiattach: the hypervisor must let several guests have the disk (libvirt's
        # <shareable/>), as Nova reads it from the volume
        return {**info, "data": data, "attachment_id": attachment_id,
                "multiattach": bool(volume.multiattach)}

    def detach_volume(self, volume_id: str, attachment_id: str | None = None) -> None:
        """End one attachment, or every one (``attachment_id=None``: force detach, the driver
        gets ``connector=None``; refused with Conflict while a server holds one). The host's
        connection (``terminate_connection``) ends when no other attachment of the volume
        comes from that host (a multiattach volume on two servers of one host); the export
        is removed once nothing uses it."""
        with self._locked(volume_id):
            with self.db.transaction() as session:
                row = self._row(session, volume_id)
                query = sa.select(models.Attachment).where(
                    models.Attachment.volume_id == volume_id,
                    models.Attachment.attach_status == AttachStatus.ATTACHED)
                if attachment_id is not None:
                    query = query.where(models.Attachment.id == attachment_id)
                atts = session.execute(query).scalars().all()
                if attachment_id is not None and not atts:
                    raise exception.NotFound("attachment", attachment_id)
                held = [a for a in atts if a.instance_uuid is not None]
                if attachment_id is None and held:
                    # Checked here too, under the volume's lock: a server may have attached
                    # since the API looked (see VolumeAPI.detach).
                    raise exception.Conflict(
                        f"volume {volume_id} is attached to server {held[0].instance_uuid}: "
                        "a force detach would leave the server using it; detach it through "
                        "the server", volume_id=volume_id, server_id=held[0].instance_uuid,
                        attachment_id=held[0].id)
                previous = row.status
                row.status = VolumeStatus.DETACHING
                for att in atts:
                    att.attach_status = AttachStatus.DETACHING
                volume = self._volume(row, session)
                ended = [att.id for att in atts]
                connector = atts[0].connector if attachment_id is not None else None
                # Cinder's rule for a multiattach volume: the host's connection serves every
                # attachment from that host, so it ends with the last of them, not the first.
                host = (connector or {}).get("host")
                shared = attachment_id is not None and host is not None and any(
                    (other.connector or {}).get("host") == host
                    for other in session.execute(sa.select(models.Attachment).where(
                        models.Attachment.volume_id == volume_id,
                        models.Attachment.id != attachment_id,
                        models.Attachment.attach_status.in_(
                            [AttachStatus.ATTACHING, AttachStatus.ATTACHED]))).scalars())
            self._notify("volume.detach.start", volume_id, attachments=ended)
            try:
                if shared:
                    LOG.info("volume %s: attachment %s ended; host %s keeps its connection for "
                             "its other attachment(s)", volume_id, attachment_id, host)
                else:
                    self._driver_call("terminate_connection",
                                      self.driver.terminate_connection, volume, connector)
            except Exception as err:
                self._fault("volume", volume_id, "terminate_connection", err)
                for att in atts:
                    self._mark_attachment(att.id, AttachStatus.ATTACHED)
                self._update(volume_id, status=previous)
                self._notify("volume.detach.error", volume_id, err, "terminate_connection",
                             ended)
                raise
            for att in atts:
                self._mark_attachment(att.id, AttachStatus.DETACHED)
            if self._active_attachments(volume_id):
                self._update(volume_id, status=VolumeStatus.IN_USE)
                self._notify("volume.detach.end", volume_id, attachments=ended)
                return
            try:
                self._driver_call("remove_export", self.driver.remove_export, volume)
            except Exception as err:  # noqa: BLE001
                self._fault("volume", volume_id, "remove_export", err)
            self._update(volume_id, status=VolumeStatus.AVAILABLE)
            self._notify("volume.detach.end", volume_id, attachments=ended)

    # --- images ----------------------------------------------------------------------------

    def _images(self) -> ImageAPI:
        """``cloud.image`` acting for the framework (the image belongs to whoever asked for
        the upload, who created it; the manager only fills or removes it)."""
        from stackcore.project.context import admin_context

        if self.image_api is None:
            raise exception.ConfigError(f"volume service {self.host} has no image API "
                                        "(cloud.image): volumes are uploaded there")
        return self.image_api.bind(admin_context())

    def _scratch(self) -> str:
        """Where the driver writes an upload's temporary file: ``[volume] image_dir``, else
        ``<state_path>/images`` (a local file system with room for the volume)."""
        directory = self.conf.volume.image_dir or os.path.join(self.conf.state_path, "images")
        os.makedirs(directory, exist_ok=True)
        return str(directory)

    def copy_volume_to_image(self, volume_id: str, image_id: str | None = None,
                             store: str | None = None, image_name: str | None = None,
                             disk_format: str | None = None) -> dict[str, Any]:
        """Upload the volume into image ``image_id`` (created ``queued`` by the API, in the
        caller's project): the driver writes it to a temporary local file in the image's
        disk format (:meth:`VolumeDriver.copy_volume_to_image`, unchanged), which is streamed
        into ``store`` (default: ``[image] default_store``) through ``cloud.image.upload`` -
        size and sha256 computed on the way, the format inspected, the image ``active``.

        On any failure the image is deleted (never left active), the volume gets a fault and
        its previous status back, and the temporary file is removed; the error is raised.
        Returns ``{id, name, disk_format, size_bytes, sha256, store, status, path}``;
        ``path`` is the image's local file for a store on this host's file system (``file``),
        else None.

        Deprecated 1.0 form (an API of the previous release): ``image_name`` and
        ``disk_format`` instead of ``image_id``; the image is created here in the volume's
        project, then filled the same way."""
        if image_id is None:
            image_id = self._legacy_upload_image(volume_id, image_name, disk_format)
        with self._locked(volume_id):
            with self.db.transaction() as session:
                row = self._row(session, volume_id)
                if row.status not in (VolumeStatus.AVAILABLE, VolumeStatus.IN_USE):
                    with contextlib.suppress(exception.StackcoreError):
                        if image_name is not None:  # the 1.0 form's own image
                            self._images().delete(image_id)
                    raise exception.InvalidState(
                        f"cannot upload volume {volume_id} while it is {row.status}",
                        state=row.status)
                previous = row.status
                row.status = VolumeStatus.UPLOADING
                volume = self._volume(row, session)
            step = "copy_volume_to_image"
            try:
                images = self._images()
                image = images.get(image_id)
                # the volume's progress: the driver's copy into a local file (which reports
                # no bytes), then the bytes of that file's upload into the store
                with copy_progress.Reporter(self.db, "volume", volume_id, step) as reporter, \
                        tempfile.TemporaryDirectory(prefix=f"upload-{volume_id}-",
                                                    dir=self._scratch()) as tmp:
                    path = os.path.join(tmp, f"{image_id}.{image.disk_format}")
                    self._driver_call(step, self.driver.copy_volume_to_image, volume,
                                      objects.ImageFile(image_id, path, image.disk_format))
                    step = "upload"
                    size = os.path.getsize(path)
                    reporter.phase(step, size)
                    with open(path, "rb") as data:
                        image = images.upload(image_id, _Advancing(data, reporter.advance),
                                              size=size, store=store)
                step = "finish_upload"
                with self.db.read() as session:
                    local = session.get(image_models.Image, image_id)
                    local_path = local.path if local is not None and local.path else None
                self._update(volume_id, status=previous)
            except Exception as err:
                self._upload_failed(volume_id, image_id, step, err, previous)
                raise
        return {"id": image.id, "name": image.name, "disk_format": image.disk_format,
                "size_bytes": image.size_bytes, "sha256": image.sha256, "store": image.store,
                "status": image.status, "path": local_path}

    def _legacy_upload_image(self, volume_id: str, image_name: str | None,
                             disk_format: str | None) -> str:
        """The image a 1.0 caller's upload goes into, created in the volume's project."""
        import warnings

        from stackcore.project.context import ADMIN_ROLE, RequestContext

        if image_name is None or disk_format is None:
            raise exception.Invalid("image_id", "is required (or, deprecated, image_name and "
                                    "disk_format)", None)
        warnings.warn("copy_volume_to_image(image_name, disk_format) is the volume RPC API "
                      "1.0 form, deprecated: callers create the image and pass image_id",
                      DeprecationWarning, stacklevel=3)
        with self.db.read() as session:
            row = self._row(session, volume_id)
            owner = RequestContext(user_id=row.user_id, project_id=row.project_id,
                                   roles=[ADMIN_ROLE])
        if self.image_api is None:
            self._images()  # raises the ConfigError
        assert self.image_api is not None
        image = self.image_api.bind(owner).create(
            image_name, disk_format=disk_format, properties={"source_volume_id": volume_id})
        return image.id

    def _discard_unfinished_uploads(self, volume_id: str) -> None:
        """Delete the images an interrupted upload of the volume left unfinished (``queued``,
        or ``killed`` by the image family's reaper): they never became active and nobody
        will fill them. A failure is logged; the next reconciliation tries again."""
        if self.image_api is None:
            return
        with self.db.read() as session:
            rows = session.execute(sa.select(image_models.Image.id,
                                             image_models.Image.properties).where(
                image_models.Image.status.in_(("queued", "killed")))).all()
        for image_id, properties in rows:
            if (properties or {}).get("source_volume_id") != volume_id:
                continue
            try:
                self._images().delete(image_id)
            except exception.NotFound:
                pass
            except exception.StackcoreError as err:
                LOG.warning("volume %s: removing image %s of its interrupted upload failed: "
                            "%s", volume_id, image_id, err)

    def _upload_failed(self, volume_id: str, image_id: str, step: str, err: BaseException,
                       previous: str) -> None:
        """Delete the image the upload was filling (a failure to do so is a second fault:
        the image then stays queued, never active), record the fault, give the volume its
        status back."""
        LOG.warning("volume %s: upload into image %s failed at %s on %s: %s", volume_id,
                    image_id, step, self.host, err)
        cleanup_error: BaseException | None = None
        try:
            self._images().delete(image_id)
        except exception.NotFound:
            pass
        except Exception as cleanup_err:  # noqa: BLE001 - recorded below with the failure
            cleanup_error = exception.DriverError(
                f"deleting image {image_id} after the failed upload also failed: "
                f"{cleanup_err}")
        with self.db.transaction() as session:
            if cleanup_error is not None:
                self._fault("volume", volume_id, "cleanup", cleanup_error, session)
            self._fault("volume", volume_id, step, err, session)
            session.execute(sa.update(models.Volume).where(models.Volume.id == volume_id)
                            .values(status=previous))
