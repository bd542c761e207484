"""Service liveness: heartbeats never wait for the service's work, the down time is a checked
multiple of the heartbeat interval, and a starved process is not declared down."""

from __future__ import annotations

import threading
import time

import pytest

from stackcore import exception, service
from stackcore.compute import fake

FAST = {"report_interval": 1, "service_down_time": 3, "periodic_interval": 1}


def test_down_time_below_three_heartbeats_is_refused_at_start_naming_both_options(
        make_cloud) -> None:
    with pytest.raises(exception.ConfigError) as err:
        make_cloud(overrides={"DEFAULT": {"report_interval": 3600, "service_down_time": 60}})
    assert "[DEFAULT] service_down_time = 60 must be at least 3 x [DEFAULT] " \
           "report_interval (= 10800)" in str(err.value)


def test_local_agent_down_time_is_checked_against_its_report_interval(make_cloud) -> None:
    pytest.importorskip("stackcore_drivers")
    with pytest.raises(exception.ConfigError, match=r"\[network\] agent_down_time = 10 must "
                       r"be at least 3 x \[agent\] report_interval \(= 15\)"):
        make_cloud(fake_hosts=0, overrides={
            "network": {"local_agents": ["openvswitch"], "agent_down_time": 10},
            "agent": {"report_interval": 5}})


def test_slow_periodic_work_does_not_delay_heartbeats(make_cloud, monkeypatch) -> None:
    """The hypervisor's statistics take longer than the whole down time: the host stays up
    all along (before, the heartbeat ran after the periodic tasks, in the same thread)."""
    cloud = make_cloud(fake_hosts=1, overrides={"DEFAULT": dict(FAST)})
    slow, entered, release = threading.Event(), threading.Event(), threading.Event()
    real = fake.FakeHypervisorDriver.get_available_resource

    def stats(self):
        if slow.is_set():
            entered.set()
            release.wait(30)
        return real(self)

    monkeypatch.setattr(fake.FakeHypervisorDriver, "get_available_resource", stats)
    slow.set()
    try:
        assert entered.wait(30), "the periodic task never ran"
        down = []
        until = time.monotonic() + 2 * cloud.conf.service_down_time
        while time.monotonic() < until:
            down += [h.host for h in cloud.compute.list_hosts() if not h.up]
            time.sleep(0.1)
    finally:
        slow.clear()
        release.set()
    assert down == [], f"declared down while its statistics were slow: {down[:3]}"


def test_gil_hog_threads_do_not_get_running_services_declared_down(make_cloud) -> None:
    """Four CPU-bound threads compete for the interpreter for twice the down time: every
    service of the cloud (scheduler, compute, volume, network) stays up throughout."""
    cloud = make_cloud(fake_hosts=2, overrides={"DEFAULT": dict(FAST)})
    stop = threading.Event()

    def hog() -> None:
        n = 0
        while not stop.is_set():
            n = (n * 31 + 7) % 1000003

    hogs = [threading.Thread(target=hog, daemon=True) for _ in range(4)]
    for thread in hogs:
        thread.start()
    down: list[str] = []
    samples = 0
    try:
        # At least twice the down time AND enough samples: on a loaded machine a sample (a
        # query competing with four hogs for the interpreter) may take seconds, and a test
        # that looked twice has not watched the services.
        until = time.monotonic() + 2 * cloud.conf.service_down_time
        while time.monotonic() < until or samples < 6:
            down += _down_services(cloud)
            samples += 1
            time.sleep(0.1)
    finally:
        stop.set()
        for thread in hogs:
            thread.join()
    assert samples > 5, f"only {samples} samples taken"
    assert down == [], f"declared down while the process was busy: {sorted(set(down))}"


def _down_services(cloud) -> list[str]:
    import sqlalchemy as sa

    from stackcore.db import models

    now = models.utcnow()
    with cloud.db.read() as session:  # a reader: not queued behind the heartbeats' writes
        rows = session.execute(sa.select(models.Service)).scalars().all()
    return [f"{r.binary}@{r.host}" for r in rows
            if not service.is_up(r.last_seen_at, cloud.conf.service_down_time, now)]
