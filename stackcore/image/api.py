"""The image API callers use: ``cloud.image``.

An image goes ``create`` (a record: name, formats, visibility, properties; status ``queued``)
-> ``upload`` (its bytes into a store; ``saving`` while they flow) -> ``active``. Before an
upload makes an image active:

* the store computed the size and sha256 of the bytes while writing them; a caller that gave
  its own ``sha256`` (or ``size``) must match, else nothing is kept;
* the stored bytes are inspected (:func:`stackcore.image.inspect`): the declared
  ``disk_format`` must be their format and pass its safety checks (no qcow2 backing file or
  data file, no VMDK extents elsewhere), else nothing is kept.

A failed upload leaves the image ``queued`` (upload again) and nothing in the store. An upload
whose *process* died (killed, host crash) cannot say so: a cloud on the same database, at
start-up and periodically (:meth:`ImageAPI.reset_interrupted_uploads`), marks the image
``killed``, records a fault (:meth:`ImageAPI.faults`) and removes what the upload left in the
store; a killed image may be uploaded again or deleted (:mod:`stackcore.image.uploads` says
how a dead upload is told from a live one).

Quotas (:mod:`stackcore.image.quotas`): ``image_count_total`` checked by
:meth:`ImageAPI.create`, ``image_size_total`` (MiB, enforced to the byte) and
``image_count_uploading`` by :meth:`ImageAPI.upload`; a refusal keeps nothing. URL imports
pass ``[image_import]`` (:mod:`stackcore.image.url_filter`).

Visibility: an image belongs to the caller's project; ``private`` ones are seen by that
project only, ``public`` ones (an admin rule) by every project; another project's private image is
``NotFound``. A ``protected`` image cannot be deleted. An admin may ``deactivate`` an image
(no download, nothing new uses it) and ``reactivate`` it.

Images registered with ``cloud.compute.register_image`` (local files) are in the same table:
they are ``active`` from the start, and ``download`` reads their file.
"""

from __future__ import annotations

import dataclasses
import datetime
import io
import logging
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from oslo_config import cfg

from stackcore import exception, faults, notifications, schemas, validate
from stackcore import progress as copy_progress
from stackcore import schemas as s
from stackcore.db import api as db_api
from stackcore.db import paging
from stackcore.db.models import utcnow
from stackcore.faults import Fault
from stackcore.image import format as image_format
from stackcore.image import models, stats, uploads, url_filter
from stackcore.image import quotas as image_quotas
from stackcore.image.store import (
    ChunkReader,
    ImageStore,
    SizeLimitExceeded,
    check_range,
    close_chunks,
)
from stackcore.project import context as request_context
from stackcore.project import policy
from stackcore.project.scope import ScopedAPI

#: Disk formats an image may declare (the ones :func:`stackcore.image.inspect` knows).
DISK_FORMATS = ("raw", "qcow2", "vmdk", "vdi", "vhd", "iso")
#: Container formats: ``bare`` (the disk itself) and ``ovf`` (the disk itself, described by
#: OVF metadata elsewhere). Archives (ova, docker, compressed) are not accepted: their content
#: is not a disk the inspection could check.
CONTAINER_FORMATS = ("bare", "ovf")
STATUSES = ("queued", "saving", "active", "deactivated", "killed")
#: statuses an upload may start from: a killed image (its last upload's process died) may be
#: uploaded again, as a queued one - its id stays valid for whoever holds it
UPLOADABLE = ("queued", "killed")

LOG = logging.getLogger(__name__)
#: a running upload reports progress this many times per ``[image]
#: interrupted_upload_timeout`` (so a few missed reports never make it look dead)
HEARTBEATS_PER_TIMEOUT = 4

_ID = s.string(36)
_PROPERTIES = s.string_map()
#: what ``upload`` reads: bytes, or a binary file object (``read(n)``); not JSON, checked in
#: the method
_DATA: dict[str, Any] = {}
_SHA256 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}


