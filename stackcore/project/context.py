"""The request context (oslo.context): user, project, roles, request id, read-only flag.

It travels with every call: family APIs hold the context they are bound to, RPC carries it in
the envelope (both transports) and the serving side makes it current for the call, so a
manager, a log line or a notification can name the request and the project it serves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from oslo_context import context as oslo_context

ADMIN_ROLE = "admin"
#: the project the embedded default's admin context belongs to
ADMIN_PROJECT = "admin"


class RequestContext(oslo_context.RequestContext):
    """Who is asking: ``user_id``, ``project_id``, ``roles`` (``admin`` makes ``is_admin``),
    ``request_id`` (generated when not given), ``read_only``."""

    def __init__(self, user_id: str | None = None, project_id: str | None = None,
                 roles: Sequence[str] = (), read_only: bool = False,
                 request_id: str | None = None, **kwargs: Any) -> None:
        roles = list(roles)
        super().__init__(user_id=user_id, project_id=project_id, roles=roles,
                         is_admin=ADMIN_ROLE in roles, read_only=read_only,
                         request_id=request_id, overwrite=False, **kwargs)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], **kwargs: Any) -> RequestContext:
        return cls(user_id=values.get("user_id"), project_id=values.get("project_id"),
                   roles=values.get("roles") or (), read_only=bool(values.get("read_only")),
                   request_id=values.get("request_id"))

    def wire(self) -> dict[str, Any]:
        """What crosses RPC: the identity and the request id (never a token)."""
        return {"user_id": self.user_id, "project_id": self.project_id,
                "roles": list(self.roles), "read_only": self.read_only,
                "request_id": self.request_id}

    def elevated(self) -> RequestContext:
        """The same request with the admin role (for the framework's own bookkeeping)."""
        return RequestContext(self.user_id, self.project_id, [*self.roles, ADMIN_ROLE],
                              self.read_only, self.request_id)


def admin_context(request_id: str | None = None) -> RequestContext:
    """The context of the embedded default and of the framework itself."""
    return RequestContext(user_id="admin", project_id=ADMIN_PROJECT, roles=[ADMIN_ROLE],
                          request_id=request_id)


def current() -> RequestContext | None:
    """The context of the call being served in this thread, if any."""
    found = oslo_context.get_current()
    return found if isinstance(found, RequestContext) else None
