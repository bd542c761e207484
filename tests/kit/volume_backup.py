"""Broken backup drivers: each subclasses the ``posix`` backup driver and breaks one rule of
the backup driver contract; the kit's backup suite must fail exactly what it breaks."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from typing import Any, ClassVar

from stackcore_drivers.backup import chunks, is_zero
from stackcore_drivers.backup.posix import PosixBackupDriver

from stackcore import exception
from stackcore.volume.backup import Backup, BackupUpdate
from tests.kit.registry import Broken

M = "tests.kit.volume_backup"
STATS = "TestBackupStats::"
DATA = "TestBackupData::"
FAIL = "TestBackupFailures::"
INC = "TestBackupIncremental::"


class FloatStats(PosixBackupDriver):
    """Reports stored_bytes in GiB, as a float."""

    def get_backup_stats(self, refresh: bool = False) -> dict[str, Any]:
        report = super().get_backup_stats(refresh)
        return {**report, "stored_bytes": report["stored_bytes"] / 1024**3}


class FrozenCount(PosixBackupDriver):
    """Always reports no backups."""

    def get_backup_stats(self, refresh: bool = False) -> dict[str, Any]:
        return {**super().get_backup_stats(refresh), "backup_count": 0}


class ZeroRestore(PosixBackupDriver):
    """Restores nothing: the target keeps its zeros."""

    def restore_backup(self, backup: Backup, target: str) -> None:
        if not os.path.exists(self._path(backup.name)):
            raise exception.NotFound("backup file", backup.name)


class SourceReference(PosixBackupDriver):
    """Keeps only the source's path, read at restore time (a 'backup' that is the volume)."""

    def create_backup(self, backup: Backup, source: str) -> BackupUpdate:
        with open(self._path(backup.name), "w") as handle:
            handle.write(source)
        return {"location": backup.name}

    def restore_backup(self, backup: Backup, target: str) -> None:
        with open(self._path(backup.name)) as handle:
            source = handle.read()
        shutil.copyfile(source, target)


class PerVolumeFile(PosixBackupDriver):
    """Names the file after the volume: a second backup of a volume overwrites the first."""

    def create_backup(self, backup: Backup, source: str) -> BackupUpdate:
        return super().create_backup(self._as_volume(backup), source)

    def restore_backup(self, backup: Backup, target: str) -> None:
        super().restore_backup(self._as_volume(backup), target)

    def delete_backup(self, backup: Backup) -> None:
        super().delete_backup(self._as_volume(backup))

    @staticmethod
    def _as_volume(backup: Backup) -> Backup:
        return Backup(backup.volume_id, backup.volume_id, backup.size, backup.size_bytes,
                      backup.parent, backup.location, backup.driver_data)


class StrictDelete(PosixBackupDriver):
    """Raises NotFound when deleting a backup that is not there."""

    def delete_backup(self, backup: Backup) -> None:
        if not os.path.exists(self._path(backup.name)) and \
                not os.path.exists(self._path(backup.name + ".part")):
            raise exception.NotFound("backup", backup.id)
        super().delete_backup(backup)


class KeepsPartial(PosixBackupDriver):
    """Its delete forgets the temporary ``.part`` file a failed create left."""

    def delete_backup(self, backup: Backup) -> None:
        try:
            os.unlink(self._path(backup.name))
        except FileNotFoundError:
            return


class PadsShortSource(PosixBackupDriver):
    """Backs up a source shorter than announced as if the rest were zeros."""

    def create_backup(self, backup: Backup, source: str) -> BackupUpdate:
        size = os.path.getsize(source)
        if size < backup.size_bytes:
            return super().create_backup(
                Backup(backup.id, backup.volume_id, backup.size, size), source)
        return super().create_backup(backup, source)


