"""SQLAlchemy models of the project family (Alembic branch ``project``): quota limits set per
project by an admin, and the per-project lock creates take (usage is counted from the
resources' own rows)."""

# No `from __future__ import annotations`: SQLAlchemy would eval every string `Mapped[...]`
# annotation when mapping, a tenth of declaring the models at every start-up (issue 18).

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


class ProjectQuotaLock(Base):
    """One row per project: creates of one project take it (``SELECT ... FOR UPDATE``) to
    count and insert atomically (see :mod:`stackcore.project.quota`)."""

    __tablename__ = "project_quota_locks"

    project_id: Mapped[str] = mapped_column(String(255), primary_key=True)
