"""Argument schemas of ``cloud.volume`` (see :mod:`stackcore.schemas`)."""

from __future__ import annotations

from typing import Any

from stackcore import schemas as s
from stackcore.volume.states import SnapshotStatus, VolumeStatus

MAX_SIZE_GB = 64 * 1024
IMAGE_FORMATS = ("raw", "qcow2")
SIZE = s.integer(1, MAX_SIZE_GB)
TYPE_NAME_OR_ID = s.string(255)
VOLUME_STATUSES = tuple(v.value for v in VolumeStatus)
SNAPSHOT_STATUSES = tuple(v.value for v in SnapshotStatus)
TYPE_EXTRA_SPECS: dict[str, Any] = {
    **s.STRING_MAP,
    "properties": {"provisioning:type": s.enum("thin", "thick"),
                   "multiattach": s.enum("<is> True", "<is> False")},
}
#: os-brick connector properties: ``host`` required, other values JSON scalars or lists
CONNECTOR: dict[str, Any] = {
    "type": "object", "required": ["host"], "maxProperties": 64,
    "propertyNames": s.string(255),
    "properties": {"host": s.HOST},
    "additionalProperties": s.one_of(
        {"type": ["string", "boolean", "integer", "number", "null"]},
        s.array({"type": ["string", "boolean", "integer", "number", "null"]}, 64)),
    "maxJsonLength": 8192,
}
SORT_KEYS = ("created_at", "name", "id", "size")
NAME_SORT_KEYS = ("name", "id")
#: ``existing_ref`` of ``cloud.volume.manage``: Cinder's ``{"source-name": <backend name>}``
EXISTING_REF: dict[str, Any] = {
    "type": "object", "required": ["source-name"], "additionalProperties": False,
    "properties": {"source-name": s.string(255)},
}
#: where a volume lives, as volumes report it: ``<host>@<backend>#<pool>``
VOLUME_HOST = s.string(255)
