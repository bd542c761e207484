"""The image family's policy rules (defaults; an operator's policy file may override any).

Images belong to a project (``admin_or_owner``); public ones are readable by every project
(the API scopes lookups, so ``image:get`` is open to any caller). Making an image public and
(de)activating one are admin rules, as in Glance.
"""

from __future__ import annotations

from typing import Any

from stackcore.project import policy as p

_RULES = [
    ("image:create", p.ADMIN_OR_OWNER, "Create an image record.", "create"),
    ("image:publicize", p.ADMIN_ONLY, "Create or make an image public.", "create"),
    ("image:upload", p.ADMIN_OR_OWNER, "Upload an image's data.", "upload"),
    ("image:get", p.ANY, "Read an image one may use (one's project's or public).", "get"),
    ("image:list", p.ANY, "List the images one may use.", "list_images"),
    ("image:list:all_projects", p.ADMIN_ONLY, "List every project's images.", "list_images"),
    ("image:import", p.ADMIN_ONLY, "Upload an image's data from an http(s) URL (the cloud's "
     "hosts fetch it).", "import_from_url"),
    ("image:download", p.ANY, "Read an image's data (one's project's or public).",
     "download"),
    ("image:update", p.ADMIN_OR_OWNER, "Rename or (un)protect an image.", "update"),
    ("image:delete", p.ADMIN_OR_OWNER, "Delete an image.", "delete"),
    ("image:deactivate", p.ADMIN_ONLY, "Deactivate an image (no download, no new use).",
     "deactivate"),
    ("image:reactivate", p.ADMIN_ONLY, "Reactivate a deactivated image.", "reactivate"),
    ("image:faults", p.ADMIN_OR_OWNER, "Read why an image was killed (its faults).",
     "faults"),
    ("image:reset_interrupted_uploads", p.ADMIN_ONLY, "Mark killed the images whose upload's "
     "process died and remove their partial data (also done at every start-up).",
     "reset_interrupted_uploads"),
    ("image:store:list", p.ADMIN_ONLY, "List the image stores with their stats.",
     "list_stores"),
]


def list_rules() -> list[Any]:
    return [p.rule(name, check, description, f"cloud.image.{method}")
            for name, check, description, method in _RULES]
