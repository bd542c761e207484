"""Quotas: per project and per resource, enforced race-free across processes.

Why usage rows and conditional UPDATEs (not "count, then insert"): counting the rows and then
creating one is a race - eight processes each see nine instances and each create the tenth.
Here a create consumes its quota in the **same transaction** that writes the resource, with one
statement per resource::

    UPDATE quota_usages SET in_use = in_use + :n
     WHERE project_id = :p AND resource = :r AND (:limit < 0 OR in_use + :n <= :limit)

The check and the increment are one statement, so two concurrent consumers can never both pass
the limit: on PostgreSQL the second UPDATE waits for the first transaction and re-evaluates its
WHERE clause against the committed row; on SQLite writers are serialised. If the resource's
transaction fails later, the increment rolls back with it (a reservation that commits or rolls
back with the operation); a delete gives the usage back in the transaction that deletes the
row. :meth:`Quotas.recount` rebuilds the usage of a project from the rows themselves (each
family's counter), e.g. after restoring a database.

Limits: a project's own (``quota_limits``, set by an admin) or the ``[quota]`` default; ``-1``
means unlimited. Exceeding one raises :class:`~stackcore.exception.OverQuota` naming the
resource, the amount requested, the amount in use and the limit.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from stackcore import exception
from stackcore.db.models import utcnow
from stackcore.project.models import QuotaLimit, QuotaUsage

if TYPE_CHECKING:
    from oslo_config import cfg
    from sqlalchemy.orm import Session

UNLIMITED = -1


@dataclasses.dataclass(frozen=True)
class Resource:
    """A countable resource: its ``[quota]`` option's default and help, and how to count it
    from the rows (``"module:function"`` taking ``(session, project_id) -> int``)."""

    name: str
    default: int
    help: str
    counter: str = ""

    def count(self, session: Session, project_id: str) -> int:
        module, _, attr = self.counter.partition(":")
        return int(getattr(importlib.import_module(module), attr)(session, project_id))


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
        if found is None:
            raise exception.Invalid("resource", "is not a quota resource (known: "
                                    f"{', '.join(sorted(self.resources))})", resource)
        return found

    def default(self, resource: str) -> int:
        self._known(resource)
        return int(self.conf.quota[resource])

    def limit(self, session: Session, project_id: str, resource: str) -> int:
        row = session.get(QuotaLimit, (project_id, resource))
        return row.hard_limit if row is not None else self.default(resource)

    def _ensure_row(self, session: Session, project_id: str, resource: str) -> None:
        dialect = session.get_bind().dialect.name
        values = {"project_id": project_id, "resource": resource, "in_use": 0,
                  "updated_at": utcnow()}
        statement: Any
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            statement = pg_insert(QuotaUsage).values(**values).on_conflict_do_nothing()
        elif dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            statement = sqlite_insert(QuotaUsage).values(**values).on_conflict_do_nothing()
        else:  # MySQL/MariaDB
            statement = sa.insert(QuotaUsage).values(**values).prefix_with("IGNORE")
        session.execute(statement)

    def consume(self, session: Session, project_id: str, deltas: Mapping[str, int]) -> None:
        """Add ``deltas`` to the project's usage inside the caller's transaction; OverQuota
        (and nothing changed by the caller's transaction, which rolls back) if one would
        pass its limit. Resources are taken in name order, so concurrent consumers never
        deadlock."""
        for resource in sorted(deltas):
            amount = int(deltas[resource])
            self._known(resource)
            if amount <= 0:
                continue
            self._ensure_row(session, project_id, resource)
            limit = self.limit(session, project_id, resource)
            usage = QuotaUsage
            result = session.execute(
                sa.update(usage)
                .where(usage.project_id == project_id, usage.resource == resource,
                       sa.or_(sa.literal(limit) < 0, usage.in_use + amount <= limit))
                .values(in_use=usage.in_use + amount, updated_at=utcnow())
                .execution_options(synchronize_session=False))
            if result.rowcount != 1:  # type: ignore[attr-defined]
                used = session.execute(sa.select(usage.in_use).where(
                    usage.project_id == project_id, usage.resource == resource)).scalar_one()
                raise exception.OverQuota(project_id, resource, amount, int(used), limit)

    def release(self, session: Session, project_id: str, deltas: Mapping[str, int]) -> None:
        """Give ``deltas`` back inside the caller's transaction (never below zero)."""
        usage = QuotaUsage
        for resource in sorted(deltas):
            amount = int(deltas[resource])
            if amount <= 0:
                continue
            session.execute(
                sa.update(usage)
                .where(usage.project_id == project_id, usage.resource == resource)
                .values(in_use=sa.case((usage.in_use >= amount, usage.in_use - amount),
                                       else_=0), updated_at=utcnow())
                .execution_options(synchronize_session=False))

    def usage(self, session: Session, project_id: str) -> dict[str, Usage]:
        """Every resource's usage and limit for the project."""
        rows = dict(session.execute(sa.select(QuotaUsage.resource, QuotaUsage.in_use).where(
            QuotaUsage.project_id == project_id)).all())
        return {name: Usage(name, int(rows.get(name, 0)), self.limit(session, project_id, name))
                for name in sorted(self.resources)}

    def set_limit(self, session: Session, project_id: str, resource: str, limit: int) -> None:
        """The project's own limit (-1: unlimited). Lowering it below the usage is allowed
        (Nova's rule): nothing is taken away, new consumption is refused."""
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

    def recount(self, session: Session, project_id: str) -> dict[str, int]:
        """Set the project's usage of every countable resource from the rows themselves."""
        counted = {}
        for name, resource in sorted(self.resources.items()):
            if not resource.counter:
                continue
            self._ensure_row(session, project_id, name)
            counted[name] = resource.count(session, project_id)
            session.execute(sa.update(QuotaUsage).where(
                QuotaUsage.project_id == project_id, QuotaUsage.resource == name)
                .values(in_use=counted[name], updated_at=utcnow()))
        return counted
