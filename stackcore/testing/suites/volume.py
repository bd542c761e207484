"""Volume driver conformance suite.

Import it into a test module of the driver package and run pytest with
``--stackcore-driver volume:<name>`` and a config file whose ``[backend]`` section
(:data:`~stackcore.volume.driver.CONFORMANCE_SECTION`) configures the driver - the same options
as one ``enabled_backends`` section of a cloud; any other section or option the driver does not
know is an error naming it. Every test talks to the driver exactly as the volume manager does
(same call order, same cleanup after failures) and checks the result two ways: through the
contract's read methods (``list_backend_objects``, stats) and through the **data path** - the
returned ``connection_info`` is opened with qemu (:mod:`stackcore.testing.datapath`: local
files, ``nfs://``, ``rbd:``, ``iscsi://``), exactly as a hypervisor would, so sizes, data,
clones, snapshots and "no data leak" are observed on the real backend, not taken from the
driver's word. System tools: ``qemu-img`` and ``qemu-io``.

What is checked, by feature:

* ``stats`` - the schema, the declared capabilities reported, provisioned capacity growing;
* ``lifecycle`` - create/delete (idempotent, also never-created volumes), extend, clone, errors;
* ``snapshot`` - create/delete (idempotent), volumes from snapshots, dependents surviving;
* ``attach`` - connection_info per protocol (every key a hypervisor needs), repeatable,
  idempotent detach/force detach, an export that was lost restored by ``ensure_export``;
* ``data`` - data written is read back; a new volume never shows another's old data; delete
  removes the data; a snapshot keeps the data of its moment; clones carry data and stay
  independent; a larger size on clone / from-snapshot / extend is seen by a reader;
* ``image`` - raw and qcow2 images to volumes and back;
* ``failure-cleanup`` - a failure in the middle of a multi-step operation leaves nothing
  behind once the manager's cleanup ran: at every checkpoint the driver declares
  (``FAULT_POINTS``; clone and from-snapshot *must* declare theirs) and on failures the kit
  provokes itself (missing sources, corrupt images, unwritable targets);
* every capability (``thin_provisioning``, ``thick_provisioning``, ``multiattach``,
  ``online_extend``, ``zero_on_delete``, ``clone_image``, ``manage_existing``) by
  behaviour, whatever is declared (see :mod:`stackcore.testing.plugin` for the gating).

Features the driver reports unavailable on this host
(:meth:`~stackcore.volume.driver.VolumeDriver.unavailable_features`, a missing kernel feature)
are skipped with its reason, test by test; nothing else skips. After every test the objects it
made are deleted as the manager would and the backend must hold exactly what it held before -
a leak fails the test itself.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest

from stackcore import exception
from stackcore.testing import check, datapath
from stackcore.testing.datapath import MiB
from stackcore.testing.harness import DriverUnderTest
from stackcore.testing.plugin import verify_after
from stackcore.volume import connection_info, stats
from stackcore.volume.driver import (
    CONFORMANCE_SECTION,
    FEATURES,
    SOURCE_NAME,
    InjectedFault,
    VolumeDriver,
)
from stackcore.volume.objects import GiB, ImageFile, Snapshot, StoreImage, Volume

__all__ = [
    "TestVolumeAttach",
    "TestVolumeCapabilities",
    "TestVolumeData",
    "TestVolumeFailures",
    "TestVolumeImages",
    "TestVolumeLifecycle",
    "TestVolumeSnapshots",
    "TestVolumeStats",
    "volume_driver",
    "volumes",
]

FAMILY = pytest.mark.family("volume")
HOST = f"conformance@{CONFORMANCE_SECTION}"
CONNECTOR = {"host": "conformance-host", "ip": "127.0.0.1", "platform": "x86_64",
             "os_type": "linux", "multipath": False,
             "initiator": "iqn.2004-10.org.stackcore:conformance"}
OTHER_CONNECTOR = {**CONNECTOR, "host": "conformance-host-2",
                   "initiator": "iqn.2004-10.org.stackcore:conformance-2"}

#: Operations that make a new volume and then fill it: a failure between the two steps is the
#: classic half-made object, so every driver must let the kit fail them there (checkpoints).
MULTI_STEP = {
    "create_cloned_volume": "makes the new volume, then copies the source into it",
    "create_volume_from_snapshot": "makes the new volume, then copies the snapshot into it",
}

#: Which feature group of ``unavailable_features`` each operation belongs to.
OPERATION_FEATURE = {
    "create_cloned_volume": "clone",
    "create_volume_from_snapshot": "snapshot",
    "create_snapshot": "snapshot",
    "copy_image_to_volume": "image",
    "copy_volume_to_image": "image",
    "clone_image": "image",
    "create_export": "attach",
    "initialize_connection": "attach",
}


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture
def volume_driver(stackcore_target: DriverUnderTest) -> VolumeDriver:
    driver: VolumeDriver = stackcore_target.new(CONFORMANCE_SECTION, HOST)
    check.instance(driver, VolumeDriver, "the driver object")
    check.step("do_setup()", driver.do_setup)
    check.step("check_for_setup_error()", driver.check_for_setup_error)
    return driver


def needs(driver: VolumeDriver, *features: str) -> None:
    """Skip when the host cannot offer a feature (missing kernel feature), saying why."""
    missing = driver.unavailable_features()
    for feature in features:
        if feature in missing:
            pytest.skip(f"{feature} unavailable on this host: {missing[feature]}")


def apply(volume: Volume, update: Any, step: str) -> Volume:
    if not update:
        return volume
    check.instance(update, Mapping, f"model update returned by {step}")
    return dataclasses.replace(volume, **dict(update))


def _free_gb(driver: VolumeDriver) -> float | None:
    report = stats.validate(check.step("get_volume_stats(refresh=True)",
                                       lambda: driver.get_volume_stats(refresh=True)), "stats")
    free = report["free_capacity_gb"]
    return float(free) if isinstance(free, (int, float)) else None


#: The volume type extra spec asking for each provisioning (Cinder's ``provisioning:type``): a
#: backend offering both (lvm: thin LVs in a pool and thick LVs) provisions each volume as its
#: type says; one offering a single kind ignores it.
PROVISIONING = {kind: {"provisioning:type": kind} for kind in ("thin", "thick")}


def _provisioning_of_a_new_volume(driver: VolumeDriver, volumes: Volumes, size: int,
                                  kind: str) -> tuple[int | None, float | None]:
    """What a new, unwritten volume of ``size`` GiB whose type asks for ``kind``
    provisioning takes: (bytes the backend allocated to it, when the data path tells for sure;
    else None, drop of ``free_capacity_gb``, when the backend reports a number; else None).
    The allocation comes first: the free capacity of a shared backend also moves with other
    users. One of them must be observable. (Through iSCSI qemu sees every block of a volume
    as data whether the backend allocated it or not - that is not "for sure" - so a thin LV
    exported by tgt is judged on free capacity.)"""
    before = _free_gb(driver)
    volume = volumes.create(size, extra_specs=PROVISIONING[kind])
    after = _free_gb(driver)
    drop = None if before is None or after is None else round(before - after, 2)
    missing = driver.unavailable_features()
    if "attach" not in missing and "data" not in missing:
        _, info = volumes.attach(volume)
        allocated, certain = datapath.allocated_bytes(info, "space allocated to a new volume")
        if certain:
            return allocated, drop
    if drop is None:
        raise check.fail("observing provisioning", "free_capacity_gb as a number or a data "
                         "path telling the allocation", f"free_capacity_gb {before!r} and "
                         f"the data path {'unavailable' if missing else 'not telling'}")
    return None, drop


class Volumes:
    """Makes volumes/snapshots through the driver as the manager does; tears them down in
    reverse order and then proves the backend holds only what it held before."""

    def __init__(self, driver: VolumeDriver, scratch: str) -> None:
        self.driver = driver
        self.scratch = scratch
        self.baseline = check.step("list_backend_objects()", driver.list_backend_objects)
        self.made: list[Volume | Snapshot] = []
        self.exported: dict[str, Volume] = {}
        self.cleaned = False
        #: every volume and snapshot id this test used: the backend objects it may leave
        self.ids: set[str] = set()
        #: locations of images stored with store_clone_source (removed after the volumes)
        self.clone_sources: list[str] = []

    def new_id(self) -> str:
        ident = str(uuid.uuid4())
        self.ids.add(ident)
        return ident

    def ours(self, names: Any) -> list[str]:
        """Of backend object names, those of this test's volumes and snapshots (named after
        their ids, per the contract): on a shared backend other users' objects come and go."""
        return sorted(n for n in names if any(i in n for i in self.ids))

    def new(self, size: int = 1, **kwargs: Any) -> Volume:
        return Volume(id=self.new_id(), size=size, display_name="conformance <&>", **kwargs)

    def track(self, volume: Volume) -> Volume:
        self.made = [v for v in self.made if v.id != volume.id] + [volume]
        return volume

    def forget(self, item: Volume | Snapshot) -> None:
        self.made = [v for v in self.made if v.id != item.id]

    def create(self, size: int = 1, **kwargs: Any) -> Volume:
        volume = self.new(size, **kwargs)
        self.made.append(volume)
        update = check.step(f"create_volume(size={size})",
                            lambda: self.driver.create_volume(volume))
        return self.track(apply(volume, update, "create_volume"))

    def from_snapshot(self, snapshot: Snapshot, size: int) -> Volume:
        volume = self.new(size)
        self.made.append(volume)
        update = check.step(f"create_volume_from_snapshot(size={size})",
                            lambda: self.driver.create_volume_from_snapshot(volume, snapshot))
        return self.track(apply(volume, update, "create_volume_from_snapshot"))

    def clone(self, source: Volume, size: int) -> Volume:
        volume = self.new(size)
        self.made.append(volume)
        update = check.step(f"create_cloned_volume(size={size})",
                            lambda: self.driver.create_cloned_volume(volume, source))
        return self.track(apply(volume, update, "create_cloned_volume"))

    def snapshot(self, volume: Volume) -> Snapshot:
        snap = Snapshot(id=self.new_id(), volume=volume, volume_size=volume.size)
        self.made.append(snap)
        update = check.step("create_snapshot()", lambda: self.driver.create_snapshot(snap))
        if update:
            check.instance(update, Mapping, "model update returned by create_snapshot")
            snap = dataclasses.replace(snap, **{k: v for k, v in update.items()
                                                if k != "provider_auth"})
            self.made[-1] = snap
        return snap

    def attach(self, volume: Volume, connector: Mapping[str, Any] = CONNECTOR
               ) -> tuple[Volume, dict[str, Any]]:
        """create_export + initialize_connection, schema-checked; export removed at
        teardown. The volume returned is ``attached``."""
        update = check.step("create_export()", lambda: self.driver.create_export(volume,
                                                                                 connector))
        volume = self.track(apply(volume, update, "create_export"))
        self.exported[volume.id] = volume
        info = check.step("initialize_connection()",
                          lambda: self.driver.initialize_connection(volume, connector))
        try:
            connection_info.validate(info, f"driver {type(self.driver).__name__}")
        except exception.DriverError as err:
            raise check.KitError(f"connection_info from initialize_connection(): expected "
                                 f"one meeting the protocol's schema, got: {err}") from None
        # what the manager tells the driver of a volume a host has attached
        return self.track(dataclasses.replace(volume, attached=True)), info

    def detach(self, volume: Volume, connector: Mapping[str, Any] | None = CONNECTOR) -> None:
        check.step("terminate_connection()",
                   lambda: self.driver.terminate_connection(volume, connector))
        check.step("remove_export()", lambda: self.driver.remove_export(volume))
        self.exported.pop(volume.id, None)

    def clone_source(self, pattern: int, size: int = 64 * MiB) -> StoreImage:
        """A raw image of ``size`` bytes, ``pattern`` in its second MiB, stored where the
        driver can clone it (``store_clone_source``), removed at teardown."""
        path = self.image_path("raw")
        with open(path, "wb") as handle:
            handle.truncate(size)
            handle.seek(MiB)
            handle.write(bytes([pattern]) * MiB)
        image_id = self.new_id()
        location = check.step("store_clone_source()", lambda: self.driver.store_clone_source(
            ImageFile(image_id, path, "raw")))
        check.instance(location, str, "location returned by store_clone_source()")
        self.clone_sources.append(location)
        return StoreImage(image_id, "conformance", location, "raw", size, size)

    def clone_image(self, image: StoreImage, size: int = 1) -> tuple[bool, Volume]:
        volume = self.new(size)
        self.made.append(volume)
        result = check.step(f"clone_image(size={size})",
                            lambda: self.driver.clone_image(volume, image))
        check.that(isinstance(result, tuple) and len(result) == 2
                   and isinstance(result[0], bool), "clone_image() result",
                   "(cloned: bool, model update)", result)
        cloned, update = result
        return cloned, self.track(apply(volume, update, "clone_image"))

    def image_path(self, suffix: str, made_by_driver: bool = False) -> str:
        """A path for an image file: the kit's inputs under ``in/``, what the driver writes
        under ``out/`` (where a failed write must leave nothing)."""
        folder = os.path.join(self.scratch, "out" if made_by_driver else "in")
        os.makedirs(folder, exist_ok=True)
        return os.path.join(folder, f"{uuid.uuid4()}.{suffix}")

    def cleanup(self) -> None:
        """Delete everything as the manager would, then compare with the baseline."""
        self.cleaned = True
        errors = []
        for volume in list(self.exported.values()):
            try:
                self.detach(volume, None)
            except Exception as err:  # noqa: BLE001 - every leftover is tried and reported
                errors.append(f"force detach of {volume.name}: {err}")
        for item in reversed(self.made):
            kind = "delete_snapshot" if isinstance(item, Snapshot) else "delete_volume"
            try:
                if isinstance(item, Snapshot):
                    self.driver.delete_snapshot(item)
                else:
                    self.driver.delete_volume(item)
            except Exception as err:  # noqa: BLE001
                errors.append(f"{kind}({item.name}): {type(err).__name__}: {err}")
        self.made.clear()
        for location in reversed(self.clone_sources):
            try:
                self.driver.delete_clone_source(location)
            except Exception as err:  # noqa: BLE001
                errors.append(f"delete_clone_source({location}): {type(err).__name__}: {err}")
        self.clone_sources.clear()
        check.empty(errors, "deleting what the test made (as the manager does)")
        left = self.ours(set(self.driver.list_backend_objects()) - set(self.baseline))
        check.empty(left, "backend objects left after the test's deletes (list_backend_objects)")


