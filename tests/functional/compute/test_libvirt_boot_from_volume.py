"""Boot from volume on real KVM: the root disk ``vda`` is the volume itself - an RBD image on the
test Ceph cluster, an NFS-style file (``device_path``), a file in the nfs-ganesha export opened
by QEMU's NFS client, an iSCSI LUN of tgtd with CHAP - and the guest runs the code that is in
the volume; destroy leaves the volume and its data as they were.

The volume holds the boot sector of :mod:`.test_libvirt_actions` (it prints numbered lines on
COM1 and halts), with lines naming the volume's kind: the console shows that this volume's code
ran, and no OS image is needed. One boot per kind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from stackcore_drivers.libvirt import domain_xml, rbd_disk
from stackcore_drivers.libvirt.driver import LibvirtDriver

from stackcore.compute.objects import Flavor, Image, Instance, PowerState
from tests.conftest import wait_until

from .conftest import (
    HOST,
    backend_env,
    domain_of,
    libvirt,
    make_driver,
    qemu_protocol_nodes,
)
from .test_libvirt_actions import _boot_sector

try:
    import rados
    import rbd
except ImportError as err:  # the Ceph service installs them: a broken environment, not a skip
    raise ImportError(f"{err}: run tools/backends/python-bindings.sh for this venv") from err

pytestmark = pytest.mark.real

MiB = 1024 ** 2


@dataclasses.dataclass
class BootVolume:
    """A volume with the boot sector in it: its connection_info and how to read it back."""

    kind: str
    connection_info: dict[str, Any]
    read: Callable[[int], bytes]  # the first n bytes, read on the backend (not via the driver)
    #: checks the domain's vda is this volume (the ``<disk>`` the driver wrote)
    is_source: Callable[[Any], bool]
    #: driver options: an RBD boot volume is tried with images_type = rbd, where destroy
    #: removes RBD root disks - never this one
    options: dict[str, Any] = dataclasses.field(default_factory=dict)


def lines_of(kind: str) -> list[str]:
    return [f"booted from the {kind} volume, line {i}" for i in range(1, 4)]


def _file_volume(path: str, kind: str) -> None:
    """A 64 MiB raw file whose first sector boots."""
    with open(path, "wb") as handle:
        handle.write(_boot_sector(lines_of(kind)))
        handle.truncate(64 * MiB)


def _read_file(path: str) -> Callable[[int], bytes]:
    def read(length: int) -> bytes:
        with open(path, "rb") as handle:
            return handle.read(length)
    return read


@contextlib.contextmanager
def _rbd_image(ceph_conf: str, pool: str, name: str, read_only: bool = True) -> Iterator[Any]:
    client = rados.Rados(conffile=ceph_conf)
    client.connect(timeout=10)
    try:
        with client.open_ioctx(pool) as ioctx, \
                rbd.Image(ioctx, name, read_only=read_only) as image:
            yield image
    finally:
        client.shutdown()


def _rbd_case(request: pytest.FixtureRequest) -> BootVolume:
    info = request.getfixturevalue("rbd_image")  # conftest: removed after the test
    ceph_conf = backend_env("STACKCORE_TEST_CEPH_CONF", "ceph")
    pool, _, name = info["data"]["name"].partition("/")
    with _rbd_image(ceph_conf, pool, name, read_only=False) as image:
        image.write(_boot_sector(lines_of("rbd")), 0)

    def read(length: int) -> bytes:
        with _rbd_image(ceph_conf, pool, name) as image:
            return bytes(image.read(0, length))

    return BootVolume(
        "rbd", info, read, lambda disk: rbd_disk.rbd_source(disk) == (pool, name),
        options={"images_type": "rbd", "images_rbd_pool": pool,
                 "images_rbd_ceph_conf": ceph_conf, "rbd_connect_timeout": 10})


def _device_path_case(request: pytest.FixtureRequest) -> BootVolume:
    path = str(request.getfixturevalue("tmp_path") / "share" / f"volume-{uuid.uuid4()}")
    os.makedirs(os.path.dirname(path))
    _file_volume(path, "device_path")
    info = {"driver_volume_type": "nfs",
            "data": {"device_path": path, "format": "raw", "volume_id": str(uuid.uuid4())}}

    def is_source(disk: Any) -> bool:
        return disk.get("type") == "file" and disk.find("source").get("file") == path

    return BootVolume("device_path", info, _read_file(path), is_source)


def _nfs_case(request: pytest.FixtureRequest) -> BootVolume:
    server = backend_env("STACKCORE_TEST_NFS_SERVER", "nfs")
    export = backend_env("STACKCORE_TEST_NFS_EXPORT", "nfs")
    name = f"volume-{uuid.uuid4()}"
    path = os.path.join(backend_env("STACKCORE_TEST_NFS_DIR", "nfs"), name)
    _file_volume(path, "nfs")

    def remove() -> None:
        os.unlink(path)
        assert not os.path.exists(path)

    request.addfinalizer(remove)
    info = {"driver_volume_type": "nfs",
            "data": {"export": f"{server}:{export}", "name": name, "format": "raw",
                     "volume_id": name[len("volume-"):]}}

    def is_source(disk: Any) -> bool:
        source = disk.find("source")
        return disk.get("type") == "network" and source.get("protocol") == "nfs" \
            and source.get("name") == os.path.join(export, name)

    return BootVolume("nfs", info, _read_file(path), is_source)


def _iscsi_case(request: pytest.FixtureRequest) -> BootVolume:
    info = request.getfixturevalue("iscsi_lun")  # conftest: a LUN backed by tmp_path/lun.img
    backing = str(request.getfixturevalue("tmp_path") / "lun.img")
    with open(backing, "r+b") as handle:  # tgtd reads the file through the page cache
        handle.write(_boot_sector(lines_of("iscsi")))
    data = info["data"]

    def is_source(disk: Any) -> bool:
        source = disk.find("source")
        return disk.get("type") == "network" and source.get("protocol") == "iscsi" \
            and source.get("name") == f"{data['target_iqn']}/{data['target_lun']}"

    return BootVolume("iscsi", info, _read_file(backing), is_source)


CASES = {"rbd": _rbd_case, "device_path": _device_path_case, "nfs": _nfs_case,
         "iscsi": _iscsi_case}


@pytest.fixture
def boot_volume(request: pytest.FixtureRequest) -> BootVolume:
    """The volume of the parameter's kind, with the boot sector in it. Asked before the
    driver, so the domain is gone before the volume's fixture removes it."""
    return CASES[request.param](request)


