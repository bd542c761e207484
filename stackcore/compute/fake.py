"""The fake hypervisor: an in-memory backend for unit tests and the embedded default.

It keeps per-host instance tables in process memory, keyed by the cloud's ``state_path`` and the
host name, so a restarted compute manager in the same process sees the "hypervisor" it left (that
is what start-up reconciliation tests need). It implements every optional capability, honestly:
each call changes the fake backend's state and the conformance suite checks that state.

Failures can be injected per method with ``[fake_hypervisor] fail_on``; a failing ``spawn``
leaves a half-made (defined, not running) instance behind, as a real backend would, so the
manager's cleanup path is exercised.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import shutil
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from stackcore import exception
from stackcore.compute.driver import HypervisorDriver
from stackcore.compute.objects import (
    Flavor,
    Image,
    Instance,
    InstanceInfo,
    PowerState,
    RebootType,
)

if TYPE_CHECKING:
    from oslo_config import cfg


def list_opts() -> list[tuple[str, Sequence[cfg.Opt]]]:
    """Options of ``[fake_hypervisor]`` (built on demand: loading the plugin stays cheap)."""
    from oslo_config import cfg

    return [("fake_hypervisor", [
        cfg.IntOpt("vcpus", default=16, min=1, help="vCPUs each fake host reports."),
        cfg.IntOpt("memory_mb", default=32768, min=1, help="Memory (MiB) each fake host reports."),
        cfg.IntOpt("local_gb", default=500, min=1, help="Local disk (GiB) each fake host reports."),
        cfg.ListOpt(
            "fail_on",
            default=[],
            help="Driver methods that raise DriverError (failure injection for tests), e.g. "
            "'spawn' or 'spawn:host-2' to fail only on one host.",
        ),
        cfg.ListOpt(
            "hold_on",
            default=[],
            help="Driver methods that wait, once their work is done but before they "
            "return, until released or aborted (for tests of what happens meanwhile); only "
            "'live_migration' (released by live_migration_abort, which makes it fail, or by "
            "the test helper release()).",
        ),
    ])]


@dataclasses.dataclass
class _FakeDomain:
    power_state: PowerState
    volumes: dict[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    vifs: list[Mapping[str, Any]] = dataclasses.field(default_factory=list)
    console: list[str] = dataclasses.field(default_factory=list)
    rescue_image: str | None = None
    #: the flavor it runs with (``name``, ``vcpus``, ``ram_mb``, ``disk_gb``)
    flavor: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: the host it was migrated to: this is the old copy, kept for a revert (a resize) or
    #: until post_live_migration removes it (a live migration)
    migrated_to: str | None = None
    #: made by pre_live_migration: waiting for the guest to arrive from another host
    incoming: bool = False


class _FakeBackend:
    """One fake hypervisor node: the instances it holds, guarded by a lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.domains: dict[str, _FakeDomain] = {}
        #: same-host resizes: the domain as it was, kept until confirm or revert
        self.resize_backups: dict[str, _FakeDomain] = {}
        #: the latest successful destroys, oldest first: what the manager handed the driver
        #: to unplug and detach (a real driver's cleanup depends on it; tests read it here).
        #: Bounded: the fake is also the embedded cloud's long-running default.
        self.destroyed: collections.deque[DestroyCall] = collections.deque(maxlen=256)
        #: live migrations held by ``hold_on`` (instance uuid -> its hold)
        self.holds: dict[str, _Hold] = {}


@dataclasses.dataclass
class _Hold:
    """A held live migration: ``done`` is set to release it, ``aborted`` says how."""

    done: threading.Event = dataclasses.field(default_factory=threading.Event)
    aborted: bool = False


@dataclasses.dataclass(frozen=True)
class DestroyCall:
    """One :meth:`FakeHypervisorDriver.destroy`, as it was called."""

    instance_uuid: str
    network_info: list[dict[str, Any]]
    block_device_info: list[dict[str, Any]]
    destroy_disks: bool


