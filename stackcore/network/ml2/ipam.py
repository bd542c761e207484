"""IP address management: subnet validation and fixed-IP allocation.

An address is allocated by inserting its :class:`~stackcore.network.models.IPAllocation` row,
whose primary key ``(subnet_id, ip_address)`` makes a duplicate impossible; each insert runs in
a savepoint, so losing a race to a concurrent port just moves on to another candidate. The
candidate search never enumerates a pool: it walks the allocated addresses (few) to find the
lowest gap, so a /64 costs the same as a /24.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from stackcore import exception
from stackcore.network import exceptions
from stackcore.network.models import IPAllocation, Subnet

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Candidates tried per pool before concluding that concurrent allocators keep winning.
MAX_CANDIDATES = 64


@dataclasses.dataclass(frozen=True)
class SubnetSpec:
    """A validated subnet: normalised CIDR, gateway and allocation pools."""

    ip_version: int
    cidr: str
    gateway_ip: str | None
    allocation_pools: list[dict[str, str]]
    dns_nameservers: list[str] = dataclasses.field(default_factory=list)
    host_routes: list[dict[str, str]] = dataclasses.field(default_factory=list)



#: address types by IP version: an integer is turned into an address of the subnet's version
_ADDRESS: dict[int, type[ipaddress.IPv4Address] | type[ipaddress.IPv6Address]] = {
    4: ipaddress.IPv4Address, 6: ipaddress.IPv6Address}

def _address(field: str, value: Any) -> IPAddress:
    if not isinstance(value, str):
        raise exception.Invalid(field, f"must be an IP address string, not "
                                f"{type(value).__name__}", value)
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        raise exception.Invalid(field, "is not an IP address", value) from None


def _usable_range(net: IPNetwork) -> tuple[int, int]:
    """First and last address a port may get: IPv4 excludes network and broadcast addresses
    (except /31 and /32); IPv6 excludes the subnet-router anycast address (the first)."""
    first, last = int(net.network_address), int(net.broadcast_address)
    if net.version == 4 and net.prefixlen >= 31:
        return first, last
    if net.version == 4:
        return first + 1, last - 1
    return first + 1, last


def validate_subnet(
    cidr: Any,
    ip_version: Any = None,
    gateway_ip: Any = "auto",
    allocation_pools: Any = None,
) -> SubnetSpec:
    """Check a subnet request; one Invalid naming the field, nothing else happens.

    ``gateway_ip``: ``"auto"`` (the first usable address), None (no gateway) or an address in
    the CIDR. ``allocation_pools``: ``[{"start", "end"}]`` inside the CIDR, not overlapping,
    not containing the gateway; default: every usable address but the gateway.
    """
    if not isinstance(cidr, str):
        raise exception.Invalid("cidr", "must be a CIDR string such as 10.0.0.0/24", cidr)
    try:
        net = ipaddress.ip_network(cidr, strict=True)
    except ValueError as err:
        raise exception.Invalid("cidr", str(err), cidr) from None
    if ip_version is not None and ip_version != net.version:
        raise exception.Invalid("ip_version", f"is {ip_version!r} but cidr {cidr} is IPv"
                                f"{net.version}", ip_version)
    if (net.version == 4 and net.prefixlen > 30) or (net.version == 6 and net.prefixlen > 126):
        raise exception.Invalid("cidr", "leaves no room for addresses (prefix too long)", cidr)
    low, high = _usable_range(net)
    gateway: IPAddress | None
    make = _ADDRESS[net.version]  # never ip_address(int): it guesses IPv4 for small ints (::1)
    if gateway_ip == "auto":
        gateway = make(low)
    elif gateway_ip is None:
        gateway = None
    else:
        gateway = _address("gateway_ip", gateway_ip)
        if gateway not in net or not low <= int(gateway) <= high:
            raise exception.Invalid("gateway_ip", f"{gateway} is not a usable address of "
                                    f"{net}", gateway_ip)
    pools: list[tuple[int, int]] = []
    if allocation_pools is None:
        if gateway is None:
            pools = [(low, high)]
        else:
            g = int(gateway)
            pools = [(a, b) for a, b in ((low, g - 1), (g + 1, high)) if a <= b]
    else:
        if not isinstance(allocation_pools, Sequence) or isinstance(allocation_pools, str):
            raise exception.Invalid("allocation_pools", "must be a list of {start, end}")
        for index, pool in enumerate(allocation_pools):
            field = f"allocation_pools[{index}]"
            if not isinstance(pool, Mapping) or set(pool) != {"start", "end"}:
                raise exception.Invalid(field, "must be a mapping with exactly start and end",
                                        pool)
            start = _address(f"{field}.start", pool["start"])
            end = _address(f"{field}.end", pool["end"])
            for addr, part in ((start, "start"), (end, "end")):
                if addr.version != net.version or not low <= int(addr) <= high:
                    raise exception.Invalid(f"{field}.{part}", f"{addr} is not a usable "
                                            f"address of {net}", str(addr))
            if int(start) > int(end):
                raise exception.Invalid(field, f"start {start} is after end {end}", pool)
            if gateway is not None and int(start) <= int(gateway) <= int(end):
                raise exception.Invalid(field, f"contains the gateway {gateway}", pool)
            pools.append((int(start), int(end)))
        ordered = sorted(pools)
        for (_, prev_end), (next_start, _) in itertools.pairwise(ordered):
            if next_start <= prev_end:
                raise exception.Invalid("allocation_pools", "pools overlap", allocation_pools)
        pools = ordered
    return SubnetSpec(
        ip_version=net.version,
        cidr=str(net),
        gateway_ip=None if gateway is None else str(gateway),
        allocation_pools=[{"start": str(make(a)), "end": str(make(b))} for a, b in pools],
    )


def _list(field: str, value: Any, limit: int, what: str) -> Sequence[Any]:
    if not isinstance(value, Sequence) or isinstance(value, (str, bytes)):
        raise exception.Invalid(field, f"must be a list of {what}", value)
    if len(value) > limit:
        raise exception.Invalid(field, f"has {len(value)} entries, more than the {limit} "
                                f"allowed", value)
    return value


def validate_dns_nameservers(ip_version: int, value: Any, limit: int) -> list[str]:
    """Neutron's ``dns_nameservers``: an ordered list of at most ``limit`` distinct addresses
    of the subnet's IP version (``[network] max_dns_nameservers``); normalised addresses."""
    result: list[str] = []
    for index, item in enumerate(_list("dns_nameservers", value, limit, "IP addresses")):
        field = f"dns_nameservers[{index}]"
        addr = _address(field, item)
        if addr.version != ip_version:
            raise exception.Invalid(field, f"{addr} is IPv{addr.version} but the subnet is "
                                    f"IPv{ip_version}", item)
        if str(addr) in result:
            raise exception.Invalid(field, f"duplicate nameserver {addr}", item)
        result.append(str(addr))
    return result


