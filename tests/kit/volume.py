"""Broken volume drivers: each subclasses the core fake (sparse files) and breaks one thing."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from stackcore import exception
from stackcore.volume.driver import ModelUpdate
from stackcore.volume.fake import FakeVolumeDriver, sparse_copy
from stackcore.volume.objects import GiB, ImageFile, Snapshot, StoreImage, Volume
from tests.kit.registry import Broken

M = "tests.kit.volume"
S, LC, SN, A, D, IM, F, C = ("TestVolumeStats::", "TestVolumeLifecycle::",
                             "TestVolumeSnapshots::", "TestVolumeAttach::", "TestVolumeData::",
                             "TestVolumeImages::", "TestVolumeFailures::",
                             "TestVolumeCapabilities::")
MiB = 1024 * 1024


class HonestStats(FakeVolumeDriver):
    """Stats say what the class declares (so a zoo driver breaks only what it means to)."""

    def get_volume_stats(self, refresh: bool = False) -> dict[str, Any]:
        report = super().get_volume_stats(refresh)
        flags = {"multiattach": self.capabilities.get("multiattach", False),
                 "online_extend_support": self.capabilities.get("online_extend", False),
                 "thin_provisioning_support": self.capabilities.get("thin_provisioning", False),
                 "thick_provisioning_support": self.capabilities.get("thick_provisioning",
                                                                     False)}
        report.update(flags)
        for pool in report["pools"]:
            pool.update(flags)
        return report


class Preallocating(HonestStats):
    """Files take their whole size at once (thick)."""

    def _make_file(self, name: str, size_gb: int) -> str:
        path = super()._make_file(name, size_gb)
        with open(path, "r+b") as handle:
            os.posix_fallocate(handle.fileno(), 0, size_gb * GiB)
        return path


# --- stats ----------------------------------------------------------------------------------


class StatsContradictCapabilities(FakeVolumeDriver):
    def get_volume_stats(self, refresh: bool = False) -> dict[str, Any]:
        return {**super().get_volume_stats(refresh), "multiattach": False}


class ProvisionedStuck(FakeVolumeDriver):
    def _provisioned_gb(self) -> float:
        return 0.0


class UnknownUnavailableFeature(FakeVolumeDriver):
    def unavailable_features(self) -> dict[str, str]:
        return {"snapshots": "typo: the feature is called 'snapshot'"}


# --- lifecycle ------------------------------------------------------------------------------


class DeleteMissingFails(FakeVolumeDriver):
    def delete_volume(self, volume: Volume) -> None:
        self._require(volume.name)
        super().delete_volume(volume)


class ExtendFails(FakeVolumeDriver):
    def extend_volume(self, volume: Volume, new_size: int) -> None:
        raise exception.DriverError("extend is not wired up yet")


class CloneMisnamed(FakeVolumeDriver):
    def create_cloned_volume(self, volume: Volume, src_volume: Volume) -> ModelUpdate:
        renamed = Volume(id=f"{volume.id}-clone", size=volume.size)
        return super().create_cloned_volume(renamed, src_volume)


class ExtendCreatesMissing(FakeVolumeDriver):
    def extend_volume(self, volume: Volume, new_size: int) -> None:
        os.truncate(self._path(volume.name), new_size * GiB) if os.path.exists(
            self._path(volume.name)) else self._make_file(volume.name, new_size)


# --- snapshots ------------------------------------------------------------------------------


class SnapshotDeleteNoop(FakeVolumeDriver):
    def delete_snapshot(self, snapshot: Snapshot) -> None:
        return None


class FromSnapshotMisnamed(FakeVolumeDriver):
    def create_volume_from_snapshot(self, volume: Volume, snapshot: Snapshot) -> ModelUpdate:
        return super().create_volume_from_snapshot(Volume(id=f"{volume.id}-x", size=volume.size),
                                                   snapshot)


class FromSnapshotLinked(FakeVolumeDriver):
    """A volume from a snapshot is a link to the snapshot's file: gone with the snapshot."""

    def create_volume_from_snapshot(self, volume: Volume, snapshot: Snapshot) -> ModelUpdate:
        os.symlink(self._require(snapshot.name), self._path(volume.name))
        return None


