"""The ML2 plugin: networks, subnets and ports through the type and mechanism managers.

Every operation follows the same shape: validate outside any transaction; one transaction that
writes the change, allocates (segments, addresses, MACs) and runs the ``*_precommit`` hooks;
then the ``*_postcommit`` hooks with the failure semantics documented in
:mod:`stackcore.network.contracts.mechanism_driver`; then, for ports with a host, binding.
Each
transaction is one function decorated with :func:`stackcore.db.api.retry_on_conflict`: a
transaction that loses a database deadlock or serialization conflict (PostgreSQL, concurrent
allocations) runs again from its start, as Neutron's retry decorator does.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from oslo_config import cfg
from sqlalchemy.orm import Session

from stackcore import exception, faults
from stackcore.db import api as db_api
from stackcore.db.models import LEGACY_OWNER
from stackcore.network import exceptions, security_groups
from stackcore.network import models as m
from stackcore.network.agents import state as agents
from stackcore.network.contracts import mechanism_driver as mech_api
from stackcore.network.ml2 import contexts, ipam, managers
from stackcore.plugins.loader import Plugin

LOG = logging.getLogger(__name__)

COMPUTE_OWNER = "compute:stackcore"
#: the ``device_owner`` of a router's port on one of its internal subnets
ROUTER_INTERFACE = "network:router_interface"


def _segment_dict(row: m.NetworkSegment) -> dict[str, Any]:
    return {
        "id": row.id,
        "network_id": row.network_id,
        "network_type": row.network_type,
        "physical_network": row.physical_network,
        "segmentation_id": row.segmentation_id,
        "mtu": row.mtu,
        "segment_index": row.segment_index,
    }



@dataclasses.dataclass(frozen=True)
class Owner:
    """Who a new network, subnet or port belongs to, and the quota check its creating
    transaction runs (``quota(session, resource)``; None: no quota, the framework's own)."""

    project_id: str = LEGACY_OWNER
    shared: bool = False
    router_external: bool = False
    quota: Callable[[Session, str], None] | None = None

    def check_quota(self, session: Session, resource: str) -> None:
        if self.quota is not None:
            self.quota(session, resource)

class ML2Plugin:
    """Networks, subnets, ports and port binding over the loaded drivers."""

    def __init__(
        self,
        conf: cfg.ConfigOpts,
        db: db_api.Database,
        type_plugins: Sequence[Plugin],
        mechanism_plugins: Sequence[Plugin],
    ) -> None:
        self.conf = conf
        self.db = db
        self.type_manager = managers.TypeManager(conf, type_plugins)
        self.mechanism_manager = managers.MechanismManager(conf, mechanism_plugins)
        self._base_mac = [int(x, 16) for x in conf.network.base_mac.split(":")]
        if self._base_mac[0] & 1:
            raise exception.ConfigError(
                f"[network] base_mac {conf.network.base_mac} is a multicast address"
            )

    def initialize(self) -> None:
        """Reconcile the type drivers' pools with the configuration, then start the
        mechanism drivers. Called once at start-up."""
        db_api.retry_on_conflict(self._initialize_types)()
        self.mechanism_manager.initialize()

    def _initialize_types(self) -> None:
        with self.db.transaction() as session:
            self.type_manager.initialize(session)

    # --- dict views -----------------------------------------------------------------------

    def _network_dict(self, session: Session, row: m.Network) -> dict[str, Any]:
        segments = session.execute(
            sa.select(m.NetworkSegment).where(m.NetworkSegment.network_id == row.id)
            .order_by(m.NetworkSegment.segment_index)
        ).scalars().all()
        return {
            "id": row.id,
            "name": row.name,
            "project_id": row.project_id,
            "shared": row.shared,
            "router:external": row.router_external,
            "admin_state_up": row.admin_state_up,
            "status": row.status,
            "mtu": row.mtu,
            "segments": [_segment_dict(s) for s in segments],
            "created_at": row.created_at,
        }

    def _subnet_dict(self, row: m.Subnet) -> dict[str, Any]:
        return {
            "id": row.id,
            "network_id": row.network_id,
            "name": row.name,
            "project_id": row.project_id,
            "ip_version": row.ip_version,
            "cidr": row.cidr,
            "gateway_ip": row.gateway_ip,
            "allocation_pools": [dict(p) for p in row.allocation_pools],
            "dns_nameservers": list(row.dns_nameservers or []),
            "host_routes": [dict(r) for r in row.host_routes or []],
            "enable_dhcp": row.enable_dhcp,
            "created_at": row.created_at,
        }

    def _port_dict(self, session: Session, row: m.Port) -> dict[str, Any]:
        ips = session.execute(
            sa.select(m.IPAllocation.subnet_id, m.IPAllocation.ip_address)
            .where(m.IPAllocation.port_id == row.id)
        ).all()
        return {
            "id": row.id,
            "network_id": row.network_id,
            "name": row.name,
            "project_id": row.project_id,
            "mac_address": row.mac_address,
            "fixed_ips": [{"subnet_id": s, "ip_address": a} for s, a in sorted(ips)],
            "device_id": row.device_id,
            "device_owner": row.device_owner,
            "delete_with_device": row.delete_with_device,
            "status": row.status,
            "admin_state_up": row.admin_state_up,
            "binding:host_id": row.host,
            "binding:vnic_type": row.vnic_type,
            "binding:profile": dict(row.profile or {}),
            "binding:vif_type": row.vif_type,
            "binding:vif_details": dict(row.vif_details or {}),
            "binding_failures": [dict(f) for f in row.binding_failures or []],
            "port_security_enabled": row.port_security_enabled,
            "allowed_address_pairs": [dict(p) for p in row.allowed_address_pairs or []],
            "security_groups": security_groups.port_groups(session, row.id),
            "revision": row.revision,
            "created_at": row.created_at,
        }

    def _levels(self, session: Session, port_id: str) -> list[dict[str, Any]]:
        rows = session.execute(
            sa.select(m.PortBindingLevel, m.NetworkSegment)
            .join(m.NetworkSegment, m.NetworkSegment.id == m.PortBindingLevel.segment_id,
                  isouter=True)
            .where(m.PortBindingLevel.port_id == port_id)
            .order_by(m.PortBindingLevel.level)
        ).all()
        return [
            {"bound_driver": level.driver,
             "bound_segment": _segment_dict(seg) if seg is not None else
             {"id": level.segment_id}}
            for level, seg in rows
        ]

    def _port_context(
        self,
        session: Session,
        row: m.Port,
        original: Mapping[str, Any] | None = None,
        original_levels: Sequence[Mapping[str, Any]] | None = None,
    ) -> contexts.PortContext:
        network = self._get_network_row(session, row.network_id)
        return contexts.PortContext(
            self._port_dict(session, row),
            contexts.NetworkContext(self._network_dict(session, network)),
            self._levels(session, row.id),
            original=original,
            original_levels=original_levels,
            agent_lookup=self._agent_lookup,
        )

    def binding_context(self, port_id: str, host: str | None = None) -> contexts.PortContext:
        """A context to bind ``port_id`` as stored (on ``host`` instead of its own, if
        given): what :meth:`bind_port_if_needed` hands the mechanism manager."""
        with self.db.transaction() as session:
            row = self._get_port_row(session, port_id)
            context = self._port_context(session, row)
        if host is None:
            return context
        return contexts.PortContext({**context.current, "binding:host_id": host},
                                    context.network, agent_lookup=self._agent_lookup)

    def _agent_lookup(self, host: str, agent_type: str) -> list[dict[str, Any]]:
        with self.db.transaction() as session:
            return agents.host_agents(session, host, agent_type,
                                      self.conf.network.agent_down_time)

    # --- faults ---------------------------------------------------------------------------

    def _record_faults(
        self, resource_type: str, resource_id: str, operation: str,
        errors: Sequence[Mapping[str, Any]], set_error: bool = False,
    ) -> None:
        with self.db.transaction() as session:
            for error in errors:
                session.add(faults.new(
                    m.NetworkFault, error["message"], step=operation,
                    exc_class=error["exc_class"], resource_type=resource_type,
                    resource_id=resource_id, driver=error["driver"]))
            if set_error:
                model = {"network": m.Network, "port": m.Port}.get(resource_type)
                if model is not None:
                    session.execute(
                        sa.update(model).where(model.id == resource_id)  # type: ignore[attr-defined]
                        .values(status="ERROR").execution_options(synchronize_session=False)
                    )

    def list_faults(self, resource_id: str | None = None) -> list[faults.Fault]:
        with self.db.transaction() as session:
            query = sa.select(m.NetworkFault).order_by(m.NetworkFault.id)
            if resource_id is not None:
                query = query.where(m.NetworkFault.resource_id == resource_id)
            return [faults.view(f) for f in session.execute(query).scalars()]

    # --- networks -------------------------------------------------------------------------

    def _get_network_row(self, session: Session, network_id: str) -> m.Network:
        row = session.get(m.Network, network_id)
        if row is None:
            raise exception.NotFound("network", network_id)
        return row

    def get_network(self, network_id: str) -> dict[str, Any]:
        with self.db.transaction() as session:
            return self._network_dict(session, self._get_network_row(session, network_id))

    def list_networks(self) -> list[dict[str, Any]]:
        with self.db.transaction() as session:
            rows = session.execute(sa.select(m.Network).order_by(m.Network.created_at,
                                                                 m.Network.id)).scalars().all()
            return [self._network_dict(session, row) for row in rows]

    def create_network(
        self, name: str, admin_state_up: bool, provider_segments: Sequence[dict[str, Any]] | None,
        owner: Owner | None = None,
    ) -> dict[str, Any]:
        """``provider_segments`` None: a project network; otherwise the segments to reserve.
        ``owner``: the owning project (and its quota check, run in the creating transaction),
        ``shared`` / ``router:external``."""
        validated = [self.type_manager.validate_provider_segment(dict(s))
                     for s in provider_segments or ()]
        context = self._create_network_txn(name, admin_state_up, validated, owner or Owner())
        errors = self.mechanism_manager.postcommit(
            "create_network_postcommit", context, stop_on_error=True
        )
        if errors:
            self._delete_network(context.current["id"], force=True)
            raise exceptions.MechanismDriverError("create_network_postcommit", errors)
        return dict(context.current)

    @db_api.retry_on_conflict
    def _create_network_txn(
        self, name: str, admin_state_up: bool, validated: list[dict[str, Any]], owner: Owner
    ) -> contexts.NetworkContext:
        with self.db.transaction() as session:
            owner.check_quota(session, "networks")
            row = m.Network(id=str(uuid.uuid4()), name=name, admin_state_up=admin_state_up,
                            status="ACTIVE", project_id=owner.project_id, shared=owner.shared,
                            router_external=owner.router_external)
            session.add(row)
            session.flush()
            if validated:
                segments = [self.type_manager.reserve_provider_segment(session, s)
                            for s in validated]
            else:
                segments = [self.type_manager.allocate_tenant_segment(session)]
            for index, segment in enumerate(segments):
                session.add(m.NetworkSegment(
                    id=str(uuid.uuid4()), network_id=row.id, network_type=segment["network_type"],
                    physical_network=segment["physical_network"],
                    segmentation_id=segment["segmentation_id"], mtu=segment["mtu"],
                    segment_index=index,
                ))
            mtus = [s["mtu"] for s in segments if s["mtu"] > 0]
            row.mtu = min(mtus) if mtus else 0
            session.flush()
            context = contexts.NetworkContext(self._network_dict(session, row))
            self.mechanism_manager.precommit("create_network_precommit", context)
            return context

    def update_network(self, network_id: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        context = self._update_network_txn(network_id, changes)
        errors = self.mechanism_manager.postcommit(
            "update_network_postcommit", context, stop_on_error=False
        )
        if errors:
            self._record_faults("network", network_id, "update_network_postcommit", errors,
                                set_error=True)
            raise exceptions.MechanismDriverError("update_network_postcommit", errors)
        return dict(context.current)

    @db_api.retry_on_conflict
    def _update_network_txn(
        self, network_id: str, changes: Mapping[str, Any]
    ) -> contexts.NetworkContext:
        with self.db.transaction() as session:
            row = self._get_network_row(session, network_id)
            original = self._network_dict(session, row)
            for key, value in changes.items():
                setattr(row, key, value)
            if row.status == "ERROR":
                row.status = "ACTIVE"
            row.revision += 1
            session.flush()
            context = contexts.NetworkContext(self._network_dict(session, row), original)
            self.mechanism_manager.precommit("update_network_precommit", context)
            return context

    def delete_network(self, network_id: str) -> None:
        """Delete a network and its subnets, in one transaction that first locks the network
        row: a port being created on it (which holds a share lock on the row, see
        :meth:`_create_port_txn`) either committed before - then the network has a port and
        the delete is a Conflict that changed nothing - or waits and then finds the network
        gone (NotFound). Either operation wins whole; never a network with some subnets
        deleted, nor a port left on a deleted network."""
        self._delete_network(network_id, force=False)

    def _delete_network(self, network_id: str, force: bool) -> None:
        if force:
            with self.db.transaction() as session:
                ports = session.execute(
                    sa.select(m.Port.id).where(m.Port.network_id == network_id)
                ).scalars().all()
            for port_id in ports:
                self.delete_port(port_id)
        deleted = self._delete_network_txn(network_id)
        if deleted is None:
            return
        subnet_contexts, context = deleted
        for subnet_context in subnet_contexts:
            errors = self.mechanism_manager.postcommit(
                "delete_subnet_postcommit", subnet_context, stop_on_error=False
            )
            if errors:
                self._record_faults("subnet", subnet_context.current["id"],
                                    "delete_subnet_postcommit", errors)
        errors = self.mechanism_manager.postcommit(
            "delete_network_postcommit", context, stop_on_error=False
        )
        if errors:
            self._record_faults("network", network_id, "delete_network_postcommit", errors)

    @db_api.retry_on_conflict
    def _delete_network_txn(
        self, network_id: str
    ) -> tuple[list[contexts.SubnetContext], contexts.NetworkContext] | None:
        """Lock the network, refuse if it has ports, delete its subnets (each with its
        ``delete_subnet_precommit``), release its segments and delete it."""
        with self.db.transaction() as session:
            row = session.get(m.Network, network_id, with_for_update=True)
            if row is None:
                return None
            ports = session.execute(
                sa.select(m.Port.id).where(m.Port.network_id == network_id)
                .order_by(m.Port.id)
            ).scalars().all()
            if ports:
                raise exception.Conflict(
                    f"network {network_id} still has {len(ports)} port(s): "
                    f"{', '.join(ports[:5])}; delete them first",
                    network_id=network_id,
                )
            context = contexts.NetworkContext(self._network_dict(session, row))
            subnet_contexts = []
            for subnet in session.execute(
                sa.select(m.Subnet).where(m.Subnet.network_id == network_id)
                .order_by(m.Subnet.created_at, m.Subnet.id)
            ).scalars().all():
                subnet_context = contexts.SubnetContext(self._subnet_dict(subnet), context)
                self.mechanism_manager.precommit("delete_subnet_precommit", subnet_context)
                session.delete(subnet)
                subnet_contexts.append(subnet_context)
            session.flush()
            self.mechanism_manager.precommit("delete_network_precommit", context)
            for segment in context.network_segments:
                self.type_manager.release_segment(session, dict(segment))
            session.execute(sa.delete(m.NetworkSegment)
                            .where(m.NetworkSegment.network_id == network_id))
            session.delete(row)
            return subnet_contexts, context

    def type_usage(self) -> list[dict[str, Any]]:
        with self.db.transaction() as session:
            return self.type_manager.usage(session)

    # --- subnets --------------------------------------------------------------------------

    def _get_subnet_row(self, session: Session, subnet_id: str) -> m.Subnet:
        row = session.get(m.Subnet, subnet_id)
        if row is None:
            raise exception.NotFound("subnet", subnet_id)
        return row

    def get_subnet(self, subnet_id: str) -> dict[str, Any]:
        with self.db.transaction() as session:
            return self._subnet_dict(self._get_subnet_row(session, subnet_id))

    def list_subnets(self, network_id: str | None = None) -> list[dict[str, Any]]:
        with self.db.transaction() as session:
            query = sa.select(m.Subnet).order_by(m.Subnet.created_at, m.Subnet.id)
            if network_id is not None:
                query = query.where(m.Subnet.network_id == network_id)
            return [self._subnet_dict(row) for row in session.execute(query).scalars()]

    def create_subnet(
        self, network_id: str, name: str, spec: ipam.SubnetSpec, enable_dhcp: bool,
        owner: Owner | None = None,
    ) -> dict[str, Any]:
        context = self._create_subnet_txn(network_id, name, spec, enable_dhcp, owner or Owner())
        errors = self.mechanism_manager.postcommit(
            "create_subnet_postcommit", context, stop_on_error=True
        )
        if errors:
            self.delete_subnet(context.current["id"])
            raise exceptions.MechanismDriverError("create_subnet_postcommit", errors)
        return dict(context.current)

    @db_api.retry_on_conflict
    def _create_subnet_txn(
        self, network_id: str, name: str, spec: ipam.SubnetSpec, enable_dhcp: bool,
        owner: Owner,
    ) -> contexts.SubnetContext:
        with self.db.transaction() as session:
            network = session.get(m.Network, network_id, with_for_update=True)
            if network is None:
                raise exception.NotFound("network", network_id)
            owner.check_quota(session, "subnets")
            others = session.execute(
                sa.select(m.Subnet.cidr).where(m.Subnet.network_id == network_id)
            ).scalars().all()
            clash = ipam.overlaps(spec.cidr, others)
            if clash is not None:
                raise exception.Conflict(
                    f"cidr {spec.cidr} overlaps subnet {clash} of network {network_id}"
                )
            row = m.Subnet(
                id=str(uuid.uuid4()), network_id=network_id, name=name,
                project_id=owner.project_id,
                ip_version=spec.ip_version, cidr=spec.cidr, gateway_ip=spec.gateway_ip,
                allocation_pools=spec.allocation_pools, enable_dhcp=enable_dhcp,
                dns_nameservers=list(spec.dns_nameservers),
                host_routes=[dict(r) for r in spec.host_routes],
            )
            session.add(row)
            session.flush()
            context = contexts.SubnetContext(
                self._subnet_dict(row),
                contexts.NetworkContext(self._network_dict(session, network)),
            )
            self.mechanism_manager.precommit("create_subnet_precommit", context)
            return context

    def update_subnet(self, subnet_id: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        context = self._update_subnet_txn(subnet_id, changes)
        errors = self.mechanism_manager.postcommit(
            "update_subnet_postcommit", context, stop_on_error=False
        )
        if errors:
            self._record_faults("subnet", subnet_id, "update_subnet_postcommit", errors)
            raise exceptions.MechanismDriverError("update_subnet_postcommit", errors)
        return dict(context.current)

    @db_api.retry_on_conflict
    def _update_subnet_txn(
        self, subnet_id: str, changes: Mapping[str, Any]
    ) -> contexts.SubnetContext:
        with self.db.transaction() as session:
            row = self._get_subnet_row(session, subnet_id)
            original = self._subnet_dict(row)
            for key, value in changes.items():
                setattr(row, key, value)
            row.revision += 1
            session.flush()
            network = self._get_network_row(session, row.network_id)
            context = contexts.SubnetContext(
                self._subnet_dict(row),
                contexts.NetworkContext(self._network_dict(session, network)),
                original,
            )
            self.mechanism_manager.precommit("update_subnet_precommit", context)
            return context

    def delete_subnet(self, subnet_id: str) -> None:
        context = self._delete_subnet_txn(subnet_id)
        if context is None:
            return
        errors = self.mechanism_manager.postcommit(
            "delete_subnet_postcommit", context, stop_on_error=False
        )
        if errors:
            self._record_faults("subnet", subnet_id, "delete_subnet_postcommit", errors)

    @db_api.retry_on_conflict
    def _delete_subnet_txn(self, subnet_id: str) -> contexts.SubnetContext | None:
        with self.db.transaction() as session:
            row = session.get(m.Subnet, subnet_id, with_for_update=True)
            if row is None:
                return None
            used = session.execute(
                sa.select(m.IPAllocation.port_id).where(m.IPAllocation.subnet_id == subnet_id)
            ).scalars().all()
            if used:
                raise exception.Conflict(
                    f"subnet {subnet_id} has {len(used)} address(es) in use by port(s) "
                    f"{', '.join(sorted(set(used))[:5])}"
                )
            network = self._get_network_row(session, row.network_id)
            context = contexts.SubnetContext(
                self._subnet_dict(row),
                contexts.NetworkContext(self._network_dict(session, network)),
            )
            self.mechanism_manager.precommit("delete_subnet_precommit", context)
            session.delete(row)
            return context

    # --- ports ----------------------------------------------------------------------------

    def _get_port_row(self, session: Session, port_id: str, lock: bool = False) -> m.Port:
        row = session.get(m.Port, port_id, with_for_update=lock)
        if row is None:
            raise exception.NotFound("port", port_id)
        return row

    def get_port(self, port_id: str) -> dict[str, Any]:
        with self.db.transaction() as session:
            row = self._get_port_row(session, port_id)
            port = self._port_dict(session, row)
            port["binding_levels"] = self._levels(session, port_id)
            return port

    def list_ports(self, filters: Mapping[str, Any]) -> list[dict[str, Any]]:
        with self.db.transaction() as session:
            query = sa.select(m.Port).order_by(m.Port.created_at, m.Port.id)
            for column, value in filters.items():
                query = query.where(getattr(m.Port, column) == value)
            result = []
            for row in session.execute(query).scalars().all():
                port = self._port_dict(session, row)
                port["binding_levels"] = self._levels(session, row.id)
                result.append(port)
            return result

    def _generate_mac(self) -> str:
        octets = list(self._base_mac[:3])
        octets.append(self._base_mac[3] or secrets.randbelow(256))
        octets.extend(secrets.randbelow(256) for _ in range(2))
        return ":".join(f"{o:02x}" for o in octets)

    def _assign_mac(self, session: Session, row: m.Port, requested: str | None) -> None:
        """Set a MAC unique on the network: the requested one (Conflict if taken) or a
        generated one (retried on collision, in a savepoint so the transaction survives)."""
        candidates = [requested] if requested else [self._generate_mac() for _ in range(16)]
        for mac in candidates:
            try:
                with session.begin_nested():
                    row.mac_address = mac
                    session.add(row)
                    session.flush()
                return
            except sa.exc.IntegrityError:
                if requested:
                    raise exception.Conflict(
                        f"MAC address {mac} is already in use on network {row.network_id}",
                        mac_address=mac,
                    ) from None
        raise exception.Conflict(f"could not generate a free MAC address on network "
                                 f"{row.network_id} ([network] base_mac leaves too few)")

    def _allocate_ips(
        self, session: Session, port: m.Port, fixed_ips: Sequence[Mapping[str, Any]] | None
    ) -> None:
        subnets = session.execute(
            sa.select(m.Subnet).where(m.Subnet.network_id == port.network_id)
            .order_by(m.Subnet.created_at, m.Subnet.id)
        ).scalars().all()
        by_id = {s.id: s for s in subnets}
        if fixed_ips is None:
            seen_versions: set[int] = set()
            for candidate in subnets:
                if candidate.ip_version in seen_versions:
                    continue
                seen_versions.add(candidate.ip_version)
                ipam.allocate_any(session, candidate, port.id)
            return
        subnet: m.Subnet | None
        for index, request in enumerate(fixed_ips):
            field = f"fixed_ips[{index}]"
            subnet_id = request.get("subnet_id")
            address = request.get("ip_address")
            subnet = by_id.get(subnet_id) if subnet_id is not None else None
            if subnet_id is not None and subnet is None:
                raise exception.Invalid(f"{field}.subnet_id", f"{subnet_id!r} is not a subnet "
                                        f"of network {port.network_id}", subnet_id)
            if subnet is None:
                subnet = next((s for s in subnets if address is not None and ipam.contains(
                    s.cidr, address)), None)
                if subnet is None:
                    raise exception.Invalid(f"{field}.ip_address", f"{address!r} is in no "
                                            f"subnet of network {port.network_id}", address)
            if address is None:
                ipam.allocate_any(session, subnet, port.id)
            else:
                # a router interface holds its subnet's gateway address (Neutron's rule)
                ipam.allocate_specific(session, subnet, port.id, address,
                                       f"{field}.ip_address",
                                       allow_gateway=port.device_owner == ROUTER_INTERFACE)

    def create_port(self, network_id: str, attrs: Mapping[str, Any],
                    owner: Owner | None = None) -> dict[str, Any]:
        """``attrs``: name, mac_address, fixed_ips, device_id, device_owner,
        delete_with_device, admin_state_up, host, vnic_type, profile, security_groups (None:
        the project's default group), port_security_enabled, allowed_address_pairs (all
        validated)."""
        owner = owner or Owner()
        if attrs.get("security_groups") is None and attrs.get("port_security_enabled", True) \
                and not security_groups.is_trusted(attrs.get("device_owner", "")):
            # made in a transaction of its own, before the port's (see ensure_default_group)
            attrs = {**attrs, "security_groups": [
                security_groups.ensure_default_group(self.db, owner.project_id)]}
        context = self._create_port_txn(network_id, attrs, owner)
        port_id = context.current["id"]
        errors = self.mechanism_manager.postcommit(
            "create_port_postcommit", context, stop_on_error=True
        )
        if errors:
            self.delete_port(port_id)
            raise exceptions.MechanismDriverError("create_port_postcommit", errors)
        self.bind_port_if_needed(port_id)
        return self.get_port(port_id)

    @db_api.retry_on_conflict
    def _create_port_txn(self, network_id: str, attrs: Mapping[str, Any],
                         owner: Owner) -> contexts.PortContext:
        with self.db.transaction() as session:
            # A share lock on the network row until commit: a concurrent delete_network
            # (which locks the row for update) runs entirely before or after this port.
            if session.get(m.Network, network_id, with_for_update={"read": True}) is None:
                raise exception.NotFound("network", network_id)
            owner.check_quota(session, "ports")
            row = m.Port(
                id=str(uuid.uuid4()), network_id=network_id, name=attrs.get("name", ""),
                project_id=owner.project_id,
                device_id=attrs.get("device_id", ""), device_owner=attrs.get("device_owner", ""),
                delete_with_device=attrs.get("delete_with_device", False),
                admin_state_up=attrs.get("admin_state_up", True), status="DOWN",
                host=attrs.get("host", ""), vnic_type=attrs.get("vnic_type", "normal"),
                profile=dict(attrs.get("profile") or {}), vif_type=mech_api.VIF_TYPE_UNBOUND,
                vif_details={}, binding_failures=[],
                port_security_enabled=attrs.get("port_security_enabled", True),
                allowed_address_pairs=list(attrs.get("allowed_address_pairs") or []),
            )
            self._assign_mac(session, row, attrs.get("mac_address"))
            self._allocate_ips(session, row, attrs.get("fixed_ips"))
            session.flush()
            security_groups.set_port_security(session, row, attrs.get("security_groups"))
            context = self._port_context(session, row)
            self.mechanism_manager.precommit("create_port_precommit", context)
            return context

    def update_port(self, port_id: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        context = self._update_port_txn(port_id, changes)
        errors = self.mechanism_manager.postcommit(
            "update_port_postcommit", context, stop_on_error=False
        )
        if errors:
            self._record_faults("port", port_id, "update_port_postcommit", errors,
                                set_error=True)
            raise exceptions.MechanismDriverError("update_port_postcommit", errors)
        self.bind_port_if_needed(port_id)
        return self.get_port(port_id)

    @db_api.retry_on_conflict
    def _update_port_txn(self, port_id: str, changes: Mapping[str, Any]) -> contexts.PortContext:
        with self.db.transaction() as session:
            row = self._get_port_row(session, port_id, lock=True)
            original = self._port_dict(session, row)
            original_levels = self._levels(session, port_id)
            changes = dict(changes)
            fixed_ips = changes.pop("fixed_ips", None)
            groups = changes.pop("security_groups", None)
            binding_keys = {"host", "vnic_type", "profile"}
            rebind = any(
                key in changes and changes[key] != getattr(row, key) for key in binding_keys
            )
            for key, value in changes.items():
                setattr(row, key, value)
            if fixed_ips is not None:
                session.execute(sa.delete(m.IPAllocation).where(m.IPAllocation.port_id == port_id))
                self._allocate_ips(session, row, fixed_ips)
            security_groups.set_port_security(session, row, groups)
            if rebind:
                session.execute(sa.delete(m.PortBindingLevel)
                                .where(m.PortBindingLevel.port_id == port_id))
                row.vif_type = mech_api.VIF_TYPE_UNBOUND
                row.vif_details = {}
                row.binding_failures = []
                row.status = "DOWN"
            elif row.status == "ERROR":
                row.status = "ACTIVE" if row.vif_type not in (
                    mech_api.VIF_TYPE_UNBOUND, mech_api.VIF_TYPE_BINDING_FAILED) else "DOWN"
            row.revision += 1
            session.flush()
            context = self._port_context(session, row, original, original_levels)
            self.mechanism_manager.precommit("update_port_precommit", context)
            return context

    def delete_port(self, port_id: str) -> None:
        context = self._delete_port_txn(port_id)
        if context is None:
            return
        errors = self.mechanism_manager.postcommit(
            "delete_port_postcommit", context, stop_on_error=False, reverse=True
        )
        if errors:
            self._record_faults("port", port_id, "delete_port_postcommit", errors)

    @db_api.retry_on_conflict
    def _delete_port_txn(self, port_id: str) -> contexts.PortContext | None:
        with self.db.transaction() as session:
            row = session.get(m.Port, port_id, with_for_update=True)
            if row is None:
                return None
            context = self._port_context(session, row)
            self.mechanism_manager.precommit("delete_port_precommit", context, reverse=True)
            session.execute(sa.delete(m.IPAllocation).where(m.IPAllocation.port_id == port_id))
            session.execute(sa.delete(m.PortBindingLevel)
                            .where(m.PortBindingLevel.port_id == port_id))
            session.delete(row)
            return context

    # --- binding --------------------------------------------------------------------------

    def bind_port_if_needed(self, port_id: str) -> None:
        """Bind a port that has a host and is unbound or failed: compute the binding outside
        any transaction, then commit it only if the port did not change meanwhile (else
        recompute, up to ``[ml2] max_bind_tries`` times)."""
        for _ in range(self.conf.ml2.max_bind_tries):
            with self.db.transaction() as session:
                row = session.get(m.Port, port_id)
                if row is None or not row.host or row.vif_type not in (
                    mech_api.VIF_TYPE_UNBOUND, mech_api.VIF_TYPE_BINDING_FAILED
                ):
                    return
                revision = row.revision
                context = self._port_context(session, row)
            result = self.mechanism_manager.bind_port(context)
            committed = self._commit_binding(port_id, revision, result)
            if committed is None:
                continue
            errors = self.mechanism_manager.postcommit(
                "update_port_postcommit", committed, stop_on_error=False
            )
            if errors:
                self._record_faults("port", port_id, "update_port_postcommit", errors,
                                    set_error=True)
            return
        LOG.warning("port %s changed during each of %d binding attempts; left unbound",
                    port_id, self.conf.ml2.max_bind_tries)

    @db_api.retry_on_conflict
    def _commit_binding(
        self, port_id: str, revision: int, result: managers.BindingResult
    ) -> contexts.PortContext | None:
        with self.db.transaction() as session:
            row = session.get(m.Port, port_id, with_for_update=True)
            if row is None or row.revision != revision:
                return None
            original = self._port_dict(session, row)
            original_levels = self._levels(session, port_id)
            session.execute(sa.delete(m.PortBindingLevel)
                            .where(m.PortBindingLevel.port_id == port_id))
            for index, level in enumerate(result.levels):
                session.add(m.PortBindingLevel(port_id=port_id, level=index,
                                               driver=level["bound_driver"],
                                               segment_id=level["bound_segment"]["id"]))
            row.vif_type = result.vif_type
            row.vif_details = result.vif_details
            row.binding_failures = result.failures
            if result.status:
                row.status = result.status
            row.revision += 1
            session.flush()
            context = self._port_context(session, row, original, original_levels)
            self.mechanism_manager.precommit("update_port_precommit", context)
            if result.failures:
                LOG.warning("port %s could not be bound on host %s: %s", port_id, row.host,
                            "; ".join(managers.failure_text(f) for f in result.failures))
            return context

    def rebind_failed_ports(self, host: str) -> int:
        """Bind again every port of ``host`` whose binding failed (an agent came up)."""
        with self.db.transaction() as session:
            ports = session.execute(
                sa.select(m.Port.id).where(m.Port.host == host,
                                           m.Port.vif_type == mech_api.VIF_TYPE_BINDING_FAILED)
            ).scalars().all()
        for port_id in ports:
            self.bind_port_if_needed(port_id)
        return len(ports)
