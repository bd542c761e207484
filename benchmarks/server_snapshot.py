"""Snapshot of a server into an image, against ``qemu-img convert`` of the same disk.

On the test libvirtd (tools/backends), an embedded cloud boots a server from a raw image of
``--size-mib`` MiB (random, incompressible data behind a boot sector that halts: no OS to
fetch) and times, median of ``--runs`` rounds, in the same run:

* **framework, stopped server**: ``cloud.compute.create_image`` until the image is ``active``
  (the API's checks and records, the cast to the compute host, the driver's copy of the
  root disk - overlay and base flattened by ``qemu-img convert`` into the snapshot's format -,
  the upload into ``cloud.image``'s store with its size and sha256, and the server's task
  cleared). Judged against
* **raw**: ``qemu-img convert`` of the same overlay into the same format (what an operator
  would run by hand; no upload, no checksum);
* **raw + stored** (reported): that convert, then ``cp`` + ``sync`` of its output - the
  durable copy the upload into the image store makes, which the raw convert alone does not;
* **framework, active server** (reported, not judged): the same with the server running,
  which the libvirt driver (cold snapshots only) suspends with a managed save around the
  copy and resumes - the suspend and resume are extra work the raw copy does not do.

Goal (the lifecycle issue): framework < 10 % over the raw copy.

    . /var/lib/stackcore-backends/env.sh
    .venv/bin/python benchmarks/server_snapshot.py [--size-mib 256] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import stackcore

MiB = 1024 * 1024
GOAL = 0.10


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        sys.exit(f"{name} is not set: run tools/backends/up.sh and source its env.sh")
    return value


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.005)
    return value


def base_image(path: str, size: int) -> None:
    """A raw disk: an MBR whose code halts (one Linux partition in its table: a disk without
    any fails the image format checks) and random data after it."""
    code = b"\xfa\xf4\xeb\xfd"  # cli; hlt; jmp hlt
    partition = b"\x00" * 4 + b"\x83" + b"\x00" * 3 + struct.pack("<II", 1, size // 512 - 1)
    mbr = code + b"\0" * (446 - len(code)) + partition + b"\0" * 48 + b"\x55\xaa"
    with open(path, "wb") as out:
        out.write(mbr + os.urandom(MiB - len(mbr)))
        for _ in range(size // MiB - 1):
            out.write(os.urandom(MiB))


def snapshot(cloud: stackcore.Cloud, server_id: str, name: str) -> tuple[float, str]:
    """(seconds from create_image until the image is active and the server's task clear,
    image id)."""
    start = time.perf_counter()
    queued = cloud.compute.create_image(server_id, name)

    def done() -> bool:
        image = cloud.image.get(queued.id)
        if image.status not in ("queued", "saving", "active"):
            raise RuntimeError(f"snapshot image {image.id} is {image.status}")
        return image.status == "active" and cloud.compute.get_server(server_id).task_state is None

    wait_for(done, 600, f"snapshot image {queued.id} active")
    return time.perf_counter() - start, queued.id


def overlay_of(server_id: str, instances: str) -> str:
    """The libvirt driver's root disk (qcow2 overlay) of the server."""
    path = os.path.join(instances, server_id, "disk")
    if not os.path.exists(path):
        raise RuntimeError(f"no root disk at {path} for server {server_id}")
    return path


