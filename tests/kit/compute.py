"""Broken hypervisor drivers: each subclasses the core fake and breaks one behaviour."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from stackcore import exception
from stackcore.compute.driver import HypervisorDriver
from stackcore.compute.fake import FakeHypervisorDriver, _FakeBackend
from stackcore.compute.objects import Image, Instance, InstanceInfo, PowerState, RebootType
from tests.kit.registry import Broken

M = "tests.kit.compute"
L = "TestComputeLifecycle::"
C = "TestComputeCapabilities::"
NO_OS = [["x86_64", "fake", "hvm"]]


class SpawnNotRunning(FakeHypervisorDriver):
    def spawn(self, instance: Instance, image: Image, network_info: Sequence[Mapping[str, Any]],
              block_device_info: Sequence[Mapping[str, Any]]) -> None:
        super().spawn(instance, image, network_info, block_device_info)
        self.backend.domains[instance.uuid].power_state = PowerState.SHUTDOWN


class SpawnReplaces(FakeHypervisorDriver):
    """A second spawn of a uuid silently replaces the first."""

    def spawn(self, instance: Instance, image: Image, network_info: Sequence[Mapping[str, Any]],
              block_device_info: Sequence[Mapping[str, Any]]) -> None:
        self.backend.domains.pop(instance.uuid, None)
        super().spawn(instance, image, network_info, block_device_info)


class GetInfoNeverNotFound(FakeHypervisorDriver):
    def get_info(self, instance: Instance) -> InstanceInfo:
        try:
            return super().get_info(instance)
        except exception.NotFound:
            return InstanceInfo(PowerState.SHUTDOWN)


class DestroyUnknownFails(FakeHypervisorDriver):
    def destroy(self, instance: Instance, network_info: Sequence[Mapping[str, Any]],
                block_device_info: Sequence[Mapping[str, Any]],
                destroy_disks: bool = True) -> None:
        self._domain(instance)  # NotFound when the backend does not know it
        super().destroy(instance, network_info, block_device_info, destroy_disks)


class PowerOffNoop(FakeHypervisorDriver):
    def power_off(self, instance: Instance, timeout: int = 0) -> None:
        self._domain(instance)


class RebootPowersOff(FakeHypervisorDriver):
    def reboot(self, instance: Instance, reboot_type: RebootType) -> None:
        self._set_state(instance, "reboot", PowerState.SHUTDOWN)


class RebootKeepsState(FakeHypervisorDriver):
    def reboot(self, instance: Instance, reboot_type: RebootType) -> None:
        self._domain(instance)  # a stopped instance stays stopped


class DestroyOnlyRunning(FakeHypervisorDriver):
    def destroy(self, instance: Instance, network_info: Sequence[Mapping[str, Any]],
                block_device_info: Sequence[Mapping[str, Any]],
                destroy_disks: bool = True) -> None:
        domain = self.backend.domains.get(instance.uuid)
        if domain is not None and domain.power_state == PowerState.SHUTDOWN and domain.console:
            return  # "nothing running, nothing to do"
        super().destroy(instance, network_info, block_device_info, destroy_disks)


class DestroyIgnoresHalfMade(FakeHypervisorDriver):
    def destroy(self, instance: Instance, network_info: Sequence[Mapping[str, Any]],
                block_device_info: Sequence[Mapping[str, Any]],
                destroy_disks: bool = True) -> None:
        domain = self.backend.domains.get(instance.uuid)
        if domain is not None and not domain.console:
            return  # never booted: "not ours yet"
        super().destroy(instance, network_info, block_device_info, destroy_disks)


class BackendPerObject(FakeHypervisorDriver):
    """Forgets everything when the compute service restarts."""

    def __init__(self, conf: Any, host: str) -> None:
        super().__init__(conf, host)
        self.backend = _FakeBackend()


class FloatMemory(FakeHypervisorDriver):
    def get_available_resource(self) -> dict[str, Any]:
        return {**super().get_available_resource(), "memory_mb": 8192.0}


class StatsNotJson(FakeHypervisorDriver):
    def get_available_resource(self) -> dict[str, Any]:
        return {**super().get_available_resource(), "numa": {frozenset({0, 1})}}


class NoCapacity(FakeHypervisorDriver):
    def get_available_resource(self) -> dict[str, Any]:
        return {**super().get_available_resource(), "vcpus": 0}


class PauseNoop(FakeHypervisorDriver):
    def pause(self, instance: Instance) -> None:
        self._domain(instance)


class UnpauseNoop(FakeHypervisorDriver):
    def unpause(self, instance: Instance) -> None:
        self._domain(instance)  # stays paused


class PauseAnyone(FakeHypervisorDriver):
    def pause(self, instance: Instance) -> None:
        if instance.uuid in self.backend.domains:
            super().pause(instance)


class ResumeNoop(FakeHypervisorDriver):
    def resume(self, instance: Instance) -> None:
        self._domain(instance)  # stays suspended


class LiveSnapshotStops(FakeHypervisorDriver):
    """Declares live_snapshot but powers the instance off to take it."""

    def snapshot(self, instance: Instance, image_path: str) -> None:
        super().snapshot(instance, image_path)
        self._domain(instance).power_state = PowerState.SHUTDOWN


class SnapshotWrongFormat(FakeHypervisorDriver):
    """Writes a qcow2 snapshot of a raw image (the upload, declared raw, would refuse it)."""

    def snapshot(self, instance: Instance, image_path: str) -> None:
        import subprocess

        self._domain(instance)
        subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", instance.image.path,
                        image_path], check=True, capture_output=True)


class RescueNoop(FakeHypervisorDriver):
    def rescue(self, instance: Instance, rescue_image: Image) -> None:
        self._domain(instance)


class UnrescueNoop(FakeHypervisorDriver):
    def unrescue(self, instance: Instance) -> None:
        self._domain(instance)


class SuspendNoop(FakeHypervisorDriver):
    def suspend(self, instance: Instance) -> None:
        self._domain(instance)


class ConsoleForAnyone(FakeHypervisorDriver):
    def get_console_output(self, instance: Instance) -> str:
        return ""


class SnapshotEmpty(FakeHypervisorDriver):
    def snapshot(self, instance: Instance, image_path: str) -> None:
        self._domain(instance)
        with open(image_path, "wb") as handle:
            handle.truncate(1024 * 1024)


class AttachAnything(FakeHypervisorDriver):
    def attach_volume(self, instance: Instance, connection_info: Mapping[str, Any],
                      mountpoint: str) -> None:
        self._domain(instance).volumes[mountpoint] = dict(connection_info)


class AttachNoop(FakeHypervisorDriver):
    def attach_volume(self, instance: Instance, connection_info: Mapping[str, Any],
                      mountpoint: str) -> None:
        if connection_info.get("driver_volume_type") not in ("iscsi", "nfs", "rbd", "local"):
            raise exception.Invalid("driver_volume_type", str(
                connection_info.get("driver_volume_type")))
        self._domain(instance)  # validated, recorded nowhere


class DetachNoop(FakeHypervisorDriver):
    def detach_volume(self, instance: Instance, connection_info: Mapping[str, Any],
                      mountpoint: str) -> None:
        self._domain(instance)


class ExtendAnything(FakeHypervisorDriver):
    """extend_volume that never looks at the instance's volumes."""

    def extend_volume(self, instance: Instance, mountpoint: str, new_size_bytes: int) -> None:
        self._domain(instance)


