"""The linuxbridge mechanism driver and Linux bridge agents on real kernel bridges and VXLAN.

Each simulated host is a network namespace; the hosts are joined by a veth "underlay" cable
(10.51.0.0/24, only inside these namespaces) and by a veth "provider" cable (for flat
networks). Each VM is one more namespace whose NIC is a veth pair with the ``tap<port id>``
end on its host, as libvirt's tap would be. Pings are bounded in count and time and stay inside
the namespaces.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from stackcore_drivers.network.conf import load_agent_conf
from stackcore_drivers.network.linuxbridge import conf as lb_conf
from stackcore_drivers.network.linuxbridge import ip_lib
from stackcore_drivers.network.linuxbridge.agent import LinuxBridgeAgent

import stackcore
from stackcore import exception
from stackcore.network import exceptions as net_exc
from tests.conftest import backend_env, wait_until
from tests.functional.processes import terminate

pytestmark = pytest.mark.real

PING = Path(__file__).with_name("icmp_ping.py")
UNDERLAY = {"host-a": "10.51.0.1", "host-b": "10.51.0.2"}


def ip(*args: str) -> str:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30,
                            check=False)
    if result.returncode != 0:
        raise AssertionError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


class Lab:
    """Host and VM namespaces with their cables; everything removed by :meth:`destroy`."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:6]
        self.ns = {"host-a": f"sc-lb-a-{tag}", "host-b": f"sc-lb-b-{tag}"}
        self.vms: dict[str, str] = {}
        for name in self.ns.values():
            ip("netns", "add", name)
            ip("-n", name, "link", "set", "lo", "up")
        a, b = self.ns["host-a"], self.ns["host-b"]
        ip("link", "add", "ul0", "netns", a, "type", "veth", "peer", "name", "ul0", "netns", b)
        ip("link", "add", "ph0", "netns", a, "type", "veth", "peer", "name", "ph0", "netns", b)
        for host, name in self.ns.items():
            ip("-n", name, "addr", "add", f"{UNDERLAY[host]}/24", "dev", "ul0")
            ip("-n", name, "link", "set", "ul0", "up")

    def plug_vm(self, host: str, port: Any, address: str) -> str:
        """A VM namespace whose eth0 is cabled to ``tap<port id[:11]>`` on ``host``."""
        vm = f"{self.ns[host]}-vm{len(self.vms)}"
        ip("netns", "add", vm)
        self.vms[port.id] = vm
        tap = ip_lib.tap_name(port.id)
        ip("link", "add", tap, "netns", self.ns[host], "type", "veth", "peer", "name", "eth0",
           "netns", vm, "address", port.mac_address)
        ip("-n", vm, "addr", "add", address, "dev", "eth0")
        ip("-n", vm, "link", "set", "eth0", "up")
        ip("-n", vm, "link", "set", "lo", "up")
        return tap

    def ping(self, port: Any, address: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", self.vms[port.id], sys.executable, str(PING), address,
             "3", "2"],
            capture_output=True, text=True, timeout=30, check=False)

    def destroy(self) -> None:
        for name in [*self.vms.values(), *self.ns.values()]:
            subprocess.run(["ip", "netns", "delete", name], capture_output=True, check=False)


@pytest.fixture
def lab() -> Iterator[Lab]:
    lab = Lab()
    yield lab
    lab.destroy()


@pytest.fixture
def server(make_server: Callable[..., stackcore.Cloud]) -> stackcore.Cloud:
    return make_server("linuxbridge", ml2_type_flat={"flat_networks": ["*"]})


