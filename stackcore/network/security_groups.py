"""Security groups: the API on ``cloud.network``, port membership, and what the L2 agents
enforce (Neutron's ``securitygroups`` extension, ``port-security`` and
``allowed-address-pairs``).

A group belongs to a project and holds *allow* rules; a port that is a member of groups
passes the traffic that any of their rules allows, in each direction, and nothing else
(stateful: the replies of an allowed connection always pass). Rules say ``direction``
(``ingress``: towards the port, ``egress``: from it), ``ethertype`` (``IPv4``/``IPv6``), an
optional ``protocol`` (a name - ``tcp``, ``udp``, ``icmp``, ``icmpv6`` ... - or a number
0-255; ``None``/``"any"``: every protocol), a port range (TCP/UDP/SCTP/DCCP/UDP-Lite ports;
for ICMP ``port_range_min`` is the type and ``port_range_max`` the code) and at most one
remote: ``remote_ip_prefix`` (a CIDR of the rule's ethertype) or ``remote_group_id`` (a group
of the same project: its members' addresses).

Each project has a ``default`` group, made on its first use (a port created without
``security_groups``, or the first group it creates; reads make nothing): egress allowed for
both ethertypes, ingress allowed from the group's own members. It cannot be deleted or
renamed.

Ports: ``security_groups`` (default: the project's default group), ``port_security_enabled``
(off: no filtering and no anti-spoofing at all; it needs no groups and no address pairs), and
``allowed_address_pairs`` (``[{"ip_address": IP or CIDR, "mac_address"?}]``: more sources
the port may send from, and addresses its group membership stands for). Ports whose
``device_owner`` starts with ``network:`` (DHCP, router ports) are trusted, as in Neutron: no
default group, never filtered.

Every argument is checked before anything is written: one :class:`~stackcore.exception.Invalid`
naming the field (``protocol``, ``port_range_min``, ``remote_ip_prefix``, ``remote_group_id``
...), nothing persisted. After every change the L2 agents with ports are told over RPC
(:func:`stackcore.network.agents.rpc.notify_security_groups_changed`) so the change reaches
the data plane at once; their periodic pass would apply it anyway.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from stackcore import exception, schemas, validate
from stackcore import schemas as s
from stackcore.db import paging
from stackcore.network import notify
from stackcore.project import policy

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

DEFAULT_NAME = "default"
DIRECTIONS = ("ingress", "egress")
ETHERTYPES = ("IPv4", "IPv6")
#: Protocol names accepted (Neutron's list, less exotic ones) -> IANA numbers.
PROTOCOLS: Mapping[str, int] = {
    "icmp": 1, "igmp": 2, "tcp": 6, "egp": 8, "udp": 17, "ipv6-encap": 41, "rsvp": 46,
    "gre": 47, "esp": 50, "ah": 51, "icmpv6": 58, "ipv6-icmp": 58, "ospf": 89, "pim": 103,
    "vrrp": 112, "sctp": 132, "dccp": 33, "udplite": 136,
}
ICMP, ICMPV6 = 1, 58
#: Protocols whose rules may have a port range (layer-4 ports).
PORT_PROTOCOLS = frozenset({6, 17, 33, 132, 136})
#: Device owners whose ports are never filtered (DHCP, routers: the network's own ports).
TRUSTED_OWNER_PREFIX = "network:"

RULE_FIELDS = ("direction", "ethertype", "protocol", "port_range_min", "port_range_max",
               "remote_ip_prefix", "remote_group_id")


@dataclasses.dataclass(frozen=True)
class SecurityGroupRule:
    id: str
    security_group_id: str
    direction: str
    ethertype: str
    protocol: int | None  # IANA number; None: any
    port_range_min: int | None
    port_range_max: int | None
    remote_ip_prefix: str | None
    remote_group_id: str | None
    description: str
    created_at: datetime.datetime
    project_id: str = "admin"


@dataclasses.dataclass(frozen=True)
class SecurityGroup:
    id: str
    name: str
    description: str
    rules: tuple[SecurityGroupRule, ...]
    created_at: datetime.datetime
    project_id: str = "admin"


# --- validation (pure) ------------------------------------------------------------------

def protocol_number(value: Any) -> int | None:
    """``protocol`` as an IANA number (None: any); Invalid naming ``protocol`` otherwise."""
    if value is None or value == "any":
        return None
    if isinstance(value, bool):
        raise exception.Invalid("protocol", "must be a protocol name or a number 0-255", value)
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        number = int(value)
        if not 0 <= number <= 255:
            raise exception.Invalid("protocol", "must be a number 0-255", value)
        return number
    if isinstance(value, str) and value.lower() in PROTOCOLS:
        return PROTOCOLS[value.lower()]
    raise exception.Invalid("protocol", "must be 'any', a number 0-255 or one of "
                            + ", ".join(sorted(PROTOCOLS)), value)


def _optional_int(field: str, value: Any, low: int, high: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise exception.Invalid(field, f"must be an integer {low}-{high}", value)
    return value


def normalize_rule(direction: Any, ethertype: Any, protocol: Any, port_range_min: Any,
                   port_range_max: Any, remote_ip_prefix: Any, remote_group_id: Any
                   ) -> dict[str, Any]:
    """A rule's fields checked and normalized (protocol number, prefix network address,
    ICMP on IPv6 as ICMPv6); one Invalid naming the first bad field."""
    direction = validate.choice("direction", direction, DIRECTIONS)
    ethertype = validate.choice("ethertype", ethertype, ETHERTYPES)
    number = protocol_number(protocol)
    if number == ICMP and ethertype == "IPv6":
        number = ICMPV6  # Neutron's legacy spelling: "icmp" on IPv6 means ICMPv6
    if number == ICMPV6 and ethertype == "IPv4":
        raise exception.Invalid("protocol", "icmpv6 needs ethertype IPv6", protocol)
    if number in (ICMP, ICMPV6):
        low = _optional_int("port_range_min", port_range_min, 0, 255)
        high = _optional_int("port_range_max", port_range_max, 0, 255)
        if high is not None and low is None:
            raise exception.Invalid("port_range_max", "an ICMP code (port_range_max) needs "
                                    "an ICMP type (port_range_min)", port_range_max)
    elif number in PORT_PROTOCOLS:
        low = _optional_int("port_range_min", port_range_min, 1, 65535)
        high = _optional_int("port_range_max", port_range_max, 1, 65535)
        if (low is None) != (high is None):
            field = "port_range_max" if high is None else "port_range_min"
            raise exception.Invalid(field, "port_range_min and port_range_max go together",
                                    None)
        if low is not None and high is not None and low > high:
            raise exception.Invalid("port_range_min", f"is above port_range_max ({high})", low)
    else:
        for field, value in (("port_range_min", port_range_min),
                             ("port_range_max", port_range_max)):
            if value is not None:
                name = "any protocol" if number is None else f"protocol {protocol}"
                raise exception.Invalid(field, f"{name} has no ports (only tcp, udp, sctp, "
                                        "dccp, udplite; icmp type/code)", value)
        low = high = None
    prefix = None
    if remote_ip_prefix is not None:
        if remote_group_id is not None:
            raise exception.Invalid("remote_ip_prefix", "give remote_ip_prefix or "
                                    "remote_group_id, not both", remote_ip_prefix)
        try:
            net = ipaddress.ip_network(str(remote_ip_prefix), strict=False)
        except ValueError:
            raise exception.Invalid("remote_ip_prefix", "is not a CIDR (e.g. 10.0.0.0/24)",
                                    remote_ip_prefix) from None
        if not isinstance(remote_ip_prefix, str) or \
                (net.version == 4) != (ethertype == "IPv4"):
            raise exception.Invalid("remote_ip_prefix", f"is not an {ethertype} CIDR",
                                    remote_ip_prefix)
        prefix = str(net)
    if remote_group_id is not None:
        remote_group_id = validate.uuid_like("remote_group_id", remote_group_id)
    return {"direction": direction, "ethertype": ethertype, "protocol": number,
            "port_range_min": low, "port_range_max": high, "remote_ip_prefix": prefix,
            "remote_group_id": remote_group_id}


def normalize_address_pairs(value: Any) -> list[dict[str, str]]:
    """``allowed_address_pairs`` checked: IP or CIDR, optional MAC; Invalid naming the item."""
    if value is None:
        return []
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise exception.Invalid("allowed_address_pairs", "must be a list of {ip_address, "
                                "mac_address?}", value)
    result: list[dict[str, str]] = []
    for index, item in enumerate(value):
        field = f"allowed_address_pairs[{index}]"
        if not isinstance(item, Mapping) or "ip_address" not in item or \
                set(item) - {"ip_address", "mac_address"}:
            raise exception.Invalid(field, "must be a mapping with ip_address and optionally "
                                    "mac_address", item)
        try:
            net = ipaddress.ip_network(str(item["ip_address"]), strict=False)
        except ValueError:
            raise exception.Invalid(f"{field}.ip_address", "is not an IP address or CIDR",
                                    item["ip_address"]) from None
        pair = {"ip_address": str(net.network_address) if net.num_addresses == 1
                else str(net)}
        if item.get("mac_address") is not None:
            mac = str(item["mac_address"]).lower()
            if not validate_mac(mac):
                raise exception.Invalid(f"{field}.mac_address", "must look like "
                                        "fa:16:3e:12:34:56", item["mac_address"])
            pair["mac_address"] = mac
        if pair in result:
            raise exception.Invalid(field, "is listed twice", item)
        result.append(pair)
    if len(result) > 10:
        raise exception.Invalid("allowed_address_pairs", "lists more than 10 pairs", value)
    return result


def validate_mac(mac: str) -> bool:
    parts = mac.split(":")
    return len(parts) == 6 and all(len(p) == 2 and all(c in "0123456789abcdef" for c in p)
                                   for p in parts)


# --- database helpers (inside the caller's transaction) --------------------------------

def _default_rules(group_id: str, project_id: str) -> list[dict[str, Any]]:
    rules = []
    for ethertype in ETHERTYPES:
        rules.append({"direction": "egress", "ethertype": ethertype, "protocol": None,
                      "port_range_min": None, "port_range_max": None,
                      "remote_ip_prefix": None, "remote_group_id": None})
        rules.append({"direction": "ingress", "ethertype": ethertype, "protocol": None,
                      "port_range_min": None, "port_range_max": None,
                      "remote_ip_prefix": None, "remote_group_id": group_id})
    return rules


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def ensure_default_group(db: Any, project_id: str) -> str:
    """The id of ``project_id``'s default group, made (with its four rules) if missing, in a
    transaction of its own: two first uses racing both end with the one group."""
    import sqlalchemy as sa

    from stackcore.network import models as m

    with db.transaction() as session:
        found = session.get(m.DefaultSecurityGroup, project_id)
        if found is not None:
            return str(found.security_group_id)
    group_id = str(uuid.uuid4())
    try:
        with db.transaction() as session:
            session.add(m.SecurityGroup(id=group_id, name=DEFAULT_NAME, project_id=project_id,
                                        description="Default security group"))
            session.flush()
            session.add(m.DefaultSecurityGroup(project_id=project_id,
                                               security_group_id=group_id))
            session.flush()
            for rule in _default_rules(group_id, project_id):
                session.add(m.SecurityGroupRule(id=str(uuid.uuid4()), project_id=project_id,
                                                security_group_id=group_id, **rule))
    except sa.exc.IntegrityError:
        pass  # another caller made it first: use theirs
    with db.transaction() as session:
        found = session.get(m.DefaultSecurityGroup, project_id)
        assert found is not None
        return str(found.security_group_id)


def set_port_security(session: Session, row: Any, groups: Sequence[str] | None,
                      trusted_default: bool = True) -> None:
    """Apply a port's ``security_groups`` (None: leave as is) after its
    ``port_security_enabled`` / ``allowed_address_pairs`` were set on ``row``: the groups
    must exist in the port's project; port security off allows neither groups nor pairs.
    Raises Invalid (the caller's transaction then rolls back)."""
    import sqlalchemy as sa

    from stackcore.network import models as m

    if groups is not None:
        groups = sorted(set(groups))
        found = {g.id: g for g in session.execute(
            sa.select(m.SecurityGroup).where(m.SecurityGroup.id.in_(groups))).scalars()}
        for group_id in groups:
            group = found.get(group_id)
            if group is None or group.project_id != row.project_id:
                raise exception.Invalid("security_groups", f"{group_id} is not a security "
                                        f"group of project {row.project_id}", group_id)
        session.execute(sa.delete(m.SecurityGroupPortBinding)
                        .where(m.SecurityGroupPortBinding.port_id == row.id))
        for group_id in groups:
            session.add(m.SecurityGroupPortBinding(port_id=row.id, security_group_id=group_id))
        session.flush()
    if not row.port_security_enabled:
        if row.allowed_address_pairs:
            raise exception.Invalid("allowed_address_pairs", "needs port_security_enabled "
                                    "(a port without port security may send from anything)",
                                    row.allowed_address_pairs)
        if port_groups(session, row.id):
            raise exception.Invalid("port_security_enabled", "cannot be off while the port "
                                    "is in security groups (give security_groups=[])", False)


def port_groups(session: Session, port_id: str) -> list[str]:
    import sqlalchemy as sa

    from stackcore.network import models as m

    return sorted(session.execute(
        sa.select(m.SecurityGroupPortBinding.security_group_id)
        .where(m.SecurityGroupPortBinding.port_id == port_id)).scalars())


def is_trusted(device_owner: str) -> bool:
    return device_owner.startswith(TRUSTED_OWNER_PREFIX)


def rules_for_ports(session: Session, port_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """What the agents enforce per port (the agent RPC's ``security_group_rules_for_devices``):
    ``port_security_enabled`` (False: filter nothing), ``mac_address``, ``fixed_ips``,
    ``allowed_address_pairs`` (each with the MAC, the port's own when not given),
    ``security_groups`` and ``rules`` - the groups' rules with each ``remote_group_id``
    replaced by one rule per address of the remote group's members (their fixed IPs and
    address pairs of the rule's ethertype), as ``remote_ip_prefix`` CIDRs; a remote group
    without members adds no rule. Sorted, so equal inputs give equal outputs."""
    import sqlalchemy as sa

    from stackcore.network import models as m

    ids = sorted(set(port_ids))
    if not ids:
        return {}
    ports = {p.id: p for p in session.execute(
        sa.select(m.Port).where(m.Port.id.in_(ids))).scalars()}
    memberships: dict[str, list[str]] = {}
    for port_id, group_id in session.execute(
            sa.select(m.SecurityGroupPortBinding.port_id,
                      m.SecurityGroupPortBinding.security_group_id)
            .where(m.SecurityGroupPortBinding.port_id.in_(ids))):
        memberships.setdefault(port_id, []).append(group_id)
    groups = sorted({g for gs in memberships.values() for g in gs})
    rules = session.execute(sa.select(m.SecurityGroupRule).where(
        m.SecurityGroupRule.security_group_id.in_(groups))).scalars().all() if groups else []
    remote_groups = sorted({r.remote_group_id for r in rules if r.remote_group_id})
    member_addresses: dict[str, set[str]] = {g: set() for g in remote_groups}
    if remote_groups:
        members = session.execute(
            sa.select(m.SecurityGroupPortBinding.security_group_id, m.Port)
            .join(m.Port, m.Port.id == m.SecurityGroupPortBinding.port_id)
            .where(m.SecurityGroupPortBinding.security_group_id.in_(remote_groups))).all()
        member_ids = sorted({p.id for _, p in members})
        addresses: dict[str, set[str]] = {}
        for port_id, address in session.execute(
                sa.select(m.IPAllocation.port_id, m.IPAllocation.ip_address)
                .where(m.IPAllocation.port_id.in_(member_ids))):
            addresses.setdefault(port_id, set()).add(
                str(ipaddress.ip_network(address)))
        for group_id, port in members:
            found = addresses.get(port.id, set()) | {
                str(ipaddress.ip_network(p["ip_address"], strict=False))
                for p in port.allowed_address_pairs or []}
            member_addresses[group_id] |= found
    ips: dict[str, list[str]] = {}
    for port_id, address in session.execute(
            sa.select(m.IPAllocation.port_id, m.IPAllocation.ip_address)
            .where(m.IPAllocation.port_id.in_(ids))):
        ips.setdefault(port_id, []).append(address)
    result: dict[str, dict[str, Any]] = {}
    for port_id in ids:
        found_port = ports.get(port_id)
        if found_port is None:
            continue
        port = found_port
        enabled = bool(port.port_security_enabled) and not is_trusted(port.device_owner)
        pairs = [{"ip_address": p["ip_address"],
                  "mac_address": p.get("mac_address") or port.mac_address}
                 for p in port.allowed_address_pairs or []] if enabled else []
        expanded: set[tuple[Any, ...]] = set()
        if enabled:
            mine = set(memberships.get(port_id, ()))
            for rule in rules:
                if rule.security_group_id not in mine:
                    continue
                base = (rule.direction, rule.ethertype, rule.protocol, rule.port_range_min,
                        rule.port_range_max)
                if rule.remote_group_id:
                    version = 4 if rule.ethertype == "IPv4" else 6
                    for prefix in member_addresses.get(rule.remote_group_id, ()):
                        if ipaddress.ip_network(prefix).version == version:
                            expanded.add((*base, prefix))
                else:
                    expanded.add((*base, rule.remote_ip_prefix))
        result[port_id] = {
            "port_security_enabled": enabled,
            "mac_address": port.mac_address,
            "fixed_ips": sorted(ips.get(port_id, [])),
            "allowed_address_pairs": sorted(pairs, key=lambda p: (p["ip_address"],
                                                                  p["mac_address"])),
            "security_groups": sorted(memberships.get(port_id, [])),
            "rules": [dict(zip(("direction", "ethertype", "protocol", "port_range_min",
                                "port_range_max", "remote_ip_prefix"), r, strict=True))
                      for r in sorted(expanded, key=lambda r: tuple(
                          (x is None, "" if x is None else str(x)) for x in r))],
        }
    return result


# --- the API (mixed into NetworkAPI) ----------------------------------------------------

RULE_SCHEMA = {
    "security_group_id": s.UUID, "direction": s.enum(*DIRECTIONS),
    "ethertype": s.enum(*ETHERTYPES),
    "protocol": s.optional(s.one_of(s.string(16), s.integer(0, 255))),
    "port_range_min": s.optional(s.integer(-1, 65535)),
    "port_range_max": s.optional(s.integer(-1, 65535)),
    "remote_ip_prefix": s.optional(s.string(64)), "remote_group_id": s.OPTIONAL_UUID,
    "description": s.DESCRIPTION,
}
_SORT = {"name": lambda item: item.name, "id": lambda item: str(item.id)}


def _rule_view(row: Any) -> SecurityGroupRule:
    return SecurityGroupRule(row.id, row.security_group_id, row.direction, row.ethertype,
                             row.protocol, row.port_range_min, row.port_range_max,
                             row.remote_ip_prefix, row.remote_group_id, row.description,
                             row.created_at, row.project_id)


class SecurityGroupsMixin:
    """``cloud.network``'s security group methods (see the module doc)."""

    db: Any
    transport: Any

    if TYPE_CHECKING:  # provided by ScopedAPI (NetworkAPI's other base)
        project_id: str
        quotas: Any

        def _sees_all(self) -> bool: ...

        def _authorize(self, rule: str, project_id: str | None = None) -> None: ...

    def _group_view(self, session: Session, row: Any) -> SecurityGroup:
        import sqlalchemy as sa

        from stackcore.network import models as m
        rules = session.execute(sa.select(m.SecurityGroupRule).where(
            m.SecurityGroupRule.security_group_id == row.id).order_by(
            m.SecurityGroupRule.created_at, m.SecurityGroupRule.id)).scalars()
        return SecurityGroup(row.id, row.name, row.description,
                             tuple(_rule_view(r) for r in rules), row.created_at,
                             row.project_id)

    def _visible_group(self, session: Session, group_id: str, rule: str | None = None) -> Any:
        from stackcore.network import models as m
        row = session.get(m.SecurityGroup, group_id)
        if row is None or not (self._sees_all() or row.project_id == self.project_id):
            raise exception.NotFound("security_group", group_id)
        return row

    def _notify_agents(self) -> None:
        from stackcore.network.agents import rpc
        rpc.notify_security_groups_changed(self.db, self.transport)

    @schemas.accepts(name=s.NAME, description=s.DESCRIPTION)
    @policy.authorize("network:security_group:create")
    @notify.emits("security_group", "create")
    def create_security_group(self, name: str, *, description: str = "") -> SecurityGroup:
        """A group of the caller's project with the default egress rules (any, IPv4 and
        IPv6), as Neutron makes them. ``default`` is reserved for the project's own."""
        from stackcore.network import models as m
        name = validate.name("name", name)
        if name == DEFAULT_NAME:
            raise exception.Invalid("name", "'default' is the project's default group "
                                    "(made on first use)", name)
        ensure_default_group(self.db, self.project_id)
        group_id = str(uuid.uuid4())
        with self.db.transaction() as session:
            self.quotas.check(session, self.project_id, {"security_groups": 1,
                                                         "security_group_rules": 2})
            row = m.SecurityGroup(id=group_id, name=name, description=description,
                                  project_id=self.project_id)
            session.add(row)
            session.flush()
            for ethertype in ETHERTYPES:
                session.add(m.SecurityGroupRule(
                    id=str(uuid.uuid4()), security_group_id=group_id,
                    project_id=self.project_id, direction="egress", ethertype=ethertype))
            session.flush()
            return self._group_view(session, row)

    @schemas.accepts(security_group_id=s.UUID)
    @policy.authorize("network:security_group:get")
    def get_security_group(self, security_group_id: str) -> SecurityGroup:
        with self.db.transaction() as session:
            return self._group_view(session, self._visible_group(session, security_group_id))

    @schemas.accepts(names_or_ids=s.array(s.NAME, 16))
    @policy.authorize("network:security_group:get")
    def resolve_security_groups(self, names_or_ids: Sequence[str]) -> list[str]:
        """The ids of the caller's groups named by ``names_or_ids`` (each an id or a name, as
        Nova's ``security_groups`` on a server): ``default`` is the project's default group
        (made on first use, as for a port); a name more than one group has is a Conflict
        listing them (Nova's rule: a name is only a handle when it is unique); a name or id
        the caller cannot see is NotFound; another project's group (an admin sees it) and one
        group named twice are Invalid - a port can only be in its own project's groups."""
        import sqlalchemy as sa

        from stackcore.network import models as m
        if isinstance(names_or_ids, str) or not isinstance(names_or_ids, Sequence):
            raise exception.Invalid("security_groups", "must be a list of security group "
                                    "names or ids", names_or_ids)
        found: list[str] = []
        for index, item in enumerate(names_or_ids):
            field = f"security_groups[{index}]"
            item = validate.name(field, item)
            if item == DEFAULT_NAME:
                group_id = ensure_default_group(self.db, self.project_id)
            else:
                with self.db.transaction() as session:
                    if _is_uuid(item):  # an id first, as Nova reads it
                        row = self._visible_group(session, str(uuid.UUID(item)))
                        if row.project_id != self.project_id:  # an admin sees it; a port
                            raise exception.Invalid(           # cannot be in it
                                field, f"is a security group of project {row.project_id}; "
                                f"ports of project {self.project_id} can only be in that "
                                "project's groups", item)
                        group_id = str(row.id)
                    else:
                        ids = sorted(session.execute(sa.select(m.SecurityGroup.id).where(
                            m.SecurityGroup.project_id == self.project_id,
                            m.SecurityGroup.name == item)).scalars())
                        if not ids:
                            raise exception.NotFound("security_group", item)
                        if len(ids) > 1:
                            raise exception.Conflict(
                                f"{field}: {len(ids)} security groups are named {item!r} "
                                f"({', '.join(ids)}); give the id")
                        group_id = ids[0]
            if group_id in found:
                raise exception.Invalid(field, "names a group already listed", item)
            found.append(group_id)
        return found

    @schemas.accepts(name=s.optional(s.NAME), all_projects=s.BOOLEAN,
                     **paging.schema(("name", "id")))
    @policy.authorize("network:security_group:list")
    def list_security_groups(
        self, *, name: str | None = None, all_projects: bool = False,
        limit: int | None = None, marker: str | None = None, sort_key: str = "name",
        sort_dir: str = "asc",
    ) -> list[SecurityGroup]:
        """The caller's groups (the default one once the project used a port or a group:
        a read makes nothing, so a read-only context may list)."""
        import sqlalchemy as sa

        from stackcore.network import models as m
        if all_projects:
            self._authorize("network:security_group:list:all_projects")
        with self.db.transaction() as session:
            query = sa.select(m.SecurityGroup)
            if not all_projects:
                query = query.where(m.SecurityGroup.project_id == self.project_id)
            if name is not None:
                query = query.where(m.SecurityGroup.name == name)
            found = [self._group_view(session, r) for r in session.execute(query).scalars()]
        return paging.page_items(found, lambda g: str(g.id), _SORT, limit=limit,
                                 marker=marker, sort_key=sort_key, sort_dir=sort_dir,
                                 resource="security_group")

    @schemas.accepts(security_group_id=s.UUID, name=s.NAME, description=s.DESCRIPTION)
    @policy.authorize("network:security_group:update")
    @notify.emits("security_group", "update")
    def update_security_group(self, security_group_id: str, *, name: str | None = None,
                              description: str | None = None) -> SecurityGroup:
        with self.db.transaction() as session:
            row = self._visible_group(session, security_group_id)
            if name is not None:
                name = validate.name("name", name)
                if (row.name == DEFAULT_NAME) != (name == DEFAULT_NAME):
                    raise exception.Invalid("name", "the default group keeps its name and no "
                                            "other group may take it", name)
                row.name = name
            if description is not None:
                row.description = description
            row.revision += 1
            session.flush()
            return self._group_view(session, row)

    @schemas.accepts(security_group_id=s.UUID)
    @policy.authorize("network:security_group:delete")
    @notify.emits("security_group", "delete")
    def delete_security_group(self, security_group_id: str) -> None:
        """Delete a group and its rules (and the rules of other groups that name it as their
        remote group). Conflict while ports are members or for the default group; a missing
        group is fine."""
        import sqlalchemy as sa

        from stackcore.network import models as m
        with self.db.transaction() as session:
            try:
                row = self._visible_group(session, security_group_id)
            except exception.NotFound:
                return
            if session.get(m.DefaultSecurityGroup, row.project_id) is not None and \
                    session.get(m.DefaultSecurityGroup, row.project_id).security_group_id \
                    == row.id:
                raise exception.Conflict(f"security group {row.id} is the default group of "
                                         f"project {row.project_id}")
            in_use = session.execute(sa.select(m.SecurityGroupPortBinding.port_id).where(
                m.SecurityGroupPortBinding.security_group_id == row.id).limit(1)).first()
            if in_use is not None:
                raise exception.Conflict(f"security group {row.id} is in use by port "
                                         f"{in_use[0]}")
            session.execute(sa.delete(m.SecurityGroupRule).where(sa.or_(
                m.SecurityGroupRule.security_group_id == row.id,
                m.SecurityGroupRule.remote_group_id == row.id)))
            session.delete(row)
        self._notify_agents()

    @schemas.accepts(**RULE_SCHEMA)
    @policy.authorize("network:security_group_rule:create")
    @notify.emits("security_group_rule", "create")
    def create_security_group_rule(
        self, security_group_id: str, direction: str, *, ethertype: str = "IPv4",
        protocol: str | int | None = None, port_range_min: int | None = None,
        port_range_max: int | None = None, remote_ip_prefix: str | None = None,
        remote_group_id: str | None = None, description: str = "",
    ) -> SecurityGroupRule:
        """Allow traffic in ``direction`` matching the rule (see the module doc). One
        Invalid naming the field for bad input; Conflict for a rule the group already has."""
        import sqlalchemy as sa

        from stackcore.network import models as m
        fields = normalize_rule(direction, ethertype, protocol, port_range_min,
                                port_range_max, remote_ip_prefix, remote_group_id)
        with self.db.transaction() as session:
            group = self._visible_group(session, security_group_id)
            if fields["remote_group_id"] is not None:
                remote = session.get(m.SecurityGroup, fields["remote_group_id"])
                if remote is None or remote.project_id != group.project_id:
                    raise exception.Invalid("remote_group_id", "is not a security group of "
                                            f"project {group.project_id}",
                                            fields["remote_group_id"])
            same = session.execute(sa.select(m.SecurityGroupRule).where(
                m.SecurityGroupRule.security_group_id == group.id,
                *[getattr(m.SecurityGroupRule, k) == v if v is not None
                  else getattr(m.SecurityGroupRule, k).is_(None)
                  for k, v in fields.items()])).first()
            if same is not None:
                raise exception.Conflict(f"security group {group.id} already has this rule "
                                         f"({same[0].id})")
            self.quotas.check(session, group.project_id, {"security_group_rules": 1})
            row = m.SecurityGroupRule(id=str(uuid.uuid4()), security_group_id=group.id,
                                      project_id=group.project_id, description=description,
                                      **fields)
            session.add(row)
            group.revision += 1
            session.flush()
            view = _rule_view(row)
        self._notify_agents()
        return view

    @schemas.accepts(security_group_rule_id=s.UUID)
    @policy.authorize("network:security_group_rule:get")
    def get_security_group_rule(self, security_group_rule_id: str) -> SecurityGroupRule:
        from stackcore.network import models as m
        with self.db.transaction() as session:
            row = session.get(m.SecurityGroupRule, security_group_rule_id)
            if row is None or not (self._sees_all() or row.project_id == self.project_id):
                raise exception.NotFound("security_group_rule", security_group_rule_id)
            return _rule_view(row)

    @schemas.accepts(security_group_id=s.OPTIONAL_UUID)
    @policy.authorize("network:security_group_rule:list")
    def list_security_group_rules(self, security_group_id: str | None = None
                                  ) -> list[SecurityGroupRule]:
        import sqlalchemy as sa

        from stackcore.network import models as m
        with self.db.transaction() as session:
            query = sa.select(m.SecurityGroupRule).order_by(m.SecurityGroupRule.created_at,
                                                            m.SecurityGroupRule.id)
            if security_group_id is not None:
                self._visible_group(session, security_group_id)
                query = query.where(m.SecurityGroupRule.security_group_id == security_group_id)
            if not self._sees_all():
                query = query.where(m.SecurityGroupRule.project_id == self.project_id)
            return [_rule_view(r) for r in session.execute(query).scalars()]

    @schemas.accepts(security_group_rule_id=s.UUID)
    @policy.authorize("network:security_group_rule:delete")
    @notify.emits("security_group_rule", "delete")
    def delete_security_group_rule(self, security_group_rule_id: str) -> None:
        """Delete a rule; a missing one is fine."""
        from stackcore.network import models as m
        with self.db.transaction() as session:
            row = session.get(m.SecurityGroupRule, security_group_rule_id)
            if row is None or not (self._sees_all() or row.project_id == self.project_id):
                return
            group = session.get(m.SecurityGroup, row.security_group_id)
            if group is not None:
                group.revision += 1
            session.delete(row)
        self._notify_agents()
