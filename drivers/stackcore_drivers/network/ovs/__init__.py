"""Open vSwitch: the ``openvswitch`` mechanism driver and the OVS L2 agent (ovsdbapp)."""

AGENT_TYPE = "Open vSwitch agent"
VIF_TYPE = "ovs"
