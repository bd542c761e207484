"""cloud.volume.manage / unmanage / list_manageable (Cinder's manage existing) through the
VolumeManager and the fake driver: data kept both ways, quota, refusals that persist nothing,
failures that leave the backend object as it was, restart reconciliation."""

from __future__ import annotations

import os

import pytest
import sqlalchemy as sa

from stackcore import exception
from stackcore.project.context import RequestContext
from stackcore.volume import models
from tests.unit.volume.conftest import manager_of

GiB = 1024**3
CONNECTOR = {"host": "compute-1", "ip": "127.0.0.1", "initiator": "iqn.1993-08.org.debian:01:x"}
#: the fake pool, whatever this machine is called
POOL = "{pool}"
#: a name a shell would act on: must be handled as a plain file name
ODD = "legacy <disk> & 'x' \"y\" $HOME;"


def _host(cloud) -> str:
    return cloud.volume.list_pools()[0].name


def _put(cloud, name: str, size: int, payload: bytes = b"") -> str:
    """A file on the fake backend nobody manages (what an operator brings in)."""
    path = manager_of(cloud).driver._path(name)
    with open(path, "wb") as handle:
        handle.truncate(size)
        handle.write(payload)
    return path


def _read(path: str, length: int) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(length)


def _rows(cloud) -> list[tuple[str, str]]:
    with cloud.db.read() as session:
        return [tuple(r) for r in session.execute(
            sa.select(models.Volume.id, models.Volume.status)).all()]


def _manageable(cloud, name: str) -> dict | None:
    found = [e for e in cloud.volume.list_manageable(_host(cloud))
             if e["reference"] == {"source-name": name}]
    return found[0] if found else None


def test_unmanage_then_manage_round_trip_keeps_the_data(vcloud) -> None:
    cloud = vcloud()
    host = _host(cloud)
    vol = cloud.volume.create(2, name="a")
    driver = manager_of(cloud).driver
    with open(driver._path(f"volume-{vol.id}"), "r+b") as handle:
        handle.write(b"payload of a")
    assert cloud.volume.list_pools()[0].allocated_capacity_gb == 2
    cloud.volume.unmanage(vol.id)
    gone = cloud.volume.get(vol.id, include_deleted=True)
    assert gone.status == "deleted", gone
    assert f"volume-{vol.id}" in driver.list_backend_objects(), "the object stays"
    assert cloud.volume.list_pools()[0].allocated_capacity_gb == 0
    listed = _manageable(cloud, f"volume-{vol.id}")
    assert listed == {"reference": {"source-name": f"volume-{vol.id}"}, "size": 2,
                      "safe_to_manage": True, "reason_not_safe": None, "extra_info": {}}, listed

    again = cloud.volume.manage(host, {"source-name": f"volume-{vol.id}"}, name="b",
                                metadata={"k": "v"})
    assert (again.status, again.size, again.name, again.host) == \
        ("available", 2, "b", host), again
    assert dict(again.metadata) == {"k": "v"}
    names = driver.list_backend_objects()
    assert f"volume-{again.id}" in names and f"volume-{vol.id}" not in names, names
    assert _read(driver._path(f"volume-{again.id}"), 12) == b"payload of a"
    assert cloud.volume.list_pools()[0].allocated_capacity_gb == 2
    managed = _manageable(cloud, f"volume-{again.id}")
    assert managed is not None and managed["safe_to_manage"] is False and \
        again.id in managed["reason_not_safe"], managed

    # the adopted volume behaves like any other
    info = cloud.volume.attach(again.id, CONNECTOR)
    assert info["data"]["device_path"] == driver._path(f"volume-{again.id}")
    cloud.volume.detach(again.id, info["attachment_id"])
    snap = cloud.volume.create_snapshot(again.id)
    assert snap.status == "available", snap
    cloud.volume.delete_snapshot(snap.id)
    assert cloud.volume.extend(again.id, 3).size == 3
    cloud.volume.delete(again.id)
    assert driver.list_backend_objects() == []


def test_a_foreign_file_is_renamed_and_rounded_up(vcloud) -> None:
    cloud = vcloud()
    path = _put(cloud, ODD, GiB + 1, b"legacy data")
    assert _manageable(cloud, ODD)["size"] == 2
    vol = cloud.volume.manage(_host(cloud), {"source-name": ODD})
    assert (vol.status, vol.size) == ("available", 2), vol
    assert not os.path.exists(path)
    adopted = manager_of(cloud).driver._path(f"volume-{vol.id}")
    assert os.path.getsize(adopted) == 2 * GiB, "grown to the rounded-up size"
    assert _read(adopted, 11) == b"legacy data"


