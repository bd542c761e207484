"""The volume family's policy rules (defaults; an operator's policy file may override any).

Volumes and snapshots belong to a project (``admin_or_owner``); volume types are readable by
everyone (a private type only by its projects) and managed by admins; pools, placement and the
host side of attachments (connectors, forced detach) are ``admin_only``.
"""

from __future__ import annotations

from typing import Any

from stackcore.project import policy as p

_RULES = [
    ("volume:create", p.ADMIN_OR_OWNER, "Create a volume.", "create"),
    ("volume:get", p.ADMIN_OR_OWNER, "Read a volume.", "get"),
    ("volume:list", p.ANY, "List the volumes of one's project.", "list_volumes"),
    ("volume:list:all_projects", p.ADMIN_ONLY, "List every project's volumes.", "list_volumes"),
    ("volume:delete", p.ADMIN_OR_OWNER, "Delete a volume.", "delete"),
    ("volume:extend", p.ADMIN_OR_OWNER, "Extend a volume.", "extend"),
    ("volume:set_metadata", p.ADMIN_OR_OWNER, "Change a volume's metadata.", "set_metadata"),
    ("volume:upload_to_image", p.ADMIN_OR_OWNER, "Copy a volume into an image.",
     "upload_to_image"),
    ("volume:faults", p.ADMIN_OR_OWNER, "Read a volume's or snapshot's faults.", "faults"),
    ("volume:attach", p.ADMIN_ONLY, "Export a volume to a host connector (the compute side).",
     "attach"),
    ("volume:detach", p.ADMIN_OR_OWNER, "End an attachment no server holds.", "detach"),
    ("volume:force_detach", p.ADMIN_ONLY, "Force-detach a volume.", "detach"),
    ("volume:snapshot:create", p.ADMIN_OR_OWNER, "Snapshot a volume.", "create_snapshot"),
    ("volume:snapshot:get", p.ADMIN_OR_OWNER, "Read a snapshot.", "get_snapshot"),
    ("volume:snapshot:list", p.ANY, "List the snapshots of one's project.", "list_snapshots"),
    ("volume:snapshot:delete", p.ADMIN_OR_OWNER, "Delete a snapshot.", "delete_snapshot"),
    ("volume:backup:create", p.ADMIN_OR_OWNER, "Back up a volume.", "create_backup"),
    ("volume:backup:get", p.ADMIN_OR_OWNER, "Read a backup.", "get_backup"),
    ("volume:backup:list", p.ANY, "List the backups of one's project.", "list_backups"),
    ("volume:backup:list:all_projects", p.ADMIN_ONLY, "List every project's backups.",
     "list_backups"),
    ("volume:backup:restore", p.ADMIN_OR_OWNER, "Restore a backup into a volume.",
     "restore_backup"),
    ("volume:backup:delete", p.ADMIN_OR_OWNER, "Delete a backup.", "delete_backup"),
    ("volume:type:create", p.ADMIN_ONLY, "Create a volume type.", "create_type"),
    ("volume:type:get", p.ANY, "Read a volume type (a private one: its projects).",
     "get_type"),
    ("volume:type:list", p.ANY, "List the volume types one may use.", "list_types"),
    ("volume:type:delete", p.ADMIN_ONLY, "Delete a volume type.", "delete_type"),
    ("volume:type:access", p.ADMIN_ONLY, "Share a private volume type with a project.",
     "add_type_access"),
    ("volume:manage", p.ADMIN_ONLY, "Adopt an object of a backend as a volume (Cinder's "
     "manage existing).", "manage"),
    ("volume:unmanage", p.ADMIN_ONLY, "Give a volume up, keeping its object and data on the "
     "backend.", "unmanage"),
    ("volume:reimage", p.ADMIN_OR_OWNER, "Write an image over a volume's data (rebuild of a "
     "volume-backed server).", "reimage"),
    ("volume:migrate", p.ADMIN_ONLY, "Move a volume to another backend of its volume host "
     "(its id kept; names backends).", "migrate"),
    ("volume:retype", p.ADMIN_OR_OWNER, "Change a volume's type (migrating it when allowed and "
     "its backend cannot serve the new type).", "retype"),
    ("volume:list_manageable", p.ADMIN_ONLY, "List the objects of a backend that could be "
     "managed (names backend objects).", "list_manageable"),
    ("volume:pool:list", p.ADMIN_ONLY, "List backend pools with their stats.", "list_pools"),
    ("volume:explain_placement", p.ADMIN_ONLY, "Explain where a volume would be placed "
     "(names backends).", "explain_placement"),
]


def list_rules() -> list[Any]:
    return [p.rule(name, check, description, f"cloud.volume.{method}")
            for name, check, description, method in _RULES]
