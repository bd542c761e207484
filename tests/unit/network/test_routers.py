"""Routers and floating IPs on cloud.network (SQLite and PostgreSQL): gateways, interfaces and
every refusal with its culprit, floating IP lifecycle, quotas, policies, the L3 RPC (one
agent per router), nothing persisted on error."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from stackcore import exception
from stackcore.network import models as m
from stackcore.network.agents.state import AgentStateEndpoint
from stackcore.network.l3 import AGENT_TOPIC
from stackcore.network.l3.rpc import L3RPCEndpoint
from stackcore.project.context import RequestContext
from stackcore.rpc import Target
from tests.conftest import wait_until
from tests.unit.network.test_races import _race as race

A = RequestContext(user_id="alice", project_id="project-a", roles=["member"])
B = RequestContext(user_id="bob", project_id="project-b", roles=["member"])


def _counts(cloud: Any) -> dict[str, int]:
    with cloud.network.db.transaction() as session:
        return {model.__tablename__: session.execute(
            sa.select(sa.func.count()).select_from(model)).scalar_one()
            for model in (m.Router, m.FloatingIP, m.Port, m.IPAllocation)}


@pytest.fixture
def lab(net_cloud) -> Any:
    """An external flat network 203.0.113.0/24 and project A's network 10.0.0.0/24."""
    cloud = net_cloud(ml2_type_vxlan={"vni_ranges": ["1000:1099"]})
    admin = cloud.network
    ext = admin.create_network("ext", network_type="flat", physical_network="ext",
                               router_external=True)
    ext_subnet = admin.create_subnet(ext.id, "203.0.113.0/24")
    a = cloud.as_project(A).network
    net = a.create_network("n1")
    sub = a.create_subnet(net.id, "10.0.0.0/24")

    class Lab:
        pass
    lab = Lab()
    lab.cloud, lab.admin, lab.a, lab.ext, lab.ext_subnet = cloud, admin, a, ext, ext_subnet
    lab.net, lab.sub = net, sub
    return lab


def test_router_gateway_interfaces_and_delete(lab) -> None:
    router = lab.a.create_router("r1", external_gateway={"network_id": lab.ext.id})
    gw = router.external_gateway
    assert gw is not None and gw["network_id"] == lab.ext.id and gw["enable_snat"], gw
    assert gw["external_fixed_ips"][0]["subnet_id"] == lab.ext_subnet.id, gw
    interface = lab.a.add_router_interface(router.id, lab.sub.id)
    assert interface.ip_address == "10.0.0.1", interface
    assert [i.subnet_id for i in lab.a.get_router(router.id).interfaces] == [lab.sub.id]
    with pytest.raises(exception.Conflict, match=lab.sub.id):
        lab.a.delete_router(router.id)
    with pytest.raises(exception.Conflict, match=interface.port_id):
        lab.a.delete_port(interface.port_id)
    lab.a.remove_router_interface(router.id, lab.sub.id)
    lab.a.remove_router_interface(router.id, lab.sub.id)   # nothing left: fine
    cleared = lab.a.update_router(router.id, external_gateway=None)
    assert cleared.external_gateway is None
    again = lab.a.update_router(router.id, external_gateway={"network_id": lab.ext.id,
                                                             "enable_snat": False})
    assert again.external_gateway and not again.external_gateway["enable_snat"]
    lab.a.delete_router(router.id)
    lab.a.delete_router(router.id)   # idempotent
    assert lab.a.list_routers() == []
    assert _counts(lab.cloud)["routers"] == 0
    assert _counts(lab.cloud)["ports"] == 0, lab.admin.list_ports(all_projects=True)


def test_external_networks_are_admin_flat_or_vlan(lab) -> None:
    with pytest.raises(exception.Forbidden, match="network:create:external"):
        lab.a.create_network("x", router_external=True)
    with pytest.raises(exception.Invalid, match="router_external"):
        lab.admin.create_network("x", router_external=True)
    with pytest.raises(exception.Invalid, match="router_external"):
        lab.admin.create_network("x", network_type="vxlan", router_external=True)
    vlan = lab.admin.create_network("v", network_type="vlan", physical_network="data",
                                    router_external=True)
    assert vlan.router_external


