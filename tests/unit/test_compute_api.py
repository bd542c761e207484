"""The compute slice end to end on the embedded default: lifecycle, failures, validation."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from stackcore import exception
from stackcore.compute import fake, models


def _count(cloud, model) -> int:
    with cloud.db.transaction() as session:
        return session.execute(sa.select(sa.func.count()).select_from(model)).scalar_one()


def _backend(cloud, host: str) -> set[str]:
    return set(fake.backend_for(cloud.conf.state_path, host).domains)


def test_embedded_default_in_one_line() -> None:
    import stackcore

    with stackcore.Cloud() as cloud:
        assert [h.host for h in cloud.compute.list_hosts()] == ["compute-1"]
        assert cloud.db.dialect == "sqlite"


def test_server_lifecycle(cloud) -> None:
    server = cloud.compute.create_server("web <1> & 'x'", "small", "img",
                                         metadata={"role": "web"})
    assert server.status == "ACTIVE" and server.task_state is None
    assert server.host in ("compute-1", "compute-2")
    assert server.power_state == 1 and server.fault is None
    assert server.id in _backend(cloud, server.host)
    assert cloud.compute.stop_server(server.id).status == "STOPPED"
    assert cloud.compute.start_server(server.id).status == "ACTIVE"
    assert cloud.compute.reboot_server(server.id, "SOFT").status == "ACTIVE"
    assert cloud.compute.reboot_server(server.id, "HARD").status == "ACTIVE"
    cloud.compute.delete_server(server.id)
    assert server.id not in _backend(cloud, server.host)
    with pytest.raises(exception.NotFound):
        cloud.compute.get_server(server.id)
    assert cloud.compute.get_server(server.id, include_deleted=True).status == "DELETED"


def test_delete_is_idempotent_and_unknown_is_not_found(cloud) -> None:
    server = cloud.compute.create_server("a", "small", "img")
    cloud.compute.delete_server(server.id)
    cloud.compute.delete_server(server.id)
    with pytest.raises(exception.NotFound):
        cloud.compute.delete_server(str(uuid.uuid4()))


def test_claims_follow_servers(cloud) -> None:
    servers = [cloud.compute.create_server(f"s{i}", "small", "img") for i in range(4)]
    hosts = {h.host: h for h in cloud.compute.list_hosts()}
    assert sum(h.allocated["instances"] for h in hosts.values()) == 4
    assert sum(h.allocated["memory_mb"] for h in hosts.values()) == 4 * 512
    # Spread: free RAM ordering places two on each host.
    assert {h.allocated["instances"] for h in hosts.values()} == {2}
    for server in servers:
        cloud.compute.delete_server(server.id)
    assert all(h.allocated == {"vcpus": 0, "memory_mb": 0, "disk_gb": 0, "instances": 0}
               for h in cloud.compute.list_hosts())


def test_no_valid_host_explains_each_rejection(cloud) -> None:
    cloud.compute.create_flavor("huge", 1, 10**7, 1)
    server = cloud.compute.create_server("big", "huge", "img")
    assert server.status == "ERROR" and server.task_state is None
    assert server.fault.exc_class == "NoValidHost"
    assert "RamFilter rejected 2 host(s): needs 10000000 MB" in server.fault.message
    assert _count(cloud, models.Allocation) == 0


def test_availability_zone_is_honoured(cloud) -> None:
    server = cloud.compute.create_server("z", "small", "img", availability_zone="elsewhere")
    assert server.status == "ERROR"
    assert "wants zone 'elsewhere'" in server.fault.message
    ok = cloud.compute.create_server("z2", "small", "img", availability_zone="nova")
    assert ok.status == "ACTIVE"


def test_disabled_host_is_not_used(cloud) -> None:
    cloud.compute.set_host_enabled("compute-1", False, "maintenance")
    for i in range(3):
        assert cloud.compute.create_server(f"d{i}", "small", "img").host == "compute-2"
    with pytest.raises(exception.NotFound):
        cloud.compute.set_host_enabled("compute-9", False)


def test_spawn_failure_leaves_error_fault_no_claim_nothing_half_made(make_cloud, image_file):
    cloud = make_cloud(fake_hosts=1, overrides={"fake_hypervisor": {"fail_on": ["spawn"]}})
    cloud.compute.create_flavor("small", 1, 512, 1)
    cloud.compute.register_image("img", image_file)
    server = cloud.compute.create_server("doomed", "small", "img")
    assert server.status == "ERROR" and server.task_state is None
    assert server.fault.exc_class == "DriverError" and server.fault.step == "spawn"
    assert "injected failure in fake spawn" in server.fault.message
    assert _backend(cloud, "compute-1") == set()  # the half-made domain was destroyed
    assert cloud.compute.list_hosts()[0].allocated["instances"] == 0
    cloud.compute.delete_server(server.id)  # delete from ERROR works
    assert cloud.compute.list_servers() == []


def test_destroy_failure_keeps_server_in_error_and_retry_works(make_cloud, image_file):
    cloud = make_cloud(fake_hosts=1)
    cloud.compute.create_flavor("small", 1, 512, 1)
    cloud.compute.register_image("img", image_file)
    server = cloud.compute.create_server("sticky", "small", "img")
    cloud.conf.set_override("fail_on", ["destroy"], group="fake_hypervisor")
    with pytest.raises(exception.DriverError):
        cloud.compute.delete_server(server.id)
    after = cloud.compute.get_server(server.id)
    assert after.status == "ERROR" and after.task_state is None  # never stuck DELETING
    assert after.fault.step == "destroy"
    cloud.conf.clear_override("fail_on", group="fake_hypervisor")
    cloud.compute.delete_server(server.id)
    assert _backend(cloud, "compute-1") == set()
    assert cloud.compute.list_hosts()[0].allocated["instances"] == 0


def test_power_action_failure_records_fault(make_cloud, image_file):
    cloud = make_cloud(fake_hosts=1)
    cloud.compute.create_flavor("small", 1, 512, 1)
    cloud.compute.register_image("img", image_file)
    server = cloud.compute.create_server("p", "small", "img")
    cloud.conf.set_override("fail_on", ["power_off"], group="fake_hypervisor")
    with pytest.raises(exception.DriverError):
        cloud.compute.stop_server(server.id)
    after = cloud.compute.get_server(server.id)
    assert after.status == "ERROR" and after.task_state is None and after.fault.step == "power_off"
    cloud.conf.clear_override("fail_on", group="fake_hypervisor")
    # A hard reboot is the way out of ERROR.
    assert cloud.compute.reboot_server(server.id, "HARD").status == "ACTIVE"


def test_invalid_state_transition_is_refused(make_cloud, image_file) -> None:
    cloud = make_cloud(fake_hosts=1)
    cloud.compute.create_flavor("small", 1, 512, 1)
    cloud.compute.register_image("img", image_file)
    server = cloud.compute.create_server("s", "small", "img")
    cloud.conf.set_override("fail_on", ["power_off"], group="fake_hypervisor")
    with pytest.raises(exception.DriverError):
        cloud.compute.stop_server(server.id)
    cloud.conf.clear_override("fail_on", group="fake_hypervisor")
    with pytest.raises(exception.InvalidState, match="cannot reboot .* while it is error"):
        cloud.compute.reboot_server(server.id, "SOFT")
    with pytest.raises(exception.InvalidState, match="cannot power_on"):
        cloud.compute.start_server(server.id)
    assert cloud.compute.get_server(server.id).status == "ERROR"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "a\x00b"}, "name"),
        ({"name": "x" * 256}, "name"),
        ({"name": 5}, "name"),
        ({"metadata": {"k": 1}}, "metadata['k']"),
        ({"metadata": "k=v"}, "metadata"),
    ],
)
def test_bad_server_arguments_name_the_field_and_persist_nothing(cloud, kwargs, field) -> None:
    args = {"name": "ok", "flavor": "small", "image": "img", **kwargs}
    with pytest.raises(exception.Invalid) as caught:
        cloud.compute.create_server(**args)
    assert caught.value.field == field
    assert _count(cloud, models.Instance) == 0


def test_unknown_flavor_or_image_persists_nothing(cloud) -> None:
    with pytest.raises(exception.NotFound, match="flavor 'nope'"):
        cloud.compute.create_server("a", "nope", "img")
    with pytest.raises(exception.NotFound, match="image 'nope'"):
        cloud.compute.create_server("a", "small", "nope")
    assert _count(cloud, models.Instance) == 0


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("f", 0, 512, 1), "vcpus"),
        (("f", 1, -1, 1), "ram_mb"),
        (("f", 1, 512, 10**9), "disk_gb"),
        (("f", True, 512, 1), "vcpus"),
        (("f", 1.5, 512, 1), "vcpus"),
    ],
)
def test_bad_flavor_sizes(cloud, args, field) -> None:
    with pytest.raises(exception.Invalid) as caught:
        cloud.compute.create_flavor(*args)
    assert caught.value.field == field
    assert [f.name for f in cloud.compute.list_flavors()] == ["small"]


def test_duplicate_flavor_name_conflicts(cloud) -> None:
    with pytest.raises(exception.Conflict, match="'small'"):
        cloud.compute.create_flavor("small", 2, 1024, 2)


def test_image_validation(cloud, tmp_path, image_file) -> None:
    with pytest.raises(exception.Invalid, match="path"):
        cloud.compute.register_image("x", str(tmp_path / "missing.raw"))
    with pytest.raises(exception.Invalid) as caught:
        cloud.compute.register_image("x", image_file, "qcow2")
    assert caught.value.field == "disk_format"
    with pytest.raises(exception.Invalid) as caught:
        cloud.compute.register_image("x", image_file, "raw", {"architecture": "z80"})
    assert caught.value.field == "properties['architecture']"
    with pytest.raises(exception.Invalid):
        cloud.compute.register_image("x", image_file, "floppy")
    assert [i.name for i in cloud.compute.list_images()] == ["img"]


def test_image_in_use_cannot_be_deleted(cloud) -> None:
    server = cloud.compute.create_server("s", "small", "img")
    with pytest.raises(exception.Conflict, match="used by 1 server"):
        cloud.compute.delete_image("img")
    cloud.compute.delete_server(server.id)
    cloud.compute.delete_image("img")


def test_list_servers_filters(cloud) -> None:
    a = cloud.compute.create_server("alpha-web", "small", "img", metadata={"tier": "web"})
    b = cloud.compute.create_server("beta-db", "small", "img", metadata={"tier": "db"})
    cloud.compute.stop_server(b.id)
    assert [s.id for s in cloud.compute.list_servers(name="web")] == [a.id]
    assert [s.id for s in cloud.compute.list_servers(status="STOPPED")] == [b.id]
    assert [s.id for s in cloud.compute.list_servers(metadata={"tier": "db"})] == [b.id]
    assert [s.id for s in cloud.compute.list_servers(host=a.host)] == [a.id]
    assert len(cloud.compute.list_servers(flavor="small", image="img")) == 2
    cloud.compute.delete_server(a.id)
    assert [s.id for s in cloud.compute.list_servers()] == [b.id]
    assert len(cloud.compute.list_servers(include_deleted=True)) == 2


def test_host_stats_are_reported_and_validated(cloud) -> None:
    hosts = cloud.compute.list_hosts()
    assert [h.host for h in hosts] == ["compute-1", "compute-2"]
    for host in hosts:
        assert host.up and host.reporting and host.report_error is None
        assert host.stats["hypervisor_type"] == "fake"
        assert host.stats["vcpus"] == 16


def test_bad_stats_report_marks_host_not_reporting(cloud, monkeypatch) -> None:
    real = fake.FakeHypervisorDriver.get_available_resource

    def broken(self):
        return {**real(self), "vcpus": -1}

    monkeypatch.setattr(fake.FakeHypervisorDriver, "get_available_resource", broken)
    cloud.tick()
    for host in cloud.compute.list_hosts():
        assert not host.reporting
        assert "field 'vcpus'" in host.report_error
    server = cloud.compute.create_server("s", "small", "img")
    assert server.status == "ERROR" and "not reporting" in server.fault.message
