"""The OVS agent's OpenFlow pipeline as pure functions: which flows each bridge gets.
(The same flows carry real traffic in tests/functional/network_agents/test_ovs_agent.py.)"""

from __future__ import annotations

from stackcore_drivers.network.ovs.openflow import rundir_for
from stackcore_drivers.network.ovs.pipeline import (
    LocalNetwork,
    integration_flows,
    physical_flows,
    tunnel_flows,
)

VLAN = LocalNetwork("net-v", 1, "vlan", "physnet1", 120)
FLAT = LocalNetwork("net-f", 2, "flat", "physnet1", None)
VX = LocalNetwork("net-x", 3, "vxlan", None, 1001)
LONELY = LocalNetwork("net-y", 4, "vxlan", None, 1002)   # no peer host (yet)
OTHER_PHYS = LocalNetwork("net-o", 5, "vlan", "physnet2", 130)


def test_integration_bridge_translates_provider_vlans_and_drops_the_rest_of_int_ports() -> None:
    flows = integration_flows([VLAN, FLAT, VX, OTHER_PHYS], {"physnet1": 7}, dead_ofports=[9])
    assert flows == [
        "table=0,priority=0 actions=NORMAL",
        "table=0,priority=2,in_port=7 actions=drop",
        "table=0,priority=2,in_port=9 actions=drop",
        "table=0,priority=3,in_port=7,dl_vlan=120 actions=mod_vlan_vid:1,NORMAL",
        "table=0,priority=3,in_port=7,vlan_tci=0x0000/0x1fff actions=mod_vlan_vid:2,NORMAL",
    ]   # physnet2 is not mapped on this host: nothing for it; VXLAN goes via br-tun


def test_tunnel_bridge_maps_vni_to_local_vlan_and_floods_to_the_network_peers_only() -> None:
    flows = tunnel_flows([VX, LONELY, VLAN], patch_int_ofport=1, tunnel_ofports=[3, 2, 4],
                         network_tunnels={"net-x": [3, 2]})
    assert flows == [
        "table=0,priority=1,in_port=1 actions=resubmit(,22)",
        "table=0,priority=0 actions=drop",
        "table=4,priority=0 actions=drop",
        "table=22,priority=0 actions=drop",
        "table=0,priority=1,in_port=2 actions=resubmit(,4)",
        "table=0,priority=1,in_port=3 actions=resubmit(,4)",
        "table=0,priority=1,in_port=4 actions=resubmit(,4)",
        "table=4,priority=1,tun_id=0x3e9 actions=mod_vlan_vid:3,output:1",
        "table=22,priority=1,dl_vlan=3 actions=strip_vlan,set_tunnel:0x3e9,output:2,output:3",
        "table=4,priority=1,tun_id=0x3ea actions=mod_vlan_vid:4,output:1",
    ]


def test_provider_bridge_rewrites_local_vlans_of_its_physnet_only() -> None:
    assert physical_flows([VLAN, FLAT, VX, OTHER_PHYS], "physnet1", phy_ofport=5) == [
        "table=0,priority=0 actions=NORMAL",
        "table=0,priority=2,in_port=5 actions=drop",
        "table=0,priority=4,in_port=5,dl_vlan=1 actions=mod_vlan_vid:120,NORMAL",
        "table=0,priority=4,in_port=5,dl_vlan=2 actions=strip_vlan,NORMAL",
    ]


def test_no_networks_means_only_the_closed_defaults() -> None:
    assert tunnel_flows([], 1, [], {}) == [
        "table=0,priority=1,in_port=1 actions=resubmit(,22)",
        "table=0,priority=0 actions=drop",
        "table=4,priority=0 actions=drop",
        "table=22,priority=0 actions=drop",
    ]
    assert physical_flows([], "physnet1", 5) == [
        "table=0,priority=0 actions=NORMAL", "table=0,priority=2,in_port=5 actions=drop"]


def test_openflow_sockets_live_next_to_a_unix_ovsdb_socket() -> None:
    assert rundir_for("unix:/var/lib/x/run/db.sock") == "/var/lib/x/run"
    assert rundir_for("tcp:127.0.0.1:6640") == "/run/openvswitch"
    assert rundir_for("unix:/var/lib/x/run/db.sock", "/elsewhere") == "/elsewhere"
