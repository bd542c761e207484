"""Image store throughput against the raw copy, and a cached boot against a first boot.

For each store (``file`` on the local disk, ``rbd`` on the test Ceph cluster, ``web``: an HTTP
server on loopback) and a random (incompressible) image of ``--size-mib`` MiB it times, in the
same run, median of ``--runs``:

* **upload**: ``store.add`` from an open file (size and sha256 computed on the way; the file
  store copies a local file inside the kernel, hashes it read back, and fsyncs) against the
  raw copy - ``cp`` then ``sync`` of the copy (the same durability) for ``file``, ``rbd
  import`` (same object size) for ``rbd``, and for ``rbd`` also ``rbd import`` followed by
  the snapshot and its protection (through the bindings), which the rbd store's upload does
  so that volumes can clone the image: the rbd upload's goal is judged against that anchor;
* **download**: ``store.download_to`` a local file against ``cp`` of the stored file /
  ``rbd export`` of the stored image / ``curl -o`` of the same URL (the read-only ``web`` store
  has no upload; the server is ``python -m http.server``, a process of its own, for both).

The ratio is the median over the rounds of each round's raw time / store time; the store's
side goes first in even rounds, the raw side in odd ones (see :func:`in_turn`). On a shared,
loaded host the figures swing by 2x from one round to the next: judge a full run, not smoke.

Goal: every store's throughput >= 90 % of the raw copy's. Then, on an embedded cloud with the
fake hypervisor, the first boot of an uploaded image on a host (fetched into the host's image
cache: read from the store, sha256 and format checked) against the second (cached).

    . /var/lib/stackcore-backends/env.sh
    .venv/bin/python benchmarks/image_store.py [--size-mib 256] [--runs 3] [--store file]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import Any

import stackcore
from stackcore import conf as sc_conf
from stackcore.image.store import ImageStore

MiB = 1024 * 1024
GOAL = 0.9


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        sys.exit(f"{name} is not set: run tools/backends/up.sh and source its env.sh")
    return value


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run(*args: str) -> None:
    subprocess.run(list(args), check=True, capture_output=True)


def make_store(cls: type[ImageStore], options: dict[str, str]) -> ImageStore:
    conf = sc_conf.load([])
    sc_conf.register(conf, [("store", cls.get_store_options())])
    for name, value in options.items():
        sc_conf.set_override(conf, "store", name, value)
    store = cls(conf, "store")
    store.do_setup()
    return store


def download(store: ImageStore, location: str, path: str) -> None:
    """The store's copy into a new local file (what the host image cache fetches with)."""
    with open(path, "xb") as out:
        store.download_to(location, out.fileno())


class FileBench:
    name = "file"

    def __init__(self, work: str) -> None:
        from stackcore.image.stores.file import FileStore

        self.work = work
        self.store = make_store(FileStore, {"datadir": os.path.join(work, "store")})

    def raw_upload(self, source: str) -> tuple[float, Callable[[], None]]:
        target = os.path.join(self.work, f"raw-{uuid.uuid4().hex}")
        seconds = timed(lambda: (run("cp", source, target), run("sync", target)))
        return seconds, lambda: os.unlink(target)

    def raw_download(self, location: str, target: str) -> float:
        stored = self.store.local_path(location)  # type: ignore[attr-defined]
        return timed(lambda: run("cp", stored, target))


class RbdBench:
    name = "rbd"

    def __init__(self, work: str) -> None:
        from stackcore_drivers.image.rbd import RbdStore

        self.work = work
        self.conf = env("STACKCORE_TEST_CEPH_CONF")
        self.pool = env("STACKCORE_TEST_CEPH_POOL")
        self.store = make_store(RbdStore, {"rbd_store_ceph_conf": self.conf,
                                           "rbd_store_pool": self.pool})
        self.object_size = f"{self.store.configuration.rbd_store_chunk_size}M"
        import rados

        self._client = rados.Rados(conffile=self.conf)
        self._client.connect()

    def _publish(self, name: str) -> None:
        import rbd

        with self._client.open_ioctx(self.pool) as ioctx, rbd.Image(ioctx, name) as image:
            image.create_snap("snap")
            image.protect_snap("snap")

    def _rbd(self, *args: str) -> None:
        run("rbd", "-c", self.conf, *args)

    def raw_upload(self, source: str) -> tuple[float, Callable[[], None]]:
        name = f"{self.pool}/bench-raw-{uuid.uuid4().hex[:12]}"
        seconds = timed(lambda: self._rbd("import", "--image-format", "2", "--object-size",
                                          self.object_size, source, name))
        # what the store does after writing, so that volumes can clone the image (as Glance's
        # rbd store does): timed apart, as the second anchor "import + snapshot", the one the
        # goal is judged against. Why: an image without its snapshot cannot be cloned (the
        # issue's copy-on-write volumes), and the snapshot's id is a monitor map commit that
        # the monitor batches over ``paxos_propose_interval`` (1 s): 60 ms on a monitor with
        # nothing pending, up to 1 s after any other map or cluster-log change - a cost of the
        # cluster that no client's data path can take back. Through the
        # bindings, in this process: two ``rbd snap`` commands would add two process starts
        # and cluster connections (about 0.1 s) that the store does not pay
        self.publish_s = timed(lambda: self._publish(name.split("/", 1)[1]))

        def undo() -> None:
            self._rbd("snap", "unprotect", f"{name}@snap")
            self._rbd("snap", "purge", "--no-progress", name)
            self._rbd("rm", "--no-progress", name)

        return seconds, undo

    def raw_download(self, location: str, target: str) -> float:
        name = location[len("rbd://"):].split("/")
        return timed(lambda: self._rbd("export", "--no-progress",
                                       f"{name[1]}/{name[2]}@{name[3]}", target))


