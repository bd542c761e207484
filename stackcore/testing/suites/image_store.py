"""Image store conformance suite.

Import it into a test module of the store's package and run pytest with
``--stackcore-driver image.store:<name>`` and a config file whose ``[store]`` section
(:data:`~stackcore.image.store.CONFORMANCE_SECTION`) configures the store. The store is used as
the image API uses it; what it returns is checked against what was sent (bytes, size, sha256),
never against the store's own word.

What is checked, by feature:

* ``data`` - what was stored reads back whole and by ranges (``offset``/``length`` at the
  start, across chunk boundaries, past the end), in chunks no longer than ``CHUNK_SIZE``;
  ``get_size``; a missing image is ``NotFound`` (from the call, not the first chunk); an empty
  image; bad ranges refused; ``download_to`` writes the same bytes into a file from its
  position, reports them through ``on_bytes`` once they are in the file, stops on what
  ``on_bytes`` raises, and writes nothing for a missing image;
* ``writable`` (capability) - add reports the size and sha256 of what was sent; delete is
  idempotent; a second add of an id is ``Conflict`` and leaves the first intact; a size limit
  is refused as soon as it is crossed (the rest of the stream unread) with nothing left; a
  wrong declared size, a stream that fails mid-way: nothing left; ids and locations that would
  reach outside the store are refused; adds in parallel threads (distinct ids all stored, one
  id: exactly one wins);
* ``discard`` (capability) - everything of an image id goes (listed no more, ``NotFound`` to
  read, its backend names returned), an id with nothing stored is ``[]``, an id the store
  refuses is ``Invalid``;
* ``stats`` - the schema (:mod:`stackcore.image.stats`), ``writable`` as declared, usage
  growing with an add.

Content: a writable store gets it through ``add``; a read-only store (``writable`` declared
False: the ``web`` store) reads it from a local HTTP server the suite starts
(:mod:`stackcore.testing.httpserver`), by URL. After every test what it stored is deleted and
:meth:`~stackcore.image.store.ImageStore.list_backend_objects` must show what it showed before:
a leak fails the test itself.
"""

from __future__ import annotations

import concurrent.futures
import functools
import hashlib
import io
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from stackcore import exception
from stackcore.image import stats
from stackcore.image.store import (
    CHUNK_SIZE,
    CONFORMANCE_SECTION,
    WRITE_CHUNK_SIZE,
    ImageStore,
    SizeLimitExceeded,
    StoredImage,
)
from stackcore.testing import check
from stackcore.testing.harness import DriverUnderTest
from stackcore.testing.httpserver import FileServer
from stackcore.testing.plugin import verify_after

__all__ = [
    "TestImageStoreData",
    "TestImageStoreDiscard",
    "TestImageStoreStats",
    "TestImageStoreWritable",
    "image_server",
    "image_store",
    "seed",
]

FAMILY = pytest.mark.family("image.store")
WRITABLE = pytest.mark.capability("writable")
DISCARD = pytest.mark.capability("discard")

#: Enough to span several chunks and end mid-chunk.
SIZE = 2 * CHUNK_SIZE + 4099


def payload(size: int = SIZE) -> bytes:
    """Bytes that differ at every offset (a misplaced range shows)."""
    return os.urandom(size)


def new_id() -> str:
    return str(uuid.uuid4())


def read_all(chunks: Iterator[bytes], what: str) -> bytes:
    """Join a get()'s chunks, checking each is bytes and no longer than CHUNK_SIZE."""
    out = bytearray()
    for chunk in chunks:
        check.instance(chunk, bytes, f"a chunk of {what}")
        check.that(len(chunk) <= CHUNK_SIZE, f"chunk length of {what}",
                   f"at most {CHUNK_SIZE}", len(chunk))
        out += chunk
    return bytes(out)


def _stats(store: ImageStore) -> dict[str, Any]:
    """get_stats(), validated against the schema (a refusal fails the check, naming the
    field)."""
    report = check.step("get_stats()", store.get_stats)
    return check.step("the stats schema", lambda: stats.validate(report, "get_stats()"))


def _get_all(store: ImageStore, location: str) -> bytes:
    return read_all(store.get(location), "get()")


