"""Framework overhead of the volume service over the raw backend operation, same run.

For each backend (nfs on nfs-ganesha, rbd on Ceph) and each operation (create, snapshot,
clone, extend, delete) it times:

* **framework**: the whole stack - ``cloud.volume.*`` (validation, DB intent, placement and
  atomic claim, RPC, VolumeManager state transitions, driver) until the final state;
* **raw**: the backend operation alone, done the way an operator would script it - qemu-img
  on ``nfs://`` (+ libnfs unlink for delete) for nfs, the rados/rbd bindings on an open pool
  for rbd.

and prints the median of ``--runs`` rounds and the fixed cost ``framework - raw`` per
operation (and ``--output`` writes the numbers as JSON). Goal: <= 2 ms p50 fixed cost.

It also times the driver's own calls inside the framework's operation (every public method of
the volume service's driver, wrapped) and prints the framework's time **outside the driver**.
Why: on Ceph a snapshot's id is a monitor map commit that the monitor batches over
``paxos_propose_interval`` (1 s), so an RBD snapshot takes 60-1000 ms depending only on how
long ago the cluster's last map change was (the other side's snapshot removal, the cluster
log): ``framework - raw`` of one such operation measures the monitor, not the framework.

    . /var/lib/stackcore-backends/env.sh
    .venv/bin/python benchmarks/volume_overhead.py --backend nfs --backend rbd --runs 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import stackcore
from stackcore.volume import VolumeDriver

GiB = 1024**3
GOAL_MS = 2.0
OPERATIONS = ("create", "snapshot", "clone", "extend", "delete")


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        sys.exit(f"{name} is not set: run tools/backends/up.sh and source its env.sh")
    return value


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# --- raw backend operations ------------------------------------------------------------------


class RawNfs:
    def __init__(self) -> None:
        from stackcore_drivers.volume.libnfs import NfsShare

        self.server = env("STACKCORE_TEST_NFS_SERVER")
        self.export = env("STACKCORE_TEST_NFS_EXPORT")
        self.share = NfsShare(self.server, self.export)
        self.share.connect()

    def url(self, name: str) -> str:
        return f"nfs://{self.server}{self.export}/{name}"

    @staticmethod
    def qemu_img(*args: str) -> None:
        subprocess.run(["qemu-img", *args], check=True, capture_output=True)

    def round(self) -> dict[str, float]:
        base = f"raw-{uuid.uuid4()}"
        times = {
            "create": timed(lambda: self.qemu_img("create", "-f", "raw", self.url(base), "1G")),
            "snapshot": timed(lambda: self.qemu_img(
                "create", "-f", "qcow2", "-b", self.url(base), "-F", "raw",
                self.url(base + ".snap"))),
        }

        def clone() -> None:
            self.qemu_img("create", "-f", "raw", self.url(base + "-clone"), "1G")
            self.qemu_img("convert", "-n", "-f", "qcow2", "-O", "raw",
                          self.url(base + ".snap"), self.url(base + "-clone"))

        times["clone"] = timed(clone)
        times["extend"] = timed(lambda: self.qemu_img("resize", "-f", "raw",
                                                      self.url(base + "-clone"), "2G"))
        times["delete"] = timed(lambda: self.share.unlink(base + "-clone"))
        self.share.unlink(base + ".snap")
        self.share.unlink(base)
        return times


class RawRbd:
    def __init__(self) -> None:
        import rados
        import rbd

        self.rbd = rbd
        self.client = rados.Rados(conffile=env("STACKCORE_TEST_CEPH_CONF"))
        self.client.connect()
        self.ioctx = self.client.open_ioctx(env("STACKCORE_TEST_CEPH_POOL"))

    def round(self) -> dict[str, float]:
        rbd, io = self.rbd, self.ioctx
        base = f"raw-{uuid.uuid4()}"
        times = {"create": timed(lambda: rbd.RBD().create(io, base, GiB, old_format=False,
                                                          features=1))}

        def snapshot() -> None:
            with rbd.Image(io, base) as image:
                image.create_snap("s")
                image.protect_snap("s")

        times["snapshot"] = timed(snapshot)
        times["clone"] = timed(lambda: rbd.RBD().clone(io, base, "s", io, base + "-c",
                                                       features=1))

        def extend() -> None:
            with rbd.Image(io, base + "-c") as image:
                image.resize(2 * GiB)

        times["extend"] = timed(extend)
        times["delete"] = timed(lambda: rbd.RBD().remove(io, base + "-c"))
        with rbd.Image(io, base) as image:
            image.unprotect_snap("s")
            image.remove_snap("s")
        rbd.RBD().remove(io, base)
        return times


# --- the framework ---------------------------------------------------------------------------


def cloud_for(backend: str, state: str) -> stackcore.Cloud:
    if backend == "nfs":
        section = {"volume_driver": "nfs", "nfs_access": "qemu", "nfs_shares": [
            f"{env('STACKCORE_TEST_NFS_SERVER')}:{env('STACKCORE_TEST_NFS_EXPORT')}"]}
    else:
        section = {"volume_driver": "rbd", "rbd_ceph_conf": env("STACKCORE_TEST_CEPH_CONF"),
                   "rbd_pool": env("STACKCORE_TEST_CEPH_POOL"), "rbd_max_clone_depth": 5}
    return stackcore.Cloud(services=("volume",), overrides={
        "DEFAULT": {"state_path": state, "periodic_interval": 3600},
        "volume": {"enabled_backends": [backend]},
        backend: section,
    })


class DriverClock:
    """Seconds spent inside the volume driver's public methods, summed (the benchmark wraps
    the methods of the cloud's driver instances; the managers call them in other threads)."""

    def __init__(self, cloud: stackcore.Cloud) -> None:
        self.seconds = 0.0
        self._lock = threading.Lock()
        self._depth = threading.local()
        drivers = [s.manager.driver for s in cloud.services
                   if isinstance(getattr(s.manager, "driver", None), VolumeDriver)]
        if not drivers:
            raise RuntimeError("no volume driver in the benchmark's cloud")
        for driver in drivers:
            for name in dir(type(driver)):
                if not name.startswith("_") and callable(getattr(type(driver), name)):
                    setattr(driver, name, self._timed(getattr(driver, name)))

    def _timed(self, method: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            depth = getattr(self._depth, "n", 0)
            self._depth.n = depth + 1
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self._depth.n = depth
                if depth == 0:  # a driver method calling another is counted once
                    with self._lock:
                        self.seconds += time.perf_counter() - started
        return call

    def outside(self, fn: Callable[[], Any]) -> tuple[float, float]:
        """(seconds of ``fn``, of them spent outside the driver)."""
        before = self.seconds
        seconds = timed(fn)
        return seconds, seconds - (self.seconds - before)


def framework_round(cloud: stackcore.Cloud, clock: DriverClock) -> dict[str, float]:
    api = cloud.volume
    made: dict[str, Any] = {}
    times: dict[str, float] = {}

    def op(name: str, fn: Callable[[], Any]) -> None:
        times[name], times[f"{name}_outside"] = clock.outside(fn)

    op("create", lambda: made.update(vol=api.create(1)))
    op("snapshot", lambda: made.update(snap=api.create_snapshot(made["vol"].id)))
    op("clone", lambda: made.update(clone=api.create(1, snapshot_id=made["snap"].id)))
    op("extend", lambda: api.extend(made["clone"].id, 2))
    op("delete", lambda: api.delete(made["clone"].id))
    for key in ("vol", "snap", "clone"):
        assert getattr(made[key], "status", "available") in ("available",), made[key]
    api.delete_snapshot(made["snap"].id)
    api.delete(made["vol"].id)
    return times


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", action="append", choices=["nfs", "rbd"])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warm-up", type=int, default=1,
                        help="untimed rounds first (imports, first connections)")
    parser.add_argument("--output", help="also write the figures to this JSON file")
    args = parser.parse_args(argv if argv is not None else [])
    results: dict[str, Any] = {}
    for backend in args.backend or ["nfs", "rbd"]:
        raw = RawNfs() if backend == "nfs" else RawRbd()
        with tempfile.TemporaryDirectory() as state:
            cloud = cloud_for(backend, state)
            clock = DriverClock(cloud)
            try:
                for _ in range(args.warm_up):
                    framework_round(cloud, clock)
                    raw.round()
                rounds_fw, rounds_raw = [], []
                for _ in range(args.runs):  # interleaved so both see the same load
                    rounds_raw.append(raw.round())
                    rounds_fw.append(framework_round(cloud, clock))
            finally:
                cloud.close()
        per_op = {}
        for op in OPERATIONS:
            fw = statistics.median(r[op] for r in rounds_fw)
            rw = statistics.median(r[op] for r in rounds_raw)
            outside = statistics.median(r[f"{op}_outside"] for r in rounds_fw)
            per_op[op] = {"framework_s": round(fw, 4), "raw_s": round(rw, 4),
                          "overhead_s": round(fw - rw, 4),
                          "overhead_pct": round(100 * (fw / rw - 1), 1),
                          "outside_driver_s": round(outside, 4)}
        results[backend] = per_op
        print(f"{backend}:")
        for op, row in per_op.items():
            print(f"  {op:<9} framework {row['framework_s'] * 1000:8.1f} ms   raw "
                  f"{row['raw_s'] * 1000:8.1f} ms   overhead {row['overhead_s'] * 1000:7.1f} ms"
                  f" ({row['overhead_pct']:+.1f} %)   outside the driver "
                  f"{row['outside_driver_s'] * 1000:6.1f} ms")
    worst_backend, worst_op = max(((b, op) for b, rows in results.items() for op in rows),
                                  key=lambda key: results[key[0]][key[1]]["overhead_s"])
    worst = results[worst_backend][worst_op]
    summary = {"text": f"worst fixed cost {worst['overhead_s'] * 1000:.1f} ms ({worst_backend} "
                       f"{worst_op}: framework {worst['framework_s'] * 1000:.1f} ms / raw "
                       f"{worst['raw_s'] * 1000:.1f} ms = "
                       f"{worst['framework_s'] / worst['raw_s']:.2f}x; outside the driver "
                       f"{worst['outside_driver_s'] * 1000:.1f} ms)",
               "goal": f"fixed cost <= {GOAL_MS:g} ms p50 per operation",
               "met": worst["overhead_s"] * 1000 <= GOAL_MS}
    if args.output:
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
        with open(args.output, "w") as handle:
            json.dump({"runs": args.runs, "results": results}, handle, indent=2)
    return {"runs": args.runs, "results": results, "summary": summary}


if __name__ == "__main__":
    main(sys.argv[1:])
