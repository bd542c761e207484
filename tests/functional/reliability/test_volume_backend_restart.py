"""Volume backends crash (their daemon killed) while the volume service creates, snapshots,
exports and deletes volumes on them: nfs-ganesha under the nfs driver, a Ceph OSD under the rbd
driver.

Each backend is a PRIVATE instance (tools/backends/private.sh: ganesha in its own network and
mount namespaces, a Ceph cluster of its own whose OSD is bluestore on a sparse file, so a
restarted OSD has its data). The volume service and the scheduler run in this process; nothing
of stackcore is restarted. The backend is killed twice while calls are in flight and started
again; then every call made either completed or failed with a stackcore error, every volume
is available or in ERROR with a fault naming the backend, nothing is transient, the rows are
exactly what the calls returned, the pool's claim is what its volumes hold, and every volume
has its backend object and every backend object its row. The recovery time (restart to the
first volume created through stackcore) is printed per backend.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import stackcore
from stackcore.volume.manager import BINARY as VOLUME_BINARY

from .conftest import PrivateBackend, Recovery, poll
from .invariants import claim_problems, fault_problems, transient_problems
from .workload import Workload

pytestmark = pytest.mark.real

CRASHES = 2
BACKEND = "faulty"
CONNECTOR = {"host": "reliability-host", "initiator": "iqn.1993-08.org.debian:01:rel"}
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass(frozen=True)
class Case:
    kind: str  # of tools/backends/private.sh
    label: str  # in the recovery figures
    words: tuple[str, ...]  # a fault names the backend by one of these
    section: Callable[[dict[str, str]], dict[str, Any]]


CASES = [
    Case("nfs", "nfs-ganesha", ("nfs",),
         lambda env: {"volume_driver": "nfs", "nfs_access": "qemu",
                      "nfs_shares": [f"{env['SERVER']}:{env['EXPORT']}"]}),
    Case("ceph", "ceph-osd", ("ceph", "rados", "rbd"),
         lambda env: {"volume_driver": "rbd", "rbd_ceph_conf": env["CONF"],
                      "rbd_pool": env["POOL"], "rados_connect_timeout": 10,
                      "rados_connection_retries": 2, "rados_connection_interval": 1}),
]


def _driver(cloud: stackcore.Cloud) -> Any:
    return next(s.manager for s in cloud.services if s.binary == VOLUME_BINARY).driver


def backend_object_problems(cloud: stackcore.Cloud, engine: sa.Engine) -> list[str]:
    """Every volume that is available or in use has its object on the backend, every
    snapshot that is available its object, and every object on the backend belongs to a
    volume or snapshot that has a row and is not deleted (the objects are named after the
    ids: the contract's ``list_backend_objects``)."""
    objects = _driver(cloud).list_backend_objects()
    with engine.connect() as conn:
        volumes = {r.id: r.status for r in conn.execute(sa.text(
            "SELECT id, status FROM volumes"))}
        snapshots = {r.id: r.status for r in conn.execute(sa.text(
            "SELECT id, status FROM volume_snapshots"))}
    owners = {u for name in objects for u in _UUID.findall(name)}
    problems = [f"volume {v} is {s} but has no backend object" for v, s in volumes.items()
                if s in ("available", "in-use") and v not in owners]
    problems += [f"snapshot {v} is available but has no backend object"
                 for v, s in snapshots.items() if s == "available" and v not in owners]
    live = {i for i, s in {**volumes, **snapshots}.items() if s != "deleted"}
    problems += [f"backend object {name} of no live volume or snapshot" for name in objects
                 if not set(_UUID.findall(name)) & live]
    return problems


@pytest.mark.parametrize("case", CASES, ids=[c.kind for c in CASES])
def test_volume_service_survives_a_backend_crash_mid_operation(
    case: Case, private_backend: Callable[[str], PrivateBackend],
    recovery: Callable[[str], Recovery], tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    backend = private_backend(case.kind)
    cloud = stackcore.Cloud(services=("scheduler", "volume"), overrides={
        "DEFAULT": {"state_path": str(tmp_path / "state"), "periodic_interval": 1,
                    "report_interval": 1, "rpc_call_timeout": 30},
        "volume": {"enabled_backends": [BACKEND]},
        BACKEND: {"volume_backend_name": BACKEND, **case.section(backend.env)},
    })
    try:
        poll(lambda: [p for p in cloud.volume.list_pools() if p.up and p.reporting], 60,
             f"the {case.kind} pool reporting")
        names = itertools.count()
        created: dict[str, set[str]] = {"volume": set(), "snapshot": set()}

        def step(thread: int, iteration: int, record: Callable[..., Any]) -> None:
            volume = record("create_volume", cloud.volume.create, 1,
                            name=f"rel-{next(names)}", timeout=120)
            if volume is None:
                return
            created["volume"].add(volume.id)
            if volume.status == "available":
                snap = record("create_snapshot", cloud.volume.create_snapshot, volume.id,
                              timeout=120)
                if snap is not None:
                    created["snapshot"].add(snap.id)
                    record("delete_snapshot", cloud.volume.delete_snapshot, snap.id)
                info = record("attach", cloud.volume.attach, volume.id, CONNECTOR)
                if info is not None:
                    record("detach", cloud.volume.detach, volume.id, info["attachment_id"])
            record("delete_volume", cloud.volume.delete, volume.id)

        workload = Workload(3, step).start()
        in_flight = []
        for crash in range(CRASHES):
            workload.wait_for(8 * (crash + 1), 180)
            in_flight.append(workload.in_flight)
            clock = recovery(case.label)
            backend.kill()
            backend.start()
            clock.backend_back()

        def volume_made() -> bool:
            try:
                volume = cloud.volume.create(1, name="after", timeout=120)
            except stackcore.exception.StackcoreError:
                return False
            created["volume"].add(volume.id)
            return volume.status == "available"

        poll(volume_made, 180, f"a volume created after the {case.label} restart",
             interval=0.5)
        seconds = clock.service_back("a volume was created (available)")
        workload.stop(300)
        assert sum(in_flight) > 0, "no call was in flight at any crash"
        assert not workload.foreign_errors(), workload.foreign_errors()

        engine = cloud.db.engine
        poll(lambda: not transient_problems(engine), 120, "nothing left transient")
        assert fault_problems(engine, case.words) == []
        assert claim_problems(engine) == []
        poll(lambda: not backend_object_problems(cloud, engine) or None, 60,
             "backend objects and rows agreeing")
        failed = [f"{o.op}: {o.detail}" for o in workload.failures()]
        with engine.connect() as conn:
            volumes = set(conn.execute(sa.text("SELECT id FROM volumes")).scalars())
            snapshots = set(conn.execute(sa.text("SELECT id FROM volume_snapshots")).scalars())
            errors = conn.execute(sa.text(
                "SELECT count(*) FROM volumes WHERE status LIKE 'error%'")).scalar_one()
        assert volumes == created["volume"], (volumes ^ created["volume"], failed)
        assert snapshots <= created["snapshot"], (snapshots - created["snapshot"], failed)
        with capsys.disabled():  # the figures show in CI's output
            print(f"\n{case.label}: {CRASHES} crashes with {in_flight} calls in flight; workload "
                  f"{workload.summary()}; {errors} volume(s) ended in ERROR")

        # what is left deletes cleanly, leaving nothing on the backend
        for snap in cloud.volume.list_snapshots():
            cloud.volume.delete_snapshot(snap.id)
        poll(lambda: not cloud.volume.list_snapshots(), 120, "every snapshot deleted")
        for volume in cloud.volume.list_volumes():
            cloud.volume.delete(volume.id)
        poll(lambda: not cloud.volume.list_volumes(), 120, "every volume deleted")
        assert _driver(cloud).list_backend_objects() == []
        assert seconds < 120, f"a volume was created only {seconds:.1f} s after the restart"
    finally:
        cloud.close()