class CountingStream(io.RawIOBase):
    """A stream of ``data`` that counts what was read from it (and may fail at ``fail_at``)."""

    def __init__(self, data: bytes, fail_at: int | None = None) -> None:
        self._data = io.BytesIO(data)
        self.read_bytes = 0
        self.fail_at = fail_at

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1, /) -> bytes:
        if self.fail_at is not None and self.read_bytes >= self.fail_at:
            raise OSError("the client went away (injected by the kit)")
        data = self._data.read(size)
        self.read_bytes += len(data)
        return data


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture
def image_store(stackcore_target: DriverUnderTest,
                request: pytest.FixtureRequest) -> ImageStore:
    store: ImageStore = stackcore_target.new(CONFORMANCE_SECTION)
    check.instance(store, ImageStore, "the store object")
    check.step("do_setup()", store.do_setup)
    before = sorted(check.step("list_backend_objects()", store.list_backend_objects))

    def nothing_left() -> None:
        after = sorted(store.list_backend_objects())
        check.equal(after, before, "the store's objects after the test (the test's images "
                    "deleted)")

    verify_after(request, "backend objects", nothing_left)
    return store


@pytest.fixture(scope="session")
def image_server() -> Iterator[FileServer]:
    """The kit's HTTP server, content source of read-only stores."""
    with FileServer() as server:
        yield server


class Seeder:
    """Puts content where the store under test reads it; removes it after the test."""

    def __init__(self, store: ImageStore, writable: bool, server: FileServer) -> None:
        self.store = store
        self.writable = writable
        self.server = server
        self.made: list[str] = []
        self._served: dict[str, str] = {}

    def __call__(self, data: bytes) -> str:
        if self.writable:
            stored = check.step("add()", lambda: self.store.add(new_id(), io.BytesIO(data),
                                                                len(data)))
            self.made.append(stored.location)
            return stored.location
        check.that(any(s in ("http", "https") for s in self.store.SCHEMES),
                   "SCHEMES of a read-only store (the kit serves its content over http)",
                   "'http' among them", self.store.SCHEMES)
        name = new_id()
        location = self.server.put(name, data)
        self._served[location] = name
        return location

    def remove(self, location: str) -> None:
        """Make ``location`` missing (the image gone from under the store)."""
        if self.writable:
            self.store.delete(location)
        else:
            self.server.remove(self._served.pop(location))

    def cleanup(self) -> None:
        for location in self.made:
            self.store.delete(location)
        for location in list(self._served):
            self.remove(location)


@pytest.fixture
def seed(image_store: ImageStore, stackcore_target: DriverUnderTest, image_server: FileServer,
         request: pytest.FixtureRequest) -> Seeder:
    seeder = Seeder(image_store, stackcore_target.declared.get("writable", False), image_server)
    verify_after(request, "deleting the test's images", seeder.cleanup)
    return seeder


def _added(store: ImageStore, request: pytest.FixtureRequest) -> Callable[..., StoredImage]:
    """``add(image_id, data, ...)`` that deletes what it stored after the test."""
    made: list[str] = []

    def cleanup() -> None:
        for location in made:
            store.delete(location)

    verify_after(request, "deleting the test's images", cleanup)

    def add(image_id: str, stream: Any, size: int | None = None,
            max_size: int | None = None) -> StoredImage:
        stored = store.add(image_id, stream, size, max_size)
        made.append(stored.location)
        return stored

    return add


# --- data -----------------------------------------------------------------------------------


