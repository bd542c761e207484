"""Concurrent placements over PostgreSQL: zero overcommit, and throughput.

    . /var/lib/stackcore-backends/env.sh   # STACKCORE_TEST_PG_URL (tools/backends/up.sh postgres)
    python benchmarks/scheduler_claims.py [--hosts 50] [--placements 200] [--processes 8]

Registers ``--hosts`` compute hosts of 3 vCPUs each (allocation ratio 1.0, so 3 one-vCPU
servers fit per host) in a fresh database, then runs ``--placements`` placements at once from
``--processes`` separate processes (each with several threads, each with its own
SchedulerManager: filters, weighers and the atomic claim) - more placements than fit. Checks
that no host holds more than it has, that the claimed counters equal the allocation rows, and
that exactly the room available was used; prints placements per second.
``tests/unit/scheduler/test_pg_claims.py`` runs :func:`run` as the concurrency test.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import os
import sys
import time
import uuid
from typing import Any

import sqlalchemy as sa

VCPUS_PER_HOST = 3


def _fresh_database(base_url: str) -> str:
    name = f"stackcore_bench_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    return sa.make_url(base_url).set(database=name).render_as_string(hide_password=False)


def _drop_database(base_url: str, url: str) -> None:
    name = sa.make_url(url).database
    admin = sa.create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                             "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
    admin.dispose()


def register_hosts(url: str, count: int) -> None:
    from stackcore.compute import models
    from stackcore.db import api as db_api
    from stackcore.db import models as db_models

    db = db_api.Database(url)
    db.upgrade()
    now = db_models.utcnow()
    stats = {"hypervisor_type": "fake", "hypervisor_version": 1000,
             "cpu_info": {"arch": "x86_64", "model": "m", "vendor": "v",
                          "topology": {"sockets": 1, "cores": 3, "threads": 1}, "features": []},
             "supported_instances": [["x86_64", "fake", "hvm"]]}
    with db.transaction() as session:
        for i in range(count):
            host = f"bench-{i:03d}"
            session.add(db_models.Service(host=host, binary="stackcore-compute", topic="compute",
                                       last_seen_at=now))
            session.add(models.ComputeNode(host=host, vcpus=VCPUS_PER_HOST, memory_mb=65536,
                                           local_gb=1000, reporting=True, stats=stats))
    db.dispose()


def register_servers(url: str, count: int) -> list[str]:
    """``count`` servers waiting for a host, as ``create_server`` records them before it asks
    the scheduler (which claims only for a server still being built)."""
    from stackcore.compute import models
    from stackcore.db import api as db_api

    ids = [str(uuid.uuid4()) for _ in range(count)]
    db = db_api.Database(url)
    with db.transaction() as session:
        session.add_all(models.Instance(
            uuid=i, name="bench", flavor_id="bench", image_id="bench",
            flavor={"name": "bench", "vcpus": 1, "ram_mb": 1024, "disk_gb": 10},
            vm_state="building", task_state="scheduling") for i in ids)
    db.dispose()
    return ids


def _worker(url: str, servers: list[str], threads: int, out: Any) -> None:
    from stackcore import conf as sc_conf
    from stackcore import exception
    from stackcore.compute.placement.manager import SchedulerManager
    from stackcore.db import api as db_api

    conf = sc_conf.load([])
    for name, value in (("cpu_allocation_ratio", 1.0), ("ram_allocation_ratio", 1.0),
                        ("disk_allocation_ratio", 1.0)):
        conf.set_override(name, value, group="scheduler")
    conf.set_override("service_down_time", 3600)
    db = db_api.Database(url)
    manager = SchedulerManager(conf, db)
    request = {"vcpus": 1, "memory_mb": 1024, "disk_gb": 10}

    def place(server_id: str) -> str:
        try:
            return manager.select_destinations(server_id, request)["host"]
        except exception.NoValidHost:
            return ""

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        placed = list(pool.map(place, servers))
    db.dispose()
    out.put(placed)


def run(url: str, hosts: int = 50, placements: int = 200, processes: int = 8,
        threads: int = 5) -> dict[str, Any]:
    """Place ``placements`` one-vCPU servers on ``hosts`` hosts of 3 vCPUs concurrently and
    audit the result. Returns counts, the audit and the throughput."""
    from stackcore.compute import models
    from stackcore.db import api as db_api

    register_hosts(url, hosts)
    servers = register_servers(url, placements)
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(url, servers[i::processes], threads, out))
             for i in range(processes)]
    start = time.perf_counter()
    for proc in procs:
        proc.start()
    placed: list[str] = []
    for _ in procs:
        placed.extend(out.get(timeout=600))
    elapsed = time.perf_counter() - start
    for proc in procs:
        proc.join(60)
    db = db_api.Database(url)
    with db.transaction() as session:
        nodes = session.execute(sa.select(models.ComputeNode)).scalars().all()
        rows = dict(session.execute(
            sa.select(models.Allocation.host, sa.func.sum(models.Allocation.vcpus))
            .group_by(models.Allocation.host)).all())
    db.dispose()
    overcommitted = [n.host for n in nodes if n.alloc_vcpus > n.vcpus]
    mismatched = [n.host for n in nodes if n.alloc_vcpus != int(rows.get(n.host, 0))]
    ok = [p for p in placed if p]
    per_host = {h: ok.count(h) for h in set(ok)}
    return {
        "placements": len(placed), "placed": len(ok), "no_valid_host": len(placed) - len(ok),
        "room": hosts * VCPUS_PER_HOST, "overcommitted_hosts": overcommitted,
        "counter_mismatches": mismatched, "max_per_host": max(per_host.values(), default=0),
        "seconds": elapsed, "placements_per_second": len(placed) / elapsed,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--placements", type=int, default=200)
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--threads", type=int, default=5)
    args = parser.parse_args(argv if argv is not None else [])
    base = os.environ.get("STACKCORE_TEST_PG_URL")
    if not base:
        raise SystemExit("STACKCORE_TEST_PG_URL is not set: run `tools/backends/up.sh postgres` "
                         "and source /var/lib/stackcore-backends/env.sh")
    url = _fresh_database(base)
    try:
        result = run(url, args.hosts, args.placements, args.processes, args.threads)
    finally:
        _drop_database(base, url)
    verdict = ("zero overcommit" if not result["overcommitted_hosts"]
               and not result["counter_mismatches"] else "OVERCOMMIT")
    print(f"claims: {result['placements']} concurrent placements ({args.processes} processes x "
          f"{args.threads} threads) on {args.hosts} hosts over PostgreSQL: {result['placed']} "
          f"placed (room {result['room']}), {result['no_valid_host']} NoValidHost, "
          f"max {result['max_per_host']}/host, {verdict}; "
          f"{result['placements_per_second']:.0f} placements/s")
    exact = not result["overcommitted_hosts"] and not result["counter_mismatches"]
    result["summary"] = {
        "text": f"{result['placements_per_second']:,.0f} placements/s at {args.hosts:,} hosts "
                f"({args.processes} processes), {verdict}",
        "goal": ">= 1,000 placements/s, zero overcommit",
        "met": exact and result["placements_per_second"] >= 1000}
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
