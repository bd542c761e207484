"""Progress of long copies, readable on the resource: bytes done and total while the copy runs.

An image upload or import, a volume written from an image or into one can take minutes; the
status (``saving``, ``downloading``, ``uploading``) says only that it runs. While it runs, the
code doing the copy reports the bytes it moved through a :class:`Reporter`, which keeps one row
of the ``copy_progress`` table (:class:`stackcore.db.models.CopyProgress`) per resource; the
family APIs show it as the resource's ``progress`` (:class:`Progress`, None when no copy runs)
and the CLI's ``--wait`` displays it as a bar.

Why a table of its own rather than columns on each family's rows: one shape for every family,
one display, and a row exists while a copy runs (the reporter removes it at the end, success
or failure). A process killed mid-copy leaves its row; the APIs show a row only while the
resource is in a copying status (``saving``, ``downloading``...), which restart
reconciliation ends, and the next copy of the resource replaces it.

Costs are bounded: a reporter writes at most once per :data:`INTERVAL` seconds (plus once at
the start), whatever the chunk size; a failed write (a database outage) is logged and the copy
goes on - progress is information, never a reason to fail the work it describes.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import time
from collections.abc import Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from stackcore.db.api import Database

LOG = logging.getLogger(__name__)

#: seconds between two writes of one copy's progress
INTERVAL = 1.0


@dataclasses.dataclass(frozen=True)
class Progress:
    """A running copy: ``step`` (what it is doing: ``upload``, ``copy_image_to_volume``...),
    bytes done so far, the total when known, and when it started and was last reported."""

    step: str
    bytes_done: int
    bytes_total: int | None
    started_at: datetime.datetime
    updated_at: datetime.datetime

    @property
    def percent(self) -> int | None:
        """Whole percent done (None: the total is unknown)."""
        if not self.bytes_total:
            return None
        return min(100, self.bytes_done * 100 // self.bytes_total)

    def __str__(self) -> str:
        total = "?" if self.bytes_total is None else str(self.bytes_total)
        pct = "" if self.percent is None else f" ({self.percent}%)"
        return f"{self.step}: {self.bytes_done}/{total} bytes{pct}"


class Reporter:
    """``with Reporter(db, "image", image_id, "upload", total) as r: ... r.advance(n)``.

    Entering records 0 bytes done (replacing what a dead copy of the same resource left);
    :meth:`advance` adds bytes and writes at most every :data:`INTERVAL` seconds; leaving
    removes the row, whether the copy succeeded or failed."""

    def __init__(self, db: Database, resource_type: str, resource_id: str, step: str,
                 total: int | None = None) -> None:
        self.db = db
        self.resource_type = resource_type
        self.resource_id = resource_id
        self.step = step
        self.total = total
        self.done = 0
        self._next = 0.0

    def __enter__(self) -> Reporter:
        self._write(start=True)
        return self

    def advance(self, count: int) -> None:
        """``count`` more bytes were copied."""
        self.done += count
        if time.monotonic() >= self._next:
            self._write()

    def phase(self, step: str, total: int | None = None) -> None:
        """The copy moved on to ``step`` (bytes counted from 0 again, ``total`` None when that
        step reports no bytes - a driver's own copy): shown at once."""
        self.step, self.total, self.done = step, total, 0
        self._write()

    def set_total(self, total: int | None) -> None:
        """The total became known (or changed) during the copy."""
        self.total = total
        self._next = 0.0  # shown at the next advance

    def _write(self, start: bool = False) -> None:
        import sqlalchemy as sa

        from stackcore.db.models import CopyProgress, utcnow

        now = utcnow()
        key = {"resource_type": self.resource_type, "resource_id": self.resource_id}
        try:
            with self.db.transaction() as session:
                if start:
                    session.execute(sa.delete(CopyProgress).filter_by(**key))
                    session.add(CopyProgress(**key, step=self.step, bytes_done=0,
                                             bytes_total=self.total, started_at=now,
                                             updated_at=now))
                else:
                    session.execute(sa.update(CopyProgress).filter_by(**key).values(
                        step=self.step, bytes_done=self.done, bytes_total=self.total,
                        updated_at=now))
        except Exception as err:  # noqa: BLE001 - progress never fails the copy it describes
            LOG.warning("%s %s: recording the progress of %s failed: %s", self.resource_type,
                        self.resource_id, self.step, err)
        self._next = time.monotonic() + INTERVAL

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None,
                 tb: TracebackType | None) -> None:
        clear(self.db, self.resource_type, self.resource_id)


def clear(db: Database, resource_type: str, resource_id: str) -> None:
    """Remove a resource's progress (its copy ended; also what a start-up's reconciliation
    calls for a copy whose process died). Logged, never raised, on failure."""
    import sqlalchemy as sa

    from stackcore.db.models import CopyProgress

    try:
        with db.transaction() as session:
            session.execute(sa.delete(CopyProgress).filter_by(resource_type=resource_type,
                                                              resource_id=resource_id))
    except Exception as err:  # noqa: BLE001 - see Reporter._write
        LOG.warning("%s %s: removing its copy progress failed: %s", resource_type,
                    resource_id, err)


def read(session: Session, resource_type: str,
         resource_ids: Iterable[str]) -> dict[str, Progress]:
    """The progress of those of ``resource_ids`` whose copy runs, by id (one query)."""
    import sqlalchemy as sa

    from stackcore.db.models import CopyProgress

    ids = list(resource_ids)
    if not ids:
        return {}
    rows = session.execute(sa.select(CopyProgress).where(
        CopyProgress.resource_type == resource_type,
        CopyProgress.resource_id.in_(ids))).scalars()
    return {row.resource_id: _progress(row) for row in rows}


def _progress(row: Any) -> Progress:
    return Progress(row.step, row.bytes_done, row.bytes_total, row.started_at, row.updated_at)
