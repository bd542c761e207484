"""Boot from volume through the core API, on the fake hypervisor and the fake volume driver
(SQLite and PostgreSQL): the root disk is a volume (an existing one, or one made from the
image at boot), the host claims no local disk for it, it is deleted with the server when
asked, resize and cold migration move it with its root volume, a snapshot of it is a volume
snapshot behind an image of no bytes that boots a new server from that data, and every action
that needs a local root disk is refused naming the server (evacuation keeps the root volume:
tests/unit/test_compute_evacuation.py).

What is checked is what the fake backends hold (the fake hypervisor's domain, the fake volume
driver's volumes and exports) and the rows, not only the server's status."""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

import stackcore
from stackcore import exception
from stackcore.compute import fake as fake_hypervisor
from stackcore.compute import models
from stackcore.compute.manager import BINARY as COMPUTE_BINARY
from stackcore.compute.models import BlockDeviceMapping
from stackcore.db import models as db_models
from stackcore.volume import models as volume_models
from stackcore.volume.manager import BINARY as VOLUME_BINARY

IMAGE_BYTES = b"\xeb\x3c\x90stackcore-root" + bytes(range(256)) * 16


@pytest.fixture
def boot_image(tmp_path: Any) -> str:
    path = tmp_path / "root.raw"
    with open(path, "wb") as handle:
        handle.write(IMAGE_BYTES)
        handle.truncate(1024 * 1024)
    return str(path)


def _cloud(make_cloud: Callable[..., stackcore.Cloud], image_file: str, hosts: int = 1,
           **groups: dict[str, Any]) -> stackcore.Cloud:
    cloud = make_cloud(fake_hosts=hosts, overrides=dict(groups))
    cloud.compute.create_flavor("small", 1, 512, 1)
    cloud.compute.register_image("img", image_file, "raw", {"architecture": "x86_64"})
    return cloud


def _domain(cloud: stackcore.Cloud, host: str, server_id: str) -> Any:
    return fake_hypervisor.backend_for(cloud.conf.state_path, host).domains.get(server_id)


def _volume_driver(cloud: stackcore.Cloud) -> Any:
    return next(s.manager for s in cloud.services if s.binary == VOLUME_BINARY).driver


def _volume_bytes(cloud: stackcore.Cloud, volume_id: str, length: int) -> bytes:
    path = _volume_driver(cloud)._path(f"volume-{volume_id}")  # the fake's own file
    with open(path, "rb") as handle:
        return handle.read(length)


def _claimed_disk(cloud: stackcore.Cloud, server_id: str) -> list[int]:
    with cloud.db.read() as session:
        return list(session.execute(sa.select(models.Allocation.disk_gb).where(
            models.Allocation.instance_uuid == server_id)).scalars())


def _counts(cloud: stackcore.Cloud) -> tuple[int, int, int]:
    with cloud.db.read() as session:
        return (session.scalar(sa.select(sa.func.count()).select_from(models.Instance)) or 0,
                session.scalar(sa.select(sa.func.count()).select_from(volume_models.Volume))
                or 0,
                session.scalar(sa.select(sa.func.count()).select_from(BlockDeviceMapping)) or 0)


