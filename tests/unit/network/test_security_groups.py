"""Security groups on cloud.network: the default group, rules and their validation, port
membership, port security, address pairs, and what the agent RPC hands the agents."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from stackcore import exception
from stackcore.network import security_groups
from stackcore.network.agents.rpc import AgentRPCEndpoint
from stackcore.project.context import RequestContext

A = RequestContext(user_id="alice", project_id="project-a", roles=["member"])
B = RequestContext(user_id="bob", project_id="project-b", roles=["member"])


def _rules(group: Any) -> set[tuple[Any, ...]]:
    return {(r.direction, r.ethertype, r.protocol, r.port_range_min, r.port_range_max,
             r.remote_ip_prefix, r.remote_group_id) for r in group.rules}


def _rpc(cloud: Any) -> AgentRPCEndpoint:
    api = cloud.network
    return AgentRPCEndpoint(api.conf, api.db, api.plugin.mechanism_manager)


def test_default_group_is_made_on_first_use_once_per_project(net_cloud) -> None:
    cloud = net_cloud()
    a = cloud.as_project(A).network
    assert a.list_security_groups() == []   # a read makes nothing
    a.create_security_group("first")        # a first use
    groups = a.list_security_groups(name="default")
    assert [g.name for g in groups] == ["default"]
    default = groups[0]
    assert _rules(default) == {
        ("egress", "IPv4", None, None, None, None, None),
        ("egress", "IPv6", None, None, None, None, None),
        ("ingress", "IPv4", None, None, None, None, default.id),
        ("ingress", "IPv6", None, None, None, None, default.id),
    }
    assert [g.id for g in a.list_security_groups(name="default")] == [default.id]
    net = a.create_network("n")
    a.create_subnet(net.id, "10.0.0.0/24")
    port = a.create_port(net.id)
    assert port.security_groups == (default.id,) and port.port_security_enabled
    with pytest.raises(exception.Conflict, match="default group"):
        a.delete_security_group(default.id)
    with pytest.raises(exception.Invalid, match="name"):
        a.update_security_group(default.id, name="renamed")
    b = cloud.as_project(B).network
    b.create_port(b.create_network("nb").id)   # B's first use: a port
    assert [g.name for g in b.list_security_groups()] == ["default"]


#: (arguments, the field the one error must name) - each refused with nothing persisted
BAD_RULES: list[tuple[dict[str, Any], str]] = [
    ({"protocol": "tcpp"}, "protocol"),
    ({"protocol": 256}, "protocol"),
    ({"protocol": "tcp", "port_range_min": 0, "port_range_max": 10}, "port_range_min"),
    ({"protocol": "tcp", "port_range_min": 80, "port_range_max": 70000}, "port_range_max"),
    ({"protocol": "tcp", "port_range_min": 90, "port_range_max": 80}, "port_range_min"),
    ({"protocol": "tcp", "port_range_min": 80}, "port_range_max"),
    ({"protocol": "gre", "port_range_min": 1, "port_range_max": 2}, "port_range_min"),
    ({"port_range_min": 22, "port_range_max": 22}, "port_range_min"),
    ({"protocol": "icmp", "port_range_min": 256}, "port_range_min"),
    ({"protocol": "icmp", "port_range_max": 0}, "port_range_max"),
    ({"remote_ip_prefix": "10.0.0.300/24"}, "remote_ip_prefix"),
    ({"remote_ip_prefix": "fd00::/64"}, "remote_ip_prefix"),  # an IPv6 CIDR on IPv4
    ({"protocol": "icmpv6"}, "protocol"),  # on IPv4
    ({"direction": "sideways"}, "direction"),
    ({"ethertype": "IPv5"}, "ethertype"),
]


def test_bad_rule_is_one_error_naming_the_field_and_persists_nothing(net_cloud) -> None:
    a = net_cloud().as_project(A).network
    group = a.create_security_group("web")
    before = _rules(a.get_security_group(group.id))
    wrong = []
    for kwargs, field in BAD_RULES:
        try:
            a.create_security_group_rule(group.id, **{"direction": "ingress", **kwargs})
        except exception.Invalid as err:
            if field not in str(err):
                wrong.append(f"{kwargs}: {err} does not name {field}")
        else:
            wrong.append(f"{kwargs}: accepted")
    assert wrong == []
    assert _rules(a.get_security_group(group.id)) == before


def test_remote_group_of_another_project_is_refused(net_cloud) -> None:
    cloud = net_cloud()
    a, b = cloud.as_project(A).network, cloud.as_project(B).network
    mine, theirs = a.create_security_group("mine"), b.create_security_group("theirs")
    with pytest.raises(exception.Invalid, match="remote_group_id"):
        a.create_security_group_rule(mine.id, "ingress", remote_group_id=theirs.id)
    with pytest.raises(exception.NotFound):
        a.create_security_group_rule(theirs.id, "ingress")
    assert len(a.get_security_group(mine.id).rules) == 2  # the egress defaults only


def test_rules_are_normalized_and_duplicates_refused(net_cloud) -> None:
    a = net_cloud().as_project(A).network
    group = a.create_security_group("web")
    assert _rules(group) == {("egress", "IPv4", None, None, None, None, None),
                             ("egress", "IPv6", None, None, None, None, None)}
    ssh = a.create_security_group_rule(group.id, "ingress", protocol="tcp", port_range_min=22,
                                       port_range_max=22, remote_ip_prefix="192.0.2.7/24")
    assert (ssh.protocol, ssh.remote_ip_prefix) == (6, "192.0.2.0/24")
    ping6 = a.create_security_group_rule(group.id, "ingress", ethertype="IPv6",
                                         protocol="icmp", port_range_min=128)
    assert ping6.protocol == 58
    assert a.create_security_group_rule(group.id, "ingress", protocol="112").protocol == 112
    with pytest.raises(exception.Conflict, match="already has this rule"):
        a.create_security_group_rule(group.id, "ingress", protocol=6, port_range_min=22,
                                     port_range_max=22, remote_ip_prefix="192.0.2.0/24")
    a.delete_security_group_rule(ssh.id)
    a.delete_security_group_rule(ssh.id)  # idempotent
    assert ssh.id not in {r.id for r in a.list_security_group_rules(group.id)}


def test_port_security_groups_pairs_and_their_errors(net_cloud) -> None:
    cloud = net_cloud()
    a, b = cloud.as_project(A).network, cloud.as_project(B).network
    net = a.create_network("n")
    a.create_subnet(net.id, "10.0.0.0/24")
    web = a.create_security_group("web")
    theirs = b.create_security_group("theirs")
    port = a.create_port(net.id, security_groups=[web.id],
                         allowed_address_pairs=[{"ip_address": "10.0.0.200"}])
    assert port.security_groups == (web.id,)
    assert port.allowed_address_pairs == ({"ip_address": "10.0.0.200"},)
    ports_before = len(a.list_ports())
    with pytest.raises(exception.Invalid, match="security_groups"):
        a.create_port(net.id, security_groups=[theirs.id])
    with pytest.raises(exception.Invalid, match="allowed_address_pairs"):
        a.create_port(net.id, port_security_enabled=False,
                      allowed_address_pairs=[{"ip_address": "10.0.0.9"}])
    with pytest.raises(exception.Invalid, match=r"allowed_address_pairs\[0\].ip_address"):
        a.create_port(net.id, allowed_address_pairs=[{"ip_address": "ten"}])
    assert len(a.list_ports()) == ports_before
    with pytest.raises(exception.Invalid, match="port_security_enabled"):
        a.update_port(port.id, port_security_enabled=False, allowed_address_pairs=[])
    assert a.get_port(port.id).port_security_enabled
    off = a.update_port(port.id, port_security_enabled=False, security_groups=[],
                        allowed_address_pairs=[])
    assert (off.port_security_enabled, off.security_groups) == (False, ())
    unfiltered = a.create_port(net.id, port_security_enabled=False)
    assert unfiltered.security_groups == ()
    with pytest.raises(exception.Conflict, match="in use"):
        a.update_port(off.id, port_security_enabled=True, security_groups=[web.id])
        a.delete_security_group(web.id)
    a.delete_port(off.id)
    a.delete_security_group(web.id)
    a.delete_security_group(web.id)  # idempotent


def test_rpc_expands_remote_groups_into_member_addresses(net_cloud) -> None:
    cloud = net_cloud()
    a = cloud.as_project(A).network
    net = a.create_network("n")
    a.create_subnet(net.id, "10.0.0.0/24")
    web = a.create_security_group("web")
    a.create_security_group_rule(web.id, "ingress", protocol="icmp", remote_group_id=web.id)
    one = a.create_port(net.id, security_groups=[web.id])
    two = a.create_port(net.id, security_groups=[web.id],
                        allowed_address_pairs=[{"ip_address": "10.0.0.128/25",
                                                "mac_address": "fa:16:3e:00:00:01"}])
    off = a.create_port(net.id, port_security_enabled=False)
    dhcp = a.create_port(net.id, device_owner="network:dhcp")
    info = _rpc(cloud).security_group_rules_for_devices([one.id, two.id, off.id, dhcp.id,
                                                         "gone"])
    assert set(info) == {one.id, two.id, off.id, dhcp.id}
    assert not info[off.id]["port_security_enabled"] and info[off.id]["rules"] == []
    assert not info[dhcp.id]["port_security_enabled"]
    mine = info[one.id]
    assert mine["port_security_enabled"]
    assert mine["fixed_ips"] == [one.fixed_ips[0].ip_address]
    ingress = {(r["protocol"], r["remote_ip_prefix"]) for r in mine["rules"]
               if r["direction"] == "ingress"}
    assert ingress == {(1, f"{one.fixed_ips[0].ip_address}/32"),
                       (1, f"{two.fixed_ips[0].ip_address}/32"), (1, "10.0.0.128/25")}
    assert info[two.id]["allowed_address_pairs"] == [
        {"ip_address": "10.0.0.128/25", "mac_address": "fa:16:3e:00:00:01"}]


def test_first_uses_racing_make_one_default_group(net_cloud) -> None:
    cloud = net_cloud()
    db = cloud.network.db
    found: list[str] = []
    errors: list[BaseException] = []

    def first_use() -> None:
        try:
            found.append(security_groups.ensure_default_group(db, "project-race"))
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=first_use) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == [] and len(found) == 4 and len(set(found)) == 1, (errors, found)
    racer = cloud.as_project(RequestContext(user_id="r", project_id="project-race",
                                            roles=["member"])).network
    assert [g.id for g in racer.list_security_groups()] == found[:1]
