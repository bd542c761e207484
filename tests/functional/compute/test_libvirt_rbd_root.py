"""``[libvirt] images_type = rbd`` on real KVM and the test Ceph cluster: the root disk is the
RBD image ``<uuid>_disk`` - a copy-on-write clone of a raw image of the rbd image store, an
import of any other image - QEMU opens it through librbd, a cold snapshot reads it back, a
failed spawn and a delete leave nothing in the pool, and a start-up against a missing pool or
an unreachable cluster is one ConfigError naming the option.

Guests have no OS (as in the other libvirt tests): "booted" means QEMU runs with the disk open.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from stackcore_drivers.image.rbd import SNAPSHOT, RbdStore
from stackcore_drivers.libvirt import domain_xml, rbd_disk
from stackcore_drivers.libvirt.driver import LibvirtDriver

from stackcore import conf as sc_conf
from stackcore import exception
from stackcore.compute.objects import Flavor, Image, Instance
from tests.conftest import wait_until

from .conftest import (
    HOST,
    backend_env,
    domain_of,
    libvirt_cloud_overrides,
    make_driver,
    qemu_protocol_nodes,
    run,
)

try:
    import rbd
except ImportError as err:  # the Ceph service installs them: a broken environment, not a skip
    raise ImportError(f"{err}: run tools/backends/python-bindings.sh for this venv") from err

pytestmark = pytest.mark.real

GiB = 1024 ** 3
MARKER = b"stackcore rbd root disk\n" * 100


@pytest.fixture
def ceph() -> dict[str, str]:
    return {"conf": backend_env("STACKCORE_TEST_CEPH_CONF", "ceph"),
            "pool": backend_env("STACKCORE_TEST_CEPH_POOL", "ceph")}


@pytest.fixture
def store(ceph: dict[str, str]) -> Iterator[RbdStore]:
    """The rbd image store on the same pool, as a cloud would configure it."""
    conf = sc_conf.load([])
    sc_conf.register(conf, [("store", RbdStore.get_store_options())])
    for name, value in {"rbd_store_ceph_conf": ceph["conf"], "rbd_store_pool": ceph["pool"],
                        "rados_connect_timeout": "10"}.items():
        sc_conf.set_override(conf, "store", name, value)
    found = RbdStore(conf, "store")
    found.do_setup()
    yield found


@pytest.fixture
def rbd_driver(tmp_path: Any, ceph: dict[str, str]) -> Iterator[LibvirtDriver]:
    driver = make_driver(tmp_path, images_type="rbd", images_rbd_pool=ceph["pool"],
                         images_rbd_ceph_conf=ceph["conf"], rbd_connect_timeout=10)
    yield driver
    driver.connection.close()
    assert driver.rbd_disks is not None
    driver.rbd_disks.close()


@pytest.fixture
def spawned(rbd_driver: LibvirtDriver) -> Iterator[Callable[..., Instance]]:
    """Spawn instances; at teardown each is destroyed, twice (idempotent), and its disk is
    proven gone from the pool."""
    made: list[Instance] = []

    def spawn(image: Image, vcpus: int = 1) -> Instance:
        instance = Instance(uuid=str(uuid.uuid4()), name="rbd <root> & 'disk'", host=HOST,
                            flavor=Flavor("rbd", vcpus=vcpus, ram_mb=128, disk_gb=1),
                            image=image)
        made.append(instance)
        rbd_driver.spawn(instance, image, [], [])
        return instance

    yield spawn
    assert rbd_driver.rbd_disks is not None
    for instance in made:
        rbd_driver.destroy(instance, [], [], True)
        rbd_driver.destroy(instance, [], [], True)
        assert not rbd_driver.rbd_disks.exists(instance.uuid), instance.uuid


@contextlib.contextmanager
def _pool_image(ceph: dict[str, str], name: str) -> Iterator[Any]:
    """Open ``name`` in the test pool read-only (the bindings, not the driver under test)."""
    import rados
    client = rados.Rados(conffile=ceph["conf"])
    client.connect(timeout=10)
    try:
        with client.open_ioctx(ceph["pool"]) as ioctx, \
                rbd.Image(ioctx, name, read_only=True) as image:
            yield image
    finally:
        client.shutdown()


def _root_disk_of(driver: LibvirtDriver, instance: Instance) -> Any:
    doc = domain_xml.parse(domain_of(driver, instance).XMLDesc(0))
    disk = domain_xml.find_disk(doc, "vda")
    assert disk is not None, domain_xml.to_string(doc)
    return disk


def _check_domain_uses(driver: LibvirtDriver, instance: Instance, pool: str) -> None:
    disk = _root_disk_of(driver, instance)
    name = f"{pool}/{instance.uuid}_disk"
    assert rbd_disk.rbd_source(disk) == (pool, f"{instance.uuid}_disk"), \
        domain_xml.to_string(disk)
    hosts = [(h.get("name"), h.get("port")) for h in disk.findall("source/host")]
    mon = backend_env("STACKCORE_TEST_CEPH_MON", "ceph")
    assert (mon.rpartition(":")[0], mon.rpartition(":")[2]) in hosts, hosts
    nodes = qemu_protocol_nodes(domain_of(driver, instance))
    assert any(n.get("driver") == "rbd" and n.get("pool") == pool
               and n.get("image") == f"{instance.uuid}_disk" for n in nodes), (name, nodes)


def test_rbd_store_image_boots_from_a_clone(rbd_driver: LibvirtDriver, store: RbdStore,
                                            spawned: Callable[..., Instance],
                                            ceph: dict[str, str], tmp_path: Any) -> None:
    image_id = str(uuid.uuid4())
    stored = store.add(image_id, io.BytesIO(MARKER))
    try:
        # no file: the manager does not fetch an image the driver clones
        image = Image(id=image_id, name="on-ceph", path=str(tmp_path / "never-fetched"),
                      disk_format="raw", location=stored.location)
        assert rbd_driver.needs_image_file(image) is False
        assert rbd_driver.needs_image_file(dataclasses.replace(image, disk_format="qcow2"))
        instance = spawned(image)
        name = f"{instance.uuid}_disk"
        with _pool_image(ceph, name) as disk:
            assert disk.parent_info() == (ceph["pool"], f"image-{image_id}", SNAPSHOT), \
                disk.parent_info()
            assert disk.size() == GiB, disk.size()  # the flavor's root size
            assert disk.read(0, len(MARKER)) == MARKER
        assert domain_of(rbd_driver, instance).isActive()
        # the cluster's space when it has statistics; the test cluster has no ceph-mgr, so it
        # reports 0 bytes and the local figure stays (0 GiB would stop all placement)
        total = json.loads(run("ceph", "-c", ceph["conf"], "df", "-f", "json"))["stats"][
            "total_bytes"]
        fs = os.statvfs(rbd_driver.instances_path)
        expected = total // GiB if total else fs.f_blocks * fs.f_frsize // GiB
        report = rbd_driver.get_available_resource()
        assert report["local_gb"] == expected > 0, (report, total)
        _check_domain_uses(rbd_driver, instance, ceph["pool"])
        with pytest.raises(exception.Conflict, match="1 clone"):
            store.delete(stored.location)  # the root disk depends on it
        rbd_driver.destroy(instance, [], [], True)
        assert rbd_driver.rbd_disks is not None
        assert not rbd_driver.rbd_disks.exists(instance.uuid)
    finally:
        store.delete(stored.location)  # no clone left: deletable


def test_file_image_is_imported_and_snapshots_read_it_back(
        rbd_driver: LibvirtDriver, spawned: Callable[..., Instance], ceph: dict[str, str],
        tmp_path: Any) -> None:
    raw = tmp_path / "marker.raw"
    raw.write_bytes(MARKER)
    base = tmp_path / "base.qcow2"
    run("qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(raw), str(base))
    image = Image(id=str(uuid.uuid4()), name="file", path=str(base), disk_format="qcow2")
    instance = spawned(image)
    with _pool_image(ceph, f"{instance.uuid}_disk") as disk:
        with pytest.raises(rbd.ImageNotFound):
            disk.parent_info()  # an import: no parent
        assert disk.size() == GiB, disk.size()
        assert disk.read(0, len(MARKER)) == MARKER  # qcow2 converted to raw
    _check_domain_uses(rbd_driver, instance, ceph["pool"])

    rbd_driver.power_off(instance)
    snapshot = tmp_path / "snapshot.qcow2"
    rbd_driver.snapshot(instance, str(snapshot))
    info = run("qemu-img", "info", "--output=json", str(snapshot))
    assert '"format": "qcow2"' in info and f'"virtual-size": {GiB}' in info, info
    assert rbd_driver.rbd_disks is not None
    compare = subprocess.run(
        ["qemu-img", "compare", "-f", "qcow2", "-F", "raw", str(snapshot),
         rbd_driver.rbd_disks.qemu_filename(f"{instance.uuid}_disk")],
        capture_output=True, text=True, check=False)
    assert compare.returncode == 0, compare.stdout + compare.stderr


def test_failed_spawn_leaves_no_rbd_image(rbd_driver: LibvirtDriver, ceph: dict[str, str],
                                          tmp_path: Any) -> None:
    base = tmp_path / "base.raw"
    base.write_bytes(MARKER)
    image = Image(id=str(uuid.uuid4()), name="file", path=str(base), disk_format="raw")
    # libvirt refuses the domain after the root disk was made (too many vCPUs)
    instance = Instance(uuid=str(uuid.uuid4()), name="too big", host=HOST,
                        flavor=Flavor("huge", vcpus=100000, ram_mb=128, disk_gb=1),
                        image=image)
    with pytest.raises(exception.StackcoreError):
        rbd_driver.spawn(instance, image, [], [])
    assert rbd_driver.rbd_disks is not None
    assert not rbd_driver.rbd_disks.exists(instance.uuid)
    assert not os.path.exists(os.path.join(rbd_driver.instances_path, instance.uuid))

    # a <uuid>_disk left by an earlier attempt (no domain has it) is never written over: the
    # spawn fails with Conflict and its cleanup removes the leftover, so a retry starts clean
    retry = dataclasses.replace(instance, flavor=Flavor("ok", vcpus=1, ram_mb=128, disk_gb=0))
    run("rbd", "-c", ceph["conf"], "create", f"{ceph['pool']}/{retry.uuid}_disk", "--size", "1")
    with pytest.raises(exception.Conflict, match="exists already"):
        rbd_driver.spawn(retry, image, [], [])
    assert not rbd_driver.rbd_disks.exists(retry.uuid)
    # destroy succeeds for anything the backend does not know, a non-uuid id included
    rbd_driver.destroy(dataclasses.replace(instance, uuid="not-a-uuid"), [], [], True)


def test_start_up_checks_the_pool_and_the_cluster(tmp_path: Any, ceph: dict[str, str]) -> None:
    with pytest.raises(exception.ConfigError, match=r"images_rbd_pool = 'no-such-pool'.*no such"):
        make_driver(tmp_path, images_type="rbd", images_rbd_pool="no-such-pool",
                    images_rbd_ceph_conf=ceph["conf"])
    # a cluster nobody answers for: a monitor address with no monitor behind it
    dead = tmp_path / "dead-ceph.conf"
    dead.write_text("[global]\nmon host = 127.0.0.1:9\nauth client required = none\n")
    with pytest.raises(exception.ConfigError, match=r"images_rbd_ceph_conf = .*cannot reach"):
        make_driver(tmp_path, images_type="rbd", images_rbd_pool=ceph["pool"],
                    images_rbd_ceph_conf=str(dead), rbd_connect_timeout=1)


def test_cloud_server_of_an_rbd_store_image_clones_it(tmp_path: Any,
                                                      ceph: dict[str, str]) -> None:
    """Through cloud.compute: the compute manager passes the image's store location to the
    driver, which clones instead of importing the host's cached copy - so the host's image
    cache does not fetch it at all (the driver says it needs no file); create_image of the
    server snapshots the RBD disk into cloud.image."""
    import stackcore

    with stackcore.Cloud(overrides=libvirt_cloud_overrides(
        tmp_path,
        {"images_type": "rbd", "images_rbd_pool": ceph["pool"],
         "images_rbd_ceph_conf": ceph["conf"]},
        image={"stores": ["rbd"], "default_store": "rbd"},
        image_store_rbd={"rbd_store_ceph_conf": ceph["conf"], "rbd_store_pool": ceph["pool"]},
    )) as cloud:
        # disk_gb 0: the root disk is the image's size, so the snapshot is 1 MiB, not 1 GiB
        cloud.compute.create_flavor("rbd.tiny", vcpus=1, ram_mb=128, disk_gb=0)
        image = cloud.image.create("raw-on-ceph", disk_format="raw",
                                   properties={"architecture": "x86_64"})
        content = MARKER.ljust(1024 * 1024, b"\0")
        image = cloud.image.upload(image.id, io.BytesIO(content))
        snapshot_id = None
        try:
            server = cloud.compute.create_server("on rbd", "rbd.tiny", image.id)
            try:
                assert server.status == "ACTIVE", server.fault
                with _pool_image(ceph, f"{server.id}_disk") as disk:
                    assert disk.parent_info() == (ceph["pool"], f"image-{image.id}", SNAPSHOT)
                manager = next(s.manager for s in cloud.services
                               if s.binary == "stackcore-compute")
                # a clone needs no copy on the host: the image cache did not fetch it
                assert not os.path.exists(manager.image_cache.path(image.id)), \
                    manager.image_cache.entries()

                # a snapshot (cold: suspended around the copy) reads the RBD disk back
                snapshot_id = cloud.compute.create_image(server.id, "rbd-snap").id

                def active() -> Any:
                    found = cloud.image.get(snapshot_id)
                    assert found.status in ("queued", "saving", "active"), found
                    return found if found.status == "active" else None

                snap = wait_until(active, 60, f"snapshot image {snapshot_id} active")
                after = wait_until(lambda: (s := cloud.compute.get_server(server.id))
                                   .task_state is None and s, 60, "snapshot task cleared")
                assert (after.status, after.fault) == ("ACTIVE", None)
                assert snap.disk_format == "raw", snap
                assert b"".join(cloud.image.download(snapshot_id)) == content
            finally:
                cloud.compute.delete_server(server.id)
            assert not manager.driver.rbd_disks.exists(server.id)
        finally:
            if snapshot_id is not None:
                cloud.image.delete(snapshot_id)
            cloud.image.delete(image.id)  # refused (Conflict) if a clone were left


def test_switched_back_to_qcow2_refuses_snapshots_and_says_what_destroy_leaves(
        rbd_driver: LibvirtDriver, spawned: Callable[..., Instance], tmp_path: Any,
        caplog: pytest.LogCaptureFixture) -> None:
    """A host whose images_type went back to qcow2 while an RBD-backed server exists: the
    driver reads the domain's disk, never takes the option's word for it."""
    base = tmp_path / "base.raw"
    base.write_bytes(MARKER)
    instance = spawned(Image(id=str(uuid.uuid4()), name="file", path=str(base),
                             disk_format="raw"))
    rbd_driver.power_off(instance)
    local = make_driver(tmp_path)  # same instances_path and libvirtd, images_type = qcow2
    try:
        with pytest.raises(exception.DriverError, match="images_type is not rbd any more"):
            local.snapshot(instance, str(tmp_path / "snap.raw"))
        assert not (tmp_path / "snap.raw").exists()
        caplog.set_level("WARNING", logger="stackcore_drivers.libvirt.driver")
        local.destroy(instance, [], [], True)
        assert f"{instance.uuid}_disk, is left in Ceph" in caplog.text, caplog.text
    finally:
        local.connection.close()
    assert rbd_driver.rbd_disks is not None
    assert rbd_driver.rbd_disks.exists(instance.uuid)  # the fixture's destroy removes it
