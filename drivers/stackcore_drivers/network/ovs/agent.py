"""The Open vSwitch L2 agent: one per host, makes that host's OVS carry the traffic of the
ports the server bound there.

What it owns: br-int, br-tun, the provider bridges and their patch ports, the VXLAN ports on
br-tun, the VLAN tag + ``other_config`` of the VM ports on br-int, and every OpenFlow rule of
those bridges (:mod:`.pipeline`: local VLAN per network on br-int, local VLAN <-> VNI on br-tun,
local VLAN <-> provider VLAN on the provider bridges). VM ports themselves are plugged by the
hypervisor (libvirt / os-vif: ``external_ids:iface-id`` = port id); the agent recognises them,
tags them with their network's local VLAN and, when their port no longer exists on the
server, removes them (the stale ports Neutron's ``ovs-cleanup`` removes). A VM port whose port
exists but is not bound here, cannot be wired or is administratively down gets the dead tag
4095 and a drop flow.

Each pass, in an order that never opens a path early: bridges and patch ports, stale VIFs
removed, tunnel ports, the flows of every bridge (``replace-flows``: only differences sent,
stale flows deleted), then the VM ports' tags. Ports that now pass traffic are reported up
(ACTIVE), the others that the server thinks ACTIVE down.

After a restart the local VLAN of each network is read back from the VM ports'
``other_config`` (``net_uuid`` / ``tag``), so ports that are right keep their tag, and the
flows computed from them are the ones already installed: a restart changes nothing that is
right. Bridges run with ``fail_mode=secure``, so whatever the agent has not programmed is not
forwarded.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from stackcore import exception
from stackcore_drivers.network import names, testvm
from stackcore_drivers.network.agent_base import L2Agent
from stackcore_drivers.network.host_state import BoundPort, HostState
from stackcore_drivers.network.ovs import AGENT_TYPE, VIF_TYPE
from stackcore_drivers.network.ovs import conf as ovs_conf
from stackcore_drivers.network.ovs.bridges import (
    DEAD_VLAN_TAG,
    MAX_LOCAL_VLAN,
    MIN_LOCAL_VLAN,
    OvsBridgeManager,
    VifPort,
    patch_port_name,
)
from stackcore_drivers.network.ovs.firewall import TRUNK_INGRESS, FirewallPort, firewall_flows
from stackcore_drivers.network.ovs.openflow import Conntrack, OfctlBridge, rundir_for
from stackcore_drivers.network.ovs.ovsdb import Ovsdb
from stackcore_drivers.network.ovs.pipeline import (
    LocalNetwork,
    integration_flows,
    physical_flows,
    tunnel_flows,
)

if TYPE_CHECKING:
    from oslo_config import cfg

    from stackcore.rpc import Transport

LOG = logging.getLogger(__name__)


#: Passes between two whole replacements of br-int's flow table (the others send differences).
FULL_REPLACE_EVERY = 30


def check_config(conf: cfg.ConfigOpts) -> None:
    """Raise ConfigError naming the option when the ``[ovs]`` settings cannot work."""
    opts = conf.ovs
    for option in ("integration_bridge", "tunnel_bridge"):
        try:
            names.device_name(option, getattr(opts, option))
        except exception.Invalid as err:
            raise exception.ConfigError(f"[ovs] {option}: {err}") from None
    mappings = names.physnet_map("[ovs] bridge_mappings", opts.bridge_mappings)
    for physnet, bridge in mappings.items():
        if bridge in (opts.integration_bridge, opts.tunnel_bridge):
            raise exception.ConfigError(f"[ovs] bridge_mappings: physical network {physnet!r} "
                                        f"is mapped to the integration/tunnel bridge {bridge!r}")
    if opts.tunnel_types and not opts.local_ip:
        raise exception.ConfigError("[ovs] tunnel_types is set but [ovs] local_ip is empty")
    if opts.local_ip:
        names.ip_address("[ovs] local_ip", opts.local_ip)


class OvsAgent(L2Agent):
    AGENT_TYPE = AGENT_TYPE
    # Backend libraries, imported on first use; the loader checks they are installed.
    REQUIRES: ClassVar[dict[str, str]] = {
        "ovsdbapp": "pip install 'stackcore-drivers[ovs]'",
    }
    BINARY = "stackcore-ovs-agent"
    VIF_TYPE = VIF_TYPE
    BACKEND_OPTS = [("ovs", ovs_conf.AGENT_OPTS)]
    FIREWALL_DRIVER = "openvswitch"
    capabilities: ClassVar[dict[str, bool]] = {"security_groups": True}
    check_config = staticmethod(check_config)

    def __init__(self, conf: cfg.ConfigOpts, transport: Transport,
                 ovsdb: Ovsdb | None = None) -> None:
        from stackcore import conf as sc_conf
        super().__init__(conf, transport)
        sc_conf.register(conf, self.BACKEND_OPTS)
        self.check_config(conf)
        opts = conf.ovs
        self.local_ip = names.ip_address("[ovs] local_ip", opts.local_ip) if opts.local_ip \
            else None
        self.ovsdb = ovsdb or Ovsdb(opts.ovsdb_connection, opts.ovsdb_timeout)
        self.bridges = OvsBridgeManager(
            self.ovsdb, opts.integration_bridge, opts.tunnel_bridge, opts.datapath_type,
            dict(opts.bridge_mappings), self.local_ip if opts.tunnel_types else None)
        rundir = rundir_for(opts.ovsdb_connection, opts.ovs_rundir)
        #: OpenFlow access to each owned bridge.
        self.openflow = {bridge: OfctlBridge(bridge, rundir, opts.ovsdb_timeout)
                         for bridge in self.bridges.bridges()}
        #: network id -> local VLAN on br-int; None until read back from OVSDB.
        self.local_vlans: dict[str, int] | None = None
        #: br-int's flows as this object last wrote them (None: unknown, replace them all)
        #: and the passes until the next whole replacement (see _program_flows)
        self._int_flows: list[str] | None = None
        self._until_full = 0
        self.conntrack = Conntrack(rundir, opts.ovsdb_timeout)
        #: each filtered port's conntrack zone (its ofport) -> the rules last enforced there
        self._enforced: dict[int, frozenset[Any]] = {}

    def configurations(self) -> dict[str, Any]:
        opts = self.conf.ovs
        return {
            "bridge_mappings": dict(opts.bridge_mappings),
            "integration_bridge": opts.integration_bridge,
            "tunnel_bridge": opts.tunnel_bridge,
            "tunnel_types": list(opts.tunnel_types),
            "tunneling_ip": self.local_ip or "",
            "datapath_type": opts.datapath_type,
            "network_types": sorted({"flat", "vlan", *opts.tunnel_types}),
        }

    def tunnel_types(self) -> list[str]:
        return list(self.conf.ovs.tunnel_types)

    def close(self) -> None:
        self.ovsdb.close()

    # --- observation (conformance kit) ----------------------------------------------------

    def _vswitchd_pid(self) -> int | None:
        """ovs-vswitchd's pid (its network namespace holds the VM ports' host ends on the
        userspace datapath), from its pidfile in the run directory; None: not found."""
        import os
        rundir = rundir_for(self.conf.ovs.ovsdb_connection, self.conf.ovs.ovs_rundir)
        try:
            with open(os.path.join(rundir, "ovs-vswitchd.pid")) as handle:
                return int(handle.read().strip())
        except (OSError, ValueError):
            return None

    def plug_test_device(self, port: Mapping[str, Any]) -> None:
        """What libvirt / os-vif do for an ``ovs`` VIF: a port on br-int named after the port
        with ``external_ids`` iface-id / attached-mac / iface-status - a veth whose other end
        is a test VM's ``eth0`` (:mod:`..testvm`), in ovs-vswitchd's namespace."""
        name = ("tap" + str(port["id"]))[:14]
        ips = port.get("fixed_ips") or []
        testvm.make_vm(str(port["id"]), name, str(port["mac_address"]),
                       str(ips[0]["ip_address"]) if ips else None, pid=self._vswitchd_pid())
        self.ovsdb.execute(self.ovsdb.api.add_port(
            self.conf.ovs.integration_bridge, name, may_exist=True,
            external_ids={"iface-id": str(port["id"]),
                          "attached-mac": str(port.get("mac_address") or ""),
                          "iface-status": "active"}))

    def unplug_test_device(self, port: Mapping[str, Any]) -> None:
        name = ("tap" + str(port["id"]))[:14]
        self.bridges.delete_port(name)
        testvm.remove_vm(str(port["id"]), name, pid=self._vswitchd_pid())

    def test_ping(self, port: Mapping[str, Any], address: str) -> bool:
        """An echo from the port's test VM through br-int (and its conntrack flows)."""
        return testvm.ping(str(port["id"]), address)

    def wired_ports(self) -> set[str]:
        """VM ports on br-int tagged with a network's local VLAN (not the dead tag), read
        from OVSDB."""
        return {iface_id for iface_id, vif in self.bridges.vif_ports().items()
                if vif.tag is not None and vif.tag != DEAD_VLAN_TAG and vif.ofport > 0}

    # --- reconciliation -------------------------------------------------------------------

    def why_not(self, port: BoundPort) -> str | None:
        """Why this host cannot wire ``port``'s segment, or None."""
        if port.network_type in ("flat", "vlan"):
            if port.physical_network not in self.conf.ovs.bridge_mappings:
                return (f"physical network {port.physical_network!r} is not in [ovs] "
                        "bridge_mappings")
            return None
        if port.network_type in self.conf.ovs.tunnel_types:
            return None
        return f"network type {port.network_type!r} is not handled by this agent"

    def reconcile(self, state: HostState) -> set[str]:
        self.bridges.ensure_infrastructure()
        vifs = self.bridges.vif_ports()
        if self.local_vlans is None:
            self.local_vlans = self._restore_local_vlans(vifs.values(), state)
        errors = {pid: why for pid, port in state.ports.items()
                  if (why := self.why_not(port)) is not None}
        wired = {net: port for net, port in state.networks().items()
                 if not any(p.network_id == net for pid, p in state.ports.items() if pid in errors)}
        for network_id in list(self.local_vlans):
            if network_id not in wired:
                del self.local_vlans[network_id]
        for network_id in sorted(wired):
            if network_id not in self.local_vlans:
                self.local_vlans[network_id] = self._free_local_vlan()

        # VM ports: wanted tag and other_config; stale ones (port deleted) removed first.
        unknown = [i for i in vifs if i not in state.ports or i in errors]
        still_exist = set(self.plugin_rpc.get_existing_ports(unknown)) if unknown else set()
        wanted_tags: dict[str, tuple[VifPort, int, dict[str, str]]] = {}
        for iface_id, vif in sorted(vifs.items()):
            port = state.ports.get(iface_id)
            if port is not None and iface_id not in errors and port.admin_state_up:
                tag = self.local_vlans[port.network_id]
                other = {"net_uuid": port.network_id, "network_type": port.network_type,
                         "physical_network": port.physical_network or "",
                         "segmentation_id": str(port.segmentation_id or ""), "tag": str(tag)}
            elif iface_id not in still_exist and port is None:
                LOG.info("OVS agent %s: removing stale port %s (port %s is gone)",
                         self.host, vif.name, iface_id)
                self.bridges.delete_port(vif.name)
                continue
            else:
                tag, other = DEAD_VLAN_TAG, {}
            wanted_tags[iface_id] = (vif, tag, other)
        for pid, why in errors.items():
            if self.port_errors.get(pid) != why:
                LOG.error("OVS agent %s: cannot wire port %s: %s", self.host, pid, why)
        self.port_errors = errors

        peers_of: dict[str, set[str]] = {}
        if self.bridges.local_ip:
            for network_id, port in wired.items():
                if port.network_type in self.conf.ovs.tunnel_types:
                    peers_of[network_id] = set(state.peers.get(network_id, frozenset())) - {
                        self.bridges.local_ip}
            self.bridges.sync_tunnels(set().union(*peers_of.values()))

        dead = [vif.ofport for vif, tag, _ in wanted_tags.values()
                if tag == DEAD_VLAN_TAG and vif.ofport > 0]
        filtered = None
        if self.firewall_enabled:
            filtered = [FirewallPort(vif.ofport, state.ports[iface_id].mac_address, tag,
                                     state.ports[iface_id].security)
                        for iface_id, (vif, tag, _) in sorted(wanted_tags.items())
                        if tag != DEAD_VLAN_TAG and vif.ofport > 0]
        self._program_flows(wired, peers_of, dead, filtered)
        if filtered is not None:
            self._forget_revoked_connections(filtered)

        up: set[str] = set()
        for iface_id, (vif, tag, other) in wanted_tags.items():
            if (vif.tag, vif.other_config) != (tag, other):
                self.bridges.set_vif_vlan(vif, tag, other)
            if tag != DEAD_VLAN_TAG and vif.ofport > 0:
                up.add(iface_id)
        return up

    def _program_flows(self, wired: dict[str, BoundPort], peers_of: dict[str, set[str]],
                       dead_ofports: list[int],
                       firewall: list[FirewallPort] | None = None) -> None:
        """Every owned bridge's flow table as :mod:`.pipeline` computes it from the wired
        networks, their local VLANs and the current OpenFlow port numbers; with the firewall
        on (``firewall`` not None), br-int's also holds :mod:`.firewall`'s tables, in the same
        atomic bundle."""
        assert self.local_vlans is not None
        ofports = self.bridges.ofports()

        def ofport(name: str) -> int:
            number = ofports.get(name)
            if number is None:
                raise exception.DriverError(f"OVS agent {self.host}: port {name} has no "
                                            "OpenFlow port number")
            return number

        networks = [LocalNetwork(net, self.local_vlans[net], port.network_type,
                                 port.physical_network, port.segmentation_id)
                    for net, port in sorted(wired.items())]
        mappings = dict(self.conf.ovs.bridge_mappings)
        int_ofports = {physnet: ofport(patch_port_name("int-", bridge))
                       for physnet, bridge in mappings.items()}
        if self.bridges.local_ip:
            tunnels = {net: [ofport(names.tunnel_port_name("vxlan", ip)) for ip in sorted(ips)]
                       for net, ips in peers_of.items()}
            all_tunnels = [n for name, n in ofports.items()
                           if name in self.bridges.tunnel_ports()]
            self.openflow[self.bridges.tunnel_bridge].replace_flows(tunnel_flows(
                networks, ofport("patch-int"), all_tunnels, tunnels))
        for physnet, bridge in sorted(mappings.items()):
            self.openflow[bridge].replace_flows(physical_flows(
                networks, physnet, ofport(patch_port_name("phy-", bridge))))
        if firewall is None:
            flows = integration_flows(networks, int_ofports, dead_ofports)
        else:
            flows = integration_flows(
                networks, int_ofports, dead_ofports, trunk_table=TRUNK_INGRESS,
                tunnel_ofport=ofport("patch-tun") if self.bridges.local_ip else None)
            flows += firewall_flows(firewall)
        bridge = self.openflow[self.bridges.integration_bridge]
        # With the firewall, br-int holds thousands of flows: a pass sends only what differs
        # from what it wrote last (a rule change: a few flow mods), and every
        # FULL_REPLACE_EVERY passes - and on the first - replace-flows makes the table exactly
        # the wanted one again (stale or foreign flows removed).
        self._int_flows, previous = None, self._int_flows
        if previous is None or self._until_full <= 0:
            bridge.replace_flows(flows)
            self._until_full = FULL_REPLACE_EVERY
        else:
            bridge.change_flows(previous, flows)
            self._until_full -= 1
        self._int_flows = flows

    def _forget_revoked_connections(self, filtered: list[FirewallPort]) -> None:
        """After the flows changed: a port that lost a rule (a rule deleted, a group left, a
        remote group member gone) has its conntrack zone flushed, so connections the lost
        rule had accepted are checked again as new - Neutron's conntrack cleanup, by zone
        (each filtered port has one: its ofport). Connections the remaining rules allow are
        committed again on their next packet; the others stop. A port that gained rules
        only keeps its connections. Not enforced yet (an agent's first pass): nothing to
        forget; a port unfiltered since (port security off) lets everything pass anyway."""
        now = {port.ofport: frozenset(port.security.rules) for port in filtered
               if port.security is not None and port.security.enabled}
        for zone, rules in now.items():
            before = self._enforced.get(zone)
            if before is not None and not before <= rules:
                try:
                    self.conntrack.flush_zone(zone)
                    LOG.info("OVS agent %s: conntrack zone %d flushed (%d rule(s) revoked)",
                             self.host, zone, len(before - rules))
                except exception.StackcoreError as err:
                    LOG.error("OVS agent %s: flushing conntrack zone %d failed: %s", self.host,
                              zone, err)
                    now[zone] = before  # try again at the next pass
        self._enforced = now

    def _restore_local_vlans(self, vifs: Any, state: HostState) -> dict[str, int]:
        """Local VLANs recorded on the VM ports by the previous run, for networks still here."""
        restored: dict[str, int] = {}
        for vif in vifs:
            net, tag = vif.other_config.get("net_uuid"), vif.other_config.get("tag", "")
            if net and tag.isdigit() and net not in restored and any(
                    p.network_id == net for p in state.ports.values()) \
                    and int(tag) not in restored.values():
                restored[net] = int(tag)
        return restored

    def _free_local_vlan(self) -> int:
        used = set((self.local_vlans or {}).values())
        for vlan in range(MIN_LOCAL_VLAN, MAX_LOCAL_VLAN + 1):
            if vlan not in used:
                return vlan
        raise exception.DriverError(f"OVS agent {self.host}: all local VLANs are in use")