# --- attach ---------------------------------------------------------------------------------


class ConnectionWithoutVolumeId(FakeVolumeDriver):
    def initialize_connection(self, volume: Volume, connector: Mapping[str, Any]
                              ) -> dict[str, Any]:
        info = super().initialize_connection(volume, connector)
        del info["data"]["volume_id"]
        return info


class ForceDetachFails(FakeVolumeDriver):
    def terminate_connection(self, volume: Volume, connector: Mapping[str, Any] | None) -> None:
        if connector is None:
            raise exception.DriverError("force detach needs a connector")
        super().terminate_connection(volume, connector)


class EnsureExportNoop(FakeVolumeDriver):
    def ensure_export(self, volume: Volume) -> ModelUpdate:
        return None


# --- data -----------------------------------------------------------------------------------


class OneMiBShort(FakeVolumeDriver):
    def _make_file(self, name: str, size_gb: int) -> str:
        path = super()._make_file(name, size_gb)
        if name.startswith("volume-"):
            os.truncate(path, size_gb * GiB - MiB)
        return path


class RecyclesFreedFiles(FakeVolumeDriver):
    """Deleted volumes go to a free list next to the backend; new ones reuse them unwiped."""

    def _free(self) -> str:
        path = self.root + ".free"
        os.makedirs(path, exist_ok=True)
        return path

    def delete_volume(self, volume: Volume) -> None:
        if os.path.exists(self._path(volume.name)):
            os.replace(self._path(volume.name), os.path.join(self._free(), volume.name))

    def create_volume(self, volume: Volume) -> ModelUpdate:
        for name in sorted(os.listdir(self._free())):
            old = os.path.join(self._free(), name)
            if os.path.getsize(old) == volume.size * GiB:
                os.replace(old, self._path(volume.name))
                return {"provider_location": self._path(volume.name)}
        return super().create_volume(volume)


class DeleteHides(FakeVolumeDriver):
    """delete_volume only hides the volume from list_backend_objects; the data stays."""

    def _hidden(self) -> set[str]:
        try:
            with open(self.root + ".hidden") as handle:
                return set(json.load(handle))
        except FileNotFoundError:
            return set()

    def delete_volume(self, volume: Volume) -> None:
        hidden = sorted(self._hidden() | {volume.name})
        with open(self.root + ".hidden", "w") as handle:
            json.dump(hidden, handle)

    def list_backend_objects(self) -> list[str]:
        return [n for n in super().list_backend_objects() if n not in self._hidden()]


class SnapshotIsALink(FakeVolumeDriver):
    def create_snapshot(self, snapshot: Snapshot) -> ModelUpdate:
        os.symlink(self._require(snapshot.volume_name), self._path(snapshot.name))
        return None


class CloneSharesData(FakeVolumeDriver):
    def create_cloned_volume(self, volume: Volume, src_volume: Volume) -> ModelUpdate:
        os.link(self._require(src_volume.name), self._path(volume.name))
        return None


class ExtendLosesData(FakeVolumeDriver):
    def extend_volume(self, volume: Volume, new_size: int) -> None:
        path = self._require(volume.name)
        os.unlink(path)
        self._make_file(volume.name, new_size)


class CloneIgnoresSize(FakeVolumeDriver):
    def create_cloned_volume(self, volume: Volume, src_volume: Volume) -> ModelUpdate:
        return super().create_cloned_volume(Volume(id=volume.id, size=src_volume.size),
                                            src_volume)


class FromSnapshotIgnoresSize(FakeVolumeDriver):
    def create_volume_from_snapshot(self, volume: Volume, snapshot: Snapshot) -> ModelUpdate:
        return super().create_volume_from_snapshot(Volume(id=volume.id, size=1), snapshot)


# --- images ---------------------------------------------------------------------------------


