"""SQLAlchemy models the compute family adds for its wiring to the network and volume families
(Alembic branch ``e2e``).

* :class:`NetworkRequest` - what ``create_server(networks=...)`` asked for, kept so that the
  compute manager of whichever host the server lands on (first choice or an alternate after a
  reschedule) can allocate and bind the ports there.
* :class:`BlockDeviceMapping` - one volume of one server at one device name (Nova's BDM). It is
  the compute side's record of an attachment; the volume side keeps its own
  (``volume_attachments``: connector, export). The ``status`` says how far the compute manager
  got, so a restart can finish or undo exactly the step that was interrupted. The
  ``connection_info`` is never stored: it can carry CHAP or cephx secrets.
"""

from __future__ import annotations

import datetime
import enum
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from stackcore.db.models import Base, utcnow


class BdmStatus(enum.StrEnum):
    #: Asked for at create_server; attached by the build on the chosen host.
    RESERVED = "reserved"
    #: The compute manager is exporting (volume service) and attaching (hypervisor) it.
    ATTACHING = "attaching"
    ATTACHED = "attached"
    #: The compute manager is detaching it (hypervisor, then volume service).
    DETACHING = "detaching"


class NetworkRequest(Base):
    __tablename__ = "instance_network_requests"

    instance_uuid: Mapped[str] = mapped_column(String(36), primary_key=True)
    #: ``[{"network_id"[, "fixed_ips"]} | {"port_id"}]`` as validated by the compute API.
    requests: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)


class BlockDeviceMapping(Base):
    """A volume of a server. Rows are deleted once the volume is detached (or the server is
    deleted), so the unique constraints forbid the same device name, or the same volume, twice
    on one server - concurrent requests cannot both get ``/dev/vdb``."""

    __tablename__ = "block_device_mappings"
    __table_args__ = (
        UniqueConstraint("instance_uuid", "device_name", name="uniq_bdm0instance0device"),
        UniqueConstraint("instance_uuid", "volume_id", name="uniq_bdm0instance0volume"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    instance_uuid: Mapped[str] = mapped_column(String(36), index=True)
    volume_id: Mapped[str] = mapped_column(String(36), index=True)
    device_name: Mapped[str] = mapped_column(String(255))
    #: Attached while the server is built (create_server(volumes=...)) rather than later.
    boot: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(32))
    #: The volume service's attachment, once it exported the volume to this host.
    attachment_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=utcnow)
