"""Mechanism manager semantics: hook order, failure handling, binding and its reasons."""

from __future__ import annotations

import pytest

from stackcore.network import exceptions
from stackcore.network.agents.state import AgentStateRPCAPI


def _fake(cloud):
    return cloud.network.plugin.mechanism_manager.driver("fake")


def test_hooks_run_precommit_then_postcommit_with_the_resource(net_cloud) -> None:
    cloud = net_cloud()
    fake = _fake(cloud)
    net = cloud.network.create_network("n")
    sub = cloud.network.create_subnet(net.id, "10.0.0.0/24")
    port = cloud.network.create_port(net.id, name="p")
    cloud.network.update_port(port.id, name="q")
    cloud.network.delete_port(port.id)
    cloud.network.delete_network(net.id)
    calls = [(hook, current["id"]) for hook, current in fake.calls]
    assert calls == [
        ("create_network_precommit", net.id), ("create_network_postcommit", net.id),
        ("create_subnet_precommit", sub.id), ("create_subnet_postcommit", sub.id),
        ("create_port_precommit", port.id), ("create_port_postcommit", port.id),
        ("update_port_precommit", port.id), ("update_port_postcommit", port.id),
        ("delete_port_precommit", port.id), ("delete_port_postcommit", port.id),
        # one transaction deletes the network with its subnets: every precommit, then
        # every postcommit
        ("delete_subnet_precommit", sub.id), ("delete_network_precommit", net.id),
        ("delete_subnet_postcommit", sub.id), ("delete_network_postcommit", net.id),
    ]
    assert fake.calls[7][1]["name"] == "q"


def test_precommit_failure_rolls_back_and_skips_postcommit(net_cloud) -> None:
    cloud = net_cloud(mech_fake={"fail_on": ["create_network_precommit"]})
    with pytest.raises(exceptions.MechanismDriverError) as err:
        cloud.network.create_network("n")
    assert err.value.errors[0]["driver"] == "fake"
    assert cloud.network.list_networks() == []
    assert [h for h, _ in _fake(cloud).calls] == ["create_network_precommit"]
    usage = cloud.network.type_usage()[2]["ranges"][0]
    assert usage["allocated"] == 0, "the segment allocation was rolled back too"


def test_create_postcommit_failure_deletes_the_resource(net_cloud) -> None:
    cloud = net_cloud(mech_fake={"fail_on": ["create_port_postcommit"]})
    net = cloud.network.create_network("n")
    cloud.network.create_subnet(net.id, "10.0.0.0/24")
    with pytest.raises(exceptions.MechanismDriverError, match="create_port_postcommit"):
        cloud.network.create_port(net.id)
    assert cloud.network.list_ports() == []
    hooks = [h for h, _ in _fake(cloud).calls]
    assert hooks[-2:] == ["delete_port_precommit", "delete_port_postcommit"]
    # its address went back: the next port gets the same one
    cloud.conf.set_override("fail_on", [], group="mech_fake")
    assert cloud.network.create_port(net.id).fixed_ips[0].ip_address == "10.0.0.2"


def test_update_postcommit_failure_keeps_the_change_marks_error_and_records_fault(
        net_cloud) -> None:
    cloud = net_cloud(mech_fake={"fail_on": ["update_network_postcommit"]})
    net = cloud.network.create_network("n")
    with pytest.raises(exceptions.MechanismDriverError):
        cloud.network.update_network(net.id, name="renamed")
    stored = cloud.network.get_network(net.id)
    assert (stored.name, stored.status) == ("renamed", "ERROR")
    (fault,) = cloud.network.list_faults(net.id)
    assert (fault.driver, fault.operation) == ("fake", "update_network_postcommit")
    cloud.conf.set_override("fail_on", [], group="mech_fake")
    assert cloud.network.update_network(net.id, name="again").status == "ACTIVE"


def test_delete_postcommit_failure_is_recorded_and_the_resource_is_gone(net_cloud) -> None:
    cloud = net_cloud(mech_fake={"fail_on": ["delete_network_postcommit"]})
    net = cloud.network.create_network("n")
    cloud.network.delete_network(net.id)
    assert cloud.network.list_networks() == []
    (fault,) = cloud.network.list_faults(net.id)
    assert fault.operation == "delete_network_postcommit"
    assert "injected" in fault.message