class ImagesAlwaysRaw(FakeVolumeDriver):
    def copy_volume_to_image(self, volume: Volume, image: ImageFile) -> None:
        super().copy_volume_to_image(volume, ImageFile(image.id, image.path, "raw"))


class Qcow2CopiedAsBytes(FakeVolumeDriver):
    def copy_image_to_volume(self, volume: Volume, image: ImageFile) -> None:
        from stackcore.volume.fake import sparse_copy

        sparse_copy(image.path, self._require(volume.name))


# --- failure cleanup ------------------------------------------------------------------------


class NoFaultPoints(FakeVolumeDriver):
    FAULT_POINTS: ClassVar[Mapping[str, tuple[str, ...]]] = {}


class CloneLeaksTemp(FakeVolumeDriver):
    """The temporary copy of a clone stays when a later step fails."""

    def create_cloned_volume(self, volume: Volume, src_volume: Volume) -> ModelUpdate:
        src = self._require(src_volume.name)
        temp = self._make_file(f"clone-snap-{volume.id}", src_volume.size)
        self.checkpoint("clone:after_temp_snapshot")
        dst = self._make_file(volume.name, max(volume.size, src_volume.size))
        self.checkpoint("clone:after_copy")
        self._remove(temp)
        del src
        return {"provider_location": dst}


class CheckpointNeverReached(FakeVolumeDriver):
    FAULT_POINTS: ClassVar[Mapping[str, tuple[str, ...]]] = {
        **FakeVolumeDriver.FAULT_POINTS, "extend_volume": ("extend:after_resize",)}


def _leaky_temp(driver: FakeVolumeDriver, volume_id: str) -> None:
    """What a careless multi-step call leaves when its second step fails."""
    driver._make_file(f"tmp-{volume_id}-{uuid.uuid4().hex[:6]}", 1)


class CloneOfMissingLeaks(FakeVolumeDriver):
    def create_cloned_volume(self, volume: Volume, src_volume: Volume) -> ModelUpdate:
        _leaky_temp(self, volume.id)
        return super().create_cloned_volume(volume, src_volume)


class FromMissingSnapshotLeaks(FakeVolumeDriver):
    def create_volume_from_snapshot(self, volume: Volume, snapshot: Snapshot) -> ModelUpdate:
        _leaky_temp(self, volume.id)
        return super().create_volume_from_snapshot(volume, snapshot)


class SnapshotOfMissingLeaks(FakeVolumeDriver):
    def create_snapshot(self, snapshot: Snapshot) -> ModelUpdate:
        _leaky_temp(self, snapshot.id)
        return super().create_snapshot(snapshot)


class CorruptImageLeaks(FakeVolumeDriver):
    def copy_image_to_volume(self, volume: Volume, image: ImageFile) -> None:
        _leaky_temp(self, volume.id)
        super().copy_image_to_volume(volume, image)


class UploadLeaks(FakeVolumeDriver):
    def copy_volume_to_image(self, volume: Volume, image: ImageFile) -> None:
        _leaky_temp(self, volume.id)
        super().copy_volume_to_image(volume, image)


class RemoveExportStrict(FakeVolumeDriver):
    def remove_export(self, volume: Volume) -> None:
        if volume.id not in self._exports():
            raise exception.NotFound("export", volume.id)
        super().remove_export(volume)


# --- capabilities ---------------------------------------------------------------------------


class ThinButPreallocated(Preallocating):
    pass


class ThickButSparse(HonestStats):
    capabilities: ClassVar[Mapping[str, bool]] = {**FakeVolumeDriver.capabilities,
                                                  "thin_provisioning": False,
                                                  "thick_provisioning": True}


class SingleHostOnly(FakeVolumeDriver):
    def initialize_connection(self, volume: Volume, connector: Mapping[str, Any]
                              ) -> dict[str, Any]:
        others = [h for h in self.connected_hosts(volume) if h != connector.get("host")]
        if others:
            raise exception.Conflict(f"{volume.name} is attached to {others[0]}")
        return super().initialize_connection(volume, connector)


