"""Embedded boot and delete: the whole stack of the default ``Cloud()`` (SQLite, in-process RPC,
fake hypervisor), against the same number of bare SQLite transactions in the same run.

Sequential, one at a time (the latency a caller of the embedded default waits for):

* **boot**: ``create_server`` until ACTIVE (validation, policy, quota, the DB intent,
  placement with its claim, the RPC to the compute manager, the build, the final state);
* **delete**: ``delete_server`` until the server is DELETED (claim released);
* **boot with a port and a volume**: the same with ``networks=[{"network_id"}]`` and
  ``volumes=[id]`` (the port created and bound, the volume attached at boot), and its delete.

The anchor is one bare SQLite transaction (``BEGIN IMMEDIATE``, an INSERT, an UPDATE, COMMIT
on a file database with the same pragmas as stackcore's: WAL, synchronous=NORMAL) timed the
same way: a boot costs a handful of transactions at least, so the ratio says how many bare
transactions one boot costs. Goals: >= 200 boots/s sequential, boot p50 < 5 ms, delete of the
same order, boot with a port and a volume p50 < 15 ms.

    python benchmarks/boot_delete.py [--servers 300] [--profile FILE]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

GOALS = {"boots_per_s": 200.0, "boot_p50_ms": 5.0, "delete_p50_ms": 5.0,
         "attached_p50_ms": 15.0}


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000


def bare_transactions(path: str, count: int) -> list[float]:
    """``count`` bare SQLite write transactions, each timed."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, state TEXT, host TEXT)")
    times = []
    for i in range(count):
        started = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t (id, state) VALUES (?, 'building')", (i,))
        conn.execute("UPDATE t SET state = 'active', host = 'h' WHERE id = ?", (i,))
        conn.execute("COMMIT")
        times.append(time.perf_counter() - started)
    conn.close()
    return times


