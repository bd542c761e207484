"""The RPC between the server and the DHCP agents.

Agent -> server, topic ``network.dhcp`` (API 1.0; Neutron's ``q-plugin`` DHCP methods), served
by the ``network`` service:

* ``get_active_networks(host)`` - ids of the networks the agent on ``host`` serves, sorted:
  every network with at least one ``enable_dhcp`` subnet. **Every DHCP agent serves every
  such network** (no agent scheduling table yet: one more agent is one more DHCP server per
  network, each answering with the same addresses, which DHCP clients tolerate);
* ``get_network_info(network_id)`` - the network (``id``, ``mtu``), its subnets and every port
  on it with its MAC and fixed IPs; None when the network is gone;
* ``get_dhcp_port(network_id, host)`` - the agent's DHCP port on the network, created when
  missing (``device_owner`` ``network:dhcp``, ``device_id`` ``dhcp<uuid5(host)>-<network>``,
  bound to ``host`` so the host's L2 agent wires it) and given an address on every
  ``enable_dhcp`` subnet it lacks one on. The port is returned with its binding
  (``binding:vif_type``: ``binding_failed`` when no L2 agent of the host could bind it);
* ``release_dhcp_port(network_id, host)`` - delete that port (the network has no DHCP subnet
  left). Idempotent;
* ``get_port_info(port_id)`` (1.1) - one port as in ``get_network_info`` plus its
  ``network_id``; None when it is gone;
* ``get_port_by_address(network_id, ip_address)`` (1.2) - the port holding ``ip_address`` on
  ``network_id`` (``id``, ``device_id``, ``device_owner``, ``project_id``), None when no port
  does: how the metadata proxy of the DHCP agent tells which server a request came from (the
  guest's source address, never a header the guest sent).

Server -> agents, topic ``network.dhcp_agent`` aimed at each DHCP agent's host (cast,
:class:`DhcpAgentNotifier`): ``network_changed(network_id, port_ids=None)`` after a port,
subnet or network of ``network_id`` changed, so the agent updates that network at once instead
of at its next full resync; ``port_ids`` (1.1) names the ports when only they changed, so an
agent serving the network re-reads those ports only (``get_port_info``), not all of them. A
lost notification costs latency only: the agents also resync everything every ``[dhcp]
resync_interval`` seconds (level-triggered, like the L2 agents).

Every method takes and returns JSON types only.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any

from stackcore import exception, validate
from stackcore.network.dhcp.driver import AGENT_TYPE, DEVICE_OWNER_DHCP
from stackcore.rpc import Target, Transport

if TYPE_CHECKING:
    from oslo_config import cfg

    from stackcore.db import api as db_api
    from stackcore.network.ml2.plugin import ML2Plugin

LOG = logging.getLogger(__name__)

TOPIC = "network.dhcp"
AGENT_TOPIC = "network.dhcp_agent"
#: 1.1: ``get_port_info``; ``network_changed`` may name the ports that changed
#: 1.2: ``get_port_by_address``
VERSION = "1.2"
#: the agents' API (``network_changed``; 1.1: ``port_ids``), versioned apart from the server's
AGENT_VERSION = "1.1"


def dhcp_device_id(host: str, network_id: str) -> str:
    """Neutron's ``device_id`` of the DHCP port of ``host`` on ``network_id``."""
    return f"dhcp{uuid.uuid5(uuid.NAMESPACE_DNS, host)}-{network_id}"


def _port_out(d: dict[str, Any]) -> dict[str, Any]:
    return {key: d[key] for key in (
        "id", "network_id", "mac_address", "fixed_ips", "device_id", "device_owner",
        "admin_state_up", "status", "binding:host_id", "binding:vif_type",
        "binding:vif_details")} | {"binding_failures": [
            str(f.get("reason", f)) for f in d.get("binding_failures") or []]}