class OfflineExtendOnly(FakeVolumeDriver):
    def extend_volume(self, volume: Volume, new_size: int) -> None:
        if self.connected_hosts(volume):
            raise exception.InvalidState(f"{volume.name} is attached")
        super().extend_volume(volume, new_size)


class RawSpaceMixin(FakeVolumeDriver):
    """Deleted files move to a 'freed space' folder (as freed extents stay on a thick disk);
    raw_space() tells the kit where."""

    def _freed(self, volume: Volume) -> str:
        os.makedirs(self.root + ".freed", exist_ok=True)
        return os.path.join(self.root + ".freed", volume.name)

    def raw_space(self, volume: Volume) -> dict[str, Any] | None:
        return {"driver_volume_type": "local",
                "data": {"device_path": self._freed(volume), "offset": 0,
                         "size": volume.size * GiB}}

    def delete_volume(self, volume: Volume) -> None:
        if os.path.exists(self._path(volume.name)):
            os.replace(self._path(volume.name), self._freed(volume))


class ZeroOnDeleteClaimed(RawSpaceMixin):
    capabilities: ClassVar[Mapping[str, bool]] = {**FakeVolumeDriver.capabilities,
                                                  "zero_on_delete": True}


class ZeroOnDeleteWiping(RawSpaceMixin):
    """Wipes before freeing (it works) - declared below as unsupported."""

    def delete_volume(self, volume: Volume) -> None:
        path = self._path(volume.name)
        if os.path.exists(path):
            size = os.path.getsize(path)
            os.truncate(path, 0)
            os.truncate(path, size)
        super().delete_volume(volume)


def _read(path: str) -> str:
    with open(path) as handle:
        return handle.read()


class CloneImageMixin(FakeVolumeDriver):
    """Store images as files ``image-<id>``; a "clone" is a sparse copy whose dependency on
    its image is recorded beside it (``<volume>.parent``), so the image's delete is refused
    while the clone exists - what the kit can observe of a copy-on-write clone."""

    def store_clone_source(self, image: ImageFile) -> str:
        name = "image-" + image.id
        with open(self._path(name), "xb") as handle:
            handle.truncate(os.path.getsize(image.path))
        sparse_copy(image.path, self._path(name))
        return "fake://" + name

    def _source(self, location: str) -> str:
        return self._path(location.removeprefix("fake://"))

    def delete_clone_source(self, location: str) -> None:
        name = location.removeprefix("fake://")
        children = [e.name for e in os.scandir(self.root)
                    if e.name.endswith(".parent") and _read(e.path) == name]
        if children:
            raise exception.Conflict(f"{name} has {len(children)} clone(s)")
        self._remove(self._path(name))

    def clone_image(self, volume: Volume, image: StoreImage) -> tuple[bool, ModelUpdate]:
        source = self._source(image.location)
        if not image.location.startswith("fake://") or not os.path.exists(source):
            return False, None
        dst = self._make_file(volume.name, volume.size)
        sparse_copy(source, dst, os.path.getsize(source))
        self._resize(dst, volume)
        with open(self._path(volume.name + ".parent"), "w") as handle:
            handle.write(image.location.removeprefix("fake://"))
        return True, {"provider_location": dst}

    def _resize(self, path: str, volume: Volume) -> None:
        os.truncate(path, volume.size * GiB)

    def delete_volume(self, volume: Volume) -> None:
        super().delete_volume(volume)
        self._remove(self._path(volume.name + ".parent"))


class CloneImageIgnoresSize(CloneImageMixin):
    """The clone keeps the image's size."""

    capabilities: ClassVar[Mapping[str, bool]] = {**FakeVolumeDriver.capabilities,
                                                  "clone_image": True}

    def _resize(self, path: str, volume: Volume) -> None:
        os.truncate(path, 64 * MiB)


class UnmanageDeletes(FakeVolumeDriver):
    """unmanage removes the object (and its data) instead of keeping it."""

    def unmanage(self, volume: Volume) -> None:
        self.delete_volume(volume)


