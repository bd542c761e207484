"""The project family: who is asking (request context), what they may do (policy) and how much
they may hold (quotas).

Every family API is bound to a :class:`RequestContext` (``cloud.as_project(context)``; the
embedded one-liner's APIs are bound to :func:`admin_context`), checks a named policy rule on
every call (:mod:`~stackcore.project.policy`, oslo.policy) and consumes quota in the same
transaction that creates what it counts (:mod:`~stackcore.project.quota`).
"""

from stackcore.project.context import RequestContext, admin_context

__all__ = ["RequestContext", "admin_context"]
