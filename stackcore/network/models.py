"""SQLAlchemy models of the network family (networks, subnets, ports, segments, agents,
security groups).

Segment IDs are tracked in two tables. ``ml2_segment_ranges`` holds the *free* IDs of the
configured ranges as ``[first, last]`` rows, so start-up and storage cost depend on the number
of ranges, not their size. ``ml2_segment_allocations`` holds one row per *allocated* ID, with a
primary key that makes a double allocation impossible whatever the free-range rows say.
``physical_network`` is ``""`` (not NULL) for types without one so the keys compare equal.
"""

# No `from __future__ import annotations`: SQLAlchemy would eval every string `Mapped[...]`
# annotation when mapping, a tenth of declaring the models at every start-up (issue 18).

import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from stackcore.db.models import Base, project_column, utcnow


class Network(Base):
    __tablename__ = "networks"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    project_id: Mapped[str] = project_column()
    #: usable by every project (its subnets readable, ports creatable on it)
    shared: Mapped[bool] = mapped_column(Boolean, default=False, server_default=sa.false())
    #: ``router:external``: a network routers take their gateway on
    router_external: Mapped[bool] = mapped_column(Boolean, default=False,
                                                  server_default=sa.false())
    admin_state_up: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(16), default="ACTIVE")
    mtu: Mapped[int] = mapped_column(Integer, default=0)
    revision: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


