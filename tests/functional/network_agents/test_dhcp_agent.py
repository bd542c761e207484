"""The DHCP agent and the dnsmasq driver on real OVS (userspace datapath) and on real kernel
bridges (the Linux bridge agent), with real DHCP clients.

One simulated host: an ovsdb-server + ovs-vswitchd instance (``tools/backends/ovs-instance.sh
sc-dhcp``, its own network namespace, ``netdev`` datapath) wired by an OVS agent, and a DHCP
agent plugging its DHCP ports into that instance's br-int. The ML2 server is an embedded Cloud;
both agents talk to it over the in-process transport. A "guest" is a namespace whose ``eth0``
(the port's MAC) is a veth cabled to br-int as libvirt/os-vif would plug it; it asks for an
address with busybox ``udhcpc``, whose script records the lease in a file. The Linux bridge
test runs its host in a namespace of its own, with a veth as physnet1's NIC.

The DHCP agent's full resync is set to a minute: everything the tests see within seconds
came through the server's notifications.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from stackcore_drivers.network.conf import load_agent_conf
from stackcore_drivers.network.dhcp import interface
from stackcore_drivers.network.dhcp.agent import DhcpAgent
from stackcore_drivers.network.dhcp.dnsmasq import DnsmasqDriver
from stackcore_drivers.network.linuxbridge.agent import LinuxBridgeAgent
from stackcore_drivers.network.ovs import conf as ovs_conf
from stackcore_drivers.network.ovs.agent import OvsAgent
from stackcore_drivers.network.ovs.ovsdb import Ovsdb

import stackcore
from stackcore import lifecycle
from stackcore.network.dhcp import DhcpDevice, DhcpNetwork, netns_name
from tests.conftest import backend_env, wait_until
from tests.functional.processes import terminate

from .conftest import start_linux_bridge_agent

pytestmark = pytest.mark.real

REPO = Path(__file__).resolve().parents[3]
#: the OVS instance (tools/backends/ovs-instance.sh); another name keeps two concurrent runs
#: of this file (two worktrees) from wiping each other's bridges
INSTANCE = os.environ.get("STACKCORE_TEST_DHCP_OVS_INSTANCE", "sc-dhcp")
HOST = "dhcp-host"
DP_NS = f"stackcore-ovs-{INSTANCE}"
OWNED_BRIDGES = ("br-int", "br-tun", "br-phys")
#: the secret the metadata tests' agents share with the stub metadata service
SECRET = "functional-metadata-secret"
#: the lease a guest got, as busybox udhcpc hands it to its script (environment variables)
LEASE_SCRIPT = """#!/bin/sh
[ "$1" = bound ] || exit 0
printf '%s %s %s %s %s\\n' "$ip" "$subnet" "$router" "$hostname" "$mtu" > "$LEASE_FILE"
"""


def ip(*args: str, check: bool = True) -> str:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30,
                            check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def _alive(pid: str | None) -> bool:
    """Whether process ``pid`` runs (a zombie waiting for init to reap it does not)."""
    if pid is None:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture
def ovsdb() -> Iterator[Ovsdb]:
    backend_env("STACKCORE_TEST_OVSDB", "ovs")
    result = subprocess.run(["bash", str(REPO / "tools/backends/ovs-instance.sh"), INSTANCE],
                            capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        pytest.fail(f"ovs-instance.sh {INSTANCE} failed: {result.stderr[-2000:]}")
    db = Ovsdb("unix:" + result.stdout.strip().splitlines()[-1])

    def wipe() -> None:
        with db.transaction() as txn:
            for bridge in OWNED_BRIDGES:
                txn.add(db.api.del_br(bridge, if_exists=True))
    wipe()
    yield db
    wipe()
    db.close()


@pytest.fixture
def server(make_server: Callable[..., stackcore.Cloud]) -> stackcore.Cloud:
    return make_server("openvswitch")


def start_ovs_agent(server: stackcore.Cloud, ovsdb: Ovsdb) -> OvsAgent:
    """The host's OVS agent (it makes br-int and wires the ports), started."""
    conf = load_agent_conf([("ovs", ovs_conf.AGENT_OPTS)], overrides={
        "DEFAULT": {"host": HOST},
        "agent": {"report_interval": 1, "polling_interval": 0.2},
        "ovs": {"ovsdb_connection": ovsdb.target, "datapath_type": "netdev",
                "tunnel_types": ["vxlan"], "local_ip": "10.51.0.1"}})
    agent = OvsAgent(conf, server.transport)
    agent.start()
    return agent


@pytest.fixture
def ovs_agent(server: stackcore.Cloud, ovsdb: Ovsdb) -> Iterator[OvsAgent]:
    agent = start_ovs_agent(server, ovsdb)
    yield agent
    agent.stop()


