"""The volume stats schema: what ``get_volume_stats`` must report, checked on every report.

One table, three uses: validation of every report, the docs' stats table and the conformance
suite all read :data:`SCHEMA` and :data:`FIELDS`.

Rules beyond Cinder's documents, made explicit:

* only ``total_capacity_gb`` and ``free_capacity_gb`` (top level and per pool) accept the
  keywords ``infinite`` / ``unknown``; every other figure is a number;
* ``storage_protocol`` is one of Cinder's non-variant constants (:data:`STORAGE_PROTOCOLS`);
* ``pools`` is always present and non-empty (a backend without pools reports one pool);
* ``max_over_subscription_ratio`` is a number >= 1 or ``auto`` (Cinder's rule).
"""

from __future__ import annotations

from typing import Any

from stackcore import stats

#: Cinder's ``cinder/common/constants.py`` storage protocols (the non-variant names).
STORAGE_PROTOCOLS: tuple[str, ...] = (
    "iSCSI", "FC", "NFS", "ceph", "NVMe-oF", "NVMe-TCP", "NVMe-RoCE", "NVMe-FC", "iSER",
    "scaleio", "DRBD", "storpool", "vmdk", "file", "lightos", "SCSI", "vstorageobject",
)

CAPACITY_KEYWORDS = ("infinite", "unknown")

#: (field, JSON type, meaning, required) - the documented statistics of a volume driver.
FIELDS: tuple[tuple[str, str, str, bool], ...] = (
    ("volume_backend_name", "string", "backend name used by the scheduler (config)", True),
    ("vendor_name", "string", "vendor of the backend", True),
    ("driver_version", "string", "version of the driver", True),
    ("storage_protocol", "enum", "iSCSI, NFS, ceph, ... (Cinder's constants)", True),
    ("total_capacity_gb", "number | infinite | unknown", "total space in GiB", True),
    ("free_capacity_gb", "number | infinite | unknown", "free space in GiB", True),
    ("reserved_percentage", "integer 0-100", "share of total kept free", True),
    ("thin_provisioning_support", "boolean", "thin volumes can be made", True),
    ("thick_provisioning_support", "boolean", "thick volumes can be made", True),
    ("provisioned_capacity_gb", "number >= 0", "space provisioned to all volumes in GiB", True),
    ("max_over_subscription_ratio", "number >= 1 | auto", "thin over-subscription limit", True),
    ("multiattach", "boolean", "a volume can attach to several hosts at once", True),
    ("online_extend_support", "boolean", "attached volumes can be extended", True),
    ("pools", "array of pool objects", "per-pool figures (same keys + pool_name)", True),
    ("QoS_support", "boolean", "front-end QoS specs honoured", False),
    ("location_info", "string", "driver-specific location for migration", False),
    ("total_volumes", "integer >= 0", "volumes on the backend", False),
    ("backend_state", "up | down", "whether the backend answered", False),
)

POOL_REQUIRED = (
    "pool_name",
    "total_capacity_gb",
    "free_capacity_gb",
    "reserved_percentage",
    "thin_provisioning_support",
    "thick_provisioning_support",
    "provisioned_capacity_gb",
    "max_over_subscription_ratio",
)

_CAPACITY = {
    "oneOf": [{"type": "number", "minimum": 0}, {"enum": list(CAPACITY_KEYWORDS)}]
}
_NUMBER = {"type": "number", "minimum": 0}
_NAME = {"type": "string", "minLength": 1}
_BOOL = {"type": "boolean"}
_MOSR = {"oneOf": [{"type": "number", "minimum": 1}, {"const": "auto"}]}
_PERCENT = {"type": "integer", "minimum": 0, "maximum": 100}

_COMMON: dict[str, Any] = {
    "total_capacity_gb": _CAPACITY,
    "free_capacity_gb": _CAPACITY,
    "reserved_percentage": _PERCENT,
    "thin_provisioning_support": _BOOL,
    "thick_provisioning_support": _BOOL,
    "provisioned_capacity_gb": _NUMBER,
    "allocated_capacity_gb": _NUMBER,
    "max_over_subscription_ratio": _MOSR,
    "multiattach": _BOOL,
    "online_extend_support": _BOOL,
    "QoS_support": _BOOL,
    "location_info": {"type": "string"},
    "total_volumes": {"type": "integer", "minimum": 0},
    "backend_state": {"enum": ["up", "down"]},
}

POOL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": list(POOL_REQUIRED),
    "properties": {"pool_name": _NAME, **_COMMON},
}

SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": [name for name, _, _, required in FIELDS if required],
    "properties": {
        "volume_backend_name": _NAME,
        "vendor_name": _NAME,
        "driver_version": _NAME,
        "storage_protocol": {"enum": list(STORAGE_PROTOCOLS)},
        **_COMMON,
        "pools": {"type": "array", "minItems": 1, "items": POOL_SCHEMA},
    },
}


def validate(report: Any, source: str) -> dict[str, Any]:
    """Validate one volume stats report; see :func:`stackcore.stats.validate`. Pool names must
    also be unique."""
    checked = stats.validate(SCHEMA, report, source)
    names = [pool["pool_name"] for pool in checked["pools"]]
    if len(set(names)) != len(names):
        from stackcore import exception

        raise exception.StatsSchemaError(
            f"stats from {source} rejected: field 'pools': pool names repeat ({names})",
            field="pools",
        )
    return checked


def single_pool(report: dict[str, Any], pool_name: str) -> dict[str, Any]:
    """The one pool of a backend without pools: the top-level figures under ``pool_name``."""
    return {"pool_name": pool_name, **{k: report[k] for k in POOL_REQUIRED[1:] if k in report},
            "multiattach": report.get("multiattach", False),
            "online_extend_support": report.get("online_extend_support", False)}


#: :data:`FIELDS` as (field, type, meaning) rows for the docs' stats table directive.
DOC_FIELDS: tuple[tuple[str, str, str], ...] = tuple(
    (name, kind, f"{meaning} ({'required' if required else 'optional'})")
    for name, kind, meaning, required in FIELDS
)
