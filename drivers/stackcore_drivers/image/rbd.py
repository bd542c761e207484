"""The ``rbd`` image store: images as Ceph RBD images, ready for copy-on-write clones.

* an image is the RBD image ``image-<id>`` in ``rbd_store_pool`` (format 2, layering), with a
  protected snapshot ``snap``: RBD volumes (and RBD root disks) clone from that snapshot
  instead of copying the bytes, as with Glance's rbd store;
* locations are Glance's: ``rbd://<cluster fsid>/<pool>/image-<id>/snap``;
* an add creates ``image-<id>`` (exclusively: of two adds of one id exactly one wins), writes
  it (growing it as the stream comes when no size is declared), then snapshots and protects
  it: readers read the snapshot, so an image is readable only once complete; any failure
  removes the image;
* delete unprotects and removes the snapshot, then the image; an image with clones (volumes
  made from it) is refused with ``Conflict`` naming how many;
* only names with the ``image-`` prefix are the store's (the pool may hold other things: RBD
  volumes are ``volume-<id>``).

The bindings come from the distribution (python3-rados/python3-rbd), not PyPI.
"""

from __future__ import annotations

import collections
import contextlib
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from stackcore import exception, lazy
from stackcore.image import (
    CHUNK_SIZE,
    Digesting,
    ImageStore,
    Readable,
    StoredImage,
    check_image_id,
    check_range,
    write_chunks,
)
from stackcore_drivers import ceph

if TYPE_CHECKING:
    from oslo_config import cfg

OPTS = lazy.options(lambda cfg: [
    cfg.StrOpt("rbd_store_pool", default="images", help="RADOS pool of the images."),
    cfg.StrOpt("rbd_store_user", help="Ceph client id (cephx user); unset: the default."),
    cfg.StrOpt("rbd_store_ceph_conf", default="", help="ceph.conf path ('' = librados "
               "default)."),
    cfg.IntOpt("rbd_store_chunk_size", default=8, min=1,
               help="Object size in MiB (a power of two) of new images."),
    cfg.IntOpt("rados_connect_timeout", default=-1,
               help="Seconds for monitor/OSD operations and connecting; < 0: librados "
               "defaults."),
])

PREFIX = "image-"
SNAPSHOT = "snap"
LAYERING = 1  # rbd.RBD_FEATURE_LAYERING, spelt out so that loading needs no bindings
#: a store image's name
_NAME = re.compile(r"^image-(?P<id>[A-Za-z0-9][A-Za-z0-9_-]{0,127})\Z")
_LOCATION = re.compile(r"^rbd://(?P<fsid>[^/]+)/(?P<pool>[^/]+)/(?P<name>[^/]+)/(?P<snap>[^/]+)\Z")
#: how far ahead an add of unknown size grows its image
_GROW = 64 * 1024 * 1024
#: chunks a get reads ahead at once (librbd aio): one synchronous chunk at a time waits a
#: round trip to an OSD per MiB and reached about half of ``rbd export``'s throughput
#: (benchmarks/image_store.py), which keeps several in flight too
_WINDOW = 8
#: bytes a download_to reads at a time, and how many reads it keeps in flight (24 MiB in
#: memory). Measured against ``rbd export`` on the test cluster (256 MiB, 6 rounds each,
#: medians; ``rbd export`` 514 MiB/s): 1 MiB x 8 (what get uses) 361 MiB/s, 1 MiB x 16 374,
#: 2 MiB x 8 624, 4 MiB x 6 628 (the steadiest), whole 8 MiB objects x 10 as ``rbd export``
#: reads them 279 MiB/s (80 MiB of fresh buffers per window)
_DOWNLOAD_CHUNK = 4 * 1024 * 1024
_DOWNLOAD_WINDOW = 6
#: writes an add keeps in flight when the cluster's configuration does not say
#: (``rbd_concurrent_management_ops``, what ``rbd import`` uses; Ceph's default is 10)
_WRITE_WINDOW = 10


def _check_aio(completion: Any, what: str) -> int:
    """Wait for a librbd aio ``completion``; its result, or DriverError for an error."""
    completion.wait_for_complete_and_cb()
    result = int(completion.get_return_value())
    if result < 0:
        raise exception.DriverError(f"rbd image store: {what} failed (librbd error {result})")
    return result