@pytest.mark.parametrize("case", ["not-external", "no-ipv4", "missing"])
def test_gateway_refusals_name_the_network(lab, case) -> None:
    before = _counts(lab.cloud)
    if case == "not-external":
        network_id, error = lab.net.id, exception.Invalid
    elif case == "no-ipv4":
        other = lab.admin.create_network("e6", network_type="vlan", physical_network="data",
                                         router_external=True)
        lab.admin.create_subnet(other.id, "2001:db8::/64")
        before = _counts(lab.cloud)
        network_id, error = other.id, exception.Invalid
    else:
        network_id, error = "5b4e8d43-4f3b-4bd5-9c3c-1c1f7f0e0a11", exception.NotFound
    with pytest.raises(error, match=network_id):
        lab.a.create_router("r", external_gateway={"network_id": network_id})
    assert _counts(lab.cloud) == before


def test_interface_refusals_name_the_culprit(lab) -> None:
    router = lab.a.create_router("r", external_gateway={"network_id": lab.ext.id})
    lab.a.add_router_interface(router.id, lab.sub.id)
    no_gw = lab.a.create_subnet(lab.a.create_network("n2").id, "10.1.0.0/24", gateway_ip=None)
    v6 = lab.a.create_subnet(lab.a.create_network("n3").id, "2001:db8:1::/64")
    overlap = lab.a.create_subnet(lab.a.create_network("n4").id, "10.0.0.128/25")
    b = lab.cloud.as_project(B).network
    b_sub = b.create_subnet(b.create_network("nb").id, "10.9.0.0/24")
    admin_b = lab.admin
    before = _counts(lab.cloud)
    cases = [
        (lab.a, no_gw.id, exception.Invalid, "no gateway_ip"),
        (lab.a, v6.id, exception.Invalid, "IPv6"),
        (lab.admin, lab.ext_subnet.id, exception.Invalid, "external network"),
        (lab.a, b_sub.id, exception.NotFound, b_sub.id),   # not even visible
        (admin_b, b_sub.id, exception.Invalid, "project-b"),
        (lab.a, lab.sub.id, exception.Conflict, "already has an interface"),
        (lab.a, overlap.id, exception.Conflict, lab.sub.id),
    ]
    for api, subnet_id, error, text in cases:
        with pytest.raises(error) as err:
            api.add_router_interface(router.id, subnet_id)
        assert subnet_id in str(err.value) and text in str(err.value), (subnet_id, err.value)
    assert _counts(lab.cloud) == before


def test_floating_ip_lifecycle(lab) -> None:
    router = lab.a.create_router("r", external_gateway={"network_id": lab.ext.id})
    port = lab.a.create_port(lab.net.id)
    fip = lab.a.create_floatingip(lab.ext.id)
    assert fip.port_id is None and fip.status == "DOWN"
    assert fip.floating_ip_address.startswith("203.0.113."), fip
    before = _counts(lab.cloud)
    with pytest.raises(exception.Invalid, match="not reachable") as err:
        lab.a.update_floatingip(fip.id, port_id=port.id)
    assert lab.sub.id in str(err.value) and port.id in str(err.value)
    with pytest.raises(exception.Invalid, match="not reachable"):
        lab.a.create_floatingip(lab.ext.id, port_id=port.id)
    assert _counts(lab.cloud) == before
    lab.a.add_router_interface(router.id, lab.sub.id)
    associated = lab.a.update_floatingip(fip.id, port_id=port.id)
    assert (associated.port_id, associated.fixed_ip_address, associated.router_id) == (
        port.id, port.fixed_ips[0].ip_address, router.id), associated
    with pytest.raises(exception.Conflict, match=fip.id):
        lab.a.create_floatingip(lab.ext.id, port_id=port.id)
    with pytest.raises(exception.Conflict, match=fip.id):
        lab.a.remove_router_interface(router.id, lab.sub.id)
    with pytest.raises(exception.Conflict, match=fip.id):
        lab.a.update_router(router.id, external_gateway=None)
    assert lab.a.update_floatingip(fip.id, port_id=None).port_id is None
    lab.a.update_floatingip(fip.id, port_id=port.id)
    lab.a.update_port(port.id, fixed_ips=[{"subnet_id": lab.sub.id, "ip_address": "10.0.0.99"}])
    assert lab.a.get_floatingip(fip.id).port_id is None   # its address went
    lab.a.update_floatingip(fip.id, port_id=port.id)
    assert lab.a.get_floatingip(fip.id).fixed_ip_address == "10.0.0.99"
    lab.a.delete_port(port.id)   # disassociates
    found = lab.a.get_floatingip(fip.id)
    assert (found.port_id, found.router_id) == (None, None), found
    assert [f.id for f in lab.a.list_floatingips()] == [fip.id]
    lab.a.delete_floatingip(fip.id)
    lab.a.delete_floatingip(fip.id)   # idempotent
    assert _counts(lab.cloud)["floatingips"] == 0
    with pytest.raises(exception.Invalid, match="floating_network_id"):
        lab.a.create_floatingip(lab.net.id)


