"""Mechanism drivers that bind where an L2 agent runs (Neutron's ``AgentMechanismDriverBase``
and ``SimpleAgentMechanismDriverBase``), with a reason for every refusal.

A port is bound on its host to the first segment that a *live* agent of the driver's type
there can wire: the segment's type must be one the agent reports (``network_types``), and for
flat/VLAN its physical network must be in the agent's mappings. Every refusal is recorded
through :meth:`PortContext.refuse` (Neutron logs these at DEBUG only), e.g.
``openvswitch: segment vlan/physnet9/120: physical network 'physnet9' is not in the bridge
mappings of the Open vSwitch agent on host 'h1' (known: physnet1)``.

Binding reads only the agent reports (``configurations``) handed in by the context: it is
side-effect free and repeatable, as the contract requires.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from stackcore.network import MechanismDriver, PortContext

PHYSICAL_TYPES = ("flat", "vlan")


class AgentMechanismDriver(MechanismDriver):
    """Binds ports where a live agent of :attr:`AGENT_TYPE` can wire the segment."""

    VERSION = "1.0"
    capabilities: ClassVar[Mapping[str, bool]] = {"bind_port": True}
    AGENT_TYPE: ClassVar[str]
    VIF_TYPE: ClassVar[str]
    SUPPORTED_VNIC_TYPES: ClassVar[tuple[str, ...]] = ("normal",)
    #: Agent configuration key(s) holding physnet -> device mappings.
    MAPPING_KEYS: ClassVar[tuple[str, ...]] = ("bridge_mappings",)

    def initialize(self) -> None:
        """Nothing to check: what can be bound is learnt from the agents' reports."""

    # --- what subclasses provide ----------------------------------------------------------

    def vif_details(self, agent: Mapping[str, Any], segment: Mapping[str, Any],
                    context: PortContext) -> dict[str, Any]:
        """The ``vif_details`` of a port bound through ``agent`` (JSON types)."""
        return {"port_filter": False, "connectivity": "l2"}

    # --- binding --------------------------------------------------------------------------

    def mappings(self, agent: Mapping[str, Any]) -> dict[str, Any]:
        config = agent.get("configurations") or {}
        result: dict[str, Any] = {}
        for key in self.MAPPING_KEYS:
            value = config.get(key) or {}
            if isinstance(value, Mapping):
                result.update(value)
        return result

    def check_segment(self, agent: Mapping[str, Any], segment: Mapping[str, Any]) -> str | None:
        """Why ``agent`` cannot wire ``segment``, or None when it can."""
        config = agent.get("configurations") or {}
        network_type = segment.get("network_type")
        where = f"the {self.AGENT_TYPE} on host {agent.get('host')!r}"
        allowed = list(config.get("network_types") or [])
        if network_type not in allowed:
            return (f"network type {network_type!r} is not handled by {where} "
                    f"(handles: {', '.join(allowed) or 'none'})")
        if network_type in PHYSICAL_TYPES:
            physnet = segment.get("physical_network")
            mappings = self.mappings(agent)
            if physnet not in mappings:
                return (f"physical network {physnet!r} is not in the "
                        f"{' / '.join(self.MAPPING_KEYS)} of {where} "
                        f"(known: {', '.join(sorted(mappings)) or 'none'})")
        elif not config.get("tunneling_ip"):
            return f"{where} has no tunnel endpoint (local_ip) for {network_type!r} networks"
        return None

    def bind_port(self, context: PortContext) -> None:
        """Bind the first segment a live agent on the port's host can wire; otherwise refuse
        with the reason (per segment where the reason is about the segment)."""
        vnic_type = context.current.get("binding:vnic_type", "normal")
        if vnic_type not in self.SUPPORTED_VNIC_TYPES:
            context.refuse(f"vnic_type {vnic_type!r} is not supported (supported: "
                           f"{', '.join(self.SUPPORTED_VNIC_TYPES)})")
            return
        agents = context.host_agents(self.AGENT_TYPE)
        if not agents:
            context.refuse(f"no {self.AGENT_TYPE} has reported from host {context.host!r}")
            return
        live = [agent for agent in agents if agent.get("alive")]
        if not live:
            last = max(str(agent.get("heartbeat_at")) for agent in agents)
            context.refuse(f"the {self.AGENT_TYPE} on host {context.host!r} is not alive "
                           f"(last report {last})")
            return
        for segment in context.segments_to_bind:
            reasons = []
            for agent in live:
                why = self.check_segment(agent, segment)
                if why is None:
                    context.set_binding(segment["id"], self.VIF_TYPE,
                                        self.vif_details(agent, segment, context))
                    return
                reasons.append(why)
            for why in dict.fromkeys(reasons):
                context.refuse(why, segment["id"])
