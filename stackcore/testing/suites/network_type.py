"""ML2 type driver conformance suite.

Run it from a driver package's test module (``from stackcore.testing.suites.network_type
import *``) with ``--stackcore-driver network.type:<name>`` and a config giving the driver
small ranges (the suite allocates every ID of every range). The database is ``[database]
connection`` when set (use a throwaway database), else SQLite in a temporary directory.

Checks: project allocation until exhaustion (None, never an error), no duplicate ever (also
from concurrent threads), release back to the pool, provider segments inside and outside the
ranges, validation errors naming the field, usage stats against the schema, and idempotent
re-initialisation that keeps IDs in use.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stackcore import exception
from stackcore.db import api as db_api
from stackcore.db.models import Base
from stackcore.network import exceptions, models
from stackcore.network.contracts.type_driver import TypeDriver
from stackcore.network.stats import validate_usage
from stackcore.testing import check
from stackcore.testing.harness import DriverUnderTest

__all__ = ["TestTypeDriverAllocation", "TestTypeDriverProviderSegments", "type_db",
           "type_driver"]

FAMILY = pytest.mark.family("network.type")
MAX_POOL = 5000


@pytest.fixture
def type_db(stackcore_target: DriverUnderTest, tmp_path: Path) -> Iterator[db_api.Database]:
    url = stackcore_target.conf.database.connection or f"sqlite:///{tmp_path}/type.sqlite"
    database = db_api.Database(url)
    database.upgrade()
    reset_network_tables(database)
    yield database
    database.dispose()


def reset_network_tables(db: db_api.Database) -> None:
    """Empty the network family's tables: a configured database is shared by every test."""
    network_tables = {model.__table__ for model in vars(models).values()
                      if isinstance(model, type) and issubclass(model, Base)
                      and model.__module__ == models.__name__}
    with db.transaction() as session:
        for table in reversed(Base.metadata.sorted_tables):
            if table in network_tables:
                session.execute(table.delete())


def _initialized(target: DriverUnderTest, db: db_api.Database) -> TypeDriver:
    driver: TypeDriver = target.new()
    check.instance(driver, TypeDriver, "the driver object")
    with db.transaction() as session:
        check.step("initialize()", lambda: driver.initialize(session))
    return driver


@pytest.fixture
def type_driver(stackcore_target: DriverUnderTest, type_db: db_api.Database) -> TypeDriver:
    return _initialized(stackcore_target, type_db)


def _usage(driver: TypeDriver, db: db_api.Database) -> list[dict[str, Any]]:
    with db.transaction() as session:
        raw = check.step("get_usage()", lambda: driver.get_usage(session))
        try:
            report = validate_usage(raw, f"type driver {driver.get_type()}")
        except exception.StatsSchemaError as err:
            raise check.KitError(f"get_usage(): expected a report meeting the usage schema, "
                                 f"got: {err}") from None
    check.equal(report["network_type"], driver.get_type(), "get_usage() network_type")
    return list(report["ranges"])


def _pool(driver: TypeDriver, db: db_api.Database) -> list[dict[str, Any]]:
    pool = [r for r in _usage(driver, db) if r["first"] is not None]
    if sum(r["total"] for r in pool) > MAX_POOL:
        raise check.fail("the conformance configuration", f"ranges of at most {MAX_POOL} IDs "
                         "in all (the suite allocates every one)",
                         f"{sum(r['total'] for r in pool)} IDs")
    return pool


def _allocate(driver: TypeDriver, db: db_api.Database) -> dict[str, Any] | None:
    with db.transaction() as session:
        return driver.allocate_tenant_segment(session)


def _key(segment: dict[str, Any]) -> tuple[Any, ...]:
    return (segment["physical_network"], segment["segmentation_id"])


