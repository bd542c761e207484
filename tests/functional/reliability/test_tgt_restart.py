"""tgtd crashes (SIGKILL: every target it served is gone) while the volume service exports,
attaches, detaches and deletes volumes through it.

A PRIVATE tgtd (tools/backends/private.sh tgt: its own management socket and portal; tgtadm
reaches it through ``TGT_IPC_SOCKET``) serves the exports of :mod:`.tgt_driver` (the fake's
files exported by the lvm driver's tgt helper: LVs would need device-mapper, which this kernel
lacks). The scheduler and the volume service run in this process; nothing of stackcore is
restarted. Three volumes stay attached through the crashes; the workload makes, attaches,
detaches and deletes others. After each restart the volume service must put back the targets
of every attached volume by itself (its periodic ``ensure_export``), with the same CHAP
credentials; every call completed or failed with a stackcore error, nothing is transient,
volumes in ERROR have a fault naming tgt, rows are what the calls returned, claims equal
allocations, a target exactly for each attached volume and a file for each live one. The
recovery time (restart to the first attach through stackcore) is printed.
"""

from __future__ import annotations

import importlib
import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from stevedore import extension

import stackcore
from stackcore.plugins import loader

from .conftest import PrivateBackend, Recovery, poll
from .invariants import claim_problems, fault_problems, transient_problems
from .test_volume_backend_restart import CONNECTOR, backend_object_problems
from .tgt_driver import PORTAL_ENV, PREFIX
from .workload import Workload

pytestmark = pytest.mark.real

CRASHES = 2
BACKEND = "tgtfile"
STEADY = 3


def _forget_entry_points() -> None:
    extension.ExtensionManager.ENTRY_POINT_CACHE.clear()
    loader._entry_point_owners.cache_clear()  # the loader's caches too
    loader._entry_point_texts.cache_clear()
    importlib.invalidate_caches()


@pytest.fixture
def tgtfile_driver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """:class:`.tgt_driver.TgtFileDriver` as the volume driver ``tgtfile``."""
    info = tmp_path / "site" / "stackcore_reliability_tgt-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: stackcore-reliability-tgt\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[stackcore.volume.drivers]\n"
        "tgtfile = tests.functional.reliability.tgt_driver:TgtFileDriver\n")
    monkeypatch.syspath_prepend(str(info.parent))
    _forget_entry_points()
    yield
    monkeypatch.undo()
    _forget_entry_points()


def _targets(driver_objects: list[str]) -> set[str]:
    return {name[len("target:" + PREFIX + "volume-"):] for name in driver_objects
            if name.startswith("target:")}


def test_volume_service_survives_a_tgtd_crash_mid_operation(
    private_backend: Callable[[str], PrivateBackend], recovery: Callable[[str], Recovery],
    tgtfile_driver: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tgt = private_backend("tgt")
    monkeypatch.setenv("TGT_IPC_SOCKET", tgt.env["TGT_IPC_SOCKET"])
    monkeypatch.setenv(PORTAL_ENV, tgt.env["PORTAL"])
    cloud = stackcore.Cloud(services=("scheduler", "volume"), overrides={
        "DEFAULT": {"state_path": str(tmp_path / "state"), "periodic_interval": 1,
                    "report_interval": 1, "rpc_call_timeout": 30},
        "volume": {"enabled_backends": [BACKEND]},
        BACKEND: {"volume_backend_name": BACKEND, "volume_driver": "tgtfile"},
    })
    driver = next(s.manager for s in cloud.services if s.manager.__class__.__name__
                  == "VolumeManager").driver
    try:
        poll(lambda: [p for p in cloud.volume.list_pools() if p.up and p.reporting], 60,
             "the pool reporting")
        steady = {}
        for i in range(STEADY):
            volume = cloud.volume.create(1, name=f"steady-{i}")
            steady[volume.id] = cloud.volume.attach(volume.id, CONNECTOR)
        auth = {vid: info["data"]["auth_password"] for vid, info in steady.items()}
        assert _targets(driver.list_backend_objects()) == set(steady)
        names = itertools.count()
        created: set[str] = set(steady)

        def step(thread: int, iteration: int, record: Callable[..., Any]) -> None:
            volume = record("create_volume", cloud.volume.create, 1,
                            name=f"churn-{next(names)}", timeout=120)
            if volume is None:
                return
            created.add(volume.id)
            info = record("attach", cloud.volume.attach, volume.id, CONNECTOR)
            if info is not None:
                record("detach", cloud.volume.detach, volume.id, info["attachment_id"])
            record("delete_volume", cloud.volume.delete, volume.id)

        workload = Workload(3, step).start()
        in_flight = []
        for crash in range(CRASHES):
            workload.wait_for(10 * (crash + 1), 120)
            in_flight.append(workload.in_flight)
            clock = recovery("tgtd")
            tgt.kill()
            tgt.start()
            clock.backend_back()

        def attached() -> bool:
            try:
                volume = cloud.volume.create(1, name="after", timeout=60)
                created.add(volume.id)
                cloud.volume.attach(volume.id, CONNECTOR)
            except stackcore.exception.StackcoreError:
                return False
            return True

        poll(attached, 120, "a volume attached after the tgtd restart", interval=0.5)
        seconds = clock.service_back("a volume was attached (target made)")
        workload.stop(300)
        assert sum(in_flight) > 0, "no call was in flight at any crash"
        assert not workload.foreign_errors(), workload.foreign_errors()

        engine = cloud.db.engine
        poll(lambda: not transient_problems(engine), 120, "nothing left transient")
        assert fault_problems(engine, ("tgt",)) == []
        assert claim_problems(engine) == []
        with engine.connect() as conn:
            in_use = set(conn.execute(sa.text(
                "SELECT id FROM volumes WHERE status = 'in-use'")).scalars())
            volumes = set(conn.execute(sa.text("SELECT id FROM volumes")).scalars())
            errors = conn.execute(sa.text(
                "SELECT count(*) FROM volumes WHERE status LIKE 'error%'")).scalar_one()
        assert set(steady) <= in_use
        # the lost targets of the attached volumes are back (periodic ensure_export), the
        # targets of detached or deleted ones are gone
        poll(lambda: _targets(driver.list_backend_objects()) == in_use or None, 60,
             "a target exactly for each attached volume")
        poll(lambda: not backend_object_problems(cloud, engine) or None, 60,
             "backend objects and rows agreeing")
        # same CHAP secret as before the crashes: the hypervisors' sessions log in again
        with engine.connect() as conn:
            now = {r.id: r.provider_auth.split(" ")[-1] for r in conn.execute(sa.text(
                "SELECT id, provider_auth FROM volumes WHERE id IN :ids").bindparams(
                    sa.bindparam("ids", expanding=True)), {"ids": list(steady)})}
        assert now == auth
        failed = [f"{o.op}: {o.detail}" for o in workload.failures()]
        assert volumes == created, (volumes ^ created, failed)
        with capsys.disabled():  # the figures show in CI's output
            print(f"\ntgtd: {CRASHES} crashes with {in_flight} calls in flight; workload "
                  f"{workload.summary()}; {errors} volume(s) ended in ERROR")

        for volume in cloud.volume.list_volumes():
            for attachment in cloud.volume.get(volume.id).attachments:
                cloud.volume.detach(volume.id, attachment.id)
            cloud.volume.delete(volume.id)
        poll(lambda: not cloud.volume.list_volumes(), 120, "every volume deleted")
        assert driver.list_backend_objects() == []
        assert seconds < 60, f"a volume was attached only {seconds:.1f} s after the restart"
    finally:
        cloud.close()
