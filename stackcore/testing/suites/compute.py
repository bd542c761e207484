"""Compute (hypervisor driver) conformance suite.

Import it into a test module of the driver package and run pytest with
``--stackcore-driver compute:<name>`` (and ``--stackcore-config`` with the driver's own option
groups, from its ``list_opts``). Every test talks to the driver exactly as the compute manager
does and checks the backend's observable state through the contract's own read methods
(``get_info``, ``list_instances``, ``get_available_resource``), so it holds for any backend.

Instances are named with characters that must be escaped (``<>&'"$;``) so every lifecycle test
also proves the driver treats names as data. The image is a small raw file whose first 64 KiB
hold the byte 0x5A (a snapshot must carry them). System tools: ``qemu-img`` and ``qemu-io``
read the snapshot image.

What is checked, by feature:

* ``lifecycle`` - spawn, list, get_info, power off/on (idempotent), reboot (also of a stopped
  instance: a hard reboot starts it), destroy (idempotent, unknown instances, stopped
  instances), a new driver object seeing the same backend;
* ``stats`` - the schema (integers are integers), JSON, usable capacity;
* ``failure-cleanup`` - a spawn that fails leaves nothing once ``destroy`` (the manager's
  cleanup) ran;
* every capability (``pause``, ``suspend``, ``console_output``, ``snapshot``,
  ``live_snapshot``, ``rescue``, ``attach_volume``, ``extend_volume``, ``plug_vifs``,
  ``resize``, ``boot_from_volume``, ``live_migration``) by behaviour, whatever is
  declared (``rescue``: ``get_info`` says ``rescued`` and running, unrescue undoes it,
  twice is fine, a rescued instance is destroyed with all it made):
  pause/suspend must reach the state ``get_info`` reports and come back (a ``pause`` that
  returns with the instance still running fails), a snapshot is read back with ``qemu-io``
  in the format the contract names (``snapshot`` of a stopped instance; ``live_snapshot`` of
  a running one, which must still run); ``resize`` on one host: power states through
  migrate/finish/revert/confirm, listed once throughout, the rollbacks the manager runs
  keep the instance, a smaller disk refused; ``live_migration`` on one host: the
  destination's preparation and its rollback leave nothing, an instance already here is
  refused, an abort with nothing in progress is InvalidState; ``boot_from_volume``: a root
  volume holding the image boots with no image file, ``destroy`` leaves the volume's data
  alone, two root volumes or one off ``/dev/vda`` refused.

Everything a test creates is destroyed right after it, and that check is part of the test: an
instance ``destroy`` left behind fails the test that made it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import shutil
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from stackcore import exception
from stackcore.compute import stats
from stackcore.compute.driver import HypervisorDriver, effective_capabilities, snapshot_format
from stackcore.compute.objects import Flavor, Image, Instance, PowerState, RebootType
from stackcore.testing import check, datapath
from stackcore.testing.harness import DriverUnderTest
from stackcore.testing.plugin import verify_after

__all__ = [
    "TestComputeCapabilities",
    "TestComputeFailures",
    "TestComputeLifecycle",
    "TestComputeStats",
    "compute_driver",
    "compute_image",
    "make_instance",
]

FAMILY = pytest.mark.family("compute")

HOST = "conformance-host"
HOSTILE_NAME = "conformance <vm> & 'quoted' \"double\" $HOME; rm -rf"
IMAGE_PATTERN = 0x5A
IMAGE_PATTERN_LENGTH = 64 * 1024
#: A volume a hypervisor can attach without reaching its backend while the instance is off
#: (the attachment is recorded in the instance's definition only).
VOLUME = {"driver_volume_type": "nfs",
          "data": {"export": "127.0.0.1:/stackcore-conformance", "name": "volume-conformance",
                   "format": "raw", "options": None, "volume_id": "conformance"}}
VIF = {"id": "1c5d5e2e-5c58-4bb0-8c1f-3b8d3a0c0001", "address": "fa:16:3e:00:00:01",
       "mac_address": "fa:16:3e:00:00:01", "vif_type": "bridge",
       "vif_details": {"bridge_name": "brq-conformance"}, "devname": "tapconformance"}


@pytest.fixture(scope="session")
def compute_image(stackcore_target: DriverUnderTest, tmp_path_factory: Any) -> Image:
    """A small raw image file (1 MiB; its first 64 KiB hold 0x5A) registered as x86_64/hvm."""
    path = tmp_path_factory.mktemp("images") / "conformance.raw"
    with open(path, "wb") as handle:
        handle.write(bytes([IMAGE_PATTERN]) * IMAGE_PATTERN_LENGTH)
        handle.truncate(1024 * 1024)
    return Image(
        id=str(uuid.uuid4()),
        name="conformance-image",
        path=str(path),
        disk_format="raw",
        properties={"architecture": "x86_64", "vm_mode": "hvm"},
    )


@pytest.fixture
def compute_driver(stackcore_target: DriverUnderTest) -> HypervisorDriver:
    driver: HypervisorDriver = stackcore_target.new(HOST)
    check.instance(driver, HypervisorDriver, "the driver object")
    check.step(f"init_host({HOST!r})", lambda: driver.init_host(HOST))
    return driver


@pytest.fixture
def make_instance(
    request: pytest.FixtureRequest, compute_driver: HypervisorDriver, compute_image: Image
) -> Callable[..., Instance]:
    """Build instances (not spawned); right after the test every one is destroyed and must be
    gone from the backend (part of the test)."""
    made: list[Instance] = []

    def make(name: str = HOSTILE_NAME, image: Image = compute_image, **metadata: str
             ) -> Instance:
        instance = Instance(
            uuid=str(uuid.uuid4()),
            name=name,
            host=HOST,
            flavor=Flavor("conformance", vcpus=1, ram_mb=64, disk_gb=1),
            image=image,
            metadata={"purpose": "conformance <&>", **metadata},
        )
        made.append(instance)
        return instance

    def destroy_all() -> None:
        for instance in made:
            check.step(f"destroy() of instance {instance.uuid}",
                       functools.partial(compute_driver.destroy, instance, [], [], True))
        leftovers = sorted(set(compute_driver.list_instances()) & {i.uuid for i in made})
        check.empty(leftovers, "instances still listed after destroy()")

    verify_after(request, "destroying the test's instances", destroy_all)
    return make


def needs(driver: HypervisorDriver, capability: str) -> None:
    """Skip when the backend cannot offer ``capability`` (the driver says why)."""
    missing = driver.unavailable_features()
    if capability in missing:
        pytest.skip(f"{capability} unavailable on this backend: {missing[capability]}")


def _spawned(driver: HypervisorDriver, make: Callable[..., Instance]) -> Instance:
    instance = make()
    check.step("spawn()", lambda: driver.spawn(instance, instance.image, [], []))
    return instance


def _state(driver: HypervisorDriver, instance: Instance, when: str) -> PowerState:
    info = check.step(f"get_info() {when}", lambda: driver.get_info(instance))
    return info.power_state


def expect_state(driver: HypervisorDriver, instance: Instance, expected: PowerState,
                 when: str) -> None:
    got = _state(driver, instance, when)
    check.that(got == expected, f"power state {when}", expected.name,
               getattr(got, "name", repr(got)))


#: the flavor resize tests grow an instance to
BIGGER = Flavor("conformance-bigger", vcpus=2, ram_mb=128, disk_gb=2)


def _json_round_trip(value: Any, what: str) -> None:
    try:
        json.dumps(value)
    except (TypeError, ValueError) as err:
        raise check.KitError(f"{what}: expected something JSON can carry, got {value!r} "
                             f"({err})") from None


def _listed_once(driver: HypervisorDriver, instance: Instance, when: str) -> None:
    listed = check.step(f"list_instances() {when}", driver.list_instances)
    check.that(listed.count(instance.uuid) == 1, f"instance {instance.uuid} in "
               f"list_instances() {when}", "listed once", listed)


@FAMILY
@pytest.mark.feature("lifecycle")
class TestComputeLifecycle:
    """Required methods: spawn, get_info, list_instances, reboot, power off/on, destroy."""

    def test_spawn_runs_and_lists(
        self, compute_driver: HypervisorDriver, make_instance: Any
    ) -> None:
        instance = _spawned(compute_driver, make_instance)
        expect_state(compute_driver, instance, PowerState.RUNNING, "after spawn()")
        listed = compute_driver.list_instances()
        check.that(instance.uuid in listed, "list_instances() after spawn()",
                   f"to list {instance.uuid}", listed)

    def test_spawn_same_uuid_twice_is_refused(
        self, compute_driver: HypervisorDriver, make_instance: Any
    ) -> None:
        instance = _spawned(compute_driver, make_instance)
        check.raises(exception.StackcoreError,
                     lambda: compute_driver.spawn(instance, instance.image, [], []),
                     "a second spawn() of the same instance uuid")
        expect_state(compute_driver, instance, PowerState.RUNNING, "after the refused spawn()")

    def test_destroy_removes_instance(
        self, compute_driver: HypervisorDriver, make_instance: Any
    ) -> None:
        instance = _spawned(compute_driver, make_instance)
        check.step("destroy()", lambda: compute_driver.destroy(instance, [], [], True))
        listed = compute_driver.list_instances()
        check.that(instance.uuid not in listed, "list_instances() after destroy()",
                   f"not to list {instance.uuid}", listed)
        check.raises(exception.NotFound, lambda: compute_driver.get_info(instance),
                     "get_info() of a destroyed instance")

    def test_destroy_is_idempotent(
        self, compute_driver: HypervisorDriver, make_instance: Any
    ) -> None:
        instance = _spawned(compute_driver, make_instance)
        check.step("destroy()", lambda: compute_driver.destroy(instance, [], [], True))
        check.step("a second destroy()", lambda: compute_driver.destroy(instance, [], [], True))
        listed = compute_driver.list_instances()
        check.that(instance.uuid not in listed, "list_instances() after two destroy() calls",
                   f"not to list {instance.uuid}", listed)

    def test_destroy_unknown_instance_succeeds(
        self, compute_driver: HypervisorDriver, make_instance: Any
    ) -> None:
        ghost = make_instance()
        check.step("destroy() of an instance the backend never had",
                   lambda: compute_driver.destroy(ghost, [], [], True))

    def test_get_info_unknown_raises_not_found(
        self, compute_driver: HypervisorDriver, make_instance: Any
    ) -> None:
        ghost = make_instance()
        check.raises(exception.NotFound, lambda: compute_driver.get_info(ghost),
                     "get_info() of an instance the backend never had")

    def test_power_off_and_on(self, compute_driver: HypervisorDriver, make_instance: Any) -> None:
        instance = _spawned(compute_driver, make_instance)
        check.step("power_off()", lambda: compute_driver.power_off(instance))
        expect_state(compute_driver, instance, PowerState.SHUTDOWN, "after power_off()")
        check.step("power_off() of a stopped instance",
                   lambda: compute_driver.power_off(instance))
        listed = compute_driver.list_instances()
        check.that(instance.uuid in listed, "list_instances() after power_off()",
                   f"to list {instance.uuid} (off is not gone)", listed)
        check.step("power_on()", lambda: compute_driver.power_on(instance))
        expect_state(compute_driver, instance, PowerState.RUNNING, "after power_on()")
        check.step("power_on() of a running instance",
                   lambda: compute_driver.power_on(instance))
        expect_state(compute_driver, instance, PowerState.RUNNING, "after a second power_on()")

    @pytest.mark.parametrize("kind", [RebootType.SOFT, RebootType.HARD])
    def test_reboot_leaves_running(
        self, compute_driver: HypervisorDriver, make_instance: Any, kind: RebootType
    ) -> None:
        instance = _spawned(compute_driver, make_instance)
        check.step(f"reboot({kind.name})", lambda: compute_driver.reboot(instance, kind))
        expect_state(compute_driver, instance, PowerState.RUNNING, f"after reboot({kind.name})")

    def test_hard_reboot_starts_a_stopped_instance(
        self, compute_driver: HypervisorDriver, make_instance: Any
    ) -> None:
        """The instance must be running when reboot returns, whatever it was before (Nova's
        rule: a hard reboot is how users restart a stuck or stopped instance)."""
        instance = _spawned(compute_driver, make_instance)
        check.step("power_off()", lambda: compute_driver.power_off(instance))
        check.step("reboot(HARD) of a stopped instance",
                   lambda: compute_driver.reboot(instance, RebootType.HARD))
        expect_state(compute_driver, instance, PowerState.RUNNING,
                     "after reboot(HARD) of a stopped instance")

    def test_destroy_powered_off_instance(
        self, compute_driver: HypervisorDriver, make_instance: Any
    ) -> None:
        instance = _spawned(compute_driver, make_instance)
        check.step("power_off()", lambda: compute_driver.power_off(instance))
        check.step("destroy() of a stopped instance",
                   lambda: compute_driver.destroy(instance, [], [], True))
        listed = compute_driver.list_instances()
        check.that(instance.uuid not in listed, "list_instances() after destroy() of a "
                   "stopped instance", f"not to list {instance.uuid}", listed)

    def test_instances_survive_a_new_driver_object(
        self, stackcore_target: DriverUnderTest, compute_driver: HypervisorDriver,
        make_instance: Any,
    ) -> None:
        """A restarted compute service builds a new driver; it must see the same backend."""
        instance = _spawned(compute_driver, make_instance)
        again: HypervisorDriver = stackcore_target.new(HOST)
        check.step("init_host() of a new driver object", lambda: again.init_host(HOST))
        listed = again.list_instances()
        check.that(instance.uuid in listed, "list_instances() of a new driver object",
                   f"to list {instance.uuid}, spawned by the previous one", listed)
        expect_state(again, instance, PowerState.RUNNING, "seen by a new driver object")


@FAMILY
@pytest.mark.feature("stats")
class TestComputeStats:
    def test_stats_meet_schema(self, compute_driver: HypervisorDriver) -> None:
        report = check.step("get_available_resource()", compute_driver.get_available_resource)
        try:
            stats.validate(report, "get_available_resource()")
        except exception.StatsSchemaError as err:
            raise check.KitError(f"stats report: expected one meeting the schema, got: {err}"
                                 ) from None

    def test_stats_are_json_serialisable(self, compute_driver: HypervisorDriver) -> None:
        report = check.step("get_available_resource()", compute_driver.get_available_resource)
        try:
            json.dumps(report)
        except (TypeError, ValueError) as err:
            raise check.fail("stats report", "JSON types only (it travels over RPC)",
                             f"{type(err).__name__}: {err}") from None

    def test_stats_report_usable_capacity(self, compute_driver: HypervisorDriver) -> None:
        report = check.step("get_available_resource()", compute_driver.get_available_resource)
        for key in ("vcpus", "memory_mb"):
            check.that(isinstance(report.get(key), int) and report[key] > 0,
                       f"stats {key}", "a positive integer (a host that can take instances)",
                       report.get(key))


@FAMILY
@pytest.mark.feature("failure-cleanup")
class TestComputeFailures:
    def test_failed_spawn_is_cleaned_by_destroy(
        self, compute_driver: HypervisorDriver, make_instance: Any, compute_image: Image
    ) -> None:
        """A spawn that fails (its image file is gone) must raise, and ``destroy`` - the
        manager's cleanup - must then leave nothing of it on the backend."""
        missing = Image(id=str(uuid.uuid4()), name="gone", path="/nonexistent/stackcore.raw",
                        disk_format="raw", properties=dict(compute_image.properties))
        instance = make_instance(image=missing)
        check.raises(Exception, lambda: compute_driver.spawn(instance, missing, [], []),
                     "spawn() from an image file that does not exist")
        check.step("destroy() after the failed spawn (the manager's cleanup)",
                   lambda: compute_driver.destroy(instance, [], [], True))
        listed = compute_driver.list_instances()
        check.that(instance.uuid not in listed, "list_instances() after a failed spawn and "
                   "destroy()", f"not to list {instance.uuid}", listed)


