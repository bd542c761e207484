"""The compute API callers use: ``cloud.compute``.

Validates every argument before anything is written, records intent in the database, asks the
scheduler for a host (which claims it) and hands the work to that host's compute manager over
RPC. Returns plain frozen dataclasses, never database rows.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import logging
import os
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from oslo_config import cfg

from stackcore import exception, faults, schemas, service, validate, wait
from stackcore import schemas as s
from stackcore.compute import block_devices, evacuation, keypairs, live_migration, models
from stackcore.compute import schemas as cs
from stackcore.compute.driver import snapshot_format
from stackcore.compute.family import COMPUTE_BINARY
from stackcore.compute.migration import RESIZE_TASKS
from stackcore.compute.models import BdmStatus, BlockDeviceMapping, NetworkRequest
from stackcore.compute.placement import claims
from stackcore.compute.placement import models as sched_models
from stackcore.compute.placement import request as placement_request
from stackcore.compute.placement.api import PlacementAPI, add_member
from stackcore.compute.placement.rpcapi import SchedulerRPCAPI
from stackcore.compute.rpcapi import ComputeRPCAPI
from stackcore.compute.states import TaskState, VmState
from stackcore.db import api as db_api
from stackcore.db import models as db_models
from stackcore.db import paging
from stackcore.faults import Fault
from stackcore.image import format as image_format
from stackcore.image import models as image_models
from stackcore.project import policy

if TYPE_CHECKING:
    from stackcore.image.api import Image as StoredImage
    from stackcore.image.api import ImageAPI
    from stackcore.network.api import NetworkAPI
    from stackcore.volume.api import VolumeAPI

DISK_FORMATS, ARCHITECTURES, VM_MODES = cs.DISK_FORMATS, cs.ARCHITECTURES, cs.VM_MODES
#: the most console lines get_console_output(length=...) returns
MAX_CONSOLE_LINES = 10000
T = TypeVar("T")
LOG = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Flavor:
    id: str
    name: str
    vcpus: int
    ram_mb: int
    disk_gb: int
    extra_specs: Mapping[str, str]


@dataclasses.dataclass(frozen=True)
class Image:
    id: str
    name: str
    path: str
    disk_format: str
    size_bytes: int
    properties: Mapping[str, str]
    project_id: str = "admin"
    visibility: str = "public"


_GiB = 1024 ** 3
#: the image property naming the volume snapshot a volume-backed server's snapshot image
#: stands for (the image holds no bytes; booting it makes a volume from the snapshot)
SNAPSHOT_PROPERTY = "root_snapshot_id"


@dataclasses.dataclass(frozen=True)
class _RootVolume:
    """The root volume of a server booting from a volume, as create_server settled it."""

    volume_id: str | None  # None until made from the image
    delete_on_termination: bool
    size_gb: int = 0
    volume_type: str | None = None
    size_given: bool = False
    made_here: bool = False
    #: made from this volume snapshot (the image is a volume-backed server's snapshot)
    snapshot_id: str | None = None


@dataclasses.dataclass(frozen=True)
class Server:
    id: str
    name: str
    status: str  # the vm_state, upper case: BUILDING, ACTIVE, STOPPED, ERROR, DELETED...
    task_state: str | None
    power_state: int
    host: str | None
    flavor: Flavor
    image_id: str
    availability_zone: str | None
    metadata: Mapping[str, str]
    created_at: datetime.datetime
    launched_at: datetime.datetime | None
    fault: Fault | None
    project_id: str = "admin"
    user_id: str = "admin"
    #: the keypair the server was booted with (its key is a copy, see create_server)
    key_name: str | None = None


@dataclasses.dataclass(frozen=True)
class ServerVolume:
    """A volume of a server: where it is (``device``) and how far its attach got
    (``reserved`` until the build attaches it, ``attaching``, ``attached``, ``detaching``)."""

    server_id: str
    volume_id: str
    device: str
    status: str
    boot: bool
    attachment_id: str | None
    #: the server's root disk (it boots from this volume, ``/dev/vda``)
    root: bool = False
    #: deleted with the server
    delete_on_termination: bool = False


@dataclasses.dataclass(frozen=True)
class ServerMigration:
    """One resize, cold migration (see :mod:`stackcore.compute.migration`) or evacuation
    (:mod:`stackcore.compute.evacuation`) of a server."""

    id: str
    server_id: str
    migration_type: str  # resize | migration | evacuation
    status: str  # pre-migrating ... finished, confirmed, reverted, error; done, completed
    source_host: str
    dest_host: str | None
    old_flavor_id: str
    new_flavor_id: str
    error: str | None
    created_at: datetime.datetime


@dataclasses.dataclass(frozen=True)
class Host:
    host: str
    availability_zone: str
    up: bool
    disabled: bool
    reporting: bool
    report_error: str | None
    stats: Mapping[str, Any]
    allocated: Mapping[str, int]
    last_seen_at: datetime.datetime | None


def servers_using_image(session: Any, image_id: str) -> int:
    """How many servers (not deleted) were built from image ``image_id``: their disks may back
    onto its file, so it must stay (``cloud.image`` asks too, see the compute family)."""
    return int(session.execute(sa.select(sa.func.count()).where(
        models.Instance.image_id == image_id,
        models.Instance.vm_state != VmState.DELETED)).scalar_one())


def _flavor_record(flavor: Flavor) -> dict[str, Any]:
    """The copy of its flavor a server keeps (the flavor may be deleted later)."""
    return {"name": flavor.name, "vcpus": flavor.vcpus, "ram_mb": flavor.ram_mb,
            "disk_gb": flavor.disk_gb, "extra_specs": dict(flavor.extra_specs)}


def _flavor_view(row: models.Flavor) -> Flavor:
    return Flavor(row.id, row.name, row.vcpus, row.ram_mb, row.disk_gb, dict(row.extra_specs))


class ComputeAPI(keypairs.KeyPairsAPI, PlacementAPI):
    """Flavors, images, servers, their volumes and hosts (and, from PlacementAPI, aggregates
    and server groups; from KeyPairsAPI, keypairs). ``network`` and ``volume`` are the
    cloud's family APIs, used to check what a server asks for and to clean up after a server
    deleted without its host; ``image`` (``cloud.image``) takes the snapshots of
    :meth:`create_image`."""

    BOUND_APIS = ("network", "volume", "image")

    def __init__(self, conf: cfg.ConfigOpts, db: db_api.Database, transport: Any,
                 network: NetworkAPI | None = None, volume: VolumeAPI | None = None,
                 image: ImageAPI | None = None) -> None:
        self.conf = conf
        self.db = db
        self.network = network
        self.volume = volume
        self.image = image
        self.compute_rpc = ComputeRPCAPI(transport)
        self.scheduler_rpc = SchedulerRPCAPI(transport)

    # --- flavors ---------------------------------------------------------------------------

    @schemas.accepts(name=s.NAME, vcpus=s.integer(1, 4096), ram_mb=s.integer(1, 64 * 1024 * 1024),
                     disk_gb=s.integer(0, 1024 * 1024), extra_specs=s.optional(s.STRING_MAP),
                     is_public=s.BOOLEAN)
    @policy.authorize("compute:flavor:create")
    def create_flavor(
        self,
        name: str,
        vcpus: int,
        ram_mb: int,
        disk_gb: int,
        extra_specs: Mapping[str, str] | None = None,
        is_public: bool = True,
    ) -> Flavor:
        """A flavor; a private one (``is_public=False``) is usable only by the projects it is
        shared with (:meth:`add_flavor_access`) and admins."""
        row = models.Flavor(
            is_public=is_public,
            id=str(uuid.uuid4()),
            name=validate.name("name", name),
            vcpus=validate.integer("vcpus", vcpus, 1, 4096),
            ram_mb=validate.integer("ram_mb", ram_mb, 1, 64 * 1024 * 1024),
            disk_gb=validate.integer("disk_gb", disk_gb, 0, 1024 * 1024),
            extra_specs=validate.string_map("extra_specs", extra_specs),
        )
        try:
            with self.db.transaction() as session:
                session.add(row)
        except sa.exc.IntegrityError:
            raise exception.Conflict(f"a flavor named {name!r} already exists") from None
        return _flavor_view(row)

    @schemas.accepts(name_or_id=cs.FLAVOR_NAME_OR_ID)
    @policy.authorize("compute:flavor:get")
    def get_flavor(self, name_or_id: str) -> Flavor:
        with self.db.read() as session:
            row = session.execute(self._usable_flavors(
                sa.select(models.Flavor).where(
                    sa.or_(models.Flavor.id == name_or_id, models.Flavor.name == name_or_id)
                ))
            ).scalar_one_or_none()
        if row is None:
            raise exception.NotFound("flavor", name_or_id)
        return _flavor_view(row)

    @schemas.accepts(**paging.schema(cs.NAME_SORT_KEYS))
    @policy.authorize("compute:flavor:list")
    def list_flavors(self, *, limit: int | None = None, marker: str | None = None,
                     sort_key: str = "name", sort_dir: str = "asc") -> list[Flavor]:
        """Flavors, ``limit`` at a time after the flavor ``marker`` (see
        :mod:`stackcore.db.paging`)."""
        flavor = models.Flavor
        with self.db.read() as session:
            query = paging.page(session, self._usable_flavors(sa.select(flavor)), flavor.id,
                                {"name": flavor.name, "id": flavor.id}, limit=limit,
                                marker=marker, sort_key=sort_key, sort_dir=sort_dir,
                                resource="flavor")
            return [_flavor_view(r) for r in session.execute(query).scalars()]

    def _usable_flavors(self, query: Any) -> Any:
        """Public flavors, and private ones shared with the caller's project (admins: all)."""
        if self._sees_all():
            return query
        shared = sa.select(models.FlavorProject.flavor_id).where(
            models.FlavorProject.project_id == self.project_id)
        return query.where(sa.or_(models.Flavor.is_public.is_(True), models.Flavor.id.in_(shared)))

    @schemas.accepts(flavor=cs.FLAVOR_NAME_OR_ID, project_id=s.string(255))
    @policy.authorize("compute:flavor:access")
    def add_flavor_access(self, flavor: str, project_id: str) -> None:
        """Share a private flavor with a project (again: no change)."""
        found = self.get_flavor(flavor)
        with self.db.transaction() as session:
            if session.get(models.FlavorProject, (found.id, project_id)) is None:
                session.add(models.FlavorProject(flavor_id=found.id, project_id=project_id))

    @schemas.accepts(flavor=cs.FLAVOR_NAME_OR_ID, project_id=s.string(255))
    @policy.authorize("compute:flavor:access")
    def remove_flavor_access(self, flavor: str, project_id: str) -> None:
        """Stop sharing a private flavor with a project (servers keep their copy)."""
        found = self.get_flavor(flavor)
        with self.db.transaction() as session:
            session.execute(sa.delete(models.FlavorProject).where(
                models.FlavorProject.flavor_id == found.id,
                models.FlavorProject.project_id == project_id))

    @schemas.accepts(name_or_id=cs.FLAVOR_NAME_OR_ID)
    @policy.authorize("compute:flavor:delete")
    def delete_flavor(self, name_or_id: str) -> None:
        """Delete a flavor. Servers keep a copy of their flavor, so it may be in use."""
        flavor = self.get_flavor(name_or_id)
        with self.db.transaction() as session:
            session.execute(sa.delete(models.Flavor).where(models.Flavor.id == flavor.id))

    # --- images ----------------------------------------------------------------------------

    @schemas.accepts(name=s.NAME, path=s.string(4096), disk_format=s.enum(*cs.DISK_FORMATS),
                     properties=s.optional(cs.IMAGE_PROPERTIES),
                     visibility=s.enum("private", "public"))
    @policy.authorize("compute:image:register")
    def register_image(
        self,
        name: str,
        path: str,
        disk_format: str = "raw",
        properties: Mapping[str, str] | None = None,
        visibility: str = "private",
    ) -> Image:
        """Register a local image file. ``properties`` may set ``architecture``,
        ``hypervisor_type`` and ``vm_mode`` (checked), and any other string keys. The image
        belongs to the caller's project; ``public`` makes it usable by every project (an
        admin rule)."""
        if visibility == "public":
            self._authorize("compute:image:publicize")
        validate.name("name", name)
        validate.choice("disk_format", disk_format, DISK_FORMATS)
        props = validate.string_map("properties", properties)
        if "architecture" in props:
            validate.choice("properties['architecture']", props["architecture"], ARCHITECTURES)
        if "vm_mode" in props:
            validate.choice("properties['vm_mode']", props["vm_mode"], VM_MODES)
        # The content must be the declared format and open no other file (a qcow2 backing
        # file or data file, VMDK extents): stackcore.image.format says why.
        image_format.inspect(path, disk_format)
        row = image_models.Image(
            id=str(uuid.uuid4()),
            name=name,
            path=os.path.abspath(path),
            disk_format=disk_format,
            size_bytes=os.path.getsize(path),
            properties=props,
            project_id=self.project_id,
            visibility=visibility,
        )
        with self.db.transaction() as session:
            session.add(row)
        return self._image_view(row)

    @staticmethod
    def _image_view(row: image_models.Image) -> Image:
        return Image(row.id, row.name, row.path, row.disk_format, row.size_bytes,
                     dict(row.properties), row.project_id, row.visibility)

    def _usable_images(self, query: Any) -> Any:
        """Public images and the caller's project's (admins: all), active ones only (an
        upload not finished, or an image an admin deactivated, is not for servers)."""
        image = image_models.Image
        return self._scope(query.where(image.status == "active"), image.project_id,
                           visible=image.visibility == "public")

    @schemas.accepts(name_or_id=cs.IMAGE_NAME_OR_ID)
    @policy.authorize("compute:image:get")
    def get_image(self, name_or_id: str) -> Image:
        with self.db.read() as session:
            rows = session.execute(self._usable_images(
                sa.select(image_models.Image).where(sa.or_(
                    image_models.Image.id == name_or_id, image_models.Image.name == name_or_id)))
            ).scalars().all()
        if not rows:
            raise exception.NotFound("image", name_or_id)
        if len(rows) > 1:
            raise exception.Conflict(f"{len(rows)} images are named {name_or_id!r}; use the id")
        return self._image_view(rows[0])

    @schemas.accepts(**paging.schema(cs.NAME_SORT_KEYS))
    @policy.authorize("compute:image:list")
    def list_images(self, *, limit: int | None = None, marker: str | None = None,
                    sort_key: str = "name", sort_dir: str = "asc") -> list[Image]:
        """Images, ``limit`` at a time after the image ``marker``."""
        image = image_models.Image
        with self.db.read() as session:
            query = paging.page(session, self._usable_images(sa.select(image)), image.id,
                                {"name": image.name, "id": image.id}, limit=limit, marker=marker,
                                sort_key=sort_key, sort_dir=sort_dir, resource="image")
            return [self._image_view(r) for r in session.execute(query).scalars()]

    @schemas.accepts(name_or_id=cs.IMAGE_NAME_OR_ID)
    @policy.authorize("compute:image:delete")
    def delete_image(self, name_or_id: str) -> None:
        image = self.get_image(name_or_id)
        self._authorize("compute:image:delete", image.project_id)
        with self.db.transaction() as session:
            users = servers_using_image(session, image.id)
            if users:
                raise exception.Conflict(f"image {image.id} is used by {users} server(s)")
            store = session.execute(sa.select(image_models.Image.store).where(
                image_models.Image.id == image.id)).scalar_one_or_none()
            if store is not None:  # its data would stay in the store, named by nothing
                raise exception.Conflict(f"image {image.id} was uploaded to image store "
                                         f"{store!r}: delete it with cloud.image.delete")
            session.execute(sa.delete(image_models.Image).where(image_models.Image.id == image.id))

    # --- servers ---------------------------------------------------------------------------

    @schemas.accepts(name=s.NAME, flavor=cs.FLAVOR_NAME_OR_ID,
                     image=s.optional(cs.IMAGE_NAME_OR_ID),
                     availability_zone=s.optional(s.ZONE), metadata=s.optional(s.STRING_MAP),
                     wait=s.BOOLEAN, timeout=s.TIMEOUT, server_group=s.OPTIONAL_UUID,
                     networks=cs.NETWORKS, volumes=cs.VOLUMES,
                     security_groups=cs.SECURITY_GROUPS, key_name=s.optional(cs.KEYPAIR_NAME),
                     user_data=s.optional(cs.USER_DATA), boot_volume=cs.BOOT_VOLUME)
    @policy.authorize("compute:server:create")
    def create_server(
        self,
        name: str,
        flavor: str,
        image: str | None = None,
        availability_zone: str | None = None,
        metadata: Mapping[str, str] | None = None,
        wait: bool = True,
        timeout: float | None = None,
        server_group: str | None = None,
        networks: Sequence[Mapping[str, Any]] | None = None,
        volumes: Sequence[str | Mapping[str, str]] | None = None,
        security_groups: Sequence[str] | None = None,
        key_name: str | None = None,
        user_data: str | None = None,
        boot_volume: str | Mapping[str, Any] | None = None,
    ) -> Server:
        """Boot a server. Returns once it is ACTIVE or ERROR (``wait``), else while BUILDING.

        Scheduling failures (no host fits) leave the server in ERROR with a ``NoValidHost``
        fault explaining each rejection; nothing is claimed. ``server_group`` (an id from
        :meth:`create_server_group`) makes the server a member of that group, whose policy the
        scheduler enforces.

        ``networks``: ``[{"network_id"[, "fixed_ips"]} | {"port_id"}]`` - one port each,
        created (and deleted with the server) or taken over, bound on the chosen host before
        the hypervisor starts the server (see ``cloud.network.list_ports(device_id=...)``).
        A port that cannot be bound there fails the build with the mechanism drivers' reasons.
        ``volumes``: volume ids, or ``{"volume_id"[, "mountpoint"]}``; each is attached at
        boot (default devices ``/dev/vdb``, ``/dev/vdc``...) and detached when the server is
        deleted (the volume itself stays; see :meth:`list_server_volumes`).
        ``security_groups``: names or ids of the caller's security groups for the ports the
        server creates (default: the project's ``default`` group); resolved here, so a name
        that is unknown or ambiguous fails this call and nothing is made. Unlike Nova, which
        silently leaves a given port's groups alone, a ``port_id`` request with
        ``security_groups`` is refused: the port keeps the groups it has (change them with
        ``cloud.network.update_port``), and saying otherwise would be a lie.
        ``key_name``: a keypair of the caller (:meth:`create_keypair`); the server keeps a copy
        of its public key, so deleting the keypair later changes nothing for the server.
        ``user_data``: base64 (MIME line breaks allowed), at most 65535 characters, handed to
        the guest by the metadata service (:mod:`stackcore.compute.metadata`). Neither is
        shown by :meth:`get_server` (only ``key_name``).

        Boot from volume (``boot_volume``): the root disk ``/dev/vda`` is a volume, not a
        disk made on the host. The host's hypervisor driver must declare the capability
        ``boot_from_volume``; a host whose driver does not fails the build before anything is
        made there (``CapabilityNotSupported`` naming driver and capability) and hands it to
        an alternate host like any failed build.

        * ``boot_volume="<volume id>"`` or ``{"volume_id"[, "delete_on_termination"]}``
          without ``image``: an existing available volume (typically made from an image
          with ``cloud.volume.create(image_id=...)``); kept when the server is deleted unless
          ``delete_on_termination`` (default False).
        * ``image`` with ``boot_volume={["size_gb"][, "volume_type"][,
          "delete_on_termination"]}``: a new volume is made from the image here (in the
          caller's project and volume quota; ``size_gb`` defaults to the flavor's disk, at
          least the image's size) and the compute host waits for it to be available before
          the build; deleted with the server unless ``delete_on_termination`` is False
          (default True, as Nova). Making it fails -> the server in ERROR with a fault (step
          ``block_device_mapping``); the volume goes with the server's delete.

        A volume-backed server claims no local disk on its host (the flavor's ``disk_gb`` is
        not placed, as Nova), and :meth:`get_server` shows ``image_id`` ``""`` (the root
        volume is in :meth:`list_server_volumes`). Resize, cold migration and evacuation
        keep the root volume. :meth:`create_image` of a volume-backed server snapshots its
        root volume into an image of no bytes; booting that image makes a new root volume
        from the snapshot (``boot_volume`` may size it). Rebuild writes the new image over
        the root volume. Rescue of a volume-backed server is refused (``Invalid``).
        """
        validate.name("name", name)
        key_data = self._server_key(key_name) if key_name is not None else None
        stored_user_data = (keypairs.check_user_data("user_data", user_data)
                            if user_data is not None else None)
        meta = validate.string_map("metadata", metadata)
        if availability_zone is not None:
            validate.name("availability_zone", availability_zone)
        flavor_view = self.get_flavor(flavor)
        root = self._check_boot_volume(boot_volume, image, flavor_view)
        image_view = self.get_image(image) if image is not None else None
        if image_view is not None and SNAPSHOT_PROPERTY in image_view.properties:
            root = self._root_from_snapshot_image(root, image_view, flavor_view)
        if server_group is not None:
            self.get_server_group(server_group)  # the caller's (NotFound otherwise)
        network_requests = self._check_networks(networks)
        self._apply_security_groups(network_requests, security_groups)
        boot_volumes = self._check_boot_volumes(volumes)
        if root is not None and root.volume_id is not None:
            self._check_attachable("boot_volume", root.volume_id)
            if root.volume_id in {v for v, _ in boot_volumes}:
                raise exception.Invalid("volumes", "lists the boot volume again",
                                        root.volume_id)
        server_id = str(uuid.uuid4())
        flavor_record = _flavor_record(flavor_view)
        with self.db.transaction() as session:
            # checked before a volume is made from the image, so a refusal leaves none
            self.quotas.check(session, self.project_id, {
                "instances": 1, "cores": flavor_view.vcpus, "ram": flavor_view.ram_mb})
        if root is not None and root.volume_id is None:
            assert image_view is not None
            root = self._make_root_volume(server_id, root, image_view, flavor_view)
        try:
            self._record_server(server_id, name, flavor_view, flavor_record, image_view, root,
                                availability_zone, meta, server_group, network_requests,
                                boot_volumes, key_name, key_data, stored_user_data)
        except BaseException:
            if root is not None and root.made_here:
                self._delete_made_root_volume(root)
            raise
        # a volume-backed server places no local root disk (Nova's rule)
        request = placement_request.build(
            {**flavor_record, "disk_gb": 0} if root is not None else flavor_record,
            image_view.properties if image_view is not None else {},
            availability_zone=availability_zone, server_group=server_group)
        try:
            chosen = self.scheduler_rpc.select_destinations(server_id, request)
        except exception.StackcoreError as err:
            # A server deleted while being scheduled stays the delete's (no fault, no ERROR).
            self._record_fault(server_id, "schedule", err)
            return self.get_server(server_id, include_deleted=True)
        try:
            self.compute_rpc.build_and_run_instance(chosen["host"], server_id)
        except exception.StackcoreError as err:  # never reached the compute host
            self._record_fault(server_id, "build_and_run_instance", err)
            return self.get_server(server_id, include_deleted=True)
        if not wait:
            return self.get_server(server_id)
        return self.wait_for_server(server_id, timeout=timeout)

    def _record_server(self, server_id: str, name: str, flavor_view: Flavor,
                       flavor_record: dict[str, Any], image_view: Image | None,
                       root: _RootVolume | None, availability_zone: str | None,
                       meta: dict[str, str], server_group: str | None,
                       network_requests: list[dict[str, Any]],
                       boot_volumes: list[tuple[str, str]], key_name: str | None,
                       key_data: str | None, stored_user_data: str | None) -> None:
        """The server's rows (BUILDING, SCHEDULING), in one transaction with its quota."""
        with self.db.transaction() as session:
            self.quotas.check(session, self.project_id, {
                "instances": 1, "cores": flavor_view.vcpus, "ram": flavor_view.ram_mb})
            if server_group is not None:
                add_member(session, server_group, server_id)
            if network_requests:
                session.add(NetworkRequest(instance_uuid=server_id, requests=network_requests))
            if root is not None:
                assert root.volume_id is not None
                session.add(BlockDeviceMapping(
                    instance_uuid=server_id, volume_id=root.volume_id,
                    device_name=block_devices.ROOT_DEVICE, boot=True, boot_index=0,
                    delete_on_termination=root.delete_on_termination,
                    status=BdmStatus.RESERVED))
            for volume_id, device in boot_volumes:
                session.add(BlockDeviceMapping(instance_uuid=server_id, volume_id=volume_id,
                                               device_name=device, boot=True,
                                               status=BdmStatus.RESERVED))
            session.add(
                models.Instance(
                    uuid=server_id,
                    name=name,
                    project_id=self.project_id,
                    user_id=self.user_id,
                    flavor_id=flavor_view.id,
                    flavor=flavor_record,
                    vcpus=flavor_view.vcpus,
                    memory_mb=flavor_view.ram_mb,
                    # a volume-backed server's disk does not come from an image (Nova's "")
                    image_id=image_view.id if image_view is not None and root is None else "",
                    availability_zone=availability_zone,
                    metadata_=meta,
                    vm_state=VmState.BUILDING,
                    task_state=TaskState.SCHEDULING,
                    key_name=key_name,
                    key_data=key_data,
                    user_data=stored_user_data,
                )
            )

    def _check_networks(self, networks: Any) -> list[dict[str, Any]]:
        """Validate ``create_server(networks=...)``: shapes, and that each network exists and
        each port exists and is free. Binding itself happens on the chosen host."""
        if networks is None:
            return []
        if isinstance(networks, (str, Mapping)) or not isinstance(networks, Sequence):
            raise exception.Invalid("networks", "must be a list of {network_id} or {port_id}",
                                    networks)
        if networks and self.network is None:
            raise exception.ConfigError("networks were requested but this cloud has no "
                                        "network API")
        result: list[dict[str, Any]] = []
        ports: set[str] = set()
        for index, item in enumerate(networks):
            field = f"networks[{index}]"
            if not isinstance(item, Mapping) or len({"network_id", "port_id"} & set(item)) != 1 \
                    or set(item) - {"network_id", "port_id", "fixed_ips"}:
                raise exception.Invalid(field, "must give exactly one of network_id or port_id "
                                        "(and fixed_ips only with network_id)", item)
            assert self.network is not None
            if "port_id" in item:
                if "fixed_ips" in item:
                    raise exception.Invalid(f"{field}.fixed_ips", "is only allowed with "
                                            "network_id (a given port keeps its addresses)")
                port_id = validate.uuid_like(f"{field}.port_id", item["port_id"])
                if port_id in ports:
                    raise exception.Invalid(f"{field}.port_id", "is listed twice", port_id)
                ports.add(port_id)
                port = self.network.get_port(port_id)
                if port.device_id:
                    raise exception.Conflict(f"port {port_id} is in use by device "
                                             f"{port.device_id}")
                result.append({"port_id": port_id})
            else:
                network_id = validate.uuid_like(f"{field}.network_id", item["network_id"])
                self.network.get_network(network_id)
                entry: dict[str, Any] = {"network_id": network_id}
                if item.get("fixed_ips") is not None:
                    fixed = item["fixed_ips"]
                    if isinstance(fixed, (str, Mapping)) or not isinstance(fixed, Sequence):
                        raise exception.Invalid(f"{field}.fixed_ips", "must be a list of "
                                                "{subnet_id, ip_address}", fixed)
                    entry["fixed_ips"] = [dict(ip) if isinstance(ip, Mapping) else ip
                                          for ip in fixed]
                result.append(entry)
        return result

    def _apply_security_groups(self, requests: list[dict[str, Any]],
                               security_groups: Sequence[str] | None) -> None:
        """Resolve ``create_server(security_groups=...)`` and put the group ids on each port
        request that creates a port (the compute host creates it with them)."""
        if security_groups is None:
            return
        for index, request in enumerate(requests):
            if "port_id" in request:
                raise exception.Invalid(
                    f"networks[{index}].port_id", "cannot be combined with security_groups: "
                    "a given port keeps its own groups (set them with "
                    "cloud.network.update_port)", request["port_id"])
        if not requests:
            raise exception.Invalid("security_groups", "apply to the ports the server "
                                    "creates, and it creates none (give networks)",
                                    list(security_groups))
        assert self.network is not None  # _check_networks refused networks without it
        group_ids = self.network.resolve_security_groups(security_groups)
        for request in requests:
            request["security_groups"] = group_ids

    def _check_boot_volumes(self, volumes: Any) -> list[tuple[str, str]]:
        """Validate ``create_server(volumes=...)``: each volume exists and can be attached;
        device names valid, distinct, defaulted. Returns ``[(volume_id, device)]``."""
        if volumes is None:
            return []
        if isinstance(volumes, (str, Mapping)) or not isinstance(volumes, Sequence):
            raise exception.Invalid("volumes", "must be a list of volume ids or "
                                    "{volume_id, mountpoint}", volumes)
        if volumes and self.volume is None:
            raise exception.ConfigError("volumes were requested but this cloud has no "
                                        "volume API")
        wanted: list[tuple[str, str | None]] = []
        for index, item in enumerate(volumes):
            field = f"volumes[{index}]"
            if isinstance(item, Mapping):
                if "volume_id" not in item or set(item) - {"volume_id", "mountpoint"}:
                    raise exception.Invalid(field, "must be a volume id or {volume_id, "
                                            "mountpoint}", item)
                volume_id, device = item["volume_id"], item.get("mountpoint")
            else:
                volume_id, device = item, None
            volume_id = validate.uuid_like(f"{field}.volume_id" if isinstance(item, Mapping)
                                           else field, volume_id)
            if device is not None:
                device = block_devices.check_device_name(f"{field}.mountpoint", device)
            wanted.append((volume_id, device))
        ids = [v for v, _ in wanted]
        for index, volume_id in enumerate(ids):
            if ids.index(volume_id) != index:
                raise exception.Invalid(f"volumes[{index}]", "lists a volume twice", volume_id)
        given = [d for _, d in wanted if d is not None]
        for device in given:
            if given.count(device) > 1:
                raise exception.Invalid("volumes", f"gives {device} twice", device)
        result: list[tuple[str, str]] = []
        used = list(given)
        for index, (volume_id, device) in enumerate(wanted):
            self._check_attachable(f"volumes[{index}]", volume_id)
            if device is None:
                device = block_devices.next_device_name(used)
                used.append(device)
            result.append((volume_id, device))
        return result

    def _root_volume_id(self, server_id: str) -> str | None:
        with self.db.read() as session:
            root = session.execute(sa.select(BlockDeviceMapping.volume_id).where(
                BlockDeviceMapping.instance_uuid == server_id,
                BlockDeviceMapping.boot_index == 0)).scalar_one_or_none()
        return None if root is None else str(root)

    def _take_snapshot_task(self, server_id: str) -> bool:
        """Task ``image_snapshot`` taken atomically (an ACTIVE or STOPPED server with no
        task): False when another action has the server, which then wins."""
        with self.db.transaction() as session:
            taken = session.execute(
                sa.update(models.Instance)
                .where(models.Instance.uuid == server_id,
                       models.Instance.vm_state.in_(self._SNAPSHOT_FROM),
                       models.Instance.task_state.is_(None))
                .values(task_state=TaskState.IMAGE_SNAPSHOT)).rowcount  # type: ignore[attr-defined]
        return bool(taken == 1)

    def _snapshot_volume_backed(self, server_id: str, volume_id: str, name: str,
                                meta: dict[str, str]) -> StoredImage:
        """:meth:`create_image` of a volume-backed server, as Nova does it: a snapshot of the
        root volume (``force``: it is attached; crash-consistent, like a power cut - no
        guest agent quiesces the file systems) and an image of no bytes that names it
        (property ``root_snapshot_id``; ``bdm_v2``, ``root_device_name``). Booting that image
        boots from a new volume made from the snapshot. The image is ``active`` when this
        returns; the server's task is ``image_snapshot`` meanwhile. On failure neither the
        image nor the snapshot is kept and the server is as it was. Deleting the image
        later leaves the snapshot (the project's, in ``cloud.volume``), as Nova does."""
        assert self.image is not None and self.volume is not None
        server = self.get_server(server_id)
        with self.db.read() as session:
            row = session.get(models.Instance, server_id)
            base_id = row.image_id if row is not None else ""
        if not self._take_snapshot_task(server_id):
            raise exception.InvalidState(
                f"cannot snapshot server {server_id} while it is {server.status.lower()}"
                + (f" ({server.task_state})" if server.task_state else "")
                + " (only active or stopped servers)", state=server.status.lower())
        snapshot_id = image_id = None
        try:
            snapshot = self.volume.create_snapshot(volume_id, name=f"snapshot for {name}",
                                                   force=True, metadata={"image_name": name})
            snapshot_id = snapshot.id
            if snapshot.status != "available":
                faults = self.volume.faults(snapshot.id)
                raise exception.DriverError(
                    f"the snapshot of root volume {volume_id} ended {snapshot.status}"
                    + (f": {faults[0].message}" if faults else ""))
            image = self.image.create(name, disk_format="raw", properties={
                **meta, "image_type": "snapshot", "instance_uuid": server_id,
                "base_image_ref": base_id or "", SNAPSHOT_PROPERTY: snapshot.id,
                "root_volume_size_gb": str(snapshot.size), "bdm_v2": "true",
                "root_device_name": block_devices.ROOT_DEVICE})
            image_id = image.id
            image = self.image.upload(image.id, b"")  # no bytes: the snapshot holds them
        except BaseException:
            if image_id is not None:
                with contextlib.suppress(exception.StackcoreError):
                    self.image.delete(image_id)
            if snapshot_id is not None:
                with contextlib.suppress(exception.StackcoreError):
                    self.volume.delete_snapshot(snapshot_id)
            raise
        finally:
            self._update_task(server_id, TaskState.IMAGE_SNAPSHOT, None)
        return image

    def _check_boot_volume(self, boot_volume: Any, image: str | None,
                           flavor: Flavor) -> _RootVolume | None:
        """Validate ``create_server(boot_volume=..., image=...)``: which root volume, and
        whether it is made here. Nothing is made yet."""
        if boot_volume is None:
            if image is None:
                raise exception.Invalid("image", "is required unless the server boots from a "
                                        "volume (boot_volume)")
            return None
        if self.volume is None:
            raise exception.ConfigError("boot_volume was requested but this cloud has no "
                                        "volume API")
        if isinstance(boot_volume, str) or (isinstance(boot_volume, Mapping)
                                            and "volume_id" in boot_volume):
            if image is not None:
                raise exception.Invalid("image", "cannot be combined with an existing boot "
                                        "volume (boot_volume names one): the volume holds the "
                                        "root disk", image)
            volume_id = boot_volume if isinstance(boot_volume, str) \
                else boot_volume["volume_id"]
            delete = bool(isinstance(boot_volume, Mapping)
                          and boot_volume.get("delete_on_termination", False))
            return _RootVolume(validate.uuid_like("boot_volume", volume_id), delete)
        if not isinstance(boot_volume, Mapping):
            raise exception.Invalid("boot_volume", "must be a volume id, {volume_id[, "
                                    "delete_on_termination]} or {[size_gb][, volume_type][, "
                                    "delete_on_termination]}", boot_volume)
        if image is None:
            raise exception.Invalid("boot_volume", "makes a new volume from the image, and no "
                                    "image was given (name an existing volume with volume_id)",
                                    dict(boot_volume))
        size = boot_volume.get("size_gb")
        if size is not None:
            size = validate.integer("boot_volume.size_gb", size, 1, 64 * 1024)
        volume_type = boot_volume.get("volume_type")
        if volume_type is not None:
            volume_type = validate.name("boot_volume.volume_type", volume_type)
        return _RootVolume(None, bool(boot_volume.get("delete_on_termination", True)),
                           size_gb=size or max(flavor.disk_gb, 1), volume_type=volume_type,
                           size_given=size is not None)

    def _root_from_snapshot_image(self, root: _RootVolume | None, image: Image,
                                  flavor: Flavor) -> _RootVolume:
        """A volume-backed server's snapshot image (:meth:`create_image`) holds no bytes:
        booting it boots from a new volume made from its volume snapshot (Nova's rule), with
        ``boot_volume``'s size/type/delete_on_termination when given (deleted with the
        server by default)."""
        if self.volume is None:
            raise exception.ConfigError(f"image {image.id} is a volume-backed server's snapshot "
                                        "and this cloud has no volume API")
        snapshot_id = str(image.properties[SNAPSHOT_PROPERTY])
        try:
            snapshot = self.volume.get_snapshot(snapshot_id)
        except exception.NotFound as err:
            raise exception.InvalidState(
                f"image {image.id} is the snapshot of a volume-backed server; its volume "
                f"snapshot {snapshot_id} is gone, so it cannot be booted", state="missing"
            ) from err
        if snapshot.status != "available":
            raise exception.InvalidState(
                f"image {image.id}: its volume snapshot {snapshot_id} is {snapshot.status}",
                state=snapshot.status)
        if root is None:
            root = _RootVolume(None, True, size_gb=max(flavor.disk_gb, 1))
        if not root.size_given:
            root = dataclasses.replace(root, size_gb=max(root.size_gb, snapshot.size))
        return dataclasses.replace(root, snapshot_id=snapshot_id)

    def _make_root_volume(self, server_id: str, root: _RootVolume, image: Image,
                          flavor: Flavor) -> _RootVolume:
        """Ask the volume service for the root volume of a server booting ``image`` on a new
        volume; returns at once (``creating``): the compute host awaits it before the build.
        The default size grows to the image's virtual size when the flavor's disk is smaller
        (a size the caller gave is never changed: too small is refused)."""
        assert self.volume is not None
        size = root.size_gb
        if not root.size_given and root.snapshot_id is None:
            with self.db.read() as session:
                row = session.get(image_models.Image, image.id)
                virtual = (row.virtual_size or row.size_bytes) if row is not None else 0
            size = max(size, -(-virtual // _GiB))
        try:
            volume = self.volume.create(
                size, name=f"root of server {server_id}", volume_type=root.volume_type,
                image_id=None if root.snapshot_id else image.id, snapshot_id=root.snapshot_id,
                metadata={"server_id": server_id}, wait=False)
        except exception.Invalid as err:
            # named as the caller wrote it, not as the volume API calls it
            field = {"size": "boot_volume.size_gb", "image_id": "image", "snapshot_id": "image",
                     "volume_type": "boot_volume.volume_type"}.get(getattr(err, "field", ""))
            if field is None:
                raise
            raise exception.Invalid(field, getattr(err, "reason", str(err)),
                                    getattr(err, "value", None)) from err
        return dataclasses.replace(root, volume_id=volume.id, made_here=True)

    def _delete_made_root_volume(self, root: _RootVolume) -> None:
        """Undo :meth:`_make_root_volume` when the server's own rows could not be written."""
        assert self.volume is not None and root.volume_id is not None
        try:
            block_devices.delete_volume(self.volume, root.volume_id)
        except exception.StackcoreError as err:
            LOG.warning("the root volume %s made for a server that was refused could not be "
                        "deleted: %s", root.volume_id, err)

    def _check_attachable(self, field: str, volume_id: str) -> None:
        assert self.volume is not None
        volume = self.volume.get(volume_id)
        if volume.status != "available" and not (volume.multiattach
                                                  and volume.status == "in-use"):
            raise exception.InvalidState(
                f"{field}: volume {volume_id} is {volume.status}, not available",
                state=volume.status)
        with self.db.transaction() as session:
            holders = session.execute(
                sa.select(BlockDeviceMapping.instance_uuid)
                .join(models.Instance, models.Instance.uuid == BlockDeviceMapping.instance_uuid)
                .where(BlockDeviceMapping.volume_id == volume_id,
                       models.Instance.vm_state != VmState.DELETED)).scalars().all()
        if holders and not volume.multiattach:
            raise exception.Conflict(f"{field}: volume {volume_id} is already reserved for "
                                     f"server {holders[0]}")

    @schemas.accepts(flavor=cs.FLAVOR_NAME_OR_ID, image=cs.IMAGE_NAME_OR_ID,
                     availability_zone=s.optional(s.ZONE), server_group=s.OPTIONAL_UUID,
                     limit=s.optional(s.integer(1, 1000)))
    @policy.authorize("compute:explain_placement")
    def explain_placement(
        self,
        flavor: str,
        image: str,
        availability_zone: str | None = None,
        server_group: str | None = None,
        limit: int | None = 20,
    ) -> dict[str, Any]:
        """What the scheduler would do with such a server: each filter's rejections in words
        (``reasons``, ``filters``) and the weighed ranking of the best ``limit`` hosts with
        each weigher's share (``ranking``). Claims nothing."""
        flavor_view = self.get_flavor(flavor)
        image_view = self.get_image(image)
        if availability_zone is not None:
            validate.name("availability_zone", availability_zone)
        if server_group is not None:
            validate.uuid_like("server_group", server_group)
        request = placement_request.build(_flavor_record(flavor_view), image_view.properties,
                                          availability_zone=availability_zone,
                                          server_group=server_group)
        return self.scheduler_rpc.explain(request, limit)

    def _record_fault(self, server_id: str, step: str, err: BaseException) -> bool:
        """Record ``err`` on the server and move it to ERROR (a failed scheduling also gives
        back its claim) - unless a delete owns it now (task ``deleting`` or deleted; except
        for the delete's own failure, ``step == "delete"``). Returns whether it did."""
        with self.db.transaction() as session:
            row = session.get(models.Instance, server_id, with_for_update=True)
            if row is None or row.vm_state == VmState.DELETED or (
                    row.task_state == TaskState.DELETING and step != "delete"):
                return False
            session.add(faults.new(models.InstanceFault, err, step=step, instance_uuid=server_id,
                                   host=None))
            row.vm_state, row.task_state = VmState.ERROR, None
            if step in ("schedule", "build_and_run_instance"):
                claims.release(session, server_id)
            return True

    @schemas.accepts(server_id=s.UUID, statuses=s.array(s.enum(*cs.SERVER_STATUSES), 16),
                     timeout=s.TIMEOUT)
    @policy.authorize("compute:server:get")
    def wait_for_server(
        self, server_id: str, statuses: tuple[str, ...] = ("ACTIVE", "ERROR"),
        timeout: float | None = None,
    ) -> Server:
        """Wait until the server reaches one of ``statuses`` with no task in progress."""
        return wait.until(
            self.db, lambda: self.get_server(server_id),
            lambda s: s.status in statuses and s.task_state is None,
            timeout or self.conf.compute.build_timeout,
            lambda s: f"server {server_id} still {s.status} ({s.task_state})",
        )

    @schemas.accepts(server_id=s.UUID, include_deleted=s.BOOLEAN)
    @policy.authorize("compute:server:get")
    def get_server(self, server_id: str, include_deleted: bool = False) -> Server:
        validate.uuid_like("server_id", server_id)
        with self.db.read() as session:
            row = session.get(models.Instance, server_id)
            if row is None or (row.vm_state == VmState.DELETED and not include_deleted) or \
                    not self._visible(row.project_id):
                raise exception.NotFound("server", server_id)
            fault = session.execute(
                sa.select(models.InstanceFault)
                .where(models.InstanceFault.instance_uuid == server_id)
                .order_by(models.InstanceFault.id.desc())
                .limit(1)
            ).scalar_one_or_none()
            return self._server_view(row, fault)

    def _visible(self, project_id: str) -> bool:
        return self._sees_all() or project_id == self.project_id

    def _server_view(self, row: models.Instance, fault: models.InstanceFault | None) -> Server:
        flavor = Flavor(row.flavor_id, row.flavor["name"], row.flavor["vcpus"],
                        row.flavor["ram_mb"], row.flavor["disk_gb"],
                        dict(row.flavor.get("extra_specs", {})))
        return Server(
            id=row.uuid,
            name=row.name,
            status=row.vm_state.upper(),
            task_state=row.task_state,
            power_state=row.power_state,
            host=row.host if self._sees_all() else None,  # host names are admin's
            flavor=flavor,
            image_id=row.image_id,
            availability_zone=row.availability_zone,
            metadata=dict(row.metadata_),
            created_at=row.created_at,
            launched_at=row.launched_at,
            fault=None if fault is None else faults.view(fault),
            project_id=row.project_id,
            user_id=row.user_id,
            key_name=row.key_name,
        )

    @schemas.accepts(status=s.optional(s.enum(*cs.SERVER_STATUSES)), host=s.optional(s.HOST),
                     name=s.optional(s.NAME), availability_zone=s.optional(s.ZONE),
                     flavor=s.optional(cs.FLAVOR_NAME_OR_ID), image=s.optional(cs.IMAGE_NAME_OR_ID),
                     metadata=s.optional(s.STRING_MAP), include_deleted=s.BOOLEAN,
                     all_projects=s.BOOLEAN, **paging.schema(cs.SERVER_SORT_KEYS))
    @policy.authorize("compute:server:list")
    def list_servers(
        self,
        *,
        status: str | None = None,
        host: str | None = None,
        name: str | None = None,
        availability_zone: str | None = None,
        flavor: str | None = None,
        image: str | None = None,
        metadata: Mapping[str, str] | None = None,
        include_deleted: bool = False,
        all_projects: bool = False,
        limit: int | None = None,
        marker: str | None = None,
        sort_key: str = "created_at",
        sort_dir: str = "asc",
    ) -> list[Server]:
        """The caller's project's servers (every project's: ``all_projects``, an admin rule)
        matching every given filter, ``limit`` at a time after the server ``marker``. ``name``
        matches a substring; ``metadata`` matches servers having all of the given key/value
        pairs; ``host`` is an admin rule (host names are admin's)."""
        query = self._scope_list(sa.select(models.Instance), models.Instance.project_id,
                                all_projects, "compute:server:list")
        if host is not None:
            self._authorize("compute:server:show:host")
        if status is not None:
            query = query.where(models.Instance.vm_state == status.lower())
        elif not include_deleted:
            query = query.where(models.Instance.vm_state != VmState.DELETED)
        if host is not None:
            query = query.where(models.Instance.host == host)
        if availability_zone is not None:
            query = query.where(models.Instance.availability_zone == availability_zone)
        if flavor is not None:
            query = query.where(models.Instance.flavor_id == self.get_flavor(flavor).id)
        if image is not None:
            query = query.where(models.Instance.image_id == self.get_image(image).id)
        if name is not None:
            query = query.where(models.Instance.name.contains(name, autoescape=True))
        instance = models.Instance
        keys = {"created_at": instance.created_at, "name": instance.name, "id": instance.uuid}
        with self.db.read() as session:
            if not metadata:
                query = paging.page(session, query, instance.uuid, keys, limit=limit,
                                    marker=marker, sort_key=sort_key, sort_dir=sort_dir,
                                    resource="server")
                return [self._server_view(r, None) for r in session.execute(query).scalars()]
            # Metadata is a JSON column: filtered here, then paged over what matched.
            query = paging.page(session, query, instance.uuid, keys, limit=None, marker=marker,
                                sort_key=sort_key, sort_dir=sort_dir, resource="server")
            found = [self._server_view(r, None) for r in session.execute(query).scalars()
                     if all(r.metadata_.get(k) == v for k, v in metadata.items())]
            return found if limit is None else found[:limit]

    def _service_up(self, host: str) -> bool:
        with self.db.read() as session:
            svc = session.execute(
                sa.select(db_models.Service).where(
                    db_models.Service.host == host, db_models.Service.binary == COMPUTE_BINARY
                )
            ).scalar_one_or_none()
        return svc is not None and service.is_up(svc.last_seen_at, self.conf.service_down_time)

    @schemas.accepts(server_id=s.UUID)
    @policy.authorize("compute:server:delete")
    def delete_server(self, server_id: str) -> None:
        """Delete from any state. Deleting a deleted server succeeds (idempotent); an unknown
        id raises NotFound. If the server never reached a host, or its compute service is down,
        the delete is done locally (claim released, row marked deleted); a host that comes back
        destroys the leftover during its start-up reconciliation.

        A server still being scheduled is marked ``deleting`` first, under the row lock the
        scheduler takes to claim a host: the scheduler then claims nothing for it (or, if it
        claimed first, the server has a host and the delete goes through that host). If the
        local clean-up fails, the server is left in ERROR with a fault and the delete can be
        retried.

        A RESIZED server is confirmed first (its old host removes its copy), as Nova does; a
        server in the middle of a resize, migration (cold or live) or evacuation is refused
        (InvalidState) until that ends: its steps run on two hosts, and the migration's
        repair, not a delete, finishes an interrupted one."""
        validate.uuid_like("server_id", server_id)
        if self.get_server(server_id, include_deleted=True).status == "RESIZED":
            self.confirm_resize(server_id)
        with self.db.transaction() as session:
            row = session.get(models.Instance, server_id, with_for_update=True)
            if row is None or not self._visible(row.project_id):
                raise exception.NotFound("server", server_id)
            if row.vm_state == VmState.DELETED:
                return
            if row.task_state in RESIZE_TASKS or row.vm_state == VmState.RESIZED \
                    or row.task_state in evacuation.TASKS \
                    or row.task_state in live_migration.TASKS:
                doing = row.task_state or row.vm_state
                raise exception.InvalidState(
                    f"server {server_id} is being resized, migrated or evacuated ({doing}): "
                    "delete it once that is done", state=row.vm_state)
            host = row.host
            if host is None:
                row.task_state = TaskState.DELETING
        if host is not None and self._service_up(host):
            self.compute_rpc.terminate_instance(host, server_id)
            return
        try:
            self._local_cleanup(server_id)
        except Exception as err:
            self._record_fault(server_id, "delete", err)
            raise
        with self.db.transaction() as session:
            claims.release(session, server_id)
            session.execute(
                sa.update(models.Instance)
                .where(models.Instance.uuid == server_id)
                .values(vm_state=VmState.DELETED, task_state=None, deleted_at=db_models.utcnow())
            )

    def _internal(self, api: T | None) -> T | None:
        """``api`` acting with the caller's project and the admin role: for calls the compute
        family makes on its own behalf (ending attachments, freeing ports), which the other
        families keep to admins."""
        if api is None or self._sees_all():
            return api
        bound: T = api.bind(self.context.elevated())  # type: ignore[attr-defined]
        return bound

    def _local_cleanup(self, server_id: str) -> None:
        """What the compute manager would do after destroy, for a server whose host is down or
        that never got one: end its volumes' exports, release its ports. A failure raises and
        leaves the server as it is, so the delete can be retried."""
        with self.db.transaction() as session:
            bdms = block_devices.rows(session, server_id)
        # The framework's own bookkeeping for the caller: the other families' internal calls.
        volume, network = self._internal(self.volume), self._internal(self.network)
        for bdm in bdms:
            if bdm.attachment_id is not None and volume is not None:
                try:
                    volume.detach_from_server(bdm.volume_id, bdm.attachment_id, server_id)
                except exception.NotFound:
                    pass  # the attachment already ended, or the volume is gone
            if bdm.delete_on_termination and volume is not None:
                block_devices.delete_volume(volume, bdm.volume_id)
            with self.db.transaction() as session:
                session.execute(sa.delete(BlockDeviceMapping)
                                .where(BlockDeviceMapping.id == bdm.id))
        if network is not None:
            network.deallocate_ports_for_instance(server_id)
        with self.db.transaction() as session:
            session.execute(sa.delete(NetworkRequest)
                            .where(NetworkRequest.instance_uuid == server_id))

    # --- volumes of servers ----------------------------------------------------------------

    @schemas.accepts(server_id=s.UUID, volume_id=s.UUID, mountpoint=s.optional(s.DEVICE_NAME))
    @policy.authorize("compute:server:attach_volume")
    def attach_volume(self, server_id: str, volume_id: str,
                      mountpoint: str | None = None) -> ServerVolume:
        """Attach a volume to a server (ACTIVE, STOPPED, PAUSED or SUSPENDED, no task running)
        at ``mountpoint`` or the next free ``/dev/vdX``. On failure the volume is detached
        again (export removed), a fault is added to the server (which keeps its state) and
        the error is raised."""
        validate.uuid_like("server_id", server_id)
        volume_id = validate.uuid_like("volume_id", volume_id)
        if mountpoint is not None:
            mountpoint = block_devices.check_device_name("mountpoint", mountpoint)
        if self.volume is None:
            raise exception.ConfigError("this cloud has no volume API")
        self._check_attachable("volume_id", volume_id)
        host = self._host_of(server_id)
        self.compute_rpc.attach_volume(host, server_id, volume_id, mountpoint)
        return self._server_volume(server_id, volume_id)

    @schemas.accepts(server_id=s.UUID, volume_id=s.UUID)
    @policy.authorize("compute:server:detach_volume")
    def detach_volume(self, server_id: str, volume_id: str) -> None:
        """Detach a volume from a server (hypervisor first, then the export); the volume is
        ``available`` again afterwards. NotFound if it is not attached to the server."""
        validate.uuid_like("server_id", server_id)
        volume_id = validate.uuid_like("volume_id", volume_id)
        host = self._host_of(server_id)
        with self.db.read() as session:
            bdm = session.execute(sa.select(BlockDeviceMapping).where(
                BlockDeviceMapping.instance_uuid == server_id,
                BlockDeviceMapping.volume_id == volume_id)).scalar_one_or_none()
            if bdm is not None:
                block_devices.refuse_root_detach(bdm)
        self.compute_rpc.detach_volume(host, server_id, volume_id)

    @schemas.accepts(server_id=s.UUID)
    @policy.authorize("compute:server:list_volumes")
    def list_server_volumes(self, server_id: str) -> list[ServerVolume]:
        """The volumes of a server, in the order they were asked for."""
        self.get_server(server_id)
        with self.db.read() as session:
            return [self._volume_view(b) for b in block_devices.rows(session, server_id)]

    def _server_volume(self, server_id: str, volume_id: str) -> ServerVolume:
        for item in self.list_server_volumes(server_id):
            if item.volume_id == volume_id:
                return item
        raise exception.NotFound("volume attachment", volume_id,
                                 f"volume {volume_id} is not attached to server {server_id}")

    @staticmethod
    def _volume_view(row: BlockDeviceMapping) -> ServerVolume:
        return ServerVolume(row.instance_uuid, row.volume_id, row.device_name, row.status,
                            row.boot, row.attachment_id, row.boot_index == 0,
                            bool(row.delete_on_termination))

    def _host_of(self, server_id: str, capability: str | None = None) -> str:
        """The host of a server the caller may see (the row's: a non-admin's view hides
        it). With ``capability``: CapabilityNotSupported, naming the host's driver, unless
        that driver can do it there - before anything is changed."""
        server = self.get_server(server_id)
        with self.db.read() as session:
            host = session.execute(sa.select(models.Instance.host).where(
                models.Instance.uuid == server_id)).scalar_one_or_none()
        if host is None:
            raise exception.InvalidState(
                f"server {server_id} has no host (it is {server.status})", state=server.status
            )
        if capability is not None:
            self._check_capable(host, capability)
        return str(host)

    def _check_capable(self, host: str, capability: str) -> None:
        """Refuse ``capability`` when the host's last stats report says its driver cannot do
        it (the compute manager publishes ``driver`` and ``capabilities``: declared minus
        what its backend lacks). A host that never reported them is left to its manager,
        which checks the same before it changes anything."""
        with self.db.read() as session:
            node_stats = session.execute(sa.select(models.ComputeNode.stats).where(
                models.ComputeNode.host == host)).scalar_one_or_none()
        reported = dict(node_stats or {})
        capabilities = reported.get("capabilities")
        if capabilities is not None and capability not in capabilities:
            raise exception.CapabilityNotSupported(str(reported.get("driver", "?")), capability)

    @schemas.accepts(server_id=s.UUID, reboot_type=s.enum("SOFT", "HARD"))
    @policy.authorize("compute:server:reboot")
    def reboot_server(self, server_id: str, reboot_type: str = "SOFT") -> Server:
        validate.choice("reboot_type", reboot_type, ("SOFT", "HARD"))
        self.compute_rpc.reboot_instance(self._host_of(server_id), server_id, reboot_type)
        return self.get_server(server_id)

    @schemas.accepts(server_id=s.UUID)
    @policy.authorize("compute:server:stop")
    def stop_server(self, server_id: str) -> Server:
        self.compute_rpc.stop_instance(self._host_of(server_id), server_id)
        return self.get_server(server_id)

    @schemas.accepts(server_id=s.UUID)
    @policy.authorize("compute:server:start")
    def start_server(self, server_id: str) -> Server:
        self.compute_rpc.start_instance(self._host_of(server_id), server_id)
        return self.get_server(server_id)

    # --- pause, suspend, console, snapshot ---------------------------------------------------
    # Each needs an optional driver capability: a host whose driver lacks it refuses with
    # CapabilityNotSupported (naming driver and capability) before anything changes. A wrong
    # state is InvalidState naming it; a driver failure is a fault and ERROR (the power
    # actions), raised to the caller.

    @schemas.accepts(server_id=s.UUID)
    @policy.authorize("compute:server:pause")
    def pause_server(self, server_id: str) -> Server:
        """ACTIVE -> PAUSED (task ``pausing``): frozen in memory. Capability ``pause``."""
        self.compute_rpc.pause_instance(self._host_of(server_id, "pause"), server_id)
        return self.get_server(server_id)

    @schemas.accepts(server_id=s.UUID)
    @policy.authorize("compute:server:unpause")
    def unpause_server(self, server_id: str) -> Server:
        """PAUSED -> ACTIVE (task ``unpausing``). Capability ``pause``."""
        self.compute_rpc.unpause_instance(self._host_of(server_id, "pause"), server_id)
        return self.get_server(server_id)

    @schemas.accepts(server_id=s.UUID)
    @policy.authorize("compute:server:suspend")
    def suspend_server(self, server_id: str) -> Server:
        """ACTIVE -> SUSPENDED (task ``suspending``): its state saved to disk, no CPU or
        memory held on the hypervisor. Capability ``suspend``."""
        self.compute_rpc.suspend_instance(self._host_of(server_id, "suspend"), server_id)
        return self.get_server(server_id)

    @schemas.accepts(server_id=s.UUID)
    @policy.authorize("compute:server:resume")
    def resume_server(self, server_id: str) -> Server:
        """SUSPENDED -> ACTIVE (task ``resuming``). Capability ``suspend``."""
        self.compute_rpc.resume_instance(self._host_of(server_id, "suspend"), server_id)
        return self.get_server(server_id)

    @schemas.accepts(server_id=s.UUID, length=s.optional(s.integer(1, MAX_CONSOLE_LINES)))
    @policy.authorize("compute:server:console_output")
    def get_console_output(self, server_id: str, length: int | None = None) -> str:
        """The server's console log (ACTIVE, STOPPED, PAUSED or SUSPENDED): its last
        ``length`` lines (1 to 10000), all of what the driver keeps when None. Capability
        ``console_output``."""
        if length is not None:
            length = validate.integer("length", length, 1, MAX_CONSOLE_LINES)
        text = self.compute_rpc.get_console_output(self._host_of(server_id, "console_output"),
                                                   server_id)
        if length is None:
            return text
        return "".join(text.splitlines(keepends=True)[-length:])

    _SNAPSHOT_FROM = (VmState.ACTIVE, VmState.STOPPED)

    @schemas.accepts(server_id=s.UUID, name=s.NAME, metadata=s.optional(s.STRING_MAP))
    @policy.authorize("compute:server:create_image")
    def create_image(self, server_id: str, name: str,
                     metadata: Mapping[str, str] | None = None) -> StoredImage:
        """Snapshot an ACTIVE or STOPPED server's root disk into a new image of the caller's
        project (``cloud.image``), returned ``queued``; wait for it to become ``active``
        (``cloud.image.get``). The server has task ``image_snapshot`` meanwhile.

        The image is in the format of the server's image when that is raw or qcow2 (qcow2
        otherwise) and carries ``metadata`` plus ``image_type=snapshot``, ``instance_uuid``
        and ``base_image_ref``. Live where the host's driver declares ``live_snapshot``;
        otherwise a running server is suspended (or stopped) for the copy and restored
        before the upload. On failure the image is deleted and the server keeps (or gets
        back) its state with a fault saying why - as Nova does. Capability ``snapshot``.

        A volume-backed server is snapshotted by its root volume instead (no hypervisor
        capability needed; see :meth:`_snapshot_volume_backed`): the image is returned
        ``active``, of no bytes, naming the volume snapshot."""
        validate.uuid_like("server_id", server_id)
        validate.name("name", name)
        meta = validate.string_map("metadata", metadata)
        if self.image is None:
            raise exception.ConfigError("this cloud has no image API (cloud.image): snapshots "
                                        "are uploaded there")
        root_volume = self._root_volume_id(server_id)
        if root_volume is not None:
            return self._snapshot_volume_backed(server_id, root_volume, name, meta)
        host = self._host_of(server_id, "snapshot")
        with self.db.read() as session:
            row = session.get(models.Instance, server_id)
            assert row is not None  # _host_of found it
            state, task, base_id = row.vm_state, row.task_state, row.image_id
            base = session.get(image_models.Image, base_id)
        if state not in self._SNAPSHOT_FROM or task is not None:
            raise exception.InvalidState(
                f"cannot snapshot server {server_id} while it is {state}"
                + (f" ({task})" if task else "") + " (only active or stopped servers)",
                state=state)
        image = self.image.create(
            name, disk_format=snapshot_format(base.disk_format if base else "qcow2"),
            properties={**meta, "image_type": "snapshot", "instance_uuid": server_id,
                        "base_image_ref": base_id})
        # The task is taken atomically: a concurrent action wins, this one undoes its image.
        if not self._take_snapshot_task(server_id):
            self.image.delete(image.id)
            raise exception.InvalidState(f"server {server_id} changed state while its "
                                         "snapshot was being set up; nothing was kept")
        try:
            self.compute_rpc.snapshot_instance(host, server_id, image.id)
        except Exception:
            self._update_task(server_id, TaskState.IMAGE_SNAPSHOT, None)
            self.image.delete(image.id)
            raise
        return image

    @schemas.accepts(server_id=s.UUID, image=s.optional(cs.IMAGE_NAME_OR_ID))
    @policy.authorize("compute:server:rescue")
    def rescue_server(self, server_id: str, image: str | None = None) -> Server:
        """ACTIVE or STOPPED -> RESCUED (task ``rescuing``): booted from ``image`` (default:
        the server's own image), its own root disk attached as the second disk for repair.
        A volume-backed server keeps its root volume attached (the rescue disk boots
        first); its default rescue image is the one its root volume was made from (Invalid
        naming ``image`` when there is none). Capability ``rescue``."""
        validate.uuid_like("server_id", server_id)
        server = self.get_server(server_id)
        image_id = self.get_image(image).id if image is not None else server.image_id
        if not image_id:
            image_id = self._root_volume_image(server_id)
        self.compute_rpc.rescue_instance(self._host_of(server_id, "rescue"), server_id,
                                         image_id)
        return self.get_server(server_id)

    def _root_volume_image(self, server_id: str) -> str:
        """The image a volume-backed server's root volume was made from (its default rescue
        image); Invalid naming ``image`` when it was made from none."""
        with self.db.read() as session:
            root = session.execute(sa.select(BlockDeviceMapping.volume_id).where(
                BlockDeviceMapping.instance_uuid == server_id,
                BlockDeviceMapping.boot_index == 0)).scalar_one_or_none()
        made_from = None
        if root is not None and self.volume is not None:
            made_from = self.volume.get(root).image_id
        if not made_from:
            raise exception.Invalid(
                "image", f"server {server_id} has no image to rescue it with (its root "
                f"volume {root} was made from none): name a rescue image", None)
        return str(made_from)

    @schemas.accepts(server_id=s.UUID)
    @policy.authorize("compute:server:unrescue")
    def unrescue_server(self, server_id: str) -> Server:
        """RESCUED -> ACTIVE (task ``unrescuing``): booted from its own root disk again.
        Capability ``rescue``."""
        self.compute_rpc.unrescue_instance(self._host_of(server_id, "rescue"), server_id)
        return self.get_server(server_id)

    _REBUILD_FROM = (VmState.ACTIVE, VmState.STOPPED, VmState.ERROR)

    @schemas.accepts(server_id=s.UUID, image=cs.IMAGE_NAME_OR_ID, wait=s.BOOLEAN,
                     timeout=s.TIMEOUT)
    @policy.authorize("compute:server:rebuild")
    def rebuild_server(self, server_id: str, image: str, wait: bool = True,
                       timeout: float | None = None) -> Server:
        """Rebuild an ACTIVE, STOPPED or ERROR server from ``image`` (task ``rebuilding``):
        its root disk is made afresh from the new image; its ports (addresses kept) and
        volumes stay. A STOPPED server is STOPPED again afterwards. Returns once done
        (``wait``; ACTIVE, STOPPED or ERROR), else while rebuilding. A failure leaves it ERROR
        with a fault naming the step; rebuilding again is the way out.

        A volume-backed server is rebuilt as Nova does since Zed: its root volume, detached,
        gets the image written over its data (``cloud.volume.reimage``, step ``reimage``),
        then the server boots from it again; the image must fit in the volume."""
        validate.uuid_like("server_id", server_id)
        image_view = self.get_image(image)
        host = self._host_of(server_id)
        with self.db.transaction() as session:
            previous_image = session.execute(sa.select(models.Instance.image_id).where(
                models.Instance.uuid == server_id)).scalar_one()
            taken = session.execute(
                sa.update(models.Instance)
                .where(models.Instance.uuid == server_id,
                       models.Instance.vm_state.in_(self._REBUILD_FROM),
                       models.Instance.task_state.is_(None))
                .values(task_state=TaskState.REBUILDING, image_id=image_view.id)
            ).rowcount  # type: ignore[attr-defined]
        if taken != 1:
            current = self.get_server(server_id)
            raise exception.InvalidState(
                f"cannot rebuild server {server_id} while it is {current.status.lower()}"
                + (f" ({current.task_state})" if current.task_state else ""),
                state=current.status.lower())
        try:
            self.compute_rpc.rebuild_instance(host, server_id)
        except exception.StackcoreError as err:  # never reached the compute host
            self._fault_keep_state(server_id, "rebuild_instance", err, image_id=previous_image)
            raise
        if not wait:
            return self.get_server(server_id)
        return self.wait_for_server(server_id, ("ACTIVE", "STOPPED", "ERROR"), timeout)

    # --- resize and cold migration (stackcore.compute.migration) -----------------------------

    _MIGRATE_FROM = (VmState.ACTIVE, VmState.STOPPED)

    @schemas.accepts(server_id=s.UUID, flavor=cs.FLAVOR_NAME_OR_ID, wait=s.BOOLEAN,
                     timeout=s.TIMEOUT)
    @policy.authorize("compute:server:resize")
    def resize_server(self, server_id: str, flavor: str, wait: bool = True,
                      timeout: float | None = None) -> Server:
        """Resize an ACTIVE or STOPPED server to ``flavor``: the scheduler picks a host for
        the new flavor (not the server's own unless ``[compute] allow_resize_to_same_host``),
        the server is powered off, moved with its disks, ports and volumes, and started there
        with the new flavor if it was running. Ends RESIZED (Nova's VERIFY_RESIZE): confirm
        with :meth:`confirm_resize`, undo with :meth:`revert_resize`; both hosts keep room for
        the server until then. The root disk never shrinks (a flavor with a smaller disk is
        refused), and the quota counts the larger of both flavors meanwhile.

        Returns once RESIZED (or back in its old state with a fault, when a step failed and
        was rolled back) with ``wait``. NoValidHost (state kept, fault recorded) when no host
        fits; CapabilityNotSupported when the host's driver cannot resize."""
        validate.uuid_like("server_id", server_id)
        new = self.get_flavor(flavor)
        return self._migrate(server_id, new, "resize", wait, timeout)

    @schemas.accepts(server_id=s.UUID, wait=s.BOOLEAN, timeout=s.TIMEOUT)
    @policy.authorize("compute:server:migrate")
    def migrate_server(self, server_id: str, wait: bool = True,
                       timeout: float | None = None) -> Server:
        """Cold-migrate an ACTIVE or STOPPED server to another host (same flavor): a resize
        that must change hosts, confirmed or reverted the same way. Admin only, as in
        Nova."""
        validate.uuid_like("server_id", server_id)
        return self._migrate(server_id, self.get_server(server_id).flavor, "migration", wait,
                             timeout)

    def _migrate(self, server_id: str, new: Flavor, kind: str, wait: bool,
                 timeout: float | None) -> Server:
        source = self._host_of(server_id, "resize")
        new_record = _flavor_record(new)
        migration_id = str(uuid.uuid4())
        with self.db.transaction() as session:
            row = session.get(models.Instance, server_id, with_for_update=True)
            assert row is not None  # _host_of found it
            if row.vm_state not in self._MIGRATE_FROM or row.task_state is not None:
                raise exception.InvalidState(
                    f"cannot {'resize' if kind == 'resize' else 'migrate'} server {server_id} "
                    f"while it is {row.vm_state}"
                    + (f" ({row.task_state})" if row.task_state else "")
                    + " (only active or stopped servers)", state=row.vm_state)
            old = dict(row.flavor)
            # a volume-backed server's root is its volume: the flavor's disk is not used
            volume_backed = block_devices.root_volume(
                block_devices.rows(session, server_id)) is not None
            if kind == "resize":
                if new.id == row.flavor_id:
                    raise exception.Invalid("flavor", f"server {server_id} already has flavor "
                                            f"{new.name!r}; a resize needs another one",
                                            new.name)
                if new.disk_gb < int(old["disk_gb"]) and not volume_backed:
                    raise exception.Invalid(
                        "flavor", f"flavor {new.name!r} has a {new.disk_gb} GiB disk, server "
                        f"{server_id} has {old['disk_gb']} GiB: disks never shrink", new.name)
            grow = {"cores": max(0, new.vcpus - int(old["vcpus"])),
                    "ram": max(0, new.ram_mb - int(old["ram_mb"]))}
            if any(grow.values()):
                self.quotas.check(session, row.project_id, grow)
            row.task_state = TaskState.RESIZE_PREP
            row.vcpus = max(new.vcpus, int(old["vcpus"]))
            row.memory_mb = max(new.ram_mb, int(old["ram_mb"]))
            session.add(models.Migration(
                id=migration_id, instance_uuid=server_id, migration_type=kind,
                status=models.MigrationStatus.PRE_MIGRATING, source_host=source,
                old_flavor_id=row.flavor_id, old_flavor=old, new_flavor_id=new.id,
                new_flavor=new_record, old_vm_state=row.vm_state, disk_info={},
                source_attachments={}))
            image = session.get(image_models.Image, row.image_id)
            group = session.execute(
                sa.select(sched_models.ServerGroupMember.group_id)
                .where(sched_models.ServerGroupMember.instance_uuid == server_id)
            ).scalar_one_or_none()
            zone = row.availability_zone
        same_host = kind == "resize" and self.conf.compute.allow_resize_to_same_host
        request = placement_request.build(
            {**new_record, "disk_gb": 0} if volume_backed else new_record,
            dict(image.properties) if image else {}, availability_zone=zone,
            server_group=group, exclude_hosts=() if same_host else (source,))
        try:
            chosen = self.scheduler_rpc.select_migration_destination(server_id, migration_id,
                                                                     request)
            self.compute_rpc.resize_instance(source, server_id, migration_id)
        except exception.StackcoreError as err:
            self._abort_migration(server_id, migration_id, err, "resize")
            raise
        if not wait:
            return self.get_server(server_id)
        LOG.info("server %s: %s from %s to %s", server_id, kind, source, chosen["host"])
        return self.wait_for_server(server_id, ("RESIZED", "ACTIVE", "STOPPED", "ERROR"),
                                    timeout)

    def _abort_migration(self, server_id: str, migration_id: str, err: BaseException,
                         step: str) -> None:
        """The scheduler found no host, or the host that has the next step was never
        reached: claims back as before (if they were moved), the server's old state kept
        with the fault (``step``)."""
        with self.db.transaction() as session:
            migration = session.get(models.Migration, migration_id, with_for_update=True)
            if migration is None or migration.status not in (
                    models.MigrationStatus.PRE_MIGRATING, models.MigrationStatus.MIGRATING):
                return  # a host took it over meanwhile: the migration's own repair decides
            if not claims.move_back_from_migration(session, server_id, migration_id) \
                    and migration.dest_host is not None:
                claims.release(session, server_id)  # it held nothing before (an ERROR one)
            migration.status = models.MigrationStatus.ERROR
            migration.error = f"{type(err).__name__}: {err}"[:2000]
            old = migration.old_flavor
            session.add(faults.new(models.InstanceFault, err, step=step,
                                   instance_uuid=server_id))
            session.execute(sa.update(models.Instance).where(models.Instance.uuid == server_id)
                            .values(task_state=None, vcpus=int(old["vcpus"]),
                                    memory_mb=int(old["ram_mb"])))

    # --- evacuation (stackcore.compute.evacuation) ----------------------------------------

    @schemas.accepts(server_id=s.UUID, wait=s.BOOLEAN, timeout=s.TIMEOUT,
                     host=s.optional(s.HOST))
    @policy.authorize("compute:server:evacuate")
    def evacuate_server(self, server_id: str, wait: bool = True,
                        timeout: float | None = None, host: str | None = None) -> Server:
        """Rebuild an ACTIVE, STOPPED or ERROR server of a dead host on another host the
        scheduler picks (task ``evacuating``): same ports (addresses kept) and volumes, the
        root disk made afresh from its image - what was written to a local root disk is
        lost. A volume-backed server keeps its root disk: its root volume is exported to the
        new host and booted there with its data (Nova's evacuation on shared storage; the
        new host's driver must declare ``boot_from_volume``, and no local disk is claimed
        there). ACTIVE and ERROR servers end ACTIVE, STOPPED ones STOPPED. The dead host
        destroys its old instance and gives back its claim when its compute service comes
        back. Admin only, as in Nova.

        ``host`` names the host to rebuild it on; the scheduler still runs its filters on
        it (Nova's evacuate to a host, not forced). Refused, naming the host and with
        nothing recorded (no migration, no fault, state and claims kept): NotFound if it is
        no compute host, Invalid if it is the server's own host, Conflict if its compute
        service is down, NoValidHost with the filters' reasons if it fails them (or has no
        room left).

        Conflict while the host's compute service is up (its heartbeat younger than
        ``service_down_time``): the server would run twice; fence the host first.
        NoValidHost (state and claims kept, fault ``evacuate``) when no other host fits.
        Returns once done with ``wait`` (ACTIVE, STOPPED, or ERROR with the fault)."""
        validate.uuid_like("server_id", server_id)
        source = self._host_of(server_id)
        if host is not None:
            self._check_move_host(server_id, source, host, "evacuate")
        if self._service_up(source):
            raise exception.Conflict(
                f"cannot evacuate server {server_id}: the compute service of its host "
                f"{source} is up (heartbeat within [DEFAULT] service_down_time = "
                f"{self.conf.service_down_time} s) and the server would run twice; fence "
                f"{source} (stop its compute service) and evacuate once it is reported down")
        self._check_target_up(server_id, host, "evacuate")
        migration_id, request = self._begin_move(
            server_id, source, host, models.EVACUATION, TaskState.EVACUATING,
            evacuation.FROM_STATES, "evacuate", "only active, stopped or error servers", {})
        try:
            chosen = self.scheduler_rpc.select_migration_destination(
                server_id, migration_id, request, evacuation=True)
        except exception.NoValidHost as err:
            if host is None:
                self._abort_migration(server_id, migration_id, err, "evacuate")
            else:  # the named host refused: as if never asked
                self._forget_move(server_id, migration_id, TaskState.EVACUATING)
            raise
        except exception.StackcoreError as err:
            self._abort_migration(server_id, migration_id, err, "evacuate")
            raise
        try:
            self.compute_rpc.evacuate_instance(chosen["host"], server_id, migration_id)
        except exception.StackcoreError as err:
            self._abort_migration(server_id, migration_id, err, "evacuate")
            raise
        LOG.info("server %s: evacuation from %s to %s", server_id, source, chosen["host"])
        if not wait:
            return self.get_server(server_id)
        return self.wait_for_server(server_id, ("ACTIVE", "STOPPED", "ERROR"), timeout)

    def _check_target_up(self, server_id: str, host: str | None, verb: str) -> None:
        """Conflict when the named host of an evacuation or live migration is down."""
        if host is not None and not self._service_up(host):
            raise exception.Conflict(
                f"cannot {verb} server {server_id} to {host}: the compute service of "
                f"{host} is down (no heartbeat within [DEFAULT] service_down_time = "
                f"{self.conf.service_down_time} s)")

    def _begin_move(self, server_id: str, source: str, host: str | None, kind: str,
                    task: TaskState, from_states: tuple[str, ...], verb: str, allowed: str,
                    disk_info: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """An evacuation or live migration (``kind``) of the server on ``source`` starts:
        in one transaction, its state checked (``from_states``, no task; InvalidState
        saying ``allowed`` otherwise), its task set and its ``pre-migrating`` migration
        recorded with the same flavor. Returns the migration's id and the placement request
        (no local disk for a volume-backed server; the source excluded; ``host``, if named,
        the only candidate)."""
        migration_id = str(uuid.uuid4())
        with self.db.transaction() as session:
            row = session.get(models.Instance, server_id, with_for_update=True)
            assert row is not None  # _host_of found it
            if row.host != source or row.vm_state not in from_states \
                    or row.task_state is not None:
                raise exception.InvalidState(
                    f"cannot {verb} server {server_id} while it is {row.vm_state}"
                    + (f" ({row.task_state})" if row.task_state else "")
                    + (f" on {row.host}" if row.host != source else "")
                    + f" ({allowed})", state=row.vm_state)
            flavor = dict(row.flavor)
            row.task_state = task
            session.add(models.Migration(
                id=migration_id, instance_uuid=server_id, migration_type=kind,
                status=models.MigrationStatus.PRE_MIGRATING, source_host=source,
                old_flavor_id=row.flavor_id, old_flavor=flavor, new_flavor_id=row.flavor_id,
                new_flavor=flavor, old_vm_state=row.vm_state, disk_info=disk_info,
                source_attachments={}))
            image = session.get(image_models.Image, row.image_id)
            group = session.execute(
                sa.select(sched_models.ServerGroupMember.group_id)
                .where(sched_models.ServerGroupMember.instance_uuid == server_id)
            ).scalar_one_or_none()
            zone = row.availability_zone
            volume_backed = block_devices.root_volume(
                block_devices.rows(session, server_id)) is not None
        request = placement_request.build(
            {**flavor, "disk_gb": 0} if volume_backed else flavor,
            dict(image.properties) if image else {}, availability_zone=zone,
            server_group=group, exclude_hosts=(source,), requested_host=host)
        return migration_id, request

    def _check_move_host(self, server_id: str, source: str, host: str, verb: str) -> None:
        """The named host of an evacuation or live migration (``verb``: "evacuate",
        "live-migrate") is a compute host other than the server's."""
        validate.name("host", host)
        if host == source:
            raise exception.Invalid(
                "host", f"{host} is the host of server {server_id}, the one it would "
                f"{verb} from: name another host", host)
        with self.db.read() as session:
            known = session.execute(sa.select(db_models.Service.id).where(
                db_models.Service.host == host, db_models.Service.binary == COMPUTE_BINARY)
            ).first()
        if known is None:
            raise exception.NotFound("compute host", host,
                                     f"cannot {verb} server {server_id} to {host}: no "
                                     f"compute host {host!r}")

    def _forget_move(self, server_id: str, migration_id: str, task: TaskState) -> None:
        """The named host of an evacuation or live migration refused it before anything was
        claimed or moved: its migration goes and the server's task (``task``) is cleared,
        with no fault - a refused request leaves nothing behind."""
        with self.db.transaction() as session:
            migration = session.get(models.Migration, migration_id, with_for_update=True)
            if migration is None \
                    or migration.status != models.MigrationStatus.PRE_MIGRATING:
                return  # taken over meanwhile (the scheduler's orphan pass): its story
            session.delete(migration)
            session.execute(sa.update(models.Instance).where(
                models.Instance.uuid == server_id,
                models.Instance.task_state == task).values(task_state=None))

    # --- live migration (stackcore.compute.live_migration) ------------------------------

    @schemas.accepts(server_id=s.UUID, wait=s.BOOLEAN, timeout=s.TIMEOUT,
                     host=s.optional(s.HOST), block_migration=s.optional(s.BOOLEAN))
    @policy.authorize("compute:server:live_migrate")
    def live_migrate_server(self, server_id: str, host: str | None = None,
                            block_migration: bool | None = None, wait: bool = True,
                            timeout: float | None = None) -> Server:
        """Move an ACTIVE or PAUSED server to another host while it runs (task
        ``migrating``): the scheduler picks the host (or runs its filters on ``host``, the
        one named: Nova's live migration to a host, not forced) and claims there; the
        destination attaches the volumes and prepares, the guest's memory (and, with
        ``block_migration``, its local disks) is copied while it runs, and the source
        removes what is left once it runs on the destination. ``block_migration`` None lets
        the drivers decide (local disks are copied unless both hosts see them on shared
        storage, as a volume-backed server's root is). Both hosts' drivers must declare
        ``live_migration``. Admin only, as in Nova.

        Refused with nothing recorded: InvalidState unless ACTIVE or PAUSED with no task;
        Conflict when the server's host's compute service is down (evacuate it instead);
        for a named ``host``, NotFound if it is no compute host, Invalid if it is the
        server's own, Conflict if its compute service is down, NoValidHost with the filters'
        reasons if it fails them. NoValidHost (state kept, fault ``live_migration``) when
        the scheduler finds no host. A failed or aborted move leaves the
        server running on its host with the fault (the migration ``error``). Returns once
        done with ``wait`` (ACTIVE or PAUSED again, on whichever host it runs; ERROR only
        when the guest was lost or the destination failed to take it over)."""
        validate.uuid_like("server_id", server_id)
        source = self._host_of(server_id, "live_migration")
        if host is not None:
            self._check_move_host(server_id, source, host, "live-migrate")
        if not self._service_up(source):
            raise exception.Conflict(
                f"cannot live-migrate server {server_id}: the compute service of its host "
                f"{source} is down (no heartbeat within [DEFAULT] service_down_time = "
                f"{self.conf.service_down_time} s); evacuate it instead")
        self._check_target_up(server_id, host, "live-migrate")
        migration_id, request = self._begin_move(
            server_id, source, host, models.LIVE_MIGRATION, TaskState.MIGRATING,
            live_migration.FROM_STATES, "live-migrate", "only active or paused servers",
            {"block_migration": block_migration})
        try:
            chosen = self.scheduler_rpc.select_migration_destination(
                server_id, migration_id, request, live=True)
        except exception.NoValidHost as err:
            if host is None:
                self._abort_migration(server_id, migration_id, err, "live_migration")
            else:  # the named host refused: as if never asked
                self._forget_move(server_id, migration_id, TaskState.MIGRATING)
            raise
        except exception.StackcoreError as err:
            self._abort_migration(server_id, migration_id, err, "live_migration")
            raise
        try:
            self.compute_rpc.live_migrate_instance(source, server_id, migration_id)
        except exception.StackcoreError as err:
            self._abort_migration(server_id, migration_id, err, "live_migration")
            raise
        LOG.info("server %s: live migration from %s to %s", server_id, source, chosen["host"])
        if not wait:
            return self.get_server(server_id)
        return self.wait_for_server(server_id, ("ACTIVE", "PAUSED", "ERROR"), timeout)

    @schemas.accepts(server_id=s.UUID)
    @policy.authorize("compute:server:live_migrate_abort")
    def abort_live_migration(self, server_id: str) -> None:
        """Ask the source host to abort the server's live migration in progress: the server
        stays on its host, running, and the migration ends ``error`` ("aborted"). Returns
        once asked (the server's task clears when the rollback is done: wait for it with
        :meth:`wait_for_server`). A guest already switching over cannot be stopped any more:
        the migration then completes. InvalidState when no live migration of the server is
        in progress."""
        self.get_server(server_id)  # the caller's (NotFound otherwise)
        with self.db.read() as session:
            migration = session.execute(
                sa.select(models.Migration).where(
                    models.Migration.instance_uuid == server_id,
                    models.Migration.migration_type == models.LIVE_MIGRATION,
                    models.Migration.status.in_((models.MigrationStatus.PRE_MIGRATING,
                                                 models.MigrationStatus.MIGRATING)))
            ).scalar_one_or_none()
            if migration is None:
                raise exception.InvalidState(
                    f"server {server_id} has no live migration that can still be aborted",
                    state="not-migrating")
            source, migration_id = migration.source_host, migration.id
        self.compute_rpc.abort_live_migration(source, server_id, migration_id)

    def _finished_migration(self, server_id: str, status: str) -> models.Migration:
        """The server's migration waiting for confirm or revert, now moved to ``status``
        with the server's task (atomically: a concurrent confirm and revert cannot both
        start). InvalidState unless the server is RESIZED with no task."""
        task = (TaskState.RESIZE_CONFIRMING if status == models.MigrationStatus.CONFIRMING
                else TaskState.RESIZE_REVERTING)
        self.get_server(server_id)  # the caller's (NotFound otherwise)
        with self.db.transaction() as session:
            row = session.get(models.Instance, server_id, with_for_update=True)
            migration = session.execute(
                sa.select(models.Migration).where(
                    models.Migration.instance_uuid == server_id,
                    models.Migration.status == models.MigrationStatus.FINISHED)
            ).scalar_one_or_none()
            if row is None or row.vm_state != VmState.RESIZED or row.task_state is not None \
                    or migration is None:
                state = row.vm_state if row is not None else "gone"
                raise exception.InvalidState(
                    f"server {server_id} is {state}"
                    + (f" ({row.task_state})" if row is not None and row.task_state else "")
                    + ", not resized: there is no resize or migration to confirm or revert",
                    state=state)
            migration.status = status
            row.task_state = task
            session.flush()
            session.expunge(migration)
        return migration

    @schemas.accepts(server_id=s.UUID, wait=s.BOOLEAN, timeout=s.TIMEOUT)
    @policy.authorize("compute:server:confirm_resize")
    def confirm_resize(self, server_id: str, wait: bool = True,
                       timeout: float | None = None) -> Server:
        """Keep a RESIZED server as it is now: the old host removes its copy and gives back
        its claim; the server is ACTIVE (or STOPPED) again. A failure there leaves it
        RESIZED with the fault (confirm again)."""
        migration = self._finished_migration(server_id, models.MigrationStatus.CONFIRMING)
        self.compute_rpc.confirm_resize(migration.source_host, server_id, migration.id)
        if not wait:
            return self.get_server(server_id)
        return self.wait_for_server(server_id, ("ACTIVE", "STOPPED", "RESIZED", "ERROR"),
                                    timeout)

    @schemas.accepts(server_id=s.UUID, wait=s.BOOLEAN, timeout=s.TIMEOUT)
    @policy.authorize("compute:server:revert_resize")
    def revert_resize(self, server_id: str, wait: bool = True,
                      timeout: float | None = None) -> Server:
        """Undo a resize or migration: the new host removes the server, the old host starts
        it again as it was (old flavor, ports and volumes back), the new host's claim is
        released. A failure on the new host leaves it RESIZED with the fault (revert
        again); one on the old host leaves it ERROR there."""
        migration = self._finished_migration(server_id, models.MigrationStatus.REVERTING)
        assert migration.dest_host is not None  # finished migrations have one
        self.compute_rpc.revert_resize(migration.dest_host, server_id, migration.id)
        if not wait:
            return self.get_server(server_id)
        return self.wait_for_server(server_id, ("ACTIVE", "STOPPED", "RESIZED", "ERROR"),
                                    timeout)

    @schemas.accepts(server_id=s.UUID)
    @policy.authorize("compute:server:migrations")
    def list_server_migrations(self, server_id: str) -> list[ServerMigration]:
        """The server's resizes and migrations, oldest first."""
        self.get_server(server_id, include_deleted=True)
        with self.db.read() as session:
            rows = session.execute(
                sa.select(models.Migration).where(models.Migration.instance_uuid == server_id)
                .order_by(models.Migration.created_at, models.Migration.id)).scalars().all()
            return [ServerMigration(r.id, r.instance_uuid, r.migration_type, r.status,
                                    r.source_host, r.dest_host, r.old_flavor_id,
                                    r.new_flavor_id, r.error, r.created_at) for r in rows]

    def _fault_keep_state(self, server_id: str, step: str, err: BaseException,
                          **values: Any) -> None:
        """A fault on the server, task cleared (and ``values`` set back), state kept."""
        with self.db.transaction() as session:
            session.add(faults.new(models.InstanceFault, err, step=step,
                                   instance_uuid=server_id))
            session.execute(sa.update(models.Instance).where(
                models.Instance.uuid == server_id).values(task_state=None, **values))

    def _update_task(self, server_id: str, expected: str, value: str | None) -> None:
        with self.db.transaction() as session:
            session.execute(sa.update(models.Instance).where(
                models.Instance.uuid == server_id, models.Instance.task_state == expected)
                .values(task_state=value))

    # --- hosts -----------------------------------------------------------------------------

    @schemas.accepts()
    @policy.authorize("compute:host:list")
    def list_hosts(self) -> list[Host]:
        """Compute hosts with their latest validated stats and what is claimed on them."""
        down_time = self.conf.service_down_time
        now = db_models.utcnow()
        with self.db.read() as session:
            rows = session.execute(
                sa.select(db_models.Service, models.ComputeNode)
                .outerjoin(models.ComputeNode, models.ComputeNode.host == db_models.Service.host)
                .where(db_models.Service.binary == COMPUTE_BINARY)
                .order_by(db_models.Service.host)
            ).all()
        return [
            Host(
                host=svc.host,
                availability_zone=svc.availability_zone,
                up=service.is_up(svc.last_seen_at, down_time, now),
                disabled=svc.disabled,
                reporting=bool(node and node.reporting),
                report_error=node.report_error if node else None,
                stats=dict(node.stats) if node else {},
                allocated={
                    "vcpus": node.alloc_vcpus if node else 0,
                    "memory_mb": node.alloc_memory_mb if node else 0,
                    "disk_gb": node.alloc_disk_gb if node else 0,
                    "instances": node.alloc_instances if node else 0,
                },
                last_seen_at=svc.last_seen_at,
            )
            for svc, node in rows
        ]

    @schemas.accepts(host=s.HOST, enabled=s.BOOLEAN, reason=s.optional(s.DESCRIPTION))
    @policy.authorize("compute:host:set_enabled")
    def set_host_enabled(self, host: str, enabled: bool, reason: str | None = None) -> None:
        with self.db.transaction() as session:
            result = session.execute(
                sa.update(db_models.Service)
                .where(db_models.Service.host == host, db_models.Service.binary == COMPUTE_BINARY)
                .values(disabled=not enabled, disabled_reason=None if enabled else reason)
            )
            if result.rowcount == 0:  # type: ignore[attr-defined]
                raise exception.NotFound("host", host)
