"""cloud.volume through the VolumeManager and the fake driver: the behaviour callers rely on."""

from __future__ import annotations

import concurrent.futures
import os

import pytest
import sqlalchemy as sa

from stackcore import exception
from stackcore.volume import models
from tests.conftest import wait_until
from tests.unit.volume.conftest import manager_of

GiB = 1024**3
CONNECTOR = {"host": "compute-1", "ip": "127.0.0.1", "initiator": "iqn.1993-08.org.debian:01:x"}


def objects_on(cloud, backend="fake"):
    return manager_of(cloud, backend).driver.list_backend_objects()


def test_full_lifecycle_keeps_data_and_sizes(vcloud) -> None:
    cloud = vcloud()
    vol = cloud.volume.create(1, name="data <&>", metadata={"k": "v"})
    assert vol.status == "available" and vol.host.endswith("@fake#fake")
    path = manager_of(cloud).driver._path(f"volume-{vol.id}")
    with open(path, "r+b") as handle:
        handle.write(b"payload")
    snap = cloud.volume.create_snapshot(vol.id, name="s")
    assert snap.status == "available" and snap.size == 1
    from_snap = cloud.volume.create(3, snapshot_id=snap.id)
    clone = cloud.volume.create(2, source_volume_id=vol.id)
    for made, size in ((from_snap, 3), (clone, 2)):
        assert made.status == "available"
        made_path = manager_of(cloud).driver._path(f"volume-{made.id}")
        assert os.path.getsize(made_path) == size * GiB
        with open(made_path, "rb") as handle:
            assert handle.read(7) == b"payload"
    extended = cloud.volume.extend(vol.id, 4)
    assert extended.size == 4 and extended.status == "available"
    assert os.path.getsize(path) == 4 * GiB
    pool = cloud.volume.list_pools()[0]
    assert pool.allocated_capacity_gb == 4 + 3 + 2
    assert pool.stats["allocated_capacity_gb"] == 9


def test_new_volume_never_shows_old_data(vcloud) -> None:
    cloud = vcloud()
    vol = cloud.volume.create(1)
    path = manager_of(cloud).driver._path(f"volume-{vol.id}")
    with open(path, "r+b") as handle:
        handle.write(b"secret" * 1000)
    cloud.volume.delete(vol.id)
    again = cloud.volume.create(1)
    with open(manager_of(cloud).driver._path(f"volume-{again.id}"), "rb") as handle:
        assert handle.read(6000) == b"\0" * 6000


def test_bad_input_persists_nothing(vcloud) -> None:
    cloud = vcloud()
    for kwargs, field in (({"size": 0}, "size"), ({"size": "1"}, "size"),
                          ({"size": 1, "name": "a\nb"}, "name"),
                          ({"size": 1, "metadata": {"k": 1}}, "metadata['k']")):
        with pytest.raises(exception.Invalid) as caught:
            cloud.volume.create(**kwargs)
        assert caught.value.field == field
    with pytest.raises(exception.NotFound):
        cloud.volume.create(1, volume_type="nope")
    with pytest.raises(exception.Invalid):
        cloud.volume.create_type("t", {"provisioning:type": "fat"})
    vol = cloud.volume.create(2)
    snap = cloud.volume.create_snapshot(vol.id)
    with pytest.raises(exception.Invalid) as caught:
        cloud.volume.create(1, snapshot_id=snap.id)
    assert "smaller than the snapshot" in str(caught.value)
    with pytest.raises(exception.Invalid):
        cloud.volume.create(1, source_volume_id=vol.id)
    with pytest.raises(exception.Invalid):
        cloud.volume.extend(vol.id, 2)
    with pytest.raises(exception.Invalid):
        cloud.volume.attach(vol.id, {"ip": "1.2.3.4"})
    assert [v.id for v in cloud.volume.list_volumes()] == [vol.id]