class NetworkSegment(Base):
    """One segment of a network; ``segment_index`` orders them (0 is the first)."""

    __tablename__ = "network_segments"
    __table_args__ = (
        UniqueConstraint("network_id", "segment_index", name="uniq_segments0network0index"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    network_id: Mapped[str] = mapped_column(
        ForeignKey("networks.id", ondelete="CASCADE"), index=True
    )
    network_type: Mapped[str] = mapped_column(String(32))
    physical_network: Mapped[str | None] = mapped_column(String(64), nullable=True)
    segmentation_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    mtu: Mapped[int] = mapped_column(Integer, default=0)
    segment_index: Mapped[int] = mapped_column(Integer, default=0)
    is_dynamic: Mapped[bool] = mapped_column(Boolean, default=False)


class SegmentRange(Base):
    """A run of free IDs ``first..last`` (inclusive) of one type and physical network."""

    __tablename__ = "ml2_segment_ranges"
    __table_args__ = (
        Index("ix_ml2_segment_ranges0type0physnet0first", "network_type", "physical_network",
              "first"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    network_type: Mapped[str] = mapped_column(String(32))
    physical_network: Mapped[str] = mapped_column(String(64), default="")
    first: Mapped[int] = mapped_column(BigInteger)
    last: Mapped[int] = mapped_column(BigInteger)


class SegmentAllocation(Base):
    """An allocated segmentation ID (flat networks use ID 0 on their physical network)."""

    __tablename__ = "ml2_segment_allocations"

    network_type: Mapped[str] = mapped_column(String(32), primary_key=True)
    physical_network: Mapped[str] = mapped_column(String(64), primary_key=True, default="")
    segmentation_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=utcnow)


class Subnet(Base):
    __tablename__ = "subnets"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    network_id: Mapped[str] = mapped_column(
        ForeignKey("networks.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(255), default="")
    project_id: Mapped[str] = project_column()
    ip_version: Mapped[int] = mapped_column(Integer)
    cidr: Mapped[str] = mapped_column(String(64))
    gateway_ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    enable_dhcp: Mapped[bool] = mapped_column(Boolean, default=True)
    allocation_pools: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # Neutron keeps these in rows of their own (dnsnameservers, subnetroutes); here they are
    # JSON lists on the subnet like allocation_pools: always read, validated and replaced
    # whole with their subnet (update replaces the list), never queried by address, and the
    # list keeps the nameservers' order without an order column. NULL (rows older than
    # network_0004) reads as an empty list.
    dns_nameservers: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True, default=list)
    host_routes: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True, default=list)
    revision: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=utcnow)


class Port(Base):
    """A port and its current binding (``binding_*`` columns, ``vif_*``)."""

    __tablename__ = "ports"
    __table_args__ = (
        UniqueConstraint("network_id", "mac_address", name="uniq_ports0network0mac"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    network_id: Mapped[str] = mapped_column(ForeignKey("networks.id"), index=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    project_id: Mapped[str] = project_column()
    mac_address: Mapped[str] = mapped_column(String(32))
    admin_state_up: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(16), default="DOWN")
    device_id: Mapped[str] = mapped_column(String(255), default="", index=True)
    device_owner: Mapped[str] = mapped_column(String(255), default="")
    delete_with_device: Mapped[bool] = mapped_column(Boolean, default=False)
    host: Mapped[str] = mapped_column(String(255), default="", index=True)
    vnic_type: Mapped[str] = mapped_column(String(32), default="normal")
    profile: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    vif_type: Mapped[str] = mapped_column(String(64), default="unbound")
    vif_details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    binding_failures: Mapped[list[Any]] = mapped_column(JSON, default=list)
    #: off: the agents filter nothing (no security groups, no anti-spoofing)
    port_security_enabled: Mapped[bool] = mapped_column(Boolean, default=True,
                                                        server_default=sa.true())
    #: ``[{"ip_address": IP or CIDR, "mac_address": MAC}]`` the port may also send from
    allowed_address_pairs: Mapped[list[Any]] = mapped_column(JSON, default=list,
                                                            server_default="[]")
    revision: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


class PortBindingLevel(Base):
    """Level ``level`` of a port's binding: which driver bound which segment (0 = fabric)."""

    __tablename__ = "port_binding_levels"

    port_id: Mapped[str] = mapped_column(
        ForeignKey("ports.id", ondelete="CASCADE"), primary_key=True
    )
    level: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    driver: Mapped[str] = mapped_column(String(64))
    segment_id: Mapped[str] = mapped_column(String(36))


class IPAllocation(Base):
    """One fixed IP of a port. The primary key makes a duplicate address impossible."""

    __tablename__ = "ip_allocations"

    subnet_id: Mapped[str] = mapped_column(
        ForeignKey("subnets.id", ondelete="CASCADE"), primary_key=True
    )
    ip_address: Mapped[str] = mapped_column(String(64), primary_key=True)
    port_id: Mapped[str] = mapped_column(ForeignKey("ports.id", ondelete="CASCADE"), index=True)
    network_id: Mapped[str] = mapped_column(String(36), index=True)


class NetworkFault(Base):
    """A mechanism-driver failure recorded against a network, subnet or port (which may be
    gone: a failed delete postcommit is recorded here after the row is deleted)."""

    __tablename__ = "network_faults"
    #: the failed mechanism-driver hook (see :mod:`stackcore.faults`)
    FAULT_STEP_COLUMN = "operation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    resource_type: Mapped[str] = mapped_column(String(16))
    resource_id: Mapped[str] = mapped_column(String(36), index=True)
    operation: Mapped[str] = mapped_column(String(64))
    driver: Mapped[str] = mapped_column(String(64))
    exc_class: Mapped[str] = mapped_column(String(255))
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=utcnow)


class Agent(Base):
    """An L2 agent (Open vSwitch, Linux bridge...) and its last reported state."""

    __tablename__ = "agents"
    __table_args__ = (UniqueConstraint("agent_type", "host", name="uniq_agents0type0host"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    agent_type: Mapped[str] = mapped_column(String(255))
    binary: Mapped[str] = mapped_column(String(255))
    host: Mapped[str] = mapped_column(String(255), index=True)
    topic: Mapped[str] = mapped_column(String(255), default="")
    admin_state_up: Mapped[bool] = mapped_column(Boolean, default=True)
    configurations: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    started_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=utcnow)
    heartbeat_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=utcnow)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=utcnow)


class SecurityGroup(Base):
    """A project's security group: a set of rules applied to the ports that are members."""

    __tablename__ = "security_groups"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    description: Mapped[str] = mapped_column(String(255), default="")
    project_id: Mapped[str] = project_column()
    revision: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=utcnow)


class DefaultSecurityGroup(Base):
    """The ``default`` group of a project; the primary key makes a second one impossible when
    two first uses race (Neutron's ``default_security_group`` table)."""

    __tablename__ = "default_security_groups"

    project_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    security_group_id: Mapped[str] = mapped_column(
        ForeignKey("security_groups.id", ondelete="CASCADE"))


class SecurityGroupRule(Base):
    """One rule: traffic in ``direction`` matching it is allowed (everything else is not).
    ``protocol`` is a number (None: any); the port range holds ICMP type/code for ICMP."""

    __tablename__ = "security_group_rules"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    security_group_id: Mapped[str] = mapped_column(
        ForeignKey("security_groups.id", ondelete="CASCADE"), index=True)
    project_id: Mapped[str] = project_column()
    direction: Mapped[str] = mapped_column(String(8))
    ethertype: Mapped[str] = mapped_column(String(4))
    protocol: Mapped[int | None] = mapped_column(Integer, nullable=True)
    port_range_min: Mapped[int | None] = mapped_column(Integer, nullable=True)
    port_range_max: Mapped[int | None] = mapped_column(Integer, nullable=True)
    remote_ip_prefix: Mapped[str | None] = mapped_column(String(64), nullable=True)
    remote_group_id: Mapped[str | None] = mapped_column(
        ForeignKey("security_groups.id", ondelete="CASCADE"), nullable=True, index=True)
    description: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=utcnow)


