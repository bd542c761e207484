"""The image store stats schema: what :meth:`~stackcore.image.store.ImageStore.get_stats`
must report, checked on every report (:func:`validate`), shown in the docs (:data:`FIELDS`) and
checked by the conformance suite.

Figures are bytes (images are byte streams; GiB would round small images away). A capacity the
store cannot know (an HTTP server's) is ``null``; usage figures are always numbers.
"""

from __future__ import annotations

from typing import Any

from stackcore import stats

#: (field, JSON type, meaning) - the statistics of an image store, all required.
FIELDS: tuple[tuple[str, str, str], ...] = (
    ("driver_version", "string", "version of the store driver"),
    ("writable", "boolean", "images can be added and deleted (capability writable)"),
    ("total_capacity_bytes", "integer >= 0 | null", "space of the backend (null: unknown)"),
    ("free_capacity_bytes", "integer >= 0 | null", "space left for images (null: unknown)"),
    ("used_bytes", "integer >= 0", "bytes held by complete images of this store"),
    ("image_count", "integer >= 0", "complete images held (len(locations()))"),
)

_COUNT = {"type": "integer", "minimum": 0}
_CAPACITY = {"oneOf": [_COUNT, {"type": "null"}]}

SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": [name for name, _, _ in FIELDS],
    "properties": {
        "driver_version": {"type": "string", "minLength": 1},
        "writable": {"type": "boolean"},
        "total_capacity_bytes": _CAPACITY,
        "free_capacity_bytes": _CAPACITY,
        "used_bytes": _COUNT,
        "image_count": _COUNT,
    },
}


def validate(report: Any, source: str) -> dict[str, Any]:
    """Validate one store stats report (see :func:`stackcore.stats.validate`); free space may
    not exceed the total."""
    checked = stats.validate(SCHEMA, report, source)
    total, free = checked["total_capacity_bytes"], checked["free_capacity_bytes"]
    if total is not None and free is not None and free > total:
        from stackcore import exception

        raise exception.StatsSchemaError(
            f"stats from {source} rejected: field 'free_capacity_bytes': {free} is more than "
            f"total_capacity_bytes {total}", field="free_capacity_bytes")
    return checked