@pytest.fixture
def volumes(request: pytest.FixtureRequest, volume_driver: VolumeDriver,
            tmp_path: Any) -> Iterator[Volumes]:
    made = Volumes(volume_driver, str(tmp_path))
    verify_after(request, "cleanup", made.cleanup)
    yield made
    if not made.cleaned:  # the test never ran (setup failed): still remove what exists
        made.cleanup()


# --- stats ----------------------------------------------------------------------------------


@FAMILY
@pytest.mark.feature("stats")
class TestVolumeStats:
    def test_stats_meet_schema(self, volume_driver: VolumeDriver) -> None:
        raw = check.step("get_volume_stats()", lambda: volume_driver.get_volume_stats(True))
        try:
            report = stats.validate(raw, "get_volume_stats()")
        except exception.StatsSchemaError as err:
            raise check.KitError(f"stats report: expected one meeting the schema, got: {err}"
                                 ) from None
        cls = type(volume_driver)
        check.equal(report["storage_protocol"], cls.STORAGE_PROTOCOL,
                    "stats storage_protocol (vs the class's STORAGE_PROTOCOL)")
        check.equal(report["driver_version"], cls.VERSION,
                    "stats driver_version (vs the class's VERSION)")
        check.equal(report["volume_backend_name"], volume_driver.backend_name,
                    "stats volume_backend_name")
        caps = volume_driver.capabilities
        for stat, cap in (("multiattach", "multiattach"),
                          ("online_extend_support", "online_extend"),
                          ("thin_provisioning_support", "thin_provisioning"),
                          ("thick_provisioning_support", "thick_provisioning")):
            check.equal(report[stat], bool(caps.get(cap, False)),
                        f"stats {stat} (vs capabilities[{cap!r}])")

    def test_provisioned_grows_with_a_volume(self, volume_driver: VolumeDriver,
                                             volumes: Volumes) -> None:
        before = stats.validate(volume_driver.get_volume_stats(refresh=True), "stats")
        volumes.create(2)
        after = stats.validate(volume_driver.get_volume_stats(refresh=True), "stats")
        check.that(after["provisioned_capacity_gb"] >= before["provisioned_capacity_gb"] + 1.99,
                   "provisioned_capacity_gb after creating a 2 GiB volume",
                   f"at least {before['provisioned_capacity_gb'] + 2}",
                   after["provisioned_capacity_gb"])

    def test_unavailable_features_are_known(self, volume_driver: VolumeDriver) -> None:
        missing = volume_driver.unavailable_features()
        check.instance(missing, dict, "unavailable_features()")
        check.empty(sorted(set(missing) - set(FEATURES)),
                    f"unavailable_features() keys outside {', '.join(FEATURES)}")
        check.that(all(isinstance(v, str) and v.strip() for v in missing.values()),
                   "unavailable_features() reasons", "a sentence per feature", missing)


