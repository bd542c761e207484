"""cloud.volume.reimage (Cinder's reimage; the rebuild of a volume-backed server) on the fake
volume driver: the image written over the data, refusals that change nothing, and a restart in
the middle that fails the reimage without deleting the user's volume (a create's download
would be deleted)."""

from __future__ import annotations

import os

import pytest

from stackcore import exception
from tests.unit.volume.conftest import manager_of

CONNECTOR = {"host": "compute-1", "ip": "127.0.0.1", "initiator": "iqn.1993-08.org.debian:01:x"}


def _image(cloud, tmp_path, name: str, data: bytes, size: int = 1024 * 1024) -> str:
    path = tmp_path / f"{name}.raw"
    with open(path, "wb") as handle:
        handle.write(data)
        handle.truncate(size)
    return cloud.compute.register_image(name, str(path), "raw").id


def _head(cloud, volume_id: str, length: int) -> bytes:
    with open(manager_of(cloud).driver._path(f"volume-{volume_id}"), "rb") as handle:
        return handle.read(length)


@pytest.fixture
def cloud(make_cloud):
    return make_cloud(services=("volume",))


def test_reimage_writes_the_image_over_the_data(cloud, tmp_path) -> None:
    first = _image(cloud, tmp_path, "first", b"first image")
    second = _image(cloud, tmp_path, "second", b"second image")
    vol = cloud.volume.create(1, image_id=first)
    assert _head(cloud, vol.id, 11) == b"first image"
    done = cloud.volume.reimage(vol.id, second)
    assert (done.status, done.image_id, done.fault) == ("available", first, None), done
    assert _head(cloud, vol.id, 12) == b"second image"


def test_refusals_change_nothing(cloud, tmp_path) -> None:
    small = _image(cloud, tmp_path, "small", b"fits")
    big = _image(cloud, tmp_path, "big", b"too big", size=2 * 1024**3)
    vol = cloud.volume.create(1)
    with pytest.raises(exception.Invalid, match="virtual size"):
        cloud.volume.reimage(vol.id, big)
    with pytest.raises(exception.NotFound):
        cloud.volume.reimage(vol.id, "no-such-image")
    cloud.volume.attach(vol.id, CONNECTOR)
    with pytest.raises(exception.InvalidState, match="in-use"):
        cloud.volume.reimage(vol.id, small)
    after = cloud.volume.get(vol.id)
    assert (after.status, after.fault) == ("in-use", None), after


def test_a_restart_mid_reimage_fails_it_and_keeps_the_volume(cloud, tmp_path,
                                                            monkeypatch) -> None:
    image = _image(cloud, tmp_path, "img", b"new data")
    vol = cloud.volume.create(1)
    monkeypatch.setattr(cloud.volume.rpc, "reimage_volume", lambda *a: None)  # held
    held = cloud.volume.reimage(vol.id, image, wait=False)
    assert held.status == "downloading", held
    manager = manager_of(cloud)
    manager.init_host()  # the service restarted
    after = cloud.volume.get(vol.id)
    assert after.status == "error", after
    assert "interrupted by a restart" in after.fault.message, after.fault
    assert os.path.exists(manager.driver._path(f"volume-{vol.id}")), \
        "a reimage interrupted by a restart deleted the volume"
    assert cloud.volume.list_pools()[0].allocated_capacity_gb == 1, "its claim is kept"