@FAMILY
@pytest.mark.feature("allocation")
class TestTypeDriverAllocation:
    def test_get_type_is_a_stable_name(self, type_driver: TypeDriver) -> None:
        name = type_driver.get_type()
        check.that(isinstance(name, str) and bool(name), "get_type()", "a non-empty string",
                   name)
        check.equal(type_driver.get_type(), name, "get_type() asked again")

    def test_allocates_every_pool_id_once_then_returns_none(
        self, type_driver: TypeDriver, type_db: db_api.Database
    ) -> None:
        pool = _pool(type_driver, type_db)
        expected = sum(r["total"] for r in pool)
        got: list[tuple[Any, ...]] = []
        while len(got) <= expected:
            segment = _allocate(type_driver, type_db)
            if segment is None:
                break
            check.equal(segment.get("network_type"), type_driver.get_type(),
                        "network_type of an allocated segment")
            check.that(isinstance(segment.get("mtu"), int) and segment["mtu"] >= 0,
                       "mtu of an allocated segment", "an integer >= 0", segment.get("mtu"))
            check.that(not type_driver.is_partial_segment(segment),
                       "is_partial_segment() of an allocated segment", "False", segment)
            got.append(_key(segment))
        check.equal(len(got), expected, "segments allocated until None (every ID of the "
                    "configured ranges, and no more)")
        dupes = sorted({k for k in got if got.count(k) > 1}, key=repr)
        check.empty(dupes, "IDs allocated twice")
        check.equal(_allocate(type_driver, type_db), None, "allocation after exhaustion")
        full = [r for r in _usage(type_driver, type_db)
                if r["first"] is not None and (r["free"] != 0 or r["allocated"] != r["total"])]
        check.empty(full, "ranges of get_usage() not reported full after exhaustion")

    def test_release_returns_the_id_to_the_pool(
        self, type_driver: TypeDriver, type_db: db_api.Database
    ) -> None:
        if not _pool(type_driver, type_db):
            check.equal(_allocate(type_driver, type_db), None,
                        "allocation from a type without ID ranges")
            return
        segment = _allocate(type_driver, type_db)
        check.that(segment is not None, "allocation from a fresh pool", "a segment", segment)
        assert segment is not None
        before = sum(r["free"] for r in _pool(type_driver, type_db))
        with type_db.transaction() as session:
            type_driver.release_segment(session, segment)
        with type_db.transaction() as session:
            type_driver.release_segment(session, segment)  # a second release does nothing
        check.equal(sum(r["free"] for r in _pool(type_driver, type_db)), before + 1,
                    "free IDs after releasing one segment twice")

    def test_concurrent_allocations_never_share_an_id(
        self, type_driver: TypeDriver, type_db: db_api.Database
    ) -> None:
        expected = sum(r["total"] for r in _pool(type_driver, type_db))
        got: list[tuple[Any, ...]] = []
        errors: list[BaseException] = []
        lock = threading.Lock()

        def worker() -> None:
            while True:
                try:
                    segment = _allocate(type_driver, type_db)
                except Exception as err:  # noqa: BLE001 - reported by the test below
                    with lock:
                        errors.append(err)
                    return
                if segment is None:
                    return
                with lock:
                    got.append(_key(segment))

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        check.empty([f"{type(e).__name__}: {e}" for e in errors],
                    "errors of 4 threads allocating at once")
        dupes = sorted({k for k in got if got.count(k) > 1}, key=repr)
        check.empty(dupes, "IDs given to two concurrent allocations")
        check.equal(len(got), expected, "segments allocated by 4 threads until None")

    def test_reinitialising_keeps_ids_in_use(
        self, stackcore_target: DriverUnderTest, type_driver: TypeDriver,
        type_db: db_api.Database,
    ) -> None:
        taken = [_allocate(type_driver, type_db) for _ in range(2)]
        before = _usage(type_driver, type_db)
        again = _initialized(stackcore_target, type_db)
        check.equal(_usage(again, type_db), before, "get_usage() after initialize() again")
        for segment in taken:
            if segment is not None:
                def reserve(seg: dict[str, Any] = segment) -> Any:
                    with type_db.transaction() as s:
                        return again.reserve_provider_segment(s, dict(seg))
                check.raises(exceptions.SegmentIdInUse, reserve,
                             f"reserving {_key(segment)}, allocated before the restart")


def _provider_candidates(driver: TypeDriver, db: db_api.Database) -> list[dict[str, Any]]:
    """Fully specified provider segments inside the configured ranges (or physnets)."""
    candidates = []
    for r in _usage(driver, db):
        seg_id = None if r["first"] is None else (r["first"] + r["last"]) // 2
        if r["first"] is None and r["total"] == 0:
            continue
        candidates.append({"network_type": driver.get_type(),
                           "physical_network": r["physical_network"], "segmentation_id": seg_id})
    return candidates


