"""Volume backups through cloud.volume, the volume manager, the fake volume driver and the posix
backup driver (SQLite): the behaviour callers rely on - data and checksums, states and faults,
designed failures, Cinder's rules, reconciliation after a killed service, quotas."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

import stackcore
from stackcore import exception
from stackcore.volume import models
from stackcore.volume.backup.manager import sha256_of
from stackcore.volume.fake import sparse_copy
from stackcore.volume.states import BackupStatus, VolumeStatus
from tests.conftest import wait_until
from tests.unit.volume.conftest import manager_of

GiB = 1024**3
MiB = 1024**2


@pytest.fixture
def database_url() -> None:
    """SQLite only: what is tested here is the data path and the states (one conditional
    update each, as on any database), and every backup moves a GiB through the staging
    files - twice the databases would be twice that time for nothing new."""
    return None


@pytest.fixture
def bcloud(make_cloud: Callable[..., stackcore.Cloud], tmp_path: Any
           ) -> Callable[..., stackcore.Cloud]:
    """A cloud with the volume service, the fake backend and the posix backup driver."""

    def make(**overrides: Any) -> stackcore.Cloud:
        base: dict[str, Any] = {
            "DEFAULT": {"state_path": str(tmp_path / "state")},
            "backup": {"backup_driver": "posix"},
            "backup_posix": {"backup_posix_path": str(tmp_path / "backups")}}
        for group, values in overrides.items():
            base.setdefault(group, {}).update(values)
        return make_cloud(services=("volume",), overrides=base)

    return make


def volume_path(cloud: stackcore.Cloud, volume_id: str) -> str:
    return str(manager_of(cloud).driver._path(f"volume-{volume_id}"))


def write(cloud: stackcore.Cloud, volume_id: str, data: dict[int, bytes]) -> str:
    path = volume_path(cloud, volume_id)
    with open(path, "r+b") as handle:
        for offset, chunk in data.items():
            handle.seek(offset)
            handle.write(chunk)
    return sha(path)


def sha(path: str, size: int | None = None) -> str:
    """sha256 of the file (of its first ``size`` bytes), holes hashed without being read."""
    if size is not None and os.path.getsize(path) != size:
        copy = path + ".head"
        with open(copy, "wb") as handle:
            handle.truncate(size)
        sparse_copy(path, copy, size)
        try:
            return sha256_of(copy)
        finally:
            os.unlink(copy)
    return sha256_of(path)


def backup_files(tmp_path: Any) -> list[str]:
    return sorted(os.listdir(tmp_path / "backups"))


DATA = {0: b"first block", 5 * MiB + 3: os.urandom(4096), GiB - 1: b"\x01"}


def test_backup_and_restore_keep_every_byte(bcloud, tmp_path) -> None:
    cloud = bcloud()
    vol = cloud.volume.create(1, name="src")
    wanted = write(cloud, vol.id, DATA)
    backup = cloud.volume.create_backup(vol.id, name="nightly")
    assert (backup.status, backup.checksum, backup.is_incremental, backup.size) == \
        ("available", wanted, False, 1), backup
    assert backup.backup_driver == "posix" and backup.stored_bytes and backup.fault is None
    assert cloud.volume.get(vol.id).status == "available"
    assert backup_files(tmp_path) == [f"backup-{backup.id}"]
    assert [b.id for b in cloud.volume.list_backups(vol.id)] == [backup.id]

    restored = cloud.volume.restore_backup(backup.id)  # into a new volume
    assert restored.status == "available" and restored.id != vol.id and restored.size == 1
    assert sha(volume_path(cloud, restored.id)) == wanted
    assert cloud.volume.get_backup(backup.id).status == "available"

    bigger = cloud.volume.create(2)
    write(cloud, bigger.id, {0: b"old data"})
    again = cloud.volume.restore_backup(backup.id, volume_id=bigger.id)  # an existing volume
    assert (again.id, again.status, again.size) == (bigger.id, "available", 2)
    assert sha(volume_path(cloud, bigger.id), GiB) == wanted

    cloud.volume.delete_backup(backup.id)
    cloud.volume.delete_backup(backup.id)  # idempotent
    assert backup_files(tmp_path) == []
    assert cloud.volume.get_backup(backup.id, include_deleted=True).status == "deleted"
    with pytest.raises(exception.NotFound):
        cloud.volume.get_backup(backup.id)
    staging = tmp_path / "state" / "backup-staging"
    assert [p for p in staging.rglob("*") if p.is_file()] == [], "staged files left"


def test_refusals_name_the_culprit_and_change_nothing(bcloud, tmp_path) -> None:
    cloud = bcloud()
    vol = cloud.volume.create(2)
    backup = cloud.volume.create_backup(vol.id)
    small = cloud.volume.create(1)
    with pytest.raises(exception.Invalid) as caught:
        cloud.volume.restore_backup(backup.id, volume_id=small.id)
    assert caught.value.field == "volume_id" and "smaller" in str(caught.value)
    with pytest.raises(exception.Invalid) as caught:
        cloud.volume.create_backup(vol.id, name="a\nb")
    assert caught.value.field == "name"
    # posix makes full backups only: the capability, named with the driver
    with pytest.raises(exception.CapabilityNotSupported, match="posix.*incremental"):
        cloud.volume.create_backup(vol.id, incremental=True)
    cloud.volume.attach(vol.id, {"host": "compute-1"})
    with pytest.raises(exception.InvalidState, match="force=True"):
        cloud.volume.create_backup(vol.id)
    with pytest.raises(exception.InvalidState, match="in-use"):
        cloud.volume.restore_backup(backup.id, volume_id=vol.id)
    assert [b.id for b in cloud.volume.list_backups()] == [backup.id]
    assert {v.status for v in (cloud.volume.get(vol.id), cloud.volume.get(small.id))} == \
        {"in-use", "available"}
    forced = cloud.volume.create_backup(vol.id, force=True)  # attached: only with force
    assert forced.status == "available" and cloud.volume.get(vol.id).status == "in-use"


def test_a_parent_is_not_deleted_under_its_incremental(bcloud) -> None:
    cloud = bcloud()
    vol = cloud.volume.create(1)
    full = cloud.volume.create_backup(vol.id)
    child = str(uuid.uuid4())
    with cloud.db.transaction() as session:  # what an incremental driver's backup records
        session.add(models.VolumeBackup(
            id=child, volume_id=vol.id, size=1, size_bytes=GiB, status="available",
            host=manager_of(cloud).host, backup_driver="posix", parent_id=full.id,
            is_incremental=True, driver_data={}))
    assert cloud.volume.get_backup(full.id).has_dependent_backups
    with pytest.raises(exception.Conflict, match=f"incremental backup {child}"):
        cloud.volume.delete_backup(full.id)
    # the manager checks again under the volume's lock (the API's look may be stale)
    with pytest.raises(exception.Conflict):
        manager_of(cloud).delete_backup(full.id)
    assert cloud.volume.get_backup(full.id).status == "available"
    cloud.volume.delete_backup(child)
    cloud.volume.delete_backup(full.id)


def test_driver_failure_is_error_with_fault_and_nothing_half_made(bcloud, tmp_path) -> None:
    cloud = bcloud()
    vol = cloud.volume.create(1)
    manager_of(cloud).backups.driver.arm_fault("create:after_data")  # the .part is written
    backup = cloud.volume.create_backup(vol.id)
    assert backup.status == "error", backup
    assert backup.fault is not None and backup.fault.step == "create_backup" and \
        "create:after_data" in backup.fault.message, backup.fault
    assert cloud.volume.get(vol.id).status == "available"
    assert backup_files(tmp_path) == [], "the failed backup's partial file was left"
    cloud.volume.delete_backup(backup.id)  # an errored backup deletes
    assert cloud.volume.list_backups() == []


def test_a_restore_that_does_not_match_the_checksum_never_writes_the_volume(bcloud) -> None:
    cloud = bcloud()
    vol = cloud.volume.create(1)
    write(cloud, vol.id, DATA)
    backup = cloud.volume.create_backup(vol.id)
    target = cloud.volume.create(1)
    kept = write(cloud, target.id, {0: b"keep me"})
    driver = manager_of(cloud).backups.driver
    driver.restore_backup = lambda backup, path: None  # "restores" zeros
    got = cloud.volume.restore_backup(backup.id, volume_id=target.id)
    assert got.status == "available", "the volume goes back: it was never written"
    assert sha(volume_path(cloud, target.id)) == kept
    failed = cloud.volume.get_backup(backup.id)
    assert failed.status == "error" and failed.fault is not None
    assert failed.fault.exc_class == "ChecksumMismatch" and "was not written" in \
        failed.fault.message and failed.checksum in failed.fault.message, failed.fault
    volume_faults = cloud.volume.faults(target.id)
    assert volume_faults and volume_faults[-1].exc_class == "ChecksumMismatch"


def test_a_failed_restore_into_a_new_volume_leaves_it_in_error(bcloud) -> None:
    cloud = bcloud()
    vol = cloud.volume.create(1)
    write(cloud, vol.id, DATA)
    backup = cloud.volume.create_backup(vol.id)

    def broken(backup: Any, path: str) -> None:
        raise exception.BackendUnavailable("backup target gone")

    manager_of(cloud).backups.driver.restore_backup = broken
    made = cloud.volume.restore_backup(backup.id)
    assert made.status == "error", "a volume made for a failed restore holds nothing usable"
    again = cloud.volume.get_backup(backup.id)
    assert again.status == "available", "a driver failure does not condemn the backup"
    assert cloud.volume.faults(made.id)[-1].message == "backup target gone"


def test_a_killed_service_leaves_nothing_transient(bcloud, tmp_path) -> None:
    cloud = bcloud()
    vol, target = cloud.volume.create(1), cloud.volume.create(1)
    done = cloud.volume.create_backup(vol.id)
    host = manager_of(cloud).host
    creating, restoring = str(uuid.uuid4()), done.id
    # what a service killed in the middle leaves: a backup creating (its partial file on the
    # target) with its volume backing-up, a restore running into a volume
    with cloud.db.transaction() as session:
        session.add(models.VolumeBackup(
            id=creating, volume_id=vol.id, size=1, size_bytes=0, status="creating", host=host,
            backup_driver="posix", is_incremental=False, driver_data={}))
        session.execute(sa.update(models.Volume).where(models.Volume.id == vol.id).values(
            status=VolumeStatus.BACKING_UP, previous_status="available"))
        session.execute(sa.update(models.Volume).where(models.Volume.id == target.id).values(
            status=VolumeStatus.RESTORING_BACKUP, previous_status="available"))
        session.execute(sa.update(models.VolumeBackup)
                        .where(models.VolumeBackup.id == restoring)
                        .values(status=BackupStatus.RESTORING, restore_volume_id=target.id))
    (tmp_path / "backups" / f"backup-{creating}.part").write_bytes(b"half")
    cloud.close()

    again = bcloud()  # the service starts again on the same database
    interrupted = again.volume.get_backup(creating)
    assert interrupted.status == "error" and interrupted.fault is not None and \
        "interrupted by a restart" in interrupted.fault.message, interrupted
    assert again.volume.get(vol.id).status == "available"
    assert again.volume.get_backup(restoring).status == "available"
    assert again.volume.get(target.id).status == "error", "half-restored: error"
    assert "interrupted" in again.volume.faults(target.id)[-1].message
    assert backup_files(tmp_path) == [f"backup-{done.id}"]


def test_quotas_count_backups_and_their_gigabytes(bcloud) -> None:
    cloud = bcloud(quota={"backups": 2, "backup_gigabytes": 5})
    big, small = cloud.volume.create(3), cloud.volume.create(1)
    cloud.volume.create_backup(big.id)
    with pytest.raises(exception.OverQuota, match="backup_gigabytes of project admin: "
                       "requested 3, 3 in use, limit 5"):
        cloud.volume.create_backup(big.id)
    cloud.volume.create_backup(small.id)
    with pytest.raises(exception.OverQuota, match="for backups of project admin: "
                       "requested 1, 2 in use, limit 2"):
        cloud.volume.create_backup(small.id)
    vol = big
    assert len(cloud.volume.list_backups()) == 2
    assert cloud.volume.get(vol.id).status == "available", "nothing persisted"


def test_a_service_without_backup_driver_refuses_naming_itself(make_cloud, tmp_path) -> None:
    cloud = make_cloud(services=("volume",),
                       overrides={"DEFAULT": {"state_path": str(tmp_path)}})
    vol = cloud.volume.create(1)
    with pytest.raises(exception.Conflict, match=r"runs no backup driver \(\[backup\]"):
        cloud.volume.create_backup(vol.id)
    assert cloud.volume.list_backups() == [] and cloud.volume.get(vol.id).status == "available"


def test_a_lost_backup_request_is_settled_by_the_orphan_pass(bcloud) -> None:
    """A create_backup cast that never reached the service: once the volume has stayed
    backing-up with no work on it for rpc_call_timeout, the backup goes to error (fault:
    interrupted) and the volume back to available."""
    cloud = bcloud(DEFAULT={"rpc_call_timeout": 1})
    vol = cloud.volume.create(1)
    manager = manager_of(cloud)
    lost = str(uuid.uuid4())
    with cloud.db.transaction() as session:
        session.add(models.VolumeBackup(
            id=lost, volume_id=vol.id, size=1, size_bytes=0, status="creating",
            host=manager.host, backup_driver="posix", is_incremental=False, driver_data={}))
        session.execute(sa.update(models.Volume).where(models.Volume.id == vol.id).values(
            status=VolumeStatus.BACKING_UP, previous_status="available"))
    wait_until(lambda: vol.id in manager.reconcile_orphans(), 30,
               "the orphan pass taking the volume left backing-up")
    backup = cloud.volume.get_backup(lost)
    assert backup.status == "error" and backup.fault is not None and \
        "interrupted" in backup.fault.message, backup
    assert cloud.volume.get(vol.id).status == "available"