def test_port_binding_sets_vif_and_levels(net_cloud) -> None:
    cloud = net_cloud()
    net = cloud.network.create_network("n")
    port = cloud.network.create_port(net.id, host="h1")
    assert (port.vif_type, port.status) == ("fake", "ACTIVE")
    assert [(lv.level, lv.driver, lv.segment["id"]) for lv in port.binding_levels] == [
        (0, "fake", net.segments[0].id)]
    unbound = cloud.network.update_port(port.id, host="")
    assert (unbound.vif_type, unbound.binding_levels) == ("unbound", ())


def test_binding_failure_gives_a_reason_per_driver_and_segment(net_cloud) -> None:
    cloud = net_cloud(ml2={"mechanism_drivers": ["logger", "fake"]},
                      mech_fake={"network_types": ["flat"]})
    net = cloud.network.create_network("n", segments=[
        {"network_type": "vxlan", "segmentation_id": 77},
        {"network_type": "vlan", "physical_network": "data", "segmentation_id": 101},
    ])
    port = cloud.network.create_port(net.id, host="h1")
    assert port.vif_type == "binding_failed"
    reasons = [str(f) for f in port.binding_failures]
    assert reasons == [
        "fake: segment vxlan/77: network type 'vxlan' not in [mech_fake] network_types",
        "fake: segment vlan/data/101: network type 'vlan' not in [mech_fake] network_types",
    ]
    assert cloud.network.get_port(port.id).binding_failures == port.binding_failures


def test_agent_based_binding_explains_missing_and_misconfigured_agents(net_cloud) -> None:
    cloud = net_cloud(mech_fake={"agent_type": "Fake agent"})
    net = cloud.network.create_network("n", network_type="vlan", physical_network="data")
    port = cloud.network.create_port(net.id, host="h1")
    assert [str(f) for f in port.binding_failures] == [
        "fake: no live Fake agent agent on host 'h1'"]
    rpc = AgentStateRPCAPI(cloud.transport)
    rpc.report_state({"agent_type": "Fake agent", "host": "h1", "binary": "fake-agent",
                      "configurations": {"network_types": ["vlan"], "mappings": {"other": "x"}}},
                     start_flag=True)
    port = cloud.network.get_port(port.id)
    assert [str(f) for f in port.binding_failures] == [
        "fake: segment vlan/data/100: physical network 'data' not in the agent's mappings"]
    # The agent is fixed; its restart rebinds the host's failed ports.
    rpc.report_state({"agent_type": "Fake agent", "host": "h1", "binary": "fake-agent",
                      "configurations": {"network_types": ["vlan"], "mappings": {"data": "x"}}},
                     start_flag=True)
    port = cloud.network.get_port(port.id)
    assert (port.vif_type, port.binding_failures) == ("fake", ())
    (agent,) = cloud.network.list_agents(host="h1")
    assert agent.alive and agent.configurations["mappings"] == {"data": "x"}


def test_dead_agents_do_not_bind(net_cloud) -> None:
    cloud = net_cloud(mech_fake={"agent_type": "Fake agent"}, network={"agent_down_time": 1})
    AgentStateRPCAPI(cloud.transport).report_state(
        {"agent_type": "Fake agent", "host": "h1",
         "configurations": {"network_types": ["vxlan"]}})
    import datetime

    import sqlalchemy as sa

    from stackcore.network.models import Agent

    with cloud.db.transaction() as s:
        s.execute(sa.update(Agent).values(
            heartbeat_at=datetime.datetime(2000, 1, 1)))
    net = cloud.network.create_network("n")
    port = cloud.network.create_port(net.id, host="h1")
    assert [str(f) for f in port.binding_failures] == [
        "fake: no live Fake agent agent on host 'h1' (its agent is dead)"]


