"""Services split across processes over RabbitMQ and PostgreSQL, started by the console script."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

import stackcore
from stackcore.compute import models
from tests.conftest import wait_until

pytestmark = [pytest.mark.real, pytest.mark.postgres, pytest.mark.rabbit]


def _write_config(path: Path, pg_url: str, rabbit_url: str, hosts: str, state: Path) -> str:
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
    nothing is left creating/downloading, every volume is available or in error, the pool's
    claim is exactly what the available ones hold, and the backend holds exactly their files
    (the half-written ones were removed)."""
    from stackcore.volume import models as volume_models

    api, procs, _, log = split_cloud
    rabbit = api.conf.transport_url
    pg_url = api.conf.database.connection
    state = tmp_path / "v"
    config = _write_config(tmp_path / "vol.conf", pg_url, rabbit, "", state)
    procs["volume"] = _start("volume", config, log)
    image = tmp_path / "data.raw"
    with open(image, "wb") as handle:  # real data, so each copy takes a moment
        for _ in range(48):
            handle.write(os.urandom(1024 * 1024))
    img = api.compute.register_image("data", str(image), "raw")
    ids = [api.volume.create(1, name=f"mp-{i}", image_id=img.id, wait=False).id
           for i in range(12)]
    transient = ("creating", "downloading")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        statuses = [api.volume.get(i).status for i in ids]
        if "available" in statuses and "downloading" in statuses:
            break
        time.sleep(0.02)
    else:
        pytest.fail(f"never saw a copy in progress: {statuses}")
    procs["volume"].send_signal(signal.SIGKILL)
    procs["volume"].wait(10)
    assert any(api.volume.get(i).status in transient for i in ids)

    procs["volume"] = _start("volume", config, log)  # init_host reconciles before serving
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        volumes = [api.volume.get(i) for i in ids]
        if not any(v.status in transient for v in volumes):
            break
        time.sleep(0.2)
    statuses = sorted(v.status for v in volumes)
    assert set(statuses) <= {"available", "error"}, statuses
    assert "error" in statuses  # the interrupted copies
    for volume in volumes:
        if volume.status == "error":
            assert "interrupted by a restart" in volume.fault.message
    available = {v.id for v in volumes if v.status == "available"}
    assert _fake_volume_files(state) == {f"volume-{i}" for i in available}
    with api.db.transaction() as session:
        claimed = session.execute(sa.select(sa.func.sum(
            volume_models.VolumePool.allocated_capacity_gb))).scalar_one()
    assert claimed == len(available)
    for volume_id in ids:
        api.volume.delete(volume_id)
    assert _fake_volume_files(state) == set()