# --- lifecycle ------------------------------------------------------------------------------


@FAMILY
@pytest.mark.feature("lifecycle")
class TestVolumeLifecycle:
    def test_create_delete_idempotent(self, volume_driver: VolumeDriver,
                                      volumes: Volumes) -> None:
        volume = volumes.create(1)
        check.that(volume.name in volume_driver.list_backend_objects(),
                   "list_backend_objects() after create_volume", f"to list {volume.name}",
                   volume_driver.list_backend_objects())
        check.step("delete_volume()", lambda: volume_driver.delete_volume(volume))
        check.that(volume.name not in volume_driver.list_backend_objects(),
                   "list_backend_objects() after delete_volume", f"not to list {volume.name}",
                   volume_driver.list_backend_objects())
        check.step("a second delete_volume() of the same volume",
                   lambda: volume_driver.delete_volume(volume))

    def test_delete_of_never_created_volume_succeeds(self, volume_driver: VolumeDriver,
                                                     volumes: Volumes) -> None:
        ghost = volumes.new(1)
        check.step("delete_volume() of a volume the backend never had",
                   lambda: volume_driver.delete_volume(ghost))

    def test_extend(self, volume_driver: VolumeDriver, volumes: Volumes) -> None:
        volume = volumes.create(1)
        check.step("extend_volume(2)", lambda: volume_driver.extend_volume(volume, 2))
        volumes.track(dataclasses.replace(volume, size=2))
        check.that(volume.name in volume_driver.list_backend_objects(),
                   "list_backend_objects() after extend_volume", f"to list {volume.name}",
                   volume_driver.list_backend_objects())

    def test_clone_is_a_new_volume(self, volume_driver: VolumeDriver, volumes: Volumes) -> None:
        needs(volume_driver, "clone")
        source = volumes.create(1)
        clone = volumes.clone(source, 2)
        listed = volume_driver.list_backend_objects()
        check.that(clone.name in listed and source.name in listed,
                   "list_backend_objects() after create_cloned_volume",
                   f"to list {clone.name} and its source {source.name}", listed)

    def test_operations_on_missing_volume_raise_stackcore_errors(
        self, volume_driver: VolumeDriver, volumes: Volumes
    ) -> None:
        ghost = volumes.new(1)
        check.raises(exception.StackcoreError, lambda: volume_driver.extend_volume(ghost, 2),
                     "extend_volume() of a volume the backend does not have")


# --- snapshots ------------------------------------------------------------------------------


@FAMILY
@pytest.mark.feature("snapshot")
class TestVolumeSnapshots:
    def test_snapshot_create_delete_idempotent(self, volume_driver: VolumeDriver,
                                               volumes: Volumes) -> None:
        needs(volume_driver, "snapshot")
        source = volumes.create(1)
        before = set(volume_driver.list_backend_objects())
        snap = volumes.snapshot(source)
        made = sorted(set(volume_driver.list_backend_objects()) - before)
        check.that(any(snap.id in name for name in made),
                   "list_backend_objects() after create_snapshot",
                   f"an object named after the snapshot ({snap.id})", made)
        check.step("delete_snapshot()", lambda: volume_driver.delete_snapshot(snap))
        check.step("a second delete_snapshot()", lambda: volume_driver.delete_snapshot(snap))
        volumes.forget(snap)
        check.empty([n for n in volume_driver.list_backend_objects() if snap.id in n],
                    "backend objects of the snapshot after delete_snapshot")

    def test_volume_from_snapshot(self, volume_driver: VolumeDriver, volumes: Volumes) -> None:
        needs(volume_driver, "snapshot")
        source = volumes.create(1)
        snap = volumes.snapshot(source)
        made = volumes.from_snapshot(snap, 3)
        check.that(made.name in volume_driver.list_backend_objects(),
                   "list_backend_objects() after create_volume_from_snapshot",
                   f"to list {made.name}", volume_driver.list_backend_objects())

    def test_delete_snapshot_dependents_survive(self, volume_driver: VolumeDriver,
                                                volumes: Volumes) -> None:
        needs(volume_driver, "snapshot", "attach", "data")
        source, info = volumes.attach(volumes.create(1))
        datapath.write_pattern(info, 0, 0x5A)
        volumes.detach(source)
        snap = volumes.snapshot(source)
        child = volumes.from_snapshot(snap, 1)
        check.step("delete_snapshot() with a volume made from it",
                   lambda: volume_driver.delete_snapshot(snap))
        check.step("a second delete_snapshot()", lambda: volume_driver.delete_snapshot(snap))
        volumes.forget(snap)
        _, child_info = volumes.attach(child)
        datapath.expect_pattern(child_info, 0, 0x5A,
                                "volume made from a snapshot, after the snapshot was deleted")


