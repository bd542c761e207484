"""VXLAN type driver with ``vni_ranges = 1:16777215``: stackcore vs Neutron 29.0.0.

Measures, each in a fresh process: start-up (type driver initialisation on an empty
database, then again on the synced one), memory (peak RSS and its growth over the process
after imports), and project-segment allocation latency (p50/p99, one transaction each), on
SQLite and - when ``STACKCORE_TEST_PG_URL`` is set - PostgreSQL (a throwaway database).
Neutron runs in its own virtualenv (built by ``ml2_vxlan_neutron_venv.sh`` under /var/tmp);
its full-range first fill takes minutes and about a gigabyte, so it allocates fewer times.

    python benchmarks/ml2_vxlan.py [--allocations 1000] [--neutron-allocations 5]
                                   [--neutron-postgres] [--skip-neutron]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
FULL_RANGE = "1:16777215"
GOALS = {"start_s": 1.0, "p99_ms": 5.0, "growth_mb": 50.0}


def rss_mb() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def stackcore_worker(url: str, vni_range: str, allocations: int) -> dict[str, Any]:
    """Runs in a fresh process: the stackcore VXLAN type driver alone, as Neutron's is."""
    from stackcore import conf as sc_conf
    from stackcore.db import api as db_api
    from stackcore.network.types.vxlan import VxlanTypeDriver

    conf = sc_conf.load([], {"ml2_type_vxlan": {"vni_ranges": [vni_range]}})
    db = db_api.Database(url)
    db.upgrade()
    base = rss_mb()
    timings = {}
    driver = None
    for label in ("first_start_s", "second_start_s"):
        start = time.perf_counter()
        driver = VxlanTypeDriver(conf)
        with db.transaction() as session:
            driver.initialize(session)
        timings[label] = time.perf_counter() - start
    assert driver is not None
    latencies, calls = [], []
    for _ in range(allocations):
        start = time.perf_counter()
        with db.transaction() as session:
            call = time.perf_counter()
            segment = driver.allocate_tenant_segment(session)
            calls.append(time.perf_counter() - call)
        latencies.append(time.perf_counter() - start)
        assert segment is not None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    db.dispose()
    return {**timings, "base_rss_mb": base, "peak_rss_mb": peak, "latencies_s": latencies,
            "calls_s": calls}


def _run(cmd: list[str]) -> dict[str, Any]:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:3])} failed:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _pg_database(base_url: str) -> tuple[str, Any]:
    import sqlalchemy as sa

    name = f"stackcore_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sa.make_url(base_url).set(database=name).render_as_string(hide_password=False)

    def drop() -> None:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()

    return url, drop


def _summary(result: dict[str, Any]) -> dict[str, Any]:
    lat = sorted(result["latencies_s"])
    calls = sorted(result["calls_s"])

    def p99(values: list[float]) -> float:
        return values[min(len(values) - 1, round(0.99 * (len(values) - 1)))]

    return {
        "first_start_s": result["first_start_s"],
        "second_start_s": result["second_start_s"],
        "peak_rss_mb": result["peak_rss_mb"],
        "growth_mb": result["peak_rss_mb"] - result["base_rss_mb"],
        "p50_ms": statistics.median(lat) * 1000,
        "p99_ms": p99(lat) * 1000,
        "call_p50_ms": statistics.median(calls) * 1000,
        "call_p99_ms": p99(calls) * 1000,
        "samples": len(lat),
        "errors": result.get("errors", {}),
        "fill_without_fast_exit_s": result.get("fill_without_fast_exit_s"),
    }


def measure(which: str, db: str, args: argparse.Namespace, python: str | None) -> dict[str, Any]:
    tmp = tempfile.mkdtemp(prefix="ml2-bench-")
    drop = None
    if db == "sqlite":
        url = f"sqlite:///{tmp}/{which}.sqlite"
    else:
        url, drop = _pg_database(os.environ["STACKCORE_TEST_PG_URL"])
    try:
        if which == "stackcore":
            cmd = [sys.executable, __file__, "--worker", url, FULL_RANGE, str(args.allocations)]
        else:
            assert python is not None
            cmd = [python, os.path.join(HERE, "ml2_vxlan_neutron.py"), url, FULL_RANGE,
                   str(args.neutron_allocations)]
        return _summary(_run(cmd))
    finally:
        if drop is not None:
            drop()


