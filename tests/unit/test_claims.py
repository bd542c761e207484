"""Concurrent placements never overcommit a host (threads on SQLite)."""

from __future__ import annotations

import concurrent.futures

import sqlalchemy as sa

from stackcore.compute import models


def test_concurrent_builds_never_overcommit(make_cloud, image_file) -> None:
    # 2 hosts x 16 vCPUs x ratio 1.0 = room for exactly 32 one-vCPU servers.
    cloud = make_cloud(fake_hosts=2, overrides={"scheduler": {"cpu_allocation_ratio": 1.0}})
    cloud.compute.create_flavor("one", 1, 64, 0)
    cloud.compute.register_image("img", image_file)

    def boot(i: int) -> str:
        return cloud.compute.create_server(f"s{i}", "one", "img").status

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(boot, range(40)))
    assert statuses.count("ACTIVE") == 32
    assert statuses.count("ERROR") == 8
    for host in cloud.compute.list_hosts():
        assert host.allocated["vcpus"] == 16
    with cloud.db.transaction() as session:
        per_host = dict(session.execute(
            sa.select(models.Allocation.host, sa.func.sum(models.Allocation.vcpus))
            .group_by(models.Allocation.host)).all())
    assert per_host == {"compute-1": 16, "compute-2": 16}