# --- attach ---------------------------------------------------------------------------------


@FAMILY
@pytest.mark.feature("attach")
class TestVolumeAttach:
    def test_connection_info_carries_what_its_protocol_needs(
        self, volume_driver: VolumeDriver, volumes: Volumes
    ) -> None:
        needs(volume_driver, "attach")
        volume, info = volumes.attach(volumes.create(1))
        expected = connection_info.PROTOCOL_TO_VOLUME_TYPE[volume_driver.STORAGE_PROTOCOL]
        check.equal(info["driver_volume_type"], expected,
                    f"driver_volume_type for STORAGE_PROTOCOL "
                    f"{volume_driver.STORAGE_PROTOCOL!r}")
        required = connection_info.DATA_SCHEMAS[expected]["required"]
        check.empty([k for k in required if k not in info["data"]],
                    f"{expected} connection_info data keys missing")
        again = check.step("initialize_connection() again for the same connector",
                           lambda: volume_driver.initialize_connection(volume, CONNECTOR))
        check.equal(again.get("data"), info["data"],
                    "connection_info data of a repeated initialize_connection()")

    def test_detach_and_force_detach_idempotent(self, volume_driver: VolumeDriver,
                                                volumes: Volumes) -> None:
        needs(volume_driver, "attach")
        before = set(volume_driver.list_backend_objects())
        volume, _ = volumes.attach(volumes.create(1))
        for connector, what in ((CONNECTOR, "terminate_connection(connector)"),
                                (None, "terminate_connection(None) (force detach)"),
                                (None, "a second terminate_connection(None)")):
            check.step(what, functools.partial(volume_driver.terminate_connection, volume,
                                               connector))
        check.step("remove_export()", lambda: volume_driver.remove_export(volume))
        check.step("a second remove_export()", lambda: volume_driver.remove_export(volume))
        volumes.exported.pop(volume.id)
        left = volumes.ours(set(volume_driver.list_backend_objects()) - before - {volume.name})
        check.empty(left, "export objects left after detach (list_backend_objects)")

    def test_ensure_export_restores_a_lost_export(self, volume_driver: VolumeDriver,
                                                  volumes: Volumes) -> None:
        """The backend lost the export (target daemon restarted): ensure_export must bring
        the volume back, data and all, for the same connector."""
        needs(volume_driver, "attach", "data")
        volume, info = volumes.attach(volumes.create(1))
        datapath.write_pattern(info, 0, 0x3C)
        volumes.detach(volume)  # the export is gone now
        update = check.step("ensure_export() of a volume whose export was lost",
                            lambda: volume_driver.ensure_export(volume))
        volume = volumes.track(apply(volume, update, "ensure_export"))
        volumes.exported[volume.id] = volume
        again = check.step("initialize_connection() after ensure_export()",
                           lambda: volume_driver.initialize_connection(volume, CONNECTOR))
        datapath.expect_pattern(again, 0, 0x3C, "data read after ensure_export()")


# --- data -----------------------------------------------------------------------------------


@FAMILY
@pytest.mark.feature("data")
class TestVolumeData:
    def test_write_read_through_connection(self, volume_driver: VolumeDriver,
                                           volumes: Volumes) -> None:
        needs(volume_driver, "attach", "data")
        _, info = volumes.attach(volumes.create(1))
        datapath.expect_size(info, 1, "size of a new 1 GiB volume")
        datapath.write_pattern(info, 0, 0xA1)
        datapath.write_pattern(info, GiB - MiB, 0xA2)
        datapath.expect_pattern(info, 0, 0xA1, "first MiB read back")
        datapath.expect_pattern(info, GiB - MiB, 0xA2, "last MiB read back")

    def test_no_data_leak_into_new_volume(self, volume_driver: VolumeDriver,
                                          volumes: Volumes) -> None:
        needs(volume_driver, "attach", "data")
        old, info = volumes.attach(volumes.create(1))
        for offset in (0, 256 * MiB, GiB - MiB):
            datapath.write_pattern(info, offset, 0xEE)
        volumes.detach(old)
        check.step("delete_volume()", lambda: volume_driver.delete_volume(old))
        volumes.forget(old)
        for n in range(2):  # a backend may reuse the freed space for the next one or two
            _, fresh = volumes.attach(volumes.create(1))
            for offset in (0, 256 * MiB, GiB - MiB):
                datapath.expect_pattern(fresh, offset, 0x00,
                                        f"new volume #{n + 1} after a deleted one held 0xee")

    def test_delete_removes_the_data(self, volume_driver: VolumeDriver,
                                     volumes: Volumes) -> None:
        """Checked on the backend: the connection_info obtained before the delete must no
        longer reach the data (not by asking the driver)."""
        needs(volume_driver, "attach", "data")
        volume, info = volumes.attach(volumes.create(1))
        datapath.write_pattern(info, 0, 0x77)
        volumes.detach(volume)
        check.step("delete_volume()", lambda: volume_driver.delete_volume(volume))
        volumes.forget(volume)
        datapath.expect_not_readable_as(info, 0, 0x77,
                                        "reading a deleted volume through its old connection")

    def test_snapshot_keeps_the_data_of_its_moment(self, volume_driver: VolumeDriver,
                                                   volumes: Volumes) -> None:
        needs(volume_driver, "attach", "data", "snapshot")
        source, info = volumes.attach(volumes.create(1))
        datapath.write_pattern(info, 0, 0x11)
        volumes.detach(source)  # snapshots are taken offline (online ones need the hypervisor)
        snap = volumes.snapshot(source)
        source, info = volumes.attach(source)  # a fresh connection_info after the snapshot
        datapath.write_pattern(info, 0, 0x22)
        from_snap = volumes.from_snapshot(snap, 1)
        _, snap_info = volumes.attach(from_snap)
        datapath.expect_pattern(snap_info, 0, 0x11,
                                "volume from a snapshot (0x11 before it, 0x22 after)")
        datapath.write_pattern(snap_info, 0, 0x33)
        datapath.expect_pattern(info, 0, 0x22,
                                "source after writing to a volume made from its snapshot")

    def test_clone_carries_data_and_stays_independent(self, volume_driver: VolumeDriver,
                                                      volumes: Volumes) -> None:
        needs(volume_driver, "attach", "data", "clone")
        source, info = volumes.attach(volumes.create(1))
        datapath.write_pattern(info, 0, 0x44)
        volumes.detach(source)
        clone = volumes.clone(source, 1)
        source, info = volumes.attach(source)
        _, clone_info = volumes.attach(clone)
        datapath.expect_pattern(clone_info, 0, 0x44, "clone of a volume holding 0x44")
        datapath.write_pattern(clone_info, 0, 0x55)
        datapath.expect_pattern(info, 0, 0x44, "source after writing 0x55 to its clone")

    def test_extend_keeps_data_and_is_seen(self, volume_driver: VolumeDriver,
                                           volumes: Volumes) -> None:
        needs(volume_driver, "attach", "data")
        volume, info = volumes.attach(volumes.create(1))
        datapath.write_pattern(info, 0, 0x66)
        volumes.detach(volume)
        check.step("extend_volume(2)", lambda: volume_driver.extend_volume(volume, 2))
        volume = volumes.track(dataclasses.replace(volume, size=2))
        _, info = volumes.attach(volume)
        datapath.expect_size(info, 2, "size after extend_volume(2)")
        datapath.expect_pattern(info, 0, 0x66, "data after extend_volume(2)")
        datapath.expect_pattern(info, GiB + MiB, 0x00, "the added GiB")

    def test_clone_larger_size_is_seen(self, volume_driver: VolumeDriver,
                                       volumes: Volumes) -> None:
        needs(volume_driver, "attach", "data", "clone")
        clone = volumes.clone(volumes.create(1), 2)
        _, info = volumes.attach(clone)
        datapath.expect_size(info, 2, "size of a 2 GiB clone of a 1 GiB volume")
        datapath.expect_pattern(info, GiB + MiB, 0x00, "the clone's added GiB")

    def test_from_snapshot_larger_size_is_seen(self, volume_driver: VolumeDriver,
                                               volumes: Volumes) -> None:
        needs(volume_driver, "attach", "data", "snapshot")
        made = volumes.from_snapshot(volumes.snapshot(volumes.create(1)), 3)
        _, info = volumes.attach(made)
        datapath.expect_size(info, 3, "size of a 3 GiB volume from a 1 GiB snapshot")


