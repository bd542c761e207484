"""The RPC between the server and the L3 agents.

Agent -> server, topic ``network.l3`` (API 1.1; Neutron's ``q-l3-plugin``), served by the
``network`` service:

* ``sync_routers(host, router_ids=None)`` - the routers the agent on ``host`` serves, each
  with its gateway port (address, external subnet and its gateway), its interface ports
  (address, subnet CIDR) and its associated floating IPs; only those of ``router_ids`` when
  given (a notified change). **One agent per router**: a router nobody serves yet (``routers.
  host`` empty) or whose agent is dead (no report for ``[network] agent_down_time``) is
  claimed by the asking agent with a conditional ``UPDATE ... WHERE host = <what was read>``,
  so two agents asking at once never both get it. The router's ports are then bound to the
  agent's host, so that host's L2 agent wires them like any other port.
* ``update_router_status(host, router_id, status, fault=None, floating_ips=())`` (1.1) -
  what the agent made of the router in its last pass: ``ACTIVE`` (served; each of
  ``floating_ips``, ``{"id", "fixed_ip_address"}`` as the agent applied them, becomes
  ``ACTIVE``) or ``ERROR`` (``fault`` says why; those floating IPs become ``ERROR``). Taken
  only from the agent serving the router, and a floating IP's status only while it is still
  associated as reported, so a report overtaken by a change (a re-association, the router
  moving to another agent) cannot mark the new state as applied. Neutron's agents report
  floating IP statuses the same way (``update_floatingip_statuses``).

Server -> agents, topic ``network.l3_agent`` aimed at the owning agent's host (a cast,
:class:`L3AgentNotifier`): ``routers_updated(router_ids)`` after a router, one of its
interfaces or floating IPs changed; a router nobody serves yet is announced to every L3 agent
(one of them claims it). A lost cast costs latency only: the agents resync every ``[l3]
resync_interval`` seconds.

Every method takes and returns JSON types only.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from stackcore import exception, validate
from stackcore.rpc import Target, Transport

if TYPE_CHECKING:
    from oslo_config import cfg
    from sqlalchemy.orm import Session

    from stackcore.db import api as db_api
    from stackcore.network.ml2.plugin import ML2Plugin

LOG = logging.getLogger(__name__)

TOPIC = "network.l3"
AGENT_TOPIC = "network.l3_agent"
VERSION = "1.1"
#: the agents' own API (``routers_updated``), versioned apart from the server's
AGENT_VERSION = "1.0"
AGENT_TYPE = "L3 agent"
NETNS_PREFIX = "qrouter-"
DEVICE_OWNER_GATEWAY = "network:router_gateway"
DEVICE_OWNER_INTERFACE = "network:router_interface"
DEVICE_OWNER_FLOATINGIP = "network:floatingip"
#: a router's recorded fault is cut to this many characters (an agent's error text is unbounded)
_FAULT_CHARS = 4000


def netns_name(router_id: str) -> str:
    """The namespace of router ``router_id`` on its agent's host (Neutron's name)."""
    return NETNS_PREFIX + router_id


def _ipv4(address: str) -> bool:
    return ipaddress.ip_address(address).version == 4


def router_info(session: Session, router: Any) -> dict[str, Any]:
    """What the agent needs of ``router`` (module doc), read in ``session``."""
    import sqlalchemy as sa

    from stackcore.network import models as m
    ports = session.execute(sa.select(m.Port).where(m.Port.device_id == router.id)
                            .order_by(m.Port.id)).scalars().all()
    allocations = session.execute(
        sa.select(m.IPAllocation, m.Subnet).join(m.Subnet,
                                                 m.Subnet.id == m.IPAllocation.subnet_id)
        .where(m.IPAllocation.port_id.in_([p.id for p in ports]))
        .order_by(m.IPAllocation.subnet_id, m.IPAllocation.ip_address)).all()
    mtus = {n.id: n.mtu for n in session.execute(sa.select(m.Network).where(
        m.Network.id.in_({p.network_id for p in ports}))).scalars()}
    by_port: dict[str, list[tuple[Any, Any]]] = {}
    for allocation, subnet in allocations:
        by_port.setdefault(allocation.port_id, []).append((allocation, subnet))

    def port_out(port: Any) -> dict[str, Any] | None:
        found = [(a, s) for a, s in by_port.get(port.id, []) if _ipv4(a.ip_address)]
        if not found:
            return None
        allocation, subnet = found[0]
        return {"port_id": port.id, "mac_address": port.mac_address,
                "network_id": port.network_id, "mtu": mtus.get(port.network_id, 0),
                "subnet_id": subnet.id, "cidr": subnet.cidr,
                "ip_address": allocation.ip_address, "subnet_gateway_ip": subnet.gateway_ip,
                "vif_type": port.vif_type}

    gateway = None
    interfaces = []
    for port in ports:
        out = port_out(port)
        if out is None:
            continue
        if port.id == router.gw_port_id:
            gateway = out
        elif port.device_owner == DEVICE_OWNER_INTERFACE:
            interfaces.append(out)
    floating = session.execute(
        sa.select(m.FloatingIP).where(m.FloatingIP.router_id == router.id,
                                      m.FloatingIP.fixed_ip_address.is_not(None))
        .order_by(m.FloatingIP.floating_ip_address)).scalars().all()
    return {
        "id": router.id, "name": router.name, "admin_state_up": router.admin_state_up,
        "enable_snat": router.enable_snat, "gateway": gateway,
        "interfaces": sorted(interfaces, key=lambda i: (i["cidr"], i["port_id"])),
        "floating_ips": [{"id": f.id, "floating_ip_address": f.floating_ip_address,
                          "fixed_ip_address": f.fixed_ip_address} for f in floating]
        if gateway is not None else [],
    }


class L3RPCEndpoint:
    """Server side (in the ``network`` service), over the database and the ML2 plugin."""

    target = Target(TOPIC, version=VERSION)

    def __init__(self, conf: cfg.ConfigOpts, db: db_api.Database, plugin: ML2Plugin) -> None:
        self.conf = conf
        self.db = db
        self.plugin = plugin

    def init_host(self) -> None:
        """Nothing to reconcile: the agents ask."""

    def periodic_tasks(self) -> None:
        """Nothing periodic."""

    def _dead_hosts(self, session: Session) -> set[str]:
        """Hosts whose L3 agent stopped reporting (their routers are up for grabs)."""
        import sqlalchemy as sa

        from stackcore.network import models as m
        from stackcore.network.agents.state import agent_dict
        rows = session.execute(sa.select(m.Agent).where(m.Agent.agent_type == AGENT_TYPE))
        return {r.host for r in rows.scalars()
                if not agent_dict(r, self.conf.network.agent_down_time)["alive"]}

    def _claim(self, host: str) -> None:
        """Claim every unserved router (and those of dead agents) for ``host``; each with a
        conditional UPDATE on the host read, so a concurrent claim makes this one a no-op."""
        import sqlalchemy as sa

        from stackcore.network import models as m
        with self.db.transaction() as session:
            dead = self._dead_hosts(session) - {host}
            candidates = session.execute(
                sa.select(m.Router.id, m.Router.host).where(
                    sa.or_(m.Router.host == "", m.Router.host.in_(dead)))).all()
        for router_id, was in candidates:
            with self.db.transaction() as session:
                claimed = session.execute(
                    sa.update(m.Router).where(m.Router.id == router_id, m.Router.host == was)
                    .values(host=host, revision=m.Router.revision + 1)
                ).rowcount  # type: ignore[attr-defined]
            if claimed:
                LOG.info("router %s is now served by the L3 agent on %s%s", router_id, host,
                         f" (was {was}, dead)" if was else "")

    def _bind(self, host: str, router_ids: Sequence[str]) -> None:
        """Bind the routers' gateway and interface ports to ``host`` (its L2 agent wires
        them); ports already bound there are left alone."""
        if not router_ids:
            return
        import sqlalchemy as sa

        from stackcore.network import models as m
        with self.db.transaction() as session:
            moving = session.execute(sa.select(m.Port.id).where(
                m.Port.device_id.in_(list(router_ids)),
                m.Port.device_owner.in_([DEVICE_OWNER_GATEWAY, DEVICE_OWNER_INTERFACE]),
                m.Port.host != host)).scalars().all()
        for port_id in moving:
            self.plugin.update_port(port_id, {"host": host})

    def sync_routers(self, host: str, router_ids: list[str] | None = None
                     ) -> list[dict[str, Any]]:
        import sqlalchemy as sa

        from stackcore.network import models as m
        host = validate.identifier("host", host, 255)
        if router_ids is not None:
            router_ids = [validate.uuid_like(f"router_ids[{i}]", r)
                          for i, r in enumerate(router_ids)]
        self._claim(host)
        with self.db.transaction() as session:
            query = sa.select(m.Router.id).where(m.Router.host == host)
            if router_ids is not None:
                query = query.where(m.Router.id.in_(router_ids))
            mine = sorted(session.execute(query).scalars())
        self._bind(host, mine)
        with self.db.transaction() as session:
            rows = session.execute(sa.select(m.Router).where(m.Router.id.in_(mine))
                                   .order_by(m.Router.id)).scalars().all()
            return [router_info(session, row) for row in rows if row.host == host]


    def update_router_status(self, host: str, router_id: str, status: str,
                             fault: str | None = None,
                             floating_ips: Sequence[Mapping[str, str]] = ()) -> bool:
        """(module doc) True when the report was taken, False when ``host`` does not serve
        ``router_id`` (any more)."""
        import sqlalchemy as sa

        from stackcore.network import models as m
        host = validate.identifier("host", host, 255)
        router_id = validate.uuid_like("router_id", router_id)
        status = validate.choice("status", status, ("ACTIVE", "ERROR"))
        if fault is not None and not isinstance(fault, str):
            raise exception.Invalid("fault", "must be a string or null", fault)
        applied: list[tuple[str, str]] = []
        for i, fip in enumerate(floating_ips):
            if not isinstance(fip, Mapping):
                raise exception.Invalid(f"floating_ips[{i}]", "must be an object", fip)
            try:
                fixed = str(ipaddress.ip_address(str(fip.get("fixed_ip_address"))))
            except ValueError:
                raise exception.Invalid(f"floating_ips[{i}].fixed_ip_address",
                                        "must be an IP address",
                                        fip.get("fixed_ip_address")) from None
            applied.append((validate.uuid_like(f"floating_ips[{i}].id", fip.get("id")), fixed))
        with self.db.transaction() as session:
            taken = session.execute(
                sa.update(m.Router).where(m.Router.id == router_id, m.Router.host == host)
                .values(status=status,
                        fault=None if status == "ACTIVE" else (fault or "")[:_FAULT_CHARS])
            ).rowcount  # type: ignore[attr-defined]
            if not taken:
                return False
            for fip_id, fixed in applied:
                session.execute(sa.update(m.FloatingIP).where(
                    m.FloatingIP.id == fip_id, m.FloatingIP.router_id == router_id,
                    m.FloatingIP.fixed_ip_address == fixed).values(status=status))
        return True


class L3RPCAPI:
    """Client side, used by the L3 agents. Each call asks for the API version that brought
    its method (``sync_routers`` 1.0, ``update_router_status`` 1.1), so a newer agent keeps
    serving routers from a server one version older (rolling upgrades: the server first)."""

    VERSION = "1.0"

    def __init__(self, transport: Transport) -> None:
        self._client = transport.client(Target(TOPIC, version=self.VERSION))

    def sync_routers(self, host: str, router_ids: list[str] | None = None
                     ) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._client.call("sync_routers", host=host,
                                                         router_ids=router_ids)
        return result

    def update_router_status(self, host: str, router_id: str, status: str,
                             fault: str | None = None,
                             floating_ips: Sequence[Mapping[str, str]] = ()) -> bool:
        return bool(self._client.prepare(version="1.1").call(
            "update_router_status", host=host, router_id=router_id, status=status, fault=fault,
            floating_ips=[dict(f) for f in floating_ips]))


class L3AgentNotifier:
    """Server side of ``routers_updated``. Never raises: a notification is an optimisation
    (the agents resync periodically), never a reason to fail an API call."""

    def __init__(self, db: db_api.Database, transport: Transport) -> None:
        self.db = db
        self._client = transport.client(Target(AGENT_TOPIC, version=AGENT_VERSION))

    def hosts(self, router_ids: Sequence[str]) -> dict[str, str]:
        """router id -> the host serving it ("" when nobody does yet), read now (a delete
        reads it before the row goes)."""
        import sqlalchemy as sa

        from stackcore.network import models as m
        with self.db.transaction() as session:
            return {str(i): str(h) for i, h in session.execute(
                sa.select(m.Router.id, m.Router.host).where(m.Router.id.in_(list(router_ids))))}

    def routers_updated(self, hosts: Mapping[str, str]) -> None:
        """Tell each router's agent (``hosts``: router id -> host, "" for every agent)."""
        import sqlalchemy as sa

        from stackcore.network import models as m
        targets: dict[str, set[str]] = {}
        try:
            if any(not h for h in hosts.values()):
                with self.db.transaction() as session:
                    every = set(session.execute(sa.select(m.Agent.host).where(
                        m.Agent.agent_type == AGENT_TYPE)).scalars())
            else:
                every = set()
        except Exception:
            LOG.warning("cannot list L3 agents to notify of routers %s", sorted(hosts),
                        exc_info=True)
            return
        for router_id, host in hosts.items():
            for target in ({host} if host else every):
                targets.setdefault(target, set()).add(router_id)
        for host, ids in sorted(targets.items()):
            try:
                self._client.prepare(server=host).cast("routers_updated",
                                                       router_ids=sorted(ids))
            except Exception as err:  # noqa: BLE001 - see the class doc
                LOG.debug("L3 agent on %s not notified of routers %s: %s", host, sorted(ids),
                          err)
