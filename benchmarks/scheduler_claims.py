"""Concurrent placements with claims over PostgreSQL, against the bare claim transactions.

    . /var/lib/stackcore-backends/env.sh   # STACKCORE_TEST_PG_URL (tools/backends/up.sh postgres)
    python benchmarks/scheduler_claims.py [--hosts 5000] [--placements 3000] [--processes 4]
                                          [--threads 4] [--host-state-max-age 1.0]

Registers ``--hosts`` compute hosts of 3 vCPUs each (allocation ratio 1.0, so 3 one-vCPU
servers fit per host) in a fresh database, then runs ``--placements`` placements at once from
``--processes`` separate scheduler processes (each with ``--threads`` threads sharing one
SchedulerManager: filters, weighers and the atomic claim). Audits that no host holds more than
it has, that the claimed counters equal the allocation rows and that no request was lost
(every placement placed while there is room, exactly the room used when there is not); prints
placements per second.

The anchor, in the same run, is the **bare claim transaction** done the same number of times
from the same processes and threads on a second fresh database with the same hosts and
servers: the statements a claim needs with no framework (psycopg2: lock the server row, the
conditional UPDATE of a random host's counters, the allocation INSERT, the server's host
UPDATE, COMMIT) - the database's own limit on this machine. The ratio placements / bare claims
is the share of that limit the scheduler reaches. Goal: >= 1,000 placements/s at 5,000 hosts.

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


def _worker(url: str, servers: list[str], threads: int, host_state_max_age: float,
            barrier: Any, out: Any) -> None:
    from stackcore import conf as sc_conf
    from stackcore import exception
    from stackcore.compute.placement.manager import SchedulerManager
    from stackcore.db import api as db_api

    conf = sc_conf.load([])
    for name, value in (("cpu_allocation_ratio", 1.0), ("ram_allocation_ratio", 1.0),
                        ("disk_allocation_ratio", 1.0),
                        ("host_state_max_age", host_state_max_age)):
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

    manager.host_states()  # connected and warm, like a running scheduler
    barrier.wait(600)  # every process set up: the clock starts for all at once
    started = time.time()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        placed = list(pool.map(place, servers))
    ended = time.time()
    db.dispose()
    out.put((placed, started, ended))


def _bare_worker(url: str, servers: list[str], hosts: list[str], threads: int,
                 barrier: Any, out: Any) -> None:
    """The anchor: each server claimed by the bare statements on a random host with room."""
    import random

    import psycopg2

    parsed = sa.make_url(url)

    def connect() -> Any:
        return psycopg2.connect(host=parsed.host, port=parsed.port or 5432,
                                user=parsed.username, password=parsed.password,
                                dbname=parsed.database)

    connections = [connect() for _ in range(threads)]  # connected, like a running scheduler

    def place(job: tuple[Any, list[str]]) -> list[str]:
        conn, chunk = job
        rng = random.Random()
        placed = []
        with conn, conn.cursor() as cur:
            for server in chunk:
                host = ""
                for _ in range(50):  # a full host: try another, as a scheduler would
                    candidate = rng.choice(hosts)
                    cur.execute("SELECT uuid FROM instances WHERE uuid = %s FOR UPDATE",
                                (server,))
                    cur.execute(
                        "UPDATE compute_nodes SET alloc_vcpus = alloc_vcpus + 1, "
                        "alloc_memory_mb = alloc_memory_mb + 1024, "
                        "alloc_disk_gb = alloc_disk_gb + 10, alloc_instances = "
                        "alloc_instances + 1 WHERE host = %s AND reporting AND "
                        "alloc_vcpus + 1 <= vcpus AND alloc_memory_mb + 1024 <= memory_mb AND "
                        "alloc_disk_gb + 10 <= local_gb", (candidate,))
                    if cur.rowcount == 1:
                        cur.execute("INSERT INTO allocations (instance_uuid, host, vcpus, "
                                    "memory_mb, disk_gb, created_at) VALUES "
                                    "(%s, %s, 1, 1024, 10, now())", (server, candidate))
                        cur.execute("UPDATE instances SET host = %s WHERE uuid = %s",
                                    (candidate, server))
                        conn.commit()
                        host = candidate
                        break
                    conn.rollback()
                placed.append(host)
        conn.close()
        return placed

    barrier.wait(600)
    started = time.time()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        jobs = [(connections[i], servers[i::threads]) for i in range(threads)]
        placed = [h for chunk in pool.map(place, jobs) for h in chunk]
    out.put((placed, started, time.time()))


def _run_processes(target: Any, args_of: Any, processes: int) -> tuple[list[str], float]:
    """Run ``target`` in ``processes`` processes; the placements and the seconds from the
    first process starting to place (all set up, past a barrier) to the last finishing."""
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    barrier = ctx.Barrier(processes)
    procs = [ctx.Process(target=target, args=(*args_of(i), barrier, out))
             for i in range(processes)]
    for proc in procs:
        proc.start()
    placed: list[str] = []
    starts, ends = [], []
    for _ in procs:
        found, started, ended = out.get(timeout=1800)
        placed.extend(found)
        starts.append(started)
        ends.append(ended)
    for proc in procs:
        proc.join(60)
    return placed, max(ends) - min(starts)


def bare_claims(url: str, hosts: int, placements: int, processes: int,
                threads: int) -> dict[str, Any]:
    """The anchor (see the module doc) on its own fresh database ``url``."""
    register_hosts(url, hosts)
    servers = register_servers(url, placements)
    names = [f"bench-{i:03d}" for i in range(hosts)]
    placed, elapsed = _run_processes(
        _bare_worker, lambda i: (url, servers[i::processes], names, threads), processes)
    ok = [p for p in placed if p]
    return {"placements": len(placed), "placed": len(ok), "seconds": elapsed,
            "claims_per_second": len(placed) / elapsed}


def run(url: str, hosts: int = 50, placements: int = 200, processes: int = 8,
        threads: int = 5, host_state_max_age: float = 0.0) -> dict[str, Any]:
    """Place ``placements`` one-vCPU servers on ``hosts`` hosts of 3 vCPUs concurrently and
    audit the result. Returns counts, the audit and the throughput."""
    from stackcore.compute import models
    from stackcore.db import api as db_api

    register_hosts(url, hosts)
    servers = register_servers(url, placements)
    placed, elapsed = _run_processes(
        _worker, lambda i: (url, servers[i::processes], threads, host_state_max_age), processes)
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
    parser.add_argument("--hosts", type=int, default=5000)
    parser.add_argument("--placements", type=int, default=3000)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--host-state-max-age", type=float, default=1.0,
                        help="[scheduler] host_state_max_age of the schedulers (0: read the "
                             "host states for every placement)")
    args = parser.parse_args(argv if argv is not None else [])
    base = os.environ.get("STACKCORE_TEST_PG_URL")
    if not base:
        raise SystemExit("STACKCORE_TEST_PG_URL is not set: run `tools/backends/up.sh postgres` "
                         "and source /var/lib/stackcore-backends/env.sh")
    url = _fresh_database(base)
    try:
        result = run(url, args.hosts, args.placements, args.processes, args.threads,
                     args.host_state_max_age)
    finally:
        _drop_database(base, url)
    url = _fresh_database(base)
    try:
        bare = bare_claims(url, args.hosts, args.placements, args.processes, args.threads)
    finally:
        _drop_database(base, url)
    result["bare"] = bare
    verdict = ("zero overcommit" if not result["overcommitted_hosts"]
               and not result["counter_mismatches"] else "OVERCOMMIT")
    print(f"claims: {result['placements']} concurrent placements ({args.processes} processes x "
          f"{args.threads} threads) on {args.hosts} hosts over PostgreSQL: {result['placed']} "
          f"placed (room {result['room']}), {result['no_valid_host']} NoValidHost, "
          f"max {result['max_per_host']}/host, {verdict}; "
          f"{result['placements_per_second']:.0f} placements/s (host_state_max_age "
          f"{args.host_state_max_age:g} s)")
    ratio = result["placements_per_second"] / bare["claims_per_second"]
    print(f"claims anchor: bare claim transactions (psycopg2, same processes and threads) "
          f"{bare['claims_per_second']:,.0f}/s ({bare['placed']} of {bare['placements']} "
          f"placed); placements / bare claims = {ratio:.2f}")
    exact = not result["overcommitted_hosts"] and not result["counter_mismatches"]
    lost = min(result["room"], result["placements"]) - result["placed"]
    result["lost"] = lost
    result["summary"] = {
        "text": f"{result['placements_per_second']:,.0f} placements/s at {args.hosts:,} hosts "
                f"({args.processes} processes x {args.threads} threads) = {ratio:.2f}x the bare "
                f"claim transactions ({bare['claims_per_second']:,.0f}/s), {verdict}, "
                f"{lost} lost",
        "goal": ">= 1,000 placements/s, zero overcommit, none lost",
        "met": exact and lost == 0 and result["placements_per_second"] >= 1000}
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
