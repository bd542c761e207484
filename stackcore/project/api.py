"""What callers get as ``cloud.project``: quota limits and usage per project.

Reading one's own project's quotas is allowed to any member; reading another project's, and
setting limits, to admins only (policy rules ``project:quota:*``).
"""

from __future__ import annotations

import copy
from typing import Any

from stackcore import schemas
from stackcore.db import api as db_api
from stackcore.project import policy
from stackcore.project.context import RequestContext, admin_context
from stackcore.project.quota import Quotas, Usage

PROJECT_ID = schemas.string(255)
LIMIT = schemas.integer(-1, 2**31 - 1)


class ProjectAPI:
    """Quotas of projects, as the bound context may see them."""

    def __init__(self, db: db_api.Database, quotas: Quotas, enforcer: policy.Policy,
                 context: RequestContext | None = None) -> None:
        self.db = db
        self.quotas = quotas
        self.policy = enforcer
        self.context = context or admin_context()

    def bind(self, context: RequestContext) -> ProjectAPI:
        """This API acting for ``context``."""
        bound = copy.copy(self)
        bound.context = context
        return bound

    @schemas.accepts()
    def list_quota_resources(self) -> list[str]:
        """The countable resources of every family."""
        self.policy.authorize(self.context, "project:quota:list_resources")
        return sorted(self.quotas.resources)

    @schemas.accepts(project_id=schemas.optional(PROJECT_ID))
    def get_quotas(self, project_id: str | None = None) -> dict[str, Usage]:
        """Usage and limit of every resource for ``project_id`` (default: the caller's)."""
        project = project_id or str(self.context.project_id)
        self.policy.authorize(self.context, "project:quota:get", {"project_id": project})
        with self.db.transaction() as session:
            return self.quotas.usage(session, project)

    @schemas.accepts(project_id=PROJECT_ID, resource=schemas.IDENTIFIER, limit=LIMIT)
    def set_quota(self, project_id: str, resource: str, limit: int) -> Usage:
        """Set ``project_id``'s own limit for ``resource`` (-1: unlimited). Admin only."""
        self.policy.authorize(self.context, "project:quota:set", {"project_id": project_id})
        with self.db.transaction() as session:
            self.quotas.set_limit(session, project_id, resource, limit)
            return self.quotas.usage(session, project_id)[resource]

    @schemas.accepts(project_id=PROJECT_ID, resource=schemas.IDENTIFIER)
    def unset_quota(self, project_id: str, resource: str) -> Usage:
        """Back to the ``[quota]`` default for ``resource``. Admin only."""
        self.policy.authorize(self.context, "project:quota:set", {"project_id": project_id})
        with self.db.transaction() as session:
            self.quotas.unset_limit(session, project_id, resource)
            return self.quotas.usage(session, project_id)[resource]

    @schemas.accepts(project_id=PROJECT_ID)
    def recount_usage(self, project_id: str) -> dict[str, int]:
        """Rebuild ``project_id``'s usage from the resources' rows. Admin only."""
        self.policy.authorize(self.context, "project:quota:recount", {"project_id": project_id})
        with self.db.transaction() as session:
            return self.quotas.recount(session, project_id)


def list_rules() -> list[Any]:
    return [
        policy.rule("project:quota:list_resources", policy.ANY,
                    "List the countable resources.", "cloud.project.list_quota_resources"),
        policy.rule("project:quota:get", policy.ADMIN_OR_OWNER,
                    "Read a project's quota usage and limits.", "cloud.project.get_quotas"),
        policy.rule("project:quota:set", policy.ADMIN_ONLY,
                    "Set or unset a project's limit.", "cloud.project.set_quota"),
        policy.rule("project:quota:recount", policy.ADMIN_ONLY,
                    "Rebuild a project's usage from its resources.",
                    "cloud.project.recount_usage"),
    ]
