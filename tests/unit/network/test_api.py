"""cloud.network through the core API: segments, MTU, subnets, ports, validation."""

from __future__ import annotations

import threading

import pytest

from stackcore import exception
from stackcore.network import exceptions


def test_project_network_gets_a_vxlan_segment_and_its_mtu(net_cloud) -> None:
    cloud = net_cloud()
    net = cloud.network.create_network("n1")
    assert (net.network_type, net.physical_network, net.segmentation_id) == ("vxlan", None, 1000)
    assert net.mtu == 1450  # 1500 - 50 bytes of VXLAN encapsulation
    assert cloud.network.get_network(net.id) == net


def test_project_network_types_are_tried_in_order(net_cloud) -> None:
    cloud = net_cloud(ml2={"project_network_types": ["vlan", "vxlan"]})
    vlan_ids = [cloud.network.create_network(f"v{i}").segmentation_id for i in range(3)]
    assert vlan_ids == [100, 101, 102]
    spill = cloud.network.create_network("spill")
    assert (spill.network_type, spill.segmentation_id) == ("vxlan", 1000)


def test_exhaustion_is_a_clear_quota_error_and_persists_nothing(net_cloud) -> None:
    cloud = net_cloud()
    for i in range(3):
        cloud.network.create_network(f"n{i}")
    with pytest.raises(exceptions.NoNetworkAvailable, match="vxlan"):
        cloud.network.create_network("one-too-many")
    assert len(cloud.network.list_networks()) == 3


def test_delete_returns_the_id_to_the_pool(net_cloud) -> None:
    cloud = net_cloud()
    nets = [cloud.network.create_network(f"n{i}") for i in range(3)]
    cloud.network.delete_network(nets[1].id)
    cloud.network.delete_network(nets[1].id)  # idempotent
    assert cloud.network.create_network("again").segmentation_id == 1001


def test_provider_vlan_and_flat_networks(net_cloud) -> None:
    cloud = net_cloud(ml2={"physical_network_mtus": {"data": "9000"}},
                      network={"global_physnet_mtu": 9000})
    vlan = cloud.network.create_network("v", network_type="vlan", physical_network="data",
                                        segmentation_id=2000)
    assert (vlan.segmentation_id, vlan.mtu) == (2000, 9000)
    flat = cloud.network.create_network("f", network_type="flat", physical_network="ext")
    assert flat.segmentation_id is None and flat.mtu == 9000
    with pytest.raises(exceptions.SegmentIdInUse):
        cloud.network.create_network("f2", network_type="flat", physical_network="ext")
    with pytest.raises(exceptions.SegmentIdInUse, match="2000"):
        cloud.network.create_network("v2", network_type="vlan", physical_network="data",
                                     segmentation_id=2000)
    partial = cloud.network.create_network("p", network_type="vlan", physical_network="data")
    assert partial.segmentation_id == 100


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"network_type": "vlan", "physical_network": "nope", "segmentation_id": 5},
     "physical_network"),
    ({"network_type": "vlan", "physical_network": "data", "segmentation_id": 4095},
     "segmentation_id"),
    ({"network_type": "vxlan", "segmentation_id": 2**24}, "segmentation_id"),
    ({"network_type": "vxlan", "physical_network": "data"}, "physical_network"),
    ({"network_type": "flat", "physical_network": "other"}, "physical_network"),
    ({"network_type": "gre"}, "network_type"),
    ({"segmentation_id": 5}, "network_type"),
])
def test_bad_provider_attributes_name_the_culprit_and_persist_nothing(net_cloud, kwargs,
                                                                      field) -> None:
    cloud = net_cloud()
    with pytest.raises(exception.Invalid) as err:
        cloud.network.create_network("bad", **kwargs)
    assert err.value.field == field
    assert cloud.network.list_networks() == []


def test_multi_segment_network_has_the_smallest_mtu(net_cloud) -> None:
    cloud = net_cloud()
    net = cloud.network.create_network("multi", segments=[
        {"network_type": "vxlan", "segmentation_id": 5000},
        {"network_type": "vlan", "physical_network": "data", "segmentation_id": 300},
    ])
    assert [s.network_type for s in net.segments] == ["vxlan", "vlan"]
    assert net.network_type is None and net.mtu == 1450
    # A failure on the second segment leaves the first unreserved.
    with pytest.raises(exceptions.SegmentIdInUse):
        cloud.network.create_network("clash", segments=[
            {"network_type": "vxlan", "segmentation_id": 5001},
            {"network_type": "vlan", "physical_network": "data", "segmentation_id": 300},
        ])
    again = cloud.network.create_network("ok", network_type="vxlan", segmentation_id=5001)
    assert again.segmentation_id == 5001


