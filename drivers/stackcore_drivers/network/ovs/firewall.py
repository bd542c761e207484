"""Security groups on br-int with conntrack flows (``[securitygroup] firewall_driver =
openvswitch``; Neutron's native OVS firewall, kept small). Pure functions from the host's
filtered ports to flows (``ovs-ofctl`` syntax); they run on the userspace (``netdev``)
datapath's conntrack as on the kernel's.

Each filtered VM port has a conntrack zone of its own (its OpenFlow port number), used for
both of its directions, so the state of a connection is the port's own: an egress packet
committed by one port is still ``+new`` when it reaches another port's ingress on this host,
and the reply of a connection a port accepted is ``+est`` when it leaves that port again.

``table 0`` (see :mod:`.pipeline`)
    from a filtered VM port -> ``reg5=<its ofport>``, table 71; from an unfiltered one (port
    security off, trusted ``network:*`` owners) -> table 73 (both with ``reg6=<local VLAN>``:
    packets of an access port carry no tag inside the pipeline); from a trunk (patch-tun, a
    provider patch after its VLAN translation) -> table 60.
``table 60`` - from a trunk, tagged with the local VLAN: to a filtered port's MAC on its
    VLAN -> ``reg5=<its ofport>``, strip the VLAN, table 81; everything else ``NORMAL``.
``table 71`` - egress anti-spoofing: ARP with a sender address of the port (fixed IPs, allowed
    address pairs, each with its MAC), DHCP/DHCPv6 client requests and IPv6 router/neighbour
    solicitations and adverts from its MAC -> table 73; IPv4/IPv6 from an allowed (MAC, IP)
    pair (and the MAC's IPv6 link-local address) -> ``ct(zone=<port>)``, table 72; DHCP/
    DHCPv6 server replies and router adverts from a VM are dropped, as is everything else.
``table 72`` - egress rules: ``+est``/``+rel`` -> table 73; ``+new`` matching a rule ->
    ``ct(commit)``, table 73; ``+inv`` and the rest dropped.
``table 73`` - accepted egress: to a filtered port's MAC on the sender's local VLAN (reg6) ->
    ``reg5=<its ofport>``, table 81; everything else ``NORMAL``.
``table 81`` - ingress: ARP, DHCP replies, IPv6 ND/RA -> output; IPv4/IPv6 ->
    ``ct(zone=<port>)``, table 82; the rest dropped.
``table 82`` - ingress rules: ``+est``/``+rel`` -> output; ``+new`` matching a rule ->
    ``ct(commit)``, output; everything else dropped.

Broadcast and multicast go through ``NORMAL`` unfiltered on the way in (ARP, ND, DHCP need
them), as with Neutron's firewall. Removing a rule also ends the connections it had accepted:
the agent flushes the conntrack zone of every port that lost a rule right after the new
flows are in (``OvsAgent._forget_revoked_connections``), so their next packet is ``+new`` and
meets the remaining rules.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
from collections.abc import Iterable, Sequence

from stackcore_drivers.network.host_state import PortSecurity, SecurityRule

#: The firewall's tables (Neutron's numbers).
TRUNK_INGRESS, EGRESS_SPOOF, EGRESS_RULES, EGRESS_ACCEPTED = 60, 71, 72, 73
INGRESS, INGRESS_RULES = 81, 82
FIREWALL_TABLES = (TRUNK_INGRESS, EGRESS_SPOOF, EGRESS_RULES, EGRESS_ACCEPTED, INGRESS,
                   INGRESS_RULES)
#: Protocols whose ports OVS can match (TCP, UDP, SCTP).
_PORT_PROTOCOLS = {6: ("tcp", "tcp6"), 17: ("udp", "udp6"), 132: ("sctp", "sctp6")}


@dataclasses.dataclass(frozen=True)
class FirewallPort:
    """A VM port wired on br-int: its OpenFlow port, MAC, local VLAN and security (None or
    disabled: not filtered)."""

    ofport: int
    mac: str
    local_vlan: int
    security: PortSecurity | None


def port_masks(low: int, high: int) -> list[str]:
    """``low..high`` as the fewest ``value/mask`` matches (exact values without a mask)."""
    result: list[str] = []
    while low <= high:
        size = 1
        while low % (size * 2) == 0 and low + size * 2 - 1 <= high and size < 65536:
            size *= 2
        if size == 1:
            result.append(str(low))
        else:
            result.append(f"{low:#06x}/{0xffff ^ (size - 1):#06x}")
        low += size
    return result


def _link_local(mac: str) -> str:
    octets = [int(x, 16) for x in mac.split(":")]
    octets[0] ^= 0x02
    eui = [*octets[:3], 0xFF, 0xFE, *octets[3:]]
    return str(ipaddress.IPv6Address(bytes([0xFE, 0x80] + [0] * 6 + eui)))


def _rule_matches(rule: SecurityRule) -> list[str] | None:
    """The match strings of one rule without direction-specific parts: one per port mask
    (None: a rule OVS cannot express exactly - ports of DCCP/UDP-Lite - left out, so it
    allows nothing rather than too much)."""
    v6 = rule.ethertype == "IPv6"
    proto = rule.protocol
    if proto is None:
        return ["ipv6" if v6 else "ip"]
    if proto in _PORT_PROTOCOLS:
        name = _PORT_PROTOCOLS[proto][1 if v6 else 0]
        if rule.port_range_min is None or rule.port_range_max is None or (
                rule.port_range_min, rule.port_range_max) == (1, 65535):
            return [name]
        return [f"{name},tp_dst={m}" for m in port_masks(rule.port_range_min,
                                                         rule.port_range_max)]
    if proto in (1, 58):
        match = "icmp6" if v6 else "icmp"
        if rule.port_range_min is not None:
            match += f",icmp_type={rule.port_range_min}"
            if rule.port_range_max is not None:
                match += f",icmp_code={rule.port_range_max}"
        return [match]
    if rule.port_range_min is not None:
        return None
    return [f"{'ipv6' if v6 else 'ip'},nw_proto={proto}"]


def _remote(rule: SecurityRule, direction: str) -> str:
    if not rule.remote_ip_prefix:
        return ""
    net = ipaddress.ip_network(rule.remote_ip_prefix, strict=False)
    if net.prefixlen == 0:
        return ""
    side = "dst" if direction == "egress" else "src"
    field = f"ipv6_{side}" if net.version == 6 else f"nw_{side}"
    return f",{field}={net}"


def _addresses(security: PortSecurity, mac: str) -> list[tuple[str, str]]:
    pairs = list(security.addresses)
    pairs.append((_link_local(mac) + "/128", mac))
    return pairs


def firewall_flows(ports: Sequence[FirewallPort]) -> list[str]:
    """The firewall tables of br-int and the table-0 entries of the VM ports (to be added to
    :func:`.pipeline.integration_flows`' output, which must send trunks to table 60)."""
    flows = [
        f"table={TRUNK_INGRESS},priority=0 actions=NORMAL",
        f"table={EGRESS_SPOOF},priority=0 actions=drop",
        f"table={EGRESS_RULES},priority=90,ct_state=+inv+trk actions=drop",
        f"table={EGRESS_RULES},priority=80,ct_state=+est-rel-inv+trk "
        f"actions=resubmit(,{EGRESS_ACCEPTED})",
        f"table={EGRESS_RULES},priority=80,ct_state=+rel-inv+trk "
        f"actions=resubmit(,{EGRESS_ACCEPTED})",
        f"table={EGRESS_RULES},priority=0 actions=drop",
        f"table={EGRESS_ACCEPTED},priority=0 actions=NORMAL",
        f"table={INGRESS},priority=0 actions=drop",
        f"table={INGRESS_RULES},priority=90,ct_state=+inv+trk actions=drop",
        f"table={INGRESS_RULES},priority=0 actions=drop",
    ]
    for port in sorted(ports, key=lambda p: p.ofport):
        flows.extend(_port_flows(port))
    return flows


@functools.lru_cache(maxsize=16384)
def _port_flows(port: FirewallPort) -> tuple[str, ...]:
    """One port's flows; cached (ports and their security are immutable values), so a pass
    recomputes only the ports whose rules, addresses or OpenFlow port changed."""
    p, mac, vlan = port.ofport, port.mac.lower(), port.local_vlan
    on_vlan = f"load:{vlan}->NXM_NX_REG6[]"
    if port.security is None or not port.security.enabled:
        return (f"table=0,priority=10,in_port={p} actions={on_vlan},"
                f"resubmit(,{EGRESS_ACCEPTED})",)
    security = port.security
    reg = f"reg5={p}"
    to_port = f"load:{p}->NXM_NX_REG5[]"
    flows = [
        f"table=0,priority=10,in_port={p} actions={to_port},{on_vlan},"
        f"resubmit(,{EGRESS_SPOOF})",
        f"table={TRUNK_INGRESS},priority=100,dl_vlan={vlan},dl_dst={mac} "
        f"actions={to_port},strip_vlan,resubmit(,{INGRESS})",
        f"table={EGRESS_ACCEPTED},priority=100,reg6={vlan},dl_dst={mac} "
        f"actions={to_port},resubmit(,{INGRESS})",
        # egress: what a VM may send besides its filtered IP traffic
        f"table={EGRESS_SPOOF},priority=95,{reg},udp,dl_src={mac},nw_src=0.0.0.0,tp_src=68,"
        f"tp_dst=67 actions=resubmit(,{EGRESS_ACCEPTED})",
        f"table={EGRESS_SPOOF},priority=95,{reg},udp6,dl_src={mac},tp_src=546,tp_dst=547 "
        f"actions=resubmit(,{EGRESS_ACCEPTED})",
        f"table={EGRESS_SPOOF},priority=90,{reg},udp,tp_src=67,tp_dst=68 actions=drop",
        f"table={EGRESS_SPOOF},priority=90,{reg},udp6,tp_src=547,tp_dst=546 actions=drop",
        f"table={EGRESS_SPOOF},priority=90,{reg},icmp6,icmp_type=134 actions=drop",
        f"table={EGRESS_SPOOF},priority=10,{reg} actions=drop",
        # ingress: ARP, DHCP replies and IPv6 ND/RA, then conntrack
        f"table={INGRESS},priority=100,{reg},arp actions=output:{p}",
        f"table={INGRESS},priority=95,{reg},udp,tp_src=67,tp_dst=68 actions=output:{p}",
        f"table={INGRESS},priority=95,{reg},udp6,tp_src=547,tp_dst=546 actions=output:{p}",
        f"table={INGRESS},priority=90,{reg},ip actions=ct(table={INGRESS_RULES},zone={p})",
        f"table={INGRESS},priority=90,{reg},ipv6 actions=ct(table={INGRESS_RULES},zone={p})",
        f"table={INGRESS_RULES},priority=80,{reg},ct_state=+est-rel-inv+trk "
        f"actions=output:{p}",
        f"table={INGRESS_RULES},priority=80,{reg},ct_state=+rel-inv+trk actions=output:{p}",
    ]
    for icmp_type in (133, 135, 136):
        flows.append(f"table={EGRESS_SPOOF},priority=95,{reg},icmp6,dl_src={mac},"
                     f"icmp_type={icmp_type} actions=resubmit(,{EGRESS_ACCEPTED})")
    for icmp_type in (134, 135, 136):
        flows.append(f"table={INGRESS},priority=100,{reg},icmp6,icmp_type={icmp_type} "
                     f"actions=output:{p}")
    seen: set[str] = set()
    for address, pair_mac in _addresses(security, mac):
        net = ipaddress.ip_network(address, strict=False)
        if net.version == 4:
            for flow in (
                    f"table={EGRESS_SPOOF},priority=95,{reg},arp,dl_src={pair_mac},"
                    f"arp_spa={net} actions=resubmit(,{EGRESS_ACCEPTED})",
                    f"table={EGRESS_SPOOF},priority=65,{reg},ip,dl_src={pair_mac},"
                    f"nw_src={net} actions=ct(table={EGRESS_RULES},zone={p})"):
                if flow not in seen:
                    seen.add(flow)
                    flows.append(flow)
        else:
            flow = (f"table={EGRESS_SPOOF},priority=65,{reg},ipv6,dl_src={pair_mac},"
                    f"ipv6_src={net} actions=ct(table={EGRESS_RULES},zone={p})")
            if flow not in seen:
                seen.add(flow)
                flows.append(flow)
    for rule in _unique(security.rules):
        matches = _rule_matches(rule)
        if matches is None:
            continue
        remote = _remote(rule, rule.direction)
        table = EGRESS_RULES if rule.direction == "egress" else INGRESS_RULES
        then = (f"resubmit(,{EGRESS_ACCEPTED})" if rule.direction == "egress"
                else f"output:{p}")
        for match in matches:
            flow = (f"table={table},priority=70,{reg},ct_state=+new-est+trk,{match}{remote} "
                    f"actions=ct(commit,zone={p}),{then}")
            if flow not in seen:
                seen.add(flow)
                flows.append(flow)
    return tuple(flows)


def _unique(rules: Iterable[SecurityRule]) -> list[SecurityRule]:
    return list(dict.fromkeys(rules))
