"""Broken DHCP drivers: each subclasses the core fake driver and breaks one rule."""

from __future__ import annotations

import json
import shutil
import uuid
from typing import ClassVar

from oslo_config import cfg

from stackcore.network.dhcp.driver import DhcpDevice, DhcpNetwork
from stackcore.network.dhcp.fake import FakeDhcpDriver
from tests.kit.registry import Broken

M = "tests.kit.network_dhcp"
S, RL, C = "TestDhcpServing::", "TestDhcpReload::", "TestDhcpCleanup::"
RS, V6 = "TestDhcpResync::", "TestDhcpIPv6::"


class NeverWritesHostEntries(FakeDhcpDriver):
    """Runs a server but never gives it a host entry."""

    def _write(self, network: DhcpNetwork) -> None:
        (self.root / network.id / "hosts.json").write_text("[]")


class RestartsOnEveryEnable(FakeDhcpDriver):
    def enable(self, network: DhcpNetwork, device: DhcpDevice) -> None:
        super().enable(network, device)
        (self.root / network.id / "server").write_text(uuid.uuid4().hex)


class ServesSubnetsWithoutDhcp(FakeDhcpDriver):
    def _write(self, network: DhcpNetwork) -> None:
        served = {s.id for s in network.subnets}
        entries = [{"mac_address": p.mac_address, "ip_address": ip, "hostname": "h"}
                   for p in network.ports for subnet, ip in p.fixed_ips if subnet in served]
        (self.root / network.id / "hosts.json").write_text(json.dumps(entries))


class RestartsOnReload(FakeDhcpDriver):
    def reload_allocations(self, network: DhcpNetwork) -> None:
        super().reload_allocations(network)
        (self.root / network.id / "server").write_text(uuid.uuid4().hex)


class KeepsRunningServersAsTheyAre(FakeDhcpDriver):
    """enable() of a running server changes nothing: a new subnet is never served."""

    def enable(self, network: DhcpNetwork, device: DhcpDevice) -> None:
        if (self.root / network.id / "server").exists():
            return
        super().enable(network, device)


class DisableLeavesTheServer(FakeDhcpDriver):
    def disable(self, network_id: str) -> None:
        (self.root / network_id / "hosts.json").unlink(missing_ok=True)


class ForgetsOnRestart(FakeDhcpDriver):
    """Knows its networks from memory only."""

    def __init__(self, conf: cfg.ConfigOpts, state_dir: str) -> None:
        super().__init__(conf, state_dir)
        self.known: set[str] = set()

    def enable(self, network: DhcpNetwork, device: DhcpDevice) -> None:
        super().enable(network, device)
        self.known.add(network.id)

    def disable(self, network_id: str) -> None:
        shutil.rmtree(self.root / network_id, ignore_errors=True)
        self.known.discard(network_id)

    def active_networks(self) -> set[str]:
        return set(self.known)


class RestartsWhenPortsChanged(FakeDhcpDriver):
    """Puts the number of ports into the server's configuration (as a dhcp-lease-max from
    the ports would): a restarted agent's enable() restarts a server whose ports changed."""

    def enable(self, network: DhcpNetwork, device: DhcpDevice) -> None:
        count = self.root / network.id / "count"
        if count.exists() and count.read_text() != str(len(network.ports)):
            (self.root / network.id / "server").write_text(uuid.uuid4().hex)
        super().enable(network, device)
        count.write_text(str(len(network.ports)))


class ClaimsIPv6(FakeDhcpDriver):
    """Declares ipv6 (as the fake does) but serves IPv4 only."""

    def _write(self, network: DhcpNetwork) -> None:
        entries = [e.__dict__ for e in network.host_entries((4,))]
        (self.root / network.id / "hosts.json").write_text(json.dumps(entries))


class ServesIPv6ButSaysItCannot(FakeDhcpDriver):
    capabilities: ClassVar[dict[str, bool]] = {"ipv6": False}


class IgnoresDnsNameservers(FakeDhcpDriver):
    """Hands out the routes but never a subnet's DNS servers."""

    def _write(self, network: DhcpNetwork) -> None:
        super()._write(network)
        options = {s.id: [[], [list(r) for r in s.served_routes()]]
                   for s in network.dhcp_subnets((4, 6))}
        (self.root / network.id / "options.json").write_text(json.dumps(options))


def _b(name: str, cls: type, kills: tuple[str, ...], expect: str, defect: str,
       outcome: str = "fail", capability: str = "") -> Broken:
    return Broken("network.dhcp", f"zoo-{name}", f"{M}:{cls.__name__}", kills, expect,
                  outcome, "", defect, capability)


ZOO = [
    _b("never-writes-hosts", NeverWritesHostEntries,
       (S + "test_enable_serves_the_ports_and_is_idempotent",),
       "host entries served after enable(): expected [('fa:16:3e", "no host entry is served"),
    _b("restarts-on-enable", RestartsOnEveryEnable,
       (S + "test_enable_serves_the_ports_and_is_idempotent",),
       "server_id() after enable() with nothing changed (no restart): expected",
       "every enable() restarts the server"),
    _b("serves-dhcp-off", ServesSubnetsWithoutDhcp,
       (S + "test_subnet_without_dhcp_is_not_served",),
       "addresses of a subnet with enable_dhcp off: expected not served, got",
       "enable_dhcp is ignored"),
    _b("restarts-on-reload", RestartsOnReload,
       (RL + "test_port_changes_are_served_without_restart",),
       "server_id() after reload_allocations() (no restart for port changes): expected",
       "a port change restarts the server"),
    _b("ignores-new-subnets", KeepsRunningServersAsTheyAre,
       (RL + "test_added_subnet_is_served",),
       "host entries served after a subnet was added: expected",
       "a subnet added to a served network is not served"),
    _b("disable-leaves-server", DisableLeavesTheServer,
       (C + "test_disable_stops_and_forgets_idempotently",),
       "server_id() after disable(): expected None, got", "disable() leaves the server"),
    _b("forgets-on-restart", ForgetsOnRestart,
       (RS + "test_new_driver_object_finds_and_adopts_the_server",),
       "active_networks() of a new driver object on the same state directory: expected to "
       "list", "a restarted agent cannot find what it served"),
    _b("restarts-when-ports-changed", RestartsWhenPortsChanged,
       (RS + "test_new_driver_object_finds_and_adopts_the_server",),
       "server_id() after the new object's enable() with a port added meanwhile (the server "
       "adopted, not restarted): expected", "a port count in the server's configuration"),
    _b("ignores-dns-nameservers", IgnoresDnsNameservers,
       (RL + "test_dns_servers_and_routes_are_served_and_updated_without_restart",),
       "DNS servers and routes served after enable(): expected",
       "a subnet's dns_nameservers are not handed out"),
    _b("claims-ipv6", ClaimsIPv6, (V6 + "test_ipv6_addresses_are_served",),
       "host entries served on a dual-stack network: expected",
       "declares ipv6 but serves IPv4 only", capability="ipv6"),
    _b("ipv6-says-it-cannot", ServesIPv6ButSaysItCannot,
       (V6 + "test_ipv6_addresses_are_served",), "", "ipv6 works but is declared unsupported",
       outcome="unexpected-success", capability="ipv6"),
]
