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
    driver = target.new()
    assert isinstance(driver, TypeDriver)
    with db.transaction() as session:
        driver.initialize(session)
    return driver


@pytest.fixture
def type_driver(stackcore_target: DriverUnderTest, type_db: db_api.Database) -> TypeDriver:
    return _initialized(stackcore_target, type_db)


def _usage(driver: TypeDriver, db: db_api.Database) -> list[dict[str, Any]]:
    with db.transaction() as session:
        report = validate_usage(driver.get_usage(session), f"type driver {driver.get_type()}")
    assert report["network_type"] == driver.get_type()
    return list(report["ranges"])


def _pool(driver: TypeDriver, db: db_api.Database) -> list[dict[str, Any]]:
    pool = [r for r in _usage(driver, db) if r["first"] is not None]
    if sum(r["total"] for r in pool) > MAX_POOL:
        pytest.fail(f"configure ranges of at most {MAX_POOL} IDs in all for the conformance run")
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
        assert isinstance(type_driver.get_type(), str) and type_driver.get_type()
        assert type_driver.get_type() == type_driver.get_type()

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
            assert segment["network_type"] == type_driver.get_type()
            assert isinstance(segment["mtu"], int) and segment["mtu"] >= 0
            assert not type_driver.is_partial_segment(segment)
            got.append(_key(segment))
        assert len(got) == expected, "every ID of the configured ranges, and no more"
        assert len(set(got)) == len(got), "no ID twice"
        assert _allocate(type_driver, type_db) is None, "exhaustion stays None"
        assert all(r["free"] == 0 and r["allocated"] == r["total"]
                   for r in _usage(type_driver, type_db) if r["first"] is not None)

    def test_release_returns_the_id_to_the_pool(
        self, type_driver: TypeDriver, type_db: db_api.Database
    ) -> None:
        if not _pool(type_driver, type_db):
            assert _allocate(type_driver, type_db) is None, "no pool: nothing to allocate"
            return
        segment = _allocate(type_driver, type_db)
        assert segment is not None
        before = sum(r["free"] for r in _pool(type_driver, type_db))
        with type_db.transaction() as session:
            type_driver.release_segment(session, segment)
        with type_db.transaction() as session:
            type_driver.release_segment(session, segment)  # a second release does nothing
        assert sum(r["free"] for r in _pool(type_driver, type_db)) == before + 1

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
        assert not errors, errors[0]
        assert len(got) == expected and len(set(got)) == expected

    def test_reinitialising_keeps_ids_in_use(
        self, stackcore_target: DriverUnderTest, type_driver: TypeDriver,
        type_db: db_api.Database,
    ) -> None:
        taken = [_allocate(type_driver, type_db) for _ in range(2)]
        before = _usage(type_driver, type_db)
        again = _initialized(stackcore_target, type_db)
        assert _usage(again, type_db) == before
        for segment in taken:
            if segment is not None:
                with pytest.raises(exceptions.SegmentIdInUse), type_db.transaction() as s:
                    again.reserve_provider_segment(s, dict(segment))


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
        assert candidates, "the conformance config must enable at least one range or physnet"
        for raw in candidates:
            segment = type_driver.validate_provider_segment(dict(raw))
            with type_db.transaction() as session:
                reserved = type_driver.reserve_provider_segment(session, dict(segment))
            assert _key(reserved) == _key(segment) and isinstance(reserved["mtu"], int)
            with pytest.raises(exceptions.SegmentIdInUse), type_db.transaction() as session:
                type_driver.reserve_provider_segment(session, dict(segment))
            with type_db.transaction() as session:
                type_driver.release_segment(session, reserved)
            with type_db.transaction() as session:
                type_driver.reserve_provider_segment(session, dict(segment))

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
        assert sum(r["allocated"] for r in outside) == 1
        with type_db.transaction() as session:
            type_driver.release_segment(session, reserved)
        assert [r["free"] for r in _pool(type_driver, type_db)] == free_before
        assert not [r for r in _usage(type_driver, type_db) if r["first"] is None]

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
            assert reserved["physical_network"] == physnet
            assert any(r["first"] <= reserved["segmentation_id"] <= r["last"]
                       for r in pool if r["physical_network"] == physnet)

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
        with pytest.raises(exception.Invalid) as err:
            type_driver.validate_provider_segment(segment)
        assert err.value.kwargs["field"] == field