class WebBench:
    """The read-only ``web`` store against curl, both reading the image from one local HTTP
    server process."""

    name = "web"

    def __init__(self, work: str) -> None:
        import socket

        from stackcore.image.stores.web import WebStore

        self.work = work
        self.store = make_store(WebStore, {})
        with socket.socket() as probe:  # a free port for the server
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.server = subprocess.Popen(
            [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", work,
             str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:  # until it answers
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or self.server.poll() is not None:
                    raise RuntimeError("the benchmark's HTTP server did not start") from None
                time.sleep(0.05)

    def close(self) -> None:
        self.server.terminate()
        self.server.wait(10)

    def raw_download(self, location: str, target: str) -> float:
        return timed(lambda: run("curl", "-sS", "--fail", "-o", target, location))


def in_turn(round_: int, store_side: Callable[[], Any], raw_side: Callable[[], Any]) -> None:
    """Run one round's pair, the store's side first in even rounds and the raw side first in
    odd ones. Why: whichever goes first reads an image just written (a Ceph OSD's cache cold,
    the file's pages still being written back) and the second reads it warm; always timing
    the store first held the rbd download at 52-73 % of ``rbd export`` with code that
    reached 122 % of it on an image both read warm."""
    for side in (store_side, raw_side) if round_ % 2 == 0 else (raw_side, store_side):
        side()


def ratios(times: dict[str, list[float]], size: int, ops: tuple[str, ...]) -> dict[str, Any]:
    medians = {k: statistics.median(v) for k, v in times.items()}
    result: dict[str, Any] = {f"{k}_s": v for k, v in medians.items()}
    for op in ops:
        result[f"{op}_mib_s"] = size / MiB / medians[op]
        result[f"raw_{op}_mib_s"] = size / MiB / medians[f"raw_{op}"]
        # the ratio of each round's pair (timed back to back), then the median: the load of
        # the shared host drifts between rounds more than within one
        result[f"{op}_ratio"] = statistics.median(
            raw / store for raw, store in zip(times[f"raw_{op}"], times[op], strict=True))
    return result


def bench_web(bench: WebBench, size: int, runs: int) -> dict[str, Any]:
    location = f"{bench.base}/source"
    target = os.path.join(bench.work, "download")
    times: dict[str, list[float]] = {"download": [], "raw_download": []}

    def store_side() -> None:
        times["download"].append(timed(lambda: download(bench.store, location, target)))
        if os.path.getsize(target) != size:
            raise RuntimeError(f"the web store read {os.path.getsize(target)} of {size} bytes")
        os.unlink(target)

    def raw_side() -> None:
        times["raw_download"].append(bench.raw_download(location, target))
        os.unlink(target)

    for round_ in range(runs):
        in_turn(round_, store_side, raw_side)
    return ratios(times, size, ("download",))


def bench_store(bench: Any, source: str, size: int, runs: int) -> dict[str, Any]:
    times: dict[str, list[float]] = {k: [] for k in ("upload", "raw_upload", "download",
                                                     "raw_download")}
    for round_ in range(runs):
        store_round(bench, source, size, round_, times)
    result = ratios(times, size, ("upload", "download"))
    if "raw_upload_published" in times:
        result["upload_published_ratio"] = statistics.median(
            raw / store for raw, store in zip(times["raw_upload_published"], times["upload"],
                                              strict=True))
    return result


def store_round(bench: Any, source: str, size: int, round_: int,
                times: dict[str, list[float]]) -> None:
    """One round: the upload pair, then the download pair of the image the store added."""
    target = os.path.join(bench.work, "download")
    stored: list[Any] = []

    def store_upload() -> None:
        with open(source, "rb") as stream:
            start = time.perf_counter()
            stored.append(bench.store.add(f"bench-{uuid.uuid4().hex[:12]}", stream, size))
            times["upload"].append(time.perf_counter() - start)

    def raw_upload() -> None:
        raw, undo = bench.raw_upload(source)
        times["raw_upload"].append(raw)
        if hasattr(bench, "publish_s"):
            times.setdefault("raw_upload_published", []).append(raw + bench.publish_s)
        undo()

    def store_download() -> None:
        times["download"].append(timed(lambda: download(bench.store, stored[0].location,
                                                        target)))
        os.unlink(target)

    def raw_download() -> None:
        times["raw_download"].append(bench.raw_download(stored[0].location, target))
        os.unlink(target)

    try:
        in_turn(round_, store_upload, raw_upload)
        in_turn(round_, store_download, raw_download)
    finally:
        for image in stored:
            bench.store.delete(image.location)


def bench_boot(size: int, work: str) -> dict[str, float]:
    """First boot (image fetched into the host's cache) against a cached boot, fake driver."""
    with stackcore.Cloud(fake_hosts=1, overrides={
            "DEFAULT": {"state_path": os.path.join(work, "cloud"), "periodic_interval": 3600}
    }) as cloud:
        cloud.compute.create_flavor("bench", 1, 64, 1)
        image = cloud.image.create("bench")
        with open(os.path.join(work, "source"), "rb") as data:
            cloud.image.upload(image.id, data, size=size)
        times = []
        for i in range(2):
            start = time.perf_counter()
            server = cloud.compute.create_server(f"boot-{i}", "bench", image.id)
            times.append(time.perf_counter() - start)
            if server.status != "ACTIVE":
                raise RuntimeError(f"server {server.id} is {server.status}: {server.fault}")
        return {"first_boot_ms": times[0] * 1000, "cached_boot_ms": times[1] * 1000}


def main(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--store", action="append", choices=("file", "rbd", "web"),
                        help="store(s) to time (default: all three)")
    parser.add_argument("--smoke", action="store_true", help="4 MiB, one run")
    args = parser.parse_args(argv)
    if args.smoke:
        args.size_mib, args.runs = 4, 1
    size = args.size_mib * MiB
    results: dict[str, Any] = {"size_mib": args.size_mib, "runs": args.runs}
    work = tempfile.mkdtemp(prefix="image-store-bench-", dir=os.environ.get("TMPDIR"))
    try:
        source = os.path.join(work, "source")
        with open(source, "wb") as out:
            for _ in range(args.size_mib):
                out.write(os.urandom(MiB))
            # on disk before anything is timed: else the source's own writeback lands in the
            # first timed operation (the store's upload), e.g. in the journal commit of its
            # fsync on ext4's data=ordered, and never in the raw copy's
            out.flush()
            os.fsync(out.fileno())
        worst: tuple[float, str] | None = None
        for name in args.store or ["file", "rbd", "web"]:
            if name == "web":
                web = WebBench(work)
                try:
                    figures = bench_web(web, size, args.runs)
                finally:
                    web.close()
            else:
                bench = FileBench(work) if name == "file" else RbdBench(work)
                figures = bench_store(bench, source, size, args.runs)
            results[name] = figures
            for op in ("upload", "download"):
                if f"{op}_ratio" not in figures:  # the web store only downloads
                    continue
                ratio = figures[f"{op}_ratio"]
                print(f"{name:5} {op:9} store {figures[f'{op}_mib_s']:8.1f} MiB/s  raw "
                      f"{figures[f'raw_{op}_mib_s']:8.1f} MiB/s  = {ratio:.0%} of raw",
                      flush=True)
                judged = f"{name} {op}"
                if op == "upload" and "upload_published_ratio" in figures:
                    # the goal is judged against the anchor that does the same work: see
                    # RbdBench.raw_upload and doc/source/performance.rst
                    ratio = figures["upload_published_ratio"]
                    judged = f"{name} {op} (against import + snapshot)"
                    print(f"{name:5} {op:9} against import + snap create + snap protect "
                          f"= {ratio:.0%} (judged)", flush=True)
                if worst is None or ratio < worst[0]:
                    worst = (ratio, judged)
        boot = bench_boot(size, work)
        results["boot"] = boot
        print(f"boot  first (fetch into the host cache) {boot['first_boot_ms']:.0f} ms, "
              f"cached {boot['cached_boot_ms']:.0f} ms", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert worst is not None
    results["summary"] = {
        "text": f"worst {worst[1]} {worst[0]:.0%} of raw ({args.size_mib} MiB); boot first "
                f"{boot['first_boot_ms']:.0f} ms / cached {boot['cached_boot_ms']:.0f} ms",
        "goal": f">= {GOAL:.0%} of the raw copy's throughput",
        "met": worst[0] >= GOAL,
    }
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
