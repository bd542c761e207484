"""Random kill points: a seeded chaos run. Every service is a process of its own on RabbitMQ and
PostgreSQL - the scheduler, a compute service (fake hypervisor, host ``ch-1``), a volume service
(fake backend: sparse files), the network service (ML2, openvswitch mechanism driver) and the
OVS agent of ``ch-1`` (``stackcore-ovs-agent`` on a private Open vSwitch) - while this process,
an API-only client, runs a mixed workload in threads: servers with a port on a VXLAN network,
volumes, attaches (through the server), forced snapshots of attached volumes, detaches, ports,
deletes.

Each round SIGKILLs ``KILLS_PER_ROUND`` services of every type, in a random order, each at a
random moment (after a random number of the workload's calls), and starts each again at once
(the services' start-up reconciliation and periodic tasks must finish or undo what the kill
cut off). Then the workload stops and the invariants must hold:

* nothing transient (no server building or with a task, no volume/snapshot/attachment
  creating, attaching, detaching, deleting...), every server and volume in ERROR has a fault;
* claims equal allocations (compute hosts and volume pools);
* backend objects and rows agree: every available or in-use volume has its file and every
  file (volume, snapshot) a live row; an export exactly for each in-use volume; no port of a
  deleted server left; the agent's bridges present;
* no IP address, MAC address or segment twice; no segment allocation without its network.

The seed is printed (``STACKCORE_CHAOS_SEED=<seed>`` replays the same kill order and moments).
CI runs ``CI_KILLS`` kills per service type; ``STACKCORE_SOAK=1`` runs ``SOAK_KILLS``
(``STACKCORE_CHAOS_KILLS`` sets any number).
"""

from __future__ import annotations

import collections
import concurrent.futures
import itertools
import json
import os
import random
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import stackcore

from .conftest import OVS_INSTANCE, OVS_STATE, PrivateBackend, poll, unique_name
from .invariants import claim_problems, duplicate_problems, fault_problems, transient_problems
from .services import BIN, ServiceProcess, write_config
from .workload import Workload

pytestmark = [pytest.mark.real, pytest.mark.postgres, pytest.mark.rabbit]

HOST = "ch-1"
TYPES = ("scheduler", "compute", "volume", "network", "l2-agent")
CI_KILLS = 10
SOAK_KILLS = 50
KILLS_PER_ROUND = 2  # of each type
RPC_TIMEOUT = 5
BRIDGES = ("br-int", "br-tun")


def _kills_per_type() -> int:
    if os.environ.get("STACKCORE_CHAOS_KILLS"):
        return int(os.environ["STACKCORE_CHAOS_KILLS"])
    return SOAK_KILLS if os.environ.get("STACKCORE_SOAK") == "1" else CI_KILLS


def _seed() -> int:
    given = os.environ.get("STACKCORE_CHAOS_SEED")
    return int(given) if given else random.SystemRandom().randrange(2**32)


def _ovs(*args: str) -> str:
    result = subprocess.run(["bash", str(OVS_INSTANCE), *args], capture_output=True,
                            text=True, timeout=120, check=False)
    if result.returncode != 0:
        pytest.fail(f"ovs-instance.sh {' '.join(args)} failed: {result.stderr[-2000:]}",
                    pytrace=False)
    return result.stdout


@pytest.fixture
def ovsdb() -> Iterator[str]:
    name = unique_name("scchaos")
    target = "unix:" + _ovs(name).strip().splitlines()[-1]
    try:
        yield target
    finally:
        _ovs("--stop", name)
        shutil.rmtree(OVS_STATE / f"ovs-{name}", ignore_errors=True)


