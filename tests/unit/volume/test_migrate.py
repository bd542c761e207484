"""cloud.volume.migrate / retype between two fake backends of one volume service ("fast" and
"slow"): the id and the data kept, claims moved, the hidden second copy never seen, every
failure undone (the copy deleted, its claim given back, the volume where it was with a
fault), refusals that write nothing, and a service killed in the middle settled at start."""

from __future__ import annotations

import os

import pytest
import sqlalchemy as sa

from stackcore import exception
from stackcore.volume import models
from tests.unit.volume.conftest import manager_of

CONNECTOR = {"host": "compute-1", "ip": "127.0.0.1", "initiator": "iqn.1993-08.org.debian:01:x"}
PAYLOAD = b"the data of the volume " + os.urandom(64)


@pytest.fixture
def two(vcloud):
    def make(slow: dict | None = None):
        return vcloud(volume={"enabled_backends": ["fast", "slow"]},
                      overrides={"slow": {"volume_backend_name": "SLOW",
                                          "backend_availability_zone": "az2", **(slow or {})}})
    return make


def _pool(cloud, backend: str) -> str:
    return next(p.name for p in cloud.volume.list_pools() if f"@{backend}#" in p.name)


def _allocated(cloud) -> dict[str, int]:
    return {p.name.split("@")[1]: p.allocated_capacity_gb for p in cloud.volume.list_pools()}


def _file(cloud, backend: str, volume_id: str) -> str:
    return manager_of(cloud, backend).driver._path(f"volume-{volume_id}")


def _objects(cloud, backend: str) -> list[str]:
    return manager_of(cloud, backend).driver.list_backend_objects()


def _write(cloud, backend: str, volume_id: str) -> None:
    with open(_file(cloud, backend, volume_id), "r+b") as handle:
        handle.seek(12345)
        handle.write(PAYLOAD)


def _read(path: str) -> bytes:
    with open(path, "rb") as handle:
        handle.seek(12345)
        return handle.read(len(PAYLOAD))


def _rows(cloud) -> list[tuple[str, str, str | None]]:
    with cloud.db.read() as session:
        return sorted(tuple(r) for r in session.execute(sa.select(
            models.Volume.id, models.Volume.status, models.Volume.migration_status)).all())


def _on(cloud, backend: str, size: int = 1):
    """An untyped volume on ``backend`` (each backend its own zone: placement spreads)."""
    zone = next(p.availability_zone for p in cloud.volume.list_pools()
                if f"@{backend}#" in p.name)
    vol = cloud.volume.create(size, name="m", availability_zone=zone)
    assert f"@{backend}#" in vol.host, vol.host
    return vol


def test_migrate_moves_the_data_and_keeps_the_id(two) -> None:
    cloud = two()
    vol = _on(cloud, "fast", 2)
    _write(cloud, "fast", vol.id)
    moved = cloud.volume.migrate(vol.id, _pool(cloud, "slow"))
    assert (moved.id, moved.status, moved.migration_status, moved.host,
            moved.availability_zone) == \
        (vol.id, "available", "success", _pool(cloud, "slow"), "az2"), moved
    assert moved.fault is None, moved.fault
    assert _read(_file(cloud, "slow", vol.id)) == PAYLOAD
    assert os.path.getsize(_file(cloud, "slow", vol.id)) == 2 * 1024**3
    assert f"volume-{vol.id}" not in _objects(cloud, "fast"), "the old copy is deleted"
    assert _allocated(cloud) == {"fast#fast": 0, "slow#SLOW": 2}, _allocated(cloud)
    # the hidden second copy: deleted, never listed, never counted
    assert [v.id for v in cloud.volume.list_volumes()] == [vol.id]
    statuses = sorted(status for _, status, _ in _rows(cloud))
    assert statuses == ["available", "deleted"], _rows(cloud)
    with cloud.db.read() as session:
        used = cloud.volume.quotas.in_use(session, cloud.volume.project_id, "gigabytes")
    assert used == 2, used
    # it lives on the new backend: extend and delete go there
    assert cloud.volume.extend(vol.id, 3).size == 3
    assert os.path.getsize(_file(cloud, "slow", vol.id)) == 3 * 1024**3
    cloud.volume.delete(vol.id)
    assert f"volume-{vol.id}" not in _objects(cloud, "slow")
    assert _allocated(cloud) == {"fast#fast": 0, "slow#SLOW": 0}, _allocated(cloud)


def test_migrate_without_a_host_lets_the_scheduler_pick_another_backend(two) -> None:
    cloud = two()
    vol = _on(cloud, "fast")
    moved = cloud.volume.migrate(vol.id)
    assert moved.host == _pool(cloud, "slow"), moved.host
    back = cloud.volume.migrate(vol.id)
    assert (back.host, back.migration_status) == (_pool(cloud, "fast"), "success"), back


