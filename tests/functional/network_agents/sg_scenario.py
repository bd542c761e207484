"""The security group scenario both L2 agents' tests run on real traffic (OVS conntrack flows,
Linux bridge nftables): VMs are namespaces cabled to the agent's host, pings are bounded,
and every change is awaited by pinging in a loop (no sleeps).

Groups: ``client`` (a new group: egress only, no ingress rule) holds VM a; ``server`` holds
VM b (another host) and VM c (a's host). Checked, in order:

* nobody reaches anybody: new groups have no ingress rule (a -> b, a -> c, b -> a);
* an ingress ICMP rule on ``server`` from the ``client`` group: a reaches b and c, and the
  echo replies come back to a although a allows no ingress (stateful); b still cannot
  reach a;
* the rule removed: a reaches b and c no more;
* with the rule back, a sending from an address not its own (spoofed) is dropped; the same
  address as an allowed address pair passes (it also joins a's remote-group addresses);
* port security off on a: b reaches a (nothing filters a any more).

No agent restarts: the changes reach the data plane through the agents' running loops.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import stackcore
from tests.conftest import wait_until

PING = Path(__file__).with_name("icmp_ping.py")
#: Bounded waits: a change reaches the data plane within one notification-triggered pass.
SETTLE = 30.0
CIDR, PREFIX = "192.168.160.0/24", "192.168.160."


class Lab(Protocol):
    def vm(self, host: str, port: Any) -> str:
        """Plug a VM namespace for ``port`` on ``host`` (its MAC, its first fixed IP /24);
        returns the namespace."""


def ping(namespace: str, address: str) -> bool:
    """One echo request from ``namespace`` to ``address``, answered within a second."""
    result = subprocess.run(["ip", "netns", "exec", namespace, sys.executable, str(PING),
                             address, "1", "1"], capture_output=True, text=True, timeout=30,
                            check=False)
    return result.returncode == 0


def run(cloud: stackcore.Cloud, lab: Lab, hosts: tuple[str, str],
        settled: Callable[[], None]) -> None:
    """The scenario (module doc). ``settled()`` returns once the agents wired what is bound
    (their ports ACTIVE)."""
    net = cloud.network
    here, there = hosts
    network = net.create_network("sg")
    subnet = net.create_subnet(network.id, CIDR)
    client = net.create_security_group("client")
    server = net.create_security_group("server")

    def port(host: str, group: Any, last: int) -> Any:
        return net.create_port(network.id, host=host, security_groups=[group.id], fixed_ips=[
            {"subnet_id": subnet.id, "ip_address": f"{PREFIX}{last}"}])

    a, b, c = port(here, client, 10), port(there, server, 11), port(here, server, 12)
    ns = {p.id: lab.vm(host, p) for p, host in ((a, here), (b, there), (c, here))}
    settled()
    wait_until(lambda: all(net.get_port(p.id).status == "ACTIVE" for p in (a, b, c)), SETTLE,
               "the three ports ACTIVE")

    def reach(src: Any, dst: str) -> bool:
        return ping(ns[src.id], dst)

    # no ingress rule anywhere: nothing gets through (already wired: one try each is enough)
    assert not reach(a, f"{PREFIX}11"), "a reached b with no ingress rule on b"
    assert not reach(a, f"{PREFIX}12"), "a reached c (same host) with no ingress rule on c"
    assert not reach(b, f"{PREFIX}10"), "b reached a with no ingress rule on a"

    rule = net.create_security_group_rule(server.id, "ingress", protocol="icmp",
                                          remote_group_id=client.id)
    wait_until(lambda: reach(a, f"{PREFIX}11"), SETTLE, "a -> b after the ICMP rule")
    wait_until(lambda: reach(a, f"{PREFIX}12"), SETTLE, "a -> c (same host) after the rule")
    # the replies reached a although a has no ingress rule: stateful; b -> a stays closed
    assert not reach(b, f"{PREFIX}10"), "b reached a: a's missing ingress rule was ignored"

    net.delete_security_group_rule(rule.id)
    wait_until(lambda: not reach(a, f"{PREFIX}11"), SETTLE, "a -> b blocked once the rule went")
    wait_until(lambda: not reach(a, f"{PREFIX}12"), SETTLE, "a -> c blocked once the rule went")

    net.create_security_group_rule(server.id, "ingress", protocol="icmp",
                                   remote_group_id=client.id)
    wait_until(lambda: reach(a, f"{PREFIX}11"), SETTLE, "a -> b with the rule back")
    # a sends from an address that is not its own: dropped at a's port
    subprocess.run(["ip", "-n", ns[a.id], "addr", "flush", "dev", "eth0"], check=True)
    subprocess.run(["ip", "-n", ns[a.id], "addr", "add", f"{PREFIX}99/24", "dev", "eth0"],
                   check=True)
    assert not reach(a, f"{PREFIX}11"), "a's spoofed source 192.168.160.99 was not dropped"
    net.update_port(a.id, allowed_address_pairs=[{"ip_address": f"{PREFIX}99"}])
    wait_until(lambda: reach(a, f"{PREFIX}11"), SETTLE,
               "a -> b from 192.168.160.99 once it is an allowed address pair")

    assert not reach(b, f"{PREFIX}99"), "b reached a: a's missing ingress rule was ignored"
    net.update_port(a.id, port_security_enabled=False, security_groups=[],
                    allowed_address_pairs=[])
    wait_until(lambda: reach(b, f"{PREFIX}99"), SETTLE,
               "b -> a once a's port security is off")


class EchoStream:
    """A long-lived flow: one ICMP identifier for every echo (``icmp_ping.py ADDRESS 0``), so
    the firewall's conntrack sees one connection that stays established while it runs.
    ``answered_since(n)`` / ``lost_since(n)``: echoes answered / lost after the first ``n``."""

    def __init__(self, namespace: str, address: str) -> None:
        import threading
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            ["ip", "netns", "exec", namespace, sys.executable, str(PING), address, "0", "1"],
            stdout=subprocess.PIPE, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.strip())

    def seen(self) -> int:
        return len(self.lines)

    def answered_since(self, start: int) -> int:
        return sum(line.startswith("ok ") for line in self.lines[start:])

    def lost_since(self, start: int) -> int:
        return sum(line.startswith("lost ") for line in self.lines[start:])

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)
        self._reader.join(timeout=10)


def revoked_rule_ends_established_flows(cloud: stackcore.Cloud, lab: Lab,
                                        hosts: tuple[str, str],
                                        settled: Callable[[], None]) -> None:
    """A flow a rule accepted, still running when the rule is deleted, stops: the agent
    forgets the connections of the port that lost the rule (without that, conntrack keeps
    the established flow alive as long as it keeps sending)."""
    net = cloud.network
    here, there = hosts
    network = net.create_network("sg-revoke")
    subnet = net.create_subnet(network.id, "192.168.161.0/24")
    client = net.create_security_group("client")
    server = net.create_security_group("server")
    a = net.create_port(network.id, host=here, security_groups=[client.id], fixed_ips=[
        {"subnet_id": subnet.id, "ip_address": "192.168.161.10"}])
    b = net.create_port(network.id, host=there, security_groups=[server.id], fixed_ips=[
        {"subnet_id": subnet.id, "ip_address": "192.168.161.11"}])
    ns_a = lab.vm(here, a)
    lab.vm(there, b)
    settled()
    wait_until(lambda: all(net.get_port(p.id).status == "ACTIVE" for p in (a, b)), SETTLE,
               "both ports ACTIVE")
    rule = net.create_security_group_rule(server.id, "ingress", protocol="icmp",
                                          remote_group_id=client.id)
    wait_until(lambda: ping(ns_a, "192.168.161.11"), SETTLE, "a -> b after the ICMP rule")
    stream = EchoStream(ns_a, "192.168.161.11")
    try:
        wait_until(lambda: stream.answered_since(0) >= 3, SETTLE,
                   f"the echo stream answered (so far {stream.lines})")
        net.delete_security_group_rule(rule.id)
        # once the flow stops, it stays stopped: several echoes in a row lost, none answered
        start = [stream.seen()]

        def stopped() -> bool:
            if stream.answered_since(start[0]):
                start[0] = stream.seen()  # not yet: count from the last answered echo
                return False
            return stream.lost_since(start[0]) >= 3
        wait_until(stopped, SETTLE, "the established echo stream to stop after the rule was "
                   f"deleted (its lines until the delete: {stream.lines[-6:]})")
    finally:
        stream.stop()