def test_hierarchical_binding(net_cloud) -> None:
    cloud = net_cloud(ml2={"mechanism_drivers": ["fake_tor", "fake"]},
                      mech_fake={"network_types": ["vlan"]})
    net = cloud.network.create_network("n", segments=[
        {"network_type": "vxlan", "segmentation_id": 9},
        {"network_type": "vlan", "physical_network": "data", "segmentation_id": 101},
    ])
    port = cloud.network.create_port(net.id, host="h1")
    assert port.vif_type == "fake"
    assert [(lv.driver, lv.segment["network_type"]) for lv in port.binding_levels] == [
        ("fake_tor", "vxlan"), ("fake", "vlan")]


def test_binding_depth_is_bounded(net_cloud) -> None:
    cloud = net_cloud(ml2={"mechanism_drivers": ["fake_tor", "fake"], "max_binding_levels": 1},
                      mech_fake={"network_types": ["flat"]})
    net = cloud.network.create_network("n", segments=[
        {"network_type": "vxlan", "segmentation_id": 9},
        {"network_type": "vlan", "physical_network": "data", "segmentation_id": 101},
    ])
    port = cloud.network.create_port(net.id, host="h1")
    assert port.vif_type == "binding_failed"
    failures = port.binding_failures
    assert "ml2: binding needs more than 1 levels ([ml2] max_binding_levels)" in [
        str(f) for f in failures]
    assert max(f.level for f in failures) == 1, "level 1 is refused, never attempted"


def test_binding_loops_are_cut_and_explained(net_cloud) -> None:
    cloud = net_cloud(ml2={"mechanism_drivers": ["fake_tor"]},
                      mech_fake_tor={"from_type": "vxlan", "to_type": "vxlan"})
    net = cloud.network.create_network("n", segments=[
        {"network_type": "vxlan", "segmentation_id": 9},
        {"network_type": "vxlan", "segmentation_id": 10},
    ])
    port = cloud.network.create_port(net.id, host="h1")
    assert port.vif_type == "binding_failed"
    assert [str(f) for f in port.binding_failures] == [
        "ml2: no mechanism driver left for level 1: each one already bound one of its "
        "segments at a higher level"]


def test_no_binding_driver_is_explained(net_cloud) -> None:
    cloud = net_cloud(ml2={"mechanism_drivers": ["logger"]})
    net = cloud.network.create_network("n")
    port = cloud.network.create_port(net.id, host="h1")
    assert [str(f) for f in port.binding_failures] == [
        "ml2: no configured mechanism driver binds ports ([ml2] mechanism_drivers: logger)"]


def test_bind_port_raising_counts_as_a_refusal(net_cloud) -> None:
    cloud = net_cloud(mech_fake={"fail_on": ["bind_port"]})
    net = cloud.network.create_network("n")
    port = cloud.network.create_port(net.id, host="h1")
    assert [str(f) for f in port.binding_failures] == [
        "fake: bind_port raised DriverError: injected failure in bind_port"]


def test_compute_seam_allocates_binds_and_undoes_on_failure(net_cloud) -> None:
    cloud = net_cloud()
    net = cloud.network.create_network("n")
    cloud.network.create_subnet(net.id, "10.0.0.0/24")
    spare = cloud.network.create_port(net.id)
    instance = "11111111-2222-3333-4444-555555555555"
    info = cloud.network.allocate_ports_for_instance(
        instance, "h1", [{"network_id": net.id}, {"port_id": spare.id}])
    assert [i["vif_type"] for i in info] == ["fake", "fake"]
    assert info[0]["mtu"] == 1450 and info[0]["segment"]["network_type"] == "vxlan"
    assert info[0]["devname"] == ("tap" + info[0]["id"])[:14]
    cloud.network.deallocate_ports_for_instance(instance)
    ports = cloud.network.list_ports()
    assert [p.id for p in ports] == [spare.id], "created port deleted, given port kept"
    assert (ports[0].device_id, ports[0].host, ports[0].vif_type) == ("", "", "unbound")

    cloud.conf.set_override("network_types", ["flat"], group="mech_fake")
    with pytest.raises(exceptions.PortBindingFailed) as err:
        cloud.network.allocate_ports_for_instance(
            instance, "h1", [{"port_id": spare.id}, {"network_id": net.id}])
    assert "not in [mech_fake] network_types" in str(err.value)
    ports = cloud.network.list_ports()
    assert [(p.id, p.device_id, p.host) for p in ports] == [(spare.id, "", "")]
