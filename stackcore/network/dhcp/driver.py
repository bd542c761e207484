"""The DHCP driver contract: what serves addresses to the ports of one network on one host.

Neutron splits DHCP in two: the **DHCP agent** (one per host, console script
``stackcore-dhcp-agent``) learns networks and ports over RPC, creates the network's DHCP port
(a real port, ``device_owner`` ``network:dhcp``), plugs it into the L2 datapath inside the
network's namespace ``qdhcp-<network_id>`` and configures its addresses; the **DHCP driver**
(this contract, entry points ``stackcore.network.dhcp_drivers``, e.g. ``dnsmasq``) runs the
server in that namespace and keeps its host entries (MAC -> IP, hostname) equal to the
network's ports.

General rules (every hook):

* The agent calls hooks from one thread at a time per agent (a pass never overlaps another),
  so a driver needs no locking of its own between hooks.
* Every hook is **idempotent**: the agent is level-triggered and calls them again after a
  restart, a missed notification or a failure. A hook called for state that is already right
  changes nothing (in particular, no restart of a running server).
* A driver keeps its state **on the host** under the ``state_dir`` it is given (one
  directory per network), never only in memory: a new driver object (the agent restarted)
  must find the networks it serves (:meth:`DhcpDriver.active_networks`) and adopt their
  running servers.
* Raising (any exception; :class:`~stackcore.exception.DriverError` preferably, naming what
  failed) fails that network for this pass only: the agent logs it and calls the hook again at
  its next pass. Other networks are not affected. A hook that raises must leave the network
  either as it was or served as asked - never half-configured in a way the next call cannot
  repair.
* Values reach a driver validated (addresses parsed, MACs normalised); a driver still never
  builds a shell command line: it runs programs with argument lists and passes anything else
  through files it writes.

IPv6: the subnet model has no ``ipv6_ra_mode``/``ipv6_address_mode`` yet, so the agent hands a
driver its IPv4 subnets only (:meth:`DhcpNetwork.dhcp_subnets`); the ``ipv6`` capability is
declared for when it does.
"""

from __future__ import annotations

import abc
import dataclasses
import ipaddress
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from stackcore import exception
from stackcore.plugins.contract import Contract

if TYPE_CHECKING:
    from oslo_config import cfg

NAMESPACE = "stackcore.network.dhcp_drivers"
#: ``device_owner`` of the port a DHCP agent serves a network through.
DEVICE_OWNER_DHCP = "network:dhcp"
#: ``agent_type`` the DHCP agents report.
AGENT_TYPE = "DHCP agent"
#: Prefix of the namespace of a network's DHCP server (Neutron's).
NETNS_PREFIX = "qdhcp-"