def _fmt(value: float) -> str:
    return f"{value:,.3f}" if value < 100 else f"{value:,.0f}"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", nargs=3, metavar=("URL", "RANGE", "N"))
    parser.add_argument("--allocations", type=int, default=1000)
    parser.add_argument("--neutron-allocations", type=int, default=5)
    parser.add_argument("--neutron-postgres", action="store_true",
                        help="also fill Neutron's table on PostgreSQL (several minutes)")
    parser.add_argument("--skip-neutron", action="store_true")
    args = parser.parse_args(argv if argv is not None else [])
    if args.worker:
        url, vni_range, count = args.worker
        print(json.dumps(stackcore_worker(url, vni_range, int(count))))
        return {}

    databases = ["sqlite"] + (["postgresql"] if os.environ.get("STACKCORE_TEST_PG_URL") else [])
    python = None
    if not args.skip_neutron:
        python = subprocess.run([os.path.join(HERE, "ml2_vxlan_neutron_venv.sh")],
                                capture_output=True, text=True, check=True).stdout.split()[-1]
    rows: list[tuple[str, str, dict[str, Any]]] = []
    for db in databases:
        rows.append(("stackcore", db, measure("stackcore", db, args, None)))
        if python and (db == "sqlite" or args.neutron_postgres):
            rows.append(("neutron 29.0.0", db, measure("neutron", db, args, python)))

    keys = ["first_start_s", "second_start_s", "peak_rss_mb", "growth_mb", "p50_ms", "p99_ms",
            "call_p50_ms", "call_p99_ms"]
    print(f"VXLAN type driver, vni_ranges = {FULL_RANGE} ({2**24 - 1:,} VNIs)")
    print("p50/p99_ms: one allocation in its own transaction, commit included (on SQLite the "
          "commit's fsync dominates);\ncall_p50/p99_ms: the type driver call alone, inside the "
          "transaction.")
    print(f"{'implementation':<16}{'db':<12}" + "".join(f"{k:>15}" for k in keys) + "  samples")
    for name, db, summary in rows:
        print(f"{name:<16}{db:<12}" + "".join(f"{_fmt(summary[k]):>15}" for k in keys)
              + f"  {summary['samples']:>7}")
    print()
    for name, db, summary in rows:
        for phase, error in summary["errors"].items():
            print(f"{name} on {db}: {phase} FAILED after {summary[phase + '_s']:.1f} s: "
                  f"{error}")
        if summary["fill_without_fast_exit_s"] is not None:
            print(f"{name} on {db}: first fill without the failing fast-exit check took "
                  f"{summary['fill_without_fast_exit_s']:.1f} s (its allocations were measured "
                  "on that table)")
    for db in databases:
        ours = next((s for n, d, s in rows if n == "stackcore" and d == db), None)
        theirs = next((s for n, d, s in rows if n != "stackcore" and d == db), None)
        if ours and theirs:
            ratios = ", ".join(f"{k} x{theirs[k] / ours[k]:,.0f}" for k in keys
                               if ours[k] > 0)
            print(f"neutron / stackcore on {db}: {ratios}")
    all_met = True
    for name, db, summary in rows:
        if name == "stackcore":
            verdict = {
                "start-up < 1 s": summary["first_start_s"] < GOALS["start_s"],
                "allocation p99 < 5 ms (call)": summary["call_p99_ms"] < GOALS["p99_ms"],
                "allocation p99 < 5 ms (with commit)": summary["p99_ms"] < GOALS["p99_ms"],
                "memory growth < 50 MB": summary["growth_mb"] < GOALS["growth_mb"],
            }
            print(f"goals on {db}: " + ", ".join(
                f"{goal}: {'met' if ok else 'MISSED'}" for goal, ok in verdict.items()))
            all_met = all_met and all(verdict.values())
    ours = next(s for n, d, s in rows if n == "stackcore" and d == "sqlite")
    theirs = next((s for n, d, s in rows if n != "stackcore" and d == "sqlite"), None)
    versus = (f" = neutron x{theirs['first_start_s'] / ours['first_start_s']:,.0f} slower "
              "start-up" if theirs else " (neutron skipped: no ratio)")
    return {"rows": [{"implementation": n, "db": d, **s} for n, d, s in rows],
            "summary": {"text": f"start-up {ours['first_start_s']:.3f} s, allocation p99 "
                                f"{ours['call_p99_ms']:.2f} ms on sqlite{versus}",
                        "goal": "start-up < 1 s, p99 < 5 ms, growth < 50 MB", "met": all_met}}


if __name__ == "__main__":
    main(sys.argv[1:])