@FAMILY
@pytest.mark.feature("data")
class TestImageStoreData:
    def test_read_back_whole(self, image_store: ImageStore, seed: Seeder) -> None:
        data = payload()
        location = seed(data)
        got = read_all(check.step("get()", lambda: image_store.get(location)), "get()")
        check.equal(hashlib.sha256(got).hexdigest(), hashlib.sha256(data).hexdigest(),
                    f"sha256 of the {len(got)} bytes read back ({len(data)} stored)")
        check.equal(check.step("get_size()", lambda: image_store.get_size(location)),
                    len(data), "get_size()")

    def test_ranged_reads(self, image_store: ImageStore, seed: Seeder) -> None:
        data = payload()
        location = seed(data)
        end = len(data)
        cases = [(0, 1), (1, 100), (CHUNK_SIZE - 3, 7), (CHUNK_SIZE, CHUNK_SIZE + 1),
                 (end - 10, None), (end - 10, 100), (end, None), (end + 5, 3), (5, 0),
                 (0, None)]
        for offset, length in cases:
            got = read_all(check.step(f"get(offset={offset}, length={length})",
                                      functools.partial(image_store.get, location, offset,
                                                        length)),
                           f"get(offset={offset}, length={length})")
            wanted = data[offset:] if length is None else data[offset:offset + length]
            check.that(got == wanted, f"bytes of get(offset={offset}, length={length})",
                       f"{len(wanted)} bytes equal to the stored ones at that offset",
                       f"{len(got)} bytes" + ("" if len(got) != len(wanted) else ", different"))

    def test_bad_ranges_refused(self, image_store: ImageStore, seed: Seeder) -> None:
        location = seed(payload(100))
        for offset, length in ((-1, None), (0, -1)):
            check.raises(exception.Invalid,
                         functools.partial(image_store.get, location, offset, length),
                         f"get(offset={offset}, length={length})")

    def test_empty_image(self, image_store: ImageStore, seed: Seeder) -> None:
        location = seed(b"")
        check.equal(read_all(image_store.get(location), "get()"), b"", "an empty image read")
        check.equal(image_store.get_size(location), 0, "get_size() of an empty image")

    def test_missing_image(self, image_store: ImageStore, seed: Seeder) -> None:
        location = seed(payload(1000))
        seed.remove(location)
        check.raises(exception.NotFound, lambda: image_store.get(location),
                     "get() of an image that is gone (raised by the call itself)")
        check.raises(exception.NotFound, lambda: image_store.get(location, 10, 10),
                     "ranged get() of an image that is gone")
        check.raises(exception.NotFound, lambda: image_store.get_size(location),
                     "get_size() of an image that is gone")


    def test_download_to_a_file(self, image_store: ImageStore, seed: Seeder) -> None:
        data = payload()
        location = seed(data)
        head = b"head"  # download_to writes from the file's position, after this
        with tempfile.TemporaryFile() as out:
            out.write(head)
            out.flush()
            fd = out.fileno()
            reported: list[int] = []
            seen = bytearray()  # each reported piece, read back when it was reported

            def on_bytes(count: int) -> None:
                reported.append(count)
                at = len(head) + len(seen)
                seen.extend(os.pread(fd, count, at) if count > 0 else b"")

            written = check.step("download_to()",
                                 lambda: image_store.download_to(location, fd, on_bytes))
            check.equal(written, len(data), "bytes download_to() returned")
            check.that(all(n > 0 for n in reported), "on_bytes() counts", "each > 0",
                       reported)
            check.equal(sum(reported), len(data), f"sum of the {len(reported)} on_bytes() "
                        "counts")
            check.that(bytes(seen) == data, "the bytes in the file when on_bytes() reported "
                       "them", f"the {len(data)} stored bytes",
                       f"{len(seen)} bytes" + (", different" if len(seen) == len(data) else ""))
            got = os.pread(fd, len(head) + len(data) + 1, 0)  # one past: nothing more
            check.that(got[:len(head)] == head, "the file's first bytes after download_to()",
                       f"{head!r} (written before it, kept)", got[:len(head)])
            check.equal(hashlib.sha256(got[len(head):]).hexdigest(),
                        hashlib.sha256(data).hexdigest(),
                        f"sha256 of the {len(got) - len(head)} bytes download_to() wrote "
                        f"({len(data)} stored)")

    def test_download_to_stops_and_refuses(self, image_store: ImageStore,
                                           seed: Seeder) -> None:
        class Stop(Exception):
            pass

        def stop(count: int) -> None:
            raise Stop(count)

        location = seed(payload())
        empty = seed(b"")
        missing = seed(payload(1000))
        seed.remove(missing)
        with tempfile.TemporaryFile() as out:
            fd = out.fileno()
            check.raises(Stop, lambda: image_store.download_to(location, fd, stop),
                         "download_to() whose on_bytes() raises (the error passed on)")
            out.truncate(0)
            os.lseek(fd, 0, os.SEEK_SET)
            check.equal(check.step("download_to() of an empty image",
                                   lambda: image_store.download_to(empty, fd, stop)),
                        0, "bytes download_to() of an empty image returned")
            check.raises(exception.NotFound, lambda: image_store.download_to(missing, fd),
                         "download_to() of an image that is gone")
            check.equal(os.fstat(fd).st_size, 0,
                        "bytes in the file after download_to()s of an empty and a missing image")


