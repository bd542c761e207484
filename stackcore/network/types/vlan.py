"""The ``vlan`` type driver: 802.1Q segments on physical networks, IDs from
``[ml2_type_vlan] network_vlan_ranges``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from stackcore import exception
from stackcore.network.contracts.type_driver import mtu_for_physnet, physical_network_mtus
from stackcore.network.types.ranged import RangedTypeDriver

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

OPTION = "[ml2_type_vlan] network_vlan_ranges"


class VlanTypeDriver(RangedTypeDriver):
    VERSION = "1.0"
    NETWORK_TYPE = "vlan"
    MIN_ID = 1
    MAX_ID = 4094
    HAS_PHYSNET = True

    def parse_ranges(self) -> dict[str, list[tuple[int, int]]]:
        """``physnet:min:max`` entries (repeatable) and bare ``physnet`` (provider only)."""
        ranges: dict[str, list[tuple[int, int]]] = {}
        for item in self.conf.ml2_type_vlan.network_vlan_ranges:
            item = item.strip()
            if not item:
                continue
            physnet, sep, span = item.partition(":")
            if not physnet:
                raise exception.ConfigError(f"{OPTION}: {item!r} has no physical network name")
            runs = ranges.setdefault(physnet, [])
            if sep:
                runs.append(self._parse_range(OPTION, span))
        return ranges

    def initialize(self, session: Session) -> None:
        physical_network_mtus(self.conf)  # fail start-up on a bad value, not the first create
        super().initialize(session)

    def get_mtu(self, physical_network: str | None) -> int:
        return mtu_for_physnet(self.conf, physical_network)
