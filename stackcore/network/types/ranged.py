"""Shared implementation of type drivers whose IDs come from configured ranges (VLAN, VXLAN).

Subclasses say how to read their ranges from configuration and which ID bounds and physical
network rules apply; allocation is :class:`~stackcore.network.types.segments.RangeAllocator`.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any, ClassVar

from stackcore import exception
from stackcore.network import exceptions
from stackcore.network.contracts.type_driver import Segment, TypeDriver
from stackcore.network.types import segments

if TYPE_CHECKING:
    from oslo_config import cfg
    from sqlalchemy.orm import Session


class RangedTypeDriver(TypeDriver):
    """A type whose segmentation IDs lie in ``[MIN_ID, MAX_ID]`` and come from a pool."""

    NETWORK_TYPE: ClassVar[str] = ""
    MIN_ID: ClassVar[int] = 1
    MAX_ID: ClassVar[int] = 1
    #: Whether segments of this type name a physical network (VLAN) or must not (overlays).
    HAS_PHYSNET: ClassVar[bool] = False

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        super().__init__(conf)
        self.allocator = segments.RangeAllocator(self.NETWORK_TYPE)
        self.ranges: dict[str, list[tuple[int, int]]] = {}

    @abc.abstractmethod
    def parse_ranges(self) -> dict[str, list[tuple[int, int]]]:
        """The configured ranges per physical network (``""`` for overlays)."""

    def get_type(self) -> str:
        return self.NETWORK_TYPE

    def initialize(self, session: Session) -> None:
        self.ranges = self.parse_ranges()
        self.allocator.sync(session, self.ranges)

    def is_partial_segment(self, segment: Segment) -> bool:
        return segment.get("segmentation_id") is None

    def validate_provider_segment(self, segment: Segment) -> Segment:
        physnet = segment.get("physical_network")
        seg_id = segment.get("segmentation_id")
        if self.HAS_PHYSNET:
            if not physnet:
                raise exception.Invalid(
                    "physical_network", f"is required for {self.NETWORK_TYPE} networks"
                )
            if physnet not in self.ranges:
                known = ", ".join(sorted(self.ranges)) or "none"
                raise exception.Invalid(
                    "physical_network",
                    f"{physnet!r} is not configured for {self.NETWORK_TYPE} (configured: "
                    f"{known})",
                    physnet,
                )
        elif physnet:
            raise exception.Invalid(
                "physical_network", f"is not allowed for {self.NETWORK_TYPE} networks", physnet
            )
        if seg_id is not None:
            if isinstance(seg_id, bool) or not isinstance(seg_id, int) or not (
                self.MIN_ID <= seg_id <= self.MAX_ID
            ):
                raise exception.Invalid(
                    "segmentation_id",
                    f"{seg_id!r} is not a valid {self.NETWORK_TYPE} ID "
                    f"({self.MIN_ID}..{self.MAX_ID})",
                    seg_id,
                )
        return {
            "network_type": self.NETWORK_TYPE,
            "physical_network": physnet if self.HAS_PHYSNET else None,
            "segmentation_id": seg_id,
        }

    def reserve_provider_segment(self, session: Session, segment: Segment) -> Segment:
        physnet = segment.get("physical_network") or ""
        seg_id = segment.get("segmentation_id")
        if seg_id is None:
            got = self.allocator.allocate(session, [physnet])
            if got is None:
                raise exceptions.NoNetworkAvailable([f"{self.NETWORK_TYPE} on {physnet!r}"])
            seg_id = got[1]
        else:
            self.allocator.reserve(session, physnet, seg_id)
        return self._segment(physnet, seg_id)

    def allocate_tenant_segment(self, session: Session) -> Segment | None:
        physnets = [p for p, runs in self.ranges.items() if runs]
        got = self.allocator.allocate(session, physnets)
        return None if got is None else self._segment(*got)

    def release_segment(self, session: Session, segment: Segment) -> None:
        seg_id = segment.get("segmentation_id")
        if seg_id is not None:
            self.allocator.release(
                session, segment.get("physical_network") or "", seg_id, self.ranges
            )

    def get_usage(self, session: Session) -> dict[str, Any]:
        return {
            "network_type": self.NETWORK_TYPE,
            "ranges": [
                {
                    "physical_network": u.physical_network or None,
                    "first": u.first,
                    "last": u.last,
                    "total": u.total,
                    "allocated": u.allocated,
                    "free": u.free,
                }
                for u in self.allocator.usage(session, self.ranges)
            ],
        }

    def _segment(self, physnet: str, seg_id: int) -> Segment:
        physical_network = physnet or None
        return {
            "network_type": self.NETWORK_TYPE,
            "physical_network": physical_network,
            "segmentation_id": seg_id,
            "mtu": self.get_mtu(physical_network),
        }

    def _parse_range(self, option: str, text: str) -> tuple[int, int]:
        """``"min:max"`` checked against the type's ID bounds; ConfigError naming ``option``."""
        try:
            low_text, high_text = text.split(":")
            low, high = int(low_text), int(high_text)
        except ValueError:
            raise exception.ConfigError(
                f"{option}: {text!r} is not a range of the form min:max"
            ) from None
        if not (self.MIN_ID <= low <= high <= self.MAX_ID):
            raise exception.ConfigError(
                f"{option}: range {text!r} must satisfy {self.MIN_ID} <= min <= max <= "
                f"{self.MAX_ID}"
            )
        return low, high