class PlugAnything(FakeHypervisorDriver):
    def plug_vifs(self, instance: Instance, network_info: Sequence[Mapping[str, Any]]) -> None:
        self._domain(instance).vifs.extend(network_info)


class PlugTwiceFails(FakeHypervisorDriver):
    def plug_vifs(self, instance: Instance, network_info: Sequence[Mapping[str, Any]]) -> None:
        known = {v.get("id") for v in self._domain(instance).vifs}
        if any(v.get("id") in known for v in network_info):
            raise exception.Conflict("VIF already plugged")
        super().plug_vifs(instance, network_info)


class ConfirmRemovesLive(FakeHypervisorDriver):
    """confirm_migration that removes "the old copy" without knowing which one it is: on the
    same host a second confirm removes the live instance."""

    def confirm_migration(self, instance: Instance,
                          network_info: Sequence[Mapping[str, Any]]) -> None:
        with self.backend.lock:
            if self.backend.resize_backups.pop(instance.uuid, None) is None:
                self.backend.domains.pop(instance.uuid, None)


class RevertDropsBackup(FakeHypervisorDriver):
    """revert_migration that also removes what the revert needs (the same-host backup)."""

    def revert_migration(self, instance: Instance, network_info: Sequence[Mapping[str, Any]],
                         block_device_info: Sequence[Mapping[str, Any]]) -> None:
        super().revert_migration(instance, network_info, block_device_info)
        with self.backend.lock:
            self.backend.resize_backups.pop(instance.uuid, None)


