"""The posix backup driver: each backup is one sparse file ``backup-<id>`` under a directory.

The directory (``backup_posix_path``) may be local or a mounted NFS export (Cinder's posix and
NFS backup drivers work the same way; a shared mount lets every volume host restore every
backup). A backup is written as ``backup-<id>.part`` and renamed once complete and flushed, so a
reader never sees half a backup; chunks of zeros are not written (the file stays sparse, like
the thin volume it copies). Full backups only: the capability ``incremental`` is not declared.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from stackcore import exception, lazy
from stackcore.volume.backup import Backup, BackupDriver, BackupUpdate
from stackcore_drivers.backup import data_chunks, is_zero

if TYPE_CHECKING:
    from oslo_config import cfg

OPTS = lazy.options(lambda cfg: [
    cfg.StrOpt("backup_posix_path", default="$state_path/backup",
               help="Directory holding the backup files (local, or a mounted NFS export "
               "shared by the volume hosts)."),
])

PART = ".part"


class PosixBackupDriver(BackupDriver):
    """Backups as sparse files in a directory."""

    VERSION = "1.0.0"
    capabilities: ClassVar[Mapping[str, bool]] = {"incremental": False}
    FAULT_POINTS: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "create_backup": ("create:after_data",),
    }

    @classmethod
    def get_driver_options(cls) -> list[cfg.Opt]:
        return list(OPTS)

    @property
    def root(self) -> str:
        return str(self.configuration.backup_posix_path)

    def _path(self, name: str) -> str:
        return os.path.join(self.root, name)

    def do_setup(self) -> None:
        try:
            os.makedirs(self.root, mode=0o750, exist_ok=True)
        except OSError as err:
            raise exception.ConfigError(f"[{self.group}] backup_posix_path {self.root!r}: "
                                        f"{err.strerror}", section=self.group,
                                        option="backup_posix_path") from err

    def check_for_setup_error(self) -> None:
        if not os.path.isdir(self.root) or not os.access(self.root, os.W_OK | os.X_OK):
            raise exception.ConfigError(f"[{self.group}] backup_posix_path {self.root!r} is "
                                        "not a writable directory", section=self.group,
                                        option="backup_posix_path")

    def _complete(self) -> list[str]:
        return sorted(n for n in os.listdir(self.root)
                      if n.startswith("backup-") and not n.endswith(PART))

    def get_backup_stats(self, refresh: bool = False) -> dict[str, Any]:
        st = os.statvfs(self.root)
        names = self._complete()
        stored = 0
        for name in names:
            try:
                stored += os.stat(self._path(name)).st_blocks * 512
            except FileNotFoundError:
                continue  # deleted meanwhile
        return {"driver_version": self.VERSION, "incremental": False,
                "total_capacity_bytes": st.f_blocks * st.f_frsize,
                "free_capacity_bytes": st.f_bavail * st.f_frsize,
                "stored_bytes": stored, "backup_count": len(names)}

    def list_backend_objects(self) -> list[str]:
        return sorted(n for n in os.listdir(self.root) if n.startswith("backup-"))

    def create_backup(self, backup: Backup, source: str) -> BackupUpdate:
        final, part = self._path(backup.name), self._path(backup.name + PART)
        with open(part, "wb") as out:
            for offset, data in data_chunks(source, backup.size_bytes):
                if not is_zero(data):  # a hole reads zeros: skip, the file stays sparse
                    out.seek(offset)
                    out.write(data)
            out.truncate(backup.size_bytes)
            out.flush()
            os.fsync(out.fileno())
        self.checkpoint("create:after_data")
        os.replace(part, final)
        return {"location": backup.name,
                "stored_bytes": os.stat(final).st_blocks * 512}

    def restore_backup(self, backup: Backup, target: str) -> None:
        path = self._path(backup.name)
        if not os.path.exists(path):
            raise exception.NotFound("backup file", path)
        if os.path.getsize(path) != backup.size_bytes:
            raise exception.DriverError(f"backup file {path} holds {os.path.getsize(path)} "
                                        f"bytes, expected {backup.size_bytes}")
        with open(target, "r+b") as out:
            for offset, data in data_chunks(path, backup.size_bytes):
                if not is_zero(data):  # the target reads zeros already
                    out.seek(offset)
                    out.write(data)
            out.flush()
            os.fsync(out.fileno())

    def delete_backup(self, backup: Backup) -> None:
        for name in (backup.name, backup.name + PART):
            try:
                os.unlink(self._path(name))
            except FileNotFoundError:
                continue
