"""Compute <-> network and compute <-> volume wiring through the core API, on the fake
hypervisor, the fake mechanism driver and the fake volume driver (SQLite and PostgreSQL).

What is checked is what each fake backend holds (the fake hypervisor's domain, the ML2 ports
and their bindings, the fake volume driver's exports), not only the server's status."""

from __future__ import annotations

import concurrent.futures
import datetime
import time
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

import stackcore
from stackcore import exception
from stackcore.compute import fake as fake_hypervisor
from stackcore.compute import models
from stackcore.compute.manager import BINARY as COMPUTE_BINARY
from stackcore.compute.models import BlockDeviceMapping, NetworkRequest
from stackcore.db import models as db_models
from stackcore.network import exceptions as net_exc
from stackcore.volume.manager import BINARY as VOLUME_BINARY
from tests.conftest import wait_until


class Killed(BaseException):
    """Stands for the process dying mid-step: no ``except Exception`` cleanup runs."""


def _cloud(make_cloud: Callable[..., stackcore.Cloud], image_file: str, hosts: int = 2,
           **groups: dict[str, Any]) -> stackcore.Cloud:
    cloud = make_cloud(fake_hosts=hosts, overrides=dict(groups))
    cloud.compute.create_flavor("small", 1, 512, 1)
    cloud.compute.register_image("img", image_file, "raw", {"architecture": "x86_64"})
    return cloud


def _net(cloud: stackcore.Cloud, cidr: str = "10.0.0.0/24") -> Any:
    network = cloud.network.create_network("net", network_type="vxlan")
    cloud.network.create_subnet(network.id, cidr)
    return network


def _domain(cloud: stackcore.Cloud, host: str, server_id: str) -> Any:
    return fake_hypervisor.backend_for(cloud.conf.state_path, host).domains.get(server_id)


def _compute(cloud: stackcore.Cloud, host: str) -> Any:
    return next(s.manager for s in cloud.services
                if s.binary == COMPUTE_BINARY and s.host == host)


def _exports(cloud: stackcore.Cloud) -> dict[str, list[Any]]:
    manager = next(s.manager for s in cloud.services if s.binary == VOLUME_BINARY)
    exports: dict[str, list[Any]] = manager.driver._exports()  # the fake's own state
    return {k: v for k, v in exports.items() if v}


def _rows(cloud: stackcore.Cloud, model: Any, server_id: str) -> list[Any]:
    with cloud.db.transaction() as session:
        return list(session.execute(sa.select(model).where(
            model.instance_uuid == server_id)).scalars())


def test_ports_bound_and_volumes_attached_at_boot_then_released_on_delete(
        make_cloud: Callable[..., stackcore.Cloud], image_file: str) -> None:
    cloud = _cloud(make_cloud, image_file)
    network = _net(cloud)
    given = cloud.network.create_port(network.id, name="given")
    vol_a, vol_b = cloud.volume.create(1), cloud.volume.create(1)

    server = cloud.compute.create_server(
        "wired", "small", "img",
        networks=[{"network_id": network.id}, {"port_id": given.id}],
        volumes=[vol_a.id, {"volume_id": vol_b.id, "mountpoint": "/dev/sdb"}])

    assert server.status == "ACTIVE", server.fault
    ports = cloud.network.list_ports(device_id=server.id)
    assert given.id in {p.id for p in ports} and len(ports) == 2
    assert {(p.host, p.vif_type, p.device_owner) for p in ports} == \
        {(server.host, "fake", "compute:stackcore")}
    domain = _domain(cloud, server.host, server.id)
    assert sorted(v["id"] for v in domain.vifs) == sorted(p.id for p in ports)
    assert {v["mac_address"] for v in domain.vifs} == {p.mac_address for p in ports}
    assert sorted(domain.volumes) == ["/dev/sdb", "/dev/vdb"]
    assert domain.volumes["/dev/vdb"]["data"]["volume_id"] == vol_a.id
    assert domain.volumes["/dev/sdb"]["data"]["volume_id"] == vol_b.id
    for vol, device in ((vol_a, "/dev/vdb"), (vol_b, "/dev/sdb")):
        got = cloud.volume.get(vol.id)
        assert got.status == "in-use"
        assert [(a.instance_uuid, a.mountpoint, a.host) for a in got.attachments] == \
            [(server.id, device, server.host)]
    assert set(_exports(cloud)) == {vol_a.id, vol_b.id}
    assert [(m.device, m.status, m.boot) for m in cloud.compute.list_server_volumes(server.id)] \
        == [("/dev/vdb", "attached", True), ("/dev/sdb", "attached", True)]

    cloud.compute.delete_server(server.id)

    assert _domain(cloud, server.host, server.id) is None
    assert cloud.network.list_ports(device_id=server.id) == []
    assert [p.id for p in cloud.network.list_ports(network_id=network.id)] == [given.id]
    freed = cloud.network.get_port(given.id)
    assert (freed.device_id, freed.host, freed.vif_type) == ("", "", "unbound")
    for vol in (vol_a, vol_b):
        assert (cloud.volume.get(vol.id).status, cloud.volume.get(vol.id).attachments) == \
            ("available", ())
    assert _exports(cloud) == {}
    assert _rows(cloud, BlockDeviceMapping, server.id) == []
    assert _rows(cloud, NetworkRequest, server.id) == []
    cloud.compute.delete_server(server.id)  # idempotent


