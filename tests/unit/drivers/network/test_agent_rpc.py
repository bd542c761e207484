"""The agent RPC (``network.agents``) served by an embedded cloud, called as the agents call
it: which ports a host's agent gets, its tunnel peers, and port status from device up/down.
No backend: agents are simulated by their state reports."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from stackcore_drivers.network.host_state import read_host_state
from stackcore_drivers.network.linuxbridge import AGENT_TYPE as LB_TYPE
from stackcore_drivers.network.ovs import AGENT_TYPE as OVS_TYPE

import stackcore
from stackcore import exception
from stackcore.network.agents.rpc import TOPIC, AgentRPCAPI
from stackcore.network.agents.state import AgentStateRPCAPI
from stackcore.rpc import Target


@pytest.fixture
def cloud() -> Iterator[stackcore.Cloud]:
    cloud = stackcore.Cloud(services=["network"], overrides={
        "DEFAULT": {"periodic_interval": 3600},
        "ml2": {"mechanism_drivers": ["openvswitch", "linuxbridge"],
                "project_network_types": ["vxlan"]},
        "ml2_type_vlan": {"network_vlan_ranges": ["physnet1:100:199"]},
        "ml2_type_vxlan": {"vni_ranges": ["1000:1999"]},
    })
    yield cloud
    cloud.close()


def report(cloud: stackcore.Cloud, agent_type: str, host: str, ip: str) -> None:
    AgentStateRPCAPI(cloud.transport).report_state({
        "agent_type": agent_type, "binary": "test", "host": host, "configurations": {
            "bridge_mappings": {"physnet1": "br-phys"},
            "interface_mappings": {"physnet1": "eth1"},
            "tunnel_types": ["vxlan"], "tunneling_ip": ip,
            "network_types": ["flat", "vlan", "vxlan"]}}, start_flag=True)


@pytest.fixture
def rpc(cloud: stackcore.Cloud) -> AgentRPCAPI:
    report(cloud, OVS_TYPE, "h1", "10.0.0.1")
    report(cloud, OVS_TYPE, "h2", "10.0.0.2")
    report(cloud, LB_TYPE, "h3", "10.0.0.3")
    report(cloud, OVS_TYPE, "h4", "")          # no tunnel endpoint: never a peer
    return AgentRPCAPI(cloud.transport)


def test_devices_for_host_are_the_ports_its_agent_type_wires(
    cloud: stackcore.Cloud, rpc: AgentRPCAPI
) -> None:
    net = cloud.network
    vlan = net.create_network("v", network_type="vlan", physical_network="physnet1",
                              segmentation_id=150)
    subnet = net.create_subnet(vlan.id, "10.9.0.0/24")
    mine = net.create_port(vlan.id, host="h1")
    net.create_port(vlan.id, host="h2")              # another host
    net.create_port(vlan.id)                          # unbound
    assert rpc.get_devices_for_host("h1", OVS_TYPE) == [{
        "port_id": mine.id, "network_id": vlan.id, "mac_address": mine.mac_address,
        "fixed_ips": [{"subnet_id": subnet.id,
                       "ip_address": mine.fixed_ips[0].ip_address}],
        "admin_state_up": True, "status": "DOWN", "device_owner": "",
        "segment": {"id": vlan.segments[0].id, "network_type": "vlan",
                    "physical_network": "physnet1", "segmentation_id": 150, "mtu": 1500},
    }]
    # the Linux bridge agent of h1 (none runs there) gets nothing; unknown types neither
    assert rpc.get_devices_for_host("h1", LB_TYPE) == []
    assert rpc.get_devices_for_host("h1", "Some agent") == []
    assert rpc.get_devices_for_host("h9", OVS_TYPE) == []
    lb_port = net.create_port(vlan.id, host="h3")
    assert lb_port.vif_type == "bridge"
    assert [d["port_id"] for d in rpc.get_devices_for_host("h3", LB_TYPE)] == [lb_port.id]


def test_tunnel_peers_are_the_other_hosts_with_ports_on_the_network(
    cloud: stackcore.Cloud, rpc: AgentRPCAPI
) -> None:
    net = cloud.network
    x, y = net.create_network("x"), net.create_network("y")
    for host in ("h1", "h2", "h3", "h4"):
        net.create_port(x.id, host=host)
    net.create_port(y.id, host="h1")
    # OVS h2 and Linux bridge h3 both terminate VXLAN; h4 reports no endpoint
    assert rpc.get_tunnel_peers("h1", "vxlan") == {x.id: ["10.0.0.2", "10.0.0.3"], y.id: []}
    assert rpc.get_tunnel_peers("h2", "vxlan") == {x.id: ["10.0.0.1", "10.0.0.3"]}
    assert rpc.get_tunnel_peers("h1", "vxlan", [y.id]) == {y.id: []}
    assert rpc.get_tunnel_peers("h1", "gre") == {}
    state = read_host_state(rpc, "h1", OVS_TYPE, ["vxlan"])
    assert set(state.ports) == {p.id for p in net.list_ports(host="h1")}
    assert state.peers == {x.id: frozenset({"10.0.0.2", "10.0.0.3"}), y.id: frozenset()}


def test_device_up_and_down_set_the_port_status(
    cloud: stackcore.Cloud, rpc: AgentRPCAPI
) -> None:
    net = cloud.network
    x = net.create_network("x")
    port = net.create_port(x.id, host="h1")
    revision = cloud.network.plugin.get_port(port.id)["revision"]
    assert port.status == "DOWN"
    assert rpc.update_device_up(port.id, "h1") == "ACTIVE"
    assert net.get_port(port.id).status == "ACTIVE"
    assert cloud.network.plugin.get_port(port.id)["revision"] == revision + 1
    assert rpc.update_device_up(port.id, "h1") == "ACTIVE"           # idempotent
    assert cloud.network.plugin.get_port(port.id)["revision"] == revision + 1
    # a report from a host the port is not bound to changes nothing
    assert rpc.update_device_down(port.id, "h2") == "ACTIVE"
    assert rpc.update_device_down(port.id, "h1") == "DOWN"
    assert net.get_port(port.id).status == "DOWN"
    # an administratively down port never becomes ACTIVE
    net.update_port(port.id, admin_state_up=False)
    assert rpc.update_device_up(port.id, "h1") == "DOWN"
    # rebinding elsewhere: the old host's reports are ignored
    net.update_port(port.id, admin_state_up=True, host="h2")
    assert rpc.update_device_up(port.id, "h1") == "DOWN"
    assert rpc.update_device_up(port.id, "h2") == "ACTIVE"
    # a deleted port: None, nothing raised (the agent removes its VIF)
    net.delete_port(port.id)
    assert rpc.update_device_up(port.id, "h2") is None
    assert rpc.get_existing_ports([port.id]) == []


def test_existing_ports(cloud: stackcore.Cloud, rpc: AgentRPCAPI) -> None:
    x = cloud.network.create_network("x")
    bound, unbound = cloud.network.create_port(x.id, host="h1"), cloud.network.create_port(x.id)
    gone = "3a6b2cf3-5f2f-4c52-9d27-1c2a0f0b0e11"
    assert rpc.get_existing_ports([gone, unbound.id, bound.id]) == sorted([bound.id, unbound.id])
    assert rpc.get_existing_ports([]) == []


@pytest.mark.parametrize("method,kwargs,field", [
    ("get_devices_for_host", {"host": "", "agent_type": OVS_TYPE}, "host"),
    ("get_devices_for_host", {"host": "h1", "agent_type": 3}, "agent_type"),
    ("get_tunnel_peers", {"host": "h1", "tunnel_type": "vxlan", "network_ids": "x"},
     "network_ids"),
    ("get_existing_ports", {"port_ids": "abc"}, "port_ids"),
    ("update_device_up", {"port_id": "", "host": "h1"}, "port_id"),
])
def test_bad_arguments_are_one_clear_error(cloud: stackcore.Cloud, method: str,
                                           kwargs: dict[str, Any], field: str) -> None:
    client = cloud.transport.client(Target(TOPIC, version="1.0"))
    with pytest.raises(exception.Invalid) as err:
        client.call(method, **kwargs)
    assert err.value.field == field


def test_a_newer_client_is_refused_by_version(cloud: stackcore.Cloud) -> None:
    with pytest.raises(exception.RPCVersionError):
        cloud.transport.client(Target(TOPIC, version="1.2")).call(
            "get_existing_ports", port_ids=[])
    with pytest.raises(exception.RPCVersionError):
        cloud.transport.client(Target(TOPIC, version="2.0")).call(
            "get_existing_ports", port_ids=[])
