"""Lifecycle details on a real KVM domain that the shared conformance suite cannot see: the
per-instance qcow2 overlay on the image-store file, the serial console log, snapshots with the
disk's real content, cleanup after a failed spawn, name collisions, and stats from the host."""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

import pytest

from stackcore import exception
from stackcore.compute import stats
from stackcore.compute.objects import Flavor, Image, Instance, PowerState

from .conftest import HOST, domain_of, qemu_protocol_nodes, run

pytestmark = pytest.mark.real

MARKER = b"stackcore-snapshot-marker\n"


@pytest.fixture
def marked_raw_image(tmp_path: Any) -> Image:
    """A raw base image with a marker at offset 1 MiB, to find again in snapshots."""
    path = tmp_path / "marked.raw"
    with open(path, "wb") as handle:
        handle.truncate(8 * 1024 * 1024)
        handle.seek(1024 * 1024)
        handle.write(MARKER)
    return Image(id=str(uuid.uuid4()), name="marked", path=str(path), disk_format="raw")


def test_root_disk_is_a_qcow2_overlay_on_the_image_sized_by_the_flavor(
    kvm_driver: Any, booted: Any, base_image: Image
) -> None:
    instance = booted()
    overlay = os.path.join(kvm_driver.instances_path, instance.uuid, "disk")
    info = json.loads(run("qemu-img", "info", "-U", "--output=json", overlay))
    assert info["format"] == "qcow2"
    assert info["backing-filename"] == base_image.path
    assert info["virtual-size"] == 1024**3  # flavor disk_gb=1 > the 64 MiB base
    files = [n.get("filename") for n in qemu_protocol_nodes(domain_of(kvm_driver, instance))]
    assert overlay in files  # QEMU runs on the overlay, never on the shared base
    assert os.path.exists(os.path.join(kvm_driver.instances_path, instance.uuid, "console.log"))
    assert isinstance(kvm_driver.get_console_output(instance), str)


def test_snapshot_of_a_suspended_instance_has_the_disk_content_and_it_resumes(
    kvm_driver: Any, marked_raw_image: Image, tmp_path: Any
) -> None:
    """Cold snapshots: a running domain is refused (its disk is being written), a suspended
    one (managed save: what the compute manager does around it) is copied."""
    instance = Instance(uuid=str(uuid.uuid4()), name="snap", host=HOST,
                        flavor=Flavor("f", 1, 128, 0), image=marked_raw_image)
    kvm_driver.spawn(instance, marked_raw_image, [], [])
    try:
        target = tmp_path / "snapshot.raw"
        with pytest.raises(exception.InvalidState, match="cold snapshots only"):
            kvm_driver.snapshot(instance, str(target))
        assert not target.exists()
        kvm_driver.suspend(instance)
        kvm_driver.snapshot(instance, str(target))
        kvm_driver.resume(instance)
        with open(target, "rb") as handle:
            handle.seek(1024 * 1024)
            assert handle.read(len(MARKER)) == MARKER
        info = json.loads(run("qemu-img", "info", "--output=json", str(target)))
        assert info["format"] == "raw" and "backing-filename" not in info  # flattened
        assert kvm_driver.get_info(instance).power_state == PowerState.RUNNING
        assert not (tmp_path / "snapshot.raw.part").exists()
    finally:
        kvm_driver.destroy(instance, [], [], True)


def test_failed_spawn_leaves_nothing_behind(kvm_driver: Any, tmp_path: Any) -> None:
    bogus = tmp_path / "not-qcow2.img"
    bogus.write_bytes(b"this is not a qcow2 image")
    image = Image(id="x", name="bogus", path=str(bogus), disk_format="qcow2")
    instance = Instance(uuid=str(uuid.uuid4()), name="doomed", host=HOST,
                        flavor=Flavor("f", 1, 128, 1), image=image)
    # refused before qemu-img opens it: the content is not the declared format
    with pytest.raises(exception.Invalid) as caught:
        kvm_driver.spawn(instance, image, [], [])
    assert str(bogus) in str(caught.value) and "qcow2" in str(caught.value), str(caught.value)
    assert instance.uuid not in kvm_driver.list_instances()
    assert not os.path.exists(os.path.join(kvm_driver.instances_path, instance.uuid))

    # A domain that cannot start (more memory than the host has) is undefined again too.
    huge = Instance(uuid=str(uuid.uuid4()), name="too big", host=HOST,
                    flavor=Flavor("huge", 1, 64 * 1024 * 1024, 1), image=image)
    with pytest.raises(exception.StackcoreError):
        kvm_driver.spawn(huge, Image("b", "b", str(bogus), "raw"), [], [])
    assert huge.uuid not in kvm_driver.list_instances()
    assert not os.path.exists(os.path.join(kvm_driver.instances_path, huge.uuid))


def test_domain_name_collision_is_refused_and_the_other_domain_untouched(
    kvm_driver: Any, booted: Any, base_image: Image
) -> None:
    instance = booted()
    with pytest.raises(exception.Conflict):
        kvm_driver.spawn(instance, base_image, [], [])
    assert kvm_driver.get_info(instance).power_state == PowerState.RUNNING
    overlay = os.path.join(kvm_driver.instances_path, instance.uuid, "disk")
    assert os.path.exists(overlay)  # the refused spawn did not clean up the original's files


def test_stats_come_from_the_real_host(kvm_driver: Any, booted: Any) -> None:
    before = stats.validate(kvm_driver.get_available_resource(), "libvirt kvm")
    booted()
    after = stats.validate(kvm_driver.get_available_resource(), "libvirt kvm")
    conn = kvm_driver.connection.get()
    nodeinfo = conn.getInfo()
    assert after["hypervisor_type"] == "QEMU"
    assert after["hypervisor_version"] == conn.getVersion() > 0
    assert after["vcpus"] == nodeinfo[2] and after["memory_mb"] == nodeinfo[1]
    assert after["vcpus_used"] >= before["vcpus_used"] + 1
    assert after["cpu_info"]["arch"] == "x86_64" and after["cpu_info"]["model"]
    assert after["cpu_info"]["features"]
    assert ["x86_64", os.environ["STACKCORE_TEST_VIRT_TYPE"], "hvm"] in after[
        "supported_instances"]
    st = os.statvfs(kvm_driver.instances_path)
    assert after["local_gb"] == st.f_blocks * st.f_frsize // 1024**3