def test_delete_refused_with_snapshots_or_attachments_and_idempotent(vcloud) -> None:
    cloud = vcloud()
    vol = cloud.volume.create(1)
    snap = cloud.volume.create_snapshot(vol.id)
    with pytest.raises(exception.InvalidState, match="snapshot"):
        cloud.volume.delete(vol.id)
    cloud.volume.delete_snapshot(snap.id)
    cloud.volume.delete_snapshot(snap.id)  # again: fine
    info = cloud.volume.attach(vol.id, CONNECTOR)
    with pytest.raises(exception.InvalidState, match="in-use"):
        cloud.volume.delete(vol.id)
    cloud.volume.detach(vol.id, info["attachment_id"])
    # the backend lost the volume already: delete still succeeds
    os.unlink(manager_of(cloud).driver._path(f"volume-{vol.id}"))
    cloud.volume.delete(vol.id)
    cloud.volume.delete(vol.id)
    assert cloud.volume.get(vol.id, include_deleted=True).status == "deleted"
    assert objects_on(cloud) == []
    assert cloud.volume.list_pools()[0].allocated_capacity_gb == 0


def test_attach_detach_and_force_detach(vcloud) -> None:
    cloud = vcloud()
    vtype = cloud.volume.create_type("shared", {"multiattach": "<is> True"})
    vol = cloud.volume.create(1, volume_type=vtype.name)
    driver = manager_of(cloud).driver
    first = cloud.volume.attach(vol.id, CONNECTOR)
    assert first["driver_volume_type"] == "local"
    assert first["data"]["access_mode"] == "rw"
    second = cloud.volume.attach(vol.id, {**CONNECTOR, "host": "compute-2"})
    view = cloud.volume.get(vol.id)
    assert view.status == "in-use" and len(view.attachments) == 2
    from stackcore.volume.objects import Volume

    assert sorted(driver.connected_hosts(Volume(vol.id, 1))) == ["compute-1", "compute-2"]
    cloud.volume.detach(vol.id, first["attachment_id"])
    assert cloud.volume.get(vol.id).status == "in-use"
    assert "export:" + vol.id in objects_on(cloud)
    cloud.volume.detach(vol.id, force=True)
    assert cloud.volume.get(vol.id).status == "available"
    assert objects_on(cloud) == [f"volume-{vol.id}"]
    with pytest.raises(exception.NotFound):
        cloud.volume.detach(vol.id, second["attachment_id"])
    plain = cloud.volume.create(1)
    cloud.volume.attach(plain.id, CONNECTOR)
    with pytest.raises(exception.InvalidState, match="multiattach"):
        cloud.volume.attach(plain.id, CONNECTOR)


@pytest.mark.parametrize("method", ["create_export", "initialize_connection"])
def test_failed_attach_removes_export_and_restores_status(vcloud, method) -> None:
    cloud = vcloud(fake={"fake_fail_on": [method]})
    vol = cloud.volume.create(1)
    with pytest.raises(exception.DriverError):
        cloud.volume.attach(vol.id, CONNECTOR)
    view = cloud.volume.get(vol.id)
    assert view.status == "available" and view.attachments == ()
    assert objects_on(cloud) == [f"volume-{vol.id}"]
    assert cloud.volume.faults(vol.id)[-1].step == method


@pytest.mark.parametrize("method", ["create_volume", "create_cloned_volume",
                                    "create_volume_from_snapshot", "copy_image_to_volume"])