@pytest.fixture
def make_agent(server: stackcore.Cloud, lab: Lab) -> Iterator[Callable[..., LinuxBridgeAgent]]:
    agents: list[LinuxBridgeAgent] = []

    def make(host: str, linux_bridge: dict[str, Any] | None = None,
             vxlan: dict[str, Any] | None = None) -> LinuxBridgeAgent:
        groups = {
            "linux_bridge": {"namespace": lab.ns[host],
                             "physical_interface_mappings": {"physnet1": "ph0"},
                             **(linux_bridge or {})},
            "vxlan": {"local_ip": UNDERLAY[host], **(vxlan or {})},
        }
        conf = load_agent_conf(
            [("linux_bridge", lb_conf.LINUX_BRIDGE_OPTS), ("vxlan", lb_conf.VXLAN_OPTS)],
            # reports every second: the server's 15-second agent_down_time is well over 3 x the interval
            # (the documented rule; with the default 30 s an agent was alive only for 3 s
            # after its first report, and a slow run bound ports to a "dead" agent)
            overrides={"DEFAULT": {"host": host}, "agent": {"report_interval": 1}, **groups})
        agent = LinuxBridgeAgent(conf, server.transport)
        agents.append(agent)
        return agent

    yield make
    for agent in agents:
        agent.stop()


def manager(lab: Lab, host: str) -> ip_lib.LinuxBridgeManager:
    return ip_lib.LinuxBridgeManager(lab.ns[host])


def stats(mgr: ip_lib.LinuxBridgeManager, device: str) -> tuple[int, int]:
    link = mgr.ipr.get_links(mgr.index(device))[0]
    counters = link.get("IFLA_STATS64")
    return counters["tx_packets"], counters["rx_packets"]


def test_ping_between_taps_on_two_hosts_crosses_the_vxlan(
    server: stackcore.Cloud, make_agent: Callable[..., LinuxBridgeAgent], lab: Lab
) -> None:
    net = server.network
    agent_a, agent_b = make_agent("host-a"), make_agent("host-b")
    agent_a.start()
    agent_b.start()
    network = net.create_network("x")
    vni = network.segments[0].segmentation_id
    assert network.mtu == 1450
    port_a = net.create_port(network.id, host="host-a")
    port_b = net.create_port(network.id, host="host-b")
    bridge = "brq" + network.id[:11]
    for port in (port_a, port_b):
        assert port.vif_type == "bridge", port.binding_failures
        assert port.vif_details == {"port_filter": False, "connectivity": "l2",
                                    "bridge_name": bridge}
    unplugged = net.create_port(network.id, host="host-a")   # no VM behind it (yet)
    tap_a = lab.plug_vm("host-a", port_a, "192.168.77.1/24")
    tap_b = lab.plug_vm("host-b", port_b, "192.168.77.2/24")
    agent_a.sync_once()
    agent_b.sync_once()
    # the agents told the server over the agent RPC which ports they wired
    assert [net.get_port(p.id).status for p in (port_a, port_b, unplugged)] == [
        "ACTIVE", "ACTIVE", "DOWN"]
    net.delete_port(unplugged.id)

    mgr_a, mgr_b = manager(lab, "host-a"), manager(lab, "host-b")
    try:
        for mgr, tap, peer in ((mgr_a, tap_a, "10.51.0.2"), (mgr_b, tap_b, "10.51.0.1")):
            links = mgr.links()
            assert links[bridge]["kind"] == "bridge" and links[bridge]["up"]
            vx = links[f"vxlan-{vni}"]
            assert vx["kind"] == "vxlan" and vx["vni"] == vni and vx["mtu"] == 1450
            assert mgr.ports_of(bridge) == {tap, f"vxlan-{vni}"}
            assert mgr.flood_peers(f"vxlan-{vni}") == {peer}
        before = stats(mgr_a, f"vxlan-{vni}")
        result = lab.ping(port_a, "192.168.77.2")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "3 sent, 3 received" in result.stdout
        after = stats(mgr_a, f"vxlan-{vni}")
        assert after[0] - before[0] >= 3 and after[1] - before[1] >= 3, \
            "the echo requests/replies did not go through the VXLAN device"

        # host-b's port goes: its bridge and VXLAN device go, host-a forgets the peer
        net.delete_port(port_b.id)
        agent_b.sync_once()
        agent_a.sync_once()
        assert bridge not in mgr_b.links() and f"vxlan-{vni}" not in mgr_b.links()
        assert tap_b in mgr_b.links()  # the VM's tap is the hypervisor's to delete
        assert mgr_a.flood_peers(f"vxlan-{vni}") == set()
        assert lab.ping(port_a, "192.168.77.2").returncode != 0
        net.delete_port(port_a.id)
        agent_a.sync_once()
        assert {n for n in mgr_a.links() if n.startswith(("brq", "vxlan-"))} == set()
    finally:
        mgr_a.close()
        mgr_b.close()


