"""Segment ID allocation over free ranges: the storage behind the VLAN and VXLAN type drivers.

Neutron stores one row per ID of every configured range and picks a free one with
``ORDER BY RAND()``; with ``vni_ranges = 1:16777215`` that is 16.7 M rows, minutes of start-up,
a gigabyte of memory and seconds per allocation. Here the free IDs are stored as runs
(:class:`~stackcore.network.models.SegmentRange`) and the allocated ones as one row each
(:class:`~stackcore.network.models.SegmentAllocation`), so every cost depends on the number of
ranges and of allocated IDs, never on the size of a range.

Concurrency. Every transaction that changes the free ranges or the allocations of a network
type first takes that type's lock (:func:`stackcore.db.api.named_lock`: a transaction-scoped
advisory lock on PostgreSQL; on SQLite the transaction holds the database's write lock from its
first statement), and keeps it until it commits or rolls back. So allocation, reservation,
release and start-up sync of one type run one after the other, each seeing everything the
previous one committed: every change is a plain read-modify-write, and a release that merges a
range with its neighbours can never interleave with the split of one of them. (Compare-and-swap
on the range rows was not enough: a split inserts a row that a concurrent merge cannot see,
and an update re-checked on one column may match a row whose other bound has moved.) The lock
is held only for the few statements of the allocation and the rest of the enclosing
transaction (creating or deleting one network), which is short.

The allocation row's primary key stays the final guard: an ID is handed out only after its
allocation row was inserted, so even a free range made stale by a crash or a concurrent
reconfiguration can never produce a duplicate (the stale ID is skipped, which also repairs the
free range).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from stackcore.network import exceptions

if TYPE_CHECKING:
    import sqlalchemy as sa
    from sqlalchemy.orm import Session

Ranges = Mapping[str, Sequence[tuple[int, int]]]
"""Configured ranges: ``{physical_network: [(first, last), ...]}``; ``""`` when the type has no
physical network. A physical network mapped to ``[]`` allows provider segments only."""


def merge(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, non-overlapping, non-adjacent runs covering exactly the IDs of ``ranges``."""
    merged: list[tuple[int, int]] = []
    for first, last in sorted(ranges):
        if merged and first <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], last))
        else:
            merged.append((first, last))
    return merged


def subtract(runs: Sequence[tuple[int, int]], taken: Iterable[int]) -> list[tuple[int, int]]:
    """``runs`` (sorted, disjoint) minus the IDs in ``taken``; cost O(len(runs) + len(taken))."""
    result: list[tuple[int, int]] = []
    ids = sorted(set(taken))
    i = 0
    for first, last in runs:
        while i < len(ids) and ids[i] < first:
            i += 1
        start = first
        while i < len(ids) and ids[i] <= last:
            if ids[i] > start:
                result.append((start, ids[i] - 1))
            start = ids[i] + 1
            i += 1
        if start <= last:
            result.append((start, last))
    return result


def contains(runs: Sequence[tuple[int, int]], value: int) -> bool:
    return any(first <= value <= last for first, last in runs)


@dataclasses.dataclass(frozen=True)
class RangeUsage:
    """Usage of one configured range (or of the IDs allocated outside every range:
    ``first``/``last`` are None and ``total`` is 0)."""

    physical_network: str
    first: int | None
    last: int | None
    total: int
    allocated: int
    free: int