@pytest.fixture
def bfv_driver(tmp_path: Any, boot_volume: BootVolume) -> Iterator[LibvirtDriver]:
    # no hot-plug here; SeaBIOS probing 8 root ports adds ~5 s to the boot
    driver = make_driver(tmp_path, pcie_root_ports=0, **boot_volume.options)
    yield driver
    driver.connection.close()
    if driver.rbd_disks is not None:
        driver.rbd_disks.close()


def opened_by_qemu(dom: Any, volume: BootVolume) -> bool:
    """Whether QEMU has this volume open (QMP query-block's protocol layer)."""
    data = volume.connection_info["data"]
    for node in qemu_protocol_nodes(dom):
        if volume.kind == "rbd" and node.get("driver") == "rbd":
            if f"{node.get('pool')}/{node.get('image')}" == data["name"]:
                return True
        elif volume.kind == "device_path" and node.get("driver") == "file":
            if node.get("filename") == data["device_path"]:
                return True
        elif volume.kind == "nfs" and node.get("driver") == "nfs":
            if str(node.get("path", "")).endswith("/" + data["name"]):
                return True
        elif volume.kind == "iscsi" and node.get("driver") == "iscsi":
            if node.get("target") == data["target_iqn"] \
                    and str(node.get("lun")) == str(data["target_lun"]):
                return True
    return False


