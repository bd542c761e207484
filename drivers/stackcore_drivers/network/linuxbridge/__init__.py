"""Linux bridge: the ``linuxbridge`` mechanism driver and the Linux bridge L2 agent
(pyroute2). Neutron removed this driver in 2025 (26.0.0); stackcore keeps it."""

AGENT_TYPE = "Linux bridge agent"
VIF_TYPE = "bridge"