@pytest.fixture
def cloud(private_backend: Callable[[str], PrivateBackend], pg_url: str, ovsdb: str,
          tmp_path: Path) -> Iterator[dict[str, Any]]:
    rabbit = private_backend("rabbitmq")
    common: dict[str, dict[str, Any]] = {
        "DEFAULT": {"transport_url": rabbit.env["URL"], "report_interval": 1,
                    "service_down_time": 30, "periodic_interval": 1,
                    "rpc_call_timeout": RPC_TIMEOUT},
        "database": {"connection": pg_url},
        "ml2": {"mechanism_drivers": ["openvswitch"], "project_network_types": ["vxlan"]},
        "ml2_type_vxlan": {"vni_ranges": ["1000:1999"]},
        "network": {"agent_down_time": 30},
    }
    procs: dict[str, ServiceProcess] = {}
    for kind in TYPES[:-1]:
        sections = {**common, "DEFAULT": {**common["DEFAULT"],
                                          "state_path": str(tmp_path / kind)}}
        if kind == "compute":
            sections["compute"] = {"hosts": [HOST]}
        procs[kind] = ServiceProcess(kind, write_config(tmp_path / f"{kind}.conf", sections),
                                     tmp_path / f"{kind}.log")
    agent_conf = write_config(tmp_path / "agent.conf", {
        "DEFAULT": {"host": HOST, "transport_url": rabbit.env["URL"],
                    "rpc_call_timeout": RPC_TIMEOUT},
        "agent": {"polling_interval": 0.5, "report_interval": 1},
        "ovs": {"ovsdb_connection": ovsdb, "datapath_type": "netdev",
                "tunnel_types": ["vxlan"], "local_ip": "10.59.1.1",
                "bridge_mappings": {"physnet1": "br-phys"}}})
    procs["l2-agent"] = ServiceProcess("l2-agent", agent_conf, tmp_path / "l2-agent.log",
                                       command=[str(BIN / "stackcore-ovs-agent")])
    # the API client first: it brings the database's schema up to date (services started
    # together on an empty database would race to create it)
    api = stackcore.Cloud(write_config(tmp_path / "api.conf", {
        **common, "DEFAULT": {**common["DEFAULT"], "state_path": str(tmp_path / "api")}}),
        services=())
    try:
        with concurrent.futures.ThreadPoolExecutor(len(procs)) as starting:
            for future in [starting.submit(proc.start,
                                           None if kind == "l2-agent" else "running")
                           for kind, proc in procs.items()]:
                future.result()
        yield {"api": api, "procs": procs, "ovsdb": ovsdb,
               "volumes": tmp_path / "volume" / "fake-volumes"}
    finally:
        api.close()
        for proc in procs.values():
            proc.stop()


def _bridges(ovsdb: str) -> set[str]:
    result = subprocess.run(["ovs-vsctl", f"--db={ovsdb}", "--timeout=10", "list-br"],
                            capture_output=True, text=True, timeout=30, check=False)
    return set(result.stdout.split())


def backend_problems(engine: sa.Engine, volumes_dir: Path, ovsdb: str) -> list[str]:
    """Rows and the backends' objects agree (see the module's docstring)."""
    with engine.connect() as conn:
        volumes = {r.id: r.status for r in conn.execute(sa.text(
            "SELECT id, status FROM volumes"))}
        snapshots = {r.id: r.status for r in conn.execute(sa.text(
            "SELECT id, status FROM volume_snapshots"))}
        servers = {r.uuid: r.vm_state for r in conn.execute(sa.text(
            "SELECT uuid, vm_state FROM instances"))}
        ports = list(conn.execute(sa.text(
            "SELECT id, device_id, device_owner FROM ports")))
    problems = []
    files: set[str] = set()
    exports: set[str] = set()
    for backend in volumes_dir.iterdir() if volumes_dir.exists() else ():
        files |= {e.name for e in os.scandir(backend) if e.name != "exports.json"}
        exports_file = backend / "exports.json"
        if exports_file.exists():
            exports |= set(json.loads(exports_file.read_text()))
    for vid, status in volumes.items():
        if status in ("available", "in-use") and f"volume-{vid}" not in files:
            problems.append(f"volume {vid} is {status} but has no file")
        if status == "in-use" and vid not in exports:
            problems.append(f"volume {vid} is in-use but not exported")
    for name in sorted(files):
        kind, _, oid = name.partition("-")
        rows = volumes if kind == "volume" else snapshots if kind == "snapshot" else {}
        if rows.get(oid, "deleted") == "deleted":
            problems.append(f"file {name} of no live {kind}")
    problems += [f"export of volume {vid} which is {volumes.get(vid, 'unknown')}"
                 for vid in sorted(exports) if volumes.get(vid) != "in-use"]
    problems += [f"port {p.id} of server {p.device_id} which is "
                 f"{servers.get(p.device_id, 'unknown')}" for p in ports
                 if p.device_owner.startswith("compute:")
                 and servers.get(p.device_id, "deleted") == "deleted"]
    missing = set(BRIDGES) - _bridges(ovsdb)
    if missing:
        problems.append(f"the agent's bridges {sorted(missing)} are not in OVSDB")
    return problems


