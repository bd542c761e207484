"""The network family on PostgreSQL: several processes allocating at once.

Each worker is a separate Python process with its own Cloud (API only, no services) on the
same throwaway database, as several API servers would be.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import sqlalchemy as sa

import stackcore

pytestmark = [pytest.mark.real, pytest.mark.postgres]

WORKER = textwrap.dedent("""
    import json, sys
    import stackcore
    from stackcore.network import exceptions

    url, action, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    extra = json.loads(sys.argv[4])
    overrides = {"database": {"connection": url}, "ml2_type_vxlan": {"vni_ranges": ["1:60"]},
                 "ml2_type_vlan": {"network_vlan_ranges": ["data:1:4094"]}}
    out = []
    with stackcore.Cloud(overrides=overrides, services=()) as cloud:
        for _ in range(count):
            try:
                if action == "networks":
                    out.append(cloud.network.create_network("w").segmentation_id)
                elif action == "churn":
                    net = cloud.network.create_network("c")
                    cloud.network.delete_network(net.id)
                    out.append(net.segmentation_id)
                elif action == "provider":
                    seg = extra["ids"].pop(0)
                    try:
                        cloud.network.create_network("p", network_type="vxlan",
                                                     segmentation_id=seg)
                        out.append(seg)
                    except exceptions.SegmentIdInUse:
                        out.append(-seg)
                elif action == "ports":
                    port = cloud.network.create_port(extra["network_id"])
                    out.append(port.fixed_ips[0].ip_address)
            except (exceptions.NoNetworkAvailable, exceptions.IpAddressExhausted):
                out.append(None)
    print(json.dumps(out))
""")


def _run_workers(url: str, jobs: list[tuple[str, int, dict]]) -> list[list]:
    procs = [
        subprocess.Popen([sys.executable, "-c", WORKER, url, action, str(count),
                          json.dumps(extra)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
        for action, count, extra in jobs
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def _cloud(pg_url: str) -> stackcore.Cloud:
    return stackcore.Cloud(overrides={
        "database": {"connection": pg_url}, "ml2_type_vxlan": {"vni_ranges": ["1:60"]},
        "ml2_type_vlan": {"network_vlan_ranges": ["data:1:4094"]}}, services=())


def test_processes_allocating_vnis_never_share_one(pg_url: str) -> None:
    with _cloud(pg_url):
        pass  # migrate and sync once, as a deployment would before starting workers
    results = _run_workers(pg_url, [("networks", 20, {})] * 4)
    ids = [i for r in results for i in r if i is not None]
    assert sorted(ids) == list(range(1, 61)), "60 distinct VNIs, the whole pool"
    assert sum(i is None for r in results for i in r) == 20, "the rest saw a clean exhaustion"
    with _cloud(pg_url) as cloud:
        usage = cloud.network.type_usage()
        vxlan = next(u for u in usage if u["network_type"] == "vxlan")
        assert vxlan["ranges"][0]["free"] == 0
        assert len(cloud.network.list_networks()) == 60


def test_concurrent_churn_and_provider_reservations_stay_consistent(pg_url: str) -> None:
    with _cloud(pg_url):
        pass
    results = _run_workers(pg_url, [
        ("churn", 25, {}), ("churn", 25, {}),
        ("provider", 10, {"ids": list(range(5, 15))}),
        ("provider", 10, {"ids": list(range(5, 15))}),
    ])
    won = [i for r in results[2:] for i in r if i > 0]
    lost = [-i for r in results[2:] for i in r if i < 0]
    assert sorted(won) == list(range(5, 15)), "each provider ID reserved exactly once"
    assert sorted(lost) == list(range(5, 15))
    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        allocated = sorted(conn.exec_driver_sql(
            "SELECT segmentation_id FROM ml2_segment_allocations WHERE network_type='vxlan'"
        ).scalars())
        free = conn.exec_driver_sql(
            "SELECT first, last FROM ml2_segment_ranges WHERE network_type='vxlan' "
            "ORDER BY first").all()
    engine.dispose()
    free_ids = [i for first, last in free for i in range(first, last + 1)]
    assert allocated == list(range(5, 15)), "churned networks all released"
    assert sorted(free_ids + allocated) == list(range(1, 61)), "every ID free xor allocated"


def test_processes_creating_ports_never_share_an_address(pg_url: str) -> None:
    with _cloud(pg_url) as cloud:
        net = cloud.network.create_network("n")
        cloud.network.create_subnet(net.id, "10.1.0.0/27")  # 29 usable addresses
    results = _run_workers(pg_url, [("ports", 8, {"network_id": net.id})] * 4)
    addresses = [a for r in results for a in r if a is not None]
    assert len(addresses) == 29, "every usable address handed out, none early exhaustion"
    assert len(set(addresses)) == 29, "and never one twice"
    assert sum(a is None for r in results for a in r) == 3


def test_concurrent_start_up_syncs_once(pg_url: str) -> None:
    with _cloud(pg_url):
        pass
    _run_workers(pg_url, [("networks", 0, {})] * 4)
    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT network_type, physical_network, first, last FROM ml2_segment_ranges "
            "ORDER BY network_type").all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [("vlan", "data", 1, 4094), ("vxlan", "", 1, 60)]
