"""Network notifications (Neutron's event types): network/subnet/port create, update and
delete, ``.start`` before ``.end`` (sent after the commit), ``.error`` with the fault when a
mechanism driver raises, nothing for bad input the API refuses; every payload is validated
against its schema by the ``captured`` fixture."""

from __future__ import annotations

from typing import Any

import pytest

from stackcore import exception
from stackcore.network import exceptions
from stackcore.project import RequestContext
from tests.conftest import wait_until
from tests.unit.test_notifications import LOG_DRIVER, captured  # noqa: F401 (fixture)

ALICE = RequestContext(user_id="alice", project_id="project-a", roles=["member"])


@pytest.fixture
def database_url() -> None:
    """SQLite only: what is emitted does not depend on the database (kept cheap)."""
    return None


def _cloud(net_cloud: Any, **overrides: Any) -> Any:
    return net_cloud(**LOG_DRIVER, **overrides)


def test_network_subnet_port_lifecycle(net_cloud, captured) -> None:  # noqa: F811
    cloud = _cloud(net_cloud)
    api = cloud.as_project(ALICE).network
    net = api.create_network("blue")
    subnet = api.create_subnet(net.id, "10.0.0.0/24", name="s")
    port = api.create_port(net.id, name="p")
    api.update_network(net.id, name="green")
    api.update_port(port.id, fixed_ips=[{"subnet_id": subnet.id}], name="q")
    api.delete_port(port.id)
    api.delete_subnet(subnet.id)
    api.delete_network(net.id)
    expected = [f"{r}.{a}.{p}" for r, a in (("network", "create"), ("subnet", "create"),
                                            ("port", "create"), ("network", "update"),
                                            ("port", "update"),
                                            ("port", "delete"), ("subnet", "delete"),
                                            ("network", "delete"))
                for p in ("start", "end")]
    captured.expect(("network.", "subnet.", "port."), expected)
    created = captured.of("network.create.end")[0]
    assert created["publisher_id"].startswith("stackcore-network-api:"), created
    payload = created["payload"]
    assert payload["id"] == net.id and payload["name"] == "blue", payload
    assert payload["context"]["project_id"] == "project-a", payload
    assert payload["context"]["user_id"] == "alice", payload
    assert captured.of("network.create.start")[0]["payload"]["name"] == "blue"
    assert captured.of("network.update.end")[0]["payload"]["name"] == "green"
    port_end = captured.of("port.create.end")[0]["payload"]
    assert port_end["id"] == port.id and port_end["fixed_ips"][0]["subnet_id"] == subnet.id, \
        port_end
    assert "binding:profile" not in port_end, port_end
    assert captured.of("port.update.start")[0]["payload"]["name"] == "q"
    updated = captured.of("port.update.end")[0]["payload"]
    assert updated["fixed_ips"][0]["ip_address"], updated
    assert captured.of("subnet.create.end")[0]["payload"]["cidr"] == "10.0.0.0/24"
    assert captured.of("network.delete.end")[0]["payload"]["id"] == net.id


def test_mechanism_driver_failure_is_an_error_event(net_cloud, captured) -> None:  # noqa: F811
    cloud = _cloud(net_cloud, mech_fake={"fail_on": ["create_network_precommit"]})
    with pytest.raises(exceptions.MechanismDriverError):
        cloud.network.create_network("red")
    captured.expect(("network.",), ["network.create.start", "network.create.error"])
    error = captured.of("network.create.error")[0]
    assert error["priority"] == "ERROR", error
    fault = error["payload"]["fault"]
    assert fault["exc_class"] == "MechanismDriverError", fault
    assert fault["step"] == "create_network", fault
    assert error["payload"]["name"] == "red", error


def test_bad_input_emits_nothing(net_cloud, captured) -> None:  # noqa: F811
    cloud = _cloud(net_cloud)
    with pytest.raises(exception.Invalid):
        cloud.network.create_network("x", network_type="vlan", segments=[
            {"network_type": "vxlan"}])
    net = cloud.network.create_network("ok")
    with pytest.raises(exception.Invalid):
        cloud.network.create_subnet(net.id, "not-a-cidr")
    captured.expect(("network.", "subnet."), ["network.create.start", "network.create.end"])