def test_type_usage_reports_ranges(net_cloud) -> None:
    cloud = net_cloud()
    cloud.network.create_network("n")
    cloud.network.create_network("p", network_type="vlan", physical_network="ext",
                                 segmentation_id=7)
    usage = {u["network_type"]: u["ranges"] for u in cloud.network.type_usage()}
    assert usage["vxlan"] == [{"physical_network": None, "first": 1000, "last": 1002,
                               "total": 3, "allocated": 1, "free": 2}]
    assert {"physical_network": "ext", "first": None, "last": None, "total": 0,
            "allocated": 1, "free": 0} in usage["vlan"]


# --- subnets and ports ---------------------------------------------------------------------


def test_ipv4_and_ipv6_subnets_give_ports_one_address_each(net_cloud) -> None:
    cloud = net_cloud()
    net = cloud.network.create_network("n")
    v4 = cloud.network.create_subnet(net.id, "10.0.0.0/29")
    v6 = cloud.network.create_subnet(net.id, "2001:db8::/64", name="six")
    assert v4.gateway_ip == "10.0.0.1"
    assert v4.allocation_pools == ({"start": "10.0.0.2", "end": "10.0.0.6"},)
    assert v6.gateway_ip == "2001:db8::1"
    port = cloud.network.create_port(net.id)
    assert {ip.ip_address for ip in port.fixed_ips} == {"10.0.0.2", "2001:db8::2"}
    assert port.mac_address.startswith("fa:16:3e:")


def test_addresses_are_never_handed_out_twice_and_run_out_cleanly(net_cloud) -> None:
    cloud = net_cloud()
    net = cloud.network.create_network("n")
    sub = cloud.network.create_subnet(net.id, "10.0.0.0/29")  # 5 usable: .2-.6
    got: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(2):
            try:
                port = cloud.network.create_port(net.id)
            except exceptions.IpAddressExhausted as err:
                with lock:
                    errors.append(err)
                continue
            with lock:
                got.extend(ip.ip_address for ip in port.fixed_ips)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == [f"10.0.0.{i}" for i in range(2, 7)]
    assert len(errors) == 3
    assert len(cloud.network.list_ports(network_id=net.id)) == 5, "failed creates left nothing"
    assert sub.id in str(errors[0])


def test_fixed_ip_requests(net_cloud) -> None:
    cloud = net_cloud()
    net = cloud.network.create_network("n")
    sub = cloud.network.create_subnet(net.id, "10.0.0.0/24")
    port = cloud.network.create_port(net.id, fixed_ips=[{"ip_address": "10.0.0.50"}])
    assert port.fixed_ips[0].ip_address == "10.0.0.50"
    with pytest.raises(exception.Conflict, match="10.0.0.50"):
        cloud.network.create_port(net.id, fixed_ips=[{"subnet_id": sub.id,
                                                      "ip_address": "10.0.0.50"}])
    with pytest.raises(exception.Invalid) as err:
        cloud.network.create_port(net.id, fixed_ips=[{"ip_address": "10.0.0.1"}])
    assert err.value.field == "fixed_ips[0].ip_address"  # the gateway
    with pytest.raises(exception.Invalid):
        cloud.network.create_port(net.id, fixed_ips=[{"ip_address": "192.168.0.5"}])
    assert len(cloud.network.list_ports()) == 1
    moved = cloud.network.update_port(port.id, fixed_ips=[{"ip_address": "10.0.0.51"}])
    assert [ip.ip_address for ip in moved.fixed_ips] == ["10.0.0.51"]
    other = cloud.network.create_port(net.id, fixed_ips=[{"ip_address": "10.0.0.50"}])
    assert other.fixed_ips[0].ip_address == "10.0.0.50", "the old address was freed"


def test_mac_addresses_are_unique_per_network(net_cloud) -> None:
    cloud = net_cloud()
    a = cloud.network.create_network("a")
    b = cloud.network.create_network("b")
    cloud.network.create_port(a.id, mac_address="fa:16:3e:00:00:01")
    with pytest.raises(exception.Conflict, match="fa:16:3e:00:00:01"):
        cloud.network.create_port(a.id, mac_address="FA:16:3E:00:00:01")
    same = cloud.network.create_port(b.id, mac_address="fa:16:3e:00:00:01")
    assert same.mac_address == "fa:16:3e:00:00:01"
    with pytest.raises(exception.Invalid) as err:
        cloud.network.create_port(a.id, mac_address="01:00:5e:00:00:01")
    assert err.value.field == "mac_address"


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"cidr": "10.0.0.1/24"}, "cidr"),
    ({"cidr": "10.0.0.0/24", "gateway_ip": "10.0.1.1"}, "gateway_ip"),
    ({"cidr": "10.0.0.0/24", "allocation_pools": [{"start": "10.0.0.1", "end": "10.0.0.9"}]},
     "allocation_pools[0]"),
    ({"cidr": "10.0.0.0/24", "allocation_pools": [{"start": "10.0.0.20", "end": "10.0.0.9"}]},
     "allocation_pools[0]"),
    ({"cidr": "10.0.0.0/24", "ip_version": 6}, "ip_version"),
    ({"cidr": "10.0.0.0/24", "allocation_pools": [
        {"start": "10.0.0.5", "end": "10.0.0.9"}, {"start": "10.0.0.9", "end": "10.0.0.12"}]},
     "allocation_pools"),
])
def test_bad_subnets_name_the_culprit(net_cloud, kwargs, field) -> None:
    cloud = net_cloud()
    net = cloud.network.create_network("n")
    with pytest.raises(exception.Invalid) as err:
        cloud.network.create_subnet(net.id, **kwargs)
    assert err.value.field == field
    assert cloud.network.list_subnets() == []