def test_binding_failure_fails_the_build_with_the_drivers_reasons(
        make_cloud: Callable[..., stackcore.Cloud], image_file: str) -> None:
    cloud = _cloud(make_cloud, image_file, mech_fake={"network_types": ["vlan"]})
    network = _net(cloud)  # vxlan: the fake mechanism driver binds only vlan here
    given = cloud.network.create_port(network.id)
    volume = cloud.volume.create(1)

    server = cloud.compute.create_server("unbindable", "small", "img",
                                         networks=[{"port_id": given.id}], volumes=[volume.id])

    assert server.status == "ERROR" and server.task_state is None
    assert (server.fault.exc_class, server.fault.step) == ("PortBindingFailed",
                                                           "allocate_network")
    assert "could not be bound" in server.fault.message
    assert "fake" in server.fault.message and "vxlan" in server.fault.message
    assert all(_domain(cloud, h, server.id) is None for h in ("compute-1", "compute-2"))
    freed = cloud.network.get_port(given.id)
    assert (freed.device_id, freed.host) == ("", "")
    assert cloud.volume.get(volume.id).status == "available" and _exports(cloud) == {}
    assert [m.status for m in cloud.compute.list_server_volumes(server.id)] == ["reserved"]
    with cloud.db.transaction() as session:
        assert session.execute(sa.select(sa.func.count()).select_from(models.Allocation)
                               ).scalar_one() == 0
    cloud.compute.delete_server(server.id)
    assert _rows(cloud, BlockDeviceMapping, server.id) == []


def test_port_binding_failed_from_the_network_api_names_each_reason(
        make_cloud: Callable[..., stackcore.Cloud], image_file: str) -> None:
    cloud = _cloud(make_cloud, image_file, mech_fake={"network_types": ["vlan"]})
    network = _net(cloud)
    with pytest.raises(net_exc.PortBindingFailed) as caught:
        cloud.network.allocate_ports_for_instance(
            "5b0c3c5e-4a5e-4a38-9a56-0c3f4a1e9d10", "compute-1", [{"network_id": network.id}])
    assert caught.value.reasons and cloud.network.list_ports(network_id=network.id) == []


def test_retry_on_an_alternate_host_binds_and_exports_there(
        make_cloud: Callable[..., stackcore.Cloud], image_file: str) -> None:
    cloud = _cloud(make_cloud, image_file, fake_hypervisor={"fail_on": ["spawn:compute-1"]})
    network = _net(cloud)
    given = cloud.network.create_port(network.id)
    volume = cloud.volume.create(1)

    server = cloud.compute.create_server("retried", "small", "img",
                                         networks=[{"port_id": given.id},
                                                   {"network_id": network.id}],
                                         volumes=[volume.id])

    assert server.status == "ACTIVE" and server.host == "compute-2", server.fault
    ports = cloud.network.list_ports(device_id=server.id)
    assert {p.host for p in ports} == {"compute-2"} and len(ports) == 2
    assert len(cloud.network.list_ports(network_id=network.id)) == 2  # none left from host 1
    assert _domain(cloud, "compute-1", server.id) is None
    got = cloud.volume.get(volume.id)
    assert [a.host for a in got.attachments] == ["compute-2"]
    assert _exports(cloud) == {volume.id: ["compute-2"]}