def main(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--disk-format", choices=("qcow2", "raw"), default="qcow2",
                        help="the server's image format, and so the snapshot's")
    parser.add_argument("--smoke", action="store_true", help="8 MiB, one run")
    args = parser.parse_args(argv)
    if args.smoke:
        args.size_mib, args.runs = 8, 1
    size = args.size_mib * MiB
    work = tempfile.mkdtemp(prefix="server-snapshot-bench-", dir=os.environ.get("TMPDIR"))
    instances = os.path.join(work, "instances")
    times: dict[str, list[float]] = {"stopped": [], "raw": [], "raw_stored": [], "active": []}
    try:
        source = os.path.join(work, "base.raw")
        base_image(source, size)
        if args.disk_format == "qcow2":
            subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", source,
                            source + ".qcow2"], check=True, capture_output=True)
            source += ".qcow2"
        with stackcore.Cloud(overrides={
            "DEFAULT": {"state_path": os.path.join(work, "state"), "periodic_interval": 3600},
            "compute": {"driver": "libvirt", "hosts": ["kvm-1"]},
            "libvirt": {"connection_uri": env("STACKCORE_TEST_LIBVIRT_URI"),
                        "virt_type": env("STACKCORE_TEST_VIRT_TYPE"),
                        "instances_path": instances, "pcie_root_ports": 0,
                        "shutdown_timeout": 0},
        }) as cloud:
            cloud.compute.create_flavor("bench", vcpus=1, ram_mb=64, disk_gb=1)
            image = cloud.image.create("bench-base", disk_format=args.disk_format,
                                       properties={"architecture": "x86_64"})
            with open(source, "rb") as data:
                cloud.image.upload(image.id, data, size=os.path.getsize(source))
            server = cloud.compute.create_server("snapshot-bench", "bench", image.id)
            if server.status != "ACTIVE":
                raise RuntimeError(f"server {server.id} is {server.status}: {server.fault}")
            overlay = overlay_of(server.id, instances)
            try:
                for round_ in range(args.runs):
                    seconds, made = snapshot(cloud, server.id, f"active-{round_}")
                    times["active"].append(seconds)
                    cloud.image.delete(made)
                stopped = cloud.compute.stop_server(server.id)
                if stopped.status != "STOPPED":
                    raise RuntimeError(f"server {server.id} did not stop: {stopped.status}")
                target = os.path.join(work, "raw-copy")
                for round_ in range(args.runs):
                    # the two sides take turns going first (page cache, writeback)
                    def raw() -> None:
                        start = time.perf_counter()
                        subprocess.run(["qemu-img", "convert", "-f", "qcow2", "-O",
                                        args.disk_format, overlay, target], check=True,
                                       capture_output=True)
                        times["raw"].append(time.perf_counter() - start)
                        # the second anchor: and a durable copy of it, as the upload into
                        # the image store makes (cp, then sync of the copy)
                        subprocess.run(["cp", target, target + ".stored"], check=True)
                        subprocess.run(["sync", target + ".stored"], check=True)
                        times["raw_stored"].append(time.perf_counter() - start)
                        os.unlink(target)
                        os.unlink(target + ".stored")

                    def framework(name: str = f"stopped-{round_}") -> None:
                        seconds, made = snapshot(cloud, server.id, name)
                        times["stopped"].append(seconds)
                        cloud.image.delete(made)

                    for side in (framework, raw) if round_ % 2 == 0 else (raw, framework):
                        side()
            finally:
                cloud.compute.delete_server(server.id)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    medians = {k: statistics.median(v) for k, v in times.items()}
    # each round's pair, then the median: the host's load drifts between rounds
    overhead = statistics.median(s / r - 1 for s, r in zip(times["stopped"], times["raw"],
                                                           strict=True))
    stored = statistics.median(s / r - 1 for s, r in zip(times["stopped"], times["raw_stored"],
                                                         strict=True))
    print(f"snapshot of a {args.size_mib} MiB root disk: stopped server "
          f"{medians['stopped'] * 1000:.0f} ms, raw qemu-img convert {medians['raw'] * 1000:.0f} "
          f"ms (overhead {overhead:+.0%}); convert + cp + sync "
          f"{medians['raw_stored'] * 1000:.0f} ms (overhead {stored:+.0%}); active server "
          f"(suspend + copy + resume) {medians['active'] * 1000:.0f} ms", flush=True)
    return {
        "size_mib": args.size_mib, "runs": args.runs,
        **{f"{k}_s": v for k, v in medians.items()}, "overhead": overhead,
        "overhead_against_stored_copy": stored,
        "rounds_ms": {k: [round(x * 1000) for x in v] for k, v in times.items()},
        "summary": {
            "text": f"stopped-server snapshot {medians['stopped'] * 1000:.0f} ms vs raw "
                    f"qemu-img convert {medians['raw'] * 1000:.0f} ms ({overhead:+.0%}; "
                    f"{args.size_mib} MiB); active {medians['active'] * 1000:.0f} ms",
            "goal": f"< {GOAL:.0%} over the raw copy",
            "met": overhead < GOAL,
        },
    }


if __name__ == "__main__":
    main(sys.argv[1:])
