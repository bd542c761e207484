"""The ``flat`` type driver: one untagged network per physical network.

Allowed physical networks come from ``[ml2_type_flat] flat_networks`` (``*`` = any). A flat
network holds its physical network (an allocation row with ID 0), so a second one on the same
physical network is refused. Flat is never used for project networks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stackcore import exception
from stackcore.network import exceptions
from stackcore.network.contracts.type_driver import (
    Segment,
    TypeDriver,
    mtu_for_physnet,
    physical_network_mtus,
)

if TYPE_CHECKING:
    from oslo_config import cfg
    from sqlalchemy.orm import Session

FLAT_ID = 0


class FlatTypeDriver(TypeDriver):
    VERSION = "1.0"

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        super().__init__(conf)
        self.allowed: list[str] = []
        self.any_physnet = False

    def get_type(self) -> str:
        return "flat"

    def initialize(self, session: Session) -> None:
        physical_network_mtus(self.conf)  # fail start-up on a bad value, not the first create
        self.allowed = [p.strip() for p in self.conf.ml2_type_flat.flat_networks if p.strip()]
        self.any_physnet = "*" in self.allowed

    def is_partial_segment(self, segment: Segment) -> bool:
        return False

    def validate_provider_segment(self, segment: Segment) -> Segment:
        physnet = segment.get("physical_network")
        if not physnet:
            raise exception.Invalid("physical_network", "is required for flat networks")
        if not self.allowed:
            raise exception.Invalid(
                "network_type", "flat networks are disabled ([ml2_type_flat] flat_networks "
                "is empty)", "flat"
            )
        if not self.any_physnet and physnet not in self.allowed:
            raise exception.Invalid(
                "physical_network",
                f"{physnet!r} is not in [ml2_type_flat] flat_networks "
                f"({', '.join(self.allowed)})",
                physnet,
            )
        if segment.get("segmentation_id") is not None:
            raise exception.Invalid(
                "segmentation_id", "is not allowed for flat networks", segment["segmentation_id"]
            )
        return {"network_type": "flat", "physical_network": physnet, "segmentation_id": None}

    def reserve_provider_segment(self, session: Session, segment: Segment) -> Segment:
        import sqlalchemy as sa

        from stackcore.network.models import SegmentAllocation
        physnet = segment["physical_network"]
        try:
            with session.begin_nested():
                session.execute(sa.insert(SegmentAllocation).values(
                    network_type="flat", physical_network=physnet, segmentation_id=FLAT_ID
                ))
        except sa.exc.IntegrityError:
            raise exceptions.SegmentIdInUse("flat", physnet, None) from None
        return {
            "network_type": "flat",
            "physical_network": physnet,
            "segmentation_id": None,
            "mtu": self.get_mtu(physnet),
        }

    def allocate_tenant_segment(self, session: Session) -> Segment | None:
        return None

    def release_segment(self, session: Session, segment: Segment) -> None:
        import sqlalchemy as sa

        from stackcore.network.models import SegmentAllocation
        session.execute(
            sa.delete(SegmentAllocation)
            .where(
                SegmentAllocation.network_type == "flat",
                SegmentAllocation.physical_network == segment["physical_network"],
                SegmentAllocation.segmentation_id == FLAT_ID,
            )
            .execution_options(synchronize_session=False)
        )

    def get_mtu(self, physical_network: str | None) -> int:
        return mtu_for_physnet(self.conf, physical_network)

    def get_usage(self, session: Session) -> dict[str, Any]:
        import sqlalchemy as sa

        from stackcore.network.models import SegmentAllocation
        used = set(session.execute(
            sa.select(SegmentAllocation.physical_network)
            .where(SegmentAllocation.network_type == "flat")
        ).scalars())
        named = [p for p in self.allowed if p != "*"]
        physnets = sorted(set(named) | used)
        return {
            "network_type": "flat",
            "ranges": [
                {
                    "physical_network": p,
                    "first": None,
                    "last": None,
                    "total": 1 if p in named else 0,
                    "allocated": 1 if p in used else 0,
                    "free": 1 if p in named and p not in used else 0,
                }
                for p in physnets
            ],
        }