def _deleted(cloud: Any, server_id: str) -> None:
    from stackcore import wait

    wait.until(cloud.db, lambda: cloud.compute.get_server(server_id, include_deleted=True),
               lambda s: s.status == "DELETED", 30,
               lambda s: f"server {server_id} still {s.status} ({s.task_state})",
               max_interval=0.001)


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def measure(servers: int, state: str, profile: str | None = None) -> dict[str, Any]:
    import stackcore

    image = os.path.join(state, "image.raw")
    with open(image, "wb") as handle:
        handle.truncate(1024 * 1024)
    results: dict[str, Any] = {}
    with stackcore.Cloud(fake_hosts=1, overrides={"DEFAULT": {
            "state_path": os.path.join(state, "cloud"), "periodic_interval": 3600}}) as cloud:
        compute = cloud.compute
        compute.create_flavor("bench", 1, 64, 0)
        compute.register_image("bench-img", image, "raw")
        network = cloud.network.create_network("bench-net")
        cloud.network.create_subnet(network.id, "10.0.0.0/16")

        def boot(name: str, **kwargs: Any) -> Any:
            server = compute.create_server(name, "bench", "bench-img", **kwargs)
            if server.status != "ACTIVE":
                raise RuntimeError(f"server {server.id} is {server.status}: {server.fault}")
            return server

        def delete(server_id: str) -> None:
            compute.delete_server(server_id)
            _deleted(cloud, server_id)

        delete(boot("warm-up").id)  # first-use costs (imports, statement caches)
        profiler = cProfile.Profile() if profile else None
        if profiler:
            profiler.enable()
        boots, deletes, ids = [], [], []
        started, cpu = time.perf_counter(), time.process_time()
        for i in range(servers):
            elapsed, server = _timed(lambda i=i: boot(f"b-{i}"))
            boots.append(elapsed)
            ids.append(server.id)
        boot_wall = time.perf_counter() - started
        # CPU of the whole process (the services' threads included) per boot: what a boot
        # costs, whatever else the machine runs
        boot_cpu = (time.process_time() - cpu) / servers
        started, cpu = time.perf_counter(), time.process_time()
        for server_id in ids:
            deletes.append(_timed(lambda s=server_id: delete(s))[0])
        delete_wall = time.perf_counter() - started
        delete_cpu = (time.process_time() - cpu) / servers
        if profiler:
            profiler.disable()
            profiler.dump_stats(profile)
        attached_boots, attached_deletes = [], []
        for i in range(max(servers // 5, 3)):
            volume = cloud.volume.create(1)
            elapsed, server = _timed(lambda i=i, v=volume.id: boot(
                f"a-{i}", networks=[{"network_id": network.id}], volumes=[v]))
            attached_boots.append(elapsed)
            attached_deletes.append(_timed(lambda s=server.id: delete(s))[0])
            cloud.volume.delete(volume.id)
        results = {
            "servers": servers, "boot_cpu_ms": boot_cpu * 1000,
            "delete_cpu_ms": delete_cpu * 1000,
            "boots_per_s": servers / boot_wall, "deletes_per_s": servers / delete_wall,
            "boot_p50_ms": _p(boots, 0.5), "boot_p99_ms": _p(boots, 0.99),
            "delete_p50_ms": _p(deletes, 0.5), "delete_p99_ms": _p(deletes, 0.99),
            "attached_servers": len(attached_boots),
            "attached_p50_ms": _p(attached_boots, 0.5),
            "attached_p99_ms": _p(attached_boots, 0.99),
            "attached_delete_p50_ms": _p(attached_deletes, 0.5),
        }
    return results


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=300)
    parser.add_argument("--profile", help="write a cProfile of the plain boots and deletes here")
    args = parser.parse_args(argv if argv is not None else [])
    with tempfile.TemporaryDirectory() as state:
        bare = bare_transactions(os.path.join(state, "bare.sqlite"), args.servers)
        r = measure(args.servers, state, args.profile)
    bare_p50 = _p(bare, 0.5)
    r["bare_txn_p50_ms"] = bare_p50
    r["bare_txn_per_s"] = len(bare) / sum(bare)
    verdict = {
        f">= {GOALS['boots_per_s']:g} boots/s": r["boots_per_s"] >= GOALS["boots_per_s"],
        f"boot p50 < {GOALS['boot_p50_ms']:g} ms": r["boot_p50_ms"] < GOALS["boot_p50_ms"],
        f"delete p50 < {GOALS['delete_p50_ms']:g} ms":
            r["delete_p50_ms"] < GOALS["delete_p50_ms"],
        f"with port+volume p50 < {GOALS['attached_p50_ms']:g} ms":
            r["attached_p50_ms"] < GOALS["attached_p50_ms"],
    }
    print(f"boot/delete (embedded: SQLite, in-process RPC, fake driver), {args.servers} "
          f"sequential: boot {r['boots_per_s']:.0f}/s p50 {r['boot_p50_ms']:.2f} ms p99 "
          f"{r['boot_p99_ms']:.2f} ms | delete {r['deletes_per_s']:.0f}/s p50 "
          f"{r['delete_p50_ms']:.2f} ms p99 {r['delete_p99_ms']:.2f} ms | with a port and a "
          f"volume ({r['attached_servers']}): boot p50 {r['attached_p50_ms']:.2f} ms, delete "
          f"p50 {r['attached_delete_p50_ms']:.2f} ms | CPU per boot {r['boot_cpu_ms']:.2f} ms, "
          f"per delete {r['delete_cpu_ms']:.2f} ms (load average {os.getloadavg()[0]:.1f})")
    print(f"boot/delete anchor: bare SQLite transaction p50 {bare_p50:.3f} ms "
          f"({r['bare_txn_per_s']:,.0f}/s): one boot = {r['boot_p50_ms'] / bare_p50:.0f} "
          f"bare transactions, one delete = {r['delete_p50_ms'] / bare_p50:.0f}")
    print("boot/delete goals: " + ", ".join(f"{goal}: {'met' if ok else 'MISSED'}"
                                            for goal, ok in verdict.items()))
    r["summary"] = {
        "text": f"boot {r['boots_per_s']:.0f}/s p50 {r['boot_p50_ms']:.2f} ms = "
                f"{r['boot_p50_ms'] / bare_p50:.0f}x a bare SQLite transaction, delete p50 "
                f"{r['delete_p50_ms']:.2f} ms = {r['delete_p50_ms'] / bare_p50:.0f}x, port+volume "
                f"p50 {r['attached_p50_ms']:.2f} ms",
        "goal": ">= 200 boots/s, p50 < 5 ms, delete p50 < 5 ms, port+volume p50 < 15 ms",
        "met": all(verdict.values())}
    return r


if __name__ == "__main__":
    main(sys.argv[1:])
