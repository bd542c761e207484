"""Nothing stays transient after a crash: an upload whose process died (left ``saving``, part
of its bytes in the file store) is found at the next start-up, the image marked ``killed``
with a fault and the partial bytes removed - while uploads still running (in this process, or
on another host that reports progress) are left alone. On the embedded SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import stackcore
from stackcore import exception
from stackcore.db.models import utcnow
from stackcore.image import api as image_api
from stackcore.image import models, uploads
from tests.conftest import wait_until

#: what the child process runs: an upload from a pipe it never finishes (stdin stays open)
_CHILD = textwrap.dedent("""
    import json, sys, stackcore
    overrides = json.loads(sys.argv[1])
    cloud = stackcore.Cloud(overrides=overrides, services=())
    image = cloud.image.create("dies-uploading")
    print(image.id, flush=True)

    class Stream:
        sent = False
        def read(self, n=-1):
            if not self.sent:
                self.sent = True
                return b"x" * (1024 * 1024)
            return sys.stdin.buffer.read(1) or b""  # blocks: the parent never writes

    cloud.image.upload(image.id, Stream())
""")


def _overrides(tmp_path: Path, database_url: str | None, **image: Any) -> dict[str, Any]:
    found: dict[str, Any] = {"DEFAULT": {"state_path": str(tmp_path / "state"),
                                         "periodic_interval": 3600}}
    if database_url:
        found["database"] = {"connection": database_url}
    if image:
        found["image"] = image
    return found


def _datadir(tmp_path: Path) -> Path:
    return tmp_path / "state" / "image-store"


def test_upload_of_a_killed_process_is_reset_at_start_up(
        make_cloud: Callable[..., stackcore.Cloud], database_url: str | None,
        tmp_path: Path) -> None:
    import json

    overrides = _overrides(tmp_path, database_url)
    make_cloud(overrides=overrides).close()  # the schema, before the child uses it
    child = subprocess.Popen([sys.executable, "-c", _CHILD, json.dumps(overrides)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        image_id = child.stdout.readline().strip()
        assert image_id, f"the child printed no image id: {child.communicate()[1]}"

        def partial() -> list[str]:
            names = os.listdir(_datadir(tmp_path)) if _datadir(tmp_path).exists() else []
            return [n for n in names
                    if n.endswith(".part") and (_datadir(tmp_path) / n).stat().st_size > 0]

        parts = wait_until(partial, 60, "the child's upload to write part of its bytes")
    finally:
        child.send_signal(signal.SIGKILL)
        child.communicate()
    assert parts[0].startswith(f".{image_id}."), parts

    cloud = make_cloud(overrides=overrides)  # the start-up after the crash
    image = cloud.image.get(image_id)
    assert image.status == "killed", image
    found = cloud.image.faults(image_id)
    assert [(f.step, f.exc_class) for f in found] == [("upload", "UploadInterrupted")], found
    assert f"process {child.pid} on {uploads.host()} is gone" in found[0].message, found
    assert cloud.image.stores["file"].list_backend_objects() == [], "partial bytes stayed"
    assert cloud.image.list_images(status="saving") == []
    # a killed image may be uploaded again (same id) or deleted
    assert cloud.image.upload(image_id, b"\0" * 4096).status == "active"


def _leave_saving(cloud: stackcore.Cloud, image_id: str, owner: str | None,
                  heartbeat: datetime.datetime | None, part: bool = True) -> Path | None:
    with cloud.db.transaction() as session:
        session.execute(sa.update(models.Image).where(models.Image.id == image_id).values(
            status="saving", upload_owner=owner, upload_heartbeat=heartbeat))
    if not part:
        return None
    datadir = Path(cloud.image.stores["file"].datadir)  # type: ignore[attr-defined]
    path = datadir / f".{image_id}.0123456789ab.part"
    path.write_bytes(b"half an image")
    return path


def test_other_hosts_uploads_are_reset_only_without_progress(
        make_cloud: Callable[..., stackcore.Cloud], tmp_path: Path) -> None:
    cloud = make_cloud(overrides=_overrides(tmp_path, None,
                                            interrupted_upload_timeout=60))
    now = utcnow()
    stale, fresh, legacy = (cloud.image.create(n).id for n in ("stale", "fresh", "legacy"))
    stale_part = _leave_saving(cloud, stale, "other-host|boot|pid:[1]|4242|99",
                               now - datetime.timedelta(seconds=61))
    fresh_part = _leave_saving(cloud, fresh, "other-host|boot|pid:[1]|4243|99",
                               now - datetime.timedelta(seconds=30))
    _leave_saving(cloud, legacy, None, None, part=False)  # saving, from before owners

    assert sorted(cloud.image.reset_interrupted_uploads()) == sorted([stale, legacy])
    statuses = {i: cloud.image.get(i).status for i in (stale, fresh, legacy)}
    assert statuses == {stale: "killed", fresh: "saving", legacy: "killed"}, statuses
    message = cloud.image.faults(stale)[0].message
    assert "process 4242 on host other-host last reported progress 6" in message, message
    assert "interrupted_upload_timeout 60 s" in message, message
    assert "no process is recorded" in cloud.image.faults(legacy)[0].message
    assert stale_part is not None and not stale_part.exists(), "stale partial bytes stayed"
    assert fresh_part is not None and fresh_part.exists(), "a live upload's bytes removed"
    assert cloud.image.reset_interrupted_uploads() == [], "reset twice"
    # a killed image is deleted with its faults
    cloud.image.delete(stale)
    with pytest.raises(exception.NotFound):
        cloud.image.faults(stale)


def test_this_hosts_owners_are_checked_for_certain(
        make_cloud: Callable[..., stackcore.Cloud], tmp_path: Path) -> None:
    cloud = make_cloud(overrides=_overrides(tmp_path, None))
    recent = utcnow()
    me = uploads.owner()
    host, boot, namespace, _pid, _start = me.split("|")
    init_start = Path("/proc/1/stat").read_text().rpartition(")")[2].split()[19]
    cases = {
        "reused-pid": f"{host}|{boot}|{namespace}|1|{int(init_start) + 1}",  # another start
        "alive": f"{host}|{boot}|{namespace}|1|{init_start}",  # this namespace's init: running
        "rebooted": f"{host}|another-boot|{namespace}|1|{init_start}",
        "this-process": me,  # no upload of it runs here
        # a container sharing the host name: not looked into, its heartbeat is recent
        "other-namespace": f"{host}|{boot}|pid:[1]|999999|1",
    }
    ids = {name: cloud.image.create(name).id for name in cases}
    for name, owner in cases.items():
        _leave_saving(cloud, ids[name], owner, recent, part=False)
    reset = set(cloud.image.reset_interrupted_uploads())
    assert reset == {ids["reused-pid"], ids["rebooted"], ids["this-process"]}, (
        {n: cloud.image.get(i).status for n, i in ids.items()})
    messages = {n: cloud.image.faults(ids[n])[0].message for n in ("reused-pid", "rebooted",
                                                                  "this-process")}
    assert "process 1 on" in messages["reused-pid"] and "is gone" in messages["reused-pid"]
    assert f"host {host} restarted since" in messages["rebooted"], messages
    assert "runs no upload of it" in messages["this-process"], messages


def test_a_running_upload_survives_another_start_up(
        make_cloud: Callable[..., stackcore.Cloud], tmp_path: Path) -> None:
    overrides = _overrides(tmp_path, None)
    cloud = make_cloud(overrides=overrides)
    image = cloud.image.create("slow")
    release, first_sent = threading.Event(), threading.Event()

    class Stream:
        chunks = [b"a" * 1000, b"b" * 1000]

        def read(self, n: int = -1) -> bytes:
            if len(self.chunks) == 1:
                first_sent.set()
                assert release.wait(60), "never released"
            return self.chunks.pop(0) if self.chunks else b""

    result: list[Any] = []
    worker = threading.Thread(target=lambda: result.append(
        cloud.image.upload(image.id, Stream())))
    worker.start()
    try:
        assert first_sent.wait(60), "the upload never started"
        other = make_cloud(overrides=overrides)  # a second cloud of this process starts
        assert other.image.get(image.id).status == "saving"
        assert other.image.faults(image.id) == []
    finally:
        release.set()
        worker.join(60)
    assert result and result[0].status == "active", result


def test_an_upload_declared_interrupted_keeps_nothing(
        make_cloud: Callable[..., stackcore.Cloud], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The zombie case: another host took the upload for dead (no progress) while it was
    only stalled. Its next progress report, or its final step, finds the image no longer its
    own: it stops and removes what it stored, and the image stays killed."""
    cloud = make_cloud(overrides=_overrides(tmp_path, None))
    store = cloud.image.stores["file"]

    def declare_dead(image_id: str) -> None:
        with cloud.db.transaction() as session:
            session.execute(sa.update(models.Image).where(models.Image.id == image_id)
                            .values(status="killed", upload_owner=None))

    for stage in ("final step", "heartbeat"):
        image = cloud.image.create(stage)
        # "heartbeat": every read reports progress; "final step": no report before the end
        monkeypatch.setattr(image_api, "HEARTBEATS_PER_TIMEOUT",
                            10**9 if stage == "heartbeat" else 1)

        class Stream:
            calls = 0

            def read(self, n: int = -1, image_id: str = image.id) -> bytes:
                self.calls += 1
                if self.calls == 1:
                    declare_dead(image_id)
                    return b"x" * 1000
                return b"x" * 1000 if self.calls < 4 else b""

        with pytest.raises(exception.InvalidState, match="declared interrupted"):
            cloud.image.upload(image.id, Stream())
        assert cloud.image.get(image.id).status == "killed", stage
        assert store.list_backend_objects() == [], f"{stage}: the zombie's bytes stayed"


