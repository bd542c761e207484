"""The hypervisor driver contract.

This module *is* the specification a hypervisor driver is written against: every method below
states when the compute manager calls it, what it must do, what it may assume, and what raising
means. :data:`CONTRACT` is what the loader checks each driver class against at load time.

General rules, for every method:

* The manager serialises calls per instance: a driver never sees two calls for the same
  instance at once, but calls for different instances may run concurrently in threads.
* Raising any exception means "this step failed". The manager records a fault on the instance,
  moves it to ERROR, releases the host's claim and calls :meth:`destroy` to remove whatever was
  half made. So a driver does not need to clean up after a failed :meth:`spawn` itself, but
  :meth:`destroy` must cope with any partial state ``spawn`` can leave.
* Drivers never touch the database.
* Raise :class:`~stackcore.exception.BackendUnavailable` when the backend cannot be reached, and
  :class:`~stackcore.exception.DriverError` (or a subclass) for other backend failures; any
  other exception is wrapped as a ``DriverError`` by the manager.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from stackcore import exception
from stackcore.compute.objects import Flavor, Image, Instance, InstanceInfo, RebootType
from stackcore.plugins.contract import Contract

if TYPE_CHECKING:  # oslo.config is imported by whoever builds the driver, not by the contract
    from oslo_config import cfg

NAMESPACE = "stackcore.compute.drivers"

#: Optional features and the methods that implement each. A driver declares the ones it offers
#: in its ``capabilities`` mapping; the loader checks every declared one is implemented.
CAPABILITIES: Mapping[str, tuple[str, ...]] = {
    "attach_volume": ("attach_volume", "detach_volume"),
    "plug_vifs": ("plug_vifs", "unplug_vifs"),
    "snapshot": ("snapshot",),
    # a flag on ``snapshot``: it may be called on a running instance, which keeps running
    "live_snapshot": ("snapshot",),
    "pause": ("pause", "unpause"),
    "suspend": ("suspend", "resume"),
    "console_output": ("get_console_output",),
    "rescue": ("rescue", "unrescue"),
    # online volume extend: show a running guest the new size of a grown volume
    "extend_volume": ("extend_volume",),
    # a flag on ``spawn``: the root disk may be a volume (``block_device_info`` entry with
    # ``boot_index`` 0) instead of a disk made from an image
    "boot_from_volume": ("spawn",),
    # resize and cold migrate, with confirm and revert (stackcore.compute.migration)
    "resize": ("migrate_disk_and_power_off", "finish_migration", "confirm_migration",
               "revert_migration", "finish_revert_migration"),
    # live migration of a running (or paused) instance between two hosts of this driver
    # (stackcore.compute.live_migration)
    "live_migration": ("pre_live_migration", "live_migration", "live_migration_abort",
                       "post_live_migration_at_destination", "post_live_migration",
                       "rollback_live_migration_at_destination"),
}


class HypervisorDriver(abc.ABC):
    """Base class of every hypervisor driver.

    Class attributes a driver sets:

    ``VERSION``
        Its own version string, reported in stats listings and the support matrix.
    ``capabilities``
        ``{capability: bool}`` for the keys of :data:`CAPABILITIES`; missing keys mean False.

    A driver is built once per compute host as ``Driver(conf, host)``; ``conf`` is the cloud's
    :class:`oslo_config.cfg.ConfigOpts` on which the options from :meth:`list_opts` are already
    registered.
    """

    VERSION: ClassVar[str] = ""
    capabilities: ClassVar[Mapping[str, bool]] = {}

    def __init__(self, conf: cfg.ConfigOpts, host: str) -> None:
        self.conf = conf
        self.host = host

    @classmethod
    def list_opts(cls) -> list[tuple[str, Sequence[cfg.Opt]]]:
        """The driver's own config options as ``[(group, [opts])]``; none by default."""
        return []

    def unavailable_features(self) -> dict[str, str]:
        """Declared capabilities the backend this driver is connected to cannot offer, with
        the reason (e.g. ``{"plug_vifs": "libvirt's test driver has no device hot-plug"}``).
        Keys from :data:`CAPABILITIES`. The conformance suite skips exactly these, with the
        reason (a declared capability is otherwise tested). Default: none."""
        return {}

    def needs_image_file(self, image: Image) -> bool:
        """Whether :meth:`spawn` reads ``image.path`` for an instance of ``image``. Before a
        spawn (build, rebuild) the manager fetches an uploaded image into the host's image
        cache only when this is True - the default, always. A driver that makes the disk from
        the store's copy itself (the libvirt driver's RBD root disks, cloned from the rbd
        store) returns False for those images; ``image.path`` may then not exist during
        :meth:`spawn`. Raising fails the build like a failed fetch."""
        return True

    # --- required ------------------------------------------------------------------------

    @abc.abstractmethod
    def init_host(self, host: str) -> None:
        """Prepare the backend for this host. Called once when the compute service starts,
        before any other method and before the manager reconciles instances. Raising aborts the
        service start-up."""

    @abc.abstractmethod
    def get_available_resource(self) -> dict[str, Any]:
        """Report the host's resources. Called periodically and after every lifecycle change.

        Returns a mapping meeting :data:`stackcore.compute.stats.SCHEMA` (vcpus, memory_mb,
        local_gb, the ``*_used`` figures, hypervisor type/version/hostname, cpu_info,
        supported_instances). A report that breaks the schema is rejected and the host is marked
        as not reporting, so the scheduler stops placing on it."""

    @abc.abstractmethod
    def list_instances(self) -> list[str]:
        """UUIDs of every instance this driver has on the backend for this host, in any state.
        Used by start-up reconciliation to find unknown and missing instances."""

    @abc.abstractmethod
    def spawn(
        self,
        instance: Instance,
        image: Image,
        network_info: Sequence[Mapping[str, Any]],
        block_device_info: Sequence[Mapping[str, Any]],
    ) -> None:
        """Create and start the instance; return once it is running.

        ``image.path`` is a local file holding the image (the host's image-cache copy, or a
        registered file), fetched and checked before this call; ``image.location`` is its
        store location when it was uploaded (``""`` otherwise): a driver that can use the
        store's copy directly (the libvirt driver's RBD root disks clone from the rbd store)
        may, and ``path`` is there either way.

        ``network_info`` lists VIFs: the ports already bound to this host, as
        :meth:`stackcore.network.api.NetworkAPI.allocate_ports_for_instance` returns them
        (``id``, ``mac_address``, ``vif_type``, ``vif_details``, ``devname``, ``mtu``,
        ``segment``...). ``block_device_info`` lists the volumes to attach at boot, each
        ``{"mount_device": "/dev/vdb", "volume_id": ..., "connection_info": {...}}`` with the
        volume already exported to this host. On failure, raise: the manager will call
        :meth:`destroy` for cleanup, then end the exports and release the ports itself.

        Boot from volume (capability ``boot_from_volume``; the manager never asks a driver
        that does not declare it): one entry has ``"boot_index": 0`` and ``mount_device``
        ``/dev/vda`` - that volume *is* the root disk. The driver makes no disk from the
        image (``image.path`` is ``""`` and ``image.disk_format`` the volume's format,
        ``raw``; ``image.id`` names the image the volume was made from, if any), boots from
        the volume, and :meth:`destroy` never removes it (the volume service owns it; the
        manager deletes it afterwards when the server was asked to). Entries without
        ``boot_index`` are data volumes as before."""

    @abc.abstractmethod
    def destroy(
        self,
        instance: Instance,
        network_info: Sequence[Mapping[str, Any]],
        block_device_info: Sequence[Mapping[str, Any]],
        destroy_disks: bool = True,
    ) -> None:
        """Stop the instance and remove everything the driver made for it (definition, disks
        when ``destroy_disks``, console logs, secrets). ``network_info`` is what the instance
        holds now; ``block_device_info`` entries carry ``mount_device`` and ``volume_id`` but
        no ``connection_info`` (it can hold secrets, so it is never stored). The manager ends
        the volume exports and releases the ports after this returns. Must succeed for an
        instance the backend does not know, and for any partial state :meth:`spawn` can leave:
        it is the cleanup path after failures and is called again after restarts."""

    @abc.abstractmethod
    def get_info(self, instance: Instance) -> InstanceInfo:
        """The instance's power state. Raise :class:`~stackcore.exception.NotFound` (kind
        ``instance``) when the backend does not know it."""

    @abc.abstractmethod
    def reboot(self, instance: Instance, reboot_type: RebootType) -> None:
        """Reboot. ``SOFT`` asks the guest and may fall back to ``HARD`` (power cycle);
        the instance must be running when this returns, also when it was stopped (a hard
        reboot is how a user restarts a stopped or stuck instance)."""

    @abc.abstractmethod
    def power_off(self, instance: Instance, timeout: int = 0) -> None:
        """Stop the instance; with ``timeout`` > 0 try a clean guest shutdown for that many
        seconds first. Powering off an instance already off succeeds."""

    @abc.abstractmethod
    def power_on(self, instance: Instance) -> None:
        """Start a stopped instance. Powering on a running instance succeeds."""

    # --- optional (declared in ``capabilities``) --------------------------------------------

    def attach_volume(
        self, instance: Instance, connection_info: Mapping[str, Any], mountpoint: str
    ) -> None:
        """Attach a volume described by a Cinder-style ``connection_info`` (``driver_volume_type``
        iscsi / nfs / rbd + ``data``) at ``mountpoint`` (e.g. ``/dev/vdb``). Unknown volume
        types raise :class:`~stackcore.exception.Invalid` and attach nothing; a mountpoint
        already in use raises a :class:`~stackcore.exception.StackcoreError` (``Conflict``).
        On a stopped instance the attachment is recorded in its definition (nothing is
        connected until it starts). Capability: ``attach_volume``."""
        raise exception.CapabilityNotSupported(type(self).__name__, "attach_volume")

    def detach_volume(
        self, instance: Instance, connection_info: Mapping[str, Any], mountpoint: str
    ) -> None:
        """Detach the volume at ``mountpoint``; detaching one that is not attached succeeds.
        ``connection_info`` here holds only ``volume_id``: the full one is never stored (it
        can hold secrets), so drivers find the disk by ``mountpoint``. The manager ends the
        export after this returns. Capability: ``attach_volume``."""
        raise exception.CapabilityNotSupported(type(self).__name__, "attach_volume")

    def extend_volume(self, instance: Instance, mountpoint: str, new_size_bytes: int) -> None:
        """The volume attached at ``mountpoint`` grew on its backend to ``new_size_bytes``:
        make the running guest see that size (libvirt: ``virDomainBlockResize``). On an
        instance that is not running there is nothing to do (a disk's size is read when it
        is opened), but the mountpoint must be attached: one with no volume raises
        :class:`~stackcore.exception.NotFound`. Called by the compute manager for the
        ``volume-extended`` instance event (:mod:`stackcore.rpc.instance_events`), after the
        volume service grew the volume, under the instance's lock and in no transaction;
        raising records a fault on the server, whose state does not change (the guest sees
        the size at its next power cycle). Capability: ``extend_volume``."""
        raise exception.CapabilityNotSupported(type(self).__name__, "extend_volume")

    def plug_vifs(self, instance: Instance, network_info: Sequence[Mapping[str, Any]]) -> None:
        """Connect the instance's VIFs to their networks; plugging a plugged VIF succeeds. A
        ``vif_type`` the driver cannot plug raises :class:`~stackcore.exception.Invalid`
        naming it and plugs nothing. Capability: ``plug_vifs``."""
        raise exception.CapabilityNotSupported(type(self).__name__, "plug_vifs")

    def unplug_vifs(self, instance: Instance, network_info: Sequence[Mapping[str, Any]]) -> None:
        """Disconnect VIFs; unplugging one that is not plugged succeeds.
        Capability: ``plug_vifs``."""
        raise exception.CapabilityNotSupported(type(self).__name__, "plug_vifs")

    def snapshot(self, instance: Instance, image_path: str) -> None:
        """Write the instance's root disk to a new image file at ``image_path``, in the format
        :func:`snapshot_format` names for ``instance.image.disk_format`` (the manager uploads
        it to the image service declared so, and the upload checks it).

        Called on a stopped or suspended instance - unless the driver also declares
        ``live_snapshot``: then it is called on a running one too, which must still be
        running when this returns. Without ``live_snapshot`` the manager suspends a running
        instance around the call (``suspend``/``resume``, or ``power_off``/``power_on`` when
        the driver has no ``suspend``). Raising leaves nothing to clean up at ``image_path``
        that the manager cares about (it removes the file). Capability: ``snapshot``."""
        raise exception.CapabilityNotSupported(type(self).__name__, "snapshot")

    def pause(self, instance: Instance) -> None:
        """Freeze the running instance in memory; :meth:`get_info` then says ``PAUSED``
        (the manager checks it). Capability: ``pause``."""
        raise exception.CapabilityNotSupported(type(self).__name__, "pause")

    def unpause(self, instance: Instance) -> None:
        """Resume a paused instance (``RUNNING`` afterwards). Capability: ``pause``."""
        raise exception.CapabilityNotSupported(type(self).__name__, "pause")

    def suspend(self, instance: Instance) -> None:
        """Save the instance's state (memory included) to disk and stop it; :meth:`get_info`
        then says ``SUSPENDED`` (or ``SHUTDOWN``), and the instance holds no CPU or memory.
        Capability: ``suspend``."""
        raise exception.CapabilityNotSupported(type(self).__name__, "suspend")

    def resume(self, instance: Instance) -> None:
        """Restore a suspended instance from its saved state (``RUNNING`` afterwards).
        Capability: ``suspend``."""
        raise exception.CapabilityNotSupported(type(self).__name__, "suspend")

    def rescue(self, instance: Instance, rescue_image: Image) -> None:
        """Boot the instance from ``rescue_image`` (a disk made from it), its own root disk
        still attached but not booted (for the rescue system to repair); the instance is
        running when this returns and :meth:`get_info` reports ``InstanceInfo.rescued`` True.
        ``destroy`` removes a rescued instance with everything rescue made. Capability:
        ``rescue``."""
        raise exception.CapabilityNotSupported(type(self).__name__, "rescue")

    def unrescue(self, instance: Instance) -> None:
        """Boot the rescued instance from its own root disk again (what the rescue system
        changed on it is kept) and remove what :meth:`rescue` made; running afterwards,
        ``rescued`` False. Unrescuing an instance that is not rescued succeeds. Capability:
        ``rescue``."""
        raise exception.CapabilityNotSupported(type(self).__name__, "rescue")

    def get_console_output(self, instance: Instance) -> str:
        """The instance's serial console log so far (the driver may keep only its last part);
        NotFound for an instance the backend does not have. The API cuts the last lines a
        caller asks for. Capability: ``console_output``."""
        raise exception.CapabilityNotSupported(type(self).__name__, "console_output")

    # --- resize and cold migrate (capability ``resize``) -----------------------------------
    # The manager calls these in this order, each under the instance's lock and in no
    # transaction: on the source host migrate_disk_and_power_off; on the destination
    # finish_migration; then either confirm_migration on the source, or revert_migration on
    # the destination followed by finish_revert_migration on the source. Source and
    # destination may be the same host (a same-host resize). A failure of
    # migrate_disk_and_power_off or finish_migration is rolled back by the manager with
    # revert_migration (destination) and finish_revert_migration (source), so both must cope
    # with anything the forward steps can leave half done - and be idempotent, since a
    # restart in the middle calls them again.

    def migrate_disk_and_power_off(
        self, instance: Instance, dest_host: str, new_flavor: Flavor,
        network_info: Sequence[Mapping[str, Any]],
        block_device_info: Sequence[Mapping[str, Any]],
    ) -> Mapping[str, Any]:
        """Source host: power the instance off and make its local disks available to
        ``dest_host`` (copied there, or nothing to do on shared storage or the same host),
        keeping on this host whatever :meth:`finish_revert_migration` needs to bring the
        instance back as it was. Returns the ``disk_info`` (JSON-serialisable) that
        :meth:`finish_migration` receives. A root disk larger than ``new_flavor.disk_gb``
        raises :class:`~stackcore.exception.Invalid` (disks never shrink) before anything
        changes. The volumes stay connected to this host until confirm or revert; the manager
        connects them to the destination itself. Capability: ``resize``."""
        raise exception.CapabilityNotSupported(type(self).__name__, "resize")

    def finish_migration(
        self, instance: Instance, disk_info: Mapping[str, Any],
        network_info: Sequence[Mapping[str, Any]],
        block_device_info: Sequence[Mapping[str, Any]], resize_instance: bool,
        power_on: bool,
    ) -> None:
        """Destination host: make the instance here from ``disk_info`` with
        ``instance.flavor`` (the new flavor; with ``resize_instance`` the root disk grows to
        its ``disk_gb``), its ports already bound to this host (``network_info``) and its
        volumes exported to this host (``block_device_info`` with ``connection_info``), and
        start it when ``power_on`` (it was running before). Raising: the manager calls
        :meth:`revert_migration` here and :meth:`finish_revert_migration` on the source.
        Capability: ``resize``."""
        raise exception.CapabilityNotSupported(type(self).__name__, "resize")

    def confirm_migration(self, instance: Instance,
                          network_info: Sequence[Mapping[str, Any]]) -> None:
        """Source host, after the user confirmed: remove what
        :meth:`migrate_disk_and_power_off` kept here for a revert (the old definition and
        disks; on the same host, the backup of the old disks). The instance on the
        destination is untouched. Confirming twice succeeds. Capability: ``resize``."""
        raise exception.CapabilityNotSupported(type(self).__name__, "resize")

    def revert_migration(self, instance: Instance,
                         network_info: Sequence[Mapping[str, Any]],
                         block_device_info: Sequence[Mapping[str, Any]]) -> None:
        """Destination host, on revert (or after a failed :meth:`finish_migration`): remove
        what :meth:`finish_migration` made here - but on the same host nothing
        :meth:`migrate_disk_and_power_off` kept for the revert. Succeeds when nothing was
        made. The manager ends the destination's volume exports afterwards. Capability:
        ``resize``."""
        raise exception.CapabilityNotSupported(type(self).__name__, "resize")

    def finish_revert_migration(
        self, instance: Instance, network_info: Sequence[Mapping[str, Any]],
        block_device_info: Sequence[Mapping[str, Any]], power_on: bool,
    ) -> None:
        """Source host, after :meth:`revert_migration`: bring the instance back here as it
        was before :meth:`migrate_disk_and_power_off` (old flavor in ``instance.flavor``, old
        disks), its ports bound here again and its volumes exported here
        (``block_device_info`` with ``connection_info``), and start it when ``power_on``.
        Also the rollback of a failed migration, so it must cope with an instance that was
        never powered off. Capability: ``resize``."""
        raise exception.CapabilityNotSupported(type(self).__name__, "resize")

    # --- live migration (capability ``live_migration``) -----------------------------------
    # The manager calls these in this order, each in no transaction: on the destination
    # pre_live_migration; on the source live_migration (the guest moves while it runs); then
    # post_live_migration_at_destination on the destination and post_live_migration on the
    # source. A failure of pre_live_migration or live_migration is rolled back with
    # rollback_live_migration_at_destination on the destination; the instance keeps running
    # on the source, untouched. Every call but live_migration_abort holds the instance's lock
    # on its host; live_migration_abort is the one call that arrives while another
    # (live_migration) runs for the same instance. Source and destination are always two
    # hosts. After a restart the manager calls the step it was in again (post steps,
    # rollback), so each must be idempotent.
    #
    # ``migrate_data`` is what pre_live_migration returns: JSON-serialisable, stored with the
    # migration, so it must hold no secret (a connection_info's auth key never goes in it).

    def pre_live_migration(
        self, instance: Instance, network_info: Sequence[Mapping[str, Any]],
        block_device_info: Sequence[Mapping[str, Any]], block_migration: bool | None,
    ) -> Mapping[str, Any]:
        """Destination host: check this host can take the running ``instance`` (CPU,
        hypervisor type; raise :class:`~stackcore.exception.Invalid` naming what differs
        before making anything) and prepare everything it needs to arrive: instance
        directory, empty local disks of the right sizes when its disks are copied (block
        migration), its VIFs plugged (``network_info``: the ports as bound to the source
        now), its volumes connected here (``block_device_info`` with this host's
        ``connection_info``). ``block_migration`` True copies the local disks, False means
        they are on storage both hosts share, None lets the driver decide (copy unless it
        sees shared storage). Returns ``migrate_data`` for :meth:`live_migration` (where to
        send the guest, the disk paths here, the decided ``block_migration``). An instance
        this host already has raises :class:`~stackcore.exception.Invalid` and changes
        nothing. Raising: the manager calls :meth:`rollback_live_migration_at_destination`.
        Capability: ``live_migration``."""
        raise exception.CapabilityNotSupported(type(self).__name__, "live_migration")

    def live_migration(
        self, instance: Instance, dest_host: str, migrate_data: Mapping[str, Any],
        block_device_info: Sequence[Mapping[str, Any]],
    ) -> Mapping[str, Any]:
        """Source host: move the running (or paused) instance to ``dest_host`` as
        :meth:`pre_live_migration` there prepared it (``migrate_data``), copying its memory
        (and, with a block migration, its local disks) while it runs; return once it runs
        there and no longer here (its definition and disks here may stay until
        :meth:`post_live_migration`). ``block_device_info`` is the instance's volumes as
        attached here (no ``connection_info``). Returns figures of the migration
        (JSON-serialisable; ``total_ms`` and ``downtime_ms`` when the backend reports
        them), recorded with the migration. Raising means the instance did NOT move: it
        must still run here, as before the call (the backend's own rollback; a driver that
        cannot promise that must not declare the capability). :meth:`live_migration_abort`
        from another thread makes a running call raise that way. Capability:
        ``live_migration``."""
        raise exception.CapabilityNotSupported(type(self).__name__, "live_migration")

    def live_migration_abort(self, instance: Instance) -> None:
        """Source host, from another thread while :meth:`live_migration` runs for
        ``instance``: cancel it, so that call raises with the instance still running here.
        Raise :class:`~stackcore.exception.InvalidState` when no migration of the instance
        is in progress (not started yet, or already switched over: too late to abort).
        Capability: ``live_migration``."""
        raise exception.CapabilityNotSupported(type(self).__name__, "live_migration")

    def post_live_migration_at_destination(
        self, instance: Instance, network_info: Sequence[Mapping[str, Any]],
        block_device_info: Sequence[Mapping[str, Any]],
    ) -> None:
        """Destination host, after :meth:`live_migration` succeeded: the instance runs here;
        make it this host's for good (its definition kept across restarts, its ports now
        bound here: ``network_info``). Idempotent. Raising puts the server in ERROR here
        (it runs here, but is not fully this host's). Capability: ``live_migration``."""
        raise exception.CapabilityNotSupported(type(self).__name__, "live_migration")

    def post_live_migration(
        self, instance: Instance, network_info: Sequence[Mapping[str, Any]],
        block_device_info: Sequence[Mapping[str, Any]], migrate_data: Mapping[str, Any],
    ) -> None:
        """Source host, after the instance moved: remove what is left of it here (its
        definition; its local disks, unless ``migrate_data`` says they are shared with the
        destination; its volume connections here; its VIFs here, ``network_info`` as bound
        before the move). The instance on the destination is untouched. Idempotent; the
        manager ends this host's volume exports afterwards. Raising records a fault on the
        server, which runs on the destination either way. Capability: ``live_migration``."""
        raise exception.CapabilityNotSupported(type(self).__name__, "live_migration")

    def rollback_live_migration_at_destination(
        self, instance: Instance, network_info: Sequence[Mapping[str, Any]],
        block_device_info: Sequence[Mapping[str, Any]], migrate_data: Mapping[str, Any],
    ) -> None:
        """Destination host, after a failed or aborted :meth:`pre_live_migration` or
        :meth:`live_migration`: remove everything :meth:`pre_live_migration` made here (and
        any half-arrived copy of the instance), but never what is shared with the source
        (disks on shared storage: the instance still runs from them there).
        ``migrate_data`` is what pre_live_migration returned, or ``{}`` when it failed.
        Succeeds when nothing was made. The manager ends this host's volume exports
        afterwards. Capability: ``live_migration``."""
        raise exception.CapabilityNotSupported(type(self).__name__, "live_migration")


