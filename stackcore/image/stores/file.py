"""The ``file`` image store: one file per image in a directory (local, or shared by the hosts).

An add writes ``.<id>.<random>.part`` in the same directory, fsyncs it, then publishes it under
the image id with ``link()`` - atomic and never replacing an existing image, so two adds of
one id cannot both win and a reader never sees half an image - and removes the temporary
name. Locations are ``file://<directory>/<id>``; a location naming anything but a direct child
of the directory with an image id's name is refused, so no id or location reaches outside it.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import urllib.parse
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from stackcore import exception
from stackcore.image.store import (
    IMAGE_ID,
    NO_IN_KERNEL_COPY,
    ChunkReader,
    Digesting,
    ImageStore,
    Readable,
    StoredImage,
    check_image_id,
    check_range,
    write_chunks,
)

if TYPE_CHECKING:
    from oslo_config import cfg

_PART = ".part"

#: Bytes written between two starts of writeback (see :func:`_start_writeback`).
_WRITEBACK = 32 * 1024 * 1024


#: sync_file_range's flag: start writing the range's dirty pages, do not wait (<fcntl.h>)
SYNC_FILE_RANGE_WRITE = 2


@functools.cache
def _sync_file_range() -> Any:
    """libc's ``sync_file_range`` (Linux; Python's os module has no binding), or None."""
    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    function.restype = ctypes.c_int
    return function


def _start_writeback(fd: int, offset: int, length: int) -> None:
    """Have the kernel start writing a range just written to disk, without waiting for it.

    Why: the final fsync would otherwise find the whole image dirty in memory and write it
    all only then, after the copy - ``cp`` then ``sync`` does exactly that, and an add cost
    the copy, the hashing and then the whole disk write. Started as the add goes, the disk
    writes overlap the reading and hashing of the next chunks, and the fsync (still what makes
    the image durable) waits only for the tail: about 98 % of ``cp`` + ``sync`` against 72 %
    without, in alternating rounds on a loaded host. ``sync_file_range`` rather than
    ``posix_fadvise(POSIX_FADV_DONTNEED)``, which starts writeback too but also drops the
    range's pages already clean: the image just stored (read next by the format inspection,
    a first boot) then came from the disk - its read took half as long again. A hint only:
    where it is missing or fails, the fsync still writes everything."""
    function = _sync_file_range()
    if function is not None:
        function(fd, offset, length, SYNC_FILE_RANGE_WRITE)  # an error: the fsync does it all


#: Bytes one ``copy_file_range`` call of :meth:`FileStore.download_to` copies: the unit of its
#: ``on_bytes`` reports (the image cache reads each piece back to hash it as the next is
#: copied, so a piece is also what the cache holds in memory at once).
_COPY_STEP = 8 * 1024 * 1024

def _copy_file(source: int, out: int, on_bytes: Callable[[int], object] | None) -> int:
    """Copy the open file ``source`` from its position to ``out`` at its position.

    Why ``copy_file_range``: the bytes never enter Python (nor user space): the kernel copies
    page-cache pages, or shares the extents where the filesystem can (XFS, btrfs reflinks) -
    what ``cp`` does, and the benchmark's yardstick. Handing each 1 MiB chunk of
    :meth:`FileStore.get` to Python and writing it back reached 21 % of ``cp``'s throughput."""
    done = 0
    while True:
        try:
            copied = os.copy_file_range(source, out, _COPY_STEP)
        except OSError as err:
            if done or err.errno not in NO_IN_KERNEL_COPY:
                raise
            with open(source, "rb", buffering=0, closefd=False) as handle:
                return write_chunks(ChunkReader(handle, None, _COPY_STEP), out, on_bytes)
        if not copied:
            return done
        done += copied
        if on_bytes is not None:
            on_bytes(copied)


