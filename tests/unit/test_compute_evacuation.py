"""Evacuation of servers from a dead compute host (stackcore.compute.evacuation), with a real
"host down": each compute host is a cloud of its own (its own services, RPC connections over a
RabbitMQ virtual host of the test's own, and database engine on the shared database - the
embedded SQLite file, or PostgreSQL), the API, scheduler, volume and network services another.
A host goes down by stopping its cloud: its heartbeat ages past ``service_down_time`` (3 s
here). The clouds share this interpreter only so that a host's fake hypervisor (in memory)
outlives its compute service, as a real hypervisor's guests do: the compute service that
starts again finds the old instance of an evacuated server and must destroy it."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import stackcore
from stackcore import exception, notifications
from stackcore.compute import fake, models
from stackcore.compute.objects import PowerState
from stackcore.compute.rpcapi import ComputeRPCAPI
from stackcore.project.context import RequestContext
from tests.conftest import wait_until


def _over_rabbit(test: Callable[..., None]) -> Callable[..., None]:
    """The tests with a cloud per host: their RPC goes through RabbitMQ."""
    return pytest.mark.real(pytest.mark.rabbit(test))


#: seconds a host stays "up" after its last heartbeat (heartbeats every second)
DOWN_TIME = 3
#: the grace of the orphan passes (a lost cast is started after it)
RPC_TIMEOUT = 5


class Deployment:
    """The API process (scheduler, volume, network) and one process per compute host."""

    def __init__(self, state: Path, transport_url: str, database_url: str | None,
                 image_file: str) -> None:
        self.state = str(state)
        self.base: dict[str, dict[str, Any]] = {
            "DEFAULT": {"state_path": self.state, "transport_url": transport_url,
                        "report_interval": 1, "service_down_time": DOWN_TIME,
                        "rpc_call_timeout": RPC_TIMEOUT, "periodic_interval": 3600}}
        if database_url:
            self.base["database"] = {"connection": database_url}
        self.hosts: dict[str, stackcore.Cloud] = {}
        self.api = stackcore.Cloud(fake_hosts=0, overrides=self.base,
                                   services=("scheduler", "volume", "network"))
        self.api.compute.create_flavor("small", 1, 512, 1)
        self.api.compute.register_image("img", image_file, visibility="public")

    def start(self, host: str, **fake_hypervisor: Any) -> stackcore.Cloud:
        """Start the compute process of ``host`` (its start-up reconciliation included);
        its periodic tasks run every second."""
        overrides = {**self.base, "DEFAULT": {**self.base["DEFAULT"], "periodic_interval": 1},
                     "compute": {"hosts": [host]},
                     "notifications": {"driver": "log"}}  # see events()
        if fake_hypervisor:
            overrides["fake_hypervisor"] = fake_hypervisor
        self.hosts[host] = stackcore.Cloud(overrides=overrides, services=("compute",))
        return self.hosts[host]

    def kill(self, host: str) -> None:
        """Stop the process of ``host`` and wait until the cloud sees the host down."""
        self.hosts.pop(host).close()
        wait_until(lambda: not self.up(host), 10 * DOWN_TIME, f"{host} reported down")

    def up(self, host: str) -> bool:
        return any(h.up for h in self.api.compute.list_hosts() if h.host == host)

    def domains(self, host: str) -> dict[str, Any]:
        return dict(fake.backend_for(self.state, host).domains)

    def allocations(self) -> dict[str, tuple[str, int]]:
        """{consumer: (host, vcpus)} of every claim."""
        with self.api.db.read() as session:
            return {a.instance_uuid: (a.host, a.vcpus)
                    for a in session.execute(sa.select(models.Allocation)).scalars()}

    def close(self) -> None:
        for cloud in self.hosts.values():
            cloud.close()
        self.api.close()


class _Events(logging.Handler):
    """The ``instance.evacuate.*`` notifications the compute hosts send (oslo.messaging's
    ``log`` driver), each payload checked against its schema."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.found: list[tuple[str, dict[str, Any]]] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = json.loads(record.getMessage())
        if message["event_type"].startswith("instance.evacuate."):
            notifications.validate(message["payload"])
            self.found.append((message["event_type"], message["payload"]))

    def types(self) -> list[str]:
        return [event for event, _ in self.found]


