"""What an L2 agent should realise on its host, as the server tells it over the agent RPC
(:mod:`stackcore.network.agents.rpc`, topic ``network.agents``).

The agents reconcile their backend against this state on start-up and every polling
interval (level-triggered: no notification can be missed, a restart is just another pass).
They never touch the ML2 database: the server owns it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from stackcore.network.agents import AgentRPCAPI


@dataclasses.dataclass(frozen=True)
class SecurityRule:
    """One allow rule as the agent enforces it (remote groups already expanded by the
    server into ``remote_ip_prefix`` CIDRs; None: any address)."""

    direction: str  # ingress | egress
    ethertype: str  # IPv4 | IPv6
    protocol: int | None  # IANA number; None: any
    port_range_min: int | None  # ports, or the ICMP type
    port_range_max: int | None  # ports, or the ICMP code
    remote_ip_prefix: str | None

    @classmethod
    def from_dict(cls, rule: Mapping[str, Any]) -> SecurityRule:
        return cls(str(rule["direction"]), str(rule["ethertype"]), rule["protocol"],
                   rule["port_range_min"], rule["port_range_max"], rule["remote_ip_prefix"])


@dataclasses.dataclass(frozen=True)
class PortSecurity:
    """What a port may send and receive: ``enabled`` False means no filtering at all.
    ``addresses``: the (IP or CIDR, MAC) pairs it may send from - its fixed IPs with its MAC,
    then its allowed address pairs."""

    enabled: bool
    addresses: tuple[tuple[str, str], ...] = ()
    rules: tuple[SecurityRule, ...] = ()

    @classmethod
    def from_dict(cls, info: Mapping[str, Any]) -> PortSecurity:
        """From one value of ``security_group_rules_for_devices``."""
        if not info["port_security_enabled"]:
            return cls(False)
        mac = str(info["mac_address"]).lower()
        addresses = [(str(ip), mac) for ip in info["fixed_ips"]]
        addresses += [(str(p["ip_address"]), str(p["mac_address"]).lower())
                      for p in info["allowed_address_pairs"]]
        return cls(True, tuple(dict.fromkeys(addresses)),
                   tuple(SecurityRule.from_dict(r) for r in info["rules"]))


@dataclasses.dataclass(frozen=True)
class BoundPort:
    """A port bound to this host by this agent's mechanism driver, with its bottom segment."""

    port_id: str
    mac_address: str
    network_id: str
    network_type: str
    physical_network: str | None
    segmentation_id: int | None
    mtu: int
    admin_state_up: bool
    status: str = "DOWN"
    fixed_ips: tuple[str, ...] = ()
    device_owner: str = ""
    #: None: the agent does not filter (``[securitygroup] firewall_driver = noop``)
    security: PortSecurity | None = None

    @classmethod
    def from_device(cls, device: Mapping[str, Any]) -> BoundPort:
        """From one entry of ``get_devices_for_host``."""
        segment = device["segment"]
        return cls(
            port_id=device["port_id"], mac_address=device["mac_address"],
            network_id=device["network_id"], network_type=segment["network_type"],
            physical_network=segment["physical_network"],
            segmentation_id=segment["segmentation_id"], mtu=segment["mtu"] or 0,
            admin_state_up=bool(device["admin_state_up"]), status=device["status"],
            fixed_ips=tuple(ip["ip_address"] for ip in device.get("fixed_ips") or ()),
            device_owner=str(device.get("device_owner") or ""))


@dataclasses.dataclass(frozen=True)
class HostState:
    """Ports to wire (by port id) and, per overlay network, the tunnel endpoints of the other
    hosts that have ports on it."""

    ports: dict[str, BoundPort]
    peers: dict[str, frozenset[str]]

    def networks(self) -> dict[str, BoundPort]:
        """One port per network (the network's segment is the same for all its ports)."""
        result: dict[str, BoundPort] = {}
        for port in sorted(self.ports.values(), key=lambda p: p.port_id):
            result.setdefault(port.network_id, port)
        return result


def read_host_state(rpc: AgentRPCAPI, host: str, agent_type: str,
                    tunnel_types: Iterable[str] = ("vxlan",),
                    security: bool = False) -> HostState:
    """The ports the server bound on ``host`` for ``agent_type`` agents, and the peers of
    their overlay networks for each of ``tunnel_types``; with ``security``, each port's
    :class:`PortSecurity` (a port the server no longer knows is left unfiltered: it is about
    to be unwired)."""
    ports = {d["port_id"]: BoundPort.from_device(d)
             for d in rpc.get_devices_for_host(host, agent_type)}
    if security and ports:
        info = rpc.security_group_rules_for_devices(ports)
        ports = {pid: dataclasses.replace(
            port, security=PortSecurity.from_dict(info[pid]) if pid in info
            else PortSecurity(False)) for pid, port in ports.items()}
    peers: dict[str, frozenset[str]] = {}
    for tunnel_type in sorted(set(tunnel_types)):
        networks = {p.network_id for p in ports.values() if p.network_type == tunnel_type}
        if not networks:
            continue
        for network_id, ips in rpc.get_tunnel_peers(host, tunnel_type, networks).items():
            peers[network_id] = frozenset(ips)
    return HostState(ports, peers)
