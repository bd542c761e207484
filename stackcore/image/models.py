"""SQLAlchemy models of the image family (Alembic branch ``image``).

Today's image registry: an image is a local file with a disk format and properties, registered
through ``cloud.compute.register_image`` and read by the compute family (servers boot from it)
and the volume family (volumes are copied from and to it). Both depend on this family, never on
each other for images.
"""

from __future__ import annotations

import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from stackcore.db.models import Base, project_column, utcnow


class Image(Base):
    __tablename__ = "images"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    project_id: Mapped[str] = project_column()
    #: ``public`` (every project) or ``private`` (its project only)
    visibility: Mapped[str] = mapped_column(String(16), default="private",
                                            server_default="public")
    path: Mapped[str] = mapped_column(Text)
    disk_format: Mapped[str] = mapped_column(String(32))
    size_bytes: Mapped[int] = mapped_column(Integer, default=0)
    properties: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=utcnow)
