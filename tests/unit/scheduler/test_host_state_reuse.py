"""[scheduler] host_state_max_age: a scheduler reusing the host states it read keeps them
current with its own claims, and a host another scheduler filled meanwhile is refused by the
claim (never overcommitted) and counted full from then on."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from stackcore import conf as sc_conf
from stackcore import exception
from stackcore.compute import models
from stackcore.compute.placement.manager import SchedulerManager
from stackcore.db import api as db_api

_PATH = os.path.join(os.path.dirname(__file__), "..", "..", "..", "benchmarks",
                     "scheduler_claims.py")
REQUEST = {"vcpus": 1, "memory_mb": 1024, "disk_gb": 10}


def _bench() -> Any:
    spec = importlib.util.spec_from_file_location("scheduler_claims", _PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _manager(db: db_api.Database, max_age: float) -> SchedulerManager:
    conf = sc_conf.load([])
    for name, value in (("cpu_allocation_ratio", 1.0), ("ram_allocation_ratio", 1.0),
                        ("disk_allocation_ratio", 1.0), ("host_state_max_age", max_age)):
        conf.set_override(name, value, group="scheduler")
    conf.set_override("service_down_time", 3600)
    return SchedulerManager(conf, db)


def test_reused_states_follow_own_claims_and_never_overcommit(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/s.sqlite"
    bench = _bench()
    bench.register_hosts(url, 2)  # 2 hosts x 3 vCPUs: room for 6
    servers = bench.register_servers(url, 7)
    db = db_api.Database(url)
    try:
        reusing, fresh = _manager(db, 3600.0), _manager(db, 0.0)
        reads = []
        read = reusing.host_states
        reusing.host_states = lambda: reads.append(1) or read()  # type: ignore[method-assign]
        placed = [reusing.select_destinations(s, REQUEST)["host"] for s in servers[:2]]
        # the other scheduler fills 3 of the 4 places left
        placed += [fresh.select_destinations(s, REQUEST)["host"] for s in servers[2:5]]
        placed.append(reusing.select_destinations(servers[5], REQUEST)["host"])  # the last one
        try:
            reusing.select_destinations(servers[6], REQUEST)
            raise AssertionError("a 7th server was placed in room for 6")
        except exception.NoValidHost as err:
            assert "concurrent request" in str(err) or "no valid host" in str(err), err
        assert len(reads) == 1, f"the reusing scheduler read the host states {len(reads)} times"
        with db.transaction() as session:
            nodes = session.execute(sa.select(models.ComputeNode)).scalars().all()
            allocated = dict(session.execute(
                sa.select(models.Allocation.host, sa.func.sum(models.Allocation.vcpus))
                .group_by(models.Allocation.host)).all())
        assert sorted(placed) == sorted(n.host for n in nodes for _ in range(3)), placed
        assert all(n.alloc_vcpus == n.vcpus == allocated[n.host] for n in nodes), \
            [(n.host, n.alloc_vcpus, allocated.get(n.host)) for n in nodes]
        # the reusing scheduler's states now count both hosts full
        cached = reusing._states
        assert cached is not None and list(cached.alloc_vcpus) == [3.0, 3.0], \
            list(cached.alloc_vcpus) if cached is not None else None
    finally:
        db.dispose()
