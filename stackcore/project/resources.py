"""A countable resource: what a family declares for each of its quotas (light to import: the
option registry reads these at start-up; the counting happens in the engine,
:mod:`stackcore.project.quota`)."""

from __future__ import annotations

import dataclasses
import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.orm import Session
    from sqlalchemy.sql.elements import BindParameter, ColumnElement

UNLIMITED = -1
#: per-volume-type capacity: ``gigabytes_<type name>`` (counted by the ``gigabytes`` counter,
#: which receives the full resource name)
PER_TYPE_PREFIX = "gigabytes_"


@dataclasses.dataclass(frozen=True)
class Resource:
    """A countable resource: its ``[quota]`` option's default and help, and how to count it
    from the rows: ``counter`` names (``"module:function"``) a function taking ``(project_id,
    resource)`` and returning a SQL scalar expression of the usage (e.g. a ``count()``
    subquery). Why an expression, not a number: the quota engine puts the usage of every
    resource a create asks for, and their limits, into **one** statement - a create pays one
    round trip to the database for its quota check, whatever the resources."""

    name: str
    default: int
    help: str
    counter: str = ""

    def measure(self, project_id: str | BindParameter[str]) -> ColumnElement[int]:
        """The SQL expression of the project's usage (the counter gets this resource's name,
        so one counter can serve the per-type resources; ``project_id`` may be a bound
        parameter, which the counter compares a column to)."""
        import sqlalchemy as sa

        if not self.counter:
            return sa.literal(0)
        module, _, attr = self.counter.partition(":")
        counter = getattr(importlib.import_module(module), attr)
        return sa.func.coalesce(counter(project_id, self.name), 0)

    def count(self, session: Session, project_id: str) -> int:
        """The project's usage counted from the rows now."""
        import sqlalchemy as sa

        return int(session.execute(sa.select(self.measure(project_id))).scalar_one())