def test_spawn_failure_ends_exports_and_releases_ports(
        make_cloud: Callable[..., stackcore.Cloud], image_file: str) -> None:
    cloud = _cloud(make_cloud, image_file, hosts=1, fake_hypervisor={"fail_on": ["spawn"]})
    network = _net(cloud)
    volume = cloud.volume.create(1)
    server = cloud.compute.create_server("doomed", "small", "img",
                                         networks=[{"network_id": network.id}],
                                         volumes=[volume.id])
    assert server.status == "ERROR" and server.fault.step == "spawn"
    assert _domain(cloud, "compute-1", server.id) is None  # the half-made domain destroyed
    assert cloud.network.list_ports(network_id=network.id) == []
    assert cloud.volume.get(volume.id).status == "available" and _exports(cloud) == {}
    cloud.compute.delete_server(server.id)
    cloud.volume.delete(volume.id)


def test_live_attach_picks_free_devices_and_detach_ends_the_export(
        make_cloud: Callable[..., stackcore.Cloud], image_file: str) -> None:
    cloud = _cloud(make_cloud, image_file, hosts=1)
    boot = cloud.volume.create(1)
    server = cloud.compute.create_server("live", "small", "img", volumes=[boot.id])
    extra = [cloud.volume.create(1) for _ in range(4)]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        devices = list(pool.map(lambda v: cloud.compute.attach_volume(server.id, v.id).device,
                                extra))
    assert sorted(devices) == ["/dev/vdc", "/dev/vdd", "/dev/vde", "/dev/vdf"]
    domain = _domain(cloud, "compute-1", server.id)
    assert sorted(domain.volumes) == ["/dev/vdb", "/dev/vdc", "/dev/vdd", "/dev/vde",
                                      "/dev/vdf"]
    with pytest.raises(exception.Conflict):
        cloud.compute.attach_volume(server.id, cloud.volume.create(1).id, "/dev/vdc")
    with pytest.raises(exception.InvalidState):  # in-use, not multiattach
        cloud.compute.attach_volume(server.id, extra[0].id, "/dev/sdz")

    cloud.compute.detach_volume(server.id, extra[1].id)

    assert devices[1] not in domain.volumes
    assert cloud.volume.get(extra[1].id).status == "available"
    assert extra[1].id not in _exports(cloud)
    with pytest.raises(exception.NotFound):
        cloud.compute.detach_volume(server.id, extra[1].id)
    cloud.compute.delete_server(server.id)
    assert _exports(cloud) == {}
    assert all(cloud.volume.get(v.id).status == "available" for v in [boot, *extra])


def test_attach_failing_in_the_driver_detaches_again_with_a_fault(
        make_cloud: Callable[..., stackcore.Cloud], image_file: str) -> None:
    cloud = _cloud(make_cloud, image_file, hosts=1)
    server = cloud.compute.create_server("s", "small", "img")
    volume = cloud.volume.create(1)
    cloud.conf.set_override("fail_on", ["attach_volume"], group="fake_hypervisor")
    try:
        with pytest.raises(exception.DriverError, match="injected failure"):
            cloud.compute.attach_volume(server.id, volume.id)
    finally:
        cloud.conf.clear_override("fail_on", group="fake_hypervisor")
    after = cloud.compute.get_server(server.id)
    assert after.status == "ACTIVE"
    assert (after.fault.step, after.fault.exc_class) == ("attach_volume", "DriverError")
    got = cloud.volume.get(volume.id)
    assert (got.status, got.attachments) == ("available", ())
    assert _exports(cloud) == {}
    assert cloud.compute.list_server_volumes(server.id) == []
    assert cloud.compute.attach_volume(server.id, volume.id).device == "/dev/vdb"  # retry works