def test_failed_create_is_error_with_fault_and_nothing_left(vcloud, tmp_path, method) -> None:
    cloud = vcloud()
    src = cloud.volume.create(1)
    snap = cloud.volume.create_snapshot(src.id)
    image = tmp_path / "img.raw"
    image.write_bytes(b"x" * 4096)
    from stackcore.compute.api import ComputeAPI

    img = ComputeAPI(cloud.conf, cloud.db, cloud.transport).register_image("i", str(image))
    before = objects_on(cloud)
    cloud.conf.set_override("fake_fail_on", [method], group="fake")
    kwargs = {"create_cloned_volume": {"source_volume_id": src.id},
              "create_volume_from_snapshot": {"snapshot_id": snap.id},
              "copy_image_to_volume": {"image_id": img.id}}.get(method, {})
    vol = cloud.volume.create(1, **kwargs)
    assert vol.status == "error"
    assert vol.fault.step == method and "injected failure" in vol.fault.message
    assert objects_on(cloud) == before
    assert cloud.volume.list_pools()[0].allocated_capacity_gb == 1
    cloud.conf.clear_override("fake_fail_on", group="fake")
    cloud.volume.delete(vol.id)
    assert cloud.volume.get(vol.id, include_deleted=True).status == "deleted"


@pytest.mark.parametrize("point", ["clone:after_temp_snapshot", "clone:after_copy"])
def test_failure_inside_clone_cleans_temporary_objects(vcloud, point) -> None:
    cloud = vcloud()
    src = cloud.volume.create(1)
    before = objects_on(cloud)
    manager_of(cloud).driver.arm_fault(point)
    vol = cloud.volume.create(1, source_volume_id=src.id)
    assert vol.status == "error" and point in vol.fault.message
    assert objects_on(cloud) == before


def test_failed_extend_and_snapshot(vcloud) -> None:
    cloud = vcloud(fake={"fake_fail_on": ["extend_volume", "create_snapshot"]})
    vol = cloud.volume.create(1)
    view = cloud.volume.extend(vol.id, 3)
    assert view.status == "error_extending" and view.size == 1
    assert view.fault.step == "extend_volume"
    assert cloud.volume.list_pools()[0].allocated_capacity_gb == 1
    fresh = cloud.volume.create(1)
    snap = cloud.volume.create_snapshot(fresh.id)
    assert snap.status == "error" and snap.fault.step == "create_snapshot"
    assert f"snapshot-{snap.id}" not in objects_on(cloud)


def test_an_extend_the_driver_refuses_keeps_the_attached_volume_in_use(
        vcloud, monkeypatch) -> None:
    """A driver refusing (InvalidState, nothing changed: the volume is attached and it cannot
    grow it under an open hypervisor) - the caller gets the refusal, the volume keeps its
    status and size (no fault: nothing failed), the claim is given back. The driver was told
    the volume is attached."""
    cloud = vcloud()
    vol = cloud.volume.create(1)
    info = cloud.volume.attach(vol.id, CONNECTOR)
    driver = manager_of(cloud).driver
    seen: list[bool] = []

    def refuse(volume, new_size):  # type: ignore[no-untyped-def]
        seen.append(volume.attached)
        raise exception.InvalidState(f"volume {volume.id} cannot grow while attached",
                                     state="in-use")

    monkeypatch.setattr(driver, "extend_volume", refuse)
    with pytest.raises(exception.InvalidState) as caught:
        cloud.volume.extend(vol.id, 2)
    assert "cannot grow while attached" in str(caught.value), str(caught.value)
    assert seen == [True], f"extend_volume saw attached={seen}"
    view = cloud.volume.get(vol.id)
    assert (view.status, view.size) == ("in-use", 1), (view.status, view.size)
    assert view.fault is None, view.fault
    assert cloud.volume.list_pools()[0].allocated_capacity_gb == 1
    monkeypatch.undo()
    cloud.volume.detach(vol.id, info["attachment_id"])
    grown = cloud.volume.extend(vol.id, 2)
    assert (grown.status, grown.size) == ("available", 2), (grown.status, grown.size)


