"""``connection_info`` schemas per protocol, with Cinder's keys exactly.

What ``initialize_connection`` returns is consumed unchanged by os-brick connectors and by the
libvirt volume drivers of the compute side, so the keys (and their types) are Cinder's:

* ``iscsi``: ``target_discovered``, ``target_iqn``, ``target_portal`` (``ip:port``),
  ``target_lun`` (int), ``volume_id``; ``auth_method`` (``CHAP``) with ``auth_username`` /
  ``auth_password``; multipath lists ``target_iqns`` / ``target_portals`` / ``target_luns``;
* ``nfs``: ``export`` (``host:/path``), ``name`` (the active file), ``options`` (mount options
  or null), ``format`` (``raw``/``qcow2``); ``mount_point_base`` at the top level;
* ``rbd``: ``name`` (``pool/volume-<id>``), ``hosts`` / ``ports`` (monitors), ``cluster_name``,
  ``auth_enabled``, ``auth_username``, ``secret_type``, ``secret_uuid``, ``volume_id``,
  ``discard``;
* ``local``: os-brick's LocalConnector (``device_path``) - what the fake driver exports.

Extra keys are allowed in ``data`` (the manager adds ``access_mode``; backends add
``discard``...). :func:`redacted` is what may be logged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stackcore import exception

_STR = {"type": "string", "minLength": 1}
_PORTAL = {"type": "string", "pattern": r"^(\[[0-9a-fA-F:]+\]|[^:\s]+):[0-9]{1,5}$"}
_IQN = {"type": "string", "pattern": r"^(iqn\.[0-9]{4}-[0-9]{2}\.[^\s]+|eui\.[0-9A-Fa-f]{16})$"}

DATA_SCHEMAS: dict[str, dict[str, Any]] = {
    "iscsi": {
        "type": "object",
        "required": ["target_discovered", "target_iqn", "target_portal", "target_lun",
                     "volume_id"],
        "properties": {
            "target_discovered": {"type": "boolean"},
            "target_iqn": _IQN,
            "target_portal": _PORTAL,
            "target_lun": {"type": "integer", "minimum": 0},
            "target_iqns": {"type": "array", "items": _IQN},
            "target_portals": {"type": "array", "items": _PORTAL},
            "target_luns": {"type": "array", "items": {"type": "integer", "minimum": 0}},
            "volume_id": _STR,
            "auth_method": {"enum": ["CHAP"]},
            "auth_username": _STR,
            "auth_password": _STR,
            "encrypted": {"type": "boolean"},
            "discard": {"type": "boolean"},
        },
        "dependentRequired": {"auth_method": ["auth_username", "auth_password"]},
    },
    "nfs": {
        "type": "object",
        "required": ["export", "name", "options", "format"],
        "properties": {
            "export": {"type": "string", "pattern": r"^[^:\s]+:/.*$"},
            "name": _STR,
            "options": {"type": ["string", "null"]},
            "format": {"enum": ["raw", "qcow2"]},
        },
    },
    "rbd": {
        "type": "object",
        "required": ["name", "hosts", "ports", "cluster_name", "auth_enabled", "auth_username",
                     "secret_type", "secret_uuid", "volume_id", "discard"],
        "properties": {
            "name": {"type": "string", "pattern": r"^[^/\s]+/[^/\s]+$"},
            "hosts": {"type": "array", "minItems": 1, "items": _STR},
            "ports": {"type": "array", "minItems": 1, "items": {"type": "string",
                                                                 "pattern": r"^[0-9]{1,5}$"}},
            "cluster_name": _STR,
            "auth_enabled": {"type": "boolean"},
            "auth_username": {"type": ["string", "null"]},
            "secret_type": {"const": "ceph"},
            "secret_uuid": {"type": ["string", "null"]},
            "volume_id": _STR,
            "discard": {"type": "boolean"},
        },
    },
    "local": {
        "type": "object",
        "required": ["device_path", "volume_id"],
        "properties": {"device_path": {"type": "string", "pattern": "^/"}, "volume_id": _STR},
    },
}

#: storage_protocol (stats) -> driver_volume_type (connection_info) - they differ (ceph/rbd).
PROTOCOL_TO_VOLUME_TYPE = {"iSCSI": "iscsi", "NFS": "nfs", "ceph": "rbd", "file": "local"}

SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["driver_volume_type", "data"],
    "properties": {
        "driver_volume_type": {"enum": sorted(DATA_SCHEMAS)},
        "data": {"type": "object"},
        "mount_point_base": {"type": "string"},
    },
}

SECRET_KEYS = frozenset({"auth_password", "keyring", "secret", "auth_password_in"})


def validate(info: Any, source: str) -> dict[str, Any]:
    """Return ``info`` if it is a valid connection_info for its protocol, else raise
    :class:`~stackcore.exception.DriverError` naming the field (never its secret value)."""
    import jsonschema

    from stackcore.stats import strict_validator_class

    strict = strict_validator_class()  # target_lun = 1.0 is not an integer
    for schema, value, prefix in ((SCHEMA, info, ""),):
        error = jsonschema.exceptions.best_match(strict(schema).iter_errors(value))
        if error is not None:
            _raise(source, prefix, error)
    kind = info["driver_volume_type"]
    error = jsonschema.exceptions.best_match(strict(DATA_SCHEMAS[kind]).iter_errors(info["data"]))
    if error is not None:
        _raise(source, "data.", error)
    if kind == "nfs" and "mount_point_base" not in info:
        raise exception.DriverError(
            f"connection_info from {source} rejected: field 'mount_point_base' is missing",
            field="mount_point_base",
        )
    return dict(info)


def _raise(source: str, prefix: str, error: Any) -> None:
    field = prefix + ".".join(str(p) for p in error.absolute_path)
    if error.validator == "required" and "'" in error.message:
        field = prefix + error.message.split("'")[1]
    secret = any(key in field for key in SECRET_KEYS)
    why = "has a wrong value" if secret else error.message
    raise exception.DriverError(
        f"connection_info from {source} rejected: field {field.rstrip('.') or '<info>'!r}: {why}",
        field=field.rstrip(".") or "<info>",
    )


def redacted(info: Mapping[str, Any]) -> dict[str, Any]:
    """A copy safe to log: secret values replaced by ``***``."""
    def scrub(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: ("***" if k in SECRET_KEYS else scrub(v)) for k, v in value.items()}
        if isinstance(value, list):
            return [scrub(v) for v in value]
        return value

    result: dict[str, Any] = scrub(info)
    return result