class DhcpRPCEndpoint:
    """Server side (in the ``network`` service), over the ML2 plugin."""

    target = Target(TOPIC, version=VERSION)

    def __init__(self, conf: cfg.ConfigOpts, db: db_api.Database, plugin: ML2Plugin) -> None:
        self.conf = conf
        self.db = db
        self.plugin = plugin

    def init_host(self) -> None:
        """Nothing to reconcile: the agents ask."""

    def periodic_tasks(self) -> None:
        """Nothing periodic."""

    def get_active_networks(self, host: str) -> list[str]:
        import sqlalchemy as sa

        from stackcore.network import models as m
        validate.name("host", host)
        with self.db.transaction() as session:
            return sorted(set(session.execute(
                sa.select(m.Subnet.network_id).where(m.Subnet.enable_dhcp.is_(True))
            ).scalars()))

    def get_network_info(self, network_id: str) -> dict[str, Any] | None:
        import sqlalchemy as sa

        from stackcore.network import models as m
        network_id = validate.uuid_like("network_id", network_id)
        with self.db.transaction() as session:
            network = session.get(m.Network, network_id)
            if network is None:
                return None
            subnets = session.execute(
                sa.select(m.Subnet).where(m.Subnet.network_id == network_id)
                .order_by(m.Subnet.created_at, m.Subnet.id)).scalars().all()
            ports = session.execute(
                sa.select(m.Port.id, m.Port.mac_address, m.Port.device_owner,
                          m.Port.admin_state_up)
                .where(m.Port.network_id == network_id).order_by(m.Port.id)).all()
            ips: dict[str, list[dict[str, str]]] = {}
            for port_id, subnet_id, address in session.execute(
                sa.select(m.IPAllocation.port_id, m.IPAllocation.subnet_id,
                          m.IPAllocation.ip_address)
                .where(m.IPAllocation.network_id == network_id)
                .order_by(m.IPAllocation.subnet_id, m.IPAllocation.ip_address)
            ):
                ips.setdefault(port_id, []).append({"subnet_id": subnet_id,
                                                    "ip_address": address})
            return {
                "id": network.id, "mtu": network.mtu,
                "subnets": [{"id": s.id, "cidr": s.cidr, "ip_version": s.ip_version,
                             "gateway_ip": s.gateway_ip, "enable_dhcp": s.enable_dhcp,
                             "dns_nameservers": list(s.dns_nameservers or []),
                             "host_routes": [dict(r) for r in s.host_routes or []]}
                            for s in subnets],
                "ports": [{"id": p.id, "mac_address": p.mac_address,
                           "device_owner": p.device_owner, "admin_state_up": p.admin_state_up,
                           "fixed_ips": ips.get(p.id, [])} for p in ports],
            }

    def get_port_info(self, port_id: str) -> dict[str, Any] | None:
        import sqlalchemy as sa

        from stackcore.network import models as m
        port_id = validate.uuid_like("port_id", port_id)
        with self.db.transaction() as session:
            port = session.get(m.Port, port_id)
            if port is None:
                return None
            ips = session.execute(
                sa.select(m.IPAllocation.subnet_id, m.IPAllocation.ip_address)
                .where(m.IPAllocation.port_id == port_id)
                .order_by(m.IPAllocation.subnet_id, m.IPAllocation.ip_address)).all()
            return {"id": port.id, "network_id": port.network_id,
                    "mac_address": port.mac_address, "device_owner": port.device_owner,
                    "admin_state_up": port.admin_state_up,
                    "fixed_ips": [{"subnet_id": s, "ip_address": a} for s, a in ips]}

    def get_port_by_address(self, network_id: str, ip_address: str) -> dict[str, Any] | None:
        import ipaddress

        import sqlalchemy as sa

        from stackcore.network import models as m
        network_id = validate.uuid_like("network_id", network_id)
        try:
            address = str(ipaddress.ip_address(ip_address))
        except ValueError as err:
            raise exception.Invalid("ip_address", "must be an IP address", ip_address) from err
        with self.db.transaction() as session:
            row = session.execute(
                sa.select(m.Port.id, m.Port.device_id, m.Port.device_owner, m.Port.project_id)
                .join(m.IPAllocation, m.IPAllocation.port_id == m.Port.id)
                .where(m.IPAllocation.network_id == network_id,
                       m.IPAllocation.ip_address == address)
                .order_by(m.Port.id)).first()
            if row is None:
                return None
            return {"id": row.id, "device_id": row.device_id, "device_owner": row.device_owner,
                    "project_id": row.project_id}

    def _find_dhcp_port(self, network_id: str, host: str) -> dict[str, Any] | None:
        found = self.plugin.list_ports({"network_id": network_id,
                                        "device_id": dhcp_device_id(host, network_id)})
        return found[0] if found else None

    def get_dhcp_port(self, network_id: str, host: str) -> dict[str, Any]:
        from stackcore.network.ml2.plugin import Owner
        network_id = validate.uuid_like("network_id", network_id)
        host = validate.name("host", host)
        network = self.plugin.get_network(network_id)   # NotFound when gone
        wanted = [s["id"] for s in self.plugin.list_subnets(network_id) if s["enable_dhcp"]]
        port = self._find_dhcp_port(network_id, host)
        if port is None:
            port = self.plugin.create_port(network_id, {
                "name": f"dhcp-{host}"[:255], "mac_address": None,
                "fixed_ips": [{"subnet_id": s} for s in wanted], "host": host,
                "vnic_type": "normal", "profile": {}, "device_id": dhcp_device_id(host,
                                                                                  network_id),
                "device_owner": DEVICE_OWNER_DHCP, "delete_with_device": False,
                "admin_state_up": True}, Owner(network["project_id"]))
            LOG.info("created DHCP port %s of host %s on network %s", port["id"], host,
                     network_id)
            return _port_out(port)
        have = {ip["subnet_id"] for ip in port["fixed_ips"]}
        changes: dict[str, Any] = {}
        if set(wanted) - have:
            changes["fixed_ips"] = [*({"subnet_id": ip["subnet_id"],
                                       "ip_address": ip["ip_address"]}
                                      for ip in port["fixed_ips"]),
                                    *({"subnet_id": s} for s in wanted if s not in have)]
        if port["binding:host_id"] != host:
            changes["host"] = host
        if changes:
            port = self.plugin.update_port(port["id"], changes)
        elif port["binding:vif_type"] in ("unbound", "binding_failed"):
            # the host's L2 agent was not alive when the port was made: try again
            self.plugin.bind_port_if_needed(port["id"])
            port = self.plugin.get_port(port["id"])
        return _port_out(port)

    def release_dhcp_port(self, network_id: str, host: str) -> None:
        network_id = validate.uuid_like("network_id", network_id)
        host = validate.name("host", host)
        port = self._find_dhcp_port(network_id, host)
        if port is not None:
            self.plugin.delete_port(port["id"])