def test_ping_across_a_flat_network_through_the_mapped_interface(
    server: stackcore.Cloud, make_agent: Callable[..., LinuxBridgeAgent], lab: Lab
) -> None:
    net = server.network
    agent_a, agent_b = make_agent("host-a"), make_agent("host-b")
    agent_a.start()
    agent_b.start()
    network = net.create_network("f", network_type="flat", physical_network="physnet1")
    port_a = net.create_port(network.id, host="host-a")
    port_b = net.create_port(network.id, host="host-b")
    lab.plug_vm("host-a", port_a, "192.168.78.1/24")
    lab.plug_vm("host-b", port_b, "192.168.78.2/24")
    agent_a.sync_once()
    agent_b.sync_once()
    mgr = manager(lab, "host-a")
    try:
        assert "ph0" in mgr.ports_of("brq" + network.id[:11])
    finally:
        mgr.close()
    result = lab.ping(port_a, "192.168.78.2")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.guest("802.1q VLAN sub-interfaces")
def test_ping_across_a_vlan_network_through_a_sub_interface(
    server: stackcore.Cloud, make_agent: Callable[..., LinuxBridgeAgent], lab: Lab
) -> None:
    """Runs inside the full-kernel guest, which has 802.1q. The lab leaves the mapped
    interface ph0 down: the agent brings it up (a VLAN device on a down interface cannot
    come up: ENETDOWN)."""
    assert ip_lib.kernel_supports_vlan(), f"expected a kernel with 802.1q here: {os.uname()}"
    mgr = manager(lab, "host-a")
    try:
        assert not mgr.links()["ph0"]["up"], "the lab's ph0 should start down"
    finally:
        mgr.close()
    net = server.network
    agent_a, agent_b = make_agent("host-a"), make_agent("host-b")
    agent_a.start()
    agent_b.start()
    network = net.create_network("v", network_type="vlan", physical_network="physnet1",
                                 segmentation_id=150)
    port_a = net.create_port(network.id, host="host-a")
    port_b = net.create_port(network.id, host="host-b")
    lab.plug_vm("host-a", port_a, "192.168.79.1/24")
    lab.plug_vm("host-b", port_b, "192.168.79.2/24")
    agent_a.sync_once()
    agent_b.sync_once()
    assert agent_a.port_errors == {} and agent_b.port_errors == {}, \
        (agent_a.port_errors, agent_b.port_errors)
    for host in ("host-a", "host-b"):   # both ends wired, or the ping cannot pass
        mgr = manager(lab, host)
        try:
            links = mgr.links()
            assert links["ph0"]["up"] and links["ph0.150"]["up"], (host, links)
            assert "ph0.150" in mgr.ports_of("brq" + network.id[:11]), (host, links)
        finally:
            mgr.close()
    assert [net.get_port(p.id).status for p in (port_a, port_b)] == ["ACTIVE", "ACTIVE"]
    result = lab.ping(port_a, "192.168.79.2")
    assert result.returncode == 0, result.stdout + result.stderr


def test_vlan_network_without_802_1q_is_a_clear_error_and_nothing_is_made(
    server: stackcore.Cloud, make_agent: Callable[..., LinuxBridgeAgent], lab: Lab
) -> None:
    """Runs on the CI host, whose kernel has no 802.1q (the VLAN path itself runs in the
    full-kernel guest: test_ping_across_a_vlan_network_through_a_sub_interface)."""
    assert not ip_lib.kernel_supports_vlan(), (
        "this test proves the no-802.1q path and needs a kernel without 802.1q (the CI host's); "
        f"this one ({os.uname().release}) has it")
    net = server.network
    agent = make_agent("host-a")
    agent.start()
    network = net.create_network("v", network_type="vlan", physical_network="physnet1",
                                 segmentation_id=151)
    port = net.create_port(network.id, host="host-a")
    assert port.vif_type == "bridge"
    agent.sync_once()
    assert agent.port_errors == {port.id: f"creating ph0.151: {ip_lib.NO_VLAN_SUPPORT}"}
    mgr = manager(lab, "host-a")
    try:
        assert {n for n in mgr.links() if n.startswith(("brq", "ph0."))} == set()
    finally:
        mgr.close()