_MAC = re.compile(r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")
_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

CAPABILITIES: Mapping[str, tuple[str, ...]] = {
    # Serves the addresses of IPv6 subnets (DHCPv6 stateful; SLAAC by router advertisements).
    "ipv6": (),
}


def _check_id(field: str, value: Any) -> str:
    if not isinstance(value, str) or not _ID.match(value):
        raise exception.Invalid(field, "must be a lowercase UUID", value)
    return value


def netns_name(network_id: str) -> str:
    """The namespace of ``network_id``'s DHCP server."""
    return NETNS_PREFIX + _check_id("network_id", network_id)


def hostname_for(address: str) -> str:
    """Neutron's default host name of a port address: ``host-10-0-0-5``."""
    return "host-" + address.replace(".", "-").replace(":", "-")


@dataclasses.dataclass(frozen=True)
class DhcpSubnet:
    id: str
    cidr: str
    ip_version: int
    gateway_ip: str | None
    enable_dhcp: bool
    #: DNS servers to hand out, in order (Neutron's ``dns_nameservers``; DHCP option 6)
    dns_nameservers: tuple[str, ...] = ()
    #: ``(destination CIDR, nexthop)`` routes to hand out (Neutron's ``host_routes``; DHCP
    #: classless static routes, option 121). A driver that sends them also sends the default
    #: route via ``gateway_ip`` among them: a client given option 121 ignores the router option.
    host_routes: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DhcpSubnet:
        """From the DHCP RPC (``get_network_info``), every value checked."""
        net = ipaddress.ip_network(d["cidr"], strict=True)
        gateway = d.get("gateway_ip")
        if gateway is not None:
            gateway = str(ipaddress.ip_address(gateway))
        dns = tuple(str(ipaddress.ip_address(a)) for a in d.get("dns_nameservers") or ())
        routes = tuple((str(ipaddress.ip_network(r["destination"], strict=True)),
                        str(ipaddress.ip_address(r["nexthop"])))
                       for r in d.get("host_routes") or ())
        return cls(_check_id("subnet.id", d["id"]), str(net), net.version, gateway,
                   bool(d["enable_dhcp"]), dns, routes)

    def served_routes(self) -> tuple[tuple[str, str], ...]:
        """The classless static routes a client of this subnet gets: ``host_routes`` plus
        the default route via the gateway (unless a route to ``0.0.0.0/0`` is given); none
        when there are no host routes (the router option then gives the default route)."""
        if not self.host_routes:
            return ()
        default = str(ipaddress.ip_network(self.cidr).supernet(new_prefix=0))
        if self.gateway_ip is None or any(d == default for d, _ in self.host_routes):
            return self.host_routes
        return (*self.host_routes, (default, self.gateway_ip))


@dataclasses.dataclass(frozen=True)
class DhcpPort:
    id: str
    mac_address: str
    #: ``(subnet_id, ip_address)`` pairs
    fixed_ips: tuple[tuple[str, str], ...]
    device_owner: str = ""
    admin_state_up: bool = True

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DhcpPort:
        mac = str(d["mac_address"]).lower()
        if not _MAC.match(mac):
            raise exception.Invalid("port.mac_address", "must be a MAC address", mac)
        ips = tuple((_check_id("fixed_ips[].subnet_id", ip["subnet_id"]),
                     str(ipaddress.ip_address(ip["ip_address"])))
                    for ip in d.get("fixed_ips") or ())
        return cls(_check_id("port.id", d["id"]), mac, ips, str(d.get("device_owner") or ""),
                   bool(d.get("admin_state_up", True)))


@dataclasses.dataclass(frozen=True)
class HostEntry:
    """One line of a DHCP server's host table."""

    mac_address: str
    ip_address: str
    hostname: str


def _address_key(entry: HostEntry) -> tuple[int, int]:
    address = ipaddress.ip_address(entry.ip_address)
    return address.version, int(address)


@dataclasses.dataclass(frozen=True)
class DhcpNetwork:
    """A network as the DHCP driver sees it: its subnets and every port on it."""

    id: str
    mtu: int
    subnets: tuple[DhcpSubnet, ...]
    ports: tuple[DhcpPort, ...]

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DhcpNetwork:
        return cls(_check_id("network.id", d["id"]), int(d.get("mtu") or 0),
                   tuple(DhcpSubnet.from_dict(s) for s in d.get("subnets") or ()),
                   tuple(DhcpPort.from_dict(p) for p in d.get("ports") or ()))

    def dhcp_subnets(self, ip_versions: Sequence[int] = (4,)) -> tuple[DhcpSubnet, ...]:
        """The subnets to serve: ``enable_dhcp`` and of ``ip_versions``."""
        return tuple(s for s in self.subnets if s.enable_dhcp and s.ip_version in ip_versions)

    def host_entries(self, ip_versions: Sequence[int] = (4,)) -> list[HostEntry]:
        """One entry per port address on a served subnet, sorted by address (the DHCP port's
        own included: harmless, and Neutron does the same)."""
        served = {s.id for s in self.dhcp_subnets(ip_versions)}
        entries = [HostEntry(p.mac_address, ip, hostname_for(ip))
                   for p in self.ports for subnet_id, ip in p.fixed_ips if subnet_id in served]
        return sorted(entries, key=_address_key)


@dataclasses.dataclass(frozen=True)
class DhcpDevice:
    """Where the agent plugged the network's DHCP port: the namespace, the interface in it
    (up, with the port's MAC and addresses configured) and the port itself."""

    namespace: str
    interface: str
    port: DhcpPort


class DhcpDriver(abc.ABC):
    """Base class of every DHCP driver (the loader refuses a class that does not subclass it).

    Built once per agent as ``Driver(conf, state_dir)`` with the options of :meth:`list_opts`
    registered; ``state_dir`` is a directory of its own that survives agent restarts.
    Class attributes: ``VERSION`` and ``capabilities`` (keys of :data:`CAPABILITIES`).
    """

    VERSION: ClassVar[str] = ""
    capabilities: ClassVar[Mapping[str, bool]] = {}

    def __init__(self, conf: cfg.ConfigOpts, state_dir: str) -> None:
        self.conf = conf
        self.state_dir = state_dir

    @classmethod
    def list_opts(cls) -> list[tuple[str, Sequence[cfg.Opt]]]:
        """The driver's own options as ``[(group, [opts])]``."""
        return []

    @abc.abstractmethod
    def enable(self, network: DhcpNetwork, device: DhcpDevice) -> None:
        """Runs when ``network`` has DHCP subnets and its port is plugged (``device``): at the
        agent's start, when a network appears, when its subnets change, and on every full
        resync. Afterwards a server runs in ``device.namespace`` on ``device.interface``,
        serving exactly ``network.dhcp_subnets()`` and ``network.host_entries()``. A server
        already running with the same subnets and interface is kept (its host entries are
        updated as by :meth:`reload_allocations`); one whose subnets or interface differ is
        restarted. Raising: the network is not (fully) served this pass; retried at the next."""

    @abc.abstractmethod
    def reload_allocations(self, network: DhcpNetwork) -> None:
        """Runs when ports of a served network changed (created, deleted, addresses changed)
        and nothing else did. The server's host entries become ``network.host_entries()``
        **without restarting it** (guests keep their leases; a change is served within a
        second). Raising: retried at the next pass (which calls :meth:`enable`)."""

    @abc.abstractmethod
    def disable(self, network_id: str) -> None:
        """Runs when the network is gone or has no DHCP subnet left (also for a network the
        agent finds in :meth:`active_networks` but no longer serves): the server is stopped
        and everything the driver kept for the network is removed. A network it does not
        serve is no error (idempotent). Raising: retried at the next pass."""

    @abc.abstractmethod
    def active_networks(self) -> set[str]:
        """The ids of the networks this driver has state for on this host, **read from the
        host** (its ``state_dir``, the processes), not from memory: how a restarted agent
        finds what to clean up."""

    # --- observation (conformance kit) -----------------------------------------------------

    def served_hosts(self, network_id: str) -> list[HostEntry]:
        """The host entries the running server reads now (from the files it reads, not the
        driver's memory), sorted as :meth:`DhcpNetwork.host_entries`; ``[]`` when no server
        runs for the network."""
        raise exception.CapabilityNotSupported(type(self).__name__, "served_hosts")

    def served_subnet_options(self, network_id: str) -> dict[str, tuple[tuple[str, ...],
                                                                        tuple[tuple[str, str],
                                                                              ...]]]:
        """Per served subnet id, the ``(DNS servers, classless static routes)`` the running
        server hands out now (read from its files), as :attr:`DhcpSubnet.dns_nameservers`
        and :meth:`DhcpSubnet.served_routes`; ``{}`` when no server runs. A change of a
        subnet's DNS servers or routes reaches it through :meth:`enable` without a restart."""
        raise exception.CapabilityNotSupported(type(self).__name__, "served_subnet_options")

    def server_id(self, network_id: str) -> str | None:
        """What identifies the running server process (e.g. its pid): equal before and after
        a :meth:`reload_allocations`, different after a restart; None when none runs."""
        raise exception.CapabilityNotSupported(type(self).__name__, "server_id")


CONTRACT = Contract(
    family="network.dhcp",
    base=DhcpDriver,
    required=("__init__", "enable", "reload_allocations", "disable", "active_networks"),
    capabilities=CAPABILITIES,
)
