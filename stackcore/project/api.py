"""What callers get as ``cloud.project``: quota limits and usage per project.

Reading one's own project's quotas is allowed to any member; reading another project's, and
setting limits, to admins only (policy rules ``project:quota:*``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stackcore import schemas
from stackcore.db import api as db_api
from stackcore.project import policy
from stackcore.project.quota import Usage
from stackcore.project.scope import ScopedAPI

if TYPE_CHECKING:
    from oslo_config import cfg

PROJECT_ID = schemas.string(255)
LIMIT = schemas.integer(-1, 2**31 - 1)


class ProjectAPI(ScopedAPI):
    """Quotas of projects, as the bound context may see them."""

    def __init__(self, conf: cfg.ConfigOpts, db: db_api.Database) -> None:
        self.conf = conf
        self.db = db

    @schemas.accepts()
    @policy.authorize("project:quota:list_resources")
    def list_quota_resources(self) -> list[str]:
        """The countable resources of every family."""
        self._authorize("project:quota:list_resources")
        return sorted(self.quotas.resources)

    @schemas.accepts(project_id=schemas.optional(PROJECT_ID))
    @policy.authorize("project:quota:get")
    def get_quotas(self, project_id: str | None = None) -> dict[str, Usage]:
        """Usage and limit of every resource for ``project_id`` (default: the caller's)."""
        project = project_id or self.project_id
        self._authorize("project:quota:get", project)
        with self.db.transaction() as session:
            return self.quotas.usage(session, project)

    @schemas.accepts(project_id=PROJECT_ID, resource=schemas.IDENTIFIER, limit=LIMIT)
    @policy.authorize("project:quota:set")
    def set_quota(self, project_id: str, resource: str, limit: int) -> Usage:
        """Set ``project_id``'s own limit for ``resource`` (-1: unlimited). Admin only."""
        self._authorize("project:quota:set", project_id)
        with self.db.transaction() as session:
            self.quotas.set_limit(session, project_id, resource, limit)
            return self.quotas.usage(session, project_id)[resource]

    @schemas.accepts(project_id=PROJECT_ID, resource=schemas.IDENTIFIER)
    @policy.authorize("project:quota:set")
    def unset_quota(self, project_id: str, resource: str) -> Usage:
        """Back to the ``[quota]`` default for ``resource``. Admin only."""
        self._authorize("project:quota:set", project_id)
        with self.db.transaction() as session:
            self.quotas.unset_limit(session, project_id, resource)
            return self.quotas.usage(session, project_id)[resource]


def list_rules() -> list[Any]:
    return [
        policy.rule("project:quota:list_resources", policy.ANY,
                    "List the countable resources.", "cloud.project.list_quota_resources"),
        policy.rule("project:quota:get", policy.ADMIN_OR_OWNER,
                    "Read a project's quota usage and limits.", "cloud.project.get_quotas"),
        policy.rule("project:quota:set", policy.ADMIN_ONLY,
                    "Set or unset a project's limit.", "cloud.project.set_quota"),
    ]
