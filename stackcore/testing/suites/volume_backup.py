"""Volume backup driver conformance suite.

Import it into a test module of the driver package and run pytest with
``--stackcore-driver volume.backup:<name>`` and a config file whose ``[backup]`` section
(:data:`~stackcore.volume.backup.driver.CONFORMANCE_SECTION`) configures the driver. The driver
is called exactly as the volume manager calls it (same arguments, same cleanup after failures):
sources are local raw files the kit writes - random data at chunk boundaries, holes, a last
byte - and what a restore gives back is compared with them byte for byte (sha256), never taken
from the driver's word.

What is checked, by feature:

* ``stats`` - the schema (:mod:`stackcore.volume.backup.stats`), ``incremental`` as declared,
  ``backup_count`` growing with a backup;
* ``backup`` - a backup restores to exactly its source (holes, chunk boundaries, the last
  byte), into a target that already reads zeros; it does not depend on the source file once
  made (the volume changes after its backup); backups of different volumes never mix; delete
  is idempotent (twice, and of a backup never made);
* ``failure-cleanup`` - at every checkpoint the driver declares (``FAULT_POINTS``) and with a
  source shorter than announced, the create raises and the manager's cleanup
  (``delete_backup``) leaves nothing behind;
* ``incremental`` (capability) - an incremental backup stores less than a full one, restores
  the whole volume as it was at its moment, is independent of a sibling deleted before it,
  and leaves its parent restorable.

After every test what it made is deleted as the manager would and
:meth:`~stackcore.volume.backup.driver.BackupDriver.list_backend_objects` must show nothing
named after the test's backups or volumes (a backend may be shared: other users' objects come
and go): a leak fails the test itself.
"""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from stackcore.testing import check
from stackcore.testing.harness import DriverUnderTest
from stackcore.testing.plugin import verify_after
from stackcore.volume.backup import stats
from stackcore.volume.backup.driver import (
    CONFORMANCE_SECTION,
    UPDATE_KEYS,
    Backup,
    BackupDriver,
    InjectedFault,
)

__all__ = [
    "TestBackupData",
    "TestBackupFailures",
    "TestBackupIncremental",
    "TestBackupStats",
    "backup_driver",
    "backups",
]

FAMILY = pytest.mark.family("volume.backup")
INCREMENTAL = pytest.mark.capability("incremental")
HOST = f"conformance@{CONFORMANCE_SECTION}"
MiB = 1024 * 1024
#: Spans several 4 MiB chunks and ends mid-chunk.
SIZE = 9 * MiB + 4099


def sha256(path: str) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


class Backups:
    """Sources, targets and backups of one test; deletes every backup after it (children
    first, as the manager must)."""

    def __init__(self, driver: BackupDriver, workdir: str) -> None:
        self.driver = driver
        self.workdir = workdir
        self.made: list[Backup] = []
        #: sha256 of each backup's source when it was made, and the stored_bytes it reported
        self.expected: dict[str, str] = {}
        self.stored: dict[str, int | None] = {}
        #: every backup and volume id this test used: the objects it may leave (names carry
        #: them, per the contract); on a shared backend other users' objects come and go
        self.ids: set[str] = set()

    def new(self, parent: Backup | None = None, size: int = SIZE) -> Backup:
        """A backup the manager would hand the driver (not made yet)."""
        backup = Backup(str(uuid.uuid4()), parent.volume_id if parent else str(uuid.uuid4()),
                        1, size, parent)
        self.ids |= {backup.id, backup.volume_id}
        return backup

    def ours(self) -> list[str]:
        """The driver's objects that belong to this test."""
        return sorted(n for n in self.driver.list_backend_objects()
                      if any(i in n for i in self.ids))

    def source(self, writes: dict[int, bytes] | None = None, size: int = SIZE) -> str:
        """A raw file of ``size`` bytes: zeros, with ``writes`` (offset -> bytes); by default
        random data at the start, across the first chunk boundary, in the middle and as the
        last byte, with holes between."""
        path = os.path.join(self.workdir, f"source-{uuid.uuid4()}.raw")
        if writes is None:
            writes = {0: os.urandom(1000), 4 * MiB - 500: os.urandom(1000),
                      6 * MiB: os.urandom(3 * MiB), size - 1: os.urandom(1)}
        with open(path, "wb") as handle:
            handle.truncate(size)
            for offset, data in writes.items():
                handle.seek(offset)
                handle.write(data)
        return path

    def target(self, size: int = SIZE) -> str:
        path = os.path.join(self.workdir, f"target-{uuid.uuid4()}.raw")
        with open(path, "wb") as handle:
            handle.truncate(size)
        return path

    def backup(self, source: str, parent: Backup | None = None,
               volume_id: str | None = None) -> Backup:
        """A backup of ``source`` made as the manager makes it (the driver's update applied;
        incremental when ``parent``)."""
        backup = self.new(parent, os.path.getsize(source))
        if volume_id is not None:
            backup = Backup(backup.id, volume_id, 1, backup.size_bytes, parent)
            self.ids.add(volume_id)
        self.made.append(backup)
        self.expected[backup.id] = sha256(source)
        if parent is None:
            update = check.step("create_backup()",
                                lambda: self.driver.create_backup(backup, source))
        else:
            update = check.step("create_incremental_backup()",
                                lambda: self.driver.create_incremental_backup(backup, source))
        return self.apply(backup, update)

    def apply(self, backup: Backup, update: Any) -> Backup:
        if not update:
            self.stored[backup.id] = None
            return backup
        check.that(isinstance(update, dict) and not set(update) - UPDATE_KEYS,
                   "the backup update returned", f"a dict with keys among {sorted(UPDATE_KEYS)}",
                   update)
        self.stored[backup.id] = update.get("stored_bytes")
        made = Backup(backup.id, backup.volume_id, backup.size, backup.size_bytes,
                      backup.parent, update.get("location"), update.get("driver_data") or {})
        self.made[self.made.index(backup)] = made
        return made

    def restored(self, backup: Backup) -> str:
        """sha256 of what restore_backup wrote into a fresh zero target."""
        target = self.target(backup.size_bytes)
        check.step("restore_backup()", lambda: self.driver.restore_backup(backup, target))
        check.equal(os.path.getsize(target), backup.size_bytes,
                    "size of the target after restore_backup()")
        return sha256(target)

    def delete(self, backup: Backup) -> None:
        self.driver.delete_backup(backup)
        self.made = [b for b in self.made if b.id != backup.id]

    def cleanup(self) -> None:
        for backup in reversed(self.made):
            self.driver.delete_backup(backup)
        self.made.clear()
        check.equal(self.ours(), [], "the driver's objects of the test after its backups "
                    "were deleted (list_backend_objects)")


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture
def backup_driver(stackcore_target: DriverUnderTest) -> BackupDriver:
    driver: BackupDriver = stackcore_target.new(CONFORMANCE_SECTION, HOST)
    check.instance(driver, BackupDriver, "the driver object")
    check.step("do_setup()", driver.do_setup)
    check.step("check_for_setup_error()", driver.check_for_setup_error)
    check.step("list_backend_objects()", driver.list_backend_objects)
    return driver


