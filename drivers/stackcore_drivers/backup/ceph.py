"""The Ceph backup driver: backups as RBD snapshots, incremental ones by RBD diff.

Layout (Cinder's Ceph backup driver, one base image per chain): a full backup makes the image
``backup-<full id>.base`` in ``backup_ceph_pool``, writes the volume's data into it (chunks of
zeros are not written: the image stays thin) and takes the snapshot ``backup-<id>``. An
incremental backup (capability ``incremental``) works on its parent's base image: the head is
rolled back to the parent's snapshot, only the chunks that differ from it are written (a chunk
that became zeros is discarded), and its own snapshot ``backup-<id>`` is taken - so the RADOS
objects it adds are exactly ``rbd diff --from-snap <parent>`` of its snapshot, which is what it
reports as ``stored_bytes`` (``Image.diff_iterate`` from the parent's snapshot).

A restore reads the backup's snapshot (every snapshot is the whole volume at its moment: a
restore of an incremental backup needs no replay), only the extents the snapshot holds
(``diff_iterate`` from the beginning). Deleting a backup removes its snapshot; deleting the
full backup, which the manager allows only once no incremental depends on it, removes the base
image. A failed create leaves at most a snapshot and written head data, which that delete (and
the next incremental's roll-back) removes.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from stackcore import exception, lazy
from stackcore.volume.backup import Backup, BackupDriver, BackupUpdate
from stackcore_drivers import ceph
from stackcore_drivers.backup import CHUNK, chunks, is_zero

if TYPE_CHECKING:
    from oslo_config import cfg

OPTS = lazy.options(lambda cfg: [
    cfg.StrOpt("backup_ceph_pool", default="backups", help="RADOS pool holding the backups."),
    cfg.StrOpt("backup_ceph_user", help="Ceph client id (cephx user); unset: the default "
               "client."),
    cfg.StrOpt("backup_ceph_conf", default="", help="ceph.conf path ('' = librados default)."),
    cfg.StrOpt("backup_ceph_cluster_name", default="ceph", help="Ceph cluster name."),
    cfg.IntOpt("rados_connect_timeout", default=-1,
               help="Seconds for monitor/OSD operations and connecting; < 0: librados "
               "defaults."),
])

# librbd feature bits: with the object map and fast-diff, diff_iterate reads the object map
# instead of every object (what makes an incremental's diff cheap).
LAYERING, EXCLUSIVE_LOCK, OBJECT_MAP, FAST_DIFF = 1, 4, 8, 16
FEATURES = LAYERING | EXCLUSIVE_LOCK | OBJECT_MAP | FAST_DIFF
BASE = ".base"


def _bindings() -> tuple[Any, Any]:
    return ceph.bindings("the ceph backup driver")


def extents(image: Any, size: int, from_snapshot: str | None = None) -> list[tuple[int, int]]:
    """``(offset, length)`` of the data extents of ``image`` (at its current snapshot) that
    differ from ``from_snapshot`` (None: from nothing - every allocated extent)."""
    found: list[tuple[int, int]] = []

    def collect(offset: int, length: int, exists: bool) -> None:
        if exists:
            found.append((offset, length))

    image.diff_iterate(0, size, from_snapshot, collect)
    return found


class CephBackupDriver(BackupDriver):
    """Backups as snapshots of RBD base images; incremental backups by RBD diff."""

    VERSION = "1.0.0"
    REQUIRES: ClassVar[Mapping[str, str]] = {
        "rados": "Debian's python3-rados; see tools/backends/python-bindings.sh",
        "rbd": "Debian's python3-rbd; see tools/backends/python-bindings.sh",
    }
    capabilities: ClassVar[Mapping[str, bool]] = {"incremental": True}
    FAULT_POINTS: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "create_backup": ("create:after_image", "create:after_snapshot"),
        "create_incremental_backup": ("incremental:after_write",
                                      "incremental:after_snapshot"),
    }

    def __init__(self, conf: cfg.ConfigOpts, group: str, host: str) -> None:
        super().__init__(conf, group, host)
        self._client: Any = None
        self._lock = threading.Lock()

    @classmethod
    def get_driver_options(cls) -> list[cfg.Opt]:
        return list(OPTS)

    # --- connection ----------------------------------------------------------------------

    def _rados(self) -> Any:
        rados, _ = _bindings()
        conf = self.configuration
        with self._lock:
            if self._client is not None:
                return self._client
            try:
                client = ceph.connect(rados, user=conf.backup_ceph_user,
                                      clustername=conf.backup_ceph_cluster_name,
                                      conffile=conf.backup_ceph_conf,
                                      timeout=conf.rados_connect_timeout
                                      if conf.rados_connect_timeout >= 0 else None)
            except rados.Error as err:
                raise exception.BackendUnavailable(
                    f"cannot connect to Ceph cluster {conf.backup_ceph_cluster_name!r}: "
                    f"{type(err).__name__}: {err}") from None
            self._client = client
            return client

    @contextlib.contextmanager
    def _ioctx(self) -> Iterator[Any]:
        rados, _ = _bindings()
        client = self._rados()
        try:
            ioctx = client.open_ioctx(self.configuration.backup_ceph_pool)
        except rados.Error as err:
            with self._lock:
                if self._client is client:
                    self._client = None  # rebuilt on the next call
            raise exception.BackendUnavailable(
                f"Ceph pool {self.configuration.backup_ceph_pool!r} unavailable: {err}"
            ) from err
        try:
            yield ioctx
        finally:
            ioctx.close()

    @staticmethod
    def _base(backup: Backup) -> str:
        """The base image of the backup's chain (named after its full backup)."""
        return backup.chain()[0].name + BASE

    # --- set-up, stats, observation --------------------------------------------------------

    def do_setup(self) -> None:
        with self._ioctx():
            pass

    def check_for_setup_error(self) -> None:
        _, rbd = _bindings()
        with self._ioctx() as ioctx:
            rbd.RBD().list(ioctx)

    def _bases(self, ioctx: Any) -> list[str]:
        _, rbd = _bindings()
        return sorted(n for n in rbd.RBD().list(ioctx)
                      if n.startswith("backup-") and n.endswith(BASE))

    def get_backup_stats(self, refresh: bool = False) -> dict[str, Any]:
        _, rbd = _bindings()
        stored = count = 0
        with self._ioctx() as ioctx:
            for name in self._bases(ioctx):
                try:
                    with contextlib.closing(rbd.Image(ioctx, name, read_only=True)) as image:
                        snaps = [s["name"] for s in image.list_snaps()]
                        count += sum(1 for s in snaps if s.startswith("backup-"))
                        stored += sum(n for _, n in extents(image, image.size()))
                except rbd.ImageNotFound:
                    continue
        stats = self._rados().get_cluster_stats()
        total, free = int(stats["kb"]) * 1024, int(stats["kb_avail"]) * 1024
        return {"driver_version": self.VERSION, "incremental": True,
                "total_capacity_bytes": total or None,
                "free_capacity_bytes": min(free, total) if total else None,
                "stored_bytes": stored, "backup_count": count}

    def list_backend_objects(self) -> list[str]:
        _, rbd = _bindings()
        found = []
        with self._ioctx() as ioctx:
            for name in sorted(n for n in rbd.RBD().list(ioctx) if n.startswith("backup-")):
                found.append(name)
                try:
                    with contextlib.closing(rbd.Image(ioctx, name, read_only=True)) as image:
                        found += [f"{name}@{s['name']}" for s in image.list_snaps()]
                except rbd.ImageNotFound:
                    continue
        return sorted(found)

    # --- backups --------------------------------------------------------------------------

    @staticmethod
    def _write_changed(image: Any, source: str, size: int, allocated: list[tuple[int, int]]
                       ) -> None:
        """Make the image's head equal to ``source``, writing only the chunks that differ
        (a chunk of zeros where the head holds data is discarded). ``allocated`` are the head's
        data extents: where it holds none it reads zeros, so it need not be read."""
        def holds_data(offset: int, length: int) -> bool:
            return any(o < offset + length and offset < o + n for o, n in allocated)

        for offset, data in chunks(source, size):
            has = holds_data(offset, len(data))
            if is_zero(data):
                if has:
                    image.discard(offset, len(data))
                continue
            if has and image.read(offset, len(data)) == data:
                continue  # unchanged since the parent: not part of this backup's diff
            image.write(data, offset)

    def create_backup(self, backup: Backup, source: str) -> BackupUpdate:
        _, rbd = _bindings()
        base = self._base(backup)
        with self._ioctx() as ioctx:
            rbd.RBD().create(ioctx, base, backup.size_bytes, old_format=False,
                             features=FEATURES)
            self.checkpoint("create:after_image")
            with contextlib.closing(rbd.Image(ioctx, base)) as image:
                self._write_changed(image, source, backup.size_bytes, [])
                image.create_snap(backup.name)
                self.checkpoint("create:after_snapshot")
                with contextlib.closing(rbd.Image(ioctx, base, snapshot=backup.name,
                                                  read_only=True)) as snap:
                    stored = sum(n for _, n in extents(snap, backup.size_bytes))
        return {"location": f"rbd://{self.configuration.backup_ceph_pool}/{base}@{backup.name}",
                "driver_data": {"base": base, "snapshot": backup.name},
                "stored_bytes": stored}

    def create_incremental_backup(self, backup: Backup, source: str) -> BackupUpdate:
        _, rbd = _bindings()
        assert backup.parent is not None
        base, parent_snap = self._base(backup), backup.parent.name
        with self._ioctx() as ioctx:
            try:
                image = rbd.Image(ioctx, base)
            except rbd.ImageNotFound as err:
                raise exception.NotFound("rbd image", base) from err
            with contextlib.closing(image):
                if image.size() != backup.size_bytes:
                    raise exception.DriverError(
                        f"base image {base} holds {image.size()} bytes, the volume "
                        f"{backup.size_bytes}: an incremental backup needs the same size")
                # The head may hold a later (since deleted) backup's or a failed one's data.
                image.rollback_to_snap(parent_snap)
                self._write_changed(image, source, backup.size_bytes,
                                    extents(image, backup.size_bytes))
                self.checkpoint("incremental:after_write")
                image.create_snap(backup.name)
                self.checkpoint("incremental:after_snapshot")
                with contextlib.closing(rbd.Image(ioctx, base, snapshot=backup.name,
                                                  read_only=True)) as snap:
                    stored = sum(n for _, n in extents(snap, backup.size_bytes, parent_snap))
        return {"location": f"rbd://{self.configuration.backup_ceph_pool}/{base}@{backup.name}",
                "driver_data": {"base": base, "snapshot": backup.name,
                                "parent_snapshot": parent_snap},
                "stored_bytes": stored}

    def restore_backup(self, backup: Backup, target: str) -> None:
        _, rbd = _bindings()
        base = self._base(backup)
        with self._ioctx() as ioctx:
            try:
                snap = rbd.Image(ioctx, base, snapshot=backup.name, read_only=True)
            except (rbd.ImageNotFound, rbd.ObjectNotFound) as err:
                raise exception.NotFound("rbd snapshot", f"{base}@{backup.name}") from err
            with contextlib.closing(snap), open(target, "r+b") as out:
                if snap.size() != backup.size_bytes:
                    raise exception.DriverError(
                        f"snapshot {base}@{backup.name} holds {snap.size()} bytes, expected "
                        f"{backup.size_bytes}")
                for offset, length in extents(snap, backup.size_bytes):
                    end = offset + length
                    while offset < end:
                        n = min(CHUNK, end - offset)
                        data = snap.read(offset, n)
                        if not is_zero(data):
                            out.seek(offset)
                            out.write(data)
                        offset += n
                out.flush()

    def delete_backup(self, backup: Backup) -> None:
        _, rbd = _bindings()
        base = self._base(backup)
        with self._ioctx() as ioctx:
            try:
                image = rbd.Image(ioctx, base)
            except rbd.ImageNotFound:
                return  # nothing of the chain is left
            with contextlib.closing(image):
                names = {s["name"] for s in image.list_snaps()}
                if backup.name in names:
                    image.remove_snap(backup.name)
                    names.discard(backup.name)
                last = backup.parent is None and not names
            # The full backup goes with its base image once no snapshot is left on it (the
            # manager deletes incrementals first; another snapshot means one still lives).
            if last:
                ceph.remove_image(ioctx, base)
