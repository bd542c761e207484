"""The RPC the L2 agents use to learn what to wire and to say what they wired.

Agents never read the ML2 database: the ``network`` service answers them on topic
``network.agents`` (API 1.0; Neutron's ``q-plugin`` topic, kept apart from the heartbeats of
``network.reports`` so that a burst of device queries never delays a liveness report):

* ``get_devices_for_host(host, agent_type)`` - the ports bound on ``host`` by the mechanism
  driver that serves ``agent_type`` agents (the driver's ``AGENT_TYPE``), each with its network,
  the segment it is bound to (the bottom binding level: type, physical network, segmentation
  id, MTU), MAC, fixed IPs, ``admin_state_up`` and ``status``;
* ``get_tunnel_peers(host, tunnel_type, network_ids=None)`` - per overlay network of
  ``tunnel_type`` with ports bound on ``host`` (or per network of ``network_ids``), the tunnel
  endpoints (``tunneling_ip`` of the reporting agent) of the *other* hosts that have ports
  bound on it - a unicast flooding list, as l2population would compute it;
* ``get_existing_ports(port_ids)`` - which of these ports still exist at all (an agent removes
  the VIFs of deleted ports, and only those);
* ``security_group_rules_for_devices(port_ids)`` (1.1) - per port what its agent enforces:
  port security on/off, MAC, fixed IPs, allowed address pairs, and its groups' rules with
  every remote group expanded into its members' addresses
  (:func:`stackcore.network.security_groups.rules_for_ports`); ports that no longer exist
  are left out;
* ``update_device_up(port_id, host)`` / ``update_device_down(port_id, host)`` - the agent wired
  (or unwired) the port: its status becomes ``ACTIVE`` (``DOWN``). Ignored, with the port's
  status returned unchanged, when the port is bound to another host (it moved meanwhile) or is
  in ``ERROR``; an administratively down port never becomes ``ACTIVE``. ``None`` when the port
  is gone. Status changes bump the port's revision; they do not call the mechanism drivers.

Every method takes and returns JSON types only, so the in-process and the oslo.messaging
transports behave alike. The agents poll (level-triggered), so a restarted agent resyncs by
asking again. One notification exists, to cut the wait, never to carry state: after a
security group, rule or membership change the server casts ``security_groups_changed()`` to
every agent (topic ``network.agent-notify``, server ``<agent type>.<host>``,
:func:`notify_security_groups_changed`), which then runs its next pass at once. A lost
notification only delays the change to the agent's next periodic pass.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from stackcore import exception, validate
from stackcore.network.contracts import mechanism_driver as mech_api
from stackcore.rpc import Target, Transport

if TYPE_CHECKING:
    from oslo_config import cfg
    from sqlalchemy.orm import Session

    from stackcore.db import api as db_api
    from stackcore.network import models as m
    from stackcore.network.ml2.managers import MechanismManager

LOG = logging.getLogger(__name__)

TOPIC = "network.agents"
#: API version served; bump the minor number when adding a method or an optional argument.
#: 1.1: security_group_rules_for_devices
VERSION = "1.1"
#: Where agents listen for notifications (server ``<agent type>.<host>``).
NOTIFY_TOPIC = "network.agent-notify"
NOTIFY_VERSION = "1.0"

ACTIVE, DOWN, ERROR = "ACTIVE", "DOWN", "ERROR"


def _bottom_levels(session: Session, where: Sequence[Any]) -> list[tuple[m.Port, str,
                                                                          m.NetworkSegment]]:
    """Bound ports matching ``where`` with the driver and segment of their bottom level."""
    import sqlalchemy as sa

    from stackcore.network import models as m
    bottom = (
        sa.select(m.PortBindingLevel.port_id,
                  sa.func.max(m.PortBindingLevel.level).label("level"))
        .group_by(m.PortBindingLevel.port_id).subquery()
    )
    rows = session.execute(
        sa.select(m.Port, m.PortBindingLevel.driver, m.NetworkSegment)
        .join(bottom, bottom.c.port_id == m.Port.id)
        .join(m.PortBindingLevel, sa.and_(m.PortBindingLevel.port_id == m.Port.id,
                                          m.PortBindingLevel.level == bottom.c.level))
        .join(m.NetworkSegment, m.NetworkSegment.id == m.PortBindingLevel.segment_id)
        .where(m.Port.vif_type.not_in((mech_api.VIF_TYPE_UNBOUND,
                                       mech_api.VIF_TYPE_BINDING_FAILED)), *where)
        .order_by(m.Port.id)
    ).all()
    return [(port, driver, segment) for port, driver, segment in rows]


class AgentRPCEndpoint:
    """Server side (runs in the ``network`` service): answers the agents from the ML2
    database. ``mechanism_manager`` tells which driver serves which agent type."""

    target = Target(TOPIC, version=VERSION)

    def __init__(self, conf: cfg.ConfigOpts, db: db_api.Database,
                 mechanism_manager: MechanismManager) -> None:
        self.conf = conf
        self.db = db
        self.mechanism_manager = mechanism_manager

    def init_host(self) -> None:
        """Nothing to reconcile: every method reads or sets state idempotently."""

    def periodic_tasks(self) -> None:
        """Nothing periodic: the agents poll."""

    def _agent_type_of(self, driver_name: str) -> str | None:
        """The agent type the mechanism driver ``driver_name`` binds for (None: no agent)."""
        for name, driver in self.mechanism_manager.drivers:
            if name == driver_name:
                return getattr(driver, "AGENT_TYPE", None)
        return None

    # --- queries --------------------------------------------------------------------------

    def get_devices_for_host(self, host: str, agent_type: str) -> list[dict[str, Any]]:
        """Ports bound on ``host`` for ``agent_type`` agents, sorted by port id."""
        import sqlalchemy as sa

        from stackcore.network import models as m
        host = validate.name("host", host)
        agent_type = validate.name("agent_type", agent_type)
        drivers = {name for name, _ in self.mechanism_manager.drivers
                   if self._agent_type_of(name) == agent_type}
        if not drivers:
            return []
        with self.db.transaction() as session:
            rows = _bottom_levels(session, [m.Port.host == host,
                                            m.PortBindingLevel.driver.in_(sorted(drivers))])
            ips: dict[str, list[dict[str, str]]] = {}
            if rows:
                for port_id, subnet_id, address in session.execute(
                    sa.select(m.IPAllocation.port_id, m.IPAllocation.subnet_id,
                              m.IPAllocation.ip_address)
                    .where(m.IPAllocation.port_id.in_([p.id for p, _, _ in rows]))
                    .order_by(m.IPAllocation.subnet_id, m.IPAllocation.ip_address)
                ):
                    ips.setdefault(port_id, []).append(
                        {"subnet_id": subnet_id, "ip_address": address})
            return [{
                "port_id": port.id,
                "network_id": port.network_id,
                "mac_address": port.mac_address,
                "fixed_ips": ips.get(port.id, []),
                "admin_state_up": port.admin_state_up,
                "status": port.status,
                "device_owner": port.device_owner,
                "segment": {
                    "id": segment.id,
                    "network_type": segment.network_type,
                    "physical_network": segment.physical_network,
                    "segmentation_id": segment.segmentation_id,
                    "mtu": segment.mtu,
                },
            } for port, _, segment in rows]

    def get_tunnel_peers(self, host: str, tunnel_type: str,
                         network_ids: list[str] | None = None) -> dict[str, list[str]]:
        """``{network_id: sorted tunnel endpoint IPs of the other hosts}``, for every
        ``tunnel_type`` network with ports bound on ``host`` (or for ``network_ids``)."""
        import sqlalchemy as sa

        from stackcore.network import models as m
        host = validate.name("host", host)
        tunnel_type = validate.name("tunnel_type", tunnel_type)
        with self.db.transaction() as session:
            if network_ids is None:
                wanted = {seg.network_id for _, _, seg in _bottom_levels(
                    session, [m.Port.host == host, m.NetworkSegment.network_type == tunnel_type])}
            else:
                if not isinstance(network_ids, list):
                    raise exception.Invalid("network_ids", "must be a list of network ids",
                                            network_ids)
                wanted = {validate.name("network_ids[]", n) for n in network_ids}
            peers: dict[str, set[str]] = {net: set() for net in wanted}
            if not wanted:
                return {}
            remote = _bottom_levels(session, [
                m.Port.network_id.in_(sorted(wanted)), m.Port.host != host,
                m.NetworkSegment.network_type == tunnel_type])
            needed = {(port.host, agent_type) for port, driver, _ in remote
                      if (agent_type := self._agent_type_of(driver)) is not None}
            endpoints: dict[tuple[str, str], str] = {}
            if needed:
                for row in session.execute(
                    sa.select(m.Agent).where(m.Agent.host.in_(sorted({h for h, _ in needed})))
                ).scalars():
                    config = row.configurations or {}
                    ip = config.get("tunneling_ip")
                    if ip and tunnel_type in (config.get("tunnel_types") or []):
                        endpoints[(row.host, row.agent_type)] = str(ip)
            for port, driver, _ in remote:
                ip = endpoints.get((port.host, self._agent_type_of(driver) or ""))
                if ip is not None:
                    peers[port.network_id].add(ip)
        return {net: sorted(ips) for net, ips in sorted(peers.items())}

    def get_existing_ports(self, port_ids: list[str]) -> list[str]:
        """The ids of ``port_ids`` that exist (bound or not), sorted."""
        import sqlalchemy as sa

        from stackcore.network import models as m
        if not isinstance(port_ids, list):
            raise exception.Invalid("port_ids", "must be a list of port ids", port_ids)
        ids = sorted({validate.name("port_ids[]", p) for p in port_ids})
        if not ids:
            return []
        with self.db.transaction() as session:
            return sorted(session.execute(
                sa.select(m.Port.id).where(m.Port.id.in_(ids))).scalars())

    def security_group_rules_for_devices(self, port_ids: list[str]) -> dict[str, Any]:
        """What the agents enforce for each of ``port_ids`` (see the module doc)."""
        from stackcore.network import security_groups
        if not isinstance(port_ids, list) or len(port_ids) > 100000:
            raise exception.Invalid("port_ids", "must be a list of port ids", None)
        ids = [validate.name(f"port_ids[{i}]", p) for i, p in enumerate(port_ids)]
        with self.db.transaction() as session:
            return security_groups.rules_for_ports(session, ids)

    # --- status ---------------------------------------------------------------------------

    def update_device_up(self, port_id: str, host: str) -> str | None:
        """The agent on ``host`` wired ``port_id``: ACTIVE (see the module doc)."""
        return self._set_status(port_id, host, ACTIVE)

    def update_device_down(self, port_id: str, host: str) -> str | None:
        """The agent on ``host`` no longer passes ``port_id``'s traffic: DOWN."""
        return self._set_status(port_id, host, DOWN)

    def _set_status(self, port_id: str, host: str, status: str) -> str | None:
        from stackcore.network import models as m
        port_id = validate.name("port_id", port_id)
        host = validate.name("host", host)
        with self.db.transaction() as session:
            row = session.get(m.Port, port_id, with_for_update=True)
            if row is None:
                return None
            if row.host != host or row.status == ERROR:
                LOG.debug("ignoring %s of port %s from host %s (bound to %r, status %s)",
                          status, port_id, host, row.host, row.status)
                return row.status
            if status == ACTIVE and not row.admin_state_up:
                status = DOWN
            if row.status != status:
                row.status = status
                row.revision += 1
            return row.status