class RangeAllocator:
    """Free-range allocation of the IDs of one network type."""

    def __init__(self, network_type: str) -> None:
        self.network_type = network_type

    # --- reconciliation at start-up -------------------------------------------------------

    def sync(self, session: Session, ranges: Ranges) -> bool:
        """Make the free-range rows equal to ``ranges`` minus the allocated IDs.

        Idempotent and cheap when nothing changed (one read of the range rows and of the
        allocated IDs). Allocated IDs outside the new ranges stay allocated; released later,
        they do not return to the pool. Free rows of physical networks no longer configured are
        dropped. Several processes may sync at once: they queue on the type's lock, like every
        allocation. Returns True when rows were changed.
        """
        import sqlalchemy as sa

        from stackcore.network.models import SegmentAllocation, SegmentRange
        self._lock(session)
        rows = session.execute(
            sa.select(SegmentRange).where(SegmentRange.network_type == self.network_type)
        ).scalars().all()
        allocated: dict[str, list[int]] = {}
        for physnet, seg_id in session.execute(
            sa.select(SegmentAllocation.physical_network, SegmentAllocation.segmentation_id)
            .where(SegmentAllocation.network_type == self.network_type)
        ):
            allocated.setdefault(physnet, []).append(seg_id)
        wanted = {
            (physnet, first, last)
            for physnet, runs in ranges.items()
            for first, last in subtract(merge(runs), allocated.get(physnet, ()))
        }
        have = {(r.physical_network, r.first, r.last): r for r in rows}
        stale = [row for key, row in have.items() if key not in wanted]
        missing = sorted(wanted - have.keys())
        for row in stale:
            session.delete(row)
        if missing:
            session.flush()
            session.execute(
                sa.insert(SegmentRange),
                [
                    {"network_type": self.network_type, "physical_network": p,
                     "first": f, "last": la}
                    for p, f, la in missing
                ],
            )
        return bool(stale or missing)

    # --- allocation -----------------------------------------------------------------------

    def _lock(self, session: Session) -> None:
        """Take this type's lock for the rest of the transaction (see the module doc)."""
        # imported here: the type drivers are loaded (and verified) by every start-up and
        # `stackcore drivers`, which must not pay for SQLAlchemy
        from stackcore.db import api as db_api

        db_api.named_lock(session, f"stackcore.ml2.{self.network_type}")

    def allocate(
        self, session: Session, physical_networks: Sequence[str]
    ) -> tuple[str, int] | None:
        """Take the lowest free ID, trying ``physical_networks`` in order; None when all are
        exhausted. The ID is allocated when this returns (its allocation row is in the
        session's transaction)."""
        import sqlalchemy as sa

        from stackcore.network.models import SegmentRange
        self._lock(session)
        for physnet in physical_networks:
            while True:
                row = session.execute(
                    sa.select(SegmentRange)
                    .where(
                        SegmentRange.network_type == self.network_type,
                        SegmentRange.physical_network == physnet,
                    )
                    .order_by(SegmentRange.first)
                    .limit(1)
                ).scalar_one_or_none()
                if row is None:
                    break
                seg_id = row.first
                if row.first == row.last:
                    session.delete(row)
                else:
                    row.first = seg_id + 1
                session.flush()
                if self._insert_allocation(session, physnet, seg_id):
                    return physnet, seg_id
                # The ID was allocated already (stale free range): it is now out of the free
                # range, which is the repair; take the next one.
        return None

    def reserve(self, session: Session, physical_network: str, segmentation_id: int) -> None:
        """Allocate exactly ``segmentation_id``, inside or outside the configured ranges.
        Raises :class:`~stackcore.network.exceptions.SegmentIdInUse` if it is taken."""
        import sqlalchemy as sa

        from stackcore.network.models import SegmentRange
        self._lock(session)
        if not self._insert_allocation(session, physical_network, segmentation_id):
            raise exceptions.SegmentIdInUse(
                self.network_type, physical_network or None, segmentation_id
            )
        row = session.execute(
            sa.select(SegmentRange)
            .where(
                SegmentRange.network_type == self.network_type,
                SegmentRange.physical_network == physical_network,
                SegmentRange.first <= segmentation_id,
                SegmentRange.last >= segmentation_id,
            )
        ).scalar_one_or_none()
        if row is None:
            return  # outside the ranges (or a stale allocation repaired): nothing to carve
        first, last = row.first, row.last
        if first == last:
            session.delete(row)
        elif segmentation_id == first:
            row.first = first + 1
        elif segmentation_id == last:
            row.last = last - 1
        else:
            row.last = segmentation_id - 1
            session.add(SegmentRange(network_type=self.network_type,
                                     physical_network=physical_network,
                                     first=segmentation_id + 1, last=last))
        session.flush()

    def release(
        self, session: Session, physical_network: str, segmentation_id: int, ranges: Ranges
    ) -> bool:
        """Free ``segmentation_id``: back to the pool when it lies in the configured
        ``ranges``, simply forgotten otherwise. Releasing a free ID does nothing. Returns True
        when the ID went back to the pool."""
        import sqlalchemy as sa

        from stackcore.network.models import SegmentAllocation
        self._lock(session)
        deleted = session.execute(
            sa.delete(SegmentAllocation)
            .where(
                SegmentAllocation.network_type == self.network_type,
                SegmentAllocation.physical_network == physical_network,
                SegmentAllocation.segmentation_id == segmentation_id,
            )
            .execution_options(synchronize_session=False)
        )
        if not _rowcount(deleted):
            return False
        if not contains(ranges.get(physical_network, ()), segmentation_id):
            return False
        return self._add_free(session, physical_network, segmentation_id)

    def _add_free(self, session: Session, physnet: str, seg_id: int) -> bool:
        """Put ``seg_id`` back in the free ranges, merged with the neighbouring ranges (the
        caller holds the type's lock). False if it was free already (nothing changed)."""
        import sqlalchemy as sa

        from stackcore.network.models import SegmentRange
        rows = session.execute(
            sa.select(SegmentRange).where(
                SegmentRange.network_type == self.network_type,
                SegmentRange.physical_network == physnet,
                SegmentRange.first <= seg_id + 1,
                SegmentRange.last >= seg_id - 1,
            )
        ).scalars().all()
        if any(r.first <= seg_id <= r.last for r in rows):
            return False
        left = next((r for r in rows if r.last == seg_id - 1), None)
        right = next((r for r in rows if r.first == seg_id + 1), None)
        if left is not None and right is not None:
            left.last = right.last
            session.delete(right)
        elif left is not None:
            left.last = seg_id
        elif right is not None:
            right.first = seg_id
        else:
            session.add(SegmentRange(network_type=self.network_type, physical_network=physnet,
                                     first=seg_id, last=seg_id))
        session.flush()
        return True

    def _insert_allocation(self, session: Session, physnet: str, seg_id: int) -> bool:
        """Insert the allocation row; False if the ID is allocated already.

        ``INSERT ... ON CONFLICT DO NOTHING`` on SQLite and PostgreSQL (one statement; the
        loser of a race sees ``rowcount == 0``), a savepoint around a plain INSERT elsewhere.
        """
        import sqlalchemy as sa

        from stackcore.network.models import SegmentAllocation
        values = {"network_type": self.network_type, "physical_network": physnet,
                  "segmentation_id": seg_id}
        dialect = session.get_bind().dialect.name
        if dialect in ("sqlite", "postgresql"):
            from sqlalchemy.dialects import postgresql, sqlite

            stmt = (sqlite.insert(SegmentAllocation) if dialect == "sqlite"
                    else postgresql.insert(SegmentAllocation))
            return bool(_rowcount(session.execute(
                stmt.values(**values).on_conflict_do_nothing())))
        try:
            with session.begin_nested():
                session.execute(sa.insert(SegmentAllocation).values(
                    network_type=self.network_type,
                    physical_network=physnet,
                    segmentation_id=seg_id,
                ))
        except sa.exc.IntegrityError:
            return False
        return True

    def is_allocated(self, session: Session, physnet: str, seg_id: int) -> bool:
        import sqlalchemy as sa

        from stackcore.network.models import SegmentAllocation
        return session.execute(
            sa.select(sa.literal(1)).where(
                SegmentAllocation.network_type == self.network_type,
                SegmentAllocation.physical_network == physnet,
                SegmentAllocation.segmentation_id == seg_id,
            )
        ).first() is not None

    # --- usage ----------------------------------------------------------------------------

    def usage(self, session: Session, ranges: Ranges) -> list[RangeUsage]:
        """Total / allocated / free per configured range, plus one entry per physical network
        with IDs allocated outside every range."""
        import sqlalchemy as sa

        from stackcore.network.models import SegmentAllocation, SegmentRange
        free_rows: dict[str, list[tuple[int, int]]] = {}
        for physnet, first, last in session.execute(
            sa.select(SegmentRange.physical_network, SegmentRange.first, SegmentRange.last)
            .where(SegmentRange.network_type == self.network_type)
        ):
            free_rows.setdefault(physnet, []).append((first, last))
        allocated: dict[str, list[int]] = {}
        for physnet, seg_id in session.execute(
            sa.select(SegmentAllocation.physical_network, SegmentAllocation.segmentation_id)
            .where(SegmentAllocation.network_type == self.network_type)
        ):
            allocated.setdefault(physnet, []).append(seg_id)
        report: list[RangeUsage] = []
        for physnet in sorted(set(ranges) | set(allocated)):
            runs = merge(ranges.get(physnet, ()))
            for first, last in runs:
                total = last - first + 1
                free = sum(
                    max(0, min(last, f_last) - max(first, f_first) + 1)
                    for f_first, f_last in free_rows.get(physnet, ())
                )
                report.append(RangeUsage(physnet, first, last, total, total - free, free))
            outside = sum(1 for i in allocated.get(physnet, ()) if not contains(runs, i))
            if outside:
                report.append(RangeUsage(physnet, None, None, 0, outside, 0))
        return report


def _rowcount(result: sa.Result[object]) -> int:
    return int(getattr(result, "rowcount", 0))
