"""Routers and floating IPs: the server side of the L3 agent (Neutron's L3 RPC).

The API is :mod:`stackcore.network.routers` (``cloud.network``); the agent
(``stackcore-l3-agent``) is in the drivers package (``stackcore_drivers.network.l3``) and talks
to the server only through :mod:`.rpc`.
"""

from __future__ import annotations

from stackcore.network.l3.rpc import (
    AGENT_TOPIC,
    AGENT_TYPE,
    DEVICE_OWNER_FLOATINGIP,
    DEVICE_OWNER_GATEWAY,
    DEVICE_OWNER_INTERFACE,
    L3RPCAPI,
    NETNS_PREFIX,
    TOPIC,
    L3AgentNotifier,
    L3RPCEndpoint,
    netns_name,
)

__all__ = [
    "AGENT_TOPIC",
    "AGENT_TYPE",
    "DEVICE_OWNER_FLOATINGIP",
    "DEVICE_OWNER_GATEWAY",
    "DEVICE_OWNER_INTERFACE",
    "L3RPCAPI",
    "NETNS_PREFIX",
    "TOPIC",
    "L3AgentNotifier",
    "L3RPCEndpoint",
    "netns_name",
]