#: VIF types the fake plugs (any other is refused, as a real hypervisor would).
VIF_TYPES = ("bridge", "ovs", "fake", "tap", "vhostuser")

_BACKENDS: dict[tuple[str, str], _FakeBackend] = {}
_BACKENDS_LOCK = threading.Lock()


def backend_for(state_path: str, host: str) -> _FakeBackend:
    """The fake node of ``host`` in the cloud whose state lives at ``state_path``."""
    with _BACKENDS_LOCK:
        return _BACKENDS.setdefault((state_path, host), _FakeBackend())


class FakeHypervisorDriver(HypervisorDriver):
    """In-memory hypervisor; every capability implemented against its own state."""

    VERSION = "1.0"
    capabilities: ClassVar[Mapping[str, bool]] = {
        "attach_volume": True,
        "plug_vifs": True,
        "snapshot": True,
        "live_snapshot": True,
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
        self.opts = conf.fake_hypervisor
        self.backend = backend_for(conf.state_path, host)

    @classmethod
    def list_opts(cls) -> list[tuple[str, Sequence[cfg.Opt]]]:
        return list_opts()

    # --- helpers -------------------------------------------------------------------------

    def _maybe_fail(self, method: str) -> None:
        for entry in self.opts.fail_on:
            name, _, host = entry.partition(":")
            if name == method and host in ("", self.host):
                raise exception.DriverError(f"injected failure in fake {method} on {self.host}")

    def _domain(self, instance: Instance) -> _FakeDomain:
        domain = self.backend.domains.get(instance.uuid)
        if domain is None:
            raise exception.NotFound("instance", instance.uuid, f"no fake domain {instance.uuid}")
        return domain

    def _set_state(self, instance: Instance, method: str, state: PowerState) -> None:
        with self.backend.lock:
            self._maybe_fail(method)
            self._domain(instance).power_state = state

    # --- required ------------------------------------------------------------------------

    def init_host(self, host: str) -> None:
        self._maybe_fail("init_host")

    def get_available_resource(self) -> dict[str, Any]:
        self._maybe_fail("get_available_resource")
        with self.backend.lock:
            count = len(self.backend.domains)
        return {
            "vcpus": self.opts.vcpus,
            "memory_mb": self.opts.memory_mb,
            "local_gb": self.opts.local_gb,
            "vcpus_used": count,
            "memory_mb_used": 512 * count,
            "local_gb_used": count,
            "hypervisor_type": "fake",
            "hypervisor_version": 1000,
            "hypervisor_hostname": self.host,
            "cpu_info": {
                "arch": "x86_64",
                "model": "fake-cpu",
                "vendor": "stackcore",
                "topology": {"sockets": 1, "cores": self.opts.vcpus, "threads": 1},
                "features": ["fake"],
            },
            "supported_instances": [["x86_64", "fake", "hvm"], ["x86_64", "qemu", "hvm"]],
        }

    def list_instances(self) -> list[str]:
        with self.backend.lock:
            return sorted(self.backend.domains)

    def spawn(
        self,
        instance: Instance,
        image: Image,
        network_info: Sequence[Mapping[str, Any]],
        block_device_info: Sequence[Mapping[str, Any]],
    ) -> None:
        roots = [b for b in block_device_info if b.get("boot_index") == 0]
        if len(roots) > 1 or any(b.get("mount_device") != "/dev/vda" for b in roots):
            raise exception.Invalid("block_device_info", "at most one root volume "
                                    "(boot_index 0), at /dev/vda",
                                    [b.get("mount_device") for b in roots])
        with self.backend.lock:
            if instance.uuid in self.backend.domains:
                raise exception.Conflict(f"fake domain {instance.uuid} already exists")
            # Defined first, started second: a failure in between leaves a half-made domain,
            # which is exactly what the manager's cleanup must remove.
            domain = _FakeDomain(PowerState.SHUTDOWN, flavor=_flavor(instance.flavor))
            self.backend.domains[instance.uuid] = domain
            self._maybe_fail("spawn")
            # a root volume is booted as it is; otherwise the image is the root disk's source
            if not roots and not os.path.isfile(image.path):
                raise exception.DriverError(f"image file {image.path} of instance "
                                            f"{instance.uuid} does not exist")
            domain.vifs = list(network_info)
            for bdm in block_device_info:
                domain.volumes[str(bdm.get("mount_device", ""))] = bdm["connection_info"]
            domain.power_state = PowerState.RUNNING
            domain.console.append(f"fake console: {instance.name} booted")

    def destroy(
        self,
        instance: Instance,
        network_info: Sequence[Mapping[str, Any]],
        block_device_info: Sequence[Mapping[str, Any]],
        destroy_disks: bool = True,
    ) -> None:
        with self.backend.lock:
            self._maybe_fail("destroy")
            self.backend.domains.pop(instance.uuid, None)
            self.backend.destroyed.append(DestroyCall(
                instance.uuid, [dict(v) for v in network_info],
                [dict(b) for b in block_device_info], destroy_disks))

    def get_info(self, instance: Instance) -> InstanceInfo:
        with self.backend.lock:
            domain = self._domain(instance)
            return InstanceInfo(domain.power_state, rescued=domain.rescue_image is not None)

    def reboot(self, instance: Instance, reboot_type: RebootType) -> None:
        self._set_state(instance, "reboot", PowerState.RUNNING)

    def power_off(self, instance: Instance, timeout: int = 0) -> None:
        self._set_state(instance, "power_off", PowerState.SHUTDOWN)

    def power_on(self, instance: Instance) -> None:
        self._set_state(instance, "power_on", PowerState.RUNNING)

    # --- optional ------------------------------------------------------------------------

    def attach_volume(
        self, instance: Instance, connection_info: Mapping[str, Any], mountpoint: str
    ) -> None:
        kind = connection_info.get("driver_volume_type")
        if kind not in ("iscsi", "nfs", "rbd", "local", "fake"):
            raise exception.Invalid("driver_volume_type", f"unsupported volume type {kind!r}")
        with self.backend.lock:
            self._maybe_fail("attach_volume")
            domain = self._domain(instance)
            if mountpoint in domain.volumes:
                raise exception.Conflict(f"{mountpoint} is already in use on {instance.uuid}")
            domain.volumes[mountpoint] = dict(connection_info)

    def detach_volume(
        self, instance: Instance, connection_info: Mapping[str, Any], mountpoint: str
    ) -> None:
        with self.backend.lock:
            self._maybe_fail("detach_volume")
            self._domain(instance).volumes.pop(mountpoint, None)

    def extend_volume(self, instance: Instance, mountpoint: str, new_size_bytes: int) -> None:
        """Records the size the guest sees (``volumes[mountpoint]["guest_size_bytes"]``),
        when the instance runs."""
        with self.backend.lock:
            self._maybe_fail("extend_volume")
            domain = self._domain(instance)
            if mountpoint not in domain.volumes:
                raise exception.NotFound("volume attachment", mountpoint,
                                         f"no volume at {mountpoint} on {instance.uuid}")
            if domain.power_state == PowerState.RUNNING:
                domain.volumes[mountpoint] = {**domain.volumes[mountpoint],
                                              "guest_size_bytes": new_size_bytes}

    def plug_vifs(self, instance: Instance, network_info: Sequence[Mapping[str, Any]]) -> None:
        for vif in network_info:
            if vif.get("vif_type") not in VIF_TYPES:
                raise exception.Invalid("vif_type", f"unsupported VIF type "
                                        f"{vif.get('vif_type')!r} (the fake plugs "
                                        f"{', '.join(VIF_TYPES)})", vif.get("vif_type"))
        with self.backend.lock:
            self._maybe_fail("plug_vifs")
            domain = self._domain(instance)
            known = {vif.get("id") for vif in domain.vifs}
            domain.vifs.extend(v for v in network_info if v.get("id") not in known)

    def unplug_vifs(self, instance: Instance, network_info: Sequence[Mapping[str, Any]]) -> None:
        with self.backend.lock:
            self._maybe_fail("unplug_vifs")
            domain = self._domain(instance)
            gone = {vif.get("id") for vif in network_info}
            domain.vifs = [v for v in domain.vifs if v.get("id") not in gone]

    def snapshot(self, instance: Instance, image_path: str) -> None:
        with self.backend.lock:
            self._maybe_fail("snapshot")
            self._domain(instance)
        shutil.copyfile(instance.image.path, image_path)

    def pause(self, instance: Instance) -> None:
        self._set_state(instance, "pause", PowerState.PAUSED)

    def unpause(self, instance: Instance) -> None:
        self._set_state(instance, "unpause", PowerState.RUNNING)

    def suspend(self, instance: Instance) -> None:
        self._set_state(instance, "suspend", PowerState.SUSPENDED)

    def resume(self, instance: Instance) -> None:
        self._set_state(instance, "resume", PowerState.RUNNING)

    def rescue(self, instance: Instance, rescue_image: Image) -> None:
        if not os.path.isfile(rescue_image.path):
            raise exception.DriverError(f"rescue image file {rescue_image.path} of instance "
                                        f"{instance.uuid} does not exist")
        with self.backend.lock:
            self._maybe_fail("rescue")
            domain = self._domain(instance)
            domain.rescue_image = rescue_image.id
            domain.power_state = PowerState.RUNNING
            domain.console.append(f"fake console: {instance.name} rescued")

    def unrescue(self, instance: Instance) -> None:
        with self.backend.lock:
            self._maybe_fail("unrescue")
            domain = self._domain(instance)
            domain.rescue_image = None
            domain.power_state = PowerState.RUNNING

    def get_console_output(self, instance: Instance) -> str:
        with self.backend.lock:
            return "\n".join(self._domain(instance).console) + "\n"

    # --- resize and cold migrate ----------------------------------------------------------
    # The "disks" are the domain's console log, carried to the destination in disk_info; a
    # same-host resize keeps the old domain in resize_backups until confirm or revert.

    def migrate_disk_and_power_off(
        self, instance: Instance, dest_host: str, new_flavor: Flavor,
        network_info: Sequence[Mapping[str, Any]],
        block_device_info: Sequence[Mapping[str, Any]],
    ) -> Mapping[str, Any]:
        with self.backend.lock:
            self._maybe_fail("migrate_disk_and_power_off")
            domain = self._domain(instance)
            volume_backed = any(b.get("boot_index") == 0 for b in block_device_info)
            if int(domain.flavor.get("disk_gb", 0)) > new_flavor.disk_gb and not volume_backed:
                raise exception.Invalid(
                    "flavor", f"the root disk of {instance.uuid} is "
                    f"{domain.flavor.get('disk_gb')} GiB; flavor {new_flavor.name!r} has "
                    f"{new_flavor.disk_gb} GiB (disks never shrink)", new_flavor.name)
            domain.power_state = PowerState.SHUTDOWN
            if dest_host == self.host:
                self.backend.resize_backups.setdefault(instance.uuid,
                                                       dataclasses.replace(domain))
            else:
                domain.migrated_to = dest_host
            return {"source_host": self.host, "console": list(domain.console)}

    def finish_migration(
        self, instance: Instance, disk_info: Mapping[str, Any],
        network_info: Sequence[Mapping[str, Any]],
        block_device_info: Sequence[Mapping[str, Any]], resize_instance: bool,
        power_on: bool,
    ) -> None:
        with self.backend.lock:
            self._maybe_fail("finish_migration")
            domain = _FakeDomain(PowerState.RUNNING if power_on else PowerState.SHUTDOWN,
                                 flavor=_flavor(instance.flavor),
                                 console=[*disk_info.get("console", ()),
                                          f"fake console: {instance.name} migrated to "
                                          f"{self.host}"])
            domain.vifs = list(network_info)
            for bdm in block_device_info:
                domain.volumes[str(bdm.get("mount_device", ""))] = bdm["connection_info"]
            self.backend.domains[instance.uuid] = domain

    def confirm_migration(self, instance: Instance,
                          network_info: Sequence[Mapping[str, Any]]) -> None:
        with self.backend.lock:
            self._maybe_fail("confirm_migration")
            if self.backend.resize_backups.pop(instance.uuid, None) is not None:
                return  # same host: the old copy was the backup; the new one stays
            domain = self.backend.domains.get(instance.uuid)
            if domain is not None and domain.migrated_to is not None:
                del self.backend.domains[instance.uuid]  # the old copy kept for a revert

    def revert_migration(self, instance: Instance,
                         network_info: Sequence[Mapping[str, Any]],
                         block_device_info: Sequence[Mapping[str, Any]]) -> None:
        with self.backend.lock:
            self._maybe_fail("revert_migration")
            self.backend.domains.pop(instance.uuid, None)

    def finish_revert_migration(
        self, instance: Instance, network_info: Sequence[Mapping[str, Any]],
        block_device_info: Sequence[Mapping[str, Any]], power_on: bool,
    ) -> None:
        with self.backend.lock:
            self._maybe_fail("finish_revert_migration")
            backup = self.backend.resize_backups.pop(instance.uuid, None)
            if backup is not None:
                self.backend.domains[instance.uuid] = backup
            domain = self._domain(instance)
            domain.migrated_to = None
            domain.flavor = _flavor(instance.flavor)
            domain.vifs = list(network_info)
            domain.volumes = {str(b.get("mount_device", "")): b["connection_info"]
                              for b in block_device_info}
            domain.power_state = PowerState.RUNNING if power_on else PowerState.SHUTDOWN

    # --- live migration -------------------------------------------------------------------
    # The fake moves a guest between the nodes of one process (backend_for): the embedded
    # cloud and the unit tests. Hosts in separate processes have no shared memory for the
    # "guest" to travel through; live_migration then fails (the guest stays here) saying so.

    def pre_live_migration(
        self, instance: Instance, network_info: Sequence[Mapping[str, Any]],
        block_device_info: Sequence[Mapping[str, Any]], block_migration: bool | None,
    ) -> Mapping[str, Any]:
        with self.backend.lock:
            self._maybe_fail("pre_live_migration")
            present = self.backend.domains.get(instance.uuid)
            if present is not None and not present.incoming:
                raise exception.Invalid(
                    "host", f"instance {instance.uuid} already exists on {self.host}",
                    self.host)
            domain = _FakeDomain(PowerState.PAUSED, flavor=_flavor(instance.flavor),
                                 incoming=True)
            domain.vifs = list(network_info)
            for bdm in block_device_info:
                domain.volumes[str(bdm.get("mount_device", ""))] = bdm["connection_info"]
            self.backend.domains[instance.uuid] = domain
        shared = any(b.get("boot_index") == 0 for b in block_device_info)
        return {"host": self.host,
                "block_migration": (not shared) if block_migration is None
                else block_migration}

    def live_migration(
        self, instance: Instance, dest_host: str, migrate_data: Mapping[str, Any],
        block_device_info: Sequence[Mapping[str, Any]],
    ) -> Mapping[str, Any]:
        with self.backend.lock:
            self._maybe_fail("live_migration")
            domain = self._domain(instance)
            if domain.power_state not in (PowerState.RUNNING, PowerState.PAUSED):
                raise exception.InvalidState(
                    f"instance {instance.uuid} is {domain.power_state.name.lower()} on "
                    f"{self.host}: only a running or paused instance migrates live",
                    state=domain.power_state.name.lower())
            hold = (_Hold() if "live_migration" in self.opts.hold_on else None)
            if hold is not None:
                self.backend.holds[instance.uuid] = hold
        if hold is not None:
            hold.done.wait()
            with self.backend.lock:
                self.backend.holds.pop(instance.uuid, None)
            if hold.aborted:
                raise exception.DriverError(
                    f"live migration of {instance.uuid} to {dest_host} aborted; it still "
                    f"runs on {self.host}")
        dest = backend_for(self.conf.state_path, dest_host)
        with self.backend.lock, dest.lock:
            arriving = dest.domains.get(instance.uuid)
            if arriving is None or not arriving.incoming:
                raise exception.DriverError(
                    f"{dest_host} is not waiting for instance {instance.uuid} (no "
                    "pre_live_migration there, or it runs in another process: the fake "
                    f"moves guests only between hosts of one process); it still runs on "
                    f"{self.host}")
            arriving.incoming = False
            arriving.power_state = domain.power_state
            arriving.console = [*domain.console,
                                f"fake console: {instance.name} live-migrated to {dest_host}"]
            domain.power_state = PowerState.SHUTDOWN
            domain.migrated_to = dest_host
        return {"total_ms": 0, "downtime_ms": 0}

    def live_migration_abort(self, instance: Instance) -> None:
        with self.backend.lock:
            self._maybe_fail("live_migration_abort")
            hold = self.backend.holds.get(instance.uuid)
            if hold is None:
                raise exception.InvalidState(
                    f"no live migration of instance {instance.uuid} in progress on "
                    f"{self.host}", state="not-migrating")
            hold.aborted = True
            hold.done.set()

    def post_live_migration_at_destination(
        self, instance: Instance, network_info: Sequence[Mapping[str, Any]],
        block_device_info: Sequence[Mapping[str, Any]],
    ) -> None:
        with self.backend.lock:
            self._maybe_fail("post_live_migration_at_destination")
            domain = self._domain(instance)
            if domain.incoming:
                raise exception.InvalidState(
                    f"instance {instance.uuid} has not arrived on {self.host}",
                    state="incoming")
            domain.vifs = list(network_info)

    def post_live_migration(
        self, instance: Instance, network_info: Sequence[Mapping[str, Any]],
        block_device_info: Sequence[Mapping[str, Any]], migrate_data: Mapping[str, Any],
    ) -> None:
        with self.backend.lock:
            self._maybe_fail("post_live_migration")
            domain = self.backend.domains.get(instance.uuid)
            if domain is not None and domain.migrated_to is not None:
                del self.backend.domains[instance.uuid]

    def rollback_live_migration_at_destination(
        self, instance: Instance, network_info: Sequence[Mapping[str, Any]],
        block_device_info: Sequence[Mapping[str, Any]], migrate_data: Mapping[str, Any],
    ) -> None:
        with self.backend.lock:
            self._maybe_fail("rollback_live_migration_at_destination")
            domain = self.backend.domains.get(instance.uuid)
            if domain is not None and domain.incoming:
                del self.backend.domains[instance.uuid]

    # --- test helpers (not part of the contract) ------------------------------------------

    def release(self, instance: Instance) -> bool:
        """Let a live migration held by ``hold_on`` go on (False: none is held)."""
        with self.backend.lock:
            hold = self.backend.holds.get(instance.uuid)
        if hold is None:
            return False
        hold.done.set()
        return True

    def held(self, instance: Instance) -> bool:
        """Whether a live migration of ``instance`` is held here now."""
        with self.backend.lock:
            return instance.uuid in self.backend.holds

    def attached_volumes(self, instance: Instance) -> dict[str, Mapping[str, Any]]:
        with self.backend.lock:
            return dict(self._domain(instance).volumes)

    def flavor_of(self, instance: Instance) -> dict[str, Any]:
        """The flavor the fake domain runs with."""
        with self.backend.lock:
            return dict(self._domain(instance).flavor)


def _flavor(flavor: Flavor) -> dict[str, Any]:
    return {"name": flavor.name, "vcpus": flavor.vcpus, "ram_mb": flavor.ram_mb,
            "disk_gb": flavor.disk_gb}
