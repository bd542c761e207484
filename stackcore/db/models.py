"""The shared base of every family's SQLAlchemy models: :class:`Base`, the ``services`` table
and the time helper.

Each family keeps its own models in its own folder (``stackcore/<family>/models.py``) on this
:class:`Base`, with its own Alembic branch (``stackcore/<family>/migrations``); this module holds
only what every deployment needs whatever families it runs. Schema changes are made by Alembic
migrations only; a unit test compares the migrated schema with the models so the two cannot
drift.
"""

# No `from __future__ import annotations`: SQLAlchemy would eval every string `Mapped[...]`
# annotation when mapping, a tenth of declaring the models at every start-up (issue 18).

import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Integer, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from stackcore import _compat


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


#: the owner given to rows made before projects existed (the embedded default's admin project;
#: see the migrations that added ``project_id``)
LEGACY_OWNER = "admin"


def project_column(index: bool = True) -> Mapped[str]:
    """The owning project of a row (never NULL: a row belongs to exactly one project)."""
    return mapped_column(String(255), default=LEGACY_OWNER, server_default=LEGACY_OWNER,
                         index=index)


def user_column() -> Mapped[str]:
    """The user who made a row (kept where Nova and Cinder keep it)."""
    return mapped_column(String(255), default=LEGACY_OWNER, server_default=LEGACY_OWNER)


class Service(Base):
    """A running service (compute, volume, agent...) and its heartbeat."""

    __tablename__ = "services"
    __table_args__ = (UniqueConstraint("host", "binary", name="uniq_services0host0binary"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    host: Mapped[str] = mapped_column(String(255))
    binary: Mapped[str] = mapped_column(String(255))
    topic: Mapped[str] = mapped_column(String(255))
    availability_zone: Mapped[str] = mapped_column(String(255), default="nova")
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    disabled_reason: Mapped[str | None] = mapped_column(String(255), nullable=True)
    report_count: Mapped[int] = mapped_column(Integer, default=0)
    last_seen_at: Mapped[datetime.datetime | None] = mapped_column(DateTime, nullable=True)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=utcnow)


class CopyProgress(Base):
    """The bytes done of one long copy still running (an image upload or import, a volume
    written from an image or into one): :mod:`stackcore.progress` writes it while the copy
    runs and removes it when it ends, so a row means "running", whatever the resource's
    family. Shared by the families so that one API shape and one CLI display serve all."""

    __tablename__ = "copy_progress"

    resource_type: Mapped[str] = mapped_column(String(32), primary_key=True)
    resource_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    step: Mapped[str] = mapped_column(String(64))
    bytes_done: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_total: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    started_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=utcnow)


__getattr__ = _compat.moved_names_getattr(__name__)  # names moved in 0.2 (deprecated)