# --- images ---------------------------------------------------------------------------------


@FAMILY
@pytest.mark.feature("image")
class TestVolumeImages:
    def test_raw_image_to_volume_and_back(self, volume_driver: VolumeDriver,
                                          volumes: Volumes) -> None:
        needs(volume_driver, "image", "data", "attach")
        raw = volumes.image_path("raw")
        with open(raw, "wb") as handle:
            handle.truncate(64 * MiB)
            handle.seek(MiB)
            handle.write(b"\x77" * MiB)
        volume = volumes.create(1)
        check.step("copy_image_to_volume(raw)", lambda: volume_driver.copy_image_to_volume(
            volume, ImageFile("img-in", raw, "raw")))
        volume, info = volumes.attach(volume)
        datapath.expect_pattern(info, MiB, 0x77, "volume after copy_image_to_volume(raw)")
        datapath.expect_pattern(info, 0, 0x00, "volume after copy_image_to_volume(raw)")
        volumes.detach(volume)
        for fmt in ("raw", "qcow2"):
            out = volumes.image_path(fmt, made_by_driver=True)
            check.step(f"copy_volume_to_image({fmt})", functools.partial(
                volume_driver.copy_volume_to_image, volume, ImageFile("img-out", out, fmt)))
            image = {"driver_volume_type": "local", "data": {"device_path": out}}
            info_out = datapath.run(["qemu-img", "info", "--output=json", out],
                                    f"reading the {fmt} image")
            check.that(f'"format": "{fmt}"' in info_out, f"format of the {fmt} image written",
                       fmt, info_out[:200])
            if fmt == "raw":
                datapath.expect_size(image, 1, "raw image of a 1 GiB volume")
            datapath.run(["qemu-io", "-f", fmt, "-c", f"read -P 0x77 {MiB} {MiB}", out],
                         f"{fmt} image of the volume: expected 0x77 at offset {MiB}")

    def test_qcow2_image_to_volume(self, volume_driver: VolumeDriver,
                                   volumes: Volumes) -> None:
        needs(volume_driver, "image", "data", "attach")
        image = volumes.image_path("qcow2")
        datapath.run(["qemu-img", "create", "-f", "qcow2", image, "64M"], "making a qcow2")
        datapath.run(["qemu-io", "-f", "qcow2", "-c", f"write -P 0x66 0 {MiB}", image],
                     "writing the qcow2")
        volume = volumes.create(1)
        check.step("copy_image_to_volume(qcow2)", lambda: volume_driver.copy_image_to_volume(
            volume, ImageFile("q", image, "qcow2")))
        _, info = volumes.attach(volume)
        datapath.expect_pattern(info, 0, 0x66, "volume after copy_image_to_volume(qcow2)")


# --- failure cleanup ------------------------------------------------------------------------


@dataclasses.dataclass
class Operation:
    """One contract call the kit can fail at its checkpoints: ``prepare`` (unarmed), ``act``
    (armed: must raise at the checkpoint), ``cleanup`` (what the manager does after the
    failure)."""

    act: Callable[[], Any]
    cleanup: Callable[[], Any]
    prepare: Callable[[], Any] = lambda: None


def _operations(volumes: Volumes, source: Volume, snap: Snapshot | None
                ) -> dict[str, Operation]:
    """Every operation the kit can drive, each on fresh inputs, each with the manager's
    cleanup after a failure."""
    driver = volumes.driver
    target = volumes.new(2)

    def image() -> ImageFile:
        path = volumes.image_path("raw")
        with open(path, "wb") as handle:
            handle.truncate(4 * MiB)
        return ImageFile(str(uuid.uuid4()), path, "raw")

    snapshot = Snapshot(id=volumes.new_id(), volume=source, volume_size=source.size)
    clone_from: list[StoreImage] = []

    def clone_source() -> None:
        image_id = volumes.new_id()
        path = volumes.image_path("raw")
        with open(path, "wb") as handle:
            handle.truncate(4 * MiB)
        location = driver.store_clone_source(ImageFile(image_id, path, "raw"))
        clone_from[:] = [StoreImage(image_id, "conformance", location, "raw", 4 * MiB,
                                    4 * MiB)]

    def clone_cleanup() -> None:
        # the manager's delete_volume, then the image's delete, which a clone left behind
        # (still a child of the image) would refuse
        driver.delete_volume(target)
        driver.delete_clone_source(clone_from[0].location)

    upload = ImageFile("up", volumes.image_path("raw", made_by_driver=True), "raw")

    def detach() -> None:
        driver.terminate_connection(source, None)
        driver.remove_export(source)

    def attach() -> Any:
        update = driver.create_export(source, CONNECTOR)
        return driver.initialize_connection(apply(source, update, "create_export"), CONNECTOR)

    ops = {
        "create_volume": Operation(lambda: driver.create_volume(target),
                                   lambda: driver.delete_volume(target)),
        "create_cloned_volume": Operation(lambda: driver.create_cloned_volume(target, source),
                                          lambda: driver.delete_volume(target)),
        "copy_image_to_volume": Operation(
            lambda: driver.copy_image_to_volume(target, image()),
            lambda: driver.delete_volume(target), lambda: driver.create_volume(target)),
        "create_snapshot": Operation(lambda: driver.create_snapshot(snapshot),
                                     lambda: driver.delete_snapshot(snapshot)),
        "create_export": Operation(attach, detach),
        "initialize_connection": Operation(attach, detach),
        "copy_volume_to_image": Operation(lambda: driver.copy_volume_to_image(source, upload),
                                          lambda: None),
        "clone_image": Operation(lambda: driver.clone_image(target, clone_from[0]),
                                 clone_cleanup, clone_source),
        "extend_volume": Operation(lambda: driver.extend_volume(source, source.size + 1),
                                   lambda: None),
        "delete_volume": Operation(lambda: driver.delete_volume(target),
                                   lambda: driver.delete_volume(target),  # the retry
                                   lambda: driver.create_volume(target)),
    }
    if snap is not None:
        ops["create_volume_from_snapshot"] = Operation(
            lambda: driver.create_volume_from_snapshot(target, snap),
            lambda: driver.delete_volume(target))
    return ops