@pytest.mark.parametrize("boot_volume", list(CASES), indirect=True)
def test_the_guest_runs_from_the_volume_and_destroy_keeps_it(
    boot_volume: BootVolume, bfv_driver: LibvirtDriver
) -> None:
    driver = bfv_driver
    sector = boot_volume.read(512)
    assert sector[-2:] == b"\x55\xaa"  # the boot sector is in the volume
    # what the manager passes for a volume-backed server: no image file, raw
    image = Image(id=str(uuid.uuid4()), name="the volume's image", path="", disk_format="raw",
                  properties={"architecture": "x86_64"})
    instance = Instance(uuid=str(uuid.uuid4()), name=f"boots from {boot_volume.kind}",
                        host=HOST, flavor=Flavor("bfv", vcpus=1, ram_mb=64, disk_gb=0),
                        image=image)
    volume_id = boot_volume.connection_info["data"]["volume_id"]
    bdms = [{"mount_device": "/dev/vda", "volume_id": volume_id, "boot_index": 0,
             "connection_info": boot_volume.connection_info}]
    instance_dir = os.path.join(driver.instances_path, instance.uuid)
    try:
        driver.spawn(instance, image, [], bdms)
        assert driver.get_info(instance).power_state == PowerState.RUNNING
        dom = domain_of(driver, instance)
        doc = domain_xml.parse(dom.XMLDesc(0))
        vda = domain_xml.find_disk(doc, "vda")
        assert vda is not None and boot_volume.is_source(vda), domain_xml.to_string(doc)
        assert domain_xml.boot_volume(doc) == volume_id
        assert [t.get("dev") for t in doc.findall("devices/disk/target")] == ["vda"]
        assert opened_by_qemu(dom, boot_volume), qemu_protocol_nodes(dom)
        # nothing made from the image: the instance directory has the console log only
        assert os.listdir(instance_dir) in ([], ["console.log"]), os.listdir(instance_dir)
        if driver.rbd_disks is not None:
            assert not driver.rbd_disks.exists(instance.uuid)  # no <uuid>_disk either

        # the guest runs the volume's code: its lines on the console, in order
        lines = lines_of(boot_volume.kind)
        output = wait_until(lambda: (out := driver.get_console_output(instance))
                            and lines[-1] in out and out, 60,
                            f"{lines[-1]!r} in the console log")
        assert "\r\n".join(lines) in output, output
    finally:
        driver.destroy(instance, [], [{"mount_device": "/dev/vda", "volume_id": volume_id,
                                       "boot_index": 0}], True)
    with pytest.raises(libvirt.libvirtError):
        domain_of(driver, instance)
    assert not os.path.exists(instance_dir)
    assert driver.secrets_of(instance) == []
    # the volume service's volume is still there, with its data
    assert boot_volume.read(512) == sector


@pytest.mark.parametrize("boot_volume", ["rbd", "device_path"], indirect=True)
def test_a_volume_backed_guest_resizes_on_its_host_and_boots_its_volume_again(
    boot_volume: BootVolume, bfv_driver: LibvirtDriver
) -> None:
    """Resize (same host, shared instances_path) of a volume-backed guest: powered off, defined
    again with the new flavor booting from the same volume, running its code again; with
    ``images_type = rbd`` too, whose own RBD root disks cannot be resized yet (the volume is
    not one of them). Confirm, destroy: the volume as it was."""
    driver = bfv_driver
    sector = boot_volume.read(512)
    image = Image(id=str(uuid.uuid4()), name="the volume's image", path="", disk_format="raw",
                  properties={"architecture": "x86_64"})
    instance = Instance(uuid=str(uuid.uuid4()), name=f"resized from {boot_volume.kind}",
                        host=HOST, flavor=Flavor("bfv", vcpus=1, ram_mb=64, disk_gb=1),
                        image=image)
    volume_id = boot_volume.connection_info["data"]["volume_id"]
    bdms = [{"mount_device": "/dev/vda", "volume_id": volume_id, "boot_index": 0,
             "connection_info": boot_volume.connection_info}]
    source_bdms = [{k: v for k, v in bdms[0].items() if k != "connection_info"}]
    bigger = Flavor("bfv-bigger", vcpus=2, ram_mb=96, disk_gb=0)  # disk: not the root's
    resized = dataclasses.replace(instance, flavor=bigger)
    lines = lines_of(boot_volume.kind)
    try:
        driver.spawn(instance, image, [], bdms)
        wait_until(lambda: lines[-1] in driver.get_console_output(instance), 60,
                   f"{lines[-1]!r} in the console log before the resize")
        disk_info = driver.migrate_disk_and_power_off(instance, HOST, bigger, [], source_bdms)
        assert driver.get_info(instance).power_state == PowerState.SHUTDOWN
        # emptied while no QEMU writes it: whatever shows up next is the new boot's
        with open(os.path.join(driver.instances_path, instance.uuid, "console.log"), "w"):
            pass

        driver.finish_migration(resized, disk_info, [], bdms, True, True)

        assert driver.get_info(resized).power_state == PowerState.RUNNING
        dom = domain_of(driver, resized)
        doc = domain_xml.parse(dom.XMLDesc(0))
        assert (doc.findtext("vcpu"), domain_xml.boot_volume(doc)) == ("2", volume_id)
        vda = domain_xml.find_disk(doc, "vda")
        assert vda is not None and boot_volume.is_source(vda), domain_xml.to_string(doc)
        assert opened_by_qemu(dom, boot_volume), qemu_protocol_nodes(dom)
        # booted again from the volume: its lines once more after the resize
        wait_until(lambda: lines[-1] in driver.get_console_output(resized), 60,
                   f"{lines[-1]!r} in the console log after the resize")
        driver.confirm_migration(resized, [])
        assert not os.path.exists(os.path.join(driver.instances_path,
                                               f"{instance.uuid}_resize"))
    finally:
        driver.destroy(resized, [], source_bdms, True)
    assert boot_volume.read(512) == sector
