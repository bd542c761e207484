"""The JSON schema of every notification payload stackcore emits, by event type.

Payload version 1.0. Every payload carries the same envelope - ``payload_version``,
``event_type`` and ``context`` (the request it serves: ``request_id``, ``project_id``,
``user_id``; all null for a service's own periodic work) - and the resource's fields flat
beside it (the sending service and host are the message's ``publisher_id``).
``additionalProperties`` is false everywhere a resource is described, so a field added without
a schema change (or a secret leaking in: a volume's ``provider_auth``, an attachment's
``connection_info``) fails the tests that validate every emitted payload. Adding a field is a
minor version (1.1); removing or changing one, 2.0.
"""

from __future__ import annotations

from typing import Any

PAYLOAD_VERSION = "1.0"

_STR = {"type": "string"}
_OPT_STR = {"type": ["string", "null"]}
_INT = {"type": "integer"}
_OPT_TIME = {"type": ["string", "null"], "format": "date-time"}

_CONTEXT = {
    "type": "object",
    "properties": {"request_id": _OPT_STR, "project_id": _OPT_STR, "user_id": _OPT_STR},
    "required": ["request_id", "project_id", "user_id"],
    "additionalProperties": False,
}

_FAULT = {
    "type": "object",
    "properties": {"exc_class": _STR, "message": _STR, "step": _STR},
    "required": ["exc_class", "message", "step"],
    "additionalProperties": False,
}

