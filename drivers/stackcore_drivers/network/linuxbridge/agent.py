"""The Linux bridge L2 agent: one per host, reconciles the host's kernel bridges with what the
server bound there (learnt over the agent RPC) and reports the ports whose tap it enslaved up.

Per network with ports bound here: a bridge ``brq<network id[:11]>`` (or, for a flat network,
the bridge ``[linux_bridge] bridge_mappings`` names), plus the segment's device in it -
``vxlan-<vni>`` on the device holding ``[vxlan] local_ip`` with one all-zero FDB entry per
remote host that has ports on the network (unicast, no multicast needed), the mapped physical
interface for flat, ``<interface>.<vid>`` for VLAN. The VM taps (``tap<port id[:11]>``, made
by the hypervisor) are enslaved to the bridge as they appear.

Each pass removes what is stale: bridges of networks with no port here any more (with the
VXLAN/VLAN devices the agent made; physical interfaces are only released) and VXLAN devices
outside any wanted bridge. A network that cannot be wired (unmapped physical network, no VLAN
support, a VNI used by a foreign device) is reported in :attr:`port_errors` and whatever the
pass created for it is deleted again.

With ``[securitygroup] firewall_driver = nftables`` each pass first writes the security group
ruleset (:mod:`.firewall`: nftables, conntrack through bridge-netfilter, turned on per
bridge), then enslaves taps.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from stackcore import exception
from stackcore_drivers.network import names, testvm
from stackcore_drivers.network.agent_base import L2Agent
from stackcore_drivers.network.host_state import BoundPort, HostState
from stackcore_drivers.network.linuxbridge import AGENT_TYPE, VIF_TYPE, ip_lib
from stackcore_drivers.network.linuxbridge import conf as lb_conf
from stackcore_drivers.network.linuxbridge.firewall import FilteredTap, NftFirewall

if TYPE_CHECKING:
    from oslo_config import cfg

    from stackcore.rpc import Transport

LOG = logging.getLogger(__name__)


def check_config(conf: cfg.ConfigOpts) -> None:
    """Raise ConfigError naming the option when the settings cannot work."""
    names.physnet_map("[linux_bridge] physical_interface_mappings",
                      conf.linux_bridge.physical_interface_mappings)
    names.physnet_map("[linux_bridge] bridge_mappings", conf.linux_bridge.bridge_mappings)
    for physnet, bridge in conf.linux_bridge.bridge_mappings.items():
        if bridge.startswith(ip_lib.BRIDGE_PREFIX):
            raise exception.ConfigError(
                f"[linux_bridge] bridge_mappings: {physnet}:{bridge} - names starting with "
                f"{ip_lib.BRIDGE_PREFIX!r} are the agent's own network bridges")
    if conf.vxlan.enable_vxlan and conf.vxlan.local_ip:
        names.ip_address("[vxlan] local_ip", conf.vxlan.local_ip)


class LinuxBridgeAgent(L2Agent):
    AGENT_TYPE = AGENT_TYPE
    # Backend libraries, imported on first use; the loader checks they are installed.
    REQUIRES: ClassVar[dict[str, str]] = {
        "pyroute2": "pip install 'stackcore-drivers[linuxbridge]'",
    }
    BINARY = "stackcore-linuxbridge-agent"
    VIF_TYPE = VIF_TYPE
    BACKEND_OPTS = [("linux_bridge", lb_conf.LINUX_BRIDGE_OPTS), ("vxlan", lb_conf.VXLAN_OPTS)]
    FIREWALL_DRIVER = "nftables"
    capabilities: ClassVar[dict[str, bool]] = {"security_groups": True}
    check_config = staticmethod(check_config)

    def __init__(self, conf: cfg.ConfigOpts, transport: Transport,
                 manager: ip_lib.LinuxBridgeManager | None = None) -> None:
        from stackcore import conf as sc_conf
        super().__init__(conf, transport)
        sc_conf.register(conf, self.BACKEND_OPTS)
        self.check_config(conf)
        vx = conf.vxlan
        self.local_ip = (names.ip_address("[vxlan] local_ip", vx.local_ip)
                         if vx.enable_vxlan and vx.local_ip else None)
        self.ip = manager or ip_lib.LinuxBridgeManager(conf.linux_bridge.namespace or None)
        #: the nftables firewall (None: ``[securitygroup] firewall_driver = noop``)
        self.firewall = (NftFirewall(conf.linux_bridge.namespace or None)
                         if self.firewall_enabled else None)
        self._stale_firewall_checked = False
        #: port id -> the security group rules last enforced for it (see reconcile)
        self._enforced: dict[str, frozenset[Any]] = {}

    def configurations(self) -> dict[str, Any]:
        lb = self.conf.linux_bridge
        return {
            "interface_mappings": dict(lb.physical_interface_mappings),
            "bridge_mappings": dict(lb.bridge_mappings),
            "tunnel_types": self.tunnel_types(),
            "tunneling_ip": self.local_ip or "",
            "l2_population": True,
            "network_types": sorted({"flat", "vlan", *self.tunnel_types()}),
        }

    def tunnel_types(self) -> list[str]:
        return ["vxlan"] if self.local_ip else []

    def close(self) -> None:
        self.ip.close()

    # --- observation (conformance kit) ----------------------------------------------------

    def plug_test_device(self, port: Mapping[str, Any]) -> None:
        """What libvirt does for a ``bridge`` VIF before the agent runs: a device named after
        the port (its alias records the full port id, for :meth:`wired_ports`) - one end of a
        veth pair whose other end is a test VM's ``eth0`` (:mod:`..testvm`)."""
        tap = ip_lib.tap_name(str(port["id"]))
        ips = port.get("fixed_ips") or []
        testvm.make_vm(str(port["id"]), tap, str(port["mac_address"]),
                       str(ips[0]["ip_address"]) if ips else None, namespace=self.ip.namespace)
        self.ip.ipr.link("set", index=self.ip.index(tap), ifalias=str(port["id"]))

    def unplug_test_device(self, port: Mapping[str, Any]) -> None:
        testvm.remove_vm(str(port["id"]), ip_lib.tap_name(str(port["id"])),
                         namespace=self.ip.namespace)

    def test_ping(self, port: Mapping[str, Any], address: str) -> bool:
        """An echo from the port's test VM through the bridge (and nftables)."""
        return testvm.ping(str(port["id"]), address)

    def wired_ports(self) -> set[str]:
        """Ports whose tap device is up in a bridge, read from the kernel (the id from the
        device's alias, or its name for a tap the kit did not plug)."""
        links = {link["index"]: link for link in self.ip.ipr.get_links()}
        wired = set()
        for link in links.values():
            name = str(link.get("IFLA_IFNAME"))
            master = links.get(link.get("IFLA_MASTER") or -1)
            if not name.startswith(ip_lib.TAP_PREFIX) or master is None \
                    or master.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND") != "bridge" \
                    or not link["flags"] & 1:
                continue
            wired.add(str(link.get("IFLA_IFALIAS") or name[len(ip_lib.TAP_PREFIX):]))
        return wired

    # --- reconciliation -------------------------------------------------------------------

    def why_not(self, port: BoundPort) -> str | None:
        lb = self.conf.linux_bridge
        if port.network_type == "flat":
            if port.physical_network in lb.bridge_mappings or \
                    port.physical_network in lb.physical_interface_mappings:
                return None
            return (f"physical network {port.physical_network!r} is in neither "
                    "[linux_bridge] physical_interface_mappings nor bridge_mappings")
        if port.network_type == "vlan":
            if port.physical_network in lb.physical_interface_mappings:
                return None
            return (f"physical network {port.physical_network!r} is not in "
                    "[linux_bridge] physical_interface_mappings")
        if port.network_type == "vxlan":
            return None if self.local_ip else "VXLAN is not enabled ([vxlan] local_ip)"
        return f"network type {port.network_type!r} is not handled by this agent"

    def bridge_for(self, port: BoundPort) -> str:
        mapped = self.conf.linux_bridge.bridge_mappings.get(port.physical_network or "")
        if port.network_type == "flat" and mapped:
            return str(mapped)
        return ip_lib.bridge_name(port.network_id)

    def reconcile(self, state: HostState) -> set[str]:
        if self.firewall is None and not self._stale_firewall_checked:
            # noop means nothing is filtered: the tables of an earlier nftables run go
            self._stale_firewall_checked = True
            try:
                NftFirewall(self.conf.linux_bridge.namespace or None).clear()
            except exception.DriverError as err:  # no nft here: nothing of ours either
                LOG.debug("Linux bridge agent %s: no firewall tables removed: %s", self.host,
                          err)
        if self.firewall is not None:
            # before any tap is enslaved: a new tap never passes unfiltered traffic (nft
            # matches taps by name, so the rules may name devices that do not exist yet)
            self.firewall.apply([
                FilteredTap(ip_lib.tap_name(p.port_id), self.bridge_for(p), p.mac_address,
                            p.security)
                for p in state.ports.values() if self.why_not(p) is None])
            self._forget_revoked_connections(state)
        errors: dict[str, str] = {}
        wired: set[str] = set()
        wanted: dict[str, str] = {}          # bridge -> network id
        segment_devices: set[str] = set()    # agent-made devices that must stay
        for network_id, port in sorted(state.networks().items()):
            ports = [p for p in state.ports.values() if p.network_id == network_id]
            try:
                why = self.why_not(port)
                if why is not None:
                    raise exception.DriverError(why)
                bridge, device = self._wire_network(port, state)
            except exception.StackcoreError as err:
                for p in ports:
                    errors[p.port_id] = str(err)
                continue
            wanted[bridge] = network_id
            if device is not None:
                segment_devices.add(device)
            links = self.ip.links()
            for p in ports:
                tap = ip_lib.tap_name(p.port_id)
                if tap in links and not p.admin_state_up:
                    self.ip.release(tap)  # administratively down: no traffic passes
                    continue
                if tap in links:
                    try:
                        self.ip.enslave(tap, bridge)
                    except exception.StackcoreError as err:
                        errors[p.port_id] = str(err)
                    else:
                        wired.add(p.port_id)
        self._remove_stale(wanted, segment_devices)
        for pid, why in errors.items():
            if self.port_errors.get(pid) != why:
                LOG.error("Linux bridge agent %s: cannot wire port %s: %s", self.host, pid, why)
        self.port_errors = errors
        return wired

    def _forget_revoked_connections(self, state: HostState) -> None:
        """After the ruleset changed: the conntrack entries of every port that lost a rule
        (a rule deleted, a group left, a remote-group member gone) are deleted, so the
        connections the lost rule had accepted are checked again as new - Neutron's
        conntrack cleanup. A port that only gained rules keeps its connections; a failure
        is logged and tried again at the next pass."""
        assert self.firewall is not None
        now = {p.port_id: (frozenset(p.security.rules), p.security.addresses)
               for p in state.ports.values()
               if p.security is not None and p.security.enabled and self.why_not(p) is None}
        enforced: dict[str, frozenset[Any]] = {}
        for port_id, (rules, addresses) in now.items():
            enforced[port_id] = rules
            before = self._enforced.get(port_id)
            if before is None or before <= rules:
                continue
            try:
                count = self.firewall.forget_connections(a for a, _ in addresses)
                LOG.info("Linux bridge agent %s: port %s lost %d rule(s); %d tracked "
                         "connection(s) forgotten", self.host, port_id, len(before - rules),
                         count)
            except exception.StackcoreError as err:
                LOG.error("Linux bridge agent %s: forgetting the connections of port %s "
                          "failed: %s", self.host, port_id, err)
                enforced[port_id] = before  # again at the next pass
        self._enforced = enforced

    def _wire_network(self, port: BoundPort, state: HostState) -> tuple[str, str | None]:
        """Bridge + segment device of one network; on failure delete what this made.
        Returns (bridge, agent-made segment device or None)."""
        lb, vx = self.conf.linux_bridge, self.conf.vxlan
        bridge = self.bridge_for(port)
        created: list[str] = []
        try:
            if bridge.startswith(ip_lib.BRIDGE_PREFIX):
                if self.ip.ensure_bridge(bridge):
                    created.append(bridge)
            elif self.ip.index(bridge) is None:
                raise exception.DriverError(f"mapped bridge {bridge} does not exist")
            if self.firewall is not None:
                self.ip.set_bridge_netfilter(bridge)
            if port.network_type == "vxlan":
                assert self.local_ip is not None and port.segmentation_id is not None
                device, made = self.ip.ensure_vxlan(port.segmentation_id, self.local_ip,
                                                    vx.udp_dstport, port.mtu or None,
                                                    vx.ttl or None)
                if made:
                    created.append(device)
                self.ip.enslave(device, bridge)
                peers = set(state.peers.get(port.network_id, frozenset())) - {self.local_ip}
                self.ip.sync_flood_peers(device, peers)
                return bridge, device
            if port.network_type == "vlan":
                assert port.segmentation_id is not None
                device, made = self.ip.ensure_vlan(
                    lb.physical_interface_mappings[port.physical_network],
                    port.segmentation_id)
                if made:
                    created.append(device)
                self.ip.enslave(device, bridge)
                return bridge, device
            interface = lb.physical_interface_mappings.get(port.physical_network)
            if interface and bridge.startswith(ip_lib.BRIDGE_PREFIX):
                self.ip.enslave(interface, bridge)
            return bridge, None
        except BaseException:
            for name in reversed(created):
                self.ip.delete_device(name)
            raise

    def _remove_stale(self, wanted: dict[str, str], keep: set[str]) -> None:
        links = self.ip.links()
        physical = set(self.conf.linux_bridge.physical_interface_mappings.values())
        for name, link in sorted(links.items()):
            if link["kind"] != "bridge" or not name.startswith(ip_lib.BRIDGE_PREFIX) \
                    or name in wanted:
                continue
            for member, member_link in links.items():
                if member_link["master"] != link["index"]:
                    continue
                if member_link["kind"] in ("vxlan", "vlan") and member not in keep:
                    self.ip.delete_device(member)
                elif member in physical:
                    self.ip.release(member)
            LOG.info("Linux bridge agent %s: removing stale bridge %s", self.host, name)
            self.ip.delete_device(name)
        for name, link in self.ip.links().items():
            if link["kind"] == "vxlan" and name.startswith(ip_lib.VXLAN_PREFIX) \
                    and name not in keep:
                LOG.info("Linux bridge agent %s: removing stale %s", self.host, name)
                self.ip.delete_device(name)
