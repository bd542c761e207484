"""The ``linuxbridge`` mechanism driver (server side): binds ports where a live Linux bridge
agent can wire the segment - flat when its ``interface_mappings`` or ``bridge_mappings`` has
the physical network, VLAN when its ``interface_mappings`` has it, VXLAN when it reports a
``tunneling_ip``.

``vif_type = bridge``; ``vif_details``: ``bridge_name`` (the bridge the agent puts the
network on, what the hypervisor plugs the tap into), ``port_filter`` (False) and
``connectivity`` (``l2``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stackcore.network import PortContext
from stackcore_drivers.network.linuxbridge import AGENT_TYPE, VIF_TYPE
from stackcore_drivers.network.linuxbridge.ip_lib import bridge_name
from stackcore_drivers.network.mech_agent import AgentMechanismDriver


class LinuxbridgeMechanismDriver(AgentMechanismDriver):
    AGENT_TYPE = AGENT_TYPE
    VIF_TYPE = VIF_TYPE
    MAPPING_KEYS = ("interface_mappings", "bridge_mappings")

    def check_segment(self, agent: Mapping[str, Any], segment: Mapping[str, Any]) -> str | None:
        why = super().check_segment(agent, segment)
        if why is None and segment.get("network_type") == "vlan":
            interfaces = (agent.get("configurations") or {}).get("interface_mappings") or {}
            if segment.get("physical_network") not in interfaces:
                return (f"physical network {segment.get('physical_network')!r} has no "
                        f"interface in the interface_mappings of the {self.AGENT_TYPE} on "
                        f"host {agent.get('host')!r} (VLAN needs an interface)")
        return why

    def vif_details(self, agent: Mapping[str, Any], segment: Mapping[str, Any],
                    context: PortContext) -> dict[str, Any]:
        config = agent.get("configurations") or {}
        mapped = (config.get("bridge_mappings") or {}).get(segment.get("physical_network"))
        if segment.get("network_type") == "flat" and mapped:
            bridge = str(mapped)
        else:
            bridge = bridge_name(str(context.current["network_id"]))
        return {"port_filter": False, "connectivity": "l2", "bridge_name": bridge}