def test_volume_types_map_to_backends_and_zones(vcloud) -> None:
    cloud = vcloud(volume={"enabled_backends": ["fast", "slow"]},
                   overrides={"slow": {"backend_availability_zone": "az2",
                                       "volume_backend_name": "SLOW"}})
    fast_t = cloud.volume.create_type("fast", {"volume_backend_name": "fast"})
    slow_t = cloud.volume.create_type("slow", {"volume_backend_name": "SLOW"})
    assert cloud.volume.create(1, volume_type=fast_t.id).host.endswith("@fast#fast")
    slow = cloud.volume.create(1, volume_type=slow_t.name)
    assert slow.host.endswith("@slow#SLOW") and slow.availability_zone == "az2"
    assert cloud.volume.create(1, availability_zone="az2").host.endswith("@slow#SLOW")
    with pytest.raises(exception.NoValidHost) as caught:
        cloud.volume.create(1, volume_type="fast", availability_zone="az2")
    assert any("CapabilitiesFilter" in r for r in caught.value.reasons)
    none = cloud.volume.create_type("none", {"volume_backend_name": "nope"})
    with pytest.raises(exception.NoValidHost):
        cloud.volume.create(1, volume_type=none.name)
    with pytest.raises(exception.Conflict):
        cloud.volume.delete_type("fast")
    assert {v.status for v in cloud.volume.list_volumes()} == {"available"}


def test_capacity_claims_never_overcommit_under_concurrency(vcloud) -> None:
    cloud = vcloud(fake={"fake_total_capacity_gb": "10", "max_over_subscription_ratio": "1.0"})
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: _try_create(cloud), range(16)))
    made = [r for r in results if r == "ok"]
    assert len(made) == 5
    assert all(r in ("ok", "NoValidHost") for r in results)
    pool_view = cloud.volume.list_pools()[0]
    assert pool_view.allocated_capacity_gb == 10
    with pytest.raises(exception.NoValidHost) as caught:
        cloud.volume.create(1)
    assert "virtual free is 0.00 GiB" in str(caught.value)


def _try_create(cloud) -> str:
    try:
        cloud.volume.create(2)
    except exception.NoValidHost:
        return "NoValidHost"
    return "ok"


@pytest.mark.parametrize("keyword", ["infinite", "unknown"])
def test_keyword_capacity_places_without_limit(vcloud, keyword) -> None:
    cloud = vcloud(fake={"fake_total_capacity_gb": keyword})
    assert cloud.volume.create(5000).status == "available"
    cloud2 = vcloud(fake={"fake_total_capacity_gb": keyword, "reserved_percentage": 5})
    with pytest.raises(exception.NoValidHost):
        cloud2.volume.create(1)


def test_bad_stats_report_stops_placement(vcloud) -> None:
    cloud = vcloud()
    manager = manager_of(cloud)
    cloud.conf.set_override("fake_fail_on", ["get_volume_stats"], group="fake")
    result = manager.publish_stats()
    assert result["reporting"] is False and "injected" in result["report_error"]
    with pytest.raises(exception.NoValidHost):
        cloud.volume.create(1)
    cloud.conf.clear_override("fake_fail_on", group="fake")
    manager.publish_stats()
    assert cloud.volume.create(1).status == "available"


def _scratch_files(cloud) -> list[str]:
    """What uploads left in the volume hosts' scratch directory (<state_path>/images)."""
    scratch = os.path.join(cloud.conf.state_path, "images")
    return sorted(os.listdir(scratch)) if os.path.isdir(scratch) else []