def test_boot_from_a_volume_made_from_the_image_and_deleted_with_the_server(
        make_cloud: Callable[..., stackcore.Cloud], boot_image: str) -> None:
    cloud = _cloud(make_cloud, boot_image)

    server = cloud.compute.create_server("bfv <&>", "small", "img", boot_volume={})

    assert server.status == "ACTIVE", server.fault
    assert server.image_id == "", "a volume-backed server's disk does not come from an image"
    [root] = cloud.compute.list_server_volumes(server.id)
    assert (root.device, root.status, root.root, root.delete_on_termination) == \
        ("/dev/vda", "attached", True, True), root
    volume = cloud.volume.get(root.volume_id)
    assert (volume.status, volume.size, [a.instance_uuid for a in volume.attachments]) == \
        ("in-use", 1, [server.id]), volume
    assert _volume_bytes(cloud, volume.id, len(IMAGE_BYTES)) == IMAGE_BYTES, \
        "the root volume does not hold the image"
    domain = _domain(cloud, server.host, server.id)
    assert sorted(domain.volumes) == ["/dev/vda"], domain.volumes
    assert domain.volumes["/dev/vda"]["data"]["volume_id"] == volume.id
    assert _claimed_disk(cloud, server.id) == [0], "a root volume claims no local disk"
    with pytest.raises(exception.Invalid, match="root disk") as refused:
        cloud.compute.detach_volume(server.id, volume.id)
    assert refused.value.field == "volume_id"

    cloud.compute.delete_server(server.id)

    assert _domain(cloud, server.host, server.id) is None
    with pytest.raises(exception.NotFound):
        cloud.volume.get(volume.id)
    assert _volume_driver(cloud)._exports().get(volume.id, []) == []
    cloud.compute.delete_server(server.id)  # idempotent


def test_boot_from_an_existing_volume_keeps_it_after_the_delete(
        make_cloud: Callable[..., stackcore.Cloud], boot_image: str) -> None:
    cloud = _cloud(make_cloud, boot_image)
    image_id = cloud.compute.get_image("img").id
    volume = cloud.volume.create(2, image_id=image_id)
    assert volume.status == "available", volume.fault

    server = cloud.compute.create_server("bfv", "small", boot_volume=volume.id)

    assert server.status == "ACTIVE", server.fault
    [root] = cloud.compute.list_server_volumes(server.id)
    assert (root.volume_id, root.device, root.root, root.delete_on_termination) == \
        (volume.id, "/dev/vda", True, False), root
    cloud.compute.delete_server(server.id)
    kept = cloud.volume.get(volume.id)
    assert (kept.status, kept.attachments) == ("available", ()), kept
    assert _volume_bytes(cloud, volume.id, len(IMAGE_BYTES)) == IMAGE_BYTES

    again = cloud.compute.create_server(
        "bfv-again", "small", boot_volume={"volume_id": volume.id,
                                           "delete_on_termination": True})
    assert again.status == "ACTIVE", again.fault
    cloud.compute.delete_server(again.id)
    with pytest.raises(exception.NotFound):
        cloud.volume.get(volume.id)