class ManageKeepsName(FakeVolumeDriver):
    """manage_existing adopts the object without renaming it to the volume's name."""

    def manage_existing(self, volume: Volume, existing_ref: Mapping[str, Any]) -> ModelUpdate:
        self._manageable(existing_ref)
        return None


class ManageStartsEmpty(FakeVolumeDriver):
    """manage_existing makes a new, empty volume and drops the object's data."""

    def manage_existing(self, volume: Volume, existing_ref: Mapping[str, Any]) -> ModelUpdate:
        self._remove(self._path(self._manageable(existing_ref)))
        return self.create_volume(volume)


class SizeInBytes(FakeVolumeDriver):
    def manage_existing_get_size(self, volume: Volume, existing_ref: Mapping[str, Any]) -> int:
        return os.path.getsize(self._path(self._manageable(existing_ref)))


class ManageOfNothingCreates(FakeVolumeDriver):
    """A reference to nothing gives a new empty volume instead of NotFound."""

    def manage_existing_get_size(self, volume: Volume, existing_ref: Mapping[str, Any]) -> int:
        try:
            return super().manage_existing_get_size(volume, existing_ref)
        except exception.NotFound:
            return 1

    def manage_existing(self, volume: Volume, existing_ref: Mapping[str, Any]) -> ModelUpdate:
        try:
            return super().manage_existing(volume, existing_ref)
        except exception.NotFound:
            return self.create_volume(volume)


class LenientReference(FakeVolumeDriver):
    """Takes any mapping's first value as the object's name (Cinder's source-id too)."""

    def _manageable(self, existing_ref: Mapping[str, Any]) -> str:
        if isinstance(existing_ref, Mapping) and existing_ref:
            first = next(iter(existing_ref.values()))
            existing_ref = {"source-name": first if isinstance(first, str) else str(first)}
        return super()._manageable(existing_ref)


def _declared(base: type[FakeVolumeDriver], name: str, **caps: bool) -> type:
    return type(name, (base,), {"capabilities": {**FakeVolumeDriver.capabilities, **caps},
                                "__module__": M})


LiarThin = _declared(HonestStats, "LiarThin", thin_provisioning=False)
LiarThick = _declared(Preallocating, "LiarThick", thin_provisioning=False,
                      thick_provisioning=False)
LiarMultiattach = _declared(HonestStats, "LiarMultiattach", multiattach=False)
LiarOnlineExtend = _declared(HonestStats, "LiarOnlineExtend", online_extend=False)
LiarZeroOnDelete = _declared(ZeroOnDeleteWiping, "LiarZeroOnDelete", zero_on_delete=False)
LiarCloneImage = _declared(CloneImageMixin, "LiarCloneImage", clone_image=False)
LiarManageExisting = _declared(FakeVolumeDriver, "LiarManageExisting", manage_existing=False)


def _b(name: str, cls: type, kills: Sequence[str], expect: str, defect: str,
       outcome: str = "fail", capability: str = "") -> Broken:
    return Broken("volume", f"zoo-{name}", f"{M}:{cls.__name__}", tuple(kills), expect,
                  outcome, "", defect, capability)


P = F + "test_failures_the_kit_provokes_leave_nothing_behind"
CAP = {"thin_provisioning": C + "test_thin_volume_takes_space_only_when_written",
       "thick_provisioning": C + "test_thick_volume_takes_its_size_at_once",
       "multiattach": C + "test_two_hosts_attached_at_once",
       "online_extend": C + "test_extend_while_attached_and_open",
       "zero_on_delete": C + "test_deleted_data_is_overwritten_in_the_backend",
       "clone_image": C + "test_volume_cloned_from_a_store_image",
       "manage_existing": C + "test_unmanaged_volume_managed_again_keeps_its_data"}
MANAGE_NOTHING = C + "test_manage_of_nothing_is_not_found"
MANAGE_MALFORMED = C + "test_manage_of_a_malformed_reference_is_invalid"
NEW = "then the manager's cleanup: new backend objects: expected nothing, got ['tmp-"

