"""Volume backups on the real backends: an NFS volume backed up by the posix driver into the
directory nfs-ganesha exports, an RBD volume by the ceph driver with an incremental backup.

Data goes in and is checked through each volume's own connection_info, opened with qemu as a
hypervisor would (:mod:`stackcore.testing.datapath`), never through the drivers' word.

Why the posix driver writes the export's directory: this host's kernel has no NFS client, so the
export cannot be mounted here (the NFS volume driver reaches it through libnfs in userspace for
the same reason). The backup files are then read back *through NFS* (libnfs), as a volume host
that mounts the export would see them.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import stackcore
from stackcore import exception
from stackcore.testing import datapath
from tests.conftest import backend_env

pytestmark = pytest.mark.real

MiB = 1024**2
GiB = 1024**3
BACKEND = "real"
CONNECTOR = {"host": "backup-test-host", "ip": "127.0.0.1", "platform": "x86_64",
             "os_type": "linux", "multipath": False,
             "initiator": "iqn.2004-10.org.stackcore:backup-test"}


def _cloud(tmp_path: Any, section: dict[str, Any], backup: str,
           backup_options: dict[str, Any]) -> stackcore.Cloud:
    return stackcore.Cloud(services=("volume",), overrides={
        "DEFAULT": {"state_path": str(tmp_path / "state"), "periodic_interval": 3600},
        "volume": {"enabled_backends": [BACKEND]},
        BACKEND: {"volume_backend_name": BACKEND, **section},
        "backup": {"backup_driver": backup},
        f"backup_{backup}": backup_options,
    })


class Volumes:
    """Attach/detach helpers; deletes the test's backups (children first) and volumes."""

    def __init__(self, cloud: stackcore.Cloud) -> None:
        self.cloud = cloud

    def info(self, volume_id: str) -> tuple[dict[str, Any], str]:
        info = self.cloud.volume.attach(volume_id, CONNECTOR)
        return info, info["attachment_id"]

    def write(self, volume_id: str, writes: dict[int, int]) -> None:
        info, attachment = self.info(volume_id)
        try:
            for offset, pattern in writes.items():
                datapath.write_pattern(info, offset, pattern, MiB)
        finally:
            self.cloud.volume.detach(volume_id, attachment)

    def expect(self, volume_id: str, patterns: dict[int, int], what: str) -> None:
        info, attachment = self.info(volume_id)
        try:
            for offset, pattern in patterns.items():
                datapath.expect_pattern(info, offset, pattern, f"{what}, offset {offset}")
        finally:
            self.cloud.volume.detach(volume_id, attachment)

    def cleanup(self) -> None:
        for backup in sorted(self.cloud.volume.list_backups(),
                             key=lambda b: not b.is_incremental):
            self.cloud.volume.delete_backup(backup.id)
        for volume in self.cloud.volume.list_volumes():
            self.cloud.volume.delete(volume.id)


@pytest.fixture
def nfs_cloud(tmp_path: Any) -> Iterator[tuple[stackcore.Cloud, str, str]]:
    server = backend_env("STACKCORE_TEST_NFS_SERVER", "nfs")
    export = backend_env("STACKCORE_TEST_NFS_EXPORT", "nfs")
    directory = backend_env("STACKCORE_TEST_NFS_DIR", "nfs")
    sub = f"backups-{uuid.uuid4().hex[:8]}"
    cloud = _cloud(tmp_path, {"volume_driver": "nfs", "nfs_access": "qemu",
                              "nfs_shares": [f"{server}:{export}"]},
                   "posix", {"backup_posix_path": os.path.join(directory, sub)})
    volumes = Volumes(cloud)
    try:
        yield cloud, server, sub
    finally:
        try:
            volumes.cleanup()
        finally:
            cloud.close()
            shutil.rmtree(os.path.join(directory, sub), ignore_errors=True)


