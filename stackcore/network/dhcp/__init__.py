"""DHCP for networks (Neutron's DHCP agent + driver split).

The public surface for DHCP driver authors (a plugin imports from ``stackcore.network.dhcp``
and :mod:`stackcore.exception`, nothing deeper): :class:`DhcpDriver` and ``CONTRACT``
(:mod:`.driver`: every hook, when it runs and what raising means), the values a driver is
handed (:class:`DhcpNetwork`, :class:`DhcpSubnet`, :class:`DhcpPort`, :class:`DhcpDevice`,
:class:`HostEntry`), the agent's RPC client (:class:`DhcpRPCAPI`, :mod:`.rpc`) and
:func:`load_driver`.

The DHCP agent itself (``stackcore-dhcp-agent``) and the ``dnsmasq`` driver are in the drivers
package (``stackcore_drivers.network.dhcp``); the core ships a ``fake`` driver (:mod:`.fake`)
for the conformance kit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stackcore.network.dhcp.driver import (
    AGENT_TYPE,
    CONTRACT,
    DEVICE_OWNER_DHCP,
    NAMESPACE,
    NETNS_PREFIX,
    DhcpDevice,
    DhcpDriver,
    DhcpNetwork,
    DhcpPort,
    DhcpSubnet,
    HostEntry,
    hostname_for,
    netns_name,
)
from stackcore.network.dhcp.rpc import AGENT_TOPIC, DhcpRPCAPI, dhcp_device_id

if TYPE_CHECKING:
    from oslo_config import cfg


def load_driver(conf: cfg.ConfigOpts, name: str, state_dir: str) -> DhcpDriver:
    """The DHCP driver ``name`` (entry point of ``stackcore.network.dhcp_drivers``), verified
    against :data:`CONTRACT`, its options registered on ``conf``, built with ``state_dir``."""
    from stackcore import conf as sc_conf
    from stackcore.plugins import loader

    plugin = loader.load_one(NAMESPACE, name, CONTRACT)
    sc_conf.register(conf, plugin.cls.list_opts())
    driver: DhcpDriver = plugin.cls(conf, state_dir)
    return driver


__all__ = ["AGENT_TOPIC", "AGENT_TYPE", "CONTRACT", "DEVICE_OWNER_DHCP", "NAMESPACE",
           "NETNS_PREFIX", "DhcpDevice", "DhcpDriver", "DhcpNetwork", "DhcpPort", "DhcpRPCAPI",
           "DhcpSubnet", "HostEntry", "dhcp_device_id", "hostname_for", "load_driver", "netns_name"]
