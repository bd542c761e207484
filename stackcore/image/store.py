"""The image store contract: where an image's bytes live.

This module *is* the specification an image store is written against (Glance's ``glance_store``
drivers, made strict). An image *record* (its id, formats, owner, state) belongs to the image
API; a store only keeps bytes under a *location* it hands out and reads them back.

=======================  ======================================================================
minimum feature          methods
=======================  ======================================================================
add from a stream        :meth:`ImageStore.add` (size and sha256 computed on the way, a size
                         limit; capability ``writable``)
get as a stream          :meth:`ImageStore.get` (ranged reads: ``offset``, ``length``),
                         :meth:`ImageStore.get_size`
copy into a local file   :meth:`ImageStore.download_to` (the base class writes ``get``'s
                         chunks; a store overrides it only to go faster)
delete                   :meth:`ImageStore.delete` (idempotent; capability ``writable``)
discard                  :meth:`ImageStore.discard` (all an image id's data, partial adds
                         included; capability ``discard``)
locations                :meth:`ImageStore.locations` (what the store holds)
stats                    :meth:`ImageStore.get_stats` (schema: :mod:`stackcore.image.stats`)
=======================  ======================================================================

General rules, for every method:

* One store object serves one configured store (one config group) in one process; calls may
  come from several threads at once, also for the same image id, and the store must stay
  consistent (two adds of one id: one wins, the other raises ``Conflict``).
* A *location* is a string the store returned from :meth:`~ImageStore.add` (``file:///...``,
  ``rbd://...``) or, for a read-only store, one it can read (``https://...``). Callers store it
  and hand it back unchanged; a store refuses (``Invalid``, naming ``location``) a location that
  is not one of its own, and never lets one reach outside its space (no path traversal).
* Raising means "this call failed and changed nothing": a failed add leaves nothing behind
  (:meth:`~ImageStore.list_backend_objects` shows the same as before). Raise
  :class:`~stackcore.exception.NotFound` for a missing image,
  :class:`~stackcore.exception.BackendUnavailable` when the backend cannot be reached,
  :class:`~stackcore.exception.DriverError` for other backend failures.
* Optional features are capabilities (:data:`CAPABILITIES`) whose base-class methods raise
  :class:`~stackcore.exception.CapabilityNotSupported`; the conformance suite
  (:mod:`stackcore.testing.suites.image_store`) tests them by behaviour, declared or not.
* Never log or put in an exception message a secret (a cephx key, a password in a URL).
"""

from __future__ import annotations

import abc
import dataclasses
import errno
import hashlib
import os
import queue
import re
import stat
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from stackcore import exception
from stackcore.plugins.contract import Contract

if TYPE_CHECKING:
    from oslo_config import cfg

NAMESPACE = "stackcore.image.stores"

#: Optional features a store declares in its ``capabilities`` mapping, with the methods each
#: one needs. A read-only store (``web``) declares ``writable`` False: the API never adds to it
#: or deletes from it, and the suite expects both to raise ``CapabilityNotSupported``.
CAPABILITIES: Mapping[str, tuple[str, ...]] = {
    "writable": ("add", "delete"),
    # the image API's clean-up after an upload whose process died (no location was recorded)
    "discard": ("discard",),
}

#: The config group the conformance kit builds a store with.
CONFORMANCE_SECTION = "store"

#: Bytes a store reads or yields at a time (callers may get shorter chunks, never longer).
CHUNK_SIZE = 1024 * 1024

#: Bytes :meth:`Digesting.chunks` reads at a time by default, for writing. Larger than
#: :data:`CHUNK_SIZE` because an upload pays per chunk (a read, a hand-over to the hashing
#: thread, a write or a backend request): 8 MiB is also the default RBD object size, so the
#: rbd store writes whole objects as ``rbd import`` does. Never more than this is read past a
#: size limit (:class:`Digesting` reads only up to one byte past it).
WRITE_CHUNK_SIZE = 8 * 1024 * 1024

#: Image ids a store accepts: what the image API makes (UUIDs) and nothing that could name
#: anything else in a store's namespace (no ``/``, no ``..``, no leading dot).
IMAGE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}\Z")


