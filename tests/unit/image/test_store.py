"""The image store contract, the file and web stores beyond what the conformance suite checks
(their edges: a server ignoring ranges, unreachable servers, paths outside the store), and the
load-time validation of store plugins."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import socket
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from oslo_config import cfg

from stackcore import conf as sc_conf
from stackcore import exception
from stackcore.image import stats
from stackcore.image.store import (
    CHUNK_SIZE,
    CONTRACT,
    NAMESPACE,
    WRITE_CHUNK_SIZE,
    Digesting,
    ImageStore,
    SizeLimitExceeded,
)
from stackcore.image.stores import file as file_module
from stackcore.image.stores.file import FileStore
from stackcore.image.stores.web import WebStore
from stackcore.plugins import loader
from stackcore.testing.httpserver import FileServer


def _conf(tmp_path: Any, store: type[ImageStore], **options: Any) -> cfg.ConfigOpts:
    conf = sc_conf.load([])
    sc_conf.register(conf, [("store", store.get_store_options())])
    sc_conf.set_override(conf, "DEFAULT", "state_path", str(tmp_path))
    for name, value in options.items():
        sc_conf.set_override(conf, "store", name, value)
    return conf


@pytest.fixture
def file_store(tmp_path: Any) -> FileStore:
    store = FileStore(_conf(tmp_path, FileStore), "store")
    store.do_setup()
    return store


@pytest.fixture
def web_store(tmp_path: Any) -> WebStore:
    store = WebStore(_conf(tmp_path, WebStore, timeout=5), "store")
    store.do_setup()
    return store


def _read(chunks: Iterator[bytes]) -> bytes:
    return b"".join(chunks)


# --- contract -------------------------------------------------------------------------------


def test_shipped_stores_load_through_their_entry_points() -> None:
    for name, cls in (("file", FileStore), ("web", WebStore)):
        plugin = loader.load_one(NAMESPACE, name, CONTRACT)
        assert plugin.cls is cls, (name, plugin)
    assert CONTRACT.declared(WebStore) == {"writable": False, "discard": False}
    assert CONTRACT.declared(FileStore) == {"writable": True, "discard": True}


def test_contract_refuses_a_store_declaring_writable_without_add() -> None:
    class Lying(WebStore):
        capabilities: ClassVar[dict[str, bool]] = {"writable": True}

    problems = CONTRACT.problems(Lying)
    assert any("add() is not implemented" in p for p in problems), problems
    assert any("delete() is not implemented" in p for p in problems), problems


def test_contract_refuses_missing_schemes_and_bad_signatures() -> None:
    class Broken(FileStore):
        SCHEMES = ()

        def get(self, location: str) -> Iterator[bytes]:  # type: ignore[override]
            return iter(())

    problems = CONTRACT.problems(Broken)
    assert any("SCHEMES" in p for p in problems), problems
    assert any(p.startswith("get(): missing parameter 'offset'") for p in problems), problems


def test_read_only_store_refuses_writes_as_unsupported(web_store: WebStore) -> None:
    with pytest.raises(exception.CapabilityNotSupported, match="writable"):
        web_store.add("abc", io.BytesIO(b"x"))
    with pytest.raises(exception.CapabilityNotSupported, match="writable"):
        web_store.delete("http://127.0.0.1:1/abc")


def test_stats_schema_refuses_free_over_total() -> None:
    report = {"driver_version": "1", "writable": True, "total_capacity_bytes": 10,
              "free_capacity_bytes": 11, "used_bytes": 0, "image_count": 0}
    with pytest.raises(exception.StatsSchemaError, match="free_capacity_bytes"):
        stats.validate(report, "test")
    with pytest.raises(exception.StatsSchemaError, match="used_bytes"):
        stats.validate({**report, "free_capacity_bytes": 1, "used_bytes": -1}, "test")


class _Recorder(io.BytesIO):
    """A stream recording the size of every read asked of it and the bytes it gave."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.asked: list[int] = []
        self.given = 0

    def read(self, size: int | None = -1, /) -> bytes:
        self.asked.append(-1 if size is None else size)
        data = super().read(size)
        self.given += len(data)
        return data


