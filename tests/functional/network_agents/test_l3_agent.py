"""The L3 agent on a private Open vSwitch (userspace datapath), with real namespaces, real
nftables NAT and real ICMP/UDP.

One simulated host, as in ``test_dhcp_agent``: an ovsdb-server + ovs-vswitchd instance
(``tools/backends/ovs-instance.sh sc-l3``, its own network namespace) wired by an OVS agent
(``physnet1`` on ``br-phys`` for the flat external network), and the L3 agent plugging the
routers' ports into that instance's br-int. The ML2 server is an embedded Cloud; both agents
talk to it over the in-process transport. A guest is a namespace whose ``eth0`` (its port's
MAC, its fixed address, a default route via its subnet's gateway - the router) is a veth on
br-int; "outside" is such a namespace on the external network, whose only route into the
project subnets is the router's gateway address.

The L3 agent's full resync is a minute: what the tests see within seconds came through the
server's ``routers_updated`` casts.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from stackcore_drivers.network.conf import load_agent_conf
from stackcore_drivers.network.dhcp import interface
from stackcore_drivers.network.l3.agent import L3Agent
from stackcore_drivers.network.linuxbridge.agent import LinuxBridgeAgent
from stackcore_drivers.network.ovs import conf as ovs_conf
from stackcore_drivers.network.ovs.agent import OvsAgent
from stackcore_drivers.network.ovs.ovsdb import Ovsdb

import stackcore
from stackcore.network.l3 import netns_name
from tests.conftest import backend_env, wait_until
from tests.functional.processes import terminate

from .conftest import start_linux_bridge_agent

pytestmark = pytest.mark.real

REPO = Path(__file__).resolve().parents[3]
PING = str(Path(__file__).with_name("icmp_ping.py"))
INSTANCE = "sc-l3"
HOST = "l3-host"
DP_NS = f"stackcore-ovs-{INSTANCE}"
OWNED_BRIDGES = ("br-int", "br-tun", "br-phys")
#: receives one UDP datagram on port 7777 and prints its source address
UDP_RECORDER = ("import socket,sys\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
                "s.bind(('0.0.0.0',7777))\ns.settimeout(20)\nprint(s.recvfrom(64)[1][0])\n")


def ip(*args: str, check: bool = True) -> str:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30,
                            check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def ping(namespace: str, address: str, count: int = 2, timeout: float = 1.0) -> bool:
    result = subprocess.run(["ip", "netns", "exec", namespace, sys.executable, PING, address,
                             str(count), str(timeout)], capture_output=True, text=True,
                            timeout=60, check=False)
    return result.returncode == 0


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
    return make_server("openvswitch", ml2_type_flat={"flat_networks": ["*"]})


def start_ovs_agent(server: stackcore.Cloud, ovsdb: Ovsdb) -> OvsAgent:
    conf = load_agent_conf([("ovs", ovs_conf.AGENT_OPTS)], overrides={
        "DEFAULT": {"host": HOST},
        "agent": {"report_interval": 1, "polling_interval": 0.2},
        "ovs": {"ovsdb_connection": ovsdb.target, "datapath_type": "netdev",
                "bridge_mappings": {"physnet1": "br-phys"}, "tunnel_types": ["vxlan"],
                "local_ip": "10.52.0.1"}})
    agent = OvsAgent(conf, server.transport)
    agent.start()
    return agent


@pytest.fixture
def ovs_agent(server: stackcore.Cloud, ovsdb: Ovsdb) -> Iterator[OvsAgent]:
    agent = start_ovs_agent(server, ovsdb)
    yield agent
    agent.stop()


class Lab:
    """L3 agents (:meth:`agent`) and guests; :meth:`destroy` removes what the test made."""

    def __init__(self, server: stackcore.Cloud, ovsdb: Ovsdb | None, tmp: Path,
                 host: str = HOST, datapath: str = DP_NS) -> None:
        """``ovsdb`` None: the Linux bridge datapath, in namespace ``datapath``."""
        self.server, self.ovsdb, self.tmp = server, ovsdb, tmp
        self.host, self.datapath = host, datapath
        self.agents: list[L3Agent] = []
        self.guests: dict[str, str] = {}
        self.routers: set[str] = set()
        self.tag = uuid.uuid4().hex[:6]

    def agent(self) -> L3Agent:
        conf = load_agent_conf(L3Agent.list_opts()[1:], overrides={
            "DEFAULT": {"host": self.host, "state_path": str(self.tmp / "agent")},
            "agent": {"report_interval": 1},
            "l3": {"interface_driver": "openvswitch" if self.ovsdb else "linuxbridge",
                   "datapath_namespace": self.datapath, "resync_interval": 60},
            "ovs": {"ovsdb_connection": self.ovsdb.target if self.ovsdb else "unix:/none"}})
        agent = L3Agent(conf, self.server.transport)
        self.agents.append(agent)
        return agent

    def guest(self, network_id: str, cidr_prefix: int, gateway: str | None) -> tuple[Any, str]:
        """A port bound to the host and a namespace cabled as it, with its address and (with
        ``gateway``) a default route."""
        port = self.server.network.create_port(network_id, host=self.host)
        name = f"scl3-{self.tag}-g{len(self.guests)}"
        ip("netns", "add", name)
        self.guests[port.id] = name
        tap = interface.host_device(port.id)
        ip("link", "add", tap, "netns", self.datapath, "type", "veth", "peer", "name", "eth0",
           "netns", name, "address", port.mac_address)
        ip("-n", name, "link", "set", "lo", "up")
        ip("-n", name, "link", "set", "eth0", "up")
        ip("-n", self.datapath, "link", "set", tap, "up")
        subprocess.run(["ip", "netns", "exec", name, "ethtool", "-K", "eth0", "tx", "off"],
                       capture_output=True, check=False)
        ip("-n", name, "addr", "add", f"{port.fixed_ips[0].ip_address}/{cidr_prefix}", "dev",
           "eth0")
        if gateway:
            ip("-n", name, "route", "add", "default", "via", gateway)
        if self.ovsdb is not None:   # else the Linux bridge agent enslaves the tap
            self.ovsdb.execute(self.ovsdb.api.add_port("br-int", tap, external_ids={
                "iface-id": port.id, "attached-mac": port.mac_address,
                "iface-status": "active"}))
        wait_until(lambda: self.server.network.get_port(port.id).status == "ACTIVE", 20,
                   f"guest port {port.id} ACTIVE")
        return port, name

    def destroy(self) -> None:
        for agent in self.agents:
            agent.stop()
        cleaner = self.agent()
        for router_id in self.routers:
            cleaner.cleanup_router(router_id)
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


def _ready(agent: L3Agent, server: stackcore.Cloud, router_id: str) -> bool:
    """The agent serves the router and every one of its ports is wired (ACTIVE)."""
    ports = [p for p in server.network.list_ports(all_projects=True)
             if p.device_id == router_id]
    return router_id in agent.served and not agent.errors and bool(ports) and all(
        p.status == "ACTIVE" for p in ports)


def test_router_routes_snats_and_floating_ips_and_survives_a_restart(
        server: stackcore.Cloud, lab: Lab) -> None:
    net = server.network
    ext = net.create_network("ext", network_type="flat", physical_network="physnet1",
                             router_external=True)
    net.create_subnet(ext.id, "198.51.100.0/24", enable_dhcp=False)
    n1 = net.create_network("n1")
    s1 = net.create_subnet(n1.id, "10.61.1.0/24", enable_dhcp=False)
    n2 = net.create_network("n2")
    s2 = net.create_subnet(n2.id, "10.61.2.0/24", enable_dhcp=False)

    agent = lab.agent()
    agent.start()
    router = net.create_router("r1", external_gateway={"network_id": ext.id})
    lab.routers.add(router.id)
    net.add_router_interface(router.id, s1.id)
    net.add_router_interface(router.id, s2.id)
    namespace = netns_name(router.id)
    wait_until(lambda: _ready(agent, server, router.id), 30,
               f"router {router.id} served and wired ({agent.errors})")
    # the agent's report: served (the report follows the pass that served it)
    wait_until(lambda: net.get_router(router.id).status == "ACTIVE", 30,
               f"router {router.id} ACTIVE ({net.get_router(router.id)})")
    assert net.get_router(router.id).fault is None
    gateway_ip = net.get_router(router.id).external_gateway["external_fixed_ips"][0][
        "ip_address"]

    g1, ns1 = lab.guest(n1.id, 24, s1.gateway_ip)
    g2, ns2 = lab.guest(n2.id, 24, s2.gateway_ip)
    _, outside = lab.guest(ext.id, 24, None)
    # the outside's only way into the project subnets: the router's gateway address
    ip("-n", outside, "route", "add", "10.61.0.0/16", "via", gateway_ip)
    g1_ip, g2_ip = g1.fixed_ips[0].ip_address, g2.fixed_ips[0].ip_address

    # east-west: two subnets through the router
    assert wait_until(lambda: ping(ns1, g2_ip), 20, f"guest {g1_ip} -> {g2_ip} via router")
    assert ping(ns2, g1_ip), f"guest {g2_ip} -> {g1_ip}"

    # SNAT: the outside sees the router's gateway address
    recorder = subprocess.Popen(["ip", "netns", "exec", outside, sys.executable, "-c",
                                 UDP_RECORDER], stdout=subprocess.PIPE, text=True)
    try:
        outside_ip = lab.server.network.list_ports(network_id=ext.id, all_projects=True)
        target = next(p.fixed_ips[0].ip_address for p in outside_ip
                      if p.id in lab.guests)

        def send() -> bool:
            subprocess.run(["ip", "netns", "exec", ns1, sys.executable, "-c",
                            "import socket,sys\nsocket.socket(socket.AF_INET,socket.SOCK_DGRAM)"
                            ".sendto(b'x',(sys.argv[1],7777))", target], check=True,
                           timeout=30)
            return recorder.poll() is not None
        wait_until(send, 20, "a datagram from the guest at the outside")
        seen = (recorder.stdout.read() if recorder.stdout else "").strip()
    finally:
        recorder.kill()
        recorder.wait()
    assert seen == gateway_ip, f"outside saw source {seen!r}, expected SNAT to {gateway_ip}"
    assert ping(ns1, target), f"guest {g1_ip} -> outside {target} (SNAT replies)"

    # floating IP: the outside reaches the guest by it only, and no longer once removed
    assert not ping(outside, g1_ip, 1), f"outside reached {g1_ip} without a floating IP"
    fip = net.create_floatingip(ext.id, port_id=g1.id)
    assert wait_until(lambda: ping(outside, fip.floating_ip_address, 1), 20,
                      f"outside -> floating IP {fip.floating_ip_address} -> {g1_ip}")
    wait_until(lambda: net.get_floatingip(fip.id).status == "ACTIVE", 20,
               f"floating IP {fip.id} reported ACTIVE ({net.get_floatingip(fip.id)})")
    assert not ping(outside, g1_ip, 1), f"outside reached {g1_ip} directly"
    # hairpin: a neighbour on g1's own subnet reaches it by its floating IP too (the reply
    # comes back through the router, not straight from g1's fixed address)
    _, ns3 = lab.guest(n1.id, 24, s1.gateway_ip)
    assert ping(ns3, fip.floating_ip_address), \
        f"guest on {s1.cidr} -> its neighbour's floating IP {fip.floating_ip_address}"
    gone = net.update_floatingip(fip.id, port_id=None)
    assert gone.status == "DOWN", gone
    wait_until(lambda: not ping(outside, fip.floating_ip_address, 1, 0.5), 20,
               f"floating IP {fip.floating_ip_address} unreachable after disassociation")
    net.update_floatingip(fip.id, port_id=g1.id)
    assert wait_until(lambda: ping(outside, fip.floating_ip_address, 1), 20,
                      "floating IP reachable again")

    # restart: the new agent adopts the namespace as it is (same devices)
    gw_device = next(n for n in interface.links(namespace) if n.startswith("qg-"))
    before = {n: link["ifindex"] for n, link in interface.links(namespace).items()}
    agent.stop()
    again = lab.agent()
    again.start()
    assert router.id in again.served and not again.errors, again.errors
    after = {n: link["ifindex"] for n, link in interface.links(namespace).items()}
    assert after == before, f"devices re-made on restart: {before} -> {after}"
    assert gw_device in after
    assert ping(ns1, g2_ip) and ping(outside, fip.floating_ip_address, 1)

    # delete: the namespace goes
    net.delete_floatingip(fip.id)
    net.remove_router_interface(router.id, s1.id)
    net.remove_router_interface(router.id, s2.id)
    net.delete_router(router.id)
    wait_until(lambda: namespace not in interface.namespaces(namespace), 20,
               f"namespace {namespace} removed after the router's delete")


def test_linux_bridge_datapath_router_snats_and_forwards_a_floating_ip(
        make_server: Callable[..., stackcore.Cloud], tmp_path: Path) -> None:
    """The same router on the Linux bridge datapath: its qg-/qr- devices are tap veths the
    Linux bridge agent enslaves to the networks' bridges, like a VM's. The host is a
    namespace with two veths as the NICs of two flat physical networks: the external one and
    the project's."""
    server = make_server("linuxbridge", ml2_type_flat={"flat_networks": ["*"]})
    host, datapath = "l3-lb-host", f"sc-l3lb-{uuid.uuid4().hex[:6]}"
    ip("netns", "add", datapath)
    l2: LinuxBridgeAgent | None = None
    lab = Lab(server, None, tmp_path, host, datapath)
    try:
        for nic, peer in (("ph0", "ph1"), ("pa0", "pa1")):
            ip("-n", datapath, "link", "add", nic, "type", "veth", "peer", "name", peer)
        for device in ("lo", "ph0", "ph1", "pa0", "pa1"):
            ip("-n", datapath, "link", "set", device, "up")
        l2 = start_linux_bridge_agent(server, host, datapath,
                                      {"physnet1": "ph0", "physnet2": "pa0"})
        net = server.network
        ext = net.create_network("ext", network_type="flat", physical_network="physnet1",
                                 router_external=True)
        net.create_subnet(ext.id, "198.51.100.0/24", enable_dhcp=False)
        n1 = net.create_network("n1", network_type="flat", physical_network="physnet2")
        s1 = net.create_subnet(n1.id, "10.62.1.0/24", enable_dhcp=False)
        agent = lab.agent()
        agent.start()
        router = net.create_router("r1", external_gateway={"network_id": ext.id})
        lab.routers.add(router.id)
        net.add_router_interface(router.id, s1.id)
        wait_until(lambda: _ready(agent, server, router.id), 30,
                   f"router {router.id} served and its taps enslaved ({agent.errors})")
        wait_until(lambda: net.get_router(router.id).status == "ACTIVE", 30,
                   f"router {router.id} ACTIVE ({net.get_router(router.id)})")
        gateway_ip = net.get_router(router.id).external_gateway["external_fixed_ips"][0][
            "ip_address"]
        g1, ns1 = lab.guest(n1.id, 24, s1.gateway_ip)
        target, outside = lab.guest(ext.id, 24, None)
        target_ip = target.fixed_ips[0].ip_address
        # SNAT: the guest reaches the outside, which has no route into the project subnet
        assert wait_until(lambda: ping(ns1, target_ip), 20,
                          f"guest {g1.fixed_ips[0].ip_address} -> outside {target_ip} (SNAT "
                          f"to {gateway_ip})")
        fip = net.create_floatingip(ext.id, port_id=g1.id)
        assert wait_until(lambda: ping(outside, fip.floating_ip_address, 1), 20,
                          f"outside -> floating IP {fip.floating_ip_address}")
        wait_until(lambda: net.get_floatingip(fip.id).status == "ACTIVE", 20,
                   f"floating IP {fip.id} ACTIVE ({net.get_floatingip(fip.id)})")
        net.delete_floatingip(fip.id)
        net.remove_router_interface(router.id, s1.id)
        net.delete_router(router.id)
        namespace = netns_name(router.id)
        wait_until(lambda: namespace not in interface.namespaces(namespace), 20,
                   f"namespace {namespace} removed after the router's delete")
    finally:
        lab.destroy()
        if l2 is not None:
            l2.stop()
        ip("netns", "delete", datapath, check=False)


