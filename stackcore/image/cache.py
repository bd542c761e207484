"""The per-host image cache: a compute host's own copy of each image its servers boot from.

Why: an image uploaded through ``cloud.image`` lives in a store (a directory, a Ceph pool, a
web server) that a hypervisor cannot back a server's disk onto. The host fetches it once into
``<state_path>/image-cache/<host>/`` (``[image_cache] directory`` overrides) and every server
of that image on the host backs onto that one file.

Before a file is published in the cache it is

* checked against the image record: the bytes read must have the recorded size and sha256
  (a store that returns other bytes - corruption, a replaced object - is refused);
* inspected (:func:`stackcore.image.inspect`): the declared disk format, no backing file, no
  data file, no extents elsewhere - qemu opens this file next.

Concurrency (several boots of one image at once, in threads or processes of the same host):
each image has a lock file ``.<id>.lock`` (``fcntl.flock``). A fetch holds it exclusively, so
one boot downloads and the others wait and find the file; the download goes to a temporary
name, fsynced, then renamed, so a reader never sees half an image. A boot then holds the lock
*shared* while it uses the file (builds its overlay); cleaning takes it exclusively without
waiting, so it never removes a file a boot is using.

Cleaning (:meth:`ImageCache.clean`, the compute manager's periodic task and after every
fetch): when the cache holds more than ``[image_cache] max_size_mb``, the least recently used
images go first (a use touches the file's mtime), skipping any image a server on the host was
built from (their overlays back onto the file), any used in the last ``min_age`` seconds, and
any whose lock is held. Lock files stay (removing a lock file lets two processes lock two
different files of one name); they are empty.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import logging
import os
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping
from typing import TYPE_CHECKING

from stackcore import exception
from stackcore.image import format as image_format
from stackcore.image.store import BackgroundSha256, ImageStore, check_image_id

if TYPE_CHECKING:
    from oslo_config import cfg

LOG = logging.getLogger(__name__)

_PART = ".part"
_LOCK = ".lock"


@dataclasses.dataclass(frozen=True)
class CachedSource:
    """What the cache needs to fetch and check one image (from its ``images`` row)."""

    image_id: str
    store: str
    location: str
    size: int
    sha256: str
    disk_format: str


class ImageCache:
    """One host's image cache in ``directory``, fetching from ``stores`` (the cloud's image
    stores by name, ``cloud.image.stores``).

    ``max_size`` (bytes, 0: no limit) and ``min_age`` (seconds) drive :meth:`clean`;
    ``in_use`` returns the ids of the images servers on this host were built from (never
    removed)."""

    def __init__(self, directory: str, stores: Mapping[str, ImageStore], *,
                 max_size: int = 0, min_age: float = 0.0,
                 in_use: Callable[[], Collection[str]] = frozenset) -> None:
        self.directory = os.path.abspath(directory)
        self.stores = stores
        self.max_size = max_size
        self.min_age = min_age
        self.in_use = in_use

    @classmethod
    def for_host(cls, conf: cfg.ConfigOpts, host: str, stores: Mapping[str, ImageStore],
                 in_use: Callable[[], Collection[str]] = frozenset) -> ImageCache:
        """The cache of compute host ``host`` as ``[image_cache]`` configures it."""
        opts = conf.image_cache
        directory = opts.directory or os.path.join(conf.state_path, "image-cache", host)
        return cls(directory, stores, max_size=opts.max_size_mb * 1024 * 1024,
                   min_age=float(opts.min_age), in_use=in_use)

    def path(self, image_id: str) -> str:
        """Where image ``image_id`` is (or will be) cached."""
        return os.path.join(self.directory, check_image_id(image_id))

    # --- locks ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _lock_file(self, image_id: str) -> Iterator[int]:
        os.makedirs(self.directory, exist_ok=True)
        fd = os.open(os.path.join(self.directory, f".{image_id}{_LOCK}"),
                     os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            yield fd
        finally:
            os.close(fd)  # releases the flock

    # --- use --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def use(self, source: CachedSource,
            on_bytes: Callable[[int], object] | None = None) -> Iterator[str]:
        """The cached file of ``source`` (fetched first if missing), kept in the cache while
        the ``with`` block runs (a shared lock: :meth:`clean` skips it). ``on_bytes(n)`` is
        called for every chunk a fetch writes (a :class:`stackcore.progress.Reporter`'s
        ``advance``): not at all when the image is cached already."""
        path = self.path(source.image_id)
        with self._lock_file(source.image_id) as fd:
            while True:
                fcntl.flock(fd, fcntl.LOCK_EX)
                fetched = False
                if not os.path.isfile(path):
                    self._fetch(source, path, on_bytes)
                    fetched = True
                # Shared from here on; flock converts by releasing first, so a cleaner may
                # slip in between: then fetch again.
                fcntl.flock(fd, fcntl.LOCK_SH)
                if os.path.isfile(path):
                    break
            os.utime(path)  # least recently used = oldest mtime
            if fetched:
                self.clean(keep=source.image_id)
            yield path

    def fetch(self, source: CachedSource) -> str:
        """Make sure ``source`` is cached; its path (not protected from :meth:`clean` once
        this returns: use :meth:`use` around the work that needs the file)."""
        with self.use(source) as path:
            return path

    def _fetch(self, source: CachedSource, path: str,
               on_bytes: Callable[[int], object] | None = None) -> None:
        """Download ``source`` to ``path`` (caller holds the image's lock exclusively):
        temporary name, size and sha256 checked, format inspected, fsync, rename. Any failure
        leaves nothing."""
        store = self.stores.get(source.store)
        if store is None:
            raise exception.BackendUnavailable(
                f"image {source.image_id} is in image store {source.store!r}, which this "
                f"cloud does not configure ({', '.join(sorted(self.stores)) or 'none'})")
        partial = os.path.join(self.directory, f".{source.image_id}.{uuid.uuid4().hex}{_PART}")
        started = time.monotonic()
        try:
            fd = os.open(partial, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
            try:
                size, sha256 = self._download(store, source, fd, on_bytes)
                os.fsync(fd)
            finally:
                os.close(fd)
            if (size, sha256) != (source.size, source.sha256):
                raise exception.Invalid(
                    "image", f"image {source.image_id}: the bytes read from image store "
                    f"{source.store!r} are {size} bytes with sha256 {sha256}, the image "
                    f"record says {source.size} bytes with sha256 {source.sha256} (nothing "
                    "was cached)", source.image_id)
            image_format.inspect(partial, source.disk_format,
                                 field=f"image {source.image_id}")
            os.rename(partial, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(partial)
            raise
        with contextlib.suppress(OSError):  # the rename durable; best effort
            dirfd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dirfd)
            finally:
                os.close(dirfd)
        LOG.info("image %s cached from store %s (%d bytes in %.2f s)", source.image_id,
                 source.store, size, time.monotonic() - started)

    @staticmethod
    def _download(store: ImageStore, source: CachedSource, fd: int,
                  on_bytes: Callable[[int], object] | None) -> tuple[int, str]:
        """Have ``store`` write the image into ``fd``; its size and sha256.

        The sha256 is of the bytes as they are in the file: each piece the store reports
        written is read back (from the page cache) and hashed in a thread of its own while
        the store writes the next, so a fetch costs about the longer of the copy and the
        hashing, not their sum, whichever way the store copies (in the kernel, for the
        ``file`` store). A store sending more than the record's size is stopped there."""
        digest = BackgroundSha256()
        landed = 0

        def hash_landed(count: int) -> None:
            nonlocal landed
            end = landed + count
            if end > source.size:
                raise exception.Invalid(
                    "image", f"image {source.image_id}: image store {source.store!r} sent "
                    f"more than the {source.size} bytes the image record says (stopped at "
                    f"{end}; nothing was cached)", source.image_id)
            reached = digest.update_from(fd, landed, end)
            if reached < end:
                raise exception.DriverError(
                    f"image {source.image_id}: image store {source.store!r} reported "
                    f"{end} bytes written, the file holds {reached}")
            landed = end
            if on_bytes is not None:
                on_bytes(count)

        try:
            size = store.download_to(source.location, fd, hash_landed)
        finally:
            digest.stop()  # no hashing thread outlives a failed download
        if size != landed:
            raise exception.DriverError(
                f"image {source.image_id}: image store {source.store!r} wrote {size} bytes "
                f"but reported {landed}")
        return size, digest.hexdigest()

    # --- cleaning ---------------------------------------------------------------------------

    def entries(self) -> list[tuple[str, int, float]]:
        """``(image_id, size, last_used)`` of every cached image, least recently used first."""
        found = []
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        for name in names:
            if name.startswith("."):
                continue  # lock files, downloads in progress
            try:
                st = os.stat(os.path.join(self.directory, name))
            except FileNotFoundError:
                continue
            found.append((name, st.st_size, st.st_mtime))
        return sorted(found, key=lambda e: (e[2], e[0]))

    def size(self) -> int:
        """Bytes the cached images take."""
        return sum(size for _, size, _ in self.entries())

    def clean(self, keep: str | None = None) -> list[str]:
        """Remove least recently used images until the cache is within ``max_size``; never one
        in use (``in_use``, a held lock, ``keep``), nor one used in the last ``min_age``
        seconds. The ids removed."""
        if not self.max_size:
            return []
        entries = self.entries()
        total = sum(size for _, size, _ in entries)
        if total <= self.max_size:
            return []
        used = set(self.in_use())
        now = time.time()
        removed = []
        for image_id, size, last_used in entries:
            if total <= self.max_size:
                break
            if image_id == keep or image_id in used or now - last_used < self.min_age:
                continue
            if self._remove_unless_locked(image_id):
                removed.append(image_id)
                total -= size
        if removed:
            LOG.info("image cache %s: removed %s (least recently used; %d bytes left)",
                     self.directory, ", ".join(removed), total)
        return removed

    def _remove_unless_locked(self, image_id: str) -> bool:
        with self._lock_file(image_id) as fd:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                if err.errno in (errno.EAGAIN, errno.EACCES):
                    return False  # a boot is using or fetching it
                raise
            try:
                os.unlink(self.path(image_id))
            except FileNotFoundError:
                return False
            return True


def source_of(image_id: str, store: str | None, location: str | None, size: int,
              sha256: str | None, disk_format: str) -> CachedSource | None:
    """The cache source of an image row, or None for an image the cache does not hold (a
    local file registered with ``cloud.compute.register_image``: no store)."""
    if store is None or location is None:
        return None
    if sha256 is None:
        raise exception.InvalidState(f"image {image_id} is in store {store!r} without a "
                                     "sha256: it was never completely uploaded")
    return CachedSource(image_id, store, location, size, sha256, disk_format)