@pytest.fixture
def events() -> Iterator[_Events]:
    logger = logging.getLogger("oslo.messaging.notification")
    handler, level = _Events(), logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


@pytest.fixture
def deployment(tmp_path: Path, rabbit_url: str, database_url: str | None,
               image_file: str) -> Iterator[Deployment]:
    found = Deployment(tmp_path / "state", rabbit_url, database_url, image_file)
    try:
        yield found
    finally:
        found.close()


def _wired(cloud: stackcore.Cloud, name: str = "s") -> tuple[Any, Any]:
    """A server on a VXLAN port with a volume attached at boot."""
    network = cloud.network.create_network(f"net-{name}", network_type="vxlan")
    cloud.network.create_subnet(network.id, "10.0.0.0/24")
    volume = cloud.volume.create(1)
    server = cloud.compute.create_server(name, "small", "img",
                                         networks=[{"network_id": network.id}],
                                         volumes=[volume.id])
    assert server.status == "ACTIVE", server.fault
    return server, volume


def _attachments(cloud: stackcore.Cloud, volume_id: str) -> list[tuple[str, str]]:
    return sorted((a.instance_uuid, a.host) for a in cloud.volume.get(volume_id).attachments)


def _state(cloud: stackcore.Cloud, server_id: str) -> tuple[Any, ...]:
    found = cloud.compute.get_server(server_id)
    return found.status, found.task_state, found.host


@_over_rabbit
def test_evacuation_round_trip(deployment: Deployment, events: _Events) -> None:
    api = deployment.api.compute
    deployment.start("compute-1")
    server, volume = _wired(deployment.api)
    assert server.host == "compute-1"
    port = deployment.api.network.list_ports(device_id=server.id)[0]
    # what compute-1's instance is wired with: its destroy there gets it back (below)
    wired_on_1 = deployment.api.network.network_info_for_instance(server.id)
    assert [(v["id"], v["vif_type"]) for v in wired_on_1] == [(port.id, "fake")], wired_on_1
    deployment.start("compute-2")

    with pytest.raises(exception.Conflict, match="compute-1 is up .* would run twice"):
        api.evacuate_server(server.id)
    assert _state(deployment.api, server.id) == ("ACTIVE", None, "compute-1")
    assert api.list_server_migrations(server.id) == []
    assert deployment.allocations() == {server.id: ("compute-1", 1)}

    deployment.kill("compute-1")
    after = api.evacuate_server(server.id, timeout=120)

    assert (after.status, after.task_state, after.host, after.fault) == \
        ("ACTIVE", None, "compute-2", None)
    domain = deployment.domains("compute-2")[server.id]
    assert domain.power_state is PowerState.RUNNING, domain
    assert [v["id"] for v in domain.vifs] == [port.id], domain.vifs
    assert domain.volumes["/dev/vdb"]["data"]["volume_id"] == volume.id, domain.volumes
    moved = deployment.api.network.get_port(port.id)
    assert (moved.host, moved.fixed_ips, moved.mac_address) == \
        ("compute-2", port.fixed_ips, port.mac_address)
    # the dead host's export ended: exactly the new host's attachment is left
    assert _attachments(deployment.api, volume.id) == [(server.id, "compute-2")]
    [migration] = api.list_server_migrations(server.id)
    assert (migration.migration_type, migration.status, migration.source_host,
            migration.dest_host) == ("evacuation", "done", "compute-1", "compute-2"), migration
    claims = deployment.allocations()
    assert claims == {server.id: ("compute-2", 1), migration.id: ("compute-1", 1)}, claims
    assert server.id in deployment.domains("compute-1"), "the dead host was touched"
    wait_until(lambda: len(events.types()) >= 2, 10, f"two events (so far {events.types()})")
    assert events.types() == ["instance.evacuate.start", "instance.evacuate.end"]
    assert (events.found[1][1]["host"], events.found[1][1]["vm_state"]) == \
        ("compute-2", "active"), events.found[1]

    deployment.start("compute-1")  # back: its old instance goes, and the migration's claim

    assert server.id not in deployment.domains("compute-1")
    # destroyed with what it had on compute-1 (its VIF, its volume's device), so that the
    # driver unplugs and detaches them there ...
    [destroyed] = [d for d in fake.backend_for(deployment.state, "compute-1").destroyed
                   if d.instance_uuid == server.id]
    assert (destroyed.network_info, destroyed.block_device_info, destroyed.destroy_disks) \
        == (wired_on_1, [{"mount_device": "/dev/vdb", "volume_id": volume.id}], True), \
        destroyed
    # ... without touching the new host's binding and attachment
    rebound = deployment.api.network.get_port(port.id)
    assert (rebound.host, rebound.vif_type) == ("compute-2", moved.vif_type), rebound
    assert _attachments(deployment.api, volume.id) == [(server.id, "compute-2")]
    assert deployment.domains("compute-2")[server.id].power_state is PowerState.RUNNING
    assert api.list_server_migrations(server.id)[0].status == "completed"
    assert deployment.allocations() == {server.id: ("compute-2", 1)}
    assert _state(deployment.api, server.id) == ("ACTIVE", None, "compute-2")
    assert deployment.hosts["compute-1"].compute.list_hosts()  # the host serves again
    assert server.id in deployment.domains("compute-2")

    api.delete_server(server.id)
    assert api.get_server(server.id, include_deleted=True).status == "DELETED"
    assert server.id not in deployment.domains("compute-2")
    assert deployment.allocations() == {}
    assert deployment.api.volume.get(volume.id).status == "available"
    assert deployment.api.network.list_ports(device_id=server.id) == []