class DeltaIncremental(PosixBackupDriver):
    """Incremental backups done right: ``backup-<id>`` holds only the 4 MiB chunks that differ
    from the parent's restored data (sparse), ``backup-<id>.json`` lists them; a restore
    replays the chain."""

    capabilities: ClassVar[Mapping[str, bool]] = {"incremental": True}

    def get_backup_stats(self, refresh: bool = False) -> dict[str, Any]:
        report = super().get_backup_stats(refresh)
        names = [n for n in self._complete() if not n.endswith(".json")]
        return {**report, "incremental": type(self).capabilities["incremental"],
                "backup_count": len(names)}

    def create_incremental_backup(self, backup: Backup, source: str) -> BackupUpdate:
        assert backup.parent is not None
        base = self._path(backup.name + ".base.tmp")
        with open(base, "wb") as handle:
            handle.truncate(backup.size_bytes)
        try:
            self.restore_backup(backup.parent, base)
            changed = []
            with open(self._path(backup.name), "wb") as out:
                for (offset, data), (_, old) in zip(chunks(source, backup.size_bytes),
                                                    chunks(base, backup.size_bytes),
                                                    strict=True):
                    if data != old:
                        changed.append(offset)
                        if not is_zero(data):
                            out.seek(offset)
                            out.write(data)
                out.truncate(backup.size_bytes)
        finally:
            os.unlink(base)
        with open(self._path(backup.name + ".json"), "w") as handle:
            json.dump(changed, handle)
        return {"location": backup.name,
                "stored_bytes": os.stat(self._path(backup.name)).st_blocks * 512}

    def restore_backup(self, backup: Backup, target: str) -> None:
        if backup.parent is None:
            super().restore_backup(backup, target)
            return
        self.restore_backup(backup.parent, target)
        self._overlay(backup, target)

    def _overlay(self, backup: Backup, target: str) -> None:
        with open(self._path(backup.name + ".json")) as handle:
            changed = set(json.load(handle))
        with open(target, "r+b") as out:
            for offset, data in chunks(self._path(backup.name), backup.size_bytes):
                if offset in changed:
                    out.seek(offset)
                    out.write(data)

    def delete_backup(self, backup: Backup) -> None:
        super().delete_backup(backup)
        try:
            os.unlink(self._path(backup.name + ".json"))
        except FileNotFoundError:
            pass


class UnchainedIncremental(DeltaIncremental):
    """Restores an incremental backup's own chunks only, not its parent's."""

    def restore_backup(self, backup: Backup, target: str) -> None:
        if backup.parent is None:
            super().restore_backup(backup, target)
            return
        self._overlay(backup, target)


class LiarIncremental(DeltaIncremental):
    """Makes correct incremental backups but declares it cannot."""

    capabilities: ClassVar[Mapping[str, bool]] = {"incremental": False}


def _b(name: str, cls: type, kills: list[str], expect: str, defect: str,
       outcome: str = "fail", capability: str = "") -> Broken:
    return Broken("volume.backup", name, f"{M}:{cls.__name__}", tuple(kills), expect, outcome,
                  defect=defect, capability=capability)


ZOO = [
    _b("float-stats", FloatStats, [STATS + "test_schema"],
       "the stats schema raised StatsSchemaError", "reports GiB floats"),
    _b("frozen-count", FrozenCount, [STATS + "test_usage_grows"],
       "backup_count growth after one backup: expected 1, got 0", "reports no backups"),
    _b("zero-restore", ZeroRestore, [DATA + "test_restore_gives_back_every_byte",
                                     DATA + "test_backups_do_not_mix"],
       "sha256 of the", "restore writes nothing: the target keeps its zeros"),
    _b("source-reference", SourceReference,
       [DATA + "test_backup_does_not_depend_on_its_source"],
       "sha256 restored after the source changed: expected", "keeps only the path"),
    _b("per-volume-file", PerVolumeFile, [DATA + "test_backups_do_not_mix"],
       "sha256 of the first backup restored after a second full backup of the same volume",
       "one file per volume"),
    _b("strict-delete", StrictDelete, [DATA + "test_delete_is_idempotent"],
       "delete_backup() again raised NotFound", "a second delete raises"),
    _b("keeps-partial", KeepsPartial, [FAIL + "test_failure_at_each_checkpoint_leaves_nothing"],
       "failed at 'create:after_data' and was cleaned up", "leaves the .part file"),
    _b("pads-short-source", PadsShortSource,
       [FAIL + "test_short_source_fails_and_leaves_nothing"],
       "create_backup() of a", "backs up a short source as if the rest were zeros"),
    _b("unchained-incremental", UnchainedIncremental, [INC + "test_incremental_chain"],
       "sha256 restored from an incremental backup (the whole volume)",
       "restores an incremental's own chunks only", capability="incremental"),
    _b("liar-incremental", LiarIncremental, [INC + "test_incremental_chain"],
       "capability 'incremental' is declared unsupported",
       "makes incremental backups but declares it cannot", "unexpected-success", "incremental"),
]
