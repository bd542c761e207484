"""SQLAlchemy models of the compute family (Alembic branch ``compute``).

* hosts - :class:`ComputeNode` (latest validated stats and the claimed totals) and
  :class:`Allocation` (what one server holds on its host);
* flavors - :class:`Flavor` (images are the image family's: :mod:`stackcore.image.models`);
* servers - :class:`Instance` (soft-deleted) and :class:`InstanceFault`; keypairs -
  :class:`KeyPair` (SSH public keys of a user, copied into the servers booted with them);
* wiring to the network and volume families - :class:`NetworkRequest` (what
  ``create_server(networks=...)`` asked for, kept so that the compute manager of whichever host
  the server lands on, first choice or an alternate after a reschedule, can allocate and bind
  the ports there) and :class:`BlockDeviceMapping` (one volume of one server at one device
  name, Nova's BDM: the compute side's record of an attachment; the volume side keeps its own,
  ``volume_attachments``). A BDM's ``status`` says how far the compute manager got, so a restart
  can finish or undo exactly the step that was interrupted. The ``connection_info`` is never
  stored: it can carry CHAP or cephx secrets.

The placement tables (aggregates, server groups, scheduling attempts) are in
:mod:`stackcore.compute.placement.models`, on the same branch.
"""

# No `from __future__ import annotations`: SQLAlchemy would eval every string `Mapped[...]`
# annotation when mapping, a tenth of declaring the models at every start-up (issue 18).

import datetime
import enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from stackcore.db.models import Base, project_column, user_column, utcnow


class ComputeNode(Base):
    """One hypervisor host: its latest validated stats and its claimed (allocated) totals.

    ``alloc_*`` are the scheduler's claims, changed only by conditional UPDATEs so that
    concurrent placements can never push a host past its allocation ratios. The reported
    ``*_used`` figures are what the driver observed and are informative only.
    """

    __tablename__ = "compute_nodes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    host: Mapped[str] = mapped_column(String(255), unique=True)
    hypervisor_hostname: Mapped[str | None] = mapped_column(String(255), nullable=True)
    hypervisor_type: Mapped[str | None] = mapped_column(String(255), nullable=True)
    vcpus: Mapped[int] = mapped_column(Integer, default=0)
    memory_mb: Mapped[int] = mapped_column(Integer, default=0)
    local_gb: Mapped[int] = mapped_column(Integer, default=0)
    stats: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    reporting: Mapped[bool] = mapped_column(Boolean, default=False)
    report_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    reported_at: Mapped[datetime.datetime | None] = mapped_column(DateTime, nullable=True)
    alloc_vcpus: Mapped[int] = mapped_column(Integer, default=0)
    alloc_memory_mb: Mapped[int] = mapped_column(Integer, default=0)
    alloc_disk_gb: Mapped[int] = mapped_column(Integer, default=0)
    alloc_instances: Mapped[int] = mapped_column(Integer, default=0)


class Flavor(Base):
    __tablename__ = "flavors"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    vcpus: Mapped[int] = mapped_column(Integer)
    ram_mb: Mapped[int] = mapped_column(Integer)
    disk_gb: Mapped[int] = mapped_column(Integer)
    extra_specs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: a private flavor is usable by the projects of :class:`FlavorProject` only
    is_public: Mapped[bool] = mapped_column(Boolean, default=True, server_default=sa.true())
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=utcnow)


class FlavorProject(Base):
    """A project a private flavor is shared with."""

    __tablename__ = "flavor_projects"

    flavor_id: Mapped[str] = mapped_column(ForeignKey("flavors.id", ondelete="CASCADE"),
                                           primary_key=True)
    project_id: Mapped[str] = mapped_column(String(255), primary_key=True)


class Instance(Base):
    """A server. Soft-deleted (``vm_state='deleted'``) so repeated deletes stay idempotent."""

    __tablename__ = "instances"

    uuid: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    project_id: Mapped[str] = project_column()
    user_id: Mapped[str] = user_column()
    flavor_id: Mapped[str] = mapped_column(String(36))
    flavor: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: the flavor's vCPUs and RAM, as columns so that quotas count them in SQL
    vcpus: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    memory_mb: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    image_id: Mapped[str] = mapped_column(String(36))
    availability_zone: Mapped[str | None] = mapped_column(String(255), nullable=True)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    host: Mapped[str | None] = mapped_column(String(255), nullable=True, index=True)
    vm_state: Mapped[str] = mapped_column(String(32), index=True)
    task_state: Mapped[str | None] = mapped_column(String(32), nullable=True)
    power_state: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    launched_at: Mapped[datetime.datetime | None] = mapped_column(DateTime, nullable=True)
    deleted_at: Mapped[datetime.datetime | None] = mapped_column(DateTime, nullable=True)
    #: the keypair named at create_server (the name only: the key is ``key_data``)
    key_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    #: a copy of that keypair's public key: deleting the keypair later changes nothing for
    #: this server (as in Nova). Deferred, like ``user_data``: list queries never load the
    #: big columns, only the metadata service reads them.
    key_data: Mapped[str | None] = mapped_column(Text, nullable=True, deferred=True)
    #: the user data given at create_server, base64 as given (at most 65535 characters)
    user_data: Mapped[str | None] = mapped_column(Text, nullable=True, deferred=True)