def _state(volumes: Volumes) -> tuple[list[str], list[str]]:
    images = os.path.join(volumes.scratch, "out")
    files = sorted(os.listdir(images)) if os.path.isdir(images) else []
    return sorted(volumes.driver.list_backend_objects()), files


def _expect_same(volumes: Volumes, before: tuple[list[str], list[str]],
                 after: tuple[list[str], list[str]], what: str) -> None:
    new_objects = volumes.ours(set(after[0]) - set(before[0]))
    gone = volumes.ours(set(before[0]) - set(after[0]))
    check.empty(new_objects, f"{what}, then the manager's cleanup: new backend objects")
    check.empty(gone, f"{what}, then the manager's cleanup: backend objects lost")
    check.empty(sorted(set(after[1]) - set(before[1])), f"{what}: image files left")


#: Operations the kit can fail at checkpoints (keys of :func:`_operations`).
DRIVABLE = ("clone_image", "copy_image_to_volume", "copy_volume_to_image", "create_cloned_volume",
            "create_export", "create_snapshot", "create_volume", "create_volume_from_snapshot",
            "delete_volume", "extend_volume", "initialize_connection")


@FAMILY
@pytest.mark.feature("failure-cleanup")
class TestVolumeFailures:
    def test_checkpoints_cover_the_multi_step_operations(self,
                                                         volume_driver: VolumeDriver) -> None:
        """Clone and from-snapshot make a volume and then fill it: the kit must be able to
        fail them in between, so they must declare checkpoints. Every declared checkpoint
        must belong to an operation the kit can drive."""
        points = volume_driver.FAULT_POINTS
        for operation, why in MULTI_STEP.items():
            if not points.get(operation):
                raise check.fail(
                    f"failure cleanup of {operation}",
                    f"checkpoints the kit can fail it at ({operation} {why})",
                    f"FAULT_POINTS[{operation!r}] = {points.get(operation, ())!r}: call "
                    f"self.checkpoint('<step>') after each backend step of {operation} and "
                    f"list the names in FAULT_POINTS[{operation!r}]")
        check.empty(sorted(set(points) - set(DRIVABLE)),
                    f"FAULT_POINTS operations the kit cannot drive (it drives "
                    f"{', '.join(DRIVABLE)})")

    def test_failure_at_each_checkpoint_leaves_nothing_behind(
        self, volume_driver: VolumeDriver, volumes: Volumes
    ) -> None:
        """Each declared checkpoint raises in turn; after the manager's cleanup the backend
        holds exactly what it held before (and no image file is left)."""
        missing = volume_driver.unavailable_features()
        declared = [(op, point) for op, ps in sorted(volume_driver.FAULT_POINTS.items())
                    for point in ps if op in DRIVABLE]
        runnable = [(op, p) for op, p in declared if OPERATION_FEATURE.get(op) not in missing]
        if runnable:
            source = volumes.create(1)
            snap = volumes.snapshot(source) if "snapshot" not in missing else None
            ops = _operations(volumes, source, snap)
        for operation, point in runnable:
            op = ops[operation]
            before = _state(volumes)
            check.step(f"preparing {operation}", op.prepare)
            volume_driver.arm_fault(point)
            try:
                check.raises(InjectedFault, op.act,
                             f"{operation} with checkpoint {point!r} armed (declared in "
                             "FAULT_POINTS, so it must be reached)")
            finally:
                volume_driver.disarm_faults()
                check.step(f"the manager's cleanup after {operation} failed at {point!r}",
                           op.cleanup)
            _expect_same(volumes, before, _state(volumes),
                         f"{operation} failing at checkpoint {point!r}")
        skipped = sorted({f"{op}: {missing[OPERATION_FEATURE[op]]}"
                          for op, p in declared if (op, p) not in runnable})
        if skipped:
            pytest.skip(f"checked {len(runnable)} checkpoint(s); not checked (unavailable on "
                        f"this host): {'; '.join(skipped)}")

    @pytest.mark.parametrize("provoked", [
        "clone of a missing source", "volume from a missing snapshot",
        "snapshot of a missing volume", "corrupt image to volume",
        "volume to image in a missing directory",
    ])
    def test_failures_the_kit_provokes_leave_nothing_behind(
        self, volume_driver: VolumeDriver, volumes: Volumes, provoked: str
    ) -> None:
        """Failures that need no checkpoint from the driver: the call must raise a
        StackcoreError and, after the manager's cleanup, nothing may be left."""
        driver = volume_driver
        ghost = volumes.new(1)
        feature = {"clone of a missing source": "clone",
                   "volume from a missing snapshot": "snapshot",
                   "snapshot of a missing volume": "snapshot",
                   "corrupt image to volume": "image",
                   "volume to image in a missing directory": "image"}[provoked]
        needs(driver, feature)
        target = volumes.new(1)
        snap = Snapshot(id=volumes.new_id(), volume=ghost, volume_size=1)
        corrupt = volumes.image_path("qcow2")
        with open(corrupt, "wb") as handle:
            handle.write(b"QFI\xfb" + os.urandom(4096))  # a qcow2 magic, then garbage
        existing = volumes.create(1)
        nowhere = os.path.join(volumes.scratch, "out", "no-such-directory", "image.raw")
        before = _state(volumes)
        calls: dict[str, tuple[Callable[[], Any], Callable[[], Any]]] = {
            "clone of a missing source": (lambda: driver.create_cloned_volume(target, ghost),
                                          lambda: driver.delete_volume(target)),
            "volume from a missing snapshot": (
                lambda: driver.create_volume_from_snapshot(target, snap),
                lambda: driver.delete_volume(target)),
            "snapshot of a missing volume": (lambda: driver.create_snapshot(snap),
                                             lambda: driver.delete_snapshot(snap)),
            "corrupt image to volume": (
                lambda: driver.copy_image_to_volume(existing,
                                                    ImageFile("bad", corrupt, "qcow2")),
                lambda: None),
            "volume to image in a missing directory": (
                lambda: driver.copy_volume_to_image(existing, ImageFile("o", nowhere, "raw")),
                lambda: None),
        }
        call, cleanup = calls[provoked]
        check.raises(Exception, call, f"{provoked}: the driver call")
        check.step(f"{provoked}: the manager's cleanup", cleanup)
        _expect_same(volumes, before, _state(volumes), provoked)

    def test_cleanup_calls_cope_with_what_never_existed(self, volume_driver: VolumeDriver,
                                                        volumes: Volumes) -> None:
        """A create interrupted before it made anything: the manager's cleanup calls must
        still succeed (the backend never heard of the volume)."""
        volume = volumes.new(1)
        snap = Snapshot(id=volumes.new_id(), volume=volume, volume_size=1)
        for what, call in (("delete_volume", lambda: volume_driver.delete_volume(volume)),
                           ("delete_snapshot", lambda: volume_driver.delete_snapshot(snap)),
                           ("remove_export", lambda: volume_driver.remove_export(volume)),
                           ("terminate_connection(None)",
                            lambda: volume_driver.terminate_connection(volume, None))):
            check.step(f"{what}() of a volume the backend never had", call)


# --- capabilities ---------------------------------------------------------------------------


