"""Routers and floating IPs on ``cloud.network`` (Neutron's ``router`` extension: L3).

A router belongs to a project. Its **external gateway** (``{"network_id": ...}``) is a port on
an external network (``router_external``, made by an admin: a flat or VLAN provider network)
with an IPv4 address of it; with ``enable_snat`` (the default) the router's internal subnets
leave through it with that address as their source. Its **interfaces** are ports holding the
gateway address of internal subnets of its project (IPv4, with a gateway, not external, not
overlapping another subnet of the router). A router's ports are the ports whose ``device_id``
is the router's id; they are the server's (``network:router_*``): ``delete_port`` refuses them.

A **floating IP** is an address of an external network (held by a ``network:floatingip`` port)
that, associated with a port, is translated 1:1 to the port's fixed IPv4 address by the router
that has a gateway on that external network and an interface on the port's subnet (none: the
external network is not reachable from the port, refused). Deleting the port, or taking the
address away from it, disassociates it.

One L3 agent serves a router (``host``; see :mod:`stackcore.network.l3.rpc`); every change is
cast to it (``routers_updated``). Every argument is checked before anything is written; a
failure after a port was made removes it again: nothing half-made remains.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import ipaddress
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from stackcore import exception, schemas, validate
from stackcore import schemas as s
from stackcore.db import paging
from stackcore.network import notify
from stackcore.network.l3.rpc import (
    DEVICE_OWNER_FLOATINGIP,
    DEVICE_OWNER_GATEWAY,
    DEVICE_OWNER_INTERFACE,
    L3AgentNotifier,
)
from stackcore.project import policy

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from stackcore.db import api as db_api
    from stackcore.network.ml2.plugin import ML2Plugin

LOG = logging.getLogger(__name__)

ROUTER_OWNERS = (DEVICE_OWNER_GATEWAY, DEVICE_OWNER_INTERFACE)
#: the project of the ports the server holds for routers' gateways and floating IPs (Neutron
#: gives them no project): they count in no project's ``ports`` quota
SERVICE_PROJECT = ""
_UNSET: Any = object()

GATEWAY_SCHEMA = s.obj({"network_id": s.UUID, "enable_snat": s.BOOLEAN},
                       required=["network_id"])


@dataclasses.dataclass(frozen=True)
class RouterInterface:
    router_id: str
    subnet_id: str
    port_id: str
    ip_address: str


@dataclasses.dataclass(frozen=True)
class Router:
    id: str
    name: str
    admin_state_up: bool
    status: str
    #: ``{"network_id", "enable_snat", "external_fixed_ips": [{"subnet_id", "ip_address"}]}``
    external_gateway: Mapping[str, Any] | None
    interfaces: tuple[RouterInterface, ...]
    host: str  # the L3 agent serving it ("" until one claims it)
    created_at: datetime.datetime
    project_id: str = "admin"
    #: why the serving L3 agent could not serve it (``status`` ``ERROR``), else None
    fault: str | None = None


@dataclasses.dataclass(frozen=True)
class FloatingIP:
    id: str
    floating_network_id: str
    floating_ip_address: str
    port_id: str | None
    fixed_ip_address: str | None
    router_id: str | None
    status: str
    created_at: datetime.datetime
    project_id: str = "admin"


def _fip_view(row: Any) -> FloatingIP:
    # the status is the serving L3 agent's word (DOWN until it applied the association):
    # an association the data plane does not carry yet is not reported as working
    return FloatingIP(row.id, row.floating_network_id, row.floating_ip_address,
                      row.fixed_port_id, row.fixed_ip_address, row.router_id,
                      row.status, row.created_at, row.project_id)


def _ipv4(address: str) -> bool:
    return ipaddress.ip_address(address).version == 4


def _sorted_ids(values: Sequence[str]) -> str:
    return ", ".join(sorted(values))


def attach(plugin: ML2Plugin, db: db_api.Database,
           notifier: L3AgentNotifier | None) -> ML2Plugin:
    """What the ML2 plugin does for L3: deleting a port first disassociates its floating IPs,
    changing its fixed IPs disassociates those of addresses it lost (their routers' agents
    are told). Returns ``plugin``."""
    delete_port = plugin.delete_port

    @functools.wraps(delete_port)
    def delete_port_and_disassociate(port_id: str, *args: Any, **kwargs: Any) -> None:
        import sqlalchemy as sa

        from stackcore.network import models as m
        with db.read() as session:   # most ports have none: no write transaction then
            associated = session.execute(sa.select(m.FloatingIP.id).where(
                m.FloatingIP.fixed_port_id == port_id).limit(1)).first() is not None
        routers: list[str] = []
        if associated:
            with db.transaction() as session:
                routers = sorted({r for r in session.execute(
                    sa.select(m.FloatingIP.router_id).where(
                        m.FloatingIP.fixed_port_id == port_id)).scalars() if r})
                session.execute(sa.update(m.FloatingIP)
                                .where(m.FloatingIP.fixed_port_id == port_id)
                                .values(fixed_port_id=None, fixed_ip_address=None,
                                        router_id=None, status="DOWN",
                                        revision=m.FloatingIP.revision + 1))
        hosts = notifier.hosts(routers) if notifier is not None and routers else {}
        delete_port(port_id, *args, **kwargs)
        if hosts and notifier is not None:
            notifier.routers_updated(hosts)

    update_port = plugin.update_port

    @functools.wraps(update_port)
    def update_port_and_disassociate(port_id: str, changes: Mapping[str, Any], *args: Any,
                                     **kwargs: Any) -> dict[str, Any]:
        result: dict[str, Any] = update_port(port_id, changes, *args, **kwargs)
        if "fixed_ips" not in changes:
            return result
        import sqlalchemy as sa

        from stackcore.network import models as m
        kept = [ip["ip_address"] for ip in result.get("fixed_ips", [])]
        stale = sa.and_(m.FloatingIP.fixed_port_id == port_id,
                        m.FloatingIP.fixed_ip_address.not_in(kept))
        with db.read() as session:
            if session.execute(sa.select(m.FloatingIP.id).where(stale).limit(1)).first() \
                    is None:
                return result
        with db.transaction() as session:   # an address the port no longer has
            routers = sorted({r for r in session.execute(
                sa.select(m.FloatingIP.router_id).where(stale)).scalars() if r})
            session.execute(sa.update(m.FloatingIP).where(stale).values(
                fixed_port_id=None, fixed_ip_address=None, router_id=None, status="DOWN",
                revision=m.FloatingIP.revision + 1))
        if routers and notifier is not None:
            notifier.routers_updated(notifier.hosts(routers))
        return result

    plugin.delete_port = delete_port_and_disassociate  # type: ignore[method-assign]
    plugin.update_port = update_port_and_disassociate  # type: ignore[method-assign]
    return plugin


class RoutersMixin:
    """``cloud.network``'s router and floating IP methods (see the module doc)."""

    db: Any
    transport: Any
    plugin: ML2Plugin

    if TYPE_CHECKING:  # provided by NetworkAPI and ScopedAPI
        project_id: str
        quotas: Any

        def _sees_all(self) -> bool: ...

        def _authorize(self, rule: str, project_id: str | None = None) -> None: ...

        def _visible_subnet(self, subnet_id: str) -> dict[str, Any]: ...

        def _visible_port(self, port_id: str) -> dict[str, Any]: ...

        def _own(self, found: Mapping[str, Any], what: str, rule: str) -> None: ...

    _l3: L3AgentNotifier | None = None

    # --- helpers --------------------------------------------------------------------------

    def _l3_notify(self, router_ids: Sequence[str],
                   hosts: Mapping[str, str] | None = None) -> None:
        if self.transport is None or not router_ids:
            return
        if self._l3 is None:
            self._l3 = L3AgentNotifier(self.db, self.transport)
        found = dict(hosts) if hosts is not None else self._l3.hosts(router_ids)
        self._l3.routers_updated({r: found.get(r, "") for r in router_ids})

    def _router_row(self, session: Session, router_id: str, lock: bool = False) -> Any:
        from stackcore.network import models as m
        row = session.get(m.Router, router_id, with_for_update=lock or None)
        if row is None or not (self._sees_all() or row.project_id == self.project_id):
            raise exception.NotFound("router", router_id)
        return row

    def _router_view(self, session: Session, row: Any) -> Router:
        import sqlalchemy as sa

        from stackcore.network import models as m
        found = session.execute(
            sa.select(m.Port.id, m.Port.device_owner, m.Port.network_id,
                      m.IPAllocation.subnet_id, m.IPAllocation.ip_address)
            .join(m.IPAllocation, m.IPAllocation.port_id == m.Port.id)
            .where(m.Port.device_id == row.id, m.Port.device_owner.in_(ROUTER_OWNERS))
            .order_by(m.IPAllocation.subnet_id, m.IPAllocation.ip_address)).all()
        gateway = None
        if row.gw_port_id is not None:
            gw = [f for f in found if f.id == row.gw_port_id]
            network = session.execute(sa.select(m.Port.network_id).where(
                m.Port.id == row.gw_port_id)).scalar()
            gateway = {"network_id": network, "enable_snat": row.enable_snat,
                       "external_fixed_ips": [{"subnet_id": f.subnet_id,
                                               "ip_address": f.ip_address} for f in gw]}
        interfaces = tuple(RouterInterface(row.id, f.subnet_id, f.id, f.ip_address)
                           for f in found if f.device_owner == DEVICE_OWNER_INTERFACE)
        return Router(row.id, row.name, row.admin_state_up, row.status, gateway, interfaces,
                      row.host, row.created_at, row.project_id, row.fault)

    def _external_network(self, field: str, network_id: str) -> dict[str, Any]:
        """An external network (every project may use one) with an IPv4 subnet; NotFound
        when it does not exist or the caller cannot see a non-external one, Invalid naming
        ``field`` otherwise."""
        try:
            network = self.plugin.get_network(network_id)
        except exception.NotFound:
            raise exception.NotFound("network", network_id) from None
        if not network["router:external"]:
            if not (self._sees_all() or network["project_id"] == self.project_id
                    or network["shared"]):
                raise exception.NotFound("network", network_id)
            raise exception.Invalid(field, f"network {network_id} is not an external network "
                                    "(router_external)", network_id)
        if not self._ipv4_subnet(network_id):
            raise exception.Invalid(field, f"external network {network_id} has no IPv4 subnet",
                                    network_id)
        return network

    def _ipv4_subnet(self, network_id: str) -> str | None:
        return next((sub["id"] for sub in self.plugin.list_subnets(network_id)
                     if sub["ip_version"] == 4), None)

    def _gateway_arg(self, value: Any) -> tuple[dict[str, Any], bool] | None:
        if value is None:
            return None
        if not isinstance(value, Mapping) or "network_id" not in value or \
                set(value) - {"network_id", "enable_snat"}:
            raise exception.Invalid("external_gateway", "must be {'network_id': ..., "
                                    "'enable_snat'?: bool}", value)
        network_id = validate.uuid_like("external_gateway.network_id", value["network_id"])
        snat = value.get("enable_snat", True)
        if not isinstance(snat, bool):
            raise exception.Invalid("external_gateway.enable_snat", "must be True or False",
                                    snat)
        return self._external_network("external_gateway.network_id", network_id), snat

    def _service_port(self, network_id: str, device_id: str, owner: str, host: str = ""
                      ) -> dict[str, Any]:
        """A port the server holds on external network ``network_id`` (a router gateway, a
        floating IP), with an address of its first IPv4 subnet."""
        from stackcore.network.ml2.plugin import Owner
        subnet = self._ipv4_subnet(network_id)
        return self.plugin.create_port(network_id, {
            "name": "", "mac_address": None, "fixed_ips": [{"subnet_id": subnet}],
            "host": host, "vnic_type": "normal", "profile": {}, "device_id": device_id,
            "device_owner": owner, "delete_with_device": False, "admin_state_up": True,
            "security_groups": [], "port_security_enabled": False}, Owner(SERVICE_PROJECT))

    def _floating_ips_via(self, session: Session, router_id: str,
                          subnet_id: str | None = None) -> list[str]:
        import sqlalchemy as sa

        from stackcore.network import models as m
        query = sa.select(m.FloatingIP.id).where(m.FloatingIP.router_id == router_id,
                                                 m.FloatingIP.fixed_port_id.is_not(None))
        if subnet_id is not None:
            query = query.join(m.IPAllocation, sa.and_(
                m.IPAllocation.port_id == m.FloatingIP.fixed_port_id,
                m.IPAllocation.ip_address == m.FloatingIP.fixed_ip_address)).where(
                m.IPAllocation.subnet_id == subnet_id)
        return sorted(session.execute(query).scalars())

    def _set_gateway(self, router_id: str, network: Mapping[str, Any], snat: bool) -> None:
        """Give the router a gateway port on ``network`` (after removing another one)."""
        from stackcore.network import models as m
        with self.db.transaction() as session:
            row = self._router_row(session, router_id)
            old, host = row.gw_port_id, row.host
        port = self._service_port(network["id"], router_id, DEVICE_OWNER_GATEWAY, host)
        try:
            with self.db.transaction() as session:
                row = session.get(m.Router, router_id, with_for_update=True)
                if row is None:
                    raise exception.NotFound("router", router_id)
                row.gw_port_id = port["id"]
                row.enable_snat = snat
                row.revision += 1
        except BaseException:
            self.plugin.delete_port(port["id"])
            raise
        if old is not None:
            self.plugin.delete_port(old)

    def _clear_gateway(self, router_id: str) -> None:
        with self.db.transaction() as session:
            row = self._router_row(session, router_id, lock=True)
            used = self._floating_ips_via(session, router_id)
            if used:
                raise exception.Conflict(f"router {router_id} translates floating IPs "
                                         f"{_sorted_ids(used)} through its gateway: "
                                         "disassociate them first")
            old, row.gw_port_id = row.gw_port_id, None
            row.revision += 1
        if old is not None:
            self.plugin.delete_port(old)

    # --- routers --------------------------------------------------------------------------

    @schemas.accepts(name=s.string(255, min_length=0),
                     external_gateway=s.optional(GATEWAY_SCHEMA), admin_state_up=s.BOOLEAN)
    @policy.authorize("network:router:create")
    @notify.emits("router", "create")
    def create_router(self, name: str = "", *,
                      external_gateway: Mapping[str, Any] | None = None,
                      admin_state_up: bool = True) -> Router:
        """A router of the caller's project; with ``external_gateway`` (``{"network_id",
        "enable_snat"?}``) a gateway port on that external network (an address of its first
        IPv4 subnet; SNAT on unless ``enable_snat`` is False)."""
        from stackcore.network import models as m
        name = "" if name == "" else validate.name("name", name)
        if not isinstance(admin_state_up, bool):
            raise exception.Invalid("admin_state_up", "must be True or False", admin_state_up)
        gateway = self._gateway_arg(external_gateway)
        router_id = str(uuid.uuid4())
        with self.db.transaction() as session:
            self.quotas.check(session, self.project_id, {"routers": 1})
            session.add(m.Router(id=router_id, name=name, project_id=self.project_id,
                                 admin_state_up=admin_state_up, status="BUILD",
                                 enable_snat=gateway[1] if gateway else True))
        if gateway is not None:
            try:
                self._set_gateway(router_id, gateway[0], gateway[1])
            except BaseException:
                with self.db.transaction() as session:
                    row = session.get(m.Router, router_id)
                    if row is not None:
                        session.delete(row)
                raise
        self._l3_notify([router_id])
        return self.get_router(router_id)

    @schemas.accepts(router_id=s.UUID)
    @policy.authorize("network:router:get")
    def get_router(self, router_id: str) -> Router:
        with self.db.transaction() as session:
            return self._router_view(session, self._router_row(session, router_id))

    @schemas.accepts(all_projects=s.BOOLEAN, **paging.schema(("name", "id")))
    @policy.authorize("network:router:list")
    def list_routers(self, *, all_projects: bool = False, limit: int | None = None,
                     marker: str | None = None, sort_key: str = "name",
                     sort_dir: str = "asc") -> list[Router]:
        """The caller's routers (every project's: ``all_projects``, an admin rule)."""
        import sqlalchemy as sa

        from stackcore.network import models as m
        if all_projects:
            self._authorize("network:router:list:all_projects")
        with self.db.transaction() as session:
            query = sa.select(m.Router)
            if not all_projects:
                query = query.where(m.Router.project_id == self.project_id)
            found = [self._router_view(session, r) for r in session.execute(query).scalars()]
        sort: dict[str, Callable[[Any], Any]] = {"name": lambda r: r.name,
                                                  "id": lambda r: r.id}
        return paging.page_items(found, lambda r: str(r.id), sort, limit=limit,
                                 marker=marker, sort_key=sort_key, sort_dir=sort_dir,
                                 resource="router")

    @schemas.accepts(router_id=s.UUID, name=s.string(255, min_length=0),
                     external_gateway=s.optional(GATEWAY_SCHEMA), admin_state_up=s.BOOLEAN)
    @policy.authorize("network:router:update")
    @notify.emits("router", "update")
    def update_router(self, router_id: str, *, name: Any = _UNSET,
                      external_gateway: Any = _UNSET, admin_state_up: Any = _UNSET) -> Router:
        """Rename, set the gateway (``{"network_id", "enable_snat"?}``: a new port when the
        network changes) or clear it (None; Conflict while floating IPs go through it)."""
        if name is not _UNSET and name != "":
            validate.name("name", name)
        if admin_state_up is not _UNSET and not isinstance(admin_state_up, bool):
            raise exception.Invalid("admin_state_up", "must be True or False", admin_state_up)
        gateway = self._gateway_arg(external_gateway) \
            if external_gateway not in (_UNSET, None) else None
        with self.db.transaction() as session:
            row = self._router_row(session, router_id)
            self._own({"id": row.id, "project_id": row.project_id}, "router",
                      "network:router:update")
            current = self._router_view(session, row).external_gateway
        if external_gateway is None and current is not None:
            self._clear_gateway(router_id)
        elif gateway is not None:
            if current is not None and current["network_id"] == gateway[0]["id"]:
                with self.db.transaction() as session:
                    row = self._router_row(session, router_id, lock=True)
                    row.enable_snat = gateway[1]
                    row.revision += 1
            else:
                if current is not None:
                    with self.db.transaction() as session:
                        used = self._floating_ips_via(session, router_id)
                    if used:
                        raise exception.Conflict(
                            f"router {router_id} translates floating IPs {_sorted_ids(used)} "
                            f"through its gateway on {current['network_id']}: disassociate "
                            "them first")
                self._set_gateway(router_id, gateway[0], gateway[1])
        if name is not _UNSET or admin_state_up is not _UNSET:
            with self.db.transaction() as session:
                row = self._router_row(session, router_id, lock=True)
                if name is not _UNSET:
                    row.name = name
                if admin_state_up is not _UNSET:
                    row.admin_state_up = admin_state_up
                row.revision += 1
        self._l3_notify([router_id])
        return self.get_router(router_id)

    @schemas.accepts(router_id=s.UUID)
    @policy.authorize("network:router:delete")
    @notify.emits("router", "delete")
    def delete_router(self, router_id: str) -> None:
        """Delete a router and its gateway port; Conflict while it has interfaces (named);
        a missing router is fine."""
        from stackcore.network import models as m
        with self.db.transaction() as session:
            try:
                row = self._router_row(session, router_id, lock=True)
            except exception.NotFound:
                return
            self._own({"id": row.id, "project_id": row.project_id}, "router",
                      "network:router:delete")
            view = self._router_view(session, row)
            if view.interfaces:
                raise exception.Conflict(
                    f"router {router_id} still has interfaces on subnets "
                    f"{_sorted_ids([i.subnet_id for i in view.interfaces])} (ports "
                    f"{_sorted_ids([i.port_id for i in view.interfaces])}): remove them first")
            host = row.host
            gw_port, row.gw_port_id = row.gw_port_id, None
        if gw_port is not None:
            self.plugin.delete_port(gw_port)
        with self.db.transaction() as session:
            row = session.get(m.Router, router_id, with_for_update=True)
            if row is not None:
                # an interface attached meanwhile (add_router_interface checks the router
                # under this lock after making its port): the router stays
                late = self._router_view(session, row).interfaces
                if late:
                    raise exception.Conflict(
                        f"router {router_id} got an interface on subnet(s) "
                        f"{_sorted_ids([i.subnet_id for i in late])} meanwhile: remove it "
                        "first")
                session.delete(row)
        self._l3_notify([router_id], {router_id: host})

    # --- interfaces -----------------------------------------------------------------------

    @schemas.accepts(router_id=s.UUID, subnet_id=s.UUID)
    @policy.authorize("network:router:add_interface")
    def add_router_interface(self, router_id: str, subnet_id: str) -> RouterInterface:
        """Attach ``subnet_id`` (an IPv4 subnet of the router's project, with a gateway, not
        external) to the router: a port holding the subnet's gateway address. Conflict when
        the subnet is already on the router or overlaps one that is."""
        from stackcore.network import models as m
        from stackcore.network.ml2.plugin import Owner
        with self.db.transaction() as session:
            row = self._router_row(session, router_id)
            self._own({"id": row.id, "project_id": row.project_id}, "router",
                      "network:router:add_interface")
            view = self._router_view(session, row)
        subnet = self._visible_subnet(subnet_id)
        if subnet["ip_version"] != 4:
            raise exception.Invalid("subnet_id", f"subnet {subnet_id} is an IPv6 subnet: "
                                    "routers route IPv4 only", subnet_id)
        if not subnet["gateway_ip"]:
            raise exception.Invalid("subnet_id", f"subnet {subnet_id} has no gateway_ip for "
                                    "the router to take", subnet_id)
        network = self.plugin.get_network(subnet["network_id"])
        if network["router:external"]:
            raise exception.Invalid("subnet_id", f"subnet {subnet_id} is on external network "
                                    f"{network['id']}: a router's gateway, not an interface",
                                    subnet_id)
        if subnet["project_id"] != view.project_id:
            raise exception.Invalid("subnet_id", f"subnet {subnet_id} belongs to project "
                                    f"{subnet['project_id']}, router {router_id} to project "
                                    f"{view.project_id}", subnet_id)
        cidr = ipaddress.ip_network(subnet["cidr"])
        for interface in view.interfaces:
            if interface.subnet_id == subnet_id:
                raise exception.Conflict(f"router {router_id} already has an interface on "
                                         f"subnet {subnet_id} (port {interface.port_id})")
            other = self.plugin.get_subnet(interface.subnet_id)
            if ipaddress.ip_network(other["cidr"]).overlaps(cidr):
                raise exception.Conflict(
                    f"subnet {subnet_id} ({subnet['cidr']}) overlaps subnet {other['id']} "
                    f"({other['cidr']}) already on router {router_id}")
        port = self.plugin.create_port(subnet["network_id"], {
            "name": "", "mac_address": None,
            "fixed_ips": [{"subnet_id": subnet_id, "ip_address": subnet["gateway_ip"]}],
            "host": view.host, "vnic_type": "normal", "profile": {}, "device_id": router_id,
            "device_owner": DEVICE_OWNER_INTERFACE, "delete_with_device": False,
            "admin_state_up": True, "security_groups": [], "port_security_enabled": False},
            Owner(subnet["project_id"]))
        try:
            # Under the router's row lock (delete_router re-checks its interfaces under it):
            # a router deleted meanwhile, or a subnet overlapping this one attached by a
            # concurrent call, undoes this interface - one of two racing calls wins.
            with self.db.transaction() as session:
                row = self._router_row(session, router_id, lock=True)
                for attached in self._router_view(session, row).interfaces:
                    if attached.port_id == port["id"]:
                        continue
                    found = session.get(m.Subnet, attached.subnet_id)
                    if attached.subnet_id == subnet_id or (
                            found is not None and ipaddress.ip_network(found.cidr)
                            .overlaps(cidr)):
                        raise exception.Conflict(
                            f"subnet {subnet_id} ({subnet['cidr']}) overlaps subnet "
                            f"{attached.subnet_id} attached to router {router_id} meanwhile")
        except BaseException:
            self.plugin.delete_port(port["id"])
            raise
        self._l3_notify([router_id])
        return RouterInterface(router_id, subnet_id, port["id"], subnet["gateway_ip"])

    @schemas.accepts(router_id=s.UUID, subnet_id=s.UUID)
    @policy.authorize("network:router:remove_interface")
    def remove_router_interface(self, router_id: str, subnet_id: str) -> None:
        """Detach ``subnet_id``: its port is deleted. Conflict while floating IPs of ports on
        that subnet go through the router; nothing to remove is fine."""
        with self.db.transaction() as session:
            row = self._router_row(session, router_id)
            self._own({"id": row.id, "project_id": row.project_id}, "router",
                      "network:router:remove_interface")
            ports = [i.port_id for i in self._router_view(session, row).interfaces
                     if i.subnet_id == subnet_id]
            used = self._floating_ips_via(session, router_id, subnet_id)
        if not ports:
            return
        if used:
            raise exception.Conflict(f"floating IPs {_sorted_ids(used)} reach subnet "
                                     f"{subnet_id} through router {router_id}: disassociate "
                                     "them first")
        for port_id in ports:
            self.plugin.delete_port(port_id)
        self._l3_notify([router_id])

    # --- floating IPs ---------------------------------------------------------------------

    def _port_for_association(self, port_id: str) -> dict[str, Any]:
        port = self._visible_port(port_id)
        self._own(port, "port", "network:floatingip:update")
        return port

    def _association(self, session: Session, floating_network_id: str, port: dict[str, Any],
                     floating_ip_id: str | None) -> tuple[str | None, str | None, str | None]:
        """(port id, fixed IPv4 address, router id) of associating ``port_id``; NotFound /
        Forbidden for a port the caller cannot use, Invalid when no router connects it to
        the external network, Conflict when its address already has a floating IP there."""
        import sqlalchemy as sa

        from stackcore.network import models as m
        port_id = port["id"]
        if port["device_owner"].startswith("network:"):
            raise exception.Invalid("port_id", f"port {port_id} is a {port['device_owner']} "
                                    "port; floating IPs go to instances' ports", port_id)
        fixed = [ip for ip in port["fixed_ips"] if _ipv4(ip["ip_address"])]
        if not fixed:
            raise exception.Invalid("port_id", f"port {port_id} has no IPv4 address", port_id)
        for ip in fixed:
            router = session.execute(
                sa.select(m.Router.id)
                .join(m.Port, m.Port.device_id == m.Router.id)
                .join(m.IPAllocation, m.IPAllocation.port_id == m.Port.id)
                .where(m.Port.device_owner == DEVICE_OWNER_INTERFACE,
                       m.IPAllocation.subnet_id == ip["subnet_id"],
                       m.Router.gw_port_id.in_(sa.select(m.Port.id).where(
                           m.Port.network_id == floating_network_id)))
                .order_by(m.Router.id)).scalars().first()
            if router is None:
                continue
            taken = session.execute(sa.select(m.FloatingIP.id).where(
                m.FloatingIP.floating_network_id == floating_network_id,
                m.FloatingIP.fixed_port_id == port_id,
                m.FloatingIP.fixed_ip_address == ip["ip_address"],
                m.FloatingIP.id != (floating_ip_id or ""))).scalars().first()
            if taken is not None:
                raise exception.Conflict(f"address {ip['ip_address']} of port {port_id} "
                                         f"already has floating IP {taken} on network "
                                         f"{floating_network_id}")
            return port_id, ip["ip_address"], router
        raise exception.Invalid(
            "port_id", f"external network {floating_network_id} is not reachable from "
            f"subnet(s) {_sorted_ids([ip['subnet_id'] for ip in fixed])} of port {port_id}: no "
            "router with a gateway on it has an interface on them", port_id)

    @schemas.accepts(floating_network_id=s.UUID, port_id=s.OPTIONAL_UUID)
    @policy.authorize("network:floatingip:create")
    @notify.emits("floatingip", "create")
    def create_floatingip(self, floating_network_id: str, *, port_id: str | None = None
                          ) -> FloatingIP:
        """An address of external network ``floating_network_id`` for the caller's project,
        associated with ``port_id`` when given (see :meth:`update_floatingip`)."""
        from stackcore.network import models as m
        floating_network_id = validate.uuid_like("floating_network_id", floating_network_id)
        self._external_network("floating_network_id", floating_network_id)
        port_row: dict[str, Any] | None = None
        if port_id is not None:
            port_id = validate.uuid_like("port_id", port_id)
            port_row = self._port_for_association(port_id)
            with self.db.transaction() as session:   # refused before anything is made
                self._association(session, floating_network_id, port_row, None)
        fip_id = str(uuid.uuid4())
        port = self._service_port(floating_network_id, fip_id, DEVICE_OWNER_FLOATINGIP)
        try:
            with self.db.transaction() as session:
                self.quotas.check(session, self.project_id, {"floatingips": 1})
                found = self._association(session, floating_network_id, port_row, fip_id) \
                    if port_row is not None else (None, None, None)
                row = m.FloatingIP(
                    id=fip_id, project_id=self.project_id,
                    floating_network_id=floating_network_id, floating_port_id=port["id"],
                    floating_ip_address=port["fixed_ips"][0]["ip_address"],
                    fixed_port_id=found[0], fixed_ip_address=found[1], router_id=found[2],
                    status="DOWN")
                session.add(row)
                session.flush()
                view = _fip_view(row)
        except BaseException:
            self.plugin.delete_port(port["id"])
            raise
        if view.router_id:
            self._l3_notify([view.router_id])
        return view

    def _fip_row(self, session: Session, floating_ip_id: str, lock: bool = False) -> Any:
        from stackcore.network import models as m
        row = session.get(m.FloatingIP, floating_ip_id, with_for_update=lock or None)
        if row is None or not (self._sees_all() or row.project_id == self.project_id):
            raise exception.NotFound("floatingip", floating_ip_id)
        return row

    @schemas.accepts(floating_ip_id=s.UUID)
    @policy.authorize("network:floatingip:get")
    def get_floatingip(self, floating_ip_id: str) -> FloatingIP:
        with self.db.transaction() as session:
            return _fip_view(self._fip_row(session, floating_ip_id))

    @schemas.accepts(port_id=s.OPTIONAL_UUID, all_projects=s.BOOLEAN)
    @policy.authorize("network:floatingip:list")
    def list_floatingips(self, *, port_id: str | None = None,
                         all_projects: bool = False) -> list[FloatingIP]:
        """The caller's floating IPs (of ``port_id``; every project's: ``all_projects``)."""
        import sqlalchemy as sa

        from stackcore.network import models as m
        if all_projects:
            self._authorize("network:floatingip:list:all_projects")
        with self.db.transaction() as session:
            query = sa.select(m.FloatingIP).order_by(m.FloatingIP.floating_ip_address,
                                                     m.FloatingIP.id)
            if not all_projects:
                query = query.where(m.FloatingIP.project_id == self.project_id)
            if port_id is not None:
                query = query.where(m.FloatingIP.fixed_port_id == port_id)
            return [_fip_view(r) for r in session.execute(query).scalars()]

    @schemas.accepts(floating_ip_id=s.UUID, port_id=s.OPTIONAL_UUID)
    @policy.authorize("network:floatingip:update")
    @notify.emits("floatingip", "update")
    def update_floatingip(self, floating_ip_id: str, *, port_id: str | None) -> FloatingIP:
        """Associate with ``port_id`` (its fixed IPv4 address on a subnet a router connects
        to the floating IP's network; Invalid naming ``port_id`` otherwise) or disassociate
        (None)."""
        port_row = None
        if port_id is not None:
            port_row = self._port_for_association(validate.uuid_like("port_id", port_id))
        with self.db.transaction() as session:
            row = self._fip_row(session, floating_ip_id, lock=True)
            self._own({"id": row.id, "project_id": row.project_id}, "floating IP",
                      "network:floatingip:update")
            before = row.router_id
            found = self._association(session, row.floating_network_id, port_row, row.id) \
                if port_row is not None else (None, None, None)
            row.fixed_port_id, row.fixed_ip_address, row.router_id = found
            row.status = "DOWN"  # until the serving agent reports it applied
            row.revision += 1
            session.flush()
            view = _fip_view(row)
        self._l3_notify(sorted({r for r in (before, view.router_id) if r}))
        return view

    @schemas.accepts(floating_ip_id=s.UUID)
    @policy.authorize("network:floatingip:delete")
    @notify.emits("floatingip", "delete")
    def delete_floatingip(self, floating_ip_id: str) -> None:
        """Delete a floating IP and free its address; a missing one is fine."""
        with self.db.transaction() as session:
            try:
                row = self._fip_row(session, floating_ip_id, lock=True)
            except exception.NotFound:
                return
            self._own({"id": row.id, "project_id": row.project_id}, "floating IP",
                      "network:floatingip:delete")
            router, port = row.router_id, row.floating_port_id
            session.delete(row)
        self.plugin.delete_port(port)
        if router:
            self._l3_notify([router])
