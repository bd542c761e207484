"""An NFS server that stops answering without closing its connections (nfs-ganesha stopped
with SIGSTOP: a hung server, not a crashed one) while the volume service works on it.

A crashed server is the easy case: the connection breaks and the call fails. A hung one
answers nothing, and every NFS client call (libnfs's synchronous calls, qemu-img's nfs://
driver) waits for it for ever by default, holding the volume or snapshot in a transient
status until someone restarts the service. The nfs driver bounds each call by
``nfs_operation_timeout``: the snapshot made while the server is frozen ends in ERROR with a
fault naming the share, promptly; once the server answers again the next snapshot is made on
a fresh connection, and everything deletes cleanly.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

import stackcore
from stackcore.volume.manager import BINARY as VOLUME_BINARY

from .conftest import PrivateBackend, poll
from .invariants import transient_problems

pytestmark = pytest.mark.real

TIMEOUT = 5  # nfs_operation_timeout of the test's backend, seconds


def test_calls_on_a_frozen_nfs_server_fail_within_the_operation_timeout(
    private_backend: Callable[[str], PrivateBackend], tmp_path: Path,
) -> None:
    backend = private_backend("nfs")
    share = f"{backend.env['SERVER']}:{backend.env['EXPORT']}"
    cloud = stackcore.Cloud(services=("scheduler", "volume"), overrides={
        "DEFAULT": {"state_path": str(tmp_path / "state"), "periodic_interval": 1,
                    "report_interval": 1},
        "volume": {"enabled_backends": ["frozen"]},
        "frozen": {"volume_backend_name": "frozen", "volume_driver": "nfs",
                   "nfs_access": "qemu", "nfs_shares": [share],
                   "nfs_operation_timeout": TIMEOUT},
    })
    try:
        poll(lambda: [p for p in cloud.volume.list_pools() if p.up and p.reporting], 60,
             "the nfs pool reporting")
        volume = cloud.volume.create(1, name="frozen-0", timeout=120)
        assert volume.status == "available", (volume, cloud.volume.faults(volume.id))

        backend.freeze()
        try:
            started = time.monotonic()
            snap = cloud.volume.create_snapshot(volume.id, timeout=120)
            elapsed = time.monotonic() - started
        finally:
            backend.thaw()
        assert snap.status == "error", f"a snapshot on a frozen server ended {snap.status}"
        faults = cloud.volume.faults(snap.id)
        assert faults and share.split(":")[0] in faults[-1].message, faults
        # the driver gave up after one bounded call (not after a transport's own minutes);
        # the margin is for a busy machine, far under the unbounded wait this replaces
        assert elapsed < 6 * TIMEOUT, f"the snapshot failed only after {elapsed:.1f} s"
        assert transient_problems(cloud.db.engine) == []

        # answering again: the next calls run on a fresh connection
        good = cloud.volume.create_snapshot(volume.id, timeout=120)
        assert good.status == "available", (good, cloud.volume.faults(good.id))
        cloud.volume.delete_snapshot(good.id)
        cloud.volume.delete_snapshot(snap.id)
        poll(lambda: not cloud.volume.list_snapshots(), 120, "every snapshot deleted")
        cloud.volume.delete(volume.id)
        poll(lambda: not cloud.volume.list_volumes(), 120, "every volume deleted")
        driver = next(s.manager for s in cloud.services if s.binary == VOLUME_BINARY).driver
        assert driver.list_backend_objects() == []
        print(f"\nfrozen nfs server: the snapshot failed after {elapsed:.1f} s "
              f"(nfs_operation_timeout {TIMEOUT} s)")
    finally:
        cloud.close()