class SizeLimitExceeded(exception.Invalid):
    """An add went over its ``max_size`` (nothing was kept)."""

    def __init__(self, limit: int, got: int) -> None:
        super().__init__("size", f"is over the image size limit of {limit} bytes (read "
                         f"{got} bytes so far)", got)
        self.kwargs.update(limit=limit)


class Readable(Protocol):
    """What :meth:`ImageStore.add` reads from: a binary file object (``read(n)`` returning
    at most ``n`` bytes, ``b""`` at the end)."""

    def read(self, size: int = -1, /) -> bytes: ...


@dataclasses.dataclass(frozen=True)
class StoredImage:
    """What :meth:`ImageStore.add` returns: where the bytes are and what they were."""

    location: str
    size: int  # bytes stored
    sha256: str  # hex digest of the bytes stored, computed while they were written


def check_image_id(image_id: str) -> str:
    """``image_id`` if a store may use it as a name; ``Invalid`` naming ``image_id`` otherwise."""
    if not isinstance(image_id, str) or not IMAGE_ID.match(image_id):
        raise exception.Invalid("image_id", "must be 1-128 letters, digits, '-' or '_', "
                                "starting with a letter or digit", image_id)
    return image_id


def check_range(offset: int, length: int | None) -> None:
    """Refuse a negative ``offset`` or ``length`` (``Invalid`` naming it)."""
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise exception.Invalid("offset", "must be an integer >= 0", offset)
    if length is not None and (not isinstance(length, int) or isinstance(length, bool)
                               or length < 0):
        raise exception.Invalid("length", "must be an integer >= 0 or None", length)


