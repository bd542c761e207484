"""``geneve``: an overlay network type whose VNIs come from ``[ml2_type_geneve] vni_ranges``.

Built on :class:`stackcore.network.RangedTypeDriver`, which keeps the free ranges in the
database (allocation atomic under concurrency, start-up cost independent of the range sizes);
a type driver only says which IDs exist and what a segment's MTU is.
"""

from __future__ import annotations

from collections.abc import Sequence

from oslo_config import cfg

from stackcore.network import RangedTypeDriver

#: IP + UDP + Geneve header (no options) + inner Ethernet: what Geneve costs on the underlay.
GENEVE_OVERHEAD = 20 + 8 + 8 + 14

OPTS = [
    cfg.ListOpt("vni_ranges", default=[],
                help="<first>:<last> VNI ranges available for project networks."),
]


class GeneveTypeDriver(RangedTypeDriver):
    VERSION = "1.0.0"
    NETWORK_TYPE = "geneve"
    MIN_ID = 1
    MAX_ID = 2**24 - 1

    @classmethod
    def list_opts(cls) -> list[tuple[str, Sequence[cfg.Opt]]]:
        return [("ml2_type_geneve", OPTS)]

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        super().__init__(conf)
        conf.register_opts(OPTS, group="ml2_type_geneve")

    def parse_ranges(self) -> dict[str, list[tuple[int, int]]]:
        runs = [self._parse_range("[ml2_type_geneve] vni_ranges", item.strip())
                for item in self.conf.ml2_type_geneve.vni_ranges if item.strip()]
        return {"": runs}

    def get_mtu(self, physical_network: str | None) -> int:
        underlay = [m for m in (self.conf.network.global_physnet_mtu, self.conf.ml2.path_mtu)
                    if m > 0]
        return max(0, min(underlay) - GENEVE_OVERHEAD) if underlay else 0
