"""The lvm driver's two halves against the real backends: lvm2 on a loop device (metadata-only
on the CI host: no device-mapper; the tests marked guest run in the full-kernel guest, with
device-mapper) and tgtd, whose exports are verified with userspace iSCSI clients
(libiscsi's iscsi-ls / iscsi-readcapacity16 and qemu's iscsi:// driver)."""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest
from stackcore_drivers.volume.lvm import has_device_mapper
from stackcore_drivers.volume.tgt import TgtTarget

from stackcore import exception
from stackcore.testing.datapath import expect_pattern, virtual_size, write_pattern
from stackcore.testing.harness import DriverUnderTest
from stackcore.volume.objects import Snapshot, Volume
from tests.conftest import backend_env

pytestmark = pytest.mark.real

MiB = 1024 * 1024


@pytest.fixture
def portal() -> str:
    return backend_env("STACKCORE_TEST_ISCSI_PORTAL", "tgt")


@pytest.fixture
def target(tmp_path, portal) -> TgtTarget:
    return TgtTarget(str(tmp_path / "volumes"), "iqn.2010-10.org.openstack:", portal)


@pytest.fixture
def lun_file(tmp_path) -> str:
    path = tmp_path / "lun.img"
    with open(path, "wb") as handle:
        handle.truncate(64 * MiB)
    return str(path)


def _iscsi(cmd: list[str], password: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if password:
        env["LIBISCSI_CHAP_PASSWORD"] = password  # never on the command line
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60,
                          check=False)


def test_file_lun_export_with_chap(target, lun_file, portal) -> None:
    name = f"volume-{uuid.uuid4()}"
    update = target.create(name, lun_file)
    try:
        iqn = target.iqn(name)
        assert update["provider_location"].endswith(f" {iqn} 1")
        assert oct(os.stat(target._conf_path(name)).st_mode & 0o777) == "0o600"
        listed = _iscsi(["iscsi-ls", f"iscsi://{portal.split(':')[0]}"])
        assert iqn in listed.stdout
        _, user, password = update["provider_auth"].split(" ")
        url = f"iscsi://{user}@{portal}/{iqn}/1"
        cap = _iscsi(["iscsi-readcapacity16", url], password)
        assert cap.returncode == 0 and "Total size:67108864" in cap.stdout
        refused = _iscsi(["iscsi-readcapacity16", f"iscsi://{portal}/{iqn}/1"])
        assert refused.returncode != 0 and "Authentication failure" in refused.stderr
        # the data path a hypervisor uses: connection_info -> qemu iscsi driver with CHAP
        info = {"driver_volume_type": "iscsi",
                "data": TgtTarget.properties("v", update["provider_location"],
                                             update["provider_auth"])}
        assert virtual_size(info, "the LUN's size") == 64 * MiB
        write_pattern(info, MiB, 0x3C)
        expect_pattern(info, MiB, 0x3C, "the pattern written through qemu's initiator")
        with open(lun_file, "rb") as handle:
            handle.seek(MiB)
            assert handle.read(16) == b"\x3c" * 16
        again = target.create(name, lun_file, update["provider_auth"])
        assert again == update  # an existing export is kept, same CHAP
    finally:
        target.remove(name)
    assert target.iqn(name) not in target.targets()
    assert not os.path.exists(target._conf_path(name))
    target.remove(name)  # idempotent


def test_ensure_recreates_a_lost_target(target, lun_file) -> None:
    name = f"volume-{uuid.uuid4()}"
    update = target.create(name, lun_file)
    try:
        subprocess.run(["tgt-admin", "--delete", target.iqn(name), "-f"], check=True,
                       capture_output=True)
        assert target.iqn(name) not in target.targets()
        target.ensure(name)
        assert target.iqn(name) in target.targets()
        assert update["provider_location"].split(" ")[1] == target.iqn(name)
    finally:
        target.remove(name)


def test_unsafe_values_never_reach_the_config(target, lun_file) -> None:
    with pytest.raises(exception.Invalid):
        target.create("volume-x\n</target>", lun_file)
    assert target.targets().get(target.iqn("volume-x")) is None


@pytest.fixture
def lvm_driver(tmp_path):
    vg = backend_env("STACKCORE_TEST_LVM_VG", "lvm")
    backend_env("STACKCORE_TEST_ISCSI_PORTAL", "tgt")
    target = DriverUnderTest.from_spec("volume:lvm", [], [
        f"backend.volume_group={vg}", f"DEFAULT.state_path={tmp_path}"])
    driver = target.new("backend", "test@backend")
    driver.do_setup()
    driver.check_for_setup_error()
    return driver


def test_lvm_volume_lifecycle_on_real_vg(lvm_driver) -> None:
    before = lvm_driver.list_backend_objects()
    stats_before = lvm_driver.get_volume_stats(refresh=True)
    volume = Volume(str(uuid.uuid4()), 1, extra_specs={"provisioning:type": "thick"})
    lvm_driver.create_volume(volume)
    try:
        lvs = lvm_driver._lvs()
        assert lvs[volume.name][0] == 1.0
        assert lvm_driver.get_volume_stats(refresh=True)["free_capacity_gb"] == \
            pytest.approx(stats_before["free_capacity_gb"] - 1)
        lvm_driver.extend_volume(volume, 2)
        assert lvm_driver._lvs()[volume.name][0] == 2.0
        with pytest.raises(exception.Conflict):
            lvm_driver.create_volume(volume)
    finally:
        lvm_driver.delete_volume(volume)
    lvm_driver.delete_volume(volume)
    assert lvm_driver.list_backend_objects() == before


def test_lvm_snapshot_needs_device_mapper_and_says_so(lvm_driver) -> None:
    """On this host (no device-mapper) the driver says why snapshots are unavailable and
    refuses them with that reason; with device-mapper (the guest) see the test below."""
    assert not has_device_mapper(), "expected the CI host's kernel, without device-mapper"
    reason = lvm_driver.unavailable_features()["snapshot"]
    assert "device-mapper" in reason
    volume = Volume(str(uuid.uuid4()), 1, extra_specs={"provisioning:type": "thick"})
    with pytest.raises(exception.DriverError, match="device-mapper"):
        lvm_driver.create_snapshot(Snapshot(str(uuid.uuid4()), volume, 1))


@pytest.mark.guest("device-mapper: LVM snapshots")
@pytest.mark.parametrize("provisioning", ["thick", "thin"])
def test_lvm_snapshot_with_device_mapper(lvm_driver, provisioning) -> None:
    """In the full-kernel guest: a snapshot of a thick (COW) or thin volume; a thick origin
    cannot be deleted while it has a snapshot, a thin one keeps its snapshot independent."""
    assert has_device_mapper()
    assert lvm_driver.unavailable_features() == {}
    volume = Volume(str(uuid.uuid4()), 1, extra_specs={"provisioning:type": provisioning})
    lvm_driver.create_volume(volume)
    snap = Snapshot(str(uuid.uuid4()), volume, 1)
    try:
        lvm_driver.create_snapshot(snap)
        lvs = lvm_driver._lvs()
        assert lvs[f"_{snap.name}"][1][0] == ("s" if provisioning == "thick" else "V"), lvs
        assert os.path.exists(f"/dev/{lvm_driver.vg}/_{snap.name}")
        if provisioning == "thick":
            with pytest.raises(exception.InvalidState):
                lvm_driver.delete_volume(volume)
    finally:
        lvm_driver.delete_snapshot(snap)
        lvm_driver.delete_volume(volume)
    assert volume.name not in lvm_driver._lvs()
