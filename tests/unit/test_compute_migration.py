"""Resize and cold migration through cloud.compute on the fake (two hosts in one process):
claims on both hosts until confirm or revert, ports and volumes moved, rollback of a failed
step, refusals, restarts in the middle (stackcore.compute.migration)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

import stackcore
from stackcore import exception
from stackcore.compute import fake, models
from stackcore.compute.objects import PowerState
from tests.conftest import wait_until


def _cloud(make_cloud, image_file, hosts=2, overrides_rpc=False, **compute):
    overrides = {"compute": compute} if compute else {}
    fail = compute.pop("fail_on", None)
    if fail:
        overrides["fake_hypervisor"] = {"fail_on": fail}
    if overrides_rpc:  # the orphans' grace: one second
        overrides["DEFAULT"] = {"rpc_call_timeout": 1}
    cloud = make_cloud(fake_hosts=hosts, overrides=overrides)
    cloud.compute.create_flavor("small", 1, 512, 1)
    cloud.compute.create_flavor("large", 2, 1024, 2)
    cloud.compute.create_flavor("tiny-disk", 1, 256, 0)
    cloud.compute.register_image("img", image_file)
    return cloud


def _wired(cloud):
    """A server on a VXLAN port with a volume attached at boot."""
    network = cloud.network.create_network("net", network_type="vxlan")
    cloud.network.create_subnet(network.id, "10.0.0.0/24")
    volume = cloud.volume.create(1)
    server = cloud.compute.create_server("s", "small", "img",
                                         networks=[{"network_id": network.id}],
                                         volumes=[volume.id])
    assert server.status == "ACTIVE", server.fault
    return server, volume


def _domains(cloud, host):
    return fake.backend_for(cloud.conf.state_path, host).domains


def _allocations(cloud):
    """{consumer: (host, vcpus, memory_mb)} and {host: (alloc_vcpus, alloc_memory_mb)}."""
    with cloud.db.read() as session:
        allocs = {a.instance_uuid: (a.host, a.vcpus, a.memory_mb) for a in session.execute(
            sa.select(models.Allocation)).scalars()}
        nodes = {n.host: (n.alloc_vcpus, n.alloc_memory_mb) for n in session.execute(
            sa.select(models.ComputeNode)).scalars()}
    return allocs, nodes


def _other(host):
    return "compute-2" if host == "compute-1" else "compute-1"


def _attachments(cloud, volume_id):
    return sorted((a.instance_uuid, a.host) for a in cloud.volume.get(volume_id).attachments)


def test_resize_holds_both_claims_until_confirm(make_cloud, image_file) -> None:
    cloud = _cloud(make_cloud, image_file)
    server, volume = _wired(cloud)
    source = server.host
    port = cloud.network.list_ports(device_id=server.id)[0]

    resized = cloud.compute.resize_server(server.id, "large")

    dest = _other(source)
    assert (resized.status, resized.task_state, resized.fault) == ("RESIZED", None, None)
    assert (resized.host, resized.flavor.name) == (dest, "large")
    domain = _domains(cloud, dest)[server.id]
    assert (domain.power_state, domain.flavor["vcpus"], domain.flavor["ram_mb"]) == \
        (PowerState.RUNNING, 2, 1024), domain
    assert _domains(cloud, source)[server.id].power_state is PowerState.SHUTDOWN  # kept
    [migration] = cloud.compute.list_server_migrations(server.id)
    assert (migration.status, migration.source_host, migration.dest_host,
            migration.migration_type) == ("finished", source, dest, "resize")
    allocs, nodes = _allocations(cloud)
    assert allocs == {server.id: (dest, 2, 1024), migration.id: (source, 1, 512)}, allocs
    assert nodes == {dest: (2, 1024), source: (1, 512)}, nodes
    moved = cloud.network.get_port(port.id)
    assert (moved.host, moved.fixed_ips, moved.mac_address) == \
        (dest, port.fixed_ips, port.mac_address)
    assert [v["id"] for v in domain.vifs] == [port.id]
    assert domain.volumes["/dev/vdb"]["data"]["volume_id"] == volume.id
    # the volume never looks free: both hosts hold an attachment until confirm
    assert cloud.volume.get(volume.id).status == "in-use"
    assert _attachments(cloud, volume.id) == sorted([(server.id, source), (server.id, dest)])

    confirmed = cloud.compute.confirm_resize(server.id)

    assert (confirmed.status, confirmed.task_state, confirmed.fault) == ("ACTIVE", None, None)
    assert server.id not in _domains(cloud, source)
    allocs, nodes = _allocations(cloud)
    assert allocs == {server.id: (dest, 2, 1024)}, allocs
    assert nodes == {dest: (2, 1024), source: (0, 0)}, nodes
    assert _attachments(cloud, volume.id) == [(server.id, dest)]
    assert cloud.compute.list_server_migrations(server.id)[0].status == "confirmed"
    with cloud.db.read() as session:
        row = session.get(models.Instance, server.id)
        assert (row.vcpus, row.memory_mb) == (2, 1024)
    cloud.compute.delete_server(server.id)
    assert _allocations(cloud)[0] == {}
    assert cloud.volume.get(volume.id).status == "available"


def test_revert_brings_the_server_back_as_it_was(make_cloud, image_file) -> None:
    cloud = _cloud(make_cloud, image_file)
    server, volume = _wired(cloud)
    source = server.host
    port = cloud.network.list_ports(device_id=server.id)[0]
    cloud.compute.resize_server(server.id, "large")

    reverted = cloud.compute.revert_resize(server.id)

    assert (reverted.status, reverted.task_state, reverted.fault) == ("ACTIVE", None, None)
    assert (reverted.host, reverted.flavor.name) == (source, "small")
    assert server.id not in _domains(cloud, _other(source))
    domain = _domains(cloud, source)[server.id]
    assert (domain.power_state, domain.flavor["vcpus"]) == (PowerState.RUNNING, 1)
    assert domain.volumes["/dev/vdb"]["data"]["volume_id"] == volume.id
    allocs, nodes = _allocations(cloud)
    assert allocs == {server.id: (source, 1, 512)}, allocs
    assert nodes == {source: (1, 512), _other(source): (0, 0)}, nodes
    assert cloud.network.get_port(port.id).host == source
    assert _attachments(cloud, volume.id) == [(server.id, source)]
    assert cloud.compute.list_server_migrations(server.id)[0].status == "reverted"
    with cloud.db.read() as session:
        row = session.get(models.Instance, server.id)
        assert (row.vcpus, row.memory_mb) == (1, 512)


def test_cold_migration_of_a_stopped_server_stays_stopped(make_cloud, image_file) -> None:
    cloud = _cloud(make_cloud, image_file)
    server = cloud.compute.create_server("s", "small", "img")
    cloud.compute.stop_server(server.id)

    migrated = cloud.compute.migrate_server(server.id)

    assert (migrated.status, migrated.host, migrated.flavor.name) == \
        ("RESIZED", _other(server.host), "small")
    assert _domains(cloud, migrated.host)[server.id].power_state is PowerState.SHUTDOWN
    assert cloud.compute.list_server_migrations(server.id)[0].migration_type == "migration"
    assert cloud.compute.confirm_resize(server.id).status == "STOPPED"


def test_same_host_resize_only_when_allowed(make_cloud, image_file) -> None:
    cloud = _cloud(make_cloud, image_file, hosts=1)
    server = cloud.compute.create_server("s", "small", "img")
    with pytest.raises(exception.NoValidHost) as caught:
        cloud.compute.resize_server(server.id, "large")
    after = cloud.compute.get_server(server.id)
    assert (after.status, after.task_state, after.flavor.name) == ("ACTIVE", None, "small")
    assert after.fault.step == "resize" and "no valid host" in after.fault.message, caught.value
    assert _allocations(cloud)[0] == {server.id: ("compute-1", 1, 512)}
    assert cloud.compute.list_server_migrations(server.id)[0].status == "error"

    allowed = cloud
    allowed.conf.set_override("allow_resize_to_same_host", True, "compute")
    allowed.compute.delete_server(server.id)
    server = allowed.compute.create_server("s2", "small", "img")
    resized = allowed.compute.resize_server(server.id, "large")
    assert (resized.status, resized.host) == ("RESIZED", "compute-1")
    nodes = _allocations(allowed)[1]
    assert nodes == {"compute-1": (3, 1536)}, nodes  # both flavors held until confirm
    reverted = allowed.compute.revert_resize(server.id)
    assert (reverted.status, reverted.flavor.name) == ("ACTIVE", "small")
    assert _domains(allowed, "compute-1")[server.id].flavor["vcpus"] == 1
    assert _allocations(allowed)[1] == {"compute-1": (1, 512)}
    allowed.compute.resize_server(server.id, "large")
    assert allowed.compute.confirm_resize(server.id).flavor.name == "large"
    assert _domains(allowed, "compute-1")[server.id].flavor["vcpus"] == 2
    assert _allocations(allowed)[1] == {"compute-1": (2, 1024)}


@pytest.mark.parametrize("step", ["migrate_disk_and_power_off", "finish_migration"])
def test_a_failed_step_is_rolled_back(make_cloud, image_file, step) -> None:
    cloud = _cloud(make_cloud, image_file, fail_on=[step])
    server, volume = _wired(cloud)
    port = cloud.network.list_ports(device_id=server.id)[0]

    after = cloud.compute.resize_server(server.id, "large")

    assert (after.status, after.task_state, after.host, after.flavor.name) == \
        ("ACTIVE", None, server.host, "small"), after.fault
    assert after.fault.step == step and "injected failure" in after.fault.message
    assert server.id not in _domains(cloud, _other(server.host))
    domain = _domains(cloud, server.host)[server.id]
    assert (domain.power_state, domain.flavor["vcpus"]) == (PowerState.RUNNING, 1)
    assert _allocations(cloud)[0] == {server.id: (server.host, 1, 512)}
    assert cloud.network.get_port(port.id).host == server.host
    assert _attachments(cloud, volume.id) == [(server.id, server.host)]
    [migration] = cloud.compute.list_server_migrations(server.id)
    assert migration.status == "error" and step in migration.error


def test_a_failed_revert_on_the_source_is_error_there(make_cloud, image_file) -> None:
    cloud = _cloud(make_cloud, image_file, fail_on=["finish_revert_migration"])
    server = cloud.compute.create_server("s", "small", "img")
    cloud.compute.resize_server(server.id, "large")
    after = cloud.compute.revert_resize(server.id)
    assert (after.status, after.host, after.fault.step) == \
        ("ERROR", server.host, "finish_revert_migration")
    assert _allocations(cloud)[0] == {server.id: (server.host, 1, 512)}
    cloud.compute.delete_server(server.id)
    assert _allocations(cloud)[0] == {}


def test_a_failed_confirm_stays_resized_and_can_be_retried(make_cloud, image_file) -> None:
    cloud = _cloud(make_cloud, image_file, fail_on=["confirm_migration"])
    server = cloud.compute.create_server("s", "small", "img")
    cloud.compute.resize_server(server.id, "large")
    after = cloud.compute.confirm_resize(server.id)
    assert (after.status, after.task_state, after.fault.step) == \
        ("RESIZED", None, "confirm_migration")
    cloud.conf.set_override("fail_on", [], "fake_hypervisor")
    assert cloud.compute.confirm_resize(server.id).status == "ACTIVE"
    assert server.id not in _domains(cloud, server.host)


def test_refusals_change_nothing(make_cloud, image_file) -> None:
    cloud = _cloud(make_cloud, image_file)
    server = cloud.compute.create_server("s", "small", "img")
    cases = [
        (lambda: cloud.compute.resize_server(server.id, "small"), exception.Invalid,
         "already has flavor 'small'"),
        (lambda: cloud.compute.resize_server(server.id, "tiny-disk"), exception.Invalid,
         "disks never shrink"),
        (lambda: cloud.compute.resize_server(server.id, "nope"), exception.NotFound, "nope"),
        (lambda: cloud.compute.confirm_resize(server.id), exception.InvalidState,
         "not resized"),
        (lambda: cloud.compute.revert_resize(server.id), exception.InvalidState,
         "not resized"),
    ]
    for call, error, message in cases:
        with pytest.raises(error, match=message):
            call()
    cloud.compute.pause_server(server.id)
    with pytest.raises(exception.InvalidState, match="while it is paused"):
        cloud.compute.resize_server(server.id, "large")
    after = cloud.compute.get_server(server.id)
    assert (after.status, after.task_state, after.fault, after.flavor.name) == \
        ("PAUSED", None, None, "small")
    assert cloud.compute.list_server_migrations(server.id) == []
    assert _allocations(cloud)[0] == {server.id: (server.host, 1, 512)}


def test_deleting_a_resized_server_confirms_first(make_cloud, image_file) -> None:
    cloud = _cloud(make_cloud, image_file)
    server, volume = _wired(cloud)
    cloud.compute.resize_server(server.id, "large")
    cloud.compute.delete_server(server.id)
    assert cloud.compute.get_server(server.id, include_deleted=True).status == "DELETED"
    assert server.id not in _domains(cloud, "compute-1")
    assert server.id not in _domains(cloud, "compute-2")
    assert _allocations(cloud)[0] == {}
    assert cloud.volume.get(volume.id).status == "available"
    assert cloud.network.list_ports(device_id=server.id) == []


def test_a_second_attachment_is_only_for_the_same_server(make_cloud, image_file) -> None:
    """The volume side of a migration: an in-use volume takes a second attachment for the
    server that holds it, and for no one else."""
    cloud = _cloud(make_cloud, image_file)
    server, volume = _wired(cloud)
    connector = {"host": "elsewhere", "initiator": "iqn.2010-10.test:x"}
    with pytest.raises(exception.InvalidState, match="not a multiattach volume"):
        cloud.volume.attach(volume.id, connector, "00000000-0000-0000-0000-000000000001")
    info = cloud.volume.attach(volume.id, connector, server.id)
    assert len(cloud.volume.get(volume.id).attachments) == 2
    cloud.volume.detach_from_server(volume.id, info["attachment_id"], server.id)
    assert _attachments(cloud, volume.id) == [(server.id, server.host)]


# --- restarts ----------------------------------------------------------------------------


@pytest.fixture
def restartable(tmp_path, image_file):
    overrides = {"DEFAULT": {"state_path": str(tmp_path / "state"), "periodic_interval": 3600}}
    clouds = []

    def start():
        cloud = stackcore.Cloud(fake_hosts=2, overrides=overrides)
        clouds.append(cloud)
        return cloud

    first = start()
    first.compute.create_flavor("small", 1, 512, 1)
    first.compute.create_flavor("large", 2, 1024, 2)
    first.compute.register_image("img", image_file)
    yield first, start
    for cloud in clouds:
        cloud.close()


def _set_migration(cloud, server_id, status, task):
    with cloud.db.transaction() as session:
        session.execute(sa.update(models.Migration)
                        .where(models.Migration.instance_uuid == server_id)
                        .values(status=status))
        session.execute(sa.update(models.Instance).where(models.Instance.uuid == server_id)
                        .values(task_state=task, vm_state="active"))


def test_a_confirm_interrupted_by_a_restart_is_finished(restartable) -> None:
    cloud, restart = restartable
    server = cloud.compute.create_server("s", "small", "img")
    cloud.compute.resize_server(server.id, "large")
    _set_migration(cloud, server.id, "confirming", "resize_confirming")
    with cloud.db.transaction() as session:  # the row as confirm left it: still resized
        session.execute(sa.update(models.Instance).where(models.Instance.uuid == server.id)
                        .values(vm_state="resized"))
    cloud.close()
    again = restart()
    after = again.compute.get_server(server.id)
    assert (after.status, after.task_state) == ("ACTIVE", None)
    assert server.id not in _domains(again, server.host)
    assert again.compute.list_server_migrations(server.id)[0].status == "confirmed"
    assert _allocations(again)[0] == {server.id: (_other(server.host), 2, 1024)}


def test_a_finish_interrupted_by_a_restart_is_rolled_back(restartable) -> None:
    cloud, restart = restartable
    server = cloud.compute.create_server("s", "small", "img")
    cloud.compute.resize_server(server.id, "large")
    # as if the destination died in finish_migration: the row still the source's
    with cloud.db.transaction() as session:
        migration = session.execute(sa.select(models.Migration)).scalar_one()
        migration.status = "post-migrating"
        session.execute(sa.update(models.Instance).where(models.Instance.uuid == server.id)
                        .values(task_state="resize_finish", vm_state="active",
                                host=server.host, flavor=migration.old_flavor,
                                flavor_id=migration.old_flavor_id))
    cloud.close()
    again = restart()
    # the destination undoes its part at start-up and casts the rest to the source
    after = again.compute.wait_for_server(server.id, ("ACTIVE", "ERROR"), 30)
    assert (after.status, after.task_state, after.host, after.flavor.name) == \
        ("ACTIVE", None, server.host, "small")
    assert "interrupted" in after.fault.message
    assert server.id not in _domains(again, _other(server.host))
    assert _domains(again, server.host)[server.id].power_state is PowerState.RUNNING
    assert _allocations(again)[0] == {server.id: (server.host, 1, 512)}
    assert again.compute.list_server_migrations(server.id)[0].status == "error"


# --- a server left with no host ----------------------------------------------------------


def test_a_server_left_scheduling_with_no_host_becomes_error(make_cloud, image_file) -> None:
    """create_server cut off between its intent and the claim (its process gone): the
    scheduler fails the server once it has been left so for rpc_call_timeout."""
    import uuid as _uuid

    from stackcore.compute.placement.manager import SchedulerManager

    cloud = _cloud(make_cloud, image_file, overrides_rpc=True)
    orphan = str(_uuid.uuid4())
    with cloud.db.transaction() as session:
        session.add(models.Instance(
            uuid=orphan, name="cut-off", project_id="admin", user_id="admin",
            flavor_id="x", flavor={"name": "small", "vcpus": 1, "ram_mb": 512, "disk_gb": 1},
            image_id="x", vm_state="building", task_state="scheduling"))
    placed = cloud.compute.create_server("placed", "small", "img")
    scheduler = SchedulerManager(cloud.conf, cloud.db)
    assert scheduler.reconcile_unplaced() == []  # first seen now: not an orphan yet
    failed = wait_until(scheduler.reconcile_unplaced, 30, "the unplaced server failed")
    assert failed == [orphan]
    after = cloud.compute.get_server(orphan)
    assert (after.status, after.task_state, after.fault.step) == ("ERROR", None, "schedule")
    assert "no host was claimed" in after.fault.message
    assert cloud.compute.get_server(placed.id).status == "ACTIVE"
    assert orphan not in _allocations(cloud)[0]