@FAMILY
@pytest.mark.feature("provider_segments")
class TestTypeDriverProviderSegments:
    def test_provider_segment_in_range_is_reserved_once(
        self, type_driver: TypeDriver, type_db: db_api.Database
    ) -> None:
        candidates = _provider_candidates(type_driver, type_db)
        check.that(bool(candidates), "the conformance configuration",
                   "at least one range or physical network", candidates)
        for raw in candidates:
            segment = check.step(f"validate_provider_segment({raw})", functools.partial(
                type_driver.validate_provider_segment, dict(raw)))

            def reserve(seg: dict[str, Any] = segment) -> Any:
                with type_db.transaction() as session:
                    return type_driver.reserve_provider_segment(session, dict(seg))

            reserved = check.step(f"reserve_provider_segment({_key(segment)})", reserve)
            check.equal(_key(reserved), _key(segment), "the reserved provider segment")
            check.that(isinstance(reserved.get("mtu"), int), "mtu of a reserved segment",
                       "an integer", reserved.get("mtu"))
            check.raises(exceptions.SegmentIdInUse, reserve,
                         f"reserving {_key(segment)} a second time")
            with type_db.transaction() as session:
                check.step("release_segment()", functools.partial(
                    type_driver.release_segment, session, reserved))
            check.step(f"reserving {_key(segment)} again after its release", reserve)

    def test_provider_segment_outside_the_ranges_is_never_pooled(
        self, type_driver: TypeDriver, type_db: db_api.Database
    ) -> None:
        pool = _pool(type_driver, type_db)
        if not pool:
            return  # the type has no ID ranges (flat): nothing lies outside them
        top = max(pool, key=lambda r: r["last"])
        segment = None
        for seg_id in (top["last"] + 1, min(r["first"] for r in pool) - 1):
            try:
                segment = type_driver.validate_provider_segment(
                    {"network_type": type_driver.get_type(),
                     "physical_network": top["physical_network"], "segmentation_id": seg_id})
                break
            except exception.Invalid:
                continue
        if segment is None:
            return  # the ranges cover every valid ID
        free_before = [r["free"] for r in _pool(type_driver, type_db)]
        with type_db.transaction() as session:
            reserved = type_driver.reserve_provider_segment(session, segment)
        outside = [r for r in _usage(type_driver, type_db) if r["first"] is None]
        check.equal(sum(r["allocated"] for r in outside), 1,
                    f"IDs get_usage() reports allocated outside the ranges after reserving "
                    f"{_key(segment)}")
        with type_db.transaction() as session:
            type_driver.release_segment(session, reserved)
        check.equal([r["free"] for r in _pool(type_driver, type_db)], free_before,
                    "free IDs per range after releasing an ID outside the ranges")
        check.empty([r for r in _usage(type_driver, type_db) if r["first"] is None],
                    "IDs outside the ranges still reported after their release")

    def test_partial_provider_segment_gets_a_pool_id(
        self, type_driver: TypeDriver, type_db: db_api.Database
    ) -> None:
        pool = _pool(type_driver, type_db)
        for physnet in {r["physical_network"] for r in pool}:
            partial = {"network_type": type_driver.get_type(),
                       "physical_network": physnet, "segmentation_id": None}
            if not type_driver.is_partial_segment(partial):
                continue
            segment = type_driver.validate_provider_segment(partial)
            with type_db.transaction() as session:
                reserved = type_driver.reserve_provider_segment(session, segment)
            check.equal(reserved["physical_network"], physnet,
                        "physical_network of a reserved partial segment")
            ranges = [(r["first"], r["last"]) for r in pool if r["physical_network"] == physnet]
            check.that(any(a <= reserved["segmentation_id"] <= b for a, b in ranges),
                       f"segmentation_id given to a partial segment on {physnet}",
                       f"an ID of the ranges {ranges}", reserved["segmentation_id"])

    @pytest.mark.parametrize(("override", "field"), [
        ({"segmentation_id": -1}, "segmentation_id"),
        ({"physical_network": "no-such-physnet-conformance"}, "physical_network"),
    ])
    def test_invalid_provider_segment_names_the_field(
        self, type_driver: TypeDriver, type_db: db_api.Database, override: dict[str, Any],
        field: str,
    ) -> None:
        base = _provider_candidates(type_driver, type_db)
        segment = dict(base[0]) if base else {"network_type": type_driver.get_type(),
                                              "physical_network": None,
                                              "segmentation_id": None}
        segment.update(override)
        err = check.raises(exception.Invalid,
                           lambda: type_driver.validate_provider_segment(segment),
                           f"validate_provider_segment() with {override}")
        check.equal(getattr(err, "kwargs", {}).get("field"), field,
                    f"the field the Invalid error names for {override}")
