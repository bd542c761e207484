"""Security groups on the Linux bridge agent's host with nftables (``[securitygroup]
firewall_driver = nftables``).

What this kernel offers decides the design (probed by :func:`probe`, recorded in
``doc/source/security_groups.rst``): nf_tables with the ``bridge``, ``inet`` and ``netdev``
families, conntrack, NAT and bridge-netfilter (``br_netfilter``) are built in, but conntrack
for the bridge family itself (``nf_conntrack_bridge``) is not - a ``ct state`` match in a
``bridge`` table fails. Conntrack of bridged traffic therefore comes from bridge-netfilter,
which passes bridged IPv4/IPv6 packets through the ``inet`` hooks when the bridge has
``nf_call_iptables`` / ``nf_call_ip6tables`` on (set per bridge by the agent, never the
host-wide sysctl). In those hooks a bridged packet's ``iifname`` is the bridge, not the tap,
so the tap is recognised in the ``bridge`` family and handed over in the packet mark:

``table bridge stackcore_sg``
    ``prerouting`` (priority -200): from a filtered tap -> its anti-spoofing chain: the
    port's (MAC, IP) pairs (fixed IPs, allowed address pairs, the MAC's IPv6 link-local) may
    send IP and ARP, its MAC DHCP/DHCPv6 requests and IPv6 router/neighbour solicitations
    and adverts; DHCP server replies and router adverts from a VM and everything else are
    dropped. Accepted IP traffic gets ``mark = <port index>`` (bits 0-15).
    ``forward`` (priority -100, before bridge-netfilter's hook at 0): to a filtered tap ->
    ``mark |= <port index> << 16``.
``table inet stackcore_sg``
    ``prerouting`` (priority -300, before conntrack): conntrack zone per bridge (one per
    network), so equal addresses of two networks never share a connection.
    ``forward``: unmarked packets pass; ``+inv`` dropped; established/related pass
    (stateful); then the sender port's egress chain (its rules ``return``, the rest is
    dropped) and the receiver port's ingress chain (DHCP replies and IPv6 ND/RA, then its
    rules ``accept``, the rest dropped).

Both tables are replaced in one ``nft -f`` transaction (atomic: never half a ruleset; when
only rules of existing ports changed, just their chains are flushed and refilled) built
from validated values only - device names checked against the kernel's name rules, MACs,
addresses re-printed by :mod:`ipaddress`, integers - and run as an argument list, never
through a shell. Removing a rule stops new connections, and the agent then deletes the
conntrack entries of the ports that lost a rule (:meth:`NftFirewall.forget_connections`), so
the connections it had accepted meet the remaining rules again.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import logging
import re
import shutil
import subprocess
from collections.abc import Iterable, Sequence

from stackcore import exception
from stackcore_drivers.network.host_state import PortSecurity, SecurityRule

LOG = logging.getLogger(__name__)

TABLE = "stackcore_sg"
_DEVICE = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
_MAC = re.compile(r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")
_PORT_PROTOCOLS = {6, 17, 33, 132, 136}
MAX_PORTS = 0xFFFF


@dataclasses.dataclass(frozen=True)
class FilteredTap:
    """A wired port's tap, its bridge, MAC and security (None or disabled: unfiltered)."""

    tap: str
    bridge: str
    mac: str
    security: PortSecurity | None


def _device(name: str) -> str:
    if not _DEVICE.match(name):
        raise exception.Invalid("device", "is not a valid device name for nftables", name)
    return f'"{name}"'


def _mac(mac: str) -> str:
    if not _MAC.match(mac.lower()):
        raise exception.Invalid("mac_address", "is not a MAC address", mac)
    return mac.lower()


