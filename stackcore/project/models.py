"""SQLAlchemy models of the project family (Alembic branch ``project``): quota limits set per
project by an admin, and the usage each project holds, kept in step with the resources by the
transactions that create and delete them."""

from __future__ import annotations

import datetime

from sqlalchemy import DateTime, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from stackcore.db.models import Base, utcnow


class QuotaLimit(Base):
    """A project's own limit for one resource (absent: the ``[quota]`` default; -1: none)."""

    __tablename__ = "quota_limits"

    project_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    resource: Mapped[str] = mapped_column(String(255), primary_key=True)
    hard_limit: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=utcnow,
                                                          onupdate=utcnow)


class QuotaUsage(Base):
    """What a project holds of one resource. Changed only by conditional UPDATEs in the
    transaction that creates or deletes the resource (see :mod:`stackcore.project.quota`)."""

    __tablename__ = "quota_usages"

    project_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    resource: Mapped[str] = mapped_column(String(255), primary_key=True)
    in_use: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=utcnow,
                                                          onupdate=utcnow)