def validate_host_routes(ip_version: int, value: Any, limit: int) -> list[dict[str, str]]:
    """Neutron's ``host_routes``: at most ``limit`` (``[network] max_subnet_host_routes``)
    ``{"destination": CIDR, "nexthop": address}`` of the subnet's IP version, one route per
    destination (two nexthops for one destination cannot be handed out by DHCP)."""
    result: list[dict[str, str]] = []
    for index, item in enumerate(_list("host_routes", value, limit,
                                       "{destination, nexthop}")):
        field = f"host_routes[{index}]"
        if not isinstance(item, Mapping) or set(item) != {"destination", "nexthop"}:
            raise exception.Invalid(field, f"{item!r} must be a mapping with exactly "
                                    "destination and nexthop", item)
        destination = item["destination"]
        if not isinstance(destination, str):
            raise exception.Invalid(f"{field}.destination",
                                    f"{destination!r} must be a CIDR string", destination)
        try:
            net = ipaddress.ip_network(destination, strict=True)
        except ValueError as err:
            raise exception.Invalid(f"{field}.destination", f"{destination!r}: {err}",
                                    destination) from None
        if net.version != ip_version:
            raise exception.Invalid(f"{field}.destination", f"{net} is IPv{net.version} but the "
                                    f"subnet is IPv{ip_version}", destination)
        nexthop = _address(f"{field}.nexthop", item["nexthop"])
        if nexthop.version != ip_version:
            raise exception.Invalid(f"{field}.nexthop", f"{nexthop} is IPv{nexthop.version} "
                                    f"but the subnet is IPv{ip_version}", item["nexthop"])
        if any(r["destination"] == str(net) for r in result):
            raise exception.Invalid(f"{field}.destination", f"duplicate route to {net}",
                                    destination)
        result.append({"destination": str(net), "nexthop": str(nexthop)})
    return result


