"""The rbd image store beyond the conformance suite, on the test Ceph cluster: images are
clonable copy-on-write from their protected snapshot (what RBD volumes will clone from), a
cloned image is not deleted from under its clone, and cloud.image uploads into it (the
inspection then reads the stored bytes back from Ceph)."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import stackcore
from stackcore import conf as sc_conf
from stackcore import exception
from stackcore.testing.suites.image_store import CountingStream
from tests.conftest import backend_env

rbd = pytest.importorskip("rbd", reason="needs Debian's python3-rbd (tools/backends)")
from stackcore_drivers.image.rbd import SNAPSHOT, RbdStore  # noqa: E402


@pytest.fixture
def ceph() -> dict[str, str]:
    return {"rbd_store_ceph_conf": backend_env("STACKCORE_TEST_CEPH_CONF", "ceph"),
            "rbd_store_pool": backend_env("STACKCORE_TEST_CEPH_POOL", "ceph"),
            "rados_connect_timeout": "10"}


@pytest.fixture
def store(ceph: dict[str, str]) -> Iterator[RbdStore]:
    conf = sc_conf.load([])
    sc_conf.register(conf, [("store", RbdStore.get_store_options())])
    for name, value in ceph.items():
        sc_conf.set_override(conf, "store", name, value)
    found = RbdStore(conf, "store")
    found.do_setup()
    before = set(found.list_backend_objects())
    yield found
    leaked = set(found.list_backend_objects()) - before
    for location in found.locations():
        if location.split("/")[-2] in leaked:
            found.delete(location)
    assert not leaked, f"left in the pool: {sorted(leaked)}"


def test_images_clone_copy_on_write(store: RbdStore) -> None:
    stored = store.add(str(uuid.uuid4()), io.BytesIO(b"\1" * 4096))
    name = stored.location.split("/")[-2]
    clone = f"test-clone-{uuid.uuid4().hex[:8]}"
    with store._ioctx() as ioctx:  # the store's own pool
        rbd.RBD().clone(ioctx, name, SNAPSHOT, ioctx, clone, features=1)
        try:
            with pytest.raises(exception.Conflict, match="1 clone"):
                store.delete(stored.location)
            assert b"".join(store.get(stored.location)) == b"\1" * 4096
            with rbd.Image(ioctx, clone, read_only=True) as image:
                assert image.read(0, 4096) == b"\1" * 4096
                assert image.parent_info()[1] == name, image.parent_info()
        finally:
            rbd.RBD().remove(ioctx, clone)
    store.delete(stored.location)
    store.delete(stored.location)


def test_add_writes_whole_objects_and_removes_an_image_failed_with_writes_in_flight(
        store: RbdStore) -> None:
    object_size = store.configuration.rbd_store_chunk_size * 1024 * 1024
    data = os.urandom(3 * object_size + 5)
    stored = store.add(str(uuid.uuid4()), io.BytesIO(data))  # no size: grown as it comes
    try:
        assert (stored.size, stored.sha256) == (len(data), hashlib.sha256(data).hexdigest())
        assert b"".join(store.get(stored.location)) == data
        with store._ioctx() as ioctx, rbd.Image(ioctx, stored.location.split("/")[-2],
                                                 read_only=True) as image:
            assert image.stat()["obj_size"] == object_size, image.stat()
    finally:
        store.delete(stored.location)
    # two objects written or in flight when the stream fails: the image goes (the fixture
    # checks that nothing is left in the pool)
    stream = CountingStream(data, fail_at=2 * object_size)
    with pytest.raises(exception.Invalid, match="data"):
        store.add(str(uuid.uuid4()), stream, len(data))
    assert stream.read_bytes == 2 * object_size, stream.read_bytes


def test_write_window_is_the_clusters_rbd_concurrent_management_ops(store: RbdStore) -> None:
    client = store._rados()
    assert store._write_window() == int(client.conf_get("rbd_concurrent_management_ops"))
    client.conf_set("rbd_concurrent_management_ops", "3")
    assert store._write_window() == 3


def test_foreign_locations_refused(store: RbdStore) -> None:
    stored = store.add(str(uuid.uuid4()), io.BytesIO(b"x"))
    try:
        fsid, pool, name, snap = stored.location[len("rbd://"):].split("/")
        for bad in (f"rbd://other/{pool}/{name}/{snap}", f"rbd://{fsid}/other/{name}/{snap}",
                    f"rbd://{fsid}/{pool}/volume-1/{snap}", f"rbd://{fsid}/{pool}/{name}/x",
                    f"file:///{name}"):
            with pytest.raises(exception.Invalid, match="location"):
                store.get(bad)
    finally:
        store.delete(stored.location)


def test_upload_through_the_image_api(make_cloud: Callable[..., stackcore.Cloud],
                                      ceph: dict[str, str], tmp_path: Path) -> None:
    cloud: Any = make_cloud(overrides={
        "DEFAULT": {"state_path": str(tmp_path / "state")},
        "image": {"stores": ["file", "rbd"], "default_store": "rbd"},
        "image_store_rbd": ceph})
    disk = tmp_path / "disk.qcow2"
    subprocess.run(["qemu-img", "create", "-f", "qcow2", str(disk), "4M"], check=True,
                   capture_output=True)
    image = cloud.image.create("on-ceph", disk_format="qcow2")
    active = cloud.image.upload(image.id, disk.open("rb"))
    assert (active.status, active.store, active.virtual_size) == ("active", "rbd", 4 * 2**20)
    assert b"".join(cloud.image.download(image.id)) == disk.read_bytes()
    liar = cloud.image.create("liar", disk_format="raw")
    with pytest.raises(exception.Invalid, match="disk_format"):
        cloud.image.upload(liar.id, disk.read_bytes())
    rbd_store = cloud.image.stores["rbd"]
    assert [loc for loc in rbd_store.locations() if liar.id in loc] == []
    cloud.image.delete(image.id)
    assert [loc for loc in rbd_store.locations() if image.id in loc] == []


def test_volume_from_an_image_on_ceph(make_cloud: Callable[..., stackcore.Cloud],
                                      ceph: dict[str, str], tmp_path: Path) -> None:
    """A volume made from an image in the rbd store: the volume manager reads it from Ceph
    into its host's image cache and the driver copies the local file (the ImageFile form)."""
    from tests.conftest import wait_until
    from tests.unit.volume.conftest import manager_of

    cloud: Any = make_cloud(services=("volume",), overrides={
        "DEFAULT": {"state_path": str(tmp_path / "state")},
        "image": {"stores": ["file", "rbd"], "default_store": "rbd"},
        "image_store_rbd": ceph})
    data = bytes(range(256)) * 8192
    image = cloud.image.upload(cloud.image.create("on-ceph").id, data)
    try:
        volume = cloud.volume.create(1, image_id=image.id)
        wait_until(lambda: cloud.volume.get(volume.id).status in ("available", "error"), 30,
                   f"volume {volume.id} created")
        view = cloud.volume.get(volume.id)
        assert view.status == "available", view.fault
        with open(manager_of(cloud).driver._path(f"volume-{volume.id}"), "rb") as copied:
            assert copied.read(len(data)) == data
        cloud.volume.delete(volume.id)
    finally:
        cloud.image.delete(image.id)
