"""The libvirt hypervisor driver: KVM/QEMU domains through libvirt-python.

One domain per instance, named ``instance-<uuid>`` and tagged with a ``<stackcore:instance>``
metadata record (uuid + compute host); the driver only ever lists, changes or removes domains
carrying that record. Per instance it owns a directory ``<instances_path>/<uuid>/`` holding the
qcow2 overlay (backed by ``image.path``: the host's image-cache copy of an uploaded image,
whatever its store, or a registered local file) and the serial console log, and the libvirt
secrets (usage ``stackcore/<uuid>/<disk>``) of its volumes' credentials. With ``[libvirt]
images_type = rbd`` the root disk is the RBD image ``<uuid>_disk`` instead (a clone of the
rbd image store's snapshot, or an import: :mod:`.rbd_disk`); destroy removes it, cold snapshots
read it back with qemu-img, rescue adds its local rescue disk next to it.

Boot from volume (``block_device_info`` entry with ``boot_index`` 0): the root disk ``vda`` is
that volume's ``<disk>`` (as any attached volume's) and the domain's metadata records the volume
(``<stackcore:boot-volume>``). Nothing is made from the image and destroy never touches the
volume. Snapshot and rescue of such an instance are refused (Invalid): each would work on a
disk the driver owns, and this one belongs to the volume service. Resize and cold migration
define it again booting from the volume exported to the destination.

``test:///default`` (libvirt's in-process test driver) is supported for the lifecycle: there the
domain's disk points at the image file itself (the test driver never opens disks, so no overlay
is made and qemu-img is not needed), snapshots copy that file, and features the test driver
lacks (device hot-plug, secrets) raise CapabilityNotSupported.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import os
import shutil
import threading
import time
import uuid as uuid_lib
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from stackcore import exception
from stackcore.compute import (
    Flavor,
    HypervisorDriver,
    Image,
    Instance,
    InstanceInfo,
    PowerState,
    RebootType,
    snapshot_format,
)
from stackcore_drivers.libvirt import (
    domain_xml,
    host,
    images,
    live_migration,
    rbd_disk,
    vif,
    volume,
)
from stackcore_drivers.libvirt.connection import Connection

if TYPE_CHECKING:
    from oslo_config import cfg


LOG = logging.getLogger(__name__)


@functools.cache
def _power_states() -> dict[int, PowerState]:
    """libvirt domain state -> PowerState (built on first use: it needs libvirt)."""
    import libvirt

    return {
        libvirt.VIR_DOMAIN_NOSTATE: PowerState.NOSTATE,
        libvirt.VIR_DOMAIN_RUNNING: PowerState.RUNNING,
        libvirt.VIR_DOMAIN_BLOCKED: PowerState.RUNNING,
        libvirt.VIR_DOMAIN_PAUSED: PowerState.PAUSED,
        libvirt.VIR_DOMAIN_SHUTDOWN: PowerState.SHUTDOWN,
        libvirt.VIR_DOMAIN_SHUTOFF: PowerState.SHUTDOWN,
        libvirt.VIR_DOMAIN_CRASHED: PowerState.CRASHED,
        libvirt.VIR_DOMAIN_PMSUSPENDED: PowerState.SUSPENDED,
    }


@functools.cache
def _undefine_flag_sets() -> tuple[int, ...]:
    """The undefine flag sets to try, richest first (built on first use: it needs libvirt)."""
    import libvirt

    return (
        libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
        | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
        | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM,
        libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA,
        libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE,
    )


ROOT_DISK = "disk"
CONSOLE_LOG = "console.log"
#: the disk a rescued domain boots from, and the definition unrescue restores
RESCUE_DISK = "disk.rescue"
UNRESCUE_XML = "unrescue.xml"
#: the ``<serial>`` that marks the rescue disk in a domain's definition
RESCUE_SERIAL = "stackcore-rescue"
#: a resize keeps the instance directory as it was in ``<uuid>_resize`` until confirm or
#: revert; ``migration.json`` there says where the instance went
RESIZE_SUFFIX = "_resize"
#: written by pre_live_migration into the directory it made (removed once the guest arrived):
#: what a rollback may remove
ARRIVING = "arriving.json"
RESIZE_META = "migration.json"
_POLL = 0.2


@dataclasses.dataclass(frozen=True)
class BootVolume:
    """The volume an instance boots from: its root disk ``vda``."""

    volume_id: str  # "" when the mapping named none
    disk: volume.VolumeDisk


def is_boot_entry(bdm: Mapping[str, Any]) -> bool:
    """Whether a block device mapping is the boot volume (``boot_index`` 0; not False)."""
    boot_index = bdm.get("boot_index")
    return isinstance(boot_index, int) and not isinstance(boot_index, bool) and boot_index == 0


def block_devices(instance_uuid: str, block_device_info: Sequence[Mapping[str, Any]]
                  ) -> tuple[BootVolume | None, list[volume.VolumeDisk]]:
    """Validate ``block_device_info`` (entries with ``connection_info``): the boot volume
    (the one entry with ``boot_index`` 0, at ``/dev/vda`` or with no ``mount_device``), if
    any, and the data volumes (every other entry). Raises Invalid naming the field."""
    boot_entries: list[Mapping[str, Any]] = []
    data: list[Mapping[str, Any]] = []
    for bdm in block_device_info:
        boot_index = bdm.get("boot_index")
        if boot_index is not None and (isinstance(boot_index, bool)
                                       or not isinstance(boot_index, int)):
            raise exception.Invalid("block_device_info.boot_index",
                                    "must be an integer or absent", boot_index)
        (boot_entries if is_boot_entry(bdm) else data).append(bdm)
    if len(boot_entries) > 1:
        raise exception.Invalid(
            "block_device_info.boot_index",
            f"{len(boot_entries)} volumes have boot_index 0; an instance has one root disk",
            [b.get("volume_id") for b in boot_entries])
    boot = None
    if boot_entries:
        entry = boot_entries[0]
        connection_info = entry.get("connection_info") or {}
        mountpoint = str(entry.get("mount_device") or entry.get("mountpoint")
                         or volume.ROOT_MOUNTPOINT)
        disk = volume.parse_root(connection_info, instance_uuid, mountpoint)
        data_section = connection_info.get("data")
        volume_id = entry.get("volume_id") or (
            data_section.get("volume_id") if isinstance(data_section, Mapping) else None)
        boot = BootVolume(str(volume_id or ""), disk)
    volumes = [
        volume.parse(bdm.get("connection_info") or {}, instance_uuid,
                     str(bdm.get("mount_device") or bdm.get("mountpoint") or ""))
        for bdm in data
    ]
    return boot, volumes


class LibvirtDriver(HypervisorDriver):
    """KVM/QEMU (or libvirt's test driver) behind the hypervisor contract."""

    VERSION = "1.0"
    # Backend libraries, imported on first use; the loader checks they are installed.
    REQUIRES: ClassVar[Mapping[str, str]] = {
        "libvirt": "pip install 'stackcore-drivers[libvirt]' (builds against libvirt-dev)",
    }
    capabilities: ClassVar[Mapping[str, bool]] = {
        "attach_volume": True,
        "plug_vifs": True,
        "snapshot": True,
        "pause": True,
        "suspend": True,
        "console_output": True,
        "rescue": True,
        "extend_volume": True,
        "resize": True,
        "boot_from_volume": True,
        "live_migration": True,
    }

    def __init__(self, conf: cfg.ConfigOpts, host: str) -> None:
        super().__init__(conf, host)
        self.opts = conf.libvirt
        self.connection = Connection(
            self.opts.connection_uri,
            retries=self.opts.connection_retries,
            interval=self.opts.connection_retry_interval,
            max_interval=self.opts.connection_retry_max_interval,
        )
        path = self.opts.instances_path or (
            os.path.join(conf.state_path, "instances") if conf.state_path else None
        )
        if not path:
            raise exception.ConfigError(
                "[libvirt] instances_path is unset and so is [DEFAULT] state_path"
            )
        self.instances_path = os.path.abspath(path)
        #: root disks on RBD (images_type = rbd); None: qcow2 overlays in instances_path
        self.rbd_disks: rbd_disk.RbdDisks | None = None
        self._warned_no_ceph_stats = False
        if self.opts.images_type == "rbd":
            self.rbd_disks = rbd_disk.RbdDisks(
                self.opts.images_rbd_pool, self.opts.images_rbd_ceph_conf, self.opts.rbd_user,
                self.opts.rbd_secret_uuid, self.opts.rbd_connect_timeout)
        self._settings: domain_xml.DomainSettings | None = None
        self._settings_lock = threading.Lock()
        #: live migrations running from this host, by instance uuid (for an abort)
        self._migrations: dict[str, live_migration.Job] = {}
        self._migrations_lock = threading.Lock()

    @classmethod
    def list_opts(cls) -> list[tuple[str, Sequence[cfg.Opt]]]:
        from stackcore_drivers.libvirt import conf as libvirt_conf
        return [(libvirt_conf.GROUP, libvirt_conf.OPTS)]

    # --- plumbing --------------------------------------------------------------------------

    @property
    def is_test_driver(self) -> bool:
        return self.connection.is_test_driver

    def _conn(self) -> Any:
        return self.connection.get()

    def _translated(self, action: str, instance: Instance | None = None) -> Any:
        return self.connection.translated(action, instance.uuid if instance else None)

    def _instance_dir(self, instance_uuid: str) -> str:
        return os.path.join(self.instances_path, instance_uuid)

    def _settings_for(self, conn: Any) -> domain_xml.DomainSettings:
        """Domain shape for this connection (read once: arch and machine come from libvirt)."""
        with self._settings_lock:
            if self._settings is None:
                if self.is_test_driver:
                    self._settings = domain_xml.DomainSettings(domain_type="test")
                else:
                    caps = domain_xml.parse(conn.getCapabilities())
                    arch = caps.findtext("host/cpu/arch") or "x86_64"
                    self._check_virt_type(caps, arch)
                    self._settings = domain_xml.DomainSettings(
                        domain_type=self.opts.virt_type,
                        arch=arch,
                        machine_type=self.opts.machine_type,
                        pcie_root_ports=self.opts.pcie_root_ports,
                        cpu_mode=None if self.opts.cpu_mode == "none" else self.opts.cpu_mode,
                        virtio_scsi=True,
                    )
            return self._settings

    def _check_virt_type(self, caps: ET.Element, arch: str) -> None:
        wanted = self.opts.virt_type
        for guest in caps.findall("guest"):
            guest_arch = guest.find("arch")
            if guest.findtext("os_type") != "hvm" or guest_arch is None:
                continue
            if guest_arch.get("name") == arch and any(
                d.get("type") == wanted for d in guest_arch.findall("domain")
            ):
                return
        hint = " (is /dev/kvm present? use virt_type = qemu for TCG)" if wanted == "kvm" else ""
        raise exception.ConfigError(
            f"[libvirt] virt_type = {wanted}: libvirt at {self.connection.uri} cannot run "
            f"{wanted} guests for {arch}{hint}"
        )

    @staticmethod
    def _lookup(conn: Any, name: str | None = None, uuid: str | None = None) -> Any | None:
        """The domain called ``name`` (or of libvirt UUID ``uuid``), None if there is none.

        A failed lookup whose error carries no code is settled by listing the domains:
        libvirt-python reads the thread's last error only after the call returned, and a
        libvirt object the garbage collector frees in between (its ``virDomainFree`` resets
        that error) leaves a bare "virDomainLookupByName() failed" - seen in the unit tier.
        Absent from the list means absent; present, the lookup's failure is re-raised."""
        import libvirt
        try:
            return conn.lookupByName(name) if name is not None else \
                conn.lookupByUUIDString(uuid)
        except libvirt.libvirtError as err:
            if err.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            if err.get_error_code() is None and not any(
                    (dom.name() == name) if name is not None else (dom.UUIDString() == uuid)
                    for dom in conn.listAllDomains(0)):
                return None
            raise

    def _find(self, conn: Any, instance_uuid: str) -> Any | None:
        """The domain of ``instance_uuid`` if it exists *and* this driver made it."""
        dom = self._lookup(conn, name=domain_xml.domain_name(instance_uuid))
        if dom is None:
            return None
        owner = domain_xml.ownership(domain_xml.parse(dom.XMLDesc(0)))
        if owner is None or owner.uuid != instance_uuid:
            LOG.warning("domain %s exists but was not made by stackcore; leaving it alone",
                        domain_xml.domain_name(instance_uuid))
            return None
        return dom

    def _domain(self, conn: Any, instance: Instance) -> Any:
        dom = self._find(conn, instance.uuid)
        if dom is None:
            raise exception.NotFound("instance", instance.uuid,
                                     f"instance {instance.uuid} has no libvirt domain")
        return dom

    @contextlib.contextmanager
    def _with_domain(self, action: str, instance: Instance) -> Iterator[Any]:
        with self._translated(action, instance):
            yield self._domain(self._conn(), instance)

    def _wait_for(self, condition: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            if condition():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(_POLL)

    @staticmethod
    def _state(dom: Any) -> int:
        return int(dom.state()[0])

    # --- required ------------------------------------------------------------------------

    def unavailable_features(self) -> dict[str, str]:
        missing = {}
        if self.rbd_disks is not None and not self.is_test_driver:
            missing["resize"] = ("resize of RBD root disks ([libvirt] images_type = rbd) is "
                                 "not implemented yet: a revert needs an RBD snapshot of the "
                                 "old disk")
        if not self.is_test_driver:
            return missing
        reason = "libvirt's test driver (test:///default) has no device hot-plug"
        return {**missing, "attach_volume": reason, "plug_vifs": reason,
                "live_migration": "libvirt's test driver (test:///default) cannot migrate "
                                  "a domain to another host"}

    def init_host(self, host: str) -> None:
        os.makedirs(self.instances_path, exist_ok=True)
        if self.rbd_disks is not None:
            self.rbd_disks.connect()  # unreachable cluster, unknown pool: ConfigError now
        with self._translated("init_host"):
            self._settings_for(self._conn())

    def get_available_resource(self) -> dict[str, Any]:
        os.makedirs(self.instances_path, exist_ok=True)
        with self._translated("get_available_resource"):
            report = host.report(self._conn(), self.instances_path)
        if self.rbd_disks is not None and not self.is_test_driver:
            # Root disks live in the Ceph cluster: its space is what they can take (as Nova
            # reports it). A cluster without ceph-mgr has no usage statistics (all zero): then
            # the local figures stay, as 0 GiB would stop the scheduler placing anything here.
            total, free = self.rbd_disks.capacity()
            if total > 0:
                report["local_gb"] = total // host.GiB
                report["local_gb_used"] = max(0, (total - free) // host.GiB)
            elif not self._warned_no_ceph_stats:
                self._warned_no_ceph_stats = True
                LOG.warning("the Ceph cluster of [libvirt] images_rbd_pool reports no capacity "
                            "(no ceph-mgr?): local_gb is %s's", self.instances_path)
        return report

    def list_instances(self) -> list[str]:
        import libvirt
        found = []
        with self._translated("list_instances"):
            for dom in self._conn().listAllDomains(0):
                if not dom.name().startswith(domain_xml.NAME_PREFIX):
                    continue
                try:
                    owner = domain_xml.ownership(domain_xml.parse(dom.XMLDesc(0)))
                except libvirt.libvirtError as err:
                    if err.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                        continue  # undefined while we listed
                    raise
                if owner is not None and owner.host == self.host:
                    found.append(owner.uuid)
        return sorted(found)

    def spawn(
        self,
        instance: Instance,
        image: Image,
        network_info: Sequence[Mapping[str, Any]],
        block_device_info: Sequence[Mapping[str, Any]],
    ) -> None:
        try:
            uuid_lib.UUID(instance.uuid)
        except ValueError:
            raise exception.Invalid("instance.uuid", "must be a uuid", instance.uuid) from None
        # Everything is validated before anything is made.
        vifs = [vif.parse(v) for v in network_info]
        boot, volumes = block_devices(instance.uuid, block_device_info)
        # a volume-backed instance reads nothing of the image (its path is "")
        if boot is None and not self.is_test_driver:
            images.check_format(image.disk_format)
        if boot is None and self.needs_image_file(image) and not os.path.isfile(image.path):
            # the test driver never opens it: say so here
            raise exception.Invalid("image.path", f"image file {image.path} does not exist",
                                    image.path)
        with self._translated("spawn", instance):
            conn = self._conn()
            settings = self._settings_for(conn)
            self._refuse_collision(conn, instance)
            secrets: list[Any] = []
            try:
                os.makedirs(self._instance_dir(instance.uuid), exist_ok=True)
                if boot is not None:
                    root = boot.disk.element(self._define_secret(conn, boot.disk, secrets))
                    console = self._console_log(instance.uuid)
                else:
                    root, console = self._root_disk(instance, image)
                devices = []
                for spec in volumes:
                    secret_uuid = self._define_secret(conn, spec, secrets)
                    devices.append(spec.element(secret_uuid))
                devices.extend(v.element() for v in vifs)
                document = domain_xml.build_domain(
                    instance, self.host, settings, root_disk=root, console_log=console,
                    devices=devices, boot_volume=boot.volume_id if boot is not None else None,
                )
                dom = conn.defineXML(domain_xml.to_string(document))
                dom.create()
            except BaseException:
                # Undo what this call made; the manager's destroy() would too, but a driver used
                # on its own must not leak either. The original error stays the story.
                try:
                    self._remove(conn, instance.uuid, destroy_disks=True)
                except Exception as cleanup_err:  # noqa: BLE001
                    LOG.warning("cleanup after failed spawn of %s failed too: %s",
                                instance.uuid, cleanup_err)
                raise

    def needs_image_file(self, image: Image) -> bool:
        """False for an image an RBD root disk clones from (the rbd store of this cluster,
        raw): the host's image cache need not fetch it."""
        if self.rbd_disks is None or self.is_test_driver:
            return True
        self.rbd_disks.connect()  # done by init_host: this reads the fsid it kept
        return rbd_disk.clone_source(image.location, image.disk_format,
                                     self.rbd_disks.fsid) is None

    def _refuse_collision(self, conn: Any, instance: Instance) -> None:
        for existing in (self._lookup(conn, name=domain_xml.domain_name(instance.uuid)),
                         self._lookup(conn, uuid=instance.uuid)):
            if existing is None:
                continue
            raise exception.Conflict(
                f"libvirt already has a domain {existing.name()!r} for instance {instance.uuid}",
                instance=instance.uuid,
            )

    def _console_log(self, instance_uuid: str) -> str | None:
        """The serial console log of a domain (None on the test driver: it has no console)."""
        if self.is_test_driver:
            return None
        return os.path.join(self._instance_dir(instance_uuid), CONSOLE_LOG)

    def _root_disk(self, instance: Instance, image: Image) -> tuple[ET.Element, str | None]:
        """The root disk element made from ``image`` and the console log path (None on the
        test driver)."""
        if self.is_test_driver:
            return domain_xml.file_disk(image.path, image.disk_format or "raw", "vda",
                                        "virtio"), None
        console = os.path.join(self._instance_dir(instance.uuid), CONSOLE_LOG)
        if self.rbd_disks is not None:
            spec = self.rbd_disks.create_root(instance.uuid, image.path, image.disk_format,
                                              image.location, instance.flavor.disk_gb * host.GiB)
            return spec.element("vda", "virtio"), console
        overlay = os.path.join(self._instance_dir(instance.uuid), ROOT_DISK)
        images.create_overlay(image.path, image.disk_format, overlay,
                              instance.flavor.disk_gb * host.GiB)
        return domain_xml.file_disk(overlay, "qcow2", "vda", "virtio"), console

    def destroy(
        self,
        instance: Instance,
        network_info: Sequence[Mapping[str, Any]],
        block_device_info: Sequence[Mapping[str, Any]],
        destroy_disks: bool = True,
    ) -> None:
        with self._translated("destroy", instance):
            self._remove(self._conn(), instance.uuid, destroy_disks=destroy_disks)

    def _remove(self, conn: Any, instance_uuid: str, *, destroy_disks: bool) -> None:
        """Stop + undefine the domain (if ours), drop its secrets, optionally its files.
        Every step tolerates the thing already being gone."""
        import libvirt
        dom = self._find(conn, instance_uuid)
        rbd_root = None  # (pool, image) of an RBD root disk, as the domain says
        if dom is not None:
            try:
                doc = domain_xml.parse(dom.XMLDesc(0))
                # a boot volume's vda is the volume service's: never taken for our disk
                if domain_xml.boot_volume(doc) is None:
                    rbd_root = rbd_disk.rbd_source(domain_xml.find_disk(doc, "vda"))
            except libvirt.libvirtError as err:
                if err.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                    raise
            try:
                if dom.isActive():
                    dom.destroy()
            except libvirt.libvirtError as err:
                if err.get_error_code() not in (libvirt.VIR_ERR_OPERATION_INVALID,
                                                libvirt.VIR_ERR_NO_DOMAIN):
                    raise
            self._undefine(dom)
        self._remove_secrets(conn, volume.secret_usage_prefix(instance_uuid))
        if destroy_disks:
            self._remove_rbd_root(instance_uuid, rbd_root)
            shutil.rmtree(self._instance_dir(instance_uuid), ignore_errors=True)

    def _remove_rbd_root(self, instance_uuid: str, rbd_root: tuple[str, str] | None) -> None:
        """Remove the instance's ``<uuid>_disk`` (after the undefine: no QEMU holds it) from
        the configured pool and, if the domain named another pool (images_rbd_pool changed),
        from that one; gone already is fine. ``rbd_root``: the domain's RBD root disk."""
        try:
            own_name = rbd_disk.disk_name(instance_uuid)
        except ValueError:
            return  # not a uuid: spawn refuses those, so it made no disk
        if self.rbd_disks is not None and not self.is_test_driver:
            self.rbd_disks.remove(instance_uuid)
            if rbd_root is not None and rbd_root[1] == own_name \
                    and rbd_root[0] != self.rbd_disks.pool:
                self.rbd_disks.remove(instance_uuid, pool=rbd_root[0])
        elif rbd_root is not None and rbd_root[1] == own_name:
            LOG.warning("instance %s's root disk, the RBD image %s/%s, is left in Ceph: "
                        "[libvirt] images_type is not rbd any more, so there is no "
                        "connection to remove it with", instance_uuid, *rbd_root)

    @staticmethod
    def _undefine(dom: Any) -> None:
        """Undefine with its saved state, snapshot metadata and NVRAM; drivers that refuse a
        flag (the test driver knows no NVRAM) get the next smaller set."""
        import libvirt
        for flags in _undefine_flag_sets():
            try:
                dom.undefineFlags(flags)
                return
            except libvirt.libvirtError as err:
                code = err.get_error_code()
                if code == libvirt.VIR_ERR_NO_DOMAIN:
                    return
                if code not in (libvirt.VIR_ERR_INVALID_ARG, libvirt.VIR_ERR_NO_SUPPORT):
                    raise
        if dom.hasManagedSaveImage(0):
            dom.managedSaveRemove(0)
        dom.undefine()

    # --- boot from volume --------------------------------------------------------------------

    @staticmethod
    def _boot_volume_of(dom: Any) -> str | None:
        """The id of the volume the domain boots from (persistent definition), else None."""
        import libvirt
        return domain_xml.boot_volume(
            domain_xml.parse(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)))

    @staticmethod
    def _refuse_boot_volume(instance: Instance, volume_id: str | None, action: str) -> None:
        """Invalid when the instance boots from a volume (``volume_id`` not None): ``action``
        would work on a root disk the driver owns, and this one is the volume service's."""
        if volume_id is None:
            return
        raise exception.Invalid(
            "instance", f"instance {instance.uuid} boots from volume {volume_id or '(no id)'}: "
            f"{action} is not supported by the libvirt driver for a volume-backed instance",
            instance.uuid)

    # --- secrets -------------------------------------------------------------------------------

    def _define_secret(self, conn: Any, spec: volume.VolumeDisk, made: list[Any]) -> str | None:
        """Define (or refresh) the libvirt secret of one attachment; its uuid, or None."""
        import libvirt
        if spec.secret is None:
            return None
        usage_type = (libvirt.VIR_SECRET_USAGE_TYPE_ISCSI if spec.secret.usage_type == "iscsi"
                      else libvirt.VIR_SECRET_USAGE_TYPE_CEPH)
        try:
            secret = conn.secretLookupByUsage(usage_type, spec.secret.usage_id)
        except libvirt.libvirtError as err:
            if err.get_error_code() != libvirt.VIR_ERR_NO_SECRET:
                raise
            secret = conn.secretDefineXML(domain_xml.to_string(spec.secret.element()))
            made.append(secret)
        secret.setValue(spec.secret.value)
        return str(secret.UUIDString())

    def _remove_secrets(self, conn: Any, usage_prefix: str) -> None:
        import libvirt
        if self.is_test_driver:
            return  # the test driver has no secret driver; nothing can have been defined
        for secret in conn.listAllSecrets(0):
            try:
                usage_id = secret.usageID()
            except libvirt.libvirtError:
                continue
            if usage_id and usage_id.startswith(usage_prefix):
                with contextlib.suppress(libvirt.libvirtError):
                    secret.undefine()

    def secrets_of(self, instance: Instance) -> list[str]:
        """Usage ids of the libvirt secrets this driver holds for ``instance`` (diagnostics)."""
        if self.is_test_driver:
            return []
        prefix = volume.secret_usage_prefix(instance.uuid)
        with self._translated("list secrets", instance):
            return sorted(
                s.usageID() for s in self._conn().listAllSecrets(0)
                if (s.usageID() or "").startswith(prefix)
            )

    # --- power -----------------------------------------------------------------------------

    def get_info(self, instance: Instance) -> InstanceInfo:
        import libvirt
        with self._with_domain("get_info", instance) as dom:
            state, reason = dom.state()
            power = _power_states().get(state, PowerState.NOSTATE)
            if state == libvirt.VIR_DOMAIN_SHUTOFF and dom.hasManagedSaveImage(0):
                power = PowerState.SUSPENDED
            _, max_mem_kb, _, vcpus, cpu_time = dom.info()
            return InstanceInfo(power, rescued=self._is_rescued(dom), extra={
                "libvirt_state": int(state), "libvirt_reason": int(reason),
                "domain": dom.name(), "max_mem_kb": int(max_mem_kb), "vcpus": int(vcpus),
                "cpu_time_ns": int(cpu_time),
            })

    def power_off(self, instance: Instance, timeout: int = 0) -> None:
        with self._with_domain("power_off", instance) as dom:
            if not dom.isActive():
                return
            if timeout > 0 and self._clean_shutdown(dom, timeout):
                return
            self._force_off(dom)

    def _clean_shutdown(self, dom: Any, timeout: float) -> bool:
        """Ask the guest to shut down; True if it was off within ``timeout`` seconds."""
        import libvirt
        try:
            dom.shutdown()
        except libvirt.libvirtError as err:
            if err.get_error_code() != libvirt.VIR_ERR_OPERATION_INVALID:
                raise
        return self._wait_for(lambda: not dom.isActive(), timeout)

    @staticmethod
    def _force_off(dom: Any) -> None:
        import libvirt
        try:
            dom.destroy()
        except libvirt.libvirtError as err:
            if err.get_error_code() != libvirt.VIR_ERR_OPERATION_INVALID:  # already off
                raise

    def power_on(self, instance: Instance) -> None:
        with self._with_domain("power_on", instance) as dom:
            if not dom.isActive():
                dom.create()  # restores a managed-save image if there is one

    def reboot(self, instance: Instance, reboot_type: RebootType) -> None:
        import libvirt
        with self._with_domain("reboot", instance) as dom:
            soft_possible = dom.isActive() and self._state(dom) == libvirt.VIR_DOMAIN_RUNNING
            if reboot_type is RebootType.SOFT and soft_possible:
                if self._clean_shutdown(dom, self.opts.soft_reboot_timeout):
                    dom.create()
                    return
                LOG.info("instance %s ignored the shutdown request for %ss; rebooting hard",
                         instance.uuid, self.opts.soft_reboot_timeout)
            self._force_off(dom)
            if dom.hasManagedSaveImage(0):
                dom.managedSaveRemove(0)  # a hard reboot boots afresh, it does not resume
            dom.create()

    def pause(self, instance: Instance) -> None:
        import libvirt
        with self._with_domain("pause", instance) as dom:
            if self._state(dom) != libvirt.VIR_DOMAIN_PAUSED:
                dom.suspend()

    def unpause(self, instance: Instance) -> None:
        import libvirt
        with self._with_domain("unpause", instance) as dom:
            if self._state(dom) == libvirt.VIR_DOMAIN_PAUSED:
                dom.resume()

    def suspend(self, instance: Instance) -> None:
        with self._with_domain("suspend", instance) as dom:
            if dom.isActive():
                dom.managedSave(0)

    def resume(self, instance: Instance) -> None:
        with self._with_domain("resume", instance) as dom:
            if not dom.isActive():
                dom.create()

    # --- rescue ------------------------------------------------------------------------------

    @staticmethod
    def _is_rescued(dom: Any) -> bool:
        import libvirt
        doc = domain_xml.parse(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        return any(d.findtext("serial") == RESCUE_SERIAL for d in doc.findall("devices/disk"))

    def rescue(self, instance: Instance, rescue_image: Image) -> None:
        """Define the domain again with a rescue disk (a qcow2 copy of ``rescue_image``,
        ``<serial>`` ``stackcore-rescue``) booted first (per-device boot order) and every other
        disk as it was; the original definition is kept in ``unrescue.xml`` for
        :meth:`unrescue`. A failure restores the original definition. A volume-backed
        instance keeps its root volume as ``vda`` (its disk element, secret and all, is part
        of the definition): the rescue disk, next free ``vdX``, boots before it."""
        import libvirt
        if not self.is_test_driver:
            images.check_format(rescue_image.disk_format)
        if not os.path.isfile(rescue_image.path):
            raise exception.Invalid("rescue_image.path",
                                    f"rescue image file {rescue_image.path} does not exist",
                                    rescue_image.path)
        directory = self._instance_dir(instance.uuid)
        saved = os.path.join(directory, UNRESCUE_XML)
        rescue_disk = os.path.join(directory, RESCUE_DISK)
        with self._with_domain("rescue", instance) as dom:
            if self._is_rescued(dom):
                raise exception.Conflict(f"instance {instance.uuid} is already rescued")
            original = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
            doc = domain_xml.parse(original)
            used = {t.get("dev") for t in doc.findall("devices/disk/target")}
            target = next(f"vd{c}" for c in "bcdefghijklmnopqrstuvwxyz" if f"vd{c}" not in used)
            os.makedirs(directory, exist_ok=True)
            with open(saved, "w", encoding="utf-8") as handle:
                handle.write(original)
            try:
                if self.is_test_driver:
                    disk = domain_xml.file_disk(rescue_image.path,
                                                rescue_image.disk_format or "raw", target,
                                                "virtio")
                else:
                    images.convert(rescue_image.path, rescue_image.disk_format, rescue_disk,
                                   "qcow2")
                    disk = domain_xml.file_disk(rescue_disk, "qcow2", target, "virtio")
                domain_xml.sub(disk, "serial", RESCUE_SERIAL)
                domain_xml.sub(disk, "boot", order="1")
                os_element = doc.find("os")
                if os_element is not None:  # per-device boot order and <os><boot> exclude
                    for boot in os_element.findall("boot"):
                        os_element.remove(boot)
                devices = doc.find("devices")
                if devices is None:
                    raise exception.DriverError(f"instance {instance.uuid} has no devices")
                devices.append(disk)
                self._force_off(dom)
                self._conn().defineXML(domain_xml.to_string(doc))
                dom.create()
            except BaseException:
                with contextlib.suppress(Exception):
                    self._force_off(dom)
                    self._conn().defineXML(original)
                with contextlib.suppress(FileNotFoundError):
                    os.remove(saved)
                with contextlib.suppress(FileNotFoundError):
                    os.remove(rescue_disk)
                raise

    def unrescue(self, instance: Instance) -> None:
        """Define the domain from ``unrescue.xml`` again, start it, remove the rescue disk.
        Not rescued: nothing to do."""
        directory = self._instance_dir(instance.uuid)
        saved = os.path.join(directory, UNRESCUE_XML)
        with self._with_domain("unrescue", instance) as dom:
            if not self._is_rescued(dom):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(saved)  # left by an unrescue cut off after it redefined
                return
            with open(saved, encoding="utf-8") as handle:
                original = handle.read()
            self._force_off(dom)
            self._conn().defineXML(original)
            dom.create()
        for name in (UNRESCUE_XML, RESCUE_DISK):
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(directory, name))

    # --- console and snapshot ------------------------------------------------------------------

    def get_console_output(self, instance: Instance) -> str:
        with self._with_domain("get_console_output", instance):
            pass  # only to raise NotFound for an instance the driver does not have
        path = os.path.join(self._instance_dir(instance.uuid), CONSOLE_LOG)
        try:
            with open(path, "rb") as log:
                size = log.seek(0, os.SEEK_END)
                log.seek(max(0, size - self.opts.console_log_max_bytes))
                return log.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""  # nothing written yet (or the test driver, which has no console)

    def snapshot(self, instance: Instance, image_path: str) -> None:
        """Cold snapshot (``live_snapshot`` is not declared): the domain must be shut off or
        suspended (managed save) - the manager suspends a running one around the call - so
        its disk is consistent and no QEMU holds it. The qcow2 overlay is flattened into
        ``image_path`` in :func:`~stackcore.compute.snapshot_format` of the base image's
        format. A running domain is refused (InvalidState), never copied while it writes; a
        volume-backed one (Invalid): its root disk is the volume service's to snapshot."""
        with self._with_domain("snapshot", instance) as dom:
            self._refuse_boot_volume(instance, self._boot_volume_of(dom), "snapshot")
            if dom.isActive():
                raise exception.InvalidState(
                    f"instance {instance.uuid} is running: the libvirt driver takes cold "
                    "snapshots only (suspend or stop it first)", instance=instance.uuid)
            if self.is_test_driver:
                images.copy(instance.image.path, image_path)
                return
            doc = domain_xml.parse(dom.XMLDesc(0))
            target_format = snapshot_format(instance.image.disk_format)
            on_rbd = rbd_disk.rbd_source(domain_xml.find_disk(doc, "vda"))
            if on_rbd is not None:
                if self.rbd_disks is None:
                    raise exception.DriverError(
                        f"instance {instance.uuid}'s root disk is the RBD image "
                        f"{on_rbd[0]}/{on_rbd[1]} but [libvirt] images_type is not rbd any "
                        "more: no Ceph connection to read it with")
                self.rbd_disks.export(on_rbd[0], on_rbd[1], image_path, target_format)
                return
            source = domain_xml.root_disk_source(doc)
            if source is None:
                raise exception.DriverError(f"instance {instance.uuid} has no file root disk")
            images.convert(source, "qcow2", image_path, target_format)

    # --- resize and cold migration (capability ``resize``) ---------------------------------
    # Root disks are qcow2 overlays in the instance directory (RBD roots: not yet, see
    # unavailable_features). Like Nova's libvirt driver: the source keeps the directory as it
    # was in <uuid>_resize (and, on another host, the old definition) until confirm or
    # revert; the destination grows the overlay in place. Another host must share
    # [libvirt] instances_path (NFS, as Nova's "shared instance storage"): the destination
    # checks for a token the source wrote, and refuses without it (the migration is rolled
    # back). A copy between hosts without shared storage is not implemented yet.

    def _resize_dir(self, instance_uuid: str) -> str:
        return self._instance_dir(instance_uuid) + RESIZE_SUFFIX

    def _resize_meta(self, instance_uuid: str) -> dict[str, Any]:
        """What migrate_disk_and_power_off recorded ({} if there is no backup here)."""
        try:
            with open(os.path.join(self._resize_dir(instance_uuid), RESIZE_META),
                      encoding="utf-8") as handle:
                meta: dict[str, Any] = json.load(handle)
        except FileNotFoundError:
            return {}
        return meta

    def migrate_disk_and_power_off(
        self, instance: Instance, dest_host: str, new_flavor: Flavor,
        network_info: Sequence[Mapping[str, Any]],
        block_device_info: Sequence[Mapping[str, Any]],
    ) -> Mapping[str, Any]:
        """Refuse a smaller disk (unless the instance boots from a volume: its root is the
        volume, the flavor's disk is not used); shut the guest down ([libvirt]
        shutdown_timeout, then hard); keep the instance directory as it is in
        ``<uuid>_resize`` (for a volume-backed instance only its console log: the volume
        goes with the instance, exported to the destination by the manager)."""
        import libvirt
        # the source's entries may carry no connection_info: only boot_index is read here
        volume_backed = any(is_boot_entry(bdm) for bdm in block_device_info)
        if not volume_backed:
            with self._translated("migrate_disk_and_power_off", instance):
                dom = self._find(self._conn(), instance.uuid)
                # the definition has the last word (bdms may lack boot_index)
                volume_backed = dom is not None and self._boot_volume_of(dom) is not None
        if new_flavor.disk_gb < instance.flavor.disk_gb and not volume_backed:
            raise exception.Invalid(
                "flavor", f"instance {instance.uuid} has a {instance.flavor.disk_gb} GiB root "
                f"disk; flavor {new_flavor.name!r} has {new_flavor.disk_gb} GiB (disks never "
                "shrink)", new_flavor.name)
        missing = self.unavailable_features().get("resize")
        if missing and not volume_backed:  # what is missing is about root disks of our own
            raise exception.CapabilityNotSupported(type(self).__name__, "resize")
        with self._with_domain("migrate_disk_and_power_off", instance) as dom:
            if dom.isActive() and not self._clean_shutdown(dom, self.opts.shutdown_timeout):
                self._force_off(dom)
            if dom.hasManagedSaveImage(0):
                dom.managedSaveRemove(0)  # a saved memory state cannot take another flavor
            definition = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        directory = self._instance_dir(instance.uuid)
        backup = self._resize_dir(instance.uuid)
        token = uuid_lib.uuid4().hex
        if not os.path.isdir(backup):  # a repeated call keeps the first backup
            partial = backup + ".part"
            shutil.rmtree(partial, ignore_errors=True)
            os.makedirs(directory, exist_ok=True)
            shutil.copytree(directory, partial, symlinks=True)
            with open(os.path.join(partial, "resize.xml"), "w", encoding="utf-8") as handle:
                handle.write(definition)
            os.replace(partial, backup)
        with open(os.path.join(backup, RESIZE_META), "w", encoding="utf-8") as handle:
            json.dump({"source_host": self.host, "dest_host": dest_host, "token": token},
                      handle)
        return {"source_host": self.host, "token": token}

    def _shares_storage_with(self, instance_uuid: str, disk_info: Mapping[str, Any]) -> bool:
        """Whether the source's backup (and so its instances_path) is visible here."""
        return self._resize_meta(instance_uuid).get("token") == disk_info.get("token")

    def finish_migration(
        self, instance: Instance, disk_info: Mapping[str, Any],
        network_info: Sequence[Mapping[str, Any]],
        block_device_info: Sequence[Mapping[str, Any]], resize_instance: bool,
        power_on: bool,
    ) -> None:
        """Grow the overlay to the new flavor (pointed at this host's copy of the image),
        define the domain with the new flavor, ports and volumes, start it if asked. A
        volume-backed instance is defined booting from its volume (in ``block_device_info``,
        exported here), nothing grown."""
        vifs = [vif.parse(v) for v in network_info]
        boot, volumes = block_devices(instance.uuid, block_device_info)
        if not self._shares_storage_with(instance.uuid, disk_info):
            raise exception.DriverError(
                f"instance {instance.uuid}: {disk_info.get('source_host')} and {self.host} do "
                f"not share [libvirt] instances_path ({self.instances_path}); a resize or "
                "migration between hosts needs shared instance storage (copying disks between "
                "hosts is not implemented yet)", instance=instance.uuid)
        with self._translated("finish_migration", instance):
            conn = self._conn()
            if boot is not None:
                self._define_and_start(conn, instance, boot,
                                       self._console_log(instance.uuid), volumes, vifs,
                                       power_on)
                return
            if self.is_test_driver:
                root = domain_xml.file_disk(instance.image.path, instance.image.disk_format
                                            or "raw", "vda", "virtio")
                console = None
            else:
                overlay = os.path.join(self._instance_dir(instance.uuid), ROOT_DISK)
                if resize_instance:
                    images.grow(overlay, instance.flavor.disk_gb * host.GiB)
                if images.backing_file(overlay) != os.path.abspath(instance.image.path):
                    images.rebase_unsafe(overlay, instance.image.path,
                                         instance.image.disk_format)
                root = domain_xml.file_disk(overlay, "qcow2", "vda", "virtio")
                console = os.path.join(self._instance_dir(instance.uuid), CONSOLE_LOG)
            self._define_and_start(conn, instance, root, console, volumes, vifs, power_on)

    def _define_and_start(self, conn: Any, instance: Instance, root: ET.Element | BootVolume,
                          console: str | None, volumes: list[volume.VolumeDisk],
                          vifs: list[Any], power_on: bool) -> None:
        """(Re)define the domain of ``instance`` from scratch (flavor, root disk - the
        driver's own, or a boot volume -, volumes, VIFs) and start it when ``power_on`` and
        not running."""
        secrets: list[Any] = []
        boot_volume = None
        if isinstance(root, BootVolume):
            boot_volume = root.volume_id
            root = root.disk.element(self._define_secret(conn, root.disk, secrets))
        devices = []
        for spec in volumes:
            devices.append(spec.element(self._define_secret(conn, spec, secrets)))
        devices.extend(v.element() for v in vifs)
        document = domain_xml.build_domain(instance, self.host, self._settings_for(conn),
                                           root_disk=root, console_log=console,
                                           devices=devices, boot_volume=boot_volume)
        existing = self._find(conn, instance.uuid)
        if existing is not None and existing.isActive():
            self._force_off(existing)
        dom = conn.defineXML(domain_xml.to_string(document))
        if power_on and not dom.isActive():
            dom.create()

    def confirm_migration(self, instance: Instance,
                          network_info: Sequence[Mapping[str, Any]]) -> None:
        """Remove the backup; on another host than the instance's new one, also the old
        definition (the files are the instance's now, on shared storage)."""
        meta = self._resize_meta(instance.uuid)
        if meta and meta.get("dest_host") != self.host:
            with self._translated("confirm_migration", instance):
                conn = self._conn()
                dom = self._find(conn, instance.uuid)
                if dom is not None:
                    self._force_off(dom)
                    self._undefine(dom)
                self._remove_secrets(conn, volume.secret_usage_prefix(instance.uuid))
        shutil.rmtree(self._resize_dir(instance.uuid), ignore_errors=True)

    def revert_migration(self, instance: Instance,
                         network_info: Sequence[Mapping[str, Any]],
                         block_device_info: Sequence[Mapping[str, Any]]) -> None:
        """Stop the new instance; on another host than the source, undefine it too. The
        files stay: they are the source's (shared storage), restored from the backup by
        finish_revert_migration."""
        meta = self._resize_meta(instance.uuid)
        with self._translated("revert_migration", instance):
            conn = self._conn()
            dom = self._find(conn, instance.uuid)
            if dom is None:
                return
            self._force_off(dom)
            if meta.get("source_host", self.host) != self.host:
                self._undefine(dom)
                self._remove_secrets(conn, volume.secret_usage_prefix(instance.uuid))

    def finish_revert_migration(
        self, instance: Instance, network_info: Sequence[Mapping[str, Any]],
        block_device_info: Sequence[Mapping[str, Any]], power_on: bool,
    ) -> None:
        """Put the instance directory back from the backup (if there is one), define the
        domain with the old flavor, ports and volumes, start it if asked. A volume-backed
        instance (never migrated: migrate_disk_and_power_off refuses it) keeps booting from
        its volume: from the boot volume in ``block_device_info``, or - when that has none -
        from the definition it has."""
        vifs = [vif.parse(v) for v in network_info]
        boot, volumes = block_devices(instance.uuid, block_device_info)
        directory = self._instance_dir(instance.uuid)
        backup = self._resize_dir(instance.uuid)
        if not os.path.isdir(backup):
            # nothing was migrated (migrate_disk_and_power_off failed early): a running
            # instance is left running; a stopped one is defined afresh below (its volumes
            # were exported to this host again)
            with self._translated("finish_revert_migration", instance):
                dom = self._find(self._conn(), instance.uuid)
                if dom is not None and dom.isActive():
                    return
        if os.path.isdir(backup):
            for name in (RESIZE_META, "resize.xml"):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(os.path.join(backup, name))
            shutil.rmtree(directory, ignore_errors=True)
            os.replace(backup, directory)
        with self._translated("finish_revert_migration", instance):
            conn = self._conn()
            root: ET.Element | BootVolume
            if boot is not None:
                root = boot
            else:
                existing = self._find(conn, instance.uuid)
                if existing is not None and self._boot_volume_of(existing) is not None:
                    # no connection_info to define its root disk with: keep the definition
                    if power_on and not existing.isActive():
                        existing.create()
                    return
                if self.is_test_driver:
                    root = domain_xml.file_disk(instance.image.path, instance.image.disk_format
                                                or "raw", "vda", "virtio")
                else:
                    root = domain_xml.file_disk(os.path.join(directory, ROOT_DISK), "qcow2",
                                                "vda", "virtio")
            self._define_and_start(conn, instance, root, self._console_log(instance.uuid),
                                   volumes, vifs, power_on)

    # --- live migration (stackcore_drivers.libvirt.live_migration) -----------------------
    # Each host has its own instances_path: the destination makes the directory, an empty
    # overlay on its own cached copy of the image (a block migration) and its own
    # connection of each volume; the source's domain XML is rewritten to those
    # (live_migration.dest_document). Root disks in Ceph (images_type = rbd) and boot
    # volumes are shared storage: nothing of them is copied. A local root disk on storage
    # both hosts share (an NFS instances_path) is not supported: block_migration False for
    # one is refused before anything is made.

    def _host_uuid(self, conn: Any) -> str:
        return str(domain_xml.parse(conn.getCapabilities()).findtext("host/uuid") or "")

    def _inbound_addr(self) -> str:
        addr = self.opts.live_migration_inbound_addr
        if not addr:
            try:
                addr = self.conf.compute.my_ip
            except (AttributeError, KeyError):  # a driver built outside a cloud (the kit)
                addr = None
        if not addr:
            raise exception.ConfigError(
                "[libvirt] live_migration_inbound_addr is unset and so is [compute] my_ip: "
                "no address for other hosts to send a live-migrating guest to")
        return str(addr)

    def pre_live_migration(
        self, instance: Instance, network_info: Sequence[Mapping[str, Any]],
        block_device_info: Sequence[Mapping[str, Any]], block_migration: bool | None,
    ) -> Mapping[str, Any]:
        boot, volumes = block_devices(instance.uuid, block_device_info)
        for item in network_info:
            vif.parse(item)  # a VIF this host cannot wire is refused before anything is made
        shared_root = boot is not None or self.rbd_disks is not None or self.is_test_driver
        if block_migration is False and not shared_root:
            raise exception.Invalid(
                "block_migration", f"instance {instance.uuid} has a local root disk: a live "
                "migration between hosts of the libvirt driver copies it (shared "
                "instances_path is not supported)", block_migration)
        with self._translated("pre_live_migration", instance):
            conn = self._conn()
            if self._find(conn, instance.uuid) is not None \
                    or self._lookup(conn, uuid=instance.uuid) is not None:
                raise exception.Invalid(
                    "instance", f"libvirt on {self.host} already has a domain for instance "
                    f"{instance.uuid}", instance.uuid)
            settings = self._settings_for(conn)
            directory = self._instance_dir(instance.uuid)
            if os.path.lexists(directory):
                # the source's own directory (an instances_path both hosts share) or what a
                # failed try left: never written over, never removed by the rollback
                raise exception.Invalid(
                    "instance", f"{directory} exists on {self.host}: its instances_path is "
                    f"shared with the source or holds a leftover of instance "
                    f"{instance.uuid}; not touched", instance.uuid)
            root_disk = None
            secrets: list[Any] = []
            try:
                os.makedirs(directory)
                with open(os.path.join(directory, ARRIVING), "w", encoding="utf-8") as handle:
                    json.dump({"host": self.host}, handle)
                if not shared_root:
                    root_disk = os.path.join(directory, ROOT_DISK)
                    images.create_overlay(instance.image.path, instance.image.disk_format,
                                          root_disk, instance.flavor.disk_gb * host.GiB)
                disks = {spec.target_dev: domain_xml.to_string(
                    spec.element(self._define_secret(conn, spec, secrets)))
                    for spec in volumes}
                if boot is not None:
                    disks[boot.disk.target_dev] = domain_xml.to_string(
                        boot.disk.element(self._define_secret(conn, boot.disk, secrets)))
                host_uuid = "" if self.is_test_driver else self._host_uuid(conn)
            except BaseException:
                self._remove_secrets(conn, volume.secret_usage_prefix(instance.uuid))
                shutil.rmtree(directory, ignore_errors=True)
                raise
        return {
            "host": self.host,
            "uri": self.opts.live_migration_connection_uri or self.opts.connection_uri,
            "address": "" if self.is_test_driver else self._inbound_addr(),
            "host_uuid": host_uuid,
            "virt_type": settings.domain_type,
            "instance_dir": directory,
            "root_disk": root_disk,
            "block_migration": root_disk is not None,
            "volumes": disks,
        }

    def live_migration(
        self, instance: Instance, dest_host: str, migrate_data: Mapping[str, Any],
        block_device_info: Sequence[Mapping[str, Any]],
    ) -> Mapping[str, Any]:
        import libvirt
        if self.is_test_driver:
            raise exception.CapabilityNotSupported(type(self).__name__, "live_migration")
        job = live_migration.Job(instance.uuid)
        with self._with_domain("live_migration", instance) as dom:
            conn = self._conn()
            if self._state(dom) not in (libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_PAUSED):
                raise exception.InvalidState(
                    f"instance {instance.uuid} does not run on {self.host}: only a running "
                    "or paused instance migrates live", state=str(self._state(dom)))
            if migrate_data.get("host_uuid") == self._host_uuid(conn):
                raise exception.Invalid(
                    "host", f"{dest_host} is the same libvirt host as {self.host} (host "
                    f"uuid {migrate_data.get('host_uuid')})", dest_host)
            if migrate_data.get("virt_type") != self._settings_for(conn).domain_type:
                raise exception.Invalid(
                    "host", f"{dest_host} runs {migrate_data.get('virt_type')} guests, "
                    f"{self.host} {self._settings_for(conn).domain_type}", dest_host)
            block = bool(migrate_data.get("block_migration"))
            document = live_migration.dest_document(
                dom.XMLDesc(libvirt.VIR_DOMAIN_XML_MIGRATABLE),
                source_dir=self._instance_dir(instance.uuid),
                dest_dir=str(migrate_data["instance_dir"]), dest_host=dest_host,
                volumes=dict(migrate_data.get("volumes") or {}))
            address = str(migrate_data["address"])
            params: dict[str, Any] = {
                libvirt.VIR_MIGRATE_PARAM_URI: f"tcp://{address}",
                libvirt.VIR_MIGRATE_PARAM_LISTEN_ADDRESS: address,
                libvirt.VIR_MIGRATE_PARAM_DEST_XML: document,
                libvirt.VIR_MIGRATE_PARAM_PERSIST_XML: document,
            }
            flags = (libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PERSIST_DEST
                     | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE)
            if block:
                # only the overlay: the destination's own cache holds the same base image
                flags |= libvirt.VIR_MIGRATE_NON_SHARED_INC
                params[libvirt.VIR_MIGRATE_PARAM_MIGRATE_DISKS] = ["vda"]
            if self.opts.live_migration_bandwidth:
                params[libvirt.VIR_MIGRATE_PARAM_BANDWIDTH] = \
                    self.opts.live_migration_bandwidth
            if self.opts.live_migration_permit_auto_converge:
                flags |= libvirt.VIR_MIGRATE_AUTO_CONVERGE
            gib = max(1.0, (instance.flavor.ram_mb / 1024)
                      + (instance.flavor.disk_gb if block else 0))
            timeout = self.opts.live_migration_completion_timeout * gib
            with self._migrations_lock:
                self._migrations[instance.uuid] = job
            try:
                dconn = libvirt.open(str(migrate_data["uri"]))
                try:
                    _, figures = live_migration.run(
                        dom, dconn, params, flags, job,
                        downtime_ms=self.opts.live_migration_downtime, timeout_s=timeout)
                finally:
                    dconn.close()
            finally:
                with self._migrations_lock:
                    self._migrations.pop(instance.uuid, None)
        return figures

    def live_migration_abort(self, instance: Instance) -> None:
        with self._migrations_lock:
            job = self._migrations.get(instance.uuid)
        if job is None:
            raise exception.InvalidState(
                f"no live migration of instance {instance.uuid} runs from {self.host}",
                state="not-migrating")
        job.abort.set()

    def post_live_migration_at_destination(
        self, instance: Instance, network_info: Sequence[Mapping[str, Any]],
        block_device_info: Sequence[Mapping[str, Any]],
    ) -> None:
        """The domain arrived persistent (VIR_MIGRATE_PERSIST_DEST) and owned by this host
        (the source rewrote its record): checked; defined again if it is not persistent."""
        with self._with_domain("post_live_migration_at_destination", instance) as dom:
            if not dom.isPersistent():
                self._conn().defineXML(dom.XMLDesc(0))
        with contextlib.suppress(FileNotFoundError):  # the instance is this host's now
            os.remove(os.path.join(self._instance_dir(instance.uuid), ARRIVING))

    def post_live_migration(
        self, instance: Instance, network_info: Sequence[Mapping[str, Any]],
        block_device_info: Sequence[Mapping[str, Any]], migrate_data: Mapping[str, Any],
    ) -> None:
        """The domain left (undefined here by VIR_MIGRATE_UNDEFINE_SOURCE); its directory
        (the overlay a block migration copied, the console log) and secrets go. An RBD root
        disk or a boot volume is the destination's now: never touched."""
        with self._translated("post_live_migration", instance):
            conn = self._conn()
            dom = self._find(conn, instance.uuid)
            if dom is not None:
                if dom.isActive():
                    raise exception.DriverError(
                        f"instance {instance.uuid} still runs on {self.host} after its live "
                        "migration: left alone", instance=instance.uuid)
                self._undefine(dom)
            self._remove_secrets(conn, volume.secret_usage_prefix(instance.uuid))
        shutil.rmtree(self._instance_dir(instance.uuid), ignore_errors=True)

    def rollback_live_migration_at_destination(
        self, instance: Instance, network_info: Sequence[Mapping[str, Any]],
        block_device_info: Sequence[Mapping[str, Any]], migrate_data: Mapping[str, Any],
    ) -> None:
        """What pre_live_migration made, and only that: a half-arrived domain owned by this
        host (libvirt removes it itself when the migration fails; after a crash it may
        stay), the secrets and the directory it made (marked by its ``arriving.json``). A
        domain another host owns (a daemon shared with the source: its guest runs) and a
        directory pre_live_migration did not make (shared with the source) are left alone."""
        directory = self._instance_dir(instance.uuid)
        made_here = os.path.isfile(os.path.join(directory, ARRIVING))
        with self._translated("rollback_live_migration_at_destination", instance):
            conn = self._conn()
            dom = self._find(conn, instance.uuid)
            owner = None if dom is None else domain_xml.ownership(
                domain_xml.parse(dom.XMLDesc(0)))
            if owner is not None and owner.host != self.host:
                return  # not an arrival: another host's guest
            if dom is not None or made_here:
                self._remove(conn, instance.uuid, destroy_disks=False)
        if made_here:
            shutil.rmtree(directory, ignore_errors=True)

    # --- volumes ---------------------------------------------------------------------------

    @staticmethod
    def _live_flags(dom: Any) -> int:
        import libvirt
        flags = int(libvirt.VIR_DOMAIN_AFFECT_CONFIG)
        if dom.isActive():
            flags |= libvirt.VIR_DOMAIN_AFFECT_LIVE
        return flags

    def attach_volume(
        self, instance: Instance, connection_info: Mapping[str, Any], mountpoint: str
    ) -> None:
        import libvirt
        spec = volume.parse(connection_info, instance.uuid, mountpoint)
        with self._with_domain("attach_volume", instance) as dom:
            conn = self._conn()
            current = domain_xml.parse(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
            if domain_xml.find_disk(current, spec.target_dev) is not None or (
                domain_xml.find_disk(domain_xml.parse(dom.XMLDesc(0)), spec.target_dev)
                is not None
            ):
                raise exception.Conflict(
                    f"{mountpoint} is already in use on instance {instance.uuid}",
                    mountpoint=mountpoint,
                )
            made: list[Any] = []
            try:
                secret_uuid = self._define_secret(conn, spec, made)
                dom.attachDeviceFlags(domain_xml.to_string(spec.element(secret_uuid)),
                                      self._live_flags(dom))
            except BaseException:
                for secret in made:
                    with contextlib.suppress(libvirt.libvirtError):
                        secret.undefine()
                raise
            LOG.info("attached %s volume at %s to instance %s", spec.kind, spec.target_dev,
                     instance.uuid)

    def detach_volume(
        self, instance: Instance, connection_info: Mapping[str, Any], mountpoint: str
    ) -> None:
        target_dev, _ = volume.target_from_mountpoint(mountpoint)
        with self._with_domain("detach_volume", instance) as dom:
            self._detach_device(
                dom, lambda doc: domain_xml.find_disk(doc, target_dev), f"disk {target_dev}"
            )
            self._remove_secrets(self._conn(),
                                 volume.secret_usage_id(instance.uuid, target_dev))

    def extend_volume(self, instance: Instance, mountpoint: str, new_size_bytes: int) -> None:
        """``virDomainBlockResize`` of the disk at ``mountpoint`` in the running domain: QEMU
        re-reads the grown volume (iSCSI READ CAPACITY, the NFS file's or RBD image's size)
        and the guest gets a capacity-change event. Every volume here is a network disk QEMU
        opens itself, so there is no host device to rescan first. A stopped domain needs
        nothing: QEMU reads the size when it opens the disk at start. ``/dev/vda`` is a
        volume only on a volume-backed instance (its boot volume); else Invalid."""
        import libvirt
        if mountpoint == volume.ROOT_MOUNTPOINT:
            target_dev = "vda"  # a boot volume's, checked against the definition below
        else:
            target_dev, _ = volume.target_from_mountpoint(mountpoint)
        with self._with_domain("extend_volume", instance) as dom:
            if target_dev == "vda" and self._boot_volume_of(dom) is None:
                raise exception.Invalid(
                    "mountpoint", f"{mountpoint} is instance {instance.uuid}'s own root disk, "
                    "not a volume", mountpoint)
            active = bool(dom.isActive())
            doc = domain_xml.parse(dom.XMLDesc(0 if active else
                                               libvirt.VIR_DOMAIN_XML_INACTIVE))
            if domain_xml.find_disk(doc, target_dev) is None:
                raise exception.NotFound("volume attachment", mountpoint,
                                         f"no disk {target_dev} on instance {instance.uuid}")
            if not active:
                return
            dom.blockResize(target_dev, int(new_size_bytes),
                            libvirt.VIR_DOMAIN_BLOCK_RESIZE_BYTES)
            LOG.info("instance %s: disk %s resized to %d bytes", instance.uuid, target_dev,
                     new_size_bytes)

    def _detach_device(
        self, dom: Any, find: Callable[[ET.Element], ET.Element | None], what: str
    ) -> None:
        """Detach a device from the persistent config and the running guest (whichever has it);
        wait until the guest released it. Absent everywhere: nothing to do."""
        import libvirt
        persistent = find(domain_xml.parse(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)))
        if persistent is not None:
            dom.detachDeviceFlags(domain_xml.to_string(persistent),
                                  libvirt.VIR_DOMAIN_AFFECT_CONFIG)
        if not dom.isActive():
            return
        live = find(domain_xml.parse(dom.XMLDesc(0)))
        if live is None:
            return
        dom.detachDeviceFlags(domain_xml.to_string(live), libvirt.VIR_DOMAIN_AFFECT_LIVE)
        gone = self._wait_for(lambda: find(domain_xml.parse(dom.XMLDesc(0))) is None,
                              self.opts.device_detach_timeout)
        if not gone:
            raise exception.DriverError(
                f"the guest did not release {what} within {self.opts.device_detach_timeout}s: a "
                f"PCI unplug needs the guest OS to acknowledge it (SCSI disks do not); it is "
                f"already gone from the persistent definition, so the next power cycle drops it"
            )

    def attached_disks(self, instance: Instance) -> dict[str, ET.Element]:
        """Target dev -> ``<disk>`` of the running (else persistent) definition (diagnostics)."""
        with self._with_domain("read disks", instance) as dom:
            doc = domain_xml.parse(dom.XMLDesc(0))
        disks = {}
        for disk in doc.findall("devices/disk"):
            target = disk.find("target")
            if target is not None and target.get("dev"):
                disks[str(target.get("dev"))] = disk
        return disks

    # --- VIFs ------------------------------------------------------------------------------

    def plug_vifs(self, instance: Instance, network_info: Sequence[Mapping[str, Any]]) -> None:
        vifs = [vif.parse(v) for v in network_info]
        with self._with_domain("plug_vifs", instance) as dom:
            for item in vifs:
                doc = domain_xml.parse(dom.XMLDesc(0))
                if domain_xml.find_interface(doc, item.mac) is not None:
                    continue  # already plugged
                dom.attachDeviceFlags(domain_xml.to_string(item.element()),
                                      self._live_flags(dom))

    def unplug_vifs(self, instance: Instance, network_info: Sequence[Mapping[str, Any]]) -> None:
        macs = []
        for item in network_info:
            mac = str(item.get("address") or item.get("mac_address") or "").lower()
            if not mac:
                raise exception.Invalid("vif.address", "a MAC address is required to unplug")
            macs.append(mac)
        with self._with_domain("unplug_vifs", instance) as dom:
            for mac in macs:
                self._detach_device(dom, _interface_finder(mac), f"interface {mac}")


def _interface_finder(mac: str) -> Callable[[ET.Element], ET.Element | None]:
    def find(doc: ET.Element) -> ET.Element | None:
        return domain_xml.find_interface(doc, mac)

    return find