def test_a_failed_copy_leaves_the_volume_where_it_was_with_a_fault(two) -> None:
    cloud = two(slow={"fake_fail_on": ["copy_image_to_volume"]})
    vol = _on(cloud, "fast")
    _write(cloud, "fast", vol.id)
    after = cloud.volume.migrate(vol.id, _pool(cloud, "slow"))
    assert (after.status, after.migration_status, after.host) == \
        ("available", "error", _pool(cloud, "fast")), after
    faults = cloud.volume.faults(vol.id)
    assert faults and faults[0].step == "copy_image_to_volume", faults
    assert "injected failure" in faults[0].message, faults[0].message
    assert _read(_file(cloud, "fast", vol.id)) == PAYLOAD
    assert [n for n in _objects(cloud, "slow") if vol.id in n] == [], _objects(cloud, "slow")
    assert _allocated(cloud) == {"fast#fast": 1, "slow#SLOW": 0}, _allocated(cloud)
    assert sorted(s for _, s, _ in _rows(cloud)) == ["available", "deleted"], _rows(cloud)


def test_a_copy_that_reads_back_different_is_not_switched_to(two, monkeypatch) -> None:
    cloud = two()
    vol = _on(cloud, "fast")
    _write(cloud, "fast", vol.id)
    slow = manager_of(cloud, "slow").driver
    real = slow.copy_image_to_volume

    def corrupting(volume, image):
        real(volume, image)
        with open(slow._path(volume.name), "r+b") as handle:
            handle.seek(12345)
            handle.write(b"X")

    monkeypatch.setattr(slow, "copy_image_to_volume", corrupting)
    after = cloud.volume.migrate(vol.id, _pool(cloud, "slow"))
    assert (after.migration_status, after.host) == ("error", _pool(cloud, "fast")), after
    fault = cloud.volume.faults(vol.id)[0]
    assert fault.step == "verify" and "reads back sha256:" in fault.message, fault
    assert [n for n in _objects(cloud, "slow") if vol.id in n] == []


def test_an_object_of_that_name_on_the_destination_is_never_overwritten(two) -> None:
    cloud = two()
    vol = _on(cloud, "fast")
    os.makedirs(os.path.dirname(_file(cloud, "slow", vol.id)), exist_ok=True)
    with open(_file(cloud, "slow", vol.id), "wb") as handle:
        handle.write(b"someone else's")
    after = cloud.volume.migrate(vol.id, _pool(cloud, "slow"))
    assert (after.migration_status, after.host) == ("error", _pool(cloud, "fast")), after
    fault = cloud.volume.faults(vol.id)[0]
    assert fault.step == "list_backend_objects" and "not overwritten" in fault.message, fault
    with open(_file(cloud, "slow", vol.id), "rb") as handle:
        assert handle.read() == b"someone else's"


def test_refusals_write_nothing(two) -> None:
    cloud = two()
    attached = _on(cloud, "fast")
    cloud.volume.attach(attached.id, CONNECTOR)
    snapped = _on(cloud, "fast")
    cloud.volume.create_snapshot(snapped.id)
    with pytest.raises(exception.InvalidState, match="in-use"):
        cloud.volume.migrate(attached.id)
    with pytest.raises(exception.InvalidState, match="snapshot"):
        cloud.volume.migrate(snapped.id)
    plain = _on(cloud, "fast")
    before = _rows(cloud)
    with pytest.raises(exception.NotFound, match="nowhere@x#y"):
        cloud.volume.migrate(plain.id, "nowhere@x#y")
    with pytest.raises(exception.NoValidHost) as caught:
        cloud.volume.migrate(plain.id, _pool(cloud, "fast"))
    assert any("the volume's own backend" in r for r in caught.value.reasons), \
        caught.value.reasons
    assert _rows(cloud) == before, "a refused migration leaves no row behind"
    assert cloud.volume.get(plain.id).migration_status is None


def test_retype_in_place_when_the_backend_serves_the_new_type(two) -> None:
    cloud = two()
    cloud.volume.create_type("any", {})
    cloud.volume.create_type("fast", {"volume_backend_name": "fast"})
    vol = cloud.volume.create(1, volume_type="any")
    assert "@fast#" in vol.host, vol.host
    cloud.volume.attach(vol.id, CONNECTOR)  # attached: allowed, nothing moves
    done = cloud.volume.retype(vol.id, "fast")
    assert (done.volume_type, done.host, done.status, done.migration_status) == \
        ("fast", vol.host, "in-use", None), done
    with pytest.raises(exception.Invalid, match="already"):
        cloud.volume.retype(vol.id, "fast")


def test_retype_that_needs_a_move_is_refused_unless_on_demand(two) -> None:
    cloud = two()
    cloud.volume.create_type("fast", {"volume_backend_name": "fast"})
    cloud.volume.create_type("slow", {"volume_backend_name": "SLOW"})
    vol = cloud.volume.create(1, volume_type="fast")
    _write(cloud, "fast", vol.id)
    before = _rows(cloud)
    with pytest.raises(exception.Invalid) as caught:
        cloud.volume.retype(vol.id, "slow")
    assert "migration_policy" in str(caught.value) and vol.host in str(caught.value), caught.value
    assert _rows(cloud) == before
    done = cloud.volume.retype(vol.id, "slow", migration_policy="on-demand")
    assert (done.volume_type, done.host, done.status, done.migration_status) == \
        ("slow", _pool(cloud, "slow"), "available", "success"), done
    assert _read(_file(cloud, "slow", vol.id)) == PAYLOAD
    # the per-type quota counts the new type
    with cloud.db.read() as session:
        used = {t: cloud.volume.quotas.in_use(session, cloud.volume.project_id,
                                              f"gigabytes_{t}") for t in ("fast", "slow")}
    assert used == {"fast": 0, "slow": 1}, used


