"""The OVSDB side of the OVS agent: bridges, patch ports, tunnel ports, VIF port tags.

Layout (Neutron's): the integration bridge (``br-int``) holds the VM ports, each an access
port tagged with its network's *local* VLAN; the tunnel bridge (``br-tun``) holds one VXLAN
port per remote host and is patched to br-int (``patch-tun`` <-> ``patch-int``); each
``physnet:bridge`` mapping gets its bridge patched to br-int (``int-<br>`` <-> ``phy-<br>``).
Bridges are created with ``fail_mode=secure``: only OpenFlow rules forward traffic, so a
bridge never floods between networks before the agent programmed it.

Every change is one OVSDB transaction that raises on error; after it, the interfaces it
created are checked (ovs-vswitchd reports a failure in ``Interface.error`` / ``ofport=-1``,
which ovsdbapp only logs) and, on failure, what this call created is deleted again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from stackcore import exception
from stackcore_drivers.network import names
from stackcore_drivers.network.ovs.ovsdb import Ovsdb

LOG = logging.getLogger(__name__)

#: Tag of a VIF port that must not pass traffic (unknown or unbound port), as in Neutron.
DEAD_VLAN_TAG = 4095
#: Local VLANs given to networks on br-int.
MIN_LOCAL_VLAN, MAX_LOCAL_VLAN = 1, 4094


def patch_port_name(prefix: str, bridge: str) -> str:
    """``<prefix><bridge>``, or ``<prefix><hash>`` when that is over the kernel limit."""
    name = prefix + bridge
    if len(name) <= names.MAX_DEVICE_NAME:
        return name
    digest = hashlib.sha1(bridge.encode(), usedforsecurity=False).hexdigest()
    return prefix + digest[: names.MAX_DEVICE_NAME - len(prefix)]


@dataclasses.dataclass(frozen=True)
class VifPort:
    """A VM port on br-int: an Interface with ``external_ids:iface-id`` and ``attached-mac``."""

    name: str
    iface_id: str
    mac: str
    tag: int | None
    other_config: dict[str, str]
    ofport: int


@dataclasses.dataclass(frozen=True)
class PortSpec:
    """A port the agent owns: bridge, name and the Interface ``type``/``options`` it needs."""

    bridge: str
    name: str
    type: str
    options: dict[str, str]


def _value(value: Any) -> Any:
    """ovsdbapp returns optional columns as ``[]`` or ``[v]``."""
    if isinstance(value, list):
        return value[0] if value else None
    return value


class OvsBridgeManager:
    """Bridges and ports of one host's OVSDB.

    ``bridge_mappings`` maps physical networks to provider bridges; ``local_ip`` (None: no
    tunnelling) is the tunnel endpoint of this host.
    """

    def __init__(
        self,
        ovsdb: Ovsdb,
        integration_bridge: str = "br-int",
        tunnel_bridge: str = "br-tun",
        datapath_type: str = "system",
        bridge_mappings: Mapping[str, str] | None = None,
        local_ip: str | None = None,
    ) -> None:
        self.ovsdb = ovsdb
        self.integration_bridge = names.device_name("integration_bridge", integration_bridge)
        self.tunnel_bridge = names.device_name("tunnel_bridge", tunnel_bridge)
        self.datapath_type = datapath_type
        self.bridge_mappings = dict(bridge_mappings or {})
        for physnet, bridge in self.bridge_mappings.items():
            names.device_name(f"bridge_mappings[{physnet}]", bridge)
            if bridge in (self.integration_bridge, self.tunnel_bridge):
                raise exception.Invalid(f"bridge_mappings[{physnet}]", "must not be the "
                                        "integration or tunnel bridge", bridge)
        self.local_ip = local_ip

    # --- the fixed infrastructure ---------------------------------------------------------

    def bridges(self) -> list[str]:
        """The bridges this agent owns, br-int first."""
        result = [self.integration_bridge]
        if self.local_ip:
            result.append(self.tunnel_bridge)
        result.extend(sorted(set(self.bridge_mappings.values())))
        return result

    def patch_ports(self) -> list[PortSpec]:
        """The patch port pairs joining br-int to br-tun and to each provider bridge."""
        specs: list[PortSpec] = []

        def pair(bridge: str, int_side: str, other_side: str) -> None:
            specs.append(PortSpec(self.integration_bridge, int_side, "patch",
                                  {"peer": other_side}))
            specs.append(PortSpec(bridge, other_side, "patch", {"peer": int_side}))

        if self.local_ip:
            pair(self.tunnel_bridge, "patch-tun", "patch-int")
        for bridge in sorted(set(self.bridge_mappings.values())):
            pair(bridge, patch_port_name("int-", bridge), patch_port_name("phy-", bridge))
        return specs

    def ensure_infrastructure(self) -> list[str]:
        """Create what is missing of the bridges and patch ports, fix patch ports with wrong
        options; touch nothing that is right. Returns what was changed (names)."""
        existing_bridges = set(self._list_bridges())
        missing_bridges = [b for b in self.bridges() if b not in existing_bridges]
        actual = self._interfaces()
        to_add: list[PortSpec] = []
        to_replace: list[PortSpec] = []
        for spec in self.patch_ports():
            have = actual.get(spec.name)
            if have is None:
                to_add.append(spec)
            elif (have["bridge"], have["type"], have["options"]) != (
                    spec.bridge, spec.type, spec.options):
                to_replace.append(spec)
        wrong_mode = [b for b in self.bridges() if b in existing_bridges
                      and self._bridge_settings(b) != ("secure", self.datapath_type)]
        if not (missing_bridges or to_add or to_replace or wrong_mode):
            return []
        with self.ovsdb.transaction() as txn:
            for bridge in missing_bridges:
                txn.add(self.ovsdb.api.add_br(bridge, datapath_type=self.datapath_type))
            for bridge in missing_bridges + wrong_mode:
                txn.add(self.ovsdb.api.db_set("Bridge", bridge, ("fail_mode", "secure"),
                                              ("datapath_type", self.datapath_type)))
            for spec in to_replace:
                txn.add(self.ovsdb.api.del_port(spec.name, bridge=None, if_exists=True))
            for spec in to_add + to_replace:
                txn.add(self._add_port_cmd(spec))
        self._check_interfaces([s.name for s in to_add + to_replace],
                               undo_bridges=missing_bridges)
        changed = missing_bridges + wrong_mode + [s.name for s in to_add + to_replace]
        LOG.info("OVS %s: created or fixed %s", self.ovsdb.target, ", ".join(changed))
        return changed

    def _bridge_settings(self, bridge: str) -> tuple[Any, Any]:
        row = self.ovsdb.execute(self.ovsdb.api.db_get("Bridge", bridge, "fail_mode"))
        dp = self.ovsdb.execute(self.ovsdb.api.db_get("Bridge", bridge, "datapath_type"))
        return _value(row), dp

    def remove_infrastructure(self) -> None:
        """Delete every bridge this agent owns (with their ports). Idempotent."""
        with self.ovsdb.transaction() as txn:
            for bridge in self.bridges():
                txn.add(self.ovsdb.api.del_br(bridge, if_exists=True))

    # --- VIF ports ------------------------------------------------------------------------

    def vif_ports(self) -> dict[str, VifPort]:
        """The VM ports on br-int by ``iface-id`` (Neutron's rule: an Interface with both
        ``external_ids:iface-id`` and ``attached-mac``)."""
        api = self.ovsdb.api
        on_int = set(self.ovsdb.execute(api.list_ports(self.integration_bridge)) or [])
        ports = {p["name"]: p for p in self.ovsdb.execute(
            api.db_list("Port", columns=["name", "tag", "other_config"]))}
        result: dict[str, VifPort] = {}
        for iface in self.ovsdb.execute(
                api.db_list("Interface", columns=["name", "external_ids", "ofport"])):
            ids = iface["external_ids"]
            if iface["name"] not in on_int or "iface-id" not in ids or "attached-mac" not in ids:
                continue
            port = ports.get(iface["name"], {})
            result[ids["iface-id"]] = VifPort(
                name=iface["name"], iface_id=ids["iface-id"], mac=ids["attached-mac"],
                tag=_value(port.get("tag")), other_config=dict(port.get("other_config") or {}),
                ofport=_value(iface["ofport"]) or -1)
        return result

    def set_vif_vlan(self, port: VifPort, tag: int, other_config: Mapping[str, str]) -> None:
        """Tag a VM port with its network's local VLAN (or DEAD_VLAN_TAG) and record the
        network it belongs to in ``Port.other_config`` (read back after a restart)."""
        with self.ovsdb.transaction() as txn:
            txn.add(self.ovsdb.api.db_clear("Port", port.name, "other_config"))
            txn.add(self.ovsdb.api.db_set("Port", port.name, ("tag", tag),
                                          ("other_config", dict(other_config))))

    def delete_port(self, name: str) -> None:
        self.ovsdb.execute(self.ovsdb.api.del_port(name, if_exists=True))

    # --- tunnel ports ---------------------------------------------------------------------

    def tunnel_spec(self, remote_ip: str) -> PortSpec:
        if not self.local_ip:
            raise exception.InvalidState("tunnelling is not configured (no local_ip)")
        return PortSpec(self.tunnel_bridge, names.tunnel_port_name("vxlan", remote_ip), "vxlan",
                        {"remote_ip": remote_ip, "local_ip": self.local_ip,
                         "in_key": "flow", "out_key": "flow", "df_default": "true"})

    def tunnel_ports(self) -> dict[str, dict[str, Any]]:
        """The VXLAN ports on br-tun by name: ``{"type", "options", "bridge"}``."""
        return {name: iface for name, iface in self._interfaces().items()
                if iface["bridge"] == self.tunnel_bridge and iface["type"] == "vxlan"}

    def sync_tunnels(self, remote_ips: set[str]) -> tuple[list[str], list[str]]:
        """Make br-tun hold exactly one VXLAN port per remote IP, with the right options.
        Returns (added or fixed, removed) port names."""
        wanted = {spec.name: spec for spec in (self.tunnel_spec(ip) for ip in sorted(remote_ips))}
        actual = self.tunnel_ports()
        stale = sorted(set(actual) - set(wanted))
        wrong = [s for n, s in wanted.items() if n in actual and actual[n]["options"] != s.options]
        missing = [s for n, s in wanted.items() if n not in actual]
        if not (stale or wrong or missing):
            return [], []
        with self.ovsdb.transaction() as txn:
            for name in stale + [s.name for s in wrong]:
                txn.add(self.ovsdb.api.del_port(name, bridge=self.tunnel_bridge, if_exists=True))
            for spec in wrong + missing:
                txn.add(self._add_port_cmd(spec))
        added = [s.name for s in wrong + missing]
        self._check_interfaces(added)
        return added, stale

    def ofports(self) -> dict[str, int]:
        """The OpenFlow port number of every interface with one, by name."""
        return {name: int(iface["ofport"]) for name, iface in self._interfaces().items()
                if isinstance(iface["ofport"], int) and iface["ofport"] > 0}

    # --- helpers --------------------------------------------------------------------------

    def _add_port_cmd(self, spec: PortSpec) -> Any:
        return self.ovsdb.api.add_port(spec.bridge, spec.name, may_exist=False, type=spec.type,
                                       options=dict(spec.options))

    def _list_bridges(self) -> list[str]:
        return list(self.ovsdb.execute(self.ovsdb.api.list_br()) or [])

    def _interfaces(self) -> dict[str, dict[str, Any]]:
        """Every interface by name with its ``type``, ``options``, ``error``, ``ofport`` and
        the ``bridge`` holding it."""
        api = self.ovsdb.api
        bridge_of: dict[str, str] = {}
        for bridge in self._list_bridges():
            for port in self.ovsdb.execute(api.list_ports(bridge)) or []:
                bridge_of[port] = bridge
        result: dict[str, dict[str, Any]] = {}
        for iface in self.ovsdb.execute(api.db_list(
                "Interface", columns=["name", "type", "options", "error", "ofport"])):
            result[iface["name"]] = {
                "bridge": bridge_of.get(iface["name"]), "type": iface["type"],
                "options": dict(iface["options"]), "error": _value(iface["error"]),
                "ofport": _value(iface["ofport"]),
            }
        return result

    def _check_interfaces(self, created: list[str], undo_bridges: Sequence[str] = ()) -> None:
        """Raise DriverError when ovs-vswitchd refused one of ``created`` (after deleting
        those ports and ``undo_bridges``, so nothing is left half made)."""
        if not created:
            return
        interfaces = self._interfaces()
        failed = {name: interfaces.get(name, {}).get("error") or "no OpenFlow port number"
                  for name in created
                  if name not in interfaces or interfaces[name].get("error")
                  or (interfaces[name].get("ofport") or 0) < 0}
        if not failed:
            return
        with self.ovsdb.transaction() as txn:
            for name in created:
                txn.add(self.ovsdb.api.del_port(name, if_exists=True))
            for bridge in undo_bridges:
                txn.add(self.ovsdb.api.del_br(bridge, if_exists=True))
        raise exception.DriverError(
            "ovs-vswitchd refused " + "; ".join(f"{n}: {why}" for n, why in sorted(failed.items()))
        )
