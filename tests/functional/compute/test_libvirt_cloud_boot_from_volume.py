"""Boot from volume end to end through ``stackcore.Cloud``, on real KVM and the real Ceph: the
image (the boot sector of :mod:`.test_libvirt_actions`, which prints numbered lines on COM1) is
uploaded to the rbd image store; ``create_server(boot_volume={})`` has the rbd volume driver
make the root volume as a copy-on-write clone of it, the compute host awaits it, exports it
and the libvirt driver boots the domain from it. Checked where it happens: the domain's
``vda`` is the RBD volume, the guest ran the volume's code (console), librbd names the image's
snapshot as the volume's parent; the server's delete removes the volume from Ceph
(``delete_on_termination``) and the image can be deleted after it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

import stackcore
from stackcore import exception
from tests.conftest import backend_env, wait_until

from .conftest import libvirt, libvirt_cloud_overrides
from .test_libvirt_actions import _boot_sector

try:
    import rados
    import rbd
except ImportError as err:  # the Ceph service installs them: a broken environment, not a skip
    raise ImportError(f"{err}: run tools/backends/python-bindings.sh for this venv") from err

pytestmark = pytest.mark.real

LINES = [f"booted from an rbd root volume, line {i}" for i in range(1, 4)]
NEW_LINES = [f"rebuilt onto the same volume, line {i}" for i in range(1, 4)]


@pytest.fixture
def cloud(tmp_path: Any) -> Iterator[stackcore.Cloud]:
    conf = backend_env("STACKCORE_TEST_CEPH_CONF", "ceph")
    pool = backend_env("STACKCORE_TEST_CEPH_POOL", "ceph")
    overrides = libvirt_cloud_overrides(
        tmp_path, {"soft_reboot_timeout": 2, "pcie_root_ports": 0},
        volume={"enabled_backends": ["ceph"]},
        ceph={"volume_backend_name": "ceph", "volume_driver": "rbd", "rbd_ceph_conf": conf,
              "rbd_pool": pool, "rados_connect_timeout": 10},
        image={"stores": ["rbd"], "default_store": "rbd"},
        image_store_rbd={"rbd_store_ceph_conf": conf, "rbd_store_pool": pool,
                         "rados_connect_timeout": 10})
    made = stackcore.Cloud(overrides=overrides)
    try:
        yield made
    finally:
        try:
            for server in made.compute.list_servers():
                made.compute.delete_server(server.id)
            for volume in made.volume.list_volumes():
                made.volume.delete(volume.id)
            for image in made.image.list_images():
                with contextlib.suppress(exception.NotFound, exception.Conflict):
                    made.image.delete(image.id)
        finally:
            made.close()


def _rbd_images(pool: str) -> set[str]:
    with rados.Rados(conffile=backend_env("STACKCORE_TEST_CEPH_CONF", "ceph")) as cluster, \
            cluster.open_ioctx(pool) as ioctx:
        return set(rbd.RBD().list(ioctx))


def _parent(pool: str, name: str) -> str:
    with rados.Rados(conffile=backend_env("STACKCORE_TEST_CEPH_CONF", "ceph")) as cluster, \
            cluster.open_ioctx(pool) as ioctx, rbd.Image(ioctx, name, read_only=True) as image:
        info = image.parent_info()  # (pool, image, snapshot)
        return f"{info[0]}/{info[1]}@{info[2]}"


def _vda_source(server_id: str) -> tuple[str | None, str | None]:
    """(protocol, name) of the running domain's vda, as libvirt has it."""
    from stackcore_drivers.libvirt import domain_xml

    conn = libvirt.open(backend_env("STACKCORE_TEST_LIBVIRT_URI", "libvirt"))
    try:
        doc = domain_xml.parse(conn.lookupByName(f"instance-{server_id}").XMLDesc(0))
    finally:
        conn.close()
    source = domain_xml.find_disk(doc, "vda").find("source")
    assert source is not None
    return source.get("protocol"), source.get("name")


def test_a_server_boots_from_an_rbd_clone_of_its_image_and_takes_it_along_at_delete(
        cloud: stackcore.Cloud) -> None:
    pool = backend_env("STACKCORE_TEST_CEPH_POOL", "ceph")
    cloud.compute.create_flavor("kvm.tiny", vcpus=1, ram_mb=64, disk_gb=1)
    sector = _boot_sector(LINES)
    image = cloud.image.create("bfv-boot-sector", disk_format="raw")
    image = cloud.image.upload(image.id, sector + bytes(1024 * 1024 - len(sector)))
    assert image.status == "active", image

    server = cloud.compute.create_server("bfv <rbd> & 'root'", "kvm.tiny", image.id,
                                         boot_volume={})

    assert (server.status, server.image_id) == ("ACTIVE", ""), server.fault
    [root] = cloud.compute.list_server_volumes(server.id)
    assert (root.device, root.root, root.delete_on_termination, root.status) == \
        ("/dev/vda", True, True, "attached"), root
    volume_name = f"volume-{root.volume_id}"
    assert _vda_source(server.id) == ("rbd", f"{pool}/{volume_name}")
    assert _parent(pool, volume_name) == f"{pool}/image-{image.id}@snap", \
        "the root volume is not a copy-on-write clone of the image"
    wait_until(lambda: LINES[-1] in cloud.compute.get_console_output(server.id), 60,
               "the guest's last console line")
    assert cloud.compute.get_console_output(server.id).count("booted from an rbd root") == 3
    with pytest.raises(exception.Conflict):  # the clone depends on the image
        cloud.image.delete(image.id)

    cloud.compute.delete_server(server.id)

    assert cloud.compute.get_server(server.id, include_deleted=True).status == "DELETED"
    # the server's delete asked the volume service for it (a cast): await its end
    wait_until(lambda: _gone(cloud, root.volume_id), 60, f"volume {root.volume_id} deleted")
    assert volume_name not in _rbd_images(pool)
    cloud.image.delete(image.id)  # no clone of it left
    assert f"image-{image.id}" not in _rbd_images(pool)


