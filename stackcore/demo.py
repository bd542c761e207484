"""``stackcore demo``: the main job on the embedded default.

Builds a small cloud in this process (SQLite, in-process RPC), boots servers, prints what the
hosts report and the support matrix, then tears everything down. Each step prints as it runs.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def _step(title: str, action: Callable[[], T]) -> T:
    print(f"  - {title} ...", end="", flush=True)
    started = time.monotonic()
    result = action()
    print(f" done ({(time.monotonic() - started) * 1000:.0f} ms)", flush=True)
    return result


def run(hosts: int = 2) -> int:
    from stackcore import matrix
    from stackcore.cloud import Cloud

    print(f"stackcore demo: embedded cloud with {hosts} fake compute host(s)")
    print("  (fake hypervisor: the real libvirt driver is in stackcore-drivers)")
    with _step("starting cloud (SQLite, in-process RPC)", lambda: Cloud(fake_hosts=hosts)) as cloud:
        compute = cloud.compute
        _step("creating flavor m1.tiny", lambda: compute.create_flavor("m1.tiny", 1, 256, 1))
        image_path = os.path.join(cloud.conf.state_path, "demo.raw")
        with open(image_path, "wb") as handle:
            handle.truncate(1024 * 1024)
        _step("registering image", lambda: compute.register_image(
            "demo-image", image_path, "raw", {"architecture": "x86_64", "vm_mode": "hvm"}))
        servers = [
            _step(f"booting server {name}",
                  functools.partial(compute.create_server, name, "m1.tiny", "demo-image"))
            for name in ("demo-1", "demo-2")
        ]
        for server in servers:
            print(f"    {server.name}: {server.status} on {server.host}")
        cloud.tick()
        print("  host stats:")
        for host in compute.list_hosts():
            s = host.stats
            print(f"    {host.host}: up={host.up} reporting={host.reporting} "
                  f"vcpus {host.allocated['vcpus']}/{s.get('vcpus')} "
                  f"ram {host.allocated['memory_mb']}/{s.get('memory_mb')} MB "
                  f"instances {host.allocated['instances']}")
        print("  support matrix:")
        for line in matrix.render_text(matrix.build()).splitlines():
            print(f"    {line}")
        for server in servers:
            _step(f"deleting {server.name}", functools.partial(compute.delete_server, server.id))
        print("  tearing down")
    print("stackcore demo: done")
    return 0