# --- writable ---------------------------------------------------------------------------------


@FAMILY
@WRITABLE
class TestImageStoreWritable:
    def test_add_reports_size_and_sha256(self, image_store: ImageStore,
                                         request: pytest.FixtureRequest) -> None:
        add = _added(image_store, request)
        data = payload()
        stored = add(new_id(), io.BytesIO(data))  # size not declared: computed on the way
        check.instance(stored, StoredImage, "what add() returned")
        check.equal(stored.size, len(data), "size reported by add()")
        check.equal(stored.sha256, hashlib.sha256(data).hexdigest(), "sha256 reported by add()")
        check.that(stored.location in image_store.locations(), "locations() after add()",
                   f"to list {stored.location!r}", image_store.locations())
        check.equal(read_all(image_store.get(stored.location), "get()"), data,
                    "bytes read back after add()")

    def test_delete_idempotent(self, image_store: ImageStore) -> None:
        stored = image_store.add(new_id(), io.BytesIO(payload(5000)), 5000)
        check.step("delete()", lambda: image_store.delete(stored.location))
        check.step("delete() again", lambda: image_store.delete(stored.location))
        check.that(stored.location not in image_store.locations(), "locations() after delete()",
                   f"not to list {stored.location!r}", image_store.locations())
        check.raises(exception.NotFound, lambda: image_store.get(stored.location),
                     "get() after delete()")

    def test_duplicate_id_refused(self, image_store: ImageStore,
                                  request: pytest.FixtureRequest) -> None:
        add = _added(image_store, request)
        image_id, first = new_id(), payload(3000)
        stored = add(image_id, io.BytesIO(first))
        check.raises(exception.Conflict, lambda: add(image_id, io.BytesIO(payload(10))),
                     "a second add() of the same id")
        check.equal(read_all(image_store.get(stored.location), "get()"), first,
                    "the first image's bytes after a refused second add()")

    def test_size_limit(self, image_store: ImageStore) -> None:
        limit = CHUNK_SIZE + 10
        stream = CountingStream(payload(4 * CHUNK_SIZE))
        err = check.raises(SizeLimitExceeded, lambda: image_store.add(new_id(), stream,
                                                                      None, limit),
                           f"add() of {4 * CHUNK_SIZE} bytes with max_size={limit}")
        check.that("size" in str(err), "the size-limit error", "to name the field 'size'",
                   str(err))
        check.that(stream.read_bytes <= limit + CHUNK_SIZE,
                   "bytes read from the stream before the limit was refused",
                   f"at most {limit + CHUNK_SIZE} (the limit and one chunk)", stream.read_bytes)
        check.raises(SizeLimitExceeded, lambda: image_store.add(
            new_id(), CountingStream(b"x"), limit + 1, limit),
            "add() declaring a size over max_size")
        # the fixture's check: nothing left on the backend

    def test_wrong_declared_size(self, image_store: ImageStore) -> None:
        for declared, actual in ((100, 50), (50, 100)):
            check.raises(exception.Invalid, functools.partial(
                image_store.add, new_id(), io.BytesIO(payload(actual)), declared),
                f"add() declaring {declared} bytes of a {actual}-byte stream")

    def test_stream_failing_midway(self, image_store: ImageStore) -> None:
        # a whole chunk of Digesting's default size goes through first: the failure comes
        # after the store has written (or has in flight) some of the image
        stream = CountingStream(payload(3 * WRITE_CHUNK_SIZE), fail_at=WRITE_CHUNK_SIZE)
        err = check.raises(exception.Invalid, lambda: image_store.add(new_id(), stream),
                           "add() from a stream that raises mid-way")
        check.that("data" in str(err), "the error of a failing stream", "to name 'data'",
                   str(err))

    def test_ids_and_locations_stay_inside(self, image_store: ImageStore,
                                           request: pytest.FixtureRequest) -> None:
        for bad in ("../escape", "a/b", ".hidden", "", "x" * 200, "ok\n"):
            check.raises(exception.Invalid, functools.partial(
                image_store.add, bad, io.BytesIO(b"data")), f"add() with image id {bad!r}")
        stored = _added(image_store, request)(new_id(), io.BytesIO(b"inside"))
        head, _, name = stored.location.rpartition("/")
        for bad in (f"{head}/../{name}", f"{head}/..%2F..%2F{name}", f"{head}/{name}/..",
                    f"{head}/%2e%2e/{name}"):
            check.raises((exception.Invalid, exception.NotFound),
                         functools.partial(_get_all, image_store, bad),
                         f"get() of {bad!r} (outside the store or not one of its images)")
            check.raises((exception.Invalid, exception.NotFound),
                         functools.partial(image_store.get_size, bad), f"get_size() of {bad!r}")

    def test_concurrent_adds(self, image_store: ImageStore,
                             request: pytest.FixtureRequest) -> None:
        add = _added(image_store, request)
        datas = {new_id(): payload(CHUNK_SIZE + i) for i in range(6)}
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            stored = dict(zip(datas, pool.map(lambda i: add(i, io.BytesIO(datas[i])), datas),
                              strict=True))
        for image_id, data in datas.items():
            check.equal(read_all(image_store.get(stored[image_id].location), "get()"), data,
                        f"image {image_id} added in parallel, read back")
        # one id, added by 4 threads at once: exactly one wins
        image_id = new_id()
        contents = [payload(CHUNK_SIZE + 7) for _ in range(4)]

        def attempt(data: bytes) -> StoredImage | Exception:
            try:
                return add(image_id, io.BytesIO(data))
            except exception.Conflict as err:
                return err

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            results = list(pool.map(attempt, contents))
        won = [r for r in results if isinstance(r, StoredImage)]
        check.equal(len(won), 1, f"adds of one id by 4 threads that succeeded ({results})")
        got = read_all(image_store.get(won[0].location), "get()")
        check.that(got in contents and hashlib.sha256(got).hexdigest() == won[0].sha256,
                   "the image stored by the winning add", "exactly one sender's bytes",
                   f"{len(got)} bytes matching none")

    def test_usage_grows(self, image_store: ImageStore, request: pytest.FixtureRequest) -> None:
        before = _stats(image_store)
        stored = _added(image_store, request)(new_id(), io.BytesIO(payload(70000)))
        after = _stats(image_store)
        check.equal(after["image_count"] - before["image_count"], 1,
                    "image_count growth after one add()")
        check.that(after["used_bytes"] - before["used_bytes"] >= stored.size,
                   "used_bytes growth after adding 70000 bytes", ">= 70000",
                   after["used_bytes"] - before["used_bytes"])