class KeyPair(Base):
    """An SSH public key of a *user* (Nova's keypair: unique per user and name, the user's
    across projects), imported only: no private key ever passes through a service. The row
    also records the project it was created in, which its ``key_pairs`` quota counts."""

    __tablename__ = "key_pairs"
    __table_args__ = (UniqueConstraint("user_id", "name", name="uniq_key_pairs0user_id0name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255))
    user_id: Mapped[str] = mapped_column(String(255), index=True)
    project_id: Mapped[str] = project_column()
    fingerprint: Mapped[str] = mapped_column(String(64))
    public_key: Mapped[str] = mapped_column(Text)
    #: ``ssh`` (Nova's other type, ``x509``, is not supported)
    type: Mapped[str] = mapped_column(String(16), default="ssh")
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=utcnow)


class InstanceFault(Base):
    __tablename__ = "instance_faults"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    instance_uuid: Mapped[str] = mapped_column(ForeignKey("instances.uuid"), index=True)
    exc_class: Mapped[str] = mapped_column(String(255))
    message: Mapped[str] = mapped_column(Text)
    step: Mapped[str] = mapped_column(String(64))
    host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=utcnow)


class Allocation(Base):
    """The resources an instance holds on a host; one row per instance."""

    __tablename__ = "allocations"

    instance_uuid: Mapped[str] = mapped_column(String(36), primary_key=True)
    host: Mapped[str] = mapped_column(String(255), index=True)
    vcpus: Mapped[int] = mapped_column(Integer)
    memory_mb: Mapped[int] = mapped_column(Integer)
    disk_gb: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=utcnow)



class MigrationStatus(enum.StrEnum):
    #: the API took the server's task; the scheduler has not placed it yet
    PRE_MIGRATING = "pre-migrating"
    #: claims held on both hosts; the source host is sending the instance
    MIGRATING = "migrating"
    #: the destination host is making the instance with the new flavor
    POST_MIGRATING = "post-migrating"
    #: running on the destination: the server is RESIZED until confirm or revert
    FINISHED = "finished"
    #: the source host removes what it kept for a revert
    CONFIRMING = "confirming"
    CONFIRMED = "confirmed"
    #: the destination host removes the new instance (a revert, or a failed migration)
    REVERTING = "reverting"
    #: the source host brings the server back as it was
    FINISH_REVERTING = "finish-reverting"
    REVERTED = "reverted"
    #: failed and rolled back (``error`` says why; the fault is the server's)
    ERROR = "error"
    #: an evacuation: the new host rebuilt the server; the dead source host still has to
    #: destroy its old instance and give back the migration's claim when it comes back
    DONE = "done"
    #: an evacuation the source host cleaned up after (old instance destroyed, claim
    #: released); a live migration whose source cleaned up after it
    COMPLETED = "completed"
    #: a live migration: the guest runs on the destination; the source host removes what
    #: is left of it and gives back the migration's claim
    COMPLETING = "completing"


#: ``Migration.migration_type`` of an evacuation (stackcore.compute.evacuation)
EVACUATION = "evacuation"
#: ``Migration.migration_type`` of a live migration (stackcore.compute.live_migration)
LIVE_MIGRATION = "live-migration"


class Migration(Base):
    """One resize, cold migration, evacuation or live migration of a server, from its
    ``source_host`` to ``dest_host``.

    While it is in progress (``pre-migrating`` to ``finished``) the server's claim on the
    source host is held by the migration (``allocations.instance_uuid`` = this ``id``, as
    Nova's placement does with the migration as consumer) and the server holds a new claim
    on the destination: both hosts keep room for the server until confirm (the source's is
    released) or revert (the destination's is released and the source's given back to the
    server). ``source_attachments`` are the volume attachments of the source host, kept
    until then so that the volumes never look free in between."""

    __tablename__ = "migrations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    instance_uuid: Mapped[str] = mapped_column(ForeignKey("instances.uuid"), index=True)
    #: ``resize`` (a new flavor), ``migration`` (cold migrate: same flavor, another host),
    #: ``evacuation`` (rebuilt on another host, its own is down) or ``live-migration``
    migration_type: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), index=True)
    source_host: Mapped[str] = mapped_column(String(255))
    dest_host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    old_flavor_id: Mapped[str] = mapped_column(String(36))
    old_flavor: Mapped[dict[str, Any]] = mapped_column(JSON)
    new_flavor_id: Mapped[str] = mapped_column(String(36))
    new_flavor: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: the server's vm_state before (``active`` or ``stopped``; an evacuation also from
    #: ``error``): what it is again afterwards (an evacuated ERROR server ends ACTIVE)
    old_vm_state: Mapped[str] = mapped_column(String(32))
    #: what the source host's driver handed to the destination's (driver-defined, JSON); a
    #: live migration: ``block_migration`` asked for, the destination's ``migrate_data``
    #: and the ``figures`` the source's driver reported
    disk_info: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: ``{volume_id: attachment_id}`` of the source host, ended at confirm or revert
    source_attachments: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: an evacuation: the ``network_info`` of the server's ports as bound to the dead source
    #: host, recorded by the new host before it binds them to itself, so that the source's
    #: destroy of its old instance unplugs what it had (NULL: not recorded)
    source_network_info: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON,
                                                                             nullable=True)
    #: an evacuation: the ``block_device_info`` of the server on the dead source host
    #: (``mount_device``, ``volume_id``), recorded with :attr:`source_network_info`
    source_block_devices: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON,
                                                                              nullable=True)
    #: why the migration is being rolled back (a step's failure, an interruption)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=utcnow,
                                                          onupdate=utcnow)


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
    #: 0: this volume is the server's root disk (boot from volume, ``/dev/vda``); else None.
    boot_index: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: Deleted with the server (a root volume made from an image at boot, or asked for).
    delete_on_termination: Mapped[bool] = mapped_column(Boolean, default=False,
                                                        server_default=sa.false())
    status: Mapped[str] = mapped_column(String(32))
    #: The volume service's attachment, once it exported the volume to this host.
    attachment_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=utcnow)
