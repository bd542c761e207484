"""The ``openvswitch`` mechanism driver (server side): binds ports where a live OVS agent
can wire the segment - flat/VLAN when its ``bridge_mappings`` has the physical network, VXLAN
when it reports ``vxlan`` in ``tunnel_types`` and a ``tunneling_ip``.

``vif_type = ovs``; ``vif_details``: ``bridge_name`` (the agent's integration bridge),
``datapath_type`` (the agent's: ``system`` or ``netdev``), ``port_filter``, ``connectivity``
(``l2``) and ``ovs_hybrid_plug`` (False: no iptables hybrid plugging).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from stackcore.network import PortContext
from stackcore_drivers.network.mech_agent import AgentMechanismDriver
from stackcore_drivers.network.ovs import AGENT_TYPE, VIF_TYPE

if TYPE_CHECKING:
    from oslo_config import cfg



class OpenvswitchMechanismDriver(AgentMechanismDriver):
    AGENT_TYPE = AGENT_TYPE
    VIF_TYPE = VIF_TYPE
    MAPPING_KEYS = ("bridge_mappings",)

    @classmethod
    def list_opts(cls) -> list[tuple[str, Sequence[cfg.Opt]]]:
        from stackcore_drivers.network.ovs import conf as ovs_conf
        return [("ml2_ovs", ovs_conf.MECH_OPTS)]

    def vif_details(self, agent: Mapping[str, Any], segment: Mapping[str, Any],
                    context: PortContext) -> dict[str, Any]:
        config = agent.get("configurations") or {}
        return {
            "port_filter": bool(self.conf.ml2_ovs.port_filter),
            "connectivity": "l2",
            "ovs_hybrid_plug": False,
            "bridge_name": str(config.get("integration_bridge") or "br-int"),
            "datapath_type": str(config.get("datapath_type") or "system"),
        }
