"""Compute (hypervisor driver) conformance suite.

Import it into a test module of the driver package and run pytest with
``--stackcore-driver compute:<name>``. Every test talks to the driver exactly as the compute
manager does and checks the backend's observable state through the contract's own read methods
(``get_info``, ``list_instances``), so it holds for any backend.

Instances are named with characters that must be escaped (``<>&'"$;``) so every lifecycle test
also proves the driver treats names as data. Everything a test creates is destroyed in its
teardown, and the teardown itself asserts nothing was left behind.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from stackcore import exception
from stackcore.compute import stats
from stackcore.compute.driver import HypervisorDriver
from stackcore.compute.objects import Flavor, Image, Instance, PowerState, RebootType
from stackcore.testing.harness import DriverUnderTest

__all__ = [
    "TestComputeCapabilities",
    "TestComputeLifecycle",
    "TestComputeStats",
    "compute_driver",
    "compute_image",
    "make_instance",
]

FAMILY = pytest.mark.family("compute")

HOST = "conformance-host"
HOSTILE_NAME = "conformance <vm> & 'quoted' \"double\" $HOME; rm -rf"


@pytest.fixture(scope="session")
def compute_image(stackcore_target: DriverUnderTest, tmp_path_factory: Any) -> Image:
    """A small raw image file (1 MiB of zeros) registered as x86_64/hvm."""
    path = tmp_path_factory.mktemp("images") / "conformance.raw"
    with open(path, "wb") as handle:
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
    driver = stackcore_target.new(HOST)
    driver.init_host(HOST)
    assert isinstance(driver, HypervisorDriver)
    return driver


@pytest.fixture
def make_instance(
    compute_driver: HypervisorDriver, compute_image: Image
) -> Iterator[Callable[..., Instance]]:
    """Build instances (not spawned); every one is destroyed and checked gone at teardown."""
    made: list[Instance] = []

    def make(name: str = HOSTILE_NAME, **metadata: str) -> Instance:
        instance = Instance(
            uuid=str(uuid.uuid4()),
            name=name,
            host=HOST,
            flavor=Flavor("conformance", vcpus=1, ram_mb=64, disk_gb=1),
            image=compute_image,
            metadata={"purpose": "conformance <&>", **metadata},
        )
        made.append(instance)
        return instance

    yield make
    for instance in made:
        compute_driver.destroy(instance, [], [], True)
    leftovers = set(compute_driver.list_instances()) & {i.uuid for i in made}
    assert not leftovers, f"destroy left instances on the backend: {sorted(leftovers)}"


def _spawned(driver: HypervisorDriver, make: Callable[..., Instance]) -> Instance:
    instance = make()
    driver.spawn(instance, instance.image, [], [])
    return instance


@FAMILY
@pytest.mark.feature("lifecycle")
class TestComputeLifecycle:
    """Required methods: spawn, get_info, list_instances, reboot, power off/on, destroy."""

    def test_spawn_runs_and_lists(
        self, compute_driver: HypervisorDriver, make_instance: Any
    ) -> None:
        instance = _spawned(compute_driver, make_instance)
        assert compute_driver.get_info(instance).power_state == PowerState.RUNNING
        assert instance.uuid in compute_driver.list_instances()

    def test_spawn_same_uuid_twice_is_refused(
        self, compute_driver: HypervisorDriver, make_instance: Any
    ) -> None:
        instance = _spawned(compute_driver, make_instance)
        with pytest.raises(exception.StackcoreError):
            compute_driver.spawn(instance, instance.image, [], [])
        assert compute_driver.get_info(instance).power_state == PowerState.RUNNING

    def test_destroy_removes_instance(
        self, compute_driver: HypervisorDriver, make_instance: Any
    ) -> None:
        instance = _spawned(compute_driver, make_instance)
        compute_driver.destroy(instance, [], [], True)
        assert instance.uuid not in compute_driver.list_instances()
        with pytest.raises(exception.NotFound):
            compute_driver.get_info(instance)

    def test_destroy_is_idempotent(
        self, compute_driver: HypervisorDriver, make_instance: Any
    ) -> None:
        instance = _spawned(compute_driver, make_instance)
        compute_driver.destroy(instance, [], [], True)
        compute_driver.destroy(instance, [], [], True)
        assert instance.uuid not in compute_driver.list_instances()

    def test_destroy_unknown_instance_succeeds(
        self, compute_driver: HypervisorDriver, make_instance: Any
    ) -> None:
        compute_driver.destroy(make_instance(), [], [], True)

    def test_get_info_unknown_raises_not_found(
        self, compute_driver: HypervisorDriver, make_instance: Any
    ) -> None:
        with pytest.raises(exception.NotFound):
            compute_driver.get_info(make_instance())

    def test_power_off_and_on(self, compute_driver: HypervisorDriver, make_instance: Any) -> None:
        instance = _spawned(compute_driver, make_instance)
        compute_driver.power_off(instance)
        assert compute_driver.get_info(instance).power_state == PowerState.SHUTDOWN
        compute_driver.power_off(instance)  # already off: succeeds
        assert instance.uuid in compute_driver.list_instances()  # off is not gone
        compute_driver.power_on(instance)
        assert compute_driver.get_info(instance).power_state == PowerState.RUNNING
        compute_driver.power_on(instance)  # already on: succeeds
        assert compute_driver.get_info(instance).power_state == PowerState.RUNNING

    @pytest.mark.parametrize("kind", [RebootType.SOFT, RebootType.HARD])
    def test_reboot_leaves_running(
        self, compute_driver: HypervisorDriver, make_instance: Any, kind: RebootType
    ) -> None:
        instance = _spawned(compute_driver, make_instance)
        compute_driver.reboot(instance, kind)
        assert compute_driver.get_info(instance).power_state == PowerState.RUNNING

    def test_destroy_powered_off_instance(
        self, compute_driver: HypervisorDriver, make_instance: Any
    ) -> None:
        instance = _spawned(compute_driver, make_instance)
        compute_driver.power_off(instance)
        compute_driver.destroy(instance, [], [], True)
        assert instance.uuid not in compute_driver.list_instances()

    def test_instances_survive_a_new_driver_object(
        self, stackcore_target: DriverUnderTest, compute_driver: HypervisorDriver,
        make_instance: Any,
    ) -> None:
        """A restarted compute service builds a new driver; it must see the same backend."""
        instance = _spawned(compute_driver, make_instance)
        again = stackcore_target.new(HOST)
        again.init_host(HOST)
        assert instance.uuid in again.list_instances()
        assert again.get_info(instance).power_state == PowerState.RUNNING


@FAMILY
@pytest.mark.feature("stats")
class TestComputeStats:
    def test_stats_meet_schema(self, compute_driver: HypervisorDriver) -> None:
        stats.validate(compute_driver.get_available_resource(), "driver under test")

    def test_stats_are_json_serialisable(self, compute_driver: HypervisorDriver) -> None:
        import json

        json.dumps(compute_driver.get_available_resource())

    def test_stats_report_usable_capacity(self, compute_driver: HypervisorDriver) -> None:
        report = compute_driver.get_available_resource()
        assert report["memory_mb"] > 0 and report["vcpus"] > 0


@FAMILY
class TestComputeCapabilities:
    """Optional capabilities: run for every driver, gated by its declarations."""

    @pytest.mark.capability("pause")
    def test_pause_unpause(self, compute_driver: HypervisorDriver, make_instance: Any) -> None:
        instance = _spawned(compute_driver, make_instance)
        compute_driver.pause(instance)
        assert compute_driver.get_info(instance).power_state == PowerState.PAUSED
        compute_driver.unpause(instance)
        assert compute_driver.get_info(instance).power_state == PowerState.RUNNING

    @pytest.mark.capability("suspend")
    def test_suspend_resume(self, compute_driver: HypervisorDriver, make_instance: Any) -> None:
        instance = _spawned(compute_driver, make_instance)
        compute_driver.suspend(instance)
        assert compute_driver.get_info(instance).power_state in (
            PowerState.SUSPENDED, PowerState.SHUTDOWN
        )
        assert instance.uuid in compute_driver.list_instances()
        compute_driver.resume(instance)
        assert compute_driver.get_info(instance).power_state == PowerState.RUNNING

    @pytest.mark.capability("console_output")
    def test_console_output_is_text(
        self, compute_driver: HypervisorDriver, make_instance: Any
    ) -> None:
        instance = _spawned(compute_driver, make_instance)
        assert isinstance(compute_driver.get_console_output(instance), str)

    @pytest.mark.capability("snapshot")
    def test_snapshot_writes_an_image(
        self, compute_driver: HypervisorDriver, make_instance: Any, tmp_path: Any
    ) -> None:
        instance = _spawned(compute_driver, make_instance)
        target = str(tmp_path / "snapshot.img")
        compute_driver.snapshot(instance, target)
        assert os.path.getsize(target) > 0

    @pytest.mark.capability("attach_volume")
    def test_attach_unknown_volume_type_is_refused(
        self, compute_driver: HypervisorDriver, make_instance: Any
    ) -> None:
        instance = _spawned(compute_driver, make_instance)
        bogus = {"driver_volume_type": "carrier-pigeon", "data": {}}
        with pytest.raises(exception.Invalid) as caught:
            compute_driver.attach_volume(instance, bogus, "/dev/vdb")
        assert "carrier-pigeon" in str(caught.value)
        # Nothing attached: detaching the same mountpoint is a no-op that succeeds.
        compute_driver.detach_volume(instance, bogus, "/dev/vdb")
        assert compute_driver.get_info(instance).power_state == PowerState.RUNNING

    @pytest.mark.capability("plug_vifs")
    def test_unplug_never_plugged_vif_succeeds(
        self, compute_driver: HypervisorDriver, make_instance: Any
    ) -> None:
        instance = _spawned(compute_driver, make_instance)
        vif = {"id": str(uuid.uuid4()), "address": "fa:16:3e:00:00:01",
               "vif_type": "bridge", "vif_details": {"bridge_name": "brq-conformance"}}
        compute_driver.unplug_vifs(instance, [vif])
        compute_driver.unplug_vifs(instance, [vif])
        assert compute_driver.get_info(instance).power_state == PowerState.RUNNING