#: resource fields, flat in the payload
INSTANCE_FIELDS: dict[str, Any] = {
    "uuid": _STR, "name": _STR, "project_id": _STR, "user_id": _STR, "flavor_id": _STR,
    "vcpus": _INT, "memory_mb": _INT, "image_id": _STR, "availability_zone": _OPT_STR,
    "host": _OPT_STR, "vm_state": _STR, "task_state": _OPT_STR, "power_state": _INT,
    "created_at": _OPT_TIME, "launched_at": _OPT_TIME, "deleted_at": _OPT_TIME,
}
VOLUME_FIELDS: dict[str, Any] = {
    "id": _STR, "display_name": _OPT_STR, "project_id": _STR, "user_id": _STR, "size": _INT,
    "status": _STR, "volume_type_id": _OPT_STR, "availability_zone": _OPT_STR,
    "host": _OPT_STR, "pool": _OPT_STR, "multiattach": {"type": "boolean"},
    "snapshot_id": _OPT_STR, "source_volid": _OPT_STR, "image_id": _OPT_STR,
    "created_at": _OPT_TIME, "deleted_at": _OPT_TIME,
}
SNAPSHOT_FIELDS: dict[str, Any] = {
    "id": _STR, "volume_id": _STR, "display_name": _OPT_STR, "project_id": _STR,
    "user_id": _STR, "volume_size": _INT, "status": _STR, "created_at": _OPT_TIME,
    "deleted_at": _OPT_TIME,
}
#: a volume backup (Cinder's backup events); never ``location`` nor ``driver_data`` (what a
#: backup driver keeps there - a target's address, a key's id - is not for the bus)
BACKUP_FIELDS: dict[str, Any] = {
    "id": _STR, "volume_id": _STR, "display_name": _OPT_STR, "project_id": _STR,
    "user_id": _STR, "size": _INT, "size_bytes": _INT, "status": _STR, "host": _OPT_STR,
    "backup_driver": _STR, "parent_id": _OPT_STR, "is_incremental": {"type": "boolean"},
    "checksum": _OPT_STR, "stored_bytes": {"type": ["integer", "null"]},
    "created_at": _OPT_TIME, "deleted_at": _OPT_TIME,
}
ATTACHMENT_FIELDS: dict[str, Any] = {
    "id": _STR, "instance_uuid": _OPT_STR, "mountpoint": _OPT_STR, "attach_status": _STR,
}
#: the attachments an attach or detach is about: the one attached; the one ended (all of
#: them for a force detach). Never the connector or the connection_info (credentials).
_ATTACHMENTS = {
    "type": "array",
    "items": {"type": "object", "properties": ATTACHMENT_FIELDS,
              "required": list(ATTACHMENT_FIELDS), "additionalProperties": False},
}
#: network resources (Neutron's attribute names); a port's binding profile and vif details are
#: never in a payload (what a driver put there is not for the bus)
_BOOL = {"type": "boolean"}
NETWORK_FIELDS: dict[str, Any] = {
    "id": _STR, "name": _STR, "project_id": _STR, "shared": _BOOL, "admin_state_up": _BOOL,
    "status": _STR, "mtu": {"type": ["integer", "null"]}, "created_at": _OPT_TIME,
}
SUBNET_FIELDS: dict[str, Any] = {
    "id": _STR, "network_id": _STR, "name": _STR, "project_id": _STR, "ip_version": _INT,
    "cidr": _STR, "gateway_ip": _OPT_STR, "enable_dhcp": _BOOL, "created_at": _OPT_TIME,
}
PORT_FIELDS: dict[str, Any] = {
    "id": _STR, "network_id": _STR, "name": _STR, "project_id": _STR, "mac_address": _STR,
    "fixed_ips": {"type": "array", "items": {
        "type": "object", "properties": {"subnet_id": _STR, "ip_address": _STR},
        "required": ["subnet_id", "ip_address"], "additionalProperties": False}},
    "device_id": _STR, "device_owner": _STR, "status": _STR, "admin_state_up": _BOOL,
    "binding:host_id": _STR, "binding:vnic_type": _STR, "created_at": _OPT_TIME,
}
SECURITY_GROUP_RULE_FIELDS: dict[str, Any] = {
    "id": _STR, "security_group_id": _STR, "project_id": _STR, "direction": _STR,
    "ethertype": _STR, "protocol": {"type": ["integer", "null"]},
    "port_range_min": {"type": ["integer", "null"]},
    "port_range_max": {"type": ["integer", "null"]}, "remote_ip_prefix": _OPT_STR,
    "remote_group_id": _OPT_STR, "description": _STR, "created_at": _OPT_TIME,
}
SECURITY_GROUP_FIELDS: dict[str, Any] = {
    "id": _STR, "name": _STR, "description": _STR, "project_id": _STR,
    "rules": {"type": "array", "items": {
        "type": "object", "properties": SECURITY_GROUP_RULE_FIELDS,
        "required": list(SECURITY_GROUP_RULE_FIELDS), "additionalProperties": False}},
    "created_at": _OPT_TIME,
}
#: a router (its gateway and interfaces as :class:`stackcore.network.routers.Router` has them)
ROUTER_FIELDS: dict[str, Any] = {
    "id": _STR, "name": _STR, "project_id": _STR, "admin_state_up": _BOOL, "status": _STR,
    "external_gateway": {"type": ["object", "null"]}, "interfaces": {"type": "array"},
    "host": _STR, "created_at": _OPT_TIME, "fault": _OPT_STR,
}
FLOATINGIP_FIELDS: dict[str, Any] = {
    "id": _STR, "project_id": _STR, "floating_network_id": _STR,
    "floating_ip_address": _STR, "port_id": _OPT_STR, "fixed_ip_address": _OPT_STR,
    "router_id": _OPT_STR, "status": _STR, "created_at": _OPT_TIME,
}
#: an image (Glance's events; the fields of :class:`stackcore.image.api.Image`)
IMAGE_FIELDS: dict[str, Any] = {
    "id": _STR, "name": _STR, "status": _STR, "disk_format": _STR, "container_format": _STR,
    "visibility": _STR, "protected": _BOOL, "project_id": _STR, "size_bytes": _INT,
    "sha256": _OPT_STR, "virtual_size": {"type": ["integer", "null"]}, "store": _OPT_STR,
    "properties": {"type": "object", "additionalProperties": _STR},
    "created_at": _OPT_TIME,
}
_COMPUTE_STATS: dict[str, Any] = {
    "host": _STR, "reporting": {"type": "boolean"}, "report_error": _OPT_STR,
    "hypervisor_hostname": _STR, "hypervisor_type": _STR, "vcpus": _INT, "vcpus_used": _INT,
    "memory_mb": _INT, "memory_mb_used": _INT, "local_gb": _INT, "local_gb_used": _INT,
}
#: a capacity may be "infinite" or "unknown" (see stackcore.volume.stats)
_CAPACITY = {"type": ["number", "string"]}
_POOL = {
    "type": "object",
    "properties": {"pool_name": _STR, "total_capacity_gb": _CAPACITY,
                   "free_capacity_gb": _CAPACITY, "provisioned_capacity_gb": {"type": "number"},
                   "allocated_capacity_gb": _INT},
    "required": ["pool_name", "total_capacity_gb", "free_capacity_gb",
                 "allocated_capacity_gb"],
    # a driver may report capabilities of its own per pool (thin_provisioning_support ...)
    "additionalProperties": True,
}
_VOLUME_STATS: dict[str, Any] = {
    "host": _STR, "reporting": {"type": "boolean"}, "report_error": _OPT_STR,
    "volume_backend_name": _STR, "pools": {"type": "array", "items": _POOL},
}