class Lab:
    """DHCP agents (made by :meth:`agent`) and guests; :meth:`destroy` removes what the tests
    made, dnsmasq processes and qdhcp namespaces of their networks included."""

    def __init__(self, server: stackcore.Cloud, ovsdb: Ovsdb | None, tmp: Path,
                 host: str = HOST, datapath: str = DP_NS) -> None:
        """``ovsdb`` None: the Linux bridge datapath, in namespace ``datapath``."""
        self.server, self.ovsdb, self.tmp = server, ovsdb, tmp
        self.host, self.datapath = host, datapath
        self.agents: list[DhcpAgent] = []
        self.guests: dict[str, str] = {}
        self.networks: set[str] = set()
        self.tag = uuid.uuid4().hex[:6]
        self.script = tmp / "lease.sh"
        self.script.write_text(LEASE_SCRIPT)
        self.script.chmod(0o755)

    def agent(self, metadata_url: str | None = None) -> DhcpAgent:
        """An agent (not started); with isolated metadata forwarding to ``metadata_url``
        (signing with :data:`SECRET`) when given."""
        metadata = ({"enable_isolated_metadata": True, "metadata_url": metadata_url,
                     "metadata_proxy_shared_secret": SECRET} if metadata_url
                    else {"enable_isolated_metadata": False})
        conf = load_agent_conf(DhcpAgent.list_opts()[1:], overrides={
            "DEFAULT": {"host": self.host, "state_path": str(self.tmp / "agent")},
            "agent": {"report_interval": 1},
            "dhcp": {"interface_driver": "openvswitch" if self.ovsdb else "linuxbridge",
                     "datapath_namespace": self.datapath, "resync_interval": 60,
                     **metadata},
            "ovs": {"ovsdb_connection": self.ovsdb.target if self.ovsdb else "unix:/none"}})
        agent = DhcpAgent(conf, self.server.transport)
        self.agents.append(agent)
        return agent

    def network(self, name: str, cidr: str, **subnet: Any) -> tuple[Any, Any]:
        net = self.server.network.create_network(name)
        self.networks.add(net.id)
        return net, self.server.network.create_subnet(net.id, cidr, **subnet)

    def plug_guest(self, port: Any) -> str:
        """A guest namespace cabled as the port (its MAC), without an address: to br-int,
        or left for the Linux bridge agent to enslave."""
        guest = f"scdhcp-{self.tag}-g{len(self.guests)}"
        ip("netns", "add", guest)
        self.guests[port.id] = guest
        tap = interface.host_device(port.id)
        ip("link", "add", tap, "netns", self.datapath, "type", "veth", "peer", "name", "eth0",
           "netns", guest, "address", port.mac_address)
        ip("-n", guest, "link", "set", "eth0", "up")
        # the guest's TCP (metadata) leaves with its checksum to be filled by the NIC, which a
        # veth never does (see interface.py); a VM's virtio NIC fills it
        subprocess.run(["ip", "netns", "exec", guest, "ethtool", "-K", "eth0", "tx", "off"],
                       capture_output=True, timeout=30, check=True)
        ip("-n", self.datapath, "link", "set", tap, "up")
        if self.ovsdb is not None:
            self.ovsdb.execute(self.ovsdb.api.add_port("br-int", tap, external_ids={
                "iface-id": port.id, "attached-mac": port.mac_address,
                "iface-status": "active"}))
        return guest

    def unplug_guest(self, port: Any) -> None:
        tap = interface.host_device(port.id)
        if self.ovsdb is not None:
            self.ovsdb.execute(self.ovsdb.api.del_port(tap, if_exists=True))
        ip("netns", "delete", self.guests.pop(port.id), check=False)

    def dhcp(self, port: Any) -> dict[str, str]:
        """busybox udhcpc in the port's guest: the lease it got (fails if none)."""
        lease = self.tmp / f"lease-{port.id}"
        lease.unlink(missing_ok=True)
        result = subprocess.run(
            ["ip", "netns", "exec", self.guests[port.id], "busybox", "udhcpc", "-i", "eth0",
             "-n", "-q", "-f", "-t", "8", "-T", "1", "-O", "mtu", "-s", str(self.script)],
            env={**os.environ, "LEASE_FILE": str(lease)}, capture_output=True, text=True,
            timeout=60, check=False)
        assert result.returncode == 0 and lease.exists(), (
            f"udhcpc for port {port.id} ({port.mac_address}) got no lease: exit "
            f"{result.returncode}\n{result.stdout}\n{result.stderr}")
        address, mask, router, hostname, mtu = (lease.read_text().split(" ") + [""] * 5)[:5]
        return {"ip": address, "subnet": mask, "router": router, "hostname": hostname,
                "mtu": mtu.strip()}

    def destroy(self) -> None:
        for agent in self.agents:
            agent.stop()
        cleaner = self.agent()
        for network_id in self.networks:
            cleaner.proxies.stop(network_id)
            cleaner.driver.disable(network_id)
            cleaner.plugger.unplug(netns_name(network_id))
        cleaner.stop()
        for port_id, guest in list(self.guests.items()):
            if self.ovsdb is not None:
                self.ovsdb.execute(self.ovsdb.api.del_port(interface.host_device(port_id),
                                                           if_exists=True))
            ip("netns", "delete", guest, check=False)


@pytest.fixture
def lab(server: stackcore.Cloud, ovsdb: Ovsdb, ovs_agent: OvsAgent, tmp_path: Path
        ) -> Iterator[Lab]:
    made = Lab(server, ovsdb, tmp_path)
    yield made
    made.destroy()


def served(agent: DhcpAgent, network_id: str) -> dict[str, str]:
    """MAC -> IP the network's dnsmasq reads now."""
    return {e.mac_address: e.ip_address for e in agent.driver.served_hosts(network_id)}


