"""Start-up reconciliation: nothing survives a restart in a transient state."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

import stackcore
from stackcore.compute import fake, models
from stackcore.compute.objects import PowerState


@pytest.fixture
def restartable(tmp_path, image_file, database_url):
    """(first cloud, restart()) sharing one state_path, so the fake hypervisor and DB persist."""
    overrides = {"DEFAULT": {"state_path": str(tmp_path / "state"), "periodic_interval": 3600}}
    if database_url:
        overrides["database"] = {"connection": database_url}
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


def _set(cloud, server_id, **values):
    with cloud.db.transaction() as session:
        session.execute(sa.update(models.Instance).where(models.Instance.uuid == server_id)
                        .values(**values))


def _domains(cloud):
    return fake.backend_for(cloud.conf.state_path, "compute-1").domains


def test_building_becomes_error_with_claim_released_and_backend_cleaned(restartable):
    cloud, restart = restartable
    server = cloud.compute.create_server("s", "small", "img")
    _set(cloud, server.id, vm_state="building", task_state="spawning")
    cloud.close()
    again = restart()
    after = again.compute.get_server(server.id)
    assert after.status == "ERROR" and after.task_state is None
    assert "interrupted by a restart" in after.fault.message
    assert server.id not in _domains(again)
    assert again.compute.list_hosts()[0].allocated["instances"] == 0


def test_interrupted_delete_is_finished(restartable):
    cloud, restart = restartable
    server = cloud.compute.create_server("s", "small", "img")
    _set(cloud, server.id, task_state="deleting")
    cloud.close()
    again = restart()
    assert again.compute.get_server(server.id, include_deleted=True).status == "DELETED"
    assert server.id not in _domains(again)
    assert again.compute.list_hosts()[0].allocated["instances"] == 0


def test_interrupted_power_task_is_cleared_and_state_resynced(restartable):
    cloud, restart = restartable
    server = cloud.compute.create_server("s", "small", "img")
    _domains(cloud)[server.id].power_state = PowerState.SHUTDOWN
    _set(cloud, server.id, task_state="powering-off")
    cloud.close()
    after = restart().compute.get_server(server.id)
    assert after.status == "STOPPED" and after.task_state is None


def test_instance_missing_on_hypervisor_goes_to_error(restartable):
    cloud, restart = restartable
    server = cloud.compute.create_server("s", "small", "img")
    del _domains(cloud)[server.id]
    cloud.close()
    after = restart().compute.get_server(server.id)
    assert after.status == "ERROR"
    assert "missing on the hypervisor" in after.fault.message


def test_unknown_backend_instance_is_reported_not_destroyed(restartable):
    cloud, restart = restartable
    _domains(cloud)["11111111-2222-3333-4444-555555555555"] = fake._FakeDomain(PowerState.RUNNING)
    cloud.close()
    again = restart()
    host = again.compute.list_hosts()[0]
    assert host.stats["unknown_instances"] == ["11111111-2222-3333-4444-555555555555"]
    assert "11111111-2222-3333-4444-555555555555" in _domains(again)


def test_healthy_servers_are_untouched(restartable):
    cloud, restart = restartable
    server = cloud.compute.create_server("s", "small", "img")
    cloud.close()
    again = restart()
    after = again.compute.get_server(server.id)
    assert after.status == "ACTIVE" and after.fault is None
    assert again.compute.list_hosts()[0].allocated["instances"] == 1