_AGENT = {
    "type": "object",
    "properties": {"id": _STR, "agent_type": _STR, "binary": _STR, "host": _STR,
                   "admin_state_up": _BOOL, "alive": _BOOL,
                   "heartbeat_age_s": {"type": "number"}},
    "required": ["id", "agent_type", "binary", "host", "admin_state_up", "alive",
                 "heartbeat_age_s"],
    "additionalProperties": False,
}
_NETWORK_AGENTS: dict[str, Any] = {
    "host": _STR, "agent_down_time": _INT, "agents": {"type": "array", "items": _AGENT},
}
_OPT_INT = {"type": ["integer", "null"]}
_SEGMENT_RANGE = {
    "type": "object",
    "properties": {"physical_network": _OPT_STR, "first": _OPT_INT, "last": _OPT_INT,
                   "total": _INT, "allocated": _INT, "free": _INT},
    "required": ["physical_network", "first", "last", "total", "allocated", "free"],
    "additionalProperties": False,
}
_NETWORK_SEGMENTS: dict[str, Any] = {
    "host": _STR, "reporting": _BOOL, "report_error": _OPT_STR,
    "types": {"type": "array", "items": {
        "type": "object",
        "properties": {"network_type": _STR,
                       "ranges": {"type": "array", "items": _SEGMENT_RANGE}},
        "required": ["network_type", "ranges"], "additionalProperties": False}},
}