@pytest.mark.rabbit
def test_agent_process_over_rabbitmq_stops_within_the_deadline_leaving_the_router(
    make_server: Callable[..., stackcore.Cloud], ovsdb: Ovsdb, rabbit_url: str, tmp_path: Path
) -> None:
    """``stackcore-l3-agent`` in its own process, without any database: it claims and builds
    a router it learns over RabbitMQ, and ends within 5 s of SIGTERM leaving the router's
    namespace in place (the routers keep forwarding while it restarts)."""
    server = make_server("openvswitch", ml2_type_flat={"flat_networks": ["*"]},
                         DEFAULT={"transport_url": rabbit_url, "rpc_call_timeout": 20})
    l2 = start_ovs_agent(server, ovsdb)
    lab = Lab(server, ovsdb, tmp_path)
    config = tmp_path / "l3-agent.conf"
    config.write_text(
        f"[DEFAULT]\nhost = {HOST}\ntransport_url = {rabbit_url}\n"
        f"state_path = {tmp_path / 'agent'}\n"
        "[agent]\nreport_interval = 1\n"
        f"[l3]\ninterface_driver = openvswitch\ndatapath_namespace = {DP_NS}\n"
        "resync_interval = 60\n"
        f"[ovs]\novsdb_connection = {ovsdb.target}\n")
    log = tmp_path / "l3-agent.log"
    net = server.network
    ext = net.create_network("ext", network_type="flat", physical_network="physnet1",
                             router_external=True)
    net.create_subnet(ext.id, "198.51.100.0/24", enable_dhcp=False)
    with open(log, "w") as out:
        agent = subprocess.Popen(
            [str(Path(sys.executable).with_name("stackcore-l3-agent")), "--config-file",
             str(config)], stdout=out, stderr=subprocess.STDOUT, text=True)
    try:
        def running(check: Callable[[], Any], what: str) -> Any:
            return wait_until(lambda: check() if agent.poll() is None else pytest.fail(
                f"agent exited {agent.poll()}: {log.read_text()[-3000:]}"), 30, what)

        running(lambda: any(a.alive for a in net.list_agents(host=HOST,
                                                             agent_type="L3 agent")),
                "the L3 agent reported alive")
        router = net.create_router("r", external_gateway={"network_id": ext.id})
        lab.routers.add(router.id)
        namespace = netns_name(router.id)
        running(lambda: net.get_router(router.id).host == HOST, "the router claimed")
        running(lambda: any(n.startswith("qg-") for n in interface.links(namespace))
                if namespace in interface.namespaces(namespace) else False,
                "the router's namespace with its gateway device")
        took = terminate(agent, "stackcore-l3-agent", log)
        print(f"\nSIGTERM -> exit, stackcore-l3-agent: {took:.2f} s")
        assert namespace in interface.namespaces(namespace), "namespace gone with the agent"
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
        lab.destroy()
        l2.stop()