@FAMILY
class TestVolumeCapabilities:
    """Optional capabilities: run for every driver, gated by its declarations (a capability
    declared unsupported must fail here; passing is an unexpected success)."""

    @pytest.mark.capability("thin_provisioning")
    def test_thin_volume_takes_space_only_when_written(self, volume_driver: VolumeDriver,
                                                       volumes: Volumes) -> None:
        """A new, unwritten 2 GiB volume of a type asking for thin provisioning takes
        (almost) no space: seen in what the backend allocated to it or, when the data path
        cannot tell, in its free capacity."""
        allocated, drop = _provisioning_of_a_new_volume(volume_driver, volumes, 2, "thin")
        if allocated is not None:
            check.that(allocated < GiB, "space allocated to a new, unwritten 2 GiB thin volume",
                       "less than 1 GiB (space is taken on write)", f"{allocated / GiB:g} GiB")
        else:
            check.that(drop is not None and drop < 1.0, "free_capacity_gb drop for a new, "
                       "unwritten 2 GiB thin volume", "less than 1 GiB (space is taken on "
                       "write)", f"{drop:g} GiB")

    @pytest.mark.capability("thick_provisioning")
    def test_thick_volume_takes_its_size_at_once(self, volume_driver: VolumeDriver,
                                                 volumes: Volumes) -> None:
        """A new 2 GiB volume of a type asking for thick provisioning takes its 2 GiB at
        once: seen in what the backend allocated to it or, when the data path cannot tell, in
        its free capacity."""
        allocated, drop = _provisioning_of_a_new_volume(volume_driver, volumes, 2, "thick")
        if allocated is not None:
            check.that(allocated >= 2 * GiB, "space allocated to a new 2 GiB thick volume",
                       "2 GiB", f"{allocated / GiB:g} GiB")
        else:
            check.that(drop is not None and drop >= 1.9, "free_capacity_gb drop for a new 2 "
                       "GiB thick volume", "at least 1.9 GiB (its size, allocated at once)",
                       f"{drop:g} GiB")

    @pytest.mark.capability("multiattach")
    def test_two_hosts_attached_at_once(self, volume_driver: VolumeDriver,
                                        volumes: Volumes) -> None:
        """Two hosts connected at once (also after a snapshot, where a driver may have turned
        the volume into an overlay): each host's connection is a raw disk two hypervisors can
        write, data written by one is read by the other, and detaching one host leaves the
        other attached."""
        needs(volume_driver, "attach", "data")
        volume = volumes.create(1, multiattach=True)  # as the manager makes one
        if "snapshot" not in volume_driver.unavailable_features():
            volumes.snapshot(volume)
        volume, info_a = volumes.attach(volume, CONNECTOR)
        info_b = check.step("initialize_connection() for a second host",
                            lambda: volume_driver.initialize_connection(volume,
                                                                        OTHER_CONNECTOR))
        for host, info in (("first", info_a), ("second", info_b)):
            fmt = info["data"].get("format", "raw")
            check.equal(fmt, "raw", f"disk format in the {host} host's connection_info (only "
                        "raw can be written by two hypervisors at once)")
        datapath.write_pattern(info_a, 0, 0x5C, what="writing through the first host")
        datapath.expect_pattern(info_b, 0, 0x5C, "read through the second host")
        check.step("terminate_connection() of the first host",
                   lambda: volume_driver.terminate_connection(volume, CONNECTOR))
        datapath.write_pattern(info_b, MiB, 0x5D,
                               what="writing through the second host after the first left")
        datapath.expect_pattern(info_b, MiB, 0x5D, "read through the second host")
        check.step("terminate_connection() of the second host",
                   lambda: volume_driver.terminate_connection(volume, OTHER_CONNECTOR))

    @pytest.mark.capability("online_extend")
    def test_extend_while_attached_and_open(self, volume_driver: VolumeDriver,
                                            volumes: Volumes) -> None:
        """Extended while exported, connected and held open by a hypervisor (a qemu process
        on its connection): the new size and the old data are seen through the connection,
        and the process holding it keeps working."""
        needs(volume_driver, "attach", "data")
        volume, info = volumes.attach(volumes.create(1))
        datapath.write_pattern(info, 0, 0x6A)
        holder = datapath.Holder(info)
        try:
            check.step("extend_volume(2) of an attached, open volume",
                       lambda: volume_driver.extend_volume(volume, 2))
        finally:
            holder.close("the guest's qemu during extend_volume")
        volume = volumes.track(dataclasses.replace(volume, size=2))
        after = check.step("initialize_connection() after the extend",
                           lambda: volume_driver.initialize_connection(volume, CONNECTOR))
        datapath.expect_size(after, 2, "size seen through the connection after an online "
                             "extend_volume(2)")
        datapath.expect_pattern(after, 0, 0x6A, "data after an online extend")

    @pytest.mark.capability("zero_on_delete")
    def test_deleted_data_is_overwritten_in_the_backend(self, volume_driver: VolumeDriver,
                                                        volumes: Volumes) -> None:
        """The driver overwrites a volume's data before releasing its space: the raw backend
        space the volume occupied (:meth:`VolumeDriver.raw_space`, asked before the delete)
        reads zeros afterwards. The volume's type asks for thick provisioning: a thin volume's
        blocks belong to a pool that zeroes them before reuse and have no raw space of their
        own."""
        needs(volume_driver, "attach", "data")
        volume, info = volumes.attach(volumes.create(1, extra_specs=PROVISIONING["thick"]))
        datapath.write_pattern(info, 0, 0xD1)
        datapath.write_pattern(info, GiB - MiB, 0xD2)
        volumes.detach(volume)
        space = check.step("raw_space() of the volume",
                           lambda: volume_driver.raw_space(volume))
        check.that(space is not None, "raw_space() of a volume", "where its data lies on the "
                   "backend (a connection_info of the raw space)", space)
        assert space is not None
        check.step("delete_volume()", lambda: volume_driver.delete_volume(volume))
        volumes.forget(volume)
        datapath.expect_pattern(space, 0, 0x00, "raw backend space of a deleted volume")
        datapath.expect_pattern(space, GiB - MiB, 0x00, "raw backend space of a deleted "
                                "volume (its last MiB)")

    @pytest.mark.capability("clone_image")
    def test_volume_cloned_from_a_store_image(self, volume_driver: VolumeDriver,
                                              volumes: Volumes) -> None:
        """A raw image stored as this backend's image store keeps it (``store_clone_source``)
        becomes a volume by ``clone_image``: it has the volume's size and the image's data,
        writing to it leaves the image alone, the image cannot be deleted while the clone
        depends on it (copy-on-write) and can once the volume is deleted. A location naming
        nothing on this backend is not cloned: ``(False, None)`` and nothing made."""
        needs(volume_driver, "attach", "data", "image")
        image = volumes.clone_source(0x7C)
        elsewhere = dataclasses.replace(image, location=image.location + "-elsewhere")
        before = _state(volumes)
        cloned, ghost = volumes.clone_image(elsewhere)
        check.equal(cloned, False, "clone_image() of a location naming nothing here")
        _expect_same(volumes, before, _state(volumes), "clone_image() that did not clone")
        volumes.forget(ghost)

        cloned, volume = volumes.clone_image(image, 1)
        check.equal(cloned, True, "clone_image() of a raw image stored by "
                    "store_clone_source() on this backend")
        volume, info = volumes.attach(volume)
        datapath.expect_size(info, 1, "a 1 GiB volume cloned from a 64 MiB image")
        datapath.expect_pattern(info, MiB, 0x7C, "the cloned volume's second MiB (the image's)")
        datapath.expect_pattern(info, 0, 0x00, "the cloned volume's first MiB (the image's)")
        datapath.expect_pattern(info, 512 * MiB, 0x00, "the cloned volume past the image")
        datapath.write_pattern(info, MiB, 0x13)
        volumes.detach(volume)
        check.raises(exception.Conflict,
                     lambda: volume_driver.delete_clone_source(image.location),
                     "delete_clone_source() while a volume cloned from it exists")

        again, twin = volumes.clone_image(image, 1)  # the image kept its data
        check.equal(again, True, "a second clone_image() of the same image")
        _, twin_info = volumes.attach(twin)
        datapath.expect_pattern(twin_info, MiB, 0x7C,
                                "a second clone, after the first one's write of 0x13")
        volumes.detach(twin)
        for made in (twin, volume):
            check.step("delete_volume() of a cloned volume",
                       functools.partial(volume_driver.delete_volume, made))
            volumes.forget(made)
        check.step("delete_clone_source() once its clones are deleted",
                   lambda: volume_driver.delete_clone_source(image.location))
        volumes.clone_sources.remove(image.location)
        left = volumes.ours(volume_driver.list_backend_objects())
        check.empty([n for n in left if image.id in n],
                    "backend objects of the image after delete_clone_source()")

    # --- manage_existing --------------------------------------------------------------------

    @pytest.mark.capability("manage_existing")
    def test_unmanaged_volume_managed_again_keeps_its_data(self, volume_driver: VolumeDriver,
                                                           volumes: Volumes) -> None:
        """A volume given up (``unmanage``) keeps its object, name and data on the backend,
        listed by ``list_manageable_volumes`` as safe; managed again as a new volume
        (``manage_existing_get_size`` = its size, ``manage_existing``) the object is renamed
        to the new volume's name and the data is read through the new volume's connection;
        deleting the new volume leaves nothing."""
        needs(volume_driver, "attach", "data")
        old, info = volumes.attach(volumes.create(1))
        datapath.write_pattern(info, 0, 0x4D)
        datapath.write_pattern(info, GiB - MiB, 0x4E)
        volumes.detach(old)  # the manager removes the export before unmanage
        check.step("unmanage()", lambda: volume_driver.unmanage(old))
        names = check.step("list_backend_objects()", volume_driver.list_backend_objects)
        check.that(old.name in names, "list_backend_objects() after unmanage()",
                   f"to list {old.name} (the object stays, with its name)", names)
        listed = check.step("list_manageable_volumes()", volume_driver.list_manageable_volumes)
        check.instance(listed, list, "list_manageable_volumes()")
        entry = next((e for e in listed if isinstance(e, Mapping)
                      and e.get("reference") == {SOURCE_NAME: old.name}), None)
        check.that(entry is not None, "list_manageable_volumes() after unmanage()",
                   f"an entry with reference {{'source-name': {old.name!r}}}", listed)
        assert entry is not None
        check.equal({k: entry.get(k) for k in ("size", "safe_to_manage", "reason_not_safe")},
                    {"size": 1, "safe_to_manage": True, "reason_not_safe": None},
                    f"list_manageable_volumes() entry of the unmanaged {old.name}")
        ref = dict(entry["reference"])

        new = volumes.new(0)
        size = check.step("manage_existing_get_size()",
                          lambda: volume_driver.manage_existing_get_size(new, ref))
        check.equal(size, 1, f"manage_existing_get_size() of {old.name}, the object of an "
                    "unmanaged 1 GiB volume (GiB)")
        new = dataclasses.replace(new, size=1)
        volumes.made.append(new)  # the old one stays tracked until the object is the new one's
        update = check.step("manage_existing()",
                            lambda: volume_driver.manage_existing(new, ref))
        new = volumes.track(apply(new, update, "manage_existing"))
        names = check.step("list_backend_objects()", volume_driver.list_backend_objects)
        check.that(new.name in names and old.name not in names,
                   "list_backend_objects() after manage_existing()",
                   f"to list {new.name} (the object renamed to the volume's name) and no "
                   f"longer {old.name}", volumes.ours(names))
        volumes.forget(old)
        new, after = volumes.attach(new)
        datapath.expect_size(after, 1, "size of the managed volume seen by a reader")
        datapath.expect_pattern(after, 0, 0x4D, "first MiB of the managed volume (written "
                                "before its unmanage)")
        datapath.expect_pattern(after, GiB - MiB, 0x4E, "last MiB of the managed volume")
        volumes.detach(new)
        check.step("delete_volume() of the managed volume",
                   lambda: volume_driver.delete_volume(new))
        volumes.forget(new)
        left = volumes.ours(volume_driver.list_backend_objects())
        check.empty(left, "backend objects after the managed volume's delete_volume()")

    @pytest.mark.capability("manage_existing")
    def test_manage_of_nothing_is_not_found(self, volume_driver: VolumeDriver,
                                            volumes: Volumes) -> None:
        """A reference naming no object - one named like a volume that was never made, one
        whose name holds shell metacharacters (data, never a command) - is NotFound (the
        odd name may be refused as Invalid) for ``manage_existing_get_size`` and
        ``manage_existing``, and nothing is made or lost."""
        volume = volumes.new(1)
        volumes.made.append(volume)  # removed at teardown should a driver make it anyway
        before = _state(volumes)
        for name, allowed in ((f"volume-{volumes.new_id()}", (exception.NotFound,)),
                              ("legacy <disk> & 'x' \"y\" $HOME;`id`",
                               (exception.NotFound, exception.Invalid))):
            ref = {SOURCE_NAME: name}
            check.raises(allowed, functools.partial(volume_driver.manage_existing_get_size,
                                                    volume, ref),
                         f"manage_existing_get_size() of a reference to nothing ({name!r})")
            check.raises(allowed, functools.partial(volume_driver.manage_existing, volume, ref),
                         f"manage_existing() of a reference to nothing ({name!r})")
        _expect_same(volumes, before, _state(volumes), "manage_existing() of nothing")

    @pytest.mark.capability("manage_existing")
    def test_manage_of_a_malformed_reference_is_invalid(self, volume_driver: VolumeDriver,
                                                        volumes: Volumes) -> None:
        """Only ``{"source-name": "<name>"}`` is a reference: any other shape is Invalid
        naming ``existing_ref``, even when it would name an existing object; nothing is
        adopted or changed."""
        existing = volumes.create(1)
        volume = volumes.new(1)
        volumes.made.append(volume)
        before = _state(volumes)
        refs: tuple[Any, ...] = (
            {"source-id": existing.name}, {SOURCE_NAME: existing.name, "pool": "x"},
            {SOURCE_NAME: [existing.name]}, {SOURCE_NAME: ""}, {}, existing.name)
        for ref in refs:
            for what, call in (
                    ("manage_existing_get_size", volume_driver.manage_existing_get_size),
                    ("manage_existing", volume_driver.manage_existing)):
                err = check.raises(exception.Invalid, functools.partial(call, volume, ref),
                                   f"{what}({ref!r})")
                check.that("existing_ref" in str(err), f"{what}({ref!r}) error",
                           "one naming existing_ref", str(err))
        _expect_same(volumes, before, _state(volumes), "manage_existing() of malformed "
                     "references")