def test_security_group_and_rule_lifecycle(net_cloud, captured) -> None:  # noqa: F811
    cloud = _cloud(net_cloud)
    api = cloud.as_project(ALICE).network
    group = api.create_security_group("web")
    rule = api.create_security_group_rule(group.id, "ingress", protocol="tcp",
                                          port_range_min=80, port_range_max=80)
    api.update_security_group(group.id, name="www")
    api.delete_security_group_rule(rule.id)
    api.delete_security_group(group.id)
    expected = [f"{r}.{a}.{p}" for r, a in (
        ("security_group", "create"), ("security_group_rule", "create"),
        ("security_group", "update"), ("security_group_rule", "delete"),
        ("security_group", "delete")) for p in ("start", "end")]
    captured.expect(("security_group",), expected)
    made = captured.of("security_group.create.end")[0]["payload"]
    assert made["id"] == group.id and len(made["rules"]) == 2, made  # the default egress
    assert made["context"]["project_id"] == "project-a", made
    ruled = captured.of("security_group_rule.create.end")[0]["payload"]
    assert (ruled["id"], ruled["protocol"], ruled["port_range_min"]) == (rule.id, 6, 80), ruled
    assert captured.of("security_group.update.end")[0]["payload"]["name"] == "www"


def test_agent_liveness_and_segment_usage_samples(net_cloud, captured) -> None:  # noqa: F811
    from stackcore.network.agents.state import AgentStateRPCAPI

    cloud = _cloud(net_cloud)
    cloud.network.create_network("v", network_type="vlan", physical_network="data")
    AgentStateRPCAPI(cloud.transport).report_state(
        {"agent_type": "Fake agent", "host": "h1", "binary": "fake-agent",
         "configurations": {}}, start_flag=True)
    cloud.tick()  # (the service also samples once as it starts: the last one is this tick's)
    wait_until(lambda: captured.of("agent.stats")
               and captured.of("agent.stats")[-1]["payload"]["agents"], 10,
               f"an agent.stats sample naming the agent ({captured.of('agent.stats')})")
    sample = captured.of("agent.stats")[-1]
    assert sample["priority"] == "SAMPLE", sample
    (agent,) = sample["payload"]["agents"]
    assert (agent["host"], agent["agent_type"], agent["alive"]) == ("h1", "Fake agent", True), \
        agent
    assert 0 <= agent["heartbeat_age_s"] < sample["payload"]["agent_down_time"], agent
    usage = {t["network_type"]: t["ranges"] for t in
             captured.of("segment.stats")[-1]["payload"]["types"]}
    (vlan,) = usage["vlan"]
    assert (vlan["physical_network"], vlan["total"], vlan["allocated"], vlan["free"]) == (
        "data", 3, 1, 2), usage


def test_router_and_floatingip_lifecycle(net_cloud, captured) -> None:  # noqa: F811
    cloud = _cloud(net_cloud)
    admin = cloud.network
    ext = admin.create_network("ext", network_type="flat", physical_network="ext",
                               router_external=True)
    admin.create_subnet(ext.id, "203.0.113.0/24")
    api = cloud.as_project(ALICE).network
    router = api.create_router("r", external_gateway={"network_id": ext.id})
    api.update_router(router.id, name="r2")
    fip = api.create_floatingip(ext.id)
    api.update_floatingip(fip.id, port_id=None)
    api.delete_floatingip(fip.id)
    api.delete_router(router.id)
    expected = [f"{r}.{a}.{p}" for r, a in (("router", "create"), ("router", "update"),
                                            ("floatingip", "create"),
                                            ("floatingip", "update"),
                                            ("floatingip", "delete"), ("router", "delete"))
                for p in ("start", "end")]
    captured.expect(("router.", "floatingip."), expected)
    created = captured.of("router.create.end")[0]["payload"]
    assert created["external_gateway"]["network_id"] == ext.id, created


def test_a_router_made_with_every_default_is_notified_with_its_name(net_cloud,
                                                                    captured) -> None:  # noqa: F811
    api = _cloud(net_cloud).as_project(ALICE).network
    router = api.create_router()            # name left to its default ("")
    api.update_router(router_id=router.id, name="x")   # the first argument by keyword
    captured.expect(("router.",), ["router.create.start", "router.create.end",
                                   "router.update.start", "router.update.end"])
    start = captured.of("router.create.start")[0]["payload"]
    assert start["name"] == "", start
    update = captured.of("router.update.start")[0]["payload"]
    assert update["id"] == router.id, update