def test_digesting_reads_whole_write_chunks_and_hashes_them_in_order() -> None:
    data = os.urandom(2 * WRITE_CHUNK_SIZE + 5)
    stream = _Recorder(data)
    digest = Digesting(stream, len(data), None)
    lengths = [len(chunk) for chunk in digest.chunks()]
    assert lengths == [WRITE_CHUNK_SIZE, WRITE_CHUNK_SIZE, 5], lengths
    result = digest.result("x://y")
    assert (result.size, result.sha256) == (len(data), hashlib.sha256(data).hexdigest()), result


@pytest.mark.parametrize("declared, max_size", [(None, CHUNK_SIZE + 10), (CHUNK_SIZE + 10, None)])
def test_digesting_reads_at_most_one_byte_past_a_limit(declared: int | None,
                                                       max_size: int | None) -> None:
    # with chunks of WRITE_CHUNK_SIZE a stream over a limit would otherwise be read up to a
    # whole chunk too far before being refused
    stream = _Recorder(b"z" * (4 * WRITE_CHUNK_SIZE))
    digest = Digesting(stream, declared, max_size)
    with pytest.raises(exception.Invalid, match="size"):
        for _chunk in digest.chunks():
            pass
    assert stream.given == CHUNK_SIZE + 11, (stream.given, stream.asked)


# --- file store -----------------------------------------------------------------------------


def test_file_store_starts_writeback_as_it_goes_and_fsyncs_before_returning(
        file_store: FileStore, monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[tuple[int, int, int, int]] = []  # offset, length, flags, result
    synced: list[int] = []  # inodes
    real_range, real_fsync = file_module._sync_file_range(), os.fsync
    assert real_range is not None, "libc has no sync_file_range"

    def sync_range(fd: int, offset: int, length: int, flags: int) -> int:
        result: int = real_range(fd, offset, length, flags)
        started.append((offset, length, flags, result))
        return result

    def fsync(fd: int) -> None:
        synced.append(os.fstat(fd).st_ino)
        real_fsync(fd)

    monkeypatch.setattr(file_module, "_WRITEBACK", WRITE_CHUNK_SIZE)
    monkeypatch.setattr(file_module, "_sync_file_range", lambda: sync_range)
    monkeypatch.setattr(os, "fsync", fsync)
    data = os.urandom(3 * WRITE_CHUNK_SIZE + 5)
    stored = file_store.add("img-wb", io.BytesIO(data), len(data))
    # every whole chunk handed to the disk as it was written; the tail left to the fsync
    assert started == [(i * WRITE_CHUNK_SIZE, WRITE_CHUNK_SIZE,
                        file_module.SYNC_FILE_RANGE_WRITE, 0) for i in range(3)], started
    path = file_store.local_path(stored.location)
    assert os.stat(path).st_ino in synced, (os.stat(path).st_ino, synced)
    with open(path, "rb") as handle:
        assert handle.read() == data
    assert (stored.size, stored.sha256) == (len(data), hashlib.sha256(data).hexdigest()), stored



def _spy_copy_file_range(monkeypatch: pytest.MonkeyPatch, fail_call: int | None = None,
                         asked: list[int] | None = None) -> list[int]:
    """Count ``os.copy_file_range``'s calls (their results; the counts asked in ``asked``);
    call ``fail_call`` (0-based) raises EXDEV, as between two filesystems that cannot copy in
    the kernel."""
    results: list[int] = []
    real = os.copy_file_range

    def spy(source: int, out: int, count: int, *args: Any) -> int:
        if asked is not None:
            asked.append(count)
        if len(results) == fail_call:
            results.append(-1)
            raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))
        copied = real(source, out, count, *args)
        results.append(copied)
        return copied

    monkeypatch.setattr(os, "copy_file_range", spy)
    return results


def _download(store: FileStore, location: str, path: Any) -> tuple[int, list[int], bytes]:
    reported: list[int] = []
    with open(path, "wb+") as out:
        written = store.download_to(location, out.fileno(), reported.append)
    with open(path, "rb") as handle:
        return written, reported, handle.read()


