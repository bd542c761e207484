"""The volume family's countable resources, counted from its rows (see
:mod:`stackcore.project.quota`). Every ``[quota]`` default is -1 (unlimited) (Cinder's
defaults: 10 volumes, 10 snapshots, 1000 GiB, 10 backups, 1000 backup GiB);
``gigabytes_<type>`` limits one volume type's capacity per project."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.sql.elements import BindParameter, ColumnElement

from stackcore.project.resources import PER_TYPE_PREFIX, UNLIMITED, Resource

_HERE = "stackcore.volume.quotas"

RESOURCES = [
    Resource("volumes", UNLIMITED, "Volumes per project", f"{_HERE}:count"),
    Resource("snapshots", UNLIMITED, "Volume snapshots per project", f"{_HERE}:count"),
    Resource("gigabytes", UNLIMITED, "GiB of a project's volumes and snapshots",
             f"{_HERE}:count"),
    Resource("backups", UNLIMITED, "Volume backups per project", f"{_HERE}:count"),
    Resource("backup_gigabytes", UNLIMITED, "GiB of a project's volume backups (each counts "
             "its volume's size, Cinder's rule)", f"{_HERE}:count"),
]


def count(project_id: str | BindParameter[str], resource: str) -> ColumnElement[int]:
    """Usage of ``resource`` by ``project_id``: volumes and snapshots not deleted, and their
    GiB (a snapshot counts its volume's size, Cinder's rule); ``gigabytes_<type>`` only those
    of volumes of that type."""
    import sqlalchemy as sa

    from stackcore.volume import models
    from stackcore.volume.states import SnapshotStatus, VolumeStatus

    volume, snapshot = models.Volume, models.Snapshot
    if resource in ("backups", "backup_gigabytes"):
        from stackcore.volume.states import BackupStatus

        backup = models.VolumeBackup
        what = sa.func.count() if resource == "backups" else sa.func.coalesce(
            sa.func.sum(backup.size), 0)
        return sa.select(what).select_from(backup).where(
            backup.project_id == project_id, backup.status != BackupStatus.DELETED
        ).scalar_subquery()
    # a migration's hidden second copy (RESERVED) is the framework's, not the project's
    live_volumes = [volume.project_id == project_id,
                    volume.status.not_in([VolumeStatus.DELETED, VolumeStatus.RESERVED])]
    live_snapshots = [snapshot.project_id == project_id,
                      snapshot.status != SnapshotStatus.DELETED]
    if resource == "volumes":
        return sa.select(sa.func.count()).select_from(volume).where(
            *live_volumes).scalar_subquery()
    if resource == "snapshots":
        return sa.select(sa.func.count()).select_from(snapshot).where(
            *live_snapshots).scalar_subquery()
    volumes = sa.select(sa.func.coalesce(sa.func.sum(volume.size), 0)).where(*live_volumes)
    snapshots = sa.select(sa.func.coalesce(sa.func.sum(snapshot.volume_size), 0)).where(
        *live_snapshots)
    if resource.startswith(PER_TYPE_PREFIX):
        vtype = models.VolumeType
        type_id = sa.select(vtype.id).where(vtype.name == resource[len(PER_TYPE_PREFIX):])
        volumes = volumes.where(volume.volume_type_id.in_(type_id))
        snapshots = snapshots.join(volume, volume.id == snapshot.volume_id).where(
            volume.volume_type_id.in_(type_id))
    return volumes.scalar_subquery() + snapshots.scalar_subquery()