@FAMILY
class TestComputeCapabilities:
    """Optional capabilities: run for every driver, gated by its declarations."""

    @pytest.mark.capability("pause")
    def test_pause_unpause(self, compute_driver: HypervisorDriver, make_instance: Any) -> None:
        needs(compute_driver, "pause")
        instance = _spawned(compute_driver, make_instance)
        check.step("pause()", lambda: compute_driver.pause(instance))
        expect_state(compute_driver, instance, PowerState.PAUSED, "after pause()")
        check.step("unpause()", lambda: compute_driver.unpause(instance))
        expect_state(compute_driver, instance, PowerState.RUNNING, "after unpause()")

    @pytest.mark.capability("suspend")
    def test_suspend_resume(self, compute_driver: HypervisorDriver, make_instance: Any) -> None:
        needs(compute_driver, "suspend")
        instance = _spawned(compute_driver, make_instance)
        check.step("suspend()", lambda: compute_driver.suspend(instance))
        got = _state(compute_driver, instance, "after suspend()")
        check.that(got in (PowerState.SUSPENDED, PowerState.SHUTDOWN), "power state after "
                   "suspend()", "SUSPENDED (or SHUTDOWN)", getattr(got, "name", repr(got)))
        listed = compute_driver.list_instances()
        check.that(instance.uuid in listed, "list_instances() after suspend()",
                   f"to list {instance.uuid}", listed)
        check.step("resume()", lambda: compute_driver.resume(instance))
        expect_state(compute_driver, instance, PowerState.RUNNING, "after resume()")

    @pytest.mark.capability("console_output")
    def test_console_output_of_the_instance(
        self, compute_driver: HypervisorDriver, make_instance: Any
    ) -> None:
        """Text for an instance the backend has; NotFound for one it does not (a driver that
        answers without looking at the instance fails here)."""
        needs(compute_driver, "console_output")
        instance = _spawned(compute_driver, make_instance)
        text = check.step("get_console_output()",
                          lambda: compute_driver.get_console_output(instance))
        check.instance(text, str, "get_console_output()")
        check.raises(exception.NotFound,
                     lambda: compute_driver.get_console_output(make_instance()),
                     "get_console_output() of an instance the backend never had")

    @pytest.mark.capability("snapshot")
    def test_snapshot_carries_the_root_disk(
        self, compute_driver: HypervisorDriver, make_instance: Any, tmp_path: Any
    ) -> None:
        """The snapshot of a stopped instance is an image of the root disk in the format the
        contract names: qemu reads the image's first 64 KiB (0x5A) from it."""
        needs(compute_driver, "snapshot")
        instance = _spawned(compute_driver, make_instance)
        check.step("power_off()", lambda: compute_driver.power_off(instance))
        target = str(tmp_path / "snapshot.img")
        check.step("snapshot() of a stopped instance",
                   lambda: compute_driver.snapshot(instance, target))
        _check_snapshot(target, instance)
        expect_state(compute_driver, instance, PowerState.SHUTDOWN,
                     "after snapshot() of a stopped instance")

    @pytest.mark.capability("boot_from_volume")
    def test_boot_from_volume(
        self, compute_driver: HypervisorDriver, make_instance: Any, compute_image: Image
    ) -> None:
        """A root volume (``boot_index`` 0 at ``/dev/vda``; here a raw file holding the
        image, handed over as an NFS volume already mounted: ``data.device_path``) is booted
        as it is: no image file is given (``image.path`` ``""``), the instance runs, and
        ``destroy`` leaves the volume and its data alone. Two root volumes, or one not at
        ``/dev/vda``, are refused with nothing made."""
        needs(compute_driver, "boot_from_volume")
        volume_path = os.path.join(os.path.dirname(compute_image.path),
                                   f"root-volume-{uuid.uuid4()}.raw")
        shutil.copyfile(compute_image.path, volume_path)
        os.chmod(volume_path, 0o666)  # what an NFS share gives the hypervisor's user
        try:
            no_file = Image(id=compute_image.id, name=compute_image.name, path="",
                            disk_format="raw", properties=dict(compute_image.properties))
            volume_id = str(uuid.uuid4())
            root = {"mount_device": "/dev/vda", "volume_id": volume_id, "boot_index": 0,
                    "connection_info": {"driver_volume_type": "nfs", "data": {
                        "device_path": volume_path, "format": "raw", "volume_id": volume_id,
                        "export": "127.0.0.1:/stackcore-conformance",
                        "name": os.path.basename(volume_path), "options": None}}}
            instance = make_instance(image=no_file)
            check.step("spawn() from a root volume, with no image file",
                       lambda: compute_driver.spawn(instance, no_file, [], [root]))
            expect_state(compute_driver, instance, PowerState.RUNNING,
                         "after spawn() from a root volume")
            _listed_once(compute_driver, instance, "after spawn() from a root volume")
            check.step("destroy()", lambda: compute_driver.destroy(
                instance, [], [{"mount_device": "/dev/vda", "volume_id": volume_id,
                                "boot_index": 0}], True))
            check.that(os.path.isfile(volume_path), "the root volume after destroy()",
                       "still there (the volume service owns it)", "removed")
            with open(volume_path, "rb") as handle:
                head = handle.read(IMAGE_PATTERN_LENGTH)
            check.that(head == bytes([IMAGE_PATTERN]) * IMAGE_PATTERN_LENGTH,
                       "the root volume's first 64 KiB after destroy()",
                       f"{IMAGE_PATTERN:#04x} throughout (untouched)", head[:16].hex() + "...")
            for bad, what in (([root, {**root, "volume_id": "second"}], "two root volumes"),
                              ([{**root, "mount_device": "/dev/vdb"}],
                               "a root volume at /dev/vdb")):
                refused = make_instance(image=no_file)
                check.raises(exception.Invalid,
                             functools.partial(compute_driver.spawn, refused, no_file, [],
                                               bad),
                             f"spawn() with {what}")
                listed = compute_driver.list_instances()
                check.that(refused.uuid not in listed, f"list_instances() after spawn() with "
                           f"{what} was refused", f"not to list {refused.uuid}", listed)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(volume_path)

    @pytest.mark.capability("live_snapshot")
    def test_live_snapshot_keeps_running(
        self, compute_driver: HypervisorDriver, make_instance: Any, tmp_path: Any
    ) -> None:
        """A driver declaring ``live_snapshot`` snapshots a running instance, which is still
        running afterwards; the image carries the root disk."""
        needs(compute_driver, "live_snapshot")
        instance = _spawned(compute_driver, make_instance)
        target = str(tmp_path / "live.img")
        check.step("snapshot() of a running instance",
                   lambda: compute_driver.snapshot(instance, target))
        expect_state(compute_driver, instance, PowerState.RUNNING,
                     "after snapshot() of a running instance")
        _check_snapshot(target, instance)

    @pytest.mark.capability("pause")
    def test_pause_of_an_unknown_instance_is_not_found(
        self, compute_driver: HypervisorDriver, make_instance: Any
    ) -> None:
        needs(compute_driver, "pause")
        check.raises(exception.NotFound, lambda: compute_driver.pause(make_instance()),
                     "pause() of an instance the backend never had")

    @pytest.mark.capability("rescue")
    def test_rescue_unrescue(
        self, compute_driver: HypervisorDriver, make_instance: Any, compute_image: Image
    ) -> None:
        needs(compute_driver, "rescue")
        instance = _spawned(compute_driver, make_instance)
        rescue_image = Image(id=str(uuid.uuid4()), name="rescue", path=compute_image.path,
                             disk_format=compute_image.disk_format,
                             properties=dict(compute_image.properties))
        check.step("rescue()", lambda: compute_driver.rescue(instance, rescue_image))
        info = check.step("get_info() after rescue()", lambda: compute_driver.get_info(instance))
        check.that(info.rescued is True, "rescued after rescue()", "True", info.rescued)
        expect_state(compute_driver, instance, PowerState.RUNNING, "after rescue()")
        check.step("unrescue()", lambda: compute_driver.unrescue(instance))
        info = check.step("get_info() after unrescue()",
                          lambda: compute_driver.get_info(instance))
        check.that(info.rescued is False, "rescued after unrescue()", "False", info.rescued)
        expect_state(compute_driver, instance, PowerState.RUNNING, "after unrescue()")
        check.step("a second unrescue() (not rescued)",
                   lambda: compute_driver.unrescue(instance))
        # rescued again and left so: the test's teardown destroys it and checks it is gone
        check.step("rescue() again", lambda: compute_driver.rescue(instance, rescue_image))

    @pytest.mark.capability("attach_volume")
    def test_attach_unknown_volume_type_is_refused(
        self, compute_driver: HypervisorDriver, make_instance: Any
    ) -> None:
        needs(compute_driver, "attach_volume")
        instance = _spawned(compute_driver, make_instance)
        bogus = {"driver_volume_type": "carrier-pigeon", "data": {}}
        err = check.raises(exception.Invalid,
                           lambda: compute_driver.attach_volume(instance, bogus, "/dev/vdb"),
                           "attach_volume() of driver_volume_type 'carrier-pigeon'")
        check.that("carrier-pigeon" in str(err), "the refusal's message",
                   "to name 'carrier-pigeon'", str(err))
        # Nothing attached: detaching the same mountpoint is a no-op that succeeds.
        check.step("detach_volume() of what was never attached",
                   lambda: compute_driver.detach_volume(instance, bogus, "/dev/vdb"))
        expect_state(compute_driver, instance, PowerState.RUNNING, "after the refused attach")

    @pytest.mark.capability("attach_volume")
    def test_attach_detach_round_trip(
        self, compute_driver: HypervisorDriver, make_instance: Any
    ) -> None:
        """On a stopped instance (nothing is connected, the attachment is recorded): an
        attached mountpoint is taken (a second attach there is refused), detach frees it
        (idempotently), and it can be attached again."""
        needs(compute_driver, "attach_volume")
        instance = _spawned(compute_driver, make_instance)
        check.step("power_off()", lambda: compute_driver.power_off(instance))
        volume = json.loads(json.dumps(VOLUME))
        check.step("attach_volume() at /dev/vdb",
                   lambda: compute_driver.attach_volume(instance, volume, "/dev/vdb"))
        check.raises(exception.StackcoreError,
                     lambda: compute_driver.attach_volume(instance, volume, "/dev/vdb"),
                     "a second attach_volume() at /dev/vdb (taken by the first)")
        check.step("detach_volume() of /dev/vdb",
                   lambda: compute_driver.detach_volume(instance, volume, "/dev/vdb"))
        check.step("a second detach_volume() of /dev/vdb",
                   lambda: compute_driver.detach_volume(instance, volume, "/dev/vdb"))
        check.step("attach_volume() at /dev/vdb again, after the detach (it must be free)",
                   lambda: compute_driver.attach_volume(instance, volume, "/dev/vdb"))
        check.step("detach_volume() of /dev/vdb",
                   lambda: compute_driver.detach_volume(instance, volume, "/dev/vdb"))

    @pytest.mark.capability("extend_volume")
    def test_extend_volume_needs_an_attached_volume(
        self, compute_driver: HypervisorDriver, make_instance: Any
    ) -> None:
        """A mountpoint with no volume is NotFound (the manager records that as a fault: the
        guest was not shown the size). With ``attach_volume`` too: a volume attached to a
        stopped instance is extended without error (its size is read when it starts) and
        the instance stays stopped."""
        needs(compute_driver, "extend_volume")
        instance = _spawned(compute_driver, make_instance)
        check.raises(exception.NotFound,
                     lambda: compute_driver.extend_volume(instance, "/dev/vdb", 2 * 1024**3),
                     "extend_volume() of /dev/vdb, where no volume is attached")
        if "attach_volume" not in effective_capabilities(compute_driver):
            return
        check.step("power_off()", lambda: compute_driver.power_off(instance))
        volume = json.loads(json.dumps(VOLUME))
        check.step("attach_volume() at /dev/vdb",
                   lambda: compute_driver.attach_volume(instance, volume, "/dev/vdb"))
        check.step("extend_volume() of /dev/vdb on the stopped instance",
                   lambda: compute_driver.extend_volume(instance, "/dev/vdb", 2 * 1024**3))
        expect_state(compute_driver, instance, PowerState.SHUTDOWN, "after extend_volume()")
        check.step("detach_volume() of /dev/vdb",
                   lambda: compute_driver.detach_volume(instance, volume, "/dev/vdb"))

    @pytest.mark.capability("resize")
    def test_same_host_resize_confirm_and_revert(
        self, compute_driver: HypervisorDriver, make_instance: Any
    ) -> None:
        """A resize on one host, as the manager drives it: migrate_disk_and_power_off stops
        the instance and returns JSON; finish_migration starts it with the new flavor;
        revert_migration + finish_revert_migration bring the old one back running; a second
        resize is confirmed (twice) and the new instance keeps running. Listed once
        throughout."""
        needs(compute_driver, "resize")
        old = _spawned(compute_driver, make_instance)
        new = dataclasses.replace(old, flavor=BIGGER)
        for round_ in ("revert", "confirm"):
            disk_info = check.step(
                f"migrate_disk_and_power_off() to this host ({round_})",
                lambda: compute_driver.migrate_disk_and_power_off(old, HOST, BIGGER, [], []))
            _json_round_trip(disk_info, "migrate_disk_and_power_off()'s disk_info")
            expect_state(compute_driver, old, PowerState.SHUTDOWN,
                         "after migrate_disk_and_power_off()")
            carried = json.loads(json.dumps(disk_info))  # as the migration row keeps it
            check.step("finish_migration(resize_instance=True, power_on=True)",
                       functools.partial(compute_driver.finish_migration, new, carried, [], [],
                                         True, True))
            expect_state(compute_driver, new, PowerState.RUNNING, "after finish_migration()")
            _listed_once(compute_driver, old, "after finish_migration()")
            if round_ == "revert":
                check.step("revert_migration()",
                           lambda: compute_driver.revert_migration(new, [], []))
                check.step("finish_revert_migration(power_on=True)",
                           lambda: compute_driver.finish_revert_migration(old, [], [], True))
                expect_state(compute_driver, old, PowerState.RUNNING,
                             "after finish_revert_migration()")
                _listed_once(compute_driver, old, "after finish_revert_migration()")
        for attempt in ("confirm_migration()", "a second confirm_migration()"):
            check.step(attempt, lambda: compute_driver.confirm_migration(old, []))
            expect_state(compute_driver, new, PowerState.RUNNING, f"after {attempt}")
            _listed_once(compute_driver, new, f"after {attempt}")

    @pytest.mark.capability("live_migration")
    def test_live_migration_preparation_and_rollback_leave_nothing(
        self, compute_driver: HypervisorDriver, make_instance: Any
    ) -> None:
        """The destination's side of a live migration that fails, on one host: for an
        instance this host does not have, pre_live_migration returns JSON-able
        migrate_data, and rollback_live_migration_at_destination (twice, and with the
        ``{}`` the manager passes when pre_live_migration failed) leaves nothing listed;
        pre_live_migration of an instance this host already runs is refused (Invalid) and
        leaves it running; live_migration_abort with no migration in progress is
        InvalidState; post_live_migration of an instance that is not here succeeds. (The
        move itself needs two backends: the manager's tests drive it on the fake, the
        driver's functional tests on two real hypervisors.)"""
        needs(compute_driver, "live_migration")
        running = _spawned(compute_driver, make_instance)
        arriving = make_instance()
        data = check.step("pre_live_migration() of an instance from another host",
                          lambda: compute_driver.pre_live_migration(arriving, [], [], None))
        _json_round_trip(data, "pre_live_migration()'s migrate_data")
        carried = json.loads(json.dumps(data))  # as the migration row keeps it
        for attempt, given in (("rollback_live_migration_at_destination()", carried),
                               ("a second rollback_live_migration_at_destination()", carried),
                               ("rollback_live_migration_at_destination() with {}", {})):
            check.step(attempt, functools.partial(
                compute_driver.rollback_live_migration_at_destination, arriving, [], [],
                given))
            listed = check.step(f"list_instances() after {attempt}",
                                compute_driver.list_instances)
            check.that(arriving.uuid not in listed, f"instance {arriving.uuid} after "
                       f"{attempt}", "not listed", listed)
        check.raises(exception.Invalid,
                     lambda: compute_driver.pre_live_migration(running, [], [], None),
                     "pre_live_migration() of an instance this host already runs")
        expect_state(compute_driver, running, PowerState.RUNNING,
                     "after the refused pre_live_migration()")
        _listed_once(compute_driver, running, "after the refused pre_live_migration()")
        check.raises(exception.InvalidState,
                     lambda: compute_driver.live_migration_abort(running),
                     "live_migration_abort() with no live migration in progress")
        expect_state(compute_driver, running, PowerState.RUNNING,
                     "after the refused live_migration_abort()")
        check.step("post_live_migration() of an instance that is not here",
                   lambda: compute_driver.post_live_migration(arriving, [], [], {}))

    @pytest.mark.capability("resize")
    def test_resize_rollbacks_keep_the_instance(
        self, compute_driver: HypervisorDriver, make_instance: Any
    ) -> None:
        """The manager's rollbacks: after a finish_migration that never happened (it
        failed), revert_migration must not remove what the revert needs, and
        finish_revert_migration brings the instance back running; finish_revert_migration of
        an instance never powered off (migrate_disk_and_power_off failed early) just keeps it
        running. A flavor with a smaller disk is refused before anything changes."""
        needs(compute_driver, "resize")
        instance = _spawned(compute_driver, make_instance)
        smaller = Flavor("conformance-smaller", vcpus=1, ram_mb=64, disk_gb=0)
        check.raises(exception.Invalid,
                     lambda: compute_driver.migrate_disk_and_power_off(instance, HOST, smaller,
                                                                       [], []),
                     "migrate_disk_and_power_off() to a flavor with a smaller disk")
        expect_state(compute_driver, instance, PowerState.RUNNING,
                     "after the refused migrate_disk_and_power_off()")
        check.step("finish_revert_migration() of an instance never migrated",
                   lambda: compute_driver.finish_revert_migration(instance, [], [], True))
        expect_state(compute_driver, instance, PowerState.RUNNING,
                     "after finish_revert_migration() of an instance never migrated")
        check.step("migrate_disk_and_power_off() to this host",
                   lambda: compute_driver.migrate_disk_and_power_off(instance, HOST, BIGGER,
                                                                      [], []))
        check.step("revert_migration() with no finish_migration() before it",
                   lambda: compute_driver.revert_migration(
                       dataclasses.replace(instance, flavor=BIGGER), [], []))
        check.step("finish_revert_migration(power_on=True)",
                   lambda: compute_driver.finish_revert_migration(instance, [], [], True))
        expect_state(compute_driver, instance, PowerState.RUNNING,
                     "after the rollback of a failed finish_migration()")
        _listed_once(compute_driver, instance, "after the rollback")

    @pytest.mark.capability("plug_vifs")
    def test_unknown_vif_type_is_refused(
        self, compute_driver: HypervisorDriver, make_instance: Any
    ) -> None:
        needs(compute_driver, "plug_vifs")
        instance = _spawned(compute_driver, make_instance)
        bogus = {**VIF, "vif_type": "carrier-pigeon"}
        err = check.raises(exception.Invalid,
                           lambda: compute_driver.plug_vifs(instance, [bogus]),
                           "plug_vifs() of vif_type 'carrier-pigeon'")
        check.that("carrier-pigeon" in str(err), "the refusal's message",
                   "to name 'carrier-pigeon'", str(err))

    @pytest.mark.capability("plug_vifs")
    def test_plug_unplug_idempotent(
        self, compute_driver: HypervisorDriver, make_instance: Any
    ) -> None:
        """On a stopped instance: plugging twice, unplugging twice, unplugging what was never
        plugged - all succeed and leave the instance as it was."""
        needs(compute_driver, "plug_vifs")
        instance = _spawned(compute_driver, make_instance)
        check.step("power_off()", lambda: compute_driver.power_off(instance))
        calls: list[tuple[str, Callable[..., None]]] = [
            ("plug_vifs()", compute_driver.plug_vifs),
            ("a second plug_vifs()", compute_driver.plug_vifs),
            ("unplug_vifs()", compute_driver.unplug_vifs),
            ("a second unplug_vifs()", compute_driver.unplug_vifs)]
        for what, call in calls:
            check.step(what, functools.partial(call, instance, [dict(VIF)]))
        expect_state(compute_driver, instance, PowerState.SHUTDOWN,
                     "after plugging and unplugging a VIF of a stopped instance")


def _check_snapshot(target: str, instance: Instance) -> None:
    """The file at ``target`` is in the format the contract names and holds the root disk's
    pattern."""
    out = datapath.run(["qemu-img", "info", "--output=json", target],
                       "reading the snapshot image")
    fmt = json.loads(out[out.index("{"):])["format"]
    wanted = snapshot_format(instance.image.disk_format)
    check.that(fmt == wanted, "the snapshot's format (qemu-img info)", wanted, fmt)
    datapath.run(["qemu-io", "-f", fmt, "-c",
                  f"read -P {IMAGE_PATTERN:#x} 0 {IMAGE_PATTERN_LENGTH}", target],
                 f"snapshot image ({fmt}): expected the root disk's first "
                 f"{IMAGE_PATTERN_LENGTH} bytes of {IMAGE_PATTERN:#04x}")
