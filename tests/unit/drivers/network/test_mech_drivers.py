"""bind_port of the openvswitch and linuxbridge mechanism drivers against agent reports
(no backend: binding reads only the agents' configurations)."""

from __future__ import annotations

from typing import Any

import pytest
from stackcore_drivers.network import names
from stackcore_drivers.network.linuxbridge.mech_driver import LinuxbridgeMechanismDriver
from stackcore_drivers.network.mech_agent import AgentMechanismDriver
from stackcore_drivers.network.ovs.bridges import patch_port_name
from stackcore_drivers.network.ovs.mech_driver import OpenvswitchMechanismDriver

from stackcore import conf as sc_conf
from stackcore import exception
from stackcore.network.ml2 import contexts

NET = "5e0c0a52-1111-4222-8333-444455556666"
SEGMENTS = {
    "vlan": {"id": "s-vlan", "network_type": "vlan", "physical_network": "physnet1",
             "segmentation_id": 120, "mtu": 1500},
    "flat": {"id": "s-flat", "network_type": "flat", "physical_network": "physnet2",
             "segmentation_id": None, "mtu": 1500},
    "vxlan": {"id": "s-vx", "network_type": "vxlan", "physical_network": None,
              "segmentation_id": 1001, "mtu": 1450},
}
OVS_AGENT = {"host": "h1", "alive": True, "heartbeat_at": "2026-01-01T00:00:00",
             "configurations": {"bridge_mappings": {"physnet1": "br-phys"},
                                "integration_bridge": "br-int", "datapath_type": "netdev",
                                "tunneling_ip": "10.0.0.1", "tunnel_types": ["vxlan"],
                                "network_types": ["flat", "vlan", "vxlan"]}}
LB_AGENT = {"host": "h1", "alive": True, "heartbeat_at": "2026-01-01T00:00:00",
            "configurations": {"interface_mappings": {"physnet1": "eth1"},
                               "bridge_mappings": {"physnet2": "br-ex"},
                               "tunneling_ip": "", "tunnel_types": [],
                               "network_types": ["flat", "vlan"]}}


def bind(driver: AgentMechanismDriver, segment_types: list[str],
         agents: list[dict[str, Any]], vnic_type: str = "normal") -> contexts.BindingAttempt:
    segments = [SEGMENTS[t] for t in segment_types]
    network = contexts.NetworkContext({"id": NET, "segments": segments})
    port = {"id": "p1", "network_id": NET, "binding:host_id": "h1",
            "binding:vnic_type": vnic_type}
    context = contexts.PortContext(port, network, agent_lookup=lambda host, kind: [
        a for a in agents if a["host"] == host and kind == driver.AGENT_TYPE])
    attempt = contexts.BindingAttempt("d", 0, segments)
    context.begin_attempt(attempt)
    driver.bind_port(context)
    return context.end_attempt()


@pytest.fixture
def ovs() -> OpenvswitchMechanismDriver:
    conf = sc_conf.load([])
    sc_conf.register(conf, OpenvswitchMechanismDriver.list_opts())
    driver = OpenvswitchMechanismDriver(conf)
    driver.initialize()
    return driver


@pytest.fixture
def lb() -> LinuxbridgeMechanismDriver:
    driver = LinuxbridgeMechanismDriver(sc_conf.load([]))
    driver.initialize()
    return driver


def test_ovs_binds_the_first_segment_the_agent_can_wire(ovs: OpenvswitchMechanismDriver
                                                        ) -> None:
    attempt = bind(ovs, ["flat", "vlan"], [OVS_AGENT])
    assert attempt.bound_segment is not None and attempt.bound_segment["id"] == "s-vlan"
    assert attempt.vif_type == "ovs"
    assert attempt.vif_details == {"port_filter": False, "connectivity": "l2",
                                   "ovs_hybrid_plug": False, "bridge_name": "br-int",
                                   "datapath_type": "netdev"}
    assert attempt.refusals == [("s-flat", "physical network 'physnet2' is not in the "
                                 "bridge_mappings of the Open vSwitch agent on host 'h1' "
                                 "(known: physnet1)")]


