"""Resize and cold migration on real KVM domains (capability ``resize``): the flavor reaches
QEMU (vCPUs, memory), the qcow2 overlay grows, a revert brings back the old disk and flavor,
a confirm removes what was kept; between two libvirtd daemons sharing the instances path the
domain moves; without shared storage the destination refuses and the source gets its
instance back. Through the cloud: resize, revert and confirm of a KVM server."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import pytest

import stackcore
from stackcore import exception
from stackcore.compute.objects import Flavor, Instance, PowerState

from .conftest import HOST, domain_of, libvirt, libvirt_cloud_overrides, make_driver, run

pytestmark = pytest.mark.real

BIGGER = Flavor("functional-bigger", vcpus=2, ram_mb=256, disk_gb=2)
GiB = 1024**3


def _virtual_size(driver: Any, instance: Instance) -> int:
    overlay = os.path.join(driver.instances_path, instance.uuid, "disk")
    return int(json.loads(run("qemu-img", "info", "-U", "--output=json", overlay))
               ["virtual-size"])


def _flavor_in_qemu(dom: Any) -> tuple[int, int]:
    """(vCPUs, memory MiB) of the running domain, as libvirt reads them from QEMU."""
    _, max_mem_kb, _, vcpus, _ = dom.info()
    return vcpus, max_mem_kb // 1024


def test_same_host_resize_revert_then_confirm(kvm_driver: Any, booted: Any) -> None:
    old = booted()
    new = dataclasses.replace(old, flavor=BIGGER)
    backup = os.path.join(kvm_driver.instances_path, old.uuid + "_resize")

    disk_info = kvm_driver.migrate_disk_and_power_off(old, HOST, BIGGER, [], [])
    assert kvm_driver.get_info(old).power_state == PowerState.SHUTDOWN
    assert os.path.isdir(backup)
    kvm_driver.finish_migration(new, json.loads(json.dumps(disk_info)), [], [], True, True)
    dom = domain_of(kvm_driver, new)
    assert _flavor_in_qemu(dom) == (2, 256)
    assert _virtual_size(kvm_driver, new) == 2 * GiB

    kvm_driver.revert_migration(new, [], [])
    kvm_driver.finish_revert_migration(old, [], [], True)
    dom = domain_of(kvm_driver, old)
    assert dom.isActive() and _flavor_in_qemu(dom) == (1, 128)
    assert _virtual_size(kvm_driver, old) == 1 * GiB  # the old disk, from the backup
    assert not os.path.exists(backup)

    disk_info = kvm_driver.migrate_disk_and_power_off(old, HOST, BIGGER, [], [])
    kvm_driver.finish_migration(new, disk_info, [], [], True, True)
    kvm_driver.confirm_migration(old, [])
    assert not os.path.exists(backup)
    assert _flavor_in_qemu(domain_of(kvm_driver, new)) == (2, 256)
    assert kvm_driver.list_instances() == [old.uuid]


def test_a_smaller_disk_is_refused_and_the_guest_keeps_running(kvm_driver: Any,
                                                               booted: Any) -> None:
    instance = booted()
    with pytest.raises(exception.Invalid, match="disks never shrink"):
        kvm_driver.migrate_disk_and_power_off(instance, HOST, Flavor("s", 1, 128, 0), [], [])
    assert domain_of(kvm_driver, instance).isActive()


@pytest.fixture
def second_host(private_libvirtd: Any, kvm_driver: Any, tmp_path: Any) -> Any:
    """A driver for host kvm-2 on a libvirtd of its own, sharing kvm_driver's instances
    path (shared instance storage)."""
    driver = make_driver(tmp_path, uri=private_libvirtd.uri, host="kvm-2",
                         instances_path=kvm_driver.instances_path)
    yield driver
    driver.connection.close()


def test_migration_between_two_daemons_on_shared_storage(kvm_driver: Any, booted: Any,
                                                         second_host: Any) -> None:
    old = booted()
    new = dataclasses.replace(old, host="kvm-2", flavor=BIGGER)
    disk_info = kvm_driver.migrate_disk_and_power_off(old, "kvm-2", BIGGER, [], [])
    second_host.finish_migration(new, disk_info, [], [], True, True)
    assert second_host.list_instances() == [old.uuid]
    assert _flavor_in_qemu(domain_of(second_host, new)) == (2, 256)
    assert kvm_driver.get_info(old).power_state == PowerState.SHUTDOWN  # kept for a revert

    second_host.revert_migration(new, [], [])
    assert second_host.list_instances() == []
    kvm_driver.finish_revert_migration(old, [], [], True)
    assert _flavor_in_qemu(domain_of(kvm_driver, old)) == (1, 128)

    disk_info = kvm_driver.migrate_disk_and_power_off(old, "kvm-2", BIGGER, [], [])
    second_host.finish_migration(new, disk_info, [], [], True, True)
    kvm_driver.confirm_migration(old, [])
    assert kvm_driver.list_instances() == []
    with pytest.raises(libvirt.libvirtError):
        domain_of(kvm_driver, old)
    assert domain_of(second_host, new).isActive()
    second_host.destroy(new, [], [], True)


def test_without_shared_storage_the_destination_refuses_and_the_source_recovers(
        kvm_driver: Any, booted: Any, private_libvirtd: Any, tmp_path: Any) -> None:
    other = make_driver(tmp_path / "elsewhere", uri=private_libvirtd.uri, host="kvm-2")
    try:
        old = booted()
        new = dataclasses.replace(old, host="kvm-2", flavor=BIGGER)
        disk_info = kvm_driver.migrate_disk_and_power_off(old, "kvm-2", BIGGER, [], [])
        with pytest.raises(exception.DriverError, match="do not share"):
            other.finish_migration(new, disk_info, [], [], True, True)
        other.revert_migration(new, [], [])  # the manager's rollback
        kvm_driver.finish_revert_migration(old, [], [], True)
        assert domain_of(kvm_driver, old).isActive()
        assert other.list_instances() == []
    finally:
        other.connection.close()


def test_resize_of_a_kvm_server_through_the_cloud(tmp_path: Any) -> None:
    base = tmp_path / "base.qcow2"
    run("qemu-img", "create", "-q", "-f", "qcow2", str(base), "32M")
    overrides = libvirt_cloud_overrides(tmp_path, {"shutdown_timeout": 0},
                                        compute={"driver": "libvirt", "hosts": ["kvm-1"],
                                                 "allow_resize_to_same_host": True})
    with stackcore.Cloud(overrides=overrides) as cloud:
        cloud.compute.create_flavor("kvm.tiny", vcpus=1, ram_mb=128, disk_gb=1)
        cloud.compute.create_flavor("kvm.small", vcpus=2, ram_mb=256, disk_gb=2)
        cloud.compute.register_image("blank", str(base), disk_format="qcow2",
                                     properties={"architecture": "x86_64"})
        server = cloud.compute.create_server("resize <me>", "kvm.tiny", "blank")
        assert server.status == "ACTIVE", server.fault
        conn = libvirt.open(os.environ["STACKCORE_TEST_LIBVIRT_URI"])
        try:
            resized = cloud.compute.resize_server(server.id, "kvm.small")
            assert (resized.status, resized.flavor.name) == ("RESIZED", "kvm.small"), \
                resized.fault
            dom = conn.lookupByName(f"instance-{server.id}")
            assert _flavor_in_qemu(dom) == (2, 256)
            reverted = cloud.compute.revert_resize(server.id)
            assert (reverted.status, reverted.flavor.name) == ("ACTIVE", "kvm.tiny"), \
                reverted.fault
            assert _flavor_in_qemu(conn.lookupByName(f"instance-{server.id}")) == (1, 128)
            cloud.compute.resize_server(server.id, "kvm.small")
            confirmed = cloud.compute.confirm_resize(server.id)
            assert (confirmed.status, confirmed.fault) == ("ACTIVE", None)
            assert _flavor_in_qemu(conn.lookupByName(f"instance-{server.id}")) == (2, 256)
            cloud.compute.delete_server(server.id)
        finally:
            conn.close()
        assert not os.path.exists(os.path.join(tmp_path, "state", "instances",
                                               server.id + "_resize"))