def test_upload_to_image_and_back(vcloud) -> None:
    """The volume becomes an active image of the default (file) store through cloud.image:
    size and sha256 of the stored bytes, source_volume_id; a volume from it has the data;
    the driver's temporary file is gone."""
    cloud = vcloud()
    vol = cloud.volume.create(1)
    with open(manager_of(cloud).driver._path(f"volume-{vol.id}"), "r+b") as handle:
        handle.write(b"bootable")
    image = cloud.volume.upload_to_image(vol.id, "from-volume")
    assert image["size_bytes"] == GiB
    stored = cloud.image.get(image["id"])
    assert (stored.status, stored.store, stored.disk_format, stored.size_bytes) == (
        "active", "file", "raw", GiB), stored
    assert stored.properties["source_volume_id"] == vol.id, stored.properties
    assert image["sha256"] == stored.sha256 and image["store"] == "file", image
    assert image["path"] and os.path.isfile(image["path"]), image  # the file store's file
    assert cloud.volume.get(vol.id).status == "available"
    assert _scratch_files(cloud) == [], "the upload's temporary file was left"
    copy = cloud.volume.create(1, image_id=image["id"])
    assert copy.status == "available" and copy.image_id == image["id"]
    with open(manager_of(cloud).driver._path(f"volume-{copy.id}"), "rb") as handle:
        assert handle.read(8) == b"bootable"
    with pytest.raises(exception.Invalid):
        cloud.volume.upload_to_image(vol.id, "x", disk_format="vmdk")
    with pytest.raises(exception.Invalid, match="store"):
        cloud.volume.upload_to_image(vol.id, "x", store="nosuch")
    assert [i.name for i in cloud.image.list_images()] == ["from-volume"], "a refusal kept one"


def test_upload_to_image_qcow2_is_inspected_and_active(vcloud) -> None:
    cloud = vcloud()
    vol = cloud.volume.create(1)
    image = cloud.volume.upload_to_image(vol.id, "q", disk_format="qcow2")
    stored = cloud.image.get(image["id"])
    assert (stored.status, stored.disk_format, stored.virtual_size) == (
        "active", "qcow2", GiB), stored
    assert stored.size_bytes < GiB, stored  # a qcow2 of an empty volume is small


def test_failed_upload_leaves_no_image_and_no_file(vcloud) -> None:
    """The driver fails: no image (not even queued), a fault on the volume, its status back,
    no temporary file. Then the store refuses the bytes (over the image size cap): the same."""
    cloud = vcloud(fake={"fake_fail_on": ["copy_volume_to_image"]})
    vol = cloud.volume.create(1)
    with pytest.raises(exception.DriverError, match="injected failure"):
        cloud.volume.upload_to_image(vol.id, "broken")
    assert cloud.image.list_images() == []
    assert cloud.volume.get(vol.id).status == "available"
    faults = cloud.volume.faults(vol.id)
    assert [f.step for f in faults] == ["copy_volume_to_image"], faults
    assert "injected failure" in faults[-1].message, faults
    assert _scratch_files(cloud) == []

    cloud.conf.set_override("fake_fail_on", [], group="fake")
    cloud.conf.set_override("image_size_cap", GiB - 1, group="image")
    # (the store's SizeLimitExceeded crosses RPC as its base, Invalid, naming the size)
    with pytest.raises(exception.Invalid, match="image size limit"):
        cloud.volume.upload_to_image(vol.id, "too-big")
    assert cloud.image.list_images() == []
    assert cloud.volume.get(vol.id).status == "available"
    faults = cloud.volume.faults(vol.id)
    assert faults[-1].step == "upload" and "size" in faults[-1].message, faults
    assert _scratch_files(cloud) == []


def test_restart_reconciles_transient_states(vcloud, tmp_path) -> None:
    state = {"DEFAULT": {"state_path": str(tmp_path / "state")}}
    cloud = vcloud(overrides=dict(state))
    creating = cloud.volume.create(1)
    deleting = cloud.volume.create(1)
    attached = cloud.volume.create(1)
    cloud.volume.attach(attached.id, CONNECTOR)
    snap = cloud.volume.create_snapshot(creating.id)
    with cloud.db.transaction() as session:
        for vid, status in ((creating.id, "creating"), (deleting.id, "deleting")):
            session.execute(sa.update(models.Volume).where(models.Volume.id == vid)
                            .values(status=status))
        session.execute(sa.update(models.Snapshot).where(models.Snapshot.id == snap.id)
                        .values(status="creating"))
    # the target lost its exports (daemon restart)
    os.unlink(manager_of(cloud).driver._exports_path())
    cloud.close()
    again = vcloud(overrides=dict(state))
    view = again.volume.get(creating.id)
    assert view.status == "error" and "interrupted" in view.fault.message
    assert again.volume.get(snap.id if False else creating.id).status == "error"
    assert again.volume.get_snapshot(snap.id).status == "error"
    assert again.volume.get(deleting.id, include_deleted=True).status == "deleted"
    assert again.volume.get(attached.id).status == "in-use"
    assert f"export:{attached.id}" in objects_on(again)
    names = objects_on(again)
    assert f"volume-{creating.id}" not in names and f"volume-{deleting.id}" not in names
    transient = {"creating", "deleting", "attaching", "detaching", "extending", "downloading"}
    assert not {v.status for v in again.volume.list_volumes()} & transient