def _bindings() -> tuple[Any, Any]:
    return ceph.bindings("the rbd image store")


class _Reader:
    """Chunks of an open RBD image snapshot from ``offset``; closes image and ioctx at the
    end (or on close)."""

    def __init__(self, ioctx: Any, image: Any, offset: int, length: int | None,
                 chunk: int = CHUNK_SIZE, window: int = _WINDOW) -> None:
        self._ioctx, self._image = ioctx, image
        self._chunk, self._window = chunk, window
        size = int(image.size())
        self._ahead = offset  # the next offset to ask for
        self._end = size if length is None else min(size, offset + length)
        #: reads in flight, oldest first: (completion, [data once complete], offset)
        self._pending: collections.deque[tuple[Any, list[bytes | None], int]] = \
            collections.deque()

    def __iter__(self) -> _Reader:
        return self

    def _read_ahead(self) -> None:
        while self._image is not None and len(self._pending) < self._window \
                and self._ahead < self._end:
            count = min(self._chunk, self._end - self._ahead)
            box: list[bytes | None] = []
            completion = self._image.aio_read(
                self._ahead, count, lambda _c, data, box=box: box.append(data))
            self._pending.append((completion, box, self._ahead))
            self._ahead += count

    def __next__(self) -> bytes:
        self._read_ahead()
        if self._image is None or not self._pending:
            self.close()
            raise StopIteration
        completion, box, offset = self._pending.popleft()
        try:
            _check_aio(completion, f"reading at offset {offset}")
        except BaseException:
            self.close()
            raise
        data = bytes(box[0] or b"")
        if not data:
            self.close()
            raise StopIteration
        self._read_ahead()  # keep the window full while the caller works on this chunk
        return data

    def close(self) -> None:
        if self._image is not None:
            image, self._image = self._image, None
            while self._pending:  # librbd must not complete into a closed image
                with contextlib.suppress(Exception):
                    self._pending.popleft()[0].wait_for_complete_and_cb()
            image.close()
            self._ioctx.close()

    def __del__(self) -> None:
        self.close()


