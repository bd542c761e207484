"""Quotas: per project and per resource, enforced race-free across processes.

Usage is **counted from the resources' own rows** (Nova's "counting quotas"): there is no usage
counter to keep in step, so a failed create (rolled back), a delete, a crash or a restart can
never leave usage wrong - it always equals the rows.

Why counting is race-free here: a create checks its project's quota in the **same transaction**
that writes the resource, after taking the project's quota lock (one row per project in
``project_quota_locks``, ``SELECT ... FOR UPDATE``; on SQLite every writer holds the database
lock anyway). A second creator of the same project waits for the first to commit, then counts
its row too; eight processes creating the tenth instance at once end with exactly ten.
Projects never wait for each other.

Limits: a project's own (``quota_limits``, set by an admin) or the ``[quota]`` default; ``-1``
means unlimited. Exceeding one raises :class:`~stackcore.exception.OverQuota` naming the
resource, the amount requested, the amount in use and the limit; the caller's transaction rolls
back, so nothing is persisted. Per-volume-type capacity is a resource per type,
``gigabytes_<type name>``, unlimited unless an admin sets a project limit.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from stackcore import exception
from stackcore.project.models import ProjectQuotaLock, QuotaLimit
from stackcore.project.resources import PER_TYPE_PREFIX, UNLIMITED, Resource

if TYPE_CHECKING:
    from oslo_config import cfg
    from sqlalchemy.orm import Session

@dataclasses.dataclass(frozen=True)
class Usage:
    resource: str
    in_use: int
    limit: int  # -1: unlimited


class Quotas:
    """The quota engine of one Cloud: ``resources`` are every family's countable resources."""

    def __init__(self, conf: cfg.ConfigOpts, resources: Mapping[str, Resource]) -> None:
        self.conf = conf
        self.resources = dict(resources)

    def _known(self, resource: str) -> Resource:
        found = self.resources.get(resource)
        if found is None and resource.startswith(PER_TYPE_PREFIX) and \
                PER_TYPE_PREFIX.rstrip("_") in self.resources:
            base = self.resources[PER_TYPE_PREFIX.rstrip("_")]
            return Resource(resource, UNLIMITED, f"{base.help} of type "
                            f"{resource[len(PER_TYPE_PREFIX):]}", base.counter)
        if found is None:
            raise exception.Invalid("resource", "is not a quota resource (known: "
                                    f"{', '.join(sorted(self.resources))})", resource)
        return found

    def default(self, resource: str) -> int:
        known = self._known(resource)
        if resource not in self.resources:
            return known.default  # per-type resources: unlimited by default
        return int(self.conf.quota[resource])

    def limit(self, session: Session, project_id: str, resource: str) -> int:
        row = session.get(QuotaLimit, (project_id, resource))
        return row.hard_limit if row is not None else self.default(resource)

    def lock(self, session: Session, project_id: str) -> None:
        """Take the project's quota lock for the rest of the caller's transaction."""
        dialect = session.get_bind().dialect.name
        values = {"project_id": project_id}
        statement: Any
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            statement = pg_insert(ProjectQuotaLock).values(**values).on_conflict_do_nothing()
        elif dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            statement = sqlite_insert(ProjectQuotaLock).values(**values).on_conflict_do_nothing()
        else:  # MySQL/MariaDB
            statement = sa.insert(ProjectQuotaLock).values(**values).prefix_with("IGNORE")
        session.execute(statement)
        session.execute(sa.select(ProjectQuotaLock.project_id)
                        .where(ProjectQuotaLock.project_id == project_id).with_for_update())

    def in_use(self, session: Session, project_id: str, resource: str) -> int:
        return self._known(resource).count(session, project_id)

    def check(self, session: Session, project_id: str, deltas: Mapping[str, int]) -> None:
        """Refuse (OverQuota) if adding ``deltas`` would pass a limit of the project; call it
        inside the transaction that then writes the resources, which holds the project's
        quota lock from here to its commit."""
        wanted = {r: int(n) for r, n in deltas.items() if int(n) > 0}
        for resource in wanted:
            self._known(resource)
        if not wanted:
            return
        self.lock(session, project_id)
        for resource in sorted(wanted):
            limit = self.limit(session, project_id, resource)
            if limit < 0:
                continue
            used = self.in_use(session, project_id, resource)
            if used + wanted[resource] > limit:
                raise exception.OverQuota(project_id, resource, wanted[resource], used, limit)

    def usage(self, session: Session, project_id: str,
              extra: Sequence[str] = ()) -> dict[str, Usage]:
        """Every resource's usage and limit for the project (plus ``extra`` resources, e.g.
        per-type ones)."""
        names = sorted({*self.resources, *extra, *(
            r for r in session.execute(sa.select(QuotaLimit.resource).where(
                QuotaLimit.project_id == project_id)).scalars())})
        return {name: Usage(name, self.in_use(session, project_id, name),
                            self.limit(session, project_id, name)) for name in names}

    def set_limit(self, session: Session, project_id: str, resource: str, limit: int) -> None:
        """The project's own limit (-1: unlimited). Lowering it below the usage is allowed
        (Nova's rule): nothing is taken away, new creates are refused."""
        self._known(resource)
        row = session.get(QuotaLimit, (project_id, resource))
        if row is None:
            session.add(QuotaLimit(project_id=project_id, resource=resource, hard_limit=limit))
        else:
            row.hard_limit = limit

    def unset_limit(self, session: Session, project_id: str, resource: str) -> None:
        """Back to the ``[quota]`` default."""
        self._known(resource)
        session.execute(sa.delete(QuotaLimit).where(QuotaLimit.project_id == project_id,
                                                    QuotaLimit.resource == resource))