def test_restart_resyncs_without_disturbing_what_is_right(
    server: stackcore.Cloud, make_agent: Callable[..., LinuxBridgeAgent], lab: Lab
) -> None:
    net = server.network
    agent_a, agent_b = make_agent("host-a"), make_agent("host-b")
    agent_a.start()
    agent_b.start()
    vx_net = net.create_network("x")
    flat = net.create_network("f", network_type="flat", physical_network="physnet1")
    vni = vx_net.segments[0].segmentation_id
    port_a = net.create_port(vx_net.id, host="host-a")
    port_flat = net.create_port(flat.id, host="host-a")
    port_b = net.create_port(vx_net.id, host="host-b")
    tap_a = lab.plug_vm("host-a", port_a, "192.168.80.1/24")
    tap_flat = lab.plug_vm("host-a", port_flat, "192.168.81.1/24")
    lab.plug_vm("host-b", port_b, "192.168.80.2/24")
    agent_a.sync_once()
    agent_b.sync_once()
    vx_bridge, flat_bridge = "brq" + vx_net.id[:11], "brq" + flat.id[:11]
    mgr = manager(lab, "host-a")
    try:
        flat_index = mgr.index(flat_bridge)
        agent_a.stop()        # the agent dies; meanwhile the host drifts
        mgr.delete_device(f"vxlan-{vni}")                       # missing VXLAN device
        mgr.release(tap_flat)                                   # tap out of its bridge
        mgr.ensure_bridge("brqdeadbeef-00")                    # stale network bridge
        mgr.ensure_vxlan(424242, UNDERLAY["host-a"], 4789, None)  # stale VXLAN device

        make_agent("host-a").start()
        links = mgr.links()
        assert mgr.ports_of(vx_bridge) == {tap_a, f"vxlan-{vni}"}
        assert mgr.flood_peers(f"vxlan-{vni}") == {"10.51.0.2"}
        assert mgr.ports_of(flat_bridge) == {tap_flat, "ph0"}
        assert links[flat_bridge]["index"] == flat_index     # right one left alone
        assert "brqdeadbeef-00" not in links and "vxlan-424242" not in links
    finally:
        mgr.close()
    result = lab.ping(port_a, "192.168.80.2")
    assert result.returncode == 0, result.stdout + result.stderr


def test_dead_agent_refuses_binding_and_revival_binds(
    server: stackcore.Cloud, make_agent: Callable[..., LinuxBridgeAgent]
) -> None:
    net = server.network
    agent = make_agent("host-a")
    agent.start()
    network = net.create_network("x")
    agent.stop()
    wait_until(lambda: not any(a.alive for a in net.list_agents(host="host-a")),
               server.conf.network.agent_down_time + 30, "the stopped agent declared dead")
    port = net.create_port(network.id, host="host-a")
    assert port.vif_type == "binding_failed"
    assert str(port.binding_failures[0]).startswith(
        "linuxbridge: the Linux bridge agent on host 'host-a' is not alive")
    make_agent("host-a").start()
    assert net.get_port(port.id).vif_type == "bridge"


def test_unknown_physnet_is_refused_and_nothing_is_created(
    server: stackcore.Cloud, make_agent: Callable[..., LinuxBridgeAgent], lab: Lab
) -> None:
    net = server.network
    agent = make_agent("host-a")
    agent.start()
    mgr = manager(lab, "host-a")
    before = sorted(mgr.links())
    network = net.create_network("f", network_type="flat", physical_network="physnet9")
    port = net.create_port(network.id, host="host-a")
    assert port.vif_type == "binding_failed"
    assert [str(f) for f in port.binding_failures] == [
        "linuxbridge: segment flat/physnet9: physical network 'physnet9' is not in the "
        "interface_mappings / bridge_mappings of the Linux bridge agent on host 'host-a' "
        "(known: physnet1)"]
    agent.sync_once()
    assert sorted(mgr.links()) == before
    mgr.close()


