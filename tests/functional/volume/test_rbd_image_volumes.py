"""Volumes and images of the Ceph (rbd) image store, on the real single-node Ceph:

* a volume from a raw image of the rbd store is a copy-on-write clone of the image's protected
  snapshot (``clone_image``): librbd names ``image-<id>@snap`` as its parent, its data is the
  image's, and the image cannot be deleted while the clone exists (``Conflict``, the image
  stays active), only once the volume is deleted;
* a volume from an image of the ``file`` store, or from a qcow2 image of the rbd store, is
  copied as before; a clone that fails half-way leaves the volume in error and nothing in Ceph;
* a volume uploaded into the rbd store (``upload_to_image``) is an active, checked image, and
  a volume made from that image holds the first volume's data.

Data is written and checked through each volume's own connection_info, opened with qemu as a
hypervisor would (:mod:`stackcore.testing.datapath`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

import stackcore
from stackcore import exception
from stackcore.testing import datapath
from tests.conftest import backend_env

pytestmark = pytest.mark.real

MiB = 1024**2
BACKEND = "ceph"
CONNECTOR = {"host": "rbd-image-test-host", "ip": "127.0.0.1", "platform": "x86_64",
             "os_type": "linux", "multipath": False,
             "initiator": "iqn.2004-10.org.stackcore:rbd-image-test"}


@pytest.fixture
def cloud(tmp_path: Any) -> Iterator[stackcore.Cloud]:
    pytest.importorskip("rados", reason="python3-rados is not importable in this venv")
    conf = backend_env("STACKCORE_TEST_CEPH_CONF", "ceph")
    pool = backend_env("STACKCORE_TEST_CEPH_POOL", "ceph")
    made = stackcore.Cloud(services=("volume",), overrides={
        "DEFAULT": {"state_path": str(tmp_path / "state"), "periodic_interval": 3600},
        "volume": {"enabled_backends": [BACKEND]},
        BACKEND: {"volume_backend_name": BACKEND, "volume_driver": "rbd",
                  "rbd_ceph_conf": conf, "rbd_pool": pool, "rados_connect_timeout": 10},
        "image": {"stores": ["file", "rbd"], "default_store": "rbd"},
        "image_store_rbd": {"rbd_store_ceph_conf": conf, "rbd_store_pool": pool,
                            "rados_connect_timeout": 10},
    })
    try:
        yield made
    finally:
        try:
            for volume in made.volume.list_volumes():
                made.volume.delete(volume.id)
            for image in made.image.list_images():
                with contextlib.suppress(exception.NotFound):
                    made.image.delete(image.id)
        finally:
            made.close()


def _image(cloud: stackcore.Cloud, store: str, pattern: int) -> Any:
    """A 16 MiB raw image with ``pattern`` in its second MiB."""
    data = bytearray(16 * MiB)
    data[MiB:2 * MiB] = bytes([pattern]) * MiB
    image = cloud.image.create(f"img-{store}", disk_format="raw")
    return cloud.image.upload(image.id, bytes(data), store=store)


def _driver(cloud: stackcore.Cloud) -> Any:
    """The rbd driver object of the cloud's volume service (to arm a failure in it)."""
    return next(service.manager.driver for service in cloud.services
                if service.host.endswith("@" + BACKEND))


@contextlib.contextmanager
def _attached(cloud: stackcore.Cloud, volume_id: str) -> Iterator[dict[str, Any]]:
    info = cloud.volume.attach(volume_id, CONNECTOR)
    try:
        yield info
    finally:
        cloud.volume.detach(volume_id, info["attachment_id"])


def _parent(volume_id: str) -> tuple[str, str, str] | None:
    """librbd's parent of the volume's image: (pool, image, snapshot), or None."""
    import rados
    import rbd

    with rados.Rados(conffile=backend_env("STACKCORE_TEST_CEPH_CONF", "ceph")) as cluster:
        with cluster.open_ioctx(backend_env("STACKCORE_TEST_CEPH_POOL", "ceph")) as ioctx:
            with rbd.Image(ioctx, f"volume-{volume_id}", read_only=True) as image:
                try:
                    pool, name, snap = image.parent_info()
                except rbd.ImageNotFound:
                    return None
                return str(pool), str(name), str(snap)