ZOO = [
    _b("stats-contradict", StatsContradictCapabilities, [S + "test_stats_meet_schema"],
       "stats multiattach (vs capabilities['multiattach']): expected True, got False",
       "stats contradict the declared capabilities"),
    _b("provisioned-stuck", ProvisionedStuck, [S + "test_provisioned_grows_with_a_volume"],
       "provisioned_capacity_gb after creating a 2 GiB volume: expected at least",
       "provisioned capacity never grows"),
    _b("unknown-unavailable", UnknownUnavailableFeature,
       [S + "test_unavailable_features_are_known"],
       "expected nothing, got ['snapshots']", "unavailable_features names a typo"),
    _b("delete-missing-fails", DeleteMissingFails,
       [LC + "test_create_delete_idempotent", LC + "test_delete_of_never_created_volume_succeeds"],
       "delete_volume", "deleting a missing volume raises"),
    _b("extend-fails", ExtendFails, [LC + "test_extend"],
       "extend_volume(2) raised DriverError: extend is not wired up yet", "extend raises"),
    _b("clone-misnamed", CloneMisnamed, [LC + "test_clone_is_a_new_volume"],
       "list_backend_objects() after create_cloned_volume: expected to list volume-",
       "the clone is made under another name"),
    _b("extend-creates-missing", ExtendCreatesMissing,
       [LC + "test_operations_on_missing_volume_raise_stackcore_errors"],
       "extend_volume() of a volume the backend does not have: expected StackcoreError, "
       "got no error", "extending a missing volume creates it"),
    _b("snapshot-delete-noop", SnapshotDeleteNoop, [SN + "test_snapshot_create_delete_idempotent"],
       "backend objects of the snapshot after delete_snapshot: expected nothing, got "
       "['snapshot-", "delete_snapshot does nothing"),
    _b("from-snapshot-misnamed", FromSnapshotMisnamed, [SN + "test_volume_from_snapshot"],
       "list_backend_objects() after create_volume_from_snapshot: expected to list volume-",
       "a volume from a snapshot is made under another name"),
    _b("from-snapshot-linked", FromSnapshotLinked, [SN + "test_delete_snapshot_dependents_survive"],
       "create_export() raised NotFound: fake backend has no volume-",
       "volumes from a snapshot die with it"),
    _b("no-volume-id", ConnectionWithoutVolumeId,
       [A + "test_connection_info_carries_what_its_protocol_needs"],
       "connection_info from initialize_connection(): expected one meeting the protocol's "
       "schema, got: connection_info from driver ConnectionWithoutVolumeId rejected: field "
       "'data.volume_id'", "connection_info lacks volume_id"),
    _b("force-detach-fails", ForceDetachFails, [A + "test_detach_and_force_detach_idempotent"],
       "terminate_connection(None) (force detach) raised DriverError", "force detach raises"),
    _b("ensure-export-noop", EnsureExportNoop, [A + "test_ensure_export_restores_a_lost_export"],
       "initialize_connection() after ensure_export() raised DriverError: volume-",
       "ensure_export restores nothing (defect 5)"),
    _b("one-mib-short", OneMiBShort, [D + "test_write_read_through_connection"],
       "size of a new 1 GiB volume: expected 1 GiB (1073741824 bytes) seen by a reader, got "
       "1072693248 bytes", "volumes are 1 MiB short (defect 2: a size bug read as "
       "'qemu-io read failed')"),
    _b("recycles-freed-files", RecyclesFreedFiles, [D + "test_no_data_leak_into_new_volume"],
       "new volume #1 after a deleted one held 0xee: expected 1048576 bytes of 0x00 at offset "
       "0, got ee ee", "a new volume shows a deleted one's data"),
    _b("delete-hides", DeleteHides, [D + "test_delete_removes_the_data"],
       "reading a deleted volume through its old connection: expected the data (0x77 at "
       "offset 0) to be gone, got it read back", "delete hides the volume, data stays"),
    _b("snapshot-is-a-link", SnapshotIsALink, [D + "test_snapshot_keeps_the_data_of_its_moment"],
       "volume from a snapshot (0x11 before it, 0x22 after): expected 1048576 bytes of 0x11 at "
       "offset 0, got 22 22", "snapshots follow later writes"),
    _b("clone-shares-data", CloneSharesData,
       [D + "test_clone_carries_data_and_stays_independent"],
       "source after writing 0x55 to its clone: expected 1048576 bytes of 0x44 at offset 0, "
       "got 55 55", "a clone shares the source's data"),
    _b("extend-loses-data", ExtendLosesData, [D + "test_extend_keeps_data_and_is_seen"],
       "data after extend_volume(2): expected 1048576 bytes of 0x66 at offset 0, got 00 00",
       "extend loses the data"),
    _b("clone-ignores-size", CloneIgnoresSize, [D + "test_clone_larger_size_is_seen"],
       "size of a 2 GiB clone of a 1 GiB volume: expected 2 GiB (2147483648 bytes) seen by a "
       "reader, got 1073741824 bytes", "a larger clone keeps the source's size"),
    _b("from-snapshot-ignores-size", FromSnapshotIgnoresSize,
       [D + "test_from_snapshot_larger_size_is_seen"],
       "size of a 3 GiB volume from a 1 GiB snapshot: expected 3 GiB (3221225472 bytes) seen "
       "by a reader, got 1073741824 bytes", "a larger volume from a snapshot keeps its size"),
    _b("images-always-raw", ImagesAlwaysRaw, [IM + "test_raw_image_to_volume_and_back"],
       "format of the qcow2 image written: expected qcow2, got",
       "qcow2 images are written raw"),
    _b("qcow2-as-bytes", Qcow2CopiedAsBytes, [IM + "test_qcow2_image_to_volume"],
       "volume after copy_image_to_volume(qcow2): expected 1048576 bytes of 0x66 at offset 0, "
       "got 51 46 49 fb", "qcow2 images are copied unconverted"),
    _b("no-fault-points", NoFaultPoints,
       [F + "test_checkpoints_cover_the_multi_step_operations"],
       "failure cleanup of create_cloned_volume: expected checkpoints the kit can fail it at",
       "declares no checkpoints (defect 4: cleanup testing was opt-in)"),
    _b("clone-leaks-temp", CloneLeaksTemp,
       [F + "test_failure_at_each_checkpoint_leaves_nothing_behind"],
       "create_cloned_volume failing at checkpoint 'clone:after_temp_snapshot', then the "
       "manager's cleanup: new backend objects: expected nothing, got ['clone-snap-",
       "a failed clone leaves its temporary copy"),
    _b("checkpoint-never-reached", CheckpointNeverReached,
       [F + "test_failure_at_each_checkpoint_leaves_nothing_behind"],
       "extend_volume with checkpoint 'extend:after_resize' armed (declared in FAULT_POINTS, "
       "so it must be reached): expected InjectedFault, got no error",
       "declares a checkpoint it never passes"),
    _b("clone-of-missing-leaks", CloneOfMissingLeaks, [P + "[clone of a missing source]"],
       "clone of a missing source, " + NEW, "a failed clone leaves a temporary object"),
    _b("from-missing-snapshot-leaks", FromMissingSnapshotLeaks,
       [P + "[volume from a missing snapshot]"], "volume from a missing snapshot, " + NEW,
       "a failed volume-from-snapshot leaves a temporary object"),
    _b("snapshot-of-missing-leaks", SnapshotOfMissingLeaks,
       [P + "[snapshot of a missing volume]"], "snapshot of a missing volume, " + NEW,
       "a failed snapshot leaves a temporary object"),
    _b("corrupt-image-leaks", CorruptImageLeaks, [P + "[corrupt image to volume]"],
       "corrupt image to volume, " + NEW, "a failed image conversion leaves a temporary object"),
    _b("upload-leaks", UploadLeaks, [P + "[volume to image in a missing directory]"],
       "volume to image in a missing directory, " + NEW,
       "a failed upload leaves a temporary object"),
    _b("remove-export-strict", RemoveExportStrict,
       [F + "test_cleanup_calls_cope_with_what_never_existed"],
       "remove_export() of a volume the backend never had raised NotFound",
       "remove_export of an unknown volume raises"),
    _b("thin-but-preallocated", ThinButPreallocated, [CAP["thin_provisioning"]],
       "space allocated to a new, unwritten 2 GiB thin volume: expected less than 1 GiB (space "
       "is taken on write), got 2 GiB",
       "declares thin, allocates everything", capability="thin_provisioning"),
    _b("thick-but-sparse", ThickButSparse, [CAP["thick_provisioning"]],
       "space allocated to a new 2 GiB thick volume: expected 2 GiB, got 0 GiB",
       "declares thick, allocates nothing", capability="thick_provisioning"),
    _b("single-host-only", SingleHostOnly, [CAP["multiattach"]],
       "initialize_connection() for a second host raised Conflict",
       "declares multiattach, refuses a second host", capability="multiattach"),
    _b("offline-extend-only", OfflineExtendOnly, [CAP["online_extend"]],
       "extend_volume(2) of an attached, open volume raised InvalidState",
       "declares online extend, refuses attached volumes", capability="online_extend"),
    _b("zero-on-delete-claimed", ZeroOnDeleteClaimed, [CAP["zero_on_delete"]],
       "raw backend space of a deleted volume: expected 1048576 bytes of 0x00 at offset 0, "
       "got d1 d1", "declares zero on delete, leaves the data", capability="zero_on_delete"),
    _b("clone-image-ignores-size", CloneImageIgnoresSize, [CAP["clone_image"]],
       "a 1 GiB volume cloned from a 64 MiB image: expected 1 GiB (1073741824 bytes) seen by "
       "a reader, got 67108864 bytes", "declares clone_image, the clone keeps the image's "
       "size", capability="clone_image"),
    _b("unmanage-deletes", UnmanageDeletes, [CAP["manage_existing"]],
       "list_backend_objects() after unmanage(): expected to list volume-",
       "unmanage deletes the object and its data", capability="manage_existing"),
    _b("manage-keeps-name", ManageKeepsName, [CAP["manage_existing"]],
       "list_backend_objects() after manage_existing(): expected to list volume-",
       "manage_existing does not rename the object", capability="manage_existing"),
    _b("manage-starts-empty", ManageStartsEmpty, [CAP["manage_existing"]],
       "first MiB of the managed volume (written before its unmanage): expected 1048576 "
       "bytes of 0x4d at offset 0, got 00 00", "manage_existing drops the object's data",
       capability="manage_existing"),
    _b("size-in-bytes", SizeInBytes, [CAP["manage_existing"]],
       "volume (GiB): expected 1, got 1073741824", "manage_existing_get_size in bytes",
       capability="manage_existing"),
    _b("manage-of-nothing-creates", ManageOfNothingCreates, [MANAGE_NOTHING],
       "manage_existing_get_size() of a reference to nothing ('volume-",
       "a reference to nothing is managed as a new volume", capability="manage_existing"),
    _b("lenient-reference", LenientReference, [MANAGE_MALFORMED],
       "manage_existing_get_size({'source-id': 'volume-",
       "references other than source-name are taken", capability="manage_existing"),
    *[_b(f"liar-{cap}", cls, [CAP[cap]], f"capability {cap!r} is declared unsupported",
         f"{cap} works but is declared unsupported", "unexpected-success", cap)
      for cap, cls in (("thin_provisioning", LiarThin), ("thick_provisioning", LiarThick),
                       ("multiattach", LiarMultiattach), ("online_extend", LiarOnlineExtend),
                       ("zero_on_delete", LiarZeroOnDelete),
                       ("clone_image", LiarCloneImage),
                       ("manage_existing", LiarManageExisting))],
]
