"""Quotas: per project and per resource, enforced race-free across processes.

Usage is **counted from the resources' own rows** (Nova's "counting quotas"): there is no usage
counter to keep in step, so a failed create (rolled back), a delete, a crash or a restart can
never leave usage wrong - it always equals the rows.

Why counting is race-free here: a create checks its project's quota in the **same transaction**
that writes the resource, after taking the project's quota lock (a transaction-scoped
advisory lock on PostgreSQL, a locked row per project on MySQL; on SQLite every writer holds
the database lock anyway - see :meth:`Quotas.lock`). A second creator of the same project
waits for the first to commit, then counts its row too; eight processes creating the tenth
instance at once end with exactly ten. Projects never wait for each other (on SQLite all
writers take turns whatever they do).

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

#: the first key of stackcore's PostgreSQL advisory locks for quotas (the second is the
#: project's hash): any constant other users of the database's advisory locks avoid
ADVISORY_NAMESPACE = 0x5C0A

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
        self._statements: dict[tuple[str, ...], sa.Select[Any]] = {}

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
        """Take the project's quota lock for the rest of the caller's transaction.

        * SQLite: nothing to do - every stackcore transaction there begins ``IMMEDIATE``
          (:mod:`stackcore.db.api`), so it already holds the database's write lock, which
          serialises all writers;
        * PostgreSQL: a transaction-scoped advisory lock on the project
          (``pg_advisory_xact_lock(<quota namespace>, hashtext(project_id))``) - one round
          trip, no row written, released by the commit or rollback. Two projects whose names
          hash alike merely take turns;
        * MySQL/MariaDB: the project's row in ``project_quota_locks``, ``SELECT ... FOR
          UPDATE`` (created the first time, racing creators tolerated).

        The usage is read by a later statement: under READ COMMITTED each statement sees
        what was committed when it began, so it counts the rows of whoever held the lock
        before (a statement that locked and counted at once would count from before its
        wait)."""
        dialect = session.get_bind().dialect.name
        if dialect == "sqlite":
            return
        if dialect == "postgresql":
            session.execute(sa.select(sa.func.pg_advisory_xact_lock(
                sa.literal(ADVISORY_NAMESPACE, sa.Integer),
                sa.func.hashtext(sa.bindparam("project_id", project_id, type_=sa.String)))))
            return
        locked = sa.select(ProjectQuotaLock.project_id).where(
            ProjectQuotaLock.project_id == project_id).with_for_update()
        if session.execute(locked).first() is None:
            session.execute(sa.insert(ProjectQuotaLock).values(project_id=project_id)
                            .prefix_with("IGNORE"))
            session.execute(locked)

    def _statement(self, resources: tuple[str, ...]) -> sa.Select[Any]:
        """The one statement reading usage and limit of ``resources`` for the project bound
        as ``project_id`` (defaults bound as ``default_<i>``: a changed option needs no new
        statement). Built once per set of resources: building it costs more than running it."""
        statement = self._statements.get(resources)
        if statement is None:
            project = sa.bindparam("project_id", type_=sa.String)
            columns: list[Any] = []
            for i, resource in enumerate(resources):
                own = sa.select(QuotaLimit.hard_limit).where(
                    QuotaLimit.project_id == project, QuotaLimit.resource == resource
                ).scalar_subquery()
                columns += [self._known(resource).measure(project),
                            sa.func.coalesce(own, sa.bindparam(f"default_{i}", type_=sa.Integer))]
            statement = self._statements[resources] = sa.select(*columns)
        return statement

    def _read(self, session: Session, project_id: str,
              resources: Sequence[str]) -> dict[str, Usage]:
        """Usage and limit of each of ``resources``, all in one statement."""
        names = tuple(resources)
        values: dict[str, Any] = {"project_id": project_id}
        values.update({f"default_{i}": self.default(r) for i, r in enumerate(names)})
        row = session.execute(self._statement(names), values).one()
        return {resource: Usage(resource, int(row[2 * i]), int(row[2 * i + 1]))
                for i, resource in enumerate(names)}

    def in_use(self, session: Session, project_id: str, resource: str) -> int:
        return self._known(resource).count(session, project_id)

    def check(self, session: Session, project_id: str, deltas: Mapping[str, int]) -> None:
        """Refuse (OverQuota) if adding ``deltas`` would pass a limit of the project; call it
        inside the transaction that then writes the resources, which holds the project's
        quota lock from here to its commit. Costs one statement to read every usage and limit
        (plus the lock's, PostgreSQL/MySQL)."""
        wanted = {r: int(n) for r, n in deltas.items() if int(n) > 0}
        for resource in wanted:
            self._known(resource)
        if not wanted:
            return
        self.lock(session, project_id)
        for resource, usage in sorted(self._read(session, project_id, sorted(wanted)).items()):
            if usage.limit >= 0 and usage.in_use + wanted[resource] > usage.limit:
                raise exception.OverQuota(project_id, resource, wanted[resource],
                                          usage.in_use, usage.limit)

    def usage(self, session: Session, project_id: str,
              extra: Sequence[str] = ()) -> dict[str, Usage]:
        """Every resource's usage and limit for the project (plus ``extra`` resources, e.g.
        per-type ones)."""
        names = sorted({*self.resources, *extra, *(
            r for r in session.execute(sa.select(QuotaLimit.resource).where(
                QuotaLimit.project_id == project_id)).scalars())})
        return self._read(session, project_id, names)

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
