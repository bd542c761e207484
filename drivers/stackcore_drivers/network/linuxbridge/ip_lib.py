"""Kernel bridges, VXLAN and VLAN devices of one host (or network namespace), via pyroute2.

Names (Neutron's, so a hypervisor computes the same ones): the bridge of a network is
``brq`` + the first 11 characters of its id, its VXLAN device ``vxlan-<vni>``, its VLAN
sub-interface ``<iface>.<vid>``, a VM's tap ``tap`` + the first 11 characters of the port id.
All within the kernel's 15-character limit (VLAN sub-interfaces of long interface names are
refused rather than silently renamed).

Every call raises :class:`~stackcore.exception.DriverError` (or a subclass) naming the device
and the kernel's reason; a call that fails after creating something deletes it again.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import ipaddress
import logging
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from stackcore import exception
from stackcore_drivers.network import names

if TYPE_CHECKING:
    from pyroute2.netlink.exceptions import NetlinkError

LOG = logging.getLogger(__name__)

BRIDGE_PREFIX = "brq"
TAP_PREFIX = "tap"
VXLAN_PREFIX = "vxlan-"
FLOOD_MAC = "00:00:00:00:00:00"
#: What 802.1q failures are reported as, so tests and operators see the exact reason.
NO_VLAN_SUPPORT = "this kernel lacks 802.1q VLAN sub-interfaces"


def bridge_name(network_id: str) -> str:
    return (BRIDGE_PREFIX + network_id)[:14]


def tap_name(port_id: str) -> str:
    return (TAP_PREFIX + port_id)[:14]


def vxlan_name(vni: int) -> str:
    return f"{VXLAN_PREFIX}{vni}"


def vlan_name(interface: str, vlan_id: int) -> str:
    name = f"{interface}.{vlan_id}"
    return names.device_name("vlan sub-interface", name)


def _kernel_error(what: str, err: NetlinkError) -> exception.DriverError:
    code = err.code if isinstance(err.code, int) else 0
    return exception.DriverError(f"{what}: {errno.errorcode.get(code, code)} "
                                 f"({err.args[1] if len(err.args) > 1 else err})")


@functools.cache
def kernel_supports_vlan() -> bool:
    """Whether this kernel can create 802.1q sub-interfaces, tried in a scratch namespace."""
    from pyroute2 import IPRoute, netns
    from pyroute2.netlink.exceptions import NetlinkError
    scratch = f"sc-vlanprobe-{uuid.uuid4().hex[:8]}"
    netns.create(scratch)
    try:
        with IPRoute(netns=scratch) as ipr:
            ipr.link("add", ifname="probe0", kind="veth", peer="probe1")
            index = ipr.link_lookup(ifname="probe0")[0]
            try:
                ipr.link("add", ifname="probe0.10", kind="vlan", link=index, vlan_id=10)
            except NetlinkError:
                return False
            return True
    finally:
        netns.remove(scratch)


class LinuxBridgeManager:
    """Bridges and their devices in one network namespace (``namespace`` None: the current
    one)."""

    def __init__(self, namespace: str | None = None) -> None:
        from pyroute2 import IPRoute
        self.namespace = namespace
        try:
            self.ipr = IPRoute(netns=namespace) if namespace else IPRoute()
        except Exception as err:
            raise exception.BackendUnavailable(
                f"cannot open netlink in namespace {namespace!r}: {err}") from err

    def close(self) -> None:
        self.ipr.close()

    # --- reading --------------------------------------------------------------------------

    def links(self) -> dict[str, dict[str, Any]]:
        """Every device by name: ``index``, ``kind``, ``master`` (index or None), ``mtu``,
        ``up``, ``vni`` (VXLAN), ``vxlan_local``, ``vxlan_port``."""
        result: dict[str, dict[str, Any]] = {}
        for link in self.ipr.get_links():
            kind = link.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND")
            result[link.get("IFLA_IFNAME")] = {
                "index": link["index"], "kind": kind, "master": link.get("IFLA_MASTER"),
                "mtu": link.get("IFLA_MTU"), "up": bool(link["flags"] & 1),
                "vni": link.get_nested("IFLA_LINKINFO", "IFLA_INFO_DATA", "IFLA_VXLAN_ID")
                if kind == "vxlan" else None,
                "vxlan_local": link.get_nested("IFLA_LINKINFO", "IFLA_INFO_DATA",
                                               "IFLA_VXLAN_LOCAL") if kind == "vxlan" else None,
            }
        return result

    def index(self, name: str) -> int | None:
        found = self.ipr.link_lookup(ifname=name)
        return found[0] if found else None

    def ports_of(self, bridge: str) -> set[str]:
        links = self.links()
        master = links.get(bridge, {}).get("index")
        return {name for name, link in links.items() if master and link["master"] == master}

    def device_with_address(self, address: str) -> str:
        """The device holding ``address`` (the VXLAN underlay device)."""
        family = 2 if ipaddress.ip_address(address).version == 4 else 10
        for addr in self.ipr.get_addr(family=family):
            if addr.get("IFA_ADDRESS") == address or addr.get("IFA_LOCAL") == address:
                link = self.ipr.get_links(addr["index"])[0]
                return str(link.get("IFLA_IFNAME"))
        raise exception.DriverError(f"no device in namespace {self.namespace or '(host)'} has "
                                    f"the local IP {address}")

    # --- creating -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _undo_on_error(self) -> Iterator[list[str]]:
        """Collect the names of devices created inside; delete them if the block raises."""
        created: list[str] = []
        try:
            yield created
        except BaseException:
            for name in reversed(created):
                self.delete_device(name)
            raise

    def ensure_bridge(self, name: str) -> bool:
        """A bridge with STP off and no forwarding delay, up. True when created."""
        from pyroute2.netlink.exceptions import NetlinkError
        names.device_name("bridge", name)
        links = self.links()
        if name in links:
            if links[name]["kind"] != "bridge":
                raise exception.Conflict(f"device {name} exists and is not a bridge "
                                         f"(kind {links[name]['kind']})")
            if not links[name]["up"]:
                self.ipr.link("set", index=links[name]["index"], state="up")
            return False
        with self._undo_on_error() as created:
            try:
                self.ipr.link("add", ifname=name, kind="bridge", br_stp_state=0,
                              br_forward_delay=0)
                created.append(name)
                self.ipr.link("set", index=self.index(name), state="up")
            except NetlinkError as err:
                raise _kernel_error(f"creating bridge {name}", err) from err
        return True

    def set_bridge_netfilter(self, name: str) -> None:
        """Pass the bridge's IPv4/IPv6 traffic through the ``inet`` netfilter hooks
        (bridge-netfilter, per bridge: ``nf_call_iptables`` / ``nf_call_ip6tables``), where
        conntrack sees it; unchanged when already on."""
        from pyroute2.netlink.exceptions import NetlinkError
        index = self.index(name)
        if index is None:
            raise exception.DriverError(f"bridge {name} does not exist")
        link = self.ipr.get_links(index)[0]
        data = ("IFLA_LINKINFO", "IFLA_INFO_DATA")
        if link.get_nested(*data, "IFLA_BR_NF_CALL_IPTABLES") == 1 and \
                link.get_nested(*data, "IFLA_BR_NF_CALL_IP6TABLES") == 1:
            return
        try:
            self.ipr.link("set", index=index, kind="bridge", br_nf_call_iptables=1,
                          br_nf_call_ip6tables=1)
        except NetlinkError as err:
            raise _kernel_error(f"turning bridge-netfilter on for {name}", err) from err

    def ensure_vxlan(self, vni: int, local_ip: str, dstport: int, mtu: int | None,
                     ttl: int | None = None) -> tuple[str, bool]:
        """``vxlan-<vni>`` on the device holding ``local_ip``. Conflict when a device of
        another name already uses this VNI. Returns (name, created)."""
        from pyroute2.netlink.exceptions import NetlinkError
        name = vxlan_name(vni)
        links = self.links()
        for other, link in links.items():
            if link["kind"] == "vxlan" and link["vni"] == vni and other != name:
                raise exception.Conflict(
                    f"VNI {vni} is already used by device {other} in namespace "
                    f"{self.namespace or '(host)'}; not creating {name}")
        if name in links:
            link = links[name]
            if link["kind"] != "vxlan" or link["vni"] != vni:
                raise exception.Conflict(f"device {name} exists but is not VXLAN {vni}")
            return name, False
        underlay = self.device_with_address(local_ip)
        kwargs: dict[str, Any] = {
            "ifname": name, "kind": "vxlan", "vxlan_id": vni, "vxlan_local": local_ip,
            "vxlan_link": self.index(underlay), "vxlan_port": dstport}
        if ttl:
            kwargs["vxlan_ttl"] = ttl
        if mtu:
            kwargs["mtu"] = mtu
        with self._undo_on_error() as created:
            try:
                self.ipr.link("add", **kwargs)
                created.append(name)
            except NetlinkError as err:
                raise _kernel_error(f"creating {name} on {underlay}", err) from err
        return name, True

    def ensure_vlan(self, interface: str, vlan_id: int) -> tuple[str, bool]:
        """``<interface>.<vlan_id>``, with ``interface`` up (a VLAN device cannot come up on
        a lower device that is down: the kernel answers ENETDOWN; for a flat network the
        mapped interface is brought up by enslaving it, the same holds here). DriverError
        with :data:`NO_VLAN_SUPPORT` when the kernel has no 802.1q. Returns (name,
        created)."""
        from pyroute2.netlink.exceptions import NetlinkError
        name = vlan_name(interface, vlan_id)
        parent = self.links().get(interface)
        if parent is None:
            raise exception.DriverError(f"physical interface {interface} does not exist")
        if not parent["up"]:
            try:
                self.ipr.link("set", index=parent["index"], state="up")
            except NetlinkError as err:
                raise _kernel_error(f"bringing up {interface} (for {name})", err) from err
        if self.index(name) is not None:
            return name, False
        try:
            self.ipr.link("add", ifname=name, kind="vlan", link=parent["index"],
                          vlan_id=vlan_id)
        except NetlinkError as err:
            if err.code == errno.EOPNOTSUPP:
                raise exception.DriverError(f"creating {name}: {NO_VLAN_SUPPORT}") from err
            raise _kernel_error(f"creating {name}", err) from err
        return name, True

    def enslave(self, device: str, bridge: str) -> bool:
        """Put ``device`` into ``bridge`` and bring it up. True when something changed."""
        from pyroute2.netlink.exceptions import NetlinkError
        links = self.links()
        if device not in links:
            raise exception.DriverError(f"device {device} does not exist")
        if bridge not in links:
            raise exception.DriverError(f"bridge {bridge} does not exist")
        link, master = links[device], links[bridge]["index"]
        if link["master"] == master and link["up"]:
            return False
        try:
            if link["master"] != master:
                self.ipr.link("set", index=link["index"], master=master)
            self.ipr.link("set", index=link["index"], state="up")
        except NetlinkError as err:
            raise _kernel_error(f"adding {device} to {bridge}", err) from err
        return True

    def release(self, device: str) -> None:
        """Take ``device`` out of its bridge (it stays)."""
        index = self.index(device)
        if index is not None:
            self.ipr.link("set", index=index, master=0)

    def delete_device(self, name: str) -> None:
        """Delete a device; a missing one is fine."""
        from pyroute2.netlink.exceptions import NetlinkError
        index = self.index(name)
        if index is None:
            return
        try:
            self.ipr.link("del", index=index)
        except NetlinkError as err:
            if err.code != errno.ENODEV:
                raise _kernel_error(f"deleting {name}", err) from err

    # --- VXLAN forwarding entries ---------------------------------------------------------

    def flood_peers(self, device: str) -> set[str]:
        """The remote endpoints that get this VXLAN's broadcast/unknown traffic."""
        index = self.index(device)
        if index is None:
            return set()
        return {entry.get("NDA_DST") for entry in self.ipr.fdb("dump", ifindex=index)
                if entry.get("NDA_LLADDR") == FLOOD_MAC and entry.get("NDA_DST")
                and entry["ifindex"] == index}

    def sync_flood_peers(self, device: str, peers: set[str]) -> tuple[set[str], set[str]]:
        """Make the all-zero FDB entries of ``device`` point at exactly ``peers`` (unicast
        head-end replication, as Neutron's l2population). Returns (added, removed)."""
        from pyroute2.netlink.exceptions import NetlinkError
        index = self.index(device)
        if index is None:
            raise exception.DriverError(f"VXLAN device {device} does not exist")
        have = self.flood_peers(device)
        for peer in sorted(peers - have):
            try:
                self.ipr.fdb("append", ifindex=index, lladdr=FLOOD_MAC, dst=peer)
            except NetlinkError as err:
                raise _kernel_error(f"adding VXLAN peer {peer} to {device}", err) from err
        for peer in sorted(have - peers):
            with contextlib.suppress(NetlinkError):
                self.ipr.fdb("del", ifindex=index, lladdr=FLOOD_MAC, dst=peer)
        return peers - have, have - peers
