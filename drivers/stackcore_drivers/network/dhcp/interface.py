"""Plugging a DHCP port (or a router's ports: the L3 agent uses this too) into the host's L2
datapath, inside the network's (router's) namespace.

The port is a veth pair: ``ns-<port id[:11]>`` in ``qdhcp-<network>`` (the port's MAC, its
addresses, up) and ``tap<port id[:11]>`` in the datapath's namespace (``[dhcp]
datapath_namespace``, empty: the agent's own), which is

* ``openvswitch``: added to the integration bridge with ``external_ids:iface-id`` = the port id
  and ``attached-mac``, as os-vif plugs a VM port, so the OVS agent tags it and reports it
  ACTIVE. A veth rather than an OVS internal port: it works the same on the kernel and on the
  userspace (netdev) datapath, whose internal ports are taps ovs-vswitchd owns and cannot be
  moved to another namespace (Neutron's ``ovs_use_veth``);
* ``linuxbridge``: left as is: the Linux bridge agent enslaves ``tap<port id[:11]>`` to the
  network's bridge like a VM tap.

A router's namespace holds several ports: their inner devices are ``qg-`` (gateway) and
``qr-`` (interfaces) + the port id, plugged with ``exclusive=False`` (a DHCP namespace holds
one port: plugging another removes the older one).

Commands run with argument lists (``ip``, ``ethtool``); no shell.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import subprocess
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from stackcore import exception
from stackcore.network.dhcp import NETNS_PREFIX, DhcpPort

if TYPE_CHECKING:
    from stackcore_drivers.network.ovs.ovsdb import Ovsdb

LOG = logging.getLogger(__name__)

TIMEOUT = 30


#: the prefixes of the inner devices this module makes (DHCP, router gateway, interface)
DEVICE_PREFIXES = ("ns-", "qg-", "qr-")


def ns_device(port_id: str, prefix: str = "ns-") -> str:
    return (prefix + port_id)[:14]


def host_device(port_id: str) -> str:
    return ("tap" + port_id)[:14]


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=TIMEOUT,
                            check=False)
    if check and result.returncode != 0:
        raise exception.DriverError(f"ip {' '.join(args)} failed: {result.stderr.strip()}")
    return result


def _run(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    if result.returncode != 0:
        raise exception.DriverError(f"{' '.join(argv)} failed: {result.stderr.strip()}")


def namespaces(prefix: str = NETNS_PREFIX) -> set[str]:
    """The ``qdhcp-`` (``prefix``) namespaces of this machine."""
    out = ip("-j", "netns", "list").stdout.strip()
    return {n["name"] for n in (json.loads(out) if out else [])
            if n["name"].startswith(prefix)}


def links(namespace: str | None) -> dict[str, dict[str, Any]]:
    args = ["-n", namespace] if namespace else []
    out = ip(*args, "-j", "link", "show").stdout.strip()
    return {link["ifname"]: link for link in (json.loads(out) if out else [])}


class Plugger:
    """Plugs and unplugs DHCP ports for one agent. ``datapath_namespace``: where the bridges
    live (None: here); ``ovsdb``: the host's OVSDB for ``openvswitch`` (None for
    ``linuxbridge``)."""

    def __init__(self, kind: str, datapath_namespace: str | None, bridge: str,
                 ovsdb: Ovsdb | None) -> None:
        self.kind = kind
        self.dp = datapath_namespace
        self.bridge = bridge
        self.ovsdb = ovsdb

    def _dp(self) -> list[str]:
        return ["-n", self.dp] if self.dp else []

    def plug(self, namespace: str, port: DhcpPort, cidrs: dict[str, str], mtu: int, *,
             prefix: str = "ns-", exclusive: bool = True, extra: Iterable[str] = ()) -> str:
        """Make ``port``'s device in ``namespace`` (idempotent); ``cidrs``: subnet id -> CIDR
        of the subnets whose addresses it gets; ``extra``: more ``address/prefixlen`` it
        holds (the metadata address, a router's floating IPs). ``prefix``: of the inner
        device's name;
        ``exclusive``: the namespace holds this port only (others are removed). Returns the
        interface name in the namespace."""
        if namespace not in namespaces(namespace):
            ip("netns", "add", namespace)
        inner, outer = ns_device(port.id, prefix), host_device(port.id)
        found = links(namespace)
        link = found.get(inner)
        if link is None or link.get("address") != port.mac_address:
            for name in found:   # an older DHCP port of this network (recreated meanwhile)
                if name == inner or (exclusive and name.startswith(DEVICE_PREFIXES)):
                    self._delete_pair(namespace, name)
            ip(*self._dp(), "link", "del", outer, check=False)   # a stale half of a pair
            ip(*self._dp(), "link", "add", outer, "type", "veth", "peer", "name", inner,
               "netns", namespace, "address", port.mac_address)
        if mtu:
            ip("-n", namespace, "link", "set", inner, "mtu", str(mtu))
            ip(*self._dp(), "link", "set", outer, "mtu", str(mtu))
        # The DHCP server's UDP replies would leave with their checksum left to the NIC
        # (offloaded), which a veth never fills: through OVS's userspace datapath they reach
        # the guest unfinished and its DHCP client drops them (seen: udhcpc never saw the
        # offers dnsmasq logged). Neutron fills them with an iptables CHECKSUM rule; the
        # kernel computes them itself once the veth does not offer the offload.
        _run(["ip", "netns", "exec", namespace, "ethtool", "-K", inner, "tx", "off"])
        ip("-n", namespace, "link", "set", "lo", "up")
        ip("-n", namespace, "link", "set", inner, "up")
        ip(*self._dp(), "link", "set", outer, "up")
        self._addresses(namespace, inner, [
            *(f"{address}/{ipaddress.ip_network(cidrs[subnet]).prefixlen}"
              for subnet, address in port.fixed_ips if subnet in cidrs), *extra])
        if self.ovsdb is not None:
            db = self.ovsdb
            db.execute(db.api.add_port(self.bridge, outer, may_exist=True))
            db.execute(db.api.db_set("Interface", outer, ("external_ids", {
                "iface-id": port.id, "attached-mac": port.mac_address,
                "iface-status": "active"})))
        return inner

    def _addresses(self, namespace: str, device: str, wanted: Iterable[str]) -> None:
        out = ip("-n", namespace, "-j", "addr", "show", "dev", device).stdout.strip()
        have = {f"{a['local']}/{a['prefixlen']}"
                for link in (json.loads(out) if out else []) for a in link.get("addr_info", [])
                if a.get("scope") == "global"}
        for cidr in sorted(set(wanted) - have):
            ip("-n", namespace, "addr", "add", cidr, "dev", device)
        for cidr in sorted(have - set(wanted)):
            ip("-n", namespace, "addr", "del", cidr, "dev", device)

    def unplug_device(self, namespace: str, inner: str) -> None:
        """Remove one port's device (``inner``, its name in ``namespace``); idempotent."""
        self._delete_pair(namespace, inner)

    def _delete_pair(self, namespace: str, inner: str) -> None:
        outer = "tap" + inner[3:]
        if self.ovsdb is not None:
            self.ovsdb.execute(self.ovsdb.api.del_port(outer, if_exists=True))
        ip("-n", namespace, "link", "del", inner, check=False)   # takes its peer along
        ip(*self._dp(), "link", "del", outer, check=False)

    def unplug(self, namespace: str) -> None:
        """Remove the namespace and the DHCP port's device(s) in it (idempotent)."""
        if namespace not in namespaces(namespace):
            return
        for name in links(namespace):
            if name.startswith(DEVICE_PREFIXES):
                self._delete_pair(namespace, name)
        ip("netns", "del", namespace, check=False)