@dataclasses.dataclass(frozen=True)
class Image:
    id: str
    name: str
    status: str
    disk_format: str
    container_format: str
    visibility: str
    protected: bool
    project_id: str
    size_bytes: int
    sha256: str | None
    virtual_size: int | None
    store: str | None
    properties: Mapping[str, str]
    created_at: datetime.datetime
    #: bytes done / total of the upload or import running now (``saving``); None otherwise
    progress: copy_progress.Progress | None = None


@dataclasses.dataclass(frozen=True)
class Store:
    """A configured image store and its current stats."""

    name: str
    driver: str
    writable: bool
    stats: Mapping[str, Any]


class _IteratorReader:
    """``read(n)`` over an iterator of byte chunks (a store's ``get``), for ``add``."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""

    def read(self, size: int = -1, /) -> bytes:
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._chunks, b"")
            if not chunk:
                break
            self._buffer += chunk
        if size < 0:
            size = len(self._buffer)
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data


class _Heartbeat:
    """``read(n)`` over the upload's stream that refreshes the image's heartbeat every
    ``interval`` seconds while bytes flow (so another host's start-up does not take the upload
    for dead), and stops the upload if the image is no longer its own (it was declared
    interrupted meanwhile)."""

    def __init__(self, stream: Any, beat: Callable[[], None], interval: float,
                 reporter: copy_progress.Reporter | None = None) -> None:
        self._stream = stream
        self._beat = beat
        self._reporter = reporter
        self._interval = interval
        self._next = time.monotonic() + interval

        #: why the upload was stopped (the store reports it as a failed read of ``data``;
        #: the upload raises this instead)
        self.stopped: BaseException | None = None
        #: bytes read so far
        self.bytes = 0

    def read(self, size: int = -1, /) -> bytes:
        self._beat_when_due()
        data: bytes = self._stream.read(size)
        self._count(len(data))
        return data

    def _beat_when_due(self) -> None:
        if time.monotonic() >= self._next:
            try:
                self._beat()
            except exception.InvalidState as err:
                self.stopped = err
                raise
            self._next = time.monotonic() + self._interval

    def _count(self, count: int) -> None:
        self.bytes += count
        if self._reporter is not None:
            self._reporter.advance(count)

    # A stream that is a plain local file is handed to the store as what it is (its
    # descriptor, position and seek), so the file store copies it inside the kernel and keeps
    # its holes (a raw snapshot is mostly holes); the store then reports the bytes it copied
    # through advance() instead of calling read().

    def fileno(self) -> int:
        fileno: int = self._stream.fileno()  # AttributeError/OSError: no kernel copy
        return fileno

    def tell(self) -> int:
        position: int = self._stream.tell()
        return position

    def seek(self, offset: int, whence: int = 0, /) -> int:
        position: int = self._stream.seek(offset, whence)
        return position

    def seekable(self) -> bool:
        return bool(getattr(self._stream, "seekable", lambda: False)())

    def advance(self, count: int) -> None:
        """``count`` bytes of the stream were copied without read(): beat and report as a
        read of them would."""
        self._beat_when_due()
        self._count(count)


def _mib(size: int) -> int:
    return -(-size // image_quotas.MIB)


def _over_size(project_id: str, adding: int, used: int, limit: int,
               stopped: bool = False) -> exception.OverQuota:
    """``image_size_total`` exceeded (MiB, rounded up), the bytes in the message too."""
    err = exception.OverQuota(project_id, "image_size_total", _mib(adding), _mib(used), limit)
    needs = (f"was stopped after {adding} bytes" if stopped else f"needs {adding} bytes")
    err.message += (f" (MiB; the upload {needs}, "
                    f"{max(limit * image_quotas.MIB - used, 0)} bytes were left)")
    err.args = (err.message,)
    return err


def _changed(session: Any, statement: Any) -> int:
    """The number of rows an UPDATE changed."""
    return int(session.execute(statement).rowcount)


def _view(row: models.Image, progress: copy_progress.Progress | None = None) -> Image:
    return Image(row.id, row.name, row.status, row.disk_format, row.container_format,
                 row.visibility, bool(row.protected), row.project_id, row.size_bytes, row.sha256,
                 row.virtual_size, row.store, dict(row.properties or {}), row.created_at,
                 progress)


def _payload(image: Image) -> dict[str, Any]:
    """An image's notification fields (:data:`stackcore.notifications.schemas.IMAGE_FIELDS`)."""
    return {name: getattr(image, name) for name in notifications.schemas.IMAGE_FIELDS}


