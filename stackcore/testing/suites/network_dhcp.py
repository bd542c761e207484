"""DHCP driver conformance suite (family ``network.dhcp``).

Run it from a driver package's test module (``from stackcore.testing.suites.network_dhcp
import *``) with ``--stackcore-driver network.dhcp:<name>``. The kit plays the DHCP agent: it
makes each network's namespace ``qdhcp-<network>`` with a veth pair in it (the DHCP port's
end up, with the port's MAC and address - what the agent's plugging does; needs root and
``ip``) and calls the driver's hooks with networks it builds. It removes the namespaces
afterwards and fails the test if the driver left a server running or state behind.

What a driver serves is read through its observation hooks, which must read what the server
reads (its files, its process), not the driver's memory: ``served_hosts`` and ``server_id``.

What is checked, by feature:

* ``serving`` - after ``enable`` the server serves exactly the host entries of the network's
  DHCP-enabled subnets (a subnet with ``enable_dhcp`` off is not served); ``enable`` again
  with nothing changed keeps the same server;
* ``reload`` - ``reload_allocations`` serves a new port's entry and drops a deleted one's
  **without restarting the server** (same ``server_id``); a subnet added then served;
* ``cleanup`` - ``disable`` stops the server and forgets the network (``active_networks``);
  it is idempotent, also for a network never served;
* ``resync`` - a new driver object on the same state directory (the agent restarted) lists
  the network in ``active_networks``, adopts its running server (same ``server_id`` after
  ``enable``, also with a port added meanwhile) and can disable it;
* capability ``ipv6`` - addresses of an IPv6 subnet are served.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from stackcore.network.dhcp.driver import (
    DhcpDevice,
    DhcpDriver,
    DhcpNetwork,
    DhcpPort,
    DhcpSubnet,
    HostEntry,
    netns_name,
)
from stackcore.testing import check
from stackcore.testing.harness import DriverUnderTest
from stackcore.testing.plugin import verify_after

__all__ = ["TestDhcpCleanup", "TestDhcpIPv6", "TestDhcpReload", "TestDhcpResync",
           "TestDhcpServing", "dhcp_kit"]

FAMILY = pytest.mark.family("network.dhcp")


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30,
                            check=False)
    if result.returncode != 0:
        raise check.fail(f"ip {' '.join(args)} (the kit's namespace)", "success",
                         result.stderr.strip())


def _mac(n: int) -> str:
    return f"fa:16:3e:{n >> 16 & 255:02x}:{n >> 8 & 255:02x}:{n & 255:02x}"


class DhcpKit:
    """Builds networks and their devices, and drivers on one state directory."""

    def __init__(self, target: DriverUnderTest, state_dir: Path) -> None:
        self.target = target
        self.state_dir = state_dir
        self.drivers: list[DhcpDriver] = []
        self.namespaces: set[str] = set()
        self._next = 1

    def driver(self) -> DhcpDriver:
        made: DhcpDriver = self.target.new(str(self.state_dir))
        check.instance(made, DhcpDriver, "the driver object")
        self.drivers.append(made)
        return made

    def subnet(self, cidr: str, enable_dhcp: bool = True) -> DhcpSubnet:
        net = ipaddress.ip_network(cidr)
        return DhcpSubnet(str(uuid.uuid4()), cidr, net.version, str(net[1]), enable_dhcp)

    def port(self, *subnets: DhcpSubnet, host: int | None = None) -> DhcpPort:
        self._next += 1
        index = host or self._next + 10
        return DhcpPort(str(uuid.uuid4()), _mac(self._next),
                        tuple((s.id, str(ipaddress.ip_network(s.cidr)[index])) for s in subnets))

    def network(self, subnets: tuple[DhcpSubnet, ...], ports: tuple[DhcpPort, ...]
                ) -> tuple[DhcpNetwork, DhcpDevice]:
        """A network whose first port is its DHCP port, and that port plugged."""
        network = DhcpNetwork(str(uuid.uuid4()), 1450, subnets, ports)
        return network, self.device(network)

    def device(self, network: DhcpNetwork) -> DhcpDevice:
        namespace = netns_name(network.id)
        port = network.ports[0]
        inner = ("ns-" + port.id)[:14]
        if namespace not in self.namespaces:
            _ip("netns", "add", namespace)
            self.namespaces.add(namespace)
            _ip("-n", namespace, "link", "add", inner, "address", port.mac_address, "type",
                "veth", "peer", "name", "kitpeer0")
            _ip("-n", namespace, "link", "set", "kitpeer0", "up")
            _ip("-n", namespace, "link", "set", inner, "up")
            subnets = {s.id: s for s in network.subnets}
            for subnet_id, address in port.fixed_ips:
                prefix = ipaddress.ip_network(subnets[subnet_id].cidr).prefixlen
                _ip("-n", namespace, "addr", "add", f"{address}/{prefix}", "dev", inner)
        return DhcpDevice(namespace, inner, port)

    def cleanup(self) -> None:
        """Disable every network the test left served (with the last driver object made),
        then prove no server runs and nothing is listed any more."""
        left: list[str] = []
        if self.drivers:
            driver = self.drivers[-1]
            for network_id in sorted(driver.active_networks()):
                driver.disable(network_id)
                if driver.server_id(network_id) is not None:
                    left.append(f"{network_id}: a server still runs after disable()")
            left.extend(f"{n}: still listed by active_networks() after disable()"
                        for n in sorted(driver.active_networks()))
        for namespace in sorted(self.namespaces):
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True,
                           timeout=30, check=False)
        check.empty(left, "what is left once the kit disabled the test's networks")


@pytest.fixture
def dhcp_kit(request: pytest.FixtureRequest, stackcore_target: DriverUnderTest,
             tmp_path: Path) -> Iterator[DhcpKit]:
    kit = DhcpKit(stackcore_target, tmp_path / "dhcp")
    verify_after(request, "disabling the test's networks", kit.cleanup)
    yield kit


def _served(driver: DhcpDriver, network_id: str) -> list[HostEntry]:
    return check.step("served_hosts()", lambda: sorted(
        driver.served_hosts(network_id), key=lambda e: e.ip_address))


def _expect_served(driver: DhcpDriver, network: DhcpNetwork, versions: tuple[int, ...],
                   when: str) -> None:
    wanted = sorted(network.host_entries(versions), key=lambda e: e.ip_address)
    got = _served(driver, network.id)
    if got != wanted:
        raise check.fail(f"host entries served {when}",
                         str([(e.mac_address, e.ip_address) for e in wanted]),
                         str([(e.mac_address, e.ip_address) for e in got]))


def _enabled(kit: DhcpKit, driver: DhcpDriver, ports: int = 2, **subnet: bool
             ) -> tuple[DhcpNetwork, DhcpDevice]:
    sub = kit.subnet("10.251.0.0/24", **subnet)
    dhcp_port = kit.port(sub, host=2)
    network, device = kit.network((sub,), (dhcp_port, *(kit.port(sub) for _ in range(ports))))
    check.step("enable()", lambda: driver.enable(network, device))
    return network, device


def _server(driver: DhcpDriver, network_id: str, when: str) -> str:
    server = check.step("server_id()", lambda: driver.server_id(network_id))
    check.that(server is not None, f"server_id() {when}", "a running server", server)
    assert server is not None
    return server


@FAMILY
@pytest.mark.feature("serving")
class TestDhcpServing:
    def test_enable_serves_the_ports_and_is_idempotent(self, dhcp_kit: DhcpKit) -> None:
        driver = dhcp_kit.driver()
        network, device = _enabled(dhcp_kit, driver)
        _expect_served(driver, network, (4,), "after enable()")
        server = _server(driver, network.id, "after enable()")
        check.step("enable() again", lambda: driver.enable(network, device))
        check.equal(driver.server_id(network.id), server,
                    "server_id() after enable() with nothing changed (no restart)")
        _expect_served(driver, network, (4,), "after enable() again")

    def test_subnet_without_dhcp_is_not_served(self, dhcp_kit: DhcpKit) -> None:
        driver = dhcp_kit.driver()
        on, off = dhcp_kit.subnet("10.252.0.0/24"), dhcp_kit.subnet("10.253.0.0/24", False)
        network, device = dhcp_kit.network(
            (on, off), (dhcp_kit.port(on, host=2), dhcp_kit.port(on, off), dhcp_kit.port(off)))
        check.step("enable()", lambda: driver.enable(network, device))
        served = {e.ip_address for e in _served(driver, network.id)}
        check.that(not {ip for p in network.ports for s, ip in p.fixed_ips if s == off.id}
                   & served, "addresses of a subnet with enable_dhcp off",
                   "not served", sorted(served))
        _expect_served(driver, network, (4,), "with one subnet's DHCP off")


@FAMILY
@pytest.mark.feature("reload")
class TestDhcpReload:
    def test_port_changes_are_served_without_restart(self, dhcp_kit: DhcpKit) -> None:
        driver = dhcp_kit.driver()
        network, _ = _enabled(dhcp_kit, driver)
        server = _server(driver, network.id, "after enable()")
        subnet = network.subnets[0]
        added = DhcpNetwork(network.id, network.mtu, network.subnets,
                            (*network.ports, dhcp_kit.port(subnet)))
        check.step("reload_allocations() with a new port",
                   lambda: driver.reload_allocations(added))
        _expect_served(driver, added, (4,), "after a port was added")
        removed = DhcpNetwork(network.id, network.mtu, network.subnets,
                              tuple(p for p in added.ports if p != network.ports[1]))
        check.step("reload_allocations() without a port",
                   lambda: driver.reload_allocations(removed))
        _expect_served(driver, removed, (4,), "after a port was deleted")
        check.equal(driver.server_id(network.id), server,
                    "server_id() after reload_allocations() (no restart for port changes)")

    def test_added_subnet_is_served(self, dhcp_kit: DhcpKit) -> None:
        driver = dhcp_kit.driver()
        network, device = _enabled(dhcp_kit, driver)
        second = dhcp_kit.subnet("10.254.0.0/24")
        grown = DhcpNetwork(network.id, network.mtu, (*network.subnets, second),
                            (*network.ports, dhcp_kit.port(second)))
        check.step("enable() with a second subnet", lambda: driver.enable(grown, device))
        _expect_served(driver, grown, (4,), "after a subnet was added")
        _server(driver, network.id, "after a subnet was added")

    def test_dns_servers_and_routes_are_served_and_updated_without_restart(
            self, dhcp_kit: DhcpKit) -> None:
        """A subnet's dns_nameservers and host_routes (with the default route via the
        gateway among the classless routes) are handed out, and a change reaches the running
        server through enable() without restarting it."""
        driver = dhcp_kit.driver()
        plain = dhcp_kit.subnet("10.250.0.0/24")
        sub = dataclasses.replace(plain, dns_nameservers=("10.250.0.53", "192.0.2.53"),
                                  host_routes=(("198.51.100.0/24", "10.250.0.254"),))
        network, device = dhcp_kit.network((sub,), (dhcp_kit.port(sub, host=2),
                                                    dhcp_kit.port(sub)))
        check.step("enable()", lambda: driver.enable(network, device))
        server = _server(driver, network.id, "after enable()")
        for subnets, when in (
                ((sub,), "after enable()"),
                ((dataclasses.replace(sub, dns_nameservers=("203.0.113.53",), host_routes=(
                    ("203.0.113.0/24", "10.250.0.253"), ("0.0.0.0/0", "10.250.0.252"))),),
                 "after the subnet's DNS servers and routes changed"),
                ((plain,), "after they were removed")):
            changed = DhcpNetwork(network.id, network.mtu, subnets, network.ports)
            check.step(f"enable() {when}", functools.partial(driver.enable, changed, device))
            got = check.step("served_subnet_options()",
                             lambda: driver.served_subnet_options(network.id))
            wanted = {s.id: (s.dns_nameservers, s.served_routes()) for s in subnets}
            got_set = {k: v for k, v in got.items() if v != ((), ())}
            wanted_set = {k: v for k, v in wanted.items() if v != ((), ())}
            check.equal(got_set, wanted_set, f"DNS servers and routes served {when}")
        check.equal(driver.server_id(network.id), server,
                    "server_id() after DNS server/route changes (no restart)")


@FAMILY
@pytest.mark.feature("cleanup")
class TestDhcpCleanup:
    def test_disable_stops_and_forgets_idempotently(self, dhcp_kit: DhcpKit) -> None:
        driver = dhcp_kit.driver()
        network, _ = _enabled(dhcp_kit, driver)
        check.that(network.id in driver.active_networks(), "active_networks() after enable()",
                   f"to list {network.id}", sorted(driver.active_networks()))
        check.step("disable()", lambda: driver.disable(network.id))
        check.equal(driver.server_id(network.id), None, "server_id() after disable()")
        check.equal(_served(driver, network.id), [], "served_hosts() after disable()")
        check.that(network.id not in driver.active_networks(),
                   "active_networks() after disable()", f"not to list {network.id}",
                   sorted(driver.active_networks()))
        check.step("disable() again", lambda: driver.disable(network.id))
        check.step("disable() of a network never served",
                   lambda: driver.disable(str(uuid.uuid4())))


@FAMILY
@pytest.mark.feature("resync")
class TestDhcpResync:
    def test_new_driver_object_finds_and_adopts_the_server(self, dhcp_kit: DhcpKit) -> None:
        first = dhcp_kit.driver()
        network, device = _enabled(dhcp_kit, first)
        server = _server(first, network.id, "after enable()")
        restarted = dhcp_kit.driver()
        check.that(network.id in restarted.active_networks(),
                   "active_networks() of a new driver object on the same state directory",
                   f"to list {network.id}", sorted(restarted.active_networks()))
        # a port came while the agent was away: still no restart for a port change
        grown = DhcpNetwork(network.id, network.mtu, network.subnets,
                            (*network.ports, dhcp_kit.port(network.subnets[0])))
        check.step("enable() by the new object", lambda: restarted.enable(grown, device))
        check.equal(restarted.server_id(network.id), server,
                    "server_id() after the new object's enable() with a port added meanwhile "
                    "(the server adopted, not restarted)")
        _expect_served(restarted, grown, (4,), "after the new object's enable()")
        check.step("disable() by the new object", lambda: restarted.disable(network.id))
        check.equal(restarted.server_id(network.id), None,
                    "server_id() after the new object's disable()")


def _dual_stack(kit: DhcpKit) -> Callable[[DhcpDriver], DhcpNetwork]:
    v4, v6 = kit.subnet("10.250.0.0/24"), kit.subnet("fd00:251::/64")

    def enable(driver: DhcpDriver) -> DhcpNetwork:
        network, device = kit.network((v4, v6), (kit.port(v4, v6, host=2), kit.port(v4, v6)))
        check.step("enable() of a dual-stack network", lambda: driver.enable(network, device))
        return network
    return enable


@FAMILY
@pytest.mark.capability("ipv6")
class TestDhcpIPv6:
    def test_ipv6_addresses_are_served(self, dhcp_kit: DhcpKit) -> None:
        driver = dhcp_kit.driver()
        network = _dual_stack(dhcp_kit)(driver)
        _expect_served(driver, network, (4, 6), "on a dual-stack network")
