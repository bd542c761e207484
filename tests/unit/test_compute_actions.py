"""Server actions through cloud.compute on the fake: pause/unpause, suspend/resume, console
output, create_image - their states, refusals (state, capability), faults and restarts."""

from __future__ import annotations

import hashlib
import uuid

import pytest
import sqlalchemy as sa

import stackcore
from stackcore import exception
from stackcore.compute import fake, models
from stackcore.compute.objects import PowerState
from stackcore.image import models as image_models
from tests.conftest import wait_until

DRIVERS = """
from stackcore.compute.driver import HypervisorDriver
from stackcore.compute.fake import FakeHypervisorDriver

CALLS = []


class NoPause(FakeHypervisorDriver):
    capabilities = {**FakeHypervisorDriver.capabilities, "pause": False, "rescue": False}
    pause = HypervisorDriver.pause
    unpause = HypervisorDriver.unpause
    rescue = HypervisorDriver.rescue
    unrescue = HypervisorDriver.unrescue


class NoSnapshot(FakeHypervisorDriver):
    capabilities = {**FakeHypervisorDriver.capabilities, "snapshot": False,
                    "live_snapshot": False}
    snapshot = HypervisorDriver.snapshot


class PauseNoop(FakeHypervisorDriver):
    def pause(self, instance):
        self._domain(instance)  # returns, the instance keeps running


class Cold(FakeHypervisorDriver):
    capabilities = {**FakeHypervisorDriver.capabilities, "live_snapshot": False}

    def suspend(self, instance):
        CALLS.append("suspend")
        super().suspend(instance)

    def resume(self, instance):
        CALLS.append("resume")
        super().resume(instance)

    def snapshot(self, instance, image_path):
        state = self.get_info(instance).power_state.name
        CALLS.append(f"snapshot while {state}")
        super().snapshot(instance, image_path)


class ColdNoSuspend(Cold):
    capabilities = {**Cold.capabilities, "suspend": False}
    suspend = HypervisorDriver.suspend
    resume = HypervisorDriver.resume

    def power_off(self, instance, timeout=0):
        CALLS.append("power_off")
        super().power_off(instance, timeout)

    def power_on(self, instance):
        CALLS.append("power_on")
        super().power_on(instance)
"""


@pytest.fixture
def driver_cloud(installed_plugins, make_cloud, image_file):
    """A one-host cloud running the test driver ``name`` (from DRIVERS), its calls module."""
    installed_plugins("action-drivers", {"stackcore.compute.drivers": {
        name: f"action_drivers:{name}" for name in (
            "NoPause", "NoSnapshot", "PauseNoop", "Cold", "ColdNoSuspend")}},
                      {"action_drivers": DRIVERS})

    def make(name):
        cloud = make_cloud(fake_hosts=1, overrides={"compute": {"driver": name}})
        cloud.compute.create_flavor("small", 1, 512, 1)
        cloud.compute.register_image("img", image_file)
        import action_drivers

        action_drivers.CALLS.clear()
        return cloud, action_drivers.CALLS
    return make


def _power(cloud, server):
    return fake.backend_for(cloud.conf.state_path, server.host).domains[server.id].power_state


def _fault_count(cloud, server_id):
    with cloud.db.read() as session:
        return session.execute(sa.select(sa.func.count()).select_from(models.InstanceFault)
                               .where(models.InstanceFault.instance_uuid == server_id)
                               ).scalar_one()


def _images(cloud):
    with cloud.db.read() as session:
        return session.execute(sa.select(sa.func.count()).select_from(image_models.Image)
                               ).scalar_one()


def test_pause_unpause_suspend_resume(cloud) -> None:
    server = cloud.compute.create_server("s", "small", "img")
    paused = cloud.compute.pause_server(server.id)
    assert (paused.status, paused.task_state) == ("PAUSED", None)
    assert _power(cloud, server) is PowerState.PAUSED
    assert cloud.compute.unpause_server(server.id).status == "ACTIVE"
    assert _power(cloud, server) is PowerState.RUNNING
    suspended = cloud.compute.suspend_server(server.id)
    assert (suspended.status, suspended.power_state) == ("SUSPENDED", int(PowerState.SUSPENDED))
    assert cloud.compute.resume_server(server.id).status == "ACTIVE"
    assert _power(cloud, server) is PowerState.RUNNING
    assert cloud.compute.get_server(server.id).fault is None