class SecurityGroupPortBinding(Base):
    """A port's membership of a security group."""

    __tablename__ = "security_group_port_bindings"

    port_id: Mapped[str] = mapped_column(ForeignKey("ports.id", ondelete="CASCADE"),
                                         primary_key=True)
    security_group_id: Mapped[str] = mapped_column(
        ForeignKey("security_groups.id"), primary_key=True, index=True)


class Router(Base):
    """A project's router (Neutron's L3 ``routers``). Its ports are the ports whose
    ``device_id`` is the router's id (``device_owner`` ``network:router_gateway`` or
    ``network:router_interface``); ``gw_port_id`` names the gateway one.

    ``host`` is the one L3 agent that serves it ("" until an agent claims it with a
    conditional UPDATE: two agents never both win the same router). ``status`` is what that
    agent last reported: ``BUILD`` until it first served the router, ``ACTIVE`` once it has,
    ``ERROR`` when its last attempt failed (``fault`` says why)."""

    __tablename__ = "routers"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    project_id: Mapped[str] = project_column()
    admin_state_up: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(16), default="BUILD")
    fault: Mapped[str | None] = mapped_column(Text, nullable=True)
    gw_port_id: Mapped[str | None] = mapped_column(
        ForeignKey("ports.id", ondelete="SET NULL"), nullable=True)
    enable_snat: Mapped[bool] = mapped_column(Boolean, default=True)
    host: Mapped[str] = mapped_column(String(255), default="", server_default="", index=True)
    revision: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=utcnow)


class FloatingIP(Base):
    """An address of an external network (held by a ``network:floatingip`` port) and, when
    associated, the fixed address of a port it is translated to 1:1 by ``router_id``."""

    __tablename__ = "floatingips"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = project_column()
    floating_network_id: Mapped[str] = mapped_column(ForeignKey("networks.id"), index=True)
    floating_port_id: Mapped[str] = mapped_column(ForeignKey("ports.id"), index=True)
    floating_ip_address: Mapped[str] = mapped_column(String(64))
    fixed_port_id: Mapped[str | None] = mapped_column(
        ForeignKey("ports.id", ondelete="SET NULL"), nullable=True, index=True)
    fixed_ip_address: Mapped[str | None] = mapped_column(String(64), nullable=True)
    router_id: Mapped[str | None] = mapped_column(
        ForeignKey("routers.id", ondelete="SET NULL"), nullable=True, index=True)
    status: Mapped[str] = mapped_column(String(16), default="DOWN")
    revision: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=utcnow)