def overlaps(cidr: str, others: Sequence[str]) -> str | None:
    """The first of ``others`` that overlaps ``cidr``, or None."""
    net = ipaddress.ip_network(cidr)
    for other in others:
        other_net = ipaddress.ip_network(other)
        if other_net.version == net.version and net.overlaps(other_net):
            return other
    return None


def _insert(session: Session, subnet: Subnet, port_id: str, address: str) -> bool:
    try:
        with session.begin_nested():
            session.execute(sa.insert(IPAllocation).values(
                subnet_id=subnet.id, ip_address=address, port_id=port_id,
                network_id=subnet.network_id,
            ))
    except sa.exc.IntegrityError:
        return False
    return True


def allocate_specific(session: Session, subnet: Subnet, port_id: str, address: Any,
                      field: str, allow_gateway: bool = False) -> str:
    """Allocate ``address`` in ``subnet``; Invalid when it is not usable there (its gateway
    but for a router interface: ``allow_gateway``), Conflict when another port has it."""
    addr = _address(field, address)
    net = ipaddress.ip_network(subnet.cidr)
    low, high = _usable_range(net)
    if addr.version != net.version or not low <= int(addr) <= high:
        raise exception.Invalid(field, f"{addr} is not a usable address of subnet {subnet.id} "
                                f"({subnet.cidr})", address)
    if not allow_gateway and subnet.gateway_ip is not None and str(addr) == subnet.gateway_ip:
        raise exception.Invalid(field, f"{addr} is the gateway of subnet {subnet.id}", address)
    if not _insert(session, subnet, port_id, str(addr)):
        raise exception.Conflict(
            f"IP address {addr} of subnet {subnet.id} is already allocated",
            subnet_id=subnet.id, ip_address=str(addr),
        )
    return str(addr)


def allocate_any(session: Session, subnet: Subnet, port_id: str) -> str:
    """Allocate the lowest free address of ``subnet``'s pools; IpAddressExhausted if none."""
    make = _ADDRESS[subnet.ip_version]
    for pool in subnet.allocation_pools:
        start, end = int(make(pool["start"])), int(make(pool["end"]))
        for _ in range(MAX_CANDIDATES):
            candidate = _lowest_free(session, subnet, start, end)
            if candidate is None:
                break
            address = str(make(candidate))
            if _insert(session, subnet, port_id, address):
                return address
            start = candidate  # lost a race for it: search again from there
    raise exceptions.IpAddressExhausted(subnet.id)


def _lowest_free(session: Session, subnet: Subnet, start: int, end: int) -> int | None:
    used = sorted(
        value for value in (
            int(ipaddress.ip_address(a)) for a in session.execute(
                sa.select(IPAllocation.ip_address).where(IPAllocation.subnet_id == subnet.id)
            ).scalars()
        ) if start <= value <= end
    )
    candidate = start
    for value in used:
        if value > candidate:
            break
        if value == candidate:
            candidate += 1
    return candidate if candidate <= end else None


def contains(cidr: str, address: Any) -> bool:
    """Whether ``address`` (any value) is an address inside ``cidr``."""
    try:
        return ipaddress.ip_address(address) in ipaddress.ip_network(cidr)
    except (TypeError, ValueError):
        return False
