"""Services split across processes over RabbitMQ and PostgreSQL, started by the console script."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

import stackcore
from stackcore.compute import models
from tests.conftest import wait_until

pytestmark = [pytest.mark.real, pytest.mark.postgres, pytest.mark.rabbit]


def _write_config(path: Path, pg_url: str, rabbit_url: str, hosts: str, state: Path,
                  hang_on: str = "") -> str:
    path.write_text(
        "[DEFAULT]\n"
        f"transport_url = {rabbit_url}\n"
        "report_interval = 1\n"
        "service_down_time = 5\n"
        f"state_path = {state}\n"
        "[database]\n"
        f"connection = {pg_url}\n"
        "[compute]\n"
        f"hosts = {hosts}\n"
        "[fake]\n"
        f"fake_hang_on = {hang_on}\n"
    )
    return str(path)


def _start(name: str, config: str, log: Path) -> subprocess.Popen[str]:
    """Start ``stackcore service NAME``; return once it says it is running (30 s at most)."""
    with open(log, "a") as errors:
        proc = subprocess.Popen(
            [sys.executable, "-m", "stackcore.cli.main", "service", name, "--config-file",
             config],
            stdout=subprocess.PIPE, stderr=errors, text=True,
        )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    line = proc.stdout.readline() if ready else ""
    if "running" not in line:
        proc.kill()
        pytest.fail(f"{name} service did not start: {line!r}\n{log.read_text()[-3000:]}")
    return proc


def _stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        proc.wait(30)


@pytest.fixture
def split_cloud(tmp_path, pg_url, rabbit_url):
    rabbit = rabbit_url
    configs = {
        "scheduler": _write_config(tmp_path / "sched.conf", pg_url, rabbit, "", tmp_path / "s"),
        "compute": _write_config(tmp_path / "comp.conf", pg_url, rabbit, "mp-1,mp-2",
                                 tmp_path / "c"),
        "api": _write_config(tmp_path / "api.conf", pg_url, rabbit, "", tmp_path / "a"),
    }
    log = tmp_path / "services.log"
    procs = {"scheduler": _start("scheduler", configs["scheduler"], log),
             "compute": _start("compute", configs["compute"], log)}
    api = stackcore.Cloud(configs["api"], services=())
    yield api, procs, configs, log
    api.close()
    for proc in procs.values():
        _stop(proc)


def test_server_lifecycle_across_processes(split_cloud, image_file) -> None:
    api, _, _, _ = split_cloud
    api.compute.create_flavor("small", 1, 256, 1)
    api.compute.register_image("img", image_file)
    servers = [api.compute.create_server(f"mp-{i}", "small", "img") for i in range(4)]
    assert {s.status for s in servers} == {"ACTIVE"}
    assert {s.host for s in servers} == {"mp-1", "mp-2"}
    assert api.compute.stop_server(servers[0].id).status == "STOPPED"
    assert api.compute.reboot_server(servers[1].id, "HARD").status == "ACTIVE"
    hosts = {h.host: h for h in api.compute.list_hosts()}
    assert hosts["mp-1"].up and hosts["mp-1"].reporting
    for server in servers:
        api.compute.delete_server(server.id)
    assert api.compute.list_servers() == []


def test_killed_compute_service_is_reconciled_on_restart(split_cloud, image_file) -> None:
    api, procs, configs, log = split_cloud
    api.compute.create_flavor("small", 1, 256, 1)
    api.compute.register_image("img", image_file)
    server = api.compute.create_server("victim", "small", "img")
    assert server.status == "ACTIVE"
    # Simulate a crash in the middle of a build: the row is BUILDING on this host when the
    # service dies with SIGKILL (no chance to clean up).
    with api.db.transaction() as session:
        session.execute(sa.update(models.Instance).where(models.Instance.uuid == server.id)
                        .values(vm_state="building", task_state="spawning"))
    procs["compute"].send_signal(signal.SIGKILL)
    procs["compute"].wait(10)
    wait_until(lambda: not any(h.up for h in api.compute.list_hosts()), 60,
               "the killed hosts reported down")
    procs["compute"] = _start("compute", configs["compute"], log)
    after = api.compute.get_server(server.id)
    assert after.status == "ERROR" and after.task_state is None
    assert "interrupted by a restart" in after.fault.message
    allocated = {h.host: h.allocated["instances"] for h in api.compute.list_hosts()}
    assert allocated == {"mp-1": 0, "mp-2": 0}
    api.compute.delete_server(server.id)


def _fake_volume_files(state: Path) -> set[str]:
    root = state / "fake-volumes" / "fake"
    return {p.name for p in root.glob("volume-*")} if root.exists() else set()


def test_killed_volume_service_is_reconciled_on_restart(split_cloud, tmp_path) -> None:
    """A volume service killed -9 while it copies images into new volumes: after the restart
    nothing is left creating/downloading, the copies that were under way are in error with a
    fault saying so, the volumes made before are untouched, the pool's claim is exactly what
    the available ones hold, and the backend holds exactly their files (the half-made ones
    were removed).

    Why the copies are held (``fake_hang_on``) rather than raced: polling for a moment when
    one copy is running and another done lost that race on a fast machine (every copy ended
    between two polls), so the kill lands at a known point instead - inside the driver's
    copy, after the volume was made and before its data was written."""
    from stackcore.volume import models as volume_models

    api, procs, _, log = split_cloud
    rabbit = api.conf.transport_url
    pg_url = api.conf.database.connection
    state = tmp_path / "v"
    normal = _write_config(tmp_path / "vol.conf", pg_url, rabbit, "", state)
    hanging = _write_config(tmp_path / "hang.conf", pg_url, rabbit, "", state,
                            hang_on="copy_image_to_volume")
    image = tmp_path / "data.raw"
    with open(image, "wb") as handle:  # real data, so a copy writes something
        handle.write(os.urandom(4 * 1024 * 1024))
    img = api.compute.register_image("data", str(image), "raw")

    procs["volume"] = _start("volume", normal, log)
    before = {api.volume.create(1, name=f"mp-before-{i}", image_id=img.id, wait=True).id
              for i in range(2)}
    procs["volume"].send_signal(signal.SIGTERM)
    procs["volume"].wait(30)

    procs["volume"] = _start("volume", hanging, log)
    during = [api.volume.create(1, name=f"mp-{i}", image_id=img.id, wait=False).id
              for i in range(3)]
    marker = state / "fake-volumes" / "fake" / "hung-copy_image_to_volume"
    wait_until(marker.exists, 60, f"a copy to stop inside the driver ({marker})")
    procs["volume"].send_signal(signal.SIGKILL)
    procs["volume"].wait(10)
    ids = sorted(before) + during
    transient = ("creating", "downloading")
    interrupted = {i for i in during if api.volume.get(i).status == "downloading"}
    assert interrupted, [api.volume.get(i).status for i in during]

    procs["volume"] = _start("volume", normal, log)  # init_host reconciles before serving
    wait_until(lambda: not any(api.volume.get(i).status in transient for i in ids), 60,
               "no volume left creating/downloading after the restart")
    volumes = {i: api.volume.get(i) for i in ids}
    statuses = {i: v.status for i, v in volumes.items()}
    assert set(statuses.values()) <= {"available", "error"}, statuses
    assert all(statuses[i] == "available" for i in before), statuses
    for volume_id in interrupted:
        volume = volumes[volume_id]
        assert volume.status == "error", statuses
        assert volume.fault is not None and "interrupted by a restart" in volume.fault.message, (
            volume_id, volume.fault)
    available = {i for i, status in statuses.items() if status == "available"}
    assert _fake_volume_files(state) == {f"volume-{i}" for i in available}
    with api.db.transaction() as session:
        claimed = session.execute(sa.select(sa.func.sum(
            volume_models.VolumePool.allocated_capacity_gb))).scalar_one()
    assert claimed == len(available)
    for volume_id in ids:
        api.volume.delete(volume_id)
    assert _fake_volume_files(state) == set()
