"""SQLAlchemy models of the volume family (Alembic branch ``volume``).

Volumes, snapshots and attachments are soft-deleted (status ``deleted``) so repeated deletes
stay idempotent. Capacity claims live on :class:`VolumePool`: ``allocated_capacity_gb`` is
changed only by conditional UPDATEs (see :mod:`stackcore.volume.placement.claims`) and each volume
records in ``allocated_gb`` what it holds, so a release can never give back more than was
taken.
"""

# No `from __future__ import annotations`: SQLAlchemy would eval every string `Mapped[...]`
# annotation when mapping, a tenth of declaring the models at every start-up (issue 18).

import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from stackcore.db.models import Base, project_column, user_column, utcnow


class VolumeType(Base):
    __tablename__ = "volume_types"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    extra_specs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: a private type is usable by the projects of :class:`VolumeTypeProject` only
    is_public: Mapped[bool] = mapped_column(Boolean, default=True, server_default=sa.true())
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=utcnow)


class VolumeTypeProject(Base):
    """A project a private volume type is shared with."""

    __tablename__ = "volume_type_projects"

    volume_type_id: Mapped[str] = mapped_column(ForeignKey("volume_types.id",
                                                           ondelete="CASCADE"), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(255), primary_key=True)


class Volume(Base):
    __tablename__ = "volumes"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    display_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    project_id: Mapped[str] = project_column()
    user_id: Mapped[str] = user_column()
    size: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(32), index=True)
    volume_type_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    availability_zone: Mapped[str | None] = mapped_column(String(255), nullable=True)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    host: Mapped[str | None] = mapped_column(String(255), nullable=True, index=True)
    pool: Mapped[str | None] = mapped_column(String(255), nullable=True)
    allocated_gb: Mapped[int] = mapped_column(Integer, default=0)
    multiattach: Mapped[bool] = mapped_column(Boolean, default=False)
    snapshot_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    source_volid: Mapped[str | None] = mapped_column(String(36), nullable=True)
    image_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    #: made as a copy-on-write clone of the image (driver capability ``clone_image``): the
    #: image's stored bytes are this volume's parent, so the image is not deleted while the
    #: volume exists (``cloud.image`` asks, see the volume family)
    image_clone: Mapped[bool] = mapped_column(Boolean, default=False,
                                              server_default=sa.false())
    provider_location: Mapped[str | None] = mapped_column(Text, nullable=True)
    provider_auth: Mapped[str | None] = mapped_column(Text, nullable=True)
    driver_data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    previous_status: Mapped[str | None] = mapped_column(String(32), nullable=True)
    #: Cinder's field: ``migrating`` / ``success`` / ``error`` for the volume's last
    #: migration; ``target:<volume id>`` marks the hidden :attr:`VolumeStatus.RESERVED` row
    #: holding the claim of that volume's other copy
    migration_status: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=utcnow,
                                                          onupdate=utcnow)
    deleted_at: Mapped[datetime.datetime | None] = mapped_column(DateTime, nullable=True)


class Snapshot(Base):
    __tablename__ = "volume_snapshots"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    volume_id: Mapped[str] = mapped_column(ForeignKey("volumes.id"), index=True)
    display_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    project_id: Mapped[str] = project_column()
    user_id: Mapped[str] = user_column()
    volume_size: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(32), index=True)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    provider_location: Mapped[str | None] = mapped_column(Text, nullable=True)
    driver_data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=utcnow)
    deleted_at: Mapped[datetime.datetime | None] = mapped_column(DateTime, nullable=True)


class Attachment(Base):
    """One connection of a volume to a host (``connector``), optionally for a server.

    The connector is kept (reconciliation re-exports, detach terminates with it); the
    connection_info is not, because it can carry CHAP secrets."""

    __tablename__ = "volume_attachments"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    volume_id: Mapped[str] = mapped_column(ForeignKey("volumes.id"), index=True)
    instance_uuid: Mapped[str | None] = mapped_column(String(36), nullable=True)
    mountpoint: Mapped[str | None] = mapped_column(String(255), nullable=True)
    connector: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    attach_status: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=utcnow)
    detached_at: Mapped[datetime.datetime | None] = mapped_column(DateTime, nullable=True)


class VolumeBackup(Base):
    """A backup of a volume's data, held by the backup driver (``backup_driver``).

    Not a foreign key to the volume: a backup outlives its volume (that is what it is for).
    ``parent_id`` is the backup an incremental one builds on; such a parent cannot be deleted
    while a live backup names it. ``checksum`` (``sha256:<hex>`` of the volume's bytes at
    backup time) is verified on every restore before the target volume is written."""

    __tablename__ = "volume_backups"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    volume_id: Mapped[str] = mapped_column(String(36), index=True)
    display_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    project_id: Mapped[str] = project_column()
    user_id: Mapped[str] = user_column()
    size: Mapped[int] = mapped_column(Integer)  # GiB of the volume backed up
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(32), index=True)
    host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    backup_driver: Mapped[str] = mapped_column(String(255))
    parent_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    is_incremental: Mapped[bool] = mapped_column(Boolean, default=False)
    location: Mapped[str | None] = mapped_column(Text, nullable=True)
    driver_data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    checksum: Mapped[str | None] = mapped_column(String(80), nullable=True)
    stored_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    #: while ``restoring``: the volume being written
    restore_volume_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=utcnow,
                                                          onupdate=utcnow)
    deleted_at: Mapped[datetime.datetime | None] = mapped_column(DateTime, nullable=True)


class VolumeFault(Base):
    """Why a volume, snapshot or backup failed (``resource`` = ``volume`` | ``snapshot`` |
    ``backup``)."""

    __tablename__ = "volume_faults"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    resource: Mapped[str] = mapped_column(String(16))
    resource_id: Mapped[str] = mapped_column(String(36), index=True)
    exc_class: Mapped[str] = mapped_column(String(255))
    message: Mapped[str] = mapped_column(Text)
    step: Mapped[str] = mapped_column(String(64))
    host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=utcnow)


class VolumeBackend(Base):
    """One volume backend (``host@backend``): its latest validated stats report."""

    __tablename__ = "volume_backends"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    host: Mapped[str] = mapped_column(String(255), unique=True)
    volume_backend_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    stats: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    reporting: Mapped[bool] = mapped_column(Boolean, default=False)
    report_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    reported_at: Mapped[datetime.datetime | None] = mapped_column(DateTime, nullable=True)


class VolumePool(Base):
    """One pool of a backend, with its claimed capacity.

    ``headroom_thin_gb`` / ``headroom_thick_gb`` are the GiB placeable at report time (from
    :func:`stackcore.volume.placement.capacity.headroom`; NULL = no limit) and
    ``allocated_at_report``
    the allocation then; a claim succeeds while
    ``allocated + size - allocated_at_report <= headroom``.
    """

    __tablename__ = "volume_pools"
    __table_args__ = (UniqueConstraint("host", "pool_name", name="uniq_volume_pools0host0pool"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    host: Mapped[str] = mapped_column(String(255), index=True)
    pool_name: Mapped[str] = mapped_column(String(255))
    stats: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    present: Mapped[bool] = mapped_column(Boolean, default=True)
    allocated_capacity_gb: Mapped[int] = mapped_column(Integer, default=0)
    allocated_at_report: Mapped[int] = mapped_column(Integer, default=0)
    headroom_thin_gb: Mapped[float | None] = mapped_column(Float, nullable=True)
    headroom_thick_gb: Mapped[float | None] = mapped_column(Float, nullable=True)
    reported_at: Mapped[datetime.datetime | None] = mapped_column(DateTime, nullable=True)