def test_quotas(lab) -> None:
    lab.cloud.project.set_quota(A.project_id, "routers", 1)
    lab.cloud.project.set_quota(A.project_id, "floatingips", 1)
    lab.a.create_router("one")
    with pytest.raises(exception.QuotaExceeded, match="routers"):
        lab.a.create_router("two", external_gateway={"network_id": lab.ext.id})
    lab.a.create_floatingip(lab.ext.id)
    before = _counts(lab.cloud)
    with pytest.raises(exception.QuotaExceeded, match="floatingips"):
        lab.a.create_floatingip(lab.ext.id)
    assert _counts(lab.cloud) == before


def test_policies_and_projects(lab) -> None:
    router = lab.a.create_router("r")
    b = lab.cloud.as_project(B).network
    with pytest.raises(exception.NotFound, match=router.id):
        b.get_router(router.id)
    b.delete_router(router.id)   # not B's to see: nothing happens
    assert lab.a.get_router(router.id).id == router.id
    assert b.list_routers() == []
    with pytest.raises(exception.Forbidden, match="network:router:list:all_projects"):
        b.list_routers(all_projects=True)
    with pytest.raises(exception.Forbidden, match="network:floatingip:list:all_projects"):
        b.list_floatingips(all_projects=True)
    assert [r.id for r in lab.admin.list_routers(all_projects=True)] == [router.id]
    from stackcore.network.policies import list_rules
    names = {rule.name for rule in list_rules()}
    assert {"network:router:create", "network:router:add_interface",
            "network:floatingip:update", "network:floatingip:delete"} <= names, names


def test_sync_routers_claims_once_and_binds(lab) -> None:
    router = lab.a.create_router("r", external_gateway={"network_id": lab.ext.id})
    lab.a.add_router_interface(router.id, lab.sub.id)
    port = lab.a.create_port(lab.net.id)
    fip = lab.a.create_floatingip(lab.ext.id, port_id=port.id)
    api = lab.cloud.network
    rpc = L3RPCEndpoint(api.conf, api.db, api.plugin)
    first = rpc.sync_routers("host-1")
    assert [r["id"] for r in first] == [router.id]
    assert rpc.sync_routers("host-2") == []   # one agent per router
    info = first[0]
    assert info["gateway"]["subnet_gateway_ip"] == lab.ext_subnet.gateway_ip, info
    assert [i["ip_address"] for i in info["interfaces"]] == ["10.0.0.1"], info
    assert info["floating_ips"] == [{"id": fip.id,
                                     "floating_ip_address": fip.floating_ip_address,
                                     "fixed_ip_address": port.fixed_ips[0].ip_address}]
    assert lab.a.get_router(router.id).host == "host-1"
    hosts = {p.host for p in lab.admin.list_ports(all_projects=True)
             if p.device_id == router.id}
    assert hosts == {"host-1"}, hosts
    assert rpc.sync_routers("host-1", [router.id])[0]["id"] == router.id