def test_quota_counts_the_managed_size(vcloud) -> None:
    cloud = vcloud(overrides={"quota": {"gigabytes": 3}})
    cloud.volume.create(2)
    _put(cloud, "big", 2 * GiB)
    with pytest.raises(exception.OverQuota, match="gigabytes of project admin: requested 2, "
                       "2 in use, limit 3"):
        cloud.volume.manage(_host(cloud), {"source-name": "big"})
    assert os.path.exists(manager_of(cloud).driver._path("big")), "left where it was"
    assert [s for _, s in _rows(cloud)] == ["available"]
    _put(cloud, "small", GiB)
    assert cloud.volume.manage(_host(cloud), {"source-name": "small"}).status == "available"


@pytest.mark.parametrize(("host", "ref", "error", "field"), [
    ("nowhere@fake#fake", {"source-name": "legacy"}, exception.NotFound, None),
    ("{backend}#other", {"source-name": "legacy"}, exception.NotFound, None),
    (POOL, {"source-id": "legacy"}, exception.Invalid, "existing_ref"),
    (POOL, {"source-name": ""}, exception.Invalid, "existing_ref.source-name"),
    (POOL, {"source-name": "sub/legacy"}, exception.Invalid, "existing_ref"),
    (POOL, {"source-name": ".hidden"}, exception.Invalid, "existing_ref"),
    (POOL, {"source-name": "exports.json"}, exception.Invalid, "existing_ref"),
    (POOL, {"source-name": "nothing-here"}, exception.NotFound, None),
    (POOL, {"source-name": ODD}, exception.NotFound, None),
])
def test_refusals_persist_nothing(vcloud, host, ref, error, field) -> None:
    cloud = vcloud()
    pool = _host(cloud)
    path = _put(cloud, "legacy", GiB, b"keep me")
    with pytest.raises(error) as caught:
        cloud.volume.manage(host.format(pool=pool, backend=pool.partition("#")[0]), ref)
    if field is not None:
        assert caught.value.field == field, caught.value
    assert _rows(cloud) == []
    assert _read(path, 7) == b"keep me"
    assert manager_of(cloud).driver.list_backend_objects() == ["legacy"]


def test_the_object_of_a_managed_volume_is_refused(vcloud) -> None:
    cloud = vcloud()
    vol = cloud.volume.create(1)
    backend = _host(cloud).partition("#")[0]
    with pytest.raises(exception.Invalid, match=f"volume-{vol.id} is the object of volume "
                       f"{vol.id} of {backend}, managed already"):
        cloud.volume.manage(_host(cloud), {"source-name": f"volume-{vol.id}"})
    snap = cloud.volume.create_snapshot(vol.id)
    with pytest.raises(exception.Invalid, match="own snapshots"):
        cloud.volume.manage(_host(cloud), {"source-name": f"snapshot-{snap.id}"})
    assert [i for i, _ in _rows(cloud)] == [vol.id]


def test_non_admins_may_not_manage_unmanage_or_list(vcloud) -> None:
    cloud = vcloud()
    _put(cloud, "legacy", GiB)
    pool = _host(cloud)
    owner = cloud.as_project(RequestContext("u1", "p1", ["member"]))
    vol = owner.volume.create(1)
    with pytest.raises(exception.Forbidden, match="volume:manage"):
        owner.volume.manage(pool, {"source-name": "legacy"})
    with pytest.raises(exception.Forbidden, match="volume:unmanage"):
        owner.volume.unmanage(vol.id)
    with pytest.raises(exception.Forbidden, match="volume:list_manageable"):
        owner.volume.list_manageable(pool)
    assert [i for i, _ in _rows(cloud)] == [vol.id]
    assert owner.volume.get(vol.id).status == "available"


def test_unmanage_refused_with_snapshots_attachments_or_transient_states(vcloud) -> None:
    cloud = vcloud()
    vol = cloud.volume.create(1)
    snap = cloud.volume.create_snapshot(vol.id)
    with pytest.raises(exception.InvalidState, match="1 snapshot"):
        cloud.volume.unmanage(vol.id)
    cloud.volume.delete_snapshot(snap.id)
    info = cloud.volume.attach(vol.id, CONNECTOR)
    with pytest.raises(exception.InvalidState, match="while it is in-use"):
        cloud.volume.unmanage(vol.id)
    cloud.volume.detach(vol.id, info["attachment_id"])
    with cloud.db.transaction() as session:
        session.execute(sa.update(models.Volume).where(models.Volume.id == vol.id)
                        .values(status="extending"))
    with pytest.raises(exception.InvalidState, match="while it is extending"):
        cloud.volume.unmanage(vol.id)
    with cloud.db.transaction() as session:
        session.execute(sa.update(models.Volume).where(models.Volume.id == vol.id)
                        .values(status="error"))
    cloud.volume.unmanage(vol.id)  # error is allowed
    assert cloud.volume.get(vol.id, include_deleted=True).status == "deleted"
    assert objects_named(cloud) == [f"volume-{vol.id}"]


