"""Broken ML2 type drivers: each subclasses the core VLAN type driver and breaks one rule."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from stackcore import exception
from stackcore.network import exceptions
from stackcore.network.contracts.type_driver import Segment
from stackcore.network.types.vlan import VlanTypeDriver
from tests.kit.registry import Broken

M = "tests.kit.network_type"
AL, PS = "TestTypeDriverAllocation::", "TestTypeDriverProviderSegments::"


class TypeNameChanges(VlanTypeDriver):
    def __init__(self, conf: Any) -> None:
        super().__init__(conf)
        self._asked = 0

    def get_type(self) -> str:
        self._asked += 1
        return "vlan" if self._asked % 2 else "vlan2"


class NeverExhausted(VlanTypeDriver):
    def allocate_tenant_segment(self, session: Session) -> Segment | None:
        found = super().allocate_tenant_segment(session)
        return found if found is not None else self._segment("physnet1", 100)


class ReleaseNoop(VlanTypeDriver):
    def release_segment(self, session: Session, segment: Segment) -> None:
        return None


class BusyAllocator(VlanTypeDriver):
    """Not safe for concurrent use: a second caller while one allocates is refused."""

    def __init__(self, conf: Any) -> None:
        super().__init__(conf)
        self._busy = threading.Lock()

    def allocate_tenant_segment(self, session: Session) -> Segment | None:
        if not self._busy.acquire(blocking=False):
            raise exception.DriverError("allocator busy")
        try:
            time.sleep(0.005)
            return super().allocate_tenant_segment(session)
        finally:
            self._busy.release()


class ForgetsOnRestart(VlanTypeDriver):
    def initialize(self, session: Session) -> None:
        super().initialize(session)
        for physnet, runs in self.ranges.items():  # "a fresh pool"
            for first, last in runs:
                for seg_id in range(first, last + 1):
                    self.allocator.release(session, physnet, seg_id, self.ranges)


class ReservesTwice(VlanTypeDriver):
    def reserve_provider_segment(self, session: Session, segment: Segment) -> Segment:
        try:
            return super().reserve_provider_segment(session, segment)
        except exceptions.SegmentIdInUse:
            return self._segment(segment["physical_network"], segment["segmentation_id"])


class OutsideNotReported(VlanTypeDriver):
    def get_usage(self, session: Session) -> dict[str, Any]:
        usage = super().get_usage(session)
        usage["ranges"] = [r for r in usage["ranges"] if r["first"] is not None]
        return usage


class PartialOutOfRange(VlanTypeDriver):
    def reserve_provider_segment(self, session: Session, segment: Segment) -> Segment:
        if segment.get("segmentation_id") is None:
            segment = {**segment, "segmentation_id": 4000}
        return super().reserve_provider_segment(session, segment)


class WrongFieldNamed(VlanTypeDriver):
    def validate_provider_segment(self, segment: Segment) -> Segment:
        try:
            return super().validate_provider_segment(segment)
        except exception.Invalid as err:
            raise exception.Invalid("segment", str(err)) from None


class AcceptsUnknownPhysnet(VlanTypeDriver):
    def validate_provider_segment(self, segment: Segment) -> Segment:
        if segment.get("physical_network") not in self.ranges:
            return {"network_type": "vlan", "physical_network": segment["physical_network"],
                    "segmentation_id": segment.get("segmentation_id")}
        return super().validate_provider_segment(segment)


def _b(name: str, cls: type, kills: Sequence[str], expect: str, defect: str) -> Broken:
    return Broken("network.type", f"zoo-{name}", f"{M}:{cls.__name__}", tuple(kills), expect,
                  "fail", "", defect)


INVALID = PS + "test_invalid_provider_segment_names_the_field"

ZOO = [
    _b("name-changes", TypeNameChanges, [AL + "test_get_type_is_a_stable_name"],
       "get_type() asked again: expected 'vlan', got 'vlan2'", "get_type is not stable"),
    _b("never-exhausted", NeverExhausted,
       [AL + "test_allocates_every_pool_id_once_then_returns_none"],
       "segments allocated until None (every ID of the configured ranges, and no more): "
       "expected 70, got 71", "allocation never returns None"),
    _b("release-noop", ReleaseNoop, [AL + "test_release_returns_the_id_to_the_pool"],
       "free IDs after releasing one segment twice: expected", "release frees nothing"),
    _b("busy-allocator", BusyAllocator, [AL + "test_concurrent_allocations_never_share_an_id"],
       "errors of 4 threads allocating at once: expected nothing, got ['DriverError: "
       "allocator busy'", "allocation is not safe under concurrency"),
    _b("forgets-on-restart", ForgetsOnRestart, [AL + "test_reinitialising_keeps_ids_in_use"],
       "get_usage() after initialize() again: expected", "a restart frees the IDs in use"),
    _b("reserves-twice", ReservesTwice,
       [PS + "test_provider_segment_in_range_is_reserved_once"],
       "a second time: expected SegmentIdInUse, got no error",
       "a provider segment is reserved twice"),
    _b("outside-not-reported", OutsideNotReported,
       [PS + "test_provider_segment_outside_the_ranges_is_never_pooled"],
       "IDs get_usage() reports allocated outside the ranges after reserving ('physnet1', "
       "210): expected 1, got 0", "IDs outside the ranges are not reported"),
    _b("partial-out-of-range", PartialOutOfRange,
       [PS + "test_partial_provider_segment_gets_a_pool_id"],
       "segmentation_id given to a partial segment on physnet",
       "a partial segment gets an ID outside the pool"),
    _b("wrong-field-named", WrongFieldNamed,
       [INVALID + "[override0-segmentation_id]", INVALID + "[override1-physical_network]"],
       "the field the Invalid error names for", "the error names the wrong field"),
    _b("accepts-unknown-physnet", AcceptsUnknownPhysnet, [INVALID + "[override1-physical_network]"],
       "validate_provider_segment() with {'physical_network': 'no-such-physnet-conformance'}: "
       "expected Invalid, got no error", "an unconfigured physical network is accepted"),
]
