"""A real KVM domain takes live iSCSI (tgtd, CHAP), NFS (nfs-ganesha, qcow2) and RBD (Ceph)
disks through the libvirt driver, QEMU opens each, and detach + destroy leave nothing behind."""

from __future__ import annotations

from typing import Any

import pytest

from stackcore import exception
from stackcore.compute.objects import PowerState

from .conftest import domain_of, hmp_info_block, qemu_block_devices, qemu_protocol_nodes

pytestmark = pytest.mark.real



def opened_by_qemu(dom: Any, connection_info: dict[str, Any]) -> bool:
    """Whether QEMU has this exact volume open (protocol and identity, from QMP query-block)."""
    data = connection_info["data"]
    kind = connection_info["driver_volume_type"]
    for node in qemu_protocol_nodes(dom):
        if node["driver"] != kind:
            continue
        if kind == "iscsi" and node.get("target") == data["target_iqn"] \
                and str(node.get("lun")) == str(data["target_lun"]):
            return True
        if kind == "nfs" and node.get("path", "").endswith("/" + data["name"]):
            return True
        if kind == "rbd" and f"{node.get('pool')}/{node.get('image')}" == data["name"]:
            return True
    return False


def _network_disk(driver: Any, instance: Any, dev: str) -> Any:
    disk = driver.attached_disks(instance).get(dev)
    assert disk is not None, f"{dev} is not in the domain XML"
    return disk


@pytest.fixture
def network_disk(request: Any) -> Any:
    """The connection_info of the backend fixture named by the parameter. Asked before
    ``booted`` (as every test here asks its volume fixtures), so the domains are destroyed
    before the volumes are removed: a backend refuses to remove a volume still open."""
    return request.getfixturevalue(request.param)


@pytest.mark.parametrize(
    ("network_disk", "mountpoint"),
    [("iscsi_lun", "/dev/sdb"), ("nfs_file", "/dev/sdc"), ("rbd_image", "/dev/sdd")],
    indirect=["network_disk"],
)
def test_attach_network_disk_is_opened_by_qemu_then_detached(
    kvm_driver: Any, network_disk: Any, booted: Any, mountpoint: str
) -> None:
    connection_info = network_disk
    kind = connection_info["driver_volume_type"]
    dev = mountpoint.rsplit("/", 1)[1]
    instance = booted()
    dom = domain_of(kvm_driver, instance)
    before = set(qemu_block_devices(dom))

    kvm_driver.attach_volume(instance, connection_info, mountpoint)

    disk = _network_disk(kvm_driver, instance, dev)
    source = disk.find("source")
    assert disk.get("type") == "network"
    assert source.get("protocol") == kind
    added = set(qemu_block_devices(dom)) - before
    assert added, f"QEMU shows no new block device after attaching {kind}"
    assert opened_by_qemu(dom, connection_info), qemu_protocol_nodes(dom)
    identity = {"iscsi": "target_iqn", "nfs": "name", "rbd": "name"}[kind]
    volume_name = connection_info["data"][identity].rsplit("/", 1)[-1]
    assert volume_name in hmp_info_block(dom)  # and HMP 'info block' agrees
    if kind == "iscsi":
        # CHAP went through a libvirt secret the driver owns, referenced by uuid only.
        assert source.find("auth/secret").get("uuid")
        assert kvm_driver.secrets_of(instance) == [f"stackcore/{instance.uuid}/{dev}"]
        assert connection_info["data"]["auth_password"] not in hmp_info_block(dom)

    kvm_driver.detach_volume(instance, connection_info, mountpoint)

    assert dev not in kvm_driver.attached_disks(instance)
    assert not opened_by_qemu(dom, connection_info)
    assert kvm_driver.secrets_of(instance) == []
    kvm_driver.detach_volume(instance, connection_info, mountpoint)  # idempotent
    assert kvm_driver.get_info(instance).power_state == PowerState.RUNNING


def test_three_volumes_at_once_then_destroy_cleans_everything(
    kvm_driver: Any, iscsi_lun: Any, nfs_file: Any, rbd_image: Any, booted: Any
) -> None:
    instance = booted()
    dom = domain_of(kvm_driver, instance)
    for info, mountpoint in ((iscsi_lun, "/dev/sdb"), (nfs_file, "/dev/sdc"),
                             (rbd_image, "/dev/sdd")):
        kvm_driver.attach_volume(instance, info, mountpoint)
    for info in (iscsi_lun, nfs_file, rbd_image):
        assert opened_by_qemu(dom, info), qemu_protocol_nodes(dom)
    assert kvm_driver.secrets_of(instance)  # the CHAP secret
    # Teardown of `booted` destroys and asserts: no domain, no overlay, no secret.


def test_volumes_given_at_spawn_are_opened(
    kvm_driver: Any, base_image: Any, tmp_path: Any, iscsi_lun: Any, rbd_image: Any
) -> None:
    import uuid

    from stackcore.compute.objects import Flavor, Instance

    instance = Instance(uuid=str(uuid.uuid4()), name="boot with volumes", host="functional-host",
                        flavor=Flavor("f", 1, 128, 1), image=base_image)
    bdms = [{"connection_info": iscsi_lun, "mount_device": "/dev/sdb"},
            {"connection_info": rbd_image, "mount_device": "/dev/vdb"}]
    try:
        kvm_driver.spawn(instance, base_image, [], bdms)
        dom = domain_of(kvm_driver, instance)
        assert opened_by_qemu(dom, iscsi_lun), qemu_protocol_nodes(dom)
        assert opened_by_qemu(dom, rbd_image), qemu_protocol_nodes(dom)
    finally:
        kvm_driver.destroy(instance, [], bdms, True)
    assert kvm_driver.secrets_of(instance) == []


