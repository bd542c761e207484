"""SQLAlchemy 2.x models of the core tables (services, compute).

Each family adds its own module of models on the same :class:`Base` and its own Alembic
branch; this module holds what every deployment needs. Schema changes are made by Alembic
migrations only (``stackcore/db/migrations``); a unit test compares the migrated schema with
these models so the two cannot drift.
"""

from __future__ import annotations

import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Service(Base):
    """A running service (compute, volume, agent...) and its heartbeat."""

    __tablename__ = "services"
    __table_args__ = (UniqueConstraint("host", "binary", name="uniq_services0host0binary"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    host: Mapped[str] = mapped_column(String(255))
    binary: Mapped[str] = mapped_column(String(255))
    topic: Mapped[str] = mapped_column(String(255))
    availability_zone: Mapped[str] = mapped_column(String(255), default="nova")
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    disabled_reason: Mapped[str | None] = mapped_column(String(255), nullable=True)
    report_count: Mapped[int] = mapped_column(Integer, default=0)
    last_seen_at: Mapped[datetime.datetime | None] = mapped_column(DateTime, nullable=True)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=utcnow)


class ComputeNode(Base):
    """One hypervisor host: its latest validated stats and its claimed (allocated) totals.

    ``alloc_*`` are the scheduler's claims, changed only by conditional UPDATEs so that
    concurrent placements can never push a host past its allocation ratios. The reported
    ``*_used`` figures are what the driver observed and are informative only.
    """

    __tablename__ = "compute_nodes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    host: Mapped[str] = mapped_column(String(255), unique=True)
    hypervisor_hostname: Mapped[str | None] = mapped_column(String(255), nullable=True)
    hypervisor_type: Mapped[str | None] = mapped_column(String(255), nullable=True)
    vcpus: Mapped[int] = mapped_column(Integer, default=0)
    memory_mb: Mapped[int] = mapped_column(Integer, default=0)
    local_gb: Mapped[int] = mapped_column(Integer, default=0)
    stats: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    reporting: Mapped[bool] = mapped_column(Boolean, default=False)
    report_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    reported_at: Mapped[datetime.datetime | None] = mapped_column(DateTime, nullable=True)
    alloc_vcpus: Mapped[int] = mapped_column(Integer, default=0)
    alloc_memory_mb: Mapped[int] = mapped_column(Integer, default=0)
    alloc_disk_gb: Mapped[int] = mapped_column(Integer, default=0)
    alloc_instances: Mapped[int] = mapped_column(Integer, default=0)


class Flavor(Base):
    __tablename__ = "flavors"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    vcpus: Mapped[int] = mapped_column(Integer)
    ram_mb: Mapped[int] = mapped_column(Integer)
    disk_gb: Mapped[int] = mapped_column(Integer)
    extra_specs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=utcnow)


class Image(Base):
    __tablename__ = "images"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    path: Mapped[str] = mapped_column(Text)
    disk_format: Mapped[str] = mapped_column(String(32))
    size_bytes: Mapped[int] = mapped_column(Integer, default=0)
    properties: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=utcnow)


class Instance(Base):
    """A server. Soft-deleted (``vm_state='deleted'``) so repeated deletes stay idempotent."""

    __tablename__ = "instances"

    uuid: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    flavor_id: Mapped[str] = mapped_column(String(36))
    flavor: Mapped[dict[str, Any]] = mapped_column(JSON)
    image_id: Mapped[str] = mapped_column(String(36))
    availability_zone: Mapped[str | None] = mapped_column(String(255), nullable=True)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    host: Mapped[str | None] = mapped_column(String(255), nullable=True, index=True)
    vm_state: Mapped[str] = mapped_column(String(32), index=True)
    task_state: Mapped[str | None] = mapped_column(String(32), nullable=True)
    power_state: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    launched_at: Mapped[datetime.datetime | None] = mapped_column(DateTime, nullable=True)
    deleted_at: Mapped[datetime.datetime | None] = mapped_column(DateTime, nullable=True)


class InstanceFault(Base):
    __tablename__ = "instance_faults"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    instance_uuid: Mapped[str] = mapped_column(ForeignKey("instances.uuid"), index=True)
    exc_class: Mapped[str] = mapped_column(String(255))
    message: Mapped[str] = mapped_column(Text)
    step: Mapped[str] = mapped_column(String(64))
    host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=utcnow)


class Allocation(Base):
    """The resources an instance holds on a host; one row per instance."""

    __tablename__ = "allocations"

    instance_uuid: Mapped[str] = mapped_column(String(36), primary_key=True)
    host: Mapped[str] = mapped_column(String(255), index=True)
    vcpus: Mapped[int] = mapped_column(Integer)
    memory_mb: Mapped[int] = mapped_column(Integer)
    disk_gb: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=utcnow)