def test_chaos_random_sigkills_of_every_service(
    cloud: dict[str, Any], image_file: str, pg_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    seed, kills_per_type = _seed(), _kills_per_type()
    rng = random.Random(seed)
    header = (f"chaos: seed {seed} (STACKCORE_CHAOS_SEED={seed} replays it), "
              f"{kills_per_type} SIGKILLs per service type")
    with capsys.disabled():
        print(f"\n{header}")
    api: stackcore.Cloud = cloud["api"]
    procs: dict[str, ServiceProcess] = cloud["procs"]
    engine = sa.create_engine(pg_url)
    started = time.monotonic()
    pool = concurrent.futures.ThreadPoolExecutor(len(TYPES), "restart")
    restarting: dict[str, concurrent.futures.Future[float]] = {}
    try:
        api.compute.create_flavor("small", 1, 128, 1)
        api.compute.register_image("img", image_file)
        net = api.network.create_network("chaos")
        api.network.create_subnet(net.id, "10.70.0.0/16")
        poll(lambda: [h for h in api.compute.list_hosts() if h.up and h.reporting], 60,
             "the compute host up")
        poll(lambda: [p for p in api.volume.list_pools() if p.up and p.reporting], 60,
             "the volume pool reporting")
        poll(lambda: [a for a in api.network.list_agents(host=HOST) if a.alive], 60,
             "the OVS agent alive")
        names = itertools.count()

        def step(thread: int, iteration: int, record: Callable[..., Any]) -> None:
            n = next(names)
            server = record("create_server", api.compute.create_server, f"c-{n}", "small",
                            "img", networks=[{"network_id": net.id}], timeout=90)
            volume = record("create_volume", api.volume.create, 1, timeout=90)
            port = record("create_port", api.network.create_port, net.id)
            if server is not None and server.status == "ACTIVE" \
                    and volume is not None and volume.status == "available":
                attached = record("attach_volume", api.compute.attach_volume, server.id,
                                  volume.id)
                snap = record("create_snapshot", api.volume.create_snapshot, volume.id,
                              force=True, timeout=90)
                if attached is not None:
                    record("detach_volume", api.compute.detach_volume, server.id, volume.id)
                if snap is not None:
                    record("delete_snapshot", api.volume.delete_snapshot, snap.id)
            if port is not None:
                record("delete_port", api.network.delete_port, port.id)
            if server is not None:
                record("delete_server", api.compute.delete_server, server.id)
            if volume is not None:
                # a volume still detaching is refused for now: the next round deletes it
                record("delete_volume", api.volume.delete, volume.id)

        kills: collections.Counter[str] = collections.Counter()
        restart_seconds: list[float] = []
        ok = failed = 0
        rounds = -(-kills_per_type // KILLS_PER_ROUND)
        for round_no in range(rounds):
            victims = [t for t in TYPES for _ in range(KILLS_PER_ROUND)
                       if kills[t] < kills_per_type]
            rng.shuffle(victims)
            workload = Workload(3, step).start()
            for victim in victims:
                # a random moment: after 1-6 more calls of the workload
                target = len(workload.outcomes) + rng.randint(1, 6)
                poll(lambda t=target: len(workload.outcomes) >= t or workload.crashed, 180,
                     f"the workload's call #{target} (round {round_no}, seed {seed})")
                proc = procs[victim]
                if victim in restarting:  # its last restart first: it must be up to die
                    restart_seconds.append(restarting.pop(victim).result())
                assert proc.alive, (f"{victim} died by itself (seed {seed}, exit status "
                                    f"{proc.proc and proc.proc.returncode})\n{proc.log_tail()}")
                proc.kill()
                kills[victim] += 1
                # started again while the next victims die: services down together, too
                restarting[victim] = pool.submit(
                    proc.start, None if victim == "l2-agent" else "running")
            for victim in list(restarting):
                restart_seconds.append(restarting.pop(victim).result())
            workload.stop(3 * RPC_TIMEOUT + 180)
            ok += sum(o.ok for o in workload.outcomes)
            failed += len(workload.failures())
            assert not workload.foreign_errors(), (seed, workload.foreign_errors())
            poll(lambda: not transient_problems(engine) or None, 4 * RPC_TIMEOUT + 120,
                 f"nothing transient after round {round_no} (seed {seed}): "
                 f"{transient_problems(engine)[:5]}")
            where = f"round {round_no} (seed {seed})"
            assert fault_problems(engine, ("",)) == [], where
            assert claim_problems(engine) == [], where
            assert duplicate_problems(engine) == [], where
            poll(lambda: not backend_problems(engine, cloud["volumes"], cloud["ovsdb"])
                 or None, 60, f"backend objects and rows agreeing after {where}: "
                 f"{backend_problems(engine, cloud['volumes'], cloud['ovsdb'])[:5]}")
            for name, proc in procs.items():
                assert proc.alive, (f"{name} died by itself ({where}, exit status "
                                    f"{proc.proc and proc.proc.returncode})\n{proc.log_tail()}")

        with engine.connect() as conn:
            errors = conn.execute(sa.text(
                "SELECT (SELECT count(*) FROM instances WHERE vm_state = 'error') + "
                "(SELECT count(*) FROM volumes WHERE status LIKE 'error%')")).scalar_one()
        took = time.monotonic() - started
        summary = (f"chaos: seed {seed}: {rounds} rounds, SIGKILLs per type "
                   f"{dict(sorted(kills.items()))} ({sum(kills.values())} in all), restart "
                   f"to ready {sum(restart_seconds) / len(restart_seconds):.2f} s on average; "
                   f"workload {ok} calls succeeded, {failed} failed; {errors} server(s)/"
                   f"volume(s) ended in ERROR; 0 invariant violations; {took:.0f} s")
        with capsys.disabled():
            print(f"\n{summary}")
        assert min(kills[t] for t in TYPES) >= kills_per_type, kills
    finally:
        for future in restarting.values():
            future.result()
        pool.shutdown()
        engine.dispose()