def _views(session: Any, rows: Sequence[models.Image]) -> list[Image]:
    """Images with the progress of those being uploaded (one more query, only if any is)."""
    saving = [row.id for row in rows if row.status == "saving"]
    running = copy_progress.read(session, "image", saving) if saving else {}
    return [_view(row, running.get(row.id)) for row in rows]


class ImageAPI(ScopedAPI):
    """Images: records, uploads into stores, downloads, visibility and protection."""

    #: what Glance's ``image.*`` events are sent through (the Cloud sets it); each is sent
    #: after the transaction that made the change committed, never inside it
    notifier: notifications.Notifier = notifications.NULL

    def _notify(self, event_type: str, image: Image) -> Image:
        self.notifier.info(event_type, lambda: _payload(image))
        return image

    def __init__(self, conf: cfg.ConfigOpts, db: db_api.Database,
                 stores: Mapping[str, ImageStore]) -> None:
        self.conf = conf
        self.db = db
        self.stores = dict(stores)
        #: ``(what, count(session, image_id))`` of the families above this one that use
        #: images (compute: servers whose disks may back onto the image's file); a delete is
        #: refused while any counts users
        self.in_use_checks: list[tuple[str, Callable[[Any, str], int]]] = []
        #: what ``import_from_url`` may fetch (``[image_import]``); stores reading URLs check
        #: every redirect and connection with it too
        self.url_filter = url_filter.URLFilter(conf)
        for store in self.stores.values():
            guard = getattr(store, "set_url_guard", None)
            if guard is not None:
                guard(self.url_filter)

    # --- records ----------------------------------------------------------------------------

    @schemas.accepts(name=s.NAME, disk_format=s.enum(*DISK_FORMATS),
                     container_format=s.enum(*CONTAINER_FORMATS),
                     visibility=s.enum("private", "public"), protected=s.BOOLEAN,
                     properties=s.optional(_PROPERTIES))
    @policy.authorize("image:create")
    def create(self, name: str, disk_format: str = "raw", container_format: str = "bare",
               visibility: str = "private", protected: bool = False,
               properties: Mapping[str, str] | None = None) -> Image:
        """A new image record of the caller's project, ``queued`` until :meth:`upload`."""
        if visibility == "public":
            self._authorize("image:publicize")
        validate.name("name", name)
        row = models.Image(id=str(uuid.uuid4()), name=name, path="", disk_format=disk_format,
                           container_format=container_format, size_bytes=0,
                           properties=validate.string_map("properties", properties),
                           project_id=self.project_id, visibility=visibility,
                           protected=protected, status="queued")
        with self.db.transaction() as session:
            self.quotas.check(session, self.project_id, {"image_count_total": 1})
            session.add(row)
        return self._notify("image.create", _view(row))

    def _row(self, session: Any, image_id: str) -> models.Image:
        image = models.Image
        row = session.execute(self._scope(
            sa.select(image).where(image.id == image_id), image.project_id,
            visible=image.visibility == "public")).scalar_one_or_none()
        if row is None:
            raise exception.NotFound("image", image_id)
        return row  # type: ignore[no-any-return]

    def _owned(self, session: Any, image_id: str, rule: str) -> models.Image:
        """The image, if the caller may change it (``rule`` on its project)."""
        row = self._row(session, image_id)
        self._authorize(rule, row.project_id)
        return row

    @schemas.accepts(image_id=_ID)
    @policy.authorize("image:get")
    def get(self, image_id: str) -> Image:
        """An image of the caller's project or a public one; ``NotFound`` otherwise."""
        with self.db.read() as session:
            return _views(session, [self._row(session, image_id)])[0]

    @schemas.accepts(all_projects=s.BOOLEAN, status=s.optional(s.enum(*STATUSES)),
                     limit=s.LIMIT, marker=s.optional(_ID),
                     sort_key=s.enum("name", "created_at", "id"), sort_dir=s.SORT_DIR)
    @policy.authorize("image:list")
    def list_images(self, *, all_projects: bool = False, status: str | None = None,
                    limit: int | None = None, marker: str | None = None,
                    sort_key: str = "name", sort_dir: str = "asc") -> list[Image]:
        """The caller's project's images and public ones (``all_projects``: every project's,
        an admin rule), ``limit`` at a time after the image ``marker``."""
        image = models.Image
        query = self._scope_list(sa.select(image), image.project_id, all_projects, "image:list",
                                 visible=image.visibility == "public")
        if status is not None:
            query = query.where(image.status == status)
        with self.db.read() as session:
            query = paging.page(session, query, image.id,
                                {"name": image.name, "created_at": image.created_at,
                                 "id": image.id}, limit=limit, marker=marker,
                                sort_key=sort_key, sort_dir=sort_dir, resource="image")
            return _views(session, list(session.execute(query).scalars()))

    @schemas.accepts(image_id=_ID, name=s.OPTIONAL_NAME, protected=s.optional(s.BOOLEAN))
    @policy.authorize("image:update")
    def update(self, image_id: str, *, name: str | None = None,
               protected: bool | None = None) -> Image:
        """Rename an image or set its ``protected`` flag."""
        if name is not None:
            validate.name("name", name)
        with self.db.transaction() as session:
            row = self._owned(session, image_id, "image:update")
            if name is not None:
                row.name = name
            if protected is not None:
                row.protected = protected
            session.flush()
            image = _view(row)
        return self._notify("image.update", image)

    @schemas.accepts(image_id=_ID)
    @policy.authorize("image:delete")
    def delete(self, image_id: str) -> None:
        """Delete an image and its stored bytes. ``Conflict`` for a protected image, one
        whose upload is running or one servers were built from (their disks may back onto
        it)."""
        with self.db.transaction() as session:
            row = self._owned(session, image_id, "image:delete")
            if row.protected:
                raise exception.Conflict(f"image {image_id} is protected: unprotect it first "
                                         "(update(protected=False))")
            if row.status == "saving":
                raise exception.InvalidState(f"image {image_id} is being uploaded")
            for what, count in self.in_use_checks:
                users = count(session, image_id)
                if users:
                    raise exception.Conflict(f"image {image_id} is used by {users} {what}(s)")
            store, location, status = row.store, row.location, row.status
            gone = dataclasses.replace(_view(row), status="deleted")
            session.delete(row)
            session.execute(sa.delete(models.ImageFault).where(
                models.ImageFault.image_id == image_id))
        # after the record: a failure here leaves bytes no record names (found by the
        # store's locations()), never a record naming bytes that are gone
        if store is not None and location is not None and store in self.stores:
            self.stores[store].delete(location)
        if status == "killed":  # what the dead upload left, if its clean-up could not
            self._discard(image_id)
        self._notify("image.delete", gone)

    def _set_status(self, image_id: str, rule: str, wanted: str, allowed: tuple[str, ...]
                    ) -> Image:
        with self.db.transaction() as session:
            row = self._owned(session, image_id, rule)
            if row.status not in allowed:
                raise exception.InvalidState(f"image {image_id} is {row.status}, not "
                                             f"{' or '.join(allowed)}")
            row.status = wanted
            session.flush()
            image = _view(row)
        return self._notify("image.update", image)

    @schemas.accepts(image_id=_ID)
    @policy.authorize("image:deactivate")
    def deactivate(self, image_id: str) -> Image:
        """Hide an active image from use: no download, no new server or volume from it."""
        return self._set_status(image_id, "image:deactivate", "deactivated",
                                ("active", "deactivated"))

    @schemas.accepts(image_id=_ID)
    @policy.authorize("image:reactivate")
    def reactivate(self, image_id: str) -> Image:
        """Make a deactivated image active again."""
        return self._set_status(image_id, "image:reactivate", "active",
                                ("deactivated", "active"))

    # --- data -------------------------------------------------------------------------------

    def _store(self, name: str | None) -> tuple[str, ImageStore]:
        chosen = name or self.conf.image.default_store
        store = self.stores.get(chosen)
        if store is None:
            raise exception.Invalid("store", f"is not one of this cloud's image stores "
                                    f"({', '.join(sorted(self.stores)) or 'none'})", chosen)
        if not type(store).capabilities.get("writable", False):
            raise exception.Invalid("store", "is read-only (its images cannot be uploaded)",
                                    chosen)
        return chosen, store

    @schemas.accepts(image_id=_ID, data=_DATA, size=s.optional(s.integer(0, 2**62)),
                     sha256=s.optional(_SHA256), store=s.optional(s.NAME))
    @policy.authorize("image:upload")
    def upload(self, image_id: str, data: Any, *, size: int | None = None,
               sha256: str | None = None, store: str | None = None) -> Image:
        """Store ``data`` (bytes or a binary file object) as the image's bytes and make it
        active. ``size`` and ``sha256``, when given, must match what was stored
        (``Invalid`` naming them otherwise); the stored bytes must be the declared disk
        format and pass its safety checks (``Invalid`` naming ``data``). Over ``[image]
        image_size_cap``: ``Invalid`` naming ``size``. Over the owner project's
        ``image_size_total`` (declared size: at once; unknown: as soon as the stream crosses
        it; checked again as the image becomes active) or ``image_count_uploading``:
        ``OverQuota``. Any refusal keeps nothing: the image stays ``queued``."""
        if isinstance(data, (bytes, bytearray, memoryview)):
            stream: Any = io.BytesIO(bytes(data))
        elif callable(getattr(data, "read", None)):
            stream = data
        else:
            raise exception.Invalid("data", "must be bytes or a binary file object "
                                    f"(read(n)), not {type(data).__name__}")
        store_name, target = self._store(store)
        me = uploads.owner()
        with self.db.transaction() as session:
            row = self._owned(session, image_id, "image:upload")
            if row.status not in UPLOADABLE:
                raise exception.InvalidState(f"image {image_id} is {row.status}: only a "
                                             "queued or killed image takes an upload")
            project_id = row.project_id
            self.quotas.check(session, project_id, {"image_count_uploading": 1})
            # refused now if the declared size is over what is left (unknown size: the
            # upload is stopped when it crosses it)
            room = self._room(session, project_id, size or 0)
            previous = row.status
            row.status = "saving"  # one upload at a time
            row.upload_owner, row.upload_heartbeat = me, utcnow()
            disk_format = row.disk_format
            prepared = _view(row)
        self._notify("image.prepare", prepared)
        uploads.started(image_id)
        try:
            if previous == "killed":  # what the dead upload left, if its clean-up could not
                self._discard(image_id)
            image = self._upload(image_id, project_id, stream, size, sha256, store_name,
                                 target, disk_format, me, room)
        except Exception as err:
            # Glance's failed upload: image.upload at priority ERROR, with the fault
            self.notifier.error("image.upload", lambda: {"id": image_id}, err, "upload")
            raise
        finally:
            uploads.finished(image_id)
        self._notify("image.upload", image)
        return self._notify("image.activate", image)

    def _room(self, session: Any, project_id: str, adding: int) -> int | None:
        """Bytes ``project_id`` may still store under its ``image_size_total`` quota (None:
        unlimited); ``OverQuota`` if ``adding`` bytes do not fit. Holds the project's quota
        lock to the end of the caller's transaction, so the bytes it counts stay counted."""
        limit = self.quotas.limit(session, project_id, "image_size_total")
        if limit < 0:
            return None
        self.quotas.lock(session, project_id)
        used = int(session.execute(sa.select(image_quotas.stored_bytes(project_id))).scalar_one())
        room = limit * image_quotas.MIB - used
        if adding > room:
            raise _over_size(project_id, adding, used, limit)
        return room

    def _mine(self, image_id: str, me: str) -> Any:
        """Only while the image is still this process's upload (not declared interrupted)."""
        return (sa.update(models.Image)
                .where(models.Image.id == image_id, models.Image.status == "saving",
                       models.Image.upload_owner == me))

    def _upload(self, image_id: str, project_id: str, stream: Any, size: int | None,
                sha256: str | None, store_name: str, target: ImageStore, disk_format: str,
                me: str, room: int | None) -> Image:
        def beat() -> None:
            with self.db.transaction() as session:
                if _changed(session, self._mine(image_id, me).values(
                        upload_heartbeat=utcnow())) != 1:
                    raise exception.InvalidState(
                        f"image {image_id}: this upload was declared interrupted meanwhile "
                        "(no progress for [image] interrupted_upload_timeout); upload again")

        timeout = self.conf.image.interrupted_upload_timeout
        try:
            reporter = copy_progress.Reporter(self.db, "image", image_id, "upload", size)
            reporting = _Heartbeat(stream, beat, timeout / HEARTBEATS_PER_TIMEOUT, reporter)
            cap = self.conf.image.image_size_cap
            try:
                with reporter:
                    stored = target.add(image_id, reporting, size,
                                        cap if room is None else min(cap, room))
            except exception.Invalid as err:
                if reporting.stopped is not None:
                    raise reporting.stopped from None
                if isinstance(err, SizeLimitExceeded) and room is not None and room < cap:
                    # the quota's limit stopped it, not the size cap: say so
                    with self.db.read() as session:
                        limit = self.quotas.limit(session, project_id, "image_size_total")
                    raise _over_size(project_id, reporting.bytes,
                                     limit * image_quotas.MIB - room, limit,
                                     stopped=True) from None
                raise
            try:
                if sha256 is not None and stored.sha256 != sha256:
                    raise exception.Invalid("sha256", f"does not match the uploaded data's "
                                            f"({stored.sha256})", sha256)
                inspected = self._inspect(target, stored.location, disk_format)
                local = getattr(target, "local_path", None)
                with self.db.transaction() as session:
                    # again, under the quota lock: uploads that ended meanwhile count now
                    self._room(session, project_id, stored.size)
                    if _changed(session, self._mine(image_id, me).values(
                            status="active", size_bytes=stored.size, sha256=stored.sha256,
                            store=store_name, location=stored.location,
                            virtual_size=inspected.virtual_size,
                            # a store on this host's file system: servers boot from the file
                            path=local(stored.location) if local is not None else "",
                            upload_owner=None, upload_heartbeat=None)) != 1:
                        raise exception.InvalidState(
                            f"image {image_id}: this upload was declared interrupted "
                            "meanwhile; its bytes are not kept (upload again)")
                    return _view(self._row(session, image_id))
            except BaseException:
                target.delete(stored.location)
                raise
        except BaseException:
            with self.db.transaction() as session:
                session.execute(self._mine(image_id, me).values(
                    status="queued", upload_owner=None, upload_heartbeat=None))
            raise

    # --- interrupted uploads ----------------------------------------------------------------

    @schemas.accepts()
    @policy.authorize("image:reset_interrupted_uploads")
    def reset_interrupted_uploads(self) -> list[str]:
        """Mark ``killed`` every image whose upload's process died (:mod:`stackcore.image.
        uploads`), recording a fault, and remove what the upload left in the stores. Run at
        every start-up of a cloud with the image family; returns the image ids it reset."""
        return self._reap_interrupted_uploads()

    def _reap_interrupted_uploads(self) -> list[str]:
        """What :meth:`reset_interrupted_uploads` does, without its policy check: the image
        family's own start-up and periodic reaper call this (they act for the cloud, not for
        a caller, and checking a rule would load oslo.policy and parse every rule during
        ``Cloud()`` - about a third of the embedded start-up)."""
        now = utcnow()
        timeout = self.conf.image.interrupted_upload_timeout
        with self.db.read() as session:
            rows = session.execute(sa.select(
                models.Image.id, models.Image.upload_owner, models.Image.upload_heartbeat)
                .where(models.Image.status == "saving")).all()
        reset = []
        for image_id, owner, heartbeat in rows:
            why = uploads.dead_because(image_id, owner, heartbeat, now, timeout)
            if why is None:
                continue
            err = exception.StackcoreError(f"upload interrupted: {why}")
            with self.db.transaction() as session:
                # only if still the upload judged dead (it may have ended since the read)
                same_owner = (models.Image.upload_owner.is_(None) if owner is None
                              else models.Image.upload_owner == owner)
                if _changed(session, sa.update(models.Image).where(
                        models.Image.id == image_id, models.Image.status == "saving",
                        same_owner).values(status="killed", upload_owner=None,
                                           upload_heartbeat=None)) != 1:
                    continue
                session.add(faults.new(models.ImageFault, err, step="upload",
                                       exc_class="UploadInterrupted", image_id=image_id,
                                       host=uploads.host()))
            LOG.warning("image %s: %s", image_id, err)
            copy_progress.clear(self.db, "image", image_id)  # what its dead process left
            reset.append(image_id)
            try:
                self._discard(image_id)
            except Exception as cleanup:  # noqa: BLE001 - recorded; upload or delete retries
                LOG.warning("image %s: removing its partial data failed: %s", image_id, cleanup)
                with self.db.transaction() as session:
                    session.add(faults.new(models.ImageFault, cleanup, step="cleanup",
                                           image_id=image_id, host=uploads.host()))
        return reset

    def _discard(self, image_id: str) -> list[str]:
        """Remove what an interrupted upload of ``image_id`` left in the writable stores
        (partial or complete: the record never named it). A store without ``discard`` keeps
        it (its :meth:`~ImageStore.list_backend_objects` shows it); logged."""
        removed = []
        for name, store in sorted(self.stores.items()):
            if not type(store).capabilities.get("writable", False):
                continue
            try:
                removed += store.discard(image_id)
            except exception.CapabilityNotSupported:
                LOG.warning("image store %s cannot remove what an interrupted upload of image "
                            "%s left (no discard): see its backend objects", name, image_id)
        return removed

    @schemas.accepts(image_id=_ID)
    @policy.authorize("image:faults")
    def faults(self, image_id: str) -> list[Fault]:
        """The faults recorded for an image (why it was ``killed``), oldest first."""
        with self.db.read() as session:
            self._row(session, image_id)
            rows = session.execute(sa.select(models.ImageFault).where(
                models.ImageFault.image_id == image_id).order_by(models.ImageFault.id)
            ).scalars().all()
            return [faults.view(r) for r in rows]

    @schemas.accepts(image_id=_ID, url=s.string(4096), store=s.optional(s.NAME))
    @policy.authorize("image:import")
    def import_from_url(self, image_id: str, url: str, *, store: str | None = None) -> Image:
        """Upload the image's bytes from an ``http(s)`` URL, read through this cloud's
        read-only ``web`` store (which must be in ``[image] stores``), into ``store``; the
        same checks as :meth:`upload` (the size the server reports must be the size read). An
        admin rule by default: the cloud's hosts fetch what the URL names. The URL (and every
        redirect, and the address connected to) must pass ``[image_import]``
        (:mod:`stackcore.image.url_filter`): ``Invalid`` naming the URL and the rule
        otherwise, nothing fetched, the image unchanged."""
        readers = [st for st in self.stores.values()
                   if {"http", "https"} & set(type(st).SCHEMES)]
        if not readers:
            raise exception.Invalid("url", "no image store of this cloud reads http(s) URLs "
                                    "(add 'web' to [image] stores)", url)
        self.url_filter.check_url(url)
        size = readers[0].get_size(url)
        chunks = readers[0].get(url)
        try:
            return self.upload(image_id, _IteratorReader(chunks), size=size, store=store)
        finally:
            close_chunks(chunks)

    def _inspect(self, store: ImageStore, location: str,
                 disk_format: str) -> image_format.Inspected:
        """Inspect the bytes as stored: in place when the store has them in a local file,
        else from a temporary copy read back from the store."""
        local = getattr(store, "local_path", None)
        if local is not None:
            return image_format.inspect(local(location), disk_format, field="data")
        scratch = self.conf.state_path or None
        with tempfile.NamedTemporaryFile(prefix="image-inspect-", dir=scratch) as copy:
            store.download_to(location, copy.fileno())
            return image_format.inspect(copy.name, disk_format, field="data")

    @schemas.accepts(image_id=_ID, offset=s.integer(0, 2**62),
                     length=s.optional(s.integer(0, 2**62)))
    @policy.authorize("image:download")
    def download(self, image_id: str, *, offset: int = 0,
                 length: int | None = None) -> Iterator[bytes]:
        """The image's bytes (from ``offset``, at most ``length``) as an iterator of chunks.
        ``InvalidState`` unless the image is active."""
        check_range(offset, length)
        with self.db.read() as session:
            row = self._row(session, image_id)
            status, store, location, path = row.status, row.store, row.location, row.path
            owner = row.project_id
        if status != "active":
            raise exception.InvalidState(f"image {image_id} is {status}, not active")
        if store is not None and location is not None:
            if store not in self.stores:
                raise exception.BackendUnavailable(f"image {image_id} is in store {store!r}, "
                                                   "which this cloud does not configure")
            return self._sending(image_id, owner, self.stores[store].get(location, offset,
                                                                         length))
        try:  # a registered local file
            handle = open(path, "rb")  # closed by the ChunkReader
        except FileNotFoundError:
            raise exception.NotFound("image file", path) from None
        handle.seek(offset)
        return self._sending(image_id, owner, ChunkReader(handle, length))

    def _sending(self, image_id: str, owner: str, chunks: Iterator[bytes]) -> Iterator[bytes]:
        """The chunks; with notifications on, Glance's ``image.send`` once they were read to
        the end (``bytes_sent``; a download dropped half-way sends nothing), sent as the
        request that asked for the download (the reader may iterate after the call)."""
        if not self.notifier.enabled:
            return chunks
        asked = request_context.current()

        def counted() -> Iterator[bytes]:
            sent = 0
            try:
                for chunk in chunks:
                    sent += len(chunk)
                    yield chunk
            finally:
                close_chunks(chunks)
            with request_context.serving(asked):
                self.notifier.info("image.send", lambda: {
                    "image_id": image_id, "owner_id": owner, "bytes_sent": sent})

        return counted()

    # --- stores -----------------------------------------------------------------------------

    @schemas.accepts()
    @policy.authorize("image:store:list")
    def list_stores(self) -> list[Store]:
        """The configured stores with their stats (schema-checked)."""
        found = []
        for name, store in sorted(self.stores.items()):
            report = stats.validate(store.get_stats(), f"image store {name!r}")
            found.append(Store(name, type(store).__name__,
                               bool(type(store).capabilities.get("writable", False)), report))
        return found

