"""The volume backup driver contract.

This module *is* the specification a backup driver is written against (entry points
``stackcore.volume.backup_drivers``). A backup driver keeps copies of volume data somewhere
else than the volume's backend - files under a directory (``posix``), a Ceph pool (``ceph``) -
and gives them back on restore. It never sees a volume backend: the volume manager hands it the
volume's bytes as a local **raw file** it made with the volume driver's own
``copy_volume_to_image`` (so every volume driver can be backed up by every backup driver), and
takes a raw file back that it writes into the volume with ``copy_image_to_volume``.

============================  =====================================================
feature                       methods
============================  =====================================================
set-up                        :meth:`do_setup`, :meth:`check_for_setup_error`
stats                         :meth:`get_backup_stats` (schema: :mod:`~.stats`)
full backup                   :meth:`create_backup`
restore                       :meth:`restore_backup`
delete                        :meth:`delete_backup`
observation                   :meth:`list_backend_objects`
incremental (capability)      :meth:`create_incremental_backup`
============================  =====================================================

General rules, for every method:

* One driver object serves one volume service (one backend of one host). The
  manager serialises calls per volume, but calls for backups of different volumes may run
  concurrently in threads.
* Drivers never touch the database; they get :class:`Backup` values and return a *backup
  update* (``location``, ``driver_data``, ``stored_bytes``) that the manager stores and hands
  back on later calls.
* The manager computes the checksum (sha256) of what it gave :meth:`create_backup` and checks
  what :meth:`restore_backup` wrote against it before the volume is touched: a driver cannot
  vouch for its own data, and a restore that does not give back the very bytes fails with a
  ``DataCorrupted`` error, the target volume unchanged.
* Raising means "this step failed". After a failed :meth:`create_backup` /
  :meth:`create_incremental_backup` the manager records a fault, moves the backup to ``error``
  and calls :meth:`delete_backup` to remove whatever was half made: ``delete_backup`` must cope
  with any partial state those calls can leave (nothing, a partial file, a snapshot without
  its data). Multi-step operations call :meth:`BackupDriver.checkpoint` between steps with the
  names they declare in ``FAULT_POINTS``; the conformance suite makes each point raise in turn
  and checks that nothing is left (:meth:`list_backend_objects`).
* Raise :class:`~stackcore.exception.BackendUnavailable` when the backup target cannot be
  reached, :class:`~stackcore.exception.DriverError` for other failures; anything else is
  wrapped as a ``DriverError`` naming the step by the manager.
* Never log or put in an exception message a secret (cephx key).
"""

from __future__ import annotations

import abc
import dataclasses
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from stackcore import exception
from stackcore.plugins.contract import Contract

if TYPE_CHECKING:
    from oslo_config import cfg

NAMESPACE = "stackcore.volume.backup_drivers"

#: The group of the core backup options (``backup_driver``, ``backup_staging_dir``).
GROUP = "backup"
#: The group the conformance kit configures a backup driver's own options in.
CONFORMANCE_SECTION = GROUP


def driver_group(name: str) -> str:
    """The group a cloud registers backup driver ``name``'s own options in:
    ``backup_<name>`` (``[backup_posix] backup_posix_path``), like ``image_store_<name>``."""
    return f"backup_{name}"

BACKUP_NAME_TEMPLATE = "backup-%s"

#: Optional features a driver declares in ``capabilities``, with the methods each needs.
CAPABILITIES: Mapping[str, tuple[str, ...]] = {
    # a backup holding only what changed since its parent (Cinder's incremental backups)
    "incremental": ("create_incremental_backup",),
}

#: What create calls return (each key optional): ``location`` (str, where the backup is),
#: ``driver_data`` (JSON mapping), ``stored_bytes`` (int >= 0, what the backup occupies).
UPDATE_KEYS = frozenset({"location", "driver_data", "stored_bytes"})

BackupUpdate = dict[str, Any] | None