def test_a_local_file_upload_is_copied_in_the_kernel_with_its_holes_beats_and_stops(
        make_cloud: Callable[..., stackcore.Cloud], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A plain local file (a server's raw snapshot) reaches the file store as a file: copied
    inside the kernel, its holes kept, progress reported as it goes; a zombie upload of one
    stops at its next progress report, as one read through Python does."""
    import hashlib

    cloud = make_cloud(overrides=_overrides(tmp_path, None))
    store = cloud.image.stores["file"]
    size = 64 * 1024 * 1024
    source = tmp_path / "sparse.raw"
    head = os.urandom(1024 * 1024)
    with open(source, "wb") as handle:
        handle.write(head)
        handle.truncate(size)
    wanted = hashlib.sha256(head + bytes(size - len(head))).hexdigest()
    copied: list[int] = []
    real_copy = os.copy_file_range

    def spy(*args: Any) -> int:
        count = real_copy(*args)
        copied.append(count)
        return count

    monkeypatch.setattr(os, "copy_file_range", spy)
    image = cloud.image.create("sparse", disk_format="raw")
    with open(source, "rb") as data:
        done = cloud.image.upload(image.id, data, size=size)
    assert (done.status, done.size_bytes, done.sha256) == ("active", size, wanted), done
    stored = _datadir(tmp_path) / image.id
    assert sum(copied) == len(head), f"the kernel copied {copied}: holes were copied"
    assert stored.stat().st_blocks * 512 <= 2 * len(head) + 4 * 1024 * 1024, \
        f"{stored.stat().st_blocks * 512} bytes allocated for {len(head)} bytes of data"

    zombie = cloud.image.create("zombie", disk_format="raw")
    monkeypatch.setattr(image_api, "HEARTBEATS_PER_TIMEOUT", 10**9)  # every report beats

    def declared_dead_after_the_first_copy(*args: Any) -> int:
        with cloud.db.transaction() as session:
            session.execute(sa.update(models.Image).where(models.Image.id == zombie.id)
                            .values(status="killed", upload_owner=None))
        return real_copy(*args)

    monkeypatch.setattr(os, "copy_file_range", declared_dead_after_the_first_copy)
    with open(source, "rb") as data, \
            pytest.raises(exception.InvalidState, match="declared interrupted"):
        cloud.image.upload(zombie.id, data, size=size)
    assert cloud.image.get(zombie.id).status == "killed"
    assert [o for o in store.list_backend_objects() if zombie.id in o] == [], \
        store.list_backend_objects()


def test_a_cloud_resets_them_periodically(make_cloud: Callable[..., stackcore.Cloud],
                                          tmp_path: Path) -> None:
    """Not only at start-up: another host's upload that stops reporting progress after this
    cloud started is reset by the periodic check (every quarter of the timeout)."""
    cloud = make_cloud(overrides=_overrides(tmp_path, None, interrupted_upload_timeout=10))
    image = cloud.image.create("went quiet")
    part = _leave_saving(cloud, image.id, "other-host|boot|pid:[1]|77|1",
                         utcnow() - datetime.timedelta(seconds=11))
    assert part is not None
    # The reaper commits ``killed`` (and the fault) first, then removes the bytes: a store is
    # never touched for an upload it did not take from its owner. Both are awaited.
    wait_until(lambda: cloud.image.get(image.id).status == "killed", 10,
               "the periodic check to reset the upload")
    wait_until(lambda: not part.exists(), 10, f"the periodic check to remove {part}")
    assert cloud.image.faults(image.id)[0].step == "upload"
