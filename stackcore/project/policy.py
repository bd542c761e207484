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

import contextvars
import functools
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from stackcore import exception
from stackcore.project.context import serving

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
#: the attribute of an authorized method saying whether it only reads
READS = "__stackcore_reads__"

#: Method names of the family APIs that only read (a read-only context may call them). Why by
#: name: the API's naming convention already says it (get_/list_/wait_ ...), and a new write
#: method is refused to read-only callers by default, the safe side.
READ_PREFIXES = ("get", "list_", "wait", "explain_", "faults", "type_usage",
                 "network_info_for_instance")


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
    """The policy enforcer of one Cloud (oslo.policy on the Cloud's own ConfigOpts).

    Decisions are cached. Why: oslo.policy re-derives each check's signature with ``inspect``
    on every call (~0.2 ms a check), more than the rest of a create's overhead; the same
    caller asking the same rule on the same target gets the same answer until the rules
    change. The key is the rule, the target and the caller's credentials without its request
    ids (a rule may test any credential - user, project, roles, scope - but a decision cannot
    depend on which request asks). oslo.policy is asked to reload its rules at most every
    ``RELOAD_INTERVAL`` seconds (it searches every configuration directory for the policy
    file and its directory on each call, most of a check's remaining cost), so an edited
    policy file takes effect within that; a reload gives oslo.policy new rule objects, which
    empties the cache."""

    #: seconds between two looks for a changed policy file
    RELOAD_INTERVAL = 1.0

    #: decisions kept at most (an LRU would buy little: the key space of one deployment's
    #: callers x rules is small; past the bound the cache simply starts over)
    CACHE_SIZE = 8192
    #: credentials that differ per request and never decide a rule
    PER_REQUEST = frozenset({"request_id", "global_request_id"})

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        self.conf = conf
        self._decisions: dict[tuple[Any, ...], bool] = {}
        self._rules: object = None
        self._next_reload = 0.0

    @functools.cached_property
    def enforcer(self) -> oslo_policy.Enforcer:
        from oslo_policy import policy as oslo_policy

        enforcer = oslo_policy.Enforcer(self.conf)
        enforcer.register_defaults(list_rules())
        return enforcer

    def check_config(self) -> None:
        """At start-up: a bad ``[oslo_policy]`` is one ConfigError now, not at the first call.

        Without a policy file or directory (the embedded default: the rules' defaults only),
        nothing is loaded - importing oslo.policy and parsing every rule is about a third of
        a ``Cloud()``, so the first API call pays it. With one, it is read now (and checked
        for changes as usual afterwards)."""
        options = self.conf.oslo_policy
        self._check_dirs()
        found = [self.conf.find_file(name) for name in
                 (options.policy_file, *(options.policy_dirs or ()))]
        if any(found):
            self._load_rules(self.enforcer)
            self._next_reload = time.monotonic() + self.RELOAD_INTERVAL

    def _check_dirs(self) -> None:
        options = self.conf.oslo_policy
        if any(not str(entry).strip() for entry in options.policy_dirs or ()):
            raise exception.ConfigError(
                f"[oslo_policy] policy_dirs = {list(options.policy_dirs)!r} has an empty entry "
                "(oslo.policy would read every file of the working directory as policy)",
                section="oslo_policy", option="policy_dirs")

    def _load_rules(self, enforcer: oslo_policy.Enforcer) -> None:
        """(Re)load the policy file and directories; what oslo.policy cannot read is one
        ConfigError naming ``[oslo_policy]`` (oslo.policy raises ValueError for a file that is
        not YAML, OSError for one it cannot open)."""
        options = self.conf.oslo_policy
        self._check_dirs()
        try:
            enforcer.load_rules()
        except (ValueError, OSError) as err:
            raise exception.ConfigError(
                f"[oslo_policy] the policy (policy_file {options.policy_file!r}, policy_dirs "
                f"{list(options.policy_dirs)!r}) cannot be loaded: {type(err).__name__}: "
                f"{str(err).splitlines()[0] if str(err) else ''}",
                section="oslo_policy", option="policy_file") from None

    def authorize(self, context: RequestContext, name: str,
                  target: Mapping[str, Any] | None = None) -> None:
        """Forbidden naming ``name`` unless the rule allows ``context`` on ``target`` (default:
        a target owned by the caller's project)."""
        from oslo_policy import policy as oslo_policy

        target = dict(target) if target is not None else {"project_id": context.project_id}
        enforcer = self.enforcer
        now = time.monotonic()
        if now >= self._next_reload:  # a changed policy file takes effect
            self._load_rules(enforcer)
            self._next_reload = now + self.RELOAD_INTERVAL
        if enforcer.rules is not self._rules:
            self._rules, self._decisions = enforcer.rules, {}
        try:
            key: tuple[Any, ...] | None = (name, _frozen(target), _frozen({
                k: v for k, v in context.to_policy_values().items()
                if k not in self.PER_REQUEST}))
            allowed = self._decisions.get(key)  # type: ignore[arg-type]
        except TypeError:  # an unhashable target or credential: decide without the cache
            key, allowed = None, None
        if allowed is None:
            try:
                allowed = bool(enforcer.authorize(name, target, context))
            except oslo_policy.PolicyNotRegistered:
                raise exception.Forbidden(name, f"policy rule {name!r} is not registered") \
                    from None
            if key is not None:
                if len(self._decisions) >= self.CACHE_SIZE:
                    self._decisions = {}
                self._decisions[key] = allowed
        if not allowed:
            raise exception.Forbidden(name)


def _frozen(values: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    """A hashable, order-free form of ``values`` (lists become tuples)."""
    return tuple(sorted((k, tuple(v) if isinstance(v, list | set | tuple) else v)
                        for k, v in values.items()))


#: the request context whose API call is running in this thread (or task), if any
_AUTHORIZED: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar(
    "stackcore_authorized", default=None)


def authorize(name: str) -> Callable[[F], F]:
    """Check rule ``name`` (target: the caller's own project) before the decorated API method
    runs; the API object provides ``context`` and ``policy``. Methods that act on one existing
    resource check again with that resource's owner (see the family APIs).

    One rule per call: the rule of the method the caller called. The public methods it uses
    on its way (``create_server`` looking up its flavor and image, then waiting through
    ``get_server``) are part of that call and are not checked again for the same context -
    as Nova checks policy once, at its API's entry. What a nested method finds is still
    scoped to the caller's project (another project's resource stays ``NotFound``), and the
    explicit checks of attributes and forced operations (``ScopedAPI._authorize``) still run.
    A call for another context (the admin-bound internal APIs) is checked as its own call."""

    def decorate(method: F) -> F:
        reads = method.__name__.startswith(READ_PREFIXES)

        @functools.wraps(method)
        def authorized(self: Any, *args: Any, **kwargs: Any) -> Any:
            context = self.context
            if _AUTHORIZED.get() is context:
                return method(self, *args, **kwargs)
            if context.read_only and not reads:
                raise exception.Forbidden(
                    name, f"{name} changes state and the request context is read-only")
            self.policy.authorize(context, name)
            token = _AUTHORIZED.set(context)
            try:
                # current for the call only: the calls it makes (RPC, logs) carry it, and the
                # caller's thread gets its own context (or none) back afterwards
                with serving(context):
                    return method(self, *args, **kwargs)
            finally:
                _AUTHORIZED.reset(token)

        setattr(authorized, ATTRIBUTE, name)
        setattr(authorized, READS, reads)
        return authorized  # type: ignore[return-value]

    return decorate