#: disk formats a snapshot is written in as is; any other base image gives a qcow2 snapshot
SNAPSHOT_FORMATS = ("raw", "qcow2")


def snapshot_format(image_disk_format: str) -> str:
    """The format :meth:`HypervisorDriver.snapshot` writes for an instance booted from an
    image of ``image_disk_format``: that format if it is raw or qcow2, else qcow2."""
    return image_disk_format if image_disk_format in SNAPSHOT_FORMATS else "qcow2"


def effective_capabilities(driver: HypervisorDriver) -> list[str]:
    """The capabilities ``driver`` declares and its backend can offer now (declared minus
    :meth:`HypervisorDriver.unavailable_features`), sorted."""
    missing = driver.unavailable_features()
    return sorted(c for c, on in type(driver).capabilities.items()
                  if on and c in CAPABILITIES and c not in missing)


def _init_accepts_conf_and_host(cls: type) -> list[str]:
    from stackcore.plugins.contract import signature_problems

    init = cls.__init__  # type: ignore[misc]
    return [f"__init__(): {p}" for p in signature_problems(HypervisorDriver.__init__, init)]


CONTRACT = Contract(
    family="compute",
    base=HypervisorDriver,
    required=(
        "init_host",
        "get_available_resource",
        "list_instances",
        "spawn",
        "destroy",
        "get_info",
        "reboot",
        "power_off",
        "power_on",
    ),
    capabilities=CAPABILITIES,
    extra_checks=(_init_accepts_conf_and_host,),
)