def test_contract_refuses_broken_drivers() -> None:
    from stackcore.volume.driver import CONTRACT
    from stackcore.volume.fake import FakeVolumeDriver

    assert CONTRACT.problems(FakeVolumeDriver) == []

    class NoClone(FakeVolumeDriver):
        create_cloned_volume = None  # type: ignore[assignment]

    class BadSig(FakeVolumeDriver):
        def extend_volume(self, volume):  # type: ignore[override]
            pass

    class BadProtocol(FakeVolumeDriver):
        STORAGE_PROTOCOL = "iscsi"

    assert any("create_cloned_volume" in p for p in CONTRACT.problems(NoClone))
    assert any("new_size" in p for p in CONTRACT.problems(BadSig))
    assert any("STORAGE_PROTOCOL" in p for p in CONTRACT.problems(BadProtocol))


def test_restart_discards_an_interrupted_upload(vcloud, tmp_path) -> None:
    """A volume left uploading (the service died mid-upload) is available again after a
    restart, and the image it was filling (queued, never active) is deleted; other queued
    images stay."""
    state = {"DEFAULT": {"state_path": str(tmp_path / "state")}}
    cloud = vcloud(overrides=dict(state))
    vol = cloud.volume.create(1)
    filling = cloud.image.create("half", properties={"source_volume_id": vol.id})
    other = cloud.image.create("someone-elses")
    with cloud.db.transaction() as session:
        session.execute(sa.update(models.Volume).where(models.Volume.id == vol.id)
                        .values(status="uploading"))
    cloud.close()
    again = vcloud(overrides=dict(state))
    assert again.volume.get(vol.id).status == "available"
    with pytest.raises(exception.NotFound):
        again.image.get(filling.id)
    assert again.image.get(other.id).status == "queued"


def test_upload_rpc_1_0_form_still_served(vcloud) -> None:
    """A caller of the previous release (volume RPC API 1.0) names the image instead of
    creating it: served for one release with a DeprecationWarning, the image created in the
    volume's project and made active the same way."""
    cloud = vcloud()
    vol = cloud.volume.create(1)
    with pytest.warns(DeprecationWarning, match="1.0 form"):
        result = manager_of(cloud).copy_volume_to_image(vol.id, image_name="old-caller",
                                                        disk_format="raw")
    image = cloud.image.get(result["id"])
    with cloud.db.read() as session:
        owner = session.get(models.Volume, vol.id).project_id
    assert (image.name, image.status, image.project_id, image.size_bytes) == (
        "old-caller", "active", owner, GiB), image
    assert cloud.volume.get(vol.id).status == "available"


def _cloning(driver, answer) -> list:
    """Make the fake driver declare clone_image and answer with ``answer(volume, image)``;
    returns the images it was offered."""
    offered = []

    def clone_image(volume, image):
        offered.append(image)
        return answer(volume, image)

    driver.capabilities = {**type(driver).capabilities, "clone_image": True}
    driver.clone_image = clone_image
    return offered