def _schema(event_type: str, fields: dict[str, Any], required: list[str],
            extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The schema of one event type: the envelope plus ``fields``, of which ``required``
    (and every ``extra``) must be present."""
    properties = {
        "payload_version": {"const": PAYLOAD_VERSION},
        "event_type": {"const": event_type},
        "context": _CONTEXT,
        **fields, **(extra or {}),
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": event_type,
        "type": "object",
        "properties": properties,
        "required": ["payload_version", "event_type", "context", *required,
                     *(extra or {})],
        "additionalProperties": False,
    }


def _lifecycle(resource: str, fields: dict[str, Any], actions: tuple[str, ...],
               extra: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    found = {}
    for action in actions:
        for phase in ("start", "end", "error"):
            event = f"{resource}.{action}.{phase}"
            more = dict(extra or {})
            if phase == "error":
                more["fault"] = _FAULT
            found[event] = _schema(event, fields, list(fields), more)
    return found


def _network_lifecycle(resource: str, fields: dict[str, Any],
                       actions: tuple[str, ...] = ("create", "update", "delete"),
                       ) -> dict[str, dict[str, Any]]:
    """Neutron's events: ``create.start`` / ``create.error`` carry what was asked (no id yet),
    ``create.end`` / ``update.end`` the whole resource, the others its id (and an update's
    changes)."""
    found = {}
    for action in actions:
        for phase in ("start", "end", "error"):
            event = f"{resource}.{action}.{phase}"
            if phase == "end" and action != "delete":
                required = list(fields)
            else:
                required = [] if action == "create" else ["id"]
            extra = {"fault": _FAULT} if phase == "error" else None
            found[event] = _schema(event, fields, required, extra)
    return found


SCHEMAS: dict[str, dict[str, Any]] = {
    **_lifecycle("instance", INSTANCE_FIELDS, ("create", "delete", "resize", "resize_confirm",
                                               "resize_revert", "evacuate",
                                               "live_migration", "live_migration_abort")),
    **_lifecycle("volume", VOLUME_FIELDS, ("create", "delete", "resize", "manage_existing",
                                           "unmanage", "migrate", "reimage")),
    **_lifecycle("volume", VOLUME_FIELDS, ("attach", "detach"), {"attachments": _ATTACHMENTS}),
    **_lifecycle("snapshot", SNAPSHOT_FIELDS, ("create", "delete")),
    **_lifecycle("backup", BACKUP_FIELDS, ("create", "delete")),
    # a restore names the volume written (``volume_id`` is the volume backed up)
    **_lifecycle("backup", BACKUP_FIELDS, ("restore",), {"restore_volume_id": _STR}),
    **_network_lifecycle("network", NETWORK_FIELDS),
    **_network_lifecycle("subnet", SUBNET_FIELDS),
    **_network_lifecycle("port", PORT_FIELDS),
    **_network_lifecycle("security_group", SECURITY_GROUP_FIELDS),
    **_network_lifecycle("security_group_rule", SECURITY_GROUP_RULE_FIELDS,
                         ("create", "delete")),
    **_network_lifecycle("router", ROUTER_FIELDS),
    **_network_lifecycle("floatingip", FLOATINGIP_FIELDS),
    # Glance's image events (no phases): each after its change committed
    **{f"image.{e}": _schema(f"image.{e}", IMAGE_FIELDS, list(IMAGE_FIELDS))
       for e in ("create", "update", "delete", "prepare", "activate")},
    # a download read to its end; the receiver is the envelope's context
    "image.send": _schema("image.send", {"image_id": _STR, "owner_id": _STR,
                                         "bytes_sent": _INT},
                          ["image_id", "owner_id", "bytes_sent"]),
    # a failed upload is image.upload at priority ERROR: the image id and the fault
    "image.upload": _schema("image.upload", {**IMAGE_FIELDS, "fault": _FAULT}, ["id"]),
    # samples: a failed report has only host, reporting and report_error
    "compute.stats": _schema("compute.stats", _COMPUTE_STATS,
                             ["host", "reporting", "report_error"]),
    "volume.stats": _schema("volume.stats", _VOLUME_STATS,
                            ["host", "reporting", "report_error"]),
    "agent.stats": _schema("agent.stats", _NETWORK_AGENTS, list(_NETWORK_AGENTS)),
    "segment.stats": _schema("segment.stats", _NETWORK_SEGMENTS,
                                ["host", "reporting", "report_error"]),
}

#: every event type stackcore emits
EVENT_TYPES = tuple(sorted(SCHEMAS))


def schema(event_type: str) -> dict[str, Any]:
    """The JSON schema of ``event_type``'s payload; KeyError names the known ones."""
    try:
        return SCHEMAS[event_type]
    except KeyError:
        raise KeyError(f"no notification event type {event_type!r} (known: "
                       f"{', '.join(EVENT_TYPES)})") from None


def validate(payload: dict[str, Any]) -> None:
    """Check ``payload`` against its event type's schema (jsonschema.ValidationError if not).
    For tests and consumers: emitting never validates (it must not fail an operation)."""
    import jsonschema

    jsonschema.validate(payload, schema(payload.get("event_type", "")),
                        format_checker=jsonschema.FormatChecker())