WRONG_STATES = [
    (None, "unpause_server", "active"), (None, "resume_server", "active"),
    ("pause_server", "pause_server", "paused"), ("pause_server", "suspend_server", "paused"),
    ("suspend_server", "pause_server", "suspended"), ("stop_server", "pause_server", "stopped"),
]


def test_action_from_a_wrong_state_is_refused_naming_it(cloud) -> None:
    for first, action, state in WRONG_STATES:  # one cloud for all: CI time
        server = cloud.compute.create_server(f"{first}-{action}", "small", "img")
        if first:
            getattr(cloud.compute, first)(server.id)
        before = cloud.compute.get_server(server.id)
        with pytest.raises(exception.InvalidState, match=f"while it is {state}"):
            getattr(cloud.compute, action)(server.id)
        after = cloud.compute.get_server(server.id)
        assert (after.status, after.task_state, after.fault) == (before.status, None, None), \
            (first, action)


def test_driver_error_is_error_with_fault(make_cloud, image_file) -> None:
    cloud = make_cloud(fake_hosts=1, overrides={"fake_hypervisor": {"fail_on": ["suspend"]}})
    cloud.compute.create_flavor("small", 1, 512, 1)
    cloud.compute.register_image("img", image_file)
    server = cloud.compute.create_server("s", "small", "img")
    with pytest.raises(exception.DriverError, match="injected failure in fake suspend"):
        cloud.compute.suspend_server(server.id)
    after = cloud.compute.get_server(server.id)
    assert (after.status, after.task_state, after.fault.step) == ("ERROR", None, "suspend")


def test_undeclared_capability_is_refused_before_anything_changes(driver_cloud) -> None:
    cloud, _ = driver_cloud("NoPause")
    server = cloud.compute.create_server("s", "small", "img")
    with pytest.raises(exception.CapabilityNotSupported) as caught:
        cloud.compute.pause_server(server.id)
    assert "driver 'NoPause' does not support 'pause'" in str(caught.value)
    after = cloud.compute.get_server(server.id)
    assert (after.status, after.task_state, after.fault) == ("ACTIVE", None, None)
    assert _fault_count(cloud, server.id) == 0
    # the manager refuses the same (for a host that never reported its capabilities)
    with pytest.raises(exception.CapabilityNotSupported, match="'NoPause' does not support"):
        cloud.compute.compute_rpc.pause_instance("compute-1", server.id)
    after = cloud.compute.get_server(server.id)
    assert (after.status, after.task_state, after.fault) == ("ACTIVE", None, None)


def test_a_driver_that_returns_without_pausing_fails_the_action(driver_cloud) -> None:
    cloud, _ = driver_cloud("PauseNoop")
    server = cloud.compute.create_server("s", "small", "img")
    with pytest.raises(exception.DriverError, match="says it is RUNNING, not PAUSED"):
        cloud.compute.pause_server(server.id)
    after = cloud.compute.get_server(server.id)
    assert (after.status, after.task_state, after.fault.step) == ("ERROR", None, "pause")


def test_console_output_tail(cloud) -> None:
    server = cloud.compute.create_server("s", "small", "img")
    domain = fake.backend_for(cloud.conf.state_path, server.host).domains[server.id]
    domain.console.extend(f"line {i}" for i in range(1, 6))
    full = cloud.compute.get_console_output(server.id)
    assert full.endswith("line 4\nline 5\n") and full.startswith("fake console:")
    assert cloud.compute.get_console_output(server.id, length=2) == "line 4\nline 5\n"
    assert cloud.compute.get_console_output(server.id, length=10000) == full
    cloud.compute.stop_server(server.id)
    assert cloud.compute.get_console_output(server.id, length=1) == "line 5\n"


def test_console_length_is_validated(cloud) -> None:
    server = cloud.compute.create_server("s", "small", "img")
    for length in (0, -1, 10001, "3", 1.5, True):
        with pytest.raises(exception.Invalid) as caught:
            cloud.compute.get_console_output(server.id, length=length)
        assert caught.value.field == "length", (length, caught.value)


def test_unknown_server_is_not_found(cloud) -> None:
    for action in ("pause_server", "unpause_server", "suspend_server", "resume_server",
                   "get_console_output"):
        with pytest.raises(exception.NotFound):
            getattr(cloud.compute, action)(str(uuid.uuid4()))
    with pytest.raises(exception.NotFound):
        cloud.compute.create_image(str(uuid.uuid4()), "snap")


