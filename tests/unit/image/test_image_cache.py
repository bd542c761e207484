"""The per-host image cache (stackcore.image.cache): one download per image and host under
concurrent boots, sha256 and format checked before anything is published, least recently
used images cleaned while images in use stay; servers of uploaded images boot from it."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import io
import os
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import stackcore
from stackcore import conf as sc_conf
from stackcore import exception
from stackcore.image.cache import CachedSource, ImageCache
from stackcore.image.store import ImageStore
from stackcore.image.stores.file import FileStore


class CountingStore:
    """A real store whose downloads (``download_to``, what the cache fetches with) are
    counted, per location."""

    def __init__(self, store: ImageStore) -> None:
        self.store = store
        self.downloads: list[str] = []
        self._lock = threading.Lock()

    def download_to(self, location: str, out: int,
                    on_bytes: Callable[[int], object] | None = None) -> int:
        with self._lock:
            self.downloads.append(location)
        return self.store.download_to(location, out, on_bytes)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


@pytest.fixture
def icloud(make_cloud: Callable[..., stackcore.Cloud], tmp_path: Path) -> stackcore.Cloud:
    cloud = make_cloud(fake_hosts=1, overrides={"DEFAULT": {"state_path": str(tmp_path / "s")}})
    cloud.compute.create_flavor("small", 1, 512, 1)
    return cloud


@pytest.fixture
def stores(tmp_path: Path) -> dict[str, ImageStore]:
    """A real file store on its own (the cache needs no cloud)."""
    conf = sc_conf.load([])
    sc_conf.register(conf, [("store", FileStore.get_store_options())])
    sc_conf.set_override(conf, "store", "datadir", str(tmp_path / "store"))
    store = FileStore(conf, "store")
    store.do_setup()
    return {"file": store}


def _put(stores: dict[str, ImageStore], data: bytes, fmt: str = "raw") -> CachedSource:
    image_id = f"img-{hashlib.sha256(data).hexdigest()[:12]}"
    stored = stores["file"].add(image_id, io.BytesIO(data))
    return CachedSource(image_id, "file", stored.location, stored.size, stored.sha256, fmt)


def _upload(cloud: stackcore.Cloud, name: str, data: bytes, fmt: str = "raw") -> CachedSource:
    image = cloud.image.upload(cloud.image.create(name, disk_format=fmt).id, data)
    assert image.store is not None and image.sha256 is not None, image
    row = cloud.image.stores[image.store].locations()
    location = next(loc for loc in row if image.id in loc)
    return CachedSource(image.id, image.store, location, image.size_bytes, image.sha256, fmt)


def _cached_files(directory: str) -> list[str]:
    """Everything in the cache but the (empty, kept) lock files."""
    if not os.path.isdir(directory):
        return []
    return sorted(n for n in os.listdir(directory) if not n.endswith(".lock"))


def test_concurrent_uses_download_once(stores: dict[str, ImageStore], tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)  # several store chunks
    source = _put(stores, data)
    store = CountingStore(stores["file"])
    cache = ImageCache(str(tmp_path / "cache"), {"file": store})  # type: ignore[dict-item]
    start = threading.Barrier(8)

    def boot() -> bytes:
        start.wait()
        with cache.use(source) as path:
            return Path(path).read_bytes()

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: boot(), range(8)))
    assert len(store.downloads) == 1, f"8 concurrent uses downloaded {len(store.downloads)} times"
    assert all(r == data for r in results), "a use read other bytes than the image's"
    assert _cached_files(cache.directory) == [source.image_id], os.listdir(cache.directory)


def test_eight_concurrent_boots_on_one_host_download_once(icloud: stackcore.Cloud) -> None:
    source = _upload(icloud, "img", b"\1" * (2 * 1024 * 1024))
    counting = CountingStore(icloud.image.stores["file"])
    manager = next(s.manager for s in icloud.services if s.binary == "stackcore-compute")
    manager.image_cache.stores = {"file": counting}
    start = threading.Barrier(8)

    def boot(i: int) -> Any:
        start.wait()
        return icloud.compute.create_server(f"vm-{i}", "small", source.image_id)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        servers = list(pool.map(boot, range(8)))
    assert [s.status for s in servers] == ["ACTIVE"] * 8, [(s.status, s.fault) for s in servers]
    assert len(counting.downloads) == 1, \
        f"8 boots downloaded the image {len(counting.downloads)} times"
    cached = manager.image_cache.path(source.image_id)
    assert hashlib.sha256(Path(cached).read_bytes()).hexdigest() == source.sha256
    assert manager.images_in_use() == {source.image_id}


def test_checksum_mismatch_caches_nothing(stores: dict[str, ImageStore], tmp_path: Path) -> None:
    source = _put(stores, b"\0" * 8192)
    cache = ImageCache(str(tmp_path / "cache"), stores)
    wrong = CachedSource(source.image_id, source.store, source.location, source.size, "0" * 64,
                         source.disk_format)
    with pytest.raises(exception.Invalid, match="sha256") as err:
        cache.fetch(wrong)
    assert source.sha256 in str(err.value) and "0" * 64 in str(err.value), err.value
    assert _cached_files(cache.directory) == [], "a refused image was kept"
    assert cache.fetch(source) == cache.path(source.image_id)  # the right record still works


def test_a_store_sending_more_than_the_record_says_is_stopped_there(
        stores: dict[str, ImageStore], tmp_path: Path) -> None:
    """A store (a web server, a replaced object) sending more bytes than the image record
    says: the fetch stops at the first piece past the size, naming both, and caches nothing -
    a hostile server cannot fill the host's disk."""
    data = os.urandom(3 * 1024 * 1024)
    source = _put(stores, data)
    short = dataclasses.replace(source, size=1024 * 1024)
    reported: list[int] = []
    cache = ImageCache(str(tmp_path / "cache"), stores)
    with pytest.raises(exception.Invalid, match="sent more than") as err:
        with cache.use(short, reported.append):
            pass
    assert f"more than the {1024 * 1024} bytes" in str(err.value), err.value
    assert reported == [], f"bytes past the record's size were reported as progress: {reported}"
    assert _cached_files(cache.directory) == [], "a stopped fetch left files"