def test_file_store_download_to_copies_inside_the_kernel(
        file_store: FileStore, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    step = 1024 * 1024
    monkeypatch.setattr(file_module, "_COPY_STEP", step)
    data = os.urandom(3 * step + 5)
    stored = file_store.add("img-copy", io.BytesIO(data), len(data))
    calls = _spy_copy_file_range(monkeypatch)
    written, reported, got = _download(file_store, stored.location, tmp_path / "out")
    assert calls == [step, step, step, 5, 0], f"copy_file_range's results: {calls}"
    assert (written, reported) == (len(data), [step, step, step, 5]), (written, reported)
    assert got == data, f"{len(got)} bytes copied, {len(data)} stored"


def test_file_store_download_to_goes_through_user_space_where_the_kernel_cannot(
        file_store: FileStore, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    data = os.urandom(2 * WRITE_CHUNK_SIZE + 7)
    stored = file_store.add("img-exdev", io.BytesIO(data), len(data))
    calls = _spy_copy_file_range(monkeypatch, fail_call=0)
    written, reported, got = _download(file_store, stored.location, tmp_path / "out")
    assert calls == [-1], f"copy_file_range was called again after EXDEV: {calls}"
    assert written == sum(reported) == len(data), (written, reported)
    assert got == data, f"{len(got)} bytes copied, {len(data)} stored"


def test_file_store_download_to_does_not_start_over_after_a_partial_copy(
        file_store: FileStore, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """An error after some bytes were copied is the download's failure: going on through
    user space would duplicate or skip bytes if the positions moved."""
    monkeypatch.setattr(file_module, "_COPY_STEP", 4096)
    data = os.urandom(3 * 4096)
    stored = file_store.add("img-partial", io.BytesIO(data), len(data))
    _spy_copy_file_range(monkeypatch, fail_call=1)
    with pytest.raises(OSError) as err:
        _download(file_store, stored.location, tmp_path / "out")
    assert err.value.errno == errno.EXDEV, err.value


def test_file_store_download_to_of_a_missing_image_is_not_found(file_store: FileStore,
                                                                tmp_path: Any) -> None:
    stored = file_store.add("img-gone", io.BytesIO(b"x"), 1)
    file_store.delete(stored.location)
    with pytest.raises(exception.NotFound), open(tmp_path / "out", "wb") as out:
        file_store.download_to(stored.location, out.fileno())


def _source(tmp_path: Any, data: bytes) -> Any:
    path = tmp_path / f"source-{len(data)}"
    path.write_bytes(data)
    return path


def test_file_store_add_of_a_local_file_copies_inside_the_kernel(
        file_store: FileStore, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    data = os.urandom(2 * WRITE_CHUNK_SIZE + 9)
    calls = _spy_copy_file_range(monkeypatch)
    with open(_source(tmp_path, data), "rb") as stream:
        stored = file_store.add("img-kernel", stream, len(data))
        assert stream.tell() == len(data), f"the stream is at {stream.tell()} after the add"
    assert calls == [WRITE_CHUNK_SIZE, WRITE_CHUNK_SIZE, 9, 0], f"copy_file_range: {calls}"
    assert (stored.size, stored.sha256) == (len(data), hashlib.sha256(data).hexdigest()), stored
    with open(file_store.local_path(stored.location), "rb") as handle:
        assert handle.read() == data


def test_file_store_kernel_copy_keeps_the_limits(
        file_store: FileStore, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A local file over the limit: refused having copied at most one byte past it, nothing
    left; shorter than declared: Invalid naming the size, nothing left."""
    data = os.urandom(WRITE_CHUNK_SIZE + 100)
    asked: list[int] = []
    _spy_copy_file_range(monkeypatch, asked=asked)
    with open(_source(tmp_path, data), "rb") as stream, \
            pytest.raises(SizeLimitExceeded) as err:
        file_store.add("img-limit", stream, max_size=1000)
    assert sum(asked) <= 1001, f"asked the kernel for {asked} bytes with a 1000-byte limit"
    assert "1000" in str(err.value), err.value
    with open(_source(tmp_path, data), "rb") as stream, \
            pytest.raises(exception.Invalid, match="declared") as err:
        file_store.add("img-short", stream, size=len(data) + 1)
    assert err.value.field == "size", err.value  # type: ignore[attr-defined]
    assert file_store.list_backend_objects() == [], file_store.list_backend_objects()


def test_file_store_add_reads_a_stream_with_bytes_read_ahead_through_python(
        file_store: FileStore, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A buffered file already read from holds bytes the descriptor is past: the kernel copy
    would skip them, so the add reads the stream (and stores exactly what is left of it)."""
    data = os.urandom(3 * 1024 * 1024)
    calls = _spy_copy_file_range(monkeypatch)
    with open(_source(tmp_path, data), "rb") as stream:
        assert stream.read(10) == data[:10]
        stored = file_store.add("img-buffered", stream)
    assert calls == [], f"copy_file_range was used on a stream with bytes read ahead: {calls}"
    assert (stored.size, stored.sha256) == (len(data) - 10,
                                            hashlib.sha256(data[10:]).hexdigest()), stored


def test_file_store_add_falls_back_where_the_kernel_cannot_copy(
        file_store: FileStore, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    data = os.urandom(WRITE_CHUNK_SIZE + 3)
    calls = _spy_copy_file_range(monkeypatch, fail_call=0)
    with open(_source(tmp_path, data), "rb") as stream:
        stored = file_store.add("img-exdev-add", stream, len(data))
    assert calls == [-1], f"copy_file_range after EXDEV: {calls}"
    assert (stored.size, stored.sha256) == (len(data), hashlib.sha256(data).hexdigest()), stored


def _sparse_source(tmp_path: Any, size: int, pieces: dict[int, bytes]) -> Any:
    """A file of ``size`` bytes holding ``pieces`` (offset -> bytes), holes elsewhere."""
    path = tmp_path / f"sparse-{size}-{len(pieces)}"
    with open(path, "wb") as handle:
        for offset, piece in pieces.items():
            handle.seek(offset)
            handle.write(piece)
        handle.truncate(size)
    return path


def _expected(size: int, pieces: dict[int, bytes]) -> bytes:
    data = bytearray(size)
    for offset, piece in pieces.items():
        data[offset:offset + len(piece)] = piece
    return bytes(data)


@pytest.mark.parametrize("layout", ["data, hole, data, trailing hole", "hole first",
                                    "all hole"])
def test_file_store_add_of_a_sparse_file_keeps_its_holes(
        file_store: FileStore, tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
        layout: str) -> None:
    """A raw disk (a server's snapshot) is mostly holes: they stay holes in the store - not
    written, yet counted and hashed as the zeros they read as."""
    size = 256 * 1024 * 1024
    pieces = {"data, hole, data, trailing hole": {0: os.urandom(1024 * 1024),
                                                  100 * 1024 * 1024: os.urandom(65536)},
              "hole first": {200 * 1024 * 1024: os.urandom(4096)},
              "all hole": {}}[layout]
    source = _sparse_source(tmp_path, size, pieces)
    asked: list[int] = []
    _spy_copy_file_range(monkeypatch, asked=asked)
    with open(source, "rb") as stream:
        stored = file_store.add("img-sparse", stream, size)
        assert stream.tell() == size, f"the stream is at {stream.tell()} after the add"
    wanted = _expected(size, pieces)
    assert (stored.size, stored.sha256) == (size, hashlib.sha256(wanted).hexdigest()), stored
    path = file_store.local_path(stored.location)
    with open(path, "rb") as handle:
        assert handle.read() == wanted, "the stored image differs from the source"
    allocated = os.stat(path).st_blocks * 512
    data_bytes = sum(len(p) for p in pieces.values())
    assert allocated <= data_bytes + 4 * 1024 * 1024, \
        f"{allocated} bytes allocated for {data_bytes} bytes of data: holes were written"
    assert sum(asked) <= data_bytes + 2 * WRITE_CHUNK_SIZE, \
        f"asked the kernel to copy {sum(asked)} bytes of a file holding {data_bytes}"


def test_file_store_add_of_a_sparse_file_falls_back_after_its_leading_hole(
        file_store: FileStore, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel refusing its first copy after a skipped hole: the add goes on through
    Python from there (nothing twice, nothing skipped)."""
    size = 32 * 1024 * 1024
    pieces = {20 * 1024 * 1024: os.urandom(WRITE_CHUNK_SIZE + 5)}
    calls = _spy_copy_file_range(monkeypatch, fail_call=0)
    with open(_sparse_source(tmp_path, size, pieces), "rb") as stream:
        stored = file_store.add("img-sparse-exdev", stream, size)
    assert calls == [-1], f"copy_file_range after EXDEV: {calls}"
    wanted = _expected(size, pieces)
    assert (stored.size, stored.sha256) == (size, hashlib.sha256(wanted).hexdigest()), stored
    with open(file_store.local_path(stored.location), "rb") as handle:
        assert handle.read() == wanted


def test_file_store_add_of_a_pseudo_file_reads_it(file_store: FileStore) -> None:
    """/proc files are regular files of size 0 whose bytes only read() produces (some kernels
    copy them as empty): nothing copied is confirmed by reading."""
    with open("/proc/self/cmdline", "rb") as stream:
        stored = file_store.add("img-proc", stream)
    with open("/proc/self/cmdline", "rb") as stream:
        wanted = stream.read()
    assert wanted and stored.size == len(wanted), (stored, len(wanted))


def test_file_store_add_publishes_only_complete_images(file_store: FileStore) -> None:
    stored = file_store.add("img-1", io.BytesIO(b"a" * 10), 10)
    assert os.listdir(file_store.datadir) == ["img-1"]
    assert stored.location == f"file://{file_store.datadir}/img-1"
    assert file_store.local_path(stored.location) == os.path.join(file_store.datadir, "img-1")
    with pytest.raises(SizeLimitExceeded) as err:
        file_store.add("img-2", io.BytesIO(b"b" * (CHUNK_SIZE + 1)), None, CHUNK_SIZE)
    assert err.value.kwargs["limit"] == CHUNK_SIZE, err.value.kwargs
    assert os.listdir(file_store.datadir) == ["img-1"], "a refused add left a temporary file"


def test_file_store_refuses_locations_outside_its_directory(file_store: FileStore,
                                                            tmp_path: Any) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"host file")
    for location in (f"file://{secret}", "file:///etc/passwd", f"file://{file_store.datadir}",
                     f"file://{file_store.datadir}/../secret", "http://example.com/x",
                     f"file://{file_store.datadir}/.hidden"):
        with pytest.raises(exception.Invalid, match="location"):
            file_store.get(location)
        with pytest.raises(exception.Invalid, match="location"):
            file_store.delete(location)
    assert secret.read_bytes() == b"host file"


def test_file_store_setup_refuses_an_unwritable_directory(tmp_path: Any) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    store = FileStore(_conf(tmp_path, FileStore, datadir=str(blocker / "images")), "store")
    with pytest.raises(exception.ConfigError, match="datadir"):
        store.do_setup()


# --- web store ------------------------------------------------------------------------------


def test_web_store_reads_ranges_from_a_server_that_ignores_them(web_store: WebStore) -> None:
    data = os.urandom(CHUNK_SIZE + 500)
    with FileServer(ranges=False) as server:
        url = server.put("img", data)
        assert _read(web_store.get(url, 10, 20)) == data[10:30]
        assert _read(web_store.get(url, CHUNK_SIZE + 400)) == data[CHUNK_SIZE + 400:]
        assert _read(web_store.get(url, len(data) + 1)) == b""
        assert web_store.get_size(url) == len(data)


def test_web_store_asks_for_ranges(web_store: WebStore) -> None:
    data = os.urandom(1000)
    with FileServer() as server:
        url = server.put("img", data)
        assert _read(web_store.get(url, 100, 50)) == data[100:150]
        assert ("GET", "/img", "bytes=100-149") in server.requests, server.requests
        assert _read(web_store.get(url)) == data
        assert server.requests[-1] == ("GET", "/img", ""), server.requests


def test_web_store_size_without_content_length_on_head(web_store: WebStore) -> None:
    with FileServer(head_length=False) as server:
        assert web_store.get_size(server.put("img", b"12345")) == 5
        assert web_store.get_size(server.put("empty", b"")) == 0


def test_web_store_unreachable_server_is_backend_unavailable(web_store: WebStore) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(exception.BackendUnavailable) as err:
        web_store.get(f"http://user:hunter2@127.0.0.1:{port}/img")
    assert "hunter2" not in str(err.value), "a password in the URL reached the message"


def test_web_store_refuses_other_schemes(web_store: WebStore) -> None:
    for location in ("file:///etc/passwd", "ftp://example.com/x", "http:///nohost", 42):
        with pytest.raises(exception.Invalid, match="location"):
            web_store.get(location)  # type: ignore[arg-type]