def _net(address: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(address, strict=False)


def _link_local(mac: str) -> str:
    octets = [int(x, 16) for x in mac.split(":")]
    octets[0] ^= 0x02
    eui = [*octets[:3], 0xFF, 0xFE, *octets[3:]]
    return str(ipaddress.IPv6Address(bytes([0xFE, 0x80, 0, 0, 0, 0, 0, 0, *eui])))


def _int(value: int | None, low: int, high: int) -> int:
    if value is None or isinstance(value, bool) or not low <= int(value) <= high:
        raise exception.Invalid("rule", f"expected an integer {low}-{high}", value)
    return int(value)


def rule_expression(rule: SecurityRule) -> str | None:
    """The nft match of one rule (direction applied); None for a rule nft need not see (an
    ethertype the kernel path never carries is impossible here, so never None today)."""
    v6 = rule.ethertype == "IPv6"
    parts = ["meta nfproto ipv6" if v6 else "meta nfproto ipv4"]
    if rule.remote_ip_prefix:
        net = _net(rule.remote_ip_prefix)
        if net.prefixlen:
            side = "daddr" if rule.direction == "egress" else "saddr"
            parts.append(f"{'ip6' if net.version == 6 else 'ip'} {side} {net}")
    if rule.protocol is not None:
        proto = _int(rule.protocol, 0, 255)
        if proto in (1, 58):
            family = "icmpv6" if v6 else "icmp"
            parts.append(f"meta l4proto {58 if v6 else 1}")
            if rule.port_range_min is not None:
                parts.append(f"{family} type {_int(rule.port_range_min, 0, 255)}")
                if rule.port_range_max is not None:
                    parts.append(f"{family} code {_int(rule.port_range_max, 0, 255)}")
        else:
            parts.append(f"meta l4proto {proto}")
            if proto in _PORT_PROTOCOLS and rule.port_range_min is not None:
                low = _int(rule.port_range_min, 1, 65535)
                high = _int(rule.port_range_max, low, 65535)
                parts.append(f"th dport {low}" if low == high else f"th dport {low}-{high}")
    return " ".join(parts)


@dataclasses.dataclass(frozen=True)
class Ruleset:
    """Both tables: ``base`` (the hooked chains, per family) and the per-port chains
    (``(family, chain) -> rule lines``). Two rulesets with equal ``base`` and chain names
    differ only inside per-port chains, which :meth:`changes_from` rewrites alone."""

    base: tuple[tuple[str, ...], tuple[str, ...]]  # bridge, inet
    chains: dict[tuple[str, str], tuple[str, ...]]

    def text(self) -> str:
        """The whole replacement (both tables deleted and written again, one transaction)."""
        out = [f"table bridge {TABLE} {{}}", f"delete table bridge {TABLE}",
               f"table inet {TABLE} {{}}", f"delete table inet {TABLE}"]
        for family, base in zip(("bridge", "inet"), self.base, strict=True):
            out.append(f"table {family} {TABLE} {{")
            out.extend(base)
            for (chain_family, name), lines in self.chains.items():
                if chain_family == family:
                    out += [f"  chain {name} {{", *(f"    {line}" for line in lines), "  }"]
            out.append("}")
        return "\n".join(out) + "\n"

    def changes_from(self, old: Ruleset) -> str | None:
        """The per-port chains that differ from ``old``, each flushed and filled again
        (one transaction); None when the hooked chains or the set of chains differ (then
        :meth:`text` is needed); "" when nothing differs."""
        if old.base != self.base or list(old.chains) != list(self.chains):
            return None
        out = []
        for (family, name), lines in self.chains.items():
            if old.chains[(family, name)] != lines:
                out.append(f"flush chain {family} {TABLE} {name}")
                out += [f"add rule {family} {TABLE} {name} {line}" for line in lines]
        return "\n".join(out) + "\n" if out else ""


def build(taps: Sequence[FilteredTap]) -> Ruleset:
    """The firewall of ``taps`` (see the module doc)."""
    filtered = sorted((t for t in taps if t.security is not None and t.security.enabled),
                      key=lambda t: t.tap)
    if len(filtered) > MAX_PORTS:
        raise exception.DriverError(f"more than {MAX_PORTS} filtered ports on one host")
    bridges = sorted({t.bridge for t in taps})
    chains: dict[tuple[str, str], tuple[str, ...]] = {}
    # --- bridge family: anti-spoofing and the marks
    bridge = ["  chain prerouting {", "    type filter hook prerouting priority -200; "
              "policy accept;"]
    if filtered:
        bridge.append("    iifname vmap { " + ", ".join(
            f"{_device(t.tap)} : jump spoof_{i}" for i, t in enumerate(filtered, 1)) + " }")
    bridge += ["  }", "  chain forward {",
               "    type filter hook forward priority -100; policy accept;"]
    for i, tap in enumerate(filtered, 1):
        bridge.append(f"    oifname {_device(tap.tap)} meta mark set meta mark or "
                      f"{i << 16:#x}")
    bridge.append("  }")
    for i, tap in enumerate(filtered, 1):
        spoof, egress, ingress = _tap_chains(i, tap)
        chains[("bridge", f"spoof_{i}")] = spoof
        chains[("inet", f"egress_{i}")] = egress
        chains[("inet", f"ingress_{i}")] = ingress
    # --- inet family: conntrack and the rules
    inet = ["  chain prerouting {",
            "    type filter hook prerouting priority -300; policy accept;"]
    if bridges:
        inet.append("    ct zone set iifname map { " + ", ".join(
            f"{_device(b)} : {n}" for n, b in enumerate(bridges, 1)) + " }")
    inet += ["  }", "  chain forward {",
             "    type filter hook forward priority 0; policy accept;",
             "    meta mark and 0xffffffff == 0 accept",
             "    ct state invalid drop",
             "    ct state established,related accept"]
    if filtered:
        inet.append("    meta mark and 0xffff vmap { " + ", ".join(
            f"{i:#x} : jump egress_{i}" for i in range(1, len(filtered) + 1)) + " }")
        inet.append("    meta mark and 0xffff0000 vmap { " + ", ".join(
            f"{i << 16:#x} : jump ingress_{i}" for i in range(1, len(filtered) + 1)) + " }")
    inet.append("  }")
    return Ruleset((tuple(bridge), tuple(inet)), chains)


@functools.lru_cache(maxsize=16384)
def _tap_chains(i: int, tap: FilteredTap) -> tuple[tuple[str, ...], tuple[str, ...],
                                                   tuple[str, ...]]:
    """Port ``i``'s anti-spoofing, egress and ingress chains; cached (taps and their security
    are immutable values), so a pass rebuilds only the ports that changed."""
    assert tap.security is not None
    mac = _mac(tap.mac)
    spoof = ["udp sport 67 udp dport 68 drop",
             "udp sport 547 udp dport 546 drop",
             "icmpv6 type nd-router-advert drop",
             f"ether saddr {mac} ip saddr 0.0.0.0 udp sport 68 udp dport 67 accept",
             f"ether saddr {mac} ip6 nexthdr udp udp sport 546 udp dport 547 accept",
             f"ether saddr {mac} icmpv6 type {{ nd-router-solicit, "
             "nd-neighbor-solicit, nd-neighbor-advert } accept"]
    pairs = [*tap.security.addresses, (_link_local(mac) + "/128", mac)]
    for address, pair_mac in dict.fromkeys(pairs):
        net, pmac = _net(address), _mac(pair_mac)
        if net.version == 4:
            spoof.append(f"ether saddr {pmac} arp saddr ip {net} accept")
            spoof.append(f"ether saddr {pmac} ip saddr {net} meta mark set "
                         f"meta mark or {i:#x} accept")
        else:
            spoof.append(f"ether saddr {pmac} ip6 saddr {net} meta mark set "
                         f"meta mark or {i:#x} accept")
    egress: list[str] = []
    ingress = ["udp sport 67 udp dport 68 accept",
               "udp sport 547 udp dport 546 accept",
               "icmpv6 type { nd-router-advert, nd-neighbor-solicit, "
               "nd-neighbor-advert } accept"]
    for rule in _unique(tap.security.rules):
        match = rule_expression(rule)
        if match is None:
            continue
        if rule.direction == "egress":
            egress.append(f"{match} return")
        else:
            ingress.append(f"{match} accept")
    return (*spoof, "drop"), (*egress, "drop"), (*ingress, "drop")


def ruleset(taps: Sequence[FilteredTap]) -> str:
    """Both tables, replacing what is there, as one ``nft -f`` input."""
    return build(taps).text()


def _unique(rules: Iterable[SecurityRule]) -> list[SecurityRule]:
    return list(dict.fromkeys(rules))


class NftFirewall:
    """Applies :func:`ruleset` in one network namespace (None: the agent's own)."""

    def __init__(self, namespace: str | None = None, timeout: float = 30.0) -> None:
        self.namespace = namespace
        self.timeout = timeout
        #: what was last written (None: nothing yet - the first apply writes everything)
        self._applied: Ruleset | None = None

    def _command(self, *args: str) -> list[str]:
        nft = shutil.which("nft")
        if nft is None:
            raise exception.DriverError("nft is not installed (package nftables)")
        if self.namespace:
            return ["ip", "netns", "exec", self.namespace, nft, *args]
        return [nft, *args]

    def run(self, args: Sequence[str], stdin: str | None = None) -> str:
        try:
            result = subprocess.run(self._command(*args), input=stdin, capture_output=True,
                                    text=True, timeout=self.timeout, check=False)
        except subprocess.TimeoutExpired:
            raise exception.DriverError(f"nft {args[0]}: no answer in {self.timeout:g} s") \
                from None
        if result.returncode != 0:
            raise exception.DriverError(f"nft {' '.join(args[:2])}: {result.stderr.strip()}")
        return result.stdout

    def apply(self, taps: Sequence[FilteredTap]) -> bool:
        """Make the tables match ``taps``; True when something was sent. The first call
        writes both tables whole (a restarted agent rewrites what it finds), as does any
        change of ports; a change of rules only rewrites the chains of the ports it
        concerns, in one transaction."""
        wanted = build(taps)
        if self._applied is not None:
            changes = wanted.changes_from(self._applied)
            if changes == "":
                return False
            if changes is not None:  # only rules of existing ports: those chains alone
                self.run(["-f", "-"], stdin=changes)
                self._applied = wanted
                return True
        self.run(["-f", "-"], stdin=wanted.text())
        self._applied = wanted
        return True

    def clear(self) -> None:
        """Remove both tables (nothing filtered any more); idempotent."""
        self.run(["-f", "-"], stdin="".join(
            f"table {family} {TABLE} {{}}\ndelete table {family} {TABLE}\n"
            for family in ("bridge", "inet")))
        self._applied = None

    def forget_connections(self, addresses: Iterable[str]) -> int:
        """Delete the kernel's conntrack entries (every zone, both directions) of connections
        from or to ``addresses`` (IPs or CIDRs: a port's fixed IPs and address pairs), so
        their next packet is new and meets the rules as they are now; returns how many were
        deleted. Through netlink (pyroute2), in the agent's namespace."""
        from pyroute2 import Conntrack
        from pyroute2.netlink.exceptions import NetlinkError

        networks = [_net(a) for a in addresses]
        if not networks:
            return 0

        def ours(address: str | None) -> bool:
            if not address:
                return False
            ip = ipaddress.ip_address(address)
            return any(ip.version == n.version and ip in n for n in networks)

        deleted = 0
        try:
            ct = Conntrack(netns=self.namespace) if self.namespace else Conntrack()
        except (OSError, NetlinkError) as err:
            raise exception.DriverError(f"conntrack netlink socket: {err}") from None
        try:
            for entry in list(ct.dump_entries()):
                orig = entry.tuple_orig
                if ours(orig.saddr) or ours(orig.daddr):
                    try:
                        ct.entry("del", tuple_orig=orig, zone=entry.zone)
                        deleted += 1
                    except NetlinkError as err:
                        if err.code != 2:  # ENOENT: it ended meanwhile
                            raise
        except (OSError, NetlinkError) as err:
            raise exception.DriverError(f"forgetting tracked connections: {err}") from None
        finally:
            ct.close()
        return deleted

    def list_ruleset(self) -> str:
        """The agent's two tables as nft prints them (tests, kit)."""
        return "".join(self.run(["list", "table", family, TABLE])
                       for family in ("bridge", "inet"))


def probe(namespace: str | None = None) -> dict[str, bool]:
    """Which netfilter pieces this kernel has, tried in ``namespace`` with throw-away tables:
    nf_tables (a table), conntrack (``ct state`` in an inet table), NAT (a nat chain),
    conntrack in the bridge family (``ct state`` in a bridge table), bridge-netfilter
    (``/proc/sys/net/bridge`` exists)."""
    import os

    firewall = NftFirewall(namespace)
    chain = "table {family} sc_probe {{\n  chain c {{\n    type {kind} hook {hook} priority 0;\n" \
        "    {rule}\n  }}\n}}\n"
    tries = {
        "nf_tables": "table inet sc_probe {\n}\n",
        "conntrack": chain.format(family="inet", kind="filter", hook="forward",
                                  rule="ct state established accept"),
        "nat": chain.format(family="ip", kind="nat", hook="postrouting", rule="masquerade"),
        "bridge_conntrack": chain.format(family="bridge", kind="filter", hook="forward",
                                         rule="ct state established accept"),
    }
    found: dict[str, bool] = {}
    for name, text in tries.items():
        try:
            firewall.run(["-c", "-f", "-"], stdin=text)
            found[name] = True
        except exception.DriverError:
            found[name] = False
    found["bridge_netfilter"] = os.path.isdir("/proc/sys/net/bridge")
    return found