@_over_rabbit
def test_a_server_deleted_while_its_old_host_was_down_is_destroyed_there_as_it_was_wired(
        deployment: Deployment) -> None:
    """Its ports and volume mappings are gone by the time the old host is back: the old
    instance is destroyed with what the new host recorded before moving them."""
    api = deployment.api.compute
    deployment.start("compute-1")
    server, volume = _wired(deployment.api)
    wired_on_1 = deployment.api.network.network_info_for_instance(server.id)
    deployment.start("compute-2")
    deployment.kill("compute-1")
    after = api.evacuate_server(server.id, timeout=120)
    assert (after.status, after.host) == ("ACTIVE", "compute-2"), after.fault
    api.delete_server(server.id)
    assert deployment.api.network.list_ports(device_id=server.id) == []
    assert deployment.api.volume.get(volume.id).status == "available"

    deployment.start("compute-1")

    assert server.id not in deployment.domains("compute-1")
    [destroyed] = [d for d in fake.backend_for(deployment.state, "compute-1").destroyed
                   if d.instance_uuid == server.id]
    assert (destroyed.network_info, destroyed.block_device_info) == \
        (wired_on_1, [{"mount_device": "/dev/vdb", "volume_id": volume.id}]), destroyed
    assert [v["id"] for v in wired_on_1] and wired_on_1[0]["mac_address"], wired_on_1
    assert api.list_server_migrations(server.id)[0].status == "completed"
    assert deployment.allocations() == {}


@_over_rabbit
def test_a_volume_backed_server_is_evacuated_with_its_root_volume_data_and_all(
        deployment: Deployment) -> None:
    """Nova's shared-storage evacuation: the new host boots the same root volume (what the
    guest wrote is there), claims no disk for it, and the old host, back, destroys its old
    instance without touching the volume."""
    api = deployment.api.compute
    deployment.start("compute-1")
    server = api.create_server("bfv", "small", "img", boot_volume={})
    assert (server.status, server.host) == ("ACTIVE", "compute-1"), server.fault
    [root] = api.list_server_volumes(server.id)
    volume_driver = next(s.manager.driver for s in deployment.api.services
                         if s.binary == "stackcore-volume")
    backing = volume_driver._path(f"volume-{root.volume_id}")  # the fake's own file
    with open(backing, "r+b") as disk:  # what the guest wrote on its root disk
        disk.seek(4096)
        disk.write(b"written by the guest on compute-1")
    deployment.start("compute-2")
    deployment.kill("compute-1")

    after = api.evacuate_server(server.id, timeout=120)

    assert (after.status, after.task_state, after.host, after.fault) == \
        ("ACTIVE", None, "compute-2", None)
    domain = deployment.domains("compute-2")[server.id]
    assert sorted(domain.volumes) == ["/dev/vda"], domain.volumes
    assert domain.volumes["/dev/vda"]["data"]["volume_id"] == root.volume_id
    with open(backing, "rb") as disk:
        disk.seek(4096)
        assert disk.read(33) == b"written by the guest on compute-1"
    assert _attachments(deployment.api, root.volume_id) == [(server.id, "compute-2")]
    with deployment.api.db.read() as session:
        disks = {a.host: a.disk_gb for a in session.execute(sa.select(models.Allocation))
                 .scalars()}
    assert disks == {"compute-1": 0, "compute-2": 0}, disks

    deployment.start("compute-1")

    assert server.id not in deployment.domains("compute-1")
    [destroyed] = [d for d in fake.backend_for(deployment.state, "compute-1").destroyed
                   if d.instance_uuid == server.id]
    assert destroyed.block_device_info == [{"mount_device": "/dev/vda", "boot_index": 0,
                                            "volume_id": root.volume_id}], destroyed
    assert _attachments(deployment.api, root.volume_id) == [(server.id, "compute-2")]
    assert deployment.api.volume.get(root.volume_id).status == "in-use"
    api.delete_server(server.id)
    with pytest.raises(exception.NotFound):
        deployment.api.volume.get(root.volume_id)


