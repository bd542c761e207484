"""Volume backups: a driver family of the volume family (``stackcore.volume.backup_drivers``).

* :mod:`~stackcore.volume.backup.driver` - the contract (:class:`BackupDriver`, :class:`Backup`,
  ``CONTRACT``, ``NAMESPACE``), the spec a backup driver is written against;
* :mod:`~stackcore.volume.backup.stats` - the stats schema;
* :mod:`~stackcore.volume.backup.manager` - the backup side of a volume service (the data path,
  checksums, failures, reconciliation);
* :mod:`~stackcore.volume.backup.api` - ``cloud.volume.create_backup`` and friends.

Drivers shipped in ``stackcore-drivers``: ``posix`` (files under a directory) and ``ceph``
(RBD snapshots, incremental backups by RBD diff). See ``doc/source/volume-backups.rst``.
"""

from stackcore.volume.backup.driver import (
    CONTRACT,
    NAMESPACE,
    Backup,
    BackupDriver,
    BackupUpdate,
)
from stackcore.volume.backup.stats import SCHEMA as STATS_SCHEMA

__all__ = ["CONTRACT", "NAMESPACE", "STATS_SCHEMA", "Backup", "BackupDriver", "BackupUpdate"]