def test_the_default_size_grows_to_the_image_and_a_given_size_is_kept(
        make_cloud: Callable[..., stackcore.Cloud], tmp_path: Any) -> None:
    big = tmp_path / "big.raw"
    with open(big, "wb") as handle:
        handle.truncate(3 * 1024**3 // 2)  # 1.5 GiB, sparse: larger than the flavor's disk
    cloud = _cloud(make_cloud, str(big))

    server = cloud.compute.create_server("big", "small", "img", boot_volume={})
    assert server.status == "ACTIVE", server.fault
    [root] = cloud.compute.list_server_volumes(server.id)
    assert cloud.volume.get(root.volume_id).size == 2

    with pytest.raises(exception.Invalid) as refused:
        cloud.compute.create_server("small-root", "small", "img", boot_volume={"size_gb": 1})
    assert refused.value.field == "boot_volume.size_gb", refused.value
    assert _counts(cloud) == (1, 1, 1), "a refused request left rows behind"


def test_bad_boot_volume_requests_are_refused_and_nothing_is_made(
        make_cloud: Callable[..., stackcore.Cloud], boot_image: str) -> None:
    cloud = _cloud(make_cloud, boot_image)
    volume = cloud.volume.create(1)
    holder = cloud.compute.create_server("holder", "small", boot_volume=volume.id)
    assert holder.status == "ACTIVE", holder.fault
    spare = cloud.volume.create(1)
    before = _counts(cloud)

    cases: list[tuple[dict[str, Any], type[Exception], str]] = [
        ({}, exception.Invalid, "image"),
        ({"image": "img", "boot_volume": spare.id}, exception.Invalid, "image"),
        ({"boot_volume": {"size_gb": 1}}, exception.Invalid, "boot_volume"),
        ({"boot_volume": {"size_gb": 0}, "image": "img"}, exception.Invalid,
         "boot_volume.size_gb"),
        ({"boot_volume": {"volume_id": spare.id, "size_gb": 1}}, exception.Invalid,
         "boot_volume"),
        ({"boot_volume": "not-a-uuid"}, exception.Invalid, "boot_volume"),
        ({"boot_volume": spare.id, "volumes": [spare.id]}, exception.Invalid, "volumes"),
        ({"boot_volume": {"volume_type": "no-such-type"}, "image": "img"},
         exception.NotFound, ""),
    ]
    for kwargs, error, field in cases:
        with pytest.raises(error) as refused:
            cloud.compute.create_server("bad", "small", **kwargs)
        if field:
            assert getattr(refused.value, "field", None) == field, (kwargs, refused.value)
    with pytest.raises(exception.StackcoreError, match="in-use|reserved") as taken:
        cloud.compute.create_server("bad", "small", boot_volume=volume.id)
    assert volume.id in str(taken.value)
    assert _counts(cloud) == before, f"refused requests made rows: {before} -> {_counts(cloud)}"


def test_rescue_keeps_the_root_volume_and_defaults_to_its_image(
        make_cloud: Callable[..., stackcore.Cloud], boot_image: str) -> None:
    """Nova's stable rescue of a volume-backed server: the root volume stays attached; the
    default rescue image is the one the volume was made from, and a root volume made from
    no image needs one named (refused naming ``image``, nothing changed)."""
    cloud = _cloud(make_cloud, boot_image)
    server = cloud.compute.create_server("bfv", "small", "img", boot_volume={})
    assert server.status == "ACTIVE", server.fault
    [root] = cloud.compute.list_server_volumes(server.id)

    rescued = cloud.compute.rescue_server(server.id)

    assert (rescued.status, rescued.task_state, rescued.fault) == ("RESCUED", None, None)
    domain = _domain(cloud, rescued.host, server.id)
    assert domain.rescue_image == cloud.compute.get_image("img").id, domain
    assert [v.volume_id for v in cloud.compute.list_server_volumes(server.id)] == \
        [root.volume_id]
    assert cloud.volume.get(root.volume_id).status == "in-use"
    assert cloud.compute.unrescue_server(server.id).status == "ACTIVE"

    blank = cloud.volume.create(1)
    plain = cloud.compute.create_server("bfv-blank", "small", boot_volume=blank.id)
    assert plain.status == "ACTIVE", plain.fault
    with pytest.raises(exception.Invalid) as refused:
        cloud.compute.rescue_server(plain.id)
    assert refused.value.field == "image" and plain.id in str(refused.value), refused.value
    after = cloud.compute.get_server(plain.id)
    assert (after.status, after.task_state, after.fault) == ("ACTIVE", None, None), after
    assert cloud.compute.rescue_server(plain.id, "img").status == "RESCUED"


def _write_root(cloud: stackcore.Cloud, volume_id: str, data: bytes) -> None:
    """What the guest wrote on its root disk (the fake volume's own file)."""
    with open(_volume_driver(cloud)._path(f"volume-{volume_id}"), "r+b") as handle:
        handle.seek(4096)
        handle.write(data)


def _read_root(cloud: stackcore.Cloud, volume_id: str, length: int) -> bytes:
    with open(_volume_driver(cloud)._path(f"volume-{volume_id}"), "rb") as handle:
        handle.seek(4096)
        return handle.read(length)


def test_rebuild_of_a_volume_backed_server_writes_the_image_over_its_root_volume(
        make_cloud: Callable[..., stackcore.Cloud], boot_image: str, tmp_path: Any) -> None:
    cloud = _cloud(make_cloud, boot_image)
    other = tmp_path / "other.raw"
    other.write_bytes(b"\xeb\x3c\x90the other image" + bytes(8192))
    cloud.compute.register_image("other", str(other), "raw")
    server = cloud.compute.create_server("bfv", "small", "img", boot_volume={})
    assert server.status == "ACTIVE", server.fault
    [root] = cloud.compute.list_server_volumes(server.id)
    _write_root(cloud, root.volume_id, b"the guest's old data")

    rebuilt = cloud.compute.rebuild_server(server.id, "other")

    assert (rebuilt.status, rebuilt.task_state, rebuilt.image_id) == ("ACTIVE", None, ""), \
        (rebuilt, rebuilt.fault)
    [after] = cloud.compute.list_server_volumes(server.id)
    assert (after.volume_id, after.root, after.status) == (root.volume_id, True, "attached")
    assert _volume_bytes(cloud, root.volume_id, 18) == b"\xeb\x3c\x90the other image"
    assert _read_root(cloud, root.volume_id, 20) == bytes(20), "the old data is overwritten"
    volume = cloud.volume.get(root.volume_id)
    assert (volume.status, [a.instance_uuid for a in volume.attachments]) == \
        ("in-use", [server.id]), volume
    domain = _domain(cloud, rebuilt.host, server.id)
    assert domain.volumes["/dev/vda"]["data"]["volume_id"] == root.volume_id


def test_a_failed_reimage_fails_the_rebuild_with_the_volumes_reason(
        make_cloud: Callable[..., stackcore.Cloud], boot_image: str) -> None:
    cloud = _cloud(make_cloud, boot_image)
    server = cloud.compute.create_server("bfv", "small", "img", boot_volume={})
    [root] = cloud.compute.list_server_volumes(server.id)
    cloud.conf.set_override("fake_fail_on", ["copy_image_to_volume"], group="fake")

    failed = cloud.compute.rebuild_server(server.id, "img")

    assert failed.status == "ERROR", failed
    assert failed.fault.step == "reimage" and "injected failure" in failed.fault.message, \
        failed.fault
    volume = cloud.volume.get(root.volume_id)
    assert volume.status == "error" and volume.fault.step == "copy_image_to_volume", volume


def test_a_snapshot_of_a_volume_backed_server_boots_a_new_server_from_its_data(
        make_cloud: Callable[..., stackcore.Cloud], boot_image: str) -> None:
    cloud = _cloud(make_cloud, boot_image)
    server = cloud.compute.create_server("bfv", "small", "img", boot_volume={"size_gb": 2})
    assert server.status == "ACTIVE", server.fault
    [root] = cloud.compute.list_server_volumes(server.id)
    _write_root(cloud, root.volume_id, b"written by the guest")

    image = cloud.compute.create_image(server.id, "bfv-snap <&>", {"purpose": "golden"})

    assert (image.status, image.name) == ("active", "bfv-snap <&>"), image
    props = dict(image.properties)
    [snapshot] = cloud.volume.list_snapshots(volume_id=root.volume_id)
    assert (snapshot.status, snapshot.size) == ("available", 2), snapshot
    assert {k: props.get(k) for k in ("root_snapshot_id", "image_type", "instance_uuid",
                                      "purpose", "root_device_name", "root_volume_size_gb")} \
        == {"root_snapshot_id": snapshot.id, "image_type": "snapshot",
            "instance_uuid": server.id, "purpose": "golden", "root_device_name": "/dev/vda",
            "root_volume_size_gb": "2"}, props
    after = cloud.compute.get_server(server.id)
    assert (after.status, after.task_state) == ("ACTIVE", None), after
    _write_root(cloud, root.volume_id, b"changed after the snap")

    clone = cloud.compute.create_server("from-snap", "small", image.id)

    assert clone.status == "ACTIVE", clone.fault
    [clone_root] = cloud.compute.list_server_volumes(clone.id)
    assert (clone_root.root, clone_root.delete_on_termination) == (True, True), clone_root
    made = cloud.volume.get(clone_root.volume_id)
    assert made.size == 2 and made.id != root.volume_id, made
    assert _read_root(cloud, made.id, 20) == b"written by the guest", \
        "the new server's root does not hold the snapshot's data"
    cloud.compute.delete_server(clone.id)
    with pytest.raises(exception.NotFound):
        cloud.volume.get(made.id)
    # deleting the image leaves the volume snapshot (the project's, as in Nova)
    cloud.image.delete(image.id)
    assert cloud.volume.get_snapshot(snapshot.id).status == "available"


def test_a_failed_snapshot_of_a_volume_backed_server_keeps_nothing(
        make_cloud: Callable[..., stackcore.Cloud], boot_image: str) -> None:
    cloud = _cloud(make_cloud, boot_image, fake={"fake_fail_on": ["create_snapshot"]})
    server = cloud.compute.create_server("bfv", "small", "img", boot_volume={})
    assert server.status == "ACTIVE", server.fault
    with pytest.raises(exception.DriverError, match="injected failure"):
        cloud.compute.create_image(server.id, "snap")
    names = [i.name for i in cloud.image.list_images()]
    assert "snap" not in names, names
    assert [s.status for s in cloud.volume.list_snapshots()] == [], \
        cloud.volume.list_snapshots()
    after = cloud.compute.get_server(server.id)
    assert (after.status, after.task_state) == ("ACTIVE", None), after


def test_a_snapshot_image_whose_volume_snapshot_is_gone_is_refused(
        make_cloud: Callable[..., stackcore.Cloud], boot_image: str) -> None:
    cloud = _cloud(make_cloud, boot_image)
    server = cloud.compute.create_server("bfv", "small", "img", boot_volume={})
    image = cloud.compute.create_image(server.id, "snap")
    cloud.volume.delete_snapshot(image.properties["root_snapshot_id"])
    before = _counts(cloud)
    with pytest.raises(exception.InvalidState, match="is gone"):
        cloud.compute.create_server("late", "small", image.id)
    assert _counts(cloud) == before


def _attachment_hosts(cloud: stackcore.Cloud, volume_id: str) -> list[str]:
    return sorted(a.host for a in cloud.volume.get(volume_id).attachments)


def test_resize_and_cold_migration_move_the_server_with_its_root_volume(
        make_cloud: Callable[..., stackcore.Cloud], boot_image: str) -> None:
    cloud = _cloud(make_cloud, boot_image, hosts=2)
    # the flavor's disk is not the root of a volume-backed server: a smaller one is fine
    cloud.compute.create_flavor("large-no-disk", 2, 1024, 0)
    server = cloud.compute.create_server("bfv", "small", "img", boot_volume={})
    assert server.status == "ACTIVE", server.fault
    [root] = cloud.compute.list_server_volumes(server.id)
    source = server.host

    resized = cloud.compute.resize_server(server.id, "large-no-disk")

    assert (resized.status, resized.fault) == ("RESIZED", None), resized.fault
    target = resized.host
    assert target != source
    domain = _domain(cloud, target, server.id)
    assert sorted(domain.volumes) == ["/dev/vda"], domain.volumes
    assert domain.volumes["/dev/vda"]["data"]["volume_id"] == root.volume_id
    assert domain.flavor["vcpus"] == 2, domain.flavor
    assert _attachment_hosts(cloud, root.volume_id) == sorted([source, target])
    assert _claimed_disk(cloud, server.id) == [0]
    reverted = cloud.compute.revert_resize(server.id)
    assert (reverted.status, reverted.host, reverted.flavor.name) == \
        ("ACTIVE", source, "small"), reverted.fault
    assert _attachment_hosts(cloud, root.volume_id) == [source]
    assert _domain(cloud, target, server.id) is None

    migrated = cloud.compute.migrate_server(server.id)
    assert (migrated.status, migrated.host) == ("RESIZED", target), migrated.fault
    confirmed = cloud.compute.confirm_resize(server.id)
    assert (confirmed.status, confirmed.host) == ("ACTIVE", target), confirmed.fault
    assert _attachment_hosts(cloud, root.volume_id) == [target]
    assert _domain(cloud, source, server.id) is None
    assert _domain(cloud, target, server.id).volumes["/dev/vda"]["data"]["volume_id"] == \
        root.volume_id
    assert _volume_bytes(cloud, root.volume_id, len(IMAGE_BYTES)) == IMAGE_BYTES


def test_a_root_volume_that_fails_to_be_made_fails_the_build_and_goes_with_the_delete(
        make_cloud: Callable[..., stackcore.Cloud], boot_image: str) -> None:
    cloud = _cloud(make_cloud, boot_image, fake={"fake_fail_on": ["copy_image_to_volume"]})

    server = cloud.compute.create_server("doomed", "small", "img", boot_volume={})

    assert server.status == "ERROR"
    assert server.fault.step == "block_device_mapping", server.fault
    [root] = cloud.compute.list_server_volumes(server.id)
    assert root.volume_id in server.fault.message and "error" in server.fault.message, \
        server.fault
    assert _domain(cloud, "compute-1", server.id) is None
    cloud.compute.delete_server(server.id)
    with pytest.raises(exception.NotFound):
        cloud.volume.get(root.volume_id)
    assert _claimed_disk(cloud, server.id) == []


def test_a_driver_without_the_capability_fails_the_build_before_anything_is_made(
        make_cloud: Callable[..., stackcore.Cloud], boot_image: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    capabilities = dict(fake_hypervisor.FakeHypervisorDriver.capabilities)
    del capabilities["boot_from_volume"]
    monkeypatch.setattr(fake_hypervisor.FakeHypervisorDriver, "capabilities", capabilities)
    cloud = _cloud(make_cloud, boot_image)
    network = cloud.network.create_network("net", network_type="vxlan")
    cloud.network.create_subnet(network.id, "10.0.0.0/24")

    server = cloud.compute.create_server("bfv", "small", "img", boot_volume={},
                                         networks=[{"network_id": network.id}])

    assert server.status == "ERROR"
    assert (server.fault.step, server.fault.exc_class) == \
        ("boot_from_volume", "CapabilityNotSupported"), server.fault
    assert "boot_from_volume" in server.fault.message, server.fault
    assert cloud.network.list_ports(network_id=network.id) == [], "a port was made"
    [root] = cloud.compute.list_server_volumes(server.id)
    assert cloud.volume.get(root.volume_id).attachments == (), "the root volume was exported"
    cloud.compute.delete_server(server.id)
    with pytest.raises(exception.NotFound):
        cloud.volume.get(root.volume_id)


def test_a_delete_while_the_host_is_down_deletes_the_root_volume(
        make_cloud: Callable[..., stackcore.Cloud], boot_image: str) -> None:
    cloud = _cloud(make_cloud, boot_image,
                   DEFAULT={"report_interval": 3600, "service_down_time": 3 * 3600})
    server = cloud.compute.create_server("orphan", "small", "img", boot_volume={})
    assert server.status == "ACTIVE", server.fault
    [root] = cloud.compute.list_server_volumes(server.id)
    with cloud.db.transaction() as session:
        session.execute(sa.update(db_models.Service)
                        .where(db_models.Service.binary == COMPUTE_BINARY)
                        .values(last_seen_at=db_models.utcnow() - datetime.timedelta(days=1)))

    cloud.compute.delete_server(server.id)

    assert cloud.compute.get_server(server.id, include_deleted=True).status == "DELETED"
    with pytest.raises(exception.NotFound):
        cloud.volume.get(root.volume_id)
    assert not os.path.exists(_volume_driver(cloud)._path(f"volume-{root.volume_id}"))