def dhcp_port(server: stackcore.Cloud, network_id: str) -> Any:
    ports = [p for p in server.network.list_ports(network_id=network_id, all_projects=True)
             if p.device_owner == "network:dhcp"]
    return ports[0] if len(ports) == 1 else None


def test_guest_gets_its_ports_address_and_new_ports_are_served_without_restart(
    server: stackcore.Cloud, lab: Lab
) -> None:
    net = server.network
    x, subnet = lab.network("x", "10.77.0.0/24")
    agent = lab.agent()
    agent.start()
    pid = agent.driver.server_id(x.id)
    assert _alive(pid), f"no dnsmasq for network {x.id} after the agent's start: {agent.errors}"
    namespace = netns_name(x.id)
    assert namespace in interface.namespaces()

    # the DHCP port: a real port, bound to the host, wired by the OVS agent
    port = wait_until(lambda: dhcp_port(server, x.id), 10, "the DHCP port")
    assert port.host == HOST and port.vif_type == "ovs", (port.host, port.binding_failures)
    wait_until(lambda: net.get_port(port.id).status == "ACTIVE", 15,
               f"DHCP port {port.id} ACTIVE (wired by the OVS agent)")
    addresses = ip("-n", namespace, "-br", "addr", "show", "dev", interface.ns_device(port.id))
    assert f"{port.fixed_ips[0].ip_address}/24" in addresses, addresses

    vm1 = net.create_port(x.id, host=HOST)
    lab.plug_guest(vm1)
    wait_until(lambda: net.get_port(vm1.id).status == "ACTIVE", 15, "guest port ACTIVE")
    wait_until(lambda: served(agent, x.id).get(vm1.mac_address), 10,
               f"host entry of {vm1.mac_address}")
    lease = lab.dhcp(vm1)
    expected_ip = vm1.fixed_ips[0].ip_address
    assert lease == {"ip": expected_ip, "subnet": "255.255.255.0", "router": "10.77.0.1",
                     "hostname": "host-" + expected_ip.replace(".", "-"),
                     "mtu": str(x.mtu)}, lease

    # a new port: its host entry is served by the same dnsmasq (SIGHUP, no restart)
    vm2 = net.create_port(x.id, host=HOST)
    lab.plug_guest(vm2)
    wait_until(lambda: served(agent, x.id).get(vm2.mac_address), 5,
               f"host entry of the new port {vm2.mac_address} (notified, no resync)")
    assert lab.dhcp(vm2)["ip"] == vm2.fixed_ips[0].ip_address
    assert agent.driver.server_id(x.id) == pid, "dnsmasq was restarted for a port change"

    # a deleted port's entry goes; the guest of a port it does not know gets nothing
    lab.unplug_guest(vm2)
    net.delete_port(vm2.id)
    wait_until(lambda: vm2.mac_address not in served(agent, x.id), 5,
               "the deleted port's host entry removed")
    assert agent.driver.server_id(x.id) == pid

    # DHCP off on the only subnet: the network is no longer served, its DHCP port released
    net.update_subnet(subnet.id, enable_dhcp=False)
    wait_until(lambda: namespace not in interface.namespaces(), 10,
               f"namespace {namespace} removed after enable_dhcp=False")
    assert not _alive(pid), f"dnsmasq {pid} still runs"
    # released right after the namespace is removed (the agent's next RPC)
    wait_until(lambda: dhcp_port(server, x.id) is None, 5, "the DHCP port released")
    net.update_subnet(subnet.id, enable_dhcp=True)
    wait_until(lambda: _alive(agent.driver.server_id(x.id)), 10, "dnsmasq back with DHCP on")
    assert lab.dhcp(vm1)["ip"] == expected_ip

    # the network goes: its DHCP port with it, then its namespace and dnsmasq
    pid = agent.driver.server_id(x.id)
    lab.unplug_guest(vm1)
    net.delete_port(vm1.id)
    net.delete_network(x.id)
    wait_until(lambda: namespace not in interface.namespaces(), 10,
               f"namespace {namespace} removed with its network")
    assert not _alive(pid), f"dnsmasq {pid} of the deleted network still runs"
    assert x.id not in agent.driver.active_networks()
    assert interface.host_device(port.id) not in ip("-n", DP_NS, "-br", "link", "show")