def test_the_hash_is_of_the_bytes_in_the_file(stores: dict[str, ImageStore],
                                              tmp_path: Path) -> None:
    """A store that reports pieces before they are in the file fails the checksum (the cache
    hashes what it reads back from the file, not what the store says it sent)."""
    data = os.urandom(2 * 1024 * 1024 + 3)
    source = _put(stores, data)

    class ReportsAhead(CountingStore):
        def download_to(self, location: str, out: int,
                        on_bytes: Callable[[int], object] | None = None) -> int:
            if on_bytes is not None:
                on_bytes(len(data))  # before the copy: the file is empty yet
            return self.store.download_to(location, out)

    cache = ImageCache(str(tmp_path / "cache"),
                       {"file": ReportsAhead(stores["file"])})  # type: ignore[dict-item]
    with pytest.raises(exception.DriverError, match="the file holds 0"):
        cache.fetch(source)
    assert _cached_files(cache.directory) == [], "a refused fetch left files"


def test_store_bytes_changed_fails_the_boot(icloud: stackcore.Cloud) -> None:
    """The store's bytes no longer match the record: the boot fails naming the sha256, the
    server is in ERROR and the host caches nothing."""
    source = _upload(icloud, "img", b"\0" * 8192)
    stored = icloud.image.stores["file"].local_path(source.location)  # type: ignore[attr-defined]
    Path(stored).write_bytes(b"\1" * 8192)
    server = icloud.compute.create_server("vm", "small", source.image_id)
    assert server.status == "ERROR", server
    assert server.fault is not None and "sha256" in server.fault.message, server.fault
    manager = next(s.manager for s in icloud.services if s.binary == "stackcore-compute")
    assert _cached_files(manager.image_cache.directory) == []