class BackgroundSha256:
    """sha256 of a sequence of chunks, computed in a thread of its own.

    Why: hashlib releases the GIL while it hashes a large buffer, so the thread hashes one
    chunk while the store writes it (and reads the next): on two cores an upload then costs
    about the longer of hashing and writing instead of their sum - the file store went from
    about half of ``cp`` to about as fast (benchmarks/image_store.py). Chunks are immutable
    ``bytes`` handed over through a bounded FIFO, so they are hashed in order and at most
    :data:`AHEAD` of them wait in memory."""

    AHEAD = 4

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=self.AHEAD)
        self._thread: threading.Thread | None = None

    def update(self, chunk: bytes) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="image-sha256",
                                            daemon=True)
            self._thread.start()
        self._queue.put(bytes(chunk))

    def update_from(self, fd: int, start: int, end: int) -> int:
        """Hash bytes ``start`` to ``end`` of the file ``fd``, read back (``pread``, from the
        page cache right after they were written) at most :data:`WRITE_CHUNK_SIZE` at a time:
        what a copy the kernel made (or a store wrote) holds, never what it said it wrote.
        Returns the offset reached: less than ``end`` when the file is shorter."""
        while start < end:
            piece = os.pread(fd, min(WRITE_CHUNK_SIZE, end - start), start)
            if not piece:
                break
            self.update(piece)
            start += len(piece)
        return start

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not None:
            self._hash.update(chunk)

    def stop(self) -> None:
        """No more chunks: wait until every one is hashed (also when the upload failed, so
        that no thread outlives it)."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def hexdigest(self) -> str:
        self.stop()
        return self._hash.hexdigest()


class Digesting:
    """Reads ``stream`` in chunks, counting and hashing the bytes as they pass, and refuses to
    go over ``max_size`` or past a declared ``size`` (stores use it in :meth:`ImageStore.add`,
    so every store computes size and sha256 the same way, in the same single pass)."""

    def __init__(self, stream: Readable, size: int | None, max_size: int | None) -> None:
        if size is not None and (not isinstance(size, int) or size < 0):
            raise exception.Invalid("size", "must be an integer >= 0 or None", size)
        if max_size is not None and (not isinstance(max_size, int) or max_size < 0):
            raise exception.Invalid("max_size", "must be an integer >= 0 or None", max_size)
        if size is not None and max_size is not None and size > max_size:
            raise SizeLimitExceeded(max_size, size)
        self.stream = stream
        self.expected = size
        self.max_size = max_size
        self.size = 0
        self._hash = BackgroundSha256()

    def chunks(self, chunk_size: int = WRITE_CHUNK_SIZE) -> Iterator[bytes]:
        """The stream's bytes; raises (mid-iteration) when a limit is crossed, and at the end
        when the stream was shorter than the declared size."""
        try:
            yield from self._chunks(chunk_size)
        finally:  # done, failed or abandoned: the hashing thread ends with the iteration
            self._hash.stop()

    def _chunks(self, chunk_size: int) -> Iterator[bytes]:
        while True:
            want = self._want(chunk_size)
            try:
                chunk = self.stream.read(want)
            except Exception as err:
                # the caller's side failed (a client gone mid-upload), not the store
                raise exception.Invalid("data", f"reading the stream failed after {self.size} "
                                        f"bytes: {type(err).__name__}: {err}") from err
            if not chunk:
                break
            self._count(len(chunk))
            self._hash.update(chunk)
            yield chunk
        self._check_end()

    def _want(self, chunk_size: int) -> int:
        """Bytes to ask for next: never more than one past a limit, so crossing it is seen as
        soon as possible and a stream over it is read only that byte too far (not a chunk)."""
        want = chunk_size
        for limit in (self.max_size, self.expected):
            if limit is not None:
                want = min(want, limit - self.size + 1)
        return want

    def _count(self, count: int) -> None:
        """``count`` more bytes read; raise when that crosses a limit."""
        self.size += count
        if self.max_size is not None and self.size > self.max_size:
            raise SizeLimitExceeded(self.max_size, self.size)
        if self.expected is not None and self.size > self.expected:
            raise exception.Invalid("size", f"was declared {self.expected} bytes but the "
                                    "stream holds more", self.expected)

    def _check_end(self) -> None:
        if self.expected is not None and self.size != self.expected:
            raise exception.Invalid("size", f"was declared {self.expected} bytes but the "
                                    f"stream held {self.size}", self.expected)

    def copy_into(self, out: int, on_written: Callable[[int], object] | None = None) -> None:
        """Write the stream's bytes into the file descriptor ``out`` from its position, with
        the same checks as :meth:`chunks`; ``on_written(n)`` after every ``n`` bytes.

        Why: when the stream is a regular file whose position is its descriptor's (nothing
        read ahead into a Python buffer: ``open(path, "rb")`` not read yet), the bytes are
        copied inside the kernel (``copy_file_range``, as ``cp`` does) and hashed read back
        from ``out`` (the page cache) by the hashing thread while the next piece is copied:
        the ``file`` store's upload of a local file then costs about ``cp``'s copy, where
        reading every chunk into Python and writing it back was CPU-bound
        (benchmarks/image_store.py). Any other stream, or a kernel that cannot copy between
        the two files, goes through :meth:`chunks`. Either way the stream's position ends
        after the bytes read."""
        source = _kernel_copy_source(self.stream)
        if source is not None:
            try:
                copied = self._copy_in_kernel(source, out, on_written)
            except BaseException:
                self._hash.stop()
                raise
            finally:  # the Python file object learns where its descriptor now is
                self.stream.seek(os.lseek(source, 0, os.SEEK_CUR))  # type: ignore[attr-defined]
            if copied:
                return
        for chunk in self.chunks():
            write_chunks((chunk,), out, on_written)

    def _copy_in_kernel(self, source: int, out: int,
                        on_written: Callable[[int], object] | None) -> bool:
        """:meth:`copy_into`'s kernel copy; False when the kernel refused the first copy
        (no data copied - holes may have been skipped, positions and hash past them: the
        caller goes on through Python)."""
        start = os.lseek(out, 0, os.SEEK_CUR)
        # past the end of ``out`` a skipped range reads as zeros: holes of the source stay
        # holes there (a raw snapshot of a 1 GiB disk holding a few MiB is not written out)
        beyond_out = os.fstat(out).st_size <= start
        copied = False
        while True:
            want = self._want(WRITE_CHUNK_SIZE)
            if beyond_out:
                hole, extent = _extent(source)
                if hole:
                    self._skip_hole(source, out, start, min(extent, want), on_written)
                    continue
                if extent:  # copy up to the next hole only: the kernel would write its zeros
                    want = min(want, extent)
            try:
                count = os.copy_file_range(source, out, want)
            except OSError as err:
                if copied or err.errno not in NO_IN_KERNEL_COPY:
                    raise
                # nothing but holes so far (both positions past them, hashed): the caller
                # goes on from here through Python
                return False
            copied = True
            if not count:
                if not self.size:  # or a pseudo-file (/proc) the kernel copies as empty:
                    return False   # read() tells
                break
            at = start + self.size
            self._count(count)
            if self._hash.update_from(out, at, at + count) < at + count:
                raise exception.DriverError(f"the {count} bytes copied at offset {at} are "
                                            "not in the file")
            self._advanced(count)
            if on_written is not None:
                on_written(count)
        self._check_end()
        self._hash.stop()
        return True

    def _advanced(self, count: int) -> None:
        """Tell the stream that ``count`` of its bytes were taken without ``read()`` (a
        stream may have ``advance(count)``: the image API's beats and reports progress)."""
        advance = getattr(self.stream, "advance", None)
        if advance is not None:
            advance(count)

    def _skip_hole(self, source: int, out: int, start: int, count: int,
                   on_written: Callable[[int], object] | None) -> None:
        """Leave the next ``count`` bytes (a hole of the source) as a hole in ``out`` too:
        both positions moved past them, ``out`` extended (``ftruncate``: what it adds reads
        as zeros) and zeros hashed for them. Not read back: reading a hole makes the kernel
        zero-fill pages, 1.7 s per GiB here against 0.7 s for hashing them."""
        at = start + self.size
        self._count(count)
        os.ftruncate(out, at + count)
        os.lseek(source, count, os.SEEK_CUR)
        os.lseek(out, at + count, os.SEEK_SET)
        left = count
        while left:
            piece = min(left, len(_ZEROS))
            self._hash.update(_ZEROS if piece == len(_ZEROS) else bytes(piece))
            left -= piece
        self._advanced(count)
        if on_written is not None:
            on_written(count)

    def result(self, location: str) -> StoredImage:
        return StoredImage(location, self.size, self._hash.hexdigest())


class ImageStore(abc.ABC):
    """Base class of every image store.

    Class attributes a store sets:

    ``VERSION``
        Its own version string, reported as ``driver_version`` in its stats.
    ``SCHEMES``
        The location schemes it reads (``("file",)``, ``("http", "https")``).
    ``capabilities``
        ``{capability: bool}`` for the keys of :data:`CAPABILITIES`; missing keys mean False.

    A store is built as ``Store(conf, group)``: ``conf`` is the cloud's ConfigOpts, ``group``
    the config group holding the options from :meth:`get_store_options`
    (:attr:`configuration`): in a cloud ``image_store_<name>``, in the kit
    :data:`CONFORMANCE_SECTION`.
    """

    VERSION: ClassVar[str] = ""
    SCHEMES: ClassVar[tuple[str, ...]] = ()
    capabilities: ClassVar[Mapping[str, bool]] = {}

    def __init__(self, conf: cfg.ConfigOpts, group: str) -> None:
        self.conf = conf
        self.group = group
        self.configuration: Any = conf[group]

    @classmethod
    def get_store_options(cls) -> list[cfg.Opt]:
        """The store's own options, registered in its group."""
        return []

    @classmethod
    def list_opts(cls) -> list[tuple[str, Sequence[cfg.Opt]]]:
        """The store's options in the group the conformance kit configures."""
        return [(CONFORMANCE_SECTION, cls.get_store_options())]

    @abc.abstractmethod
    def do_setup(self) -> None:
        """Prepare the backend (make the directory, connect). Called once, before any other
        call, when the image family starts. Raise ConfigError for bad options,
        BackendUnavailable when the backend cannot be reached: the cloud does not start."""

    # --- writing (capability ``writable``) --------------------------------------------------

    def add(self, image_id: str, stream: Readable, size: int | None = None,
            max_size: int | None = None) -> StoredImage:
        """Store the bytes ``stream`` yields as image ``image_id``; return where they are, how
        many there were and their sha256, computed while writing (:class:`Digesting`).

        Called by the image API on upload (once per image id). ``size``, when given, is what the
        caller declared: a stream holding another number of bytes is refused (``Invalid``,
        ``size``); a stream whose ``read`` raises is ``Invalid`` naming ``data``. ``max_size``
        is the limit in bytes: going over it raises :class:`SizeLimitExceeded` as soon as it
        is crossed (the rest is not read). ``Conflict``
        when the id is stored already; ``Invalid`` for an id :func:`check_image_id` refuses.

        The image becomes readable at its location only once complete (write under another
        name, then publish): a reader never sees half an image. Any failure - limit, size,
        a stream that raises, the backend - leaves nothing behind."""
        raise exception.CapabilityNotSupported(type(self).__name__, "writable (add)")

    def delete(self, location: str) -> None:
        """Remove the image at ``location``. Idempotent: an image already gone is not an error.
        Called by the image API when an image is deleted or its upload is abandoned. Raising
        means the image is still there."""
        raise exception.CapabilityNotSupported(type(self).__name__, "writable (delete)")

    def discard(self, image_id: str) -> list[str]:
        """Remove everything the store holds for ``image_id``, complete or partial - what an
        add whose process died left (no record names it, so no location is known). Returns
        the backend names removed; nothing there is fine (``[]``); an id the store would refuse
        is ``Invalid``. Called only once the image API has established no add of that id is
        running. Capability ``discard`` (the base raises ``CapabilityNotSupported``: such
        leftovers then stay, shown by :meth:`list_backend_objects`)."""
        raise exception.CapabilityNotSupported(type(self).__name__, "discard")

    # --- reading ------------------------------------------------------------------------------

    @abc.abstractmethod
    def get(self, location: str, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        """The image's bytes from ``offset`` on, at most ``length`` of them (None: to the
        end), as an iterator of chunks of at most :data:`CHUNK_SIZE` bytes.

        ``NotFound`` (raised by this call, not by the first ``next``) when nothing is at
        ``location``; an ``offset`` at or past the end yields nothing. Close the iterator (or
        exhaust it) to release the backend's handle."""

    @abc.abstractmethod
    def get_size(self, location: str) -> int:
        """The image's size in bytes; ``NotFound`` when nothing is at ``location``."""

    def download_to(self, location: str, out: int,
                    on_bytes: Callable[[int], object] | None = None) -> int:
        """Write the whole image at ``location`` into the open file descriptor ``out`` (from
        its current position on); return the number of bytes written. The bytes are those
        :meth:`get` yields; only the way differs: the fastest the store has into a local file
        (the ``file`` store copies inside the kernel, never through Python).

        ``on_bytes(n)`` (n > 0) is called each time ``n`` more bytes have reached ``out``, in
        order: they can be read back with ``os.pread`` when it is called (the image cache
        hashes them so, as they land). What it raises stops the copy and propagates - the
        cache stops a store that sends more than the image record's size that way.

        Called by the per-host image cache's fetch and by the image API's inspection of an
        image not in a local file, each time into a new file of its own. ``NotFound``, raised
        before anything is written, when nothing is at ``location``. A failure part-way may
        leave bytes in ``out``: the caller discards its file. The base class writes
        :meth:`get`'s chunks."""
        chunks = self.get(location)
        try:
            return write_chunks(chunks, out, on_bytes)
        finally:
            close_chunks(chunks)

    @abc.abstractmethod
    def locations(self) -> list[str]:
        """The location of every complete image this store holds (a read-only store, which
        holds nothing of its own: ``[]``). For reconciliation and the conformance kit."""

    @abc.abstractmethod
    def list_backend_objects(self) -> list[str]:
        """Every object the store has on its backend, complete or not (temporary files of adds
        in progress included), by name. The conformance kit compares it before and after a
        test: a failed add must leave it unchanged."""

    @abc.abstractmethod
    def get_stats(self) -> dict[str, Any]:
        """Capacity and usage (schema: :mod:`stackcore.image.stats`). Called by the image API
        and the operator's tools; never slow (no walk of every image if the backend keeps a
        count)."""


class ChunkReader:
    """An iterator over an open binary file from ``offset``, at most ``length`` bytes, closing
    the file when exhausted or closed (stores that read local files or sockets use it: the
    file is opened by the store's :meth:`~ImageStore.get`, so ``NotFound`` comes from the
    call, not from the first chunk)."""

    def __init__(self, handle: Any, length: int | None, chunk_size: int = CHUNK_SIZE) -> None:
        self._handle = handle
        self._left = length
        self._chunk = chunk_size

    def __iter__(self) -> ChunkReader:
        return self

    def __next__(self) -> bytes:
        if self._handle is None:
            raise StopIteration
        want = self._chunk if self._left is None else min(self._chunk, self._left)
        data = self._handle.read(want) if want else b""
        if not data:
            self.close()
            raise StopIteration
        if self._left is not None:
            self._left -= len(data)
        return bytes(data)

    def close(self) -> None:
        if self._handle is not None:
            handle, self._handle = self._handle, None
            handle.close()

    def __del__(self) -> None:
        self.close()


#: copy_file_range's errors that mean "not between these two files" (another filesystem
#: before Linux 5.3 or between some filesystem types, a kernel or filesystem without it, a
#: descriptor it does not take), seen on the first call, before anything was copied: then the
#: bytes go through user space.
NO_IN_KERNEL_COPY = frozenset({errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL,
                               errno.EBADF})


#: hashed for the holes of a sparse upload (one immutable buffer: never copied)
_ZEROS = bytes(WRITE_CHUNK_SIZE)


def _extent(fd: int) -> tuple[bool, int]:
    """(in a hole?, bytes until the extent ends) at the position of ``fd``, from
    ``SEEK_DATA``/``SEEK_HOLE``; (False, 0) at the end of the file, or where the file system
    cannot tell (then it is all data, up to wherever)."""
    position = os.lseek(fd, 0, os.SEEK_CUR)
    size = os.fstat(fd).st_size
    if position >= size:
        return False, 0
    try:
        try:
            data = os.lseek(fd, position, os.SEEK_DATA)
        except OSError as err:
            if err.errno != errno.ENXIO:
                return False, 0
            return True, size - position  # ENXIO: no data after position, a trailing hole
        if data > position:
            return True, data - position
        return False, min(os.lseek(fd, position, os.SEEK_HOLE), size) - position
    finally:
        os.lseek(fd, position, os.SEEK_SET)


def _kernel_copy_source(stream: Readable) -> int | None:
    """The descriptor of ``stream`` if the kernel may copy from it in place of ``read``: a
    regular file whose Python position is its descriptor's (so no bytes sit read ahead in a
    buffer, and seeking it afterwards to the descriptor's position is exact)."""
    try:
        fd = stream.fileno()  # type: ignore[attr-defined]
        if not isinstance(fd, int) or not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        if stream.tell() != os.lseek(fd, 0, os.SEEK_CUR):  # type: ignore[attr-defined]
            return None
        if not stream.seekable():  # type: ignore[attr-defined]
            return None
    except (AttributeError, OSError, ValueError, TypeError):  # io.UnsupportedOperation too
        return None
    return fd


def close_chunks(chunks: Iterator[bytes]) -> None:
    """Release what a chunk iterator from :meth:`ImageStore.get` holds (a file, a socket, an
    RBD image) when it was not read to the end; iterators without ``close`` hold nothing."""
    close = getattr(chunks, "close", None)
    if close is not None:
        close()


def write_chunks(chunks: Iterable[bytes | memoryview], out: int,
                 on_bytes: Callable[[int], object] | None = None) -> int:
    """Write every chunk to the file descriptor ``out`` (all of it: a write may be short);
    ``on_bytes(len(chunk))`` after each. The bytes written. A chunk may be a view of a buffer
    the iterator reuses: it is written before the next is asked for."""
    done = 0
    for chunk in chunks:
        view = memoryview(chunk)
        while view:
            view = view[os.write(out, view):]
        done += len(chunk)
        if chunk and on_bytes is not None:
            on_bytes(len(chunk))
    return done


def _declared_data(cls: type) -> list[str]:
    found = []
    schemes = getattr(cls, "SCHEMES", ())
    if not isinstance(schemes, tuple) or not schemes or not all(
            isinstance(s, str) and s for s in schemes):
        found.append("SCHEMES must be a non-empty tuple of location schemes, e.g. ('file',)")
    return found


REQUIRED = ("do_setup", "get", "get_size", "locations", "list_backend_objects", "get_stats")

CONTRACT = Contract(
    family="image.store",
    base=ImageStore,
    required=REQUIRED,
    capabilities=CAPABILITIES,
    extra_checks=(_declared_data,),
)