def test_restart_adopts_dnsmasq_resyncs_and_removes_what_went_meanwhile(
    server: stackcore.Cloud, lab: Lab
) -> None:
    net = server.network
    kept, _ = lab.network("kept", "10.78.0.0/24")
    gone, _ = lab.network("gone", "10.79.0.0/24")
    agent = lab.agent()
    agent.start()
    pid_kept, pid_gone = agent.driver.server_id(kept.id), agent.driver.server_id(gone.id)
    assert _alive(pid_kept) and _alive(pid_gone), agent.errors
    vm = net.create_port(kept.id, host=HOST)
    wait_until(lambda: served(agent, kept.id).get(vm.mac_address), 5, "host entry")

    agent.stop()   # dnsmasq keeps serving while the agent is away
    assert _alive(pid_kept) and _alive(pid_gone)
    net.delete_port(vm.id)
    net.delete_network(gone.id)          # nobody listens: the notification is lost
    late = net.create_port(kept.id, host=HOST)
    fresh, _ = lab.network("fresh", "10.80.0.0/24")

    restarted = lab.agent()
    restarted.start()                    # the first pass is a full resync
    assert restarted.driver.server_id(kept.id) == pid_kept, "running dnsmasq not adopted"
    assert served(restarted, kept.id).get(late.mac_address) == late.fixed_ips[0].ip_address
    assert vm.mac_address not in served(restarted, kept.id)
    assert not _alive(pid_gone), f"dnsmasq {pid_gone} of the deleted network still runs"
    assert netns_name(gone.id) not in interface.namespaces()
    assert gone.id not in restarted.driver.active_networks()
    assert _alive(restarted.driver.server_id(fresh.id))
    lab.plug_guest(late)
    wait_until(lambda: net.get_port(late.id).status == "ACTIVE", 15, "guest port ACTIVE")
    assert lab.dhcp(late)["ip"] == late.fixed_ips[0].ip_address


@pytest.mark.rabbit
def test_agent_process_over_rabbitmq_stops_within_the_deadline_leaving_dnsmasq(
    make_server: Callable[..., stackcore.Cloud], ovsdb: Ovsdb, rabbit_url: str, tmp_path: Path
) -> None:
    """``stackcore-dhcp-agent`` in its own process, without any database: it learns its
    networks over RabbitMQ, gets notified of a new port, and ends within 5 s of SIGTERM,
    leaving its dnsmasq serving (adopted by the next start)."""
    server = make_server("openvswitch", DEFAULT={"transport_url": rabbit_url,
                                                 "rpc_call_timeout": 20})
    l2 = start_ovs_agent(server, ovsdb)
    lab = Lab(server, ovsdb, tmp_path)
    config = tmp_path / "dhcp-agent.conf"
    config.write_text(
        f"[DEFAULT]\nhost = {HOST}\ntransport_url = {rabbit_url}\n"
        f"state_path = {tmp_path / 'agent'}\n"
        "[agent]\nreport_interval = 1\n"
        f"[dhcp]\ninterface_driver = openvswitch\ndatapath_namespace = {DP_NS}\n"
        "resync_interval = 60\nenable_isolated_metadata = false\n"
        f"[ovs]\novsdb_connection = {ovsdb.target}\n")
    log = tmp_path / "dhcp-agent.log"
    reader = lab.agent()   # never started: reads the dnsmasq driver's files
    x, _ = lab.network("x", "10.81.0.0/24")
    with open(log, "w") as out:
        agent = subprocess.Popen(
            [str(Path(sys.executable).with_name("stackcore-dhcp-agent")), "--config-file",
             str(config)], stdout=out, stderr=subprocess.STDOUT, text=True)
    try:
        def running(check: Callable[[], Any], what: str) -> Any:
            return wait_until(lambda: check() if agent.poll() is None else pytest.fail(
                f"agent exited {agent.poll()}: {log.read_text()[-3000:]}"), 30, what)

        running(lambda: any(a.alive for a in server.network.list_agents(
            host=HOST, agent_type="DHCP agent")), "the DHCP agent reported alive")
        pid = running(lambda: reader.driver.server_id(x.id), "dnsmasq of network x")
        vm = server.network.create_port(x.id)
        running(lambda: served(reader, x.id).get(vm.mac_address), "the new port's entry")
        took = terminate(agent, "stackcore-dhcp-agent", log)
        print(f"\nSIGTERM -> exit, stackcore-dhcp-agent: {took:.2f} s")
        assert _alive(pid), "dnsmasq stopped with the agent (it should keep serving)"
        assert reader.driver.server_id(x.id) == pid
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
        lab.destroy()
        l2.stop()


def test_linux_bridge_datapath_guest_gets_its_address(
    make_server: Callable[..., stackcore.Cloud], tmp_path: Path
) -> None:
    """The same on the Linux bridge datapath: the DHCP port's tap is enslaved to the
    network's bridge by the Linux bridge agent, like a VM's. The host is a namespace with a
    veth as physnet1's NIC (a flat network)."""
    server = make_server("linuxbridge", ml2_type_flat={"flat_networks": ["*"]})
    host, datapath = "dhcp-lb-host", f"sc-dhcplb-{uuid.uuid4().hex[:6]}"
    ip("netns", "add", datapath)
    l2: LinuxBridgeAgent | None = None
    lab = Lab(server, None, tmp_path, host, datapath)
    try:
        ip("-n", datapath, "link", "add", "ph0", "type", "veth", "peer", "name", "ph1")
        for device in ("lo", "ph0", "ph1"):
            ip("-n", datapath, "link", "set", device, "up")
        l2 = start_linux_bridge_agent(server, host, datapath, {"physnet1": "ph0"})
        net = server.network
        flat = net.create_network("flat", network_type="flat", physical_network="physnet1")
        lab.networks.add(flat.id)
        net.create_subnet(flat.id, "10.82.0.0/24")
        agent = lab.agent()
        agent.start()
        port = wait_until(lambda: dhcp_port(server, flat.id), 10, "the DHCP port")
        assert port.vif_type == "bridge", port.binding_failures
        vm = net.create_port(flat.id, host=host)
        lab.plug_guest(vm)
        wait_until(lambda: {net.get_port(p.id).status for p in (port, vm)} == {"ACTIVE"}, 15,
                   "DHCP and guest ports ACTIVE (enslaved by the Linux bridge agent)")
        wait_until(lambda: served(agent, flat.id).get(vm.mac_address), 5, "host entry")
        assert lab.dhcp(vm)["ip"] == vm.fixed_ips[0].ip_address
        lab.unplug_guest(vm)
        net.delete_port(vm.id)
        net.delete_network(flat.id)
        wait_until(lambda: netns_name(flat.id) not in interface.namespaces(), 10,
                   "the namespace removed with its network")
    finally:
        lab.destroy()
        if l2 is not None:
            l2.stop()
        ip("netns", "delete", datapath, check=False)


