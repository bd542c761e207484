"""Atomic resource claims on compute hosts.

A claim is one conditional ``UPDATE`` of the host's ``alloc_*`` counters that only matches while
the host still has room under its allocation ratios, plus one ``allocations`` row recording what
the instance holds. Because the capacity check and the increment are the same statement, two
concurrent claims can never both succeed past the limit - on SQLite (writes are serialised) and
on PostgreSQL (the second UPDATE re-checks its WHERE against the committed row) alike, with no
application-level lock.
"""

from __future__ import annotations

import dataclasses

import sqlalchemy as sa
from sqlalchemy.orm import Session

from stackcore.compute import models


@dataclasses.dataclass(frozen=True)
class Ratios:
    cpu: float
    ram: float
    disk: float


@dataclasses.dataclass(frozen=True)
class Request:
    vcpus: int
    memory_mb: int
    disk_gb: int


def claim(session: Session, host: str, instance_uuid: str, req: Request, ratios: Ratios) -> bool:
    """Consume ``req`` on ``host`` for ``instance_uuid``; False if the host has no room."""
    node = models.ComputeNode
    result = session.execute(
        sa.update(node)
        .where(
            node.host == host,
            node.reporting.is_(True),
            node.alloc_vcpus + req.vcpus <= node.vcpus * ratios.cpu,
            node.alloc_memory_mb + req.memory_mb <= node.memory_mb * ratios.ram,
            node.alloc_disk_gb + req.disk_gb <= node.local_gb * ratios.disk,
        )
        .values(
            alloc_vcpus=node.alloc_vcpus + req.vcpus,
            alloc_memory_mb=node.alloc_memory_mb + req.memory_mb,
            alloc_disk_gb=node.alloc_disk_gb + req.disk_gb,
            alloc_instances=node.alloc_instances + 1,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    session.add(
        models.Allocation(
            instance_uuid=instance_uuid,
            host=host,
            vcpus=req.vcpus,
            memory_mb=req.memory_mb,
            disk_gb=req.disk_gb,
        )
    )
    return True


def release(session: Session, instance_uuid: str) -> bool:
    """Give back what ``instance_uuid`` holds. Idempotent: False if it held nothing."""
    alloc = models.Allocation
    row = session.execute(
        sa.delete(alloc).where(alloc.instance_uuid == instance_uuid).returning(
            alloc.host, alloc.vcpus, alloc.memory_mb, alloc.disk_gb
        )
    ).first()
    if row is None:
        return False
    node = models.ComputeNode
    session.execute(
        sa.update(node)
        .where(node.host == row.host)
        .values(
            alloc_vcpus=node.alloc_vcpus - row.vcpus,
            alloc_memory_mb=node.alloc_memory_mb - row.memory_mb,
            alloc_disk_gb=node.alloc_disk_gb - row.disk_gb,
            alloc_instances=node.alloc_instances - 1,
        )
        .execution_options(synchronize_session=False)
    )
    return True


def move_to_migration(session: Session, instance_uuid: str, migration_id: str) -> bool:
    """Hand the claim ``instance_uuid`` holds over to its migration ``migration_id`` (same
    host, same amounts): the source host keeps the room while the server claims its
    destination. False if the server held no claim. Nova's placement does the same with the
    migration as the allocation's consumer."""
    alloc = models.Allocation
    moved = session.execute(
        sa.update(alloc).where(alloc.instance_uuid == instance_uuid)
        .values(instance_uuid=migration_id).execution_options(synchronize_session=False))
    return bool(moved.rowcount)  # type: ignore[attr-defined]


def move_back_from_migration(session: Session, instance_uuid: str, migration_id: str) -> bool:
    """Undo :func:`move_to_migration` (a revert, or a migration that failed): whatever the
    server claimed meanwhile (its destination) is released first, then the migration's claim
    on the source is the server's again. Idempotent: False if the migration held nothing."""
    alloc = models.Allocation
    held = session.execute(sa.select(alloc.host).where(
        alloc.instance_uuid == migration_id)).scalar_one_or_none()
    if held is None:
        return False
    release(session, instance_uuid)
    session.execute(
        sa.update(alloc).where(alloc.instance_uuid == migration_id)
        .values(instance_uuid=instance_uuid).execution_options(synchronize_session=False))
    return True
