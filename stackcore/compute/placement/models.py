"""SQLAlchemy models of the scheduler (Alembic branch ``scheduler``).

* host aggregates - named groups of compute hosts with metadata, matched by
  ``AggregateInstanceExtraSpecsFilter`` and able to override a host's availability zone
  (metadata key ``availability_zone``) and per-weigher multipliers (key = option name);
* server groups - a policy (``affinity``, ``anti-affinity``, ``soft-affinity``,
  ``soft-anti-affinity``) shared by their member servers;
* scheduling attempts - one row per host a build was tried on, so reschedules exclude the hosts
  already tried and stop after ``[scheduler] max_attempts``.
"""

# No `from __future__ import annotations`: SQLAlchemy would eval every string `Mapped[...]`
# annotation when mapping, a tenth of declaring the models at every start-up (issue 18).

import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from stackcore.db.models import Base, project_column, user_column, utcnow


class Aggregate(Base):
    __tablename__ = "aggregates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=utcnow)


class AggregateHost(Base):
    __tablename__ = "aggregate_hosts"
    __table_args__ = (
        UniqueConstraint("aggregate_id", "host", name="uniq_aggregate_hosts0aggregate0host"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    aggregate_id: Mapped[int] = mapped_column(ForeignKey("aggregates.id"), index=True)
    host: Mapped[str] = mapped_column(String(255), index=True)


class ServerGroup(Base):
    __tablename__ = "server_groups"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    project_id: Mapped[str] = project_column()
    user_id: Mapped[str] = user_column()
    policy: Mapped[str] = mapped_column(String(32))
    rules: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=utcnow)


class ServerGroupMember(Base):
    __tablename__ = "server_group_members"

    instance_uuid: Mapped[str] = mapped_column(String(36), primary_key=True)
    group_id: Mapped[str] = mapped_column(ForeignKey("server_groups.id"), index=True)


class SchedulingAttempt(Base):
    """A host a build was tried on and why it failed there (None while it is the current try)."""

    __tablename__ = "scheduling_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    instance_uuid: Mapped[str] = mapped_column(String(36), index=True)
    host: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=utcnow)