@_over_rabbit
def test_evacuation_to_a_named_host_goes_through_the_filters_and_a_refusal_leaves_nothing(
        deployment: Deployment) -> None:
    api = deployment.api.compute
    deployment.start("compute-1")
    server = api.create_server("s", "small", "img")
    for host in ("compute-2", "compute-3", "compute-4"):
        deployment.start(host)
    deployment.kill("compute-1")
    api.set_host_enabled("compute-3", False, "maintenance")
    deployment.kill("compute-4")

    def unchanged() -> None:
        after = api.get_server(server.id)
        assert (after.status, after.task_state, after.host, after.fault) == \
            ("ACTIVE", None, "compute-1", None), after
        assert api.list_server_migrations(server.id) == [], "a refusal recorded a migration"
        assert deployment.allocations() == {server.id: ("compute-1", 1)}

    with pytest.raises(exception.NotFound, match="to nowhere: no compute host 'nowhere'"):
        api.evacuate_server(server.id, host="nowhere")
    unchanged()
    with pytest.raises(exception.Invalid,
                       match="compute-1 is the host of server .* name another host"):
        api.evacuate_server(server.id, host="compute-1")
    unchanged()
    with pytest.raises(exception.Conflict,
                       match="to compute-4: the compute service of compute-4 is down"):
        api.evacuate_server(server.id, host="compute-4")
    unchanged()
    with pytest.raises(exception.NoValidHost) as refused:
        api.evacuate_server(server.id, host="compute-3")
    assert str(refused.value) == (f"host compute-3 cannot take server {server.id}: "
                                  "ComputeFilter: service disabled (maintenance)"), refused.value
    unchanged()

    api.set_host_enabled("compute-3", True)
    # named: compute-3, where the scheduler's own pick among the two idle hosts (equal
    # weights, the first in name order) would be compute-2
    after = api.evacuate_server(server.id, host="compute-3", timeout=120)

    assert (after.status, after.task_state, after.host, after.fault) == \
        ("ACTIVE", None, "compute-3", None), after
    assert deployment.domains("compute-3")[server.id].power_state is PowerState.RUNNING
    assert server.id not in deployment.domains("compute-2")
    [migration] = api.list_server_migrations(server.id)
    assert (migration.status, migration.source_host, migration.dest_host) == \
        ("done", "compute-1", "compute-3"), migration


