"""Progress of long copies (stackcore.progress): the reporter's row, its throttling and its
failures; an image upload's and import's bytes seen on the image while they run, by the API and
by ``stackcore-client image import``."""

from __future__ import annotations

import http.server
import io
import json
import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import stackcore
from stackcore import exception
from stackcore import progress as copy_progress
from stackcore.client.app import ClientApp
from stackcore.db import api as db_api
from stackcore.db.models import CopyProgress
from stackcore.image.store import CHUNK_SIZE, WRITE_CHUNK_SIZE
from tests.conftest import wait_until

CHUNK = 64 * 1024


@pytest.fixture
def db(tmp_path: Path) -> Iterator[db_api.Database]:
    database = db_api.Database(f"sqlite:///{tmp_path}/progress.sqlite")
    database.upgrade()
    yield database
    database.dispose()


def _rows(db: db_api.Database) -> list[tuple[Any, ...]]:
    with db.read() as session:
        return [tuple(r) for r in session.execute(sa.select(
            CopyProgress.resource_type, CopyProgress.resource_id, CopyProgress.step,
            CopyProgress.bytes_done, CopyProgress.bytes_total)).all()]



def _volume_progress_is(cloud: Any, volume_id: str, step: str, done: int,
                        total: int | None) -> Any:
    """Wait until the volume's progress is ``step`` at ``done``/``total`` bytes; returns it."""
    def check() -> Any:
        seen = cloud.volume.get(volume_id).progress
        return seen if seen is not None and (seen.step, seen.bytes_done,
                                             seen.bytes_total) == (step, done, total) else None
    return wait_until(check, 30, f"volume progress {step} {done}/{total}")