class RbdStore(ImageStore):
    """Images as RBD images with a protected snapshot to clone from."""

    VERSION = "1.0.0"
    SCHEMES = ("rbd",)
    REQUIRES: ClassVar[Mapping[str, str]] = {
        "rados": "Debian's python3-rados; see tools/backends/python-bindings.sh",
        "rbd": "Debian's python3-rbd; see tools/backends/python-bindings.sh",
    }
    capabilities: ClassVar[Mapping[str, bool]] = {"writable": True, "discard": True}

    def __init__(self, conf: cfg.ConfigOpts, group: str) -> None:
        super().__init__(conf, group)
        self._client: Any = None
        self._fsid = ""
        self._lock = threading.Lock()

    @classmethod
    def get_store_options(cls) -> list[cfg.Opt]:
        return list(OPTS)

    # --- connection ---------------------------------------------------------------------------

    def _rados(self) -> Any:
        rados, _ = _bindings()
        with self._lock:
            if self._client is not None:
                return self._client
            conf = self.configuration
            client = None
            try:
                client = ceph.connect(rados, user=conf.rbd_store_user,
                                      conffile=conf.rbd_store_ceph_conf,
                                      timeout=conf.rados_connect_timeout
                                      if conf.rados_connect_timeout >= 0 else None,
                                      pool=conf.rbd_store_pool)
                self._fsid = str(client.get_fsid())
            except rados.Error as err:
                if client is not None:  # connected, then the fsid could not be read
                    with contextlib.suppress(Exception):
                        client.shutdown()
                raise exception.BackendUnavailable(
                    f"cannot connect to Ceph pool {conf.rbd_store_pool!r}: "
                    f"{type(err).__name__}: {err}") from None
            self._client = client
            return client

    def _open_ioctx(self) -> Any:
        rados, _ = _bindings()
        client = self._rados()
        try:
            return client.open_ioctx(self.configuration.rbd_store_pool)
        except rados.Error as err:
            with self._lock:
                if self._client is client:
                    self._client = None  # rebuilt on the next call
            raise exception.BackendUnavailable(f"Ceph pool unavailable: {err}") from err

    @contextlib.contextmanager
    def _ioctx(self) -> Iterator[Any]:
        ioctx = self._open_ioctx()
        try:
            yield ioctx
        finally:
            ioctx.close()

    def do_setup(self) -> None:
        _bindings()
        self._rados()

    # --- locations ------------------------------------------------------------------------------

    def _location(self, name: str) -> str:
        return f"rbd://{self._fsid}/{self.configuration.rbd_store_pool}/{name}/{SNAPSHOT}"

    def _name(self, location: str) -> str:
        """The RBD image of ``location``: only a complete image of this store's pool."""
        self._rados()  # the fsid
        match = _LOCATION.match(location) if isinstance(location, str) else None
        name = match.group("name") if match else ""
        found = _NAME.match(name)
        if (match is None or match.group("fsid") != self._fsid
                or match.group("pool") != self.configuration.rbd_store_pool
                or match.group("snap") != SNAPSHOT or found is None):
            raise exception.Invalid("location", "is not an image of this rbd store "
                                    f"(pool {self.configuration.rbd_store_pool})", location)
        return name

    # --- writing ------------------------------------------------------------------------------

    def add(self, image_id: str, stream: Readable, size: int | None = None,
            max_size: int | None = None) -> StoredImage:
        _, rbd = _bindings()
        check_image_id(image_id)
        name = PREFIX + image_id
        digest = Digesting(stream, size, max_size)
        object_size = self.configuration.rbd_store_chunk_size * 1024 * 1024
        order = object_size.bit_length() - 1
        with self._ioctx() as ioctx:
            window = self._write_window()
            try:
                # the name is claimed first, exclusively: of two adds of one id, one gets
                # ImageExists before reading anything (librbd's rename to a taken name, under
                # concurrent renames, was seen to leave both images busy and half renamed)
                rbd.RBD().create(ioctx, name, size or 0, order=order, old_format=False,
                                 features=LAYERING)
            except rbd.ImageExists:
                raise exception.Conflict(f"image {image_id} is already in the store "
                                         f"({name})") from None
            try:
                with rbd.Image(ioctx, name) as image:
                    pending: collections.deque[tuple[Any, int]] = collections.deque()

                    def drain(keep: int) -> None:
                        while len(pending) > keep:
                            completion, at = pending.popleft()
                            _check_aio(completion, f"writing {name} at offset {at}")

                    try:
                        allocated = size or 0
                        offset = 0
                        # whole objects, several in flight, as ``rbd import`` writes: 1 MiB
                        # chunks (8 writes to each object, which its OSD serialises, 8 in
                        # flight) reached about 45 % of its throughput
                        for chunk in digest.chunks(object_size):
                            if offset + len(chunk) > allocated:
                                drain(0)  # no write in flight across a resize
                                allocated = offset + len(chunk) + _GROW
                                image.resize(allocated)
                            pending.append((image.aio_write(chunk, offset, None), offset))
                            offset += len(chunk)
                            drain(window - 1)
                        drain(0)
                    finally:
                        while pending:  # after a failure: nothing completes into a closed image
                            with contextlib.suppress(Exception):
                                pending.popleft()[0].wait_for_complete_and_cb()
                    if allocated != offset:
                        image.resize(offset)
                    image.flush()
                    # publish: readers open the snapshot, which exists only from here on
                    image.create_snap(SNAPSHOT)
                    image.protect_snap(SNAPSHOT)
            except BaseException:
                self._remove(ioctx, name)
                raise
        return digest.result(self._location(name))

    def _write_window(self) -> int:
        """Writes an add keeps in flight: the cluster configuration's
        ``rbd_concurrent_management_ops`` (as ``rbd import``), else :data:`_WRITE_WINDOW`.
        Each holds one object's bytes in memory until it completes."""
        rados, _ = _bindings()
        client = self._rados()
        try:
            window = int(client.conf_get("rbd_concurrent_management_ops"))
        except (rados.Error, TypeError, ValueError):  # no such option, or not a number
            return _WRITE_WINDOW
        return max(1, window)

    def _remove(self, ioctx: Any, name: str) -> None:
        """Remove ``name`` and its snapshot; gone already is fine; Conflict with clones."""
        _, rbd = _bindings()
        try:
            with rbd.Image(ioctx, name) as image:
                snaps = {s["name"] for s in image.list_snaps()}
                if SNAPSHOT in snaps:
                    image.set_snap(SNAPSHOT)
                    children = list(image.list_children())
                    image.set_snap(None)
                    if children:
                        raise exception.Conflict(
                            f"{name} has {len(children)} clone(s) (volumes made from it): "
                            "delete or flatten them first")
                    if image.is_protected_snap(SNAPSHOT):
                        image.unprotect_snap(SNAPSHOT)
                    image.remove_snap(SNAPSHOT)
        except rbd.ImageNotFound:
            return
        try:
            ceph.remove_image(ioctx, name)
        except rbd.ImageBusy as err:
            raise exception.Conflict(f"{name} is in use (a watcher holds it): {err}") from err

    def delete(self, location: str) -> None:
        name = self._name(location)
        with self._ioctx() as ioctx:
            self._remove(ioctx, name)

    def discard(self, image_id: str) -> list[str]:
        """``image-<id>``, complete or not: an add writes under the final name from the start
        (claimed exclusively), so a died add left exactly that image, perhaps without its
        snapshot. Clones of a complete one make it ``Conflict``, as delete does."""
        _, rbd = _bindings()
        check_image_id(image_id)
        name = PREFIX + image_id
        with self._ioctx() as ioctx:
            if name not in rbd.RBD().list(ioctx):
                return []
            self._remove(ioctx, name)
        return [name]

    # --- reading ------------------------------------------------------------------------------

    def get(self, location: str, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        check_range(offset, length)
        return self._reader(location, offset, length)

    def download_to(self, location: str, out: int,
                    on_bytes: Callable[[int], object] | None = None) -> int:
        """:data:`_DOWNLOAD_CHUNK` reads, :data:`_DOWNLOAD_WINDOW` in flight, written in
        order as they complete."""
        reader = self._reader(location, 0, None, _DOWNLOAD_CHUNK, _DOWNLOAD_WINDOW)
        try:
            return write_chunks(reader, out, on_bytes)
        finally:
            reader.close()

    def _reader(self, location: str, offset: int, length: int | None,
                chunk: int = CHUNK_SIZE, window: int = _WINDOW) -> _Reader:
        _, rbd = _bindings()
        name = self._name(location)
        ioctx = self._open_ioctx()
        try:
            image = rbd.Image(ioctx, name, snapshot=SNAPSHOT, read_only=True)
        except (rbd.ImageNotFound, rbd.ObjectNotFound):
            ioctx.close()
            raise exception.NotFound("image", location) from None
        except BaseException:
            ioctx.close()
            raise
        return _Reader(ioctx, image, offset, length, chunk, window)

    def get_size(self, location: str) -> int:
        _, rbd = _bindings()
        name = self._name(location)
        with self._ioctx() as ioctx:
            try:
                with rbd.Image(ioctx, name, snapshot=SNAPSHOT, read_only=True) as image:
                    return int(image.size())
            except (rbd.ImageNotFound, rbd.ObjectNotFound):
                raise exception.NotFound("image", location) from None

    def _names(self) -> list[str]:
        _, rbd = _bindings()
        with self._ioctx() as ioctx:
            return sorted(n for n in rbd.RBD().list(ioctx) if _NAME.match(n))

    def _complete(self) -> list[tuple[str, int]]:
        """(name, size) of every image with its snapshot (complete: adds in progress have
        none yet)."""
        _, rbd = _bindings()
        found = []
        with self._ioctx() as ioctx:
            for name in self._names():
                with contextlib.suppress(rbd.ImageNotFound, rbd.ObjectNotFound), rbd.Image(
                        ioctx, name, snapshot=SNAPSHOT, read_only=True) as image:
                    found.append((name, int(image.size())))
        return found

    def locations(self) -> list[str]:
        return [self._location(name) for name, _size in self._complete()]

    def list_backend_objects(self) -> list[str]:
        return self._names()

    def get_stats(self) -> dict[str, Any]:
        complete = self._complete()
        used, count = sum(size for _name, size in complete), len(complete)
        cluster = self._rados().get_cluster_stats()
        total = int(cluster["kb"]) * 1024
        free = min(int(cluster["kb_avail"]) * 1024, total)
        return {
            "driver_version": self.VERSION,
            "writable": True,
            "total_capacity_bytes": total,
            "free_capacity_bytes": free,
            "used_bytes": used,
            "image_count": count,
        }
