"""The free-range allocator: pure helpers and behaviour on SQLite."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from stackcore.network import exceptions
from stackcore.network.models import SegmentAllocation, SegmentRange
from stackcore.network.types import segments


def test_merge_joins_overlapping_and_adjacent_runs() -> None:
    assert segments.merge([(5, 9), (1, 3), (4, 4), (20, 30), (25, 26)]) == [(1, 9), (20, 30)]


def test_subtract_splits_runs_around_taken_ids() -> None:
    assert segments.subtract([(1, 10), (20, 22)], [1, 5, 6, 10, 21, 99]) == [
        (2, 4), (7, 9), (20, 20), (22, 22)]


def _rows(db, network_type="vxlan"):
    with db.transaction() as s:
        return sorted((r.physical_network, r.first, r.last) for r in s.execute(
            sa.select(SegmentRange).where(SegmentRange.network_type == network_type)).scalars())


def test_sync_stores_one_row_per_range_whatever_its_size(db) -> None:
    alloc = segments.RangeAllocator("vxlan")
    with db.transaction() as s:
        assert alloc.sync(s, {"": [(1, 2**24 - 1)]})
    assert _rows(db) == [("", 1, 2**24 - 1)]
    with db.transaction() as s:
        assert not alloc.sync(s, {"": [(1, 2**24 - 1)]}), "an unchanged config writes nothing"


def test_allocate_takes_lowest_and_reports_exhaustion_with_none(db) -> None:
    alloc = segments.RangeAllocator("vxlan")
    with db.transaction() as s:
        alloc.sync(s, {"": [(7, 9)]})
    got = []
    for _ in range(4):
        with db.transaction() as s:
            got.append(alloc.allocate(s, [""]))
    assert got == [("", 7), ("", 8), ("", 9), None]
    assert _rows(db) == []


def test_release_coalesces_free_ranges(db) -> None:
    alloc = segments.RangeAllocator("vxlan")
    ranges = {"": [(1, 5)]}
    with db.transaction() as s:
        alloc.sync(s, ranges)
        for _ in range(5):
            alloc.allocate(s, [""])
    for seg_id in (2, 4, 3, 1, 5):
        with db.transaction() as s:
            assert alloc.release(s, "", seg_id, ranges)
    assert _rows(db) == [("", 1, 5)]
    with db.transaction() as s:
        assert not alloc.release(s, "", 3, ranges), "releasing a free ID does nothing"
    assert _rows(db) == [("", 1, 5)]


def test_reserve_inside_range_splits_it_and_refuses_a_second_time(db) -> None:
    alloc = segments.RangeAllocator("vlan")
    ranges = {"data": [(100, 110)]}
    with db.transaction() as s:
        alloc.sync(s, ranges)
        alloc.reserve(s, "data", 105)
    assert _rows(db, "vlan") == [("data", 100, 104), ("data", 106, 110)]
    with pytest.raises(exceptions.SegmentIdInUse), db.transaction() as s:
        alloc.reserve(s, "data", 105)
    with db.transaction() as s:
        alloc.release(s, "data", 105, ranges)
    assert _rows(db, "vlan") == [("data", 100, 110)]


def test_reserve_outside_ranges_is_allocated_but_never_pooled(db) -> None:
    alloc = segments.RangeAllocator("vlan")
    ranges = {"data": [(100, 110)]}
    with db.transaction() as s:
        alloc.sync(s, ranges)
        alloc.reserve(s, "data", 4000)
        usage = alloc.usage(s, ranges)
    assert segments.RangeUsage("data", None, None, 0, 1, 0) in usage
    with db.transaction() as s:
        assert not alloc.release(s, "data", 4000, ranges)
        assert not alloc.is_allocated(s, "data", 4000)
    assert _rows(db, "vlan") == [("data", 100, 110)]


def test_resync_with_narrower_ranges_keeps_ids_in_use(db) -> None:
    alloc = segments.RangeAllocator("vxlan")
    with db.transaction() as s:
        alloc.sync(s, {"": [(1, 10)]})
        for _ in range(3):
            alloc.allocate(s, [""])  # 1, 2, 3
    new = {"": [(3, 5)]}
    with db.transaction() as s:
        assert alloc.sync(s, new)
    assert _rows(db) == [("", 4, 5)]
    with db.transaction() as s:
        assert alloc.is_allocated(s, "", 1), "an ID in use outside the new ranges stays"
        assert not alloc.release(s, "", 1, new), "and is not pooled when released"
        assert alloc.release(s, "", 3, new)
    assert _rows(db) == [("", 3, 5)]


def test_a_stale_free_range_never_yields_an_allocated_id(db) -> None:
    alloc = segments.RangeAllocator("vxlan")
    with db.transaction() as s:
        alloc.sync(s, {"": [(1, 3)]})
        # Simulate a free range made stale (crash, concurrent reconfiguration): 1 is allocated
        # but still listed as free.
        s.add(SegmentAllocation(network_type="vxlan", physical_network="", segmentation_id=1))
    with db.transaction() as s:
        assert alloc.allocate(s, [""]) == ("", 2)
    assert _rows(db) == [("", 3, 3)]


def test_concurrent_threads_never_get_the_same_id(db) -> None:
    alloc = segments.RangeAllocator("vxlan")
    with db.transaction() as s:
        alloc.sync(s, {"": [(1, 60)]})
    got: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(10):
            with db.transaction() as s:
                result = alloc.allocate(s, [""])
            assert result is not None
            with lock:
                got.append(result[1])

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == list(range(1, 61))