def test_volume_from_a_store_image_is_offered_to_clone_image(vcloud) -> None:
    """A raw store image is offered to clone_image (instead of create + copy); a clone keeps
    its image from deletion (Conflict, image unchanged) until the volume is deleted; (False,
    None) falls back to the copy; a malformed answer is a contract error: error + fault,
    nothing left."""
    cloud = vcloud()
    driver = manager_of(cloud).driver
    data = b"\x5a" * 4096 + bytes(4096)
    image = cloud.image.upload(cloud.image.create("raw-img").id, data)

    def clone(volume, offered):
        driver.create_volume(volume)
        with open(driver._path(volume.name), "r+b") as handle:
            handle.write(b"cloned!")
        return True, None

    offered = _cloning(driver, clone)
    vol = cloud.volume.create(1, image_id=image.id)
    assert vol.status == "available", cloud.volume.faults(vol.id)
    assert [(o.id, o.store, o.disk_format, o.size) for o in offered] == [
        (image.id, "file", "raw", len(data))], offered
    with open(driver._path(f"volume-{vol.id}"), "rb") as handle:
        assert handle.read(7) == b"cloned!", "the volume was copied, not cloned"
    with pytest.raises(exception.Conflict, match="copy-on-write volume"):
        cloud.image.delete(image.id)
    assert cloud.image.get(image.id).status == "active"
    cloud.volume.delete(vol.id)
    assert cloud.image.get(image.id).status == "active"

    _cloning(driver, lambda volume, offered: (False, None))
    copied = cloud.volume.create(1, image_id=image.id)
    assert copied.status == "available", cloud.volume.faults(copied.id)
    with open(driver._path(f"volume-{copied.id}"), "rb") as handle:
        assert handle.read(4096) == b"\x5a" * 4096, "the fallback did not copy the image"

    _cloning(driver, lambda volume, offered: "yes")
    broken = cloud.volume.create(1, image_id=image.id)
    assert broken.status == "error"
    faults = cloud.volume.faults(broken.id)
    assert faults[-1].step == "clone_image" and "(cloned, model update)" in \
        faults[-1].message, faults
    assert f"volume-{broken.id}" not in objects_on(cloud)
    cloud.volume.delete(copied.id)
    cloud.volume.delete(broken.id)
    cloud.image.delete(image.id)  # nothing depends on it any more


def test_a_volume_left_creating_with_no_backend_is_removed(vcloud) -> None:
    """volume.create cut off between its row and the claim (its process gone, or the
    database gone while it removed the row of a failed placement): once left so for
    rpc_call_timeout the volume service removes the row, as the API would have; a
    placement that finds its row gone rolls its claim back instead of leaking it."""
    import uuid

    from stackcore.volume.placement import claims

    cloud = vcloud(overrides={"DEFAULT": {"rpc_call_timeout": 1}})
    manager = manager_of(cloud)
    placed = cloud.volume.create(1)
    orphan = str(uuid.uuid4())
    with cloud.db.transaction() as session:
        session.add(models.Volume(project_id="admin", user_id="admin", id=orphan, size=1,
                                  status="creating"))
    assert orphan not in manager.reconcile_orphans(), "first seen now: not an orphan yet"
    wait_until(lambda: orphan in manager.reconcile_orphans(), 30,
               "the orphan pass taking the unplaced volume")
    with cloud.db.transaction() as session:
        assert session.get(models.Volume, orphan) is None, "the unplaced row is still there"
    assert [v.id for v in cloud.volume.list_volumes()] == [placed.id]

    def allocated() -> int:
        with cloud.db.transaction() as session:
            return session.execute(sa.select(sa.func.sum(
                models.VolumePool.allocated_capacity_gb))).scalar_one()

    before = allocated()
    host, _, pool = placed.host.partition("#")
    with pytest.raises(exception.NotFound, match=orphan):
        with cloud.db.transaction() as session:
            claims.claim(session, host, pool, orphan, 1, True)
    assert allocated() == before, f"a claim for a removed volume leaked: {before} -> " \
        f"{allocated()} GiB"