def test_status_is_what_the_serving_agent_reported(lab) -> None:
    """A router is BUILD until its agent served it, then ACTIVE, or ERROR with the fault the
    agent reported; a floating IP is DOWN until the agent applied its association; reports
    from an agent that does not serve the router, or about an association that changed
    since, change nothing."""
    router = lab.a.create_router("r", external_gateway={"network_id": lab.ext.id})
    lab.a.add_router_interface(router.id, lab.sub.id)
    port = lab.a.create_port(lab.net.id)
    fip = lab.a.create_floatingip(lab.ext.id, port_id=port.id)
    fixed = port.fixed_ips[0].ip_address
    seen = lab.a.get_router(router.id)
    assert (seen.status, seen.fault, fip.status) == ("BUILD", None, "DOWN"), (seen, fip)
    api = lab.cloud.network
    rpc = L3RPCEndpoint(api.conf, api.db, api.plugin)
    applied = [{"id": fip.id, "fixed_ip_address": fixed}]
    assert rpc.update_router_status("host-1", router.id, "ACTIVE", None, applied) is False
    assert lab.a.get_router(router.id).status == "BUILD"   # nobody serves it yet
    rpc.sync_routers("host-1")
    assert rpc.update_router_status("host-2", router.id, "ACTIVE", None, applied) is False
    assert rpc.update_router_status("host-1", router.id, "ACTIVE", None, applied) is True
    seen = lab.a.get_router(router.id)
    assert (seen.status, seen.fault) == ("ACTIVE", None), seen
    assert lab.a.get_floatingip(fip.id).status == "ACTIVE"

    rpc.update_router_status("host-1", router.id, "ERROR", "DriverError: nft failed", applied)
    seen = lab.a.get_router(router.id)
    assert (seen.status, seen.fault) == ("ERROR", "DriverError: nft failed"), seen
    assert lab.a.get_floatingip(fip.id).status == "ERROR"
    rpc.update_router_status("host-1", router.id, "ACTIVE", None, applied)
    assert lab.a.get_router(router.id).fault is None

    # a change makes the floating IP DOWN until a report about the new association
    lab.a.update_floatingip(fip.id, port_id=None)
    assert lab.a.get_floatingip(fip.id).status == "DOWN"
    lab.a.update_floatingip(fip.id, port_id=port.id)
    lab.a.update_port(port.id, fixed_ips=[{"subnet_id": lab.sub.id, "ip_address": "10.0.0.77"}])
    lab.a.update_floatingip(fip.id, port_id=port.id)
    rpc.update_router_status("host-1", router.id, "ACTIVE", None, applied)  # the old address
    assert lab.a.get_floatingip(fip.id).status == "DOWN", "a stale report was taken"
    rpc.update_router_status("host-1", router.id, "ACTIVE", None,
                             [{"id": fip.id, "fixed_ip_address": "10.0.0.77"}])
    assert lab.a.get_floatingip(fip.id).status == "ACTIVE"


@pytest.mark.parametrize("args, field", [
    (("host-1", "not-a-uuid", "ACTIVE"), "router_id"),
    (("host-1", "8a1c4f9e-0000-4000-8000-000000000000", "UP"), "status"),
    (("host<>&;", "8a1c4f9e-0000-4000-8000-000000000000", "ACTIVE"), "host"),
    (("host-1", "8a1c4f9e-0000-4000-8000-000000000000", "ERROR", 5), "fault"),
    (("host-1", "8a1c4f9e-0000-4000-8000-000000000000", "ACTIVE", None,
      [{"id": "8a1c4f9e-0000-4000-8000-000000000001", "fixed_ip_address": "10.0.0"}]),
     "floating_ips[0].fixed_ip_address"),
    (("host-1", "8a1c4f9e-0000-4000-8000-000000000000", "ACTIVE", None,
      [{"id": "x", "fixed_ip_address": "10.0.0.5"}]), "floating_ips[0].id"),
])
def test_status_report_refusals_name_the_culprit(lab, args, field) -> None:
    api = lab.cloud.network
    rpc = L3RPCEndpoint(api.conf, api.db, api.plugin)
    with pytest.raises(exception.Invalid) as err:
        rpc.update_router_status(*args)
    assert err.value.kwargs["field"] == field, err.value