class InjectedFault(exception.DriverError):
    """Raised at a checkpoint the conformance suite armed (failure injection)."""


@dataclasses.dataclass(frozen=True)
class Backup:
    """One backup as its driver needs to know it.

    ``size`` is the volume's size in GiB when it was backed up, ``size_bytes`` the exact length
    of the raw data (``size * GiB`` for a volume). ``parent`` is the backup an incremental one
    builds on (with its own parent, down to the full backup), None for a full backup.
    ``location`` / ``driver_data`` / ``stored_bytes`` are what the driver returned from the
    create call, handed back unchanged."""

    id: str
    volume_id: str
    size: int
    size_bytes: int
    parent: Backup | None = None
    location: str | None = None
    driver_data: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def name(self) -> str:
        """The backend object name, ``backup-<id>``."""
        return BACKUP_NAME_TEMPLATE % self.id

    @property
    def incremental(self) -> bool:
        return self.parent is not None

    def chain(self) -> list[Backup]:
        """The full backup first, then each incremental up to this one."""
        found: list[Backup] = []
        current: Backup | None = self
        while current is not None:
            found.append(current)
            current = current.parent
        return found[::-1]


class BackupDriver(abc.ABC):
    """Base class of every backup driver.

    Class attributes a driver sets: ``VERSION`` (its own version, ``driver_version`` in its
    stats), ``capabilities`` (``{capability: bool}`` for the keys of :data:`CAPABILITIES`;
    missing keys mean False), ``FAULT_POINTS`` (``{operation: (checkpoint, ...)}``).

    A driver is built as ``Driver(conf, group, host)``: ``conf`` is the cloud's ConfigOpts,
    ``group`` the config group holding the options from :meth:`get_driver_options`
    (:attr:`configuration`; :func:`driver_group` in a cloud, :data:`CONFORMANCE_SECTION` in
    the kit), ``host`` the volume service host (``<host>@<backend>``) that calls it.
    """

    VERSION: ClassVar[str] = ""
    capabilities: ClassVar[Mapping[str, bool]] = {}
    FAULT_POINTS: ClassVar[Mapping[str, tuple[str, ...]]] = {}

    def __init__(self, conf: cfg.ConfigOpts, group: str, host: str) -> None:
        self.conf = conf
        self.group = group
        self.host = host
        self.configuration: Any = conf[group]
        self._armed: set[str] = set()
        self._armed_lock = threading.Lock()

    @classmethod
    def get_driver_options(cls) -> list[cfg.Opt]:
        """The driver's own options, registered in its group."""
        return []

    @classmethod
    def list_opts(cls) -> list[tuple[str, Sequence[cfg.Opt]]]:
        """The driver's options in the group the conformance kit configures."""
        return [(CONFORMANCE_SECTION, cls.get_driver_options())]

    # --- failure injection (conformance kit) ------------------------------------------------

    def arm_fault(self, point: str) -> None:
        """Make the next :meth:`checkpoint` ``point`` raise :class:`InjectedFault` (tests)."""
        with self._armed_lock:
            self._armed.add(point)

    def disarm_faults(self) -> None:
        """Forget every armed checkpoint."""
        with self._armed_lock:
            self._armed.clear()

    def checkpoint(self, point: str) -> None:
        """Called by drivers between the steps of a multi-step operation. Raises if armed."""
        if not self._armed:
            return
        with self._armed_lock:
            if point not in self._armed:
                return
            self._armed.discard(point)
        raise InjectedFault(f"injected failure at {point} ({type(self).__name__})", point=point)

    # --- set-up, stats, observation ---------------------------------------------------------

    @abc.abstractmethod
    def do_setup(self) -> None:
        """Connect to / prepare the backup target (make the directory, connect to the
        cluster). Called once when the volume service starts, before any other call and before
        reconciliation. Raise ConfigError for bad options, BackendUnavailable when the target
        cannot be reached: the service does not start."""

    @abc.abstractmethod
    def check_for_setup_error(self) -> None:
        """Verify the target is usable (directory writable, pool present). Called right after
        :meth:`do_setup`; raising stops the service start-up."""

    @abc.abstractmethod
    def get_backup_stats(self, refresh: bool = False) -> dict[str, Any]:
        """Report capacity and usage (:data:`stackcore.volume.backup.stats.SCHEMA`). With
        ``refresh`` re-read the target. Called with the volume stats, outside any transaction;
        a bad report is logged and not stored."""

    @abc.abstractmethod
    def list_backend_objects(self) -> list[str]:
        """Names of every object this driver made (backup files, images, snapshots, temporary
        objects), sorted; each contains the id of the backup it belongs to
        (``backup-<id>``, ``backup-<id>.part`` ...), or of the volume for objects shared by a
        volume's backups (``volume-<volume id>.backup.base``). Used by the conformance suite to
        prove nothing is left behind after failures and deletes."""

    # --- backups --------------------------------------------------------------------------

    @abc.abstractmethod
    def create_backup(self, backup: Backup, source: str) -> BackupUpdate:
        """Store a full backup of the raw file ``source`` (``backup.size_bytes`` bytes, the
        volume's data; read it, never change it). ``backup.parent`` is None. Called with the
        backup ``creating`` and the volume ``backing-up``. The backup must be complete when
        this returns (a later restore gives back every byte); a failure half-way is cleaned up
        by :meth:`delete_backup`."""

    def create_incremental_backup(self, backup: Backup, source: str) -> BackupUpdate:
        """Like :meth:`create_backup`, storing only what differs from ``backup.parent`` (the
        newest available backup of the volume; its own parents follow). A restore of this
        backup gives back all of ``source``. The manager calls it only when the driver
        declares ``incremental``, for a parent this driver made, of the same ``size_bytes``
        (a volume extended since is backed up in full). Capability ``incremental``."""
        raise exception.CapabilityNotSupported(type(self).__name__,
                                               "incremental (create_incremental_backup)")

    @abc.abstractmethod
    def restore_backup(self, backup: Backup, target: str) -> None:
        """Write the backup's data into ``target``, a local file of ``backup.size_bytes``
        bytes the manager made (reading zeros): every byte at its offset (regions the backup
        holds as zeros may be skipped). An incremental backup restores its whole chain's
        result. Called with the backup ``restoring``; raising fails the restore (the manager
        removes ``target``; the volume is not touched)."""

    @abc.abstractmethod
    def delete_backup(self, backup: Backup) -> None:
        """Remove the backup and whatever only it needs. Succeeds when nothing of it exists
        (deletes are idempotent, and this is the cleanup path after any failed create). The
        manager never deletes a backup another live backup builds on (``parent``); the other
        backups of the volume must stay restorable."""


def _init_signature(cls: type) -> list[str]:
    from stackcore.plugins.contract import signature_problems

    init = cls.__init__  # type: ignore[misc]
    return [f"__init__(): {p}" for p in signature_problems(BackupDriver.__init__, init)]


def _declared_points(cls: type) -> list[str]:
    points = getattr(cls, "FAULT_POINTS", {})
    if not isinstance(points, Mapping) or not all(
        isinstance(k, str) and isinstance(v, tuple) and all(isinstance(p, str) for p in v)
        for k, v in points.items()
    ):
        return ["FAULT_POINTS must map operation names to tuples of checkpoint names"]
    unknown = set(points) - {"create_backup", "create_incremental_backup", "restore_backup"}
    if unknown:
        return [f"FAULT_POINTS names unknown operations {sorted(unknown)}"]
    return []


REQUIRED = (
    "do_setup",
    "check_for_setup_error",
    "get_backup_stats",
    "list_backend_objects",
    "create_backup",
    "restore_backup",
    "delete_backup",
)

CONTRACT = Contract(
    family="volume.backup",
    base=BackupDriver,
    required=REQUIRED,
    capabilities=CAPABILITIES,
    extra_checks=(_init_signature, _declared_points),
)
