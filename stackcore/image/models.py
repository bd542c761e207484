"""SQLAlchemy models of the image family (Alembic branch ``image``).

The image registry: an image is either a local file registered through
``cloud.compute.register_image`` (``path``; ``store`` and ``location`` unset) or bytes uploaded
through ``cloud.image`` into an image store (``store``, ``location``, ``sha256``; ``path`` is the
local file when the store is ``file``, else empty). The compute family (servers boot from it)
and the volume family (volumes are copied from and to it) read it; both depend on this family,
never on each other for images.
"""

# No `from __future__ import annotations`: SQLAlchemy would eval every string `Mapped[...]`
# annotation when mapping, a tenth of declaring the models at every start-up (issue 18).

import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.expression import false as sa_false

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
    # 64-bit: an uploaded image may be over 2 GiB (PostgreSQL's INTEGER is 32-bit)
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    properties: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=utcnow)
    #: ``queued`` (record only) -> ``saving`` (upload running) -> ``active``; ``deactivated``
    #: (an admin hid it from use); ``killed`` (its upload's process died: a fault says so).
    #: Registered files are ``active`` from the start.
    status: Mapped[str] = mapped_column(String(16), default="active", server_default="active")
    container_format: Mapped[str] = mapped_column(String(16), default="bare",
                                                  server_default="bare")
    #: a protected image cannot be deleted (unprotect it first)
    protected: Mapped[bool] = mapped_column(Boolean, default=False, server_default=sa_false())
    #: hex sha256 of the stored bytes, computed by the store while it wrote them
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    store: Mapped[str | None] = mapped_column(String(255), nullable=True)
    location: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: the disk size the image holds (from the format inspection), bytes
    virtual_size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    #: while ``saving``: the process running the upload (``host|boot id|pid|process start``,
    #: :mod:`stackcore.image.uploads`), so a start-up can tell a dead upload from a live one
    upload_owner: Mapped[str | None] = mapped_column(String(255), nullable=True)
    #: while ``saving``: refreshed by the upload as its bytes flow (an upload on another host
    #: whose heartbeat is older than ``[image] interrupted_upload_timeout`` is presumed dead)
    upload_heartbeat: Mapped[datetime.datetime | None] = mapped_column(DateTime, nullable=True)


class ImageFault(Base):
    """Why an image's upload failed in a way nobody was there to report (its process died)."""

    __tablename__ = "image_faults"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    image_id: Mapped[str] = mapped_column(String(36), index=True)
    exc_class: Mapped[str] = mapped_column(String(255))
    message: Mapped[str] = mapped_column(Text)
    step: Mapped[str] = mapped_column(String(64))
    host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=utcnow)