def test_reporter_records_bytes_while_it_runs_and_removes_them_after(
        db: db_api.Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(copy_progress, "INTERVAL", 0.0)  # every advance writes
    with copy_progress.Reporter(db, "image", "i-1", "upload", 300) as reporter:
        assert _rows(db) == [("image", "i-1", "upload", 0, 300)], "at the start"
        reporter.advance(100)
        reporter.advance(50)
        assert _rows(db) == [("image", "i-1", "upload", 150, 300)], "after 150 bytes"
        with db.read() as session:
            (seen,) = copy_progress.read(session, "image", ["i-1", "other"]).values()
        assert (seen.bytes_done, seen.bytes_total, seen.percent, str(seen)) == \
            (150, 300, 50, "upload: 150/300 bytes (50%)"), seen
    assert _rows(db) == [], "the row outlived the copy"


def test_reporter_writes_at_most_once_per_interval(db: db_api.Database,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(copy_progress, "INTERVAL", 3600.0)
    with copy_progress.Reporter(db, "volume", "v-1", "copy_image_to_volume") as reporter:
        for _ in range(1000):
            reporter.advance(CHUNK)
        assert _rows(db) == [("volume", "v-1", "copy_image_to_volume", 0, None)], \
            "1000 advances within one interval wrote"
        reporter.set_total(1000 * CHUNK)  # a new total is shown at the next advance
        reporter.advance(0)
        assert _rows(db) == [("volume", "v-1", "copy_image_to_volume", 1000 * CHUNK,
                              1000 * CHUNK)]


def test_a_failed_copy_leaves_no_row_and_a_stale_row_is_replaced(db: db_api.Database) -> None:
    with copy_progress.Reporter(db, "image", "i-2", "upload", 10) as reporter:
        reporter.advance(10)
    with pytest.raises(RuntimeError, match="backend"):
        with copy_progress.Reporter(db, "image", "i-2", "upload", 20):
            assert _rows(db) == [("image", "i-2", "upload", 0, 20)], "not started afresh"
            raise RuntimeError("backend failed")
    assert _rows(db) == []


def test_a_database_outage_never_fails_the_copy(db: db_api.Database,
                                                monkeypatch: pytest.MonkeyPatch,
                                                caplog: pytest.LogCaptureFixture) -> None:
    def down() -> Any:
        raise exception.BackendUnavailable("database is down")

    monkeypatch.setattr(db, "transaction", down)
    with caplog.at_level(logging.WARNING, logger="stackcore.progress"):
        with copy_progress.Reporter(db, "image", "i-3", "upload", 10) as reporter:
            reporter.advance(10)
    warnings = [r.getMessage() for r in caplog.records]
    assert any("recording the progress of upload failed" in m and "database is down" in m
               for m in warnings), warnings
    assert any("removing its copy progress failed" in m for m in warnings), warnings


class _Gated:
    """A stream of ``2 * half`` bytes that stops after the first half until released."""

    def __init__(self, half: int) -> None:
        self.half = half
        self.sent = 0
        self.released = threading.Event()

    def read(self, size: int = -1, /) -> bytes:
        if self.sent == self.half and not self.released.wait(60):
            raise RuntimeError("the test never released the second half")
        if self.sent >= 2 * self.half:
            return b""
        limit = self.half - self.sent % self.half if size < 0 else min(
            size, self.half - self.sent % self.half)
        self.sent += limit
        return b"\0" * limit


def test_an_upload_shows_its_bytes_on_the_image_while_it_runs(
        make_cloud: Callable[..., stackcore.Cloud], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(copy_progress, "INTERVAL", 0.0)
    cloud = make_cloud()
    image = cloud.image.create("big")
    stream = _Gated(4 * CHUNK)
    outcome: dict[str, Any] = {}
    uploader = threading.Thread(target=lambda: outcome.setdefault(
        "image", cloud.image.upload(image.id, stream, size=8 * CHUNK)))
    uploader.start()
    try:
        def half_done() -> Any:
            running = cloud.image.get(image.id).progress
            return running if running is not None and running.bytes_done >= 4 * CHUNK else None

        # the stream stops after its first half: the store has read exactly that much
        seen = wait_until(half_done, 30, "half of the upload on the image's progress")
        listed = {i.id: i.progress for i in cloud.image.list_images()}
        assert (seen.step, seen.bytes_done, seen.bytes_total) == ("upload", 4 * CHUNK,
                                                                  8 * CHUNK), seen
        assert listed[image.id] is not None and listed[image.id].bytes_done == 4 * CHUNK, \
            listed
        assert cloud.image.get(image.id).status == "saving"
    finally:
        stream.released.set()
        uploader.join(60)
    done = cloud.image.get(image.id)
    assert (done.status, done.size_bytes, done.progress) == ("active", 8 * CHUNK, None), done


class _SlowServer:
    """A loopback HTTP server whose ``/disk`` sends half of DATA, then waits to be released."""

    def __init__(self, data: bytes) -> None:
        self.released = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_HEAD(self) -> None:  # http.server's naming
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()

            def do_GET(self) -> None:
                self.do_HEAD()
                self.wfile.write(data[:len(data) // 2])
                self.wfile.flush()
                outer.released.wait(60)
                self.wfile.write(data[len(data) // 2:])

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/disk"
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.released.set()
        self._httpd.shutdown()
        self._httpd.server_close()


def test_client_image_import_shows_the_images_progress(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(copy_progress, "INTERVAL", 0.0)
    # whole chunks of the store's add on each side of the pause: a chunk is read once complete
    data = b"\0" * (4 * WRITE_CHUNK_SIZE)
    server = _SlowServer(data)
    port = server.url.split(":")[2].split("/")[0]
    config = tmp_path / "stackcore.conf"
    config.write_text(f"[DEFAULT]\nstate_path = {tmp_path / 'state'}\n"
                      "[image]\nstores = file, web\n"
                      f"[image_import]\nallowed_hosts = 127.0.0.1\nallowed_ports = {port}\n")

    def client(*argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        status = ClientApp(stdout=out, stderr=err).run(["--config-file", str(config), *argv])
        return status, out.getvalue(), err.getvalue()

    status, out, err = client("image", "create", "remote", "-f", "json")
    assert status == 0, err
    image_id = json.loads(out)["id"]
    # the half is in the store's hands once the image's progress says so: then release
    watcher_db = db_api.Database(f"sqlite:///{tmp_path / 'state' / 'stackcore.sqlite'}")

    def half_seen() -> bool:
        with watcher_db.read() as session:
            running = copy_progress.read(session, "image", [image_id]).get(image_id)
        return running is not None and running.bytes_done >= len(data) // 2

    def release() -> None:
        try:
            wait_until(half_seen, 60, "half of the import recorded")
        finally:
            server.released.set()

    releaser = threading.Thread(target=release)
    releaser.start()
    try:
        status, out, err = client("image", "import", image_id, "--url", server.url,
                                  "-f", "json")
    finally:
        releaser.join(60)
        server.close()
        watcher_db.dispose()
    assert status == 0, err
    image = json.loads(out)
    assert (image["status"], image["size_bytes"], image["progress"]) == \
        ("active", len(data), None), image
    assert f"importing image {image_id}: 50% ({len(data) // 2}/{len(data)} bytes) saving" \
        in err, err


def test_a_volume_from_an_image_shows_the_fetch_then_the_drivers_copy(
        make_cloud: Callable[..., stackcore.Cloud], monkeypatch: pytest.MonkeyPatch) -> None:
    from stackcore.image.stores import file as file_store
    from stackcore.image.stores.file import FileStore
    from stackcore.volume.fake import FakeVolumeDriver

    monkeypatch.setattr(copy_progress, "INTERVAL", 0.0)
    monkeypatch.setattr(file_store, "_COPY_STEP", CHUNK_SIZE)  # one report per chunk
    fetch_paused, copy_paused = threading.Event(), threading.Event()
    original_download, original_copy = FileStore.download_to, \
        FakeVolumeDriver.copy_image_to_volume

    def paused_download(self: FileStore, location: str, out: int,
                        on_bytes: Callable[[int], object] | None = None) -> int:
        reports = 0

        def held_after_the_first(count: int) -> None:
            nonlocal reports
            if on_bytes is not None:
                on_bytes(count)
            reports += 1
            if reports == 1 and not fetch_paused.wait(60):
                raise RuntimeError("the test never resumed the fetch")

        return original_download(self, location, out, held_after_the_first)

    def paused_copy(self: FakeVolumeDriver, volume: Any, image: Any) -> None:
        if not copy_paused.wait(60):
            raise RuntimeError("the test never resumed the copy")
        original_copy(self, volume, image)

    monkeypatch.setattr(FileStore, "download_to", paused_download)
    monkeypatch.setattr(FakeVolumeDriver, "copy_image_to_volume", paused_copy)
    cloud = make_cloud()
    size = 3 * CHUNK_SIZE
    image = cloud.image.create("disk")
    cloud.image.upload(image.id, b"\0" * size)
    volume = cloud.volume.create(1, image_id=image.id, wait=False)
    try:
        def progress_is(step: str, done: int, total: int | None) -> Any:
            return _volume_progress_is(cloud, volume.id, step, done, total)

        progress_is("fetch_image", CHUNK_SIZE, size)  # one chunk cached, the next one held
        fetch_paused.set()
        running = progress_is("copy_image_to_volume", 0, None)  # the driver reports no bytes
        assert cloud.volume.get(volume.id).status == "downloading", running
    finally:
        fetch_paused.set()
        copy_paused.set()
    done = wait_until(lambda: (v := cloud.volume.get(volume.id)).status != "downloading"
                      and v, 30, "the copy's end")
    assert (done.status, done.progress) == ("available", None), done


class _HeldAfterFirstRead:
    """A stream handed to a store's add that waits for ``resume`` before its second read."""

    def __init__(self, stream: Any, resume: threading.Event) -> None:
        self._stream, self._resume, self._reads = stream, resume, 0

    def read(self, size: int = -1, /) -> bytes:
        if self._reads == 1 and not self._resume.wait(60):
            raise RuntimeError("the test never resumed the upload")
        self._reads += 1
        data: bytes = self._stream.read(size)
        return data


def _small_volume_copy(monkeypatch: pytest.MonkeyPatch, size: int,
                       resume: threading.Event | None = None) -> None:
    """The fake driver's copy_volume_to_image writes ``size`` zero bytes (not the whole GiB),
    after ``resume`` when given."""
    from stackcore.volume.fake import FakeVolumeDriver

    def copy(self: FakeVolumeDriver, volume: Any, image: Any) -> None:
        if resume is not None and not resume.wait(60):
            raise RuntimeError("the test never resumed the copy")
        with open(image.path, "xb") as handle:
            handle.write(b"\0" * size)

    monkeypatch.setattr(FakeVolumeDriver, "copy_volume_to_image", copy)


def test_an_image_from_a_volume_shows_the_drivers_copy_then_the_upload(
        make_cloud: Callable[..., stackcore.Cloud], monkeypatch: pytest.MonkeyPatch) -> None:
    from stackcore.image.stores.file import FileStore

    monkeypatch.setattr(copy_progress, "INTERVAL", 0.0)
    copy_paused, upload_paused = threading.Event(), threading.Event()
    size = 3 * WRITE_CHUNK_SIZE
    _small_volume_copy(monkeypatch, size, copy_paused)
    original_add = FileStore.add

    def held_add(self: FileStore, image_id: str, stream: Any, size: int | None = None,
                 max_size: int | None = None) -> Any:
        return original_add(self, image_id, _HeldAfterFirstRead(stream, upload_paused), size,
                            max_size)

    monkeypatch.setattr(FileStore, "add", held_add)
    cloud = make_cloud()
    volume = cloud.volume.create(1, wait=True)
    outcome: dict[str, Any] = {}
    uploader = threading.Thread(target=lambda: outcome.update(
        made=cloud.volume.upload_to_image(volume.id, "from-volume")))
    uploader.start()
    try:
        def progress_is(step: str, done: int, total: int | None) -> Any:
            return _volume_progress_is(cloud, volume.id, step, done, total)

        running = progress_is("copy_volume_to_image", 0, None)  # the driver reports no bytes
        assert cloud.volume.get(volume.id).status == "uploading", running
        copy_paused.set()
        progress_is("upload", WRITE_CHUNK_SIZE, size)  # one chunk read, the next one held
    finally:
        copy_paused.set()
        upload_paused.set()
        uploader.join(60)
    assert not uploader.is_alive(), "the upload did not end"
    image = cloud.image.get(outcome["made"]["id"])
    assert (image.status, image.size_bytes) == ("active", size), image
    done = cloud.volume.get(volume.id)
    assert (done.status, done.progress) == ("available", None), done