class ShrinkAllowed(FakeHypervisorDriver):
    """migrate_disk_and_power_off that never compares the disks."""

    def migrate_disk_and_power_off(self, instance: Instance, dest_host: str, new_flavor: Any,
                                   network_info: Sequence[Mapping[str, Any]],
                                   block_device_info: Sequence[Mapping[str, Any]]
                                   ) -> Mapping[str, Any]:
        bigger = type(new_flavor)(new_flavor.name, new_flavor.vcpus, new_flavor.ram_mb, 10**6)
        return super().migrate_disk_and_power_off(instance, dest_host, bigger, network_info,
                                                  block_device_info)


class FinishLeavesOff(FakeHypervisorDriver):
    """finish_migration that ignores power_on."""

    def finish_migration(self, instance: Instance, disk_info: Mapping[str, Any],
                         network_info: Sequence[Mapping[str, Any]],
                         block_device_info: Sequence[Mapping[str, Any]], resize_instance: bool,
                         power_on: bool) -> None:
        super().finish_migration(instance, disk_info, network_info, block_device_info,
                                 resize_instance, False)


def _root_path(block_device_info: Sequence[Mapping[str, Any]]) -> str | None:
    for bdm in block_device_info:
        if bdm.get("boot_index") == 0:
            return str(bdm["connection_info"]["data"]["device_path"])
    return None


class BootFromImageAnyway(FakeHypervisorDriver):
    """Declares boot_from_volume but still wants the image file (ignores the root volume)."""

    def spawn(self, instance: Instance, image: Image, network_info: Sequence[Mapping[str, Any]],
              block_device_info: Sequence[Mapping[str, Any]]) -> None:
        super().spawn(instance, image, network_info,
                      [{k: v for k, v in b.items() if k != "boot_index"}
                       for b in block_device_info])


class TwoRootsAccepted(FakeHypervisorDriver):
    """Boots from the first root volume it finds, whatever else is asked."""

    def spawn(self, instance: Instance, image: Image, network_info: Sequence[Mapping[str, Any]],
              block_device_info: Sequence[Mapping[str, Any]]) -> None:
        roots = [b for b in block_device_info if b.get("boot_index") == 0]
        super().spawn(instance, image, network_info,
                      [{**roots[0], "mount_device": "/dev/vda"}] if roots
                      else block_device_info)


class DestroyRemovesRootVolume(FakeHypervisorDriver):
    """Removes the root volume's data with the instance, as if it were a local disk."""

    def spawn(self, instance: Instance, image: Image, network_info: Sequence[Mapping[str, Any]],
              block_device_info: Sequence[Mapping[str, Any]]) -> None:
        super().spawn(instance, image, network_info, block_device_info)
        self._root_paths = {**getattr(self, "_root_paths", {}),
                            instance.uuid: _root_path(block_device_info)}

    def destroy(self, instance: Instance, network_info: Sequence[Mapping[str, Any]],
                block_device_info: Sequence[Mapping[str, Any]],
                destroy_disks: bool = True) -> None:
        super().destroy(instance, network_info, block_device_info, destroy_disks)
        path = getattr(self, "_root_paths", {}).pop(instance.uuid, None)
        if path is not None and destroy_disks:
            os.unlink(path)


class SpawnWipesRootVolume(FakeHypervisorDriver):
    """Formats the root volume at boot, as if it were a new local disk."""

    def spawn(self, instance: Instance, image: Image, network_info: Sequence[Mapping[str, Any]],
              block_device_info: Sequence[Mapping[str, Any]]) -> None:
        super().spawn(instance, image, network_info, block_device_info)
        path = _root_path(block_device_info)
        if path is not None:
            with open(path, "r+b") as handle:
                handle.write(bytes(64 * 1024))