class FileStore(ImageStore):
    """Images as files in ``datadir``."""

    VERSION = "1.0.0"
    SCHEMES = ("file",)
    capabilities: ClassVar[dict[str, bool]] = {"writable": True, "discard": True}

    @classmethod
    def get_store_options(cls) -> list[cfg.Opt]:
        from oslo_config import cfg

        return [cfg.StrOpt("datadir", help="Directory of the image files (made if missing). "
                           "Unset: <state_path>/image-store.")]

    def __init__(self, conf: cfg.ConfigOpts, group: str) -> None:
        super().__init__(conf, group)
        configured = self.configuration.datadir or os.path.join(conf.state_path or ".",
                                                                "image-store")
        self.datadir = os.path.realpath(configured)

    def do_setup(self) -> None:
        try:
            os.makedirs(self.datadir, exist_ok=True)
        except OSError as err:
            raise exception.ConfigError(f"[{self.group}] datadir {self.datadir!r} cannot be "
                                        f"made: {err.strerror}") from err
        if not os.access(self.datadir, os.W_OK | os.X_OK):
            raise exception.ConfigError(f"[{self.group}] datadir {self.datadir!r} is not "
                                        "writable by this process")

    # --- locations ----------------------------------------------------------------------------

    def _location(self, image_id: str) -> str:
        return "file://" + urllib.parse.quote(os.path.join(self.datadir, image_id))

    def _path(self, location: str) -> str:
        """The file of ``location``: only a direct child of datadir named like an image id."""
        if not isinstance(location, str) or not location.startswith("file://"):
            raise exception.Invalid("location", "is not a file:// location of this store",
                                    location)
        path = urllib.parse.unquote(location[len("file://"):])
        directory, name = os.path.split(path)
        if os.path.realpath(directory) != self.datadir or not IMAGE_ID.match(name):
            raise exception.Invalid("location", f"is not an image of the store in "
                                    f"{self.datadir}", location)
        return os.path.join(self.datadir, name)

    # --- writing ------------------------------------------------------------------------------

    def add(self, image_id: str, stream: Readable, size: int | None = None,
            max_size: int | None = None) -> StoredImage:
        check_image_id(image_id)
        final = os.path.join(self.datadir, image_id)
        if os.path.lexists(final):
            raise exception.Conflict(f"image {image_id} is already in the store at {final}")
        digest = Digesting(stream, size, max_size)
        temp = os.path.join(self.datadir, f".{image_id}.{os.urandom(6).hex()}{_PART}")
        try:
            # read and write: the kernel copy of a local file hashes what it wrote read back
            fd = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o640)
            try:
                written = flushed = 0

                def start_writeback(count: int) -> None:
                    nonlocal written, flushed
                    written += count
                    if written - flushed >= _WRITEBACK:
                        _start_writeback(fd, flushed, written - flushed)
                        flushed = written

                digest.copy_into(fd, start_writeback)
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                os.link(temp, final)  # fails if another add of this id published first
            except FileExistsError:
                raise exception.Conflict(f"image {image_id} is already in the store at "
                                         f"{final}") from None
        except OSError as err:
            raise exception.DriverError(f"writing image {image_id} to {self.datadir} failed: "
                                        f"{err.strerror or err}") from err
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
        self._sync_dir()
        return digest.result(self._location(image_id))

    def _sync_dir(self) -> None:
        # the new name survives a crash only once the directory itself is on disk
        fd = os.open(self.datadir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def delete(self, location: str) -> None:
        path = self._path(location)
        try:
            os.unlink(path)
        except FileNotFoundError:
            return
        except OSError as err:
            raise exception.DriverError(f"deleting {path} failed: {err.strerror}") from err

    def discard(self, image_id: str) -> list[str]:
        """The image's file and the temporary files of its adds (``.<id>.<random>.part``)."""
        check_image_id(image_id)
        removed = []
        for name in self._names():
            if name == image_id or (name.startswith(f".{image_id}.") and name.endswith(_PART)):
                try:
                    os.unlink(os.path.join(self.datadir, name))
                except FileNotFoundError:
                    continue
                except OSError as err:
                    raise exception.DriverError(f"removing {name} from {self.datadir} failed: "
                                                f"{err.strerror}") from err
                removed.append(name)
        if removed:
            self._sync_dir()
        return removed

    # --- reading ------------------------------------------------------------------------------

    def get(self, location: str, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        check_range(offset, length)
        path = self._path(location)
        try:
            handle = open(path, "rb")  # closed by the ChunkReader
        except FileNotFoundError:
            raise exception.NotFound("image", location) from None
        try:
            handle.seek(offset)
        except OSError:
            handle.close()
            raise
        return ChunkReader(handle, length)

    def download_to(self, location: str, out: int,
                    on_bytes: Callable[[int], object] | None = None) -> int:
        try:
            source = os.open(self._path(location), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise exception.NotFound("image", location) from None
        try:
            return _copy_file(source, out, on_bytes)
        finally:
            os.close(source)

    def get_size(self, location: str) -> int:
        path = self._path(location)
        try:
            return os.stat(path).st_size
        except FileNotFoundError:
            raise exception.NotFound("image", location) from None

    def local_path(self, location: str) -> str:
        """The file holding the image at ``location`` (for callers on this host that can read
        it in place, e.g. the format inspection before an image becomes active)."""
        return self._path(location)

    def _names(self) -> list[str]:
        try:
            return sorted(os.listdir(self.datadir))
        except FileNotFoundError:
            return []

    def locations(self) -> list[str]:
        return [self._location(n) for n in self._names() if IMAGE_ID.match(n)]

    def list_backend_objects(self) -> list[str]:
        return self._names()

    def get_stats(self) -> dict[str, Any]:
        fs = os.statvfs(self.datadir)
        used, count = 0, 0
        for name in self._names():
            if IMAGE_ID.match(name):
                with contextlib.suppress(FileNotFoundError):
                    used += os.stat(os.path.join(self.datadir, name)).st_size
                    count += 1
        return {
            "driver_version": self.VERSION,
            "writable": True,
            "total_capacity_bytes": fs.f_blocks * fs.f_frsize,
            "free_capacity_bytes": fs.f_bavail * fs.f_frsize,
            "used_bytes": used,
            "image_count": count,
        }
