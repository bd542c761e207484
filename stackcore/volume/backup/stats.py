"""The backup driver stats schema: what :meth:`~stackcore.volume.backup.driver.BackupDriver.
get_backup_stats` must report, checked on every report (:func:`validate`), shown in the docs
(:data:`FIELDS`) and checked by the conformance suite.

Figures are bytes (a backup of a sparse 1 GiB volume may hold a few KiB). A capacity the driver
cannot know is ``null``; usage figures are always numbers.
"""

from __future__ import annotations

from typing import Any

from stackcore import stats

#: (field, JSON type, meaning) - the statistics of a backup driver, all required.
FIELDS: tuple[tuple[str, str, str], ...] = (
    ("driver_version", "string", "version of the backup driver"),
    ("incremental", "boolean", "incremental backups can be made (capability incremental)"),
    ("total_capacity_bytes", "integer >= 0 | null", "space of the backup target (null: unknown)"),
    ("free_capacity_bytes", "integer >= 0 | null", "space left on it (null: unknown)"),
    ("stored_bytes", "integer >= 0", "bytes held by the complete backups of this driver"),
    ("backup_count", "integer >= 0", "complete backups held"),
)

_COUNT = {"type": "integer", "minimum": 0}
_CAPACITY = {"oneOf": [_COUNT, {"type": "null"}]}

SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": [name for name, _, _ in FIELDS],
    "properties": {
        "driver_version": {"type": "string", "minLength": 1},
        "incremental": {"type": "boolean"},
        "total_capacity_bytes": _CAPACITY,
        "free_capacity_bytes": _CAPACITY,
        "stored_bytes": _COUNT,
        "backup_count": _COUNT,
    },
}


def validate(report: Any, source: str) -> dict[str, Any]:
    """Validate one backup stats report (see :func:`stackcore.stats.validate`); free space
    may not exceed the total."""
    checked = stats.validate(SCHEMA, report, source)
    total, free = checked["total_capacity_bytes"], checked["free_capacity_bytes"]
    if total is not None and free is not None and free > total:
        from stackcore import exception

        raise exception.StatsSchemaError(
            f"stats from {source} rejected: field 'free_capacity_bytes': {free} is more than "
            f"total_capacity_bytes {total}", field="free_capacity_bytes")
    return checked