class RollbackLeavesArrival(FakeHypervisorDriver):
    """rollback_live_migration_at_destination that removes nothing."""

    def rollback_live_migration_at_destination(
            self, instance: Instance, network_info: Sequence[Mapping[str, Any]],
            block_device_info: Sequence[Mapping[str, Any]],
            migrate_data: Mapping[str, Any]) -> None:
        return None


class PreReplacesRunning(FakeHypervisorDriver):
    """pre_live_migration that replaces an instance this host already runs."""

    def pre_live_migration(self, instance: Instance, network_info: Sequence[Mapping[str, Any]],
                           block_device_info: Sequence[Mapping[str, Any]],
                           block_migration: bool | None) -> Mapping[str, Any]:
        with self.backend.lock:
            self.backend.domains.pop(instance.uuid, None)
        return super().pre_live_migration(instance, network_info, block_device_info,
                                          block_migration)


def _liar(capability: str) -> type[FakeHypervisorDriver]:
    """Implements ``capability`` (inherited) but declares it unsupported."""
    caps = {**FakeHypervisorDriver.capabilities, capability: False}
    return type(f"Liar_{capability}", (FakeHypervisorDriver,),
                {"capabilities": caps, "__module__": M})


LIARS = {cap: _liar(cap) for cap in ("pause", "suspend", "console_output", "snapshot",
                                     "live_snapshot", "rescue", "attach_volume",
                                     "extend_volume", "plug_vifs", "resize",
                                     "boot_from_volume", "live_migration")}
for _cap, _cls in LIARS.items():
    globals()[_cls.__name__] = _cls


class HonestNoPause(FakeHypervisorDriver):
    """Declares pause unsupported and does not implement it: the kit reports 'unsupported'."""

    capabilities: ClassVar[Mapping[str, bool]] = {**FakeHypervisorDriver.capabilities,
                                                  "pause": False}
    pause = HypervisorDriver.pause
    unpause = HypervisorDriver.unpause


def _b(name: str, cls: type, kills: Sequence[str], expect: str, defect: str,
       outcome: str = "fail", capability: str = "") -> Broken:
    return Broken("compute", f"zoo-{name}", f"{M}:{cls.__name__}", tuple(kills), expect,
                  outcome, "", defect, capability)


CAP_TESTS = {
    "pause": [C + "test_pause_unpause", C + "test_pause_of_an_unknown_instance_is_not_found"],
    "suspend": [C + "test_suspend_resume"],
    "console_output": [C + "test_console_output_of_the_instance"],
    "snapshot": [C + "test_snapshot_carries_the_root_disk"],
    "live_snapshot": [C + "test_live_snapshot_keeps_running"],
    "rescue": [C + "test_rescue_unrescue"],
    "attach_volume": [C + "test_attach_unknown_volume_type_is_refused",
                      C + "test_attach_detach_round_trip"],
    "extend_volume": [C + "test_extend_volume_needs_an_attached_volume"],
    "plug_vifs": [C + "test_unknown_vif_type_is_refused", C + "test_plug_unplug_idempotent"],
    "resize": [C + "test_same_host_resize_confirm_and_revert",
               C + "test_resize_rollbacks_keep_the_instance"],
    "boot_from_volume": [C + "test_boot_from_volume"],
    "live_migration": [C + "test_live_migration_preparation_and_rollback_leave_nothing"],
}

