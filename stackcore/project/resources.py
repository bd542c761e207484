"""A countable resource: what a family declares for each of its quotas (light to import: the
option registry reads these at start-up; the counting happens in the engine,
:mod:`stackcore.project.quota`)."""

from __future__ import annotations

import dataclasses
import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

UNLIMITED = -1
#: per-volume-type capacity: ``gigabytes_<type name>`` (counted by the ``gigabytes`` counter,
#: which receives the full resource name)
PER_TYPE_PREFIX = "gigabytes_"


@dataclasses.dataclass(frozen=True)
class Resource:
    """A countable resource: its ``[quota]`` option's default and help, and how to count it
    from the rows (``"module:function"`` taking ``(session, project_id, resource) -> int``)."""

    name: str
    default: int
    help: str
    counter: str = ""

    def count(self, session: Session, project_id: str) -> int:
        """The project's usage counted from the rows (the counter gets this resource's name,
        so one counter can serve the per-type resources)."""
        if not self.counter:
            return 0
        module, _, attr = self.counter.partition(":")
        counter = getattr(importlib.import_module(module), attr)
        return int(counter(session, project_id, self.name))


