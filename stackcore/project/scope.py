"""What every family API shares about who is asking: the bound request context, the policy
check, the quota engine, and how queries are scoped to the caller's project.

The rules (the same in every family):

* **who may call** - each public method names a policy rule (:func:`stackcore.project.policy.
  authorize`), checked with the caller's own project as the target before the method runs;
  ``admin_only`` methods are refused to others with ``Forbidden`` naming the rule;
* **what they see** - a non-admin finds only its own project's resources (and what is shared
  or public); another project's resource is ``NotFound``, exactly as one that does not exist,
  so existence is not leaked. An admin finds any resource by id; its ``list_*`` show its own
  project unless it asks for ``all_projects=True`` (itself a rule, ``...:list:all_projects``);
* **what they may hold** - creates check the project's quota in the transaction that writes
  the resource (:mod:`stackcore.project.quota`).

A family API is bound to the embedded default's admin context until :meth:`ScopedAPI.bind`
(or ``cloud.as_project(context)``) gives it another.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from stackcore.project.context import RequestContext, admin_context

if TYPE_CHECKING:
    from oslo_config import cfg

    from stackcore.project.policy import Policy
    from stackcore.project.quota import Quotas

S = TypeVar("S", bound="ScopedAPI")


class ScopedAPI:
    """Mixed into every family API (which sets ``conf``)."""

    conf: cfg.ConfigOpts
    #: attributes holding other family APIs that must act for the same context
    BOUND_APIS: ClassVar[tuple[str, ...]] = ()
    #: the public methods that are the framework's, not API operations
    FRAMEWORK: ClassVar[frozenset[str]] = frozenset({"bind", "use"})

    _context: RequestContext | None = None
    _policy: Policy | None = None
    _quotas: Quotas | None = None

    def use(self, policy: Policy, quotas: Quotas) -> None:
        """Share the Cloud's policy enforcer and quota engine (set when the Cloud builds it)."""
        self._policy, self._quotas = policy, quotas

    @property
    def context(self) -> RequestContext:
        if self._context is None:
            self._context = admin_context()
        return self._context

    @property
    def policy(self) -> Policy:
        if self._policy is None:
            from stackcore.project.policy import Policy

            self._policy = Policy(self.conf)
        return self._policy

    @property
    def quotas(self) -> Quotas:
        if self._quotas is None:
            from stackcore.project import opts
            from stackcore.project.quota import Quotas

            self._quotas = Quotas(self.conf, opts.resources())
        return self._quotas

    def bind(self: S, context: RequestContext) -> S:
        """This API (and the family APIs it uses) acting for ``context``."""
        bound = copy.copy(self)
        bound._context = context  # noqa: SLF001 - a copy of this very class
        for name in self.BOUND_APIS:
            other = getattr(self, name, None)
            if other is not None:
                setattr(bound, name, other.bind(context))
        return bound

    @property
    def project_id(self) -> str:
        """The caller's project (the owner of what it creates)."""
        return str(self.context.project_id)

    @property
    def user_id(self) -> str:
        return str(self.context.user_id or "")

    def _authorize(self, rule: str, project_id: str | None = None) -> None:
        """Forbidden unless ``rule`` allows the caller on a resource of ``project_id``
        (default: its own project)."""
        self.policy.authorize(self.context, rule, {"project_id": project_id or self.project_id})

    def _sees_all(self) -> bool:
        """Whether lookups by id find other projects' resources (admins)."""
        return bool(self.context.is_admin)

    def _scope(self, query: Any, column: Any, *, visible: Any = None) -> Any:
        """``query`` limited to what the caller may find by id: its project's rows (or
        ``visible``, e.g. public ones); an admin finds everything."""
        if self._sees_all():
            return query
        condition = column == self.project_id
        return query.where(condition if visible is None else condition | visible)

    def _scope_list(self, query: Any, column: Any, all_projects: bool, list_rule: str, *,
                   visible: Any = None) -> Any:
        """``query`` limited for a ``list_*``: the caller's project (and ``visible``), or every
        project when ``all_projects`` (rule ``<list_rule>:all_projects``)."""
        if all_projects:
            self._authorize(f"{list_rule}:all_projects")
            return query
        condition = column == self.project_id
        return query.where(condition if visible is None else condition | visible)

