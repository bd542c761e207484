"""Removing an RBD image a watcher holds (stackcore_drivers.ceph.remove_image), on the real
single-node Ceph: the removal waits for a watcher that goes away, and gives up on one that
stays (CI saw a closed image's watch outlive its close, the removal failing with ImageBusy)."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import backend_env, wait_until

pytestmark = pytest.mark.real


@pytest.fixture
def ioctx() -> Iterator[Any]:
    rados = pytest.importorskip("rados", reason="python3-rados is not importable in this venv")
    cluster = rados.Rados(conffile=backend_env("STACKCORE_TEST_CEPH_CONF", "ceph"))
    cluster.connect(timeout=10)
    ctx = cluster.open_ioctx(backend_env("STACKCORE_TEST_CEPH_POOL", "ceph"))
    try:
        yield ctx
    finally:
        ctx.close()
        cluster.shutdown()


def _image(ioctx: Any) -> str:
    import rbd

    name = f"busytest-{uuid.uuid4().hex[:12]}"
    rbd.RBD().create(ioctx, name, 4096, old_format=False, features=1)
    return name


def test_removal_waits_for_a_watcher_that_goes_away(ioctx: Any,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    import rbd
    from stackcore_drivers import ceph

    name = _image(ioctx)
    watcher = rbd.Image(ioctx, name)  # a writable open is a watch on the header
    caplog.set_level(logging.WARNING, logger="stackcore_drivers.ceph")

    def busy_seen() -> bool:
        return any(name in record.getMessage() and "busy" in record.getMessage()
                   for record in caplog.records)

    def release_once_busy() -> None:
        # the watcher goes only once the removal has met it (its warning): the test proves
        # the wait, not a lucky order
        wait_until(busy_seen, 30, f"remove_image({name}) to meet the watcher")
        watcher.close()

    closer = threading.Thread(target=release_once_busy)
    closer.start()
    try:
        removed = ceph.remove_image(ioctx, name, patience=60)
    finally:
        closer.join()
    assert busy_seen(), f"remove_image({name}) never met the watcher: {caplog.text!r}"
    assert removed is True, f"remove_image({name}) said the image was gone already"
    assert name not in list(rbd.RBD().list(ioctx)), f"{name} still in the pool"
    assert ceph.remove_image(ioctx, name) is False, "a second removal did not report 'gone'"


def test_a_watcher_that_stays_is_busy_after_the_patience(ioctx: Any) -> None:
    import rbd
    from stackcore_drivers import ceph

    name = _image(ioctx)
    watcher = rbd.Image(ioctx, name)
    try:
        started = time.monotonic()
        with pytest.raises(rbd.ImageBusy):
            ceph.remove_image(ioctx, name, patience=1.0)
        took = time.monotonic() - started
        assert took >= 1.0, f"gave up after {took:.2f} s, before its 1 s patience"
    finally:
        watcher.close()
    assert ceph.remove_image(ioctx, name) is True, f"{name} not removed once unwatched"
