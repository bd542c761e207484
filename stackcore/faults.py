"""Faults: why a resource went to ERROR, recorded one way by every family.

Each family keeps its faults in its own table (``instance_faults``, ``volume_faults``,
``network_faults``: the resources differ), but every fault is written by :func:`new` and read
back as the one :class:`Fault` type by :func:`view`, so callers see the same fields whatever
failed: the exception class, its message, the step that failed, the host it failed on, when -
and, where a family records them, the resource and the driver.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

#: A fault message is cut to this many characters (a driver may raise with a whole log).
MAX_MESSAGE = 4000


@dataclasses.dataclass(frozen=True)
class Fault:
    """Why a resource went to ERROR (or why a step on it failed)."""

    exc_class: str
    message: str
    step: str
    host: str | None
    created_at: datetime.datetime
    resource_type: str | None = None
    resource_id: str | None = None
    driver: str | None = None

    @property
    def operation(self) -> str:
        """The step, by the name the network family gives it (the mechanism-driver hook)."""
        return self.step


def _step_column(model: Any) -> str:
    return str(getattr(model, "FAULT_STEP_COLUMN", "step"))


def new(model: Callable[..., T], err: BaseException | str, *, step: str,
        exc_class: str | None = None, **columns: Any) -> T:
    """A fault row of ``model`` for ``err`` raised in ``step``; ``columns`` name the resource
    (and host, driver) in the model's own column names. The caller adds it to its session, in
    the transaction that moves the resource to ERROR."""
    name = exc_class or (type(err).__name__ if isinstance(err, BaseException) else "Error")
    return model(exc_class=name, message=str(err)[:MAX_MESSAGE],
                 **{_step_column(model): step}, **columns)


def view(row: Any) -> Fault:
    """The :class:`Fault` of a fault row of any family."""
    return Fault(
        exc_class=row.exc_class,
        message=row.message,
        step=getattr(row, _step_column(type(row))),
        host=getattr(row, "host", None),
        created_at=row.created_at,
        resource_type=getattr(row, "resource_type", None) or getattr(row, "resource", None),
        resource_id=getattr(row, "resource_id", None) or getattr(row, "instance_uuid", None),
        driver=getattr(row, "driver", None),
    )
