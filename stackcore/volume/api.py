"""The volume API callers use: ``cloud.volume``.

Validates every argument before anything is written, records intent in the database, places
new volumes on a backend pool (volume type -> ``volume_backend_name``, availability zone,
capacity by the one formula of :mod:`stackcore.volume.placement.capacity`, claimed atomically) and
hands
the work to that backend's volume manager over RPC. Returns plain frozen dataclasses.

Seam for the compute side: :meth:`VolumeAPI.attach` takes an os-brick host connector and
returns Cinder-style ``connection_info`` (plus ``attachment_id``); :meth:`VolumeAPI.detach`
ends it. Server attach calls these.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
import struct
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from oslo_config import cfg

from stackcore import exception, faults, schemas, service, validate, wait
from stackcore import progress as copy_progress
from stackcore import schemas as s
from stackcore.db import api as db_api
from stackcore.db import models as core_models
from stackcore.db import paging
from stackcore.faults import Fault
from stackcore.image import models as image_models
from stackcore.project import policy
from stackcore.project.scope import ScopedAPI
from stackcore.volume import models
from stackcore.volume import schemas as vs
from stackcore.volume.backup.api import BackupAPI, VolumeBackup
from stackcore.volume.objects import GiB
from stackcore.volume.placement import claims
from stackcore.volume.placement.pools import pool_rows
from stackcore.volume.placement.request import VolumeRequest
from stackcore.volume.placement.scheduler import VolumeScheduler
from stackcore.volume.rpcapi import VolumeRPCAPI
from stackcore.volume.states import AttachStatus, SnapshotStatus, VolumeStatus

if TYPE_CHECKING:
    from stackcore.image.api import ImageAPI

MAX_SIZE_GB = 64 * 1024
IMAGE_FORMATS = ("raw", "qcow2")
_QCOW2_MAGIC = b"QFI\xfb"
_FINAL = ("available", "in-use", "error", "error_deleting", "error_extending",
          "error_managing", "deleted")
#: the statuses during which a volume may run a copy that reports its progress
_COPYING = ("creating", "downloading", "uploading")


@dataclasses.dataclass(frozen=True)
class VolumeType:
    id: str
    name: str
    description: str | None
    extra_specs: Mapping[str, str]


@dataclasses.dataclass(frozen=True)
class Attachment:
    id: str
    volume_id: str
    instance_uuid: str | None
    mountpoint: str | None
    attach_status: str
    host: str | None  # the connector's host


@dataclasses.dataclass(frozen=True)
class Volume:
    id: str
    name: str | None
    size: int
    status: str
    volume_type: str | None
    availability_zone: str | None
    host: str | None  # "<host>@<backend>#<pool>"
    multiattach: bool
    metadata: Mapping[str, str]
    snapshot_id: str | None
    source_volid: str | None
    image_id: str | None
    attachments: tuple[Attachment, ...]
    created_at: datetime.datetime
    fault: Fault | None
    #: the copy running now (an image fetched and written into the volume): step, bytes done
    #: and total (:mod:`stackcore.progress`); None when no copy runs
    progress: copy_progress.Progress | None = None
    #: the last migration's outcome (``migrating``, ``success``, ``error``; Cinder's field)
    migration_status: str | None = None


@dataclasses.dataclass(frozen=True)
class Snapshot:
    id: str
    volume_id: str
    name: str | None
    size: int
    status: str
    metadata: Mapping[str, str]
    created_at: datetime.datetime
    fault: Fault | None


@dataclasses.dataclass(frozen=True)
class Pool:
    """One backend pool as placement sees it."""

    name: str  # "<host>@<backend>#<pool>"
    backend: str
    volume_backend_name: str | None
    availability_zone: str
    up: bool
    reporting: bool
    stats: Mapping[str, Any]
    allocated_capacity_gb: int


def qcow2_virtual_size(path: str) -> int | None:
    """The virtual size in bytes of a qcow2 file (header offset 24), None if not qcow2."""
    with open(path, "rb") as handle:
        header = handle.read(32)
    if len(header) < 32 or header[:4] != _QCOW2_MAGIC:
        return None
    return int(struct.unpack(">Q", header[24:32])[0])


def volumes_cloned_from_image(session: Any, image_id: str) -> int:
    """How many volumes (not deleted) depend on image ``image_id``'s stored bytes: made as
    copy-on-write clones of it, or being made from it (a clone may be under way). The image
    must stay while any does (``cloud.image`` asks before a delete, see the volume family);
    a volume the image was *copied* into does not count."""
    return int(session.execute(sa.select(sa.func.count()).where(
        models.Volume.image_id == image_id,
        sa.or_(models.Volume.image_clone.is_(True),
               models.Volume.status.in_([VolumeStatus.CREATING, VolumeStatus.DOWNLOADING])),
        models.Volume.status != VolumeStatus.DELETED)).scalar_one())


__all__ = ["VolumeBackup"]  # re-exported: cloud.volume's backup view


class VolumeAPI(BackupAPI, ScopedAPI):
    """Volume types, volumes, snapshots, attachments, image copies, backend pools and
    backups (:class:`~stackcore.volume.backup.api.BackupAPI`)."""

    #: ``image`` (``cloud.image``) creates the images of :meth:`upload_to_image` for the
    #: caller, so it acts for the same context
    BOUND_APIS = ("image",)

    def __init__(self, conf: cfg.ConfigOpts, db: db_api.Database, transport: Any,
                 image: ImageAPI | None = None) -> None:
        self.conf = conf
        self.db = db
        self.image = image
        self.rpc = VolumeRPCAPI(transport)
        self.scheduler = VolumeScheduler(conf, db)

    # --- volume types ----------------------------------------------------------------------

    @schemas.accepts(name=s.NAME, extra_specs=s.optional(vs.TYPE_EXTRA_SPECS),
                     description=s.optional(s.DESCRIPTION), is_public=s.BOOLEAN)
    @policy.authorize("volume:type:create")
    def create_type(self, name: str, extra_specs: Mapping[str, str] | None = None,
                    description: str | None = None, is_public: bool = True) -> VolumeType:
        """A volume type. ``volume_backend_name`` in ``extra_specs`` pins volumes of the type
        to backends reporting that name; ``provisioning:type`` = ``thin``/``thick``;
        ``multiattach`` = ``<is> True``. A private type (``is_public=False``) is usable only
        by the projects it is shared with (:meth:`add_type_access`) and admins."""
        validate.name("name", name)
        specs = validate.string_map("extra_specs", extra_specs)
        if "provisioning:type" in specs:
            validate.choice("extra_specs['provisioning:type']", specs["provisioning:type"],
                            ("thin", "thick"))
        if description is not None:
            validate.name("description", description, 1024)
        row = models.VolumeType(id=str(uuid.uuid4()), name=name, description=description,
                                is_public=is_public,
                                extra_specs=specs)
        try:
            with self.db.transaction() as session:
                session.add(row)
        except sa.exc.IntegrityError:
            raise exception.Conflict(f"a volume type named {name!r} already exists") from None
        return self._type_view(row)

    @staticmethod
    def _type_view(row: models.VolumeType) -> VolumeType:
        return VolumeType(row.id, row.name, row.description, dict(row.extra_specs))

    def _usable_types(self, query: Any) -> Any:
        """Public types and private ones shared with the caller's project (admins: all)."""
        if self._sees_all():
            return query
        vtype = models.VolumeType
        shared = sa.select(models.VolumeTypeProject.volume_type_id).where(
            models.VolumeTypeProject.project_id == self.project_id)
        return query.where(sa.or_(vtype.is_public.is_(True), vtype.id.in_(shared)))

    def _type_row(self, session: Any, name_or_id: str) -> models.VolumeType:
        row = session.execute(self._usable_types(sa.select(models.VolumeType).where(sa.or_(
            models.VolumeType.id == name_or_id, models.VolumeType.name == name_or_id)))
        ).scalar_one_or_none()
        if row is None:
            raise exception.NotFound("volume type", name_or_id)
        return row  # type: ignore[no-any-return]

    @schemas.accepts(name_or_id=vs.TYPE_NAME_OR_ID)
    @policy.authorize("volume:type:get")
    def get_type(self, name_or_id: str) -> VolumeType:
        with self.db.transaction() as session:
            return self._type_view(self._type_row(session, name_or_id))

    @schemas.accepts(**paging.schema(vs.NAME_SORT_KEYS))
    @policy.authorize("volume:type:list")
    def list_types(self, *, limit: int | None = None, marker: str | None = None,
                   sort_key: str = "name", sort_dir: str = "asc") -> list[VolumeType]:
        """Volume types, ``limit`` at a time after the type ``marker``."""
        vtype = models.VolumeType
        with self.db.transaction() as session:
            query = paging.page(session, self._usable_types(sa.select(vtype)), vtype.id,
                                {"name": vtype.name, "id": vtype.id}, limit=limit, marker=marker,
                                sort_key=sort_key, sort_dir=sort_dir, resource="volume type")
            return [self._type_view(r) for r in session.execute(query).scalars()]

    @schemas.accepts(volume_type=vs.TYPE_NAME_OR_ID, project_id=s.string(255))
    @policy.authorize("volume:type:access")
    def add_type_access(self, volume_type: str, project_id: str) -> None:
        """Share a private volume type with a project (again: no change)."""
        with self.db.transaction() as session:
            row = self._type_row(session, volume_type)
            if session.get(models.VolumeTypeProject, (row.id, project_id)) is None:
                session.add(models.VolumeTypeProject(volume_type_id=row.id,
                                                     project_id=project_id))

    @schemas.accepts(volume_type=vs.TYPE_NAME_OR_ID, project_id=s.string(255))
    @policy.authorize("volume:type:access")
    def remove_type_access(self, volume_type: str, project_id: str) -> None:
        """Stop sharing a private volume type with a project (its volumes stay)."""
        with self.db.transaction() as session:
            row = self._type_row(session, volume_type)
            session.execute(sa.delete(models.VolumeTypeProject).where(
                models.VolumeTypeProject.volume_type_id == row.id,
                models.VolumeTypeProject.project_id == project_id))

    @schemas.accepts(name_or_id=vs.TYPE_NAME_OR_ID)
    @policy.authorize("volume:type:delete")
    def delete_type(self, name_or_id: str) -> None:
        with self.db.transaction() as session:
            row = self._type_row(session, name_or_id)
            used = session.execute(sa.select(sa.func.count()).where(
                models.Volume.volume_type_id == row.id,
                models.Volume.status != VolumeStatus.DELETED)).scalar_one()
            if used:
                raise exception.Conflict(f"volume type {row.name!r} is used by {used} volume(s)")
            session.delete(row)

    # --- placement -------------------------------------------------------------------------

    @schemas.accepts()
    @policy.authorize("volume:pool:list")
    def list_pools(self) -> list[Pool]:
        """Every pool of every volume backend, with its latest stats and allocation."""
        down_time = self.conf.service_down_time
        now = core_models.utcnow()
        with self.db.transaction() as session:
            rows = pool_rows(session)
        return [
            Pool(
                name=f"{pool.host}#{pool.pool_name}",
                backend=pool.host,
                volume_backend_name=backend.volume_backend_name,
                availability_zone=svc.availability_zone,
                up=service.is_up(svc.last_seen_at, down_time, now) and not svc.disabled,
                reporting=backend.reporting,
                stats={**pool.stats, "allocated_capacity_gb": pool.allocated_capacity_gb},
                allocated_capacity_gb=pool.allocated_capacity_gb,
            )
            for pool, backend, svc in rows
        ]

    @schemas.accepts(size=vs.SIZE, volume_type=s.optional(vs.TYPE_NAME_OR_ID),
                     availability_zone=s.optional(s.ZONE), limit=s.optional(s.integer(1, 1000)))
    @policy.authorize("volume:explain_placement")
    def explain_placement(self, size: int, volume_type: str | None = None,
                          availability_zone: str | None = None,
                          limit: int | None = 20) -> dict[str, Any]:
        """What the scheduler would do with a volume of ``size`` GiB: each filter's
        rejections in words and the weighed ranking of the pools. Places nothing."""
        validate.integer("size", size, 1, MAX_SIZE_GB)
        type_name = volume_type or self.conf.volume.default_volume_type
        specs: dict[str, str] = {}
        if type_name:
            with self.db.transaction() as session:
                specs = dict(self._type_row(session, type_name).extra_specs)
        return self.scheduler.explain({"size": size, "extra_specs": specs,
                                       "availability_zone": availability_zone}, limit)

    # --- volumes ---------------------------------------------------------------------------

    @schemas.accepts(size=vs.SIZE, name=s.OPTIONAL_NAME, volume_type=s.optional(vs.TYPE_NAME_OR_ID),
                     availability_zone=s.optional(s.ZONE), metadata=s.optional(s.STRING_MAP),
                     snapshot_id=s.OPTIONAL_UUID, source_volume_id=s.OPTIONAL_UUID,
                     image_id=s.optional(s.string(255)), wait=s.BOOLEAN, timeout=s.TIMEOUT)
    @policy.authorize("volume:create")
    def create(
        self,
        size: int,
        name: str | None = None,
        volume_type: str | None = None,
        availability_zone: str | None = None,
        metadata: Mapping[str, str] | None = None,
        snapshot_id: str | None = None,
        source_volume_id: str | None = None,
        image_id: str | None = None,
        wait: bool = True,
        timeout: float | None = None,
    ) -> Volume:
        """Create a volume of ``size`` GiB: empty, or from a snapshot / a source volume / an
        image of the compute image store (at most one source). A larger size than the source
        is honoured. Returns once ``available`` or ``error`` (``wait``), else while
        ``creating``. Placement failures raise NoValidHost and leave nothing behind."""
        validate.integer("size", size, 1, MAX_SIZE_GB)
        if name is not None:
            validate.name("name", name)
        meta = validate.string_map("metadata", metadata)
        if availability_zone is not None:
            validate.name("availability_zone", availability_zone)
        sources = [s for s in (snapshot_id, source_volume_id, image_id) if s is not None]
        if len(sources) > 1:
            raise exception.Invalid("snapshot_id", "give at most one of snapshot_id, "
                                    "source_volume_id and image_id")
        type_name = volume_type or self.conf.volume.default_volume_type
        volume_id = str(uuid.uuid4())
        with self.db.transaction() as session:
            vtype = self._type_row(session, type_name) if type_name else None
            specs = dict(vtype.extra_specs) if vtype else {}
            placed_with: str | None = None  # the volume whose pool a copy must share
            if snapshot_id is not None:
                validate.uuid_like("snapshot_id", snapshot_id)
                snap = session.get(models.Snapshot, snapshot_id)
                if snap is None or snap.status == SnapshotStatus.DELETED or \
                        not self._visible(snap.project_id):
                    raise exception.NotFound("snapshot", snapshot_id)
                if snap.status != SnapshotStatus.AVAILABLE:
                    raise exception.InvalidState(
                        f"snapshot {snapshot_id} is {snap.status}, not available",
                        state=snap.status)
                if size < snap.volume_size:
                    raise exception.Invalid("size", f"{size} GiB is smaller than the snapshot "
                                            f"({snap.volume_size} GiB)", size)
                placed_with = snap.volume_id
            if source_volume_id is not None:
                validate.uuid_like("source_volume_id", source_volume_id)
                src = session.get(models.Volume, source_volume_id)
                if src is None or src.status == VolumeStatus.DELETED or \
                        not self._visible(src.project_id):
                    raise exception.NotFound("volume", source_volume_id)
                if src.status not in (VolumeStatus.AVAILABLE, VolumeStatus.IN_USE):
                    raise exception.InvalidState(
                        f"source volume {source_volume_id} is {src.status}", state=src.status)
                if size < src.size:
                    raise exception.Invalid("size", f"{size} GiB is smaller than the source "
                                            f"volume ({src.size} GiB)", size)
                placed_with = src.id
            if image_id is not None:
                self._check_image(session, image_id, size)
            deltas = {"volumes": 1, "gigabytes": size}
            if vtype is not None:
                deltas[f"gigabytes_{vtype.name}"] = size
            self.quotas.check(session, self.project_id, deltas)
            session.add(models.Volume(
                project_id=self.project_id, user_id=self.user_id,
                id=volume_id, display_name=name, size=size, status=VolumeStatus.CREATING,
                volume_type_id=vtype.id if vtype else None,
                availability_zone=availability_zone, metadata_=meta,
                multiattach=specs.get("multiattach", "").lower() == "<is> true",
                snapshot_id=snapshot_id, source_volid=source_volume_id, image_id=image_id,
            ))
        request = VolumeRequest(size, dict(specs), availability_zone)
        try:
            if placed_with is not None:
                with self.db.transaction() as session:
                    row = session.get(models.Volume, placed_with)
                    if row is None or row.host is None or row.pool is None:
                        raise exception.InvalidState(f"the source {placed_with} is on no backend")
                    host, pool = row.host, row.pool
                    if not claims.claim(session, host, pool, volume_id, size, request.thin):
                        raise exception.NoValidHost(
                            f"the backend of the source ({host}#{pool}) has no room",
                            reasons=[f"CapacityFilter rejected {host}#{pool}: needs {size} GiB"])
                    session.execute(sa.update(models.Volume)
                                    .where(models.Volume.id == volume_id)
                                    .values(availability_zone=row.availability_zone))
            else:
                host = self.scheduler.place(volume_id, request)
        except exception.StackcoreError:
            with self.db.transaction() as session:
                session.execute(sa.delete(models.Volume).where(models.Volume.id == volume_id))
            raise
        try:
            self.rpc.create_volume(host, volume_id)
        except exception.StackcoreError as err:  # never reached the volume service
            self._dispatch_failed("volume", volume_id, "create_volume", err)
            raise
        if not wait:
            return self.get(volume_id)
        return self.wait(volume_id, ("available", "error"), timeout)

    def _check_image(self, session: Any, image_id: str, size: int) -> None:
        """NotFound/Invalid/InvalidState unless the image can be copied into a volume of
        ``size`` GiB: visible, raw or qcow2, its bytes there, its virtual size within."""
        image = session.get(image_models.Image, image_id)
        if image is None or not (self._visible(image.project_id) or
                                 image.visibility == "public"):
            raise exception.NotFound("image", image_id)
        if image.disk_format not in IMAGE_FORMATS:
            raise exception.Invalid("image_id", f"image format {image.disk_format!r} "
                                    f"cannot be copied to a volume (raw, qcow2)")
        if image.store is not None:  # uploaded: read from its store by the backend
            if image.status != "active":
                raise exception.InvalidState(
                    f"image {image.id} is {image.status}, not active; it cannot be "
                    "copied", state=image.status)
            virtual = image.virtual_size or image.size_bytes
        elif not os.path.isfile(image.path):
            raise exception.InvalidState(
                f"image {image.id}'s file {image.path} is gone; the image cannot be "
                "copied", state="missing")
        else:
            virtual = qcow2_virtual_size(image.path) or image.size_bytes
        if virtual > size * GiB:
            raise exception.Invalid("size", f"{size} GiB is smaller than the image's "
                                    f"virtual size ({virtual} bytes)", size)

    @schemas.accepts(volume_id=s.UUID, statuses=s.array(s.enum(*vs.VOLUME_STATUSES), 16),
                     timeout=s.TIMEOUT)
    @policy.authorize("volume:get")
    def wait(self, volume_id: str, statuses: tuple[str, ...] = _FINAL,
             timeout: float | None = None) -> Volume:
        """Wait until the volume reaches one of ``statuses``."""
        return wait.until(
            self.db, lambda: self.get(volume_id, include_deleted=True),
            lambda v: v.status in statuses, timeout or self.conf.volume.operation_timeout,
            lambda v: f"volume {volume_id} still {v.status}",
        )

    def _fault(self, session: Any, resource_id: str) -> Fault | None:
        row = session.execute(
            sa.select(models.VolumeFault).where(models.VolumeFault.resource_id == resource_id)
            .order_by(models.VolumeFault.id.desc()).limit(1)
        ).scalar_one_or_none()
        if row is None:
            return None
        return faults.view(row)

    @schemas.accepts(resource_id=s.UUID)
    @policy.authorize("volume:faults")
    def faults(self, resource_id: str) -> list[Fault]:
        """Every fault recorded for a volume or snapshot, oldest first."""
        with self.db.transaction() as session:
            owner = session.execute(sa.select(models.Volume.project_id).where(
                models.Volume.id == resource_id).union_all(sa.select(
                    models.Snapshot.project_id).where(models.Snapshot.id == resource_id))
            ).scalars().first()
            if owner is None or not self._visible(owner):
                raise exception.NotFound("volume or snapshot", resource_id)
            rows = session.execute(
                sa.select(models.VolumeFault).where(models.VolumeFault.resource_id ==
                                                    resource_id)
                .order_by(models.VolumeFault.id)).scalars().all()
            return [faults.view(r) for r in rows]

    def _view(self, session: Any, row: models.Volume) -> Volume:
        vtype = session.get(models.VolumeType, row.volume_type_id) if row.volume_type_id else None
        atts = session.execute(sa.select(models.Attachment).where(
            models.Attachment.volume_id == row.id,
            models.Attachment.attach_status == AttachStatus.ATTACHED)
            .order_by(models.Attachment.created_at)).scalars().all()
        return Volume(
            id=row.id, name=row.display_name, size=row.size, status=row.status,
            volume_type=vtype.name if vtype else None,
            availability_zone=row.availability_zone,
            host=f"{row.host}#{row.pool}" if row.host else None,
            multiattach=row.multiattach, metadata=dict(row.metadata_),
            snapshot_id=row.snapshot_id, source_volid=row.source_volid, image_id=row.image_id,
            attachments=tuple(
                Attachment(a.id, a.volume_id, a.instance_uuid, a.mountpoint, a.attach_status,
                           a.connector.get("host")) for a in atts),
            created_at=row.created_at,
            fault=self._fault(session, row.id) if row.status.startswith("error") else None,
            progress=copy_progress.read(session, "volume", [row.id]).get(row.id)
            if row.status in _COPYING else None,
            migration_status=row.migration_status,
        )

    @schemas.accepts(volume_id=s.UUID, include_deleted=s.BOOLEAN)
    @policy.authorize("volume:get")
    def get(self, volume_id: str, include_deleted: bool = False) -> Volume:
        validate.uuid_like("volume_id", volume_id)
        with self.db.transaction() as session:
            row = session.get(models.Volume, volume_id)
            if row is None or (row.status == VolumeStatus.DELETED and not include_deleted) or \
                    row.status == VolumeStatus.RESERVED or not self._visible(row.project_id):
                raise exception.NotFound("volume", volume_id)
            return self._view(session, row)

    @schemas.accepts(status=s.optional(s.enum(*vs.VOLUME_STATUSES)), host=s.optional(s.HOST),
                     include_deleted=s.BOOLEAN, all_projects=s.BOOLEAN,
                     **paging.schema(vs.SORT_KEYS))
    @policy.authorize("volume:list")
    def list_volumes(self, *, status: str | None = None, host: str | None = None,
                     include_deleted: bool = False, all_projects: bool = False,
                     limit: int | None = None, marker: str | None = None,
                     sort_key: str = "created_at", sort_dir: str = "asc") -> list[Volume]:
        """The caller's project's volumes (every project's: ``all_projects``, an admin rule)
        matching the filters, ``limit`` at a time after the volume ``marker``."""
        query = self._scope_list(sa.select(models.Volume), models.Volume.project_id,
                                all_projects, "volume:list")
        # a migration's second copy (RESERVED) is never listed
        query = query.where(models.Volume.status != VolumeStatus.RESERVED)
        if status is not None:
            query = query.where(models.Volume.status == status)
        elif not include_deleted:
            query = query.where(models.Volume.status != VolumeStatus.DELETED)
        if host is not None:
            query = query.where(models.Volume.host == host)
        vol = models.Volume
        with self.db.transaction() as session:
            query = paging.page(session, query, vol.id, {"created_at": vol.created_at, "name":
                                vol.display_name, "id": vol.id, "size": vol.size}, limit=limit,
                                marker=marker, sort_key=sort_key, sort_dir=sort_dir,
                                resource="volume")
            return [self._view(session, r) for r in session.execute(query).scalars().all()]

    def _backend_of(self, volume_id: str, session: Any) -> models.Volume:
        validate.uuid_like("volume_id", volume_id)
        row = session.get(models.Volume, volume_id)
        if row is None or row.status in (VolumeStatus.DELETED, VolumeStatus.RESERVED) or \
                not self._visible(row.project_id):
            raise exception.NotFound("volume", volume_id)
        return row  # type: ignore[no-any-return]

    def _visible(self, project_id: str) -> bool:
        return self._sees_all() or project_id == self.project_id

    @schemas.accepts(volume_id=s.UUID)
    @policy.authorize("volume:delete")
    def delete(self, volume_id: str) -> None:
        """Delete a volume. Deleting a deleted volume succeeds, and so does deleting one that
        another call is deleting (this one waits for it: concurrent deletes both succeed, or
        both see the failure); a volume with snapshots or attachments, or one being worked
        on, is refused with InvalidState. A volume that never reached a backend is removed at
        once."""
        validate.uuid_like("volume_id", volume_id)
        with self.db.transaction() as session:
            row = session.get(models.Volume, volume_id)
            if row is None or not self._visible(row.project_id):
                raise exception.NotFound("volume", volume_id)
            if row.status == VolumeStatus.DELETED:
                return
            if row.status == VolumeStatus.ERROR_MANAGING:
                # never adopted: the object is not the volume's, nothing on the backend to
                # delete (Cinder's rule) and no claim held
                row.status, row.deleted_at = VolumeStatus.DELETED, core_models.utcnow()
                return
            deleting = row.status == VolumeStatus.DELETING
            if not deleting:
                allowed = (VolumeStatus.AVAILABLE, VolumeStatus.ERROR,
                           VolumeStatus.ERROR_DELETING, VolumeStatus.ERROR_EXTENDING)
                if row.status not in allowed:
                    raise exception.InvalidState(
                        f"cannot delete volume {volume_id} while it is {row.status}",
                        state=row.status)
                from stackcore.volume.manager import VolumeManager

                VolumeManager._refuse_if_busy(session, row)  # noqa: SLF001
                host = row.host
                if host is None:
                    row.status, row.deleted_at = VolumeStatus.DELETED, core_models.utcnow()
                    return
        if deleting:
            final = self.wait(volume_id, (VolumeStatus.DELETED, VolumeStatus.ERROR_DELETING,
                                          VolumeStatus.AVAILABLE, VolumeStatus.ERROR),
                              self.conf.volume.operation_timeout)
            if final.status != VolumeStatus.DELETED:
                raise exception.InvalidState(
                    f"volume {volume_id} was being deleted by another call, which ended "
                    f"{final.status}", state=final.status)
            return
        assert host is not None
        self.rpc.delete_volume(host, volume_id)

    # --- manage / unmanage ------------------------------------------------------------------

    def _managing_pool(self, session: Any, host: str) -> tuple[str, str, str, str | None]:
        """``(backend host, pool, availability zone, volume_backend_name)`` of ``host``
        (``<host>@<backend>#<pool>``, as volumes report it); NotFound naming it unless it is
        a present pool of a volume backend."""
        backend, _, pool = host.partition("#")
        for pool_row, backend_row, svc in pool_rows(session):
            if pool_row.host == backend and pool_row.pool_name == pool:
                return backend, pool, svc.availability_zone, backend_row.volume_backend_name
        raise exception.NotFound("volume backend pool", host,
                                 f"no volume backend reports a pool {host!r} "
                                 "(<host>@<backend>#<pool>, as cloud.volume.list_pools names "
                                 "them)")

    @schemas.accepts(host=vs.VOLUME_HOST, existing_ref=vs.EXISTING_REF, name=s.OPTIONAL_NAME,
                     volume_type=s.optional(vs.TYPE_NAME_OR_ID),
                     availability_zone=s.optional(s.ZONE), metadata=s.optional(s.STRING_MAP),
                     wait=s.BOOLEAN, timeout=s.TIMEOUT)
    @policy.authorize("volume:manage")
    def manage(self, host: str, existing_ref: Mapping[str, Any], name: str | None = None,
               volume_type: str | None = None, availability_zone: str | None = None,
               metadata: Mapping[str, str] | None = None, wait: bool = True,
               timeout: float | None = None) -> Volume:
        """Adopt an object already on a backend as a volume of the caller's project (Cinder's
        manage existing; the backend's driver must declare ``manage_existing``).

        ``host`` is the pool, ``<host>@<backend>#<pool>`` as volumes report it;
        ``existing_ref`` is ``{"source-name": "<the backend's name of the object>"}`` (an LV,
        a file on the NFS share, an RBD image: see ``list_manageable``). The object is
        measured first (GiB rounded up) and the quota checked with that size; a pool nobody
        reports, a malformed reference, one naming nothing (NotFound) or a volume managed
        already is refused with nothing written. The volume is ``managing`` while the driver
        renames the object to the volume's name, then ``available`` - or ``error_managing``
        with a fault, the object left as it was (such a volume can only be deleted, which
        touches nothing on the backend). Returns once settled (``wait``)."""
        if name is not None:
            validate.name("name", name)
        meta = validate.string_map("metadata", metadata)
        ref = {"source-name": existing_ref["source-name"]}
        type_name = volume_type or self.conf.volume.default_volume_type
        volume_id = str(uuid.uuid4())
        with self.db.transaction() as session:
            backend, pool, zone, backend_name = self._managing_pool(session, host)
            vtype = self._type_row(session, type_name) if type_name else None
        specs = dict(vtype.extra_specs) if vtype else {}
        wanted = specs.get("volume_backend_name")
        if wanted is not None and wanted != backend_name:
            raise exception.Invalid("volume_type", f"type {vtype.name if vtype else ''!r} "
                                    f"asks for backend {wanted!r}; {host} is "
                                    f"{backend_name!r}", volume_type)
        if availability_zone is not None and availability_zone != zone:
            raise exception.Invalid("availability_zone", f"{host} is in zone {zone!r}",
                                    availability_zone)
        # measured before anything is written: the quota counts the size, and a reference
        # naming nothing (or something the driver refuses) leaves no trace
        size = self.rpc.manage_existing_get_size(backend, volume_id, pool, ref)
        if size < 1:
            raise exception.Invalid("existing_ref", f"{ref['source-name']} on {host} is "
                                    "empty (0 GiB)", ref)
        with self.db.transaction() as session:
            deltas = {"volumes": 1, "gigabytes": size}
            if vtype is not None:
                deltas[f"gigabytes_{vtype.name}"] = size
            self.quotas.check(session, self.project_id, deltas)
            session.add(models.Volume(
                project_id=self.project_id, user_id=self.user_id, id=volume_id,
                display_name=name, size=size, status=VolumeStatus.MANAGING,
                volume_type_id=vtype.id if vtype else None, availability_zone=zone,
                metadata_=meta, host=backend, pool=pool,
                multiattach=specs.get("multiattach", "").lower() == "<is> true"))
        try:
            self.rpc.manage_existing(backend, volume_id, ref)
        except exception.StackcoreError as err:  # never reached the volume service
            with self.db.transaction() as session:
                session.execute(sa.update(models.Volume).where(models.Volume.id == volume_id)
                                .values(status=VolumeStatus.ERROR_MANAGING))
                session.add(faults.new(models.VolumeFault, err, step="manage_existing",
                                       resource="volume", resource_id=volume_id, host=None))
            raise
        if not wait:
            return self.get(volume_id)
        return self.wait(volume_id, (VolumeStatus.AVAILABLE, VolumeStatus.ERROR_MANAGING),
                         timeout)

    @schemas.accepts(volume_id=s.UUID)
    @policy.authorize("volume:unmanage")
    def unmanage(self, volume_id: str) -> None:
        """Give a volume up without deleting its data (Cinder's unmanage): its object stays
        on the backend under its name (``volume-<id>``), and can be managed again; the volume
        ends ``deleted`` and its quota is given back. Only an ``available`` or ``error``
        volume without snapshots or attachments; InvalidState naming its status otherwise."""
        validate.uuid_like("volume_id", volume_id)
        with self.db.transaction() as session:
            row = self._backend_of(volume_id, session)
            if row.status not in (VolumeStatus.AVAILABLE, VolumeStatus.ERROR):
                raise exception.InvalidState(
                    f"cannot unmanage volume {volume_id} while it is {row.status} (only "
                    "available or error)", state=row.status)
            from stackcore.volume.manager import VolumeManager

            VolumeManager._refuse_if_busy(session, row)  # noqa: SLF001
            host = row.host
            if host is None:  # never reached a backend: nothing there to keep
                row.status, row.deleted_at = VolumeStatus.DELETED, core_models.utcnow()
                return
        self.rpc.unmanage_volume(host, volume_id)

    @schemas.accepts(host=vs.VOLUME_HOST)
    @policy.authorize("volume:list_manageable")
    def list_manageable(self, host: str) -> list[dict[str, Any]]:
        """The objects of the backend of ``host`` (``<host>@<backend>#<pool>``) that could be
        managed: ``{"reference": {"source-name": ...}, "size": GiB, "safe_to_manage": bool,
        "reason_not_safe": str | None, "extra_info": {...}}`` (objects in use, the driver's
        own snapshots and the objects of volumes managed already are not safe)."""
        with self.db.transaction() as session:
            backend, _, _, _ = self._managing_pool(session, host)
        return self.rpc.list_manageable_volumes(backend)

    @schemas.accepts(volume_id=s.UUID, new_size=vs.SIZE)
    @policy.authorize("volume:extend")
    def extend(self, volume_id: str, new_size: int) -> Volume:
        """Grow a volume to ``new_size`` GiB (claimed on its pool first). An attached volume
        can be extended only on a backend reporting ``online_extend_support``."""
        validate.integer("new_size", new_size, 1, MAX_SIZE_GB)
        with self.db.transaction() as session:
            row = self._backend_of(volume_id, session)
            if new_size <= row.size:
                raise exception.Invalid("new_size", f"must be larger than the current size "
                                        f"({row.size} GiB)", new_size)
            if row.status == VolumeStatus.IN_USE:
                pool = session.execute(sa.select(models.VolumePool).where(
                    models.VolumePool.host == row.host,
                    models.VolumePool.pool_name == row.pool)).scalar_one_or_none()
                if pool is None or not pool.stats.get("online_extend_support", False):
                    raise exception.InvalidState(
                        f"volume {volume_id} is attached and backend {row.host} does not "
                        f"support online extend", state=row.status)
            elif row.status != VolumeStatus.AVAILABLE:
                raise exception.InvalidState(
                    f"cannot extend volume {volume_id} while it is {row.status}",
                    state=row.status)
            vtype = session.get(models.VolumeType, row.volume_type_id) \
                if row.volume_type_id else None
            thin = (vtype.extra_specs if vtype else {}).get("provisioning:type") != "thick"
            deltas = {"gigabytes": new_size - row.size}
            if vtype is not None:
                deltas[f"gigabytes_{vtype.name}"] = new_size - row.size
            self.quotas.check(session, row.project_id, deltas)
            if not claims.claim_more(session, volume_id, new_size - row.size, thin):
                raise exception.NoValidHost(
                    f"pool {row.host}#{row.pool} has no room for {new_size - row.size} more GiB")
            row.previous_status, row.status = row.status, VolumeStatus.EXTENDING
            host = row.host
        assert host is not None
        try:
            self.rpc.extend_volume(host, volume_id, new_size)
        except exception.OperationTimeout:
            pass  # the manager may still be at it: it records the outcome itself
        except exception.RPCError as err:  # the call never reached the volume service
            with self.db.transaction() as session:
                row = self._backend_of(volume_id, session)
                if row.status == VolumeStatus.EXTENDING:
                    claims.release_part(session, volume_id, new_size - row.size)
                    row.status = row.previous_status or VolumeStatus.AVAILABLE
                    session.add(faults.new(models.VolumeFault, err, step="extend_volume",
                                           resource="volume", resource_id=volume_id,
                                           host=None))
            raise
        except exception.InvalidState:
            raise  # the driver refused: the volume kept its status and size (and the fault)
        except exception.StackcoreError:
            pass  # recorded as error_extending + fault by the manager
        return self.get(volume_id)

    @schemas.accepts(volume_id=s.UUID, image_id=s.string(255), wait=s.BOOLEAN,
                     timeout=s.TIMEOUT)
    @policy.authorize("volume:reimage")
    def reimage(self, volume_id: str, image_id: str, wait: bool = True,
                timeout: float | None = None) -> Volume:
        """Write image ``image_id`` over the data of an ``available`` volume (Cinder's
        reimage, what rebuilding a volume-backed server does): ``downloading`` while the
        image is copied in, then ``available``; a failure leaves it ``error`` with a fault
        (its data is then neither the old nor the new). The image is checked as for
        :meth:`create` (visible, raw or qcow2, within the volume's size) before anything
        changes. The volume keeps its ``image_id`` (the image it was made from, which a
        copy-on-write clone still depends on)."""
        with self.db.transaction() as session:
            row = self._backend_of(volume_id, session)
            self._check_image(session, image_id, row.size)
            started = session.execute(
                sa.update(models.Volume).where(models.Volume.id == volume_id,
                                               models.Volume.status == VolumeStatus.AVAILABLE)
                .values(status=VolumeStatus.DOWNLOADING,
                        previous_status=VolumeStatus.AVAILABLE)
                .execution_options(synchronize_session=False))
            if started.rowcount != 1:  # type: ignore[attr-defined]
                raise exception.InvalidState(
                    f"cannot reimage volume {volume_id} while it is {row.status} (only "
                    "available: detach it first)", state=row.status)
            host = row.host
        assert host is not None
        try:
            self.rpc.reimage_volume(host, volume_id, image_id)
        except exception.StackcoreError:  # never reached the volume service
            with self.db.transaction() as session:
                session.execute(sa.update(models.Volume).where(
                    models.Volume.id == volume_id,
                    models.Volume.status == VolumeStatus.DOWNLOADING)
                    .values(status=VolumeStatus.AVAILABLE, previous_status=None))
            raise
        if not wait:
            return self.get(volume_id)
        return self.wait(volume_id, (VolumeStatus.AVAILABLE, VolumeStatus.ERROR), timeout)

    # --- migration and retype --------------------------------------------------------------

    @schemas.accepts(volume_id=s.UUID, host=s.optional(vs.VOLUME_HOST), wait=s.BOOLEAN,
                     timeout=s.TIMEOUT)
    @policy.authorize("volume:migrate")
    def migrate(self, volume_id: str, host: str | None = None, wait: bool = True,
                timeout: float | None = None) -> Volume:
        """Move an ``available`` volume to another backend of its volume host, keeping its
        id (Cinder's generic migration): ``host`` is the pool (``<host>@<backend>#<pool>``),
        else the scheduler picks one of that volume host's other backends for the volume's
        type. The volume is ``migrating`` while its data is copied and checked (sha256 of
        what the new backend reads back); then ``available`` on the new backend with
        ``migration_status`` ``success`` and the old copy deleted - or, on any failure,
        ``available`` on the old backend with ``migration_status`` ``error`` and a fault,
        the new copy deleted and its claim given back.

        Refused (InvalidState, nothing written): an attached volume (stackcore does not swap
        a volume under a running guest: detach first), one with snapshots (they cannot
        follow), one not ``available``. NoValidHost, with the reasons, when no other backend
        of the volume host passes the filters (or ``host`` does not).

        Why one volume host only: the copy goes through a file of that host (the old
        driver's ``copy_volume_to_image``, the new one's ``copy_image_to_volume``), which
        every driver implements; between hosts there is no such common medium."""
        return self._migrate(volume_id, None, host, VolumeStatus.MIGRATING, wait, timeout)

    @schemas.accepts(volume_id=s.UUID, new_type=vs.TYPE_NAME_OR_ID,
                     migration_policy=s.enum("never", "on-demand"), wait=s.BOOLEAN,
                     timeout=s.TIMEOUT)
    @policy.authorize("volume:retype")
    def retype(self, volume_id: str, new_type: str, migration_policy: str = "never",
               wait: bool = True, timeout: float | None = None) -> Volume:
        """Give the volume the type ``new_type`` (name or id). When its backend pool passes
        the scheduler's filters for the new type's extra specs, only the type changes (the
        volume may be attached; nothing on the backend changes - a thin volume stays thin).
        Otherwise the volume must move: with ``migration_policy="on-demand"`` it is migrated
        (as :meth:`migrate`, status ``retyping``) to a pool of its volume host that serves
        the new type, the type changing with the move; with ``"never"`` (the default, as in
        Cinder) the retype is refused, naming the pool and the type. The project's
        ``gigabytes_<new type>`` quota is checked first."""
        validate.choice("migration_policy", migration_policy, ("never", "on-demand"))
        with self.db.transaction() as session:
            row = self._backend_of(volume_id, session)
            vtype = self._type_row(session, new_type)
            if row.volume_type_id == vtype.id:
                raise exception.Invalid("new_type", f"volume {volume_id} is of type "
                                        f"{vtype.name!r} already", new_type)
            if row.status not in (VolumeStatus.AVAILABLE, VolumeStatus.IN_USE):
                raise exception.InvalidState(
                    f"cannot retype volume {volume_id} while it is {row.status}",
                    state=row.status)
            multiattach = vtype.extra_specs.get("multiattach", "").lower() == "<is> true"
            if row.status == VolumeStatus.IN_USE and multiattach != row.multiattach:
                raise exception.InvalidState(
                    f"volume {volume_id} is attached: its type cannot turn multiattach "
                    f"{'on' if multiattach else 'off'}", state=row.status)
            current, status, old_type = f"{row.host}#{row.pool}", row.status, row.volume_type_id
            placed = row.host is not None
            self.quotas.check(session, row.project_id, {f"gigabytes_{vtype.name}": row.size})
            type_id, specs = vtype.id, dict(vtype.extra_specs)
        if placed and self.scheduler.passes(current, VolumeRequest(0, specs)):
            with self.db.transaction() as session:
                self.quotas.check(session, row.project_id,
                                  {f"gigabytes_{vtype.name}": row.size})
                changed = session.execute(
                    sa.update(models.Volume).where(models.Volume.id == volume_id,
                                                   models.Volume.status == status,
                                                   models.Volume.volume_type_id == old_type)
                    .values(volume_type_id=type_id, multiattach=multiattach)
                    .execution_options(synchronize_session=False))
                if changed.rowcount != 1:  # type: ignore[attr-defined]
                    raise exception.Conflict(f"volume {volume_id} changed during its retype; "
                                             "ask again", volume_id=volume_id)
            return self.get(volume_id)
        if migration_policy == "never":
            raise exception.Invalid(
                "migration_policy", f"pool {current} cannot serve volume type {vtype.name!r}: "
                "the retype needs a migration, which migration_policy='never' forbids (pass "
                "'on-demand')", migration_policy)
        return self._migrate(volume_id, type_id, None, VolumeStatus.RETYPING, wait, timeout)

    def _migrate(self, volume_id: str, type_id: str | None, pool: str | None,
                 status: VolumeStatus, wait: bool, timeout: float | None) -> Volume:
        """Start a migration (or a retype's): the volume ``migrating``/``retyping`` and a
        hidden RESERVED row holding the claim on the destination, then the work handed to the
        volume's own backend (its manager copies, checks and switches)."""
        target_id = str(uuid.uuid4())
        with self.db.transaction() as session:
            row = self._backend_of(volume_id, session)
            if row.status != VolumeStatus.AVAILABLE:
                raise exception.InvalidState(
                    f"cannot migrate volume {volume_id} while it is {row.status}: only an "
                    "available (detached) volume moves (detach it first)", state=row.status)
            from stackcore.volume.manager import VolumeManager

            VolumeManager._refuse_if_busy(session, row)  # noqa: SLF001
            if row.host is None or row.pool is None:
                raise exception.InvalidState(f"volume {volume_id} is on no backend",
                                             state=row.status)
            if pool is not None:
                self._managing_pool(session, pool)  # NotFound unless a present pool
            type_id = type_id if type_id is not None else row.volume_type_id
            vtype = session.get(models.VolumeType, type_id) if type_id else None
            if vtype is not None and type_id != row.volume_type_id:
                self.quotas.check(session, row.project_id,
                                  {f"gigabytes_{vtype.name}": row.size})
            started = session.execute(
                sa.update(models.Volume).where(models.Volume.id == volume_id,
                                               models.Volume.status == VolumeStatus.AVAILABLE)
                .values(status=status, previous_status=VolumeStatus.AVAILABLE,
                        migration_status="migrating")
                .execution_options(synchronize_session=False))
            if started.rowcount != 1:  # type: ignore[attr-defined]
                raise exception.InvalidState(f"volume {volume_id} changed while its migration "
                                             "was asked", state="changed")
            session.add(models.Volume(
                id=target_id, project_id=row.project_id, user_id=row.user_id, size=row.size,
                status=VolumeStatus.RESERVED, volume_type_id=type_id, metadata_={},
                migration_status=f"target:{volume_id}", multiattach=row.multiattach))
            source, size = row.host, row.size
            specs = dict(vtype.extra_specs) if vtype else {}
        volume_host = source.partition("@")[0]

        def accept(candidate: str) -> str | None:
            backend = candidate.partition("#")[0]
            if backend == source:
                return "the volume's own backend"
            if backend.partition("@")[0] != volume_host:
                return f"not a backend of the volume's host {volume_host!r}"
            if pool is not None and candidate != pool:
                return "not the pool asked for"
            return None

        try:
            self.scheduler.place(target_id, VolumeRequest(size, specs, None), accept)
        except exception.StackcoreError:
            with self.db.transaction() as session:
                session.execute(sa.delete(models.Volume).where(models.Volume.id == target_id))
                session.execute(sa.update(models.Volume).where(models.Volume.id == volume_id)
                                .values(status=VolumeStatus.AVAILABLE, previous_status=None,
                                        migration_status=None))
            raise
        try:
            self.rpc.migrate_volume(source, volume_id, target_id)
        except exception.StackcoreError as err:  # never reached the volume service
            with self.db.transaction() as session:
                claims.release(session, target_id)
                session.execute(sa.update(models.Volume).where(models.Volume.id == target_id)
                                .values(status=VolumeStatus.DELETED,
                                        deleted_at=core_models.utcnow()))
                session.execute(sa.update(models.Volume).where(models.Volume.id == volume_id)
                                .values(status=VolumeStatus.AVAILABLE, previous_status=None,
                                        migration_status="error"))
                session.add(faults.new(models.VolumeFault, err, step="migrate_volume",
                                       resource="volume", resource_id=volume_id, host=None))
            raise
        if not wait:
            return self.get(volume_id)
        return self.wait(volume_id, (VolumeStatus.AVAILABLE,), timeout)

    def _dispatch_failed(self, resource: str, resource_id: str, step: str,
                         err: BaseException) -> None:
        """The work was written down but could not be handed to the volume service (the
        transport refused the message): the resource goes to ``error`` with the fault and a
        volume gives its claim back, instead of waiting forever in a transient state."""
        with self.db.transaction() as session:
            row: models.Volume | models.Snapshot | None = (
                session.get(models.Volume, resource_id) if resource == "volume"
                else session.get(models.Snapshot, resource_id))
            if row is None:
                return
            row.status = VolumeStatus.ERROR if resource == "volume" else SnapshotStatus.ERROR
            session.add(faults.new(models.VolumeFault, err, step=step, resource=resource,
                                   resource_id=resource_id, host=None))
            if resource == "volume":
                claims.release(session, resource_id)

    @schemas.accepts(volume_id=s.UUID, metadata=s.STRING_MAP)
    @policy.authorize("volume:set_metadata")
    def set_metadata(self, volume_id: str, metadata: Mapping[str, str]) -> Volume:
        meta = validate.string_map("metadata", metadata)
        with self.db.transaction() as session:
            row = self._backend_of(volume_id, session)
            row.metadata_ = {**row.metadata_, **meta}
        return self.get(volume_id)

    # --- attachments -----------------------------------------------------------------------

    @schemas.accepts(volume_id=s.UUID, connector=vs.CONNECTOR, instance_uuid=s.OPTIONAL_UUID,
                     mountpoint=s.optional(s.DEVICE_NAME))
    @policy.authorize("volume:attach")
    def attach(self, volume_id: str, connector: Mapping[str, Any],
               instance_uuid: str | None = None, mountpoint: str | None = None) -> dict[str, Any]:
        """Attach to the host described by ``connector`` (os-brick connector properties; at
        least ``host``) and return its ``connection_info`` with ``attachment_id``."""
        if not isinstance(connector, Mapping):
            raise exception.Invalid("connector", "must be a mapping of os-brick connector "
                                    "properties", connector)
        validate.name("connector['host']", connector.get("host"))
        for key, value in connector.items():
            if not isinstance(key, str) or not isinstance(value, (str, bool, int, float,
                                                                   type(None), list)):
                raise exception.Invalid(f"connector[{key!r}]", "must be a JSON scalar or list")
        if instance_uuid is not None:
            validate.uuid_like("instance_uuid", instance_uuid)
        if mountpoint is not None:
            validate.name("mountpoint", mountpoint)
        with self.db.transaction() as session:
            host = self._backend_of(volume_id, session).host
        if host is None:
            raise exception.InvalidState(f"volume {volume_id} is on no backend")
        return self.rpc.attach_volume(host, volume_id, dict(connector), instance_uuid,
                                      mountpoint)

    @schemas.accepts(volume_id=s.UUID, attachment_id=s.OPTIONAL_UUID, force=s.BOOLEAN)
    @policy.authorize("volume:detach")
    def detach(self, volume_id: str, attachment_id: str | None = None,
               force: bool = False) -> Volume:
        """End one attachment; with ``force`` and no ``attachment_id``, end all of them (the
        driver's ``terminate_connection`` gets ``connector=None``).

        An attachment made for a server (``instance_uuid`` set: ``cloud.compute`` attached
        the volume) is refused with Conflict naming the server - detach it through the
        server, ``cloud.compute.detach_volume(server_id, volume_id)``, which detaches it from
        the hypervisor and ends the server's mapping before it ends the attachment. Ending
        only the volume side would make the volume ``available``, hence deletable, while the
        server's hypervisor still writes to it (Cinder refuses the same since
        OSSA-2023-003). A force detach refuses likewise while a server holds an attachment.
        """
        if attachment_id is None and not force:
            raise exception.Invalid("attachment_id", "is required unless force=True")
        if force:
            self._authorize("volume:force_detach")
        if attachment_id is not None:
            validate.uuid_like("attachment_id", attachment_id)
        with self.db.transaction() as session:
            host = self._backend_of(volume_id, session).host
            query = sa.select(models.Attachment).where(
                models.Attachment.volume_id == volume_id,
                models.Attachment.instance_uuid.is_not(None),
                models.Attachment.attach_status != AttachStatus.DETACHED)
            if attachment_id is not None:
                query = query.where(models.Attachment.id == attachment_id)
            held = session.execute(query.order_by(models.Attachment.created_at)).scalars().first()
        if held is not None:
            raise exception.Conflict(
                f"volume {volume_id} is attached to server {held.instance_uuid} (attachment "
                f"{held.id}): detach it through the server, cloud.compute.detach_volume("
                f"{held.instance_uuid!r}, {volume_id!r})",
                volume_id=volume_id, server_id=held.instance_uuid, attachment_id=held.id)
        assert host is not None
        self.rpc.detach_volume(host, volume_id, attachment_id)
        return self.get(volume_id)

    @schemas.accepts(volume_id=s.UUID, attachment_id=s.UUID, server_id=s.UUID)
    @policy.authorize("volume:attach")
    def detach_from_server(self, volume_id: str, attachment_id: str, server_id: str) -> Volume:
        """End the attachment ``attachment_id`` that server ``server_id`` holds: the compute
        family's side of a server's detach (and of its delete), called once the hypervisor
        no longer uses the volume and the server's mapping is being ended. NotFound if that
        attachment is not the server's (or already ended)."""
        validate.uuid_like("attachment_id", attachment_id)
        validate.uuid_like("server_id", server_id)
        with self.db.transaction() as session:
            host = self._backend_of(volume_id, session).host
            owner = session.execute(
                sa.select(models.Attachment.instance_uuid).where(
                    models.Attachment.id == attachment_id,
                    models.Attachment.volume_id == volume_id)
            ).scalar_one_or_none()
        if owner != server_id:
            raise exception.NotFound("attachment", attachment_id,
                                     f"volume {volume_id} has no attachment {attachment_id} "
                                     f"of server {server_id}")
        assert host is not None
        self.rpc.detach_volume(host, volume_id, attachment_id)
        return self.get(volume_id)

    # --- snapshots -------------------------------------------------------------------------

    @schemas.accepts(volume_id=s.UUID, name=s.OPTIONAL_NAME, force=s.BOOLEAN,
                     metadata=s.optional(s.STRING_MAP), wait=s.BOOLEAN, timeout=s.TIMEOUT)
    @policy.authorize("volume:snapshot:create")
    def create_snapshot(self, volume_id: str, name: str | None = None, force: bool = False,
                        metadata: Mapping[str, str] | None = None, wait: bool = True,
                        timeout: float | None = None) -> Snapshot:
        """Snapshot an available volume (an attached one only with ``force``)."""
        if name is not None:
            validate.name("name", name)
        meta = validate.string_map("metadata", metadata)
        snapshot_id = str(uuid.uuid4())
        with self.db.transaction() as session:
            row = self._backend_of(volume_id, session)
            allowed = [VolumeStatus.AVAILABLE] + ([VolumeStatus.IN_USE] if force else [])
            if row.status not in allowed:
                raise exception.InvalidState(
                    f"cannot snapshot volume {volume_id} while it is {row.status}"
                    + (" (use force=True for an attached volume)"
                       if row.status == VolumeStatus.IN_USE else ""), state=row.status)
            deltas = {"snapshots": 1, "gigabytes": row.size}
            vtype = session.get(models.VolumeType, row.volume_type_id) \
                if row.volume_type_id else None
            if vtype is not None:
                deltas[f"gigabytes_{vtype.name}"] = row.size
            self.quotas.check(session, row.project_id, deltas)
            session.add(models.Snapshot(project_id=row.project_id, user_id=self.user_id,
                                        id=snapshot_id, volume_id=volume_id, display_name=name,
                                        volume_size=row.size, status=SnapshotStatus.CREATING,
                                        metadata_=meta))
            host = row.host
        assert host is not None
        try:
            self.rpc.create_snapshot(host, snapshot_id)
        except exception.StackcoreError as err:  # never reached the volume service
            self._dispatch_failed("snapshot", snapshot_id, "create_snapshot", err)
            raise
        if not wait:
            return self.get_snapshot(snapshot_id)
        return self.wait_snapshot(snapshot_id, ("available", "error"), timeout)

    @schemas.accepts(snapshot_id=s.UUID, statuses=s.array(s.enum(*vs.SNAPSHOT_STATUSES), 16),
                     timeout=s.TIMEOUT)
    @policy.authorize("volume:snapshot:get")
    def wait_snapshot(self, snapshot_id: str, statuses: tuple[str, ...],
                      timeout: float | None = None) -> Snapshot:
        return wait.until(
            self.db, lambda: self.get_snapshot(snapshot_id, include_deleted=True),
            lambda s: s.status in statuses, timeout or self.conf.volume.operation_timeout,
            lambda s: f"snapshot {snapshot_id} still {s.status}",
        )

    @schemas.accepts(snapshot_id=s.UUID, include_deleted=s.BOOLEAN)
    @policy.authorize("volume:snapshot:get")
    def get_snapshot(self, snapshot_id: str, include_deleted: bool = False) -> Snapshot:
        validate.uuid_like("snapshot_id", snapshot_id)
        with self.db.transaction() as session:
            row = session.get(models.Snapshot, snapshot_id)
            if row is None or (row.status == SnapshotStatus.DELETED and not include_deleted) \
                    or not self._visible(row.project_id):
                raise exception.NotFound("snapshot", snapshot_id)
            return Snapshot(row.id, row.volume_id, row.display_name, row.volume_size,
                            row.status, dict(row.metadata_), row.created_at,
                            self._fault(session, row.id) if row.status.startswith("error")
                            else None)

    @schemas.accepts(volume_id=s.OPTIONAL_UUID, all_projects=s.BOOLEAN,
                     **paging.schema(vs.SORT_KEYS))
    @policy.authorize("volume:snapshot:list")
    def list_snapshots(self, volume_id: str | None = None, *, all_projects: bool = False,
                       limit: int | None = None, marker: str | None = None,
                       sort_key: str = "created_at", sort_dir: str = "asc") -> list[Snapshot]:
        """The caller's project's snapshots (of ``volume_id``; every project's:
        ``all_projects``), ``limit`` at a time after the snapshot ``marker``."""
        snap = models.Snapshot
        query = self._scope_list(sa.select(snap.id), snap.project_id, all_projects,
                                "volume:snapshot:list").where(
            snap.status != SnapshotStatus.DELETED)
        if volume_id is not None:
            query = query.where(snap.volume_id == volume_id)
        with self.db.transaction() as session:
            query = paging.page(session, query, snap.id, {"created_at": snap.created_at, "name":
                                snap.display_name, "id": snap.id, "size": snap.volume_size},
                                limit=limit, marker=marker, sort_key=sort_key, sort_dir=sort_dir,
                                resource="snapshot")
            ids = session.execute(query).scalars().all()
        return [self.get_snapshot(i) for i in ids]

    @schemas.accepts(snapshot_id=s.UUID)
    @policy.authorize("volume:snapshot:delete")
    def delete_snapshot(self, snapshot_id: str) -> None:
        """Delete a snapshot; deleting a deleted one succeeds."""
        validate.uuid_like("snapshot_id", snapshot_id)
        with self.db.transaction() as session:
            row = session.get(models.Snapshot, snapshot_id)
            if row is None or not self._visible(row.project_id):
                raise exception.NotFound("snapshot", snapshot_id)
            if row.status == SnapshotStatus.DELETED:
                return
            if row.status not in (SnapshotStatus.AVAILABLE, SnapshotStatus.ERROR,
                                  SnapshotStatus.ERROR_DELETING):
                raise exception.InvalidState(
                    f"cannot delete snapshot {snapshot_id} while it is {row.status}",
                    state=row.status)
            source = session.get(models.Volume, row.volume_id)
            host = source.host if source is not None else None
        if host is None:
            raise exception.InvalidState(f"snapshot {snapshot_id} is on no backend")
        self.rpc.delete_snapshot(host, snapshot_id)

    # --- images ----------------------------------------------------------------------------

    @schemas.accepts(volume_id=s.UUID, image_name=s.NAME, disk_format=s.enum(*vs.IMAGE_FORMATS),
                     store=s.optional(s.NAME))
    @policy.authorize("volume:upload_to_image")
    def upload_to_image(self, volume_id: str, image_name: str, disk_format: str = "raw",
                        store: str | None = None) -> dict[str, Any]:
        """Copy an available (or in-use) volume into a new image of the caller's project
        (``cloud.image``), uploaded into ``store`` (default ``[image] default_store``) like
        any upload: size and sha256 computed, the format inspected, the image ``active`` when
        this returns. Returns ``{id, name, disk_format, size_bytes, sha256, store, status,
        path}`` (``path``: the image's local file for the ``file`` store, else None). On
        failure no image is left (the volume's faults say why) and the volume keeps its
        status."""
        validate.name("image_name", image_name)
        validate.choice("disk_format", disk_format, IMAGE_FORMATS)
        if self.image is None:
            raise exception.ConfigError("this cloud has no image API (cloud.image): volumes "
                                        "are uploaded there")
        chosen = store or self.conf.image.default_store
        target = self.image.stores.get(chosen)
        if target is None or not type(target).capabilities.get("writable", False):
            raise exception.Invalid("store", "is not a writable image store of this cloud "
                                    f"({', '.join(sorted(self.image.stores)) or 'none'})",
                                    chosen)
        with self.db.transaction() as session:
            row = self._backend_of(volume_id, session)
            host = row.host
            if row.status not in (VolumeStatus.AVAILABLE, VolumeStatus.IN_USE):
                raise exception.InvalidState(
                    f"cannot upload volume {volume_id} while it is {row.status}",
                    state=row.status)
        assert host is not None
        image = self.image.create(image_name, disk_format=disk_format,
                                  properties={"source_volume_id": volume_id})
        try:
            return self.rpc.copy_volume_to_image(host, volume_id, image.id, chosen)
        except BaseException:
            # the manager deletes the image after a failure it saw; this covers a call that
            # never reached it (a refused state, an RPC timeout: then an upload still
            # running keeps its image - a delete of a saving image is refused)
            with contextlib.suppress(exception.NotFound, exception.InvalidState):
                self.image.delete(image.id)
            raise