def test_ovs_vxlan_needs_a_tunnel_endpoint(ovs: OpenvswitchMechanismDriver) -> None:
    assert bind(ovs, ["vxlan"], [OVS_AGENT]).bound_segment is not None
    no_ip = {**OVS_AGENT, "configurations": {**OVS_AGENT["configurations"],
                                             "tunneling_ip": ""}}
    attempt = bind(ovs, ["vxlan"], [no_ip])
    assert attempt.bound_segment is None
    assert attempt.refusals == [("s-vx", "the Open vSwitch agent on host 'h1' has no tunnel "
                                 "endpoint (local_ip) for 'vxlan' networks")]


@pytest.mark.parametrize("agents,reason", [
    ([], "no Open vSwitch agent has reported from host 'h1'"),
    ([{**OVS_AGENT, "alive": False}], "the Open vSwitch agent on host 'h1' is not alive "
                                      "(last report 2026-01-01T00:00:00)"),
])
def test_ovs_refuses_without_a_live_agent(ovs: OpenvswitchMechanismDriver,
                                          agents: list[dict[str, Any]], reason: str) -> None:
    attempt = bind(ovs, ["vlan"], agents)
    assert attempt.bound_segment is None
    assert attempt.refusals == [(None, reason)]


def test_unsupported_vnic_type_is_refused(ovs: OpenvswitchMechanismDriver) -> None:
    attempt = bind(ovs, ["vlan"], [OVS_AGENT], vnic_type="direct")
    assert attempt.refusals == [(None, "vnic_type 'direct' is not supported (supported: "
                                       "normal)")]


def test_linuxbridge_bridge_names_and_mappings(lb: LinuxbridgeMechanismDriver) -> None:
    attempt = bind(lb, ["vlan"], [LB_AGENT])
    assert attempt.vif_type == "bridge"
    assert attempt.vif_details == {"port_filter": False, "connectivity": "l2",
                                   "bridge_name": "brq5e0c0a52-11"}
    flat = bind(lb, ["flat"], [LB_AGENT])
    assert flat.vif_details is not None and flat.vif_details["bridge_name"] == "br-ex"
    vlan_on_bridge_only = {**LB_AGENT, "configurations": {
        **LB_AGENT["configurations"], "interface_mappings": {}, "bridge_mappings": {
            "physnet1": "br-ex"}}}
    refused = bind(lb, ["vlan"], [vlan_on_bridge_only])
    assert refused.bound_segment is None
    assert refused.refusals == [("s-vlan", "physical network 'physnet1' has no interface in "
                                 "the interface_mappings of the Linux bridge agent on host "
                                 "'h1' (VLAN needs an interface)")]
    assert bind(lb, ["vxlan"], [LB_AGENT]).refusals == [
        ("s-vx", "network type 'vxlan' is not handled by the Linux bridge agent on host 'h1' "
                 "(handles: flat, vlan)")]


def test_binding_is_repeatable(ovs: OpenvswitchMechanismDriver) -> None:
    first, second = (bind(ovs, ["vxlan", "vlan"], [OVS_AGENT]) for _ in range(2))
    assert (first.bound_segment, first.vif_details) == (second.bound_segment,
                                                        second.vif_details)


def test_device_names() -> None:
    assert names.tunnel_port_name("vxlan", "10.0.0.2") == "vxlan-0a000002"
    assert len(names.tunnel_port_name("vxlan", "fd00::1")) <= 15
    assert patch_port_name("int-", "br-phys") == "int-br-phys"
    long_name = patch_port_name("int-", "br-provider1")
    assert len(long_name) == 15 and long_name.startswith("int-")
    with pytest.raises(exception.Invalid, match="kernel's limit for a device name is 15"):
        names.device_name("bridge", "x" * 16)
    with pytest.raises(exception.ConfigError, match="mapped to both"):
        names.physnet_map("[ovs] bridge_mappings", {"a": "br-x", "b": "br-x"})
