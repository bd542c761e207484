"""What an L2 agent should realise on its host, read from the ML2 database.

The agents reconcile their backend against this state on start-up and every polling
interval (level-triggered: no notification can be missed, a restart is just another pass).
They only read, through the ML2 tables, and never write them: the server owns the database.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import sqlalchemy as sa

from stackcore.db import api as db_api
from stackcore.network import models as m


@dataclasses.dataclass(frozen=True)
class BoundPort:
    """A port bound to this host by this agent's mechanism driver, with its bottom segment."""

    port_id: str
    mac_address: str
    network_id: str
    network_type: str
    physical_network: str | None
    segmentation_id: int | None
    mtu: int
    admin_state_up: bool


@dataclasses.dataclass(frozen=True)
class HostState:
    """Ports to wire (by port id) and, per overlay network, the tunnel endpoints of the other
    hosts that have ports on it."""

    ports: dict[str, BoundPort]
    peers: dict[str, frozenset[str]]

    def networks(self) -> dict[str, BoundPort]:
        """One port per network (the network's segment is the same for all its ports)."""
        result: dict[str, BoundPort] = {}
        for port in sorted(self.ports.values(), key=lambda p: p.port_id):
            result.setdefault(port.network_id, port)
        return result


def read_host_state(
    db: db_api.Database, host: str, vif_type: str, agent_type: str,
    tunnel_types: Iterable[str] = ("vxlan",),
) -> HostState:
    """The ports of ``host`` bound with ``vif_type``, and the peers of their overlay networks:
    the ``tunneling_ip`` reported by the ``agent_type`` agents of the other hosts that have
    ports bound with ``vif_type`` on the same network."""
    tunnel_types = set(tunnel_types)
    with db.transaction() as session:
        bottom = (
            sa.select(m.PortBindingLevel.port_id,
                      sa.func.max(m.PortBindingLevel.level).label("level"))
            .group_by(m.PortBindingLevel.port_id).subquery()
        )
        rows = session.execute(
            sa.select(m.Port, m.NetworkSegment)
            .join(bottom, bottom.c.port_id == m.Port.id)
            .join(m.PortBindingLevel, sa.and_(m.PortBindingLevel.port_id == m.Port.id,
                                              m.PortBindingLevel.level == bottom.c.level))
            .join(m.NetworkSegment, m.NetworkSegment.id == m.PortBindingLevel.segment_id)
            .where(m.Port.host == host, m.Port.vif_type == vif_type)
        ).all()
        ports = {
            port.id: BoundPort(
                port_id=port.id, mac_address=port.mac_address, network_id=port.network_id,
                network_type=segment.network_type, physical_network=segment.physical_network,
                segmentation_id=segment.segmentation_id, mtu=segment.mtu,
                admin_state_up=port.admin_state_up)
            for port, segment in rows
        }
        overlay = {p.network_id for p in ports.values() if p.network_type in tunnel_types}
        peers: dict[str, set[str]] = {net: set() for net in overlay}
        if overlay:
            remote = session.execute(
                sa.select(m.Port.network_id, m.Agent.configurations)
                .join(m.Agent, sa.and_(m.Agent.host == m.Port.host,
                                       m.Agent.agent_type == agent_type))
                .where(m.Port.network_id.in_(overlay), m.Port.host != host,
                       m.Port.vif_type == vif_type)
            ).all()
            for network_id, configurations in remote:
                ip = (configurations or {}).get("tunneling_ip")
                if ip:
                    peers[network_id].add(str(ip))
    return HostState(ports, {net: frozenset(ips) for net, ips in peers.items()})


def existing_ports(db: db_api.Database, port_ids: Iterable[str]) -> set[str]:
    """Which of ``port_ids`` still exist in the database (whatever their binding)."""
    ids = sorted(set(port_ids))
    if not ids:
        return set()
    with db.transaction() as session:
        return set(session.execute(sa.select(m.Port.id).where(m.Port.id.in_(ids))).scalars())