@pytest.fixture
def backups(backup_driver: BackupDriver, request: pytest.FixtureRequest) -> Iterator[Backups]:
    with tempfile.TemporaryDirectory(prefix="stackcore-backup-kit-") as workdir:
        made = Backups(backup_driver, workdir)
        verify_after(request, "deleting the test's backups", made.cleanup)
        yield made


def _stats(driver: BackupDriver) -> dict[str, Any]:
    report = check.step("get_backup_stats(refresh=True)",
                        lambda: driver.get_backup_stats(refresh=True))
    return check.step("the stats schema", lambda: stats.validate(report, "get_backup_stats()"))


# --- stats ----------------------------------------------------------------------------------


@FAMILY
@pytest.mark.feature("stats")
class TestBackupStats:
    def test_schema(self, backup_driver: BackupDriver,
                    stackcore_target: DriverUnderTest) -> None:
        report = _stats(backup_driver)
        check.equal(report["incremental"], stackcore_target.declared.get("incremental", False),
                    "stats 'incremental' (the declared capability)")
        check.equal(report["driver_version"], type(backup_driver).VERSION,
                    "stats 'driver_version' (the driver's VERSION)")

    def test_usage_grows(self, backup_driver: BackupDriver, backups: Backups) -> None:
        before = _stats(backup_driver)
        backups.backup(backups.source())
        after = _stats(backup_driver)
        check.equal(after["backup_count"] - before["backup_count"], 1,
                    "backup_count growth after one backup")
        check.that(after["stored_bytes"] > before["stored_bytes"],
                   "stored_bytes after one backup of several MiB of data",
                   f"more than {before['stored_bytes']}", after["stored_bytes"])


# --- backup and restore ---------------------------------------------------------------------