@_over_rabbit
def test_stopped_stays_stopped_error_comes_back_and_no_valid_host_changes_nothing(
        deployment: Deployment) -> None:
    api = deployment.api.compute
    deployment.start("compute-1")
    stopped = api.create_server("stopped", "small", "img")
    api.stop_server(stopped.id)
    failed = api.create_server("failed", "small", "img")
    with deployment.api.db.transaction() as session:  # a server that went ERROR on its host
        session.execute(sa.update(models.Instance).where(models.Instance.uuid == failed.id)
                        .values(vm_state="error"))
    deployment.kill("compute-1")

    with pytest.raises(exception.NoValidHost):
        api.evacuate_server(stopped.id)
    after = api.get_server(stopped.id)
    assert (after.status, after.task_state, after.host) == ("STOPPED", None, "compute-1")
    assert after.fault.step == "evacuate" and "no valid host" in after.fault.message, \
        after.fault
    assert deployment.allocations() == {stopped.id: ("compute-1", 1),
                                        failed.id: ("compute-1", 1)}
    assert [m.status for m in api.list_server_migrations(stopped.id)] == ["error"]

    deployment.start("compute-2")
    evacuated = api.evacuate_server(stopped.id, timeout=120)
    assert (evacuated.status, evacuated.host) == ("STOPPED", "compute-2"), evacuated.fault
    assert deployment.domains("compute-2")[stopped.id].power_state is PowerState.SHUTDOWN
    revived = api.evacuate_server(failed.id, timeout=120)
    assert (revived.status, revived.host) == ("ACTIVE", "compute-2"), revived.fault
    assert deployment.domains("compute-2")[failed.id].power_state is PowerState.RUNNING

    deployment.start("compute-1")
    # the one that never got a host stays error (it held nothing); the others completed
    statuses = [m.status for m in api.list_server_migrations(stopped.id)]
    assert statuses == ["error", "completed"], statuses
    assert [m.status for m in api.list_server_migrations(failed.id)] == ["completed"]
    assert stopped.id not in deployment.domains("compute-1")
    assert failed.id not in deployment.domains("compute-1")
    assert deployment.allocations() == {stopped.id: ("compute-2", 1),
                                        failed.id: ("compute-2", 1)}


@_over_rabbit
def test_a_failed_spawn_is_error_on_the_new_host_with_nothing_half_made(
        deployment: Deployment, events: _Events) -> None:
    api = deployment.api.compute
    deployment.start("compute-1")
    server, volume = _wired(deployment.api)
    port = deployment.api.network.list_ports(device_id=server.id)[0]
    deployment.start("compute-2", fail_on=["spawn"])
    deployment.kill("compute-1")

    after = api.evacuate_server(server.id, timeout=120)

    assert (after.status, after.task_state, after.host) == ("ERROR", None, "compute-2")
    assert after.fault.step == "spawn" and "injected failure" in after.fault.message, \
        after.fault
    assert server.id not in deployment.domains("compute-2")
    wait_until(lambda: len(events.types()) >= 2, 10, f"two events (so far {events.types()})")
    assert events.types() == ["instance.evacuate.start", "instance.evacuate.error"]
    assert events.found[1][1]["fault"]["step"] == "spawn", events.found[1]
    # the ports and volumes stay with the server where it is now: rebuild or delete it
    assert deployment.api.network.get_port(port.id).host == "compute-2"
    assert _attachments(deployment.api, volume.id) == [(server.id, "compute-2")]
    [migration] = api.list_server_migrations(server.id)
    assert migration.status == "error" and "spawn failed on compute-2" in migration.error
    assert deployment.allocations() == {server.id: ("compute-2", 1),
                                        migration.id: ("compute-1", 1)}

    deployment.start("compute-1")  # it still cleans up after the failed evacuation
    assert server.id not in deployment.domains("compute-1")
    assert api.list_server_migrations(server.id)[0].status == "completed"
    assert deployment.allocations() == {server.id: ("compute-2", 1)}
    assert api.get_server(server.id).status == "ERROR"
    api.delete_server(server.id)
    assert deployment.allocations() == {}
    assert deployment.api.volume.get(volume.id).status == "available"


