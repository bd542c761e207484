"""Volume migration between two backends of one volume service (``cloud.volume.migrate``
and a retype that must move), run by the manager of the volume's backend.

Why a module of its own: the migration is the one operation that drives *two* backends - the
volume's and the destination's (another :class:`~stackcore.volume.manager.VolumeManager` of
the same process, :attr:`VolumeManager.siblings`) - and keeps a second row, the hidden
``reserved`` one that holds the claim of the copy the volume is not on. Its states:

* the API moved the volume to ``migrating`` (``retyping``) and made the ``reserved`` row
  (``migration_status`` ``target:<volume id>``) with its claim on the destination pool;
* the reserved row's ``previous_status`` records how far its copy got (``creating``: it may
  exist, half made; ``available``: made - the stats count it as on the backend);
* the switch swaps the two rows' backend, pool, zone, claim and model update in one
  transaction and sets the volume's ``migration_status`` ``success`` (still ``migrating``);
* the old copy is deleted with its backend's driver, its row deleted, and the volume is
  ``available``.

Any failure before the switch deletes the new copy and leaves the volume ``available`` where
it was (``migration_status`` ``error``, a fault naming the step); a restart in the middle does
the same before the switch and finishes after it (:meth:`VolumeMigrations.reconcile`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from stackcore import exception
from stackcore.db import models as core_models
from stackcore.volume import models, objects
from stackcore.volume.placement import claims
from stackcore.volume.states import VolumeStatus

if TYPE_CHECKING:
    from stackcore.volume.manager import VolumeManager

LOG = logging.getLogger(__name__)
#: a reserved row's ``previous_status``: its copy is being made (it may exist, half made)...
COPY_MAKING = "creating"
#: ...or made (on the backend: not in-flight capacity any more)
COPY_MADE = "available"
MOVING = (VolumeStatus.MIGRATING, VolumeStatus.RETYPING)


def owner_of(copy: models.Volume) -> str:
    """The volume a reserved row is the other copy of."""
    return (copy.migration_status or "").removeprefix("target:")


class VolumeMigrations:
    """The migrations whose volume is on the backend of ``volumes``."""

    def __init__(self, volumes: VolumeManager) -> None:
        self.volumes = volumes

    def reconcile(self, volume_id: str, status: str, interrupted: BaseException) -> None:
        """At start-up (or for an orphan): a reserved row of this backend is settled when its
        volume is not moving any more; a volume left moving is undone before its switch,
        finished after it."""
        if status == VolumeStatus.RESERVED:
            self.settle_copy(volume_id)
            return
        with self.volumes.db.read() as session:
            target = session.execute(sa.select(models.Volume.id).where(
                models.Volume.migration_status == f"target:{volume_id}",
                models.Volume.status == VolumeStatus.RESERVED)).scalar_one_or_none()
            row = session.get(models.Volume, volume_id)
            switched = row is not None and row.migration_status == "success"
        if switched:  # cut off after the switch: only the old copy is left to delete
            self.finish(volume_id, target)
        else:
            self.fail(volume_id, target, "migrate_volume", interrupted)

    def _sibling(self, host: str) -> VolumeManager:
        manager = self.volumes.siblings.get(host)
        if manager is None:
            raise exception.ConfigError(
                f"backend {host} is not served by this volume service (which serves "
                f"{', '.join(sorted(self.volumes.siblings)) or self.volumes.host}): a "
                "migration copies between backends of one service")
        return manager

    def _copy_object(self, session: Any, copy: models.Volume) -> objects.Volume:
        """The migrating volume's other copy as a driver sees it: named after the volume
        (``volume-<volume id>``, on the other backend), described by the RESERVED row."""
        return dataclasses.replace(self.volumes.driver_view(copy, session), id=owner_of(copy),
                                   attached=False)

    def migrate_volume(self, volume_id: str, target_id: str) -> None:
        """Move the volume (``migrating``/``retyping``, on this backend) to the backend of
        the RESERVED row ``target_id`` (which holds the claim there), keeping its id.

        Steps: the destination backend must not hold ``volume-<id>`` already (two backends
        sharing one namespace would otherwise make the copy *be* the volume, and cleaning
        it up would destroy it); its driver's ``create_volume`` makes the copy (the target
        row records it made); this driver's ``copy_volume_to_image`` stages the data in a
        local file (sha256 taken); the destination's ``copy_image_to_volume`` writes it;
        the destination's ``copy_volume_to_image`` reads it back and its sha256 must match.
        Then one transaction switches: the volume takes the copy's backend, pool, zone, claim
        and model update (and the target's type, for a retype) with ``migration_status``
        ``success``; the target row takes the old copy's, which this driver then deletes
        (:meth:`settle_copy`) before the volume is ``available`` (:meth:`finish`).

        Any failure before the switch: the copy deleted, its claim given back, the volume
        ``available`` where it was with ``migration_status`` ``error`` and a fault naming
        the step. A restart in the middle does the same (:meth:`reconcile`)."""
        with self.volumes.locked(volume_id):
            with self.volumes.db.read() as session:
                row = session.get(models.Volume, volume_id)
                target = session.get(models.Volume, target_id)
                if row is None or target is None or row.host != self.volumes.host or \
                        row.status not in MOVING or \
                        target.status != VolumeStatus.RESERVED or \
                        target.migration_status != f"target:{volume_id}":
                    return  # settled meanwhile (reconciled), or asked twice
                source = self.volumes.driver_view(row, session)
                copy = self._copy_object(session, target)
                destination = str(target.host)
            self.volumes.notify("volume.migrate.start", volume_id)
            staged = os.path.join(self.volumes.scratch(), f"migrate-{volume_id}.raw")
            readback = os.path.join(self.volumes.scratch(), f"migrate-{volume_id}.check.raw")
            step = "migrate_volume"
            try:
                dest = self._sibling(destination)
                step = "list_backend_objects"
                if copy.name in dest.driver_call(step, dest.driver.list_backend_objects):
                    raise exception.Conflict(
                        f"backend {destination} holds an object named {copy.name} already (does "
                        f"it share its storage with {self.volumes.host}?); not overwritten",
                        volume_id=volume_id)
                step = "create_volume"
                with dest.provisioning():
                    self.volumes.update(target_id, previous_status=COPY_MAKING)
                    update = dest.driver_call(step, dest.driver.create_volume, copy)
                    values = self.volumes.model_update(update, step)
                    self.volumes.update(target_id, previous_status=COPY_MADE, **values)
                copy = dataclasses.replace(copy, **values)
                for path in (staged, readback):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)  # a previous run's, killed
                step = "copy_volume_to_image"
                self.volumes.driver_call(step, self.volumes.driver.copy_volume_to_image,
                                         source, objects.ImageFile(volume_id, staged, "raw"))
                if os.path.getsize(staged) != source.size_bytes:
                    raise exception.DriverError(
                        f"volume {volume_id} staged as {os.path.getsize(staged)} bytes, "
                        f"expected {source.size_bytes}")
                step = "checksum"
                from stackcore.volume.backup.manager import sha256_of

                checksum = sha256_of(staged)
                step = "copy_image_to_volume"
                dest.driver_call(step, dest.driver.copy_image_to_volume, copy,
                                 objects.ImageFile(volume_id, staged, "raw"))
                os.unlink(staged)
                step = "verify"
                dest.driver_call(step, dest.driver.copy_volume_to_image, copy,
                                 objects.ImageFile(volume_id, readback, "raw"))
                copied = sha256_of(readback)
                if copied != checksum:
                    raise exception.DriverError(
                        f"the copy on {destination} reads back {copied}; the volume on "
                        f"{self.volumes.host} is {checksum}")
                step = "switch"
                self._switch(volume_id, target_id)
            except Exception as err:  # noqa: BLE001 - a database outage too: never left migrating
                self.fail(volume_id, target_id, step, err)
                self.volumes.notify("volume.migrate.error", volume_id, err, step)
                return
            finally:
                for path in (staged, readback):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)
            LOG.info("volume %s: migrated from %s to %s (%s)", volume_id, self.volumes.host,
                     destination, checksum)
            self.finish(volume_id, target_id)
        self.volumes.notify("volume.migrate.end", volume_id)

    def finish(self, volume_id: str, target_id: str | None) -> None:
        """After the switch: the old copy deleted (a failure is logged and left to the next
        start), then the volume ``available``."""
        if target_id is not None:
            try:
                self.settle_copy(target_id, switched=True)
            except Exception as err:  # noqa: BLE001 - the volume has moved; only a leftover
                LOG.warning("volume %s: its old copy (row %s) was not deleted (%s); the next "
                            "start of its service tries again", volume_id, target_id, err)
        with self.volumes.db.transaction() as session:
            session.execute(sa.update(models.Volume).where(
                models.Volume.id == volume_id,
                models.Volume.status.in_(list(MOVING)))
                .values(status=VolumeStatus.AVAILABLE, previous_status=None))

    def _switch(self, volume_id: str, target_id: str) -> None:
        """The volume takes its new copy's place, the target row its old copy's, at once."""
        keys = ("host", "pool", "allocated_gb", "provider_location", "provider_auth",
                "driver_data", "availability_zone")
        with self.volumes.db.transaction() as session:
            row = session.get(models.Volume, volume_id, with_for_update=True)
            target = session.get(models.Volume, target_id, with_for_update=True)
            if row is None or target is None or \
                    row.status not in MOVING:
                raise exception.Conflict(f"volume {volume_id} left its migration",
                                         volume_id=volume_id)
            old = {k: getattr(row, k) for k in keys}
            for key in keys:
                setattr(row, key, getattr(target, key))
                setattr(target, key, old[key])
            row.volume_type_id, target.volume_type_id = target.volume_type_id, row.volume_type_id
            # still migrating until its old copy is deleted (a caller waiting for available
            # finds the move finished); "success" tells a restart the switch was made
            row.migration_status = "success"
            row.image_clone = False  # a full copy now: its image is no longer its parent

    def fail(self, volume_id: str, target_id: str | None, step: str,
                        err: BaseException) -> None:
        """Undo a migration that did not switch: the copy deleted (when it was begun), its
        claim given back and its row deleted, the volume back to ``available`` where it was
        with ``migration_status`` ``error`` and the fault. A copy the destination's driver
        could not delete keeps its row (and claim), which the next start settles."""
        LOG.warning("volume %s: migration failed at %s on %s: %s", volume_id, step,
                    self.volumes.host, err)
        cleaned = True
        if target_id is not None:
            try:
                self._delete_copy(target_id)
            except Exception as cleanup:  # noqa: BLE001 - recorded; the volume is unharmed
                cleaned = False
                LOG.error("volume %s: the migration's copy (row %s) was not deleted: %s",
                          volume_id, target_id, cleanup)
        with self.volumes.db.transaction() as session:
            self.volumes.fault("volume", volume_id, step, err, session)
            if target_id is not None and cleaned:
                claims.release(session, target_id)
                session.execute(sa.update(models.Volume).where(models.Volume.id == target_id)
                                .values(status=VolumeStatus.DELETED,
                                        deleted_at=core_models.utcnow()))
            session.execute(sa.update(models.Volume).where(
                models.Volume.id == volume_id,
                models.Volume.status.in_(list(MOVING)))
                .values(status=VolumeStatus.AVAILABLE, previous_status=None,
                        migration_status="error"))

    def _delete_copy(self, target_id: str) -> None:
        """Delete the object of a migration's other copy (described by the RESERVED row
        ``target_id``) with the driver of its backend - never the volume's live copy, and
        nothing when the copy was never begun."""
        with self.volumes.db.read() as session:
            target = session.get(models.Volume, target_id)
            if target is None or target.status != VolumeStatus.RESERVED or \
                    target.previous_status not in (COPY_MAKING, COPY_MADE):
                return
            owner = session.get(models.Volume, owner_of(target))
            if owner is not None and owner.host == target.host and \
                    owner.status != VolumeStatus.DELETED:
                raise exception.Conflict(
                    f"migration copy {target_id} and volume {owner.id} are both on "
                    f"{target.host}; not deleting what may be the volume", volume_id=owner.id)
            copy = self._copy_object(session, target)
            host = str(target.host)
        manager = self._sibling(host) if host != self.volumes.host else self.volumes
        with manager.provisioning():
            manager.driver_call("delete_volume", manager.driver.delete_volume, copy)
            with self.volumes.db.transaction() as session:  # not made any more: not counted
                session.execute(sa.update(models.Volume).where(models.Volume.id == target_id)
                                .values(previous_status=None))

    def settle_copy(self, target_id: str, switched: bool = False) -> None:
        """A RESERVED row whose volume is not migrating any more (it moved, or its migration
        was cut off), or whose volume has switched to its new copy (``switched``): its copy
        deleted, its claim given back, the row deleted. A row whose volume still migrates is
        that migration's (its backend's manager settles it)."""
        with self.volumes.db.read() as session:
            target = session.get(models.Volume, target_id)
            if target is None or target.status != VolumeStatus.RESERVED:
                return
            owner = session.get(models.Volume, owner_of(target))
            if not switched and owner is not None and owner.status in (
                    VolumeStatus.MIGRATING, VolumeStatus.RETYPING):
                return
        self._delete_copy(target_id)
        with self.volumes.db.transaction() as session:
            claims.release(session, target_id)
            session.execute(sa.update(models.Volume).where(models.Volume.id == target_id)
                            .values(status=VolumeStatus.DELETED,
                                    deleted_at=core_models.utcnow()))