def _active(cloud, image_id):
    def check():
        try:
            image = cloud.image.get(image_id)
        except exception.NotFound:
            return "deleted"
        return image if image.status == "active" else None
    return wait_until(check, 30, f"image {image_id} active")


def _settled(cloud, server_id):
    return wait_until(lambda: (s := cloud.compute.get_server(server_id)).task_state is None
                      and s, 30, f"server {server_id} without a task")


@pytest.mark.parametrize("stopped", [False, True], ids=["active", "stopped"])
def test_create_image_is_an_active_image_of_the_root_disk(cloud, image_file, stopped) -> None:
    with open(image_file, "r+b") as handle:
        handle.write(b"root disk bytes")
    server = cloud.compute.create_server("s", "small", "img")
    if stopped:
        cloud.compute.stop_server(server.id)
    queued = cloud.compute.create_image(server.id, "snap", metadata={"purpose": "backup"})
    assert queued.disk_format == "raw" and queued.status in ("queued", "saving", "active")
    assert queued.properties == {"purpose": "backup", "image_type": "snapshot",
                                 "instance_uuid": server.id, "base_image_ref": server.image_id}
    image = _active(cloud, queued.id)
    data = open(image_file, "rb").read()
    assert (image.size_bytes, image.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert b"".join(cloud.image.download(image.id)) == data
    after = _settled(cloud, server.id)
    assert (after.status, after.fault) == ("STOPPED" if stopped else "ACTIVE", None)
    # the snapshot boots a server
    again = cloud.compute.create_server("from-snap", "small", image.id)
    assert again.status == "ACTIVE", again.fault


def test_create_image_refusals_keep_nothing(cloud) -> None:
    server = cloud.compute.create_server("s", "small", "img")
    images = _images(cloud)
    cloud.compute.pause_server(server.id)
    with pytest.raises(exception.InvalidState, match="while it is paused"):
        cloud.compute.create_image(server.id, "snap")
    with pytest.raises(exception.Invalid) as caught:
        cloud.compute.create_image(server.id, "")
    assert caught.value.field == "name"
    with pytest.raises(exception.Invalid) as caught:
        cloud.compute.create_image(server.id, "snap", metadata={"k": 1})
    assert caught.value.field == "metadata['k']"
    assert _images(cloud) == images
    assert cloud.compute.get_server(server.id).task_state is None


def test_failed_snapshot_deletes_the_image_and_keeps_the_server(make_cloud, image_file):
    cloud = make_cloud(fake_hosts=1, overrides={"fake_hypervisor": {"fail_on": ["snapshot"]}})
    cloud.compute.create_flavor("small", 1, 512, 1)
    cloud.compute.register_image("img", image_file)
    server = cloud.compute.create_server("s", "small", "img")
    images = _images(cloud)
    queued = cloud.compute.create_image(server.id, "snap")
    after = wait_until(lambda: (s := cloud.compute.get_server(server.id)).fault and s, 30,
                       "the snapshot's fault")
    assert (after.status, after.task_state) == ("ACTIVE", None)
    assert after.fault.step == "snapshot" and "injected failure in fake snapshot" in \
        after.fault.message
    with pytest.raises(exception.NotFound):
        cloud.image.get(queued.id)
    assert _images(cloud) == images


@pytest.mark.parametrize(("driver", "expected"), [
    ("Cold", ["suspend", "snapshot while SUSPENDED", "resume"]),
    ("ColdNoSuspend", ["power_off", "snapshot while SHUTDOWN", "power_on"]),
])
def test_without_live_snapshot_a_running_server_is_stopped_around_it(driver_cloud, driver,
                                                                      expected) -> None:
    cloud, calls = driver_cloud(driver)
    server = cloud.compute.create_server("s", "small", "img")
    image = _active(cloud, cloud.compute.create_image(server.id, "snap").id)
    assert image.status == "active"
    assert calls == expected
    assert _settled(cloud, server.id).status == "ACTIVE"
    cloud.compute.stop_server(server.id)
    calls.clear()
    _active(cloud, cloud.compute.create_image(server.id, "cold").id)
    assert calls == ["snapshot while SHUTDOWN"]  # a stopped server is snapshot as it is


def test_snapshot_capability_gated(driver_cloud) -> None:
    cloud, _ = driver_cloud("NoSnapshot")
    server = cloud.compute.create_server("s", "small", "img")
    images = _images(cloud)
    with pytest.raises(exception.CapabilityNotSupported, match="does not support 'snapshot'"):
        cloud.compute.create_image(server.id, "snap")
    assert _images(cloud) == images


# --- restarts ----------------------------------------------------------------------------


@pytest.fixture
def restartable(tmp_path, image_file):
    overrides = {"DEFAULT": {"state_path": str(tmp_path / "state"), "periodic_interval": 3600}}
    clouds = []

    def start():
        cloud = stackcore.Cloud(fake_hosts=1, overrides=overrides)
        clouds.append(cloud)
        return cloud

    first = start()
    first.compute.create_flavor("small", 1, 512, 1)
    first.compute.register_image("img", image_file)
    yield first, start
    for cloud in clouds:
        cloud.close()


@pytest.mark.parametrize(("task", "power", "status"), [
    ("pausing", PowerState.PAUSED, "PAUSED"), ("unpausing", PowerState.RUNNING, "ACTIVE"),
    ("suspending", PowerState.SUSPENDED, "SUSPENDED"), ("resuming", PowerState.RUNNING, "ACTIVE"),
    ("rebuilding", PowerState.RUNNING, "ACTIVE"),
])
def test_interrupted_action_is_cleared_at_restart(restartable, task, power, status) -> None:
    cloud, restart = restartable
    server = cloud.compute.create_server("s", "small", "img")
    fake.backend_for(cloud.conf.state_path, "compute-1").domains[server.id].power_state = power
    with cloud.db.transaction() as session:
        session.execute(sa.update(models.Instance).where(models.Instance.uuid == server.id)
                        .values(task_state=task))
    cloud.close()
    after = restart().compute.get_server(server.id)
    assert (after.status, after.task_state) == (status, None)


def test_rebuild_interrupted_after_destroy_is_error_at_restart(restartable) -> None:
    cloud, restart = restartable
    server = cloud.compute.create_server("s", "small", "img")
    del fake.backend_for(cloud.conf.state_path, "compute-1").domains[server.id]
    with cloud.db.transaction() as session:
        session.execute(sa.update(models.Instance).where(models.Instance.uuid == server.id)
                        .values(task_state="rebuilding"))
    cloud.close()
    again = restart()
    after = again.compute.get_server(server.id)
    assert (after.status, after.task_state) == ("ERROR", None)
    assert "missing on the hypervisor" in after.fault.message
    assert again.compute.rebuild_server(server.id, "img").status == "ACTIVE"


def test_interrupted_snapshot_is_undone_at_restart(restartable) -> None:
    cloud, restart = restartable
    server = cloud.compute.create_server("s", "small", "img")
    domains = fake.backend_for(cloud.conf.state_path, "compute-1").domains
    # as a cold snapshot leaves it when the service dies: suspended, image queued
    domains[server.id].power_state = PowerState.SUSPENDED
    image = cloud.image.create("snap", properties={"image_type": "snapshot",
                                                   "instance_uuid": server.id})
    other = cloud.image.create("unrelated", properties={"image_type": "snapshot",
                                                        "instance_uuid": str(uuid.uuid4())})
    with cloud.db.transaction() as session:
        session.execute(sa.update(models.Instance).where(models.Instance.uuid == server.id)
                        .values(task_state="image_snapshot"))
    cloud.close()
    again = restart()
    after = again.compute.get_server(server.id)
    assert (after.status, after.task_state) == ("ACTIVE", None)
    assert after.fault.step == "snapshot" and image.id in after.fault.message
    with pytest.raises(exception.NotFound):
        again.image.get(image.id)
    assert again.image.get(other.id).status == "queued"
    assert domains[server.id].power_state is PowerState.RUNNING


# --- rebuild -----------------------------------------------------------------------------


def _second_image(cloud, tmp_path, name="other"):
    path = tmp_path / f"{name}.raw"
    path.write_bytes(b"the other image" + b"\0" * (1024 * 1024 - 15))
    return cloud.compute.register_image(name, str(path))


def test_rebuild_keeps_ports_and_volumes(make_cloud, image_file, tmp_path) -> None:
    cloud = make_cloud(fake_hosts=1)
    cloud.compute.create_flavor("small", 1, 512, 1)
    cloud.compute.register_image("img", image_file)
    other = _second_image(cloud, tmp_path)
    network = cloud.network.create_network("net", network_type="vxlan")
    cloud.network.create_subnet(network.id, "10.0.0.0/24")
    volume = cloud.volume.create(1)
    server = cloud.compute.create_server("s", "small", "img",
                                         networks=[{"network_id": network.id}],
                                         volumes=[volume.id])
    assert server.status == "ACTIVE", server.fault
    ports = cloud.network.list_ports(device_id=server.id)
    backend = fake.backend_for(cloud.conf.state_path, server.host)
    old_domain = backend.domains[server.id]

    rebuilt = cloud.compute.rebuild_server(server.id, "other")

    assert (rebuilt.status, rebuilt.task_state, rebuilt.fault) == ("ACTIVE", None, None)
    assert rebuilt.image_id == other.id
    domain = backend.domains[server.id]
    assert domain is not old_domain  # made afresh
    assert [v["id"] for v in domain.vifs] == [p.id for p in ports]
    again = cloud.network.list_ports(device_id=server.id)
    assert [(p.id, p.fixed_ips, p.host) for p in again] == \
        [(p.id, p.fixed_ips, p.host) for p in ports]
    assert domain.volumes["/dev/vdb"]["data"]["volume_id"] == volume.id
    got = cloud.volume.get(volume.id)
    assert got.status == "in-use" and [a.instance_uuid for a in got.attachments] == [server.id]
    assert [(m.volume_id, m.status) for m in cloud.compute.list_server_volumes(server.id)] == \
        [(volume.id, "attached")]


def test_rebuild_of_a_stopped_server_stays_stopped_and_refusals(cloud, tmp_path) -> None:
    _second_image(cloud, tmp_path)
    server = cloud.compute.create_server("s", "small", "img")
    cloud.compute.stop_server(server.id)
    rebuilt = cloud.compute.rebuild_server(server.id, "other")
    assert (rebuilt.status, rebuilt.task_state) == ("STOPPED", None)
    assert _power(cloud, server) is PowerState.SHUTDOWN
    cloud.compute.start_server(server.id)
    cloud.compute.pause_server(server.id)
    with pytest.raises(exception.InvalidState, match="while it is paused"):
        cloud.compute.rebuild_server(server.id, "img")
    with pytest.raises(exception.NotFound):
        cloud.compute.rebuild_server(server.id, "no-such-image")
    after = cloud.compute.get_server(server.id)
    assert (after.status, after.image_id, after.task_state) == ("PAUSED", rebuilt.image_id, None)


def test_failed_rebuild_is_error_with_fault_and_rebuild_again_recovers(make_cloud, image_file,
                                                                        tmp_path) -> None:
    cloud = make_cloud(fake_hosts=1)
    cloud.compute.create_flavor("small", 1, 512, 1)
    cloud.compute.register_image("img", image_file)
    _second_image(cloud, tmp_path)
    server = cloud.compute.create_server("s", "small", "img")
    cloud.conf.set_override("fail_on", ["spawn"], group="fake_hypervisor")
    failed = cloud.compute.rebuild_server(server.id, "other")
    assert (failed.status, failed.task_state, failed.fault.step) == ("ERROR", None, "spawn")
    cloud.conf.clear_override("fail_on", group="fake_hypervisor")
    assert cloud.compute.rebuild_server(server.id, "other").status == "ACTIVE"
    assert _power(cloud, server) is PowerState.RUNNING


# --- rescue ------------------------------------------------------------------------------


def test_rescue_unrescue(cloud, tmp_path) -> None:
    rescue_image = _second_image(cloud, tmp_path, "rescue-img")
    server = cloud.compute.create_server("s", "small", "img")
    domains = fake.backend_for(cloud.conf.state_path, server.host).domains
    rescued = cloud.compute.rescue_server(server.id, "rescue-img")
    assert (rescued.status, rescued.task_state, rescued.fault) == ("RESCUED", None, None)
    assert domains[server.id].rescue_image == rescue_image.id
    for refused in ("reboot_server", "stop_server", "pause_server", "create_image"):
        args = ("snap",) if refused == "create_image" else ()
        with pytest.raises(exception.InvalidState, match="while it is rescued"):
            getattr(cloud.compute, refused)(server.id, *args)
    back = cloud.compute.unrescue_server(server.id)
    assert (back.status, back.task_state) == ("ACTIVE", None)
    assert domains[server.id].rescue_image is None
    with pytest.raises(exception.InvalidState, match="while it is active"):
        cloud.compute.unrescue_server(server.id)
    # default rescue image: the server's own; from STOPPED too
    cloud.compute.stop_server(server.id)
    assert cloud.compute.rescue_server(server.id).status == "RESCUED"
    assert domains[server.id].rescue_image == server.image_id
    cloud.compute.delete_server(server.id)
    assert server.id not in domains


def test_rescue_failure_is_error_with_fault(make_cloud, image_file) -> None:
    cloud = make_cloud(fake_hosts=1, overrides={"fake_hypervisor": {"fail_on": ["rescue"]}})
    cloud.compute.create_flavor("small", 1, 512, 1)
    cloud.compute.register_image("img", image_file)
    server = cloud.compute.create_server("s", "small", "img")
    with pytest.raises(exception.DriverError, match="injected failure in fake rescue"):
        cloud.compute.rescue_server(server.id)
    after = cloud.compute.get_server(server.id)
    assert (after.status, after.task_state, after.fault.step) == ("ERROR", None, "rescue")


def test_rescue_is_gated_on_the_capability(driver_cloud) -> None:
    other, _ = driver_cloud("NoPause")  # declares no rescue
    server = other.compute.create_server("s", "small", "img")
    with pytest.raises(exception.CapabilityNotSupported, match="'NoPause' does not support "
                       "'rescue'"):
        other.compute.rescue_server(server.id)
    assert other.compute.get_server(server.id).status == "ACTIVE"


def test_rescued_server_stays_rescued_at_restart(restartable) -> None:
    cloud, restart = restartable
    server = cloud.compute.create_server("s", "small", "img")
    cloud.compute.rescue_server(server.id)
    with cloud.db.transaction() as session:
        session.execute(sa.update(models.Instance).where(models.Instance.uuid == server.id)
                        .values(task_state="unrescuing"))
    cloud.close()
    after = restart().compute.get_server(server.id)
    assert (after.status, after.task_state) == ("RESCUED", None)


def test_actions_are_the_owners(cloud, image_file) -> None:
    """A project's member acts on its own server (the API finds its host although the
    member's view hides it); another project's server is NotFound, nothing changed."""
    from stackcore.project.context import RequestContext

    owner = cloud.as_project(RequestContext("u1", "p1", ["member"]))
    stranger = cloud.as_project(RequestContext("u2", "p2", ["member"]))
    cloud.compute.register_image("pub", image_file, visibility="public")
    server = owner.compute.create_server("mine", "small", "pub")
    assert server.host is None  # host names are admin's
    assert owner.compute.pause_server(server.id).status == "PAUSED"
    for action in ("unpause_server", "suspend_server", "get_console_output",
                   "unrescue_server"):
        with pytest.raises(exception.NotFound):
            getattr(stranger.compute, action)(server.id)
    with pytest.raises(exception.NotFound):
        stranger.compute.create_image(server.id, "theirs")
    assert owner.compute.unpause_server(server.id).status == "ACTIVE"
    image = _active(cloud, owner.compute.create_image(server.id, "mine-snap").id)
    assert image.project_id == "p1" and image.visibility == "private"
    assert owner.compute.get_console_output(server.id, length=1).endswith("\n")


def test_refused_upload_deletes_the_image_and_the_server_keeps_running(cloud) -> None:
    """The image service refuses the bytes (the project's image_size_total is 0 MiB): the
    image is deleted, the server is ACTIVE with a fault naming the upload."""
    server = cloud.compute.create_server("s", "small", "img")
    cloud.project.set_quota("admin", "image_size_total", 0)
    queued = cloud.compute.create_image(server.id, "too-big")
    after = wait_until(lambda: (s := cloud.compute.get_server(server.id)).fault and s, 30,
                       "the snapshot's fault")
    assert (after.status, after.task_state) == ("ACTIVE", None)
    assert (after.fault.step, after.fault.exc_class) == ("upload", "OverQuota"), after.fault
    with pytest.raises(exception.NotFound):
        cloud.image.get(queued.id)
    assert _power(cloud, server) is PowerState.RUNNING