def _gone(cloud: stackcore.Cloud, volume_id: str) -> bool:
    try:
        cloud.volume.get(volume_id)
    except exception.NotFound:
        return True
    return False


def test_a_snapshot_of_a_volume_backed_server_boots_a_second_server_on_kvm(
        cloud: stackcore.Cloud) -> None:
    """create_image of the volume-backed server is an RBD snapshot of its root volume behind
    an image of no bytes; booting that image boots a second KVM guest from a new volume made
    from the snapshot, which runs the same code (console)."""
    pool = backend_env("STACKCORE_TEST_CEPH_POOL", "ceph")
    cloud.compute.create_flavor("kvm.tiny", vcpus=1, ram_mb=64, disk_gb=1)
    sector = _boot_sector(LINES)
    image = cloud.image.create("bfv-snap-sector", disk_format="raw")
    image = cloud.image.upload(image.id, sector + bytes(1024 * 1024 - len(sector)))
    first = cloud.compute.create_server("first", "kvm.tiny", image.id, boot_volume={})
    assert first.status == "ACTIVE", first.fault
    [root] = cloud.compute.list_server_volumes(first.id)

    snap_image = cloud.compute.create_image(first.id, "first <snap>")

    assert (snap_image.status, snap_image.properties["image_type"]) == \
        ("active", "snapshot"), snap_image
    snapshot = cloud.volume.get_snapshot(snap_image.properties["root_snapshot_id"])
    assert (snapshot.volume_id, snapshot.status) == (root.volume_id, "available"), snapshot
    second = cloud.compute.create_server("second", "kvm.tiny", snap_image.id)
    assert second.status == "ACTIVE", second.fault
    [second_root] = cloud.compute.list_server_volumes(second.id)
    assert second_root.volume_id != root.volume_id
    assert _vda_source(second.id) == ("rbd", f"{pool}/volume-{second_root.volume_id}")
    wait_until(lambda: LINES[-1] in cloud.compute.get_console_output(second.id), 60,
               "the second guest's last console line")

    cloud.compute.delete_server(second.id)
    wait_until(lambda: _gone(cloud, second_root.volume_id), 60,
               f"volume {second_root.volume_id} deleted")
    cloud.volume.delete_snapshot(snapshot.id)
    cloud.compute.delete_server(first.id)
    wait_until(lambda: _gone(cloud, root.volume_id), 60, f"volume {root.volume_id} deleted")
    assert {f"volume-{root.volume_id}", f"volume-{second_root.volume_id}"} & \
        _rbd_images(pool) == set()


def test_a_volume_backed_server_rebuilt_on_kvm_runs_the_new_image(
        cloud: stackcore.Cloud) -> None:
    """rebuild_server of a volume-backed server writes the new image over its RBD root volume
    (same volume) and the guest then runs the new image's code (console)."""
    pool = backend_env("STACKCORE_TEST_CEPH_POOL", "ceph")
    cloud.compute.create_flavor("kvm.tiny", vcpus=1, ram_mb=64, disk_gb=1)
    images = {}
    for name, lines in (("old", LINES), ("new", NEW_LINES)):
        sector = _boot_sector(lines)
        made = cloud.image.create(f"bfv-{name}", disk_format="raw")
        images[name] = cloud.image.upload(made.id, sector + bytes(1024 * 1024 - len(sector)))
    server = cloud.compute.create_server("rebuilt", "kvm.tiny", images["old"].id,
                                         boot_volume={})
    assert server.status == "ACTIVE", server.fault
    [root] = cloud.compute.list_server_volumes(server.id)
    wait_until(lambda: LINES[-1] in cloud.compute.get_console_output(server.id), 60,
               "the old image's last console line")

    rebuilt = cloud.compute.rebuild_server(server.id, images["new"].id)

    assert (rebuilt.status, rebuilt.image_id) == ("ACTIVE", ""), rebuilt.fault
    [after] = cloud.compute.list_server_volumes(server.id)
    assert after.volume_id == root.volume_id, "the root volume is kept"
    assert _vda_source(server.id) == ("rbd", f"{pool}/volume-{root.volume_id}")
    wait_until(lambda: NEW_LINES[-1] in cloud.compute.get_console_output(server.id), 60,
               "the new image's last console line")
