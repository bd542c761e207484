"""The network API callers use: ``cloud.network``.

Networks (provider attributes, several segments, or a project segment from
``[ml2] project_network_types``), subnets (IPv4 and IPv6), ports (MAC, fixed IPs, binding
``host``/``vif_type``/``vif_details`` and, when binding fails, one reason per driver and
segment), L2 agents, type-driver usage and mechanism-driver faults. Every argument is checked
before anything is written (one :class:`~stackcore.exception.Invalid` naming it); results are
frozen dataclasses, never database rows.

The compute API reaches networks through :meth:`NetworkAPI.allocate_ports_for_instance` and
:meth:`NetworkAPI.deallocate_ports_for_instance`.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from oslo_config import cfg

from stackcore import conf as sc_conf
from stackcore import exception, faults, notifications, schemas, validate
from stackcore import schemas as s
from stackcore.db import api as db_api
from stackcore.db import paging
from stackcore.network import exceptions, notify, routers
from stackcore.network import schemas as ns
from stackcore.network import security_groups as sg
from stackcore.network.agents import state as agents
from stackcore.network.contracts import mechanism_driver as mech_api
from stackcore.network.contracts import type_driver
from stackcore.network.dhcp import hooks as dhcp_hooks
from stackcore.network.l3.rpc import DEVICE_OWNER_FLOATINGIP, L3AgentNotifier
from stackcore.network.ml2 import ipam, managers
from stackcore.network.ml2.plugin import COMPUTE_OWNER, ML2Plugin, Owner
from stackcore.plugins import loader
from stackcore.plugins.loader import Plugin
from stackcore.project import policy
from stackcore.project.scope import ScopedAPI

VNIC_TYPES = ("normal", "direct", "macvtap", "baremetal", "direct-physical",
              "virtio-forwarder", "smart-nic", "vdpa", "remote-managed")
_MAC = re.compile(r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")
_UNSET: Any = object()


@dataclasses.dataclass(frozen=True)
class Segment:
    id: str
    network_type: str
    physical_network: str | None
    segmentation_id: int | None
    mtu: int


@dataclasses.dataclass(frozen=True)
class Network:
    id: str
    name: str
    status: str  # ACTIVE, or ERROR after a failed update postcommit
    admin_state_up: bool
    mtu: int  # the smallest segment MTU
    segments: tuple[Segment, ...]  # provider attributes: empty for a non-admin
    created_at: datetime.datetime
    project_id: str = "admin"
    shared: bool = False
    router_external: bool = False

    @property
    def network_type(self) -> str | None:
        """Provider attribute of a single-segment network (None with several segments)."""
        return self.segments[0].network_type if len(self.segments) == 1 else None

    @property
    def physical_network(self) -> str | None:
        return self.segments[0].physical_network if len(self.segments) == 1 else None

    @property
    def segmentation_id(self) -> int | None:
        return self.segments[0].segmentation_id if len(self.segments) == 1 else None


@dataclasses.dataclass(frozen=True)
class Subnet:
    id: str
    network_id: str
    name: str
    ip_version: int
    cidr: str
    gateway_ip: str | None
    allocation_pools: tuple[Mapping[str, str], ...]
    enable_dhcp: bool
    created_at: datetime.datetime
    project_id: str = "admin"
    #: ordered DNS servers DHCP hands out (Neutron's ``dns_nameservers``)
    dns_nameservers: tuple[str, ...] = ()
    #: ``{"destination", "nexthop"}`` routes DHCP hands out (Neutron's ``host_routes``)
    host_routes: tuple[Mapping[str, str], ...] = ()


@dataclasses.dataclass(frozen=True)
class FixedIP:
    subnet_id: str
    ip_address: str


@dataclasses.dataclass(frozen=True)
class BindingLevel:
    level: int
    driver: str
    segment: Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class BindingFailure:
    """Why one driver did not bind (at one level, for one segment or all of them)."""

    driver: str
    level: int
    segment: Mapping[str, Any] | None
    reason: str

    def __str__(self) -> str:
        return managers.failure_text(dataclasses.asdict(self))


@dataclasses.dataclass(frozen=True)
class Port:
    id: str
    network_id: str
    name: str
    mac_address: str
    fixed_ips: tuple[FixedIP, ...]
    device_id: str
    device_owner: str
    status: str  # DOWN, ACTIVE, or ERROR after a failed update postcommit
    admin_state_up: bool
    host: str  # binding:host_id
    vnic_type: str
    profile: Mapping[str, Any]
    vif_type: str  # unbound, binding_failed, or the bound driver's VIF type
    vif_details: Mapping[str, Any]
    binding_levels: tuple[BindingLevel, ...]
    binding_failures: tuple[BindingFailure, ...]
    created_at: datetime.datetime
    project_id: str = "admin"
    security_groups: tuple[str, ...] = ()
    port_security_enabled: bool = True
    allowed_address_pairs: tuple[Mapping[str, str], ...] = ()


@dataclasses.dataclass(frozen=True)
class Agent:
    id: str
    agent_type: str
    binary: str
    host: str
    configurations: Mapping[str, Any]
    alive: bool
    heartbeat_at: str
    started_at: str


def _network_view(d: Mapping[str, Any]) -> Network:
    return Network(
        d["id"], d["name"], d["status"], d["admin_state_up"], d["mtu"],
        tuple(Segment(s["id"], s["network_type"], s["physical_network"], s["segmentation_id"],
                      s["mtu"]) for s in d["segments"]),
        d["created_at"], d.get("project_id", "admin"), bool(d.get("shared")),
        bool(d.get("router:external")),
    )


def _subnet_view(d: Mapping[str, Any]) -> Subnet:
    return Subnet(d["id"], d["network_id"], d["name"], d["ip_version"], d["cidr"],
                  d["gateway_ip"], tuple(d["allocation_pools"]), d["enable_dhcp"],
                  d["created_at"], d.get("project_id", "admin"),
                  tuple(d.get("dns_nameservers") or ()),
                  tuple(d.get("host_routes") or ()))


def _port_view(d: Mapping[str, Any]) -> Port:
    return Port(
        id=d["id"], network_id=d["network_id"], name=d["name"], mac_address=d["mac_address"],
        fixed_ips=tuple(FixedIP(ip["subnet_id"], ip["ip_address"]) for ip in d["fixed_ips"]),
        device_id=d["device_id"], device_owner=d["device_owner"], status=d["status"],
        admin_state_up=d["admin_state_up"], host=d["binding:host_id"],
        vnic_type=d["binding:vnic_type"], profile=d["binding:profile"],
        vif_type=d["binding:vif_type"], vif_details=d["binding:vif_details"],
        binding_levels=tuple(BindingLevel(i, lv["bound_driver"], lv["bound_segment"])
                             for i, lv in enumerate(d.get("binding_levels", []))),
        binding_failures=tuple(BindingFailure(f["driver"], f["level"], f["segment"],
                                              f["reason"]) for f in d["binding_failures"]),
        created_at=d["created_at"], project_id=d.get("project_id", "admin"),
        security_groups=tuple(d.get("security_groups", ())),
        port_security_enabled=bool(d.get("port_security_enabled", True)),
        allowed_address_pairs=tuple(d.get("allowed_address_pairs", ())),
    )


def load_plugins(conf: cfg.ConfigOpts) -> tuple[list[Plugin], list[Plugin]]:
    """Load and verify the configured type and mechanism drivers; register their options."""
    types = loader.load_ordered(type_driver.NAMESPACE, conf.ml2.type_drivers,
                                type_driver.CONTRACT)
    mechanisms = loader.load_ordered(mech_api.NAMESPACE, conf.ml2.mechanism_drivers,
                                     mech_api.CONTRACT)
    for plugin in (*types, *mechanisms):
        sc_conf.register(conf, plugin.cls.list_opts())
    return types, mechanisms


def _id(item: Any) -> str:
    return str(item.id)


_SORT: dict[str, Callable[[Any], Any]] = {"name": lambda item: item.name, "id": _id}


def _optional_name(field: str, value: Any) -> str:
    if value == "":
        return ""
    return validate.name(field, value)


def _text(field: str, value: Any, max_len: int = 255) -> str:
    return "" if value == "" else validate.name(field, value, max_len)


def _bool(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise exception.Invalid(field, f"must be True or False, not {type(value).__name__}",
                                value)
    return value


def _profile(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise exception.Invalid("profile", "must be a mapping", value)
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        raise exception.Invalid("profile", "must contain only JSON types", value) from None
    if len(text) > 4095:
        raise exception.Invalid("profile", "is longer than 4095 characters as JSON")
    return dict(value)


def _mac(value: Any) -> str:
    if not isinstance(value, str) or not _MAC.match(value.lower()):
        raise exception.Invalid("mac_address", "must look like fa:16:3e:12:34:56", value)
    mac = value.lower()
    if int(mac[:2], 16) & 1:
        raise exception.Invalid("mac_address", "is a multicast address", value)
    if mac == "00:00:00:00:00:00":
        raise exception.Invalid("mac_address", "is all zeros", value)
    return mac


def _fixed_ips(value: Any) -> list[dict[str, Any]] | None:
    if value is None:
        return None
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise exception.Invalid("fixed_ips", "must be a list of {subnet_id, ip_address}", value)
    result = []
    for index, item in enumerate(value):
        field = f"fixed_ips[{index}]"
        if not isinstance(item, Mapping) or not item or set(item) - {"subnet_id", "ip_address"}:
            raise exception.Invalid(field, "must be a mapping with subnet_id and/or ip_address",
                                    item)
        entry: dict[str, Any] = {}
        if "subnet_id" in item:
            entry["subnet_id"] = validate.uuid_like(f"{field}.subnet_id", item["subnet_id"])
        if "ip_address" in item:
            if not ipam.contains("::/0", item["ip_address"]) and not ipam.contains(
                    "0.0.0.0/0", item["ip_address"]):
                raise exception.Invalid(f"{field}.ip_address", "is not an IP address",
                                        item["ip_address"])
            entry["ip_address"] = str(item["ip_address"])
        result.append(entry)
    addresses = [e["ip_address"] for e in result if "ip_address" in e]
    if len(addresses) != len(set(addresses)):
        raise exception.Invalid("fixed_ips", "lists an address twice", value)
    return result


def _group_ids(value: Any) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise exception.Invalid("security_groups", "must be a list of security group ids",
                                value)
    return [validate.uuid_like(f"security_groups[{i}]", v) for i, v in enumerate(value)]


def _provider_segment(
    field: str, network_type: Any, physical_network: Any, segmentation_id: Any
) -> dict[str, Any]:
    if not isinstance(network_type, str) or not network_type:
        raise exception.Invalid(f"{field}network_type", "is required with provider attributes",
                                network_type)
    if physical_network is not None:
        validate.identifier(f"{field}physical_network", physical_network)
    if segmentation_id is not None and (isinstance(segmentation_id, bool)
                                        or not isinstance(segmentation_id, int)):
        raise exception.Invalid(f"{field}segmentation_id", "must be an integer",
                                segmentation_id)
    return {"network_type": network_type, "physical_network": physical_network,
            "segmentation_id": segmentation_id}


class NetworkAPI(routers.RoutersMixin, sg.SecurityGroupsMixin, ScopedAPI):
    """Networks, subnets, ports, agents, security groups (:mod:`.security_groups`),
    routers and floating IPs (:mod:`.routers`).
    ``plugins`` are the loaded (type, mechanism) drivers; when omitted they are loaded from
    ``[ml2]``."""

    #: what the network/subnet/port events are sent through (the Cloud sets it)
    notifier: notifications.Notifier = notifications.NULL

    def __init__(
        self,
        conf: cfg.ConfigOpts,
        db: db_api.Database,
        transport: Any,
        plugins: tuple[Sequence[Plugin], Sequence[Plugin]] | None = None,
    ) -> None:
        self.conf = conf
        self.db = db
        self.transport = transport
        type_plugins, mechanism_plugins = plugins if plugins is not None else load_plugins(conf)
        # DHCP: agents notified of changes, DHCP ports removed with what they serve
        self.plugin = dhcp_hooks.attach(ML2Plugin(conf, db, type_plugins, mechanism_plugins),
                                        db, transport)
        # network/subnet/port notifications, .end after the commit (see .notify)
        self.plugin = notify.attach(self.plugin, lambda: self.notifier)
        # L3: a deleted port's floating IPs disassociated (their routers' agents told)
        self.plugin = routers.attach(
            self.plugin, db, None if transport is None else L3AgentNotifier(db, transport))
        self.plugin.initialize()

    # --- ownership ------------------------------------------------------------------------

    def _owner(self, *, project_id: str | None = None, shared: bool = False,
               router_external: bool = False) -> Owner:
        """New rows belong to ``project_id`` (default: the caller's) and count in its quota,
        checked in the creating transaction."""
        project = project_id or self.project_id

        def quota(session: Any, resource: str) -> None:
            self.quotas.check(session, project, {resource: 1})

        return Owner(project, shared, router_external, quota)

    def _network_out(self, d: Mapping[str, Any]) -> Network:
        """The network as the caller may see it: provider attributes (segments) are admin's."""
        network = _network_view(d)
        if not self._sees_all():
            network = dataclasses.replace(network, segments=())
        return network

    def _visible_network(self, network_id: str) -> dict[str, Any]:
        """The network if the caller may see it (its own, a shared one; an admin: any);
        NotFound otherwise, as if it did not exist."""
        found = self.plugin.get_network(network_id)
        if self._sees_all() or found["project_id"] == self.project_id or found["shared"]:
            return found
        raise exception.NotFound("network", network_id)

    def _own_network(self, network_id: str) -> dict[str, Any]:
        """The network if the caller owns it (an admin: any). A shared network of another
        project may be seen but not changed: Forbidden."""
        found = self._visible_network(network_id)
        self._own(found, "network", "network:update")
        return found

    def _own(self, found: Mapping[str, Any], what: str, rule: str) -> None:
        if not self._sees_all() and found["project_id"] != self.project_id:
            raise exception.Forbidden(rule, f"the {what} {found['id']} belongs to another "
                                      "project")

    def _visible_subnet(self, subnet_id: str) -> dict[str, Any]:
        found = self.plugin.get_subnet(subnet_id)
        if self._sees_all() or found["project_id"] == self.project_id:
            return found
        network = self.plugin.get_network(found["network_id"])
        if network["shared"]:
            return found
        raise exception.NotFound("subnet", subnet_id)

    def _visible_port(self, port_id: str) -> dict[str, Any]:
        found = self.plugin.get_port(port_id)
        if self._sees_all() or found["project_id"] == self.project_id:
            return found
        raise exception.NotFound("port", port_id)

    # --- networks -------------------------------------------------------------------------

    @schemas.accepts(name=ns.TEXT, network_type=s.optional(ns.NETWORK_TYPE),
                     physical_network=s.optional(ns.PHYSNET),
                     segmentation_id=s.optional(ns.SEGMENTATION_ID),
                     segments=s.optional(s.array(ns.SEGMENT, 16)), admin_state_up=s.BOOLEAN,
                     shared=s.BOOLEAN, router_external=s.BOOLEAN)
    @policy.authorize("network:create")
    def create_network(
        self,
        name: str = "",
        *,
        network_type: str | None = None,
        physical_network: str | None = None,
        segmentation_id: int | None = None,
        segments: Sequence[Mapping[str, Any]] | None = None,
        admin_state_up: bool = True,
        shared: bool = False,
        router_external: bool = False,
    ) -> Network:
        """A network. Provider attributes (``network_type`` ...) give one segment,
        ``segments`` several (``[{"network_type", "physical_network", "segmentation_id"}]``);
        with neither, a project network gets a segment of the first
        ``[ml2] project_network_types`` type with a free ID (QuotaExceeded when none).
        ``shared``: every project may use it; ``router_external``: routers take their gateway
        on it. Provider attributes, shared and external networks are admin rules."""
        name = _optional_name("name", name)
        if shared:
            self._authorize("network:create:shared")
        if router_external:
            self._authorize("network:create:external")
        _bool("admin_state_up", admin_state_up)
        provider: list[dict[str, Any]] | None = None
        has_attrs = any(v is not None for v in (network_type, physical_network,
                                                 segmentation_id))
        if segments is not None:
            if has_attrs:
                raise exception.Invalid("segments", "cannot be combined with network_type, "
                                        "physical_network or segmentation_id")
            if isinstance(segments, (str, Mapping)) or not isinstance(segments, Sequence) \
                    or not segments:
                raise exception.Invalid("segments", "must be a non-empty list of segments",
                                        segments)
            provider = []
            for index, seg in enumerate(segments):
                if not isinstance(seg, Mapping) or set(seg) - {
                        "network_type", "physical_network", "segmentation_id"}:
                    raise exception.Invalid(f"segments[{index}]", "must be a mapping of "
                                            "network_type, physical_network, segmentation_id",
                                            seg)
                provider.append(_provider_segment(
                    f"segments[{index}].", seg.get("network_type"), seg.get("physical_network"),
                    seg.get("segmentation_id")))
            keys = [(s["network_type"], s["physical_network"], s["segmentation_id"])
                    for s in provider if s["segmentation_id"] is not None
                    or s["network_type"] == "flat"]
            if len(keys) != len(set(keys)):
                raise exception.Invalid("segments", "lists the same segment twice", segments)
        elif has_attrs:
            provider = [_provider_segment("", network_type, physical_network, segmentation_id)]
        if provider is not None:
            self._authorize("network:create:provider")
        if router_external and (provider is None or any(
                seg["network_type"] not in ("flat", "vlan") for seg in provider)):
            raise exception.Invalid("router_external", "an external network is a flat or VLAN "
                                    "provider network (network_type flat or vlan)",
                                    router_external)
        owner = self._owner(shared=shared, router_external=router_external)
        return self._network_out(self.plugin.create_network(name, admin_state_up, provider,
                                                            owner))

    @schemas.accepts(network_id=s.UUID)
    @policy.authorize("network:get")
    def get_network(self, network_id: str) -> Network:
        return self._network_out(self._visible_network(network_id))

    @schemas.accepts(all_projects=s.BOOLEAN, **paging.schema(ns.SORT_KEYS))
    @policy.authorize("network:list")
    def list_networks(self, *, all_projects: bool = False, limit: int | None = None,
                      marker: str | None = None, sort_key: str = "name",
                      sort_dir: str = "asc") -> list[Network]:
        """The caller's networks and the shared ones (every project's: ``all_projects``, an
        admin rule), ``limit`` at a time after the network ``marker``."""
        if all_projects:
            self._authorize("network:list:all_projects")
        found = [self._network_out(d) for d in self.plugin.list_networks()
                 if all_projects or d["project_id"] == self.project_id or d["shared"]]
        return paging.page_items(found,
                                 _id, _SORT, limit=limit, marker=marker, sort_key=sort_key,
                                 sort_dir=sort_dir, resource="network")

    @schemas.accepts(network_id=s.UUID, name=ns.TEXT, admin_state_up=s.BOOLEAN)
    @policy.authorize("network:update")
    def update_network(
        self, network_id: str, *, name: Any = _UNSET, admin_state_up: Any = _UNSET
    ) -> Network:
        changes: dict[str, Any] = {}
        if name is not _UNSET:
            changes["name"] = _optional_name("name", name)
        if admin_state_up is not _UNSET:
            changes["admin_state_up"] = _bool("admin_state_up", admin_state_up)
        self._own_network(network_id)
        return self._network_out(self.plugin.update_network(network_id, changes))

    @schemas.accepts(network_id=s.UUID)
    @policy.authorize("network:delete")
    def delete_network(self, network_id: str) -> None:
        """Delete a network and its subnets; Conflict while it has ports. Deleting a network
        that does not exist succeeds."""
        try:
            self._own_network(network_id)
        except exception.NotFound:
            return
        self.plugin.delete_network(network_id)

    @schemas.accepts(network_id=s.UUID)
    @policy.authorize("network:get:provider")
    def list_segments(self, network_id: str) -> list[Segment]:
        return list(_network_view(self._visible_network(network_id)).segments)

    @schemas.accepts()
    @policy.authorize("network:type_usage")
    def type_usage(self) -> list[dict[str, Any]]:
        """Per type: total / allocated / free IDs per physical network and range (validated
        against :data:`stackcore.network.stats.TYPE_USAGE_SCHEMA`)."""
        return self.plugin.type_usage()

    # --- subnets --------------------------------------------------------------------------

    @schemas.accepts(network_id=s.UUID, cidr=s.CIDR, name=ns.TEXT,
                     ip_version=s.optional(s.enum(4, 6)), gateway_ip=ns.GATEWAY,
                     allocation_pools=s.optional(s.array(ns.POOL, 64)), enable_dhcp=s.BOOLEAN,
                     dns_nameservers=s.optional(ns.DNS_NAMESERVERS),
                     host_routes=s.optional(ns.HOST_ROUTES))
    @policy.authorize("network:subnet:create")
    def create_subnet(
        self,
        network_id: str,
        cidr: str,
        *,
        name: str = "",
        ip_version: int | None = None,
        gateway_ip: str | None = "auto",
        allocation_pools: Sequence[Mapping[str, str]] | None = None,
        enable_dhcp: bool = True,
        dns_nameservers: Sequence[str] | None = None,
        host_routes: Sequence[Mapping[str, str]] | None = None,
    ) -> Subnet:
        """A subnet. ``gateway_ip``: ``"auto"`` (first usable address), None (no gateway) or
        an address; ``allocation_pools``: ``[{"start", "end"}]``, default the whole CIDR but
        the gateway; ``dns_nameservers``: ordered distinct addresses of the subnet's version
        (at most ``[network] max_dns_nameservers``); ``host_routes``: ``[{"destination":
        CIDR, "nexthop": address}]`` of its version (at most ``[network]
        max_subnet_host_routes``); DHCP hands both out. Overlapping another subnet of the
        network is a Conflict."""
        name = _optional_name("name", name)
        _bool("enable_dhcp", enable_dhcp)
        spec = ipam.validate_subnet(cidr, ip_version, gateway_ip, allocation_pools)
        spec = dataclasses.replace(
            spec,
            dns_nameservers=ipam.validate_dns_nameservers(
                spec.ip_version, dns_nameservers or [], self.conf.network.max_dns_nameservers),
            host_routes=ipam.validate_host_routes(
                spec.ip_version, host_routes or [], self.conf.network.max_subnet_host_routes),
        )
        self._own_network(network_id)
        return _subnet_view(self.plugin.create_subnet(network_id, name, spec, enable_dhcp,
                                                      self._owner()))

    @schemas.accepts(subnet_id=s.UUID)
    @policy.authorize("network:subnet:get")
    def get_subnet(self, subnet_id: str) -> Subnet:
        return _subnet_view(self._visible_subnet(subnet_id))

    @schemas.accepts(network_id=s.OPTIONAL_UUID, all_projects=s.BOOLEAN,
                     **paging.schema(ns.SORT_KEYS))
    @policy.authorize("network:subnet:list")
    def list_subnets(self, network_id: str | None = None, *, all_projects: bool = False,
                     limit: int | None = None, marker: str | None = None,
                     sort_key: str = "name", sort_dir: str = "asc") -> list[Subnet]:
        """The caller's subnets and those of shared networks (of ``network_id``; every
        project's: ``all_projects``), ``limit`` at a time after the subnet ``marker``."""
        if all_projects:
            self._authorize("network:subnet:list:all_projects")
        shared = {d["id"] for d in self.plugin.list_networks() if d["shared"]}
        found = [_subnet_view(d) for d in self.plugin.list_subnets(network_id)
                 if all_projects or d["project_id"] == self.project_id
                 or d["network_id"] in shared]
        return paging.page_items(found,
                                 _id, _SORT, limit=limit, marker=marker, sort_key=sort_key,
                                 sort_dir=sort_dir, resource="subnet")

    @schemas.accepts(subnet_id=s.UUID, name=ns.TEXT, enable_dhcp=s.BOOLEAN,
                     dns_nameservers=ns.DNS_NAMESERVERS, host_routes=ns.HOST_ROUTES)
    @policy.authorize("network:subnet:update")
    def update_subnet(
        self, subnet_id: str, *, name: Any = _UNSET, enable_dhcp: Any = _UNSET,
        dns_nameservers: Any = _UNSET, host_routes: Any = _UNSET,
    ) -> Subnet:
        """Change a subnet's name, ``enable_dhcp``, ``dns_nameservers`` or ``host_routes``;
        a list given replaces the whole list (Neutron's semantics; ``[]`` clears it)."""
        changes: dict[str, Any] = {}
        if name is not _UNSET:
            changes["name"] = _optional_name("name", name)
        if enable_dhcp is not _UNSET:
            changes["enable_dhcp"] = _bool("enable_dhcp", enable_dhcp)
        subnet = self._visible_subnet(subnet_id)
        if dns_nameservers is not _UNSET:
            changes["dns_nameservers"] = ipam.validate_dns_nameservers(
                subnet["ip_version"], dns_nameservers, self.conf.network.max_dns_nameservers)
        if host_routes is not _UNSET:
            changes["host_routes"] = ipam.validate_host_routes(
                subnet["ip_version"], host_routes, self.conf.network.max_subnet_host_routes)
        self._own(subnet, "subnet", "network:subnet:update")
        return _subnet_view(self.plugin.update_subnet(subnet_id, changes))

    @schemas.accepts(subnet_id=s.UUID)
    @policy.authorize("network:subnet:delete")
    def delete_subnet(self, subnet_id: str) -> None:
        """Delete a subnet; Conflict while ports hold addresses in it; a missing one is fine."""
        try:
            subnet = self._visible_subnet(subnet_id)
        except exception.NotFound:
            return
        self._own(subnet, "subnet", "network:subnet:delete")
        self.plugin.delete_subnet(subnet_id)

    # --- ports ----------------------------------------------------------------------------

    @schemas.accepts(network_id=s.UUID, name=ns.TEXT, mac_address=s.optional(s.MAC),
                     fixed_ips=s.optional(ns.FIXED_IPS), host=ns.TEXT,
                     vnic_type=s.enum(*ns.VNIC_TYPES), profile=s.optional(ns.PROFILE),
                     device_id=ns.TEXT, device_owner=ns.TEXT, admin_state_up=s.BOOLEAN,
                     security_groups=s.optional(ns.SECURITY_GROUPS),
                     port_security_enabled=s.BOOLEAN,
                     allowed_address_pairs=s.optional(ns.ADDRESS_PAIRS))
    @policy.authorize("network:port:create")
    def create_port(
        self,
        network_id: str,
        *,
        name: str = "",
        mac_address: str | None = None,
        fixed_ips: Sequence[Mapping[str, str]] | None = None,
        host: str = "",
        vnic_type: str = "normal",
        profile: Mapping[str, Any] | None = None,
        device_id: str = "",
        device_owner: str = "",
        admin_state_up: bool = True,
        security_groups: Sequence[str] | None = None,
        port_security_enabled: bool = True,
        allowed_address_pairs: Sequence[Mapping[str, str]] | None = None,
    ) -> Port:
        """A port. MAC: generated from ``[network] base_mac`` unless given (unique per
        network). ``fixed_ips``: ``[{"subnet_id"?, "ip_address"?}]``; default one address from
        the first subnet of each IP version. With a ``host`` the port is bound before this
        returns: check ``vif_type`` (``binding_failed`` + ``binding_failures`` when no driver
        could bind it). ``security_groups`` (default: the project's ``default`` group, none
        when port security is off), ``port_security_enabled``, ``allowed_address_pairs``:
        see :mod:`stackcore.network.security_groups`."""
        attrs = {
            "name": _optional_name("name", name),
            "mac_address": None if mac_address is None else _mac(mac_address),
            "fixed_ips": _fixed_ips(fixed_ips),
            "host": _text("host", host),
            "vnic_type": validate.choice("vnic_type", vnic_type, VNIC_TYPES),
            "profile": _profile(profile),
            "device_id": _text("device_id", device_id),
            "device_owner": _text("device_owner", device_owner),
            "admin_state_up": _bool("admin_state_up", admin_state_up),
            "port_security_enabled": _bool("port_security_enabled", port_security_enabled),
            "allowed_address_pairs": sg.normalize_address_pairs(allowed_address_pairs),
            "security_groups": _group_ids(security_groups),
        }
        if not port_security_enabled and security_groups is None:
            attrs["security_groups"] = []
        if host or profile:
            self._authorize("network:port:create:binding")
        if mac_address is not None:
            self._authorize("network:port:create:mac_address")
        network = self._visible_network(network_id)
        if network["project_id"] != self.project_id and not self._sees_all():
            # a shared network: any project's ports, but no fixed addresses of its choosing
            if fixed_ips:
                raise exception.Forbidden("network:port:create",
                                          "fixed_ips on another project's shared network")
        port = _port_view(self.plugin.create_port(network_id, attrs, self._owner()))
        self._notify_agents()  # a new member of its groups
        return port

    @schemas.accepts(port_id=s.UUID)
    @policy.authorize("network:port:get")
    def get_port(self, port_id: str) -> Port:
        return _port_view(self._visible_port(port_id))

    @schemas.accepts(network_id=s.OPTIONAL_UUID, device_id=s.optional(ns.TEXT),
                     host=s.optional(ns.TEXT), all_projects=s.BOOLEAN,
                     **paging.schema(ns.SORT_KEYS))
    @policy.authorize("network:port:list")
    def list_ports(
        self, *, network_id: str | None = None, device_id: str | None = None,
        host: str | None = None, all_projects: bool = False, limit: int | None = None,
        marker: str | None = None, sort_key: str = "name", sort_dir: str = "asc",
    ) -> list[Port]:
        """The caller's ports matching the filters (every project's: ``all_projects``),
        ``limit`` at a time after the port ``marker``."""
        if all_projects:
            self._authorize("network:port:list:all_projects")
        filters = {k: v for k, v in (("network_id", network_id), ("device_id", device_id),
                                     ("host", host)) if v is not None}
        if not all_projects:
            filters["project_id"] = self.project_id
        return paging.page_items([_port_view(d) for d in self.plugin.list_ports(filters)],
                                 _id, _SORT, limit=limit, marker=marker, sort_key=sort_key,
                                 sort_dir=sort_dir, resource="port")

    @schemas.accepts(port_id=s.UUID, name=ns.TEXT, fixed_ips=s.optional(ns.FIXED_IPS),
                     host=ns.TEXT, vnic_type=s.enum(*ns.VNIC_TYPES), profile=s.optional(ns.PROFILE),
                     device_id=ns.TEXT, device_owner=ns.TEXT, admin_state_up=s.BOOLEAN,
                     security_groups=s.optional(ns.SECURITY_GROUPS),
                     port_security_enabled=s.BOOLEAN,
                     allowed_address_pairs=s.optional(ns.ADDRESS_PAIRS))
    @policy.authorize("network:port:update")
    def update_port(
        self,
        port_id: str,
        *,
        name: Any = _UNSET,
        fixed_ips: Any = _UNSET,
        host: Any = _UNSET,
        vnic_type: Any = _UNSET,
        profile: Any = _UNSET,
        device_id: Any = _UNSET,
        device_owner: Any = _UNSET,
        admin_state_up: Any = _UNSET,
        security_groups: Any = _UNSET,
        port_security_enabled: Any = _UNSET,
        allowed_address_pairs: Any = _UNSET,
    ) -> Port:
        """Change a port. Changing ``host``, ``vnic_type`` or ``profile`` unbinds it and
        binds it again (on the new host, if any) before returning."""
        changes: dict[str, Any] = {}
        checks: dict[str, Callable[[Any], Any]] = {
            "name": lambda v: _optional_name("name", v),
            "fixed_ips": lambda v: _fixed_ips(v) if v is not None else [],
            "host": lambda v: _text("host", v),
            "vnic_type": lambda v: validate.choice("vnic_type", v, VNIC_TYPES),
            "profile": _profile,
            "device_id": lambda v: _text("device_id", v),
            "device_owner": lambda v: _text("device_owner", v),
            "admin_state_up": lambda v: _bool("admin_state_up", v),
            "security_groups": lambda v: _group_ids(v) or [],
            "port_security_enabled": lambda v: _bool("port_security_enabled", v),
            "allowed_address_pairs": sg.normalize_address_pairs,
        }
        values = {"name": name, "fixed_ips": fixed_ips, "host": host, "vnic_type": vnic_type,
                  "profile": profile, "device_id": device_id, "device_owner": device_owner,
                  "admin_state_up": admin_state_up, "security_groups": security_groups,
                  "port_security_enabled": port_security_enabled,
                  "allowed_address_pairs": allowed_address_pairs}
        for key, value in values.items():
            if value is not _UNSET:
                changes[key] = checks[key](value)
        if {"host", "profile", "vnic_type"} & set(changes):
            self._authorize("network:port:update:binding")
        self._own(self._visible_port(port_id), "port", "network:port:update")
        port = _port_view(self.plugin.update_port(port_id, changes))
        if {"security_groups", "port_security_enabled", "allowed_address_pairs",
                "fixed_ips"} & set(changes):
            self._notify_agents()  # memberships and addresses are in other ports' rules
        return port

    @schemas.accepts(port_id=s.UUID)
    @policy.authorize("network:port:delete")
    def delete_port(self, port_id: str) -> None:
        """Delete a port and free its addresses; deleting a missing port succeeds."""
        try:
            port = self._visible_port(port_id)
        except exception.NotFound:
            return
        self._own(port, "port", "network:port:delete")
        if port["device_owner"] in (*routers.ROUTER_OWNERS, DEVICE_OWNER_FLOATINGIP):
            raise exception.Conflict(
                f"port {port_id} is a {port['device_owner']} port of {port['device_id']}: "
                "remove_router_interface, update_router or delete_floatingip removes it")
        self.plugin.delete_port(port_id)
        self._notify_agents()  # its addresses leave its groups' members

    # --- agents and faults ----------------------------------------------------------------

    @schemas.accepts(host=s.optional(s.HOST), agent_type=s.optional(s.NAME))
    @policy.authorize("network:agent:list")
    def list_agents(self, *, host: str | None = None, agent_type: str | None = None
                    ) -> list[Agent]:
        import sqlalchemy as sa

        from stackcore.network.models import Agent as AgentRow

        with self.db.transaction() as session:
            query = sa.select(AgentRow).order_by(AgentRow.host, AgentRow.agent_type)
            if host is not None:
                query = query.where(AgentRow.host == host)
            if agent_type is not None:
                query = query.where(AgentRow.agent_type == agent_type)
            rows = [agents.agent_dict(r, self.conf.network.agent_down_time)
                    for r in session.execute(query).scalars()]
        return [Agent(r["id"], r["agent_type"], r["binary"], r["host"], r["configurations"],
                      r["alive"], r["heartbeat_at"], r["started_at"]) for r in rows]

    @schemas.accepts(resource_id=s.OPTIONAL_UUID)
    @policy.authorize("network:fault:list")
    def list_faults(self, resource_id: str | None = None) -> list[faults.Fault]:
        """Mechanism-driver failures recorded on update and delete postcommits."""
        return self.plugin.list_faults(resource_id)

    # --- the compute seam -----------------------------------------------------------------

    @schemas.accepts(instance_uuid=s.UUID, host=s.HOST, requests=s.array(ns.PORT_REQUEST, 16),
                     project_id=s.optional(s.string(255)))
    @policy.authorize("network:instance_ports")
    def allocate_ports_for_instance(
        self, instance_uuid: str, host: str, requests: Sequence[Mapping[str, Any]],
        project_id: str | None = None,
    ) -> list[dict[str, Any]]:
        """Give an instance its ports on ``host``: each request is ``{"network_id"[,
        "fixed_ips"][, "security_groups"]}`` (a port is created - in those groups, ids; by
        default the project's default group - and deleted with the instance) or
        ``{"port_id"}`` (an existing, unused port is taken). Every port is bound to ``host``;
        if any cannot be bound, everything done here is undone and
        :class:`~stackcore.network.exceptions.PortBindingFailed` lists the reasons.
        Returns the ``network_info`` list the hypervisor driver receives. New ports belong to
        ``project_id`` (the server's project; default the caller's) and count in its quota."""
        instance_uuid = validate.uuid_like("instance_uuid", instance_uuid)
        host = validate.name("host", host)
        created: list[str] = []
        taken: list[str] = []
        ports: list[Port] = []
        try:
            for index, request in enumerate(requests):
                field = f"networks[{index}]"
                if not isinstance(request, Mapping) or len(
                        {"network_id", "port_id"} & set(request)) != 1:
                    raise exception.Invalid(field, "must give exactly one of network_id or "
                                            "port_id", request)
                if "port_id" in request:
                    port = self.get_port(request["port_id"])
                    if port.device_id and port.device_id != instance_uuid:
                        raise exception.Conflict(
                            f"port {port.id} is in use by device {port.device_id}")
                    taken.append(port.id)
                    port = self.update_port(port.id, device_id=instance_uuid,
                                            device_owner=COMPUTE_OWNER, host=host)
                else:
                    attrs: dict[str, Any] = {
                        "name": "", "mac_address": None,
                        "fixed_ips": _fixed_ips(request.get("fixed_ips")), "host": host,
                        "vnic_type": "normal", "profile": {}, "device_id": instance_uuid,
                        "device_owner": COMPUTE_OWNER, "delete_with_device": True,
                        "admin_state_up": True,
                        # resolved by create_server; None: the project's default group
                        "security_groups": _group_ids(request.get("security_groups")),
                    }
                    network_id = validate.uuid_like(f"{field}.network_id",
                                                    request["network_id"])
                    owner = self._owner(project_id=project_id)
                    port = _port_view(self.plugin.create_port(network_id, attrs, owner))
                    created.append(port.id)
                if port.vif_type == mech_api.VIF_TYPE_BINDING_FAILED:
                    raise exceptions.PortBindingFailed(
                        port.id, host, [str(f) for f in port.binding_failures])
                ports.append(port)
        except BaseException:
            for port_id in created:
                self.plugin.delete_port(port_id)
            for port_id in taken:
                self.plugin.update_port(port_id, {"device_id": "", "device_owner": "",
                                                  "host": ""})
            raise
        if ports:
            self._notify_agents()  # new members of their groups (remote-group rules)
        return [self._network_info(port) for port in ports]

    @schemas.accepts(instance_uuid=s.UUID)
    @policy.authorize("network:instance_ports")
    def deallocate_ports_for_instance(self, instance_uuid: str) -> None:
        """Release an instance's ports: those created for it are deleted, those it was given
        are unbound and freed. Idempotent."""
        instance_uuid = validate.uuid_like("instance_uuid", instance_uuid)
        ports = self.plugin.list_ports({"device_id": instance_uuid})
        for port in ports:
            if port["delete_with_device"]:
                self.plugin.delete_port(port["id"])
            else:
                self.plugin.update_port(port["id"], {"device_id": "", "device_owner": "",
                                                     "host": ""})
        if ports:
            self._notify_agents()  # their addresses leave their groups' members

    @schemas.accepts(instance_uuid=s.UUID, host=s.HOST)
    @policy.authorize("network:instance_ports")
    def migrate_ports_for_instance(self, instance_uuid: str, host: str
                                   ) -> list[dict[str, Any]]:
        """Bind every port of an instance to ``host`` (a resize or migration moved it there,
        or a revert moved it back): each is unbound and bound again by the mechanism drivers,
        addresses and MACs kept. If one cannot be bound there, those already moved are bound
        to their previous host again and
        :class:`~stackcore.network.exceptions.PortBindingFailed` lists the reasons. Returns
        the instance's ``network_info`` on ``host``; ports already bound there are left
        alone, so a repeated call (a reconciliation) changes nothing."""
        instance_uuid = validate.uuid_like("instance_uuid", instance_uuid)
        host = validate.name("host", host)
        moved: list[tuple[str, str]] = []
        try:
            for port in self.plugin.list_ports({"device_id": instance_uuid}):
                if port.get("host") == host:
                    continue
                view = _port_view(self.plugin.update_port(port["id"], {"host": host}))
                moved.append((port["id"], str(port.get("host") or "")))
                if view.vif_type == mech_api.VIF_TYPE_BINDING_FAILED:
                    raise exceptions.PortBindingFailed(
                        view.id, host, [str(f) for f in view.binding_failures])
        except BaseException:
            for port_id, previous in moved:
                self.plugin.update_port(port_id, {"host": previous})
            raise
        if moved:
            self._notify_agents()  # the ports' rules now belong on another host's agent
        return self.network_info_for_instance(instance_uuid)

    @schemas.accepts(instance_uuid=s.UUID)
    @policy.authorize("network:instance_ports")
    def network_info_for_instance(self, instance_uuid: str) -> list[dict[str, Any]]:
        """The ``network_info`` of the ports an instance holds now (what
        :meth:`allocate_ports_for_instance` returned), e.g. for the driver's destroy."""
        instance_uuid = validate.uuid_like("instance_uuid", instance_uuid)
        return [self._network_info(_port_view(p))
                for p in self.plugin.list_ports({"device_id": instance_uuid})]

    def _network_info(self, port: Port) -> dict[str, Any]:
        network = self.get_network(port.network_id)
        bottom = dict(port.binding_levels[-1].segment) if port.binding_levels else {}
        return {
            "id": port.id,
            "network_id": port.network_id,
            "mac_address": port.mac_address,
            "fixed_ips": [dataclasses.asdict(ip) for ip in port.fixed_ips],
            "vif_type": port.vif_type,
            "vif_details": dict(port.vif_details),
            "vnic_type": port.vnic_type,
            "devname": ("tap" + port.id)[:14],
            "mtu": network.mtu,
            "segment": {k: bottom.get(k) for k in ("network_type", "physical_network",
                                                    "segmentation_id")},
        }