def test_overlapping_subnets_and_deletes_in_use_are_conflicts(net_cloud) -> None:
    cloud = net_cloud()
    net = cloud.network.create_network("n")
    sub = cloud.network.create_subnet(net.id, "10.0.0.0/24")
    with pytest.raises(exception.Conflict, match="overlaps"):
        cloud.network.create_subnet(net.id, "10.0.0.128/25")
    port = cloud.network.create_port(net.id)
    with pytest.raises(exception.Conflict, match="in use"):
        cloud.network.delete_subnet(sub.id)
    with pytest.raises(exception.Conflict, match="port"):
        cloud.network.delete_network(net.id)
    cloud.network.delete_port(port.id)
    cloud.network.delete_port(port.id)  # idempotent
    cloud.network.delete_network(net.id)
    assert cloud.network.list_subnets() == []


def test_missing_resources_are_not_found(net_cloud) -> None:
    cloud = net_cloud()
    missing = "00000000-0000-0000-0000-000000000000"
    with pytest.raises(exception.NotFound):
        cloud.network.get_network(missing)
    with pytest.raises(exception.NotFound):
        cloud.network.create_port(missing)
    with pytest.raises(exception.Invalid) as err:
        cloud.network.get_port("not-a-uuid")
    assert err.value.field == "port_id"


@pytest.mark.parametrize(("overrides", "needle"), [
    ({"ml2_type_vxlan": {"vni_ranges": ["5:1"]}}, "[ml2_type_vxlan] vni_ranges"),
    ({"ml2_type_vxlan": {"vni_ranges": ["1:16777216"]}}, "[ml2_type_vxlan] vni_ranges"),
    ({"ml2_type_vlan": {"network_vlan_ranges": ["data:x:5"]}},
     "[ml2_type_vlan] network_vlan_ranges"),
    ({"ml2": {"project_network_types": ["gre"]}}, "[ml2] project_network_types"),
    ({"ml2": {"physical_network_mtus": {"data": "big"}}}, "physical_network_mtus"),
    ({"network": {"base_mac": "01:00:00:00:00:00"}}, "multicast"),
    ({"mech_fake": {"fail_on": ["no_such_hook"]}}, "[mech_fake] fail_on"),
])
def test_bad_configuration_fails_start_up_naming_the_option(net_cloud, overrides,
                                                            needle) -> None:
    with pytest.raises(exception.ConfigError) as err:
        net_cloud(**overrides)
    assert needle in str(err.value)


def test_unknown_mechanism_driver_fails_start_up(net_cloud) -> None:
    with pytest.raises(exception.PluginNotFound, match="nope"):
        net_cloud(ml2={"mechanism_drivers": ["fake", "nope"]})


def test_restart_with_narrower_ranges_keeps_networks(make_cloud, tmp_path) -> None:
    state = str(tmp_path / "state")
    base = {"DEFAULT": {"state_path": state}, "ml2_type_vxlan": {"vni_ranges": ["1:10"]}}
    cloud = make_cloud(overrides=base, services=("network",))
    nets = [cloud.network.create_network(f"n{i}") for i in range(3)]
    cloud.close()
    narrower = {**base, "ml2_type_vxlan": {"vni_ranges": ["3:4"]}}
    cloud = make_cloud(overrides=narrower, services=("network",))
    assert [n.segmentation_id for n in cloud.network.list_networks()] == [1, 2, 3]
    assert cloud.network.create_network("new").segmentation_id == 4
    with pytest.raises(exceptions.NoNetworkAvailable):
        cloud.network.create_network("none left")
    cloud.network.delete_network(nets[0].id)  # VNI 1 is outside the ranges now: not pooled
    with pytest.raises(exceptions.NoNetworkAvailable):
        cloud.network.create_network("still none")