def test_a_gateway_that_cannot_get_an_address_leaves_no_router(net_cloud) -> None:
    cloud = net_cloud()
    admin = cloud.network
    ext = admin.create_network("ext", network_type="flat", physical_network="ext",
                               router_external=True)
    admin.create_subnet(ext.id, "203.0.113.0/24",
                        allocation_pools=[{"start": "203.0.113.10", "end": "203.0.113.10"}])
    admin.create_floatingip(ext.id)   # the only address
    before = _counts(cloud)
    with pytest.raises(exception.QuotaExceeded, match="no free IP address"):
        admin.create_router("r", external_gateway={"network_id": ext.id})
    assert _counts(cloud) == before
    assert admin.list_routers(all_projects=True) == []


def _race(first: Any, second: Any) -> tuple[Any, Any]:
    return race(first, second)


def test_two_agents_claiming_at_once_never_share_a_router(lab) -> None:
    api = lab.cloud.network
    rpc = L3RPCEndpoint(api.conf, api.db, api.plugin)
    for round_no in range(10):
        router = lab.a.create_router(f"r{round_no}")
        one, two = _race(lambda: rpc.sync_routers("host-1"), lambda: rpc.sync_routers("host-2"))
        assert not isinstance(one, Exception) and not isinstance(two, Exception), (one, two)
        winners = [h for h, got in (("host-1", one), ("host-2", two))
                   if router.id in {r["id"] for r in got}]
        assert len(winners) == 1, f"round {round_no}: router {router.id} given to {winners}"
        assert lab.a.get_router(router.id).host == winners[0]


def test_deleting_a_router_while_an_interface_is_added_lets_one_win(lab) -> None:
    for round_no in range(6):
        router = lab.a.create_router(f"r{round_no}")
        added, deleted = _race(lambda: lab.a.add_router_interface(router.id, lab.sub.id),
                               lambda: lab.a.delete_router(router.id))
        where = f"round {round_no}: add -> {added!r}, delete -> {deleted!r}"
        ports = [p for p in lab.admin.list_ports(all_projects=True)
                 if p.device_id == router.id]
        if isinstance(deleted, exception.Conflict):
            assert not isinstance(added, Exception), where
            assert [p.id for p in ports] == [added.port_id], where
            lab.a.remove_router_interface(router.id, lab.sub.id)
            lab.a.delete_router(router.id)
        else:
            assert deleted is None and isinstance(added, exception.NotFound), where
            assert ports == [], where
        assert lab.a.list_routers() == [], where


def test_changes_are_cast_to_the_owning_agent(lab) -> None:
    class Endpoint:
        def __init__(self, host: str) -> None:
            self.target = Target(AGENT_TOPIC, server=host, version="1.0")
            self.seen: list[list[str]] = []

        def routers_updated(self, router_ids: list[str]) -> None:
            self.seen.append(router_ids)

    api = lab.cloud.network
    one, two = Endpoint("host-1"), Endpoint("host-2")
    servers = [api.transport.serve(e.target, e) for e in (one, two)]
    try:
        # the agents are known from their reports
        state = AgentStateEndpoint(api.conf, api.db, lambda host: 0, lambda: [])
        for host in ("host-1", "host-2"):
            state.report_state({"agent_type": "L3 agent", "binary": "stackcore-l3-agent",
                                "host": host, "topic": AGENT_TOPIC, "configurations": {}})
        router = lab.a.create_router("r")   # nobody serves it: every agent is told
        wait_until(lambda: [router.id] in one.seen and [router.id] in two.seen, 5,
                   f"routers_updated of unclaimed {router.id} to both ({one.seen}, {two.seen})")
        L3RPCEndpoint(api.conf, api.db, api.plugin).sync_routers("host-2")
        one.seen.clear()
        two.seen.clear()
        lab.a.add_router_interface(router.id, lab.sub.id)
        wait_until(lambda: [router.id] in two.seen, 5, f"routers_updated to host-2 ({two.seen})")
        assert one.seen == [], one.seen
    finally:
        for server in servers:
            server.stop()