def test_vni_taken_by_a_foreign_device_or_twice_in_ml2_creates_nothing(
    server: stackcore.Cloud, make_agent: Callable[..., LinuxBridgeAgent], lab: Lab
) -> None:
    net = server.network
    agent = make_agent("host-a")
    agent.start()
    mgr = manager(lab, "host-a")
    try:
        ip("-n", lab.ns["host-a"], "link", "add", "vx-foreign", "type", "vxlan", "id", "7000",
           "local", UNDERLAY["host-a"], "dstport", "4789")
        before = sorted(mgr.links())
        network = net.create_network("p", network_type="vxlan", segmentation_id=7000)
        with pytest.raises(net_exc.SegmentIdInUse):
            net.create_network("again", network_type="vxlan", segmentation_id=7000)
        port = net.create_port(network.id, host="host-a")
        agent.sync_once()
        assert agent.port_errors == {port.id: "VNI 7000 is already used by device vx-foreign "
                                              f"in namespace {lab.ns['host-a']}; not creating "
                                              "vxlan-7000"}
        assert sorted(mgr.links()) == before
    finally:
        mgr.close()


@pytest.mark.parametrize("group,option,value,culprit", [
    ("linux_bridge", "physical_interface_mappings", {"physnet1": "an-interface-name"},
     "[linux_bridge] physical_interface_mappings"),
    ("linux_bridge", "bridge_mappings", {"physnet2": "br-very-long-name"},
     "[linux_bridge] bridge_mappings"),
])
def test_names_over_the_kernel_limit_fail_at_start(
    make_agent: Callable[..., LinuxBridgeAgent], lab: Lab, group: str, option: str,
    value: Any, culprit: str,
) -> None:
    mgr = manager(lab, "host-a")
    before = sorted(mgr.links())
    with pytest.raises(exception.ConfigError) as err:
        make_agent("host-a", **{group: {option: value}})
    assert culprit in str(err.value)
    assert "the kernel's limit for a device name is 15" in str(err.value)
    assert sorted(mgr.links()) == before
    mgr.close()


def test_agent_process_over_rabbitmq_wires_and_stops_within_the_deadline(
    make_server: Callable[..., stackcore.Cloud], lab: Lab, tmp_path: Path
) -> None:
    """``stackcore-linuxbridge-agent`` in its own process (RabbitMQ, no database) wires a
    port of its host, reports it ACTIVE, and ends within the deadline of one SIGTERM."""
    rabbit = backend_env("STACKCORE_TEST_RABBIT_URL", "rabbitmq")
    server = make_server("linuxbridge", DEFAULT={"transport_url": rabbit,
                                                 "rpc_call_timeout": 20})
    config = tmp_path / "agent.conf"
    config.write_text(
        "[DEFAULT]\nhost = host-a\n"
        f"transport_url = {rabbit}\n"
        "[agent]\npolling_interval = 0.3\nreport_interval = 1\n"
        f"[linux_bridge]\nnamespace = {lab.ns['host-a']}\n"
        "physical_interface_mappings = physnet1:ph0\n"
        f"[vxlan]\nlocal_ip = {UNDERLAY['host-a']}\n")
    log = tmp_path / "agent.log"
    with open(log, "w") as output:
        agent = subprocess.Popen(
            [str(Path(sys.executable).with_name("stackcore-linuxbridge-agent")),
             "--config-file", str(config)], stdout=output, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, text=True)
    try:
        net = server.network
        wait_until(lambda: agent.poll() is not None or any(
            a.alive for a in net.list_agents(host="host-a", agent_type="Linux bridge agent")),
            60, "the agent's first report")
        assert agent.poll() is None, log.read_text()[-3000:]
        network = net.create_network("x")
        net.create_subnet(network.id, "192.168.90.0/24")
        port = net.create_port(network.id, host="host-a")
        assert port.vif_type == "bridge", port.binding_failures
        lab.plug_vm("host-a", port, "192.168.90.10/24")
        wait_until(lambda: net.get_port(port.id).status == "ACTIVE", 60,
                   f"port ACTIVE\n{log.read_text()[-3000:]}")
        took = terminate(agent, "stackcore-linuxbridge-agent", log)
        print(f"\nSIGTERM -> exit, stackcore-linuxbridge-agent: {took:.2f} s")
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
