"""Every console-script service ends within 5 s of one SIGTERM, idle or busy, and what it left
unfinished is reconciled by its next start; a service process frozen for less than its down
window is never declared down (PostgreSQL + RabbitMQ, one process per service).

The L2 agents' console scripts are checked the same way with their backends, in
``network_agents/test_ovs_agent.py`` and ``network_agents/test_linuxbridge_agent.py``.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

import stackcore
from stackcore.compute import models
from tests.conftest import wait_until
from tests.functional.processes import terminate

pytestmark = [pytest.mark.real, pytest.mark.postgres, pytest.mark.rabbit]

def _config(path: Path, pg_url: str, rabbit: str, state: Path, hosts: str = "") -> str:
    path.write_text(
        "[DEFAULT]\n"
        f"transport_url = {rabbit}\n"
        "report_interval = 1\nservice_down_time = 5\nrpc_call_timeout = 10\n"
        f"state_path = {state}\n"
        "[database]\n"
        f"connection = {pg_url}\n"
        "[compute]\n"
        f"hosts = {hosts}\n")
    return str(path)


def _start(name: str, config: str, log: Path) -> subprocess.Popen[str]:
    """``stackcore service NAME``, once it says it runs (60 s at most)."""
    with open(log, "a") as errors:
        proc = subprocess.Popen(
            [sys.executable, "-m", "stackcore.cli.main", "service", name, "--config-file",
             config], stdout=subprocess.PIPE, stderr=errors, stdin=subprocess.DEVNULL,
            text=True)
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 60)
    line = proc.stdout.readline() if ready else ""
    if "running" not in line:
        proc.kill()
        proc.wait()
        pytest.fail(f"{name} service did not start: {line!r}\n{log.read_text()[-3000:]}")
    return proc


@pytest.fixture
def split(tmp_path: Path, pg_url: str, rabbit_url: str):
    rabbit = rabbit_url
    configs = {
        "scheduler": _config(tmp_path / "sched.conf", pg_url, rabbit, tmp_path / "s"),
        "compute": _config(tmp_path / "comp.conf", pg_url, rabbit, tmp_path / "c",
                           "term-1,term-2"),
        "volume": _config(tmp_path / "vol.conf", pg_url, rabbit, tmp_path / "v"),
        "network": _config(tmp_path / "net.conf", pg_url, rabbit, tmp_path / "n"),
    }
    api = stackcore.Cloud(_config(tmp_path / "api.conf", pg_url, rabbit, tmp_path / "a"),
                          services=())
    procs: dict[str, subprocess.Popen[str]] = {}
    yield api, configs, procs, tmp_path / "services.log"
    api.close()
    for proc in procs.values():
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_each_idle_service_exits_within_the_deadline(split) -> None:
    _api, configs, procs, log = split
    took = {}
    for name in ("scheduler", "compute", "volume", "network"):
        procs[name] = _start(name, configs[name], log)
    for name, proc in procs.items():
        took[name] = terminate(proc, f"idle {name} service", log)
    print("\nSIGTERM -> exit, idle: " + ", ".join(f"{n} {t:.2f} s" for n, t in took.items()))


def test_busy_compute_and_scheduler_exit_within_the_deadline_and_restart_clean(
        split, image_file: str) -> None:
    """SIGTERM while servers are being placed and built: both exit in time; after a restart
    no server is left building, every claim is a server's on its host, every ACTIVE server
    has its claim and the hosts' counters equal the claims."""
    api, configs, procs, log = split
    procs["scheduler"] = _start("scheduler", configs["scheduler"], log)
    procs["compute"] = _start("compute", configs["compute"], log)
    api.compute.create_flavor("small", 1, 256, 1)
    api.compute.register_image("img", image_file)
    created: list[str] = []
    errors: list[BaseException] = []
    stopping = threading.Event()

    def create() -> None:
        while not stopping.is_set() and len(created) < 30:
            try:
                created.append(api.compute.create_server("busy", "small", "img", wait=False).id)
            except BaseException as err:
                errors.append(err)
                return

    threads = [threading.Thread(target=create) for _ in range(3)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60
    while len(created) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    took = {"compute": terminate(procs["compute"], "busy compute service", log),
            "scheduler": terminate(procs["scheduler"], "busy scheduler service", log)}
    stopping.set()
    for thread in threads:
        thread.join(120)  # a request the scheduler never answered times out (10 s)
    assert not errors, errors
    procs["scheduler"] = _start("scheduler", configs["scheduler"], log)
    procs["compute"] = _start("compute", configs["compute"], log)  # init_host reconciles
    servers = [api.compute.get_server(i) for i in created]
    stuck = [(s.id, s.status, s.task_state, s.host) for s in servers if s.status == "BUILDING"]
    assert not stuck, f"servers left building after the restart: {stuck}"
    with api.db.transaction() as session:
        claims = dict(session.execute(sa.select(models.Allocation.instance_uuid,
                                                models.Allocation.host)).all())
        counters = {n.host: n.alloc_instances for n in session.execute(
            sa.select(models.ComputeNode)).scalars()}
    placed = {s.id: s.host for s in servers if s.host is not None}
    assert all(placed.get(i) == h for i, h in claims.items()), \
        f"claims {claims} not all of servers on their host {placed}"
    assert all(i in claims for i, s in zip(created, servers, strict=True)
               if s.status == "ACTIVE"), "an ACTIVE server without its claim"
    per_host = {h: sum(1 for c in claims.values() if c == h) for h in counters}
    assert counters == per_host, f"host counters {counters} != claims per host {per_host}"
    print(f"\nSIGTERM -> exit, busy ({len(created)} servers asked for): "
          + ", ".join(f"{n} {t:.2f} s" for n, t in took.items()))
    for server in servers:
        api.compute.delete_server(server.id)


def test_volume_service_copying_images_exits_within_the_deadline(split, tmp_path) -> None:
    """SIGTERM while image copies into new volumes run: exit in time, and the next start
    leaves no volume creating or downloading."""
    api, configs, procs, log = split
    procs["volume"] = _start("volume", configs["volume"], log)
    image = tmp_path / "data.raw"
    with open(image, "wb") as handle:
        for _ in range(48):
            handle.write(os.urandom(1024 * 1024))
    img = api.compute.register_image("data", str(image), "raw")
    ids = [api.volume.create(1, name=f"t-{i}", image_id=img.id, wait=False).id
           for i in range(8)]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if "downloading" in [api.volume.get(i).status for i in ids]:
            break
        time.sleep(0.02)
    took = terminate(procs["volume"], "volume service copying images", log)
    procs["volume"] = _start("volume", configs["volume"], log)
    statuses = sorted(api.volume.get(i).status for i in ids)
    assert set(statuses) <= {"available", "error"}, statuses
    print(f"\nSIGTERM -> exit, volume service mid-copy: {took:.2f} s; after restart {statuses}")
    for volume_id in ids:
        api.volume.delete(volume_id)


def test_service_that_cannot_start_exits_at_once_with_the_reason(tmp_path) -> None:
    config = tmp_path / "bad.conf"
    config.write_text("[DEFAULT]\nreport_interval = 30\nservice_down_time = 60\n")
    result = subprocess.run(
        [sys.executable, "-m", "stackcore.cli.main", "service", "scheduler", "--config-file",
         str(config)], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1, result
    assert "service_down_time = 60 must be at least 3 x [DEFAULT] report_interval" \
        in result.stderr, result.stderr


def test_stopped_process_is_not_declared_down_within_its_window(split) -> None:
    """The volume service's process is frozen (SIGSTOP) for 3 s - less than its down window
    (service_down_time 5 s, heartbeats every 1 s) minus one interval: sampled every 0.1 s
    from another process, it is never declared down, before, during or after."""
    api, configs, procs, log = split
    procs["volume"] = _start("volume", configs["volume"], log)
    wait_until(lambda: [p for p in api.volume.list_pools() if p.up], 30, "the pool up")
    down: list[float] = []
    started = time.monotonic()

    def sample(seconds: float) -> None:
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            if not all(p.up for p in api.volume.list_pools()):
                down.append(round(time.monotonic() - started, 2))
            time.sleep(0.1)

    sample(1.5)
    procs["volume"].send_signal(signal.SIGSTOP)
    try:
        sample(3.0)
    finally:
        procs["volume"].send_signal(signal.SIGCONT)
    sample(3.0)
    assert down == [], f"declared down at {down} s (frozen from 1.5 s to 4.5 s)"
    terminate(procs["volume"], "volume service after SIGSTOP/SIGCONT", log)
