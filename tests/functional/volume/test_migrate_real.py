"""Volume migration and retype on the real backends: one volume service serving an NFS share
(nfs-ganesha, reached through libnfs) and a Ceph pool, the volume moved nfs -> rbd -> nfs.

The data is written and checked through each copy's own connection_info, opened with qemu as
a hypervisor would (:mod:`stackcore.testing.datapath`), never through the drivers' word; what
is left on each backend is read from the backend's own listing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import stackcore
from stackcore.testing import datapath
from tests.conftest import backend_env
from tests.unit.volume.conftest import manager_of

pytestmark = pytest.mark.real

MiB = 1024**2
CONNECTOR = {"host": "migrate-test-host", "ip": "127.0.0.1", "platform": "x86_64",
             "os_type": "linux", "multipath": False,
             "initiator": "iqn.2004-10.org.stackcore:migrate-test"}
PATTERNS = {0: 0x5A, 333 * MiB: 0xC3, 1023 * MiB: 0x7E}


@pytest.fixture
def cloud(tmp_path: Any) -> Iterator[stackcore.Cloud]:
    pytest.importorskip("rados", reason="python3-rados is not importable in this venv")
    server = backend_env("STACKCORE_TEST_NFS_SERVER", "nfs")
    export = backend_env("STACKCORE_TEST_NFS_EXPORT", "nfs")
    conf = backend_env("STACKCORE_TEST_CEPH_CONF", "ceph")
    pool = backend_env("STACKCORE_TEST_CEPH_POOL", "ceph")
    made = stackcore.Cloud(services=("volume",), overrides={
        "DEFAULT": {"state_path": str(tmp_path / "state"), "periodic_interval": 3600},
        "volume": {"enabled_backends": ["nfs", "rbd"]},
        "nfs": {"volume_driver": "nfs", "volume_backend_name": "nfs", "nfs_access": "qemu",
                "nfs_shares": [f"{server}:{export}"]},
        "rbd": {"volume_driver": "rbd", "volume_backend_name": "rbd", "rbd_ceph_conf": conf,
                "rbd_pool": pool, "rados_connect_timeout": 10},
    })
    try:
        yield made
    finally:
        try:
            for volume in made.volume.list_volumes():
                made.volume.delete(volume.id)
        finally:
            made.close()


def _attached(cloud: stackcore.Cloud, volume_id: str) -> Any:
    info = cloud.volume.attach(volume_id, CONNECTOR)

    class Attached:
        def __enter__(self) -> dict[str, Any]:
            return info

        def __exit__(self, *exc: object) -> None:
            cloud.volume.detach(volume_id, info["attachment_id"])

    return Attached()


def _objects(cloud: stackcore.Cloud, backend: str, volume_id: str) -> list[str]:
    return [n for n in manager_of(cloud, backend).driver.list_backend_objects()
            if volume_id in n]


def _expect(cloud: stackcore.Cloud, volume_id: str, where: str) -> str:
    with _attached(cloud, volume_id) as info:
        for offset, pattern in PATTERNS.items():
            datapath.expect_pattern(info, offset, pattern, f"{where}, offset {offset}")
        return str(info["driver_volume_type"])


def test_a_volume_retyped_nfs_to_rbd_and_back_keeps_its_data(cloud) -> None:
    cloud.volume.create_type("nfs", {"volume_backend_name": "nfs"})
    cloud.volume.create_type("rbd", {"volume_backend_name": "rbd"})
    vol = cloud.volume.create(1, name="mover", volume_type="nfs")
    assert vol.status == "available" and "@nfs#" in vol.host, vol
    with _attached(cloud, vol.id) as info:
        for offset, pattern in PATTERNS.items():
            datapath.write_pattern(info, offset, pattern, MiB)

    on_rbd = cloud.volume.retype(vol.id, "rbd", migration_policy="on-demand")
    assert (on_rbd.status, on_rbd.migration_status, on_rbd.volume_type) == \
        ("available", "success", "rbd"), (on_rbd, cloud.volume.faults(vol.id))
    assert "@rbd#" in on_rbd.host, on_rbd.host
    assert _expect(cloud, vol.id, "the volume moved to Ceph") == "rbd"
    assert _objects(cloud, "nfs", vol.id) == [], "the NFS copy is deleted"
    assert _objects(cloud, "rbd", vol.id) == [f"volume-{vol.id}"]

    back = cloud.volume.retype(vol.id, "nfs", migration_policy="on-demand")
    assert (back.status, back.migration_status, back.volume_type) == \
        ("available", "success", "nfs"), (back, cloud.volume.faults(vol.id))
    assert _expect(cloud, vol.id, "the volume moved back to NFS") == "nfs"
    assert _objects(cloud, "rbd", vol.id) == [], "the Ceph copy is deleted"
    pools = {p.name.split("@")[1].split("#")[0]: p.allocated_capacity_gb
             for p in cloud.volume.list_pools()}
    assert pools == {"nfs": 1, "rbd": 0}, pools


def test_an_untyped_volume_migrates_to_the_other_backend(cloud) -> None:
    vol = cloud.volume.create(1, name="untyped")
    with _attached(cloud, vol.id) as info:
        for offset, pattern in PATTERNS.items():
            datapath.write_pattern(info, offset, pattern, MiB)
    source = vol.host.split("@")[1].split("#")[0]
    moved = cloud.volume.migrate(vol.id)
    target = moved.host.split("@")[1].split("#")[0]
    assert (moved.status, moved.migration_status) == ("available", "success"), \
        (moved, cloud.volume.faults(vol.id))
    assert {source, target} == {"nfs", "rbd"}, (source, target)
    assert _expect(cloud, vol.id, f"the volume moved {source} -> {target}") == target
    assert _objects(cloud, source, vol.id) == [], f"the {source} copy is deleted"
