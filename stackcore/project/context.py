"""The request context (oslo.context): user, project, roles, request id, read-only flag.

It travels with every call: family APIs hold the context they are bound to, RPC carries it in
the envelope (both transports) and the serving side makes it current for the call, so a
manager, a log line or a notification can name the request and the project it serves.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
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
        # oslo.context makes a new context its thread's current one when none is (even with
        # overwrite=False): a context made to be passed along would then be the thread's
        # identity for good, in its logs and its RPC calls. Only serving() makes one current.
        previous = oslo_context.get_current()
        super().__init__(user_id=user_id, project_id=project_id, roles=roles,
                         is_admin=ADMIN_ROLE in roles, read_only=read_only,
                         request_id=request_id, overwrite=False, **kwargs)
        if previous is None:
            _forget()

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


@contextlib.contextmanager
def serving(context: RequestContext | None) -> Iterator[None]:
    """``context`` is this thread's current one for the duration of the block (a call being
    served), then whatever was current before is again - None included. A server's worker
    threads serve one call after another: without the restore, a call that carries no context
    (a service's own periodic work) would run, and log, under the previous call's request id
    and project. The in-process transport serves calls in the caller's thread, whose own
    context must survive the call."""
    previous = oslo_context.get_current()
    if context is not None:
        context.update_store()
    else:
        _forget()
    try:
        yield
    finally:
        if previous is not None:
            previous.update_store()
        else:
            _forget()


def _forget() -> None:
    # oslo.context has a setter (update_store) but no public way to clear: its thread store
    # holds the current context as the attribute ``context``
    with contextlib.suppress(AttributeError):
        del oslo_context._request_store.context  # noqa: SLF001