def test_unsafe_image_in_store_is_not_cached(stores: dict[str, ImageStore],
                                             tmp_path: Path) -> None:
    """A qcow2 with a backing file put into the store behind the API's back: the cache's own
    inspection refuses it before publishing."""
    secret = tmp_path / "host-secret"
    secret.write_bytes(b"do not read")
    bad = tmp_path / "bad.qcow2"
    subprocess.run(["qemu-img", "create", "-f", "qcow2", "-F", "raw", "-b", str(secret),
                    str(bad), "1M"], check=True, capture_output=True)
    with bad.open("rb") as stream:
        stored = stores["file"].add("evil-1", stream)
    cache = ImageCache(str(tmp_path / "cache"), stores)
    with pytest.raises(exception.Invalid, match="backing_file"):
        cache.fetch(CachedSource("evil-1", "file", stored.location, stored.size, stored.sha256,
                                 "qcow2"))
    assert _cached_files(cache.directory) == []


def test_lru_cleaning_keeps_images_in_use(stores: dict[str, ImageStore], tmp_path: Path) -> None:
    mib = 1024 * 1024
    sources = {name: _put(stores, bytes([i]) * mib) for i, name in enumerate("abcde")}
    in_use: set[str] = set()
    cache = ImageCache(str(tmp_path / "cache"), stores, max_size=3 * mib,
                       min_age=0, in_use=lambda: in_use)
    ids = {name: s.image_id for name, s in sources.items()}
    for age, name in enumerate("abc"):  # a used longest ago, then b, then c
        path = cache.fetch(sources[name])
        os.utime(path, (1000 + age, 1000 + age))
    in_use.add(ids["a"])  # a server on the host uses a: kept though least recently used
    cache.fetch(sources["d"])  # over 3 MiB: b (the oldest not in use) goes
    assert set(_cached_files(cache.directory)) == {ids["a"], ids["c"], ids["d"]}
    with cache.use(sources["c"]):  # a boot holds c while e comes in
        os.utime(cache.path(ids["c"]), (1, 1))  # ... and c looks oldest
        cache.fetch(sources["e"])
        assert set(_cached_files(cache.directory)) == {ids["a"], ids["c"], ids["e"]}, \
            "cleaning removed an image a boot was using"
    # min_age: images used recently stay even when over the limit
    for name in _cached_files(cache.directory):
        os.utime(os.path.join(cache.directory, name))
    recent = ImageCache(cache.directory, stores, max_size=1, min_age=3600)
    assert recent.clean() == [] and len(_cached_files(cache.directory)) == 3
    in_use.clear()
    os.utime(cache.path(ids["a"]), (1, 1))
    os.utime(cache.path(ids["c"]), (2, 2))
    smaller = ImageCache(cache.directory, stores, max_size=mib, min_age=0,
                         in_use=lambda: in_use)
    assert smaller.clean() == [ids["a"], ids["c"]], _cached_files(cache.directory)
    assert _cached_files(cache.directory) == [ids["e"]]


def test_missing_store_is_a_clear_error(tmp_path: Path) -> None:
    cache = ImageCache(str(tmp_path / "cache"), {})
    with pytest.raises(exception.BackendUnavailable, match="'rbd'"):
        cache.fetch(CachedSource("img-1", "rbd", "rbd://x/y/z/snap", 1, "0" * 64, "raw"))



def test_periodic_cleaning_keeps_what_servers_use(icloud: stackcore.Cloud) -> None:
    """The compute manager's periodic task cleans its host's cache: an image a server there
    was built from stays, once the server is deleted it goes."""
    source = _upload(icloud, "img", b"\0" * 8192)
    manager = next(s.manager for s in icloud.services if s.binary == "stackcore-compute")
    server = icloud.compute.create_server("vm", "small", source.image_id)
    assert server.status == "ACTIVE", server.fault
    manager.image_cache.max_size, manager.image_cache.min_age = 1, 0  # over the limit at once
    icloud.tick()
    assert _cached_files(manager.image_cache.directory) == [source.image_id], \
        "cleaning removed the image of a server on the host"
    icloud.compute.delete_server(server.id)
    assert icloud.compute.get_server(server.id, include_deleted=True).status == "DELETED"
    icloud.tick()
    assert _cached_files(manager.image_cache.directory) == []
