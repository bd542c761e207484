"""Boot from volume end to end through ``stackcore.Cloud`` on real KVM with the root volume on
the NFS backend (nfs-ganesha, reached by QEMU's userspace NFS client: this host's kernel has
no NFS client): the volume service makes the root volume from the image as a file on the
share, the compute host exports it and the libvirt driver boots the domain from it. Checked
where it happens: the domain's ``vda`` is the NFS file of that volume, the guest ran the
image's code (console); a rebuild writes another image over the same file and the guest runs
that; a rescue boots a rescue image with the volume still attached as ``vda`` and an
unrescue boots the volume again; the server's delete removes the file from the share
(``delete_on_termination``).

The Ceph counterpart is :mod:`.test_libvirt_cloud_boot_from_volume`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

import stackcore
from stackcore import exception
from tests.conftest import backend_env, wait_until

from .conftest import libvirt, libvirt_cloud_overrides
from .test_libvirt_actions import _boot_sector

pytestmark = pytest.mark.real

LINES = [f"booted from an nfs root volume, line {i}" for i in range(1, 4)]
NEW_LINES = [f"rebuilt on the nfs root volume, line {i}" for i in range(1, 4)]
RESCUE_LINES = [f"rescue system next to the nfs root volume, line {i}" for i in range(1, 4)]


@pytest.fixture
def cloud(tmp_path: Any) -> Iterator[stackcore.Cloud]:
    server = backend_env("STACKCORE_TEST_NFS_SERVER", "nfs")
    export = backend_env("STACKCORE_TEST_NFS_EXPORT", "nfs")
    overrides = libvirt_cloud_overrides(
        tmp_path, {"soft_reboot_timeout": 2, "pcie_root_ports": 0},
        volume={"enabled_backends": ["nfs"]},
        nfs={"volume_backend_name": "nfs", "volume_driver": "nfs", "nfs_access": "qemu",
             "nfs_shares": [f"{server}:{export}"]})
    made = stackcore.Cloud(overrides=overrides)
    try:
        yield made
    finally:
        try:
            for listed in made.compute.list_servers():
                made.compute.delete_server(listed.id)
            for volume in made.volume.list_volumes():
                wait_until(lambda v=volume: _settled(made, v.id), 60, f"volume {volume.id}")
                if _exists(made, volume.id):
                    made.volume.delete(volume.id)
        finally:
            made.close()


def _settled(cloud: stackcore.Cloud, volume_id: str) -> bool:
    try:
        return cloud.volume.get(volume_id).status in ("available", "error")
    except exception.NotFound:
        return True


def _exists(cloud: stackcore.Cloud, volume_id: str) -> bool:
    try:
        cloud.volume.get(volume_id)
    except exception.NotFound:
        return False
    return True


def _vda(server_id: str) -> tuple[str | None, str | None, str | None]:
    """(type, protocol, name) of the running domain's vda, as libvirt has it."""
    from stackcore_drivers.libvirt import domain_xml

    conn = libvirt.open(backend_env("STACKCORE_TEST_LIBVIRT_URI", "libvirt"))
    try:
        doc = domain_xml.parse(conn.lookupByName(f"instance-{server_id}").XMLDesc(0))
    finally:
        conn.close()
    disk = domain_xml.find_disk(doc, "vda")
    source = disk.find("source")
    assert source is not None
    return disk.get("type"), source.get("protocol"), source.get("name")


def _disk_targets(server_id: str) -> list[str]:
    from stackcore_drivers.libvirt import domain_xml

    conn = libvirt.open(backend_env("STACKCORE_TEST_LIBVIRT_URI", "libvirt"))
    try:
        doc = domain_xml.parse(conn.lookupByName(f"instance-{server_id}").XMLDesc(0))
    finally:
        conn.close()
    return sorted(str(t.get("dev")) for t in doc.findall("devices/disk/target"))


def _image(cloud: stackcore.Cloud, tmp_path: Any, name: str, lines: list[str]) -> str:
    sector = _boot_sector(lines)
    path = tmp_path / f"{name}.raw"
    path.write_bytes(sector + bytes(1024 * 1024 - len(sector)))
    return cloud.compute.register_image(name, str(path), "raw").id


def test_a_server_boots_from_an_nfs_root_volume_and_is_rebuilt_on_it(
        cloud: stackcore.Cloud, tmp_path: Any) -> None:
    directory = backend_env("STACKCORE_TEST_NFS_DIR", "nfs")
    cloud.compute.create_flavor("kvm.tiny", vcpus=1, ram_mb=64, disk_gb=1)
    old = _image(cloud, tmp_path, "nfs-old", LINES)
    new = _image(cloud, tmp_path, "nfs-new", NEW_LINES)

    server = cloud.compute.create_server("bfv <nfs> & 'root'", "kvm.tiny", old,
                                         boot_volume={})

    assert (server.status, server.image_id) == ("ACTIVE", ""), server.fault
    [root] = cloud.compute.list_server_volumes(server.id)
    kind, protocol, name = _vda(server.id)
    assert (kind, protocol) == ("network", "nfs") and name is not None \
        and name.endswith(f"volume-{root.volume_id}"), (kind, protocol, name)
    wait_until(lambda: LINES[-1] in cloud.compute.get_console_output(server.id), 60,
               "the guest's last console line")

    rebuilt = cloud.compute.rebuild_server(server.id, new)

    assert rebuilt.status == "ACTIVE", rebuilt.fault
    assert [v.volume_id for v in cloud.compute.list_server_volumes(server.id)] == \
        [root.volume_id], "the root volume is kept"
    wait_until(lambda: NEW_LINES[-1] in cloud.compute.get_console_output(server.id), 60,
               "the rebuilt guest's last console line")

    # stable rescue: the rescue image's code runs, the root volume still attached as vda
    rescue = _image(cloud, tmp_path, "nfs-rescue", RESCUE_LINES)
    rescued = cloud.compute.rescue_server(server.id, rescue)
    rescued = cloud.compute.wait_for_server(server.id, ("RESCUED", "ERROR"), 60)
    assert rescued.status == "RESCUED", rescued.fault
    # (the API shows no console of a rescued server: the log file itself)
    log = tmp_path / "state" / "instances" / server.id / "console.log"
    wait_until(lambda: RESCUE_LINES[-1] in log.read_text(errors="replace"), 60,
               "the rescue image's last console line")
    kind, protocol, name = _vda(server.id)
    assert (kind, protocol) == ("network", "nfs") and name is not None \
        and name.endswith(f"volume-{root.volume_id}"), (kind, protocol, name)
    unrescued = cloud.compute.unrescue_server(server.id)
    unrescued = cloud.compute.wait_for_server(server.id, ("ACTIVE", "ERROR"), 60)
    assert unrescued.status == "ACTIVE", unrescued.fault
    assert _disk_targets(server.id) == ["vda"], _disk_targets(server.id)

    held = [f for f in os.listdir(directory) if root.volume_id in f]
    assert held == [f"volume-{root.volume_id}"], f"the share holds {held}"
    cloud.compute.delete_server(server.id)
    wait_until(lambda: not _exists(cloud, root.volume_id), 60,
               f"volume {root.volume_id} deleted")
    left = [f for f in os.listdir(directory) if root.volume_id in f]
    assert left == [], f"the share still holds {left}"