# --- discard --------------------------------------------------------------------------------


@FAMILY
@DISCARD
class TestImageStoreDiscard:
    def test_discard_removes_everything_of_an_id(self, image_store: ImageStore,
                                                 request: pytest.FixtureRequest) -> None:
        image_id = new_id()
        stored = _added(image_store, request)(image_id, io.BytesIO(payload(9000)), 9000)
        removed = check.step("discard()", lambda: image_store.discard(image_id))
        check.that(isinstance(removed, list) and len(removed) >= 1,
                   f"discard({image_id!r})'s return", "the backend names it removed",
                   removed)
        check.that(stored.location not in image_store.locations(),
                   "locations() after discard()", f"not to list {stored.location!r}",
                   image_store.locations())
        check.raises(exception.NotFound, lambda: image_store.get(stored.location),
                     "get() after discard()")

    def test_discard_of_nothing_and_of_bad_ids(self, image_store: ImageStore) -> None:
        unknown = new_id()
        check.equal(check.step("discard() of an id never stored",
                               lambda: image_store.discard(unknown)), [],
                    f"discard({unknown!r}) of an id never stored")
        for bad in ("../escape", "", ".hidden"):
            check.raises(exception.Invalid, functools.partial(image_store.discard, bad),
                         f"discard() with image id {bad!r}")


# --- stats ----------------------------------------------------------------------------------


@FAMILY
@pytest.mark.feature("stats")
class TestImageStoreStats:
    def test_schema(self, image_store: ImageStore, stackcore_target: DriverUnderTest) -> None:
        report = _stats(image_store)
        check.equal(report["writable"], stackcore_target.declared.get("writable", False),
                    "stats 'writable' (the declared capability)")
        check.equal(report["image_count"], len(image_store.locations()),
                    "stats 'image_count' (len(locations()))")