class DhcpRPCAPI:
    """Client side, used by the DHCP agents."""

    VERSION = VERSION

    def __init__(self, transport: Transport) -> None:
        self._client = transport.client(Target(TOPIC, version=self.VERSION))

    def get_active_networks(self, host: str) -> list[str]:
        result: list[str] = self._client.call("get_active_networks", host=host)
        return result

    def get_network_info(self, network_id: str) -> dict[str, Any] | None:
        result: dict[str, Any] | None = self._client.call("get_network_info",
                                                          network_id=network_id)
        return result

    def get_dhcp_port(self, network_id: str, host: str) -> dict[str, Any]:
        result: dict[str, Any] = self._client.call("get_dhcp_port", network_id=network_id,
                                                   host=host)
        return result

    def release_dhcp_port(self, network_id: str, host: str) -> None:
        self._client.call("release_dhcp_port", network_id=network_id, host=host)

    def get_port_info(self, port_id: str) -> dict[str, Any] | None:
        result: dict[str, Any] | None = self._client.call("get_port_info", port_id=port_id)
        return result

    def get_port_by_address(self, network_id: str, ip_address: str) -> dict[str, Any] | None:
        result: dict[str, Any] | None = self._client.prepare(version="1.2").call(
            "get_port_by_address", network_id=network_id, ip_address=ip_address)
        return result


class DhcpAgentNotifier:
    """Server side of ``network_changed``: tells every DHCP agent (each a consumer of
    ``network.dhcp_agent`` on its host) that a network changed. Never raises: a notification
    is an optimisation (the agents resync periodically), never a reason to fail an API call."""

    def __init__(self, db: db_api.Database, transport: Transport) -> None:
        self.db = db
        self._client = transport.client(Target(AGENT_TOPIC, version=AGENT_VERSION))

    def _hosts(self) -> list[str]:
        import sqlalchemy as sa

        from stackcore.network import models as m
        with self.db.transaction() as session:
            return sorted(session.execute(
                sa.select(m.Agent.host).where(m.Agent.agent_type == AGENT_TYPE)).scalars())

    def network_changed(self, network_id: str, port_ids: list[str] | None = None) -> None:
        try:
            hosts = self._hosts()
        except Exception:
            LOG.warning("cannot list DHCP agents to notify of network %s", network_id,
                        exc_info=True)
            return
        for host in hosts:
            try:
                self._client.prepare(server=host).cast("network_changed",
                                                       network_id=network_id,
                                                       port_ids=port_ids)
            except Exception as err:  # noqa: BLE001 - see the class doc
                # e.g. an agent that is not running: it resyncs when it starts
                LOG.debug("DHCP agent on %s not notified of network %s: %s", host,
                          network_id, err)