def objects_named(cloud) -> list[str]:
    return manager_of(cloud).driver.list_backend_objects()


@pytest.mark.parametrize("method", ["manage_existing", "unmanage"])
def test_a_failing_driver_leaves_the_object_as_it_was(vcloud, method) -> None:
    cloud = vcloud(fake={"fake_fail_on": [method]})
    if method == "manage_existing":
        path = _put(cloud, "legacy", GiB, b"keep me")
        vol = cloud.volume.manage(_host(cloud), {"source-name": "legacy"})
        assert vol.status == "error_managing", vol
        assert vol.fault is not None and vol.fault.step == "manage_existing" and \
            "injected failure in fake manage_existing" in vol.fault.message, vol.fault
        assert _read(path, 7) == b"keep me"
        assert objects_named(cloud) == ["legacy"]
        assert cloud.volume.list_pools()[0].allocated_capacity_gb == 0
        cloud.volume.delete(vol.id)  # the backend is not touched
        assert cloud.volume.get(vol.id, include_deleted=True).status == "deleted"
        assert objects_named(cloud) == ["legacy"]
        return
    vol = cloud.volume.create(1)
    with pytest.raises(exception.DriverError, match="injected failure in fake unmanage"):
        cloud.volume.unmanage(vol.id)
    view = cloud.volume.get(vol.id)
    assert view.status == "available", view
    assert cloud.volume.faults(vol.id)[-1].step == "unmanage"
    assert cloud.volume.list_pools()[0].allocated_capacity_gb == 1


def test_restart_reconciles_an_interrupted_manage(vcloud, tmp_path) -> None:
    state = {"DEFAULT": {"state_path": str(tmp_path / "state")}}
    cloud = vcloud(overrides=dict(state))
    path = _put(cloud, "legacy", GiB, b"keep me")
    vol = cloud.volume.manage(_host(cloud), {"source-name": "legacy"}, wait=False)
    cloud.volume.wait(vol.id)
    # as if the service died between the API's row and the driver's rename
    with cloud.db.transaction() as session:
        session.execute(sa.update(models.Volume).where(models.Volume.id == vol.id)
                        .values(status="managing", allocated_gb=0))
    os.rename(manager_of(cloud).driver._path(f"volume-{vol.id}"), path)
    cloud.close()
    again = vcloud(overrides=dict(state))
    view = again.volume.get(vol.id)
    assert view.status == "error_managing", view
    assert view.fault is not None and "managing interrupted" in view.fault.message, view.fault
    assert _read(path, 7) == b"keep me"
    assert objects_named(again) == ["legacy"]


def test_list_manageable_marks_what_is_not_safe(vcloud) -> None:
    cloud = vcloud()
    _put(cloud, "legacy", 3 * GiB - 1)
    vol = cloud.volume.create(1)
    cloud.volume.attach(vol.id, CONNECTOR)
    snap = cloud.volume.create_snapshot(vol.id, force=True)
    listed = {e["reference"]["source-name"]: (e["size"], e["safe_to_manage"])
              for e in cloud.volume.list_manageable(_host(cloud))}
    assert listed == {"legacy": (3, True), f"volume-{vol.id}": (1, False),
                      f"snapshot-{snap.id}": (1, False)}, listed


def test_a_1_1_volume_service_refuses_the_manage_calls(vcloud, monkeypatch) -> None:
    """A volume service of the previous release (RPC API 1.1) refuses manage by version,
    before anything is written or renamed."""
    from stackcore.rpc import Target

    cloud = vcloud()
    path = _put(cloud, "legacy", GiB, b"keep me")
    vol = cloud.volume.create(1)
    monkeypatch.setattr(manager_of(cloud), "target", Target("volume", version="1.1"))
    with pytest.raises(exception.RPCVersionError, match="serves API 1.1, caller needs 1.2"):
        cloud.volume.manage(_host(cloud), {"source-name": "legacy"})
    with pytest.raises(exception.RPCVersionError, match="caller needs 1.2"):
        cloud.volume.unmanage(vol.id)
    assert _rows(cloud) == [(vol.id, "available")]
    assert _read(path, 7) == b"keep me"