def test_unknown_volume_type_attaches_nothing(kvm_driver: Any, booted: Any) -> None:
    instance = booted()
    dom = domain_of(kvm_driver, instance)
    before = set(qemu_block_devices(dom))
    disks_before = set(kvm_driver.attached_disks(instance))
    with pytest.raises(exception.Invalid) as caught:
        kvm_driver.attach_volume(instance, {"driver_volume_type": "fibre_channel", "data": {}},
                                 "/dev/sdb")
    assert "fibre_channel" in str(caught.value)
    assert set(qemu_block_devices(dom)) == before
    assert set(kvm_driver.attached_disks(instance)) == disks_before
    assert kvm_driver.secrets_of(instance) == []


def test_attach_to_a_used_mountpoint_is_a_conflict(
    kvm_driver: Any, rbd_image: Any, nfs_file: Any, booted: Any
) -> None:
    instance = booted()
    kvm_driver.attach_volume(instance, rbd_image, "/dev/sdb")
    with pytest.raises(exception.Conflict):
        kvm_driver.attach_volume(instance, nfs_file, "/dev/sdb")
    disk = kvm_driver.attached_disks(instance)["sdb"]
    assert disk.find("source").get("protocol") == "rbd"


def test_attach_to_an_unreachable_target_fails_cleanly(
    kvm_driver: Any, booted: Any, iscsi_lun: Any
) -> None:
    instance = booted()
    data = dict(iscsi_lun["data"], target_iqn="iqn.2010-10.dev.stackcore:does-not-exist")
    with pytest.raises(exception.DriverError):
        kvm_driver.attach_volume(instance, {**iscsi_lun, "data": data}, "/dev/sdb")
    assert "sdb" not in kvm_driver.attached_disks(instance)
    assert kvm_driver.secrets_of(instance) == []  # the secret made for it was removed


def test_extend_of_an_attached_rbd_volume_is_seen_by_qemu(
    kvm_driver: Any, rbd_image: Any, booted: Any
) -> None:
    """The RBD image grows on the cluster (as the rbd volume driver's extend does); after
    extend_volume QEMU's own view of the disk (QMP query-block) has the new size. (A SCSI
    disk: its detach needs no guest OS to acknowledge it.)"""
    import json
    import subprocess

    from .conftest import backend_env

    instance = booted()
    dom = domain_of(kvm_driver, instance)
    kvm_driver.attach_volume(instance, rbd_image, "/dev/sdb")

    def qemu_size() -> int:
        for node in qemu_block_devices(dom).values():
            inserted = node.get("inserted") or {}
            if rbd_image["data"]["name"].rsplit("/", 1)[1] in json.dumps(inserted):
                return int(inserted["image"]["virtual-size"])
        raise AssertionError(f"QEMU does not show {rbd_image['data']['name']}")

    assert qemu_size() == 64 * 1024**2
    subprocess.run(["rbd", "-c", backend_env("STACKCORE_TEST_CEPH_CONF", "ceph"), "resize",
                    rbd_image["data"]["name"], "--size", "128"], check=True,
                   capture_output=True)
    kvm_driver.extend_volume(instance, "/dev/sdb", 128 * 1024**2)
    assert qemu_size() == 128 * 1024**2, qemu_block_devices(dom)
    with pytest.raises(exception.NotFound):
        kvm_driver.extend_volume(instance, "/dev/sdc", 128 * 1024**2)
    kvm_driver.detach_volume(instance, rbd_image, "/dev/sdb")
    assert kvm_driver.get_info(instance).power_state == PowerState.RUNNING


def test_a_multiattach_volume_is_shared_by_two_running_domains(
    kvm_driver: Any, rbd_image: Any, booted: Any
) -> None:
    """connection_info ``multiattach`` -> ``<shareable/>``: two running QEMUs have the same RBD
    image open at once; detaching it from one leaves it open in the other."""
    shared = {**rbd_image, "multiattach": True}
    first, second = booted("first"), booted("second")
    for instance in (first, second):
        kvm_driver.attach_volume(instance, shared, "/dev/sdb")
        disk = _network_disk(kvm_driver, instance, "sdb")
        assert disk.find("shareable") is not None, "no <shareable/> in the disk XML"
    doms = [domain_of(kvm_driver, i) for i in (first, second)]
    assert all(opened_by_qemu(dom, shared) for dom in doms), \
        [qemu_protocol_nodes(dom) for dom in doms]
    kvm_driver.detach_volume(first, shared, "/dev/sdb")
    assert not opened_by_qemu(doms[0], shared) and opened_by_qemu(doms[1], shared), \
        [qemu_protocol_nodes(dom) for dom in doms]
    kvm_driver.detach_volume(second, shared, "/dev/sdb")
    with pytest.raises(exception.Invalid, match="connection_info.multiattach"):
        kvm_driver.attach_volume(first, {**rbd_image, "multiattach": "yes"}, "/dev/sdb")
