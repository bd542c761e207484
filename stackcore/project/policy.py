"""Policy: every family API method checks a named rule (oslo.policy) before it runs.

Rules are defaults in code (each family's ``policies.py``, named by its descriptor), registered
with oslo.policy and overridable by an operator's policy file (``[oslo_policy] policy_file``);
``oslopolicy-sample-generator --namespace stackcore`` writes them all (entry point
``oslo.policy.policies``). The base rules every family builds on:

* ``admin`` - the ``admin`` role;
* ``project_member`` - the caller's project owns the resource (``project_id`` of the target);
* ``admin_or_owner`` - either;
* ``admin_only`` - host names, hypervisor stats, provider attributes, forced operations.

A denied call raises :class:`~stackcore.exception.Forbidden` naming the rule. Reading another
project's resource is not "forbidden" but ``NotFound`` (existence is not leaked): the family
APIs scope their queries by project before any rule is checked on a row.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from stackcore import exception

if TYPE_CHECKING:
    from oslo_config import cfg
    from oslo_policy import policy as oslo_policy

    from stackcore.project.context import RequestContext

F = TypeVar("F", bound=Callable[..., Any])

ADMIN = "role:admin"
OWNER = "project_id:%(project_id)s"
ADMIN_OR_OWNER = "rule:admin_or_owner"
ADMIN_ONLY = "rule:admin_only"
ANY = "@"

#: the attribute of an authorized method naming its rule
ATTRIBUTE = "__stackcore_rule__"


def base_rules() -> list[oslo_policy.RuleDefault]:
    from oslo_policy import policy as oslo_policy

    return [
        oslo_policy.RuleDefault("admin", ADMIN, "The admin role."),
        oslo_policy.RuleDefault("project_member", OWNER,
                                "The caller's project owns the resource."),
        oslo_policy.RuleDefault("admin_or_owner", "rule:admin or rule:project_member",
                                "The admin role, or the resource's project."),
        oslo_policy.RuleDefault("admin_only", "rule:admin",
                                "Only the admin role (host names, hypervisor stats, provider "
                                "attributes, forced operations)."),
    ]


def rule(name: str, check: str, description: str, operation: str) -> oslo_policy.RuleDefault:
    """A documented rule default (``operation``: the API method, e.g. ``cloud.compute.
    create_server``)."""
    from oslo_policy import policy as oslo_policy

    return oslo_policy.DocumentedRuleDefault(name, check, description,
                                             [{"path": operation, "method": "CALL"}])


def list_rules() -> list[oslo_policy.RuleDefault]:
    """Every rule default of every family (the ``oslo.policy.policies`` entry point)."""
    from stackcore import families

    found = base_rules()
    for family in families.all_families():
        found += family.policy_rules()
    return found


class Policy:
    """The policy enforcer of one Cloud (oslo.policy on the Cloud's own ConfigOpts)."""

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        self.conf = conf

    @functools.cached_property
    def enforcer(self) -> oslo_policy.Enforcer:
        from oslo_policy import policy as oslo_policy

        enforcer = oslo_policy.Enforcer(self.conf)
        enforcer.register_defaults(list_rules())
        return enforcer

    def authorize(self, context: RequestContext, name: str,
                  target: Mapping[str, Any] | None = None) -> None:
        """Forbidden naming ``name`` unless the rule allows ``context`` on ``target`` (default:
        a target owned by the caller's project)."""
        from oslo_policy import policy as oslo_policy

        target = dict(target) if target is not None else {"project_id": context.project_id}
        try:
            allowed = self.enforcer.authorize(name, target, context)
        except oslo_policy.PolicyNotRegistered:
            raise exception.Forbidden(name, f"policy rule {name!r} is not registered") from None
        if not allowed:
            raise exception.Forbidden(name)


def authorize(name: str) -> Callable[[F], F]:
    """Check rule ``name`` (target: the caller's own project) before the decorated API method
    runs; the API object provides ``context`` and ``policy``. Methods that act on one existing
    resource check again with that resource's owner (see the family APIs)."""

    def decorate(method: F) -> F:
        @functools.wraps(method)
        def authorized(self: Any, *args: Any, **kwargs: Any) -> Any:
            self.policy.authorize(self.context, name)
            self.context.update_store()  # the calls it makes (RPC, logs) carry this context
            return method(self, *args, **kwargs)

        setattr(authorized, ATTRIBUTE, name)
        return authorized  # type: ignore[return-value]

    return decorate
