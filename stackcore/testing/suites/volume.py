"""Volume driver conformance suite.

Import it into a test module of the driver package and run pytest with
``--stackcore-driver volume:<name>`` and a config file whose ``[backend]`` section configures
the driver. Every test talks to the driver exactly as the volume manager does (same call
order, same cleanup after failures) and checks the result two ways: through the contract's
read methods (``list_backend_objects``, stats) and through the **data path** - the returned
``connection_info`` is opened with qemu (``qemu-io``/``qemu-img``: local files, ``nfs://``,
``rbd:``, ``iscsi://``), exactly as a hypervisor would, so sizes, data, clones and "no data
leak" are observed on the real backend, not taken from the driver's word.

What is checked: every minimum feature, the stats schema, the connection_info schema of the
driver's protocol, idempotent deletes (volume, snapshot, export, connection), a larger size on
clone / from-snapshot, no data leak into a new volume, and cleanup after injected failures (each
``FAULT_POINTS`` checkpoint raises in turn; after the manager's cleanup the backend holds exactly
what it held before). Features the driver reports unavailable on this host
(:meth:`~stackcore.volume.driver.VolumeDriver.unavailable_features`, a missing kernel feature)
are skipped with its reason; nothing else skips. Teardown asserts nothing was left behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest

from stackcore import exception
from stackcore.testing.harness import DriverUnderTest
from stackcore.volume import connection_info, stats
from stackcore.volume.driver import CONFORMANCE_SECTION, InjectedFault, VolumeDriver
from stackcore.volume.objects import GiB, ImageFile, Snapshot, Volume

__all__ = [
    "TestVolumeAttach",
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
MiB = 1024 * 1024


# --- the data path: open a connection_info the way a hypervisor does ----------------------


@dataclasses.dataclass
class Opened:
    """qemu arguments for one attached volume (a secret object for CHAP if needed)."""

    args: list[str]
    secret_file: str | None = None


def qemu_target(info: Mapping[str, Any]) -> Opened:
    """qemu-io / qemu-img arguments opening the volume ``info`` describes."""
    kind, data = info["driver_volume_type"], info["data"]
    if kind == "local":
        return Opened(["-f", "raw", data["device_path"]])
    if kind == "nfs":
        host, _, export = data["export"].partition(":")
        url = f"nfs://{host}{export.rstrip('/')}/{data['name']}"
        return Opened(["-f", data["format"], url])
    if kind == "rbd":
        monitors = ";".join(f"{h}\\:{p}" for h, p in zip(data["hosts"], data["ports"],
                                                        strict=True))
        spec = f"rbd:{data['name']}:mon_host={monitors}"
        if not data["auth_enabled"]:
            spec += ":auth_supported=none"
        return Opened(["-f", "raw", spec])
    if kind == "iscsi":
        portal = data["target_portal"]
        opts = (f"driver=iscsi,transport=tcp,portal={portal},target={data['target_iqn']},"
                f"lun={data['target_lun']}")
        secret = None
        if data.get("auth_method") == "CHAP":
            fd, secret = tempfile.mkstemp(prefix="chap-")
            with os.fdopen(fd, "w") as handle:
                handle.write(data["auth_password"])
            opts += f",user={data['auth_username']},password-secret=chap0"
        args = ["--image-opts", opts]
        if secret:
            args = ["--object", f"secret,id=chap0,file={secret}", *args]
        return Opened(args, secret)
    raise AssertionError(f"the suite cannot open driver_volume_type {kind!r}")


def _run(cmd: list[str]) -> str:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    out = result.stdout + result.stderr
    if result.returncode != 0 or "failed" in out.lower() or "error" in out.lower():
        raise AssertionError(f"{cmd[0]} failed ({result.returncode}): {out.strip()}")
    return out


def qemu_io(info: Mapping[str, Any], command: str) -> str:
    target = qemu_target(info)
    try:
        args = target.args
        if args[0] == "--object":
            return _run(["qemu-io", *args[:2], "-c", command, *args[2:]])
        return _run(["qemu-io", "-c", command, *args])
    finally:
        if target.secret_file:
            os.unlink(target.secret_file)


def write_pattern(info: Mapping[str, Any], offset: int, pattern: int, length: int = MiB) -> None:
    qemu_io(info, f"write -P {pattern:#x} {offset} {length}")


def assert_pattern(info: Mapping[str, Any], offset: int, pattern: int,
                   length: int = MiB) -> None:
    """Read back and verify (qemu-io reports 'Pattern verification failed' otherwise)."""
    qemu_io(info, f"read -P {pattern:#x} {offset} {length}")


def virtual_size(info: Mapping[str, Any]) -> int:
    target = qemu_target(info)
    try:
        if target.args[0] == "--object":
            out = _run(["qemu-img", "info", "--output=json", *target.args])
        else:
            fmt, path = target.args[1], target.args[2]
            out = _run(["qemu-img", "info", "--output=json", "-f", fmt, path])
    finally:
        if target.secret_file:
            os.unlink(target.secret_file)
    return int(json.loads(out[out.index("{"):])["virtual-size"])


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture
def volume_driver(stackcore_target: DriverUnderTest) -> VolumeDriver:
    driver = stackcore_target.new(CONFORMANCE_SECTION, HOST)
    assert isinstance(driver, VolumeDriver)
    driver.do_setup()
    driver.check_for_setup_error()
    return driver


def needs(driver: VolumeDriver, *features: str) -> None:
    """Skip when the host cannot offer a feature (missing kernel feature), saying why."""
    missing = driver.unavailable_features()
    for feature in features:
        if feature in missing:
            pytest.skip(f"{feature}: {missing[feature]}")


def apply(volume: Volume, update: Any) -> Volume:
    if not update:
        return volume
    assert isinstance(update, Mapping), f"a model update must be a dict, got {update!r}"
    return dataclasses.replace(volume, **dict(update))


class Volumes:
    """Makes volumes/snapshots through the driver as the manager does; tears them down in
    reverse order and then proves the backend holds only what it held before."""

    def __init__(self, driver: VolumeDriver) -> None:
        self.driver = driver
        self.baseline = driver.list_backend_objects()
        self.made: list[Volume | Snapshot] = []
        self.exported: dict[str, Volume] = {}

    def new(self, size: int = 1, **kwargs: Any) -> Volume:
        return Volume(id=str(uuid.uuid4()), size=size, display_name="conformance <&>",
                      **kwargs)

    def create(self, size: int = 1, **kwargs: Any) -> Volume:
        volume = self.new(size, **kwargs)
        self.made.append(volume)
        return self.track(apply(volume, self.driver.create_volume(volume)))

    def track(self, volume: Volume) -> Volume:
        self.made = [v for v in self.made if v.id != volume.id] + [volume]
        return volume

    def from_snapshot(self, snapshot: Snapshot, size: int) -> Volume:
        volume = self.new(size)
        self.made.append(volume)
        return self.track(apply(volume, self.driver.create_volume_from_snapshot(volume,
                                                                                snapshot)))

    def clone(self, source: Volume, size: int) -> Volume:
        volume = self.new(size)
        self.made.append(volume)
        return self.track(apply(volume, self.driver.create_cloned_volume(volume, source)))

    def snapshot(self, volume: Volume) -> Snapshot:
        snap = Snapshot(id=str(uuid.uuid4()), volume=volume, volume_size=volume.size)
        self.made.append(snap)
        update = self.driver.create_snapshot(snap)
        if update:
            snap = dataclasses.replace(snap, **{k: v for k, v in update.items()
                                                if k != "provider_auth"})
            self.made[-1] = snap
        return snap

    def attach(self, volume: Volume) -> tuple[Volume, dict[str, Any]]:
        """create_export + initialize_connection, schema-checked; export removed at
        teardown."""
        volume = self.track(apply(volume, self.driver.create_export(volume, CONNECTOR)))
        self.exported[volume.id] = volume
        info = self.driver.initialize_connection(volume, CONNECTOR)
        connection_info.validate(info, f"conformance driver {type(self.driver).__name__}")
        return volume, info

    def detach(self, volume: Volume, connector: Mapping[str, Any] | None = CONNECTOR) -> None:
        self.driver.terminate_connection(volume, connector)
        self.driver.remove_export(volume)
        self.exported.pop(volume.id, None)

    def cleanup(self) -> None:
        errors = []
        for volume in list(self.exported.values()):
            try:
                self.detach(volume, None)
            except Exception as err:  # noqa: BLE001
                errors.append(f"detach {volume.name}: {err}")
        for item in reversed(self.made):
            try:
                if isinstance(item, Snapshot):
                    self.driver.delete_snapshot(item)
                else:
                    self.driver.delete_volume(item)
            except Exception as err:  # noqa: BLE001
                errors.append(f"delete {item.name}: {err}")
        assert not errors, errors
        left = sorted(set(self.driver.list_backend_objects()) - set(self.baseline))
        assert not left, f"left behind on the backend: {left}"


@pytest.fixture
def volumes(volume_driver: VolumeDriver) -> Iterator[Volumes]:
    made = Volumes(volume_driver)
    yield made
    made.cleanup()


# --- tests ----------------------------------------------------------------------------------


@FAMILY
@pytest.mark.feature("stats")
class TestVolumeStats:
    def test_stats_meet_schema(self, volume_driver: VolumeDriver) -> None:
        report = stats.validate(volume_driver.get_volume_stats(refresh=True), "conformance")
        assert report["storage_protocol"] == volume_driver.STORAGE_PROTOCOL
        assert report["driver_version"] == volume_driver.VERSION
        assert report["volume_backend_name"] == volume_driver.backend_name
        caps = volume_driver.capabilities
        assert report["multiattach"] == bool(caps.get("multiattach", False))
        assert report["online_extend_support"] == bool(caps.get("online_extend", False))
        assert report["thin_provisioning_support"] == bool(caps.get("thin_provisioning", False))
        assert report["thick_provisioning_support"] == bool(
            caps.get("thick_provisioning", False))

    def test_provisioned_grows_with_a_volume(self, volume_driver: VolumeDriver,
                                             volumes: Volumes) -> None:
        before = stats.validate(volume_driver.get_volume_stats(refresh=True), "c")
        volumes.create(2)
        after = stats.validate(volume_driver.get_volume_stats(refresh=True), "c")
        assert after["provisioned_capacity_gb"] >= before["provisioned_capacity_gb"] + 2 - 0.01


@FAMILY
@pytest.mark.feature("lifecycle")
class TestVolumeLifecycle:
    def test_create_delete_idempotent(self, volume_driver: VolumeDriver,
                                      volumes: Volumes) -> None:
        volume = volumes.create(1)
        assert volume.name in volume_driver.list_backend_objects()
        volume_driver.delete_volume(volume)
        assert volume.name not in volume_driver.list_backend_objects()
        volume_driver.delete_volume(volume)  # a missing volume deletes fine

    def test_delete_of_never_created_volume_succeeds(self, volume_driver: VolumeDriver,
                                                     volumes: Volumes) -> None:
        volume_driver.delete_volume(volumes.new(1))

    def test_extend(self, volume_driver: VolumeDriver, volumes: Volumes) -> None:
        volume = volumes.create(1)
        volume_driver.extend_volume(volume, 2)
        volume = volumes.track(dataclasses.replace(volume, size=2))
        if "data" not in volume_driver.unavailable_features():
            volume, info = volumes.attach(volume)
            assert virtual_size(info) == 2 * GiB

    def test_clone_honours_larger_size(self, volume_driver: VolumeDriver,
                                       volumes: Volumes) -> None:
        needs(volume_driver, "clone")
        source = volumes.create(1)
        clone = volumes.clone(source, 2)
        assert clone.name in volume_driver.list_backend_objects()
        if "data" not in volume_driver.unavailable_features():
            _, info = volumes.attach(clone)
            assert virtual_size(info) == 2 * GiB


@FAMILY
@pytest.mark.feature("snapshot")
class TestVolumeSnapshots:
    def test_snapshot_and_volume_from_snapshot_larger(self, volume_driver: VolumeDriver,
                                                      volumes: Volumes) -> None:
        needs(volume_driver, "snapshot")
        source = volumes.create(1)
        snap = volumes.snapshot(source)
        made = volumes.from_snapshot(snap, 3)
        if "data" not in volume_driver.unavailable_features():
            _, info = volumes.attach(made)
            assert virtual_size(info) == 3 * GiB

    def test_delete_snapshot_idempotent_and_dependents_survive(
        self, volume_driver: VolumeDriver, volumes: Volumes
    ) -> None:
        needs(volume_driver, "snapshot", "data")
        source = volumes.create(1)
        source, info = volumes.attach(source)
        write_pattern(info, 0, 0x5A)
        volumes.detach(source)
        snap = volumes.snapshot(source)
        child = volumes.from_snapshot(snap, 1)
        volume_driver.delete_snapshot(snap)
        volume_driver.delete_snapshot(snap)
        volumes.made.remove(snap)
        _, child_info = volumes.attach(child)
        assert_pattern(child_info, 0, 0x5A)


@FAMILY
@pytest.mark.feature("attach")
class TestVolumeAttach:
    def test_connection_info_matches_protocol_schema(self, volume_driver: VolumeDriver,
                                                     volumes: Volumes) -> None:
        needs(volume_driver, "attach")
        volume = volumes.create(1)
        volume, info = volumes.attach(volume)
        expected = connection_info.PROTOCOL_TO_VOLUME_TYPE[volume_driver.STORAGE_PROTOCOL]
        assert info["driver_volume_type"] == expected
        again = volume_driver.initialize_connection(volume, CONNECTOR)
        assert again["driver_volume_type"] == expected
        assert again["data"] == info["data"]

    def test_detach_and_force_detach_idempotent(self, volume_driver: VolumeDriver,
                                                volumes: Volumes) -> None:
        needs(volume_driver, "attach")
        volume, _ = volumes.attach(volumes.create(1))
        volume_driver.terminate_connection(volume, CONNECTOR)
        volume_driver.terminate_connection(volume, None)
        volume_driver.terminate_connection(volume, None)
        volume_driver.remove_export(volume)
        volume_driver.remove_export(volume)
        volumes.exported.pop(volume.id)
        assert not [o for o in volume_driver.list_backend_objects()
                    if volume.id in o and o != volume.name]

    def test_ensure_export_restores_access(self, volume_driver: VolumeDriver,
                                           volumes: Volumes) -> None:
        needs(volume_driver, "attach")
        volume, info = volumes.attach(volumes.create(1))
        volume = volumes.track(apply(volume, volume_driver.ensure_export(volume)))
        again = volume_driver.initialize_connection(volume, CONNECTOR)
        assert again["data"] == info["data"]


@FAMILY
@pytest.mark.feature("data")
class TestVolumeData:
    def test_write_read_through_connection(self, volume_driver: VolumeDriver,
                                           volumes: Volumes) -> None:
        needs(volume_driver, "attach", "data")
        _, info = volumes.attach(volumes.create(1))
        assert virtual_size(info) == GiB
        write_pattern(info, 0, 0xA1)
        write_pattern(info, GiB - MiB, 0xA2)
        assert_pattern(info, 0, 0xA1)
        assert_pattern(info, GiB - MiB, 0xA2)

    def test_no_data_leak_into_new_volume(self, volume_driver: VolumeDriver,
                                          volumes: Volumes) -> None:
        needs(volume_driver, "attach", "data")
        old = volumes.create(1)
        old, info = volumes.attach(old)
        for offset in (0, 256 * MiB, GiB - MiB):
            write_pattern(info, offset, 0xEE)
        volumes.detach(old)
        volume_driver.delete_volume(old)
        volumes.made.remove(old)
        for _ in range(2):  # a backend may reuse the freed space for the next one or two
            _, fresh = volumes.attach(volumes.create(1))
            for offset in (0, 256 * MiB, GiB - MiB):
                assert_pattern(fresh, offset, 0x00)

    def test_clone_and_snapshot_carry_data_and_stay_independent(
        self, volume_driver: VolumeDriver, volumes: Volumes
    ) -> None:
        needs(volume_driver, "attach", "data", "clone", "snapshot")
        source, info = volumes.attach(volumes.create(1))
        write_pattern(info, 0, 0x11)
        volumes.detach(source)  # snapshots are taken offline (online ones need the hypervisor)
        snap = volumes.snapshot(source)
        source, info = volumes.attach(source)  # a fresh connection_info after the snapshot
        write_pattern(info, 0, 0x22)  # after the snapshot: must not reach it
        clone = volumes.clone(source, 2)
        from_snap = volumes.from_snapshot(snap, 2)
        _, clone_info = volumes.attach(clone)
        _, snap_info = volumes.attach(from_snap)
        assert_pattern(clone_info, 0, 0x22)
        assert_pattern(snap_info, 0, 0x11)
        assert_pattern(clone_info, GiB + MiB, 0x00)
        write_pattern(clone_info, 0, 0x33)
        assert_pattern(info, 0, 0x22)

    def test_extend_keeps_data(self, volume_driver: VolumeDriver, volumes: Volumes) -> None:
        needs(volume_driver, "attach", "data")
        volume = volumes.create(1)
        volume, info = volumes.attach(volume)
        write_pattern(info, 0, 0x44)
        volumes.detach(volume)
        volume_driver.extend_volume(volume, 2)
        volume = volumes.track(dataclasses.replace(volume, size=2))
        _, info = volumes.attach(volume)
        assert virtual_size(info) == 2 * GiB
        assert_pattern(info, 0, 0x44)
        assert_pattern(info, GiB + MiB, 0x00)


@FAMILY
@pytest.mark.feature("image")
class TestVolumeImages:
    def test_image_to_volume_and_back(self, volume_driver: VolumeDriver, volumes: Volumes,
                                      tmp_path: Any) -> None:
        needs(volume_driver, "image", "data", "attach")
        raw = tmp_path / "in.raw"
        with open(raw, "wb") as handle:
            handle.truncate(64 * MiB)
            handle.seek(MiB)
            handle.write(b"\x77" * MiB)
        volume = volumes.create(1)
        volume_driver.copy_image_to_volume(volume, ImageFile("img-in", str(raw), "raw"))
        volume, info = volumes.attach(volume)
        assert_pattern(info, MiB, 0x77)
        assert_pattern(info, 0, 0x00)
        volumes.detach(volume)
        for fmt in ("raw", "qcow2"):
            out = tmp_path / f"out.{fmt}"
            volume_driver.copy_volume_to_image(volume, ImageFile("img-out", str(out), fmt))
            assert virtual_size({"driver_volume_type": "local",
                                 "data": {"device_path": str(out)}}) == GiB \
                if fmt == "raw" else True
            _run(["qemu-io", "-f", fmt, "-c", f"read -P 0x77 {MiB} {MiB}", str(out)])

    def test_qcow2_image_to_volume(self, volume_driver: VolumeDriver, volumes: Volumes,
                                   tmp_path: Any) -> None:
        needs(volume_driver, "image", "data", "attach")
        image = tmp_path / "in.qcow2"
        _run(["qemu-img", "create", "-f", "qcow2", str(image), "64M"])
        _run(["qemu-io", "-f", "qcow2", "-c", f"write -P 0x66 0 {MiB}", str(image)])
        volume = volumes.create(1)
        volume_driver.copy_image_to_volume(volume, ImageFile("q", str(image), "qcow2"))
        _, info = volumes.attach(volume)
        assert_pattern(info, 0, 0x66)


#: Which feature group of ``unavailable_features`` each operation belongs to.
OPERATION_FEATURE = {
    "create_cloned_volume": "clone",
    "create_volume_from_snapshot": "snapshot",
    "create_snapshot": "snapshot",
    "copy_image_to_volume": "image",
    "copy_volume_to_image": "image",
    "create_export": "attach",
    "initialize_connection": "attach",
}


def _operations(volumes: Volumes, tmp: str) -> dict[str, Callable[[], Any]]:
    """One call per contract method that can carry checkpoints, each on fresh inputs."""
    driver = volumes.driver

    def image() -> ImageFile:
        os.makedirs(os.path.join(tmp, "in"), exist_ok=True)
        path = os.path.join(tmp, "in", f"{uuid.uuid4()}.raw")
        with open(path, "wb") as handle:
            handle.truncate(4 * MiB)
        return ImageFile(str(uuid.uuid4()), path, "raw")

    def made(call: Callable[[Volume], Any], size: int = 1) -> Callable[[], Any]:
        def run() -> Any:
            volume = volumes.new(size)
            try:
                return call(volume)
            except Exception:
                driver.delete_volume(volume)  # what the manager does after a failed create
                raise
        return run

    def snapshot_op() -> Any:
        snap = Snapshot(id=str(uuid.uuid4()), volume=source, volume_size=source.size)
        try:
            return driver.create_snapshot(snap)
        except Exception:
            driver.delete_snapshot(snap)
            raise

    def attach_op() -> Any:
        try:
            update = driver.create_export(source, CONNECTOR)
            return driver.initialize_connection(apply(source, update), CONNECTOR)
        except Exception:
            driver.remove_export(source)
            raise

    def upload_op() -> Any:
        os.makedirs(os.path.join(tmp, "out"), exist_ok=True)
        target = os.path.join(tmp, "out", f"{uuid.uuid4()}.raw")
        driver.copy_volume_to_image(source, ImageFile("up", target, "raw"))
        return target

    source = volumes.create(1)
    snap = volumes.snapshot(source) if "snapshot" not in driver.unavailable_features() else None
    ops: dict[str, Callable[[], Any]] = {
        "create_volume": made(driver.create_volume),
        "create_cloned_volume": made(lambda v: driver.create_cloned_volume(v, source)),
        "copy_image_to_volume": made(lambda v: (driver.create_volume(v),
                                                driver.copy_image_to_volume(v, image()))),
        "create_snapshot": snapshot_op,
        "create_export": attach_op,
        "initialize_connection": attach_op,
        "copy_volume_to_image": upload_op,
        "extend_volume": lambda: driver.extend_volume(source, source.size + 1),
    }
    if snap is not None:
        ops["create_volume_from_snapshot"] = made(
            lambda v: driver.create_volume_from_snapshot(v, snap), 2)
    return ops


@FAMILY
@pytest.mark.feature("failure-cleanup")
class TestVolumeFailures:
    def test_every_fault_point_leaves_nothing_behind(self, volume_driver: VolumeDriver,
                                                     volumes: Volumes, tmp_path: Any) -> None:
        points = [(op, p) for op, ps in volume_driver.FAULT_POINTS.items() for p in ps]
        if not points:
            pytest.skip("the driver declares no multi-step operation (no FAULT_POINTS)")
        missing = volume_driver.unavailable_features()
        runnable = [(op, p) for op, p in points if OPERATION_FEATURE.get(op) not in missing]
        if not runnable:
            pytest.skip("every fault point is in an unavailable feature: " + "; ".join(
                f"{op}: {missing[OPERATION_FEATURE[op]]}" for op, _ in points))
        ops = _operations(volumes, str(tmp_path))
        tried = 0
        for op, point in runnable:
            if op not in ops:
                continue
            before = sorted(volume_driver.list_backend_objects())
            volume_driver.arm_fault(point)
            try:
                with pytest.raises(InjectedFault):
                    ops[op]()
            finally:
                with contextlib.suppress(Exception):
                    volume_driver.checkpoint(point)  # disarm if it was never reached
            tried += 1
            after = sorted(volume_driver.list_backend_objects())
            assert after == before, f"{op} failing at {point} left {set(after) ^ set(before)}"
            out_dir = os.path.join(tmp_path, "out")
            leftovers = os.listdir(out_dir) if os.path.isdir(out_dir) else []
            assert not leftovers, f"{op} failing at {point} left image files {leftovers}"
        assert tried, "no fault point could be exercised"

    def test_delete_volume_copes_with_half_made_create(self, volume_driver: VolumeDriver,
                                                       volumes: Volumes) -> None:
        """A create interrupted before it made anything: the manager's cleanup delete must
        still succeed (the backend never heard of the volume)."""
        volume = volumes.new(1)
        volume_driver.delete_volume(volume)
        snap = Snapshot(id=str(uuid.uuid4()), volume=volume, volume_size=1)
        volume_driver.delete_snapshot(snap)
        volume_driver.remove_export(volume)
        volume_driver.terminate_connection(volume, None)

    def test_operations_on_missing_volume_raise_stackcore_errors(
        self, volume_driver: VolumeDriver, volumes: Volumes
    ) -> None:
        ghost = volumes.new(1)
        with pytest.raises(exception.StackcoreError):
            volume_driver.extend_volume(ghost, 2)
