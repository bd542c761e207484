"""The isolation matrix: project B cannot see, use, attach, update or delete project A's
resources (NotFound, as if they did not exist), shared and public resources behave as Nova,
Neutron and Cinder define, admin-only operations are Forbidden naming their rule, and admins
see everything."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

import pytest

from stackcore import exception
from stackcore.project import RequestContext
from stackcore.project import policy as project_policy
from stackcore.project.scope import ScopedAPI

A = RequestContext(user_id="alice", project_id="project-a", roles=["member"])
B = RequestContext(user_id="bob", project_id="project-b", roles=["member"])
ADMIN = RequestContext(user_id="root", project_id="ops", roles=["admin"])


@dataclasses.dataclass
class World:
    a: Any
    b: Any
    admin: Any
    ids: dict[str, str]


@pytest.fixture
def world(cloud, image_file) -> World:
    a, b = cloud.as_project(A), cloud.as_project(B)
    admin = cloud.as_project(ADMIN)
    ids: dict[str, str] = {}
    cloud.compute.register_image("pub-img", image_file, "raw", visibility="public")
    private = a.compute.register_image("a-image", image_file, "raw")
    ids["image"] = private.id
    net = a.network.create_network("a-net")
    ids["network"] = net.id
    ids["subnet"] = a.network.create_subnet(net.id, "10.1.0.0/24").id
    ids["port"] = a.network.create_port(net.id).id
    group = a.compute.create_server_group("a-group", "anti-affinity")
    ids["server_group"] = group.id
    ids["server"] = a.compute.create_server("a-server", "small", "pub-img").id
    volume = a.volume.create(1, name="a-volume")
    ids["volume"] = volume.id
    ids["snapshot"] = a.volume.create_snapshot(volume.id).id
    return World(a, b, admin, ids)


#: what project B tries on project A's resources; each must be NotFound
FOREIGN: list[tuple[str, Callable[[Any, dict[str, str]], Any]]] = [
    ("get_server", lambda x, i: x.compute.get_server(i["server"])),
    ("delete_server", lambda x, i: x.compute.delete_server(i["server"])),
    ("reboot_server", lambda x, i: x.compute.reboot_server(i["server"])),
    ("stop_server", lambda x, i: x.compute.stop_server(i["server"])),
    ("start_server", lambda x, i: x.compute.start_server(i["server"])),
    ("list_server_volumes", lambda x, i: x.compute.list_server_volumes(i["server"])),
    ("detach_volume", lambda x, i: x.compute.detach_volume(i["server"], i["volume"])),
    ("wait_for_server", lambda x, i: x.compute.wait_for_server(i["server"], timeout=1)),
    ("get_image", lambda x, i: x.compute.get_image(i["image"])),
    ("delete_image", lambda x, i: x.compute.delete_image(i["image"])),
    ("boot_from_other_image", lambda x, i: x.compute.create_server("s", "small", i["image"])),
    ("get_server_group", lambda x, i: x.compute.get_server_group(i["server_group"])),
    ("boot_into_other_group", lambda x, i: x.compute.create_server(
        "s", "small", "pub-img", server_group=i["server_group"])),
    ("boot_on_other_network", lambda x, i: x.compute.create_server(
        "s", "small", "pub-img", networks=[{"network_id": i["network"]}])),
    ("boot_with_other_port", lambda x, i: x.compute.create_server(
        "s", "small", "pub-img", networks=[{"port_id": i["port"]}])),
    ("boot_with_other_volume", lambda x, i: x.compute.create_server(
        "s", "small", "pub-img", volumes=[i["volume"]])),
    ("get_network", lambda x, i: x.network.get_network(i["network"])),
    ("update_network", lambda x, i: x.network.update_network(i["network"], name="mine")),
    ("create_subnet_on_other_network", lambda x, i: x.network.create_subnet(
        i["network"], "10.9.0.0/24")),
    ("create_port_on_other_network", lambda x, i: x.network.create_port(i["network"])),
    ("get_subnet", lambda x, i: x.network.get_subnet(i["subnet"])),
    ("update_subnet", lambda x, i: x.network.update_subnet(i["subnet"], name="mine")),
    ("get_port", lambda x, i: x.network.get_port(i["port"])),
    ("update_port", lambda x, i: x.network.update_port(i["port"], name="mine")),
    ("get_volume", lambda x, i: x.volume.get(i["volume"])),
    ("extend_volume", lambda x, i: x.volume.extend(i["volume"], 2)),
    ("set_volume_metadata", lambda x, i: x.volume.set_metadata(i["volume"], {"k": "v"})),
    ("delete_volume", lambda x, i: x.volume.delete(i["volume"])),
    ("snapshot_other_volume", lambda x, i: x.volume.create_snapshot(i["volume"])),
    ("clone_other_volume", lambda x, i: x.volume.create(1, source_volume_id=i["volume"])),
    ("volume_from_other_snapshot", lambda x, i: x.volume.create(1, snapshot_id=i["snapshot"])),
    ("volume_from_other_image", lambda x, i: x.volume.create(1, image_id=i["image"])),
    ("upload_other_volume", lambda x, i: x.volume.upload_to_image(i["volume"], "mine")),
    ("volume_faults", lambda x, i: x.volume.faults(i["volume"])),
    ("get_snapshot", lambda x, i: x.volume.get_snapshot(i["snapshot"])),
    ("delete_snapshot", lambda x, i: x.volume.delete_snapshot(i["snapshot"])),
]


@pytest.mark.parametrize(("case", "call"), FOREIGN, ids=[c for c, _ in FOREIGN])
def test_another_projects_resource_is_not_found(world: World, case: str, call) -> None:
    with pytest.raises(exception.NotFound):
        call(world.b, world.ids)
    # and it is untouched: its owner still finds it as it was
    assert world.a.compute.get_server(world.ids["server"]).status == "ACTIVE"
    assert world.a.volume.get(world.ids["volume"]).size == 1
    assert world.a.network.get_network(world.ids["network"]).name == "a-net"
    assert world.a.network.get_port(world.ids["port"]).name == ""


def test_deletes_of_foreign_resources_are_not_found_or_no_ops(world: World) -> None:
    """Idempotent deletes (network, subnet, port, server group) answer as for a missing one
    - and do not delete."""
    world.b.network.delete_port(world.ids["port"])
    world.b.network.delete_subnet(world.ids["subnet"])
    world.b.network.delete_network(world.ids["network"])
    world.b.compute.delete_server_group(world.ids["server_group"])
    assert world.a.network.get_port(world.ids["port"]).id == world.ids["port"]
    assert world.a.network.get_subnet(world.ids["subnet"]).id == world.ids["subnet"]
    assert world.a.compute.get_server_group(world.ids["server_group"]).id == \
        world.ids["server_group"]


def test_lists_show_only_ones_own(world: World) -> None:
    b = world.b
    assert b.compute.list_servers() == [] and b.volume.list_volumes() == []
    assert b.volume.list_snapshots() == [] and b.network.list_ports() == []
    assert b.network.list_networks() == [] and b.network.list_subnets() == []
    assert [i.name for i in b.compute.list_images()] == ["pub-img"]  # public ones only
    assert {s.id for s in world.a.compute.list_servers()} == {world.ids["server"]}
    with pytest.raises(exception.Forbidden, match="compute:server:list:all_projects"):
        b.compute.list_servers(all_projects=True)


def test_admin_sees_and_lists_all_projects(world: World) -> None:
    admin = world.admin
    assert admin.compute.get_server(world.ids["server"]).id == world.ids["server"]
    assert admin.compute.list_servers() == []  # its own project's by default
    assert {s.id for s in admin.compute.list_servers(all_projects=True)} >= {world.ids["server"]}
    assert {v.id for v in admin.volume.list_volumes(all_projects=True)} >= {world.ids["volume"]}
    assert admin.network.get_port(world.ids["port"]).project_id == "project-a"


def test_server_host_and_provider_attributes_are_admins(world: World) -> None:
    server = world.a.compute.get_server(world.ids["server"])
    assert server.host is None, "a member sees the host name"
    assert world.admin.compute.get_server(world.ids["server"]).host is not None
    assert world.a.network.get_network(world.ids["network"]).segments == ()
    assert world.admin.network.get_network(world.ids["network"]).segments != ()
    with pytest.raises(exception.Forbidden, match="network:create:provider"):
        world.a.network.create_network("p", network_type="flat", physical_network="physnet1")
    with pytest.raises(exception.Forbidden, match="compute:server:show:host"):
        world.a.compute.list_servers(host="compute-1")


@pytest.mark.parametrize(("call", "rule"), [
    (lambda x: x.compute.list_hosts(), "compute:host:list"),
    (lambda x: x.compute.set_host_enabled("compute-1", False), "compute:host:set_enabled"),
    (lambda x: x.compute.create_flavor("f", 1, 1, 1), "compute:flavor:create"),
    (lambda x: x.compute.create_aggregate("agg"), "compute:aggregate:manage"),
    (lambda x: x.compute.explain_placement("small", "pub-img"), "compute:explain_placement"),
    (lambda x: x.volume.create_type("t"), "volume:type:create"),
    (lambda x: x.volume.list_pools(), "volume:pool:list"),
    (lambda x: x.network.list_agents(), "network:agent:list"),
    (lambda x: x.network.type_usage(), "network:type_usage"),
    (lambda x: x.network.create_network("s", shared=True), "network:create:shared"),
    (lambda x: x.project.set_quota("project-b", "instances", 1), "project:quota:set"),
    (lambda x: x.project.get_quotas("project-a"), "project:quota:get"),
])
def test_admin_only_operations_are_forbidden_naming_the_rule(world: World, call, rule) -> None:
    with pytest.raises(exception.Forbidden) as caught:
        call(world.b)
    assert caught.value.kwargs["rule"] == rule, caught.value.kwargs


def test_shared_network_public_image_and_private_flavor(cloud, world: World, image_file) -> None:
    admin, a, b = world.admin, world.a, world.b
    shared = admin.network.create_network("shared", shared=True)
    admin.network.create_subnet(shared.id, "10.50.0.0/24")
    assert shared.id in {n.id for n in b.network.list_networks()}
    port = b.network.create_port(shared.id)
    assert port.project_id == "project-b" and port.fixed_ips
    with pytest.raises(exception.Forbidden):
        b.network.update_network(shared.id, name="taken")
    public = admin.compute.register_image("pub", image_file, "raw", visibility="public")
    assert b.compute.get_image(public.id).id == public.id
    with pytest.raises(exception.Forbidden, match="compute:image:publicize"):
        b.compute.register_image("mine", image_file, "raw", visibility="public")
    cloud.compute.create_flavor("secret", 1, 64, 1, is_public=False)
    with pytest.raises(exception.NotFound):
        b.compute.get_flavor("secret")
    cloud.compute.add_flavor_access("secret", "project-b")
    assert b.compute.get_flavor("secret").name == "secret"
    with pytest.raises(exception.NotFound):
        a.compute.get_flavor("secret")
    cloud.volume.create_type("gold", is_public=False)
    with pytest.raises(exception.NotFound):
        b.volume.create(1, volume_type="gold")
    cloud.volume.add_type_access("gold", "project-b")
    assert b.volume.create(1, volume_type="gold").volume_type == "gold"


def test_created_resources_are_owned_by_the_callers_project(world: World) -> None:
    a = world.a
    server = a.compute.get_server(world.ids["server"])
    assert (server.project_id, server.user_id) == ("project-a", "alice")
    assert a.network.get_port(world.ids["port"]).project_id == "project-a"
    assert a.volume.get(world.ids["volume"]).id == world.ids["volume"]
    usage = a.project.get_quotas()
    assert (usage["instances"].in_use, usage["volumes"].in_use, usage["ports"].in_use,
            usage["snapshots"].in_use) == (1, 1, 1, 1), usage


def test_every_public_method_names_a_registered_rule(cloud) -> None:
    registered = {r.name for r in project_policy.list_rules()}
    missing, unknown = [], []
    for family in ("compute", "volume", "network", "project"):
        api = getattr(cloud, family)
        for name in dir(type(api)):
            method = getattr(type(api), name)
            if name.startswith("_") or not inspect.isfunction(method) or \
                    name in ScopedAPI.FRAMEWORK:
                continue
            rule = getattr(method, project_policy.ATTRIBUTE, None)
            if rule is None:
                missing.append(f"cloud.{family}.{name}")
            elif rule not in registered:
                unknown.append(f"cloud.{family}.{name}: {rule}")
    assert (missing, unknown) == ([], []), f"without a rule: {missing}; unregistered: {unknown}"


def test_policy_file_overrides_a_default(tmp_path, image_file) -> None:
    import stackcore

    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text('"compute:image:register": "role:admin"\n')
    with stackcore.Cloud(fake_hosts=0, overrides={"oslo_policy": {
            "policy_file": str(policy_file)}}) as cloud:
        with pytest.raises(exception.Forbidden, match="compute:image:register"):
            cloud.as_project(A).compute.register_image("i", image_file, "raw")
        assert cloud.compute.register_image("i", image_file, "raw").name == "i"


#: the family API methods that only read: what a read-only context may call (the spec of
#: policy.READ_PREFIXES; a new method lands on the write side unless it is listed here)
READS = {
    "compute": {"explain_placement", "get_aggregate", "get_console_output", "get_flavor",
                "get_image", "get_keypair", "get_server",
                "get_server_group", "list_aggregates", "list_faults", "list_flavors",
                "list_keypairs",
                "list_hosts", "list_images", "list_server_migrations", "list_server_volumes",
                "list_servers", "wait_for_server"},
    "volume": {"explain_placement", "faults", "get", "get_backup", "get_snapshot", "get_type",
               "list_backups", "list_manageable", "list_pools", "list_snapshots", "list_types",
               "list_volumes", "type_usage", "wait", "wait_backup", "wait_snapshot"},
    "network": {"get_floatingip", "get_network", "get_port", "get_router",
                "get_security_group", "get_security_group_rule", "get_subnet", "list_agents",
                "list_faults", "list_floatingips", "list_networks", "list_ports",
                "list_routers", "list_security_group_rules", "list_security_groups",
                "list_segments", "list_subnets", "network_info_for_instance", "type_usage"},
    "project": {"get_quotas", "list_quota_resources"},
}


def test_read_only_methods_are_exactly_the_reads(cloud) -> None:
    wrong = []
    for family, expected in READS.items():
        api = type(getattr(cloud, family))
        for name in dir(api):
            method = getattr(api, name)
            if not hasattr(method, project_policy.READS):
                continue
            if getattr(method, project_policy.READS) != (name in expected):
                wrong.append(f"cloud.{family}.{name}: reads="
                             f"{getattr(method, project_policy.READS)}")
    assert wrong == [], f"misclassified methods: {wrong}"


def test_a_read_only_context_reads_and_writes_nothing(cloud, world: World) -> None:
    viewer = cloud.as_project(RequestContext(user_id="alice", project_id="project-a",
                                             roles=["member"], read_only=True))
    assert [s.id for s in viewer.compute.list_servers()] == [world.ids["server"]]
    assert viewer.volume.get(world.ids["volume"]).id == world.ids["volume"]
    attempts = {
        "compute:server:delete": lambda: viewer.compute.delete_server(world.ids["server"]),
        "compute:server:create": lambda: viewer.compute.create_server("s", "small", "pub-img"),
        "volume:create": lambda: viewer.volume.create(1),
        "network:update": lambda: viewer.network.update_network(
            world.ids["network"], name="renamed"),
    }
    for rule, attempt in attempts.items():
        with pytest.raises(exception.Forbidden, match="read-only") as caught:
            attempt()
        assert caught.value.kwargs["rule"] == rule, caught.value.kwargs
    assert world.a.compute.get_server(world.ids["server"]).status == "ACTIVE"
    assert world.a.network.get_network(world.ids["network"]).name == "a-net"
    assert world.a.project.get_quotas()["volumes"].in_use == 1


def test_a_changed_policy_file_takes_effect(tmp_path, image_file) -> None:
    """Decisions are cached and the file looked at every Policy.RELOAD_INTERVAL seconds
    (stackcore.project.policy.Policy); a policy file edited while the cloud runs must still
    take effect, both ways, within that interval."""
    import os

    import stackcore
    from tests.conftest import wait_until

    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text('"compute:image:list": "@"\n')
    with stackcore.Cloud(fake_hosts=0, overrides={"oslo_policy": {
            "policy_file": str(policy_file)}}) as cloud:
        member = cloud.as_project(A)
        assert member.compute.list_images() == []

        def refused() -> bool:
            try:
                member.compute.list_images()
            except exception.Forbidden as error:
                return "compute:image:list" in str(error)
            return False

        policy_file.write_text('"compute:image:list": "role:admin"\n')
        stat = policy_file.stat()
        os.utime(policy_file, (stat.st_atime, stat.st_mtime + 10))  # a visibly newer file
        wait_until(refused, 30, "the edited policy file to refuse a member")
        policy_file.write_text('"compute:image:list": "@"\n')
        os.utime(policy_file, (stat.st_atime, stat.st_mtime + 20))
        wait_until(lambda: not refused(), 30, "the restored policy file to allow a member")
