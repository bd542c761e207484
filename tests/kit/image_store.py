"""Broken image stores: each subclasses the core ``file`` store and breaks one rule of the
image store contract; the kit's image store suite must fail exactly what it breaks."""

from __future__ import annotations

import collections
import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

from stackcore import exception
from stackcore.image.store import ChunkReader, Digesting, Readable, StoredImage, check_range
from stackcore.image.stores.file import FileStore
from tests.kit.registry import Broken

M = "tests.kit.image_store"
DATA = "TestImageStoreData::"
WRITE = "TestImageStoreWritable::"
STATS = "TestImageStoreStats::"
DISCARD = "TestImageStoreDiscard::"


class CorruptRead(FileStore):
    """Flips the first byte of what it reads."""

    def get(self, location: str, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        chunks = list(super().get(location, offset, length))
        if chunks and chunks[0]:
            chunks[0] = bytes([chunks[0][0] ^ 0xFF]) + chunks[0][1:]
        return iter(chunks)


class IgnoresOffset(FileStore):
    """Reads from the start whatever the offset."""

    def get(self, location: str, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        return super().get(location, 0, length)


class ClampsBadRanges(FileStore):
    """Turns a negative offset into 0 instead of refusing it."""

    def get(self, location: str, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        return super().get(location, max(offset, 0), None if length is None else max(length, 0))


class PadsEmptyImages(FileStore):
    """Reads an empty image as one zero byte."""

    def get(self, location: str, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        chunks = list(super().get(location, offset, length))
        return iter(chunks or [b"\0"])


class LazyNotFound(FileStore):
    """Opens the file on the first ``next``: a missing image raises only then."""

    def get(self, location: str, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        check_range(offset, length)
        path = self._path(location)

        def chunks() -> Iterator[bytes]:
            try:
                handle = open(path, "rb")  # closed by the ChunkReader
            except FileNotFoundError:
                raise exception.NotFound("image", location) from None
            handle.seek(offset)
            yield from ChunkReader(handle, length)

        return chunks()


class WrongChecksum(FileStore):
    """Reports the sha256 of nothing."""

    def add(self, image_id: str, stream: Readable, size: int | None = None,
            max_size: int | None = None) -> StoredImage:
        stored = super().add(image_id, stream, size, max_size)
        return StoredImage(stored.location, stored.size,
                           "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")


class DeleteNotIdempotent(FileStore):
    """Raises NotFound deleting an image already gone."""

    def delete(self, location: str) -> None:
        path = self._path(location)
        if not os.path.exists(path):
            raise exception.NotFound("image", location)
        super().delete(location)


class Naive(FileStore):
    """Writes like many first drafts: checks, then writes in place or replaces."""

    OVERWRITE: ClassVar[bool] = False  # replace an existing image instead of Conflict
    CHECK_IDS: ClassVar[bool] = True
    LIMIT_AT_END: ClassVar[bool] = False  # read the whole stream, then check the limit
    KEEP_PARTIAL: ClassVar[bool] = False  # leave the temporary file when a write fails
    DECLARED_SIZE: ClassVar[bool] = True

    def add(self, image_id: str, stream: Readable, size: int | None = None,
            max_size: int | None = None) -> StoredImage:
        if self.CHECK_IDS:
            from stackcore.image.store import check_image_id

            check_image_id(image_id)
        final = os.path.join(self.datadir, image_id)
        if os.path.exists(final) and not self.OVERWRITE:
            raise exception.Conflict(f"image {image_id} exists")
        if self.LIMIT_AT_END:
            data = stream.read()
            if max_size is not None and len(data) > max_size:
                from stackcore.image.store import SizeLimitExceeded

                raise SizeLimitExceeded(max_size, len(data))
            import io

            stream = io.BytesIO(data)
        digest = Digesting(stream, size if self.DECLARED_SIZE else None, max_size)
        temp = f"{final}.{threading.get_ident()}.part"
        try:
            with open(temp, "wb") as handle:
                for chunk in digest.chunks():
                    handle.write(chunk)
            self._before_publish(image_id)
            os.replace(temp, final)
        except BaseException:
            if not self.KEEP_PARTIAL:
                with contextlib.suppress(OSError):
                    os.unlink(temp)
            raise
        return digest.result(self._location(image_id))


    def _before_publish(self, image_id: str) -> None:
        """Between the existence check and the publish (RacyPublish widens it)."""


class Overwrites(Naive):
    OVERWRITE = True


class RacyPublish(Naive):
    """Checks, then publishes with replace. The race is made certain, not timed: an add that
    passed the check waits (up to RENDEZVOUS s) until another add of the same id has passed
    it too, so concurrent adds of one id all "succeed" however busy the machine is."""

    RENDEZVOUS: ClassVar[float] = 3.0
    _passed: ClassVar[collections.Counter[str]] = collections.Counter()
    _changed: ClassVar[threading.Condition] = threading.Condition()

    def _before_publish(self, image_id: str) -> None:
        with self._changed:
            self._passed[image_id] += 1
            self._changed.notify_all()
            self._changed.wait_for(lambda: self._passed[image_id] >= 2, self.RENDEZVOUS)


class LimitAtEnd(Naive):
    LIMIT_AT_END = True


class IgnoresDeclaredSize(Naive):
    DECLARED_SIZE = False


class KeepsPartial(Naive):
    KEEP_PARTIAL = True


class NoIdCheck(Naive):
    CHECK_IDS = False


class FrozenUsage(FileStore):
    """Reports usage as it was at start-up."""

    def get_stats(self) -> dict[str, Any]:
        return {**super().get_stats(), "used_bytes": 0, "image_count": 0}


class CapacityInGiB(FileStore):
    """Reports capacity in GiB (floats), not bytes."""

    def get_stats(self) -> dict[str, Any]:
        report = super().get_stats()
        return {**report, "total_capacity_bytes": report["total_capacity_bytes"] / 2**30}


class WritableButDeclaredReadOnly(FileStore):
    """Adds and deletes fine but declares it cannot."""

    capabilities: ClassVar[dict[str, bool]] = {"writable": False}


class DiscardKeepsTheImage(FileStore):
    """Removes only the temporary files of an id's adds, not its complete image."""

    def discard(self, image_id: str) -> list[str]:
        removed = []
        for name in self._names():
            if name.startswith(f".{image_id}.") and name.endswith(".part"):
                os.unlink(os.path.join(self.datadir, name))
                removed.append(name)
        return removed


class DiscardUnknownRaises(FileStore):
    """Raises NotFound for an id it holds nothing of."""

    def discard(self, image_id: str) -> list[str]:
        removed = super().discard(image_id)
        if not removed:
            raise exception.NotFound("image", image_id)
        return removed


class DiscardsButDeclaresNot(FileStore):
    """Discards fine but declares it cannot."""

    capabilities: ClassVar[dict[str, bool]] = {"writable": True, "discard": False}


class DownloadDropsTail(FileStore):
    """``download_to`` writes (and reports) all but the last byte."""

    def download_to(self, location: str, out: int,
                    on_bytes: Callable[[int], object] | None = None) -> int:
        data = b"".join(self.get(location))[:-1]
        os.write(out, data)
        if on_bytes is not None and data:
            on_bytes(len(data))
        return len(data)


class DownloadReportsAhead(FileStore):
    """``download_to`` reports every byte through ``on_bytes`` before writing any."""

    def download_to(self, location: str, out: int,
                    on_bytes: Callable[[int], object] | None = None) -> int:
        size = self.get_size(location)
        if on_bytes is not None and size:
            on_bytes(size)
        return super().download_to(location, out)


class DownloadIgnoresStop(FileStore):
    """``download_to`` goes on when ``on_bytes`` raises."""

    def download_to(self, location: str, out: int,
                    on_bytes: Callable[[int], object] | None = None) -> int:
        def report(count: int) -> None:
            if on_bytes is not None:
                with contextlib.suppress(Exception):
                    on_bytes(count)

        return super().download_to(location, out, report)


def _b(name: str, cls: type, kills: list[str], expect: str, defect: str,
       outcome: str = "fail", capability: str = "") -> Broken:
    if not capability and all(k.startswith(WRITE) for k in kills):
        capability = "writable"
    return Broken("image.store", name, f"{M}:{cls.__name__}", tuple(kills), expect, outcome,
                  defect=defect, capability=capability)


ZOO = [
    _b("download-drops-tail", DownloadDropsTail, [DATA + "test_download_to_a_file"],
       "bytes download_to() returned: expected", "writes all but the last byte"),
    _b("download-reports-ahead", DownloadReportsAhead, [DATA + "test_download_to_a_file"],
       "the bytes in the file when on_bytes() reported them: expected",
       "reports bytes before they are written"),
    _b("download-ignores-stop", DownloadIgnoresStop,
       [DATA + "test_download_to_stops_and_refuses"],
       "(the error passed on): expected Stop, got no error",
       "goes on copying when on_bytes raises"),
    _b("corrupt-read", CorruptRead, [DATA + "test_read_back_whole"],
       "sha256 of the", "flips a byte of what it reads"),
    _b("ignores-offset", IgnoresOffset, [DATA + "test_ranged_reads"],
       "bytes of get(offset=1, length=100): expected 100 bytes equal", "ignores the offset"),
    _b("clamps-bad-ranges", ClampsBadRanges, [DATA + "test_bad_ranges_refused"],
       "get(offset=-1, length=None): expected Invalid, got no error",
       "reads from 0 on a negative offset"),
    _b("pads-empty", PadsEmptyImages, [DATA + "test_empty_image"],
       "an empty image read: expected b'', got b'\\x00'", "reads an empty image as a byte"),
    _b("lazy-not-found", LazyNotFound, [DATA + "test_missing_image"],
       "expected NotFound, got no error", "raises NotFound only on the first chunk"),
    _b("wrong-checksum", WrongChecksum, [WRITE + "test_add_reports_size_and_sha256"],
       "sha256 reported by add(): expected", "reports another checksum"),
    _b("delete-not-idempotent", DeleteNotIdempotent, [WRITE + "test_delete_idempotent"],
       "delete() again raised NotFound", "a second delete raises"),
    _b("overwrites", Overwrites, [WRITE + "test_duplicate_id_refused"],
       "a second add() of the same id: expected Conflict, got no error",
       "replaces an existing image"),
    _b("racy-publish", RacyPublish, [WRITE + "test_concurrent_adds"],
       "adds of one id by 4 threads that succeeded", "checks, then publishes with replace"),
    _b("limit-at-end", LimitAtEnd, [WRITE + "test_size_limit"],
       "bytes read from the stream before the limit was refused",
       "reads the whole stream before checking the limit"),
    _b("ignores-declared-size", IgnoresDeclaredSize, [WRITE + "test_wrong_declared_size"],
       "add() declaring 100 bytes of a 50-byte stream: expected Invalid, got no error",
       "stores what it got whatever was declared"),
    _b("keeps-partial", KeepsPartial, [WRITE + "test_stream_failing_midway"],
       "the store's objects after the test", "leaves half an image when the stream fails"),
    _b("no-id-check", NoIdCheck, [WRITE + "test_ids_and_locations_stay_inside"],
       "add() with image id '../escape': expected Invalid", "takes any id as a file name"),
    _b("frozen-usage", FrozenUsage, [WRITE + "test_usage_grows"],
       "image_count growth after one add(): expected 1, got 0", "reports no usage"),
    _b("capacity-in-gib", CapacityInGiB, [STATS + "test_schema"],
       "the stats schema raised StatsSchemaError", "reports GiB floats"),
    _b("discard-keeps-image", DiscardKeepsTheImage,
       [DISCARD + "test_discard_removes_everything_of_an_id"],
       "discard('", "removes only partial adds, not the image", capability="discard"),
    _b("discard-unknown-raises", DiscardUnknownRaises,
       [DISCARD + "test_discard_of_nothing_and_of_bad_ids"],
       "discard() of an id never stored raised NotFound", "raises NotFound for nothing",
       capability="discard"),
    _b("liar-discard", DiscardsButDeclaresNot,
       [DISCARD + "test_discard_of_nothing_and_of_bad_ids"],
       "capability 'discard' is declared unsupported", "discards but declares it cannot",
       "unexpected-success", "discard"),
    _b("liar-writable", WritableButDeclaredReadOnly, [WRITE + "test_delete_idempotent"],
       "capability 'writable' is declared unsupported", "writes but declares it cannot",
       "unexpected-success", "writable"),
]
