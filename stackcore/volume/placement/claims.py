"""Atomic capacity claims on volume pools.

At each stats report the manager stores, per pool, the headroom :func:`capacity.headroom`
computes (thin and thick) and the allocation at that moment. A claim is then one conditional
``UPDATE``: it adds the size to ``allocated_capacity_gb`` only while
``allocated + size - allocated_at_report <= headroom`` (or the headroom is NULL: no limit).
That is Cinder's ``consume_from_volume`` (each placement lowers virtual free by its size) made
race-free: the check and the increment are one statement, so two concurrent claims can never
both pass the limit, on SQLite and PostgreSQL alike, with no application lock.

Each volume records what it holds in ``volumes.allocated_gb``; releases give back exactly that.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from stackcore import exception
from stackcore.volume import models


def claim(session: Session, host: str, pool: str, volume_id: str, size: int, thin: bool) -> bool:
    """Add ``size`` GiB for ``volume_id`` to the pool; False if it has no room left."""
    p = models.VolumePool
    room = p.headroom_thin_gb if thin else p.headroom_thick_gb
    result = session.execute(
        sa.update(p)
        .where(
            p.host == host,
            p.pool_name == pool,
            p.present.is_(True),
            sa.or_(room.is_(None), p.allocated_capacity_gb + size - p.allocated_at_report <= room),
        )
        .values(allocated_capacity_gb=p.allocated_capacity_gb + size)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    v = models.Volume
    moved = session.execute(
        sa.update(v).where(v.id == volume_id)
        .values(host=host, pool=pool, allocated_gb=v.allocated_gb + size)
        .execution_options(synchronize_session=False)
    )
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        # the row went while it was placed (a volume service removed it as left unplaced):
        # raising rolls the pool's claim back with the transaction - nothing leaks
        raise exception.NotFound("volume", volume_id)
    return True


def release(session: Session, volume_id: str) -> int:
    """Give back everything ``volume_id`` holds. Idempotent: returns the GiB given back."""
    v = models.Volume
    row = session.execute(
        sa.select(v.host, v.pool, v.allocated_gb).where(v.id == volume_id)
    ).first()
    if row is None or not row.allocated_gb or row.host is None:
        return 0
    return release_part(session, volume_id, row.allocated_gb)


def release_part(session: Session, volume_id: str, size: int) -> int:
    """Give back ``size`` GiB of what ``volume_id`` holds (a failed extend's delta)."""
    v = models.Volume
    row = session.execute(
        sa.select(v.host, v.pool, v.allocated_gb).where(v.id == volume_id)
    ).first()
    if row is None or row.host is None:
        return 0
    size = min(size, row.allocated_gb)
    if size <= 0:
        return 0
    p = models.VolumePool
    session.execute(
        sa.update(p).where(p.host == row.host, p.pool_name == row.pool)
        .values(allocated_capacity_gb=p.allocated_capacity_gb - size)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        sa.update(v).where(v.id == volume_id).values(allocated_gb=v.allocated_gb - size)
        .execution_options(synchronize_session=False)
    )
    return size


def claim_more(session: Session, volume_id: str, delta: int, thin: bool) -> bool:
    """Claim ``delta`` more GiB on the pool the volume already lives in (extend)."""
    v = models.Volume
    row = session.execute(sa.select(v.host, v.pool).where(v.id == volume_id)).first()
    if row is None or row.host is None or row.pool is None:
        return False
    return claim(session, row.host, row.pool, volume_id, delta, thin)


def add_existing(session: Session, volume_id: str, size: int) -> None:
    """Count ``size`` GiB of a managed volume on the pool it already lives in (its row's
    host and pool), without the headroom check of :func:`claim`: the space is taken on the
    backend already - refusing would not give it back - and from now on the volume holds it
    like any other (a later release gives it back)."""
    v, p = models.Volume, models.VolumePool
    row = session.execute(sa.select(v.host, v.pool).where(v.id == volume_id)).first()
    if row is None or row.host is None or row.pool is None:
        raise exception.NotFound("volume", volume_id)
    session.execute(
        sa.update(p).where(p.host == row.host, p.pool_name == row.pool)
        .values(allocated_capacity_gb=p.allocated_capacity_gb + size)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        sa.update(v).where(v.id == volume_id).values(allocated_gb=v.allocated_gb + size)
        .execution_options(synchronize_session=False)
    )