#: the DNS servers and classless routes (options 6, 121 and Microsoft's 249) a guest got
OPTIONS_SCRIPT = """#!/bin/sh
[ "$1" = bound ] || exit 0
printf '%s|%s|%s|%s\\n' "$dns" "$staticroutes" "$msstaticroutes" "$router" > "$LEASE_FILE"
"""


def test_guest_gets_the_subnets_dns_servers_and_routes_and_their_changes(
    server: stackcore.Cloud, lab: Lab
) -> None:
    """dns_nameservers and host_routes reach a real DHCP client (busybox udhcpc asks for
    options 6, 121 and 249), and an update_subnet reaches the running dnsmasq (SIGHUP: the
    same pid) so the next lease carries the new values."""
    net = server.network
    x, subnet = lab.network("dns", "10.78.0.0/24", dns_nameservers=["10.78.0.53", "192.0.2.53"],
                            host_routes=[{"destination": "198.51.100.0/24",
                                          "nexthop": "10.78.0.254"}])
    agent = lab.agent()
    agent.start()
    pid = agent.driver.server_id(x.id)
    assert _alive(pid), f"no dnsmasq for network {x.id}: {agent.errors}"
    vm = net.create_port(x.id, host=HOST)
    lab.plug_guest(vm)
    wait_until(lambda: net.get_port(vm.id).status == "ACTIVE", 15, "guest port ACTIVE")
    wait_until(lambda: served(agent, x.id).get(vm.mac_address), 10,
               f"host entry of {vm.mac_address}")
    script = lab.tmp / "options.sh"
    script.write_text(OPTIONS_SCRIPT)
    script.chmod(0o755)

    def options() -> list[str]:
        lease = lab.tmp / f"options-{vm.id}"
        lease.unlink(missing_ok=True)
        result = subprocess.run(
            ["ip", "netns", "exec", lab.guests[vm.id], "busybox", "udhcpc", "-i", "eth0",
             "-n", "-q", "-f", "-t", "8", "-T", "1", "-O", "staticroutes", "-O",
             "msstaticroutes", "-s", str(script)],
            env={**os.environ, "LEASE_FILE": str(lease)}, capture_output=True, text=True,
            timeout=60, check=False)
        assert result.returncode == 0 and lease.exists(), (
            f"udhcpc got no lease: exit {result.returncode}\n{result.stdout}\n{result.stderr}")
        return [part.strip() for part in lease.read_text().split("|")]

    routes = "198.51.100.0/24 10.78.0.254 0.0.0.0/0 10.78.0.1"
    got = options()
    assert got == ["10.78.0.53 192.0.2.53", routes, routes, "10.78.0.1"], got

    net.update_subnet(subnet.id, dns_nameservers=["203.0.113.53"],
                      host_routes=[{"destination": "203.0.113.0/24",
                                    "nexthop": "10.78.0.253"}])
    new_routes = "203.0.113.0/24 10.78.0.253 0.0.0.0/0 10.78.0.1"
    wait_until(lambda: agent.driver.served_subnet_options(x.id).get(subnet.id, ((), ()))[0]
               == ("203.0.113.53",), 10, "the new DNS servers in dnsmasq's opts file")
    got = options()
    assert got == ["203.0.113.53", new_routes, new_routes, "10.78.0.1"], got
    net.update_subnet(subnet.id, dns_nameservers=[], host_routes=[])
    wait_until(lambda: agent.driver.served_subnet_options(x.id).get(subnet.id, ((), ()))
               == ((), ()), 10, "DNS servers and routes gone from dnsmasq's opts file")
    got = options()
    assert got == ["", "", "", "10.78.0.1"], got
    assert agent.driver.server_id(x.id) == pid, "dnsmasq was restarted for an option change"