def test_nfs_volume_backed_up_onto_the_nfs_export(nfs_cloud) -> None:
    cloud, server, sub = nfs_cloud
    volumes = Volumes(cloud)
    vol = cloud.volume.create(1, name="nfs-src")
    volumes.write(vol.id, {0: 0xAB, 700 * MiB: 0xCD})
    backup = cloud.volume.create_backup(vol.id, name="to-nfs")
    assert backup.status == "available" and backup.checksum, backup
    assert cloud.volume.get(vol.id).status == "available"

    from stackcore_drivers.volume.libnfs import NfsShare

    with NfsShare(server, backend_env("STACKCORE_TEST_NFS_EXPORT", "nfs")) as share:
        size, _allocated = share.stat(f"{sub}/backup-{backup.id}")
    assert size == GiB, f"the backup file seen through NFS holds {size} bytes, not 1 GiB"

    restored = cloud.volume.restore_backup(backup.id, name="nfs-restored")
    assert restored.status == "available", cloud.volume.faults(restored.id)
    volumes.expect(restored.id, {0: 0xAB, 700 * MiB: 0xCD}, "the restored NFS volume")
    # (a restore over newer data in an existing volume: the RBD test below)


@pytest.fixture
def rbd_cloud(tmp_path: Any) -> Iterator[stackcore.Cloud]:
    pytest.importorskip("rados", reason="python3-rados is not importable in this venv")
    conf = backend_env("STACKCORE_TEST_CEPH_CONF", "ceph")
    pool = backend_env("STACKCORE_TEST_CEPH_POOL", "ceph")
    cloud = _cloud(tmp_path, {"volume_driver": "rbd", "rbd_ceph_conf": conf, "rbd_pool": pool,
                              "rados_connect_timeout": 10},
                   "ceph", {"backup_ceph_conf": conf, "backup_ceph_pool": pool,
                            "rados_connect_timeout": 10})
    try:
        yield cloud
    finally:
        try:
            Volumes(cloud).cleanup()
        finally:
            cloud.close()


def test_rbd_volume_incremental_backup_on_ceph(rbd_cloud) -> None:
    cloud = rbd_cloud
    volumes = Volumes(cloud)
    vol = cloud.volume.create(1, name="rbd-src")
    volumes.write(vol.id, {0: 0xA1, 300 * MiB: 0xA2, 600 * MiB: 0xA3})
    full = cloud.volume.create_backup(vol.id, name="full")
    assert full.status == "available" and not full.is_incremental, full
    volumes.write(vol.id, {300 * MiB: 0xB2})  # one MiB changes
    inc = cloud.volume.create_backup(vol.id, name="inc", incremental=True)
    assert (inc.status, inc.is_incremental, inc.parent_id) == ("available", True, full.id), inc
    assert inc.stored_bytes is not None and full.stored_bytes is not None
    assert inc.stored_bytes <= 8 * MiB < full.stored_bytes, (
        f"the incremental stored {inc.stored_bytes} bytes for a 1 MiB change "
        f"(the full backup {full.stored_bytes})")
    assert cloud.volume.get_backup(full.id).has_dependent_backups
    with pytest.raises(exception.Conflict, match=f"incremental backup {inc.id}"):
        cloud.volume.delete_backup(full.id)

    restored = cloud.volume.restore_backup(inc.id, name="from-inc")
    assert restored.status == "available", cloud.volume.faults(restored.id)
    volumes.expect(restored.id, {0: 0xA1, 300 * MiB: 0xB2, 600 * MiB: 0xA3},
                   "the volume restored from the incremental backup")
    # the full backup into that same volume: the change is undone
    again = cloud.volume.restore_backup(full.id, volume_id=restored.id)
    assert again.status == "available", cloud.volume.faults(restored.id)
    volumes.expect(restored.id, {0: 0xA1, 300 * MiB: 0xA2, 600 * MiB: 0xA3},
                   "the volume restored from the full backup over the incremental's data")
    cloud.volume.delete_backup(inc.id)
    cloud.volume.delete_backup(full.id)
    assert cloud.volume.list_backups() == []
