"""The DHCP agent against an embedded ML2 server (SQLite, in-process RPC) with the core's fake
DHCP driver and a recording plugger (the real datapath: tests/functional/network_agents/
test_dhcp_agent.py). The agent's full resync is a minute away: what happens within seconds
came through the server's notifications."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from stackcore_drivers.network.conf import load_agent_conf
from stackcore_drivers.network.dhcp.agent import DhcpAgent
from stackcore_drivers.network.dhcp.dnsmasq import DnsmasqDriver

import stackcore
from stackcore import exception
from stackcore.network.dhcp import DhcpNetwork, DhcpPort, netns_name
from stackcore.network.dhcp.fake import FakeDhcpDriver
from tests.conftest import wait_until

HOST = "dhcp-unit"


class RecordingPlugger:
    """Stands for the veth/OVS plugging: the namespaces it would have made."""

    def __init__(self) -> None:
        self.namespaces: dict[str, DhcpPort] = {}

    def plug(self, namespace: str, port: DhcpPort, cidrs: dict[str, str], mtu: int, *,
             prefix: str = "ns-", exclusive: bool = True, extra: Any = ()) -> str:
        self.namespaces[namespace] = port
        return ("ns-" + port.id)[:14]

    def unplug(self, namespace: str) -> None:
        self.namespaces.pop(namespace, None)


@pytest.fixture
def server(make_cloud: Callable[..., stackcore.Cloud]) -> stackcore.Cloud:
    return make_cloud(overrides={"ml2": {"mechanism_drivers": ["fake"]}}, services=("network",))


@pytest.fixture
def make_agent(server: stackcore.Cloud, tmp_path: Path
               ) -> Iterator[Callable[[], tuple[DhcpAgent, RecordingPlugger]]]:
    agents: list[DhcpAgent] = []
    plugger = RecordingPlugger()   # the host's namespaces outlive an agent

    def make() -> tuple[DhcpAgent, RecordingPlugger]:
        conf = load_agent_conf(DhcpAgent.list_opts()[1:], overrides={
            "DEFAULT": {"host": HOST, "state_path": str(tmp_path / "agent")},
            "agent": {"report_interval": 1},
            # no namespaces here for the metadata proxies (tests/unit/drivers/network/
            # test_metadata_proxy.py, and the functional tests)
            "dhcp": {"resync_interval": 60, "enable_isolated_metadata": False}})
        agent = DhcpAgent(conf, server.transport,
                          FakeDhcpDriver(conf, str(tmp_path / "agent" / "fake")))
        agent._plugger = plugger  # type: ignore[assignment]
        agents.append(agent)
        return agent, plugger

    yield make
    for agent in agents:
        agent.stop()


def served(agent: DhcpAgent, network_id: str) -> dict[str, str]:
    return {e.mac_address: e.ip_address for e in agent.driver.served_hosts(network_id)}


def dhcp_ports(server: stackcore.Cloud, network_id: str) -> list[Any]:
    return [p for p in server.network.list_ports(network_id=network_id, all_projects=True)
            if p.device_owner == "network:dhcp"]


def test_serves_networks_with_dhcp_subnets_through_a_real_dhcp_port(
    server: stackcore.Cloud, make_agent: Callable[[], tuple[DhcpAgent, RecordingPlugger]]
) -> None:
    net = server.network
    x = net.create_network("x")
    net.create_subnet(x.id, "10.60.0.0/24")
    vm = net.create_port(x.id)
    quiet = net.create_network("no-dhcp")
    net.create_subnet(quiet.id, "10.61.0.0/24", enable_dhcp=False)
    agent, plugger = make_agent()
    agent.start()

    (port,) = dhcp_ports(server, x.id)
    assert (port.host, port.vif_type, port.device_id) == (
        HOST, "fake", agent.rpc.get_dhcp_port(x.id, HOST)["device_id"]), port
    assert served(agent, x.id) == {vm.mac_address: vm.fixed_ips[0].ip_address,
                                   port.mac_address: port.fixed_ips[0].ip_address}
    assert plugger.namespaces[netns_name(x.id)].id == port.id
    assert agent.driver.active_networks() == {x.id}
    assert dhcp_ports(server, quiet.id) == []
    (row,) = net.list_agents(host=HOST, agent_type="DHCP agent")
    assert row.alive and row.configurations["dhcp_driver"] == "dnsmasq", row


def test_changes_reach_the_agent_by_notification_and_ports_never_restart_the_server(
    server: stackcore.Cloud, make_agent: Callable[[], tuple[DhcpAgent, RecordingPlugger]]
) -> None:
    net = server.network
    x = net.create_network("x")
    subnet = net.create_subnet(x.id, "10.62.0.0/24")
    agent, plugger = make_agent()
    agent.start()
    first = agent.driver.server_id(x.id)
    whole: list[str] = []   # a port change re-reads that port, not the whole network
    read_network = agent.rpc.get_network_info
    agent.rpc.get_network_info = lambda network_id: whole.append(network_id) or read_network(
        network_id)  # type: ignore[method-assign]
    vm = net.create_port(x.id)
    wait_until(lambda: vm.mac_address in served(agent, x.id), 5, "the new port's entry")
    net.delete_port(vm.id)
    wait_until(lambda: vm.mac_address not in served(agent, x.id), 5, "the entry removed")
    assert agent.driver.server_id(x.id) == first, "a port change restarted the server"
    assert whole == [], f"port changes re-read the whole network {len(whole)} time(s)"

    # a network created after the start is served; turning DHCP off stops it and
    # releases its DHCP port
    y = net.create_network("y")
    net.create_subnet(y.id, "10.63.0.0/24")
    wait_until(lambda: agent.driver.server_id(y.id), 5, "the new network served")
    net.update_subnet(subnet.id, enable_dhcp=False)
    wait_until(lambda: agent.driver.server_id(x.id) is None and dhcp_ports(server, x.id) == []
               and netns_name(x.id) not in plugger.namespaces, 5,
               "x no longer served, its namespace gone and its DHCP port released")


def test_deletes_take_the_dhcp_port_along_and_the_agent_cleans_up(
    server: stackcore.Cloud, make_agent: Callable[[], tuple[DhcpAgent, RecordingPlugger]]
) -> None:
    net = server.network
    x = net.create_network("x")
    a = net.create_subnet(x.id, "10.64.0.0/24")
    b = net.create_subnet(x.id, "10.65.0.0/24")
    agent, plugger = make_agent()
    agent.start()
    (port,) = dhcp_ports(server, x.id)
    assert {ip.subnet_id for ip in port.fixed_ips} == {a.id, b.id}
    # a subnet with the DHCP port's address in it can go: the address goes first
    net.delete_subnet(b.id)
    assert [ip.subnet_id for ip in net.get_port(port.id).fixed_ips] == [a.id]
    # a network with other ports is still a Conflict, and keeps its DHCP port
    vm = net.create_port(x.id)
    with pytest.raises(exception.Conflict):
        net.delete_network(x.id)
    assert [p.id for p in dhcp_ports(server, x.id)] == [port.id]
    net.delete_port(vm.id)
    net.delete_network(x.id)   # only DHCP ports left: deleted with it
    wait_until(lambda: agent.driver.server_id(x.id) is None
               and netns_name(x.id) not in plugger.namespaces, 5,
               "x no longer served and its namespace gone")
    assert agent.driver.active_networks() == set()


def test_a_restarted_agent_resyncs_and_removes_what_went_meanwhile(
    server: stackcore.Cloud, make_agent: Callable[[], tuple[DhcpAgent, RecordingPlugger]]
) -> None:
    net = server.network
    kept, gone = net.create_network("kept"), net.create_network("gone")
    net.create_subnet(kept.id, "10.66.0.0/24")
    net.create_subnet(gone.id, "10.67.0.0/24")
    agent, plugger = make_agent()
    agent.start()
    server_id = agent.driver.server_id(kept.id)
    agent.stop()
    net.delete_network(gone.id)          # nobody listens: the notification is lost
    late = net.create_port(kept.id)
    restarted, _ = make_agent()
    restarted.start()
    assert restarted.driver.active_networks() == {kept.id}
    assert restarted.driver.server_id(kept.id) == server_id
    assert late.mac_address in served(restarted, kept.id)
    assert set(plugger.namespaces) == {netns_name(kept.id)}
    assert {p.name for p in restarted.records.iterdir()} == {kept.id}


def test_values_reaching_a_driver_are_validated() -> None:
    with pytest.raises(exception.Invalid, match="port.mac_address"):
        DhcpNetwork.from_dict({"id": "2f0c4f36-8a27-4bd1-8b8e-1e4c4f1c1f00", "subnets": [],
                               "ports": [{"id": "2f0c4f36-8a27-4bd1-8b8e-1e4c4f1c1f01",
                                          "mac_address": "fa:16:3e:00:00:01\nport=53"}]})
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6"):
        DhcpNetwork.from_dict({"id": "2f0c4f36-8a27-4bd1-8b8e-1e4c4f1c1f00", "ports": [],
                               "subnets": [{"id": "2f0c4f36-8a27-4bd1-8b8e-1e4c4f1c1f02",
                                            "cidr": "10.0.0.0/24", "enable_dhcp": True,
                                            "gateway_ip": "10.0.0.1,option:dns"}]})


def test_dnsmasq_refuses_a_state_directory_it_cannot_write_into_its_config(
    tmp_path: Path
) -> None:
    conf = load_agent_conf(DhcpAgent.list_opts()[1:])
    with pytest.raises(exception.ConfigError, match="may hold only letters"):
        DnsmasqDriver(conf, str(tmp_path / "a dir,with=odd chars"))