def test_bad_requests_are_refused_before_anything_is_written(
        make_cloud: Callable[..., stackcore.Cloud], image_file: str) -> None:
    cloud = _cloud(make_cloud, image_file, hosts=1)
    network = _net(cloud)
    busy = cloud.network.create_port(network.id, device_id="someone-else")
    volume = cloud.volume.create(1)
    in_use = cloud.volume.create(1)
    holder = cloud.compute.create_server("holder", "small", "img", volumes=[in_use.id])
    missing = "00000000-0000-4000-8000-000000000000"
    cases: list[tuple[dict[str, Any], type[Exception], str]] = [
        ({"networks": [{"network_id": network.id, "port_id": busy.id}]}, exception.Invalid,
         "networks[0]"),
        ({"networks": {"network_id": network.id}}, exception.Invalid, "networks"),
        ({"networks": [{"network_id": missing}]}, exception.NotFound, missing),
        ({"networks": [{"port_id": busy.id}]}, exception.Conflict, "in use"),
        ({"volumes": [volume.id, volume.id]}, exception.Invalid, "volumes[1]"),
        ({"volumes": [{"volume_id": volume.id, "mountpoint": "/dev/vda"}]}, exception.Invalid,
         "volumes[0].mountpoint"),
        ({"volumes": [in_use.id]}, exception.InvalidState, "in-use"),
        ({"volumes": [missing]}, exception.NotFound, missing),
    ]
    for kwargs, error, text in cases:
        with pytest.raises(error, match=text.replace("[", r"\[").replace("]", r"\]")):
            cloud.compute.create_server("bad", "small", "img", **kwargs)
    assert [s.id for s in cloud.compute.list_servers()] == [holder.id]
    assert [p.id for p in cloud.network.list_ports()] == [busy.id]
    assert cloud.volume.get(volume.id).status == "available"
    with cloud.db.transaction() as session:
        assert session.execute(sa.select(sa.func.count()).select_from(BlockDeviceMapping)
                               ).scalar_one() == 1  # the holder's