def test_dnsmasq_started_by_an_agent_thread_stops_on_sigterm(tmp_path: Path) -> None:
    """The agent's threads block SIGTERM/SIGINT (stackcore.lifecycle) and a signal mask
    survives fork and exec: the real dnsmasq, started from such a thread as the agent does,
    still ends promptly on one SIGTERM (the driver starts it with
    lifecycle.unblock_stop_signals)."""
    network_id, subnet_id, port_id = (str(uuid.uuid4()) for _ in range(3))
    namespace = netns_name(network_id)
    ip("netns", "add", namespace)
    conf = load_agent_conf(DhcpAgent.list_opts()[1:])
    driver = DnsmasqDriver(conf, str(tmp_path / "driver"))
    try:
        ip("-n", namespace, "link", "add", "ns-sig0", "type", "veth", "peer", "name", "ns-sig1")
        ip("-n", namespace, "link", "set", "ns-sig1", "up")
        ip("-n", namespace, "addr", "add", "10.83.0.2/24", "dev", "ns-sig0")
        ip("-n", namespace, "link", "set", "ns-sig0", "up")
        network = DhcpNetwork.from_dict({
            "id": network_id, "mtu": 1500,
            "subnets": [{"id": subnet_id, "cidr": "10.83.0.0/24", "enable_dhcp": True,
                         "gateway_ip": "10.83.0.1"}],
            "ports": [{"id": port_id, "mac_address": "fa:16:3e:00:83:02",
                       "fixed_ips": [{"subnet_id": subnet_id, "ip_address": "10.83.0.2"}]}]})
        device = DhcpDevice(namespace, "ns-sig0", network.ports[0])
        failures: list[BaseException] = []

        def agent_thread() -> None:
            lifecycle.block_stop_signals()   # as every agent's thread has them
            try:
                driver.enable(network, device)
            except BaseException as err:
                failures.append(err)

        thread = threading.Thread(target=agent_thread)
        thread.start()
        thread.join(60)
        assert not failures, f"dnsmasq did not start: {failures}"
        pid = driver.server_id(network_id)
        assert _alive(pid), f"no dnsmasq after enable: pid {pid}"
        blocked = Path(f"/proc/{pid}/status").read_text().split("SigBlk:")[1].split()[0]
        sent = time.monotonic()
        os.kill(int(str(pid)), signal.SIGTERM)
        wait_until(lambda: not _alive(pid), 3, f"dnsmasq {pid} ended after one SIGTERM "
                   f"(its blocked signals, SigBlk: {blocked})")
        print(f"\nSIGTERM -> exit, dnsmasq: {time.monotonic() - sent:.2f} s")
    finally:
        driver.disable(network_id)
        ip("netns", "delete", namespace, check=False)


#: configures the lease like a guest's DHCP client would: address, classless routes
ROUTES_SCRIPT = """#!/bin/sh
[ "$1" = bound ] || exit 0
ip addr add "$ip/$mask" dev "$interface"
set -- $staticroutes
while [ $# -ge 2 ]; do ip route replace "$1" via "$2" dev "$interface"; shift 2; done
printf '%s\\n' "$staticroutes" > "$LEASE_FILE"
"""
#: a guest's HTTP GET (run in its namespace): prints the status, then the body
GUEST_GET = """
import json, sys, urllib.error, urllib.request
request = urllib.request.Request(sys.argv[1], headers=json.loads(sys.argv[2]))
try:
    with urllib.request.urlopen(request, timeout=20) as response:
        print(response.status); print(response.read().decode())
except urllib.error.HTTPError as err:
    print(err.code); print(err.read().decode())
"""
METADATA_URL = "http://169.254.169.254/openstack/latest/meta_data.json"
#: what a malicious guest sends, hoping to be taken for another server
SPOOFED = {"X-Instance-ID": "11111111-1111-4111-8111-111111111111",
           "X-Instance-ID-Signature": "0" * 64, "X-Tenant-ID": "someone-else",
           "X-Forwarded-For": "10.0.0.1"}


