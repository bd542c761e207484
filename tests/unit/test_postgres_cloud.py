"""The compute slice on PostgreSQL, including claims from several processes at once."""

from __future__ import annotations

import multiprocessing

import pytest
import sqlalchemy as sa

import stackcore
from stackcore.compute import models

pytestmark = [pytest.mark.postgres, pytest.mark.real]


def test_config_file_points_at_postgresql(tmp_path, pg_url, image_file) -> None:
    path = tmp_path / "stackcore.conf"
    path.write_text(f"[DEFAULT]\nperiodic_interval = 3600\n[database]\nconnection = {pg_url}\n"
                    "[compute]\nhosts = h1\n")
    with stackcore.Cloud(str(path)) as cloud:
        assert cloud.db.dialect == "postgresql"
        cloud.compute.create_flavor("small", 1, 512, 1)
        cloud.compute.register_image("img", image_file)
        server = cloud.compute.create_server("pg <&>", "small", "img")
        assert server.status == "ACTIVE" and server.host == "h1"
        cloud.compute.delete_server(server.id)
        cloud.compute.delete_server(server.id)
        assert cloud.compute.list_servers() == []


def _place_many(url: str, state: str, worker: int, count: int, queue) -> None:
    # An API-only client in its own process: scheduler runs here, compute is elsewhere, so
    # this exercises the claim path (select_destinations) concurrently across processes.
    from stackcore.compute.placement.manager import SchedulerManager

    cloud = stackcore.Cloud(overrides={"database": {"connection": url},
                                       "scheduler": {"cpu_allocation_ratio": 1.0},
                                       "DEFAULT": {"state_path": state}}, services=())
    sched = SchedulerManager(cloud.conf, cloud.db)
    placed = 0
    import uuid as _uuid

    for _ in range(count):
        server_id = str(_uuid.uuid4())
        with cloud.db.transaction() as session:
            session.add(models.Instance(uuid=server_id, name=f"w{worker}", flavor_id="x",
                                        flavor={}, image_id="x", vm_state="building"))
        try:
            sched.select_destinations(server_id, {"vcpus": 1, "memory_mb": 64, "disk_gb": 0})
            placed += 1
        except stackcore.exception.NoValidHost:
            pass
    cloud.close()
    queue.put(placed)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_claims_across_processes_never_overcommit(make_cloud, pg_url, tmp_path) -> None:
    # 3 hosts x 16 vCPUs at ratio 1.0 = 48 slots; 4 processes try 20 placements each.
    base = make_cloud(fake_hosts=3, overrides={"database": {"connection": pg_url},
                                               "scheduler": {"cpu_allocation_ratio": 1.0}})
    del base
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_place_many, args=(pg_url, str(tmp_path / f"s{i}"), i, 20, queue))
             for i in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
        assert proc.exitcode == 0
    placed = sum(queue.get() for _ in procs)
    assert placed == 48
    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(models.ComputeNode.host, models.ComputeNode.alloc_vcpus,
                                      models.ComputeNode.vcpus)).all()
        alloc = dict(conn.execute(sa.select(models.Allocation.host,
                                            sa.func.sum(models.Allocation.vcpus))
                                  .group_by(models.Allocation.host)).all())
    engine.dispose()
    for host, used, total in rows:
        assert used == total == 16
        assert alloc[host] == 16