@_over_rabbit
def test_a_lost_cast_is_started_and_an_interrupted_rebuild_is_error(
        deployment: Deployment, monkeypatch: pytest.MonkeyPatch) -> None:
    api = deployment.api.compute
    deployment.start("compute-1")
    lost = api.create_server("lost", "small", "img")
    cut = api.create_server("cut", "small", "img")
    deployment.start("compute-2")
    deployment.kill("compute-1")
    monkeypatch.setattr(ComputeRPCAPI, "evacuate_instance", lambda *a, **k: None)

    pending = api.evacuate_server(lost.id, wait=False)
    assert (pending.status, pending.task_state) == ("ACTIVE", "evacuating")
    assert api.list_server_migrations(lost.id)[0].status == "migrating"
    # one owner at a time: no delete, no second evacuation meanwhile
    with pytest.raises(exception.InvalidState, match="being resized, migrated or evacuated"):
        api.delete_server(lost.id)
    with pytest.raises(exception.InvalidState, match=r"while it is active \(evacuating\)"):
        api.evacuate_server(lost.id)
    # the new host's orphan pass starts it once left so for rpc_call_timeout
    after = api.wait_for_server(lost.id, ("ACTIVE", "ERROR"), 120)
    assert (after.status, after.host, after.fault) == ("ACTIVE", "compute-2", None)
    assert api.list_server_migrations(lost.id)[0].status == "done"

    api.evacuate_server(cut.id, wait=False)
    deployment.hosts.pop("compute-2").close()  # before its orphan pass would start it
    with deployment.api.db.transaction() as session:  # as if cut off while rebuilding
        session.execute(sa.update(models.Migration)
                        .where(models.Migration.instance_uuid == cut.id)
                        .values(status="post-migrating"))
        session.execute(sa.update(models.Instance).where(models.Instance.uuid == cut.id)
                        .values(host="compute-2"))
    deployment.start("compute-2")

    after = api.get_server(cut.id)
    assert (after.status, after.task_state, after.host) == ("ERROR", None, "compute-2")
    assert after.fault.step == "evacuate" and "interrupted by a restart" in \
        after.fault.message, after.fault
    assert api.list_server_migrations(cut.id)[0].status == "error"
    assert cut.id not in deployment.domains("compute-2")
    assert deployment.domains("compute-2")[lost.id].power_state is PowerState.RUNNING


@_over_rabbit
def test_non_admins_may_not_evacuate(deployment: Deployment) -> None:
    deployment.start("compute-1")
    owner = deployment.api.as_project(RequestContext("u1", "p1", ["member"]))
    server = owner.compute.create_server("mine", "small", "img")
    with pytest.raises(exception.Forbidden, match="compute:server:evacuate"):
        owner.compute.evacuate_server(server.id)
    assert _state(deployment.api, server.id) == ("ACTIVE", None, "compute-1")
    assert deployment.api.compute.list_server_migrations(server.id) == []




def test_an_evacuation_cut_off_before_placement_is_repaired_by_the_scheduler(
        make_cloud: Callable[..., stackcore.Cloud], image_file: str) -> None:
    """evacuate_server cut off between its intent and the scheduler (its process gone): the
    source host is down, so the scheduler ends it once left so for rpc_call_timeout."""
    from stackcore.compute.placement.manager import SchedulerManager

    cloud = make_cloud(fake_hosts=1, overrides={"DEFAULT": {"rpc_call_timeout": 1}})
    cloud.compute.create_flavor("small", 1, 512, 1)
    cloud.compute.register_image("img", image_file)
    server = cloud.compute.create_server("s", "small", "img")
    with cloud.db.transaction() as session:
        row = session.get(models.Instance, server.id)
        row.task_state = "evacuating"
        session.add(models.Migration(
            id="00000000-0000-0000-0000-0000000000e1", instance_uuid=server.id,
            migration_type="evacuation", status="pre-migrating", source_host="compute-1",
            old_flavor_id=row.flavor_id, old_flavor=row.flavor, new_flavor_id=row.flavor_id,
            new_flavor=row.flavor, old_vm_state="active", disk_info={},
            source_attachments={}))
    scheduler = SchedulerManager(cloud.conf, cloud.db)
    assert scheduler.reconcile_unplaced_evacuations() == []  # first seen now
    repaired = wait_until(scheduler.reconcile_unplaced_evacuations, 30,
                          "the cut-off evacuation repaired")
    assert repaired == [server.id]
    after = cloud.compute.get_server(server.id)
    assert (after.status, after.task_state, after.host) == ("ACTIVE", None, "compute-1")
    assert after.fault.step == "evacuate" and "cut off before a host was chosen" in \
        after.fault.message, after.fault
    [migration] = cloud.compute.list_server_migrations(server.id)
    assert migration.status == "error", migration
    with cloud.db.read() as session:
        claims = {a.instance_uuid: a.host
                  for a in session.execute(sa.select(models.Allocation)).scalars()}
    assert claims == {server.id: "compute-1"}, claims