def test_restart_in_the_middle_of_a_build_releases_ports_and_exports(
        make_cloud: Callable[..., stackcore.Cloud], image_file: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    cloud = _cloud(make_cloud, image_file, hosts=1)
    network = _net(cloud)
    volume = cloud.volume.create(1)
    manager = _compute(cloud, "compute-1")

    def die(*args: Any) -> None:
        raise Killed

    monkeypatch.setattr(manager.driver, "spawn", die)
    server = cloud.compute.create_server("interrupted", "small", "img", wait=False,
                                         networks=[{"network_id": network.id}],
                                         volumes=[volume.id])

    def half_done() -> bool:
        rows = _rows(cloud, BlockDeviceMapping, server.id)
        return bool(rows and rows[0].attachment_id
                    and cloud.network.list_ports(device_id=server.id))

    deadline = time.monotonic() + 60
    while not half_done():
        assert time.monotonic() < deadline, "the build never got half done"
        time.sleep(0.01)
    assert cloud.compute.get_server(server.id).status == "BUILDING"
    monkeypatch.undo()

    manager.init_host()  # what the restarted service does first

    after = cloud.compute.get_server(server.id)
    assert (after.status, after.task_state, after.fault.step) == ("ERROR", None, "build")
    assert cloud.network.list_ports(network_id=network.id) == []
    assert cloud.volume.get(volume.id).status == "available" and _exports(cloud) == {}
    assert [m.status for m in cloud.compute.list_server_volumes(server.id)] == ["reserved"]


def test_restart_in_the_middle_of_an_attach_undoes_it(
        make_cloud: Callable[..., stackcore.Cloud], image_file: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    cloud = _cloud(make_cloud, image_file, hosts=1)
    server = cloud.compute.create_server("s", "small", "img")
    volume = cloud.volume.create(1)
    manager = _compute(cloud, "compute-1")

    def die(*args: Any) -> None:
        raise Killed

    monkeypatch.setattr(manager.driver, "attach_volume", die)
    with pytest.raises(Killed):
        cloud.compute.attach_volume(server.id, volume.id)
    [mapping] = cloud.compute.list_server_volumes(server.id)
    assert mapping.status == "attaching" and cloud.volume.get(volume.id).status == "in-use"
    monkeypatch.undo()

    manager.init_host()

    assert cloud.compute.list_server_volumes(server.id) == []
    assert cloud.volume.get(volume.id).status == "available" and _exports(cloud) == {}
    after = cloud.compute.get_server(server.id)
    assert after.status == "ACTIVE" and after.fault.step == "attach_volume"
    assert "interrupted" in after.fault.message


def test_delete_while_the_host_is_down_cleans_ports_and_exports(
        make_cloud: Callable[..., stackcore.Cloud], image_file: str) -> None:
    # one heartbeat at start, the next in an hour: nothing revives the host this test kills
    cloud = _cloud(make_cloud, image_file, hosts=1,
                   DEFAULT={"report_interval": 3600, "service_down_time": 3 * 3600})
    network = _net(cloud)
    volume = cloud.volume.create(1)
    server = cloud.compute.create_server("orphan", "small", "img",
                                         networks=[{"network_id": network.id}],
                                         volumes=[volume.id])
    assert server.status == "ACTIVE"
    with cloud.db.transaction() as session:
        session.execute(sa.update(db_models.Service).where(db_models.Service.binary == COMPUTE_BINARY)
                        .values(last_seen_at=db_models.utcnow() - datetime.timedelta(days=1)))

    cloud.compute.delete_server(server.id)

    assert cloud.compute.get_server(server.id, include_deleted=True).status == "DELETED"
    assert cloud.network.list_ports(network_id=network.id) == []
    assert cloud.volume.get(volume.id).status == "available" and _exports(cloud) == {}
    assert _rows(cloud, BlockDeviceMapping, server.id) == []


def test_volume_side_detach_of_a_server_attachment_is_refused(
        make_cloud: Callable[..., stackcore.Cloud], image_file: str) -> None:
    """``cloud.volume.detach`` (or a force detach) of an attachment a server holds would end
    the export while the hypervisor and the server's mapping still use the volume - and make
    it deletable. It is refused, naming the way that works (the server's detach); nothing
    changes."""
    cloud = _cloud(make_cloud, image_file, hosts=1)
    server = cloud.compute.create_server("s", "small", "img")
    volume = cloud.volume.create(1)
    attached = cloud.compute.attach_volume(server.id, volume.id)
    assert attached.attachment_id is not None
    with pytest.raises(exception.Conflict, match=f"detach_volume.*{server.id}") as err:
        cloud.volume.detach(volume.id, attached.attachment_id)
    assert err.value.kwargs["server_id"] == server.id
    with pytest.raises(exception.Conflict, match=server.id):
        cloud.volume.detach(volume.id, force=True)
    got = cloud.volume.get(volume.id)
    assert got.status == "in-use", got
    assert [(a.id, a.attach_status) for a in got.attachments] == [
        (attached.attachment_id, "attached")]
    assert volume.id in _exports(cloud)
    assert attached.device in _domain(cloud, "compute-1", server.id).volumes
    with pytest.raises(exception.InvalidState):
        cloud.volume.delete(volume.id)
    # through the server: hypervisor, mapping and export all end, the volume is deletable
    cloud.compute.detach_volume(server.id, volume.id)
    assert cloud.volume.get(volume.id).status == "available"
    assert cloud.compute.list_server_volumes(server.id) == []
    cloud.volume.delete(volume.id)


def test_security_groups_on_create_server_apply_to_the_ports_it_creates(
        make_cloud: Callable[..., stackcore.Cloud], image_file: str) -> None:
    cloud = _cloud(make_cloud, image_file, hosts=1)
    network = _net(cloud)
    web = cloud.network.create_security_group("web")
    ssh = cloud.network.create_security_group("ssh")
    default = cloud.network.list_security_groups(name="default")[0]

    server = cloud.compute.create_server(
        "grouped", "small", "img", networks=[{"network_id": network.id}] * 2,
        security_groups=["web", ssh.id])
    assert server.status == "ACTIVE", server.fault
    ports = cloud.network.list_ports(device_id=server.id)
    assert [sorted(p.security_groups) for p in ports] == [sorted([web.id, ssh.id])] * 2, ports

    plain = cloud.compute.create_server("plain", "small", "img",
                                        networks=[{"network_id": network.id}])
    assert [p.security_groups for p in cloud.network.list_ports(device_id=plain.id)] == \
        [(default.id,)]
    named_default = cloud.compute.create_server(
        "default", "small", "img", networks=[{"network_id": network.id}],
        security_groups=["default", "web"])
    assert [sorted(p.security_groups) for p in
            cloud.network.list_ports(device_id=named_default.id)] == \
        [sorted([default.id, web.id])]


@pytest.mark.parametrize("case", ["unknown", "ambiguous", "twice", "port_id", "no_networks",
                                  "other_project"])
def test_bad_security_groups_on_create_server_fail_the_call_and_make_nothing(
        make_cloud: Callable[..., stackcore.Cloud], image_file: str, case: str) -> None:
    cloud = _cloud(make_cloud, image_file, hosts=1)
    network = _net(cloud)
    web = cloud.network.create_security_group("web")
    networks: list[dict[str, str]] = [{"network_id": network.id}]
    groups = ["web"]
    if case == "unknown":
        groups, error, text = ["nosuch<>&'\"$;"], exception.NotFound, "nosuch<>&"
    elif case == "ambiguous":
        other = cloud.network.create_security_group("web")
        ids = ", ".join(sorted([web.id, other.id]))
        error, text = exception.Conflict, f"2 security groups are named 'web' ({ids})"
    elif case == "twice":
        groups, error, text = ["web", web.id], exception.Invalid, "security_groups[1]"
    elif case == "port_id":
        port = cloud.network.create_port(network.id)
        networks.append({"port_id": port.id})
        error, text = exception.Invalid, "networks[1].port_id"
    elif case == "no_networks":
        networks, error, text = [], exception.Invalid, "security_groups"
    else:
        from stackcore.project.context import RequestContext
        theirs = cloud.as_project(RequestContext(user_id="u-other", project_id="p-other",
                                                 roles=["member"]))
        groups = [theirs.network.create_security_group("theirs").id]
        # the admin sees the group, but the server's ports cannot be in it
        error, text = exception.Invalid, "is a security group of project p-other"
    ports_before = {p.id for p in cloud.network.list_ports(all_projects=True)}
    with pytest.raises(error) as caught:
        cloud.compute.create_server("s", "small", "img", networks=networks,
                                    security_groups=groups)
    assert text in str(caught.value), caught.value
    assert cloud.compute.list_servers() == [], "a refused request made a server"
    assert {p.id for p in cloud.network.list_ports(all_projects=True)} == ports_before


def test_an_attached_volume_extended_is_seen_by_the_guest(
        make_cloud: Callable[..., stackcore.Cloud], image_file: str) -> None:
    """volume.extend of an in-use volume: the volume service sends volume-extended to the
    server's compute host, whose driver shows the running guest the new size; a stopped
    server needs nothing (its disk is opened at the new size); a driver failure is a fault on
    the server, which stays ACTIVE."""
    cloud = _cloud(make_cloud, image_file, hosts=1,
                   fake_hypervisor={"fail_on": ["extend_volume:nosuch-host"]})
    server = cloud.compute.create_server("grow", "small", "img")
    vol = cloud.volume.create(1)
    device = cloud.compute.attach_volume(server.id, vol.id).device
    grown = cloud.volume.extend(vol.id, 3)
    assert (grown.size, grown.status) == (3, "in-use"), grown

    def guest_size() -> Any:
        return _domain(cloud, server.host, server.id).volumes[device].get("guest_size_bytes")
    wait_until(lambda: guest_size() == 3 * 1024**3, 10,
               f"the guest to see 3 GiB at {device} (sees {guest_size()})")
    assert cloud.compute.get_server(server.id).fault is None

    # a stopped server: nothing to show now, no fault
    cloud.compute.stop_server(server.id)
    cloud.volume.extend(vol.id, 4)
    compute = _compute(cloud, server.host)
    compute.external_instance_event(server.id, "volume-extended", vol.id)  # as the cast does
    assert guest_size() == 3 * 1024**3 and cloud.compute.get_server(server.id).fault is None
    cloud.compute.start_server(server.id)

    # the driver fails: a fault on the server, whose state does not change
    cloud.conf.set_override("fail_on", [f"extend_volume:{server.host}"], "fake_hypervisor")
    cloud.volume.extend(vol.id, 5)
    wait_until(lambda: cloud.compute.get_server(server.id).fault is not None, 10,
               "a fault on the server after the failed extend_volume")
    got = cloud.compute.get_server(server.id)
    assert got.status == "ACTIVE" and got.fault.step == "extend_volume" and \
        "injected failure in fake extend_volume" in got.fault.message, got
    assert guest_size() == 3 * 1024**3


def test_a_multiattach_volume_on_two_servers_detached_from_one_stays_with_the_other(
        make_cloud: Callable[..., stackcore.Cloud], image_file: str) -> None:
    cloud = _cloud(make_cloud, image_file, hosts=2)
    cloud.volume.create_type("shared", {"multiattach": "<is> True"})
    vol = cloud.volume.create(1, volume_type="shared")
    assert vol.multiattach is True, vol
    one = cloud.compute.create_server("one", "small", "img")
    two = cloud.compute.create_server("two", "small", "img")
    plain = cloud.volume.create(1)
    cloud.compute.attach_volume(one.id, plain.id)
    with pytest.raises(exception.InvalidState, match="is in-use, not available"):
        cloud.compute.attach_volume(two.id, plain.id)  # not multiattach: refused

    for server in (one, two):
        device = cloud.compute.attach_volume(server.id, vol.id, "/dev/vdc").device
        info = _domain(cloud, server.host, server.id).volumes[device]
        # what the hypervisor gets says the disk is shared (libvirt: <shareable/>)
        assert info["multiattach"] is True and info["data"]["volume_id"] == vol.id, info
    got = cloud.volume.get(vol.id)
    assert got.status == "in-use" and sorted(a.instance_uuid for a in got.attachments) == \
        sorted([one.id, two.id]), got.attachments
    with pytest.raises(exception.InvalidState):
        cloud.volume.delete(vol.id)

    cloud.compute.detach_volume(one.id, vol.id)
    got = cloud.volume.get(vol.id)
    assert got.status == "in-use" and [a.instance_uuid for a in got.attachments] == [two.id], \
        got.attachments
    assert "/dev/vdc" not in _domain(cloud, one.host, one.id).volumes
    assert _domain(cloud, two.host, two.id).volumes["/dev/vdc"]["data"]["volume_id"] == vol.id
    assert _exports(cloud).get(vol.id) == [two.host], _exports(cloud)  # one's connection ended
    cloud.compute.detach_volume(two.id, vol.id)
    assert cloud.volume.get(vol.id).status == "available"
    assert vol.id not in _exports(cloud)
    cloud.volume.delete(vol.id)


def test_detaching_a_multiattach_volume_from_one_of_two_servers_on_one_host_keeps_the_host_connected(
        make_cloud: Callable[..., stackcore.Cloud], image_file: str) -> None:
    """Cinder's rule: the host's connection to a multiattach volume ends with the last
    attachment from that host, not with the first detach."""
    cloud = _cloud(make_cloud, image_file, hosts=1)
    cloud.volume.create_type("shared", {"multiattach": "<is> True"})
    vol = cloud.volume.create(1, volume_type="shared")
    one = cloud.compute.create_server("one", "small", "img")
    two = cloud.compute.create_server("two", "small", "img")
    assert one.host == two.host
    for server in (one, two):
        cloud.compute.attach_volume(server.id, vol.id)
    assert _exports(cloud) == {vol.id: [one.host]}
    cloud.compute.detach_volume(one.id, vol.id)
    assert _exports(cloud) == {vol.id: [two.host]}, "the other server's connection ended"
    assert cloud.volume.get(vol.id).status == "in-use"
    cloud.compute.detach_volume(two.id, vol.id)
    assert _exports(cloud) == {} and cloud.volume.get(vol.id).status == "available"
