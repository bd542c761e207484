"""The compute family's policy rules (defaults; an operator's policy file may override any).

Servers and server groups belong to a project (``admin_or_owner``); flavors and images are
readable by everyone (a private flavor only by the projects it is shared with); what names or
describes hosts, and creating shared things (flavors, aggregates), is ``admin_only``.
"""

from __future__ import annotations

from typing import Any

from stackcore.project import policy as p

_RULES = [
    # servers
    ("compute:server:create", p.ADMIN_OR_OWNER, "Boot a server.", "create_server"),
    ("compute:server:get", p.ADMIN_OR_OWNER, "Read a server.", "get_server"),
    ("compute:server:list", p.ANY, "List the servers of one's project.", "list_servers"),
    ("compute:server:list:all_projects", p.ADMIN_ONLY, "List every project's servers.",
     "list_servers"),
    ("compute:server:show:host", p.ADMIN_ONLY, "See which host a server runs on.",
     "get_server"),
    ("compute:server:delete", p.ADMIN_OR_OWNER, "Delete a server.", "delete_server"),
    ("compute:server:reboot", p.ADMIN_OR_OWNER, "Reboot a server.", "reboot_server"),
    ("compute:server:stop", p.ADMIN_OR_OWNER, "Stop a server.", "stop_server"),
    ("compute:server:start", p.ADMIN_OR_OWNER, "Start a server.", "start_server"),
    ("compute:server:pause", p.ADMIN_OR_OWNER, "Pause a server (frozen in memory).",
     "pause_server"),
    ("compute:server:unpause", p.ADMIN_OR_OWNER, "Unpause a paused server.", "unpause_server"),
    ("compute:server:suspend", p.ADMIN_OR_OWNER, "Suspend a server (state saved to disk).",
     "suspend_server"),
    ("compute:server:resume", p.ADMIN_OR_OWNER, "Resume a suspended server.", "resume_server"),
    ("compute:server:console_output", p.ADMIN_OR_OWNER, "Read a server's console log.",
     "get_console_output"),
    ("compute:server:create_image", p.ADMIN_OR_OWNER,
     "Snapshot a server's root disk into a new image of its project.", "create_image"),
    ("compute:server:rebuild", p.ADMIN_OR_OWNER,
     "Rebuild a server from another image (same ports and volumes).", "rebuild_server"),
    ("compute:server:rescue", p.ADMIN_OR_OWNER,
     "Boot a server from a rescue image, its own disk attached second.", "rescue_server"),
    ("compute:server:unrescue", p.ADMIN_OR_OWNER, "Boot a rescued server from its own disk.",
     "unrescue_server"),
    ("compute:server:resize", p.ADMIN_OR_OWNER,
     "Resize a server to another flavor (on a host the scheduler picks).", "resize_server"),
    ("compute:server:migrate", p.ADMIN_ONLY,
     "Cold-migrate a server to another host (same flavor).", "migrate_server"),
    ("compute:server:evacuate", p.ADMIN_ONLY,
     "Rebuild a server of a dead host on another host (its host's service must be down).",
     "evacuate_server"),
    ("compute:server:live_migrate", p.ADMIN_ONLY,
     "Live-migrate a running server to another host (it keeps running).",
     "live_migrate_server"),
    ("compute:server:live_migrate_abort", p.ADMIN_ONLY,
     "Abort a live migration in progress (the server stays where it runs).",
     "abort_live_migration"),
    ("compute:server:confirm_resize", p.ADMIN_OR_OWNER,
     "Confirm a resize or migration (the old host's copy is removed).", "confirm_resize"),
    ("compute:server:revert_resize", p.ADMIN_OR_OWNER,
     "Revert a resize or migration (the server back as it was).", "revert_resize"),
    ("compute:server:migrations", p.ADMIN_ONLY,
     "List a server's resizes and migrations (they name hosts).", "list_server_migrations"),
    ("compute:server:attach_volume", p.ADMIN_OR_OWNER, "Attach a volume to a server.",
     "attach_volume"),
    ("compute:server:detach_volume", p.ADMIN_OR_OWNER, "Detach a volume from a server.",
     "detach_volume"),
    ("compute:server:list_volumes", p.ADMIN_OR_OWNER, "List a server's volumes.",
     "list_server_volumes"),
    ("compute:server:create:forced_host", p.ADMIN_ONLY,
     "Boot a server on a host or zone named by the caller, bypassing nothing but choosing.",
     "create_server"),
    # flavors
    ("compute:flavor:create", p.ADMIN_ONLY, "Create a flavor.", "create_flavor"),
    ("compute:flavor:get", p.ANY, "Read a flavor (a private one: its projects).", "get_flavor"),
    ("compute:flavor:list", p.ANY, "List the flavors one may use.", "list_flavors"),
    ("compute:flavor:delete", p.ADMIN_ONLY, "Delete a flavor.", "delete_flavor"),
    ("compute:flavor:access", p.ADMIN_ONLY, "Share a private flavor with a project.",
     "add_flavor_access"),
    # images (today's registry)
    ("compute:image:register", p.ANY, "Register an image file for one's project.",
     "register_image"),
    ("compute:image:get", p.ANY, "Read an image one may use.", "get_image"),
    ("compute:image:list", p.ANY, "List the images one may use.", "list_images"),
    ("compute:image:delete", p.ADMIN_OR_OWNER, "Delete an image.", "delete_image"),
    ("compute:image:publicize", p.ADMIN_ONLY, "Register a public image.", "register_image"),
    # keypairs (a user's, in every project)
    ("compute:keypair:create", p.ADMIN_OR_OWNER, "Import an SSH public key as a keypair.",
     "create_keypair"),
    ("compute:keypair:get", p.ADMIN_OR_OWNER, "Read one's keypair.", "get_keypair"),
    ("compute:keypair:list", p.ADMIN_OR_OWNER, "List one's keypairs.", "list_keypairs"),
    ("compute:keypair:delete", p.ADMIN_OR_OWNER, "Delete one's keypair.", "delete_keypair"),
    ("compute:keypair:other_user", p.ADMIN_ONLY,
     "Create, read, list or delete the keypairs of another user (user_id=...).",
     "create_keypair"),
    # placement
    ("compute:aggregate:manage", p.ADMIN_ONLY, "Create, change and delete host aggregates.",
     "create_aggregate"),
    ("compute:aggregate:read", p.ADMIN_ONLY, "Read host aggregates.", "get_aggregate"),
    ("compute:server_group:create", p.ADMIN_OR_OWNER, "Create a server group.",
     "create_server_group"),
    ("compute:server_group:get", p.ADMIN_OR_OWNER, "Read a server group.", "get_server_group"),
    ("compute:server_group:delete", p.ADMIN_OR_OWNER, "Delete a server group.",
     "delete_server_group"),
    ("compute:explain_placement", p.ADMIN_ONLY, "Explain where a server would be placed "
     "(names hosts).", "explain_placement"),
    # hosts
    ("compute:host:list", p.ADMIN_ONLY, "List compute hosts with their stats.", "list_hosts"),
    ("compute:host:set_enabled", p.ADMIN_ONLY, "Enable or disable a compute host.",
     "set_host_enabled"),
]


def list_rules() -> list[Any]:
    return [p.rule(name, check, description, f"cloud.compute.{method}")
            for name, check, description, method in _RULES]