ZOO = [
    _b("spawn-not-running", SpawnNotRunning, [L + "test_spawn_runs_and_lists"],
       "power state after spawn(): expected RUNNING, got SHUTDOWN", "spawn leaves it stopped"),
    _b("spawn-replaces", SpawnReplaces, [L + "test_spawn_same_uuid_twice_is_refused"],
       "a second spawn() of the same instance uuid: expected StackcoreError, got no error",
       "a second spawn of a uuid replaces the first"),
    _b("info-never-notfound", GetInfoNeverNotFound,
       [L + "test_destroy_removes_instance", L + "test_get_info_unknown_raises_not_found"],
       "expected NotFound, got no error", "get_info invents a state for unknown instances"),
    _b("destroy-unknown-fails", DestroyUnknownFails,
       [L + "test_destroy_is_idempotent", L + "test_destroy_unknown_instance_succeeds"],
       "raised NotFound", "destroy of an unknown instance raises"),
    _b("power-off-noop", PowerOffNoop, [L + "test_power_off_and_on"],
       "power state after power_off(): expected SHUTDOWN, got RUNNING", "power_off does nothing"),
    _b("reboot-powers-off", RebootPowersOff,
       [L + "test_reboot_leaves_running[SOFT]", L + "test_reboot_leaves_running[HARD]"],
       "power state after reboot(", "reboot leaves the instance off"),
    _b("reboot-keeps-state", RebootKeepsState, [L + "test_hard_reboot_starts_a_stopped_instance"],
       "after reboot(HARD) of a stopped instance: expected RUNNING, got SHUTDOWN",
       "a hard reboot does not start a stopped instance"),
    _b("destroy-only-running", DestroyOnlyRunning, [L + "test_destroy_powered_off_instance"],
       "list_instances() after destroy() of a stopped instance: expected not to list",
       "destroy skips stopped instances"),
    _b("backend-per-object", BackendPerObject,
       [L + "test_instances_survive_a_new_driver_object"],
       "list_instances() of a new driver object: expected to list",
       "a restarted service forgets the instances"),
    _b("float-memory", FloatMemory, ["TestComputeStats::test_stats_meet_schema"],
       "field 'memory_mb': 8192.0 is not of type 'integer'", "memory_mb = 8192.0 (a float)"),
    _b("stats-not-json", StatsNotJson, ["TestComputeStats::test_stats_are_json_serialisable"],
       "stats report: expected JSON types only (it travels over RPC), got TypeError",
       "stats hold a set"),
    _b("no-capacity", NoCapacity, ["TestComputeStats::test_stats_report_usable_capacity"],
       "stats vcpus: expected a positive integer (a host that can take instances), got 0",
       "zero vCPUs"),
    _b("destroy-ignores-half-made", DestroyIgnoresHalfMade,
       ["TestComputeFailures::test_failed_spawn_is_cleaned_by_destroy"],
       "list_instances() after a failed spawn and destroy(): expected not to list",
       "destroy leaves what a failed spawn half made"),
    _b("pause-noop", PauseNoop, [C + "test_pause_unpause"],
       "power state after pause(): expected PAUSED, got RUNNING", "pause does nothing", capability="pause"),
    _b("unpause-noop", UnpauseNoop, [C + "test_pause_unpause"],
       "power state after unpause(): expected RUNNING, got PAUSED", "unpause does nothing",
       capability="pause"),
    _b("pause-anyone", PauseAnyone, [C + "test_pause_of_an_unknown_instance_is_not_found"],
       "pause() of an instance the backend never had: expected NotFound, got no error",
       "pause of an unknown instance succeeds", capability="pause"),
    _b("resume-noop", ResumeNoop, CAP_TESTS["suspend"],
       "power state after resume(): expected RUNNING, got SUSPENDED", "resume does nothing",
       capability="suspend"),
    _b("live-snapshot-stops", LiveSnapshotStops, CAP_TESTS["live_snapshot"],
       "power state after snapshot() of a running instance: expected RUNNING, got SHUTDOWN",
       "a live snapshot powers the instance off", capability="live_snapshot"),
    _b("snapshot-wrong-format", SnapshotWrongFormat, CAP_TESTS["snapshot"],
       "the snapshot's format (qemu-img info): expected raw, got qcow2",
       "a raw instance's snapshot written as qcow2", capability="snapshot"),
    _b("rescue-noop", RescueNoop, CAP_TESTS["rescue"],
       "rescued after rescue(): expected True, got False", "rescue does nothing",
       capability="rescue"),
    _b("unrescue-noop", UnrescueNoop, CAP_TESTS["rescue"],
       "rescued after unrescue(): expected False, got True", "unrescue does nothing",
       capability="rescue"),
    _b("suspend-noop", SuspendNoop, CAP_TESTS["suspend"],
       "power state after suspend(): expected SUSPENDED (or SHUTDOWN), got RUNNING",
       "suspend does nothing", capability="suspend"),
    _b("console-for-anyone", ConsoleForAnyone, CAP_TESTS["console_output"],
       "get_console_output() of an instance the backend never had: expected NotFound, "
       "got no error", "console output without looking at the instance", capability="console_output"),
    _b("snapshot-empty", SnapshotEmpty, CAP_TESTS["snapshot"],
       "snapshot image (raw): expected the root disk's first 65536 bytes of 0x5a",
       "the snapshot is an empty disk", capability="snapshot"),
    _b("attach-anything", AttachAnything, [C + "test_attach_unknown_volume_type_is_refused"],
       "attach_volume() of driver_volume_type 'carrier-pigeon': expected Invalid, got no error",
       "unknown volume types attached", capability="attach_volume"),
    _b("attach-noop", AttachNoop, [C + "test_attach_detach_round_trip"],
       "a second attach_volume() at /dev/vdb (taken by the first): expected StackcoreError, "
       "got no error", "attach records nothing", capability="attach_volume"),
    _b("detach-noop", DetachNoop, [C + "test_attach_detach_round_trip"],
       "attach_volume() at /dev/vdb again, after the detach (it must be free) raised Conflict",
       "detach frees nothing", capability="attach_volume"),
    _b("extend-anything", ExtendAnything, CAP_TESTS["extend_volume"],
       "extend_volume() of /dev/vdb, where no volume is attached: expected NotFound, got no "
       "error", "extend_volume without looking for the volume", capability="extend_volume"),
    _b("plug-anything", PlugAnything, [C + "test_unknown_vif_type_is_refused"],
       "plug_vifs() of vif_type 'carrier-pigeon': expected Invalid, got no error",
       "unknown VIF types plugged", capability="plug_vifs"),
    _b("plug-twice-fails", PlugTwiceFails, [C + "test_plug_unplug_idempotent"],
       "a second plug_vifs() raised Conflict", "plugging a plugged VIF fails", capability="plug_vifs"),
    _b("confirm-removes-live", ConfirmRemovesLive, [C + "test_same_host_resize_confirm_and_revert"],
       "get_info() after a second confirm_migration() raised NotFound",
       "a second confirm removes the resized instance", capability="resize"),
    _b("revert-drops-backup", RevertDropsBackup, CAP_TESTS["resize"],
       "finish_revert_migration(power_on=True) raised NotFound",
       "revert_migration removes what finish_revert_migration needs", capability="resize"),
    _b("shrink-allowed", ShrinkAllowed, [C + "test_resize_rollbacks_keep_the_instance"],
       "migrate_disk_and_power_off() to a flavor with a smaller disk: expected Invalid, got "
       "no error", "a disk shrinks", capability="resize"),
    _b("finish-leaves-off", FinishLeavesOff, [C + "test_same_host_resize_confirm_and_revert"],
       "power state after finish_migration(): expected RUNNING, got SHUTDOWN",
       "finish_migration ignores power_on", capability="resize"),
    _b("boot-from-image-anyway", BootFromImageAnyway, CAP_TESTS["boot_from_volume"],
       "spawn() from a root volume, with no image file raised DriverError",
       "the root volume is ignored: the image file is still needed",
       capability="boot_from_volume"),
    _b("two-roots-accepted", TwoRootsAccepted, CAP_TESTS["boot_from_volume"],
       "spawn() with two root volumes: expected Invalid, got no error",
       "two root volumes (or one off /dev/vda) accepted", capability="boot_from_volume"),
    _b("destroy-removes-root-volume", DestroyRemovesRootVolume, CAP_TESTS["boot_from_volume"],
       "the root volume after destroy(): expected still there", "destroy removes the root "
       "volume's data", capability="boot_from_volume"),
    _b("spawn-wipes-root-volume", SpawnWipesRootVolume, CAP_TESTS["boot_from_volume"],
       "the root volume's first 64 KiB after destroy(): expected 0x5a throughout",
       "spawn overwrites the root volume", capability="boot_from_volume"),
    _b("rollback-leaves-arrival", RollbackLeavesArrival, CAP_TESTS["live_migration"],
       "after rollback_live_migration_at_destination(): expected not listed",
       "the destination keeps what it prepared after a failed live migration",
       capability="live_migration"),
    _b("pre-replaces-running", PreReplacesRunning, CAP_TESTS["live_migration"],
       "pre_live_migration() of an instance this host already runs: expected Invalid, got "
       "no error", "an arriving instance replaces one that runs here",
       capability="live_migration"),
    *[_b(f"liar-{cap}", LIARS[cap], CAP_TESTS[cap],
         f"capability {cap!r} is declared unsupported", f"{cap} works but is declared "
         "unsupported", "unexpected-success", cap) for cap in LIARS],
]