class StubMetadata:
    """The compute metadata service, as a stub in the test: records each request's path and
    headers, answers ``{"uuid": <X-Instance-ID>}``."""

    def __init__(self) -> None:
        import http.server

        self.requests: list[tuple[str, dict[str, str]]] = []
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                stub.requests.append((self.path, {k.lower(): v for k, v in
                                                  self.headers.items()}))
                body = json.dumps({"uuid": self.headers.get("X-Instance-ID")}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.1,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_as_the_console_script(agent: DhcpAgent) -> None:
    """``agent.start()`` from a thread with SIGTERM/SIGINT blocked, as in
    ``stackcore-dhcp-agent`` (its loops inherit the mask; so would the daemons it starts,
    without stackcore.lifecycle.unblock_stop_signals)."""
    failures: list[BaseException] = []

    def run() -> None:
        lifecycle.block_stop_signals()
        try:
            agent.start()
        except BaseException as err:
            failures.append(err)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(60)
    assert not thread.is_alive() and not failures, f"agent start: {failures}"


def _sigterm_blocked(pid: object) -> bool:
    blocked = Path(f"/proc/{pid}/status").read_text().split("SigBlk:")[1].split()[0]
    return bool(int(blocked, 16) & (1 << (signal.SIGTERM - 1)))


def test_guests_reach_the_metadata_service_through_the_proxy_identified_by_their_port(
    server: stackcore.Cloud, lab: Lab
) -> None:
    """Isolated metadata end to end: each guest gets the route to 169.254.169.254 by DHCP,
    GETs meta_data.json through the proxy in the qdhcp- namespace, and the stub metadata
    service sees that guest's server id (from its port, signed), whatever headers the guest
    sent. The proxy is adopted by a restarted agent, restarted when found dead, and gone with
    the network's DHCP."""
    nova = StubMetadata()
    try:
        net = server.network
        x, subnet = lab.network("md", "10.84.0.0/24")
        agent = lab.agent(metadata_url=nova.url)
        start_as_the_console_script(agent)
        proxy = agent.proxies.pid(x.id)
        assert _alive(str(proxy)), f"no metadata proxy for network {x.id}: {agent.errors}"
        assert not _sigterm_blocked(proxy), f"metadata proxy {proxy} has SIGTERM blocked"
        dhcp = wait_until(lambda: dhcp_port(server, x.id), 10, "the DHCP port")
        dhcp_ip = dhcp.fixed_ips[0].ip_address
        script = lab.tmp / "routes.sh"
        script.write_text(ROUTES_SCRIPT)
        script.chmod(0o755)
        vms = [net.create_port(x.id, host=HOST, device_id=str(uuid.uuid4()),
                               device_owner="compute:nova") for _ in range(2)]
        for vm in vms:
            lab.plug_guest(vm)
        for vm in vms:
            wait_until(lambda vm=vm: net.get_port(vm.id).status == "ACTIVE", 15,
                       f"guest port {vm.id} ACTIVE")
            wait_until(lambda vm=vm: served(agent, x.id).get(vm.mac_address), 10,
                       f"host entry of {vm.mac_address}")
            lease = lab.tmp / f"routes-{vm.id}"
            result = subprocess.run(
                ["ip", "netns", "exec", lab.guests[vm.id], "busybox", "udhcpc", "-i", "eth0",
                 "-n", "-q", "-f", "-t", "8", "-T", "1", "-O", "staticroutes",
                 "-s", str(script)],
                env={**os.environ, "LEASE_FILE": str(lease)}, capture_output=True, text=True,
                timeout=60, check=False)
            assert result.returncode == 0 and lease.exists(), (
                f"udhcpc got no lease: {result.returncode}\n{result.stdout}{result.stderr}")
            assert lease.read_text().split() == [
                "169.254.169.254/32", dhcp_ip, "0.0.0.0/0", "10.84.0.1"], lease.read_text()
            routes = ip("-n", lab.guests[vm.id], "route", "show", "169.254.169.254")
            assert f"via {dhcp_ip}" in routes, routes

        def guest_get(vm: Any) -> tuple[str, dict[str, Any]]:
            result = subprocess.run(
                ["ip", "netns", "exec", lab.guests[vm.id], sys.executable, "-c", GUEST_GET,
                 METADATA_URL, json.dumps(SPOOFED)],
                capture_output=True, text=True, timeout=60, check=False)
            assert result.returncode == 0, f"guest GET failed: {result.stderr[-2000:]}"
            status, body = result.stdout.split("\n", 1)
            return status, json.loads(body) if status == "200" else {"text": body}

        def identified(vm: Any) -> None:
            before = len(nova.requests)
            status, body = guest_get(vm)
            assert (status, body) == ("200", {"uuid": vm.device_id}), (
                f"guest of port {vm.id}: {status} {body}")
            assert len(nova.requests) == before + 1, nova.requests[before:]
            path, headers = nova.requests[-1]
            signature = hmac.new(SECRET.encode(), vm.device_id.encode(),
                                 hashlib.sha256).hexdigest()
            seen = {k: headers.get(k) for k in ("x-instance-id", "x-tenant-id",
                                                "x-instance-id-signature", "x-forwarded-for")}
            assert (path, seen) == ("/openstack/latest/meta_data.json", {
                "x-instance-id": vm.device_id, "x-tenant-id": vm.project_id,
                "x-instance-id-signature": signature,
                "x-forwarded-for": vm.fixed_ips[0].ip_address}), (path, headers)

        for vm in vms:   # two guests, each identified as itself
            identified(vm)

        # an agent restart: the proxy kept, adopted, and forwarding to the new agent
        agent.stop()
        assert _alive(str(proxy)), "the metadata proxy stopped with the agent"
        agent = lab.agent(metadata_url=nova.url)
        start_as_the_console_script(agent)
        assert agent.proxies.pid(x.id) == proxy, "running proxy not adopted"
        identified(vms[0])

        # found dead by a pass: started again
        os.kill(int(str(proxy)), signal.SIGKILL)
        wait_until(lambda: not _alive(str(proxy)), 5, f"proxy {proxy} killed")
        agent.sync_once()
        restarted = agent.proxies.pid(x.id)
        assert _alive(str(restarted)) and restarted != proxy, (restarted, agent.errors)
        identified(vms[1])

        # DHCP off: the proxy stops on SIGTERM (not killed [dnsmasq] start_timeout later) and
        # its files go with the namespace
        assert not _sigterm_blocked(restarted), f"proxy {restarted} has SIGTERM blocked"
        net.update_subnet(subnet.id, enable_dhcp=False)
        wait_until(lambda: netns_name(x.id) not in interface.namespaces(), 5,
                   "namespace removed after enable_dhcp=False")
        assert not _alive(str(restarted)), f"metadata proxy {restarted} still runs"
        assert x.id not in agent.proxies.active_networks()

        # DHCP on again: a proxy again; then an agent with metadata turned off stops it
        net.update_subnet(subnet.id, enable_dhcp=True)
        again = wait_until(lambda: agent.proxies.pid(x.id), 10, "a proxy with DHCP on again")
        agent.stop()
        agent = lab.agent()   # enable_isolated_metadata = false
        start_as_the_console_script(agent)
        wait_until(lambda: not _alive(str(again)), 10,
                   f"proxy {again} stopped by an agent with metadata off ({agent.errors})")
        assert x.id not in agent.proxies.active_networks()
        assert _alive(agent.driver.server_id(x.id)), "dnsmasq stopped with the proxy"
    finally:
        nova.close()


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_two_guests_each_read_their_own_servers_metadata_from_the_metadata_service(
    ovsdb: Ovsdb, tmp_path: Path, image_file: str
) -> None:
    """The whole isolated-metadata path with the real compute metadata service: two servers
    (fake hypervisor on this lab's host, each with its own keypair and user data) whose
    ports are cabled as guest namespaces; each guest is configured by DHCP (address and the
    route to 169.254.169.254) and reads, through route -> proxy -> DHCP agent -> the signed
    request -> the metadata service, its own server's uuid, public key, user data, network
    data and EC2 local-ipv4 - also when it sends another server's identity headers."""
    import base64

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    port = _free_port()
    cloud = stackcore.Cloud(services=["network", "scheduler", "compute", "metadata"],
                            overrides={
        "DEFAULT": {"periodic_interval": 3600, "state_path": str(tmp_path / "cloud")},
        "compute": {"hosts": [HOST]},
        "ml2": {"mechanism_drivers": ["openvswitch"], "project_network_types": ["vxlan"]},
        "ml2_type_vxlan": {"vni_ranges": ["1000:1999"]},
        "network": {"agent_down_time": 15},
        "metadata": {"metadata_proxy_shared_secret": SECRET, "listen_port": port}})
    ovs_agent = start_ovs_agent(cloud, ovsdb)
    lab = Lab(cloud, ovsdb, tmp_path)
    try:
        cloud.compute.create_flavor("tiny", 1, 128, 1)
        cloud.compute.register_image("img", image_file, "raw", visibility="public")
        net, _subnet = lab.network("md-real", "10.85.0.0/24")
        agent = lab.agent(metadata_url=f"http://127.0.0.1:{port}")
        start_as_the_console_script(agent)
        script = lab.tmp / "routes.sh"
        script.write_text(ROUTES_SCRIPT)
        script.chmod(0o755)
        guests = []
        for i in range(2):
            key = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
                serialization.Encoding.OpenSSH,
                serialization.PublicFormat.OpenSSH).decode() + f" guest{i}"
            cloud.compute.create_keypair(f"key-{i}", key)
            user_data = f"#!/bin/sh\necho 'guest {i} <&>'"
            server = cloud.compute.create_server(
                f"guest-{i}", "tiny", "img", key_name=f"key-{i}",
                user_data=base64.b64encode(user_data.encode()).decode(),
                networks=[{"network_id": net.id}])
            assert server.status == "ACTIVE", (server.status, server.fault)
            (vm,) = cloud.network.list_ports(device_id=server.id)
            lab.plug_guest(vm)
            guests.append((server, vm, key, user_data))
        for server, vm, _, _ in guests:
            wait_until(lambda vm=vm: cloud.network.get_port(vm.id).status == "ACTIVE", 15,
                       f"guest port {vm.id} ACTIVE")
            wait_until(lambda vm=vm: served(agent, net.id).get(vm.mac_address), 10,
                       f"host entry of {vm.mac_address}")
            lease = lab.tmp / f"routes-{vm.id}"
            result = subprocess.run(
                ["ip", "netns", "exec", lab.guests[vm.id], "busybox", "udhcpc", "-i", "eth0",
                 "-n", "-q", "-f", "-t", "8", "-T", "1", "-O", "staticroutes",
                 "-s", str(script)],
                env={**os.environ, "LEASE_FILE": str(lease)}, capture_output=True, text=True,
                timeout=60, check=False)
            assert result.returncode == 0 and lease.exists(), (
                f"udhcpc got no lease: {result.returncode}\n{result.stdout}{result.stderr}")

        def guest_get(vm: Any, path: str) -> str:
            result = subprocess.run(
                ["ip", "netns", "exec", lab.guests[vm.id], sys.executable, "-c", GUEST_GET,
                 f"http://169.254.169.254{path}", json.dumps(SPOOFED)],
                capture_output=True, text=True, timeout=60, check=False)
            assert result.returncode == 0, f"guest GET {path} failed: {result.stderr[-2000:]}"
            status, body = result.stdout.split("\n", 1)
            assert status == "200", f"guest of port {vm.id}: GET {path}: {status} {body}"
            return body[:-1]  # GUEST_GET's print adds a newline

        for server, vm, key, user_data in guests:
            meta = json.loads(guest_get(vm, "/openstack/latest/meta_data.json"))
            assert (meta["uuid"], meta["name"], meta["public_keys"]) == (
                server.id, server.name, {f"key-{guests.index((server, vm, key, user_data))}":
                                         key}), meta
            assert guest_get(vm, "/openstack/latest/user_data") == user_data
            links = json.loads(guest_get(vm, "/openstack/latest/network_data.json"))["links"]
            assert [link["ethernet_mac_address"] for link in links] == [vm.mac_address], links
            assert guest_get(vm, "/latest/meta-data/local-ipv4") == \
                vm.fixed_ips[0].ip_address
            assert guest_get(vm, "/latest/meta-data/instance-id") == server.id
    finally:
        lab.destroy()
        ovs_agent.stop()
        cloud.close()
