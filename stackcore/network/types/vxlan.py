"""The ``vxlan`` type driver: overlay segments with VNIs from ``[ml2_type_vxlan] vni_ranges``."""

from __future__ import annotations

from stackcore.network.contracts.type_driver import VXLAN_OVERHEAD
from stackcore.network.types.ranged import RangedTypeDriver


class VxlanTypeDriver(RangedTypeDriver):
    VERSION = "1.0"
    NETWORK_TYPE = "vxlan"
    MIN_ID = 1
    MAX_ID = 2**24 - 1

    def parse_ranges(self) -> dict[str, list[tuple[int, int]]]:
        runs = [
            self._parse_range("[ml2_type_vxlan] vni_ranges", item.strip())
            for item in self.conf.ml2_type_vxlan.vni_ranges
            if item.strip()
        ]
        return {"": runs}

    def get_mtu(self, physical_network: str | None) -> int:
        underlay = [m for m in (self.conf.network.global_physnet_mtu, self.conf.ml2.path_mtu)
                    if m > 0]
        return max(0, min(underlay) - VXLAN_OVERHEAD) if underlay else 0
