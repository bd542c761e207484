"""Volumes from uploaded images: the volume manager reads an image of any store through its
host's image cache (stackcore.image.cache) and hands the driver a local ImageFile, as before."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import stackcore
from tests.conftest import wait_until
from tests.unit.volume.conftest import manager_of


def test_volume_from_an_uploaded_image(make_cloud: Callable[..., stackcore.Cloud],
                                       tmp_path: Path) -> None:
    """The volume manager reads an uploaded image through its host's image cache (the driver
    still gets a local ImageFile); a store whose bytes changed fails the copy naming the
    sha256 and leaves nothing on the backend."""
    cloud = make_cloud(services=("volume",),
                       overrides={"DEFAULT": {"state_path": str(tmp_path / "s")}})
    data = bytes(range(256)) * 4096  # 1 MiB, raw
    good = cloud.image.upload(cloud.image.create("good").id, data)
    volume = cloud.volume.create(1, image_id=good.id)
    wait_until(lambda: cloud.volume.get(volume.id).status in ("available", "error"), 30,
               f"volume {volume.id} created")
    view = cloud.volume.get(volume.id)
    assert view.status == "available", view.fault
    manager = manager_of(cloud)
    with open(manager.driver._path(f"volume-{volume.id}"), "rb") as backend_file:
        assert backend_file.read(len(data)) == data
    assert [e[0] for e in manager.image_cache.entries()] == [good.id]

    bad = cloud.image.upload(cloud.image.create("bad").id, data)
    stored = cloud.image.stores["file"].local_path(  # type: ignore[attr-defined]
        next(loc for loc in cloud.image.stores["file"].locations() if bad.id in loc))
    os.chmod(stored, 0o644)
    Path(stored).write_bytes(b"\0" * len(data))
    broken = cloud.volume.create(1, image_id=bad.id)
    wait_until(lambda: cloud.volume.get(broken.id).status in ("available", "error"), 30,
               f"volume {broken.id} created")
    view = cloud.volume.get(broken.id)
    assert view.status == "error" and view.fault is not None \
        and "sha256" in view.fault.message, (view.status, view.fault)
    assert not os.path.exists(manager.driver._path(f"volume-{broken.id}"))
    assert [e[0] for e in manager.image_cache.entries()] == [good.id]
