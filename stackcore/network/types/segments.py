"""Segment ID allocation over free ranges: the storage behind the VLAN and VXLAN type drivers.

Neutron stores one row per ID of every configured range and picks a free one with
``ORDER BY RAND()``; with ``vni_ranges = 1:16777215`` that is 16.7 M rows, minutes of start-up,
a gigabyte of memory and seconds per allocation. Here the free IDs are stored as runs
(:class:`~stackcore.network.models.SegmentRange`) and the allocated ones as one row each
(:class:`~stackcore.network.models.SegmentAllocation`), so every cost depends on the number of
ranges and of allocated IDs, never on the size of a range.

Concurrency. Every change of a free-range row is a compare-and-swap (an UPDATE or DELETE whose
WHERE clause repeats the values read); a writer that lost the race sees ``rowcount == 0`` and
reads again. On PostgreSQL the losing UPDATE waits for the winner's transaction, then finds
its condition false; on SQLite writers are serialised by ``BEGIN IMMEDIATE``. The allocation
row's primary key is the final guard: an ID is handed out only after its allocation row was
inserted, so even a free range made stale by a crash or a concurrent reconfiguration can never
produce a duplicate (the stale ID is skipped, which also repairs the free range).

Lock order (to avoid deadlocks): project allocation takes the range row, then inserts the
allocation row; a provider reservation inserts the allocation row first (so that it waits for a
concurrent release of the same ID to commit), then carves the ID out of its range. The two can
only deadlock on the very same ID, which PostgreSQL detects; the plugin retries the operation.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from stackcore import exception
from stackcore.network import exceptions

if TYPE_CHECKING:
    import sqlalchemy as sa
    from sqlalchemy.orm import Session


#: Compare-and-swap attempts before giving up on a hot range (each attempt re-reads).
MAX_CAS_ATTEMPTS = 100

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
        dropped. Several processes may sync at once: on PostgreSQL they queue on an advisory
        lock, and the range rows are locked before the allocations are read, so allocations in
        flight are waited for. Returns True when rows were changed.
        """
        import sqlalchemy as sa

        from stackcore.network.models import SegmentAllocation, SegmentRange
        if session.get_bind().dialect.name == "postgresql":
            key = zlib.crc32(f"stackcore.ml2.{self.network_type}".encode()) - 2**31
            session.execute(sa.select(sa.func.pg_advisory_xact_lock(key)))
        rows = session.execute(
            sa.select(SegmentRange)
            .where(SegmentRange.network_type == self.network_type)
            .with_for_update()
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

    def allocate(
        self, session: Session, physical_networks: Sequence[str]
    ) -> tuple[str, int] | None:
        """Take the lowest free ID, trying ``physical_networks`` in order; None when all are
        exhausted. The ID is allocated when this returns (its allocation row is in the
        session's transaction)."""
        import sqlalchemy as sa

        from stackcore.network.models import SegmentRange
        for physnet in physical_networks:
            for _ in range(MAX_CAS_ATTEMPTS):
                row = session.execute(
                    sa.select(SegmentRange.id, SegmentRange.first, SegmentRange.last)
                    .where(
                        SegmentRange.network_type == self.network_type,
                        SegmentRange.physical_network == physnet,
                    )
                    .order_by(SegmentRange.first)
                    .limit(1)
                ).first()
                if row is None:
                    break
                range_id, first, last = row
                stmt: sa.Executable
                if first == last:
                    stmt = sa.delete(SegmentRange).where(
                        SegmentRange.id == range_id,
                        SegmentRange.first == first,
                        SegmentRange.last == last,
                    )
                else:
                    stmt = (
                        sa.update(SegmentRange)
                        .where(SegmentRange.id == range_id, SegmentRange.first == first)
                        .values(first=first + 1)
                    )
                if _rowcount(session.execute(stmt.execution_options(synchronize_session=False))):
                    if self._insert_allocation(session, physnet, first):
                        return physnet, first
                    # The ID was allocated already (stale free range): it is now out of the
                    # free range, which is the repair; take the next one.
            else:
                raise exception.Conflict(
                    f"{self.network_type} allocation on {physnet or 'the pool'} kept losing "
                    f"races ({MAX_CAS_ATTEMPTS} attempts); try again"
                )
        return None

    def reserve(self, session: Session, physical_network: str, segmentation_id: int) -> None:
        """Allocate exactly ``segmentation_id``, inside or outside the configured ranges.
        Raises :class:`~stackcore.network.exceptions.SegmentIdInUse` if it is taken."""
        import sqlalchemy as sa

        from stackcore.network.models import SegmentRange
        if not self._insert_allocation(session, physical_network, segmentation_id):
            raise exceptions.SegmentIdInUse(
                self.network_type, physical_network or None, segmentation_id
            )
        for _ in range(MAX_CAS_ATTEMPTS):
            row = session.execute(
                sa.select(SegmentRange.id, SegmentRange.first, SegmentRange.last)
                .where(
                    SegmentRange.network_type == self.network_type,
                    SegmentRange.physical_network == physical_network,
                    SegmentRange.first <= segmentation_id,
                    SegmentRange.last >= segmentation_id,
                )
                .with_for_update()
            ).first()
            if row is None:
                return
            range_id, first, last = row
            cas = sa.and_(
                SegmentRange.id == range_id,
                SegmentRange.first == first,
                SegmentRange.last == last,
            )
            reserve_stmt: sa.Executable
            if first == last:
                reserve_stmt = sa.delete(SegmentRange).where(cas)
            elif segmentation_id == first:
                reserve_stmt = sa.update(SegmentRange).where(cas).values(first=first + 1)
            else:
                reserve_stmt = sa.update(SegmentRange).where(cas).values(last=segmentation_id - 1)
            reserve_stmt = reserve_stmt.execution_options(synchronize_session=False)
            if _rowcount(session.execute(reserve_stmt)):
                if first < segmentation_id < last:
                    session.execute(
                        sa.insert(SegmentRange).values(
                            network_type=self.network_type,
                            physical_network=physical_network,
                            first=segmentation_id + 1,
                            last=last,
                        )
                    )
                return
        raise exception.Conflict(
            f"{self.network_type} ID {segmentation_id} reservation kept losing races; try again"
        )

    def release(
        self, session: Session, physical_network: str, segmentation_id: int, ranges: Ranges
    ) -> bool:
        """Free ``segmentation_id``: back to the pool when it lies in the configured
        ``ranges``, simply forgotten otherwise. Releasing a free ID does nothing. Returns True
        when the ID went back to the pool."""
        import sqlalchemy as sa

        from stackcore.network.models import SegmentAllocation
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
        self._add_free(session, physical_network, segmentation_id)
        return True

    def _add_free(self, session: Session, physnet: str, seg_id: int) -> None:
        import sqlalchemy as sa

        from stackcore.network.models import SegmentRange
        scope = (
            SegmentRange.network_type == self.network_type,
            SegmentRange.physical_network == physnet,
        )
        opts = {"synchronize_session": False}
        grew_left = _rowcount(session.execute(
            sa.update(SegmentRange).where(*scope, SegmentRange.last == seg_id - 1)
            .values(last=seg_id).execution_options(**opts)
        ))
        right = session.execute(
            sa.select(SegmentRange.id, SegmentRange.last)
            .where(*scope, SegmentRange.first == seg_id + 1)
            .with_for_update()
        ).first()
        if grew_left:
            if right is not None and _rowcount(session.execute(
                sa.delete(SegmentRange)
                .where(SegmentRange.id == right[0], SegmentRange.first == seg_id + 1,
                       SegmentRange.last == right[1])
                .execution_options(**opts)
            )):
                session.execute(
                    sa.update(SegmentRange).where(*scope, SegmentRange.last == seg_id)
                    .values(last=right[1]).execution_options(**opts)
                )
            return
        if right is not None and _rowcount(session.execute(
            sa.update(SegmentRange)
            .where(SegmentRange.id == right[0], SegmentRange.first == seg_id + 1)
            .values(first=seg_id).execution_options(**opts)
        )):
            return
        session.execute(sa.insert(SegmentRange).values(
            network_type=self.network_type, physical_network=physnet, first=seg_id, last=seg_id
        ))

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