def test_retype_checks_the_new_types_quota(two) -> None:
    cloud = two()
    cloud.volume.create_type("fast", {"volume_backend_name": "fast"})
    cloud.volume.create_type("slow", {"volume_backend_name": "SLOW"})
    vol = cloud.volume.create(2, volume_type="fast")
    with cloud.db.transaction() as session:
        cloud.volume.quotas.set_limit(session, cloud.volume.project_id, "gigabytes_slow", 1)
    before = _rows(cloud)
    with pytest.raises(exception.OverQuota, match="gigabytes_slow"):
        cloud.volume.retype(vol.id, "slow", migration_policy="on-demand")
    assert _rows(cloud) == before


def test_a_service_killed_before_the_switch_is_settled_at_start(two, monkeypatch) -> None:
    cloud = two()
    vol = _on(cloud, "fast")
    _write(cloud, "fast", vol.id)
    monkeypatch.setattr(cloud.volume.rpc, "migrate_volume", lambda *a: None)  # held
    held = cloud.volume.migrate(vol.id, _pool(cloud, "slow"), wait=False)
    assert held.status == "migrating", held
    # the hidden copy: claimed on slow, neither listed nor counted
    assert [v.id for v in cloud.volume.list_volumes()] == [vol.id]
    assert _allocated(cloud) == {"fast#fast": 1, "slow#SLOW": 1}, _allocated(cloud)
    with cloud.db.read() as session:
        target = session.execute(sa.select(models.Volume.id).where(
            models.Volume.migration_status == f"target:{vol.id}")).scalar_one()
        assert cloud.volume.quotas.in_use(session, cloud.volume.project_id, "volumes") == 1
    with pytest.raises(exception.NotFound):
        cloud.volume.get(target)

    class Killed(BaseException):
        pass

    def killed(volume, image):
        raise Killed  # the process dies here: the copy made, half written

    fast, slow = manager_of(cloud, "fast"), manager_of(cloud, "slow")
    monkeypatch.setattr(slow.driver, "copy_image_to_volume", killed)
    with pytest.raises(Killed):
        fast.migrate_volume(vol.id, target)
    assert f"volume-{vol.id}" in _objects(cloud, "slow"), "the copy was made"
    assert cloud.volume.get(vol.id).status == "migrating"
    # the copy is known for what it is: not an unknown object, not free to manage
    slow._find_unknown_objects()
    assert slow.unknown_objects == [], slow.unknown_objects
    listed = [e for e in cloud.volume.list_manageable(_pool(cloud, "slow"))
              if e["reference"] == {"source-name": f"volume-{vol.id}"}]
    assert [e["safe_to_manage"] for e in listed] == [False], listed
    with pytest.raises(exception.Invalid, match="managed already"):
        cloud.volume.manage(_pool(cloud, "slow"), {"source-name": f"volume-{vol.id}"})

    fast.init_host()
    after = cloud.volume.get(vol.id)
    assert (after.status, after.migration_status, after.host) == \
        ("available", "error", _pool(cloud, "fast")), after
    assert "interrupted by a restart" in cloud.volume.faults(vol.id)[0].message
    assert f"volume-{vol.id}" not in _objects(cloud, "slow"), "the half-made copy is deleted"
    assert _read(_file(cloud, "fast", vol.id)) == PAYLOAD
    assert _allocated(cloud) == {"fast#fast": 1, "slow#SLOW": 0}, _allocated(cloud)


def test_a_service_killed_after_the_switch_deletes_the_old_copy_at_start(two,
                                                                       monkeypatch) -> None:
    cloud = two()
    vol = _on(cloud, "fast")
    _write(cloud, "fast", vol.id)
    fast = manager_of(cloud, "fast")
    monkeypatch.setattr(fast.migrations, "settle_copy", lambda *a, **k: None)  # killed
    moved = cloud.volume.migrate(vol.id, _pool(cloud, "slow"))
    assert (moved.status, moved.host) == ("available", _pool(cloud, "slow")), moved
    assert f"volume-{vol.id}" in _objects(cloud, "fast"), "the old copy is still there"
    assert _allocated(cloud) == {"fast#fast": 1, "slow#SLOW": 1}, _allocated(cloud)
    monkeypatch.undo()

    fast.init_host()
    assert f"volume-{vol.id}" not in _objects(cloud, "fast")
    assert _read(_file(cloud, "slow", vol.id)) == PAYLOAD, "the volume's copy is untouched"
    assert _allocated(cloud) == {"fast#fast": 0, "slow#SLOW": 1}, _allocated(cloud)
    assert sorted(s for _, s, _ in _rows(cloud)) == ["available", "deleted"], _rows(cloud)