class AgentRPCAPI:
    """Client side, used by the L2 agents (over any transport)."""

    VERSION = VERSION

    def __init__(self, transport: Transport) -> None:
        self._client = transport.client(Target(TOPIC, version=self.VERSION))

    def get_devices_for_host(self, host: str, agent_type: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._client.call(
            "get_devices_for_host", host=host, agent_type=agent_type)
        return result

    def get_tunnel_peers(self, host: str, tunnel_type: str,
                         network_ids: Iterable[str] | None = None) -> dict[str, list[str]]:
        result: dict[str, list[str]] = self._client.call(
            "get_tunnel_peers", host=host, tunnel_type=tunnel_type,
            network_ids=None if network_ids is None else sorted(network_ids))
        return result

    def get_existing_ports(self, port_ids: Iterable[str]) -> list[str]:
        result: list[str] = self._client.call("get_existing_ports", port_ids=sorted(port_ids))
        return result

    def security_group_rules_for_devices(self, port_ids: Iterable[str]
                                         ) -> dict[str, dict[str, Any]]:
        result: dict[str, dict[str, Any]] = self._client.call(
            "security_group_rules_for_devices", port_ids=sorted(port_ids))
        return result

    def update_device_up(self, port_id: str, host: str) -> str | None:
        result: str | None = self._client.call("update_device_up", port_id=port_id, host=host)
        return result

    def update_device_down(self, port_id: str, host: str) -> str | None:
        result: str | None = self._client.call("update_device_down", port_id=port_id,
                                               host=host)
        return result


class AgentNotifyEndpoint:
    """Agent side: what the server's notifications call (``wake`` runs the agent's next
    pass now)."""

    def __init__(self, agent_type: str, host: str, wake: Callable[[], None]) -> None:
        self.target = Target(NOTIFY_TOPIC, server=f"{agent_type}.{host}",
                             version=NOTIFY_VERSION)
        self._wake = wake

    def security_groups_changed(self) -> None:
        self._wake()


def notify_security_groups_changed(db: db_api.Database, transport: Transport) -> None:
    """Tell every registered agent that security groups changed (best effort: an agent that
    does not listen applies the change at its next periodic pass)."""
    import sqlalchemy as sa

    from stackcore.network import models as m
    with db.transaction() as session:
        agents = session.execute(sa.select(m.Agent.agent_type, m.Agent.host)).all()
    for agent_type, host in agents:
        target = Target(NOTIFY_TOPIC, server=f"{agent_type}.{host}", version=NOTIFY_VERSION)
        try:
            transport.client(target).cast("security_groups_changed")
        except Exception as err:  # noqa: BLE001 - the periodic pass applies it anyway
            LOG.debug("notifying %s agent on %s failed: %s", agent_type, host, err)