def test_volume_from_an_rbd_image_is_a_clone(cloud: stackcore.Cloud) -> None:
    image = _image(cloud, "rbd", 0xC7)
    assert (image.status, image.store) == ("active", "rbd"), image
    volume = cloud.volume.create(1, image_id=image.id, name="cow")
    assert volume.status == "available", cloud.volume.faults(volume.id)
    pool = backend_env("STACKCORE_TEST_CEPH_POOL", "ceph")
    parent = _parent(volume.id)
    assert parent == (pool, f"image-{image.id}", "snap"), (
        f"volume {volume.id} has parent {parent}, not the image's snapshot")
    with _attached(cloud, volume.id) as info:
        datapath.expect_size(info, 1, "a 1 GiB clone of a 16 MiB image")
        datapath.expect_pattern(info, MiB, 0xC7, "the clone's second MiB (the image's)")
        datapath.expect_pattern(info, 0, 0x00, "the clone's first MiB")
        datapath.expect_pattern(info, 512 * MiB, 0x00, "the clone past the image's end")
        datapath.write_pattern(info, MiB, 0x11)  # the clone's own data from here on

    with pytest.raises(exception.Conflict, match="copy-on-write volume"):
        cloud.image.delete(image.id)
    assert cloud.image.get(image.id).status == "active", "the refused delete changed the image"
    # the image's bytes are untouched by the clone's write
    assert b"".join(cloud.image.download(image.id, offset=MiB, length=MiB)) == b"\xc7" * MiB

    # a clone of the clone: its chain (volume -> image) is followed into the image's pool
    again = cloud.volume.create(1, source_volume_id=volume.id, name="cow-of-cow")
    assert again.status == "available", cloud.volume.faults(again.id)
    with _attached(cloud, again.id) as info:
        datapath.expect_pattern(info, MiB, 0x11, "a clone of the image's clone")
    cloud.volume.delete(again.id)

    cloud.volume.delete(volume.id)
    cloud.image.delete(image.id)
    with pytest.raises(exception.NotFound):
        cloud.image.get(image.id)


def test_volume_from_a_file_store_image_is_copied(cloud: stackcore.Cloud) -> None:
    image = _image(cloud, "file", 0x3D)
    volume = cloud.volume.create(1, image_id=image.id, name="copied")
    assert volume.status == "available", cloud.volume.faults(volume.id)
    assert _parent(volume.id) is None, "a volume copied from a file-store image has a parent"
    with _attached(cloud, volume.id) as info:
        datapath.expect_pattern(info, MiB, 0x3D, "the copied volume's second MiB")
    cloud.image.delete(image.id)  # nothing depends on a copied image


def test_volume_uploaded_into_the_rbd_store_and_back(cloud: stackcore.Cloud) -> None:
    source = cloud.volume.create(1, name="to-upload")
    with _attached(cloud, source.id) as info:
        datapath.write_pattern(info, 0, 0xE1)
        datapath.write_pattern(info, 700 * MiB, 0xE2)
    uploaded = cloud.volume.upload_to_image(source.id, "from-rbd-volume", store="rbd")
    image = cloud.image.get(uploaded["id"])
    assert (image.status, image.store, image.size_bytes, image.disk_format) == (
        "active", "rbd", 1024 * MiB, "raw"), image
    assert uploaded["path"] is None and uploaded["sha256"] == image.sha256, uploaded
    assert image.properties.get("source_volume_id") == source.id, image.properties
    assert cloud.volume.get(source.id).status == "available"

    again = cloud.volume.create(1, image_id=image.id, name="from-uploaded")
    assert again.status == "available", cloud.volume.faults(again.id)
    with _attached(cloud, again.id) as info:
        datapath.expect_pattern(info, 0, 0xE1, "a volume from the uploaded image, offset 0")
        datapath.expect_pattern(info, 700 * MiB, 0xE2,
                                "a volume from the uploaded image, offset 700 MiB")


def test_a_qcow2_image_of_the_rbd_store_is_copied(cloud: stackcore.Cloud, tmp_path: Any) -> None:
    """A qcow2's bytes are not the volume's blocks: never cloned, converted into the volume."""
    path = str(tmp_path / "small.qcow2")
    datapath.run(["qemu-img", "create", "-f", "qcow2", path, "16M"], "making a qcow2")
    datapath.run(["qemu-io", "-f", "qcow2", "-c", f"write -P 0x5B {MiB} {MiB}", path],
                 "writing the qcow2")
    image = cloud.image.create("q", disk_format="qcow2")
    with open(path, "rb") as data:
        image = cloud.image.upload(image.id, data, store="rbd")
    volume = cloud.volume.create(1, image_id=image.id, name="from-qcow2")
    assert volume.status == "available", cloud.volume.faults(volume.id)
    assert _parent(volume.id) is None, "a volume from a qcow2 image is a clone of its bytes"
    with _attached(cloud, volume.id) as info:
        datapath.expect_pattern(info, MiB, 0x5B, "the volume converted from the qcow2")
    cloud.image.delete(image.id)  # nothing depends on it


def test_a_failed_clone_leaves_nothing(cloud: stackcore.Cloud) -> None:
    """The clone fails after librbd made it: the volume is in error with the fault, no
    volume-<id> is left in the pool, and the image has no clone left (it can be deleted)."""
    import rados
    import rbd

    image = _image(cloud, "rbd", 0x21)
    driver = _driver(cloud)
    driver.arm_fault("clone_image:after_clone")
    try:
        volume = cloud.volume.create(1, image_id=image.id, name="clone-fails")
    finally:
        driver.disarm_faults()
    assert volume.status == "error", volume
    faults = cloud.volume.faults(volume.id)
    assert faults[-1].step == "clone_image" and "injected" in faults[-1].message, faults
    with rados.Rados(conffile=backend_env("STACKCORE_TEST_CEPH_CONF", "ceph")) as cluster, \
            cluster.open_ioctx(backend_env("STACKCORE_TEST_CEPH_POOL", "ceph")) as ioctx:
        names = list(rbd.RBD().list(ioctx))
    assert f"volume-{volume.id}" not in names, "the half-made clone is still in the pool"
    cloud.image.delete(image.id)