@FAMILY
@pytest.mark.feature("backup")
class TestBackupData:
    def test_restore_gives_back_every_byte(self, backups: Backups) -> None:
        source = backups.source()
        backup = backups.backup(source)
        check.equal(backups.restored(backup), sha256(source),
                    f"sha256 of the {SIZE} bytes restored (data at chunk boundaries, holes, "
                    "the last byte)")

    def test_backup_does_not_depend_on_its_source(self, backups: Backups) -> None:
        source = backups.source()
        wanted = sha256(source)
        backup = backups.backup(source)
        with open(source, "r+b") as handle:  # the volume is written after its backup
            handle.write(os.urandom(MiB))
        check.equal(backups.restored(backup), wanted, "sha256 restored after the source changed")
        os.unlink(source)
        check.equal(backups.restored(backup), wanted, "sha256 restored after the source went "
                    "away")

    def test_backups_do_not_mix(self, backups: Backups) -> None:
        first, second = backups.source(), backups.source()
        volume_id = str(uuid.uuid4())
        a = backups.backup(first, volume_id=volume_id)
        b = backups.backup(second, volume_id=volume_id)  # two full backups of one volume
        c = backups.backup(backups.source())
        check.equal(backups.restored(a), sha256(first), "sha256 of the first backup restored "
                    "after a second full backup of the same volume")
        check.equal(backups.restored(b), sha256(second), "sha256 of the second backup restored")
        backups.delete(c)
        check.equal(backups.restored(a), sha256(first),
                    "sha256 of a backup restored after another volume's backup was deleted")

    def test_delete_is_idempotent(self, backup_driver: BackupDriver, backups: Backups) -> None:
        backup = backups.backup(backups.source())
        check.step("delete_backup()", lambda: backup_driver.delete_backup(backup))
        check.step("delete_backup() again", lambda: backup_driver.delete_backup(backup))
        never = backups.new()
        check.step("delete_backup() of a backup never made",
                   lambda: backup_driver.delete_backup(never))
        backups.made.clear()


# --- failures -------------------------------------------------------------------------------


@FAMILY
@pytest.mark.feature("failure-cleanup")
class TestBackupFailures:
    def test_failure_at_each_checkpoint_leaves_nothing(
            self, backup_driver: BackupDriver, backups: Backups) -> None:
        for operation, points in type(backup_driver).FAULT_POINTS.items():
            for point in points:
                parent = None
                if operation == "create_incremental_backup":
                    parent = backups.backup(backups.source())
                before = backups.ours()
                backup = backups.new(parent)
                call: Callable[[Backup, str], Any] = (
                    backup_driver.create_incremental_backup if parent
                    else backup_driver.create_backup)
                backup_driver.arm_fault(point)
                try:
                    check.raises(InjectedFault,
                                 functools.partial(call, backup, backups.source()),
                                 f"{operation}() with checkpoint {point!r} armed")
                finally:
                    backup_driver.disarm_faults()
                check.step("delete_backup() (the manager's cleanup)",
                           functools.partial(backup_driver.delete_backup, backup))
                check.equal(backups.ours(), before,
                            f"the driver's objects after {operation}() failed at {point!r} "
                            "and was cleaned up")
                if parent is not None:
                    check.equal(backups.restored(parent), backups.expected[parent.id],
                                f"the parent restored after an incremental failed at {point!r}")
                    backups.delete(parent)

    def test_short_source_fails_and_leaves_nothing(self, backup_driver: BackupDriver,
                                                   backups: Backups) -> None:
        short = backups.source({0: os.urandom(100)}, size=SIZE - MiB)
        backup = backups.new()
        check.raises(Exception, lambda: backup_driver.create_backup(backup, short),
                     f"create_backup() of a {SIZE - MiB}-byte source announced as {SIZE} bytes")
        check.step("delete_backup() (the manager's cleanup)",
                   lambda: backup_driver.delete_backup(backup))
        check.equal(backups.ours(), [],
                    "the driver's objects after a failed create and its cleanup")


# --- incremental ----------------------------------------------------------------------------


@FAMILY
@INCREMENTAL
class TestBackupIncremental:
    def test_incremental_chain(self, backup_driver: BackupDriver, backups: Backups) -> None:
        data = bytearray(os.urandom(SIZE))
        data[2 * MiB:5 * MiB] = bytes(3 * MiB)  # a hole the later versions fill
        source = backups.source({0: bytes(data)})
        full = backups.backup(source)
        wanted_full = sha256(source)
        full_stored = _stored(backups, full)
        # version B: one 4 KiB change; version C: another change and a hole filled
        with open(source, "r+b") as handle:
            handle.seek(7 * MiB)
            handle.write(os.urandom(4096))
        first = backups.backup(source, parent=full)
        check.equal(backups.restored(first), sha256(source),
                    "sha256 restored from an incremental backup (the whole volume)")
        inc_stored = _stored(backups, first)
        check.that(inc_stored < full_stored,
                   "stored_bytes of an incremental backup of a 4 KiB change",
                   f"less than the full backup's {full_stored}", inc_stored)
        backups.delete(first)
        with open(source, "r+b") as handle:
            handle.seek(3 * MiB)
            handle.write(os.urandom(MiB))
        second = backups.backup(source, parent=full)
        check.equal(backups.restored(second), sha256(source),
                    "sha256 restored from an incremental backup made after its sibling "
                    "was deleted")
        check.equal(backups.restored(full), wanted_full,
                    "sha256 of the parent restored after incrementals were made on it")


def _stored(backups: Backups, backup: Backup) -> int:
    """The ``stored_bytes`` the create call reported (required of an incremental driver: it
    is how an operator sees what an incremental backup saved)."""
    stored = backups.stored.get(backup.id)
    check.that(isinstance(stored, int) and stored >= 0,
               f"stored_bytes reported by the create of backup {backup.id}",
               "an integer >= 0", stored)
    assert isinstance(stored, int)
    return stored
